"""The verifier side of attested TLS: X.509 reader, DICE codec, formats, binding, verify."""

from __future__ import annotations

import hashlib
import struct
import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from _atls_testkit import (
    ECDSA_SHA256,
    MRENCLAVE,
    MRSIGNER,
    cert_builder,
    dice_evidence,
    sim_quote,
    spki,
    with_null_ecdsa_params,
)
from enklave import _encoding
from enklave.atls._binding import bind, pem_with_nul
from enklave.atls._dice import (
    check_pubkey_hash,
    decode_claims,
    decode_tagged_evidence,
    encode_claims,
    encode_tagged_evidence,
)
from enklave.atls._formats import OE_SGX_ECDSA_UUID, find_evidence
from enklave.atls._inspect import inspect_certificate
from enklave.atls._verify import AttestedPeer, PeerVerifier, verify_certificate
from enklave.atls._x509 import Certificate, load_certificates
from enklave.backends.simulation import SimPlatform
from enklave.errors import CertificateError, PolicyError, VerificationError
from enklave.verify import TrustAnchor, Verifier, default_policy

DICE = "2.23.133.5.4.9"


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    home = tmp_path_factory.mktemp("sim")
    platform = SimPlatform.init(home)
    verifier = Verifier(anchors=TrustAnchor.simulation(home), collateral=platform.collateral())
    return platform, verifier


