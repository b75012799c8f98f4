"""A small, strict DER reader and writer (only what the SGX PCK extension and cert chains need).

Strict means: single-byte tags only, definite minimal lengths, no trailing bytes inside a
constructed value, minimal INTEGER encodings, DER BOOLEANs (00 or FF), minimal OID
sub-identifiers. Nesting depth, element count and input size are capped, so hostile input
cannot recurse or allocate without bound. Every failure raises :class:`QuoteFormatError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import QuoteFormatError

__all__ = [
    "BOOLEAN",
    "ENUMERATED",
    "INTEGER",
    "MAX_DEPTH",
    "MAX_ELEMENTS",
    "MAX_INPUT",
    "OCTET_STRING",
    "OID",
    "SEQUENCE",
    "Node",
    "decode_boolean",
    "decode_integer",
    "decode_oid",
    "encode_boolean",
    "encode_integer",
    "encode_length",
    "encode_oid",
    "parse",
    "read_header",
    "split_concatenated",
    "tlv",
]

BOOLEAN = 0x01
INTEGER = 0x02
OCTET_STRING = 0x04
OID = 0x06
ENUMERATED = 0x0A
SEQUENCE = 0x30

MAX_DEPTH = 8
MAX_ELEMENTS = 512
MAX_INPUT = 1 << 20
_CONSTRUCTED = 0x20


def _fail(what: str, offset: int) -> QuoteFormatError:
    return QuoteFormatError(f"malformed DER at offset {offset}: {what}")


@dataclass(frozen=True)
class Node:
    """One decoded element.

    Attributes:
        tag: the identifier octet (e.g. 0x30 SEQUENCE).
        value: the content octets.
        offset: where the element starts in the parsed input.
        children: decoded children for constructed tags, ``None`` for primitive ones.
    """

    tag: int
    value: bytes
    offset: int
    children: tuple[Node, ...] | None = None


def read_header(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read one tag and length at ``pos``; return ``(tag, value_start, value_end)``.

    Raises:
        QuoteFormatError: high-tag-number form, indefinite or non-minimal length, or a value
            that runs past ``end``.
    """
    if pos + 2 > end:
        raise _fail("element header is truncated", pos)
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise _fail(f"multi-byte tag {tag:#04x} is not supported", pos)
    first = data[pos + 1]
    start = pos + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0:
            raise _fail("indefinite length is not DER", pos)
        if count > 4 or start + count > end:
            raise _fail("length field is too long or truncated", pos)
        length = int.from_bytes(data[start : start + count], "big")
        if length < 0x80 or data[start] == 0:
            raise _fail("length is not minimally encoded", pos)
        start += count
    if length > end - start:
        raise _fail(f"value of {length} bytes runs past the end of its container", pos)
    return tag, start, start + length


def parse(data: bytes, *, max_depth: int = MAX_DEPTH) -> Node:
    """Decode exactly one element spanning all of ``data`` (constructed tags recursively).

    Raises:
        QuoteFormatError: malformed DER, trailing bytes, input over 1 MiB, nesting deeper than
            ``max_depth`` or more than 512 elements in total.
    """
    if len(data) > MAX_INPUT:
        raise _fail(f"input of {len(data)} bytes exceeds {MAX_INPUT}", 0)
    budget = [MAX_ELEMENTS]
    node, end = _parse_at(data, 0, len(data), max_depth, budget)
    if end != len(data):
        raise _fail(f"{len(data) - end} trailing bytes after the element", end)
    return node


def _parse_at(data: bytes, pos: int, end: int, depth: int, budget: list[int]) -> tuple[Node, int]:
    budget[0] -= 1
    if budget[0] < 0:
        raise _fail(f"more than {MAX_ELEMENTS} elements", pos)
    tag, start, stop = read_header(data, pos, end)
    value = data[start:stop]
    if not tag & _CONSTRUCTED:
        return Node(tag, value, pos), stop
    if depth <= 0:
        raise _fail("nesting is too deep", pos)
    children: list[Node] = []
    cursor = start
    while cursor < stop:
        child, cursor = _parse_at(data, cursor, stop, depth - 1, budget)
        children.append(child)
    return Node(tag, value, pos, tuple(children)), stop


