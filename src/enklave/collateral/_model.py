"""The collateral a DCAP verifier needs, in dcap-qvl's ``QuoteCollateralV3`` JSON shape.

Only parsing and normalisation happen here (no signature, chain or date checks; the verifier
does those). Signed JSON (TCB Info, QE Identity) is kept as the exact served text.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
from dataclasses import dataclass, fields
from typing import Any

from ..errors import CollateralError

__all__ = ["Collateral", "split_signed_json"]

_PEM_CRL = re.compile(r"-----BEGIN X509 CRL-----(.*?)-----END X509 CRL-----", re.DOTALL)
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")
_MAX_FIELD = 4 * 1024 * 1024
_TEXT_FIELDS = (
    "pck_crl_issuer_chain", "tcb_info_issuer_chain", "tcb_info", "qe_identity_issuer_chain",
    "qe_identity",
)  # fmt: skip


@dataclass(frozen=True)
class Collateral:
    """Everything besides the quote that DCAP verification needs (dcap-qvl's field names).

    Attributes:
        pck_crl_issuer_chain: PEM chain of the PCK CRL issuer (PCK Platform/Processor CA, root).
        root_ca_crl: DER CRL of the root CA (covers the intermediates and the TCB signer).
        pck_crl: DER CRL of the PCK CA that issued the quote's PCK certificate.
        tcb_info_issuer_chain: PEM chain of the TCB Info signer (TCB Signing, root).
        tcb_info: the exact signed text of the inner ``tcbInfo`` object.
        tcb_info_signature: raw 64-byte r‖s ECDSA signature over ``tcb_info``.
        qe_identity_issuer_chain: PEM chain of the QE Identity signer.
        qe_identity: the exact signed text of the inner ``enclaveIdentity`` object.
        qe_identity_signature: raw 64-byte r‖s over ``qe_identity``.
        pck_certificate_chain: PEM PCK chain for quotes whose certification data carries
            no chain (types 1-3), else None.
    """

    pck_crl_issuer_chain: str
    root_ca_crl: bytes
    pck_crl: bytes
    tcb_info_issuer_chain: str
    tcb_info: str
    tcb_info_signature: bytes
    qe_identity_issuer_chain: str
    qe_identity: str
    qe_identity_signature: bytes
    pck_certificate_chain: str | None = None

    def __post_init__(self) -> None:
        for name in _TEXT_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, str) or not value or len(value) > _MAX_FIELD:
                raise CollateralError(f"collateral field {name} must be non-empty text")
            try:
                value.encode("utf-8")  # signatures are checked over the UTF-8 bytes
            except UnicodeEncodeError as exc:
                raise CollateralError(
                    f"collateral field {name} is not valid Unicode (a lone surrogate at "
                    f"{exc.start}); fetch the collateral again"
                ) from exc
        for name in ("root_ca_crl", "pck_crl"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or not value.startswith(b"\x30"):
                raise CollateralError(f"collateral field {name} must be a DER CRL (bytes)")
        for name in ("tcb_info_signature", "qe_identity_signature"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != 64:
                raise CollateralError(f"collateral field {name} must be 64 raw bytes (r||s)")
        chain = self.pck_certificate_chain
        if chain is not None and (not isinstance(chain, str) or "-----BEGIN" not in chain):
            raise CollateralError("collateral field pck_certificate_chain must be PEM text")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Collateral:
        """Build from a dcap-qvl-shaped mapping.

        CRLs may be hex DER (dcap-qvl), PEM or base64 DER text, or bytes; signatures hex text
        or 64 raw bytes; issuer chains PEM (URL-encoded PEM, as in PCS headers, is decoded).

        Raises:
            CollateralError: a missing, unknown or malformed field.
        """
        if not isinstance(data, dict):
            raise CollateralError("collateral must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CollateralError(f"unknown collateral field(s) {', '.join(unknown)}")
        missing = sorted(known - set(data) - {"pck_certificate_chain"})
        if missing:
            raise CollateralError(f"collateral is missing field(s) {', '.join(missing)}")
        chain = data.get("pck_certificate_chain")
        return cls(
            pck_crl_issuer_chain=_chain(data["pck_crl_issuer_chain"], "pck_crl_issuer_chain"),
            root_ca_crl=crl_der(data["root_ca_crl"], "root_ca_crl"),
            pck_crl=crl_der(data["pck_crl"], "pck_crl"),
            tcb_info_issuer_chain=_chain(data["tcb_info_issuer_chain"], "tcb_info_issuer_chain"),
            tcb_info=_text(data["tcb_info"], "tcb_info"),
            tcb_info_signature=_signature(data["tcb_info_signature"], "tcb_info_signature"),
            qe_identity_issuer_chain=_chain(
                data["qe_identity_issuer_chain"], "qe_identity_issuer_chain"
            ),
            qe_identity=_text(data["qe_identity"], "qe_identity"),
            qe_identity_signature=_signature(
                data["qe_identity_signature"], "qe_identity_signature"
            ),
            pck_certificate_chain=None if chain is None else _chain(chain, "pck_certificate_chain"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Collateral:
        """Parse dcap-qvl ``QuoteCollateralV3`` JSON (see :meth:`from_dict` for field forms).

        Raises:
            CollateralError: not JSON, or any field problem.
        """
        try:
            data = json.loads(text)
        except (ValueError, TypeError, RecursionError) as exc:
            raise CollateralError(f"collateral is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, str]:
        """dcap-qvl shape: CRLs and signatures as hex, everything else as text."""
        out = {
            "pck_crl_issuer_chain": self.pck_crl_issuer_chain,
            "root_ca_crl": self.root_ca_crl.hex(),
            "pck_crl": self.pck_crl.hex(),
            "tcb_info_issuer_chain": self.tcb_info_issuer_chain,
            "tcb_info": self.tcb_info,
            "tcb_info_signature": self.tcb_info_signature.hex(),
            "qe_identity_issuer_chain": self.qe_identity_issuer_chain,
            "qe_identity": self.qe_identity,
            "qe_identity_signature": self.qe_identity_signature.hex(),
        }
        if self.pck_certificate_chain is not None:
            out["pck_certificate_chain"] = self.pck_certificate_chain
        return out

    def to_json(self) -> str:
        """JSON that dcap-qvl's ``QuoteCollateralV3.from_json`` and :meth:`from_json` read."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_pcs_responses(
        cls,
        *,
        tcb_info_response: str | bytes,
        qe_identity_response: str | bytes,
        tcb_info_issuer_chain: str,
        qe_identity_issuer_chain: str,
        pck_crl: bytes | str,
        pck_crl_issuer_chain: str,
        root_ca_crl: bytes | str,
        pck_certificate_chain: str | None = None,
    ) -> Collateral:
        """Assemble collateral from Intel PCS / PCCS responses.

        ``*_response`` are the whole response bodies (``{"tcbInfo":{..},"signature":".."}``);
        the exact inner text is kept. Issuer chains may be URL-encoded (PCS headers).

        Raises:
            CollateralError: a body without the expected object or signature, or bad fields.
        """
        tcb_text, tcb_sig = split_signed_json(tcb_info_response, "tcbInfo")
        qe_text, qe_sig = split_signed_json(qe_identity_response, "enclaveIdentity")
        return cls.from_dict({
            "pck_crl_issuer_chain": pck_crl_issuer_chain, "root_ca_crl": root_ca_crl,
            "pck_crl": pck_crl, "tcb_info_issuer_chain": tcb_info_issuer_chain,
            "tcb_info": tcb_text, "tcb_info_signature": tcb_sig,
            "qe_identity_issuer_chain": qe_identity_issuer_chain, "qe_identity": qe_text,
            "qe_identity_signature": qe_sig, "pck_certificate_chain": pck_certificate_chain,
        })  # fmt: skip


