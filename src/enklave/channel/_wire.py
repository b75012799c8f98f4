"""Fast paths for the protocol envelope ``[1, kind, call_id, a, b]`` (see :mod:`._messages`).

Every ECALL round trip encodes and decodes two envelopes, so these are specialised:

* :func:`call_frame` and :func:`reply_frame` build a frame: complete ``bytes`` for the
  commonest shapes (calls without arguments, ``None`` replies), else a list of byte
  parts (header slot first, filled by :meth:`Endpoint.send_frame`). The bytes are exactly
  those of ``frame([1, kind, call_id, a, b])``: the same encoder writes every value,
  only the envelope's fixed head is precomputed. Large ``bytes`` values stay separate
  parts, so they are sent without being copied.
* :func:`read_message` decodes *and* parses the common shapes (calls with a short name,
  replies, error records) in one pass. It returns ``None`` for anything else, and for
  anything malformed, and the caller then runs the general strict path
  (``loads`` + ``parse``), which decides and raises the typed error. So the fast path can
  never accept what the general path rejects; a property test checks that they agree.
"""

from __future__ import annotations

import struct
from typing import Any

from .._encoding import DEFAULT_MAX_DEPTH, Decoder, dumps, encode_into, frame_length, head
from ..errors import EncodingError, ProtocolError
from ._messages import ECALL, ERROR, MAX_CALL_ID, OCALL, OERROR, ORETURN, RETURN, check_error_record

__all__ = ["Message", "call_frame", "read_message", "reply_frame", "text_cbor"]

Message = tuple[int, int, Any, Any]

#: The envelope's first three bytes per kind: array(5), version 1, kind.
_PREFIX = tuple(bytes((0x85, 0x01, k)) for k in range(24))
_UINT = tuple(bytes((i,)) for i in range(24))
_U16 = struct.Struct(">BH").pack  # the head of a 2-byte unsigned int: 0x19, value
#: Header and envelope head of ``[1, kind, cid, None, None]`` per kind and call id length.
_NONE_REPLY = tuple(
    tuple(frame_length(5 + n) + _PREFIX[k] if n else b"" for n in range(10)) for k in range(24)
)
_ARRAY = tuple(bytes((0x80 | i,)) for i in range(24))
# Items of the envelope may open this many more container levels (dumps' default depth,
# minus the envelope's own list): the encoder and decoder both use it.
_ITEM_DEPTH = DEFAULT_MAX_DEPTH - 1
_REPLIES = (RETURN, ORETURN, ERROR, OERROR)
_ERRORS = (ERROR, OERROR)


def text_cbor(text: str) -> bytes:
    """The CBOR encoding of ``text`` (precompute it once per function name)."""
    return dumps(text)


def call_frame(kind: int, cid: int, name_cbor: bytes, args: list[Any]) -> bytes | list[bytes]:
    """The frame of ``[1, kind, cid, name, args]``, for :meth:`Endpoint.send_frame`.

    A call without arguments comes back as the complete frame (``bytes``); otherwise a
    list of parts whose first item is the header slot.

    Args:
        kind: ECALL or OCALL.
        cid: the call id (0 .. 2**63-1, chosen or checked by the caller).
        name_cbor: the name, already encoded (:func:`text_cbor`).
        args: the argument list (already checked against the interface).

    Raises:
        EncodingError: an argument cannot be encoded (as :func:`~enklave._encoding.dumps`).
    """
    cid_cbor = _UINT[cid] if cid < 24 else _U16(0x19, cid) if 0xFF < cid < 0x10000 else head(0, cid)
    n = len(args)
    if n == 0:
        size = 4 + len(cid_cbor) + len(name_cbor)
        return b"".join((frame_length(size), _PREFIX[kind], cid_cbor, name_cbor, b"\x80"))
    out = [b"", _PREFIX[kind], cid_cbor, name_cbor, _ARRAY[n] if n < 24 else head(4, n)]
    for item in args:
        encode_into(item, out, _ITEM_DEPTH - 1)
    return out


