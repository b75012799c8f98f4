"""Find the hardware evidence in an attested-TLS certificate, in every known format.

Each recognised extension is decoded into a :class:`CertEvidence` (the quote, claims and
format details); nothing is trusted yet. Formats (OIDs as decoded):

* ``tcg-dice``: 2.23.133.5.4.9, CBOR tag 60000 ``[quote, claims]`` (enklave, Gramine >= 1.8,
  Intel SGX SDK, rats-tls, rats-rs).
* ``gramine-legacy``: Gramine's raw quote under the mangled OID 0.6.9.42.840.113741.1337.6.
* ``raw-quote``: a raw quote under 1.2.840.113741.1337.6 (Cosmian, rats-tls 2021,
  Intel Labs sgx-ra-tls).
* ``intel-sgxsdk``: a raw quote under 1.2.840.113741.1.13.1, bound only through the DICE
  claims carried in the same certificate.
* ``oe-report`` (1.3.6.1.4.1.311.105.1, Open Enclave / EGo) and ``oe-legacy``
  (1.2.840.113556.10.1.1): 16-byte report header ``u32 1, u32 2, u64 size`` + quote.
* ``oe-evidence`` (1.3.6.1.4.1.311.105.2 and 1.2.840.113556.10.1.2): 32-byte attestation
  header v3 (SGX ECDSA format id) + quote + custom claims.
* ``dstack``: 1.3.6.1.4.1.62397.1.1, a DER OCTET STRING holding a TDX quote and zero padding.
* ``ias``: EPID/IAS reports (Integritee Netscape comment, Fortanix 1.3.6.1.4.1.49690.2.2.3).
  A Netscape comment (2.16.840.1.113730.1.13) is read as IAS evidence only when it has
  Integritee's shape ``{json}|base64|base64``; any other comment is an ordinary one, ignored.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import CertificateError, QuoteFormatError
from ..models import _der
from ..models.quote import parse_quote
from . import _dice, _ias
from ._x509 import Certificate, Extension

__all__ = ["FORMAT_OIDS", "CertEvidence", "find_evidence", "quote_length"]

GRAMINE_MANGLED: Final = bytes.fromhex("06092a864886f84d8a3906")
OE_SGX_ECDSA_UUID: Final = bytes.fromhex("a3a21e871b4d4014b70aa125d2fbcd8c")
#: format name for each evidence OID, in preference order (best first)
FORMAT_OIDS: Final[Mapping[str, str]] = {
    "2.23.133.5.4.9": "tcg-dice",
    "1.3.6.1.4.1.311.105.2": "oe-evidence",
    "1.2.840.113556.10.1.2": "oe-evidence",
    "0.6.9.42.840.113741.1337.6": "gramine-legacy",
    "1.2.840.113741.1337.6": "raw-quote",
    "1.2.840.113741.1.13.1": "intel-sgxsdk",
    "1.3.6.1.4.1.311.105.1": "oe-report",
    "1.2.840.113556.10.1.1": "oe-legacy",
    "1.3.6.1.4.1.62397.1.1": "dstack",
    "2.16.840.1.113730.1.13": "ias",
    "1.3.6.1.4.1.49690.2.2.3": "ias",
}
_SIDE_INFO: Final = {
    "2.23.133.5.4.2": "dice_endorsements", "1.2.840.113741.1337.7": "pck_certificate",
    "1.2.840.113741.1337.8": "pck_issuer_chain", "1.2.840.113741.1337.9": "tcb_info",
    "1.2.840.113741.1337.10": "tcb_issuer_chain",
}  # fmt: skip
_DSTACK_SIDE: Final = {
    "1.3.6.1.4.1.62397.1.2": "event_log", "1.3.6.1.4.1.62397.1.3": "app_id",
    "1.3.6.1.4.1.62397.1.4": "cert_usage",
}  # fmt: skip
NETSCAPE_COMMENT: Final = "2.16.840.1.113730.1.13"
_IAS_COMMENT: Final = re.compile(rb"\{.*\}\|[A-Za-z0-9+/=]+\|[A-Za-z0-9+/=]+", re.DOTALL)
_RANK: Final = {name: i for i, name in enumerate(dict.fromkeys(FORMAT_OIDS.values()))}


@dataclass(frozen=True)
class CertEvidence:
    """Evidence found in one certificate extension (unverified).

    Attributes:
        format: "tcg-dice" | "gramine-legacy" | "intel-sgxsdk" | "raw-quote" | "oe-report" |
            "oe-legacy" | "oe-evidence" | "dstack" | "ias".
        oid: the extension's dotted OID.
        quote: the DCAP quote (None for EPID/IAS).
        claims: DICE claims bytes or OE custom claims; None otherwise.
        details: format-specific extras (e.g. "ias": IasEvidence, "event_log": bytes).
    """

    format: str
    oid: str
    quote: bytes | None
    claims: bytes | None
    details: Mapping[str, Any] = field(default_factory=dict)


def _bad(what: str, ext: Extension) -> CertificateError:
    return CertificateError(
        f"evidence extension {ext.oid} is malformed: {what}; the certificate cannot be "
        "attested (ask the peer to re-issue it)",
        code="malformed_extension",
    )


def quote_length(data: bytes) -> int:
    """The length of the DCAP quote at the start of ``data`` (bytes after it are not read).

    Raises:
        QuoteFormatError: ``data`` does not start with a well-formed quote.
    """
    quote = parse_quote(data)
    return len(data) - quote.trailing


def _oe_report(ext: Extension) -> bytes:
    value = ext.value
    if len(value) < 16:
        raise _bad("shorter than the 16-byte report header", ext)
    version, kind, size = struct.unpack_from("<IIQ", value)
    if version != 1 or kind != 2 or size != len(value) - 16:
        raise _bad(f"report header (version {version}, type {kind}, size {size}) is wrong", ext)
    return value[16:]


def _oe_evidence(ext: Extension) -> tuple[bytes, bytes]:
    value = ext.value
    if len(value) < 32:
        raise _bad("shorter than the 32-byte attestation header", ext)
    version, = struct.unpack_from("<I", value)
    size, = struct.unpack_from("<Q", value, 24)
    if version != 3 or value[4:20] != OE_SGX_ECDSA_UUID or size != len(value) - 32:
        raise _bad("attestation header is not version 3 / SGX ECDSA, or its size is wrong", ext)
    data = value[32:]
    qlen = quote_length(data)
    return data[:qlen], data[qlen:]


def _octets(ext: Extension) -> bytes:
    node = _der.parse(ext.value, max_depth=1)
    if node.tag != _der.OCTET_STRING or node.children is not None:
        raise _bad("value is not a DER OCTET STRING", ext)
    return node.value


def _dstack(ext: Extension) -> bytes:
    data = _octets(ext)
    qlen = quote_length(data)
    if data[qlen:].strip(b"\0"):
        raise _bad("bytes after the quote are not zero padding", ext)
    return data[:qlen]


def _decode(ext: Extension, cert: Certificate) -> CertEvidence:
    fmt = FORMAT_OIDS[ext.oid]
    if fmt == "tcg-dice":
        _, quote, claims = _dice.decode_tagged_evidence(ext.value)
        _dice.decode_claims(claims)
        return CertEvidence(fmt, ext.oid, quote, claims, _side_details(cert))
    if fmt == "ias":
        ias = (_ias.parse_integritee if ext.oid.startswith("2.16") else _ias.parse_fortanix)(
            ext.value
        )
        return CertEvidence(fmt, ext.oid, None, None, {"ias": ias, "ias_report": ias.report})
    if fmt in ("oe-report", "oe-legacy"):
        return CertEvidence(fmt, ext.oid, _oe_report(ext), None)
    if fmt == "oe-evidence":
        quote, claims = _oe_evidence(ext)
        return CertEvidence(fmt, ext.oid, quote, claims)
    if fmt == "dstack":
        return CertEvidence(fmt, ext.oid, _dstack(ext), None, _dstack_details(cert))
    if fmt == "intel-sgxsdk":
        dice = cert.extension(_dice.DICE_EVIDENCE_OID)
        dice_claims = None if dice is None else _dice.decode_tagged_evidence(dice.value)[2]
        return CertEvidence(fmt, ext.oid, ext.value, dice_claims)
    return CertEvidence(fmt, ext.oid, ext.value, None, _side_details(cert))


def _side_details(cert: Certificate) -> dict[str, Any]:
    return {name: e.value for e in cert.extensions if (name := _SIDE_INFO.get(e.oid))}


def _dstack_details(cert: Certificate) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ext in cert.extensions:
        name = _DSTACK_SIDE.get(ext.oid)
        if name:
            out[name] = _octets(ext)
    return out


def find_evidence(cert: Certificate) -> list[CertEvidence]:
    """Every evidence extension of ``cert``, decoded, best first (DICE first).

    The Gramine legacy extension is recognised in both byte forms of its OID. A recognised
    extension that does not decode fails the whole certificate (fail closed).

    Raises:
        CertificateError: no evidence extension (code ``missing_extension``), or one is
            malformed (``malformed_extension``) or of an unsupported kind
            (``unsupported_evidence``).
    """
    found: list[CertEvidence] = []
    for ext in cert.extensions:
        if ext.oid not in FORMAT_OIDS:
            continue
        if ext.oid == NETSCAPE_COMMENT and not _IAS_COMMENT.fullmatch(ext.value):
            continue  # an ordinary Netscape comment, not Integritee's IAS report
        try:
            found.append(_decode(ext, cert))
        except QuoteFormatError as exc:
            raise _bad(str(exc), ext) from exc
    if not found:
        raise CertificateError(
            "the certificate carries no attestation evidence extension (TCG DICE "
            "2.23.133.5.4.9, Gramine, Open Enclave/EGo, dstack ...): the peer is not an "
            "attested enclave, or it presented an ordinary certificate",
            code="missing_extension",
        )
    found.sort(key=lambda ev: _RANK[ev.format])
    return found
