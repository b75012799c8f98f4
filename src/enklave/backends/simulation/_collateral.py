"""Simulated TCB Info v3 and QE Identity v2: JSON text in Intel's exact shape, signed.

Intel serves these documents as compact JSON with a fixed key order and signs the exact
bytes of the inner object (raw ECDSA ``r || s``, hex). We build the text the same way
(ordered dicts, ``separators=(",", ":")``) and sign those bytes, so any verifier that
checks Intel's collateral checks ours the same way, under the simulated root.

The TCB levels are simulated (realistic Intel advisory IDs, invented SVNs). Levels are
listed newest first; a platform's situation is chosen by giving its PCK certificate the
component SVNs of exactly one level, such that the *first* matching level (Intel's rule)
is the one with the wanted status.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Final

__all__ = [
    "PCE_SVN",
    "QE_ATTRIBUTES",
    "QE_ISV_PROD_ID",
    "QE_ISV_SVN",
    "TCB_SITUATIONS",
    "TD_QE_ISV_PROD_ID",
    "TD_QE_ISV_SVN",
    "TEE_TCB_SVN",
    "TcbLevelSpec",
    "format_date",
    "level_for",
    "platform_components",
    "qe_identity_text",
    "tcb_info_text",
]

_DAY: Final = 86400
VALIDITY_SECONDS: Final = 30 * _DAY
TCB_EVALUATION_DATA_NUMBER: Final = 17
PCE_SVN: Final = 13
QE_ISV_PROD_ID: Final = 1
QE_ISV_SVN: Final = 8
TD_QE_ISV_PROD_ID: Final = 2
TD_QE_ISV_SVN: Final = 4
# QE report ATTRIBUTES: FLAGS = INIT|MODE64BIT|PROVISIONKEY, XFRM = 0xE7 (as Intel's QE).
QE_ATTRIBUTES: Final = bytes([0x15]) + bytes(7) + bytes([0xE7]) + bytes(7)

_SA_CONFIG: Final = "INTEL-SA-00289"
_SA_HARDENING: Final = "INTEL-SA-00615"
_SA_OLD: Final = ("INTEL-SA-00828", "INTEL-SA-00960")


@dataclass(frozen=True)
class TcbLevelSpec:
    """One simulated TCB level.

    Attributes:
        cpu: SVN of components 01 and 02 (microcode); lower means older.
        config: SVN of component 07 (a configuration-dependent component); 0 means the
            platform lacks the recommended configuration.
        pcesvn: the level's PCE SVN.
        date: the level's tcbDate (YYYY-MM-DD).
        status: the level's tcbStatus.
        advisories: the level's advisoryIDs (empty: the key is omitted, as Intel does).
    """

    cpu: int
    config: int
    pcesvn: int
    date: str
    status: str
    advisories: tuple[str, ...]

    def components(self) -> tuple[int, ...]:
        """The 16 SGX TCB component SVNs of this level."""
        return (self.cpu, self.cpu, 3, 3, 255, 255, self.config) + (0,) * 9


# Newest first. With first-match semantics a platform holding exactly a level's components
# matches that level: every level above it needs a higher `cpu` or a non-zero `config`.
_LEVELS: Final = (
    TcbLevelSpec(16, 14, PCE_SVN, "2025-02-12", "UpToDate", ()),
    TcbLevelSpec(16, 0, PCE_SVN, "2025-02-12", "ConfigurationNeeded", (_SA_CONFIG,)),
    TcbLevelSpec(15, 14, PCE_SVN, "2024-03-13", "SWHardeningNeeded", (_SA_HARDENING,)),
    TcbLevelSpec(
        15,
        0,
        PCE_SVN,
        "2024-03-13",
        "ConfigurationAndSWHardeningNeeded",
        (_SA_CONFIG, _SA_HARDENING),
    ),
    TcbLevelSpec(14, 14, PCE_SVN, "2023-08-09", "OutOfDate", (*_SA_OLD, _SA_HARDENING)),
    TcbLevelSpec(
        14,
        0,
        PCE_SVN,
        "2023-08-09",
        "OutOfDateConfigurationNeeded",
        (_SA_CONFIG, *_SA_OLD, _SA_HARDENING),
    ),
    TcbLevelSpec(2, 0, 5, "2018-01-04", "Revoked", ("INTEL-SA-00088", *_SA_OLD)),
)

TCB_SITUATIONS: Final = tuple(level.status for level in _LEVELS)

_QE_LEVELS: Final = (
    (QE_ISV_SVN, "2024-03-13", "UpToDate", ()),
    (6, "2021-11-10", "OutOfDate", ("INTEL-SA-00615",)),
    (2, "2019-05-15", "OutOfDate", ("INTEL-SA-00219", "INTEL-SA-00615")),
)
_TD_QE_LEVELS: Final = ((TD_QE_ISV_SVN, "2024-03-13", "UpToDate", ()),)

# TDX: the simulated TD's TEE_TCB_SVN is (module SVN, module major version, late microcode,
# 0...). Every non-revoked level carries TDX_LEVEL, which that TEE_TCB_SVN meets (both with
# Intel's rule, which skips bytes 0-1 for major > 0, and dcap-qvl's, which compares all 16),
# so a TD quote gets the same status as an SGX quote; module TDX_01 at SVN 5 is UpToDate.
TDX_MODULE_SVN: Final = 5
TDX_MODULE_MAJOR: Final = 1
TEE_TCB_SVN: Final = bytes([TDX_MODULE_SVN, TDX_MODULE_MAJOR, 3]) + bytes(13)
TDX_LEVEL: Final = (TDX_MODULE_SVN, 0, 3) + (0,) * 13
TDX_LEVEL_REVOKED: Final = (2, 0, 1) + (0,) * 13
_TDX_MODULE_LEVELS: Final = (
    (TDX_MODULE_SVN, "2025-02-12", "UpToDate"),
    (2, "2023-08-09", "OutOfDate"),
)


def level_for(status: str) -> TcbLevelSpec:
    """Return the (first) simulated level with tcbStatus ``status``.

    Raises:
        KeyError: for an unknown status (callers check against TCB_SITUATIONS first).
    """
    for level in _LEVELS:
        if level.status == status:
            return level
    raise KeyError(status)


def platform_components(status: str) -> tuple[tuple[int, ...], int]:
    """The PCK-cert TCB (16 component SVNs, PCE SVN) that first-matches ``status``."""
    level = level_for(status)
    return level.components(), level.pcesvn


def format_date(unix: int) -> str:
    """Intel's JSON date form, e.g. ``2025-06-19T07:37:07Z`` (UTC, whole seconds)."""
    return dt.datetime.fromtimestamp(unix, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _compact(value: object) -> str:
    """Compact JSON with key order as built (Intel's serving form)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)


def _level_json(level: TcbLevelSpec, tee: str) -> dict[str, object]:
    tcb: dict[str, object] = {
        "sgxtcbcomponents": [{"svn": svn} for svn in level.components()],
        "pcesvn": level.pcesvn,
    }
    if tee == "tdx":
        tdx = TDX_LEVEL_REVOKED if level.status == "Revoked" else TDX_LEVEL
        tcb["tdxtcbcomponents"] = [{"svn": svn} for svn in tdx]
    entry: dict[str, object] = {
        "tcb": tcb,
        "tcbDate": f"{level.date}T00:00:00Z",
        "tcbStatus": level.status,
    }
    if level.advisories:
        entry["advisoryIDs"] = list(level.advisories)
    return entry


def _tdx_module(identity: str | None) -> dict[str, object]:
    """``tdxModule`` / one ``tdxModuleIdentities`` entry (Intel modules: zero MRSIGNER)."""
    doc: dict[str, object] = {} if identity is None else {"id": identity}
    doc |= {"mrsigner": "00" * 48, "attributes": "00" * 8, "attributesMask": "FF" * 8}
    if identity is not None:
        doc["tcbLevels"] = [
            {"tcb": {"isvsvn": svn}, "tcbDate": f"{date}T00:00:00Z", "tcbStatus": status}
            for svn, date, status in _TDX_MODULE_LEVELS
        ]
    return doc


def tcb_info_text(*, fmspc: bytes, pce_id: bytes, issue: int, tee: str = "sgx") -> str:
    """The inner ``tcbInfo`` object (version 3, id ``SGX`` or ``TDX``) as compact JSON text.

    Args:
        fmspc: the platform's 6-byte FMSPC.
        pce_id: the 2-byte PCE ID.
        issue: issueDate (unix seconds); nextUpdate is 30 days later.
        tee: ``"sgx"`` or ``"tdx"`` (adds the TDX module and TDX components).

    Returns:
        The exact text to sign and serve.
    """
    doc: dict[str, object] = {
        "id": tee.upper(),
        "version": 3,
        "issueDate": format_date(issue),
        "nextUpdate": format_date(issue + VALIDITY_SECONDS),
        "fmspc": fmspc.hex().upper(),
        "pceId": pce_id.hex().upper(),
        "tcbType": 0,
        "tcbEvaluationDataNumber": TCB_EVALUATION_DATA_NUMBER,
    }
    if tee == "tdx":
        doc["tdxModule"] = _tdx_module(None)
        doc["tdxModuleIdentities"] = [_tdx_module(f"TDX_{TDX_MODULE_MAJOR:02X}")]
    doc["tcbLevels"] = [_level_json(level, tee) for level in _LEVELS]
    return _compact(doc)


def qe_identity_text(*, mrsigner: bytes, issue: int, tee: str = "sgx") -> str:
    """The inner ``enclaveIdentity`` object (version 2, id ``QE`` or ``TD_QE``) as JSON text.

    Args:
        mrsigner: the simulated QE's 32-byte MRSIGNER (not Intel's).
        issue: issueDate (unix seconds); nextUpdate is 30 days later.
        tee: ``"sgx"`` (the QE) or ``"tdx"`` (the TD QE).

    Returns:
        The exact text to sign and serve.
    """
    levels: list[dict[str, object]] = []
    for isvsvn, date, status, advisories in _QE_LEVELS if tee == "sgx" else _TD_QE_LEVELS:
        entry: dict[str, object] = {
            "tcb": {"isvsvn": isvsvn},
            "tcbDate": f"{date}T00:00:00Z",
            "tcbStatus": status,
        }
        if advisories:
            entry["advisoryIDs"] = list(advisories)
        levels.append(entry)
    doc = {
        "id": "QE" if tee == "sgx" else "TD_QE",
        "version": 2,
        "issueDate": format_date(issue),
        "nextUpdate": format_date(issue + VALIDITY_SECONDS),
        "tcbEvaluationDataNumber": TCB_EVALUATION_DATA_NUMBER,
        "miscselect": "00000000",
        "miscselectMask": "FFFFFFFF",
        "attributes": "11000000000000000000000000000000",
        "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
        "mrsigner": mrsigner.hex().upper(),
        "isvprodid": QE_ISV_PROD_ID if tee == "sgx" else TD_QE_ISV_PROD_ID,
        "tcbLevels": levels,
    }
    return _compact(doc)
