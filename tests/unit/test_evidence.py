"""Evidence encodings: CBOR, JSON and bare quotes; malformed input is a typed error."""

from __future__ import annotations

import hashlib
import random

import pytest

from enklave.errors import EnklaveError, QuoteFormatError
from enklave.models.evidence import Evidence, load_evidence, report_data_for


def test_report_data_binds_claims():
    rd = report_data_for(b"abc")
    assert rd[:32] == hashlib.sha256(b"abc").digest() and rd[32:] == bytes(32)


def test_round_trips():
    ev = Evidence(quote=b"\x03\x00" + bytes(100), claims=b"nonce", simulated=True)
    assert Evidence.from_bytes(ev.to_bytes()) == ev
    assert Evidence.from_json(ev.to_json()) == ev
    assert load_evidence(ev.to_bytes()) == ev
    assert load_evidence(ev.to_json().encode()) == ev


def test_bare_quote_binary_and_hex():
    raw = b"\x03\x00\x02\x00" + bytes(60)
    assert load_evidence(raw).quote == raw
    assert load_evidence(b"0x" + raw.hex().encode() + b"\n").quote == raw
    assert load_evidence(raw.hex().upper().encode()).claims == b""


@pytest.mark.parametrize("bad", [
    b"", b"{", b'{"format": "x"}', b'{"format": "enklave-evidence/1", "quote": 5}',
    b'{"format": "enklave-evidence/1", "quote": "!!"}',
])
def test_malformed_evidence_is_typed(bad):
    with pytest.raises(QuoteFormatError):
        load_evidence(bad)


def test_arbitrary_bytes_only_typed_errors():
    rng = random.Random(7)
    good = Evidence(quote=bytes(range(200)), claims=b"c").to_bytes()
    for _ in range(3000):
        data = bytearray(good if rng.random() < 0.7 else rng.randbytes(rng.randrange(0, 300)))
        for _ in range(rng.randrange(1, 4)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            for parse in (load_evidence, Evidence.from_bytes, Evidence.from_json):
                try:
                    parse(bytes(data))
                except EnklaveError:
                    pass
        except Exception as exc:  # pragma: no cover - the failure path
            pytest.fail(f"untyped {type(exc).__name__} on {bytes(data)[:40]!r}")
