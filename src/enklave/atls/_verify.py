"""Verify an attested-TLS certificate: structure, validity, signature, key binding, quote, policy.

:func:`verify_certificate` is the one place an :class:`AttestedPeer` is made; holding one
means every check below passed at ``now``. :class:`PeerVerifier` wraps it with a small
cache keyed by the certificate's SHA-256 fingerprint (successes only, never longer than the
certificate's own validity), which is what TLS clients and servers take.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from ..errors import CertificateError, VerificationError
from ..models.evidence import Evidence
from ..verify import Policy, VerifiedEnclave, Verifier
from . import _dice
from ._binding import Binding, bind
from ._formats import CertEvidence, find_evidence
from ._x509 import Certificate

__all__ = ["AttestedPeer", "PeerVerifier", "verify_certificate"]

_TOKEN = object()


class AttestedPeer:
    """A peer whose certificate passed every check; only :func:`verify_certificate` makes one.

    Attributes:
        certificate: the peer's certificate.
        format: the evidence format that was verified (e.g. "tcg-dice").
        binding: the key-binding rule that held (e.g. "dice-claims").
        enclave: the verified enclave (measurements, TCB status, claims).
        claims: the decoded DICE claims map ({} for other formats).
    """

    __slots__ = ("binding", "certificate", "claims", "enclave", "format")

    def __init__(self, token: object, certificate: Certificate, evidence: CertEvidence,
                 binding: Binding, enclave: VerifiedEnclave) -> None:
        if token is not _TOKEN:
            raise TypeError("AttestedPeer is made only by verify_certificate()")
        self.certificate = certificate
        self.format = evidence.format
        self.binding = binding.rule
        self.enclave = enclave
        self.claims: dict[str, bytes] = (
            _dice.decode_claims(binding.claims) if binding.claims is not None else {}
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (bytes as hex)."""
        cert = self.certificate
        return {
            "format": self.format,
            "binding": self.binding,
            "fingerprint": cert.fingerprint.hex(),
            "subject": cert.subject,
            "key_type": cert.key_type,
            "not_after": cert.not_after.isoformat(),
            "claims": {k: v.hex() for k, v in sorted(self.claims.items())},
            "enclave": self.enclave.to_dict(),
        }

    def __repr__(self) -> str:
        return f"AttestedPeer(format={self.format}, binding={self.binding}, {self.enclave!r})"


