"""Attested TLS credentials made in the enclave (enklave.atls._issue), with simulated evidence.

The evidence function is the simulated platform's quote over SHA-256(claims), exactly
what ``enklave.enclave.evidence`` produces inside a running simulated enclave.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
import tempfile
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from enklave import _encoding
from enklave.atls._dice import decode_claims, decode_tagged_evidence
from enklave.atls._formats import find_evidence
from enklave.atls._issue import Credentials, _write_key_files, issue_credentials
from enklave.atls._rotate import RotatingCredentials
from enklave.atls._verify import verify_certificate
from enklave.atls._x509 import Certificate
from enklave.backends.simulation import SimPlatform
from enklave.errors import AtlsError, ConfigError, NotInEnclaveError, PolicyError
from enklave.models.evidence import Evidence, report_data_for
from enklave.models.quote import Quote
from enklave.verify import TrustAnchor, Verifier, default_policy

MRENCLAVE = b"\x11" * 32
DICE = "2.23.133.5.4.9"
GRAMINE = "0.6.9.42.840.113741.1337.6"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[SimPlatform, Path]:
    home = tmp_path_factory.mktemp("sim") / "platform"
    return SimPlatform.init(home), home


@pytest.fixture(scope="module")
def evidence(sim):
    platform, _ = sim

    def make(claims: bytes) -> Evidence:
        quote = platform.quote(report_data_for(claims), mrenclave=MRENCLAVE,
                               mrsigner=b"\x22" * 32, isv_prod_id=1, isv_svn=1, debug=False)
        return Evidence(quote=quote, claims=claims, simulated=True)

    return make


def verifier_for(sim) -> Verifier:
    platform, home = sim
    return Verifier(anchors=TrustAnchor.simulation(home), collateral=platform.collateral())


def spki_of(creds: Credentials) -> bytes:
    return Certificate.from_der(creds.certificate_der).spki_der


def test_dice_extension_binds_the_claims_and_the_claims_bind_the_key(evidence) -> None:
    creds = issue_credentials(evidence=evidence, extra_claims={"nonce": b"n" * 16})
    cert = Certificate.from_der(creds.certificate_der)
    ext = cert.extension(DICE)
    assert ext is not None and not ext.critical
    tag, quote, claims = decode_tagged_evidence(ext.value)
    assert tag == 60000 and quote == creds.evidence.quote and claims == creds.evidence.claims
    decoded = decode_claims(claims)
    assert decoded["nonce"] == b"n" * 16
    assert _encoding.loads(decoded["pubkey-hash"]) == [1, hashlib.sha256(cert.spki_der).digest()]
    report_data = Quote.from_bytes(quote).report_data
    assert report_data[:32] == hashlib.sha256(claims).digest()
    assert report_data[32:] == bytes(32)
    assert cert.extension(GRAMINE) is None


@pytest.mark.parametrize(
    ("key_type", "key_class", "signature"),
    [
        ("ec-p256", ec.EllipticCurvePublicKey, "ecdsa-sha256"),
        ("ec-p384", ec.EllipticCurvePublicKey, "ecdsa-sha384"),
        ("rsa-3072", rsa.RSAPublicKey, "rsa-pkcs1-sha256"),
    ],
)
def test_key_types_make_self_signed_certificates(evidence, key_type, key_class, signature):
    creds = issue_credentials(key_type=key_type, evidence=evidence)
    cert = Certificate.from_der(creds.certificate_der)
    assert creds.key_type == cert.key_type == key_type
    assert isinstance(cert.public_key(), key_class)
    assert cert.signature_algorithm == signature
    cert.verify_signature()


def test_certificate_fields(evidence) -> None:
    from cryptography import x509

    now = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    creds = issue_credentials(evidence=evidence, subject="my-service", now=now,
                              lifetime=dt.timedelta(hours=2))
    cert = x509.load_der_x509_certificate(creds.certificate_der)
    assert cert.subject.rfc4514_string() == "CN=my-service" == cert.issuer.rfc4514_string()
    assert cert.not_valid_before_utc == now - dt.timedelta(minutes=1)
    assert cert.not_valid_after_utc == now + dt.timedelta(hours=2) == creds.not_after
    assert 0 < cert.serial_number < 2**128
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert creds.certificate_pem.startswith("-----BEGIN CERTIFICATE-----")
    other = issue_credentials(evidence=evidence, now=now)
    assert x509.load_der_x509_certificate(other.certificate_der).serial_number != cert.serial_number


def test_gramine_legacy_extension_uses_the_mangled_oid_and_binds_the_spki(evidence) -> None:
    creds = issue_credentials(evidence=evidence, gramine_legacy=True, key_type="ec-p384")
    cert = Certificate.from_der(creds.certificate_der)
    ext = cert.extension(GRAMINE)
    assert ext is not None and not ext.critical
    assert ext.oid_content == bytes.fromhex("06092a864886f84d8a3906")
    # in the DER: OBJECT IDENTIFIER, length 11, then Gramine's bytes as the content
    assert bytes.fromhex("060b06092a864886f84d8a3906") in creds.certificate_der
    report_data = Quote.from_bytes(ext.value).report_data
    assert report_data == hashlib.sha256(cert.spki_der).digest() + bytes(32)
    formats = [ev.format for ev in find_evidence(cert)]
    assert formats[0] == "tcg-dice" and "gramine-legacy" in formats


def test_verify_certificate_accepts_issued_credentials(evidence, sim) -> None:
    creds = issue_credentials(evidence=evidence, gramine_legacy=True)
    policy = default_policy(mrenclave=[MRENCLAVE], allow_simulated=True)
    peer = verify_certificate(creds.certificate_der, verifier=verifier_for(sim), policy=policy,
                              now=int(time.time()))
    assert peer.format == "tcg-dice" and peer.binding == "dice-claims"
    assert peer.enclave.mrenclave == MRENCLAVE
    assert "pubkey-hash" in peer.claims


def test_rejects_credentials_of_another_enclave(evidence, sim) -> None:
    creds = issue_credentials(evidence=evidence)
    policy = default_policy(mrenclave=[b"\x33" * 32], allow_simulated=True)
    with pytest.raises(PolicyError):
        verify_certificate(creds.certificate_der, verifier=verifier_for(sim), policy=policy,
                           now=int(time.time()))


def test_rotation_gives_a_new_key_and_fresh_evidence(evidence) -> None:
    clock = [100.0]
    rot = RotatingCredentials(interval=60, clock=lambda: clock[0], evidence=evidence)
    first = rot.current()
    clock[0] += 59
    assert rot.current() is first and rot.issued == 1
    clock[0] += 1
    second = rot.current()
    assert second is not first and rot.issued == 2
    assert spki_of(second) != spki_of(first)
    assert second.evidence.quote != first.evidence.quote
    assert second.evidence.claims != first.evidence.claims
    assert rot.current() is second


def test_rotation_rejects_a_non_positive_interval(evidence) -> None:
    with pytest.raises(ConfigError):
        RotatingCredentials(interval=0, evidence=evidence)


@pytest.mark.parametrize("interval,lifetime", [
    (86400, None), (90000, None), (60, dt.timedelta(seconds=60)), (61, dt.timedelta(minutes=1)),
])  # fmt: skip
def test_rotation_rejects_interval_not_below_lifetime(evidence, interval, lifetime) -> None:
    """Rotating no sooner than the certificate expires would serve expired certificates."""
    kwargs = {} if lifetime is None else {"lifetime": lifetime}
    with pytest.raises(ConfigError, match="lifetime"):
        RotatingCredentials(interval=interval, evidence=evidence, **kwargs)
    below = (lifetime or dt.timedelta(days=1)).total_seconds() - 1
    assert RotatingCredentials(interval=below, evidence=evidence, **kwargs).issued == 1


def test_rotation_rejects_a_fixed_issue_time(evidence) -> None:
    """A fixed now= would give every rotated certificate the same, ageing validity window."""
    with pytest.raises(ConfigError, match="now"):
        RotatingCredentials(interval=60, evidence=evidence, now=dt.datetime.now(dt.UTC))


def test_contexts_leave_no_key_file_behind(evidence, tmp_path, monkeypatch) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    creds = issue_credentials(evidence=evidence)
    server, client = creds.server_context(), creds.client_context()
    RotatingCredentials(interval=10, evidence=evidence).server_context()
    assert list(scratch.iterdir()) == []
    assert creds.server_context() is server  # built once
    assert server.minimum_version >= __import__("ssl").TLSVersion.TLSv1_2
    assert client.verify_mode == __import__("ssl").CERT_NONE and not client.check_hostname


def test_key_file_is_encrypted_and_private(evidence, tmp_path) -> None:
    creds = issue_credentials(evidence=evidence)
    password = os.urandom(32)
    _, key_path = _write_key_files(tmp_path, creds.certificate_pem.encode(), creds._key, password)
    pem = key_path.read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    with pytest.raises(TypeError):  # unusable without the in-memory password
        serialization.load_pem_private_key(pem, password=None)
    key = serialization.load_pem_private_key(pem, password=password)
    assert key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == spki_of(creds)


def test_no_public_attribute_exposes_the_private_key(evidence) -> None:
    creds = issue_credentials(evidence=evidence)
    public = {name: getattr(creds, name) for name in dir(creds) if not name.startswith("_")}
    for value in public.values():
        assert not isinstance(value, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
        assert b"PRIVATE KEY" not in (value if isinstance(value, bytes) else str(value).encode())
    assert "PRIVATE" not in repr(creds)


def test_rejects_bad_arguments(evidence) -> None:
    with pytest.raises(ConfigError):
        issue_credentials(key_type="ed25519", evidence=evidence)
    with pytest.raises(ConfigError):
        issue_credentials(evidence=evidence, lifetime=dt.timedelta(0))
    with pytest.raises(ConfigError):
        issue_credentials(evidence=evidence, now=dt.datetime(2030, 1, 1))  # naive
    with pytest.raises(Exception) as info:
        issue_credentials(evidence=evidence, extra_claims={"pubkey-hash": b"x"})
    assert info.value.code == "bad_claims"


def test_rejects_evidence_for_other_claims(evidence) -> None:
    def wrong(claims: bytes) -> Evidence:
        return evidence(claims + b"x")

    with pytest.raises(AtlsError) as info:
        issue_credentials(evidence=wrong)
    assert info.value.code == "evidence"


def test_evidence_function_failures_are_typed() -> None:
    def broken(claims: bytes) -> Evidence:
        raise RuntimeError("quoting enclave unavailable")

    with pytest.raises(AtlsError, match="quoting enclave unavailable"):
        issue_credentials(evidence=broken)


def test_default_evidence_needs_a_running_enclave() -> None:
    with pytest.raises(NotInEnclaveError):
        issue_credentials()
