"""Protocol fuzzing: >= 100,000 hostile frames written raw into the enclave channel.

Every well-framed frame must get exactly one reply (RETURN, or ERROR with string
fields) and the enclave must keep serving; a length prefix over the 16 MiB limit must
make it close the channel and exit. Deterministic: one ``random.Random`` seed.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from _raw import ECALL, ERROR, RETURN, RawEnclave, frame

from conftest import PING_DIR, build
from enklave._encoding import dumps

SEED = 0x5EC0DE
BATCH = 500
BATCHES = 300  # 300 * 500 = 150,000 well-framed frames
BAD_STREAMS = 200  # streams ending in an oversized length prefix (each ends a process)
PARALLEL_STARTS = 4
FUZZ_FRAMES = BATCH * BATCHES
MAX_FRAME = 16 * 1024 * 1024


def _cid(rng: random.Random) -> int:
    # random 62-bit ids: no two frames share one, so a mutated ORETURN never lands in
    # the mailbox of a real ECALL being served at that moment
    return rng.getrandbits(62) | (1 << 61)


_NAMES = ["ping", "echo", "pong", "", "Echo", "__init__", "ping\x00", "é", "x" * 300]
_VALUES: list[Callable[[random.Random], Any]] = [
    lambda r: None,
    lambda r: r.random() < 0.5,
    lambda r: r.randint(-(2**64) + 1, 2**64 - 1),
    lambda r: r.random() * 1e300,
    lambda r: r.randbytes(r.randint(0, 64)),
    lambda r: "".join(chr(r.randint(32, 0x2FFF)) for _ in range(r.randint(0, 16))),
    lambda r: [r.randint(0, 9) for _ in range(r.randint(0, 4))],
    lambda r: {"type": "x", "message": "y", "code": "z"},
    lambda r: {str(r.randint(0, 9)): b"v"},
]


def _value(rng: random.Random) -> Any:
    return rng.choice(_VALUES)(rng)


def _valid_ecall(rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        return dumps([1, ECALL, _cid(rng), "ping", []])
    return dumps([1, ECALL, _cid(rng), "echo", [rng.randbytes(rng.randint(0, 40))]])


def _mutate(rng: random.Random, body: bytes) -> bytes:
    b = bytearray(body)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(5)
        if op == 0 and b:  # bit flips
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(len(b))
                b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:  # truncation
            del b[rng.randrange(len(b)) :]
        elif op == 2:  # insertion
            i = rng.randint(0, len(b))
            b[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 3 and b:  # deletion
            i = rng.randrange(len(b))
            del b[i : i + rng.randint(1, 4)]
        else:  # byte overwrite with a CBOR-significant value
            if b:
                b[rng.randrange(len(b))] = rng.choice(
                    [0x00, 0x18, 0x1F, 0x5F, 0x7F, 0x9F, 0xBF, 0xF6, 0xFF, 0xC0, 0x1B]
                )
    return bytes(b)


def _wrong_shape(rng: random.Random) -> bytes:
    """Well-formed CBOR with the protocol's shape wrong in one or more places."""
    choice = rng.randrange(6)
    cid = _cid(rng)
    if choice == 0:  # right shape, wrong argument types / counts
        return dumps(
            [
                1,
                ECALL,
                cid,
                rng.choice(["ping", "echo"]),
                [_value(rng) for _ in range(rng.randint(0, 3))],
            ]
        )
    if choice == 1:  # unknown names
        return dumps([1, ECALL, cid, rng.choice(_NAMES), [rng.randbytes(3)]])
    if choice == 2:  # any kind, including ones the host may not send
        kind = rng.choice([0, 2, 3, 4, 5, 6, 7, 8, 9, 255, -1])
        return dumps([1, kind, cid, _value(rng), _value(rng)])
    if choice == 3:  # wrong version or call id
        return dumps([rng.choice([0, 2, -1, "1", 1.0, None]), ECALL, cid, "ping", []])
    if choice == 4:
        return dumps([1, ECALL, rng.choice([-1, 2**63, "7", None, 1.5]), "ping", []])
    # wrong arity / not a list
    n = rng.choice([0, 1, 4, 6, 9])
    return dumps([_value(rng) for _ in range(n)] if rng.random() < 0.8 else _value(rng))


def _frame_batch(rng: random.Random, n: int) -> bytes:
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.30:
            body = rng.randbytes(rng.randint(0, 64))  # (a) random bytes
        elif r < 0.70:
            body = _mutate(rng, _valid_ecall(rng))  # (b) mutated valid ECALLs
        elif r < 0.95:
            body = _wrong_shape(rng)  # (c) valid CBOR, wrong protocol
        else:
            body = _valid_ecall(rng)  # plain valid calls in the mix
        out.append(frame(body))
    return b"".join(out)


