"""Attacks on real DCAP quotes and collateral (issue 3 acceptance list), each named after it.

Real material from ``testvectors/dcap/cases.json``: dcap-qvl's SGX v3 sample and TDX v4 sample
with their collateral, verified at each case's ``now`` under the Intel SGX Root CA. Every test
changes exactly one thing an attacker controls and asserts the typed error and its ``code``.
Where the change needs a key we do not have (Intel's), the attack is in
``tests/integration/test_attestation_attacks.py`` on a simulated platform instead.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from _quote_surgery import flip, flip_digit, flip_pem_cert, flip_quote_cert, layout, splice
from enklave.backends.simulation import SimPlatform
from enklave.collateral import Collateral
from enklave.errors import (
    CollateralError,
    CollateralExpired,
    PolicyError,
    QuoteFormatError,
    VerificationError,
)
from enklave.models.evidence import Evidence
from enklave.models.quote import CertificationData, SgxReportBody, parse_quote
from enklave.verify import (
    DcapResult,
    DcapVerifier,
    SignerIs,
    TrustAnchor,
    UnsafeAcceptAnything,
    Verifier,
    default_policy,
)

from ._diff import DCAP, load_cases, load_quote

pytestmark = pytest.mark.skipif(not DCAP.exists(), reason="shared test vectors are absent")

CASES = {c["id"]: c for c in load_cases()}
REAL = {"sgx": "dcapqvl-sgx-v3-2025-06", "tdx": "dcapqvl-tdx-v4-2025-06"}
DEBUG_CASE = "automata-solana-sgx-v3-debug-2025-06"
DAY = 86400
REJECTED = (VerificationError, QuoteFormatError, CollateralError)


# -- material ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Real:
    """One real quote with its collateral, a verifier under its root, and the case time."""

    kind: str
    quote: bytes
    collateral: Collateral
    verifier: DcapVerifier
    now: int
    status: str

    def verify(
        self,
        quote: bytes | None = None,
        collateral: Collateral | None = None,
        *,
        now: int | None = None,
        expiry: Literal["strict", "report"] = "strict",
    ) -> DcapResult:
        return self.verifier.verify(
            self.quote if quote is None else quote,
            self.collateral if collateral is None else collateral,
            now=self.now if now is None else now,
            expiry=expiry,
        )

    def verifier_for(self, collateral: Collateral | None = None) -> Verifier:
        return Verifier(anchors=TrustAnchor.intel(), collateral=collateral or self.collateral)


def _load(case_id: str, kind: str = "") -> Real:
    case = CASES[case_id]
    collateral = Collateral.from_json((DCAP / case["collateral"]).read_text())
    verifier = DcapVerifier((DCAP / case["root_ca"]).read_bytes())
    return Real(
        kind,
        load_quote(DCAP / case["quote"]),
        collateral,
        verifier,
        case["now"],
        case["expected"]["status"],
    )


@pytest.fixture(scope="module", params=sorted(REAL))
def real(request: pytest.FixtureRequest) -> Real:
    """The SGX v3 and the TDX v4 sample, in turn."""
    material = _load(REAL[request.param], request.param)
    assert material.verify().status == material.status  # the unmodified input verifies
    return material


@pytest.fixture(scope="module")
def sgx() -> Real:
    return _load(REAL["sgx"], "sgx")


@pytest.fixture(scope="module")
def tdx() -> Real:
    return _load(REAL["tdx"], "tdx")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> SimPlatform:
    return SimPlatform.init(tmp_path_factory.mktemp("sim"), now=1_760_000_000)


# -- byte surgery ------------------------------------------------------------------------------


def flip_chain(collateral: Collateral, field: str, index: int) -> Collateral:
    text = getattr(collateral, field).encode("ascii")
    return dataclasses.replace(collateral, **{field: flip_pem_cert(text, index).decode()})


def flip_crl_this_update(der: bytes) -> bytes:
    """Flip the last seconds digit of the CRL's thisUpdate (inside its signed TBS)."""
    crl = x509.load_der_x509_crl(der)
    when = crl.last_update_utc
    stamp = when.strftime("%y%m%d%H%M%SZ" if when.year < 2050 else "%Y%m%d%H%M%SZ").encode()
    pos = der.find(stamp)
    assert pos > 0 and der.find(crl.tbs_certlist_bytes) < pos
    return flip(der, pos + len(stamp) - 2)


