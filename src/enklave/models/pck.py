"""The Intel SGX extension of a PCK certificate (OID 1.2.840.113741.1.13.1): parse and encode.

The extension's value is a DER SEQUENCE of ``{OID, value}`` pairs (PPID, TCB components,
PCE-ID, FMSPC, SGX type and, on Platform-CA certificates, the platform instance ID and
configuration). Parsing is strict DER with depth and size limits; duplicate OIDs, missing
mandatory fields and wrong sizes are rejected. Unknown top-level OIDs are ignored so that
fields Intel may add later do not break parsing. Nothing here checks signatures: take the
extension only from a certificate whose chain you verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import QuoteFormatError
from . import _der

if TYPE_CHECKING:  # cryptography is imported lazily: the enclave imports this package
    from cryptography import x509

__all__ = [
    "PCK_EXTENSION_OID",
    "PckExtension",
    "encode_pck_extension",
    "parse_pck_extension",
    "parse_pck_extension_der",
]

PCK_EXTENSION_OID = "1.2.840.113741.1.13.1"
_P = PCK_EXTENSION_OID
_TCB = _P + ".2"
_CONFIG = _P + ".7"
_CONFIG_FLAGS = ("dynamic_platform", "cached_keys", "smt_enabled")
_MAX_VALUE = 64 * 1024


@dataclass(frozen=True)
class PckExtension:
    """The SGX extension values of a PCK certificate.

    Attributes:
        ppid: 16-byte platform provisioning ID.
        tcb_components: the 16 SGX TCB component SVNs (0..255), used for TCB level matching.
        pcesvn: the PCE SVN used for TCB level matching (u16).
        cpusvn: the 16-byte CPUSVN the certificate was issued for.
        pce_id: 2-byte PCE-ID.
        fmspc: 6-byte FMSPC (family-model-stepping-platform-custom SKU).
        sgx_type: 0 Standard, 1 Scalable, 2 Scalable with integrity (other values are kept).
        platform_instance_id: 16 bytes, Platform-CA certificates only.
        dynamic_platform, cached_keys, smt_enabled: Platform-CA configuration flags, when present.
    """

    ppid: bytes
    tcb_components: tuple[int, ...]
    pcesvn: int
    cpusvn: bytes
    pce_id: bytes
    fmspc: bytes
    sgx_type: int
    platform_instance_id: bytes | None = None
    dynamic_platform: bool | None = None
    cached_keys: bool | None = None
    smt_enabled: bool | None = None

    def __post_init__(self) -> None:
        sizes = {"ppid": 16, "cpusvn": 16, "pce_id": 2, "fmspc": 6, "platform_instance_id": 16}
        for name, size in sizes.items():
            value = getattr(self, name)
            if (value is not None or name != "platform_instance_id") and (
                not isinstance(value, bytes) or len(value) != size
            ):
                raise QuoteFormatError(f"PCK extension field {name} must be {size} bytes")
        comps = self.tcb_components
        if len(comps) != 16 or any(type(c) is not int or not 0 <= c <= 255 for c in comps):
            raise QuoteFormatError("PCK extension needs 16 TCB component SVNs in 0..255")
        if type(self.pcesvn) is not int or not 0 <= self.pcesvn <= 0xFFFF:
            raise QuoteFormatError("PCK extension PCESVN must be a u16")
        if type(self.sgx_type) is not int or not 0 <= self.sgx_type <= 0xFFFF:
            raise QuoteFormatError("PCK extension SGX type must be a small non-negative integer")


def parse_pck_extension(cert: x509.Certificate) -> PckExtension:
    """Read the SGX extension of a PCK certificate.

    Raises:
        QuoteFormatError: the certificate has no SGX extension, its extensions cannot be
            decoded, or the extension value is malformed.
    """
    from cryptography import x509

    oid = x509.ObjectIdentifier(PCK_EXTENSION_OID)
    try:
        ext = cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        raise QuoteFormatError(
            f"the PCK certificate has no SGX extension (OID {PCK_EXTENSION_OID}); "
            "pass the PCK leaf certificate, not a CA certificate"
        ) from None
    except ValueError as exc:
        raise QuoteFormatError(
            f"the PCK certificate's extensions cannot be decoded: {exc}"
        ) from exc
    value = ext.value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise QuoteFormatError(
            f"the PCK certificate's SGX extension has an unexpected type: {value}"
        )
    return parse_pck_extension_der(value.value)


def parse_pck_extension_der(value: bytes) -> PckExtension:
    """Parse the DER value of the SGX extension.

    Raises:
        QuoteFormatError: not strict DER, a mandatory field (.1-.5 and TCB .2.1-.2.18) is
            missing, a field has the wrong type or size, or an OID repeats.
    """
    if not isinstance(value, bytes | bytearray) or len(value) > _MAX_VALUE:
        raise QuoteFormatError("the PCK SGX extension value must be at most 64 KiB of bytes")
    top = _pairs(_der.parse(bytes(value)), "SGX extension")
    tcb = _pairs(_need(top, _TCB, _der.SEQUENCE), "TCB")
    comps = tuple(_int(_need(tcb, f"{_TCB}.{i}", _der.INTEGER)) for i in range(1, 17))
    fields: dict[str, bool | None] = dict.fromkeys(_CONFIG_FLAGS)
    if _CONFIG in top:
        config = _pairs(_need(top, _CONFIG, _der.SEQUENCE), "configuration")
        for i, name in enumerate(_CONFIG_FLAGS, start=1):
            if f"{_CONFIG}.{i}" in config:
                fields[name] = _der.decode_boolean(_need(config, f"{_CONFIG}.{i}", _der.BOOLEAN))
    instance = None
    if f"{_P}.6" in top:
        instance = _need(top, f"{_P}.6", _der.OCTET_STRING).value
    return PckExtension(
        ppid=_need(top, f"{_P}.1", _der.OCTET_STRING).value,
        tcb_components=comps,
        pcesvn=_int(_need(tcb, f"{_TCB}.17", _der.INTEGER)),
        cpusvn=_need(tcb, f"{_TCB}.18", _der.OCTET_STRING).value,
        pce_id=_need(top, f"{_P}.3", _der.OCTET_STRING).value,
        fmspc=_need(top, f"{_P}.4", _der.OCTET_STRING).value,
        sgx_type=_int(_need(top, f"{_P}.5", _der.ENUMERATED)),
        platform_instance_id=instance,
        **fields,
    )


def encode_pck_extension(ext: PckExtension) -> bytes:
    """Encode ``ext`` as the DER extension value (OIDs in ascending order).

    The result can be used as ``x509.UnrecognizedExtension(ObjectIdentifier(PCK_EXTENSION_OID),
    value)``; ``parse_pck_extension_der`` gives ``ext`` back. ``.7`` is written only when at
    least one configuration flag is set.
    """
    tcb = [
        _pair(f"{_TCB}.{i}", _der.encode_integer(c)) for i, c in enumerate(ext.tcb_components, 1)
    ]
    tcb.append(_pair(f"{_TCB}.17", _der.encode_integer(ext.pcesvn)))
    tcb.append(_pair(f"{_TCB}.18", _der.tlv(_der.OCTET_STRING, ext.cpusvn)))
    items = [
        _pair(f"{_P}.1", _der.tlv(_der.OCTET_STRING, ext.ppid)),
        _pair(_TCB, _der.tlv(_der.SEQUENCE, b"".join(tcb))),
        _pair(f"{_P}.3", _der.tlv(_der.OCTET_STRING, ext.pce_id)),
        _pair(f"{_P}.4", _der.tlv(_der.OCTET_STRING, ext.fmspc)),
        _pair(f"{_P}.5", _der.encode_integer(ext.sgx_type, _der.ENUMERATED)),
    ]
    if ext.platform_instance_id is not None:
        items.append(_pair(f"{_P}.6", _der.tlv(_der.OCTET_STRING, ext.platform_instance_id)))
    flags = [
        _pair(f"{_CONFIG}.{i}", _der.encode_boolean(flag))
        for i, name in enumerate(_CONFIG_FLAGS, start=1)
        if (flag := getattr(ext, name)) is not None
    ]
    if flags:
        items.append(_pair(_CONFIG, _der.tlv(_der.SEQUENCE, b"".join(flags))))
    return _der.tlv(_der.SEQUENCE, b"".join(items))


def _pair(oid: str, encoded_value: bytes) -> bytes:
    return _der.tlv(_der.SEQUENCE, _der.encode_oid(oid) + encoded_value)


def _pairs(node: _der.Node, what: str) -> dict[str, _der.Node]:
    """Map OID -> value node for a SEQUENCE of ``SEQUENCE {OID, value}``; reject duplicates."""
    if node.tag != _der.SEQUENCE or node.children is None:
        raise QuoteFormatError(f"PCK {what}: expected a SEQUENCE at offset {node.offset}")
    out: dict[str, _der.Node] = {}
    for item in node.children:
        kids = item.children
        if item.tag != _der.SEQUENCE or kids is None or len(kids) != 2 or kids[0].tag != _der.OID:
            raise QuoteFormatError(
                f"PCK {what}: entry at offset {item.offset} is not SEQUENCE {{OID, value}}"
            )
        oid = _der.decode_oid(kids[0])
        if oid in out:
            raise QuoteFormatError(f"PCK {what}: OID {oid} appears twice")
        out[oid] = kids[1]
    return out


def _need(pairs: dict[str, _der.Node], oid: str, tag: int) -> _der.Node:
    node = pairs.get(oid)
    if node is None:
        raise QuoteFormatError(f"PCK SGX extension: mandatory field {oid} is missing")
    if node.tag != tag:
        raise QuoteFormatError(
            f"PCK SGX extension: field {oid} has tag {node.tag:#04x}, expected {tag:#04x}"
        )
    return node


def _int(node: _der.Node) -> int:
    value = _der.decode_integer(node)
    if not 0 <= value <= 0xFFFF:
        raise QuoteFormatError(
            f"PCK SGX extension: value {value} at offset {node.offset} is out of range"
        )
    return value
