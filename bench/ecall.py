"""ECALL overhead benchmark: enklave's host/enclave calls against a raw socket ping-pong.

Run as ``python bench/ecall.py [--quick]``. Prints exactly one JSON line on stdout
(progress goes to stderr)::

    {"bench": "ecall", "raw_p50_us", "raw_p99_us", "ours_p50_us", "ours_p99_us",
     "ratio_p50", "ratio_p99", "raw_calls_per_s", "ours_calls_per_s",
     "mib_raw_mb_s", "mib_ours_mb_s", "mib_ratio", "threads": {"1", "2", "4"},
     "machine"}

What is measured
----------------
* **ours**: ``enc.call.ping()`` on the ``bench/ping`` app (built, signed and opened in
  the simulation backend from a temporary directory, with ``ENKLAVE_SIM_HOME`` pointing
  at a temporary platform). This is the full path a user pays: argument checking, call
  id allocation, the thread slot, CBOR encoding, framing, the channel multiplexer, the
  enclave's dispatch and checks, and decoding plus result checking on the way back.
* **raw**: the floor set by the transport alone. A second ``python -I`` child, started
  with ``subprocess.Popen`` and connected through the same transport (an ``AF_UNIX``
  ``socketpair``, 4-byte big-endian length prefix), answers each frame. The parent sends
  *the very bytes our protocol sends* for a ping (the framed
  ``dumps([1, 1, cid, "ping", []])``) and the child answers with the framed
  ``dumps([1, 2, cid, None, None])`` that ``ping`` returns (precomputed: the raw side
  does no encoding or decoding at all). Both readers are buffered ``recv_into`` loops
  that read the header, then the body, and hand back the body as ``bytes`` -- what a
  sensible minimal implementation does. The cid is fixed at a 3-byte CBOR value (most
  of ours' call ids are that size too), so the byte counts match.
* **1 MiB throughput**: ``enc.call.echo(b"x" * 2**20)`` against the raw child echoing a
  frame of equal size (the parent sends the framed ``[1, 1, cid, "echo", [data]]``
  request, the child sends the same frame back). MiB/s counts *payload both ways*:
  1 MiB request + 1 MiB reply per call = 2 MiB, not the few bytes of framing.
* **threads**: ``ping`` calls/s with 1, 2 and 4 host threads (the app's
  ``max_threads`` is 4), each thread doing N calls after a common barrier; the median
  of three interleaved rounds is reported.

Fairness
--------
The machine this was written on (a 2-core VM) is noisy, so the two sides are never
measured in separate phases: after a warm-up of both, they run in alternating blocks
(raw, ours, ours, raw, ... -- the order flips every round so neither side always runs
first after the other) and every call's latency is collected with
``time.perf_counter_ns``. Percentiles are nearest-rank over all calls of a side;
calls/s is the number of calls over the summed wall-clock time of that side's blocks.
Both sides run the identical timing loop over a bound callable, in the same process,
against a child started the same way (``sys.executable -I``). Ratios are ours / raw,
so 1.0 would mean "no overhead over the bare transport"; timings are never asserted on
(the smoke test only checks the output shape).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enklave._encoding import dumps
from enklave.host import Enclave
from enklave.package import build_app, generate_signing_key, write_bundle

PING_APP = Path(__file__).resolve().parent / "ping"
MIB = 1 << 20
# A call id whose CBOR form is 3 bytes (0x19 + u16), like ours' ids 256 .. 65535.
RAW_CID = 1000
_CHUNK = 256 * 1024

# The raw peer: read a length-prefixed frame (buffered recv_into); if it is the ping
# request, answer the precomputed ping reply frame, otherwise echo the frame back.
ECHO_SRC = r"""
import socket, sys, time

fd = int(sys.argv[1])
PING_REQ = bytes.fromhex(sys.argv[2])
PING_REP = bytes.fromhex(sys.argv[3])
SPIN_NS = int(sys.argv[4]) * 1000
sock = socket.socket(fileno=fd)
buf = bytearray(256 * 1024)
view = memoryview(buf)
off = end = 0


def fill(need):
    global buf, view, off, end
    if off == end:
        off = end = 0
    if off + need > len(buf):
        unread = bytes(view[off:end])
        if need > len(buf):
            buf = bytearray(max(need, 2 * len(buf)))
            view = memoryview(buf)
        buf[: len(unread)] = unread
        off, end = 0, len(unread)
    while end - off < need:
        n = None
        deadline = time.perf_counter_ns() + SPIN_NS
        while SPIN_NS and time.perf_counter_ns() < deadline:
            try:
                n = sock.recv_into(view[end:], 0, socket.MSG_DONTWAIT)
                break
            except BlockingIOError:
                pass
        if n is None:
            n = sock.recv_into(view[end:])
        if not n:
            raise EOFError
        end += n


try:
    while True:
        if end - off < 4:
            fill(4)
        n = int.from_bytes(view[off : off + 4], "big")
        if end - off < 4 + n:
            fill(4 + n)
        frame = view[off : off + 4 + n]
        off += 4 + n
        if frame[4:] == PING_REQ:
            sock.sendall(PING_REP)
        else:
            sock.sendall(frame)