def raw_sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def raw_public(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)[1:]


def rejected(
    real: Real, code: str, quote: bytes | None = None, collateral: Collateral | None = None
) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        real.verify(quote, collateral)
    assert info.value.code == code, info.value
    return info.value


# -- a flipped byte in each signed region --------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "offset"),
    [
        ("qe_svn", 8),
        ("pce_svn", 10),
        ("user_data_first", 28),
        ("user_data_last", 47),
    ],
)
def test_flipped_byte_in_quote_header_is_rejected(real: Real, field: str, offset: int) -> None:
    rejected(real, "invalid_quote_signature", flip(real.quote, offset))


@pytest.mark.parametrize(
    ("field", "offset"), [("version", 0), ("att_key_type", 2), ("tee_type", 4)]
)
def test_flipped_structural_header_field_is_a_format_error(
    real: Real, field: str, offset: int
) -> None:
    with pytest.raises(QuoteFormatError):
        real.verify(flip(real.quote, offset))


def test_flipped_qe_vendor_id_is_rejected(real: Real) -> None:
    error = rejected(real, "unsupported_quote", flip(real.quote, 12 + 15))
    assert "vendor" in str(error)


@pytest.mark.parametrize("where", ["first", "measurement", "report_data", "last"])
def test_flipped_byte_in_report_body_is_rejected(real: Real, where: str) -> None:
    lay = layout(real.quote)
    offsets = {
        "first": lay.body,
        "measurement": lay.body + 64 if real.kind == "sgx" else lay.body + 136,
        "report_data": lay.signature - 4 - 64,
        "last": lay.signature - 5,
    }
    rejected(real, "invalid_quote_signature", flip(real.quote, offsets[where]))


@pytest.mark.parametrize("where", [0, 48, 64, 128, 256, 320, 383])
def test_flipped_byte_in_qe_report_is_rejected(real: Real, where: int) -> None:
    quote = flip(real.quote, layout(real.quote).qe_report + where)
    rejected(real, "invalid_qe_report_signature", quote)


@pytest.mark.parametrize("where", ["first", "last"])
def test_flipped_byte_in_qe_auth_data_is_rejected(real: Real, where: str) -> None:
    lay, size = layout(real.quote), len(parse_quote(real.quote).qe_auth_data)
    quote = flip(real.quote, lay.qe_auth_data + (0 if where == "first" else size - 1))
    error = rejected(real, "invalid_qe_report_data", quote)
    assert "swapped" in str(error)


def test_flipped_byte_in_pck_leaf_tbs_is_rejected(real: Real) -> None:
    error = rejected(real, "invalid_pck_chain", flip_quote_cert(real.quote, 0))
    assert "signature" in str(error) and "PCK Certificate" in str(error)


def test_flipped_byte_in_pck_intermediate_tbs_is_rejected(real: Real) -> None:
    error = rejected(real, "invalid_pck_chain", flip_quote_cert(real.quote, 1))
    assert "signature" in str(error) and "CA" in str(error)


def test_flipped_byte_in_embedded_root_copy_is_rejected(real: Real) -> None:
    error = rejected(real, "invalid_pck_chain", flip_quote_cert(real.quote, 2))
    assert "signature" in str(error)


def test_root_copy_with_altered_subject_is_not_silently_ignored(real: Real) -> None:
    """The altered root no longer issues anything; the chain must not just skip over it."""
    error = rejected(real, "invalid_pck_chain", flip_quote_cert(real.quote, 2, "subject"))
    assert "not on the path" in str(error)