def split_signed_json(text: str | bytes, key: str) -> tuple[str, bytes]:
    """Split a PCS body ``{"<key>": {...}, "signature": "<hex>"}`` into (inner text, signature).

    The inner text is the exact slice of the input (never re-serialized), so its signature
    still verifies.

    Raises:
        CollateralError: not a JSON object with exactly ``key`` and ``signature``, or a
            signature that is not 64 bytes of hex.
    """
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CollateralError(f"the {key} response is not UTF-8 text") from exc
    if not isinstance(text, str):
        raise CollateralError(f"the {key} response must be text")
    members = _top_level_slices(text, key)
    if set(members) != {key, "signature"}:
        raise CollateralError(
            f"the {key} response must have exactly the members {key!r} and 'signature', "
            f"got {sorted(members)}"
        )
    inner = members[key]
    if not inner.startswith("{"):
        raise CollateralError(f"the {key} member must be a JSON object")
    return inner, _signature(json.loads(members["signature"]), f"{key} signature")


def _top_level_slices(text: str, what: str) -> dict[str, str]:
    """Map each top-level member name of a JSON object to the exact text of its value."""
    decoder = json.JSONDecoder()
    out: dict[str, str] = {}
    try:
        pos = _skip_ws(text, 0)
        if text[pos : pos + 1] != "{":
            raise ValueError("not a JSON object")
        pos = _skip_ws(text, pos + 1)
        while text[pos : pos + 1] != "}":
            name, pos = decoder.raw_decode(text, pos)
            pos = _skip_ws(text, pos)
            if not isinstance(name, str) or text[pos : pos + 1] != ":" or name in out:
                raise ValueError("bad or duplicate member name")
            start = _skip_ws(text, pos + 1)
            _, end = decoder.raw_decode(text, start)
            out[name] = text[start:end]
            pos = _skip_ws(text, end)
            if text[pos : pos + 1] == ",":
                pos = _skip_ws(text, pos + 1)
            elif text[pos : pos + 1] != "}":
                raise ValueError("expected ',' or '}'")
        if text[_skip_ws(text, pos + 1) :]:
            raise ValueError("text after the object")
    except (ValueError, RecursionError) as exc:
        raise CollateralError(
            f"the {what} response is not a well-formed JSON object: {exc}"
        ) from exc
    return out


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise CollateralError(f"collateral field {name} must be a JSON string (the exact text)")
    return value