def _as_datetime(now: int | float | datetime) -> datetime:
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise VerificationError("now must be an aware datetime (UTC)", code="bad_time")
        return now.astimezone(UTC)
    try:
        return datetime.fromtimestamp(now, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise VerificationError(f"now={now!r} is not a usable time", code="bad_time") from exc


def _check_validity(cert: Certificate, now: datetime) -> None:
    if now < cert.not_before or now > cert.not_after:
        which = "not yet valid" if now < cert.not_before else "expired"
        raise VerificationError(
            f"the peer certificate is {which} (valid {cert.not_before.isoformat()} to "
            f"{cert.not_after.isoformat()}, now {now.isoformat()}); the peer must issue a "
            "fresh certificate, or check the clock",
            code="certificate_expired",
        )


def _usable(found: list[CertEvidence]) -> CertEvidence:
    best = found[0]
    if best.format == "ias":
        raise VerificationError(
            "the certificate carries EPID evidence (an Intel IAS report); Intel retired EPID "
            "attestation (IAS) in 2025, so it cannot be verified: use DCAP (ECDSA) evidence",
            code="unsupported_evidence",
        )
    return best


def verify_certificate(
    cert: bytes | Certificate,
    *,
    verifier: Verifier,
    policy: Policy,
    now: int | datetime,
    expiry: Literal["strict", "report"] = "strict",
) -> AttestedPeer:
    """Verify an attested-TLS certificate and return the attested peer.

    Checks, in order: the certificate parses; ``now`` is inside its validity window; it is
    self-signed; it carries evidence (the best format is used: DICE first); the evidence is
    bound to its public key (for DICE also the claims' pubkey-hash); then the quote (DCAP
    signatures, chains, collateral under ``verifier``'s trust anchors) and ``policy``.

    Raises:
        CertificateError: malformed certificate or extension, bad self-signature
            (``bad_signature``), no evidence (``missing_extension``).
        VerificationError: ``certificate_expired``, ``key_binding``, ``unsupported_evidence``
            (EPID), or a DCAP check (``code`` names it).
        CollateralError / CollateralExpired / QuoteFormatError / PolicyError: from the
            quote verification and the policy.
    """
    certificate = cert if isinstance(cert, Certificate) else Certificate.load(cert)
    when = _as_datetime(now)
    _check_validity(certificate, when)
    certificate.verify_signature()
    evidence = _usable(find_evidence(certificate))
    binding = bind(certificate, evidence)
    if evidence.quote is None:  # pragma: no cover - only IAS evidence has none
        raise VerificationError("the evidence holds no quote", code="unsupported_evidence")
    carried = Evidence(quote=evidence.quote, claims=binding.claims or b"")
    if binding.claims is not None:
        enclave = verifier.verify(carried, policy, now=when, claims=binding.claims,
                                  expiry=expiry)
    else:
        enclave = verifier.verify(carried, policy, now=when,
                                  binding=binding.report_data_prefix, expiry=expiry)
    return AttestedPeer(_TOKEN, certificate, evidence, binding, enclave)


class PeerVerifier:
    """Verifies peer certificates for TLS clients/servers, with a fingerprint cache.

    Successful results are cached by SHA-256(der) for at most ``cache_ttl`` seconds and
    never past the certificate's ``not_after``; failures are never cached. Thread-safe.

    Attributes:
        hits, misses: cache statistics.
    """

    def __init__(
        self,
        *,
        verifier: Verifier,
        policy: Policy,
        clock: Callable[[], float] = time.time,
        cache_size: int = 1024,
        cache_ttl: float = 300.0,
        expiry: Literal["strict", "report"] = "strict",
    ) -> None:
        if cache_size < 0 or cache_ttl < 0:
            raise VerificationError("cache_size and cache_ttl must be >= 0", code="bad_config")
        self._verifier, self._policy, self._clock = verifier, policy, clock
        self._size, self._ttl, self._expiry = cache_size, cache_ttl, expiry
        self._cache: OrderedDict[bytes, tuple[float, AttestedPeer]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def verify(self, cert_der: bytes) -> AttestedPeer:
        """Verify a peer certificate (DER), from the cache when a fresh entry exists.

        Raises:
            CertificateError / VerificationError / PolicyError / ...: as
                :func:`verify_certificate`.
        """
        if not isinstance(cert_der, bytes | bytearray | memoryview):
            raise CertificateError("the peer certificate must be DER bytes", code="bad_input")
        der = bytes(cert_der)
        key = hashlib.sha256(der).digest()  # the fingerprint; parse only on a miss
        now = self._clock()
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and now < entry[0]:
                self._cache.move_to_end(key)
                self.hits += 1
                return entry[1]
            self._cache.pop(key, None)
            self.misses += 1
        peer = verify_certificate(Certificate.from_der(der), verifier=self._verifier,
                                  policy=self._policy,
                                  now=_as_datetime(now), expiry=self._expiry)
        self._store(key, peer, now)
        return peer

    def _store(self, key: bytes, peer: AttestedPeer, now: float) -> None:
        until = min(now + self._ttl, peer.certificate.not_after.timestamp())
        if self._size == 0 or until <= now:
            return
        with self._lock:
            self._cache[key] = (until, peer)
            self._cache.move_to_end(key)
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)

    def clear_cache(self) -> None:
        """Forget every cached result."""
        with self._lock:
            self._cache.clear()
