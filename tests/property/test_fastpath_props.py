"""The channel's envelope fast paths agree byte for byte with the general strict codec.

Encoding: ``call_frame``/``reply_frame`` produce exactly ``frame([1, kind, cid, a, b])``.
Decoding: ``read_message`` returns either ``None`` (the general path decides) or exactly
what ``parse(loads(body))`` returns; it never accepts a body the general path rejects.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from enklave._encoding import DEFAULT_MAX_DEPTH, FRAME_HEADER, dumps, frame, loads
from enklave.channel._messages import parse
from enklave.channel._wire import call_frame, read_message, reply_frame, text_cbor
from enklave.errors import EncodingError, ProtocolError

BOUNDARY_IDS = [0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1]
call_ids = st.sampled_from(BOUNDARY_IDS) | st.integers(0, 2**63 - 1)
any_ids = call_ids | st.sampled_from([-1, 2**63, 2**64 - 1]) | st.text(max_size=2)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=30)
    | st.binary(max_size=30)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.integers(-100, 100), inner, max_size=4)
    ),
    max_leaves=20,
)
error_records = st.fixed_dictionaries(
    {"type": st.text(max_size=10), "message": st.text(max_size=20), "code": st.text(max_size=8)},
    optional={"traceback": st.text(max_size=20)},
)
names = st.text(max_size=30)


def general(body: bytes) -> Any:
    """What the general strict path makes of a body: a parsed message, or the error type."""
    try:
        return parse(loads(body, max_depth=DEFAULT_MAX_DEPTH))
    except (EncodingError, ProtocolError) as exc:
        return type(exc)


def assert_agree(body: bytes) -> None:
    expected = general(body)
    for data in (body, memoryview(body)):
        fast = read_message(data, DEFAULT_MAX_DEPTH)
        if fast is not None:
            assert type(fast) is tuple and type(expected) is tuple, (body.hex(), fast, expected)
            # canonical bytes compare values and types exactly (and NaN equals NaN)
            assert dumps(list(fast)) == dumps(list(expected)), (body.hex(), fast, expected)


def joined(frame_or_parts: bytes | list[bytes]) -> bytes:
    """The bytes Endpoint.send_frame puts on the wire for a _wire result."""
    if isinstance(frame_or_parts, bytes):
        return frame_or_parts
    body = b"".join(frame_or_parts[1:])
    return len(body).to_bytes(FRAME_HEADER, "big") + body


@settings(max_examples=800)
@given(st.sampled_from([1, 4]), call_ids, names, st.lists(values, max_size=5))
def test_call_frame_is_byte_identical_to_general_frame(
    kind: int, cid: int, name: str, args: list[Any]
) -> None:
    try:
        expected = frame([1, kind, cid, name, args])
    except EncodingError:
        return  # e.g. a lone surrogate: both paths refuse it
    assert joined(call_frame(kind, cid, text_cbor(name), args)) == expected


@settings(max_examples=1500)
@given(st.integers(1, 8), call_ids, values | error_records)
def test_reply_frame_is_byte_identical_to_general_frame(kind: int, cid: int, value: Any) -> None:
    try:
        expected = frame([1, kind, cid, value, None])
    except EncodingError:
        return
    assert joined(reply_frame(kind, cid, value)) == expected


@settings(max_examples=1200)
@given(
    st.sampled_from([1, 1, 1, 0, 2]),
    st.integers(0, 10),
    any_ids,
    names | values | error_records,
    st.lists(values, max_size=4) | values,
)
def test_read_message_agrees_with_general_path(
    version: int, kind: int, cid: Any, a: Any, b: Any
) -> None:
    try:
        body = dumps([version, kind, cid, a, b])
    except EncodingError:
        return
    assert_agree(body)


@settings(max_examples=2000)
@given(st.integers(1, 8), call_ids, names | values | error_records, st.data())
def test_read_message_agrees_on_mutated_envelopes(kind: int, cid: int, a: Any, data) -> None:
    b = data.draw(st.lists(values, max_size=3)) if kind in (1, 4) else None
    try:
        body = bytearray(dumps([1, kind, cid, a, b]))
    except EncodingError:
        return
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.integers(0, 3))
        i = data.draw(st.integers(0, len(body)))
        if op == 0 and i < len(body):
            body[i] ^= data.draw(st.integers(1, 255))
        elif op == 1:
            del body[i:]
        elif op == 2:
            body[i:i] = data.draw(st.binary(min_size=1, max_size=4))
        elif i < len(body):
            body[i] = data.draw(st.sampled_from([0x18, 0x19, 0x1A, 0x1B, 0x60, 0x78, 0x80, 0xF6]))
    assert_agree(bytes(body))


@settings(max_examples=2000)
@given(st.binary(max_size=40))
def test_read_message_agrees_on_arbitrary_envelope_bytes(tail: bytes) -> None:
    assert_agree(b"\x85\x01" + tail)


def test_fast_path_takes_the_common_shapes() -> None:
    """The shapes of a plain ECALL round trip do not fall back to the general path."""
    cases = [
        [1, 1, 1000, "ping", []],
        [1, 1, 7, "greet", ["Ada", 3, None, b"x", [1.5]]],
        [1, 2, 2**40, None, None],
        [1, 2, 5, {"k": [1, 2]}, None],
        [1, 3, 5, {"type": "E", "message": "m", "code": "app"}, None],
        [1, 4, 9, "log", ["line"]],
        [1, 5, 9, b"result", None],
        [1, 6, 9, {"type": "E", "message": "m", "code": "host", "traceback": "t"}, None],
    ]
    for msg in cases:
        body = dumps(msg)
        assert read_message(body, DEFAULT_MAX_DEPTH) == tuple(msg[1:]), msg
        assert read_message(memoryview(body), DEFAULT_MAX_DEPTH) == tuple(msg[1:]), msg


def test_fast_path_defers_malformed_and_rare_frames() -> None:
    """Everything the general path must judge is left to it (None), never accepted."""
    deferred = [
        dumps([1, 1, 7, "", []]),  # empty name: rare, general path
        dumps([1, 1, 7, "x" * 30, []]),  # long name
        dumps([1, 7, 0, {}, None]),  # READY
        dumps([1, 1, 2**63, "ping", []]),  # call id out of range
        dumps([1, 1, 7, "ping", b"x"]),  # arguments not a list
        dumps([1, 3, 7, {"type": "x"}, None]),  # malformed error record
        dumps([1, 2, 7, None, 5]),  # fifth item not null
        b"\x85\x01\x01\x18\x05dping\x80",  # non-shortest call id
        b"\x85\x01\x01\x07dpi\xffg\x80",  # invalid UTF-8 name
        dumps([1, 2, 7, None, None]) + b"\x00",  # trailing byte
        b"\x85\x01\x02\x07\xf6",  # truncated
    ]
    for body in deferred:
        assert read_message(body, DEFAULT_MAX_DEPTH) is None, body.hex()


def test_fast_path_respects_the_depth_limit() -> None:
    deep: Any = []
    for _ in range(DEFAULT_MAX_DEPTH - 3):  # envelope + args + 14 lists = 16 levels
        deep = [deep]
    ok = dumps([1, 1, 7, "echo", [deep]], max_depth=64)
    too_deep = dumps([1, 1, 7, "echo", [[deep]]], max_depth=64)
    assert read_message(ok, DEFAULT_MAX_DEPTH) == general(ok)
    assert general(too_deep) is EncodingError
    assert read_message(too_deep, DEFAULT_MAX_DEPTH) is None
