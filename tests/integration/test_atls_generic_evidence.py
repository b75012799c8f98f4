"""Forging an attested-TLS certificate from *generic* evidence (``enklave.enclave.evidence``).

The binding rules of attested TLS have the same shape as the public evidence API
(REPORTDATA = SHA-256(x) || zeros). An enclave that quotes host-chosen bytes (an ECALL
``attest(claims)``) must not thereby let the host make a certificate for the host's own key
that verifies as the enclave's. These tests run ``evidence()`` in-process under a
simulated enclave context, play the host, and check that every forgery path is refused;
``issue_credentials()`` inside the enclave keeps working through its private path.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from enklave.atls._binding import pem_with_nul
from enklave.atls._dice import encode_claims, encode_tagged_evidence
from enklave.atls._issue import issue_credentials
from enklave.atls._verify import PeerVerifier, verify_certificate
from enklave.backends.simulation import SimPlatform
from enklave.enclave import _context, evidence
from enklave.errors import EnklaveError, VerificationError
from enklave.models.identity import Identity
from enklave.verify import TrustAnchor, Verifier, default_policy

MRENCLAVE = b"\x11" * 32
DICE, GRAMINE, RAW = "2.23.133.5.4.9", "0.6.9.42.840.113741.1337.6", "1.2.840.113741.1337.6"
OE_REPORT = "1.3.6.1.4.1.311.105.1"


@dataclass
class _Ctx:
    identity: Identity
    sim_home: Path
    platform_secret: bytes = b"\x00" * 32
    files: dict[str, bytes] = field(default_factory=dict)

    def ocall(self, name: str, args: list[Any]) -> Any:  # pragma: no cover - unused
        raise NotImplementedError


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[SimPlatform, Path]:
    home = tmp_path_factory.mktemp("sim") / "platform"
    return SimPlatform.init(home), home


@pytest.fixture
def enclave(sim, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the test as code inside a simulated enclave (what an ECALL body sees)."""
    ident = Identity(mrenclave=MRENCLAVE, mrsigner=b"\x22" * 32, product_id=1,
                     security_version=1, debug=False, simulated=True)
    monkeypatch.setattr(_context, "_current", _Ctx(ident, sim[1]))


def verifier(sim) -> Verifier:
    return Verifier(anchors=TrustAnchor.simulation(sim[1]), collateral=sim[0].collateral())


def policy():
    return default_policy(mrenclave=[MRENCLAVE], allow_simulated=True)


def check(sim, der: bytes, **kw: Any):
    return verify_certificate(der, verifier=verifier(sim), policy=policy(),
                              now=int(time.time()), **kw)


def spki(key: Any) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def raw_point(key: Any, fmt: serialization.PublicFormat) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.X962, fmt)