except (EOFError, OSError):
    pass
finally:
    sock.close()
"""


def log(msg: str) -> None:
    print(f"[bench/ecall] {msg}", file=sys.stderr, flush=True)


def framed(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


class RawPeer:
    """The baseline: a ``python -I`` child on a socketpair that answers each frame."""

    def __init__(
        self,
        ping_req_body: bytes,
        ping_rep_frame: bytes,
        *,
        spin_us: int = 0,
        peer_spin_us: int = 0,
    ) -> None:
        """``spin_us``/``peer_spin_us``: poll this long before blocking (0: plain blocking)."""
        self.spin_ns = spin_us * 1000
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-I", "-c", ECHO_SRC, str(child.fileno()),
                    ping_req_body.hex(), ping_rep_frame.hex(), str(peer_spin_us),
                ],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        self.sock = parent
        self._buf = bytearray(_CHUNK)
        self._view = memoryview(self._buf)
        self._off = 0
        self._end = 0

    def _fill(self, need: int) -> None:
        if self._off == self._end:
            self._off = self._end = 0
        if self._off + need > len(self._buf):
            unread = bytes(self._view[self._off : self._end])
            if need > len(self._buf):
                self._buf = bytearray(max(need, 2 * len(self._buf)))
                self._view = memoryview(self._buf)
            self._buf[: len(unread)] = unread
            self._off, self._end = 0, len(unread)
        while self._end - self._off < need:
            n = self._recv_some()
            if not n:
                raise ConnectionError("raw peer closed the socket")
            self._end += n

    def _recv_some(self) -> int:
        view = self._view[self._end :]
        deadline = time.perf_counter_ns() + self.spin_ns
        while self.spin_ns and time.perf_counter_ns() < deadline:
            try:
                return self.sock.recv_into(view, 0, socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
        return self.sock.recv_into(view)

    def recv_body(self) -> bytes:
        if self._end - self._off < 4:
            self._fill(4)
        n = int.from_bytes(self._view[self._off : self._off + 4], "big")
        if self._end - self._off < 4 + n:
            self._fill(4 + n)
        start = self._off + 4
        body = bytes(self._view[start : start + n])
        self._off = start + n
        return body

    def call(self, frame: bytes) -> bytes:
        self.sock.sendall(frame)
        return self.recv_body()

    def close(self) -> None:
        """Close the socket (the child exits on EOF) and reap the child."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Side:
    """Latencies (ns) and summed block wall time (ns) of one side."""

    lat: list[int]
    wall_ns: int = 0
    calls: int = 0


def run_block(fn: Callable[[], Any], n: int, side: Side) -> None:
    clock = time.perf_counter_ns
    lat = side.lat
    start = clock()
    for _ in range(n):
        t0 = clock()
        fn()
        lat.append(clock() - t0)
    side.wall_ns += clock() - start
    side.calls += n


def interleave(
    raw_fn: Callable[[], Any],
    ours_fn: Callable[[], Any],
    *,
    warmup: int,
    rounds: int,
    block: int,
) -> tuple[Side, Side]:
    """Warm both up, then alternate blocks (flipping the order each round)."""
    scratch = Side([])
    run_block(raw_fn, warmup, scratch)
    run_block(ours_fn, warmup, scratch)
    raw, ours = Side([]), Side([])
    for r in range(rounds):
        order = ((raw_fn, raw), (ours_fn, ours)) if r % 2 == 0 else ((ours_fn, ours), (raw_fn, raw))
        for fn, side in order:
            run_block(fn, block, side)
    return raw, ours


def pct(values: list[int], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100)."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))
    return float(s[int(k)])


def threaded_cps(fn: Callable[[], Any], threads: int, n: int) -> float:
    """Calls/s of ``threads`` threads each calling ``fn`` ``n`` times after a barrier."""
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            for _ in range(n):
                fn()
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter_ns()
    for t in pool:
        t.join()
    elapsed = time.perf_counter_ns() - start
    if errors:
        raise errors[0]
    return threads * n * 1e9 / elapsed


