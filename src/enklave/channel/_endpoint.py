"""One end of a host/enclave channel: length-prefixed CBOR frames over a stream socket.

Receiving is buffered (one ``recv`` usually brings a whole small frame) and bounded: a
frame header announcing more than ``max_frame`` bytes is a :class:`FrameError` and the
channel is unusable afterwards (the stream position is lost), so the caller closes it.
Sending is serialised by a lock so frames from several threads never interleave.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .._encoding import DEFAULT_MAX_DEPTH, FRAME_HEADER, frame, loads
from ..errors import EncodingError, FrameError

__all__ = ["ChannelClosed", "Endpoint"]

_CHUNK = 256 * 1024
#: Microseconds to poll before blocking in a receive (0 disables polling).
DEFAULT_SPIN_US = 200


def _always() -> bool:
    return True


class ChannelClosed(Exception):
    """The peer closed the stream (EOF) or the socket failed. Internal; never escapes."""


class Endpoint:
    """A framed, bounded CBOR channel over a connected stream socket.

    Args:
        sock: a connected ``SOCK_STREAM`` socket (blocking).
        max_frame: the largest body accepted or sent, in bytes.
        max_depth: the deepest nesting accepted.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        max_frame: int,
        max_depth: int = DEFAULT_MAX_DEPTH,
        spin_us: int = DEFAULT_SPIN_US,
    ) -> None:
        self._sock = sock
        self.spin_ns = spin_us * 1000
        #: Polling is allowed only while this returns True; owners use it to stop
        #: polling when other threads of the process need the GIL.
        self.spin_gate: Callable[[], bool] = _always
        self.max_frame = max_frame
        self.max_depth = max_depth
        self._send_lock = threading.Lock()
        self._buf = bytearray(_CHUNK)
        self._view = memoryview(self._buf)
        self._off = 0
        self._end = 0
        self.closed = False

    def send(self, message: Any) -> None:
        """Encode and send one message.

        Raises:
            FrameError: the message is larger than ``max_frame``.
            EncodingError: the message holds a type CBOR here does not allow.
            ChannelClosed: the peer is gone.
        """
        self.send_raw(frame(message, max_size=self.max_frame))

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (already framed). Raises ChannelClosed if the peer is gone."""
        try:
            with self._send_lock:
                self._sock.sendall(data)
        except OSError as exc:
            self.closed = True
            raise ChannelClosed(str(exc)) from exc

    def _fill(self, need: int) -> None:
        """Receive until at least ``need`` unread bytes are buffered."""
        buf = self._buf
        if self._off == self._end:
            self._off = self._end = 0
        if self._off + need > len(buf):
            # move unread bytes to the front, growing the buffer for a large frame
            unread = buf[self._off : self._end]
            if need > len(buf):
                buf = self._buf = bytearray(max(need, 2 * len(buf)))
                self._view = memoryview(buf)
            buf[: len(unread)] = unread
            self._off, self._end = 0, len(unread)
        while self._end - self._off < need:
            try:
                n = self._recv_some()
            except OSError as exc:
                self.closed = True
                raise ChannelClosed(str(exc)) from exc
            if not n:
                self.closed = True
                raise ChannelClosed("peer closed the channel")
            self._end += n

    def _recv_some(self) -> int:
        """One receive; with ``spin_us`` > 0, poll without blocking for that long first.

        Polling keeps a waiting CPU awake: on virtual machines a blocked thread's vCPU
        halts and waking it costs tens of microseconds, more than a whole round trip
        (the same trade-off as SGX switchless calls). It costs CPU while waiting.
        """
        view = self._view[self._end :]
        if self.spin_ns:
            deadline = time.perf_counter_ns() + self.spin_ns
            recv_into = self._sock.recv_into
            gate = self.spin_gate
            while gate() and time.perf_counter_ns() < deadline:
                try:
                    return recv_into(view, 0, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
        return self._sock.recv_into(view)

    def recv_body(self) -> bytes:
        """Read one frame and return its body bytes (not decoded).

        Only one thread may receive at a time; the multiplexer guarantees that.

        Raises:
            FrameError: the header announces a body larger than ``max_frame``.
            ChannelClosed: EOF or socket error.
        """
        if self._end - self._off < FRAME_HEADER:
            self._fill(FRAME_HEADER)
        off = self._off
        n = int.from_bytes(self._buf[off : off + FRAME_HEADER], "big")
        if n > self.max_frame:
            self.closed = True
            raise FrameError(
                f"peer announced a {n}-byte frame, over the {self.max_frame}-byte limit"
            )
        if self._end - off < FRAME_HEADER + n:
            self._fill(FRAME_HEADER + n)
            off = self._off
        start = off + FRAME_HEADER
        body = bytes(self._view[start : start + n])
        self._off = start + n
        return body

    def recv(self) -> Any:
        """Read and decode one frame.

        Raises:
            EncodingError: the body is not valid deterministic CBOR (the stream stays
                usable: the frame boundary is known).
            FrameError, ChannelClosed: as :meth:`recv_body`.
        """
        body = self.recv_body()
        try:
            return loads(body, max_size=self.max_frame, max_depth=self.max_depth)
        except EncodingError:
            raise
        except Exception as exc:  # pragma: no cover - defence in depth
            raise EncodingError(f"undecodable frame: {type(exc).__name__}") from exc

    def close(self) -> None:
        """Close the socket (idempotent); a thread blocked in recv gets ChannelClosed."""
        self.closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
