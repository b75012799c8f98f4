"""The channel's fast paths: vectored sends, in-place decoding, the lock-light multiplexer."""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterator
from typing import Annotated, Any

import pytest

from enklave._encoding import Decoder, dumps, frame, loads
from enklave._interface import Interface, MaxLen
from enklave.channel import Endpoint, Mux
from enklave.channel._wire import call_frame, reply_frame, text_cbor
from enklave.errors import EnclaveLost, EnklaveError, FrameError

MAX = 16 * 1024 * 1024


@pytest.fixture
def pair() -> Iterator[tuple[Endpoint, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ep = Endpoint(a, max_frame=MAX, spin_us=0)
    yield ep, b
    ep.close()
    b.close()


def read_exact(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        assert chunk, "peer closed"
        out += chunk
    return bytes(out)


def read_frame(sock: socket.socket) -> bytes:
    n = int.from_bytes(read_exact(sock, 4), "big")
    return read_exact(sock, n)


def in_thread(fn: Any, *args: Any) -> threading.Thread:
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize(
    "message",
    [
        [1, 1, 5, "ping", []],
        [1, 2, 5, b"x" * (3 << 20), None],  # one large part: sent without a copy
        [1, 1, 9, "many", [[b"y" * 100] * 5000, "z" * 70000, 1.5, None]],  # many parts
        {"a": [b"\x00" * 65537, b"", "t"]},
    ],
)
def test_send_puts_exactly_the_general_frame_on_the_wire(pair, message: Any) -> None:
    ep, peer = pair
    expected = frame(message, max_size=MAX)
    got: list[bytes] = []
    t = in_thread(lambda: got.append(read_exact(peer, len(expected))))
    ep.send(message)
    t.join(10)
    assert got == [expected]


def test_large_vectored_frames_round_trip_and_decode_in_place(pair) -> None:
    ep, peer = pair
    payload = bytes(range(256)) * (5 << 12)  # 5 MiB
    parts = reply_frame(2, 77, [payload, "end"])
    assert isinstance(parts, list)
    n = 4 + len(dumps([1, 2, 77, [payload, "end"], None]))
    t = in_thread(lambda: peer.sendall(read_exact(peer, n)))  # echo the frame back
    ep.send_frame(parts)
    view = ep.recv_view()
    t.join(10)
    assert type(view) is memoryview  # a large body is not copied out of the buffer
    decoded = Decoder(view).value(16)
    assert decoded == [1, 2, 77, [payload, "end"], None]
    assert type(decoded[3][0]) is bytes


def test_small_bodies_are_bytes_and_recv_body_is_always_bytes(pair) -> None:
    ep, peer = pair
    small, big = dumps([1, 2, 3, None, None]), dumps(b"q" * 100_000)
    peer.sendall(b"".join(len(b).to_bytes(4, "big") + b for b in (small, big)))
    view = ep.recv_view()
    assert type(view) is bytes and view == small
    body = ep.recv_body()
    assert type(body) is bytes and body == big


def test_oversized_frame_is_refused_before_sending(pair) -> None:
    a, b = socket.socketpair()
    ep = Endpoint(a, max_frame=1000, spin_us=0)
    try:
        with pytest.raises(FrameError, match="exceeds the 1000-byte frame limit"):
            ep.send_frame(call_frame(1, 5, text_cbor("echo"), [b"x" * 1000]))
        with pytest.raises(FrameError, match="frame limit"):
            ep.send([b"y" * 2000])
        b.setblocking(False)
        with pytest.raises(BlockingIOError):
            b.recv(10)  # nothing went out
        ep.send_frame(call_frame(1, 5, text_cbor("ping"), []))
        assert loads(read_frame(b)) == [1, 1, 5, "ping", []]
    finally:
        ep.close()
        b.close()


def test_common_shapes_are_built_as_one_complete_frame() -> None:
    ping = call_frame(1, 300, text_cbor("ping"), [])
    ret = reply_frame(2, 300, None)
    assert ping == frame([1, 1, 300, "ping", []]) and ret == frame([1, 2, 300, None, None])
    assert isinstance(call_frame(1, 300, text_cbor("echo"), [b"x"]), list)
    a, b = socket.socketpair()
    ep = Endpoint(a, max_frame=5, spin_us=0)
    try:
        with pytest.raises(FrameError, match="exceeds the 5-byte frame limit"):
            ep.send_frame(ping)  # a ready-made frame is size-checked too
    finally:
        ep.close()
        b.close()


def test_decoder_reads_a_view_like_bytes() -> None:
    value = [b"abc", "h\u00e9llo", {"k": 1.5, "l": [None, True, -7]}, 2**40, b"x" * 70000]
    data = dumps(value)
    for source in (data, memoryview(data)):
        dec = Decoder(source)
        out = dec.value(16)
        assert out == value and dec.pos == len(data)
        assert type(out[0]) is bytes and type(out[4]) is bytes


class _Peer:
    """A fake far end: answers each request frame with RETURN of its argument, shuffled."""

    def __init__(self, sock: socket.socket, batch: int) -> None:
        self.sock, self.batch = sock, batch
        self.rng = random.Random(7)

    def serve(self) -> None:
        pending: list[list[Any]] = []
        try:
            while True:
                pending.append(loads(read_frame(self.sock)))
                if len(pending) >= self.batch:
                    self.rng.shuffle(pending)
                    for msg in pending:
                        if msg[2] % 5 == 0:  # a stray message for nobody, first
                            self.sock.sendall(frame([1, 5, 10**9 + msg[2], None, None]))
                        self.sock.sendall(frame([1, 2, msg[2], msg[4][0], None]))
                    pending.clear()
        except (AssertionError, OSError):
            pass


def _mux(ep: Endpoint, strays: list[Any]) -> Mux:
    return Mux(
        ep,
        route=lambda msg: msg[1],
        make_lost=lambda why: EnclaveLost(why),
        on_bad=lambda exc, cid: None,
        on_unroutable=strays.append,
    )


def test_concurrent_callers_each_get_their_own_reply(pair) -> None:
    ep, peer_sock = pair
    threads, calls = 4, 150
    strays: list[Any] = []
    mux = _mux(ep, strays)
    in_thread(_Peer(peer_sock, batch=threads).serve)
    errors: list[BaseException] = []
    name = text_cbor("echo")

    def caller(base: int) -> None:
        try:
            for i in range(calls):
                cid = base + i
                mux.register(cid)
                mux.send_frame(call_frame(1, cid, name, [cid * 3]))
                kind, got, value, _ = mux.wait(cid)
                mux.unregister(cid)
                assert (kind, got, value) == (2, cid, cid * 3)
        except BaseException as exc:
            errors.append(exc)

    pool = [in_thread(caller, 1 + k * 1000) for k in range(threads)]
    for t in pool:
        t.join(30)
    assert not errors, errors[0]
    assert all(not t.is_alive() for t in pool)
    assert len(strays) == threads * calls // 5 and all(m[0] == 5 for m in strays)


def test_a_dead_channel_wakes_every_waiter(pair) -> None:
    ep, peer_sock = pair
    mux = _mux(ep, [])
    got: list[BaseException] = []

    def waiter(key: int) -> None:
        mux.register(key)
        try:
            mux.wait(key)
        except EnklaveError as exc:
            got.append(exc)

    pool = [in_thread(waiter, k) for k in range(3)]
    peer_sock.sendall(frame([1, 2, 99, None, None]))  # for nobody: keeps the reader busy
    peer_sock.close()  # EOF: the reader dies, followers must wake up
    for t in pool:
        t.join(10)
    assert len(got) == 3 and all(isinstance(e, EnclaveLost) for e in got)
    assert mux.dead is not None


# ---- the real enclave runtime against a host-side Mux, in one process ---------------


class _Identity:
    debug = False


def work(n: int, tag: Annotated[str, MaxLen(20)]) -> Annotated[list[int], MaxLen(100)]: ...
def fail() -> None: ...
def bump(x: int) -> int: ...


@pytest.mark.parametrize("spin", [False, True])
def test_concurrent_ecalls_with_ocalls_through_the_runtime(spin: bool) -> None:
    """Host threads (some alone, some not) drive ECALLs that make OCALLs, all at once."""
    from enklave.channel._messages import ERROR, OCALL, OERROR, ORETURN, RETURN
    from enklave.enclave._runtime import Runtime

    iface = Interface.from_functions([work, fail], [bump])
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    rt = Runtime(
        Endpoint(b, max_frame=MAX), interface=iface, ecalls={}, identity=_Identity(),
        platform_secret=b"", files={}, max_threads=3,
    )  # fmt: skip
    if not spin:  # one process: polling threads mostly fight for the GIL
        rt.mux.endpoint.spin_ns = 0

    def run_work(n: int, tag: str) -> list[int]:
        return [rt.ocall("bump", [i]) for i in range(n)]

    def run_fail() -> None:
        rt.ocall("bump", [-1])  # the host answers OERROR

    rt.set_ecalls({"work": run_work, "fail": run_fail})
    server = in_thread(rt.serve)
    host = _mux(Endpoint(a, max_frame=MAX, spin_us=20 if spin else 0), [])
    host_mux: Mux = host
    names = {n: text_cbor(n) for n in ("work", "fail")}
    errors: list[BaseException] = []

    def ecall(cid: int, name: str, args: list[Any], alone: bool) -> Any:
        msg = host_mux.request(cid, call_frame(1, cid, names[name], args), alone=alone)
        while msg[0] == OCALL:
            x = msg[3][0]
            reply = (
                reply_frame(ORETURN, cid, x + 1)
                if x >= 0
                else reply_frame(OERROR, cid, {"type": "E", "message": "negative", "code": "host"})
            )
            msg = host_mux.request(cid, reply, alone=alone)
        return msg

    def caller(k: int) -> None:
        try:
            for i in range(40):
                cid = k * 1000 + i
                n = (k + i) % 5
                kind, got, value, _ = ecall(cid, "work", [n, f"t{k}"], alone=k == 0)
                assert (kind, got, value) == (RETURN, cid, list(range(1, n + 1)))
                if i % 10 == 0:
                    kind, _, value, _ = ecall(cid + 500, "fail", [], alone=False)
                    assert kind == ERROR and value["type"] == "OcallError", value
        except BaseException as exc:
            errors.append(exc)

    pool = [in_thread(caller, k) for k in range(4)]
    for t in pool:
        t.join(60)
    host.kill("test over")
    server.join(10)
    assert not errors, errors[0]
    assert all(not t.is_alive() for t in pool) and not server.is_alive()
