"""One end of a host/enclave channel: length-prefixed CBOR frames over a stream socket.

Receiving is buffered (one ``recv`` usually brings a whole small frame) and bounded: a
frame header announcing more than ``max_frame`` bytes is a :class:`FrameError` and the
channel is unusable afterwards (the stream position is lost), so the caller closes it.
Sending is serialised by a lock so frames from several threads never interleave.

Small frames are joined into one buffer and sent with one ``sendall``; large ones are
sent part by part with ``sendmsg`` (no copy of large byte strings), and received
large bodies are handed out as a view of the receive buffer (decoded in place).
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from .._encoding import DEFAULT_MAX_DEPTH, FRAME_HEADER, encode_into, frame_length, loads
from ..errors import EncodingError, FrameError

__all__ = ["ChannelClosed", "Endpoint"]

_CHUNK = 256 * 1024
#: Frames up to this size are joined and sent as one buffer, and received bodies up to
#: this size are copied out as ``bytes``; larger ones avoid the copies.
_SMALL = 64 * 1024
_unpack_length = struct.Struct(">I").unpack_from
#: Most buffers handed to one ``sendmsg`` (well under every system's IOV_MAX).
_IOV_BATCH = 512
#: Microseconds to poll before blocking in a receive (0 disables polling).
DEFAULT_SPIN_US = 200


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
        #: Polling is allowed only while this returns True (or it is None); owners use it
        #: to stop polling when other threads of the process need the GIL.
        self.spin_gate: Callable[[], bool] | None = None  # None: always allowed
        self.max_frame = max_frame
        self.max_depth = max_depth
        self._send_lock = threading.Lock()
        self._poller = select.poll()
        self._poller.register(sock, select.POLLIN)
        self._buf = bytearray(_CHUNK)
        self._view = memoryview(self._buf)
        self._off = 0
        self._end = 0
        self.closed = False

    def send(self, message: Any) -> None:
        """Encode and send one message (the bytes of ``_encoding.frame(message)``).

        Raises:
            FrameError: the message is larger than ``max_frame``.
            EncodingError: the message holds a type CBOR here does not allow.
            ChannelClosed: the peer is gone.
        """
        parts = [b""]
        encode_into(message, parts, DEFAULT_MAX_DEPTH)
        self.send_frame(parts)

    def send_frame(self, frame: bytes | list[bytes]) -> None:
        """Send one frame built by :mod:`._wire` (see :meth:`prepare`).

        Raises:
            FrameError: the body is larger than ``max_frame`` (nothing was sent).
            ChannelClosed: the peer is gone.
        """
        if not isinstance(frame, bytes) or len(frame) - FRAME_HEADER > self.max_frame:
            frame = self.prepare(frame)
        self.send_prepared(frame)

    def prepare(self, frame: bytes | list[bytes]) -> bytes | list[bytes]:
        """Check a frame's size and make it ready to send.

        Args:
            frame: a complete small frame (``bytes``, header included), or a list of
                parts whose first item is a slot for the header and the rest the body.

        Returns:
            One ``bytes`` for a frame of up to 64 KiB, else the parts with the header.

        Raises:
            FrameError: the body is larger than ``max_frame``.
        """
        if isinstance(frame, bytes):
            size = len(frame) - FRAME_HEADER
        else:
            size = sum(map(len, frame)) - len(frame[0])
        if size > self.max_frame:
            raise FrameError(
                f"message of {size} bytes exceeds the {self.max_frame}-byte frame limit; "
                "send smaller arguments or raise the limit"
            )
        if isinstance(frame, bytes):
            return frame
        frame[0] = frame_length(size)
        return b"".join(frame) if size <= _SMALL else frame

    def send_prepared(self, data: bytes | list[bytes]) -> None:
        """Send a frame from :meth:`prepare`. Raises ChannelClosed if the peer is gone."""
        lock = self._send_lock
        try:
            lock.acquire()
            try:
                if isinstance(data, bytes):
                    self._sock.sendall(data)
                else:
                    self._send_vectored(_coalesce(data))
            finally:
                lock.release()
        except OSError as exc:
            self.closed = True
            raise ChannelClosed(str(exc)) from exc

    def _send_vectored(self, bufs: list[bytes | memoryview]) -> None:
        sendmsg = self._sock.sendmsg
        while bufs:
            sent = sendmsg(bufs[:_IOV_BATCH])
            i = 0
            while i < len(bufs) and sent >= len(bufs[i]):
                sent -= len(bufs[i])
                i += 1
            bufs = bufs[i:]
            if sent:
                bufs[0] = memoryview(bufs[0])[sent:]

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
            self._end += self._recv_at(self._end)

    def _recv_at(self, pos: int) -> int:
        """One receive into the buffer at ``pos``; returns the byte count (> 0).

        With ``spin_us`` > 0 it polls without blocking for that long first. Polling keeps
        a waiting CPU awake: on virtual machines a blocked thread's vCPU halts and waking
        it costs tens of microseconds, more than a whole round trip (the same trade-off
        as SGX switchless calls). It costs CPU while waiting. Each poll is a ``poll()``
        with a zero timeout (a third of the cost of a failing non-blocking ``recv``,
        which raises), then one ``recv`` once data is there.

        Raises:
            ChannelClosed: EOF or socket error.
            TimeoutError: a timeout set on the socket expired.
        """
        if self.spin_ns:
            clock = time.perf_counter_ns
            deadline = clock() + self.spin_ns
            ready = self._poller.poll
            gate = self.spin_gate
            if gate is None:
                while not ready(0) and clock() < deadline:
                    pass
            else:
                while gate() and not ready(0) and clock() < deadline:
                    pass
        try:
            n = self._sock.recv_into(self._view[pos:])
        except TimeoutError:
            raise  # only while a timeout is set (the load handshake): the caller reports it
        except OSError as exc:
            self.closed = True
            raise ChannelClosed(str(exc)) from exc
        if not n:
            self.closed = True
            raise ChannelClosed("peer closed the channel")
        return n

    def recv_view(self) -> bytes | memoryview:
        """Read one frame and return its body, not decoded.

        A body of up to 64 KiB is returned as ``bytes``; a larger one as a ``memoryview``
        of the receive buffer, valid only until the next receive (decode it first). Only
        one thread may receive at a time; the multiplexer guarantees that.

        Raises:
            FrameError: the header announces a body larger than ``max_frame``.
            ChannelClosed: EOF or socket error.
        """
        off = self._off
        end = self._end
        if off == end:  # nothing buffered (the usual case): receive at the start
            off = self._off = self._end = 0
            end = self._end = self._recv_at(0)
        if end - off >= FRAME_HEADER:  # fast path: a small frame that is all here
            n = _unpack_length(self._buf, off)[0]
            stop = off + FRAME_HEADER + n
            if stop <= end and n <= _SMALL and n <= self.max_frame:
                self._off = stop
                return bytes(self._view[off + FRAME_HEADER : stop])
        return self._recv_general()

    def _recv_general(self) -> bytes | memoryview:
        if self._end - self._off < FRAME_HEADER:
            self._fill(FRAME_HEADER)
        off = self._off
        n = _unpack_length(self._buf, off)[0]
        if n > self.max_frame:
            self.closed = True
            raise FrameError(
                f"peer announced a {n}-byte frame, over the {self.max_frame}-byte limit"
            )
        if self._end - off < FRAME_HEADER + n:
            self._fill(FRAME_HEADER + n)
            off = self._off
        start = off + FRAME_HEADER
        self._off = start + n
        if n <= _SMALL:
            return bytes(self._view[start : start + n])
        return self._view[start : start + n]

    def recv_body(self) -> bytes:
        """Read one frame and return its body as ``bytes``. Raises as :meth:`recv_view`."""
        return bytes(self.recv_view())

    def recv(self) -> Any:
        """Read and decode one frame.

        Raises:
            EncodingError: the body is not valid deterministic CBOR (the stream stays
                usable: the frame boundary is known).
            FrameError, ChannelClosed: as :meth:`recv_body`.
        """
        body = self.recv_view()
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


def _coalesce(parts: list[bytes]) -> list[bytes | memoryview]:
    """Join runs of small parts so a large frame is a few hundred buffers at most."""
    out: list[bytes | memoryview] = []
    run: list[bytes] = []
    for part in parts:
        if len(part) < _SMALL:
            run.append(part)
            continue
        if run:
            out.append(b"".join(run))
            run = []
        out.append(part)
    if run:
        out.append(b"".join(run))
    return out
