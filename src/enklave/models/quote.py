"""Intel SGX/TDX DCAP quotes (versions 3, 4 and 5): parse and build the binary format.

A :class:`Quote` is *parsed*, not verified: the parser checks structure only (version,
attestation key type, TEE type, body type and size, certification data types, and that every
length stays inside the buffer and consumes exactly its declared data). It does **not** check
the QE vendor ID, any signature, the PCK chain or TCB status; that is the verifier's job. All
integers are little-endian. Every malformed input raises :class:`QuoteFormatError` naming the
field and its offset.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import QuoteFormatError
from ._quote_parts import (
    TD10_SIZE,
    TD15_SIZE,
    CertificationData,
    PckCertId,
    QuoteHeader,
    SgxReportBody,
    TdReportBody,
)

__all__ = [
    "ATT_KEY_ECDSA_P256",
    "INTEL_QE_VENDOR_ID",
    "MAX_CERT_DATA",
    "TEE_SGX",
    "TEE_TDX",
    "CertificationData",
    "PckCertId",
    "Quote",
    "QuoteHeader",
    "SgxReportBody",
    "TdReportBody",
    "build_quote",
    "parse_quote",
]

TEE_SGX = 0
TEE_TDX = 0x81
ATT_KEY_ECDSA_P256 = 2
INTEL_QE_VENDOR_ID: bytes = bytes.fromhex("939A7233F79C4CA9940A0DB3957F0607")
MAX_CERT_DATA = 64 * 1024
_HEADER_SIZE = 48
_SGX_SIZE = 384
_BODY_SIZES = {1: _SGX_SIZE, 2: TD10_SIZE, 3: TD15_SIZE}
_QE_REPORT_CERT = 6


@dataclass(frozen=True)
class Quote:
    """A parsed (unverified) DCAP quote.

    Attributes:
        header: the 48-byte header.
        body_type: 1 SGX report, 2 TD report 1.0, 3 TD report 1.5 (v3/v4: from ``tee_type``).
        body: the enclave or TD report.
        signature: raw r‖s ECDSA signature over ``signed_region`` by the attestation key.
        attestation_key: raw X‖Y P-256 public key.
        qe_report: the quoting enclave's report (signed by the PCK key).
        qe_report_signature: raw r‖s over ``qe_report.raw``.
        qe_auth_data: bound into ``qe_report.report_data`` with the attestation key.
        certification: the certification data (inner data of type 6 for v4/v5).
        signed_region: header (+ v5 body descriptor) + body, the bytes ``signature`` covers.
        raw: the whole input.
        trailing: number of bytes after the declared signature data (allowed, ignored).
    """

    header: QuoteHeader
    body_type: int
    body: SgxReportBody | TdReportBody
    signature: bytes
    attestation_key: bytes
    qe_report: SgxReportBody
    qe_report_signature: bytes
    qe_auth_data: bytes
    certification: CertificationData
    signed_region: bytes
    raw: bytes
    trailing: int

    @property
    def tee(self) -> str:
        """``"tdx"`` for TEE type 0x81, else ``"sgx"``."""
        return "tdx" if self.header.tee_type == TEE_TDX else "sgx"

    @property
    def report_data(self) -> bytes:
        """The 64-byte REPORTDATA of the enclave or TD report."""
        return self.body.report_data

    @classmethod
    def from_bytes(cls, data: bytes) -> Quote:
        """Same as :func:`parse_quote`."""
        return parse_quote(data)


class _Reader:
    """A bounded cursor over ``data[pos:end]`` that names the field on every failure."""

    def __init__(self, data: bytes, pos: int, end: int, where: str) -> None:
        self.data, self.pos, self.end, self.where = data, pos, end, where

    def take(self, size: int, name: str) -> bytes:
        if size > self.end - self.pos:
            raise QuoteFormatError(
                f"quote field {name} at offset {self.pos} needs {size} bytes but only "
                f"{self.end - self.pos} remain in {self.where}; the quote is truncated or a "
                "length field is wrong"
            )
        self.pos += size
        return self.data[self.pos - size : self.pos]

    def u16(self, name: str) -> int:
        return int.from_bytes(self.take(2, name), "little")

    def u32(self, name: str) -> int:
        return int.from_bytes(self.take(4, name), "little")

    def sub(self, size: int, name: str) -> _Reader:
        start = self.pos
        self.take(size, name)
        return _Reader(self.data, start, start + size, name)

    def finish(self) -> None:
        if self.pos != self.end:
            raise QuoteFormatError(
                f"{self.where} has {self.end - self.pos} unparsed bytes at offset {self.pos}: "
                "its declared size does not match its fields; the quote is malformed"
            )


def parse_quote(data: bytes) -> Quote:
    """Parse a v3, v4 or v5 ECDSA-P256 DCAP quote.

    Checked: version in {3, 4, 5}; attestation key type 2; TEE type SGX (0) or TDX (0x81); v3
    is SGX; the v5 body type/size agree with each other and the TEE type; v4/v5 outer
    certification type 6 with inner type 1-5 (v3: 1-5); certification data at most 64 KiB;
    every length inside the buffer and consuming exactly its declared data. Bytes after the
    declared signature data are allowed and counted in ``trailing``. Not checked: QE vendor ID,
    signatures, certificates.

    Raises:
        QuoteFormatError: any structural problem, naming the field and its offset.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise QuoteFormatError(f"a quote must be bytes, not {type(data).__name__}")
    data = bytes(data)
    reader = _Reader(data, 0, len(data), "the quote")
    header = QuoteHeader.from_bytes(reader.take(_HEADER_SIZE, "header"))
    _check_header(header)
    body_type = _read_body_type(reader, header)
    body_bytes = reader.take(_BODY_SIZES[body_type], "report body")
    body: SgxReportBody | TdReportBody = (
        SgxReportBody.from_bytes(body_bytes)
        if body_type == 1
        else TdReportBody.from_bytes(body_bytes)
    )
    signed_region = data[: reader.pos]
    sig = reader.sub(reader.u32("signature data length"), "signature data")
    signature = sig.take(64, "quote signature")
    attestation_key = sig.take(64, "attestation key")
    if header.version == 3:
        qe = sig
    else:
        outer_type = sig.u16("outer certification data type")
        if outer_type != _QE_REPORT_CERT:
            raise QuoteFormatError(
                f"quote field outer certification data type at offset {sig.pos - 2} is "
                f"{outer_type}; v{header.version} quotes need type 6 (QE report certification data)"
            )
        qe = sig.sub(sig.u32("outer certification data size"), "QE report certification data")
        sig.finish()
    qe_report, qe_sig, auth, cert = _parse_qe_part(qe)
    qe.finish()
    return Quote(
        header, body_type, body, signature, attestation_key, qe_report, qe_sig, auth, cert,
        signed_region, data, len(data) - sig.end,
    )  # fmt: skip


