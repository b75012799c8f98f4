"""Key binding: does the quote's REPORTDATA commit to *this* certificate's public key?

Each format has its own convention (all checked by hashing, never taken on trust):

====  ===================  ==========================================================
B1    ``spki-sha256``      REPORTDATA = SHA-256(DER SubjectPublicKeyInfo) || 32 zeros
B2    ``rawkey-sha256``    REPORTDATA = SHA-256(subjectPublicKey payload) || 32 zeros
B3    ``pem-nul-sha256``   REPORTDATA = SHA-256(PEM SPKI text + one NUL) || 32 zeros
B4    ``dice-claims``      REPORTDATA = SHA-256(claims) || 32 zeros, and the claims'
                           ``pubkey-hash`` is the hash of the DER SPKI
B5    ``rawkey-sha512``    REPORTDATA = SHA-512(subjectPublicKey payload)
B6    ``dstack-sha512``    REPORTDATA = SHA-512("ratls-cert:" || DER SPKI)
====  ===================  ==========================================================

Only pre-images made of the key alone are tried, so trying several for one format cannot
let evidence made for another key pass. Comparisons are constant-time and cover all 64 bytes.

B2 is not tried for Ed25519 keys: their raw key is 32 arbitrary bytes, indistinguishable
from a nonce, so generic evidence over a host-chosen "nonce" would bind a host key.
(``enklave.enclave.evidence`` refuses the other key encodings as claims for the same reason.)
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ..errors import VerificationError
from ..models.quote import parse_quote
from . import _dice
from ._formats import CertEvidence
from ._x509 import Certificate, pem_encode

__all__ = ["RULES_BY_FORMAT", "Binding", "bind", "key_preimages", "pem_with_nul"]


@dataclass(frozen=True)
class Binding:
    """A key binding that holds for one certificate and one piece of evidence.

    Attributes:
        rule: "spki-sha256" | "rawkey-sha256" | "pem-nul-sha256" | "dice-claims" |
            "rawkey-sha512" | "dstack-sha512".
        report_data_prefix: the 32 or 64 bytes the quote's REPORTDATA must start with.
        claims: the DICE claims (then the prefix is SHA-256(claims)), else None.
    """

    rule: str
    report_data_prefix: bytes
    claims: bytes | None


def pem_with_nul(spki_der: bytes) -> bytes:
    """The key as Open Enclave hashes it: PEM ``PUBLIC KEY`` text, 64-char lines, then NUL."""
    return pem_encode(spki_der, "PUBLIC KEY").encode() + b"\0"


_ZERO32: Final = bytes(32)
_RULES: Final[dict[str, Callable[[Certificate], bytes]]] = {
    "spki-sha256": lambda c: hashlib.sha256(c.spki_der).digest() + _ZERO32,
    "rawkey-sha256": lambda c: hashlib.sha256(c.public_key_raw).digest() + _ZERO32,
    "pem-nul-sha256": lambda c: hashlib.sha256(pem_with_nul(c.spki_der)).digest() + _ZERO32,
    "rawkey-sha512": lambda c: hashlib.sha512(c.public_key_raw).digest(),
    "dstack-sha512": lambda c: hashlib.sha512(b"ratls-cert:" + c.spki_der).digest(),
}
#: key-only rules tried for each format, in order (DICE formats use the claims instead)
RULES_BY_FORMAT: Final[dict[str, tuple[str, ...]]] = {
    "gramine-legacy": ("spki-sha256",),
    "raw-quote": ("spki-sha256", "rawkey-sha256"),
    "oe-report": ("spki-sha256", "pem-nul-sha256"),
    "oe-legacy": ("pem-nul-sha256", "spki-sha256"),
    "dstack": ("dstack-sha512", "rawkey-sha512"),
    "ias": ("spki-sha256", "rawkey-sha256", "pem-nul-sha256"),
}


def key_preimages(cert: Certificate) -> dict[str, bytes]:
    """The 64-byte REPORTDATA each key-only rule expects for ``cert`` (for inspection)."""
    return {name: rule(cert) for name, rule in _RULES.items()}


def _fail(ev: CertEvidence, tried: str) -> VerificationError:
    return VerificationError(
        f"the {ev.format} evidence in {ev.oid} is not bound to this certificate's key "
        f"(tried {tried}): the quote was made for another key or replayed; refuse the peer",
        code="key_binding",
    )


def _report_data(ev: CertEvidence) -> bytes:
    if ev.quote is not None:
        return parse_quote(ev.quote).body.report_data
    ias = ev.details.get("ias")
    if ias is None:
        raise _fail(ev, "nothing: the evidence has no quote")
    data: bytes = ias.enclave.report_data
    return data


def _dice_binding(cert: Certificate, ev: CertEvidence, report_data: bytes) -> Binding:
    if ev.claims is None:
        raise _fail(ev, "dice-claims: no TCG DICE claims in this certificate")
    claims = _dice.decode_claims(ev.claims)
    _dice.check_pubkey_hash(claims, cert.spki_der)
    want = hashlib.sha256(ev.claims).digest() + _ZERO32
    if not hmac.compare_digest(report_data, want):
        raise _fail(ev, "dice-claims: REPORTDATA is not SHA-256(claims)")
    return Binding("dice-claims", want[:32], ev.claims)


def _oe_evidence_binding(cert: Certificate, ev: CertEvidence, report_data: bytes) -> Binding:
    claims = ev.claims or b""
    want = hashlib.sha256(claims).digest() + _ZERO32
    if not hmac.compare_digest(report_data, want):
        raise _fail(ev, "SHA-256(custom claims)")
    if not hmac.compare_digest(claims, pem_with_nul(cert.spki_der)):
        raise _fail(ev, "custom claims == PEM public key + NUL")
    return Binding("pem-nul-sha256", want, None)


def bind(cert: Certificate, ev: CertEvidence) -> Binding:
    """Check that ``ev`` commits to ``cert``'s public key by the format's own convention.

    Raises:
        VerificationError: code ``key_binding`` when no rule of the format matches.
        CertificateError: malformed DICE claims.
        QuoteFormatError: the quote does not parse.
    """
    report_data = _report_data(ev)
    if ev.format in ("tcg-dice", "intel-sgxsdk"):
        return _dice_binding(cert, ev, report_data)
    if ev.format == "oe-evidence":
        return _oe_evidence_binding(cert, ev, report_data)
    names = RULES_BY_FORMAT.get(ev.format, ())
    if cert.key_type == "ed25519":  # a raw Ed25519 key looks like any 32-byte nonce
        names = tuple(n for n in names if n != "rawkey-sha256")
    for name in names:  # in the format's order: the first rule that holds
        want = _RULES[name](cert)
        if hmac.compare_digest(report_data, want):
            return Binding(name, want, None)
    raise _fail(ev, ", ".join(names) or "no rule")
