"""The simulated DCAP platform: state on disk, PKI shape, collateral format, quotes.

The key interop proof is that dcap-qvl (Phala's Rust verifier, an independent
implementation of Intel's rules) accepts our quotes and collateral under the simulated root
with the status we asked for, and that Intel's real root rejects them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import urllib.parse
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtensionOID, NameOID

from enklave.backends.simulation import TCB_SITUATIONS, SimPlatform
from enklave.collateral import Collateral
from enklave.errors import PlatformError
from enklave.models.pck import PCK_EXTENSION_OID, parse_pck_extension
from enklave.models.quote import TEE_TDX, parse_quote

REPO = Path(__file__).resolve().parents[2]
INTEL_ROOT = REPO.parent / "shared" / "testvectors" / "dcap" / "intel_sgx_root_ca.pem"
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z, pinned
DAY = 86400
STATUSES = [s for s in TCB_SITUATIONS if s != "Revoked"]
ADVISORIES = {
    "UpToDate": [],
    "ConfigurationNeeded": ["INTEL-SA-00289"],
    "SWHardeningNeeded": ["INTEL-SA-00615"],
    "ConfigurationAndSWHardeningNeeded": ["INTEL-SA-00289", "INTEL-SA-00615"],
    "OutOfDate": ["INTEL-SA-00828", "INTEL-SA-00960", "INTEL-SA-00615"],
    "OutOfDateConfigurationNeeded": [
        "INTEL-SA-00289", "INTEL-SA-00828", "INTEL-SA-00960", "INTEL-SA-00615",
    ],
}
ENCLAVE = {"mrenclave": b"\x11" * 32, "mrsigner": b"\x22" * 32, "isv_prod_id": 7, "isv_svn": 3}

dcap_qvl = pytest.importorskip("dcap_qvl")


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SimPlatform]:
    """One platform per TCB situation (plus a revoked one), created lazily."""

    class Lazy(dict[str, SimPlatform]):
        def __missing__(self, key: str) -> SimPlatform:
            tcb, _, revoked = key.partition("+")
            home = tmp_path_factory.mktemp(key.replace("+", "_"))
            made = SimPlatform.init(home, tcb=tcb, revoked=revoked == "revoked", now=NOW)
            self[key] = made
            return made

    return Lazy()


def _quote(platform: SimPlatform, version: int = 3, debug: bool = False) -> bytes:
    return platform.quote(bytes(range(64)), debug=debug, version=version, **ENCLAVE)


def _qvl(platform: SimPlatform, quote: bytes, tee: str = "sgx", root: bytes | None = None):
    coll = dcap_qvl.QuoteCollateralV3.from_json(platform.collateral(tee=tee, now=NOW).to_json())
    root_der = root or platform.root_certificate.public_bytes(serialization.Encoding.DER)
    return dcap_qvl.verify_with_root_ca(quote, coll, root_der, NOW)


def _verify_raw(cert: x509.Certificate, signature: bytes, data: bytes) -> None:
    der = encode_dss_signature(int.from_bytes(signature[:32]), int.from_bytes(signature[32:]))
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(der, data, ec.ECDSA(hashes.SHA256()))


# --- state on disk -------------------------------------------------------------------------


def test_init_creates_private_key_files_and_private_directory(tmp_path: Path) -> None:
    platform = SimPlatform.init(tmp_path, now=NOW)
    directory = tmp_path / "dcap"
    assert platform.directory == directory
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    keys = sorted(p.name for p in directory.glob("*.key"))
    assert keys == ["pck-processor-ca.key", "pck.key", "qe-attestation.key", "root-ca.key",
                    "tcb-signing.key"]
    for path in directory.iterdir():
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o600 if path.suffix == ".key" else 0o644), path
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_load_round_trips_the_platform(tmp_path: Path) -> None:
    first = SimPlatform.init(tmp_path, tcb="OutOfDate", now=NOW)
    again = SimPlatform.load(tmp_path)
    assert again.root_certificate_pem == first.root_certificate_pem
    assert again.fmspc == first.fmspc and again.tcb == "OutOfDate"
    assert again.collateral(now=NOW) == first.collateral(now=NOW)
    assert again.info() == first.info()
    _qvl(again, _quote(again))  # keys survived too


def test_init_keeps_existing_state_unless_forced(tmp_path: Path) -> None:
    first = SimPlatform.init(tmp_path, now=NOW)
    kept = SimPlatform.init(tmp_path, tcb="OutOfDate", now=NOW)
    assert kept.root_certificate_pem == first.root_certificate_pem and kept.tcb == "UpToDate"
    forced = SimPlatform.init(tmp_path, tcb="OutOfDate", force=True, now=NOW)
    assert forced.root_certificate_pem != first.root_certificate_pem
    assert SimPlatform.load(tmp_path).tcb == "OutOfDate"


def test_concurrent_init_yields_one_platform(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        made = list(pool.map(lambda _: SimPlatform.init(tmp_path, now=NOW), range(8)))
    roots = {p.root_certificate_pem for p in made}
    assert roots == {SimPlatform.load(tmp_path).root_certificate_pem}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_validity_windows_follow_now(tmp_path: Path) -> None:
    info = SimPlatform.init(tmp_path, now=NOW).info()
    for cert in info["certificates"].values():  # type: ignore[attr-defined]
        assert cert["not_before"] == "2025-12-31T00:00:00Z"
    assert info["collateral_next_update"] == "2026-01-30T23:00:00Z"


def test_load_without_init_says_to_run_sim_init(tmp_path: Path) -> None:
    with pytest.raises(PlatformError, match="enklave sim init"):
        SimPlatform.load(tmp_path)


def test_rejects_group_readable_private_key(tmp_path: Path) -> None:
    SimPlatform.init(tmp_path, now=NOW)
    os.chmod(tmp_path / "dcap" / "pck.key", 0o640)
    with pytest.raises(PlatformError, match="chmod 600"):
        SimPlatform.load(tmp_path)


def test_rejects_symlinked_private_key(tmp_path: Path) -> None:
    SimPlatform.init(tmp_path, now=NOW)
    key = tmp_path / "dcap" / "root-ca.key"
    moved = tmp_path / "elsewhere.key"
    key.rename(moved)
    key.symlink_to(moved)
    with pytest.raises(PlatformError, match="symlink"):
        SimPlatform.load(tmp_path)


@pytest.mark.parametrize(
    ("name", "content"),
    [("platform.json", b"{not json"), ("pck.pem", b"garbage"), ("tcb-info-sgx.json", b"{}"),
     ("qe-attestation.key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")],
)
def test_rejects_corrupt_state_file(tmp_path: Path, name: str, content: bytes) -> None:
    SimPlatform.init(tmp_path, now=NOW)
    (tmp_path / "dcap" / name).write_bytes(content)
    with pytest.raises(PlatformError, match="init --force|malformed|corrupt"):
        SimPlatform.load(tmp_path)


def test_rejects_unknown_tcb_situation(tmp_path: Path) -> None:
    with pytest.raises(PlatformError, match="UpToDate"):
        SimPlatform.init(tmp_path, tcb="Fine")
    assert not (tmp_path / "dcap").exists()


def test_reconfigure_keeps_root_and_reissues_pck(tmp_path: Path) -> None:
    platform = SimPlatform.init(tmp_path, now=NOW)
    root, pck = platform.root_certificate_pem, platform.info()["certificates"]
    platform.reconfigure(tcb="SWHardeningNeeded", revoked=True, now=NOW)
    assert platform.root_certificate_pem == root
    assert platform.info()["certificates"] != pck
    loaded = SimPlatform.load(tmp_path)
    assert (loaded.tcb, loaded.revoked) == ("SWHardeningNeeded", True)


def test_collateral_is_resigned_when_expired(tmp_path: Path) -> None:
    platform = SimPlatform.init(tmp_path, now=NOW)
    old = json.loads(platform.collateral(now=NOW).tcb_info)
    later = NOW + 40 * DAY
    fresh = json.loads(platform.collateral(now=later).tcb_info)
    assert old["issueDate"] == "2025-12-31T23:00:00Z"
    assert fresh["issueDate"] == "2026-02-09T23:00:00Z"
    assert json.loads(SimPlatform.load(tmp_path).collateral(now=later).tcb_info) == fresh


def test_info_says_simulated_not_intel(platforms: dict[str, SimPlatform]) -> None:
    info = platforms["UpToDate"].info()
    assert info["simulated"] is True and "NOT Intel" in str(info["notice"])
    assert info["fmspc"] == platforms["UpToDate"].fmspc.hex().upper()
    assert info["pce_id"] == "0000" and info["tcb"] == "UpToDate"
    json.dumps(info)


# --- PKI and collateral shape -------------------------------------------------------------


def _cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_certificates_mirror_intel_shape_with_simulated_names(
    platforms: dict[str, SimPlatform],
) -> None:
    platform = platforms["UpToDate"]
    quote = parse_quote(_quote(platform))
    leaf, ca, root = (x509.load_der_x509_certificate(d)
                      for d in quote.certification.pck_chain_der())
    signer = x509.load_pem_x509_certificate(
        platform.collateral(now=NOW).tcb_info_issuer_chain.encode()
    )
    for cert, needle in ((root, "SGX Root CA"), (ca, "SGX PCK Processor CA"),
                         (leaf, "SGX PCK Certificate"), (signer, "SGX TCB Signing")):
        assert needle in _cn(cert) and "SIMULATED" in _cn(cert)
        assert "NOT Intel" in cert.subject.rfc4514_string()
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
        oids = [e.oid for e in cert.extensions]
        assert oids[:5] == [ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
                            ExtensionOID.CRL_DISTRIBUTION_POINTS,
                            ExtensionOID.SUBJECT_KEY_IDENTIFIER, ExtensionOID.KEY_USAGE,
                            ExtensionOID.BASIC_CONSTRAINTS]
        assert cert.extensions.get_extension_for_class(x509.KeyUsage).critical
    assert root == platform.root_certificate
    for child, parent in ((leaf, ca), (ca, root), (signer, root), (root, root)):
        child.verify_directly_issued_by(parent)
        aki = child.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ski = parent.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert aki.key_identifier == ski.digest
    basic = {c: c.extensions.get_extension_for_class(x509.BasicConstraints).value
             for c in (root, ca, leaf)}
    assert (basic[root].ca, basic[root].path_length) == (True, 1)
    assert (basic[ca].ca, basic[ca].path_length) == (True, 0)
    assert not basic[leaf].ca
    ext = parse_pck_extension(leaf)
    assert ext.fmspc == platform.fmspc and ext.pce_id == bytes(2)
    assert not leaf.extensions.get_extension_for_oid(
        x509.ObjectIdentifier(PCK_EXTENSION_OID)).critical


def test_tcb_info_is_intel_shaped_compact_json_signed_over_exact_bytes(
    platforms: dict[str, SimPlatform],
) -> None:
    platform = platforms["UpToDate"]
    collateral = platform.collateral(now=NOW)
    text = collateral.tcb_info
    doc = json.loads(text)
    assert text == json.dumps(doc, separators=(",", ":"))
    assert list(doc) == ["id", "version", "issueDate", "nextUpdate", "fmspc", "pceId",
                         "tcbType", "tcbEvaluationDataNumber", "tcbLevels"]
    assert (doc["id"], doc["version"], doc["fmspc"]) == ("SGX", 3, platform.fmspc.hex().upper())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["issueDate"])
    assert [lvl["tcbStatus"] for lvl in doc["tcbLevels"]] == list(TCB_SITUATIONS)
    assert list(doc["tcbLevels"][1]) == ["tcb", "tcbDate", "tcbStatus", "advisoryIDs"]
    assert all(len(lvl["tcb"]["sgxtcbcomponents"]) == 16 for lvl in doc["tcbLevels"])
    signer = x509.load_pem_x509_certificate(collateral.tcb_info_issuer_chain.encode())
    _verify_raw(signer, collateral.tcb_info_signature, text.encode())
    _verify_raw(signer, collateral.qe_identity_signature, collateral.qe_identity.encode())
    qe = json.loads(collateral.qe_identity)
    assert list(qe)[:6] == ["id", "version", "issueDate", "nextUpdate",
                            "tcbEvaluationDataNumber", "miscselect"]
    assert (qe["id"], qe["version"], qe["isvprodid"]) == ("QE", 2, 1)
    assert qe["mrsigner"] != "8C4F5775D796503E96137F77C68A829A0056AC8DED70140B081B094490C57BFF"


def test_crls_are_signed_by_their_cas_and_list_a_revoked_pck(
    platforms: dict[str, SimPlatform],
) -> None:
    platform = platforms["UpToDate+revoked"]
    coll = platform.collateral(now=NOW)
    ca = x509.load_pem_x509_certificate(coll.pck_crl_issuer_chain.encode())
    pck_crl = x509.load_der_x509_crl(coll.pck_crl)
    root_crl = x509.load_der_x509_crl(coll.root_ca_crl)
    assert pck_crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    assert root_crl.is_signature_valid(platform.root_certificate.public_key())  # type: ignore[arg-type]
    assert pck_crl.issuer == ca.subject and len(root_crl) == 0
    leaf = x509.load_der_x509_certificate(
        parse_quote(_quote(platform)).certification.pck_chain_der()[0])
    assert pck_crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None
    assert pck_crl.next_update_utc is not None and pck_crl.last_update_utc is not None
    assert (pck_crl.next_update_utc - pck_crl.last_update_utc).days == 30


def test_pcs_responses_carry_the_same_collateral(platforms: dict[str, SimPlatform]) -> None:
    platform = platforms["UpToDate"]
    pcs = platform.pcs_responses(now=NOW)
    coll = platform.collateral(now=NOW)
    assert pcs.tcb_info.body.startswith(b'{"tcbInfo":' + coll.tcb_info.encode())
    assert pcs.tcb_info.content_type == "application/json"
    # Headers are URL-encoded PEM exactly as Intel sends them: "-----BEGIN%20CERTIFICATE-----%0A"
    header = pcs.tcb_info.headers["TCB-Info-Issuer-Chain"]
    assert header.startswith("-----BEGIN%20CERTIFICATE-----%0A")
    rebuilt = Collateral.from_pcs_responses(
        tcb_info_response=pcs.tcb_info.body, qe_identity_response=pcs.qe_identity.body,
        tcb_info_issuer_chain=urllib.parse.unquote(header),
        qe_identity_issuer_chain=urllib.parse.unquote(
            pcs.qe_identity.headers["SGX-Enclave-Identity-Issuer-Chain"]),
        pck_crl=pcs.pck_crl.body,
        pck_crl_issuer_chain=urllib.parse.unquote(pcs.pck_crl.headers["SGX-PCK-CRL-Issuer-Chain"]),
        root_ca_crl=pcs.root_ca_crl.body,
    )
    assert rebuilt == coll
    chain = urllib.parse.unquote(pcs.pck_certificate.headers["SGX-PCK-Certificate-Issuer-Chain"])
    assert chain == coll.pck_crl_issuer_chain
    assert pcs.fmspc == platform.fmspc.hex().upper()
    assert set(pcs.routes()) >= {"/sgx/certification/v4/tcb", "/sgx/certification/v4/pckcrl"}
    assert b'"id":"TDX"' in platform.pcs_responses(tee="tdx", now=NOW).tcb_info.body


# --- quotes -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [3, 4])
def test_quote_is_real_format_and_binds_the_attestation_key(
    platforms: dict[str, SimPlatform], version: int,
) -> None:
    platform = platforms["UpToDate"]
    quote = parse_quote(_quote(platform, version=version))
    assert quote.header.version == version and quote.tee == "sgx"
    assert quote.body.mrenclave == ENCLAVE["mrenclave"]  # type: ignore[union-attr]
    assert quote.report_data == bytes(range(64)) and not quote.body.debug
    binding = hashlib.sha256(quote.attestation_key + quote.qe_auth_data).digest()
    assert quote.qe_report.report_data == binding + bytes(32)
    assert len(quote.qe_auth_data) == 32 and quote.certification.cert_type == 5
    assert quote.certification.data.endswith(b"-----END CERTIFICATE-----\n\x00")
    leaf = x509.load_der_x509_certificate(quote.certification.pck_chain_der()[0])
    _verify_raw(leaf, quote.qe_report_signature, quote.qe_report.to_bytes())


def test_debug_quote_sets_the_debug_attribute(platforms: dict[str, SimPlatform]) -> None:
    assert parse_quote(_quote(platforms["UpToDate"], debug=True)).body.debug


@pytest.mark.parametrize(
    ("change", "message"),
    [({"report_data": b"short"}, "report_data"), ({"mrenclave": b"x"}, "mrenclave"),
     ({"isv_svn": 70000}, "isv_svn"), ({"version": 5}, "version"), ({"tee": "tdx"}, "td_quote"),
     ({"attributes": bytes(16), "debug": True}, "DEBUG")],
)
def test_quote_rejects_bad_arguments(
    platforms: dict[str, SimPlatform], change: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"report_data": bytes(64), "debug": False, **ENCLAVE, **change}
    report_data = args.pop("report_data")
    with pytest.raises(PlatformError, match=message):
        platforms["UpToDate"].quote(report_data, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("tcb", STATUSES)
def test_dcap_qvl_verifies_sgx_quote_with_the_chosen_status(
    platforms: dict[str, SimPlatform], tcb: str
) -> None:
    report = _qvl(platforms[tcb], _quote(platforms[tcb]))
    assert report.status == tcb
    assert list(report.advisory_ids) == ADVISORIES[tcb]


def test_dcap_qvl_verifies_td_quote(platforms: dict[str, SimPlatform]) -> None:
    platform = platforms["SWHardeningNeeded"]
    raw = platform.td_quote(b"\x07" * 64, mr_td=b"\x33" * 48, debug=False)
    quote = parse_quote(raw)
    assert quote.header.tee_type == TEE_TDX and quote.body.mr_td == b"\x33" * 48  # type: ignore[union-attr]
    report = _qvl(platform, raw, tee="tdx")
    assert (report.status, list(report.advisory_ids)) == ("SWHardeningNeeded", ["INTEL-SA-00615"])


def test_dcap_qvl_rejects_revoked_tcb_level(platforms: dict[str, SimPlatform]) -> None:
    with pytest.raises(ValueError, match="Revoked"):
        _qvl(platforms["Revoked"], _quote(platforms["Revoked"]))


def test_dcap_qvl_rejects_revoked_pck_certificate(platforms: dict[str, SimPlatform]) -> None:
    platform = platforms["UpToDate+revoked"]
    with pytest.raises(ValueError, match="(?i)revoked"):
        _qvl(platform, _quote(platform))


def test_dcap_qvl_rejects_simulated_quote_under_intel_root(
    platforms: dict[str, SimPlatform],
) -> None:
    if not INTEL_ROOT.exists():
        pytest.skip("Intel root vector missing")
    intel = x509.load_pem_x509_certificate(INTEL_ROOT.read_bytes())
    platform = platforms["UpToDate"]
    with pytest.raises(ValueError):
        _qvl(platform, _quote(platform), root=intel.public_bytes(serialization.Encoding.DER))


def test_dcap_qvl_rejects_quote_from_another_simulated_platform(
    platforms: dict[str, SimPlatform],
) -> None:
    other = platforms["OutOfDate"]
    root = other.root_certificate.public_bytes(serialization.Encoding.DER)
    with pytest.raises(ValueError):
        _qvl(platforms["UpToDate"], _quote(platforms["UpToDate"]), root=root)


# --- our verifier (enklave.verify.DcapVerifier) ---------------------------------------------


def _dcap():  # type: ignore[no-untyped-def]
    verify = pytest.importorskip("enklave.verify")
    if not hasattr(verify, "DcapVerifier"):
        pytest.skip("enklave.verify.DcapVerifier not available yet")
    return verify.DcapVerifier


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("tcb", STATUSES)
def test_verifier_gives_the_chosen_status(
    platforms: dict[str, SimPlatform], tcb: str, version: int
) -> None:
    verifier = _dcap()(platforms[tcb].root_certificate_pem, simulated=True)
    result = verifier.verify(_quote(platforms[tcb], version=version),
                             platforms[tcb].collateral(now=NOW), now=NOW)
    assert result.status == tcb
    assert sorted(result.advisory_ids) == sorted(ADVISORIES[tcb])
    assert result.fmspc == platforms[tcb].fmspc and result.simulated


def test_verifier_agrees_with_dcap_qvl_on_td_quote(platforms: dict[str, SimPlatform]) -> None:
    platform = platforms["OutOfDate"]
    raw = platform.td_quote(bytes(64), mr_td=bytes(48), debug=False)
    result = _dcap()(platform.root_certificate_pem, simulated=True).verify(
        raw, platform.collateral(tee="tdx", now=NOW), now=NOW)
    assert result.status == _qvl(platform, raw, tee="tdx").status == "OutOfDate"
    assert result.tee == "tdx"


def test_verifier_rejects_revoked_pck(platforms: dict[str, SimPlatform]) -> None:
    from enklave.errors import VerificationError

    platform = platforms["UpToDate+revoked"]
    verifier = _dcap()(platform.root_certificate_pem, simulated=True)
    with pytest.raises(VerificationError) as info:
        verifier.verify(_quote(platform), platform.collateral(now=NOW), now=NOW)
    assert info.value.code == "pck_revoked"


def test_verifier_rejects_revoked_tcb_level(platforms: dict[str, SimPlatform]) -> None:
    from enklave.errors import VerificationError

    platform = platforms["Revoked"]
    verifier = _dcap()(platform.root_certificate_pem, simulated=True)
    with pytest.raises(VerificationError) as info:
        verifier.verify(_quote(platform), platform.collateral(now=NOW), now=NOW)
    assert info.value.code == "tcb_revoked"


def test_verifier_rejects_collateral_past_next_update(platforms: dict[str, SimPlatform]) -> None:
    from enklave.errors import CollateralExpired

    platform = platforms["UpToDate"]
    verifier = _dcap()(platform.root_certificate_pem, simulated=True)
    with pytest.raises(CollateralExpired):
        verifier.verify(_quote(platform), platform.collateral(now=NOW), now=NOW + 31 * DAY)


def test_verifier_rejects_simulated_quote_under_intel_root(
    platforms: dict[str, SimPlatform],
) -> None:
    from enklave.errors import VerificationError

    if not INTEL_ROOT.exists():
        pytest.skip("Intel root vector missing")
    verifier = _dcap()(INTEL_ROOT.read_bytes())
    platform = platforms["UpToDate"]
    with pytest.raises(VerificationError) as info:
        verifier.verify(_quote(platform), platform.collateral(now=NOW), now=NOW)
    assert info.value.code == "untrusted_root"
