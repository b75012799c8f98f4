"""Quote and PCK-extension parsers under hostile input: only QuoteFormatError, or a value that
re-serializes to exactly the bytes it came from.

Example counts (fixed seeds; 164,000 in all): hypothesis 1,000 + 800 + 400 + 1,000 + 400 + 400
= 4,000; seeded loops 100,000 real-quote mutations (byte flips, truncations, insertions,
deletions, length/type-field edits, appends), 20,000 random or header-prefixed buffers and
40,000 PCK-extension DER mutations. The hypothesis tests are the shrinking front end; the
seeded loops carry the volume because hypothesis' per-example overhead is larger than a parse.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enklave.errors import QuoteFormatError
from enklave.models import _der
from enklave.models.pck import (
    PCK_EXTENSION_OID,
    PckExtension,
    encode_pck_extension,
    parse_pck_extension_der,
)
from enklave.models.quote import Quote, build_quote, parse_quote

REPO = Path(__file__).resolve().parents[2]
DCAP = REPO.parent / "shared" / "testvectors" / "dcap"
MAGICS = (b"\x03\x00\x02\x00", b"\x04\x00\x02\x00", b"\x05\x00\x02\x00")
DER_BYTES = [0x00, 0x01, 0x02, 0x04, 0x06, 0x0A, 0x30, 0x80, 0x81, 0x82, 0xFF]
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _real_quotes() -> list[bytes]:
    if not DCAP.is_dir():
        return []
    found = {p.read_bytes() for p in DCAP.rglob("*") if p.is_file() and p.stat().st_size < 20000}
    return sorted(q for q in found if q[:4] in MAGICS)


def _real_pck_values(quotes: list[bytes]) -> list[bytes]:
    values = set()
    oid = ObjectIdentifier(PCK_EXTENSION_OID)
    for data in quotes:
        cert_data = parse_quote(data).certification
        if cert_data.cert_type not in (4, 5):
            continue
        for der in cert_data.pck_chain_der():
            cert = x509.load_der_x509_certificate(der)
            for ext in cert.extensions:
                if ext.oid == oid:
                    values.add(ext.value.value)
    return sorted(values)


REAL = _real_quotes()
SYNTHETIC_EXT = PckExtension(
    ppid=bytes(range(16)), tcb_components=(11, 11, 2, 2, 255, 1) + (0,) * 10, pcesvn=13,
    cpusvn=bytes(16), pce_id=b"\0\0", fmspc=bytes.fromhex("00A067110000"), sgx_type=1,
    platform_instance_id=b"\x07" * 16, dynamic_platform=True, cached_keys=False, smt_enabled=True,
)  # fmt: skip
PCK_VALUES = [*_real_pck_values(REAL), encode_pck_extension(SYNTHETIC_EXT)]
needs_vectors = pytest.mark.skipif(not REAL, reason=f"test vectors not found at {DCAP}")


def _rebuild(quote: Quote) -> bytes:
    return build_quote(
        version=quote.header.version, tee_type=quote.header.tee_type, body=quote.body,
        attestation_key=quote.attestation_key, sign=lambda _: quote.signature,
        qe_report=quote.qe_report, qe_report_signature=quote.qe_report_signature,
        qe_auth_data=quote.qe_auth_data, cert_type=quote.certification.cert_type,
        cert_data=quote.certification.data, qe_svn=quote.header.qe_svn,
        pce_svn=quote.header.pce_svn, user_data=quote.header.user_data,
        qe_vendor_id=quote.header.qe_vendor_id,
    )  # fmt: skip


def check_quote(data: bytes, *, deep: bool = False) -> Quote | None:
    """Parse; anything accepted must re-serialize to exactly its bytes (minus trailing)."""
    try:
        quote = parse_quote(data)
    except QuoteFormatError:
        return None
    assert _rebuild(quote) + data[len(data) - quote.trailing :] == data
    if deep:
        for method in (quote.certification.pck_chain_der, quote.certification.pck_cert_id):
            try:
                method()
            except QuoteFormatError:
                pass
    return quote


def check_pck(value: bytes) -> PckExtension | None:
    """Parse a PCK extension value; anything accepted must survive encode -> parse."""
    try:
        ext = parse_pck_extension_der(value)
    except QuoteFormatError:
        return None
    assert parse_pck_extension_der(encode_pck_extension(ext)) == ext
    return ext


def _field_offsets(data: bytes) -> list[tuple[int, str]]:
    """Offsets and struct formats of every length/type field of a well-formed quote."""
    quote = parse_quote(data)
    fields = [(0, "<H"), (2, "<H"), (4, "<I")]
    if quote.header.version == 5:
        fields += [(48, "<H"), (50, "<I")]
    sig = len(quote.signed_region)
    fields.append((sig, "<I"))
    qe = sig + 4 + 128
    if quote.header.version != 3:
        fields += [(qe, "<H"), (qe + 2, "<I")]
        qe += 6
    auth = qe + 448
    cert = auth + 2 + len(quote.qe_auth_data)
    return [*fields, (auth, "<H"), (cert, "<H"), (cert + 2, "<I")]


def _length_value(rng: random.Random, old: int, fmt: str) -> int:
    top = 0xFFFF if fmt == "<H" else 0xFFFFFFFF
    choice = rng.choice(
        [0, 1, old - 1, old + 1, old + rng.randint(-64, 64), top, rng.randint(0, top), old * 2]
    )
    return min(max(choice, 0), top)


def _mutate_quote(rng: random.Random, data: bytes, fields: list[tuple[int, str]]) -> bytes:
    op = rng.randrange(7)
    buf = bytearray(data)
    if op == 0:  # flip bytes, biased to the structured front
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(min(len(buf), 1400) if rng.random() < 0.7 else len(buf))
            buf[pos] ^= 1 << rng.randrange(8)
    elif op == 1:  # truncate
        del buf[rng.randrange(len(buf)) :]
    elif op == 2:  # insert
        pos = rng.randrange(len(buf) + 1)
        buf[pos:pos] = rng.randbytes(rng.randint(1, 8))
    elif op == 3:  # delete a range
        pos = rng.randrange(len(buf))
        del buf[pos : pos + rng.randint(1, 16)]
    elif op in (4, 5):  # edit a length or type field
        offset, fmt = rng.choice(fields)
        old = struct.unpack_from(fmt, buf, offset)[0]
        struct.pack_into(fmt, buf, offset, _length_value(rng, old, fmt))
    else:  # append
        buf += rng.randbytes(rng.randint(1, 100))
    return bytes(buf)


def _mutate_der(rng: random.Random, value: bytes) -> bytes:
    buf = bytearray(value)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(5)
        if not buf:
            buf += rng.randbytes(4)
        pos = rng.randrange(len(buf))
        if op == 0:
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[pos] = rng.choice(DER_BYTES)
        elif op == 2:
            del buf[pos:]
        elif op == 3:
            buf[pos:pos] = rng.randbytes(rng.randint(1, 4))
        else:
            del buf[pos : pos + rng.randint(1, 8)]
    return bytes(buf)


def _run_loop(count: int, seed: int, step: Callable[[random.Random, int], bool]) -> int:
    rng = random.Random(seed)
    accepted = 0
    for i in range(count):
        try:
            accepted += step(rng, i)
        except AssertionError:
            raise
        except Exception as exc:  # anything but QuoteFormatError is a parser bug
            pytest.fail(f"seed {seed} iteration {i}: {type(exc).__name__}: {exc}")
    return accepted


# ----------------------------------------------------------------------- hypothesis tests


@settings(SETTINGS, max_examples=1000)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_quote_format_error(data: bytes) -> None:
    check_quote(data)


@settings(SETTINGS, max_examples=800)
@given(
    st.sampled_from(MAGICS),
    st.sampled_from([b"\0\0\0\0", b"\x81\0\0\0"]),
    st.binary(min_size=0, max_size=1500),
)
def test_header_prefixed_garbage_raises_only_quote_format_error(
    magic: bytes, tee: bytes, tail: bytes
) -> None:
    check_quote(magic + tee + tail)


@needs_vectors
@settings(SETTINGS, max_examples=400)
@given(st.data())
def test_mutated_real_quote_parses_or_raises_quote_format_error(data: st.DataObject) -> None:
    quote = data.draw(st.sampled_from(REAL))
    seed = data.draw(st.integers(0, 2**32))
    check_quote(_mutate_quote(random.Random(seed), quote, _field_offsets(quote)), deep=True)


@settings(SETTINGS, max_examples=1000)
@given(st.binary(max_size=600))
def test_arbitrary_der_raises_only_quote_format_error(data: bytes) -> None:
    check_pck(data)
    try:
        node = _der.parse(data)
    except QuoteFormatError:
        return
    assert _reencode(node) == data  # strict DER: one encoding per value


def _reencode(node: _der.Node) -> bytes:
    if node.children is None:
        return _der.tlv(node.tag, node.value)
    return _der.tlv(node.tag, b"".join(_reencode(c) for c in node.children))


@settings(SETTINGS, max_examples=400)
@given(st.sampled_from(PCK_VALUES), st.integers(0, 2**32))
def test_mutated_pck_extension_raises_only_quote_format_error(value: bytes, seed: int) -> None:
    check_pck(_mutate_der(random.Random(seed), value))


@settings(SETTINGS, max_examples=400)
@given(
    st.builds(
        PckExtension,
        ppid=st.binary(min_size=16, max_size=16),
        tcb_components=st.tuples(*[st.integers(0, 255)] * 16),
        pcesvn=st.integers(0, 0xFFFF),
        cpusvn=st.binary(min_size=16, max_size=16),
        pce_id=st.binary(min_size=2, max_size=2),
        fmspc=st.binary(min_size=6, max_size=6),
        sgx_type=st.integers(0, 0xFFFF),
        platform_instance_id=st.none() | st.binary(min_size=16, max_size=16),
        dynamic_platform=st.none() | st.booleans(),
        cached_keys=st.none() | st.booleans(),
        smt_enabled=st.none() | st.booleans(),
    )
)
def test_pck_extension_encode_parse_round_trip(ext: PckExtension) -> None:
    assert parse_pck_extension_der(encode_pck_extension(ext)) == ext


# ------------------------------------------------------------------------- seeded loops


@needs_vectors
def test_bulk_real_quote_mutations() -> None:
    offsets = {q: _field_offsets(q) for q in REAL}

    def step(rng: random.Random, i: int) -> bool:
        base = REAL[i % len(REAL)]
        return check_quote(_mutate_quote(rng, base, offsets[base]), deep=i % 16 == 0) is not None

    accepted = _run_loop(100_000, 20261130, step)
    assert 5_000 < accepted < 90_000  # both outcomes are well exercised


def test_bulk_random_and_header_prefixed_buffers() -> None:
    def step(rng: random.Random, i: int) -> bool:
        tail = rng.randbytes(rng.choice([0, 10, 47, 48, 60, 432, 640, 1500]))
        head = rng.choice(MAGICS) + rng.choice([b"\0\0\0\0", b"\x81\0\0\0"]) if i % 4 else b""
        return check_quote(head + tail, deep=True) is not None

    assert _run_loop(20_000, 7, step) == 0


def test_bulk_pck_extension_der_mutations() -> None:
    def step(rng: random.Random, i: int) -> bool:
        return check_pck(_mutate_der(rng, PCK_VALUES[i % len(PCK_VALUES)])) is not None

    accepted = _run_loop(40_000, 1729, step)
    assert 100 < accepted < 40_000