def test_flipped_base64_in_pck_chain_pem_is_never_accepted(real: Real) -> None:
    """Any bit flip that changes a certificate's bytes is refused, parsable or not."""
    lay = layout(real.quote)
    data = parse_quote(real.quote).certification.data
    original = CertificationData(5, data).pck_chain_der()
    tried = 0
    for pos in range(0, len(data), 41):
        mutated = flip(data, pos)
        try:
            if CertificationData(5, mutated).pck_chain_der() == original:
                continue  # whitespace or unused base64 bits: the certificates are unchanged
        except QuoteFormatError:
            pass
        tried += 1
        with pytest.raises(REJECTED):
            real.verify(splice(real.quote, lay.cert_data, mutated))
    assert tried > 50


def test_flipped_digit_in_tcb_info_text_is_rejected(real: Real) -> None:
    for key in ("tcbEvaluationDataNumber", "svn", "pcesvn"):
        forged = dataclasses.replace(
            real.collateral, tcb_info=flip_digit(real.collateral.tcb_info, key)
        )
        json.loads(forged.tcb_info)  # still valid JSON
        rejected(real, "invalid_tcb_info_signature", collateral=forged)


def test_flipped_digit_in_qe_identity_text_is_rejected(real: Real) -> None:
    for key in ("tcbEvaluationDataNumber", "isvprodid", "isvsvn"):
        forged = dataclasses.replace(
            real.collateral, qe_identity=flip_digit(real.collateral.qe_identity, key)
        )
        rejected(real, "invalid_qe_identity_signature", collateral=forged)


@pytest.mark.parametrize("where", [0, 31, 32, 63])
def test_flipped_byte_in_tcb_info_signature_is_rejected(real: Real, where: int) -> None:
    sig = flip(real.collateral.tcb_info_signature, where)
    forged = dataclasses.replace(real.collateral, tcb_info_signature=sig)
    rejected(real, "invalid_tcb_info_signature", collateral=forged)


@pytest.mark.parametrize("where", [0, 31, 32, 63])
def test_flipped_byte_in_qe_identity_signature_is_rejected(real: Real, where: int) -> None:
    sig = flip(real.collateral.qe_identity_signature, where)
    forged = dataclasses.replace(real.collateral, qe_identity_signature=sig)
    rejected(real, "invalid_qe_identity_signature", collateral=forged)


@pytest.mark.parametrize("where", [0, 31, 32, 63])
def test_flipped_byte_in_quote_signature_is_rejected(real: Real, where: int) -> None:
    quote = flip(real.quote, layout(real.quote).signature + where)
    rejected(real, "invalid_quote_signature", quote)


@pytest.mark.parametrize("where", [0, 31, 32, 63])
def test_flipped_byte_in_qe_report_signature_is_rejected(real: Real, where: int) -> None:
    quote = flip(real.quote, layout(real.quote).qe_report_signature + where)
    rejected(real, "invalid_qe_report_signature", quote)


def test_flipped_byte_in_attestation_key_is_rejected(real: Real) -> None:
    quote = flip(real.quote, layout(real.quote).attestation_key + 5)
    rejected(real, "invalid_qe_report_data", quote)


def test_flipped_byte_in_tcb_signing_certificate_is_rejected(real: Real) -> None:
    rejected(
        real,
        "invalid_tcb_info_signature",
        collateral=flip_chain(real.collateral, "tcb_info_issuer_chain", 0),
    )
    rejected(
        real,
        "invalid_qe_identity_signature",
        collateral=flip_chain(real.collateral, "qe_identity_issuer_chain", 0),
    )


def test_flipped_byte_in_pck_crl_issuer_chain_is_rejected(real: Real) -> None:
    forged = flip_chain(real.collateral, "pck_crl_issuer_chain", 0)
    rejected(real, "invalid_pck_crl", collateral=forged)


def test_flipped_byte_in_pck_crl_is_rejected(real: Real) -> None:
    forged = dataclasses.replace(
        real.collateral, pck_crl=flip_crl_this_update(real.collateral.pck_crl)
    )
    rejected(real, "invalid_pck_crl", collateral=forged)


def test_flipped_byte_in_root_ca_crl_is_rejected(real: Real) -> None:
    forged = dataclasses.replace(
        real.collateral, root_ca_crl=flip_crl_this_update(real.collateral.root_ca_crl)
    )
    rejected(real, "invalid_root_ca_crl", collateral=forged)


# -- swapped keys, other roots -------------------------------------------------------------------


