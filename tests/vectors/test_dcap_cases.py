"""Real SGX/TDX quotes + collateral (testvectors/dcap/cases.json) under Intel QVL rules."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from datetime import UTC, datetime

import pytest

from enklave.collateral import Collateral, split_signed_json
from enklave.errors import CollateralError, CollateralExpired, VerificationError
from enklave.models.tcb import EnclaveIdentity, EnclaveTcbLevel, TcbInfo
from enklave.verify import DcapResult, DcapVerifier
from enklave.verify._tcb import evaluate_tcb, intel_level_order

from ._diff import DCAP, load_cases, load_quote

pytestmark = pytest.mark.skipif(not DCAP.exists(), reason="shared test vectors are absent")

CASES = load_cases()
INTEL = DCAP / "SGX-TDX-DCAP-QuoteVerificationLibrary" / "sampleData"
SGX_CASE = "dcapqvl-sgx-v3-2025-06"
MISMATCH_CODES = {"tcb_info_mismatch", "qe_identity_mismatch", "invalid_pck_crl"}


def _case(case_id: str) -> dict:
    return next(c for c in CASES if c["id"] == case_id)


def _inputs(case: dict) -> tuple[bytes, Collateral, bytes]:
    quote = load_quote(DCAP / case["quote"])
    collateral = Collateral.from_json((DCAP / case["collateral"]).read_text())
    return quote, collateral, (DCAP / case["root_ca"]).read_bytes()


def _expected_codes(error: str) -> set[str]:
    if "TCB_NOT_SUPPORTED" in error:
        return {"tcb_not_supported"}
    if "collateral does not belong to this quote" in error:
        return MISMATCH_CODES
    raise AssertionError(f"no error-code mapping for expected error {error!r}")


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case_gives_expected_outcome(case: dict) -> None:
    quote, collateral, root = _inputs(case)
    assert hashlib.sha256(quote).hexdigest() == case["quote_sha256"]
    verifier = DcapVerifier(root)
    expected = case["expected"]
    if "error" in expected:
        with pytest.raises(VerificationError) as info:
            verifier.verify(quote, collateral, now=case["now"])
        assert info.value.code in _expected_codes(expected["error"])
        return
    result = verifier.verify(quote, collateral, now=case["now"])
    assert result.status == expected["status"]
    assert sorted(result.advisory_ids) == sorted(expected["advisory_ids"])
    assert result.collateral_expired is False
    if expected.get("debug"):
        assert result.quote.body.debug is True


def _intel_sample_collateral(*, with_chain: bool = True) -> Collateral:
    chain = (INTEL / "pckCert.pem").read_text() + (INTEL / "pckSignChain.pem").read_text()
    return Collateral.from_pcs_responses(
        tcb_info_response=(INTEL / "tcbInfo.json").read_text(),
        qe_identity_response=(INTEL / "qeIdentity.json").read_text(),
        tcb_info_issuer_chain=(INTEL / "tcbSignChain.pem").read_text(),
        qe_identity_issuer_chain=(INTEL / "tcbSignChain.pem").read_text(),
        pck_crl=(INTEL / "intermediateCaCrl.der").read_bytes(),
        pck_crl_issuer_chain=(INTEL / "pckSignChain.pem").read_text(),
        root_ca_crl=(INTEL / "rootCaCrl.der").read_bytes(),
        pck_certificate_chain=chain if with_chain else None,
    )


INTEL_NOW = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())


def test_intel_test_pki_sample_verifies_with_its_own_root() -> None:
    # Type-1 quote (PPID only), TCB Info v2, QE Identity with non-zero MISCSELECT.
    verifier = DcapVerifier((INTEL / "trustedRootCaCert.pem").read_bytes())
    result = verifier.verify(
        (INTEL / "quote.dat").read_bytes(), _intel_sample_collateral(), now=INTEL_NOW
    )
    assert result.status == "UpToDate"
    assert result.tcb_date == "2019-09-01T00:00:00Z"
    assert result.advisory_ids == ()
    assert result.quote.certification.cert_type == 1


def test_rejects_ppid_only_quote_without_pck_chain() -> None:
    verifier = DcapVerifier((INTEL / "trustedRootCaCert.pem").read_bytes())
    with pytest.raises(VerificationError) as info:
        verifier.verify(
            (INTEL / "quote.dat").read_bytes(),
            _intel_sample_collateral(with_chain=False),
            now=INTEL_NOW,
        )
    assert info.value.code == "unsupported_quote"
    assert "pck_certificate_chain" in str(info.value)


def test_rejects_real_quote_under_another_root() -> None:
    quote, collateral, _ = _inputs(_case(SGX_CASE))
    verifier = DcapVerifier((INTEL / "trustedRootCaCert.pem").read_bytes())
    with pytest.raises(VerificationError) as info:
        verifier.verify(quote, collateral, now=_case(SGX_CASE)["now"])
    assert info.value.code == "untrusted_root"
    assert "pass the right root" in str(info.value)


@pytest.fixture(scope="module")
def sgx() -> tuple[bytes, Collateral, DcapVerifier, int]:
    quote, collateral, root = _inputs(_case(SGX_CASE))
    return quote, collateral, DcapVerifier(root), _case(SGX_CASE)["now"]


def test_expired_collateral_raises_in_strict_mode(sgx) -> None:
    quote, collateral, verifier, _ = sgx
    later = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp())
    with pytest.raises(CollateralExpired, match="expired at"):
        verifier.verify(quote, collateral, now=later)


def test_not_yet_valid_collateral_raises_in_strict_mode(sgx) -> None:
    quote, collateral, verifier, now = sgx
    with pytest.raises(CollateralExpired, match="not valid before"):
        verifier.verify(quote, collateral, now=now - 60 * 86400)


def test_report_mode_flags_expired_collateral(sgx) -> None:
    quote, collateral, verifier, now = sgx
    later = datetime(2100, 1, 1, tzinfo=UTC)
    flagged = verifier.verify(quote, collateral, now=later, expiry="report")
    fresh = verifier.verify(quote, collateral, now=now, expiry="report")
    assert flagged.collateral_expired is True and fresh.collateral_expired is False
    assert flagged.earliest_expiration == fresh.earliest_expiration
    assert flagged.earliest_expiration.timestamp() == now + 1  # case now = min(nextUpdate) - 1
    assert dataclasses.replace(flagged, collateral_expired=False) == fresh


def test_warm_verify_repeats_the_same_result(sgx) -> None:
    quote, collateral, verifier, now = sgx
    first = verifier.verify(quote, collateral, now=now)
    again = verifier.verify(quote, Collateral.from_json(collateral.to_json()), now=now)
    assert first == again


def test_result_json_summary(sgx) -> None:
    quote, collateral, verifier, now = sgx
    summary = verifier.verify(quote, collateral, now=now).to_json_dict()
    json.dumps(summary)
    assert summary["tee"] == "sgx" and summary["fmspc"] == "00a067110000"
    assert bytes.fromhex(summary["report_data"]).startswith(b"Hello, world!")
    assert {"mrenclave", "mrsigner", "isv_prod_id", "isv_svn", "debug"} <= set(summary)


def test_tdx_result_json_summary() -> None:
    case = _case("dcapqvl-tdx-v4-2025-06")
    quote, collateral, root = _inputs(case)
    result: DcapResult = DcapVerifier(root).verify(quote, collateral, now=case["now"])
    summary = result.to_json_dict()
    assert summary["tee"] == "tdx" and len(summary["rtmrs"]) == 4
    assert {"mrtd", "mr_config_id", "mr_owner", "td_attributes"} <= set(summary)
    assert result.qe_status == "UpToDate" and result.tdx_module_status == "UpToDate"


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 1]) + data[offset + 1 :]


def test_rejects_tampered_report_data(sgx) -> None:
    quote, collateral, verifier, now = sgx
    with pytest.raises(VerificationError) as info:
        verifier.verify(_flip(quote, 48 + 320), collateral, now=now)
    assert info.value.code == "invalid_quote_signature"


def test_rejects_swapped_attestation_key(sgx) -> None:
    quote, collateral, verifier, now = sgx
    with pytest.raises(VerificationError) as info:
        verifier.verify(_flip(quote, 436 + 64 + 5), collateral, now=now)
    assert info.value.code in ("invalid_qe_report_data", "unsupported_quote")


def test_rejects_forged_qe_report(sgx) -> None:
    quote, collateral, verifier, now = sgx
    with pytest.raises(VerificationError) as info:
        verifier.verify(_flip(quote, 564 + 64), collateral, now=now)  # QE MRENCLAVE
    assert info.value.code == "invalid_qe_report_signature"


def test_rejects_foreign_qe_vendor(sgx) -> None:
    quote, collateral, verifier, now = sgx
    with pytest.raises(VerificationError) as info:
        verifier.verify(_flip(quote, 12), collateral, now=now)
    assert info.value.code == "unsupported_quote"


def test_rejects_reserialized_tcb_info(sgx) -> None:
    quote, collateral, verifier, now = sgx
    pretty = json.dumps(json.loads(collateral.tcb_info), indent=1)
    with pytest.raises(VerificationError) as info:
        verifier.verify(quote, dataclasses.replace(collateral, tcb_info=pretty), now=now)
    assert info.value.code == "invalid_tcb_info_signature"


def test_rejects_td_qe_identity_for_sgx_quote(sgx) -> None:
    quote, collateral, verifier, now = sgx
    tdx = Collateral.from_json((DCAP / "dcap-qvl/sample/tdx_quote_collateral.json").read_text())
    swapped = dataclasses.replace(
        collateral,
        qe_identity=tdx.qe_identity,
        qe_identity_signature=tdx.qe_identity_signature,
        qe_identity_issuer_chain=tdx.qe_identity_issuer_chain,
    )
    with pytest.raises(VerificationError) as info:
        verifier.verify(quote, swapped, now=now)
    assert info.value.code == "qe_identity_mismatch"


def test_rejects_tcb_info_of_another_tee(sgx) -> None:
    quote, collateral, verifier, now = sgx
    tdx = Collateral.from_json((DCAP / "dcap-qvl/sample/tdx_quote_collateral.json").read_text())
    swapped = dataclasses.replace(
        collateral,
        tcb_info=tdx.tcb_info,
        tcb_info_signature=tdx.tcb_info_signature,
        tcb_info_issuer_chain=tdx.tcb_info_issuer_chain,
    )
    with pytest.raises(VerificationError) as info:
        verifier.verify(quote, swapped, now=now)
    assert info.value.code == "tcb_info_mismatch"


def test_rejects_tcb_info_for_another_fmspc() -> None:
    case = _case("automata-sgx-v3-2025-08")
    quote, collateral, root = _inputs(case)
    other = Collateral.from_json((DCAP / "dcap-qvl/sample/sgx_quote_collateral.json").read_text())
    swapped = dataclasses.replace(
        collateral, tcb_info=other.tcb_info, tcb_info_signature=other.tcb_info_signature
    )
    with pytest.raises(VerificationError, match="FMSPC 00606a000000") as info:
        DcapVerifier(root).verify(quote, swapped, now=case["now"], expiry="report")
    assert info.value.code == "tcb_info_mismatch"


# -- collateral and TCB models on the real documents ---------------------------------------


def test_split_signed_json_keeps_the_exact_served_bytes() -> None:
    served = (DCAP / "go-tdx-guest" / "sample_tcbInfo_response").read_text()
    derived = json.loads(
        (DCAP / "derived" / "go-tdx-guest_tdx_50806F000000_2023-06.collateral.json").read_text()
    )
    inner, signature = split_signed_json(served, "tcbInfo")
    assert inner == derived["tcb_info"]
    assert signature.hex() == derived["tcb_info_signature"]


def test_collateral_round_trips_and_accepts_crl_forms(sgx) -> None:
    import base64

    _, collateral, _, _ = sgx
    assert Collateral.from_json(collateral.to_json()) == collateral
    data = collateral.to_dict()
    b64 = base64.b64encode(collateral.pck_crl).decode()
    data["pck_crl"] = f"-----BEGIN X509 CRL-----\n{b64}\n-----END X509 CRL-----\n"
    data["root_ca_crl"] = base64.b64encode(collateral.root_ca_crl).decode()
    assert Collateral.from_dict(data) == collateral


@pytest.mark.parametrize("field", ["pck_crl", "tcb_info_signature", "tcb_info_issuer_chain"])
def test_rejects_malformed_collateral_fields(sgx, field: str) -> None:
    _, collateral, _, _ = sgx
    data = collateral.to_dict()
    data[field] = "zz-not-valid"
    with pytest.raises(CollateralError):
        Collateral.from_dict(data)


def test_parses_tcb_info_v2_and_v3_and_qe_identity() -> None:
    v2_text, _ = split_signed_json((INTEL / "tcbInfo.json").read_text(), "tcbInfo")
    v2 = TcbInfo.from_json(v2_text)
    assert (v2.id, v2.version, v2.fmspc.hex()) == ("SGX", 2, "00707f000000")
    assert all(len(level.sgx_components) == 16 for level in v2.levels)
    qe_text, _ = split_signed_json((INTEL / "qeIdentity.json").read_text(), "enclaveIdentity")
    assert EnclaveIdentity.from_json(qe_text).miscselect == bytes.fromhex("D182B18C")
    tdx = Collateral.from_json((DCAP / "dcap-qvl/sample/tdx_quote_collateral.json").read_text())
    info = TcbInfo.from_json(tdx.tcb_info)
    assert info.id == "TDX" and info.tdx_module is not None
    assert all(level.tdx_components is not None for level in info.levels)


def test_rejects_unknown_tcb_status(sgx) -> None:
    _, collateral, _, _ = sgx
    text = re.sub(r'"tcbStatus":"[A-Za-z]+"', '"tcbStatus":"Fine"', collateral.tcb_info, count=1)
    assert text != collateral.tcb_info
    with pytest.raises(CollateralError, match="not a known TCB status"):
        TcbInfo.from_json(text)


# -- Intel's merge rules, on real quotes with edited (unsigned) TCB Info -------------------


def _verified(case_id: str) -> tuple[DcapResult, TcbInfo]:
    case = _case(case_id)
    quote, collateral, root = _inputs(case)
    result = DcapVerifier(root).verify(quote, collateral, now=case["now"])
    return result, TcbInfo.from_json(collateral.tcb_info)


def _evaluate(result: DcapResult, info: TcbInfo, qe: EnclaveTcbLevel | None, quote=None):
    return evaluate_tcb(
        quote or result.quote, info, intel_level_order(info), result.pck.tcb_components,
        result.pck.pcesvn, qe,
    )  # fmt: skip


QE_OK = EnclaveTcbLevel(0, "2024-03-13T00:00:00Z", "UpToDate", ())
QE_OLD = EnclaveTcbLevel(0, "2021-11-10T00:00:00Z", "OutOfDate", ("INTEL-SA-00615",))


def test_qe_out_of_date_merges_by_intel_table_not_max_severity() -> None:
    result, info = _verified(SGX_CASE)  # platform ConfigurationAndSWHardeningNeeded
    assert _evaluate(result, info, QE_OK).status == "ConfigurationAndSWHardeningNeeded"
    assert _evaluate(result, info, QE_OLD).status == "OutOfDateConfigurationNeeded"


@pytest.mark.parametrize(
    ("qe", "code"),
    [(dataclasses.replace(QE_OK, status="Revoked"), "isvsvn_revoked"),
     (None, "isvsvn_not_supported")],
)  # fmt: skip
def test_rejects_revoked_or_unknown_quoting_enclave(qe, code: str) -> None:
    result, info = _verified(SGX_CASE)
    with pytest.raises(VerificationError) as exc:
        _evaluate(result, info, qe)
    assert exc.value.code == code


def test_rejects_revoked_platform_level() -> None:
    result, info = _verified(SGX_CASE)
    levels = tuple(dataclasses.replace(lv, status="Revoked") for lv in info.levels)
    with pytest.raises(VerificationError) as exc:
        _evaluate(result, dataclasses.replace(info, levels=levels), QE_OK)
    assert exc.value.code == "tcb_revoked"


def _with_module_levels(info: TcbInfo, ident: str, levels) -> TcbInfo:
    identities = tuple(
        dataclasses.replace(i, levels=tuple(EnclaveTcbLevel(*lv) for lv in levels))
        if i.id == ident else i
        for i in info.tdx_module_identities or ()
    )  # fmt: skip
    return dataclasses.replace(info, tdx_module_identities=identities)


def test_tdx_module_out_of_date_or_revoked_converges() -> None:
    result, info = _verified("dcapqvl-tdx-v4-2025-06")  # module TDX_01, SVN 6
    old = [(7, "2025-01-01T00:00:00Z", "UpToDate", ()),
           (2, "2023-01-01T00:00:00Z", "OutOfDate", ("INTEL-SA-01111",))]  # fmt: skip
    outcome = _evaluate(result, _with_module_levels(info, "TDX_01", old), QE_OK)
    assert outcome.status == "OutOfDate" and outcome.module_level is not None
    assert outcome.module_level.advisory_ids == ("INTEL-SA-01111",)
    revoked = [(2, "2023-01-01T00:00:00Z", "Revoked", ())]
    with pytest.raises(VerificationError) as exc:
        _evaluate(result, _with_module_levels(info, "TDX_01", revoked), QE_OK)
    assert exc.value.code == "tcb_revoked"


def test_tdx_matching_skips_module_svn_bytes_when_module_version_is_set() -> None:
    result, info = _verified("dcapqvl-tdx-v4-2025-06")  # TEE_TCB_SVN 06 01 03 ..
    higher = (7, 2) + info.levels[0].tdx_components[2:]
    levels = (dataclasses.replace(info.levels[0], tdx_components=higher), *info.levels[1:])
    edited = dataclasses.replace(info, levels=levels)
    assert _evaluate(result, edited, QE_OK).status == "UpToDate"
    body = dataclasses.replace(result.quote.body, tee_tcb_svn=bytes([6, 0, 3]) + bytes(13))
    legacy = dataclasses.replace(result.quote, body=body)  # module version 0: no skipping
    outcome = _evaluate(result, edited, QE_OK, quote=legacy)
    assert outcome.platform_level == levels[1] and outcome.status == "OutOfDate"


def test_levels_are_matched_in_intel_order() -> None:
    result, info = _verified(SGX_CASE)
    shuffled = dataclasses.replace(info, levels=tuple(reversed(info.levels)))
    assert _evaluate(result, shuffled, QE_OK) == _evaluate(result, info, QE_OK)


def test_td_relaunch_advised_for_td15_with_updated_module() -> None:
    case = {"quote": "go-tdx-guest/quote_v5_sample.dat", "root_ca": "dcap-qvl/TrustedRootCA.der",
            "collateral": "dcap-qvl/sample/tdx_quote_outdated_collateral.json"}  # fmt: skip
    quote, collateral, root = _inputs(case)
    result = DcapVerifier(root).verify(quote, collateral, now=1771412331)
    info = TcbInfo.from_json(collateral.tcb_info)
    # Running module SVN 11 is OutOfDate; TEE_TCB_SVN_2 (SVN 13) reaches the latest level.
    levels = [(13, "2025-01-01T00:00:00Z", "UpToDate", ()),
              (2, "2023-01-01T00:00:00Z", "OutOfDate", ())]  # fmt: skip
    edited = _with_module_levels(info, "TDX_01", levels)
    assert _evaluate(result, edited, QE_OK).status == "TDRelaunchAdvised"
    assert _evaluate(result, edited, QE_OLD).status == "OutOfDate"
    later = _with_module_levels(info, "TDX_01", [(14, *levels[0][1:]), levels[1]])
    assert _evaluate(result, later, QE_OK).status == "OutOfDate"