def reply_frame(kind: int, cid: int, value: Any) -> bytes | list[bytes]:
    """The frame of ``[1, kind, cid, value, None]``, for :meth:`Endpoint.send_frame`.

    A ``None`` value comes back as the complete frame (``bytes``); otherwise a list of
    parts whose first item is the header slot.

    Raises:
        EncodingError: ``value`` cannot be encoded.
    """
    cid_cbor = _UINT[cid] if cid < 24 else _U16(0x19, cid) if 0xFF < cid < 0x10000 else head(0, cid)
    if value is None:
        return _NONE_REPLY[kind][len(cid_cbor)] + cid_cbor + b"\xf6\xf6"
    out = [b"", _PREFIX[kind], cid_cbor]
    encode_into(value, out, _ITEM_DEPTH)
    out.append(b"\xf6")
    return out


def read_message(data: bytes | memoryview, max_depth: int) -> Message | None:
    """Decode and parse one frame body when it has a common shape; else ``None``.

    A result is returned only when ``parse(loads(data, max_depth=max_depth))`` would
    return the same; ``None`` means "use the general path" (other shapes, and every
    malformed input, which the general path then reports). Never raises.
    """
    n = len(data)
    if n < 6 or data[0] != 0x85 or data[1] != 0x01:
        return None
    kind = data[2]
    ib = data[3]
    if ib < 24:
        cid, pos = ib, 4
    elif ib == 0x19:
        cid, pos = data[4] << 8 | data[5], 6
        if cid < 0x100:
            return None
    elif ib == 0x18:
        cid, pos = data[4], 5
        if cid < 24:
            return None
    elif ib == 0x1A or ib == 0x1B:
        pos = 8 if ib == 0x1A else 12
        cid = int.from_bytes(data[4:pos], "big")
        if cid < (0x10000 if ib == 0x1A else 0x100000000) or cid > MAX_CALL_ID:
            return None
    else:
        return None
    if pos + 2 > n:
        return None
    if pos + 2 == n and data[pos] == 0xF6 and data[pos + 1] == 0xF6 and (kind == 2 or kind == 5):
        return kind, cid, None, None  # RETURN or ORETURN of None
    if kind == ECALL or kind == OCALL:
        ib = data[pos]
        end = pos + ib - 0x5F
        if 0x60 < ib < 0x78 and end + 1 == n and data[end] == 0x80:  # short name, no args
            try:
                return kind, cid, str(data[pos + 1 : end], "utf-8"), []
            except UnicodeDecodeError:
                return None
        return _read_call(data, kind, cid, pos, max_depth)
    if kind in _REPLIES:
        return _read_reply(data, kind, cid, pos, max_depth)
    return None


def _read_call(
    data: bytes | memoryview, kind: int, cid: int, pos: int, max_depth: int
) -> Message | None:
    n = len(data)
    ib = data[pos]
    end = pos + 1 + (ib - 0x60)
    if not 0x60 < ib < 0x78 or end >= n:  # a short, non-empty name and something after it
        return None
    try:
        name = str(data[pos + 1 : end], "utf-8")
    except UnicodeDecodeError:
        return None
    dec = Decoder(data, end)
    try:
        args = dec.value(max_depth - 1)
    except EncodingError:
        return None
    if type(args) is not list or dec.pos != n:
        return None
    return kind, cid, name, args


def _read_reply(
    data: bytes | memoryview, kind: int, cid: int, pos: int, max_depth: int
) -> Message | None:
    n = len(data)
    if data[n - 1] != 0xF6:
        return None
    if pos + 2 == n and data[pos] == 0xF6:
        value = None
    else:
        dec = Decoder(data, pos)
        try:
            value = dec.value(max_depth - 1)
        except EncodingError:
            return None
        if dec.pos != n - 1:
            return None
    if kind in _ERRORS:
        try:
            check_error_record(value)
        except ProtocolError:
            return None
    return kind, cid, value, None