def _check_header(header: QuoteHeader) -> None:
    if header.version not in (3, 4, 5):
        raise QuoteFormatError(
            f"quote field version at offset 0 is {header.version}; only DCAP quote versions "
            "3, 4 and 5 are supported"
        )
    if header.att_key_type != ATT_KEY_ECDSA_P256:
        raise QuoteFormatError(
            f"quote field attestation key type at offset 2 is {header.att_key_type}; only 2 "
            "(ECDSA P-256) is supported"
        )
    if header.tee_type not in (TEE_SGX, TEE_TDX):
        raise QuoteFormatError(
            f"quote field TEE type at offset 4 is {header.tee_type:#x}; "
            "expected 0 (SGX) or 0x81 (TDX)"
        )
    if header.version == 3 and header.tee_type != TEE_SGX:
        raise QuoteFormatError("quote field TEE type at offset 4: a v3 quote must be SGX (0)")


def _read_body_type(reader: _Reader, header: QuoteHeader) -> int:
    if header.version != 5:
        return 1 if header.tee_type == TEE_SGX else 2
    body_type = reader.u16("body type")
    body_size = reader.u32("body size")
    expected = _BODY_SIZES.get(body_type)
    if expected is None:
        raise QuoteFormatError(
            f"quote field body type at offset 48 is {body_type}; expected 1 (SGX report), "
            "2 (TD report 1.0) or 3 (TD report 1.5)"
        )
    if body_size != expected:
        raise QuoteFormatError(
            f"quote field body size at offset 50 is {body_size}; body type {body_type} is "
            f"{expected} bytes"
        )
    if (body_type == 1) != (header.tee_type == TEE_SGX):
        raise QuoteFormatError(
            f"quote field body type at offset 48 is {body_type}, which does not match TEE type "
            f"{header.tee_type:#x} (SGX needs type 1, TDX types 2 or 3)"
        )
    return body_type