def decode_integer(node: Node) -> int:
    """Decode a minimal two's-complement INTEGER or ENUMERATED value."""
    raw = node.value
    if not raw:
        raise _fail("empty INTEGER", node.offset)
    if len(raw) > 1 and ((raw[0] == 0 and raw[1] < 0x80) or (raw[0] == 0xFF and raw[1] >= 0x80)):
        raise _fail("INTEGER is not minimally encoded", node.offset)
    if len(raw) > 16:
        raise _fail("INTEGER is too large", node.offset)
    return int.from_bytes(raw, "big", signed=True)


def decode_boolean(node: Node) -> bool:
    """Decode a DER BOOLEAN (exactly one byte, 0x00 or 0xFF)."""
    if node.value == b"\x00":
        return False
    if node.value == b"\xff":
        return True
    raise _fail("BOOLEAN is not one byte of 00 or FF", node.offset)


def decode_oid(node: Node) -> str:
    """Decode an OBJECT IDENTIFIER to dotted text, rejecting non-minimal sub-identifiers."""
    raw = node.value
    if not raw or raw[-1] & 0x80 or len(raw) > 64:
        raise _fail("OBJECT IDENTIFIER is empty, too long or truncated", node.offset)
    arcs: list[int] = []
    acc = 0
    fresh = True
    for byte in raw:
        if fresh and byte == 0x80:
            raise _fail("OBJECT IDENTIFIER arc is not minimally encoded", node.offset)
        acc = (acc << 7) | (byte & 0x7F)
        fresh = not byte & 0x80
        if fresh:
            arcs.append(acc)
            acc = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in (first, arcs[0] - 40 * first, *arcs[1:]))


def encode_length(length: int) -> bytes:
    """Encode a definite DER length."""
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, value: bytes) -> bytes:
    """Encode one element."""
    return bytes([tag]) + encode_length(len(value)) + value


def encode_integer(value: int, tag: int = INTEGER) -> bytes:
    """Encode a minimal two's-complement INTEGER (or ENUMERATED with ``tag=ENUMERATED``)."""
    size = (value + (value < 0)).bit_length() // 8 + 1
    return tlv(tag, value.to_bytes(size, "big", signed=True))


def encode_boolean(value: bool) -> bytes:
    """Encode a DER BOOLEAN."""
    return tlv(BOOLEAN, b"\xff" if value else b"\x00")


def encode_oid(dotted: str) -> bytes:
    """Encode dotted text as an OBJECT IDENTIFIER element."""
    arcs = [int(part) for part in dotted.split(".")]
    out = bytearray()
    for arc in (40 * arcs[0] + arcs[1], *arcs[2:]):
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return tlv(OID, bytes(out))


def split_concatenated(data: bytes, *, limit: int = 16, zero_padding: bool = False) -> list[bytes]:
    """Split concatenated DER SEQUENCEs (e.g. a DER certificate chain) into elements.

    With ``zero_padding``, NUL bytes after the last element are allowed and ignored (a DER
    element may itself end in 00, so they cannot simply be stripped first).

    Raises:
        QuoteFormatError: an element is not a SEQUENCE, is truncated, or there are more than
            ``limit`` elements or none.
    """
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        if zero_padding and out and not data[pos:].strip(b"\0"):
            break
        if len(out) >= limit:
            raise _fail(f"more than {limit} concatenated elements", pos)
        tag, _, stop = read_header(data, pos, len(data))
        if tag != SEQUENCE:
            raise _fail(f"expected a SEQUENCE, found tag {tag:#04x}", pos)
        out.append(data[pos:stop])
        pos = stop
    if not out:
        raise _fail("no elements", 0)
    return out
