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
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from ..errors import CertificateError, VerificationError
from ..models.evidence import Evidence
from ..verify import Policy, VerifiedEnclave, Verifier
from . import _dice
from ._binding import Binding, bind
from ._formats import FORMAT_OIDS, CertEvidence, find_evidence
from ._x509 import Certificate, load_certificates

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


def _allowed_formats(formats: Collection[str] | None) -> frozenset[str] | None:
    """Check a ``formats`` argument: None, or a collection of known format names."""
    if formats is None:
        return None
    if isinstance(formats, str | bytes) or not all(isinstance(f, str) for f in formats):
        raise VerificationError(
            f"formats must be a collection of format names such as ['tcg-dice'], not "
            f"{formats!r}", code="bad_config")  # fmt: skip
    known = set(FORMAT_OIDS.values())
    unknown = sorted(set(formats) - known)
    if unknown or not formats:
        raise VerificationError(
            f"unknown or no evidence formats {unknown}; choose from {sorted(known)}",
            code="bad_config",
        )
    return frozenset(formats)


def _usable(found: list[CertEvidence], allowed: frozenset[str] | None) -> CertEvidence:
    best = found[0]
    if best.format == "ias":
        raise VerificationError(
            "the certificate carries EPID evidence (an Intel IAS report); Intel retired EPID "
            "attestation (IAS) in 2025, so it cannot be verified: use DCAP (ECDSA) evidence",
            code="unsupported_evidence",
        )
    if allowed is not None and best.format not in allowed:
        raise VerificationError(
            f"the certificate's evidence is in the {best.format} format, which this verifier "
            f"does not accept (allowed: {', '.join(sorted(allowed))}); refuse the peer, or "
            "add the format to formats= if that attester really uses it",
            code="format_not_allowed",
        )
    return best


def _load_issuers(issuers: Sequence[bytes | Certificate]) -> tuple[Certificate, ...]:
    """Check an ``issuers`` argument; bytes may be DER or PEM (every certificate in it)."""
    if isinstance(issuers, str | bytes | bytearray | Certificate):
        raise VerificationError(
            "issuers must be a sequence of certificates (PEM/DER bytes or Certificate), "
            f"not one {type(issuers).__name__}: wrap it in a list", code="bad_config")
    out: list[Certificate] = []
    for item in issuers:
        if isinstance(item, Certificate):
            out.append(item)
        elif isinstance(item, bytes | bytearray):
            out.extend(load_certificates(bytes(item)))
        else:
            raise VerificationError(
                f"an issuer must be PEM/DER bytes or a Certificate, not {type(item).__name__}",
                code="bad_config")  # fmt: skip
    return tuple(out)


def _check_signature(cert: Certificate, issuers: tuple[Certificate, ...]) -> None:
    """Self-signed when ``issuers`` is empty; else signed by an issuer of the right name."""
    if not issuers:
        cert.verify_signature()
        return
    named = [i for i in issuers if i.subject == cert.issuer]
    if not named:
        raise CertificateError(
            f"the certificate is issued by {cert.issuer!r}, which is none of the issuers "
            f"given ({', '.join(repr(i.subject) for i in issuers)}); pass that issuer's "
            "certificate (issuers= / --issuer), or refuse the peer",
            code="unknown_issuer",
        )
    last: CertificateError | None = None
    for issuer in named:
        try:
            cert.verify_signature(issuer)
            return
        except CertificateError as exc:
            last = exc
    raise CertificateError(
        f"the certificate's signature does not verify under any of the {len(named)} given "
        f"issuer(s) named {cert.issuer!r}: it was signed by another key of that name or "
        "altered; refuse it, or pass the issuer certificate that really signed it",
        code="bad_signature",
    ) from last