def test_swapped_attestation_key_with_resigned_quote_is_rejected(real: Real) -> None:
    """The attacker's own P-256 key replaces the QE's, and the quote body is re-signed with it."""
    lay, attacker = layout(real.quote), ec.generate_private_key(ec.SECP256R1())
    signed = parse_quote(real.quote).signed_region
    quote = splice(real.quote, lay.signature, raw_sign(attacker, signed) + raw_public(attacker))
    q = parse_quote(quote)
    assert q.attestation_key == raw_public(attacker) and q.signed_region == signed
    rejected(real, "invalid_qe_report_data", quote)


def test_real_quote_under_the_simulation_root_is_untrusted(real: Real, sim: SimPlatform) -> None:
    verifier = DcapVerifier(sim.root_certificate_pem, simulated=True)
    with pytest.raises(VerificationError) as info:
        verifier.verify(real.quote, real.collateral, now=real.now)
    assert info.value.code == "untrusted_root"
    anchor = TrustAnchor("sim", sim.root_certificate, simulated=True)
    with pytest.raises(VerificationError) as info:
        Verifier(anchors=anchor, collateral=real.collateral).verify(
            real.quote,
            UnsafeAcceptAnything("test"),
            now=real.now,
            binding=parse_quote(real.quote).report_data,
        )
    assert info.value.code == "untrusted_root"


def test_simulated_collateral_for_a_real_quote_is_refused(real: Real, sim: SimPlatform) -> None:
    """Collateral signed under another root: the root CRL first, each signed part alone too."""
    fake = sim.collateral(tee=real.kind, now=1_760_000_000)
    error = rejected(real, "invalid_root_ca_crl", collateral=fake)
    assert "SIMULATED" in str(error)
    for part in ("tcb_info", "qe_identity"):
        rejected(real, "untrusted_root", collateral=_take(real.collateral, fake, part))
    names = ("pck_crl", "pck_crl_issuer_chain")
    forged = dataclasses.replace(real.collateral, **{n: getattr(fake, n) for n in names})
    rejected(real, "untrusted_root", collateral=forged)


# -- dates ---------------------------------------------------------------------------------------


def test_expired_collateral_is_refused_in_strict_mode_and_flagged_in_report_mode(
    real: Real,
) -> None:
    later = real.now + 2 * DAY  # the case's now is min(nextUpdate) - 1 (or close to it)
    with pytest.raises(CollateralExpired, match="expired at"):
        real.verify(now=later)
    flagged = real.verify(now=later, expiry="report")
    assert flagged.collateral_expired is True and flagged.status == real.status
    enclave = real.verifier_for().verify(
        real.quote,
        UnsafeAcceptAnything("test"),
        now=later,
        expiry="report",
        binding=parse_quote(real.quote).report_data,
    )
    assert enclave.collateral_expired is True


def test_not_yet_valid_collateral_is_refused(real: Real) -> None:
    info = json.loads(real.collateral.tcb_info)
    issued = int(datetime.fromisoformat(info["issueDate"].replace("Z", "+00:00")).timestamp())
    with pytest.raises(CollateralExpired, match="not valid before"):
        real.verify(now=issued - 1)
    assert real.verify(now=issued - 1, expiry="report").collateral_expired is True


# -- collateral for another platform -------------------------------------------------------------


def _take(collateral: Collateral, other: Collateral, part: str) -> Collateral:
    names = (part, f"{part}_signature", f"{part}_issuer_chain")
    return dataclasses.replace(collateral, **{n: getattr(other, n) for n in names})


def test_tcb_info_of_the_other_tee_is_a_mismatch(sgx: Real, tdx: Real) -> None:
    rejected(sgx, "tcb_info_mismatch", collateral=_take(sgx.collateral, tdx.collateral, "tcb_info"))
    rejected(tdx, "tcb_info_mismatch", collateral=_take(tdx.collateral, sgx.collateral, "tcb_info"))


