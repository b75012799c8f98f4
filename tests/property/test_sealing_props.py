"""Property tests for sealing: round trips, arbitrary input, single-byte mutations."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from enklave.enclave._sealing import SealIdentity, seal, unseal
from enklave.errors import SealError

SECRET = bytes(range(32))
IDENTITY = SealIdentity(b"\xaa" * 32, b"\x11" * 32, 7, 3)
policies = st.sampled_from(["unique", "product"])


@settings(max_examples=300, deadline=None)
@given(blob=st.binary(max_size=200), aad=st.binary(max_size=16))
def test_arbitrary_bytes_raise_only_seal_error(blob: bytes, aad: bytes) -> None:
    try:
        unseal(SECRET, IDENTITY, blob, aad=aad)
    except SealError:
        return
    raise AssertionError("arbitrary bytes unsealed")


@settings(max_examples=300, deadline=None)
@given(
    header_like=st.binary(min_size=28, max_size=28),
    tail=st.binary(min_size=16, max_size=120),
    policy_byte=st.sampled_from([1, 2]),
)
def test_well_formed_header_garbage_raises_seal_error(
    header_like: bytes, tail: bytes, policy_byte: int
) -> None:
    # A valid magic/version/policy with a random SVN (low, to pass the rollback check),
    # key id, nonce and body still never unseals.
    blob = b"EKSL\x01" + bytes([policy_byte]) + b"\x00\x03" + header_like + tail
    try:
        unseal(SECRET, IDENTITY, blob)
    except SealError:
        return
    raise AssertionError("forged blob unsealed")


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=512), aad=st.binary(max_size=64), policy=policies)
def test_round_trip(data: bytes, aad: bytes, policy: str) -> None:
    blob = seal(SECRET, IDENTITY, data, policy=policy, aad=aad)  # type: ignore[arg-type]
    assert unseal(SECRET, IDENTITY, blob, aad=aad) == data


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=64),
    policy=policies,
    position=st.integers(min_value=0),
    delta=st.integers(min_value=1, max_value=255),
)
def test_single_byte_mutation_never_unseals(
    data: bytes, policy: str, position: int, delta: int
) -> None:
    blob = bytearray(seal(SECRET, IDENTITY, data, policy=policy))  # type: ignore[arg-type]
    index = position % len(blob)
    blob[index] ^= delta
    try:
        unseal(SECRET, IDENTITY, bytes(blob))
    except SealError:
        return
    raise AssertionError(f"mutation at byte {index} unsealed")
