"""Leader/follower multiplexing of one channel among several threads.

Threads wait for messages addressed to a *key* (a call id, or ``None`` for "any new
ECALL" on the enclave side). Whichever waiting thread finds nobody reading becomes the
reader: it reads frames, keeps the first one addressed to its own key and posts the
others to their owners' mailboxes. A lone caller therefore reads its own reply with no
thread hand-off and no condition variable: taking the reader lock without blocking is
its only synchronisation, which keeps the single-threaded round trip close to the raw
transport. Threads that find a reader already at work sleep (each on its own lock)
until a message is posted to them, the channel dies or the reader steps down.

Malformed frames (bad CBOR, bad protocol shape) are passed to ``on_bad`` and do not
stop the channel; framing errors and EOF are fatal: every waiter gets the error made by
``make_lost``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from .._encoding import FRAME_HEADER, loads
from ..errors import EncodingError, EnklaveError, FrameError, ProtocolError
from ._endpoint import ChannelClosed, Endpoint
from ._messages import parse
from ._wire import Message, read_message

__all__ = ["Message", "Mux"]


class Mux:
    """Share one :class:`Endpoint` among threads waiting for keyed messages.

    Args:
        endpoint: the channel.
        route: maps a parsed message to the key of the thread that must handle it;
            ``None`` means the key is the message's call id.
        make_lost: builds the exception raised to every waiter once the channel is dead.
        on_bad: called with the error and the call id (0 if unknown) for a frame that
            is well framed but not a valid message; called from the reading thread.
        on_unroutable: called with a message whose key has no mailbox.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        route: Callable[[Message], Hashable] | None,
        make_lost: Callable[[str], EnklaveError],
        on_bad: Callable[[EnklaveError, int], None],
        on_unroutable: Callable[[Message], None],
    ) -> None:
        self.endpoint = endpoint
        self._recv, self._depth = endpoint.recv_view, endpoint.max_depth
        self._route = route
        self._make_lost = make_lost
        self._on_bad = on_bad
        self._on_unroutable = on_unroutable
        self._lock = threading.Lock()  # guards posting, sleeping and waking
        self._reader = threading.Lock()  # held by the thread reading the channel
        self._boxes: dict[Hashable, deque[Message]] = {}
        # one held lock per sleeping thread; releasing it wakes that thread (cheaper
        # than a Condition, whose notify is Python code)
        self._waiters: deque[threading.Lock] = deque()
        self.dead: str | None = None

    def register(self, key: Hashable) -> None:
        """Open the mailbox for ``key`` (before sending the request it answers)."""
        self._boxes[key] = deque()  # one atomic store; posting only looks keys up

    def unregister(self, key: Hashable) -> None:
        """Close the mailbox for ``key``; later messages for it are unroutable.

        No lock: a message posted just before the owner stops reading is dropped with
        its mailbox either way (the owner had its answer), with or without one.
        """
        self._boxes.pop(key, None)

    def send(self, message: Any) -> None:
        """Send one message; a dead channel raises the ``make_lost`` error."""
        try:
            self.endpoint.send(message)
        except ChannelClosed as exc:
            raise self._lost_in_send(exc) from exc

    def send_frame(self, frame: bytes | list[bytes]) -> None:
        """Send one frame built by :mod:`._wire`; raises as :meth:`send`."""
        endpoint = self.endpoint
        try:
            if isinstance(frame, bytes) and len(frame) - FRAME_HEADER <= endpoint.max_frame:
                endpoint.send_prepared(frame)  # a complete small frame: nothing to prepare
            else:
                endpoint.send_frame(frame)
        except ChannelClosed as exc:
            raise self._lost_in_send(exc) from exc

    def _lost_in_send(self, exc: ChannelClosed) -> EnklaveError:
        self.kill(f"channel closed while sending: {exc}")
        return self._make_lost(self.dead or "channel closed")

    def request(self, key: Hashable, frame: bytes | list[bytes], *, alone: bool) -> Message:
        """Send a request and wait for the one message that answers it (addressed to ``key``).

        The protocol is strict ping-pong per call id (a request, then one answer), so
        ``key``'s mailbox only has to exist while this waits. With ``alone`` (the caller
        knows no other call of its side is in flight) and a small frame, the caller takes
        the reader role *before* sending when it is free: it then reads its own answer
        and needs no mailbox at all (nothing it reads can wait behind its send).

        Raises:
            FrameError, EncodingError: the frame cannot be sent (nothing was sent).
            EnklaveError: the ``make_lost`` error once the channel is dead.
        """
        endpoint = self.endpoint
        if isinstance(frame, bytes) and len(frame) - FRAME_HEADER <= endpoint.max_frame:
            data: bytes | list[bytes] = frame
        else:
            data = endpoint.prepare(frame)
        reader = self._reader
        try:
            if alone and isinstance(data, bytes) and reader.acquire(False):
                try:
                    endpoint.send_prepared(data)
                    return self._lead(key)
                finally:
                    self._step_down()
            self._boxes[key] = deque()
            try:
                endpoint.send_prepared(data)
                return self.wait(key)
            finally:
                self._boxes.pop(key, None)
        except ChannelClosed as exc:  # from a send (reads turn it into the lost error)
            raise self._lost_in_send(exc) from exc

    def kill(self, reason: str) -> None:
        """Mark the channel dead and wake every waiter (idempotent)."""
        with self._lock:
            if self.dead is None:
                self.dead = reason
            self._wake_all()
        self.endpoint.close()

    def wait(self, key: Hashable) -> Message:
        """Block until a message for ``key`` arrives (``key`` must be registered).

        Raises:
            EnklaveError: the ``make_lost`` error once the channel is dead.
        """
        box = self._boxes[key]
        reader = self._reader
        while True:
            if box:
                try:
                    return box.popleft()
                except IndexError:  # another waiter on the same key took it
                    pass
            if self.dead is not None:
                raise self._make_lost(self.dead)
            if reader.acquire(False):
                try:
                    if box:  # posted before we became the reader
                        try:
                            return box.popleft()
                        except IndexError:
                            pass
                    return self._lead(key)
                finally:
                    self._step_down()
            self._sleep(box)

    def _step_down(self) -> None:
        """Leave the reader role; wake one sleeper to take it over, if any sleeps.

        One is enough: a sleeper whose mail was posted has already been woken (posting
        wakes all), so the one woken here finds no mail and becomes the reader.
        """
        self._reader.release()
        if self._waiters:  # read after the release: see _sleep
            with self._lock:
                if self._waiters:
                    self._waiters.popleft().release()

    def _wake_all(self) -> None:
        """Wake every sleeper (call with ``_lock`` held)."""
        waiters = self._waiters
        while waiters:
            waiters.popleft().release()

    def _sleep(self, box: deque[Message]) -> None:
        """Wait until ``box`` has mail, the channel dies or the reader steps down.

        The waiter is queued *before* the conditions are checked (under ``_lock``): a
        reader that steps down after the check finds it queued and wakes it; one that
        stepped down before it fails the check. Posting and killing hold ``_lock``.
        """
        waiter = threading.Lock()
        waiter.acquire()
        with self._lock:
            self._waiters.append(waiter)
            if box or self.dead is not None or not self._reader.locked():
                try:
                    self._waiters.remove(waiter)
                except ValueError:  # already woken: harmless, we do not sleep
                    pass
                return
        try:
            waiter.acquire()
        except BaseException:  # interrupted (KeyboardInterrupt): leave no dead waiter
            with self._lock:
                try:
                    self._waiters.remove(waiter)
                except ValueError:  # it was woken meanwhile: pass the wake-up on
                    if self._waiters:
                        self._waiters.popleft().release()
            raise

    def _lead(self, key: Hashable) -> Message:
        """As the reader: read until a message for ``key``, posting the others."""
        route, recv, depth = self._route, self._recv, self._depth
        while True:
            try:
                body = recv()
            except (ChannelClosed, FrameError) as exc:
                self.kill(str(exc))
                raise self._make_lost(str(exc)) from exc
            msg = read_message(body, depth)
            if msg is None:
                msg = self._read_general(body)
                if msg is None:
                    continue
            owner = msg[1] if route is None else route(msg)
            if owner == key:
                return msg
            self._post(owner, msg)

    def _post(self, owner: Hashable, msg: Message) -> None:
        with self._lock:
            box = self._boxes.get(owner)
            if box is not None:
                box.append(msg)
                self._wake_all()
                return
        self._on_unroutable(msg)

    def _read_general(self, body: bytes | memoryview) -> Message | None:
        """The strict general path: decode, parse; report what is wrong to ``on_bad``."""
        cid = 0
        try:
            decoded = loads(
                body, max_size=self.endpoint.max_frame, max_depth=self.endpoint.max_depth
            )
            if type(decoded) is list and len(decoded) == 5 and type(decoded[2]) is int:
                cid = decoded[2] if 0 <= decoded[2] < 2**63 else 0
            return parse(decoded)
        except (EncodingError, ProtocolError) as exc:
            self._on_bad(exc, cid)
            return None
