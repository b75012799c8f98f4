"""Attested TLS credentials made inside the enclave: a fresh key pair and a
self-signed certificate carrying evidence bound to its public key.

The certificate carries the TCG DICE tagged-evidence extension (OID 2.23.133.5.4.9,
value CBOR ``60000([bstr quote, bstr claims])``) whose claims map holds
``"pubkey-hash": cbor([1, SHA-256(DER SubjectPublicKeyInfo)])``; the quote's
report_data[0:32] is SHA-256 of the claims bytes. With ``gramine_legacy=True`` it also
carries Gramine's legacy extension, written under the mangled OID
``0.6.9.42.840.113741.1337.6`` exactly as Gramine writes it, whose value is a second raw
quote with report_data[0:32] = SHA-256(DER SubjectPublicKeyInfo).

The private key never leaves this process: no accessor returns it, and the stdlib TLS
context (which can only load keys from files) gets it through a short-lived file that is
encrypted under a random password held only in memory.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import secrets
import shutil
import ssl
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ..errors import AtlsError, ConfigError, EnklaveError
from ..models.evidence import Evidence
from ._dice import DICE_EVIDENCE_OID, encode_claims, encode_tagged_evidence

__all__ = ["DEFAULT_LIFETIME", "KEY_TYPES", "Credentials", "issue_credentials"]

#: Key types :func:`issue_credentials` can generate.
KEY_TYPES = ("ec-p256", "ec-p384", "rsa-3072")
_DICE_OID = x509.ObjectIdentifier(DICE_EVIDENCE_OID)
#: Gramine writes the DER of 1.2.840.113741.1337.6 (tag and length included) as the
#: OID's content, so the certificate really holds this OID. Written the same way here.
_GRAMINE_LEGACY_OID = x509.ObjectIdentifier("0.6.9.42.840.113741.1337.6")

DEFAULT_LIFETIME = _dt.timedelta(days=1)
_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_Digest = hashes.SHA256 | hashes.SHA384
EvidenceFn = Callable[[bytes], Evidence]


def _generate_key(key_type: str) -> tuple[_PrivateKey, _Digest]:
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()
    if key_type == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1()), hashes.SHA384()
    if key_type == "rsa-3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072), hashes.SHA256()
    raise ConfigError(f"unsupported key_type {key_type!r}; use one of {', '.join(KEY_TYPES)}")


def _write_key_files(
    directory: Path, certificate_pem: bytes, key: _PrivateKey, password: bytes
) -> tuple[Path, Path]:
    """Write the certificate and the *encrypted* private key (mode 0600) into ``directory``."""
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate_pem)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(encrypted)
    return cert_path, key_path


class Credentials:
    """A certificate with evidence and its private key, which stays in this process.

    No attribute or method returns the private key unencrypted. The contexts from
    :meth:`server_context` and :meth:`client_context` are built once and shared; use
    :meth:`new_client_context` for one of your own to adjust.

    Attributes:
        certificate_der: the self-signed certificate (DER).
        certificate_pem: the same, PEM.
        key_type: ``"ec-p256"``, ``"ec-p384"`` or ``"rsa-3072"``.
        not_after: end of validity (aware UTC).
        evidence: the evidence in the DICE extension (quote and claims bytes).
    """

    def __init__(
        self, *, certificate: x509.Certificate, key: _PrivateKey, key_type: str, evidence: Evidence
    ) -> None:
        self._certificate = certificate
        self._key = key
        self.key_type = key_type
        self.evidence = evidence
        self.certificate_der = certificate.public_bytes(serialization.Encoding.DER)
        self.certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
        self.not_after = certificate.not_valid_after_utc
        self._lock = threading.Lock()
        self._server: ssl.SSLContext | None = None
        self._client: ssl.SSLContext | None = None
        self._pyopenssl: Any = None

    def __repr__(self) -> str:
        fp = hashlib.sha256(self.certificate_der).hexdigest()[:16]
        return (
            f"Credentials(key_type={self.key_type!r}, fingerprint={fp}…, "
            f"not_after={self.not_after})"
        )

    def server_context(self) -> ssl.SSLContext:
        """A TLS >= 1.2 server context presenting this certificate (no client certificates).

        Raises:
            AtlsError: OpenSSL refused the certificate or key (code ``"context"``).
        """
        with self._lock:
            if self._server is None:
                self._server = self._new_context(ssl.PROTOCOL_TLS_SERVER)
            return self._server

    def client_context(self) -> ssl.SSLContext:
        """A TLS >= 1.2 client context presenting this certificate, for mutual aTLS.

        It does not verify the server (``CERT_NONE``, no hostname check): the caller
        must attest the server's certificate after the handshake (see
        ``enklave.atls.connect``) before sending anything.

        Raises:
            AtlsError: OpenSSL refused the certificate or key (code ``"context"``).
        """
        with self._lock:
            if self._client is None:
                self._client = self.new_client_context()
            return self._client

    def new_client_context(self) -> ssl.SSLContext:
        """Like :meth:`client_context` (same errors), but a new, unshared context each call
        that the caller may adjust (ciphers, versions, ALPN)."""
        ctx = self._new_context(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _new_context(self, protocol: ssl._SSLMethod) -> ssl.SSLContext:
        """A fresh stdlib context loaded with this certificate and key.

        ``SSLContext.load_cert_chain`` reads only files, so the key is written PKCS#8
        encrypted (the best available cipher) under a random 32-byte password that
        exists only in this process's memory, into a 0600 file in a fresh 0700 temporary
        directory, loaded with that password, and the directory is removed at once.
        Inside Gramine, point ``TMPDIR`` at an in-enclave tmpfs so the file never reaches
        the host; if it does reach the host, it is still only ciphertext.
        """
        ctx = ssl.SSLContext(protocol)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.options |= ssl.OP_NO_RENEGOTIATION
        password = secrets.token_bytes(32)
        directory = Path(tempfile.mkdtemp(prefix="enklave-atls-"))
        try:
            pem = self.certificate_pem.encode()
            cert_path, key_path = _write_key_files(directory, pem, self._key, password)
            ctx.load_cert_chain(cert_path, key_path, password=password)
        except (ssl.SSLError, OSError) as exc:
            raise AtlsError(
                f"cannot load the attested certificate into a TLS context: {exc}; "
                "check that the temporary directory is writable",
                code="context",
            ) from exc
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return ctx

    def _pyopenssl_context(self) -> Any:
        """A pyOpenSSL server context presenting this certificate (for mutual aTLS).

        pyOpenSSL takes the key object directly, so nothing is written anywhere. Client
        certificates are requested and required, and accepted at the TLS layer whatever
        their issuer: the server attests them itself before serving.
        """
        from OpenSSL import SSL  # imported only for mutual aTLS

        with self._lock:
            if self._pyopenssl is None:
                ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
                ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
                ctx.set_options(SSL.OP_NO_RENEGOTIATION)
                ctx.use_certificate(self._certificate)
                ctx.use_privatekey(self._key)
                ctx.check_privatekey()
                ctx.set_verify(
                    SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _accept_any_certificate
                )
                self._pyopenssl = ctx
            return self._pyopenssl


def _accept_any_certificate(conn: Any, cert: Any, errnum: int, depth: int, ok: int) -> bool:
    """TLS-layer acceptance of any client certificate: attestation decides afterwards."""
    return True


def _quote_evidence(evidence: EvidenceFn, claims: bytes) -> Evidence:
    """Call the evidence function and check it returned evidence for exactly ``claims``."""
    try:
        ev = evidence(claims)
    except EnklaveError:
        raise
    except Exception as exc:
        raise AtlsError(f"the evidence function failed: {exc}", code="evidence") from exc
    if not isinstance(ev, Evidence) or ev.claims != claims:
        raise AtlsError(
            "the evidence function must return Evidence for exactly the claims it was given",
            code="evidence",
        )
    return ev


def _builder(
    key: _PrivateKey, *, subject: str, now: _dt.datetime, lifetime: _dt.timedelta
) -> x509.CertificateBuilder:
    try:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    except ValueError as exc:
        raise ConfigError(f"invalid certificate subject {subject!r}: {exc}") from exc
    public = key.public_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(public)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(secrets.randbits(128) or 1)
        .not_valid_before(now - _dt.timedelta(minutes=1))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )


def issue_credentials(
    *,
    key_type: str = "ec-p256",
    subject: str = "enklave",
    lifetime: _dt.timedelta = DEFAULT_LIFETIME,
    gramine_legacy: bool = False,
    extra_claims: Mapping[str, bytes] | None = None,
    evidence: EvidenceFn | None = None,
    now: _dt.datetime | None = None,
) -> Credentials:
    """Generate a key pair in this process and a self-signed certificate with evidence.

    The DICE claims are ``{"pubkey-hash": cbor([1, SHA-256(SPKI DER)]), **extra_claims}``
    (put a verifier's ``"nonce"`` in ``extra_claims``); ``evidence(claims)`` must return
    a quote whose report_data[0:32] is SHA-256(claims), as enklave's in-enclave evidence
    (the default) does. With ``gramine_legacy`` a second
    quote, over SHA-256(SPKI DER), goes into Gramine's legacy extension.

    Args:
        key_type: ``"ec-p256"`` (default), ``"ec-p384"`` or ``"rsa-3072"``.
        subject: the certificate's subject and issuer common name.
        lifetime: validity after ``now`` (it starts one minute before ``now``).
        gramine_legacy: also write Gramine's legacy quote extension.
        extra_claims: more DICE claims (text keys, bytes values); ``"pubkey-hash"`` is
            reserved.
        evidence: makes evidence for claims bytes; default the running enclave's (like
            ``enklave.enclave.evidence``, but allowed to bind key encodings, which that
            public function refuses); tests inject simulated evidence here.
        now: issue time (aware); default the current time.

    Raises:
        ConfigError: unknown key type, bad subject, non-positive lifetime, naive ``now``.
        CertificateError: bad ``extra_claims`` (code ``bad_claims``).
        AtlsError: the evidence function failed or returned evidence for other claims.
        NotInEnclaveError: default evidence outside a running enclave.
    """
    if lifetime <= _dt.timedelta(0):
        raise ConfigError("lifetime must be positive")
    if now is None:
        now = _dt.datetime.now(_dt.UTC)
    elif now.tzinfo is None:
        raise ConfigError("now must be timezone-aware (e.g. datetime.now(UTC))")
    if evidence is None:  # the issuer's own path: these claims name a key made right here
        from ..enclave import _atls_evidence

        evidence = _atls_evidence
    key, digest = _generate_key(key_type)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = encode_claims(spki, dict(extra_claims or {}))
    ev = _quote_evidence(evidence, claims)
    builder = _builder(key, subject=subject, now=now, lifetime=lifetime)
    tagged = encode_tagged_evidence(ev.quote, ev.claims)
    builder = builder.add_extension(x509.UnrecognizedExtension(_DICE_OID, tagged), critical=False)
    if gramine_legacy:
        # evidence(x) binds SHA-256(x) || zeros: over the SPKI it is Gramine's report data
        legacy = _quote_evidence(evidence, spki)
        builder = builder.add_extension(
            x509.UnrecognizedExtension(_GRAMINE_LEGACY_OID, legacy.quote), critical=False
        )
    try:
        certificate = builder.sign(key, digest)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise AtlsError(f"cannot sign the attested certificate: {exc}", code="issue") from exc
    return Credentials(certificate=certificate, key=key, key_type=key_type, evidence=ev)
