"""Attacks on simulated DCAP evidence (issue 3 acceptance list), each test named after it.

A simulated platform produces real-format quotes and collateral under its own root, and we
hold its keys, so here we can also forge what needs a key: re-signed quotes (only one check
can fail), QE reports re-signed with the PCK key, CRLs that revoke a CA, TCB Info for
another FMSPC signed by the TCB signer. Every test asserts the typed error and its ``code``
(or the policy ``check``). The last tests run a real enclave process (``examples/hello``
and a debug app) and replay its evidence.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from _quote_surgery import flip, flip_digit, flip_pem_cert, flip_quote_cert, layout, splice
from conftest import build
from enklave.backends.simulation import SimPlatform
from enklave.backends.simulation import _collateral as sim_coll
from enklave.backends.simulation import _pki as sim_pki
from enklave.collateral import Collateral
from enklave.errors import (
    CollateralError,
    CollateralExpired,
    PolicyError,
    QuoteFormatError,
    VerificationError,
)
from enklave.host import Enclave
from enklave.models.evidence import Evidence, report_data_for
from enklave.models.quote import CertificationData, SgxReportBody, build_quote, parse_quote
from enklave.verify import (
    AllOf,
    DcapResult,
    DcapVerifier,
    MeasurementIs,
    SignerIs,
    TrustAnchor,
    Verifier,
    default_policy,
)

NOW = 1_760_000_000  # every platform is created at NOW; its collateral is valid NOW-1h..+30d
DAY = 86400
KINDS = ("sgx-v3", "sgx-v4", "tdx-v4")
CLAIMS = b"attack-test claims: nonce=00112233"
MRENCLAVE = hashlib.sha256(b"the reviewed enclave").digest()
MRSIGNER = hashlib.sha256(b"the release key").digest()
MRTD = hashlib.sha384(b"the reviewed TD").digest()
PRODUCT, SVN = 7, 3
REJECTED = (VerificationError, QuoteFormatError, CollateralError)


# -- platforms and quotes ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulation home of the main platform (enclave processes use it too)."""
    return tmp_path_factory.mktemp("sim-main")


@pytest.fixture(scope="module")
def platform(home: Path) -> SimPlatform:
    return SimPlatform.init(home, now=NOW)


@pytest.fixture(scope="module")
def other_platform(tmp_path_factory: pytest.TempPathFactory) -> SimPlatform:
    """A second simulated platform: its own root, keys and collateral."""
    return SimPlatform.init(tmp_path_factory.mktemp("sim-other"), now=NOW)


def _anchor(platform: SimPlatform) -> TrustAnchor:
    return TrustAnchor("test simulation root", platform.root_certificate, simulated=True)


def make_quote(
    platform: SimPlatform,
    kind: str = "sgx-v3",
    *,
    claims: bytes = CLAIMS,
    debug: bool = False,
    mrenclave: bytes = MRENCLAVE,
    isv_svn: int = SVN,
) -> bytes:
    if kind == "tdx-v4":
        return platform.td_quote(report_data_for(claims), mr_td=MRTD, debug=debug)
    return platform.quote(
        report_data_for(claims),
        mrenclave=mrenclave,
        mrsigner=MRSIGNER,
        isv_prod_id=PRODUCT,
        isv_svn=isv_svn,
        debug=debug,
        version=int(kind[-1]),
    )


@dataclass(frozen=True)
class Sim:
    """A simulated quote of one kind, its collateral and a verifier under the platform's root."""

    kind: str
    platform: SimPlatform
    quote: bytes
    collateral: Collateral
    verifier: DcapVerifier

    @property
    def tee(self) -> str:
        return self.kind[:3]

    def verify(
        self,
        quote: bytes | None = None,
        collateral: Collateral | None = None,
        *,
        now: int = NOW,
        expiry: Literal["strict", "report"] = "strict",
    ) -> DcapResult:
        return self.verifier.verify(
            self.quote if quote is None else quote,
            self.collateral if collateral is None else collateral,
            now=now,
            expiry=expiry,
        )

    def rejected(
        self, code: str, quote: bytes | None = None, collateral: Collateral | None = None
    ) -> VerificationError:
        with pytest.raises(VerificationError) as info:
            self.verify(quote, collateral)
        assert info.value.code == code, info.value
        return info.value


