"""TCG DICE tagged evidence (OID 2.23.133.5.4.9) and its claims buffer.

The extension value is CBOR ``tag 60000 ([bstr quote, bstr claims])``. The claims buffer is
a definite-length CBOR map of text keys to byte strings; ``"pubkey-hash"`` is required and
holds ``bstr(cbor([hash-alg-id, bstr digest]))`` over the certificate's DER
SubjectPublicKeyInfo (hash ids from the IANA named-information registry: 1 = SHA-256,
7 = SHA-384, 8 = SHA-512). The quote's REPORTDATA[0:32] is SHA-256 of the claims bytes.

Encoding uses :mod:`enklave._encoding` (deterministic CBOR). Decoding reuses its strict
:class:`~enklave._encoding.Decoder` for every head (shortest form, definite lengths, bounds)
but does not insist on sorted map keys, which the DICE profile does not require; duplicate
keys are refused. Every malformed input raises :class:`~enklave.errors.CertificateError`
with ``code="malformed_extension"``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Final

from .. import _encoding
from ..errors import CertificateError, EncodingError, VerificationError

__all__ = [
    "DICE_EVIDENCE_OID",
    "DICE_TAG_QUOTE",
    "HASH_ALGS",
    "check_pubkey_hash",
    "decode_claims",
    "decode_pubkey_hash",
    "decode_tagged_evidence",
    "encode_claims",
    "encode_tagged_evidence",
]

DICE_EVIDENCE_OID: Final = "2.23.133.5.4.9"
DICE_TAG_QUOTE: Final = 60000
MAX_CLAIMS: Final = 64 * 1024
MAX_ENTRIES: Final = 64
MAX_EVIDENCE: Final = 256 * 1024
#: IANA named-information hash ids a verifier must support, and their digest functions.
HASH_ALGS: Final[Mapping[int, str]] = {1: "sha256", 7: "sha384", 8: "sha512"}
_PUBKEY_HASH: Final = "pubkey-hash"


def _bad(what: str) -> CertificateError:
    return CertificateError(
        f"TCG DICE evidence is malformed: {what}; the certificate was not made by a "
        "conforming attester (re-issue it)",
        code="malformed_extension",
    )


def encode_claims(spki_der: bytes, extra: Mapping[str, bytes] | None = None) -> bytes:
    """The claims buffer for a key: ``{"pubkey-hash": cbor([1, SHA-256(spki_der)]), **extra}``.

    Args:
        spki_der: the certificate's DER SubjectPublicKeyInfo.
        extra: further claims (text key -> bytes), e.g. ``{"nonce": ...}``.

    Raises:
        CertificateError: an extra claim is not text -> bytes, or tries to replace
            ``"pubkey-hash"`` (code ``bad_claims``).
    """
    claims: dict[str, bytes] = {
        _PUBKEY_HASH: _encoding.dumps([1, hashlib.sha256(spki_der).digest()])
    }
    for key, value in (extra or {}).items():
        if type(key) is not str or type(value) is not bytes or key == _PUBKEY_HASH:
            raise CertificateError(
                "extra claims must map text keys (not 'pubkey-hash') to bytes",
                code="bad_claims",
            )
        claims[key] = value
    if len(claims) > MAX_ENTRIES:
        raise CertificateError(f"at most {MAX_ENTRIES} claims", code="bad_claims")
    return _encoding.dumps(claims)


def encode_tagged_evidence(quote: bytes, claims: bytes) -> bytes:
    """The 2.23.133.5.4.9 extension value: ``tag 60000 ([bstr quote, bstr claims])``."""
    return _encoding.head(6, DICE_TAG_QUOTE) + _encoding.dumps([bytes(quote), bytes(claims)])


def decode_tagged_evidence(data: bytes) -> tuple[int, bytes, bytes]:
    """Split a DICE extension value into ``(tag, quote, claims)``.

    Checks: one CBOR tag (60000, 60001 or 60002) over a 2-element array of byte strings,
    shortest-form heads, no trailing bytes, size limits.

    Raises:
        CertificateError: anything else (code ``malformed_extension``); a tag other than
            60000 (an SGX/TDX report rather than a quote) has code ``unsupported_evidence``.
    """
    data = bytes(data)
    if not data or len(data) > MAX_EVIDENCE:
        raise _bad(f"value of {len(data)} bytes (limit {MAX_EVIDENCE})")
    dec = _encoding.Decoder(data)
    try:
        if data[0] >> 5 != 6:
            raise _bad("value does not start with a CBOR tag")
        dec.take(1)
        tag = dec.argument(data[0] & 0x1F)
        items = dec.value(1)
    except EncodingError as exc:
        raise _bad(str(exc)) from exc
    if dec.pos != len(data):
        raise _bad(f"{len(data) - dec.pos} trailing bytes")
    if (
        type(items) is not list
        or len(items) != 2
        or type(items[0]) is not bytes
        or type(items[1]) is not bytes
    ):
        raise _bad("the tagged value must be [bstr quote, bstr claims]")
    if tag != DICE_TAG_QUOTE:
        raise CertificateError(
            f"TCG DICE evidence tag {tag} is not supported (only 60000, an Intel SGX/TDX "
            "quote); ask the attester for quote-based evidence",
            code="unsupported_evidence",
        )
    if not items[0]:
        raise _bad("the quote is empty")
    return tag, items[0], items[1]


def decode_claims(data: bytes) -> dict[str, bytes]:
    """Decode a claims buffer: a definite-length CBOR map of text keys to byte strings.

    Key order is not checked (producers differ); duplicate keys, non-text keys, non-bytes
    values, trailing bytes and more than 64 entries are refused. ``"pubkey-hash"`` must be
    present and well formed (see :func:`decode_pubkey_hash`).

    Raises:
        CertificateError: code ``malformed_extension``.
    """
    data = bytes(data)
    if not data or len(data) > MAX_CLAIMS:
        raise _bad(f"claims of {len(data)} bytes (limit {MAX_CLAIMS})")
    dec = _encoding.Decoder(data)
    out: dict[str, bytes] = {}
    try:
        first = dec.take(1)[0]
        if first >> 5 != 5:
            raise _bad("claims are not a CBOR map")
        count = dec.length(first & 0x1F, 2)
        if count > MAX_ENTRIES:
            raise _bad(f"more than {MAX_ENTRIES} claims")
        for _ in range(count):
            key, value = dec.value(0), dec.value(0)
            if type(key) is not str or type(value) is not bytes:
                raise _bad("claims must map text keys to byte strings")
            if key in out:
                raise _bad(f"claim {key!r} appears twice")
            out[key] = value
    except EncodingError as exc:
        raise _bad(str(exc)) from exc
    if dec.pos != len(data):
        raise _bad(f"{len(data) - dec.pos} trailing bytes after the claims map")
    if _PUBKEY_HASH not in out:
        raise _bad("the required 'pubkey-hash' claim is missing")
    decode_pubkey_hash(out[_PUBKEY_HASH])
    return out


def decode_pubkey_hash(value: bytes) -> tuple[int, bytes]:
    """Decode a ``pubkey-hash`` value: ``cbor([hash-alg-id, bstr digest])``.

    Raises:
        CertificateError: not that shape, an unsupported hash id (only 1, 7, 8) or a digest
            of the wrong length (code ``malformed_extension``).
    """
    try:
        entry = _encoding.loads(value, max_size=1024, max_depth=1)
    except EncodingError as exc:
        raise _bad(f"pubkey-hash: {exc}") from exc
    if type(entry) is not list or len(entry) != 2 or type(entry[1]) is not bytes:
        raise _bad("pubkey-hash must be [hash-alg-id, bstr digest]")
    alg, digest = entry
    if type(alg) is not int or alg not in HASH_ALGS:
        raise _bad(f"pubkey-hash algorithm {alg!r} is not supported (1, 7 or 8)")
    if len(digest) != hashlib.new(HASH_ALGS[alg]).digest_size:
        raise _bad("pubkey-hash digest has the wrong length for its algorithm")
    return alg, digest


def check_pubkey_hash(claims: Mapping[str, bytes], spki_der: bytes) -> int:
    """Check that the claims' ``pubkey-hash`` is the hash of ``spki_der``; return the hash id.

    Raises:
        CertificateError: the claim is missing or malformed.
        VerificationError: the hash is of another key (code ``key_binding``).
    """
    if _PUBKEY_HASH not in claims:
        raise _bad("the required 'pubkey-hash' claim is missing")
    alg, digest = decode_pubkey_hash(claims[_PUBKEY_HASH])
    if not hmac.compare_digest(hashlib.new(HASH_ALGS[alg], spki_der).digest(), digest):
        raise VerificationError(
            "the DICE claims' pubkey-hash is not the hash of this certificate's public key: "
            "the evidence was made for another key (key swap or replay); refuse the peer",
            code="key_binding",
        )
    return alg