def machine() -> str:
    return f"nproc={os.cpu_count()}, {platform.platform()}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny counts (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        warmup, rounds, block = 20, 2, 50
        mib_warmup, mib_rounds, mib_block = 1, 2, 2
        thread_n, thread_rounds = 50, 1
    else:
        warmup, rounds, block = 1000, 10, 1000
        mib_warmup, mib_rounds, mib_block = 5, 10, 20
        thread_n, thread_rounds = 3000, 3

    with tempfile.TemporaryDirectory(prefix="enklave-bench-") as tmp_s:
        tmp = Path(tmp_s)
        os.environ["ENKLAVE_SIM_HOME"] = str(tmp / "sim")
        log("building bench/ping")
        bundle_path = tmp / "ping.bundle"
        key = generate_signing_key()
        write_bundle(build_app(PING_APP, key), bundle_path)
        # the same app with max_threads = 4, for the concurrency numbers
        app4 = tmp / "ping4"
        shutil.copytree(PING_APP, app4)
        toml = (app4 / "enklave.toml").read_text()
        (app4 / "enklave.toml").write_text(toml.replace("max_threads = 1", "max_threads = 4"))
        bundle4 = tmp / "ping4.bundle"
        write_bundle(build_app(app4, key), bundle4)

        ping_req = dumps([1, 1, RAW_CID, "ping", []])
        ping_rep = framed(dumps([1, 2, RAW_CID, None, None]))
        ping_frame = framed(ping_req)
        payload = b"x" * MIB
        echo_frame = framed(dumps([1, 1, RAW_CID, "echo", [payload]]))

        raw_peer = RawPeer(ping_req, ping_rep)
        try:
            enc = Enclave.open(bundle_path)
            try:
                ping = enc.call.ping
                echo = enc.call.echo
                # sanity, outside any timing
                if raw_peer.call(ping_frame) != ping_rep[4:]:
                    raise RuntimeError("raw peer answered the wrong ping reply")
                if raw_peer.call(echo_frame) != echo_frame[4:] or echo(payload) != payload:
                    raise RuntimeError("echo did not round-trip")

                def raw_ping() -> None:
                    raw_peer.call(ping_frame)

                def raw_echo() -> None:
                    raw_peer.call(echo_frame)

                def ours_echo() -> None:
                    echo(payload)

                log(f"latency: {rounds} rounds x {block} calls per side")
                raw, ours = interleave(raw_ping, ping, warmup=warmup, rounds=rounds, block=block)
                # a second baseline that polls like we do (host 200 us, peer 50 us)
                log("latency against a polling raw peer")
                poll_peer = RawPeer(ping_req, ping_rep, spin_us=200, peer_spin_us=50)
                try:
                    rawp, oursp = interleave(
                        lambda: poll_peer.call(ping_frame), ping,
                        warmup=warmup, rounds=rounds, block=block,
                    )  # fmt: skip
                finally:
                    poll_peer.close()
                log(f"1 MiB echo: {mib_rounds} rounds x {mib_block} calls per side")
                mraw, mours = interleave(
                    raw_echo, ours_echo, warmup=mib_warmup, rounds=mib_rounds, block=mib_block
                )
            finally:
                enc.close()
            enc4 = Enclave.open(bundle4)
            try:
                log("latency at max_threads=4")
                raw4, ours4 = interleave(
                    raw_ping, enc4.call.ping, warmup=warmup, rounds=rounds, block=block
                )
                log(f"threads 1/2/4 x {thread_n} calls, {thread_rounds} rounds, max_threads=4")
                per: dict[int, list[float]] = {1: [], 2: [], 4: []}
                for _ in range(thread_rounds):
                    for k in per:
                        per[k].append(threaded_cps(enc4.call.ping, k, thread_n))
            finally:
                enc4.close()
        finally:
            raw_peer.close()

    raw_p50, raw_p99 = pct(raw.lat, 50), pct(raw.lat, 99)
    ours_p50, ours_p99 = pct(ours.lat, 50), pct(ours.lat, 99)

    def mib_s(side: Side) -> float:
        return 2 * side.calls * 1e9 / side.wall_ns  # 1 MiB each way per call

    result: dict[str, Any] = {
        "bench": "ecall",
        "raw_p50_us": round(raw_p50 / 1e3, 2),
        "raw_p99_us": round(raw_p99 / 1e3, 2),
        "ours_p50_us": round(ours_p50 / 1e3, 2),
        "ours_p99_us": round(ours_p99 / 1e3, 2),
        "ratio_p50": round(ours_p50 / raw_p50, 2),
        "ratio_p99": round(ours_p99 / raw_p99, 2),
        "polling_raw_p50_us": round(pct(rawp.lat, 50) / 1e3, 2),
        "polling_ours_p50_us": round(pct(oursp.lat, 50) / 1e3, 2),
        "ratio_p50_vs_polling_raw": round(pct(oursp.lat, 50) / pct(rawp.lat, 50), 2),
        "ratio_p99_vs_polling_raw": round(pct(oursp.lat, 99) / pct(rawp.lat, 99), 2),
        "raw_calls_per_s": round(raw.calls * 1e9 / raw.wall_ns),
        "ours_calls_per_s": round(ours.calls * 1e9 / ours.wall_ns),
        "mib_raw_mb_s": round(mib_s(mraw), 1),
        "mib_ours_mb_s": round(mib_s(mours), 1),
        "mib_ratio": round(mib_s(mours) / mib_s(mraw), 3),
        "mib_counts": "MiB/s of payload, request + reply (2 MiB per call)",
        "mt4_ours_p50_us": round(pct(ours4.lat, 50) / 1e3, 2),
        "mt4_ratio_p50": round(pct(ours4.lat, 50) / pct(raw4.lat, 50), 2),
        "threads": {str(k): round(statistics.median(v)) for k, v in per.items()},
        "machine": machine(),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
