"""DCAP quote and PCK-extension models: every real quote parses, agrees with dcap-qvl, re-serializes
byte-exactly, built quotes round-trip, and malformed quotes are rejected with QuoteFormatError."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import struct
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID, ObjectIdentifier

from enklave.errors import QuoteFormatError
from enklave.models import _der
from enklave.models.pck import (
    PCK_EXTENSION_OID,
    PckExtension,
    encode_pck_extension,
    parse_pck_extension,
    parse_pck_extension_der,
)
from enklave.models.quote import (
    INTEL_QE_VENDOR_ID,
    TEE_SGX,
    TEE_TDX,
    CertificationData,
    Quote,
    QuoteHeader,
    SgxReportBody,
    TdReportBody,
    build_quote,
    parse_quote,
)

REPO = Path(__file__).resolve().parents[2]
DCAP = REPO.parent / "shared" / "testvectors" / "dcap"
INTEL = "SGX-TDX-DCAP-QuoteVerificationLibrary/sampleData"

# Files with a quote-like name that hold no quote, and why.
NOT_QUOTES = {
    "go-tdx-guest/report.dat": "a raw 1024-byte TDREPORT, not a quote",
    "zkdcap/quote-verifier-data/qv_collateral.bin": "zkdcap's serde collateral",
    "go-tdx-guest/pckcrl": "a DER CRL",
    "go-tdx-guest/sample_tcbInfo_response": "TCB Info JSON",
    "go-tdx-guest/sample_tcbinfo_response_v5": "TCB Info JSON",
    "go-tdx-guest/sample_qeIdentity_response": "QE identity JSON",
}
EXPECTED_QUOTE_COUNT = 38


def _decode(rel: str, raw: bytes) -> bytes | None:
    """The quote bytes of one vector file, or None when the file holds no quote."""
    if rel in NOT_QUOTES:
        return None
    name = rel.rsplit("/", 1)[-1]
    if name.endswith(".json"):
        if "/sampleQuotes/" not in rel:
            return None
        return base64.b64decode(json.loads(raw)["tdx"]["quote"])
    if name.endswith((".hex", ".txt")):
        text = raw.decode().strip()
        return bytes.fromhex(text[2:] if text.startswith("0x") else text)
    if "." in name and not name.endswith((".dat", ".bin")):
        return None  # .pem .der .cer .md .snap .yml
    if raw[:4] in (b"\x03\x00\x02\x00", b"\x04\x00\x02\x00", b"\x05\x00\x02\x00"):
        return raw
    try:  # the Azure sample is base64 text; anything else is counted as missing below
        return base64.b64decode(b"".join(raw.split()), validate=True)
    except ValueError:
        return None


def _quote_files() -> dict[str, bytes]:
    if not DCAP.is_dir():
        return {}
    out = {}
    for path in sorted(DCAP.rglob("*")):
        if path.is_file():
            rel = path.relative_to(DCAP).as_posix()
            data = _decode(rel, path.read_bytes())
            if data is not None:
                out[rel] = data
    return out


QUOTES = _quote_files()
needs_vectors = pytest.mark.skipif(not QUOTES, reason=f"test vectors not found at {DCAP}")
quote_params = pytest.mark.parametrize("rel", sorted(QUOTES) or ["<no vectors>"])


def _quote(rel: str) -> bytes:
    if rel not in QUOTES:
        pytest.skip(f"test vector {rel} not found under {DCAP}")
    return QUOTES[rel]


def _pck_leaf(quote: Quote) -> x509.Certificate:
    certs = [x509.load_der_x509_certificate(d) for d in quote.certification.pck_chain_der()]
    leaves = [c for c in certs if "SGX PCK Certificate" in c.subject.rfc4514_string()]
    assert len(leaves) == 1
    return leaves[0]


# ------------------------------------------------------------------------------- real quotes


@needs_vectors
def test_finds_every_quote_file_in_the_vectors() -> None:
    assert len(QUOTES) == EXPECTED_QUOTE_COUNT, sorted(QUOTES)


@needs_vectors
@quote_params
def test_real_quote_parses_and_matches_dcap_qvl(rel: str) -> None:
    dcap_qvl = pytest.importorskip("dcap_qvl")
    data = _quote(rel)
    quote = parse_quote(data)
    oracle = dcap_qvl.parse_quote(data)
    h, oh = quote.header, oracle.header
    assert (h.version, h.att_key_type, h.tee_type) == (
        oh.version, oh.attestation_key_type, oh.tee_type,
    )  # fmt: skip
    assert (h.qe_svn, h.pce_svn, h.qe_vendor_id, h.user_data) == (
        oh.qe_svn, oh.pce_svn, oh.qe_vendor_id, oh.user_data,
    )  # fmt: skip
    assert quote.tee == ("tdx" if oracle.is_tdx() else "sgx")
    report = oracle.report
    body = quote.body
    assert body.report_data == report.report_data == quote.report_data
    if isinstance(body, SgxReportBody):
        assert quote.body_type == 1
        assert (body.cpu_svn, body.attributes) == (report.cpu_svn, report.attributes)
        assert (body.mrenclave, body.mrsigner) == (report.mr_enclave, report.mr_signer)
    else:
        assert isinstance(body, TdReportBody)
        for name in ("tee_tcb_svn", "mr_seam", "mr_signer_seam", "seam_attributes",
                     "td_attributes", "xfam", "mr_td", "mr_config_id", "mr_owner",
                     "mr_owner_config"):  # fmt: skip
            assert getattr(body, name) == getattr(report, name), name
        assert body.rtmrs == (report.rt_mr0, report.rt_mr1, report.rt_mr2, report.rt_mr3)
        if quote.body_type == 3:
            assert (body.tee_tcb_svn2, body.mr_service_td) == (
                report.tee_tcb_svn2, report.mr_service_td,
            )  # fmt: skip
        else:
            assert quote.body_type == 2 and body.tee_tcb_svn2 is None


@needs_vectors
@quote_params
def test_real_quote_pck_extension_matches_dcap_qvl(rel: str) -> None:
    dcap_qvl = pytest.importorskip("dcap_qvl")
    data = _quote(rel)
    quote = parse_quote(data)
    if quote.certification.cert_type != 5:
        pytest.skip("type-1 certification data: no embedded PCK chain")
    ext = parse_pck_extension(_pck_leaf(quote))
    try:
        oracle = dcap_qvl.parse_quote(data)
        fmspc = oracle.fmspc()
        other = oracle.pck_extension()
    except ValueError:
        assert rel == f"{INTEL}/tdx/quote.dat"  # DER root-first chain: dcap-qvl cannot read it
        return
    assert ext.fmspc.hex().upper() == fmspc.upper()
    assert (ext.ppid, ext.cpusvn, ext.pcesvn, ext.pce_id, ext.fmspc, ext.sgx_type) == (
        other.ppid, other.cpu_svn, other.pce_svn, other.pce_id, other.fmspc, other.sgx_type,
    )  # fmt: skip
    assert ext.platform_instance_id == other.platform_instance_id
    assert ext.tcb_components == tuple(ext.cpusvn)


@needs_vectors
@quote_params
def test_real_quote_reserializes_byte_exact(rel: str) -> None:
    data = _quote(rel)
    quote = parse_quote(data)
    descriptor = struct.pack("<HI", quote.body_type, len(quote.body.raw))
    head = quote.header.to_bytes() + (descriptor if quote.header.version == 5 else b"")
    assert head + quote.body.to_bytes() == quote.signed_region == data[: len(quote.signed_region)]
    fields = {f.name: getattr(quote.body, f.name) for f in dataclasses.fields(quote.body) if f.init}
    rebuilt = type(quote.body).build(**fields)
    assert rebuilt.raw == quote.body.raw and rebuilt == quote.body  # reserved bytes are zero
    again = build_quote(
        version=quote.header.version, tee_type=quote.header.tee_type, body=quote.body,
        attestation_key=quote.attestation_key, sign=lambda _: quote.signature,
        qe_report=quote.qe_report, qe_report_signature=quote.qe_report_signature,
        qe_auth_data=quote.qe_auth_data, cert_type=quote.certification.cert_type,
        cert_data=quote.certification.data, qe_svn=quote.header.qe_svn,
        pce_svn=quote.header.pce_svn, user_data=quote.header.user_data,
        qe_vendor_id=quote.header.qe_vendor_id,
    )  # fmt: skip
    assert again + data[len(data) - quote.trailing :] == data == quote.raw


@needs_vectors
@quote_params
def test_real_quote_pck_extension_reencodes_byte_exact(rel: str) -> None:
    quote = parse_quote(_quote(rel))
    if quote.certification.cert_type != 5:
        pytest.skip("type-1 certification data: no embedded PCK chain")
    value = (
        _pck_leaf(quote)
        .extensions.get_extension_for_oid(ObjectIdentifier(PCK_EXTENSION_OID))
        .value.value
    )
    assert encode_pck_extension(parse_pck_extension_der(value)) == value


@needs_vectors
def test_dcap_qvl_sgx_sample_known_facts() -> None:
    quote = parse_quote(_quote("dcap-qvl/sample/sgx_quote"))
    assert (quote.header.version, quote.tee, quote.header.pce_svn) == (3, "sgx", 15)
    assert quote.header.qe_vendor_id == INTEL_QE_VENDOR_ID
    body = quote.body
    assert isinstance(body, SgxReportBody)
    assert body.report_data.rstrip(b"\0") == b"Hello, world!"
    assert body.attributes[0] == 0x05 and not body.debug
    assert body.cpu_svn.hex().startswith("0b0b1a18ffff04")
    assert quote.qe_report.attributes[0] == 0x15 and len(quote.qe_auth_data) == 32
    assert quote.certification.cert_type == 5 and quote.trailing == 0
    assert len(quote.certification.pck_chain_der()) == 3
    ext = parse_pck_extension(_pck_leaf(quote))
    assert ext.tcb_components == (11, 11, 2, 2, 255, 1) + (0,) * 10
    assert (ext.pcesvn, ext.pce_id, ext.fmspc, ext.sgx_type) == (
        13, b"\0\0", bytes.fromhex("00A067110000"), 0,
    )  # fmt: skip
    assert ext.cpusvn.hex().startswith("0b0b0202ff01")
    assert ext.platform_instance_id is None and ext.dynamic_platform is None


@needs_vectors
def test_platform_ca_pck_carries_instance_id_and_configuration() -> None:
    quote = parse_quote(_quote("dcap-qvl/sample/tdx_quote"))
    ext = parse_pck_extension(_pck_leaf(quote))
    assert ext.fmspc == bytes.fromhex("B0C06F000000") and ext.sgx_type == 1
    assert ext.platform_instance_id is not None and len(ext.platform_instance_id) == 16
    assert (ext.dynamic_platform, ext.cached_keys, ext.smt_enabled) == (True, True, True)


@needs_vectors
@pytest.mark.parametrize(
    ("rel", "trailing"),
    [("dcap-qvl/sample/tdx_quote", 70), ("go-tdx-guest/tdx_prod_quote_SPR_E4.dat", 39),
     ("dcap-qvl/sample/sgx_quote", 0)],
)  # fmt: skip
def test_trailing_bytes_after_signature_data_are_counted(rel: str, trailing: int) -> None:
    data = _quote(rel)
    quote = parse_quote(data)
    assert quote.trailing == trailing
    if rel.startswith("go-tdx-guest"):
        assert data[-trailing:].strip() == b"extra bytes(only for testing purpose)"


@needs_vectors
def test_tdx_v5_td15_quote_layout() -> None:
    quote = parse_quote(_quote("dcap-qvl/sample/tdx_quote_outdated"))
    assert (quote.header.version, quote.body_type, quote.tee) == (5, 3, "tdx")
    assert isinstance(quote.body, TdReportBody) and len(quote.body.raw) == 648
    assert len(quote.signed_region) == 48 + 6 + 648


@needs_vectors
def test_intel_tdx_sample_has_der_root_first_chain() -> None:
    quote = parse_quote(_quote(f"{INTEL}/tdx/quote.dat"))
    certs = [x509.load_der_x509_certificate(d) for d in quote.certification.pck_chain_der()]
    assert certs[0].subject == certs[0].issuer  # root first
    assert "SGX PCK Certificate" in certs[-1].subject.rfc4514_string()


@needs_vectors
def test_intel_sgx_sample_type1_cert_id_matches_its_pck_cert() -> None:
    quote = parse_quote(_quote(f"{INTEL}/quote.dat"))
    cert_data = quote.certification
    assert cert_data.cert_type == 1 and quote.qe_auth_data == b""
    with pytest.raises(QuoteFormatError, match="carries no PCK chain.*pck_certificate_chain"):
        cert_data.pck_chain_der()
    cert_id = cert_data.pck_cert_id()
    pem = (DCAP / INTEL / "pckCert.pem").read_bytes()
    ext = parse_pck_extension(x509.load_pem_x509_certificate(pem))
    assert (cert_id.ppid, cert_id.cpusvn, cert_id.pcesvn) == (ext.ppid, ext.cpusvn, ext.pcesvn)
    assert cert_id.pce_id is None


# ------------------------------------------------------------------------------- build/parse


@pytest.fixture(scope="module")
def att_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _raw_sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _raw_verify(pub: bytes, sig: bytes, data: bytes) -> None:
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + pub)
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    key.verify(der, data, ec.ECDSA(hashes.SHA256()))


def _td_body(td15: bool) -> TdReportBody:
    extra = {"tee_tcb_svn2": bytes(range(16)), "mr_service_td": b"\x5a" * 48} if td15 else {}
    return TdReportBody.build(
        tee_tcb_svn=bytes([3, 1]) + bytes(14), mr_td=b"\x11" * 48, td_attributes=b"\x00" * 8,
        rtmrs=(b"\x01" * 48, b"\x02" * 48, b"\x03" * 48, b"\x04" * 48),
        report_data=b"\x42" * 64, **extra,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("version", "tee_type", "td15", "cert_type"),
    [(3, TEE_SGX, None, 5), (4, TEE_SGX, None, 5), (4, TEE_TDX, False, 5), (5, TEE_TDX, True, 5),
     (5, TEE_TDX, False, 4), (5, TEE_SGX, None, 1)],
)  # fmt: skip
def test_build_quote_round_trips(
    att_key: ec.EllipticCurvePrivateKey, version: int, tee_type: int, td15: bool | None,
    cert_type: int,
) -> None:  # fmt: skip
    body = (
        SgxReportBody.build(mrenclave=b"\xaa" * 32, mrsigner=b"\xbb" * 32, isv_svn=7,
                            attributes=b"\x07" + bytes(15), report_data=b"hi".ljust(64, b"\0"))
        if td15 is None else _td_body(td15)
    )  # fmt: skip
    pub = att_key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)[1:]
    qe_report = SgxReportBody.build(isv_prod_id=1, attributes=b"\x15" + bytes(15))
    cert_data = b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n\0"
    if cert_type == 1:
        cert_data = bytes(16) + bytes(16) + b"\x0d\x00"
    raw = build_quote(
        version=version, tee_type=tee_type, body=body, attestation_key=pub,
        sign=lambda region: _raw_sign(att_key, region), qe_report=qe_report,
        qe_report_signature=b"\x09" * 64, qe_auth_data=bytes(range(32)), cert_type=cert_type,
        cert_data=cert_data, qe_svn=3, pce_svn=13, user_data=b"\x01" * 20,
    )  # fmt: skip
    quote = parse_quote(raw)
    assert quote.header == QuoteHeader(version, 2, tee_type, 3, 13, INTEL_QE_VENDOR_ID, b"\1" * 20)
    assert quote.body == body and quote.body.raw == body.raw
    assert quote.body_type == (1 if td15 is None else 3 if td15 else 2)
    assert (quote.qe_report, quote.qe_report_signature) == (qe_report, b"\x09" * 64)
    assert quote.qe_auth_data == bytes(range(32)) and quote.attestation_key == pub
    assert quote.certification == CertificationData(cert_type, cert_data)
    assert quote.trailing == 0 and quote.raw == raw and Quote.from_bytes(raw) == quote
    _raw_verify(pub, quote.signature, quote.signed_region)
    if cert_type != 1:
        assert quote.certification.pck_chain_der() == [b"\x30\x00"]


@pytest.mark.parametrize(
    ("version", "tee_type", "body_kind"),
    [(3, TEE_TDX, "td10"), (3, TEE_SGX, "td10"), (4, TEE_TDX, "td15"), (4, TEE_SGX, "td10"),
     (5, TEE_TDX, "sgx"), (6, TEE_SGX, "sgx"), (4, 0x82, "sgx")],
)  # fmt: skip
def test_build_quote_refuses_impossible_combinations(
    version: int, tee_type: int, body_kind: str
) -> None:
    body = SgxReportBody.build() if body_kind == "sgx" else _td_body(body_kind == "td15")
    with pytest.raises(QuoteFormatError):
        build_quote(
            version=version, tee_type=tee_type, body=body, attestation_key=bytes(64),
            sign=lambda _: bytes(64), qe_report=SgxReportBody.build(),
            qe_report_signature=bytes(64), qe_auth_data=b"", cert_type=5, cert_data=b"",
        )  # fmt: skip


def test_build_quote_rejects_a_signer_returning_der() -> None:
    with pytest.raises(QuoteFormatError, match="signature must be 64"):
        build_quote(
            version=3, tee_type=TEE_SGX, body=SgxReportBody.build(), attestation_key=bytes(64),
            sign=lambda _: b"\x30" * 70, qe_report=SgxReportBody.build(),
            qe_report_signature=bytes(64), qe_auth_data=b"", cert_type=5, cert_data=b"",
        )  # fmt: skip


def test_report_bodies_check_field_sizes_and_flags() -> None:
    assert SgxReportBody.build(attributes=b"\x02" + bytes(15)).debug
    assert not SgxReportBody.build().debug and SgxReportBody.build().raw == bytes(384)
    assert TdReportBody.build(td_attributes=b"\x01" + bytes(7)).debug
    assert TdReportBody.build(tee_tcb_svn2=None).raw == bytes(584)
    with pytest.raises(QuoteFormatError, match="mrenclave"):
        SgxReportBody.build(mrenclave=b"short")
    with pytest.raises(QuoteFormatError, match="isv_svn"):
        SgxReportBody.build(isv_svn=70000)
    with pytest.raises(QuoteFormatError, match="no field"):
        SgxReportBody.build(mr_td=bytes(48))
    assert len(TdReportBody.build(tee_tcb_svn2=bytes(16)).raw) == 648  # 1.5, zero MRSERVICETD
    with pytest.raises(QuoteFormatError, match="mr_service_td"):
        dataclasses.replace(TdReportBody.build(), tee_tcb_svn2=bytes(16))  # 1.5 needs both
    with pytest.raises(QuoteFormatError, match="rtmrs"):
        TdReportBody.build(rtmrs=(bytes(48),) * 3)
    with pytest.raises(QuoteFormatError, match="584 or 648"):
        TdReportBody.from_bytes(bytes(600))
    with pytest.raises(QuoteFormatError, match="48"):
        QuoteHeader.from_bytes(bytes(47))


def test_parsed_body_keeps_reserved_bytes() -> None:
    raw = bytearray(SgxReportBody.build(isv_svn=2).raw)
    raw[20] = 0xEE  # reserved
    body = SgxReportBody.from_bytes(bytes(raw))
    assert body.raw == bytes(raw) and body.to_bytes() == bytes(raw)
    assert body != SgxReportBody.build(isv_svn=2)  # same named fields, different bytes


# ------------------------------------------------------------------------ rejected quotes


def _sample(version: int = 4, tee_type: int = TEE_TDX, *, cert_type: int = 5,
            cert_data: bytes = b"\x30\x00") -> bytes:  # fmt: skip
    body = SgxReportBody.build() if tee_type == TEE_SGX else _td_body(version == 5)
    return build_quote(
        version=version, tee_type=tee_type, body=body, attestation_key=bytes(64),
        sign=lambda _: bytes(64), qe_report=SgxReportBody.build(), qe_report_signature=bytes(64),
        qe_auth_data=bytes(32), cert_type=cert_type, cert_data=cert_data,
    )  # fmt: skip


def _patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "message"),
    [(0, "<H", 2, "version at offset 0"), (0, "<H", 6, "version"),
     (2, "<H", 3, "attestation key type at offset 2"), (4, "<I", 0x80, "TEE type at offset 4")],
)  # fmt: skip
def test_rejects_unsupported_header_values(offset: int, fmt: str, value: int, message: str) -> None:
    with pytest.raises(QuoteFormatError, match=message):
        parse_quote(_patch(_sample(), offset, fmt, value))


def test_rejects_v3_quote_claiming_tdx() -> None:
    with pytest.raises(QuoteFormatError, match="v3 quote must be SGX"):
        parse_quote(_patch(_sample(3, TEE_SGX), 4, "<I", TEE_TDX))


def test_rejects_v5_body_type_that_contradicts_tee_type() -> None:
    with pytest.raises(QuoteFormatError, match="does not match TEE type"):
        parse_quote(_patch(_sample(5, TEE_TDX), 4, "<I", TEE_SGX))


@pytest.mark.parametrize(("body_type", "size"), [(3, 584), (2, 648), (4, 648), (0, 0)])
def test_rejects_v5_body_descriptor_inconsistency(body_type: int, size: int) -> None:
    data = _patch(_patch(_sample(5, TEE_TDX), 48, "<H", body_type), 50, "<I", size)
    with pytest.raises(QuoteFormatError, match="body (type|size) at offset"):
        parse_quote(data)


def test_rejects_v4_outer_certification_type_other_than_6() -> None:
    data = _sample()
    with pytest.raises(QuoteFormatError, match="outer certification data type at offset 764"):
        parse_quote(_patch(data, 764, "<H", 5))


@pytest.mark.parametrize("inner", [0, 6, 7, 8, 0xFFFF])
def test_rejects_nested_or_unknown_inner_certification_type(inner: int) -> None:
    with pytest.raises(QuoteFormatError, match="certification data type at offset 1252"):
        parse_quote(_patch(_sample(), 1252, "<H", inner))


@pytest.mark.parametrize("cert_type", [6, 7])
def test_rejects_v3_certification_type_6_or_7(cert_type: int) -> None:
    data = _sample(3, TEE_SGX)
    with pytest.raises(QuoteFormatError, match="offset 1046"):
        parse_quote(_patch(data, 1046, "<H", cert_type))


def test_rejects_length_fields_pointing_past_the_end() -> None:
    data = _sample()
    for offset in (632, 766, 1218, 1254):  # sig data, outer size, auth size, inner size
        fmt = "<H" if offset == 1218 else "<I"
        with pytest.raises(QuoteFormatError, match="truncated|unparsed|type at offset 1253"):
            parse_quote(_patch(data, offset, fmt, struct.unpack_from(fmt, data, offset)[0] + 1))


def test_rejects_declared_data_not_consumed_exactly() -> None:
    data = _sample() + bytes(10)  # trailing bytes are fine...
    assert parse_quote(data).trailing == 10
    grown = _patch(data, 632, "<I", struct.unpack_from("<I", data, 632)[0] + 10)
    with pytest.raises(QuoteFormatError, match="signature data has 10 unparsed bytes"):
        parse_quote(grown)  # ...but not inside the declared signature data
    inner_short = _patch(data, 1254, "<I", 1)
    with pytest.raises(QuoteFormatError, match="QE report certification data has 1 unparsed"):
        parse_quote(inner_short)


def test_rejects_oversized_certification_data() -> None:
    big = _sample(4, TEE_TDX, cert_data=b"\x30\x00") + bytes(70000)
    with pytest.raises(QuoteFormatError, match="over the 65536-byte limit"):
        parse_quote(_patch(_patch(_patch(big, 1254, "<I", 65537), 766, "<I", 65537 + 488),
                           632, "<I", 65537 + 488 + 134))  # fmt: skip


def test_rejects_every_truncation_of_a_quote() -> None:
    data = _sample(5, TEE_TDX)
    for cut in range(len(data)):
        with pytest.raises(QuoteFormatError):
            parse_quote(data[:cut])


def test_rejects_non_bytes_input() -> None:
    with pytest.raises(QuoteFormatError, match="must be bytes"):
        parse_quote("0300")  # type: ignore[arg-type]


def test_parser_does_not_check_qe_vendor_id() -> None:
    data = _patch(_sample(), 12, "<I", 0)
    assert parse_quote(data).header.qe_vendor_id != INTEL_QE_VENDOR_ID


# --------------------------------------------------------------------- certification data


def _der_cert() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Intel SGX PCK Certificate")])
    ext = PckExtension(
        ppid=b"\x01" * 16, tcb_components=(255, 128, 127, 0) + (1,) * 12, pcesvn=0x1234,
        cpusvn=bytes(16), pce_id=b"\0\0", fmspc=bytes.fromhex("00A067110000"), sgx_type=2,
        platform_instance_id=b"\x07" * 16, dynamic_platform=False, smt_enabled=True,
    )  # fmt: skip
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(dt.datetime(2024, 1, 1))
        .not_valid_after(dt.datetime(2034, 1, 1))
        .add_extension(x509.UnrecognizedExtension(ObjectIdentifier(PCK_EXTENSION_OID),
                                                  encode_pck_extension(ext)), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    assert parse_pck_extension(cert) == ext
    return cert.public_bytes(Encoding.DER)


def test_pck_chain_accepts_pem_with_nuls_and_concatenated_der() -> None:
    der = _der_cert()
    pem = x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)
    assert CertificationData(5, pem * 2 + b"\0\0\0").pck_chain_der() == [der, der]
    assert CertificationData(4, pem).pck_chain_der() == [der]
    assert CertificationData(5, der + der + b"\0").pck_chain_der() == [der, der]
    ends_in_nul = b"\x30\x03\x02\x01\x00"  # a DER element whose last byte is 00
    assert CertificationData(5, ends_in_nul * 2 + b"\0\0").pck_chain_der() == [ends_in_nul] * 2


@pytest.mark.parametrize(
    "data",
    [b"", b"\0\0", b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
     b"junk\n-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
     b"-----BEGIN CERTIFICATE-----\nMAA=\n", b"\x30\x05\x00", b"\x04\x00",
     b"-----BEGIN CERTIFICATE-----\nMAAwAA==\n-----END CERTIFICATE-----\n"],
)  # fmt: skip
def test_rejects_unparsable_pck_chain(data: bytes) -> None:
    with pytest.raises(QuoteFormatError):
        CertificationData(5, data).pck_chain_der()


def test_pck_cert_id_forms() -> None:
    cid = CertificationData(3, b"\x01" * 384 + b"\x02" * 16 + b"\x05\x00\x01\x00").pck_cert_id()
    assert (len(cid.ppid), cid.cpusvn, cid.pcesvn, cid.pce_id) == (384, b"\2" * 16, 5, b"\1\0")
    with pytest.raises(QuoteFormatError, match="must be 34 or 36"):
        CertificationData(1, bytes(35)).pck_cert_id()
    with pytest.raises(QuoteFormatError, match="no PCK cert ID"):
        CertificationData(5, b"").pck_cert_id()


# ------------------------------------------------------------------------- PCK extension


def _ext(**changes: object) -> PckExtension:
    base = PckExtension(
        ppid=bytes(16), tcb_components=(11, 11, 2, 2, 255, 1) + (0,) * 10, pcesvn=13,
        cpusvn=bytes.fromhex("0b0b0202ff01") + bytes(10), pce_id=b"\0\0",
        fmspc=bytes.fromhex("00A067110000"), sgx_type=0,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_pck_extension_round_trips_and_encodes_255_as_two_bytes() -> None:
    for ext in (_ext(), _ext(platform_instance_id=b"\1" * 16, cached_keys=True, sgx_type=1)):
        value = encode_pck_extension(ext)
        assert parse_pck_extension_der(value) == ext
    assert b"\x02\x02\x00\xff" in encode_pck_extension(_ext())


def test_rejects_certificate_without_sgx_extension() -> None:
    root = DCAP / "intel_sgx_root_ca.pem"
    if not root.is_file():
        pytest.skip("Intel root certificate not found")
    cert = x509.load_pem_x509_certificate(root.read_bytes())
    with pytest.raises(QuoteFormatError, match=r"no SGX extension \(OID 1\.2\.840\.113741"):
        parse_pck_extension(cert)


def _swap(value: bytes, old: bytes, new: bytes) -> bytes:
    assert value.count(old) == 1
    return value.replace(old, new)


def test_rejects_malformed_pck_extension_values() -> None:
    value = encode_pck_extension(_ext())
    fmspc_pair = _der.tlv(0x30, _der.encode_oid(PCK_EXTENSION_OID + ".4")
                          + _der.tlv(4, bytes.fromhex("00A067110000")))  # fmt: skip
    cases = {
        "duplicate OID": _der.tlv(0x30, value[2:] + fmspc_pair),
        "missing FMSPC": _swap(value, fmspc_pair, b""),
        "short FMSPC": _swap(
            value,
            fmspc_pair,
            _der.tlv(0x30, _der.encode_oid(PCK_EXTENSION_OID + ".4") + _der.tlv(4, b"\0" * 5)),
        ),
        "non-minimal integer": _swap(value, b"\x02\x02\x00\xff", b"\x02\x02\x00\x7f"),
        "trailing bytes": value + b"\0",
        "indefinite length": b"\x30\x80" + value[2:] + b"\0\0",
        "wrong tag for PCESVN": _swap(value, b"\x11\x02\x01\x0d", b"\x11\x04\x01\x0d"),
        "not a sequence": b"\x04\x00",
        "empty": b"",
    }
    for name, bad in cases.items():
        with pytest.raises(QuoteFormatError):
            parse_pck_extension_der(bad)
        assert name


def test_der_reader_limits_nesting_depth() -> None:
    deep = b"\x05\x00"
    for _ in range(2000):
        deep = _der.tlv(0x30, deep)
    with pytest.raises(QuoteFormatError, match="too deep"):
        _der.parse(deep)
    with pytest.raises(QuoteFormatError):
        parse_pck_extension_der(deep)


def test_der_oid_and_integer_codecs() -> None:
    for oid in (PCK_EXTENSION_OID, "2.999.1", "0.0", "1.2.840.10045.4.3.2"):
        assert _der.decode_oid(_der.parse(_der.encode_oid(oid))) == oid
    for n in (0, 1, 127, 128, 255, 256, 0xFFFF, -1, -128, -129):
        assert _der.decode_integer(_der.parse(_der.encode_integer(n))) == n
    with pytest.raises(QuoteFormatError):
        _der.decode_oid(_der.parse(b"\x06\x02\x80\x01"))
    with pytest.raises(QuoteFormatError):
        _der.decode_boolean(_der.parse(b"\x01\x01\x01"))
    with pytest.raises(QuoteFormatError, match="not minimally"):
        _der.parse(b"\x04\x81\x05" + bytes(5))