def _check_reply(reply: Any) -> None:
    assert type(reply) is list and len(reply) == 5, reply
    assert reply[0] == 1 and reply[4] is None, reply
    assert reply[1] in (RETURN, ERROR), reply
    assert type(reply[2]) is int, reply
    if reply[1] == ERROR:
        rec = reply[3]
        assert type(rec) is dict, reply
        for field in ("type", "message", "code"):
            assert type(rec[field]) is str, reply
        assert rec["code"] in {"encoding", "protocol", "bounds", "frame"}, reply


def _send_in_background(raw: RawEnclave, data: bytes) -> threading.Thread:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            raw.send_raw(data)
        except BaseException as exc:  # pragma: no cover - surfaces via the reader
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.errors = errors  # type: ignore[attr-defined]
    t.start()
    return t


def _check_alive(raw: RawEnclave, rng: random.Random) -> None:
    cid = _cid(rng)
    data = rng.randbytes(32)
    assert raw.call(cid, "echo", [data]) == [1, RETURN, cid, data, None]


def test_fuzz_frames(ping_bundle, sim_home):
    rng = random.Random(SEED)
    start = time.monotonic()
    replies = {RETURN: 0, ERROR: 0}
    codes: dict[str, int] = {}
    with RawEnclave(ping_bundle, sim_home) as raw:
        for _ in range(BATCHES):
            sender = _send_in_background(raw, _frame_batch(rng, BATCH))
            for _ in range(BATCH):
                reply = raw.recv_frame()
                _check_reply(reply)
                replies[reply[1]] += 1
                if reply[1] == ERROR:
                    codes[reply[3]["code"]] = codes.get(reply[3]["code"], 0) + 1
            sender.join(30)
            assert not sender.is_alive() and not sender.errors
            _check_alive(raw, rng)
        # exactly one reply per frame: nothing more is pending
        raw.sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            raw.recv_frame()
        raw.sock.settimeout(20)
        _check_alive(raw, rng)
        assert raw.proc.poll() is None
    elapsed = time.monotonic() - start
    assert sum(replies.values()) == FUZZ_FRAMES
    print(
        f"\nfuzz: {FUZZ_FRAMES} frames in {elapsed:.1f}s "
        f"({FUZZ_FRAMES / elapsed:.0f}/s); RETURN {replies[RETURN]}, ERROR {codes}"
    )
    assert replies[RETURN] > 0 and codes.get("encoding") and codes.get("protocol")
    assert codes.get("bounds")


def _bad_stream(rng: random.Random) -> tuple[bytes, int]:
    """Some well-framed frames, then a length prefix over the limit, then junk."""
    n_good = rng.randint(0, 5)
    head = _frame_batch(rng, n_good)
    size = rng.randint(MAX_FRAME + 1, 2**32 - 1) if rng.random() < 0.9 else MAX_FRAME + 1
    return head + size.to_bytes(4, "big") + rng.randbytes(rng.randint(0, 256)), n_good


def test_fuzz_oversized_length_prefix_closes_channel(key, tmp_path, sim_home):
    rng = random.Random(SEED + 1)
    start = time.monotonic()
    done = 0
    while done < BAD_STREAMS:
        group = min(PARALLEL_STARTS, BAD_STREAMS - done)
        # rebuilt per group (20 ms): the bundle measures enklave's runtime files, which may
        # be edited while this long test runs in a working tree
        ping_bundle = build(PING_DIR, key, tmp_path / "ping.bundle")
        raws = [RawEnclave(ping_bundle, sim_home, wait=False) for _ in range(group)]
        try:
            for raw in raws:
                raw.wait_ready()
                stream, n_good = _bad_stream(rng)
                raw.send_raw(stream)
                # frames before the bad prefix get at most one reply each: a reply still
                # being computed on another enclave thread when the reader hits the bad
                # prefix is dropped with the channel
                got = 0
                while True:
                    try:
                        _check_reply(raw.recv_frame())
                    except EOFError:
                        break  # the enclave closed the channel
                    got += 1
                assert got <= n_good
                assert raw.proc.wait(timeout=20) == 0
        finally:
            for raw in raws:
                raw.close()
        done += group
    # after all that, a fresh enclave from the same bundle serves normally
    with RawEnclave(ping_bundle, sim_home) as raw:
        _check_alive(raw, rng)
    print(f"\nfuzz: {BAD_STREAMS} oversized-prefix streams in {time.monotonic() - start:.1f}s")