def _sim(platform: SimPlatform, kind: str) -> Sim:
    verifier = DcapVerifier(platform.root_certificate_pem, simulated=True)
    collateral = platform.collateral(tee=kind[:3], now=NOW)
    return Sim(kind, platform, make_quote(platform, kind), collateral, verifier)


@pytest.fixture(scope="module", params=KINDS)
def sim(request: pytest.FixtureRequest, platform: SimPlatform) -> Sim:
    """SGX v3, SGX v4 and TDX v4 quotes from the main platform, in turn."""
    material = _sim(platform, request.param)
    assert material.verify().status == "UpToDate"  # the unmodified input verifies
    return material


@pytest.fixture(scope="module")
def sgx(platform: SimPlatform) -> Sim:
    return _sim(platform, "sgx-v3")


def _keys(platform: SimPlatform) -> dict[str, ec.EllipticCurvePrivateKey]:
    """The platform's private keys (internal state: this test plays the platform's owner)."""
    return platform._state.keys


def resign(
    platform: SimPlatform,
    raw: bytes,
    *,
    qe_report: SgxReportBody | None = None,
    qe_vendor_id: bytes | None = None,
    attestation_key: ec.EllipticCurvePrivateKey | None = None,
    qe_report_key: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """Rebuild ``raw`` with one part replaced, signing as the platform's QE and PCK would.

    The attestation key signs the header and body, the PCK key (or ``qe_report_key``) the QE
    report, so every check but the one about the replaced part still passes.
    """
    keys = _keys(platform)
    q = parse_quote(raw)
    att = attestation_key or keys["qe-attestation"]
    report = qe_report or q.qe_report
    return build_quote(
        version=q.header.version,
        tee_type=q.header.tee_type,
        body=q.body,
        attestation_key=sim_pki.raw_public_key(att),
        sign=lambda region: sim_pki.sign_raw(att, region),
        qe_report=report,
        qe_report_signature=sim_pki.sign_raw(qe_report_key or keys["pck"], report.raw),
        qe_auth_data=q.qe_auth_data,
        cert_type=q.certification.cert_type,
        cert_data=q.certification.data,
        qe_svn=q.header.qe_svn,
        pce_svn=q.header.pce_svn,
        user_data=q.header.user_data,
        qe_vendor_id=qe_vendor_id or q.header.qe_vendor_id,
    )


def signed_doc(platform: SimPlatform, text: str) -> bytes:
    """Sign collateral JSON text with the platform's TCB signing key, as Intel's signer does."""
    return sim_pki.sign_raw(_keys(platform)["tcb-signing"], text.encode())


def root_crl_revoking(platform: SimPlatform, role: str) -> bytes:
    """A root CA CRL, properly signed by the root, that lists the ``role`` certificate."""
    state = platform._state
    issued = state.settings.collateral_issued
    return sim_pki.make_crl(
        state.keys["root-ca"],
        state.certs["root-ca"],
        revoked_serials=(state.certs[role].serial_number,),
        this_update=issued,
        next_update=issued + 30 * DAY,
    )


def _take(collateral: Collateral, other: Collateral, part: str) -> Collateral:
    names = (part, f"{part}_signature", f"{part}_issuer_chain")
    return dataclasses.replace(collateral, **{n: getattr(other, n) for n in names})


def _policy(**kw: Any) -> AllOf:
    return default_policy(allow_simulated=True, **kw)


# -- a flipped byte in each signed region --------------------------------------------------------


@pytest.mark.parametrize(
    "offset", [8, 10, 28, 47], ids=["qe_svn", "pce_svn", "user_data", "user_data_last"]
)
def test_flipped_byte_in_quote_header_is_rejected(sim: Sim, offset: int) -> None:
    sim.rejected("invalid_quote_signature", flip(sim.quote, offset))


def test_flipped_byte_in_report_body_is_rejected(sim: Sim) -> None:
    end = len(parse_quote(sim.quote).signed_region)
    measurement = 48 + (64 if sim.tee == "sgx" else 136)
    for offset in (48, measurement, end - 64, end - 1):
        sim.rejected("invalid_quote_signature", flip(sim.quote, offset))


def test_flipped_byte_in_qe_report_is_rejected(sim: Sim) -> None:
    start = layout(sim.quote).qe_report
    for where in (0, 48, 128, 256, 320, 383):
        sim.rejected("invalid_qe_report_signature", flip(sim.quote, start + where))


def test_flipped_byte_in_qe_auth_data_is_rejected(sim: Sim) -> None:
    start, size = layout(sim.quote).qe_auth_data, len(parse_quote(sim.quote).qe_auth_data)
    for offset in (start, start + size - 1):
        error = sim.rejected("invalid_qe_report_data", flip(sim.quote, offset))
        assert "swapped" in str(error)


def test_flipped_byte_in_pck_leaf_tbs_is_rejected(sim: Sim) -> None:
    error = sim.rejected("invalid_pck_chain", flip_quote_cert(sim.quote, 0))
    assert "signature" in str(error) and "PCK Certificate" in str(error)


def test_flipped_byte_in_pck_intermediate_tbs_is_rejected(sim: Sim) -> None:
    error = sim.rejected("invalid_pck_chain", flip_quote_cert(sim.quote, 1))
    assert "signature" in str(error) and "Processor CA" in str(error)


def test_flipped_byte_in_embedded_root_copy_is_rejected(sim: Sim) -> None:
    error = sim.rejected("invalid_pck_chain", flip_quote_cert(sim.quote, 2))
    assert "signature" in str(error)
    error = sim.rejected("invalid_pck_chain", flip_quote_cert(sim.quote, 2, "subject"))
    assert "not on the path" in str(error)


def test_flipped_base64_in_pck_chain_pem_is_never_accepted(sim: Sim) -> None:
    """Any bit flip that changes a certificate's bytes is refused, parsable or not."""
    start = layout(sim.quote).cert_data
    data = parse_quote(sim.quote).certification.data
    original = CertificationData(5, data).pck_chain_der()
    tried = 0
    for pos in range(0, len(data), 53):
        mutated = flip(data, pos)
        try:
            if CertificationData(5, mutated).pck_chain_der() == original:
                continue  # whitespace or unused base64 bits: the certificates are unchanged
        except QuoteFormatError:
            pass
        tried += 1
        with pytest.raises(REJECTED):
            sim.verify(splice(sim.quote, start, mutated))
    assert tried > 40


def test_flipped_digit_in_tcb_info_text_is_rejected(sim: Sim) -> None:
    for key in ("tcbEvaluationDataNumber", "svn", "pcesvn", "tcbType"):
        text = flip_digit(sim.collateral.tcb_info, key)
        forged = dataclasses.replace(sim.collateral, tcb_info=text)
        sim.rejected("invalid_tcb_info_signature", collateral=forged)


def test_flipped_digit_in_qe_identity_text_is_rejected(sim: Sim) -> None:
    for key in ("tcbEvaluationDataNumber", "isvprodid", "isvsvn"):
        text = flip_digit(sim.collateral.qe_identity, key)
        forged = dataclasses.replace(sim.collateral, qe_identity=text)
        sim.rejected("invalid_qe_identity_signature", collateral=forged)


def test_flipped_byte_in_tcb_info_signature_is_rejected(sim: Sim) -> None:
    for where in (0, 31, 32, 63):
        sig = flip(sim.collateral.tcb_info_signature, where)
        forged = dataclasses.replace(sim.collateral, tcb_info_signature=sig)
        sim.rejected("invalid_tcb_info_signature", collateral=forged)


def test_flipped_byte_in_qe_identity_signature_is_rejected(sim: Sim) -> None:
    for where in (0, 31, 32, 63):
        sig = flip(sim.collateral.qe_identity_signature, where)
        forged = dataclasses.replace(sim.collateral, qe_identity_signature=sig)
        sim.rejected("invalid_qe_identity_signature", collateral=forged)


def test_flipped_byte_in_quote_signature_is_rejected(sim: Sim) -> None:
    for where in (0, 31, 32, 63):
        quote = flip(sim.quote, layout(sim.quote).signature + where)
        sim.rejected("invalid_quote_signature", quote)


def test_flipped_byte_in_qe_report_signature_is_rejected(sim: Sim) -> None:
    for where in (0, 31, 32, 63):
        quote = flip(sim.quote, layout(sim.quote).qe_report_signature + where)
        sim.rejected("invalid_qe_report_signature", quote)


def test_flipped_byte_in_collateral_certificates_and_crls_is_rejected(sim: Sim) -> None:
    def chain(field: str) -> Collateral:
        text = getattr(sim.collateral, field).encode()
        return dataclasses.replace(sim.collateral, **{field: flip_pem_cert(text, 0).decode()})

    sim.rejected("invalid_tcb_info_signature", collateral=chain("tcb_info_issuer_chain"))
    sim.rejected("invalid_qe_identity_signature", collateral=chain("qe_identity_issuer_chain"))
    sim.rejected("invalid_pck_crl", collateral=chain("pck_crl_issuer_chain"))
    for field, code in (("pck_crl", "invalid_pck_crl"), ("root_ca_crl", "invalid_root_ca_crl")):
        der = getattr(sim.collateral, field)
        forged = dataclasses.replace(sim.collateral, **{field: flip(der, len(der) - 1)})
        sim.rejected(code, collateral=forged)  # a byte of the CRL's signature value


# -- re-signed quotes: only the one check can fail -----------------------------------------------


def test_resigning_an_unchanged_quote_still_verifies(sim: Sim) -> None:
    """Control for the forgeries below: the re-signing itself is faithful."""
    assert sim.verify(resign(sim.platform, sim.quote)).status == "UpToDate"


def test_swapped_attestation_key_is_rejected(sim: Sim) -> None:
    """Another valid P-256 key, and the quote body re-signed with it."""
    attacker = sim_pki.generate_key()
    quote = resign(sim.platform, sim.quote, attestation_key=attacker)
    assert parse_quote(quote).attestation_key == sim_pki.raw_public_key(attacker)
    sim.rejected("invalid_qe_report_data", quote)


def test_swapped_attestation_key_with_self_signed_qe_report_is_rejected(sim: Sim) -> None:
    """The attacker also binds their key in the QE report, but cannot sign it with the PCK key."""
    attacker = sim_pki.generate_key()
    q = parse_quote(sim.quote)
    binding = hashlib.sha256(sim_pki.raw_public_key(attacker) + q.qe_auth_data).digest()
    report = dataclasses.replace(q.qe_report, report_data=binding + bytes(32))
    quote = resign(
        sim.platform, sim.quote, qe_report=report, attestation_key=attacker, qe_report_key=attacker
    )
    sim.rejected("invalid_qe_report_signature", quote)


def test_resigned_foreign_qe_vendor_id_is_rejected(sim: Sim) -> None:
    quote = resign(sim.platform, sim.quote, qe_vendor_id=bytes(range(16)))
    error = sim.rejected("unsupported_quote", quote)
    assert "vendor" in str(error)


@pytest.mark.parametrize("field", ["mrsigner", "isv_prod_id", "miscselect", "attributes"])
def test_qe_identity_mismatch_with_resigned_qe_report_is_rejected(sim: Sim, field: str) -> None:
    report = parse_quote(sim.quote).qe_report
    changed = {
        "mrsigner": hashlib.sha256(b"not the QE's signer").digest(),
        "isv_prod_id": report.isv_prod_id + 1,
        "miscselect": report.miscselect ^ 1,
        "attributes": flip(report.attributes, 0),  # INIT: inside attributesMask
    }
    forged = dataclasses.replace(report, **{field: changed[field]})
    error = sim.rejected("qe_identity_mismatch", resign(sim.platform, sim.quote, qe_report=forged))
    assert field.replace("_", "").upper() in str(error).replace("_", "").upper()


def test_quoting_enclave_svn_below_every_qe_level_is_rejected(sim: Sim) -> None:
    report = parse_quote(sim.quote).qe_report
    forged = dataclasses.replace(report, isv_svn=1)
    quote = resign(sim.platform, sim.quote, qe_report=forged)
    sim.rejected("isvsvn_not_supported", quote)


# -- other roots ---------------------------------------------------------------------------------


def test_quote_from_another_platform_is_untrusted(sim: Sim, other_platform: SimPlatform) -> None:
    foreign = make_quote(other_platform, sim.kind)
    error = sim.rejected("untrusted_root", foreign)
    assert "not the trust anchor" in str(error)
    own = other_platform.collateral(tee=sim.tee, now=NOW)
    sim.rejected("untrusted_root", foreign, own)
    verifier = Verifier(anchors=_anchor(sim.platform), collateral=own)
    with pytest.raises(VerificationError) as info:
        verifier.verify(Evidence(foreign, CLAIMS), _policy(), now=NOW)
    assert info.value.code == "untrusted_root"


def test_collateral_signed_under_another_root_is_refused(
    sim: Sim, other_platform: SimPlatform
) -> None:
    fake = other_platform.collateral(tee=sim.tee, now=NOW)
    sim.rejected("invalid_root_ca_crl", collateral=fake)
    for part in ("tcb_info", "qe_identity"):
        sim.rejected("untrusted_root", collateral=_take(sim.collateral, fake, part))


def test_simulated_quote_under_intel_root_is_untrusted(sim: Sim) -> None:
    verifier = Verifier(anchors=TrustAnchor.intel(), collateral=sim.collateral)
    evidence = Evidence(sim.quote, CLAIMS, simulated=False)  # the producer's flag is ignored
    with pytest.raises(VerificationError) as info:
        verifier.verify(evidence, _policy(), now=NOW)
    assert info.value.code == "untrusted_root"
    assert "SIMULATED" in str(info.value) and "TrustAnchor.simulation()" in str(info.value)
    both = Verifier(anchors=[TrustAnchor.intel(), _anchor(sim.platform)], collateral=sim.collateral)
    assert both.verify(evidence, _policy(), now=NOW).simulated is True


def test_simulated_evidence_is_refused_by_the_default_policy(sim: Sim) -> None:
    verifier = Verifier(anchors=_anchor(sim.platform), collateral=sim.collateral)
    with pytest.raises(PolicyError) as info:
        verifier.verify(Evidence(sim.quote, CLAIMS), default_policy(), now=NOW)
    assert info.value.check == "simulated"


# -- revocation ----------------------------------------------------------------------------------


def test_revoked_pck_is_rejected(tmp_path_factory: pytest.TempPathFactory) -> None:
    revoked = SimPlatform.init(tmp_path_factory.mktemp("sim-revoked"), revoked=True, now=NOW)
    for kind in KINDS:
        error = _sim(revoked, kind).rejected("pck_revoked")
        assert "revoked" in str(error)


def test_revoked_intermediate_on_the_root_crl_is_rejected(sim: Sim) -> None:
    crl = root_crl_revoking(sim.platform, "pck-processor-ca")
    error = sim.rejected(
        "ca_revoked", collateral=dataclasses.replace(sim.collateral, root_ca_crl=crl)
    )
    assert "Processor CA" in str(error)


def test_revoked_tcb_signer_on_the_root_crl_is_rejected(sim: Sim) -> None:
    crl = root_crl_revoking(sim.platform, "tcb-signing")
    error = sim.rejected(
        "ca_revoked", collateral=dataclasses.replace(sim.collateral, root_ca_crl=crl)
    )
    assert "TCB Signing" in str(error)


def test_revoked_tcb_level_is_rejected(tmp_path_factory: pytest.TempPathFactory) -> None:
    revoked = SimPlatform.init(tmp_path_factory.mktemp("sim-tcb-revoked"), tcb="Revoked", now=NOW)
    for kind in KINDS:
        _sim(revoked, kind).rejected("tcb_revoked")


# -- dates ---------------------------------------------------------------------------------------


def test_expired_collateral_is_refused_in_strict_mode_and_flagged_in_report_mode(sim: Sim) -> None:
    later = NOW + 30 * DAY  # nextUpdate was NOW - 1h + 30 days
    with pytest.raises(CollateralExpired, match="expired at"):
        sim.verify(now=later)
    flagged = sim.verify(now=later, expiry="report")
    assert flagged.collateral_expired is True and flagged.status == "UpToDate"
    assert sim.verify().collateral_expired is False
    verifier = Verifier(anchors=_anchor(sim.platform), collateral=sim.collateral)
    enclave = verifier.verify(Evidence(sim.quote, CLAIMS), _policy(), now=later, expiry="report")
    assert enclave.collateral_expired is True
    with pytest.raises(CollateralExpired):
        verifier.verify(Evidence(sim.quote, CLAIMS), _policy(), now=later)


def test_not_yet_valid_collateral_is_refused(sim: Sim) -> None:
    before = NOW - 3600 - 1  # issueDate / thisUpdate are NOW - 1h
    with pytest.raises(CollateralExpired, match="not valid before"):
        sim.verify(now=before)
    assert sim.verify(now=before, expiry="report").collateral_expired is True


# -- collateral for another platform -------------------------------------------------------------


def _tcb_info_for(
    sim: Sim, *, fmspc: bytes | None = None, pce_id: bytes | None = None
) -> Collateral:
    issued = sim.platform._state.settings.collateral_issued
    text = sim_coll.tcb_info_text(
        fmspc=fmspc or sim.platform.fmspc,
        pce_id=pce_id or sim.platform.pce_id,
        issue=issued,
        tee=sim.tee,
    )
    return dataclasses.replace(
        sim.collateral, tcb_info=text, tcb_info_signature=signed_doc(sim.platform, text)
    )


def test_tcb_info_resigned_by_the_tcb_signer_is_accepted(sim: Sim) -> None:
    """Control: our re-signed TCB Info for the platform's own FMSPC verifies."""
    assert sim.verify(collateral=_tcb_info_for(sim)).status == "UpToDate"


def test_tcb_info_for_another_fmspc_is_a_mismatch(sim: Sim) -> None:
    other = bytes([sim.platform.fmspc[0] ^ 0x80]) + sim.platform.fmspc[1:]
    error = sim.rejected("tcb_info_mismatch", collateral=_tcb_info_for(sim, fmspc=other))
    assert other.hex() in str(error) and sim.platform.fmspc.hex() in str(error)


def test_tcb_info_for_another_pce_id_is_a_mismatch(sim: Sim) -> None:
    forged = _tcb_info_for(sim, pce_id=flip(sim.platform.pce_id, 1))
    sim.rejected("tcb_info_mismatch", collateral=forged)


def test_collateral_of_the_other_tee_is_a_mismatch(sim: Sim) -> None:
    other = sim.platform.collateral(tee="tdx" if sim.tee == "sgx" else "sgx", now=NOW)
    sim.rejected("tcb_info_mismatch", collateral=_take(sim.collateral, other, "tcb_info"))
    sim.rejected("qe_identity_mismatch", collateral=_take(sim.collateral, other, "qe_identity"))


# -- policy and claims ---------------------------------------------------------------------------


def test_debug_enclave_verifies_but_the_default_policy_refuses_it(sim: Sim) -> None:
    quote = make_quote(sim.platform, sim.kind, debug=True)
    assert sim.verify(quote).quote.body.debug is True  # DCAP does not judge DEBUG
    verifier = Verifier(anchors=_anchor(sim.platform), collateral=sim.collateral)
    evidence = Evidence(quote, CLAIMS)
    with pytest.raises(PolicyError) as info:
        verifier.verify(evidence, _policy(), now=NOW)
    assert info.value.check == "debug"
    assert verifier.verify(evidence, _policy(allow_debug=True), now=NOW).debug is True


def test_claims_not_matching_report_data_are_refused(sim: Sim) -> None:
    verifier = Verifier(anchors=_anchor(sim.platform), collateral=sim.collateral)
    policy = _policy()
    assert verifier.verify(Evidence(sim.quote, CLAIMS), policy, now=NOW).claims == CLAIMS
    attempts: list[Callable[[], object]] = [
        lambda: verifier.verify(Evidence(sim.quote, b"other claims"), policy, now=NOW),
        lambda: verifier.verify(Evidence(sim.quote, CLAIMS), policy, now=NOW, claims=b"other"),
        lambda: verifier.verify(Evidence(sim.quote), policy, now=NOW, claims=b"other"),
        lambda: verifier.verify(Evidence(sim.quote), policy, now=NOW),
    ]
    for attempt in attempts:
        with pytest.raises(VerificationError) as info:
            attempt()
        assert info.value.code == "claims_mismatch"


def test_binding_to_another_nonce_is_refused(sim: Sim) -> None:
    verifier = Verifier(anchors=_anchor(sim.platform), collateral=sim.collateral)
    good = report_data_for(CLAIMS)
    verifier.verify(sim.quote, _policy(), now=NOW, binding=good[:32])
    for binding in (report_data_for(b"another nonce")[:32], flip(good, 63), good[:16]):
        with pytest.raises(VerificationError) as info:
            verifier.verify(sim.quote, _policy(), now=NOW, binding=binding)
        assert info.value.code == "claims_mismatch"


def test_another_mrenclave_is_refused_by_measurement_policy(sgx: Sim) -> None:
    verifier = Verifier(anchors=_anchor(sgx.platform), collateral=sgx.collateral)
    evidence = Evidence(sgx.quote, CLAIMS)
    verifier.verify(evidence, MeasurementIs.of(MRENCLAVE), now=NOW)
    other = Evidence(make_quote(sgx.platform, mrenclave=flip(MRENCLAVE, 0)), CLAIMS)
    for policy in (MeasurementIs.of(MRENCLAVE), _policy(mrenclave=[MRENCLAVE])):
        with pytest.raises(PolicyError) as info:
            verifier.verify(other, policy, now=NOW)
        assert info.value.check == "mrenclave"


def test_another_mrtd_is_refused_by_measurement_policy(platform: SimPlatform) -> None:
    material = _sim(platform, "tdx-v4")
    verifier = Verifier(anchors=_anchor(platform), collateral=material.collateral)
    with pytest.raises(PolicyError) as info:
        verifier.verify(Evidence(material.quote, CLAIMS), MeasurementIs.of(flip(MRTD, 47)), now=NOW)
    assert info.value.check == "mrenclave"


def test_svn_rollback_is_refused_by_signer_policy(sgx: Sim) -> None:
    verifier = Verifier(anchors=_anchor(sgx.platform), collateral=sgx.collateral)
    current = _policy(mrsigner=MRSIGNER, product_id=PRODUCT, min_svn=SVN)
    verifier.verify(Evidence(sgx.quote, CLAIMS), current, now=NOW)
    old = Evidence(make_quote(sgx.platform, isv_svn=SVN - 1), CLAIMS)
    for policy in (current, SignerIs(MRSIGNER, PRODUCT, min_svn=SVN)):
        with pytest.raises(PolicyError) as info:
            verifier.verify(old, policy, now=NOW)
        assert info.value.check == "min_svn"
    with pytest.raises(PolicyError) as info:
        verifier.verify(Evidence(sgx.quote, CLAIMS), SignerIs(flip(MRSIGNER, 0)), now=NOW)
    assert info.value.check == "mrsigner"


# -- a real enclave process ----------------------------------------------------------------------

ATTEST_APP = """
from __future__ import annotations

from typing import Annotated

from enklave.enclave import EnclaveApp, MaxLen, evidence

app = EnclaveApp("attester")


@app.ecall
def attest(claims: Annotated[bytes, MaxLen(256)], version: int) -> Annotated[bytes, MaxLen(65536)]:
    return evidence(claims, quote_version=version).to_bytes()
"""


def _hello_claims(nonce: bytes) -> bytes:
    """What examples/hello/enclave.py binds for ``nonce``."""
    return b"hello-claims/1\nnonce=" + nonce.hex().encode() + b"\nmotto=trust, but verify"


def test_enclave_evidence_refuses_claims_swap_and_nonce_replay(
    platform: SimPlatform,
    home: Path,
    hello_bundle: Path,
    open_hello: Callable[..., Enclave],
    tmp_path: Path,
) -> None:
    verifier = Verifier(anchors=_anchor(platform), collateral=platform.collateral(now=NOW))
    with open_hello(hello_bundle, tmp_path / "store", quiet=True, sim_home=home) as enclave:
        mrenclave = enclave.identity.mrenclave
        policy = _policy(mrenclave=[mrenclave])
        first = Evidence.from_bytes(enclave.call.attest(b"nonce-1"))
        second = Evidence.from_bytes(enclave.call.attest(b"nonce-2"))
    verified = verifier.verify(first, policy, now=NOW, claims=_hello_claims(b"nonce-1"))
    assert verified.simulated and verified.mrenclave == mrenclave
    verifier.verify(second, policy, now=NOW, claims=_hello_claims(b"nonce-2"))
    attacks: dict[str, Callable[[], object]] = {
        "claims swapped into the first quote": lambda: verifier.verify(
            Evidence(first.quote, second.claims), policy, now=NOW
        ),
        "first evidence replayed to a verifier expecting nonce-2": lambda: verifier.verify(
            first, policy, now=NOW, claims=_hello_claims(b"nonce-2")
        ),
        "first quote with the new claims, replayed": lambda: verifier.verify(
            Evidence(first.quote, _hello_claims(b"nonce-2")),
            policy,
            now=NOW,
            claims=_hello_claims(b"nonce-2"),
        ),
        "first quote bound to nonce-2's binding": lambda: verifier.verify(
            first.quote, policy, now=NOW, binding=report_data_for(_hello_claims(b"nonce-2"))
        ),
    }
    for name, attack in attacks.items():
        with pytest.raises(VerificationError) as info:
            attack()
        assert info.value.code == "claims_mismatch", name


def test_debug_enclave_process_evidence_is_refused_by_the_default_policy(
    platform: SimPlatform,
    home: Path,
    make_app: Callable[..., Path],
    key: object,
    tmp_path: Path,
) -> None:
    bundle = build(make_app(ATTEST_APP, debug=True), key, tmp_path / "debug.bundle")
    with Enclave.open(bundle, sim_home=home) as enclave:
        assert enclave.identity.debug is True
        evidence = Evidence.from_bytes(enclave.call.attest(b"n", 4))
    assert parse_quote(evidence.quote).header.version == 4
    verifier = Verifier(anchors=_anchor(platform), collateral=platform.collateral(now=NOW))
    with pytest.raises(PolicyError) as info:
        verifier.verify(evidence, _policy(), now=NOW)
    assert info.value.check == "debug"
    with pytest.raises(PolicyError) as info:
        verifier.verify(evidence, default_policy(allow_debug=True), now=NOW)
    assert info.value.check == "simulated"
