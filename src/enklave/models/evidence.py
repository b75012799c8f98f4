"""Evidence: a DCAP quote plus the runtime claims its report data is bound to.

The binding is ``report_data[0:32] == SHA-256(claims)`` (bytes 32..63 are zero), the
convention Azure Attestation checks for runtime data and the TCG/CCC interoperable
RA-TLS format uses. Evidence is *unverified* until :class:`enklave.verify.Verifier`
says otherwise.

Two encodings: deterministic CBOR (``to_bytes``/``from_bytes``, used across the
enclave boundary and on the wire) and JSON (``to_json``/``from_json``, for files and
humans; byte fields are base64). :func:`load_evidence` also accepts a bare quote
(binary or hex), whose claims are then unknown (empty).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final

from .. import _encoding
from ..errors import EncodingError, QuoteFormatError

__all__ = ["EVIDENCE_FORMAT", "Evidence", "load_evidence", "report_data_for"]

EVIDENCE_FORMAT: Final = "enklave-evidence/1"
MAX_QUOTE: Final = 64 * 1024
MAX_CLAIMS: Final = 64 * 1024


def report_data_for(claims: bytes) -> bytes:
    """The 64-byte SGX REPORTDATA that binds ``claims``: SHA-256(claims) then 32 zeros."""
    return hashlib.sha256(claims).digest() + bytes(32)


@dataclass(frozen=True)
class Evidence:
    """A quote and the claims it commits to (unverified).

    Attributes:
        quote: the raw DCAP quote (SGX v3/v4/v5 or TDX v4/v5).
        claims: the runtime claims bytes; their SHA-256 is in the quote's report data.
        simulated: what the producer says about itself. Informational only: the verifier
            decides from the trust anchor, never from this flag.
    """

    quote: bytes
    claims: bytes = b""
    simulated: bool = False

    def __post_init__(self) -> None:
        if type(self.quote) is not bytes or type(self.claims) is not bytes:
            raise QuoteFormatError("evidence quote and claims must be bytes")
        if not 0 < len(self.quote) <= MAX_QUOTE or len(self.claims) > MAX_CLAIMS:
            raise QuoteFormatError(
                f"evidence too large or empty (quote {len(self.quote)} B, claims "
                f"{len(self.claims)} B; limits {MAX_QUOTE} and {MAX_CLAIMS})"
            )

    def to_bytes(self) -> bytes:
        """Deterministic CBOR: ``{"format", "quote", "claims", "simulated"}``."""
        return _encoding.dumps(
            {
                "format": EVIDENCE_FORMAT,
                "quote": self.quote,
                "claims": self.claims,
                "simulated": self.simulated,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Evidence:
        """Parse CBOR evidence.

        Raises:
            QuoteFormatError: not enklave evidence CBOR, or fields of the wrong type.
        """
        try:
            value = _encoding.loads(bytes(data), max_size=MAX_QUOTE + MAX_CLAIMS + 1024)
        except EncodingError as exc:
            raise QuoteFormatError(
                f"not enklave evidence (CBOR): {exc}; pass the file written by evidence()"
            ) from exc
        return cls._from_map(value)

    def to_json(self) -> str:
        """JSON with base64 byte fields (stable key order)."""
        return json.dumps(
            {
                "format": EVIDENCE_FORMAT,
                "quote": base64.b64encode(self.quote).decode(),
                "claims": base64.b64encode(self.claims).decode(),
                "simulated": self.simulated,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Evidence:
        """Parse JSON evidence (as written by :meth:`to_json`).

        Raises:
            QuoteFormatError: malformed JSON, wrong format tag, bad base64.
        """
        try:
            value = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise QuoteFormatError(f"evidence is not valid JSON: {exc}") from exc
        if type(value) is not dict:
            raise QuoteFormatError("evidence JSON must be an object")
        decoded = dict(value)
        for key in ("quote", "claims"):
            field = value.get(key, "")
            if type(field) is not str:
                raise QuoteFormatError(f"evidence JSON field {key!r} must be a base64 string")
            try:
                decoded[key] = base64.b64decode(field, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise QuoteFormatError(f"evidence JSON field {key!r} is not base64") from exc
        return cls._from_map(decoded)

    @classmethod
    def _from_map(cls, value: Any) -> Evidence:
        if type(value) is not dict or value.get("format") != EVIDENCE_FORMAT:
            raise QuoteFormatError(
                f"evidence must be a map with format {EVIDENCE_FORMAT!r}; is this a bare quote?"
            )
        extra = set(value) - {"format", "quote", "claims", "simulated"}
        if extra:
            raise QuoteFormatError(f"evidence has unknown fields {sorted(extra)}")
        quote, claims = value.get("quote"), value.get("claims", b"")
        simulated = value.get("simulated", False)
        if type(quote) is not bytes or type(claims) is not bytes or type(simulated) is not bool:
            raise QuoteFormatError("evidence fields have the wrong types (quote/claims bytes)")
        return cls(quote=quote, claims=claims, simulated=simulated)


def load_evidence(data: bytes) -> Evidence:
    """Read evidence from a file's bytes: CBOR or JSON evidence, or a bare quote.

    A bare quote may be binary or hex text (an optional ``0x`` prefix and whitespace are
    allowed); its claims are empty, so only a policy that needs no claims can pass.

    Raises:
        QuoteFormatError: none of the accepted shapes.
    """
    stripped = data.strip()
    if stripped.startswith(b"{"):
        return Evidence.from_json(stripped)
    if data[:1] in (b"\xa3", b"\xa4"):  # a CBOR map of 3 or 4 entries
        try:
            return Evidence.from_bytes(data)
        except QuoteFormatError:
            pass
    quote = _maybe_hex(stripped)
    return Evidence(quote=quote if quote is not None else bytes(data))


def _maybe_hex(text: bytes) -> bytes | None:
    """Decode hex quote text (``0x`` prefix and whitespace allowed); None if not hex."""
    body = b"".join(text.split())
    if body[:2].lower() == b"0x":
        body = body[2:]
    if not body or len(body) % 2:
        return None
    try:
        return binascii.unhexlify(body)
    except (binascii.Error, ValueError):
        return None
