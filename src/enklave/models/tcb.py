"""Intel TCB Info (v2, v3 SGX/TDX) and Enclave (QE) Identity v2, parsed from their signed text.

Intel signs the exact bytes of the inner JSON object (``{"tcbInfo": <inner>, "signature": ..}``).
These parsers take that inner text, so the values a verifier uses come from the very bytes whose
signature it checks. Parsing is strict: required fields, exact hex lengths, 16 TCB components,
known ``tcbStatus`` strings, RFC 3339 dates with a timezone, no duplicate keys. Nothing here
checks a signature or a date against the clock; :class:`enklave.verify.DcapVerifier` does.

Every malformed input raises :class:`~enklave.errors.CollateralError` naming the field.

Example::

    info = TcbInfo.from_json(collateral.tcb_info)
    info.fmspc.hex(), info.levels[0].status
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import CollateralError

__all__ = [
    "MODULE_TCB_STATUSES",
    "TCB_STATUSES",
    "EnclaveIdentity",
    "EnclaveTcbLevel",
    "TcbInfo",
    "TcbLevel",
    "TdxModule",
    "TdxModuleIdentity",
]

TCB_STATUSES: tuple[str, ...] = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "Revoked",
)
"""Every ``tcbStatus`` Intel publishes; anything else is rejected."""

MODULE_TCB_STATUSES: tuple[str, ...] = ("UpToDate", "OutOfDate", "Revoked")
"""The statuses Intel QVL accepts on a TDX module identity's TCB levels."""

MAX_JSON_TEXT = 4 * 1024 * 1024
_HEX_DIGITS = re.compile(r"[0-9a-fA-F]*")  # bytes.fromhex alone would skip whitespace
_QE_IDS = ("QE", "TD_QE", "QVE")


@dataclass(frozen=True)
class TcbLevel:
    """One platform TCB level of a TCB Info.

    Attributes:
        sgx_components: the 16 SGX TCB component SVNs the level requires.
        pcesvn: the PCE SVN the level requires.
        tdx_components: the 16 TDX TCB component SVNs (TDX TCB Info only, else None).
        tcb_date: the level's ``tcbDate`` as served (RFC 3339 text).
        status: the level's ``tcbStatus`` (one of :data:`TCB_STATUSES`).
        advisory_ids: the level's ``advisoryIDs`` (empty when absent, e.g. TCB Info v2).
    """

    sgx_components: tuple[int, ...]
    pcesvn: int
    tdx_components: tuple[int, ...] | None
    tcb_date: str
    status: str
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True)
class EnclaveTcbLevel:
    """One ISVSVN-keyed TCB level (QE Identity levels and TDX module identity levels)."""

    isvsvn: int
    tcb_date: str
    status: str
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True)
class TdxModule:
    """``tdxModule`` of a TDX TCB Info: the expected MRSIGNERSEAM and SEAMATTRIBUTES."""

    mrsigner: bytes
    attributes: bytes
    attributes_mask: bytes


@dataclass(frozen=True)
class TdxModuleIdentity:
    """One entry of ``tdxModuleIdentities`` (``id`` is e.g. ``"TDX_03"``)."""

    id: str
    mrsigner: bytes
    attributes: bytes
    attributes_mask: bytes
    levels: tuple[EnclaveTcbLevel, ...]


@dataclass(frozen=True)
class TcbInfo:
    """A parsed TCB Info (v2: SGX only, flat components; v3: SGX or TDX).

    Attributes:
        id: ``"SGX"`` or ``"TDX"`` (v2 has no id and is always SGX).
        version: 2 or 3.
        issue_date, next_update: aware UTC datetimes.
        fmspc: 6 bytes (the served hex's case does not matter).
        pce_id: 2 bytes.
        tcb_type: ``tcbType`` (0 in every published document).
        tcb_evaluation_data_number: ``tcbEvaluationDataNumber``.
        levels: the TCB levels in served order.
        tdx_module: TDX only, else None.
        tdx_module_identities: TDX v3 documents that carry ``tdxModuleIdentities``, else None.
    """

    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    fmspc: bytes
    pce_id: bytes
    tcb_type: int
    tcb_evaluation_data_number: int
    levels: tuple[TcbLevel, ...]
    tdx_module: TdxModule | None = None
    tdx_module_identities: tuple[TdxModuleIdentity, ...] | None = None

    @classmethod
    def from_json(cls, text: str | bytes) -> TcbInfo:
        """Parse the inner ``tcbInfo`` object text.

        Raises:
            CollateralError: not JSON, a missing or mistyped field, an unsupported version,
                a wrong hex length, not 16 components, or an unknown ``tcbStatus``.
        """
        obj = _Obj(_load(text, "TCB Info"), "TCB Info")
        version = obj.integer("version")
        if version == 2:
            return _tcb_info_v2(obj)
        if version == 3:
            return _tcb_info_v3(obj)
        raise CollateralError(
            f"TCB Info version {version} is not supported (only 2 and 3); fetch TCB Info from "
            "the PCS v3/v4 API"
        )