def _parse_qe_part(
    qe: _Reader,
) -> tuple[SgxReportBody, bytes, bytes, CertificationData]:
    """QE report ‖ QE report signature ‖ auth data (u16 size) ‖ certification data (type 1-5)."""
    qe_report = SgxReportBody.from_bytes(qe.take(_SGX_SIZE, "QE report"))
    qe_sig = qe.take(64, "QE report signature")
    auth = qe.take(qe.u16("QE authentication data size"), "QE authentication data")
    type_at = qe.pos
    cert_type = qe.u16("certification data type")
    if not 1 <= cert_type <= 5:
        raise QuoteFormatError(
            f"quote field certification data type at offset {type_at} is {cert_type}; expected "
            "1-5 (PPID or PCK certificate data)"
        )
    size_at = qe.pos
    size = qe.u32("certification data size")
    if size > MAX_CERT_DATA:
        raise QuoteFormatError(
            f"quote field certification data size at offset {size_at} is {size}, over the "
            f"{MAX_CERT_DATA}-byte limit; the quote is malformed"
        )
    cert = CertificationData(cert_type, qe.take(size, "certification data"))
    return qe_report, qe_sig, auth, cert


def _body_type_for(version: int, tee_type: int, body: SgxReportBody | TdReportBody) -> int:
    if version not in (3, 4, 5) or tee_type not in (TEE_SGX, TEE_TDX):
        raise QuoteFormatError(f"cannot build a v{version} quote for TEE type {tee_type:#x}")
    if isinstance(body, SgxReportBody):
        body_type = 1
    elif isinstance(body, TdReportBody):
        body_type = 2 if body.tee_tcb_svn2 is None else 3
    else:
        raise QuoteFormatError("the quote body must be an SgxReportBody or a TdReportBody")
    if (body_type == 1) != (tee_type == TEE_SGX) or (version == 3 and tee_type != TEE_SGX):
        raise QuoteFormatError(
            f"body type {body_type} does not fit a v{version} quote, TEE {tee_type:#x}"
        )
    if version == 4 and body_type == 3:
        raise QuoteFormatError(
            "a v4 quote carries a TD report 1.0; use version 5 for TD report 1.5"
        )
    return body_type


def build_quote(
    *,
    version: int,
    tee_type: int,
    body: SgxReportBody | TdReportBody,
    attestation_key: bytes,
    sign: Callable[[bytes], bytes],
    qe_report: SgxReportBody,
    qe_report_signature: bytes,
    qe_auth_data: bytes,
    cert_type: int,
    cert_data: bytes,
    qe_svn: int = 0,
    pce_svn: int = 0,
    user_data: bytes = bytes(20),
    qe_vendor_id: bytes = INTEL_QE_VENDOR_ID,
) -> bytes:
    """Serialize a quote: v3 (SGX), v4 (SGX or TD 1.0, type-6 wrapper) or v5 (body descriptor).

    ``sign(signed_region)`` must return the raw 64-byte r‖s signature by the attestation key.
    ``parse_quote`` of the result gives back the same fields.

    Raises:
        QuoteFormatError: an impossible combination (e.g. v3 TDX, v4 with TD report 1.5),
            a field of the wrong size, or a signature that is not 64 bytes.
    """
    body_type = _body_type_for(version, tee_type, body)
    header = QuoteHeader(
        version, ATT_KEY_ECDSA_P256, tee_type, qe_svn, pce_svn, qe_vendor_id, user_data
    ).to_bytes()
    body_bytes = body.to_bytes()
    descriptor = struct.pack("<HI", body_type, len(body_bytes)) if version == 5 else b""
    signed_region = header + descriptor + body_bytes
    signature = sign(signed_region)
    for name, value in (("signature", signature), ("attestation_key", attestation_key),
                        ("qe_report_signature", qe_report_signature)):  # fmt: skip
        if not isinstance(value, bytes) or len(value) != 64:
            raise QuoteFormatError(f"{name} must be 64 raw bytes")
    if len(qe_auth_data) > 0xFFFF or len(cert_data) > MAX_CERT_DATA or not 1 <= cert_type <= 5:
        raise QuoteFormatError(
            "QE auth data over 65535 bytes, cert data over 64 KiB, or type not 1-5"
        )
    qe_part = b"".join((
        qe_report.to_bytes(), qe_report_signature, struct.pack("<H", len(qe_auth_data)),
        qe_auth_data, struct.pack("<HI", cert_type, len(cert_data)), cert_data,
    ))  # fmt: skip
    if version != 3:
        qe_part = struct.pack("<HI", _QE_REPORT_CERT, len(qe_part)) + qe_part
    sig_data = signature + attestation_key + qe_part
    return signed_region + struct.pack("<I", len(sig_data)) + sig_data
