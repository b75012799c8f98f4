"""Quote parts: the 48-byte header, the SGX and TD report bodies, and certification data.

Each type is a frozen dataclass described by a field table ``(name, offset, size, kind)``;
``kind`` is ``"b"`` (bytes), ``"i"`` (little-endian unsigned int) or ``"r"`` (four 48-byte
RTMRs). Bytes not named in a table are reserved: ``build``/the constructor writes zeros there,
``from_bytes`` keeps the original bytes in ``raw`` (so signatures over them still verify).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..errors import QuoteFormatError
from . import _der

__all__ = [
    "HEADER_LAYOUT",
    "SGX_LAYOUT",
    "TD10_SIZE",
    "TD15_SIZE",
    "TD_LAYOUT",
    "CertificationData",
    "PckCertId",
    "QuoteHeader",
    "SgxReportBody",
    "TdReportBody",
]

_Layout = tuple[tuple[str, int, int, str], ...]

HEADER_LAYOUT: _Layout = (
    ("version", 0, 2, "i"), ("att_key_type", 2, 2, "i"), ("tee_type", 4, 4, "i"),
    ("qe_svn", 8, 2, "i"), ("pce_svn", 10, 2, "i"), ("qe_vendor_id", 12, 16, "b"),
    ("user_data", 28, 20, "b"),
)  # fmt: skip
SGX_LAYOUT: _Layout = (
    ("cpu_svn", 0, 16, "b"), ("miscselect", 16, 4, "i"), ("isv_ext_prod_id", 32, 16, "b"),
    ("attributes", 48, 16, "b"), ("mrenclave", 64, 32, "b"), ("mrsigner", 128, 32, "b"),
    ("config_id", 192, 64, "b"), ("isv_prod_id", 256, 2, "i"), ("isv_svn", 258, 2, "i"),
    ("config_svn", 260, 2, "i"), ("isv_family_id", 304, 16, "b"), ("report_data", 320, 64, "b"),
)  # fmt: skip
TD_LAYOUT: _Layout = (
    ("tee_tcb_svn", 0, 16, "b"), ("mr_seam", 16, 48, "b"), ("mr_signer_seam", 64, 48, "b"),
    ("seam_attributes", 112, 8, "b"), ("td_attributes", 120, 8, "b"), ("xfam", 128, 8, "b"),
    ("mr_td", 136, 48, "b"), ("mr_config_id", 184, 48, "b"), ("mr_owner", 232, 48, "b"),
    ("mr_owner_config", 280, 48, "b"), ("rtmrs", 328, 192, "r"), ("report_data", 520, 64, "b"),
)  # fmt: skip
_TD15_LAYOUT: _Layout = (("tee_tcb_svn2", 584, 16, "b"), ("mr_service_td", 600, 48, "b"))
_TD15_NAMES = frozenset(("tee_tcb_svn2", "mr_service_td"))
TD10_SIZE = 584
TD15_SIZE = 648
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)
_PPID_SIZES = {1: 16, 2: 256, 3: 384}
_MAX_CHAIN = 16


def _unpack(layout: _Layout, raw: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, off, size, kind in layout:
        chunk = raw[off : off + size]
        if kind == "i":
            out[name] = int.from_bytes(chunk, "little")
        elif kind == "r":
            out[name] = tuple(chunk[i : i + 48] for i in range(0, 192, 48))
        else:
            out[name] = chunk
    return out


def _pack(layout: _Layout, size: int, obj: object) -> bytes:
    buf = bytearray(size)
    for name, off, width, kind in layout:
        value = getattr(obj, name)
        if kind == "i":
            buf[off : off + width] = value.to_bytes(width, "little")
        else:
            buf[off : off + width] = b"".join(value) if kind == "r" else value
    return bytes(buf)


def _check(layout: _Layout, obj: object, what: str) -> None:
    """Raise QuoteFormatError unless every field has the type and size its layout says."""
    for name, _, size, kind in layout:
        value = getattr(obj, name)
        if kind == "i":
            ok = type(value) is int and 0 <= value < 1 << (8 * size)
        elif kind == "r":
            ok = (
                isinstance(value, tuple) and len(value) == 4
                and all(isinstance(v, bytes) and len(v) == 48 for v in value)
            )  # fmt: skip
        else:
            ok = isinstance(value, bytes) and len(value) == size
        if not ok:
            expected = f"a u{8 * size}" if kind == "i" else f"{size} bytes"
            raise QuoteFormatError(f"{what} field {name} must be {expected}, got {value!r:.60}")


def _zeros(layout: _Layout) -> dict[str, Any]:
    return _unpack(layout, bytes(max(off + size for _, off, size, _ in layout)))


def _defaults(layout: _Layout, kw: dict[str, Any], what: str) -> dict[str, Any]:
    values = _zeros(layout)
    unknown = set(kw) - set(values)
    if unknown:
        raise QuoteFormatError(f"{what} has no field(s) {', '.join(sorted(unknown))}")
    values.update(kw)
    return values


def _exact(raw: bytes, sizes: tuple[int, ...], what: str) -> bytes:
    if not isinstance(raw, bytes | bytearray | memoryview) or len(raw) not in sizes:
        got = len(raw) if isinstance(raw, bytes | bytearray | memoryview) else type(raw).__name__
        raise QuoteFormatError(f"{what} must be {' or '.join(map(str, sizes))} bytes, got {got}")
    return bytes(raw)


@dataclass(frozen=True)
class QuoteHeader:
    """The 48-byte quote header (field widths checked; values are checked by the parser)."""

    version: int
    att_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes

    def __post_init__(self) -> None:
        _check(HEADER_LAYOUT, self, "quote header")

    @classmethod
    def from_bytes(cls, raw: bytes) -> QuoteHeader:
        """Split 48 bytes into fields. Raises QuoteFormatError for another length."""
        return cls(**_unpack(HEADER_LAYOUT, _exact(raw, (48,), "a quote header")))

    def to_bytes(self) -> bytes:
        """The 48-byte encoding."""
        return _pack(HEADER_LAYOUT, 48, self)


@dataclass(frozen=True)
class SgxReportBody:
    """An SGX enclave report body (384 bytes), as in the quote body and the QE report.

    ``raw`` is the exact 384 bytes: the parsed input (reserved bytes kept) or, for a
    constructed value, the encoding with zero reserved bytes.
    """

    cpu_svn: bytes
    miscselect: int
    isv_ext_prod_id: bytes
    attributes: bytes
    mrenclave: bytes
    mrsigner: bytes
    config_id: bytes
    isv_prod_id: int
    isv_svn: int
    config_svn: int
    isv_family_id: bytes
    report_data: bytes
    _raw: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check(SGX_LAYOUT, self, "SGX report")
        object.__setattr__(self, "_raw", _pack(SGX_LAYOUT, 384, self))

    @property
    def debug(self) -> bool:
        """ATTRIBUTES.FLAGS bit 1 (DEBUG)."""
        return bool(self.attributes[0] & 0x02)

    @property
    def raw(self) -> bytes:
        return self._raw

    @classmethod
    def from_bytes(cls, raw: bytes) -> SgxReportBody:
        """Parse 384 bytes. Raises QuoteFormatError for another length."""
        raw = _exact(raw, (384,), "an SGX report body")
        body = cls(**_unpack(SGX_LAYOUT, raw))
        object.__setattr__(body, "_raw", raw)
        return body

    def to_bytes(self) -> bytes:
        """The exact 384 bytes (``raw``)."""
        return self._raw

    @classmethod
    def build(cls, **fields: Any) -> SgxReportBody:
        """Construct with zeros for every field not given. Raises QuoteFormatError on bad fields."""
        return cls(**_defaults(SGX_LAYOUT, fields, "an SGX report"))


@dataclass(frozen=True)
class TdReportBody:
    """A TD report body: TDREPORT 1.0 (584 bytes) or 1.5 (648 bytes, with the last two fields).

    ``tee_tcb_svn2`` and ``mr_service_td`` are both ``None`` (1.0) or both set (1.5).
    """

    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_signer_seam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    tee_tcb_svn2: bytes | None = None
    mr_service_td: bytes | None = None
    _raw: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check(TD_LAYOUT, self, "TD report")
        if self.tee_tcb_svn2 is None and self.mr_service_td is None:
            object.__setattr__(self, "_raw", _pack(TD_LAYOUT, TD10_SIZE, self))
            return
        _check(_TD15_LAYOUT, self, "TD report 1.5")
        object.__setattr__(self, "_raw", _pack(TD_LAYOUT + _TD15_LAYOUT, TD15_SIZE, self))

    @property
    def debug(self) -> bool:
        """TDATTRIBUTES bit 0 (DEBUG)."""
        return bool(self.td_attributes[0] & 0x01)

    @property
    def raw(self) -> bytes:
        return self._raw

    @classmethod
    def from_bytes(cls, raw: bytes) -> TdReportBody:
        """Parse 584 (1.0) or 648 (1.5) bytes. Raises QuoteFormatError for another length."""
        raw = _exact(raw, (TD10_SIZE, TD15_SIZE), "a TD report body")
        layout = TD_LAYOUT if len(raw) == TD10_SIZE else TD_LAYOUT + _TD15_LAYOUT
        body = cls(**_unpack(layout, raw))
        object.__setattr__(body, "_raw", raw)
        return body

    def to_bytes(self) -> bytes:
        """The exact 584 or 648 bytes (``raw``)."""
        return self._raw

    @classmethod
    def build(cls, **fields: Any) -> TdReportBody:
        """Construct with zeros for every field not given (1.5 only if a 1.5 field is given)."""
        fields = {k: v for k, v in fields.items() if v is not None or k not in _TD15_NAMES}
        layout = TD_LAYOUT + _TD15_LAYOUT if _TD15_NAMES & set(fields) else TD_LAYOUT
        return cls(**_defaults(layout, fields, "a TD report"))


class PckCertId(NamedTuple):
    """The PCK-certificate ID carried by certification data types 1-3 (sgx_quote_3.h)."""

    ppid: bytes
    cpusvn: bytes
    pcesvn: int
    pce_id: bytes | None


@dataclass(frozen=True)
class CertificationData:
    """Certification data: ``cert_type`` 1-3 PPID blob, 4 PCK leaf, 5 PCK chain.

    For v4/v5 quotes this is the *inner* data of the type-6 QE report certification data.
    """

    cert_type: int
    data: bytes

    def pck_chain_der(self) -> list[bytes]:
        """Return the DER of each embedded certificate, in the order found.

        Accepts concatenated PEM (trailing NULs stripped; only whitespace between blocks) or
        concatenated DER (Intel's TDX sample is DER, root-first). Each certificate is checked to
        be one complete DER SEQUENCE; it is not decoded or verified here.

        Raises:
            QuoteFormatError: the type carries no chain (1-3, or anything but 4/5) or the data
                is neither well-formed PEM nor well-formed DER.
        """
        if self.cert_type not in (4, 5):
            raise QuoteFormatError(
                f"certification data type {self.cert_type} carries no PCK chain; "
                "pass the PCK chain with the collateral (pck_certificate_chain)"
            )
        if b"-----BEGIN" not in self.data:
            return _der.split_concatenated(self.data, limit=_MAX_CHAIN, zero_padding=True)
        data = self.data.rstrip(b"\0")
        if data.count(b"-----BEGIN") > _MAX_CHAIN:
            raise QuoteFormatError(f"certification data holds over {_MAX_CHAIN} PEM blocks")
        blocks = _PEM_CERT.findall(data)
        if not blocks or _PEM_CERT.sub(b"", data).strip():
            raise QuoteFormatError(
                "certification data is not a clean PEM certificate chain (text outside the "
                "BEGIN/END CERTIFICATE blocks); the quote is corrupt"
            )
        out = []
        for index, block in enumerate(blocks):
            try:
                der = base64.b64decode(b"".join(block.split()), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise QuoteFormatError(f"PEM certificate {index} has invalid base64") from exc
            if _der.split_concatenated(der, limit=1) != [der]:
                raise QuoteFormatError(f"PEM certificate {index} is not one DER SEQUENCE")
            out.append(der)
        return out

    def pck_cert_id(self) -> PckCertId:
        """Parse the PCK-cert-ID blob of types 1-3: ``ppid ‖ cpusvn(16) ‖ pcesvn u16 [‖ pceid(2)]``.

        Raises:
            QuoteFormatError: another type, or a blob whose size fits neither form.
        """
        ppid_size = _PPID_SIZES.get(self.cert_type)
        if ppid_size is None:
            raise QuoteFormatError(
                f"certification data type {self.cert_type} carries no PCK cert ID (types 1-3 do)"
            )
        data = self.data
        if len(data) not in (ppid_size + 18, ppid_size + 20):
            raise QuoteFormatError(
                f"PCK cert ID of type {self.cert_type} must be {ppid_size + 18} or "
                f"{ppid_size + 20} bytes, got {len(data)}"
            )
        pcesvn = int.from_bytes(data[ppid_size + 16 : ppid_size + 18], "little")
        pce_id = data[ppid_size + 18 :] or None
        return PckCertId(data[:ppid_size], data[ppid_size : ppid_size + 16], pcesvn, pce_id)
