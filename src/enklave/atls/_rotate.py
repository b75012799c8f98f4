"""Rotating attested TLS credentials, issued ahead of time in a background thread.

Key generation takes a few milliseconds for EC keys and up to a second or so for RSA-3072,
and the evidence function may take as long again; a server must not do that inside a TLS
handshake on its event loop. So the next credentials are issued in a background thread
once the current ones reach ``prepare_at`` (80%) of the rotation interval, and the
handshake that finds the current ones due swaps the prepared ones in. A handshake waits
only when nothing valid is available: the current ones are due and no prepared ones are
ready (then it waits for the issue already running, or issues synchronously).
"""

from __future__ import annotations

import datetime as _dt
import logging
import ssl
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ..errors import AtlsError, ConfigError, EnklaveError
from ._issue import DEFAULT_LIFETIME, Credentials, issue_credentials

__all__ = ["RotatingCredentials"]

log = logging.getLogger("enklave.atls")


def _wake(method: weakref.WeakMethod[Callable[[], None]]) -> None:
    """Call the method if its object still exists (a timer never keeps one alive)."""
    bound = method()
    if bound is not None:
        bound()


class RotatingCredentials:
    """Credentials re-issued (new key, fresh evidence) every ``interval`` seconds.

    Connections already established keep the credentials they started with; each new
    connection to a :meth:`server_context` gets the current ones. The next credentials are
    issued ahead of time in a background thread, starting when the current ones reach
    ``prepare_at`` of the interval (checked on every :meth:`current` call, i.e. every
    handshake, and, with the default clock, by a timer for idle servers); when the
    interval is up, the prepared ones are swapped in without waiting. Credentials older
    than ``interval`` are never served: if none are prepared by then (the background
    issue is still running or failed), :meth:`current` waits for it or issues
    synchronously, as a handshake on the server's event loop then does too.
    """

    def __init__(self, *, interval: float, clock: Callable[[], float] = time.monotonic,
                 prepare_at: float = 0.8, **issue_kwargs: Any) -> None:
        """Issue the first credentials now.

        Args:
            interval: seconds after which credentials are replaced; less than the
                certificates' ``lifetime``, so none is served after it expired.
            clock: monotonic seconds (injectable for tests).
            prepare_at: fraction of ``interval`` (0 to 1) after which the next
                credentials are issued in the background.
            **issue_kwargs: passed to :func:`issue_credentials` on every issue (not
                ``now``: every issue uses the current time).

        Raises:
            ConfigError: ``interval`` is not positive or not below ``lifetime``,
                ``prepare_at`` is outside [0, 1], ``now`` was given, or the issue
                arguments are invalid.
        """
        if not interval > 0:
            raise ConfigError("rotation interval must be a positive number of seconds")
        if not 0 <= prepare_at <= 1:
            raise ConfigError(f"prepare_at={prepare_at!r} must be a fraction of the interval "
                              "between 0 and 1, e.g. 0.8")
        if "now" in issue_kwargs:
            raise ConfigError("RotatingCredentials issues at the current time: leave out now=")
        lifetime = issue_kwargs.get("lifetime", DEFAULT_LIFETIME)
        if isinstance(lifetime, _dt.timedelta) and interval >= lifetime.total_seconds():
            raise ConfigError(f"rotation interval {interval}s is not below the certificate "
                              f"lifetime ({lifetime.total_seconds():g}s): certificates would "
                              "expire first; use a shorter interval or a longer lifetime")
        self.interval = float(interval)
        self.prepare_at = float(prepare_at)
        self._clock = clock
        self._issue_kwargs = dict(issue_kwargs)
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        #: (clock when the issue started, its result) of the background issue, if any
        #: (a failed one stays here until the current ones are due: no retry storm)
        self._pending: tuple[float, Future[Credentials]] | None = None
        #: how many credentials were put into service (the first issue included)
        self.issued = 0
        #: how many credentials were issued ahead of time in the background
        self.prepared = 0
        started = clock()
        self._install(issue_credentials(**self._issue_kwargs), started)

    def current(self) -> Credentials:
        """The current credentials: the prepared ones swapped in once ``interval`` is up.

        Starts the background issue when the current ones reach ``prepare_at`` of the
        interval. Waits only when the current ones are due and none are prepared.

        Raises:
            AtlsError, ConfigError, NotInEnclaveError: as :func:`issue_credentials`, when
                the credentials are due and must be issued synchronously.
        """
        with self._lock:
            now = self._clock()
            if now - self._issued_at < self.interval:
                self._maybe_prepare(now)
                return self._current
            pending, self._pending = self._pending, None
            if pending is not None:
                started, future = pending
                try:  # usually done long ago; otherwise wait for it rather than start anew
                    creds = future.result()
                except EnklaveError as exc:
                    log.warning("background issue of attested TLS credentials failed (%s); "
                                "issuing now", exc)
                else:
                    if self._clock() - started < self.interval:
                        self._install(creds, started)
                        return self._current
            started = self._clock()
            self._install(issue_credentials(**self._issue_kwargs), started)
            return self._current

    def _install(self, creds: Credentials, started: float) -> None:
        """Put ``creds`` into service (lock held, or in ``__init__``)."""
        self._current, self._issued_at = creds, started
        self.issued += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._clock is time.monotonic:  # wake an idle server in time to prepare
            delay = max(0.0, started + self.interval * self.prepare_at - time.monotonic())
            self._timer = threading.Timer(delay, _wake, (weakref.WeakMethod(self._wake),))
            self._timer.daemon = True
            self._timer.start()

    def _wake(self) -> None:
        """The timer (default clock only): prepare even if no handshake comes."""
        with self._lock:
            self._maybe_prepare(self._clock())

    def _maybe_prepare(self, now: float) -> None:
        """Start the background issue if it is time and none is running (lock held)."""
        if self._pending is not None or now - self._issued_at < self.interval * self.prepare_at:
            return
        future: Future[Credentials] = Future()
        self._pending = (now, future)
        threading.Thread(target=self._prepare, args=(future,), daemon=True,
                         name="enklave-atls-rotate").start()

    def _prepare(self, future: Future[Credentials]) -> None:
        """The background thread: issue, and build the server context before it is needed."""
        try:
            creds = issue_credentials(**self._issue_kwargs)
            creds.server_context()
        except Exception as exc:
            log.error("cannot issue the next attested TLS credentials in the background: %s; "
                      "the handshake that finds the current ones due will retry", exc)
            future.set_exception(exc if isinstance(exc, EnklaveError) else AtlsError(
                f"issuing the next credentials failed: {exc!r}", code="issue"))
            return  # never takes self._lock: current() may hold it while waiting for this
        self.prepared += 1  # only this thread writes it, and one runs at a time
        future.set_result(creds)

    def server_context(self) -> ssl.SSLContext:
        """A server context that presents the current credentials to each new connection.

        Its SNI callback (run by OpenSSL for every ClientHello, with or without SNI)
        switches the connection to the current credentials' context (see
        :meth:`current`), failing the handshake when none can be issued.
        """
        ctx = self.current()._new_context(ssl.PROTOCOL_TLS_SERVER)

        def _switch(sslobj: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: Any) -> int | None:
            try:
                sslobj.context = self.current().server_context()
            except EnklaveError as exc:  # fail closed: no handshake with stale or no credentials
                log.error("cannot rotate attested TLS credentials: %s", exc)
                return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
            return None

        ctx.sni_callback = _switch
        return ctx