def test_qe_identity_of_the_other_tee_is_a_mismatch(sgx: Real, tdx: Real) -> None:
    rejected(
        sgx, "qe_identity_mismatch", collateral=_take(sgx.collateral, tdx.collateral, "qe_identity")
    )
    rejected(
        tdx, "qe_identity_mismatch", collateral=_take(tdx.collateral, sgx.collateral, "qe_identity")
    )


def test_whole_collateral_of_another_platform_is_refused(sgx: Real, tdx: Real) -> None:
    """TDX collateral (Platform CA CRL) for the SGX quote (Processor CA): Intel's code."""
    error = rejected(sgx, "invalid_pck_crl", collateral=tdx.collateral)
    assert "ca=processor" in str(error)
    rejected(tdx, "invalid_pck_crl", collateral=sgx.collateral)


def test_sgx_tcb_info_for_another_fmspc_is_a_mismatch(sgx: Real) -> None:
    other = _load("automata-sgx-v3-2025-08")  # FMSPC 00606A000000, signed by Intel
    forged = _take(sgx.collateral, other.collateral, "tcb_info")
    with pytest.raises(VerificationError, match="FMSPC 00606a000000") as info:
        sgx.verify(collateral=forged, expiry="report")  # that TCB Info is from August
    assert info.value.code == "tcb_info_mismatch"


# -- policy and claims ---------------------------------------------------------------------------


def test_debug_enclave_is_refused_by_the_default_policy() -> None:
    debug = _load(DEBUG_CASE, "sgx")
    result = debug.verify()  # DCAP itself does not judge DEBUG
    assert result.quote.body.debug is True
    binding = parse_quote(debug.quote).report_data
    with pytest.raises(PolicyError) as info:
        debug.verifier_for().verify(debug.quote, default_policy(), now=debug.now, binding=binding)
    assert info.value.check == "debug"


def test_claims_not_matching_report_data_are_refused(real: Real) -> None:
    report_data = parse_quote(real.quote).report_data
    verifier = real.verifier_for()
    policy = UnsafeAcceptAnything("test: claims only")
    assert verifier.verify(real.quote, policy, now=real.now, binding=report_data).claims == b""
    for claims in (b"Hello, world!", report_data, report_data[:32]):
        with pytest.raises(VerificationError) as info:
            verifier.verify(Evidence(real.quote, claims), policy, now=real.now)
        assert info.value.code == "claims_mismatch"


def test_binding_to_another_nonce_is_refused(real: Real) -> None:
    report_data = parse_quote(real.quote).report_data
    verifier = real.verifier_for()
    for binding in (flip(report_data[:32], 31), flip(report_data, 63), bytes(32), b"short"):
        with pytest.raises(VerificationError) as info:
            verifier.verify(real.quote, UnsafeAcceptAnything("test"), now=real.now, binding=binding)
        assert info.value.code == "claims_mismatch"


def test_another_measurement_is_refused_by_measurement_policy(real: Real) -> None:
    body = parse_quote(real.quote).body
    actual = body.mrenclave if isinstance(body, SgxReportBody) else body.mr_td
    verifier = real.verifier_for()
    allow = default_policy(mrenclave=[actual], accepted_statuses=[real.status])
    enclave = verifier.verify(real.quote, allow, now=real.now, binding=body.report_data)
    assert enclave.status == real.status
    other = default_policy(mrenclave=[flip(actual, 0)], accepted_statuses=[real.status])
    with pytest.raises(PolicyError) as info:
        verifier.verify(real.quote, other, now=real.now, binding=body.report_data)
    assert info.value.check == "mrenclave"


def test_svn_rollback_is_refused_by_signer_policy(sgx: Real) -> None:
    body = parse_quote(sgx.quote).body
    assert isinstance(body, SgxReportBody)
    verifier = sgx.verifier_for()
    ok = SignerIs(body.mrsigner, body.isv_prod_id, min_svn=body.isv_svn)
    verifier.verify(sgx.quote, ok, now=sgx.now, binding=body.report_data)
    newer = SignerIs(body.mrsigner, body.isv_prod_id, min_svn=body.isv_svn + 1)
    with pytest.raises(PolicyError) as info:
        verifier.verify(sgx.quote, newer, now=sgx.now, binding=body.report_data)
    assert info.value.check == "min_svn"
