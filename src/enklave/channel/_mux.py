"""Leader/follower multiplexing of one channel among several threads.

Threads wait for messages addressed to a *key* (a call id, or ``None`` for "any new
ECALL" on the enclave side). Whichever waiting thread finds nobody reading becomes the
reader: it reads frames, keeps the first one addressed to its own key and posts the
others to their owners' mailboxes. A lone caller therefore reads its own reply with no
thread hand-off, which keeps the single-threaded round trip close to the raw transport.

Malformed frames (bad CBOR, bad protocol shape) are passed to ``on_bad`` and do not
stop the channel; framing errors and EOF are fatal: every waiter gets the error made by
``make_lost``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from .._encoding import loads
from ..errors import EncodingError, EnklaveError, FrameError, ProtocolError
from ._endpoint import ChannelClosed, Endpoint
from ._messages import parse

__all__ = ["Message", "Mux"]

Message = tuple[int, int, Any, Any]


class Mux:
    """Share one :class:`Endpoint` among threads waiting for keyed messages.

    Args:
        endpoint: the channel.
        route: maps a parsed message to the key of the thread that must handle it.
        make_lost: builds the exception raised to every waiter once the channel is dead.
        on_bad: called with the error and the call id (0 if unknown) for a frame that
            is well framed but not a valid message; called from the reading thread.
        on_unroutable: called with a message whose key has no mailbox.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        route: Callable[[Message], Hashable],
        make_lost: Callable[[str], EnklaveError],
        on_bad: Callable[[EnklaveError, int], None],
        on_unroutable: Callable[[Message], None],
    ) -> None:
        self.endpoint = endpoint
        self._route = route
        self._make_lost = make_lost
        self._on_bad = on_bad
        self._on_unroutable = on_unroutable
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._boxes: dict[Hashable, deque[Message]] = {}
        self._reading = False
        self._sleepers = 0
        self.dead: str | None = None

    def register(self, key: Hashable) -> None:
        with self._lock:
            self._boxes[key] = deque()

    def unregister(self, key: Hashable) -> None:
        with self._lock:
            self._boxes.pop(key, None)

    def send(self, message: Any) -> None:
        """Send one message; a dead channel raises the ``make_lost`` error."""
        if self.dead is not None:
            raise self._make_lost(self.dead)
        try:
            self.endpoint.send(message)
        except ChannelClosed as exc:
            self.kill(f"channel closed while sending: {exc}")
            raise self._make_lost(self.dead or "channel closed") from exc

    def kill(self, reason: str) -> None:
        """Mark the channel dead and wake every waiter (idempotent)."""
        with self._lock:
            if self.dead is None:
                self.dead = reason
            self._cond.notify_all()
        self.endpoint.close()

    def wait(self, key: Hashable) -> Message:
        """Block until a message for ``key`` arrives (``key`` must be registered).

        Raises:
            EnklaveError: the ``make_lost`` error once the channel is dead.
        """
        with self._lock:
            box = self._boxes[key]
            while True:
                if box:
                    return box.popleft()
                if self.dead is not None:
                    raise self._make_lost(self.dead)
                if not self._reading:
                    self._reading = True
                    break
                self._sleepers += 1
                try:
                    self._cond.wait()
                finally:
                    self._sleepers -= 1
        try:
            return self._lead(key)
        finally:
            with self._lock:
                self._reading = False
                if self._sleepers:
                    self._cond.notify_all()

    def _lead(self, key: Hashable) -> Message:
        while True:
            msg = self._read_one()
            if msg is None:
                continue
            owner = self._route(msg)
            if owner == key:
                return msg
            with self._lock:
                box = self._boxes.get(owner)
                if box is not None:
                    box.append(msg)
                    if self._sleepers:
                        self._cond.notify_all()
                    continue
            self._on_unroutable(msg)

    def _read_one(self) -> Message | None:
        try:
            body = self.endpoint.recv_body()
        except (ChannelClosed, FrameError) as exc:
            self.kill(str(exc))
            raise self._make_lost(str(exc)) from exc
        cid = 0
        try:
            decoded = loads(body, max_size=self.endpoint.max_frame,
                            max_depth=self.endpoint.max_depth)
            if type(decoded) is list and len(decoded) == 5 and type(decoded[2]) is int:
                cid = decoded[2] if 0 <= decoded[2] < 2**63 else 0
            return parse(decoded)
        except (EncodingError, ProtocolError) as exc:
            self._on_bad(exc, cid)
            return None