def _chain(value: object, name: str) -> str:
    text = _text(value, name)
    if "-----BEGIN" not in text and "%2D" in text.upper():
        text = urllib.parse.unquote(text)
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise CollateralError(f"collateral field {name} must be a PEM certificate chain")
    return text


def _signature(value: object, name: str) -> bytes:
    if isinstance(value, bytes) and len(value) == 64:
        return value
    if not isinstance(value, str) or len(value) != 128 or not _HEX.fullmatch(value):
        raise CollateralError(f"{name} must be 64 bytes as 128 hex digits (raw r||s)")
    return bytes.fromhex(value)


def crl_der(value: object, name: str) -> bytes:
    """Normalise a CRL given as DER bytes, hex, PEM or base64 DER (text or bytes) to DER.

    Raises:
        CollateralError: none of these forms, or not a DER SEQUENCE.
    """
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
        if raw.startswith(b"\x30"):
            return raw
        try:
            value = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise CollateralError(f"{name} is neither DER nor text") from exc
    if not isinstance(value, str):
        raise CollateralError(f"{name} must be a CRL as hex, PEM or base64 text, or DER bytes")
    text = value.strip()
    der: bytes | None = None
    if _HEX.fullmatch(text):
        der = bytes.fromhex(text)
    else:
        match = _PEM_CRL.search(text)
        body = match.group(1) if match else text
        try:
            der = base64.b64decode("".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            der = None
    if not der or der[0] != 0x30:
        raise CollateralError(f"{name} is not a CRL in hex, PEM, base64 or DER form")
    return der