@dataclass(frozen=True)
class EnclaveIdentity:
    """A parsed Enclave Identity v2 (``"QE"``, ``"TD_QE"`` or ``"QVE"``).

    ``miscselect``/``miscselect_mask`` are in the report's raw byte order (compare bytewise with
    the little-endian MISCSELECT of the report).
    """

    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    tcb_evaluation_data_number: int
    miscselect: bytes
    miscselect_mask: bytes
    attributes: bytes
    attributes_mask: bytes
    mrsigner: bytes
    isvprodid: int
    levels: tuple[EnclaveTcbLevel, ...]

    @classmethod
    def from_json(cls, text: str | bytes) -> EnclaveIdentity:
        """Parse the inner ``enclaveIdentity`` object text.

        Raises:
            CollateralError: not JSON, a missing or mistyped field, a version other than 2, an
                unknown id, a wrong hex length or an unknown ``tcbStatus``.
        """
        obj = _Obj(_load(text, "QE Identity"), "QE Identity")
        version = obj.integer("version")
        if version != 2:
            raise CollateralError(
                f"QE Identity version {version} is not supported (only 2); fetch the QE identity "
                "from the PCS v3/v4 API"
            )
        ident = obj.text("id")
        if ident not in _QE_IDS:
            raise CollateralError(f"QE Identity id {ident!r} is not one of {', '.join(_QE_IDS)}")
        return cls(
            ident, version, obj.date("issueDate"), obj.date("nextUpdate"),
            obj.integer("tcbEvaluationDataNumber"), obj.hex("miscselect", 4),
            obj.hex("miscselectMask", 4), obj.hex("attributes", 16),
            obj.hex("attributesMask", 16), obj.hex("mrsigner", 32),
            obj.integer("isvprodid", 0xFFFF),
            _enclave_levels(obj, "tcbLevels", TCB_STATUSES),
        )  # fmt: skip


def _tcb_info_v2(obj: _Obj) -> TcbInfo:
    if "id" in obj.raw and obj.text("id") != "SGX":
        raise CollateralError("TCB Info version 2 exists only for SGX; use a v3 TDX TCB Info")

    def level(lv: _Obj) -> TcbLevel:
        tcb = lv.obj("tcb")
        comps = tuple(tcb.integer(f"sgxtcbcomp{i:02d}svn", 255) for i in range(1, 17))
        return TcbLevel(
            comps,
            tcb.integer("pcesvn", 0xFFFF),
            None,
            lv.datestr("tcbDate"),
            lv.status("tcbStatus", TCB_STATUSES),
            lv.advisories(),
        )

    return TcbInfo(
        "SGX", 2, obj.date("issueDate"), obj.date("nextUpdate"), obj.hex("fmspc", 6),
        obj.hex("pceId", 2), obj.integer("tcbType"), obj.integer("tcbEvaluationDataNumber"),
        tuple(level(lv) for lv in obj.objs("tcbLevels")),
    )  # fmt: skip


def _tcb_info_v3(obj: _Obj) -> TcbInfo:
    ident = obj.text("id")
    if ident not in ("SGX", "TDX"):
        raise CollateralError(f"TCB Info id {ident!r} is neither 'SGX' nor 'TDX'")
    tdx = ident == "TDX"

    def level(lv: _Obj) -> TcbLevel:
        tcb = lv.obj("tcb")
        return TcbLevel(
            _components(tcb, "sgxtcbcomponents"), tcb.integer("pcesvn", 0xFFFF),
            _components(tcb, "tdxtcbcomponents") if tdx else None, lv.datestr("tcbDate"),
            lv.status("tcbStatus", TCB_STATUSES), lv.advisories(),
        )  # fmt: skip

    module = identities = None
    if tdx:
        m = obj.obj("tdxModule")
        module = TdxModule(
            m.hex("mrsigner", 48), m.hex("attributes", 8), m.hex("attributesMask", 8)
        )
        if "tdxModuleIdentities" in obj.raw:
            identities = tuple(_module_identity(i) for i in obj.objs("tdxModuleIdentities"))
    return TcbInfo(
        ident, 3, obj.date("issueDate"), obj.date("nextUpdate"), obj.hex("fmspc", 6),
        obj.hex("pceId", 2), obj.integer("tcbType"), obj.integer("tcbEvaluationDataNumber"),
        tuple(level(lv) for lv in obj.objs("tcbLevels")), module, identities,
    )  # fmt: skip


