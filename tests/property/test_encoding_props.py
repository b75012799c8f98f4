"""Deterministic CBOR: arbitrary bytes raise only EncodingError; values round-trip canonically."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enklave._encoding import dumps, loads
from enklave.errors import EncodingError

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.binary(max_size=40)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text(max_size=8) | st.integers(-100, 100), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=1500)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_encoding_error(data: bytes) -> None:
    try:
        value = loads(data)
    except EncodingError:
        return
    assert dumps(value) == data  # anything accepted is in its one canonical form


@settings(max_examples=800)
@given(values)
def test_round_trip_is_canonical(value: object) -> None:
    encoded = dumps(value)
    decoded = loads(encoded)
    assert dumps(decoded) == encoded


@settings(max_examples=800)
@given(values, st.data())
def test_mutations_raise_only_encoding_error_or_stay_canonical(value: object, data) -> None:
    encoded = bytearray(dumps(value))
    if not encoded:
        return
    i = data.draw(st.integers(0, len(encoded) - 1))
    encoded[i] ^= data.draw(st.integers(1, 255))
    try:
        decoded = loads(bytes(encoded))
    except EncodingError:
        return
    assert dumps(decoded) == bytes(encoded)


def test_rejects_too_deep_nesting() -> None:
    deep: object = []
    for _ in range(40):
        deep = [deep]
    with pytest.raises(EncodingError):
        dumps(deep)
    raw = b"\x81" * 40 + b"\x80"
    with pytest.raises(EncodingError, match="deeper"):
        loads(raw)


@pytest.mark.parametrize(
    "raw, why",
    [
        (b"\x18\x05", "non-shortest"),
        (b"\x9f\xff", "indefinite"),
        (b"\xa2\x61b\x01\x61a\x02", "sorted"),
        (b"\xa2\x61a\x01\x61a\x02", "sorted"),
        (b"\xc1\x00", "tags"),
        (b"\xf7", "simple value"),
        (b"\xfa\x3f\xc0\x00\x00", "shortest"),
        (b"\x62\xff\xfe", "UTF-8"),
        (b"\x00\x00", "trailing"),
        (b"\x5a\xff\xff\xff\xff", "longer than"),
    ],
)
def test_rejects_non_canonical_or_disallowed(raw: bytes, why: str) -> None:
    with pytest.raises(EncodingError, match=why):
        loads(raw)


def test_rejects_unsupported_types() -> None:
    for bad in (object(), {1, 2}, bytearray(b"x"), {(1,): 2}, 2**64, "\ud800"):
        with pytest.raises(EncodingError):
            dumps(bad)


def test_nan_has_one_form() -> None:
    assert dumps(float("nan")) == b"\xf9\x7e\x00"
    assert math.isnan(loads(b"\xf9\x7e\x00"))
    with pytest.raises(EncodingError):
        loads(b"\xf9\x7e\x01")


def test_size_limit() -> None:
    with pytest.raises(EncodingError, match="exceeds"):
        loads(dumps(b"x" * 100), max_size=50)