def host_cert(key: Any, oid: str, value: bytes) -> bytes:
    """The certificate a host would build for its own key around a quote it obtained."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forged")])
    start = datetime.now(UTC) - timedelta(minutes=1)
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + timedelta(hours=1))
        .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value),
                       critical=False)
    )  # fmt: skip
    digest = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, digest).public_bytes(serialization.Encoding.DER)


_P256 = ec.generate_private_key(ec.SECP256R1())
_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
#: host-chosen claims that name the host's key under some binding rule
FORGERIES = {
    "dice-claims map": encode_claims(spki(_P256)),
    "dice-claims map with extras": encode_claims(spki(_P256), {"nonce": b"n" * 16}),
    "ec spki der": spki(_P256),
    "rsa spki der": spki(_RSA),
    "rsa pkcs1 key": _RSA.public_key().public_bytes(serialization.Encoding.DER,
                                                    serialization.PublicFormat.PKCS1),
    "ed25519 spki der": spki(ed25519.Ed25519PrivateKey.generate()),
    "p256 uncompressed point": raw_point(_P256, serialization.PublicFormat.UncompressedPoint),
    "p256 compressed point": raw_point(_P256, serialization.PublicFormat.CompressedPoint),
    "p384 uncompressed point": raw_point(ec.generate_private_key(ec.SECP384R1()),
                                         serialization.PublicFormat.UncompressedPoint),
    "pem + nul": pem_with_nul(spki(_P256)),
}


def test_rejects_host_forged_cert_from_generic_evidence(enclave, sim) -> None:
    """The attack end to end: the host asks the enclave's generic evidence API for a quote
    over DICE claims naming the host's key (then over its SPKI, for Gramine's format)."""
    attacker = ec.generate_private_key(ec.SECP256R1())
    for claims in (encode_claims(spki(attacker)), spki(attacker)):
        with pytest.raises(EnklaveError) as info:
            evidence(claims)  # what an ECALL passing host bytes through would do
        assert info.value.code == "reserved_claims"
        assert "context string" in info.value.message


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_evidence_refuses_every_key_shaped_claim(enclave, name: str) -> None:
    with pytest.raises(EnklaveError) as info:
        evidence(FORGERIES[name])
    assert info.value.code == "reserved_claims"


@pytest.mark.parametrize("claims", [
    b"", b"nonce", bytes(32), bytes(64), b"myapp/key:" + spki(_P256), b'{"nonce": "abc"}',
    b"\xa1\x65nonce\x41\x00",  # a CBOR map without pubkey-hash
    b"\x30\x03\x02\x01\x05",  # DER, but not a key
])  # fmt: skip
def test_evidence_accepts_ordinary_and_prefixed_claims(enclave, sim, claims: bytes) -> None:
    ev = evidence(claims)
    assert ev.claims == claims
    enclave_ = verifier(sim).verify(ev, policy(), now=int(time.time()), claims=claims)
    assert enclave_.mrenclave == MRENCLAVE


def test_rejects_forged_cert_from_prefixed_generic_evidence(enclave, sim) -> None:
    """With a context prefix the quote covers other bytes: no binding rule matches."""
    attacker = ec.generate_private_key(ec.SECP256R1())
    ev = evidence(b"myapp/key:" + spki(attacker))
    for oid in (GRAMINE, RAW):
        with pytest.raises(VerificationError) as info:
            check(sim, host_cert(attacker, oid, ev.quote))
        assert info.value.code == "key_binding"


def test_rejects_forged_ed25519_cert_from_nonce_evidence(enclave, sim) -> None:
    """A 32-byte "nonce" is exactly an Ed25519 raw key: evidence() must allow it (nonces),
    so the raw-key binding rule is not applied to Ed25519 certificates."""
    attacker = ed25519.Ed25519PrivateKey.generate()
    nonce = attacker.public_key().public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)
    ev = evidence(nonce)
    assert ev.quote and hashlib.sha256(nonce).digest() == ev.quote[368:400]
    with pytest.raises(VerificationError) as info:
        check(sim, host_cert(attacker, RAW, ev.quote))
    assert info.value.code == "key_binding"


def test_issued_credentials_still_bind_inside_the_enclave(enclave, sim) -> None:
    """issue_credentials() uses the private evidence path: DICE claims and the Gramine SPKI."""
    creds = issue_credentials(gramine_legacy=True)
    peer = check(sim, creds.certificate_der)
    assert (peer.format, peer.binding) == ("tcg-dice", "dice-claims")
    assert creds.evidence.claims.startswith(b"\xa1")  # the DICE claims map evidence() refuses


# -- verifier side: formats= ----------------------------------------------------------


def _enclave_evidence_for(sim, claims: bytes) -> bytes:
    from enklave.models.evidence import report_data_for

    return sim[0].quote(report_data_for(claims), mrenclave=MRENCLAVE, mrsigner=b"\x22" * 32,
                        isv_prod_id=1, isv_svn=1, debug=False)


def test_format_allowlist_refuses_a_generic_quote_under_another_format(sim) -> None:
    """A legacy-format certificate (made, say, from generic evidence an older enclave gave
    out) passes the binding check, but a verifier that expects enklave's DICE format
    refuses it before any quote is trusted."""
    key = ec.generate_private_key(ec.SECP256R1())
    der = host_cert(key, GRAMINE, _enclave_evidence_for(sim, spki(key)))
    assert check(sim, der).format == "gramine-legacy"  # no allowlist: any format
    with pytest.raises(VerificationError) as info:
        check(sim, der, formats=["tcg-dice"])
    assert info.value.code == "format_not_allowed" and "gramine-legacy" in info.value.message
    assert check(sim, der, formats={"tcg-dice", "gramine-legacy"}).binding == "spki-sha256"
    pv = PeerVerifier(verifier=verifier(sim), policy=policy(), formats=("tcg-dice",))
    with pytest.raises(VerificationError) as info:
        pv.verify(der)
    assert info.value.code == "format_not_allowed" and pv.hits == 0


def test_format_allowlist_accepts_dice_certificates(sim) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    claims = encode_claims(spki(key))
    der = host_cert(key, DICE, encode_tagged_evidence(_enclave_evidence_for(sim, claims), claims))
    pv = PeerVerifier(verifier=verifier(sim), policy=policy(), formats=["tcg-dice"])
    assert pv.verify(der).format == "tcg-dice"


@pytest.mark.parametrize("formats", ["tcg-dice", [], ["tcg-dice", "no-such-format"], [b"x"]])
def test_format_allowlist_rejects_bad_configuration(sim, formats: Any) -> None:
    with pytest.raises(VerificationError) as info:
        PeerVerifier(verifier=verifier(sim), policy=policy(), formats=formats)
    assert info.value.code == "bad_config"


def test_pem_claims_are_reserved_whatever_the_key(enclave) -> None:
    body = base64.b64encode(b"anything").decode()
    with pytest.raises(EnklaveError) as info:
        evidence(f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n".encode())
    assert info.value.code == "reserved_claims"
