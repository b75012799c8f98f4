"""Attested-TLS certificate attacks, each named after the attack: every one must be refused
with a typed error (and nothing is cached)."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from _atls_testkit import MRENCLAVE, MRSIGNER, cert_builder, dice_evidence, spki
from enklave import _encoding
from enklave.atls._dice import decode_tagged_evidence, encode_claims, encode_tagged_evidence
from enklave.atls._verify import PeerVerifier, verify_certificate
from enklave.atls._x509 import Certificate
from enklave.backends.simulation import SimPlatform
from enklave.errors import CertificateError, PolicyError, VerificationError
from enklave.verify import TrustAnchor, Verifier, default_policy

DICE = "2.23.133.5.4.9"
RATLS = Path(__file__).resolve().parents[2].parent / "shared" / "testvectors" / "ratls"


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    home = tmp_path_factory.mktemp("sim")
    platform = SimPlatform.init(home)
    verifier = Verifier(anchors=TrustAnchor.simulation(home), collateral=platform.collateral())
    return platform, verifier


def cert_for(key, value: bytes | None, *, oid: str = DICE, start=None,
             lifetime=timedelta(hours=1), signer=None) -> bytes:
    builder = cert_builder(key, "attack", start=start, lifetime=lifetime)
    if value is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False)
    return builder.sign(signer or key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def new_key():
    return ec.generate_private_key(ec.SECP256R1())


def policy(**kw):
    return default_policy(mrenclave=[MRENCLAVE], allow_simulated=True, **kw)


def check(sim, der: bytes, pol=None, now=None):
    return verify_certificate(der, verifier=sim[1], policy=pol or policy(),
                              now=now if now is not None else int(time.time()))


def test_genuine_cert_is_accepted(sim) -> None:
    key = new_key()
    peer = check(sim, cert_for(key, dice_evidence(sim[0], key)))
    assert peer.binding == "dice-claims"


def test_rejects_key_swapped_cert(sim) -> None:
    victim, attacker = new_key(), new_key()
    der = cert_for(attacker, dice_evidence(sim[0], victim))  # evidence made for another key
    with pytest.raises(VerificationError) as info:
        check(sim, der)
    assert info.value.code == "key_binding"


def test_rejects_evidence_replayed_in_new_cert(sim) -> None:
    key = new_key()
    genuine = Certificate.from_der(cert_for(key, dice_evidence(sim[0], key)))
    check(sim, genuine.der)
    stolen = genuine.extension(DICE)
    assert stolen is not None
    der = cert_for(new_key(), stolen.value)  # the same extension, a fresh key
    with pytest.raises(VerificationError) as info:
        check(sim, der)
    assert info.value.code == "key_binding"


def test_rejects_expired_cert(sim) -> None:
    key = new_key()
    der = cert_for(key, dice_evidence(sim[0], key), start=datetime.now(UTC) - timedelta(hours=2))
    with pytest.raises(VerificationError) as info:
        check(sim, der)
    assert info.value.code == "certificate_expired"


def test_rejects_not_yet_valid_cert(sim) -> None:
    key = new_key()
    der = cert_for(key, dice_evidence(sim[0], key), start=datetime.now(UTC) + timedelta(hours=1))
    with pytest.raises(VerificationError) as info:
        check(sim, der)
    assert info.value.code == "certificate_expired"
    assert "not yet valid" in info.value.message


def test_rejects_debug_enclave(sim) -> None:
    key = new_key()
    der = cert_for(key, dice_evidence(sim[0], key, debug=True))
    with pytest.raises(PolicyError) as info:
        check(sim, der)
    assert info.value.check == "debug"
    assert check(sim, der, policy(allow_debug=True)).enclave.debug  # only when allowed


def test_rejects_simulated_evidence_under_intel_only_trust(sim) -> None:
    key = new_key()
    der = cert_for(key, dice_evidence(sim[0], key))
    intel_only = Verifier(anchors=TrustAnchor.intel(), collateral=sim[0].collateral())
    with pytest.raises(VerificationError) as info:
        verify_certificate(der, verifier=intel_only, policy=policy(), now=int(time.time()))
    assert info.value.code == "untrusted_root"


def test_rejects_simulated_evidence_under_default_policy(sim) -> None:
    key = new_key()
    der = cert_for(key, dice_evidence(sim[0], key))
    with pytest.raises(PolicyError) as info:
        check(sim, der, default_policy(mrenclave=[MRENCLAVE]))
    assert info.value.check == "simulated"


def test_rejects_missing_extension(sim) -> None:
    with pytest.raises(CertificateError) as info:
        check(sim, cert_for(new_key(), None))
    assert info.value.code == "missing_extension"


def test_rejects_tampered_claims(sim) -> None:
    key = new_key()
    _, quote, _ = decode_tagged_evidence(dice_evidence(sim[0], key))
    forged = encode_claims(spki(key), {"role": b"admin"})  # the quote covers other claims
    with pytest.raises(VerificationError) as info:
        check(sim, cert_for(key, encode_tagged_evidence(quote, forged)))
    assert info.value.code == "key_binding"


def test_rejects_claims_whose_pubkey_hash_names_another_key(sim) -> None:
    key, other = new_key(), new_key()
    value = dice_evidence(sim[0], other)  # quote honestly covers claims about `other`
    with pytest.raises(VerificationError) as info:
        check(sim, cert_for(key, value))
    assert info.value.code == "key_binding"


def test_rejects_bad_self_signature(sim) -> None:
    key = new_key()
    der = cert_for(key, dice_evidence(sim[0], key), signer=new_key())
    with pytest.raises(CertificateError) as info:
        check(sim, der)
    assert info.value.code == "bad_signature"


def test_rejects_wrong_mrenclave_policy(sim) -> None:
    key = new_key()
    der = cert_for(key, dice_evidence(sim[0], key))
    with pytest.raises(PolicyError) as info:
        check(sim, der, default_policy(mrenclave=[b"\x33" * 32], allow_simulated=True))
    assert info.value.check == "mrenclave"


def test_rejects_report_data_with_nonzero_tail(sim) -> None:
    """B1 binds 32 bytes and requires zeros after them: a quote whose tail carries other
    data (made for a different purpose) must not bind."""
    key = new_key()
    rd = hashlib.sha256(spki(key)).digest() + b"\x01" * 32
    quote = sim[0].quote(rd, mrenclave=MRENCLAVE, mrsigner=MRSIGNER, isv_prod_id=1,
                         isv_svn=1, debug=False)
    with pytest.raises(VerificationError) as info:
        check(sim, cert_for(key, quote, oid="1.2.840.113741.1337.6"))
    assert info.value.code == "key_binding"


def test_rejects_unsupported_dice_evidence_tag(sim) -> None:
    key = new_key()
    _, quote, claims = decode_tagged_evidence(dice_evidence(sim[0], key))
    value = _encoding.head(6, 60001) + _encoding.dumps([quote, claims])
    with pytest.raises(CertificateError) as info:
        check(sim, cert_for(key, value))
    assert info.value.code == "unsupported_evidence"


@pytest.mark.skipif(not RATLS.exists(), reason="shared test vectors are absent")
def test_rejects_epid_evidence(sim) -> None:
    real = Certificate.load((RATLS / "integritee-pallets/ra_dump_cert_TEST4.der").read_bytes())
    comment = real.extension("2.16.840.1.113730.1.13")
    assert comment is not None
    der = cert_for(new_key(), comment.value, oid="2.16.840.1.113730.1.13")
    with pytest.raises(VerificationError) as info:
        check(sim, der)
    assert info.value.code == "unsupported_evidence"
    assert "retired" in info.value.message and "DCAP" in info.value.message


def test_cache_does_not_cache_failures(sim) -> None:
    pv = PeerVerifier(verifier=sim[1], policy=policy())
    key = new_key()
    bad = cert_for(key, dice_evidence(sim[0], new_key()))
    for _ in range(3):
        with pytest.raises(VerificationError):
            pv.verify(bad)
    assert (pv.hits, pv.misses) == (0, 3)
    good = cert_for(key, dice_evidence(sim[0], key))
    pv.verify(good)
    pv.verify(good)
    assert (pv.hits, pv.misses) == (1, 4)


def test_cache_entry_expires_with_cert(sim) -> None:
    key = new_key()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    der = cert_for(key, dice_evidence(sim[0], key), start=start, lifetime=timedelta(seconds=60))
    clock = [time.time()]
    pv = PeerVerifier(verifier=sim[1], policy=policy(), clock=lambda: clock[0], cache_ttl=3600)
    pv.verify(der)
    clock[0] = (start + timedelta(seconds=59)).timestamp()
    pv.verify(der)
    assert pv.hits == 1
    clock[0] = (start + timedelta(seconds=61)).timestamp()  # past not_after: no cached answer
    with pytest.raises(VerificationError) as info:
        pv.verify(der)
    assert info.value.code == "certificate_expired" and pv.hits == 1


def test_cache_is_keyed_by_the_whole_certificate(sim) -> None:
    key = new_key()
    value = dice_evidence(sim[0], key)
    good = cert_for(key, value)
    pv = PeerVerifier(verifier=sim[1], policy=policy())
    pv.verify(good)
    resigned = cert_for(key, value, signer=new_key())  # same key and evidence, bad signature
    with pytest.raises(CertificateError):
        pv.verify(resigned)
    assert pv.hits == 0
