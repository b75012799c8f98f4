"""Property tests for SIGSTRUCT parsing and verification: only SigningError escapes."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from enklave.errors import SigningError
from enklave.package._keys import generate_signing_key
from enklave.package._sigstruct import Sigstruct, sign_sigstruct

SIGNED_OFFSETS = [*range(0, 128), *range(900, 1028)]


@pytest.fixture(scope="module")
def valid_raw() -> bytes:
    key: rsa.RSAPrivateKey = generate_signing_key()
    sig = sign_sigstruct(
        key, enclave_hash=b"\x5a" * 32, isv_prod_id=9, isv_svn=2, debug=False, date=20240229
    )
    sig.verify()
    return sig.to_bytes()


def _parse_and_verify(data: bytes) -> bool:
    """Return True if ``data`` parses and verifies; let anything but SigningError escape."""
    try:
        Sigstruct.from_bytes(data).verify()
    except SigningError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_signing_error(data: bytes) -> None:
    assert not _parse_and_verify(data)


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(min_size=1808, max_size=1808),
    exponent_is_3=st.booleans(),
    top_bit=st.booleans(),
)
def test_well_framed_random_sigstruct_raises_only_signing_error(
    valid_raw: bytes, body: bytes, exponent_is_3: bool, top_bit: bool
) -> None:
    """Keep HEADERs, reserved bytes and date valid so random fields reach verify()."""
    data = bytearray(body)
    for start, end in ((0, 16), (20, 40), (44, 128), (908, 928), (992, 1024), (1028, 1040)):
        data[start:end] = valid_raw[start:end]
    data[16:20] = bytes(4)
    if exponent_is_3:
        data[512:516] = (3).to_bytes(4, "little")
    if top_bit:
        data[511] |= 0x80  # a full 3072-bit modulus, so the RSA check itself runs
    assert not _parse_and_verify(bytes(data))


@settings(max_examples=300, deadline=None)
@given(offset=st.integers(0, 1807), mask=st.integers(1, 255))
def test_any_single_byte_mutation_never_verifies(valid_raw: bytes, offset: int, mask: int) -> None:
    data = bytearray(valid_raw)
    data[offset] ^= mask
    assert not _parse_and_verify(bytes(data))


@settings(max_examples=300, deadline=None)
@given(offset=st.sampled_from(SIGNED_OFFSETS), value=st.integers(0, 255))
def test_mutated_signed_region_never_verifies(valid_raw: bytes, offset: int, value: int) -> None:
    data = bytearray(valid_raw)
    if data[offset] == value:
        value ^= 0xFF
    data[offset] = value
    assert not _parse_and_verify(bytes(data))


def test_valid_sigstruct_still_verifies(valid_raw: bytes) -> None:
    assert _parse_and_verify(valid_raw)