def verify_certificate(
    cert: bytes | Certificate,
    *,
    verifier: Verifier,
    policy: Policy,
    now: int | datetime,
    expiry: Literal["strict", "report"] = "strict",
    formats: Collection[str] | None = None,
    issuers: Sequence[bytes | Certificate] = (),
) -> AttestedPeer:
    """Verify an attested-TLS certificate and return the attested peer.

    Checks, in order: the certificate parses; ``now`` is inside its validity window; its
    signature verifies (self-signed, or under one of ``issuers``); it carries evidence
    (the best format is used: DICE first) of an allowed format; the evidence is bound to
    its public key (for DICE also the claims' pubkey-hash); then the quote (DCAP
    signatures, chains, collateral under ``verifier``'s trust anchors) and ``policy``.

    The certificate's signature is a sanity check, not the trust decision. Trust comes from
    the evidence bound to the certificate's key (checked under ``verifier``'s anchors and
    ``policy``) together with the TLS handshake, in which the peer proves it holds that
    key. So ``issuers`` need not be trusted roots, and no chain to a root, issuer validity
    or CA flag is checked: they only let CA-signed attested certificates (dstack's app
    certificates, signed by its KMS / App CA) pass the signature check.

    Args:
        formats: evidence formats to accept (e.g. ``["tcg-dice"]`` for enklave peers);
            None accepts every recognised one. The certificate's best evidence must be of
            one of them. Narrowing it means a quote the enclave made for other purposes
            (generic evidence over a key-shaped value) cannot pass under another format's
            key-binding rule.
        issuers: certificates (DER or PEM bytes, a PEM bundle giving all its certificates,
            or :class:`Certificate`) that may have signed ``cert``. Empty (the default):
            ``cert`` must be self-signed. Given: ``cert``'s issuer name must equal the
            subject of one of them, and its signature must verify under that one's key.

    Raises:
        CertificateError: malformed certificate or extension, a signature that does not
            verify (``bad_signature``), an issuer that is none of ``issuers``
            (``unknown_issuer``), no evidence (``missing_extension``).
        VerificationError: ``certificate_expired``, ``key_binding``, ``unsupported_evidence``
            (EPID), ``format_not_allowed``, ``bad_config`` (an unknown format name, or
            ``issuers`` that are not certificates), or a DCAP check (``code`` names it).
        CollateralError / CollateralExpired / QuoteFormatError / PolicyError: from the
            quote verification and the policy.
    """
    allowed = _allowed_formats(formats)
    signers = _load_issuers(issuers)
    certificate = cert if isinstance(cert, Certificate) else Certificate.load(cert)
    when = _as_datetime(now)
    _check_validity(certificate, when)
    _check_signature(certificate, signers)
    evidence = _usable(find_evidence(certificate), allowed)
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
    never past the certificate's ``not_after`` or the earliest expiry of the collateral the
    quote was verified with; failures are never cached. :meth:`clear_cache` also drops
    verifications still running when it is called (they return, but are not stored).
    Thread-safe.

    Args:
        formats: evidence formats to accept (see :func:`verify_certificate`).
        issuers: certificates that may sign peer certificates (see
            :func:`verify_certificate`: a sanity check, not trust roots); empty: peers
            must be self-signed.

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
        formats: Collection[str] | None = None,
        issuers: Sequence[bytes | Certificate] = (),
    ) -> None:
        if cache_size < 0 or cache_ttl < 0:
            raise VerificationError("cache_size and cache_ttl must be >= 0", code="bad_config")
        self._verifier, self._policy, self._clock = verifier, policy, clock
        self._size, self._ttl, self._expiry = cache_size, cache_ttl, expiry
        self._formats = _allowed_formats(formats)
        self._issuers = _load_issuers(issuers)
        self._cache: OrderedDict[bytes, tuple[float, AttestedPeer]] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0  # bumped by clear_cache(): older verifications are not stored
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
            generation = self._generation
        peer = verify_certificate(Certificate.from_der(der), verifier=self._verifier,
                                  policy=self._policy, now=_as_datetime(now),
                                  expiry=self._expiry, formats=self._formats,
                                  issuers=self._issuers)
        self._store(key, peer, now, generation)
        return peer

    def _store(self, key: bytes, peer: AttestedPeer, now: float, generation: int) -> None:
        until = min(now + self._ttl, peer.certificate.not_after.timestamp(),
                    peer.enclave.result.earliest_expiration.timestamp())
        if self._size == 0 or until <= now:
            return
        with self._lock:
            if generation != self._generation:  # cleared while this one was verifying
                return
            self._cache[key] = (until, peer)
            self._cache.move_to_end(key)
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)

    def clear_cache(self) -> None:
        """Forget every cached result, and any verification still running now."""
        with self._lock:
            self._generation += 1
            self._cache.clear()
