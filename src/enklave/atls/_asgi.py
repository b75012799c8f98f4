"""Serve an ASGI 3 application over attested TLS from inside the enclave.

The HTTP/1.1 layer is :mod:`._http11` (no web framework, no third-party HTTP library in
the measured runtime). Each request gets an ``http`` scope with ``scheme="https"`` and
``scope["extensions"]["enklave.peer"]`` = the client's
:class:`~enklave.atls.AttestedPeer` under mutual aTLS (None otherwise). The ASGI
``lifespan`` protocol runs on :func:`start_asgi_server` when the app supports it.

Malformed or unsupported requests are answered with 4xx/5xx and the connection is
closed; an app exception becomes an opaque 500 (the detail goes to the local log).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from ..errors import AtlsError, EnklaveError
from ._http11 import (
    LAST_CHUNK,
    HttpError,
    Request,
    RequestReader,
    encode_chunk,
    error_response,
    response_head,
)
from ._server import BackgroundServer, Handler, ServerStats, serve

if TYPE_CHECKING:
    from ._verify import AttestedPeer

__all__ = ["ASGIApp", "serve_asgi", "start_asgi_server"]

log = logging.getLogger("enklave.atls")

Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]
#: Seconds a client may take to send the next request head.
HEAD_TIMEOUT: Final = 60.0
#: Seconds a client may pause while sending a request body.
BODY_TIMEOUT: Final = 60.0
LIFESPAN_TIMEOUT: Final = 30.0
_NO_BODY_STATUSES: Final = frozenset({204, 304})


def _app_error(what: str) -> HttpError:
    return HttpError(f"ASGI protocol error in the application: {what}", status=500)


class _Exchange:
    """One request and its response: the ASGI ``receive``/``send`` pair."""

    def __init__(self, req: Request, body: RequestReader, writer: asyncio.StreamWriter) -> None:
        self.req, self.body, self.writer = req, body, writer
        self.remaining = req.content_length
        self.request_done = False
        self.keep_alive = req.keep_alive
        self.pending: tuple[int, list[tuple[bytes, bytes]]] | None = None
        self.started = self.finished = self.chunked = self.bodyless = self.wrote = False
        self.continued = False  # "100 Continue" was sent
        self.declared: int | None = None
        self.sent = 0
        self.response_done = asyncio.Event()

    async def receive(self) -> Message:
        if self.request_done:
            await self.response_done.wait()
            return {"type": "http.disconnect"}
        if self.req.expect_continue and not self.continued and self.remaining > 0:
            self.continued = True
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            chunk = await asyncio.wait_for(self.body.read_body(self.remaining), BODY_TIMEOUT)
        except (HttpError, TimeoutError):
            self.keep_alive = False
            self.request_done = True
            return {"type": "http.disconnect"}
        self.remaining -= len(chunk)
        self.request_done = self.remaining == 0
        return {"type": "http.request", "body": chunk, "more_body": not self.request_done}

    async def send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "http.response.start":
            if self.started:
                raise _app_error("http.response.start sent twice")
            status = message.get("status")
            if type(status) is not int or not 200 <= status <= 599:
                # 1xx would need a final response after it, which ASGI cannot express
                raise _app_error(f"response status {status!r} is not a final status (200-599)")
            self.started = True
            self.pending = (status, _headers(message.get("headers", ())))
        elif kind == "http.response.body":
            if not self.started or self.finished:
                raise _app_error("http.response.body outside a response")
            body, more = bytes(message.get("body", b"")), bool(message.get("more_body", False))
            head = self._head(len(body), more) if self.pending is not None else b""
            self.writer.write(head + self._body(body, more))  # one TLS record when small
            self.wrote = True
            await self.writer.drain()
        else:
            raise _app_error(f"unsupported message type {kind!r}")

    def _head(self, first_len: int, more: bool) -> bytes:
        assert self.pending is not None
        status, headers = self.pending
        if any(n == b"connection" and b"close" in v.lower() for n, v in headers):
            self.keep_alive = False
        headers = [(n, v) for n, v in headers if n not in (b"connection", b"transfer-encoding")]
        lengths = [v for n, v in headers if n == b"content-length"]
        self.bodyless = self.req.method == "HEAD" or status in _NO_BODY_STATUSES
        if lengths:
            if len(lengths) != 1 or not lengths[0].isdigit():
                raise _app_error("invalid content-length header")
            self.declared = int(lengths[0])
        elif not more:
            if status not in _NO_BODY_STATUSES:
                headers.append((b"content-length", str(first_len).encode()))
            self.declared = first_len
        elif self.bodyless:
            pass  # 204/304/HEAD: no body follows the head, so no Transfer-Encoding either
        elif self.req.http_version == "1.1":
            headers.append((b"transfer-encoding", b"chunked"))
            self.chunked = True
        else:
            self.keep_alive = False  # HTTP/1.0: the body ends when the connection does
        if not self.keep_alive:
            headers.append((b"connection", b"close"))
        elif self.req.http_version == "1.0":
            headers.append((b"connection", b"keep-alive"))
        head = response_head(status, headers)
        self.pending = None
        return head

    def _body(self, body: bytes, more: bool) -> bytes:
        self.sent += len(body)
        if self.declared is not None and self.sent > self.declared and not self.bodyless:
            self.keep_alive = False
            raise _app_error("more body than its content-length")
        out = b"" if self.bodyless else encode_chunk(body) if self.chunked else body
        if not more:
            if self.chunked:
                out += LAST_CHUNK
            if self.declared is not None and self.sent < self.declared and not self.bodyless:
                self.keep_alive = False  # the response is short: the connection cannot go on
            self.finished = True
            self.response_done.set()
        return out


def _headers(raw: Any) -> list[tuple[bytes, bytes]]:
    try:
        return [(bytes(n).lower(), bytes(v)) for n, v in raw]
    except (TypeError, ValueError) as exc:
        raise _app_error("response headers must be (bytes, bytes) pairs") from exc


def _scope(
    req: Request, writer: asyncio.StreamWriter, peer: AttestedPeer | None, state: dict[str, Any]
) -> dict[str, Any]:
    client, server = writer.get_extra_info("peername"), writer.get_extra_info("sockname")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": req.http_version,
        "method": req.method,
        "scheme": "https",
        "path": req.path,
        "raw_path": req.raw_path,
        "query_string": req.query_string,
        "root_path": "",
        "headers": [[n, v] for n, v in req.headers],
        "client": tuple(client[:2]) if client else None,
        "server": tuple(server[:2]) if server else None,
        "state": dict(state),
        "extensions": {"enklave.peer": peer},
    }


async def _exchange(app: ASGIApp, ex: _Exchange, scope: dict[str, Any]) -> bool:
    """Run the app for one request; True when the connection may serve another."""
    try:
        await app(scope, ex.receive, ex.send)
    except Exception as exc:
        log.warning("ASGI app failed on %s %s: %r", ex.req.method, ex.req.path, exc)
        if not ex.wrote:
            ex.writer.write(error_response(500, "the application failed"))
        return False
    finally:
        ex.response_done.set()
    if not ex.finished:
        log.warning("ASGI app returned without completing its response")
        if not ex.wrote:
            ex.writer.write(error_response(500, "the application sent no response"))
        return False
    if ex.remaining > 0 and ex.req.expect_continue and not ex.continued:
        return False  # the client still waits to send its body: close instead of reading it
    while ex.remaining > 0:  # discard a body the app did not read
        try:
            chunk = await asyncio.wait_for(ex.body.read_body(ex.remaining), BODY_TIMEOUT)
        except (HttpError, TimeoutError):
            return False
        ex.remaining -= len(chunk)
    return ex.keep_alive


def asgi_handler(app: ASGIApp, stats: ServerStats, state: dict[str, Any] | None = None) -> Handler:
    """The connection handler serving ``app`` over HTTP/1.1 (keep-alive, pipelining)."""
    app_state = state if state is not None else {}

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: AttestedPeer | None
    ) -> None:
        body = RequestReader(reader)
        while True:
            try:
                req = await asyncio.wait_for(body.read_head(), HEAD_TIMEOUT)
            except HttpError as exc:
                writer.write(error_response(exc.status, str(exc)))
                await writer.drain()
                return
            except TimeoutError:
                return
            if req is None:
                return
            stats.requests += 1
            ex = _Exchange(req, body, writer)
            keep_alive = await _exchange(app, ex, _scope(req, writer, peer, app_state))
            await writer.drain()
            if not keep_alive:
                return

    return handle


async def serve_asgi(
    app: ASGIApp, *, stats: ServerStats | None = None, state: dict[str, Any] | None = None,
    **serve_kwargs: Any,
) -> asyncio.AbstractServer:  # fmt: skip
    """:func:`serve` an ASGI 3 app (HTTP/1.1, ``http`` scopes; no lifespan here).

    Args:
        app: the ASGI application.
        stats: counters to update; ``requests`` counts parsed requests.
        state: the lifespan state copied into every request scope.
        **serve_kwargs: ``credentials``, ``host``, ``port``, ``peer_verifier`` ... as
            :func:`serve`.

    Raises:
        AtlsError: as :func:`serve`.
    """
    stats = stats if stats is not None else ServerStats()
    return await serve(asgi_handler(app, stats, state), stats=stats, **serve_kwargs)


class _Lifespan:
    """The ASGI lifespan protocol: startup before serving, shutdown after."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                 "state": self.state}  # fmt: skip
        try:
            await self.app(scope, self.inbox.get, self.outbox.put)
        except Exception as exc:  # apps without lifespan support raise on the scope
            log.debug("ASGI lifespan not supported by the app: %r", exc)

    async def _step(self, send: str) -> Message | None:
        """Send an event; the app's answer, or None when the app does not do lifespan."""
        assert self.task is not None
        await self.inbox.put({"type": send})
        answer = asyncio.ensure_future(self.outbox.get())
        done, _ = await asyncio.wait({answer, self.task}, timeout=LIFESPAN_TIMEOUT,
                                     return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        if answer in done:
            return answer.result()
        answer.cancel()
        if not done:
            raise AtlsError(f"the ASGI app did not answer {send} in time", code="lifespan")
        return None

    async def startup(self) -> None:
        """Run the app's startup.

        Raises:
            AtlsError: the app reported ``lifespan.startup.failed`` or timed out.
        """
        self.task = asyncio.get_running_loop().create_task(self._run())
        msg = await self._step("lifespan.startup")
        if msg is not None and msg.get("type") == "lifespan.startup.failed":
            raise AtlsError(f"ASGI app startup failed: {msg.get('message', '')}", code="lifespan")
        if msg is None:
            self.task = None

    async def shutdown(self) -> None:
        """Run the app's shutdown (if it supports lifespan); failures are only logged."""
        if self.task is None or self.task.done():
            return
        try:
            await self._step("lifespan.shutdown")
        except EnklaveError as exc:
            log.warning("%s", exc)


def start_asgi_server(
    app: ASGIApp, *, lifespan: bool = True, **serve_kwargs: Any
) -> BackgroundServer:
    """:func:`serve_asgi` on a background thread (for ECALLs); returns once listening.

    With ``lifespan`` (default) the app's lifespan startup runs before the listener
    opens, and its shutdown when the server stops; apps that do not support lifespan
    are served anyway.

    Example (in an ECALL)::

        server = start_asgi_server(app, credentials=issue_credentials())
        return server.port

    Raises:
        AtlsError: as :func:`serve`, or the app's startup failed.
    """
    life = _Lifespan(app)

    async def _start(stats: ServerStats) -> asyncio.AbstractServer:
        if lifespan:
            await life.startup()
        return await serve_asgi(app, stats=stats, state=life.state, **serve_kwargs)

    return BackgroundServer(_start, cleanup=life.shutdown)
