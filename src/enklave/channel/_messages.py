"""The host/enclave message protocol (version 1).

Every frame body is a CBOR array of exactly five items::

    [version, kind, call_id, a, b]

=========  ====  ==========================  ==========================
kind       code  a                           b
=========  ====  ==========================  ==========================
ECALL      1     function name (str)         arguments (list)
RETURN     2     result value                null
ERROR      3     error record (map)          null
OCALL      4     function name (str)         arguments (list)
ORETURN    5     result value                null
OERROR     6     error record (map)          null
READY      7     enclave identity (map)      null
LOADFAIL   8     error record (map)          null
=========  ====  ==========================  ==========================

``call_id`` is chosen by the host for each ECALL (1 .. 2**63-1); OCALLs made while
serving that ECALL, and their answers, carry the same id, so the host thread that
made the ECALL serves them (as an SGX OCALL runs on the calling thread). Id 0 is
used for READY/LOADFAIL and for errors about frames whose id could not be read.

An error record is ``{"type": str, "message": str, "code": str}`` plus
``"traceback": str`` from debug enclaves only.
"""

from __future__ import annotations

from typing import Any

from ..errors import ProtocolError

__all__ = [
    "ECALL",
    "ERROR",
    "LOADFAIL",
    "MAX_CALL_ID",
    "OCALL",
    "OERROR",
    "ORETURN",
    "READY",
    "RETURN",
    "VERSION",
    "error_record",
    "parse",
]

VERSION = 1
ECALL, RETURN, ERROR, OCALL, ORETURN, OERROR, READY, LOADFAIL = range(1, 9)
MAX_CALL_ID = 2**63 - 1
_NAMES = {
    ECALL: "ECALL",
    RETURN: "RETURN",
    ERROR: "ERROR",
    OCALL: "OCALL",
    ORETURN: "ORETURN",
    OERROR: "OERROR",
    READY: "READY",
    LOADFAIL: "LOADFAIL",
}
_MAX_TEXT = 64 * 1024


def kind_name(kind: int) -> str:
    return _NAMES.get(kind, f"kind {kind}")


def parse(msg: Any) -> tuple[int, int, Any, Any]:
    """Check the outer shape of a decoded frame and return ``(kind, call_id, a, b)``.

    Checks: a 5-item list, known version, known kind, call id in range; for call
    kinds, a str name and a list of arguments. It does not check argument types
    (the interface does that).

    Raises:
        ProtocolError: the message does not have the protocol's shape.
    """
    if type(msg) is not list or len(msg) != 5:
        raise ProtocolError("frame is not a 5-item protocol message")
    version, kind, cid, a, b = msg
    if version != VERSION or type(version) is not int:
        raise ProtocolError(f"unsupported protocol version {version!r}; expected {VERSION}")
    if type(kind) is not int or kind not in _NAMES:
        raise ProtocolError(f"unknown message kind {kind!r}")
    if type(cid) is not int or not 0 <= cid <= MAX_CALL_ID:
        raise ProtocolError("call id is not an integer in 0 .. 2**63-1")
    if kind in (ECALL, OCALL):
        if type(a) is not str or type(b) is not list:
            raise ProtocolError(f"{kind_name(kind)} needs a function name and an argument list")
    elif b is not None:
        raise ProtocolError(f"{kind_name(kind)} has an unexpected fifth item")
    elif kind in (ERROR, OERROR, LOADFAIL):
        check_error_record(a)
    return kind, cid, a, b


def check_error_record(rec: Any) -> None:
    """Raise ProtocolError unless ``rec`` is a well-formed error record."""
    if type(rec) is not dict:
        raise ProtocolError("error record is not a map")
    for key in ("type", "message", "code"):
        if type(rec.get(key)) is not str or len(rec[key]) > _MAX_TEXT:
            raise ProtocolError(f"error record field {key!r} is missing or not a short string")
    extra = set(rec) - {"type", "message", "code", "traceback"}
    if extra:
        raise ProtocolError(f"error record has unknown fields {sorted(map(str, extra))}")
    tb = rec.get("traceback")
    if tb is not None and (type(tb) is not str or len(tb) > _MAX_TEXT):
        raise ProtocolError("error record traceback is not a short string")


def error_record(
    type_name: str, message: str, code: str, traceback: str | None = None
) -> dict[str, str]:
    """Build an error record, truncating long texts to the protocol's limit."""
    rec = {"type": type_name[:200], "message": message[:_MAX_TEXT], "code": code[:200]}
    if traceback is not None:
        rec["traceback"] = traceback[-_MAX_TEXT:]
    return rec
