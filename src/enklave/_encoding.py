"""Deterministic CBOR with hard limits, and length-prefixed frames.

Everything that crosses the host/enclave boundary, and every structure hashed into a
measurement, is encoded here. The profile is RFC 8949 "core deterministic encoding":

* definite lengths only; integers, lengths and floats in their shortest form;
* map keys sorted by their encoded bytes, no duplicates; keys are ``str`` or ``int``;
* allowed types: ``None``, ``bool``, ``int`` (-2**64 .. 2**64-1), ``float``, ``str``,
  ``bytes``, ``list`` (``tuple`` encodes as a list) and ``dict``. No tags, no
  undefined, no other simple values.

The decoder is strict: it accepts only what the encoder produces (so an encoded value
has exactly one byte form), enforces a maximum size and nesting depth, and never
allocates more than the input could describe. Every malformed input raises
:class:`~enklave.errors.EncodingError`; nothing else escapes.

A frame is a 4-byte big-endian length followed by that many bytes of CBOR.

For the channel's hot path (:mod:`enklave.channel._wire`) this module also offers
:func:`encode_into` (encode into a list of byte parts, so large byte strings are sent
without being copied) and :class:`Decoder`, which also reads a ``memoryview`` (so large
frames are decoded in place). Both produce exactly what :func:`dumps`/:func:`loads` do.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from .errors import EncodingError, FrameError

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_SIZE",
    "FRAME_HEADER",
    "Decoder",
    "dumps",
    "encode_into",
    "frame",
    "frame_length",
    "head",
    "loads",
]

DEFAULT_MAX_SIZE = 16 * 1024 * 1024
DEFAULT_MAX_DEPTH = 16
FRAME_HEADER = 4

_U8 = struct.Struct(">B").pack
_U16 = struct.Struct(">BH").pack
_U32 = struct.Struct(">BI").pack
_U64 = struct.Struct(">BQ").pack
_FRAME_LEN = struct.Struct(">I")
#: Pack a frame's 4-byte big-endian length header.
frame_length = _FRAME_LEN.pack
_F16 = struct.Struct(">e")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")

# Pre-encoded heads for the most common small values.
_SMALL_UINT = [bytes([i]) for i in range(24)]


def head(major: int, n: int) -> bytes:
    """The shortest CBOR head of major type ``major`` with argument ``n`` (0 .. 2**64-1)."""
    mt = major << 5
    if n < 24:
        return bytes((mt | n,))
    if n < 0x100:
        return _U8(mt | 24) + bytes((n,))
    if n < 0x10000:
        return _U16(mt | 25, n)
    if n < 0x100000000:
        return _U32(mt | 26, n)
    return _U64(mt | 27, n)


def _encode_float(x: float) -> bytes:
    if math.isnan(x):
        return b"\xf9\x7e\x00"  # the one canonical NaN
    try:
        half = _F16.pack(x)
        if _F16.unpack(half)[0] == x:
            return b"\xf9" + half
    except OverflowError:
        pass
    try:
        single = _F32.pack(x)
        if _F32.unpack(single)[0] == x:
            return b"\xfa" + single
    except OverflowError:
        pass
    return b"\xfb" + _F64.pack(x)


def _encode(obj: Any, out: list[bytes], depth: int) -> None:
    t = type(obj)
    if t is int:
        if 0 <= obj < 24:
            out.append(_SMALL_UINT[obj])
        elif obj >= 0:
            if obj > 0xFFFFFFFFFFFFFFFF:
                raise EncodingError(f"integer {obj} is too large for CBOR (max 2**64-1)")
            out.append(head(0, obj))
        else:
            if obj < -0x10000000000000000:
                raise EncodingError(f"integer {obj} is too small for CBOR (min -2**64)")
            out.append(head(1, -1 - obj))
    elif t is str:
        try:
            raw = obj.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EncodingError("string holds a lone surrogate; pass valid text") from exc
        out.append(head(3, len(raw)))
        out.append(raw)
    elif t is bytes:
        out.append(head(2, len(obj)))
        out.append(obj)
    elif obj is None:
        out.append(b"\xf6")
    elif t is bool:
        out.append(b"\xf5" if obj else b"\xf4")
    elif t is list or t is tuple:
        if depth <= 0:
            raise EncodingError("value is nested too deeply to encode")
        out.append(head(4, len(obj)))
        for item in obj:
            _encode(item, out, depth - 1)
    elif t is dict:
        if depth <= 0:
            raise EncodingError("value is nested too deeply to encode")
        _encode_map(obj, out, depth - 1)
    elif t is float:
        out.append(_encode_float(obj))
    else:
        raise EncodingError(
            f"cannot encode {t.__name__}: only None, bool, int, float, str, bytes, "
            "list, tuple and dict cross the enclave boundary"
        )


def _encode_map(obj: dict[Any, Any], out: list[bytes], depth: int) -> None:
    items: list[tuple[bytes, Any]] = []
    for key, value in obj.items():
        if type(key) is not str and type(key) is not int:
            raise EncodingError(f"map keys must be str or int, not {type(key).__name__}")
        kparts: list[bytes] = []
        _encode(key, kparts, 0)
        items.append((b"".join(kparts), value))
    items.sort(key=lambda kv: kv[0])
    out.append(head(5, len(items)))
    for kbytes, value in items:
        out.append(kbytes)
        _encode(value, out, depth)


def encode_into(obj: Any, out: list[bytes], depth: int) -> None:
    """Append the deterministic CBOR encoding of ``obj`` to ``out`` as byte parts.

    ``depth`` is how many container levels ``obj`` may still open. ``bytes`` values are
    appended as they are (not copied). Raises as :func:`dumps`.
    """
    _encode(obj, out, depth)


def dumps(obj: Any, *, max_depth: int = DEFAULT_MAX_DEPTH) -> bytes:
    """Encode ``obj`` as deterministic CBOR.

    Raises:
        EncodingError: an unsupported type, an out-of-range integer, a lone surrogate
            in a string, or nesting deeper than ``max_depth``.
    """
    out: list[bytes] = []
    _encode(obj, out, max_depth)
    return b"".join(out)


def frame(obj: Any, *, max_size: int = DEFAULT_MAX_SIZE) -> bytes:
    """Encode ``obj`` and prefix it with its 4-byte big-endian length.

    Raises:
        FrameError: the encoded value is larger than ``max_size``.
        EncodingError: as :func:`dumps`.
    """
    body = dumps(obj)
    if len(body) > max_size:
        raise FrameError(
            f"message of {len(body)} bytes exceeds the {max_size}-byte frame limit; "
            "send smaller arguments or raise the limit"
        )
    return _FRAME_LEN.pack(len(body)) + body


class Decoder:
    """A strict decoder over ``bytes`` or a ``memoryview`` of bytes (read in place).

    ``value(depth)`` decodes one item at ``pos`` and advances ``pos``; byte strings are
    returned as ``bytes`` (copied out of a view), text as ``str``. Every malformed input
    raises :class:`~enklave.errors.EncodingError`. Callers check trailing bytes.
    """

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes | memoryview, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def fail(self, what: str) -> EncodingError:
        return EncodingError(f"malformed CBOR at byte {self.pos}: {what}")

    def take(self, n: int) -> bytes | memoryview:
        start = self.pos
        end = start + n
        if end > len(self.data):
            raise self.fail(f"needs {n} more bytes, input ends first")
        self.pos = end
        return self.data[start:end]

    def argument(self, info: int) -> int:
        if info < 24:
            return info
        if info == 24:
            n = self.take(1)[0]
            if n < 24:
                raise self.fail("non-shortest integer/length encoding")
            return n
        if info == 25:
            n = int.from_bytes(self.take(2), "big")
            if n < 0x100:
                raise self.fail("non-shortest integer/length encoding")
            return n
        if info == 26:
            n = int.from_bytes(self.take(4), "big")
            if n < 0x10000:
                raise self.fail("non-shortest integer/length encoding")
            return n
        if info == 27:
            n = int.from_bytes(self.take(8), "big")
            if n < 0x100000000:
                raise self.fail("non-shortest integer/length encoding")
            return n
        raise self.fail("indefinite lengths and reserved encodings are not allowed")

    def length(self, info: int, unit: int) -> int:
        n = self.argument(info)
        if n * unit > len(self.data) - self.pos:
            raise self.fail(f"declared length {n} is longer than the remaining input")
        return n

    def value(self, depth: int) -> Any:
        data = self.data
        pos = self.pos
        if pos >= len(data):
            raise self.fail("input ends where a value was expected")
        ib = data[pos]
        self.pos = pos + 1
        if ib < 0x18:  # fast path: small unsigned integer
            return ib
        if ib == 0xF6:
            return None
        major = ib >> 5
        info = ib & 0x1F
        if major == 3:
            if info < 24:  # fast path: short text
                end = pos + 1 + info
                if end > len(data):
                    raise self.fail("declared length is longer than the remaining input")
                self.pos = end
                raw = data[pos + 1 : end]
            else:
                raw = self.take(self.length(info, 1))
            try:
                return str(raw, "utf-8")
            except UnicodeDecodeError as exc:
                raise self.fail("text string is not valid UTF-8") from exc
        if major == 4:
            if depth <= 0:
                raise self.fail("nesting is deeper than the allowed depth")
            n = info if info < 24 else self.length(info, 1)
            if n > len(data) - self.pos:
                raise self.fail(f"declared length {n} is longer than the remaining input")
            value = self.value
            return [value(depth - 1) for _ in range(n)]
        if major == 0:
            if info == 24 and pos + 2 <= len(data) and data[pos + 1] >= 24:  # fast: 1 byte
                self.pos = pos + 2
                return data[pos + 1]
            return self.argument(info)
        if major == 1:
            return -1 - self.argument(info)
        if major == 2:
            if info < 24 and pos + 1 + info <= len(data):  # fast path: short bytes
                self.pos = end = pos + 1 + info
                return bytes(data[pos + 1 : end])
            raw = self.take(self.length(info, 1))
            return raw if type(raw) is bytes else bytes(raw)
        if major == 5:
            if depth <= 0:
                raise self.fail("nesting is deeper than the allowed depth")
            return self.map(self.length(info, 2), depth - 1)
        if major == 6:
            raise self.fail("tags are not allowed")
        return self.simple(info)

    def map(self, n: int, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        prev = b""
        data = self.data
        for i in range(n):
            start = self.pos
            if start >= len(data) or (data[start] >> 5) not in (0, 1, 3):
                raise self.fail("map keys must be integers or text strings")
            key = self.value(0)
            encoded = bytes(data[start : self.pos])
            if i and encoded <= prev:
                raise self.fail("map keys are not in sorted order or are duplicated")
            prev = encoded
            result[key] = self.value(depth)
        return result

    def simple(self, info: int) -> Any:
        if info == 20:
            return False
        if info == 21:
            return True
        if info == 22:
            return None
        if info == 25:
            x = _F16.unpack(self.take(2))[0]
            if math.isnan(x) and bytes(self.data[self.pos - 2 : self.pos]) != b"\x7e\x00":
                raise self.fail("non-canonical NaN")
            return x
        if info == 26:
            x = _F32.unpack(self.take(4))[0]
            if self._shorter_float(x, 1):
                raise self.fail("float is not in its shortest form")
            return x
        if info == 27:
            x = _F64.unpack(self.take(8))[0]
            if self._shorter_float(x, 2):
                raise self.fail("float is not in its shortest form")
            return x
        raise self.fail(f"simple value {info} is not allowed (only false, true, null, floats)")

    @staticmethod
    def _shorter_float(x: float, level: int) -> bool:
        return len(_encode_float(x)) < (5 if level == 1 else 9)


def loads(
    data: bytes | bytearray | memoryview,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Any:
    """Decode one deterministic CBOR value, strictly.

    Checks: size <= ``max_size``, nesting <= ``max_depth``, allowed types only, shortest
    encodings, sorted unique map keys, valid UTF-8, no trailing bytes.

    Raises:
        EncodingError: for any input that is not exactly what :func:`dumps` produces.
    """
    if type(data) is not bytes:
        data = bytes(data)
    if len(data) > max_size:
        raise EncodingError(f"input of {len(data)} bytes exceeds the {max_size}-byte limit")
    dec = Decoder(data)
    try:
        value = dec.value(max_depth)
    except RecursionError as exc:  # pragma: no cover - depth limit comes first
        raise EncodingError("input is nested too deeply") from exc
    if dec.pos != len(data):
        raise EncodingError(f"{len(data) - dec.pos} trailing bytes after the CBOR value")
    return value