def _module_identity(obj: _Obj) -> TdxModuleIdentity:
    return TdxModuleIdentity(
        obj.text("id"), obj.hex("mrsigner", 48), obj.hex("attributes", 8),
        obj.hex("attributesMask", 8), _enclave_levels(obj, "tcbLevels", MODULE_TCB_STATUSES),
    )  # fmt: skip


def _components(tcb: _Obj, key: str) -> tuple[int, ...]:
    items = tcb.objs(key)
    if len(items) != 16:
        raise CollateralError(f"{tcb.where}.{key} has {len(items)} entries; exactly 16 are needed")
    return tuple(item.integer("svn", 255) for item in items)


def _enclave_levels(obj: _Obj, key: str, statuses: tuple[str, ...]) -> tuple[EnclaveTcbLevel, ...]:
    out = []
    for lv in obj.objs(key):
        out.append(EnclaveTcbLevel(
            lv.obj("tcb").integer("isvsvn", 0xFFFF), lv.datestr("tcbDate"),
            lv.status("tcbStatus", statuses), lv.advisories(),
        ))  # fmt: skip
    return tuple(out)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise CollateralError(f"duplicate JSON key {key!r}; the document is malformed")
        out[key] = value
    return out


def _load(text: str | bytes, what: str) -> dict[str, Any]:
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CollateralError(f"{what} is not UTF-8 text") from exc
    if not isinstance(text, str):
        raise CollateralError(f"{what} must be JSON text, not {type(text).__name__}")
    if len(text) > MAX_JSON_TEXT:
        raise CollateralError(f"{what} is larger than {MAX_JSON_TEXT} characters")
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:
        raise CollateralError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise CollateralError(f"{what} must be a JSON object (the inner signed object)")
    return value


class _Obj:
    """Typed, bounds-checked access to one JSON object; errors name the field path."""

    def __init__(self, raw: dict[str, Any], where: str) -> None:
        self.raw, self.where = raw, where

    def _get(self, key: str) -> Any:
        if key not in self.raw:
            raise CollateralError(f"{self.where} has no field {key!r}")
        return self.raw[key]

    def _bad(self, key: str, expected: str) -> CollateralError:
        return CollateralError(f"{self.where}.{key} must be {expected}")

    def integer(self, key: str, maximum: int = 0xFFFFFFFF) -> int:
        value = self._get(key)
        if type(value) is not int or not 0 <= value <= maximum:
            raise self._bad(key, f"an integer in 0..{maximum}")
        return value

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def hex(self, key: str, size: int) -> bytes:
        value = self.text(key)
        if len(value) != 2 * size or not _HEX_DIGITS.fullmatch(value):
            raise self._bad(key, f"{size} bytes of hex ({2 * size} digits, no spaces)")
        return bytes.fromhex(value)

    def datestr(self, key: str) -> str:
        value = self.text(key)
        self.date(key)
        return value

    def date(self, key: str) -> datetime:
        value = self.text(key)
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise self._bad(key, "an RFC 3339 date such as 2025-06-19T10:56:11Z") from exc
        if parsed.tzinfo is None:
            raise self._bad(key, "a date with a timezone (e.g. a trailing Z)")
        try:
            return parsed.astimezone(UTC)
        except OverflowError as exc:  # e.g. 9999-12-31T23:59:59-23:59 is in the year 10000
            raise self._bad(key, "a date in the years 0001-9999 when converted to UTC") from exc

    def status(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.text(key)
        if value not in allowed:
            raise CollateralError(
                f"{self.where}.{key} {value!r} is not a known TCB status ({', '.join(allowed)}); "
                "the collateral is malformed or newer than this verifier"
            )
        return value

    def obj(self, key: str) -> _Obj:
        value = self._get(key)
        if not isinstance(value, dict):
            raise self._bad(key, "an object")
        return _Obj(value, f"{self.where}.{key}")

    def objs(self, key: str) -> list[_Obj]:
        value = self._get(key)
        if not isinstance(value, list) or not value:
            raise self._bad(key, "a non-empty array")
        if not all(isinstance(item, dict) for item in value):
            raise self._bad(key, "an array of objects")
        return [_Obj(item, f"{self.where}.{key}[{i}]") for i, item in enumerate(value)]

    def advisories(self) -> tuple[str, ...]:
        if "advisoryIDs" not in self.raw:
            return ()
        value = self.raw["advisoryIDs"]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._bad("advisoryIDs", "an array of strings")
        return tuple(value)