def make_cert(platform, *, key=None, ext=None, oid=DICE, debug=False,
              lifetime=timedelta(days=1), start=None, signer=None, extra=None,
              issuer="enklave test") -> bytes:
    """A self-signed cert carrying DICE evidence (or ``ext`` under ``oid``); with ``signer``
    and ``issuer`` (a common name) a CA-signed one."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    if ext is None:
        ext = dice_evidence(platform, key, debug=debug, extra=extra)
    issuer_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])
    builder = (
        cert_builder(key, "enklave test", issuer_name, start=start, lifetime=lifetime)
        .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), ext), False)
    )
    signer = signer or key
    algo = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(signer, algo).public_bytes(serialization.Encoding.DER)


def _policy(**kw):
    return default_policy(mrenclave=[MRENCLAVE], allow_simulated=True, **kw)


# ---- DICE codec ----------------------------------------------------------------------------


def test_dice_round_trip_and_pubkey_hash() -> None:
    claims = encode_claims(b"spki", {"nonce": b"n"})
    assert decode_claims(claims)["nonce"] == b"n"
    assert check_pubkey_hash(decode_claims(claims), b"spki") == 1
    value = encode_tagged_evidence(b"quote", claims)
    assert value[:3] == bytes.fromhex("d9ea60")
    assert decode_tagged_evidence(value) == (60000, b"quote", claims)
    with pytest.raises(VerificationError) as info:
        check_pubkey_hash(decode_claims(claims), b"other")
    assert info.value.code == "key_binding"


@pytest.mark.parametrize("alg,fn", [(7, hashlib.sha384), (8, hashlib.sha512)])
def test_dice_accepts_sha384_and_sha512_pubkey_hash(alg, fn) -> None:
    claims = _encoding.dumps({"pubkey-hash": _encoding.dumps([alg, fn(b"k").digest()])})
    assert check_pubkey_hash(decode_claims(claims), b"k") == alg


def test_dice_accepts_unsorted_keys_and_refuses_duplicates() -> None:
    ph = _encoding.dumps([1, hashlib.sha256(b"k").digest()])
    unsorted = b"\xa2" + _encoding.dumps("pubkey-hash") + _encoding.dumps(ph) + (
        _encoding.dumps("a") + _encoding.dumps(b"x"))
    assert set(decode_claims(unsorted)) == {"pubkey-hash", "a"}
    dup = b"\xa2" + (_encoding.dumps("pubkey-hash") + _encoding.dumps(ph)) * 2
    with pytest.raises(CertificateError):
        decode_claims(dup)


@pytest.mark.parametrize("bad", [
    b"", b"\x82\x41a\x41b", bytes.fromhex("d9ea61") + _encoding.dumps([b"q", b"c"]),
    bytes.fromhex("d9ea60") + _encoding.dumps([b"q"]), bytes.fromhex("d9ea60") + b"\x9f",
    bytes.fromhex("d9ea60") + _encoding.dumps([b"q", b"c"]) + b"\0",
])
def test_dice_refuses_malformed_evidence(bad: bytes) -> None:
    with pytest.raises(CertificateError):
        decode_tagged_evidence(bad)


def test_encode_claims_refuses_pubkey_hash_override() -> None:
    with pytest.raises(CertificateError):
        encode_claims(b"k", {"pubkey-hash": b"x"})


# ---- X.509 reader --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["p256", "p384", "p521", "rsa", "ed25519"])
def test_reader_matches_cryptography(sim, kind: str) -> None:
    key = {"p256": lambda: ec.generate_private_key(ec.SECP256R1()),
           "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
           "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
           "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
           "ed25519": ed25519.Ed25519PrivateKey.generate}[kind]()
    der = make_cert(sim[0], key=key)
    ours, theirs = Certificate.from_der(der), x509.load_der_x509_certificate(der)
    assert ours.spki_der == spki(key)
    assert ours.tbs == theirs.tbs_certificate_bytes
    assert ours.serial == theirs.serial_number
    assert ours.not_after == theirs.not_valid_after_utc.replace(microsecond=0)
    assert ours.extension(DICE) is not None and ours.subject == "CN=enklave test"
    ours.verify_signature()
    assert Certificate.load(ours.pem().encode()).der == der
    assert load_certificates(ours.pem().encode() * 2)[1].der == der


def test_reader_accepts_mbedtls_null_params_and_checks_signature(sim) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    der = with_null_ecdsa_params(make_cert(sim[0], key=key), key)
    with pytest.raises(ValueError):
        x509.load_der_x509_certificate(der)  # cryptography >= 50 refuses it
    cert = Certificate.from_der(der)
    assert cert.signature_algorithm == "ecdsa-sha256"
    cert.verify_signature()
    assert bind(cert, find_evidence(cert)[0]).rule == "dice-claims"
    # one flipped bit in the signed part must be caught
    tampered = Certificate.from_der(der.replace(b"enklave test", b"enklave tesu", 1))
    with pytest.raises(CertificateError) as info:
        tampered.verify_signature()
    assert info.value.code == "bad_signature"


@pytest.mark.parametrize("bad", [b"", b"\x30\x00", b"\x30\x80\x00\x00", b"junk",
                                 b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----"])
def test_reader_refuses_garbage(bad: bytes) -> None:
    with pytest.raises(CertificateError):
        Certificate.load(bad)


def test_reader_refuses_odd_algorithm_parameters(sim) -> None:
    der = make_cert(sim[0])
    bad = der.replace(ECDSA_SHA256, bytes.fromhex("300c06082a8648ce3d0403020101"), 1)
    with pytest.raises(CertificateError):
        Certificate.from_der(bad)


# ---- formats and binding -------------------------------------------------------------------


def test_dice_cert_binds_with_dice_claims(sim) -> None:
    cert = Certificate.from_der(make_cert(sim[0]))
    (ev,) = find_evidence(cert)
    assert ev.format == "tcg-dice"
    binding = bind(cert, ev)
    assert binding.rule == "dice-claims" and binding.claims == ev.claims


def test_missing_extension_is_typed(sim) -> None:
    cert = Certificate.from_der(make_cert(sim[0], ext=b"\x05\x00", oid="1.2.3.4"))
    with pytest.raises(CertificateError) as info:
        find_evidence(cert)
    assert info.value.code == "missing_extension"


@pytest.mark.parametrize("rule", ["spki", "pem"])
def test_oe_report_accepts_both_hash_conventions(sim, rule: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pre = spki(key) if rule == "spki" else pem_with_nul(spki(key))
    quote = sim[0].quote(hashlib.sha256(pre).digest() + bytes(32), mrenclave=MRENCLAVE,
                         mrsigner=MRSIGNER, isv_prod_id=1, isv_svn=1, debug=False)
    ext = struct.pack("<IIQ", 1, 2, len(quote)) + quote
    cert = Certificate.from_der(make_cert(sim[0], key=key, ext=ext, oid="1.3.6.1.4.1.311.105.1"))
    (ev,) = find_evidence(cert)
    assert bind(cert, ev).rule == ("spki-sha256" if rule == "spki" else "pem-nul-sha256")
    peer = verify_certificate(cert, verifier=sim[1], policy=_policy(), now=int(time.time()))
    assert peer.format == "oe-report"


def test_oe_evidence_v2_binds_custom_claims(sim) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    claims = pem_with_nul(spki(key))
    quote = sim_quote(sim[0], claims)
    data = quote + claims
    ext = struct.pack("<I", 3) + OE_SGX_ECDSA_UUID + bytes(4) + struct.pack("<Q", len(data)) + data
    cert = Certificate.from_der(make_cert(sim[0], key=key, ext=ext, oid="1.3.6.1.4.1.311.105.2"))
    (ev,) = find_evidence(cert)
    assert (ev.format, ev.quote, ev.claims) == ("oe-evidence", quote, claims)
    assert bind(cert, ev).rule == "pem-nul-sha256"
    other = Certificate.from_der(make_cert(sim[0], ext=ext, oid="1.3.6.1.4.1.311.105.2"))
    with pytest.raises(VerificationError) as info:
        bind(other, find_evidence(other)[0])
    assert info.value.code == "key_binding"


def test_dstack_container_and_padding(sim) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    quote = sim[0].quote(hashlib.sha512(b"ratls-cert:" + spki(key)).digest(), mrenclave=MRENCLAVE,
                         mrsigner=MRSIGNER, isv_prod_id=1, isv_svn=1, debug=False)
    from enklave.models._der import tlv
    ext = tlv(0x04, quote + bytes(70))
    cert = Certificate.from_der(make_cert(sim[0], key=key, ext=ext, oid="1.3.6.1.4.1.62397.1.1"))
    (ev,) = find_evidence(cert)
    assert ev.quote == quote and bind(cert, ev).rule == "dstack-sha512"
    junk = Certificate.from_der(make_cert(sim[0], key=key, ext=tlv(0x04, quote + b"\x01"),
                                          oid="1.3.6.1.4.1.62397.1.1"))
    with pytest.raises(CertificateError):
        find_evidence(junk)


# ---- verify_certificate and PeerVerifier ---------------------------------------------------


def test_verify_certificate_accepts_good_dice_cert(sim) -> None:
    der = make_cert(sim[0], extra={"nonce": b"abc"})
    peer = verify_certificate(der, verifier=sim[1], policy=_policy(), now=int(time.time()))
    assert isinstance(peer, AttestedPeer)
    assert (peer.format, peer.binding) == ("tcg-dice", "dice-claims")
    assert peer.claims["nonce"] == b"abc" and peer.enclave.mrenclave == MRENCLAVE
    assert peer.to_dict()["enclave"]["simulated"] is True
    with pytest.raises(TypeError):
        AttestedPeer(object(), None, None, None, None)  # type: ignore[arg-type]


def test_verify_certificate_checks_in_order(sim) -> None:
    past = datetime.now(UTC) - timedelta(days=3)
    expired = make_cert(sim[0], start=past)
    with pytest.raises(VerificationError) as info:
        verify_certificate(expired, verifier=sim[1], policy=_policy(), now=int(time.time()))
    assert info.value.code == "certificate_expired"
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CertificateError) as info2:
        verify_certificate(make_cert(sim[0], signer=other), verifier=sim[1], policy=_policy(),
                           now=int(time.time()))
    assert info2.value.code == "bad_signature"
    with pytest.raises(PolicyError):
        verify_certificate(make_cert(sim[0], debug=True), verifier=sim[1], policy=_policy(),
                           now=int(time.time()))


def make_ca(name: str = "Test KMS CA", key=None) -> tuple[object, bytes]:
    """A CA key and its self-signed certificate (PEM)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    cert = (
        cert_builder(key, name)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


def test_ca_signed_cert_verifies_under_its_issuer_only(sim) -> None:
    ca_key, ca_pem = make_ca()
    der = make_cert(sim[0], signer=ca_key, issuer="Test KMS CA")
    now = int(time.time())
    with pytest.raises(CertificateError) as info:  # no issuers: must be self-signed
        verify_certificate(der, verifier=sim[1], policy=_policy(), now=now)
    assert info.value.code == "bad_signature"
    _, other_pem = make_ca("Other CA")
    for issuers in ([ca_pem], [Certificate.load(ca_pem)], [other_pem + ca_pem]):
        peer = verify_certificate(der, verifier=sim[1], policy=_policy(), now=now,
                                  issuers=issuers)
        assert peer.enclave.mrenclave == MRENCLAVE
    pv = PeerVerifier(verifier=sim[1], policy=_policy(), issuers=[ca_pem])
    assert pv.verify(der).binding == "dice-claims"
    with pytest.raises(PolicyError):  # the issuer is no trust decision: the evidence still is
        verify_certificate(make_cert(sim[0], signer=ca_key, issuer="Test KMS CA", debug=True),
                           verifier=sim[1], policy=_policy(), now=now, issuers=[ca_pem])


def test_cert_signed_by_an_issuer_not_passed_is_refused(sim) -> None:
    """Attack: the certificate names (and is signed by) a CA the verifier was not given."""
    ca_key, _ = make_ca("Test KMS CA")
    _, other_pem = make_ca("Other CA")
    der = make_cert(sim[0], signer=ca_key, issuer="Test KMS CA")
    with pytest.raises(CertificateError) as info:
        verify_certificate(der, verifier=sim[1], policy=_policy(), now=int(time.time()),
                           issuers=[other_pem])
    assert info.value.code == "unknown_issuer" and "Test KMS CA" in info.value.message
    self_signed = make_cert(sim[0])  # issuers given: self-signed is not enough any more
    with pytest.raises(CertificateError) as info:
        PeerVerifier(verifier=sim[1], policy=_policy(), issuers=[other_pem]).verify(self_signed)
    assert info.value.code == "unknown_issuer"


def test_issuer_with_the_right_name_but_another_key_is_refused(sim) -> None:
    """Attack: a look-alike CA certificate (same subject, the attacker's key)."""
    ca_key, _ = make_ca("Test KMS CA")
    _, lookalike = make_ca("Test KMS CA")
    der = make_cert(sim[0], signer=ca_key, issuer="Test KMS CA")
    pv = PeerVerifier(verifier=sim[1], policy=_policy(), issuers=[lookalike])
    with pytest.raises(CertificateError) as info:
        pv.verify(der)
    assert info.value.code == "bad_signature" and "another key" in info.value.message
    assert pv.misses == 1 and pv.hits == 0


@pytest.mark.parametrize("bad", [b"not a cert", [object()], make_ca()[1]])
def test_issuers_must_be_certificates(bad) -> None:
    with pytest.raises(VerificationError) as info:  # one bytes value: wrap it in a list
        PeerVerifier(verifier=None, policy=None, issuers=bad)  # type: ignore[arg-type]
    assert info.value.code == "bad_config"
    with pytest.raises(CertificateError) as cinfo:
        verify_certificate(b"x", verifier=None, policy=None, now=0,  # type: ignore[arg-type]
                           issuers=[b"not a certificate"])
    assert cinfo.value.code == "missing_certificate"


def test_peer_verifier_caches_successes_only(sim) -> None:
    clock = [time.time()]
    pv = PeerVerifier(verifier=sim[1], policy=_policy(), clock=lambda: clock[0], cache_ttl=60)
    der = make_cert(sim[0])
    first = pv.verify(der)
    assert pv.verify(der) is first and (pv.hits, pv.misses) == (1, 1)
    clock[0] += 61
    assert pv.verify(der) is not first and pv.misses == 2
    pv.clear_cache()
    pv.verify(der)
    assert pv.misses == 3


def test_inspect_reports_without_trust(sim) -> None:
    der = make_cert(sim[0])
    report = inspect_certificate(der).to_dict()
    assert report["evidence"][0]["format"] == "tcg-dice"
    assert report["evidence"][0]["binding"]["rule"] == "dice-claims"
    assert report["self_signature"] == "ok"
    assert report["evidence"][0]["quote"]["mrenclave"] == MRENCLAVE.hex()
