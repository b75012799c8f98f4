"""The enclave's attested TLS server: asyncio, TLS ending inside the enclave.

Server-only aTLS (no ``peer_verifier``) uses the stdlib :mod:`ssl` module: each accepted
TCP connection is upgraded with the credentials' context and handed to the handler with
``peer=None``; the client attests the server from its certificate.

Mutual aTLS (a ``peer_verifier``) needs to accept the client's self-signed certificate
at the TLS layer, which stdlib :mod:`ssl` cannot, so the handshake runs in pyOpenSSL over
memory BIOs driven by the event loop (see :mod:`._tlspipe`). A client without a
certificate fails the handshake; otherwise ``peer_verifier.verify(certificate)`` runs in
a worker thread, and only when it passes does the handler run, with the
:class:`~enklave.atls.AttestedPeer`. A refused client never gets a byte read for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from ..errors import AtlsError, EnklaveError
from ._issue import Credentials
from ._rotate import RotatingCredentials
from ._tlspipe import CountingReader, Refused, mutual_handshake

if TYPE_CHECKING:
    from ._verify import AttestedPeer, PeerVerifier

__all__ = ["BackgroundServer", "Handler", "ServerStats", "serve", "start_server"]

log = logging.getLogger("enklave.atls")

Handler: TypeAlias = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter, "AttestedPeer | None"], Awaitable[None]
]
HANDSHAKE_TIMEOUT: Final = 30.0
#: The connection bookkeeping of each listener made by :func:`serve`.
_CONNECTIONS: weakref.WeakKeyDictionary[asyncio.AbstractServer, _Connections] = (
    weakref.WeakKeyDictionary()
)
CLOSE_TIMEOUT: Final = 5.0
START_TIMEOUT: Final = 60.0


@dataclass
class ServerStats:
    """Counters of one server, updated on its event loop (read them from anywhere).

    Attributes:
        connections: TCP connections accepted.
        handshakes: TLS handshakes completed.
        refused: mutual aTLS clients refused (no certificate, or attestation failed).
        bytes_received: application bytes read from clients after the TLS handshake
            (and, in mutual aTLS, after the client was attested).
        requests: HTTP requests parsed by the ASGI server (0 for plain handlers).
    """

    connections: int = 0
    handshakes: int = 0
    refused: int = 0
    bytes_received: int = 0
    requests: int = 0

    def to_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return asdict(self)


class _Connections:
    """Accepts connections: TLS (and attestation), then the handler."""

    def __init__(
        self,
        handler: Handler,
        credentials: Credentials | RotatingCredentials,
        peer_verifier: PeerVerifier | None,
        stats: ServerStats,
        handshake_timeout: float,
    ) -> None:
        self.handler = handler
        self.credentials = credentials
        self.verifier = peer_verifier
        self.stats = stats
        self.timeout = handshake_timeout
        # built once: a rotating context switches credentials per connection itself
        self.context = credentials.server_context() if peer_verifier is None else None
        self.tasks: set[asyncio.Task[Any]] = set()

    def protocol(self) -> asyncio.StreamReaderProtocol:
        loop = asyncio.get_running_loop()
        reader = CountingReader(self.stats, loop=loop)
        return asyncio.StreamReaderProtocol(reader, self.on_connect, loop=loop)

    async def on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            # the server is stopping; not re-raised, as Python 3.11's StreamReaderProtocol
            # would log a cancelled connection task as an error
            writer.transport.abort()
        finally:
            if task is not None:
                self.tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer: AttestedPeer | None = None
        try:
            if self.context is not None:
                await writer.start_tls(self.context, ssl_handshake_timeout=self.timeout)
                self.stats.handshakes += 1
            elif self.verifier is not None:
                reader, writer, peer = await self._mutual(reader, writer, self.verifier)
        except Refused as exc:
            self.stats.refused += 1
            log.info("refused a mutual aTLS client (%s): %s", exc.code, exc)
            writer.transport.abort()
            return
        except (OSError, ssl.SSLError, TimeoutError, EnklaveError) as exc:
            log.debug("TLS handshake failed: %s", exc)
            writer.transport.abort()
            return
        except Exception as exc:  # never an unhandled exception in the connection task
            log.warning("TLS handshake failed unexpectedly: %r", exc)
            writer.transport.abort()
            return
        assert isinstance(reader, CountingReader)
        reader.counting = True
        try:
            await self.handler(reader, writer, peer)
        except asyncio.CancelledError:
            writer.transport.abort()  # the server is stopping: no graceful close
            raise
        except (OSError, EnklaveError) as exc:
            log.debug("connection ended: %s", exc)
        except Exception:  # a bug in the handler must not take the server down
            log.exception("the aTLS connection handler raised")
        await _close(writer)

    async def _mutual(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, verifier: PeerVerifier
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, AttestedPeer]:
        """Handshake and attest a client; anything unexpected is a refusal (fail closed).

        Raises:
            Refused: no certificate, attestation failed, or an unexpected error (a
                certificate some library cannot handle, a bug): counted in ``refused``.
            AtlsError, OSError, TimeoutError: the handshake itself failed.
        """
        try:
            return await self._attest_client(reader, writer, verifier)
        except (OSError, TimeoutError, EnklaveError):
            raise
        except Exception as exc:
            log.warning("mutual aTLS: unexpected failure, refusing the client: %r", exc)
            raise Refused(f"unexpected failure while attesting the client: {exc!r}",
                          code="internal") from exc

    async def _attest_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, verifier: PeerVerifier
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, AttestedPeer]:
        creds = self.credentials
        current = creds.current() if isinstance(creds, RotatingCredentials) else creds
        pipe = await asyncio.wait_for(
            mutual_handshake(current._pyopenssl_context(), reader, writer), self.timeout
        )
        self.stats.handshakes += 1
        loop = asyncio.get_running_loop()
        try:
            peer = await loop.run_in_executor(None, verifier.verify, pipe.peer_certificate)
        except EnklaveError as exc:
            raise Refused(f"client attestation failed: {exc}", code=exc.code) from exc
        except Exception as exc:  # fail closed on any verifier bug
            raise Refused(f"client attestation failed: {exc!r}", code="verifier") from exc
        app_reader, app_writer = pipe.start(self.stats, loop)
        return app_reader, app_writer, peer


async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close gracefully (TLS close_notify), but abort a peer that does not answer in time
    and at once when the server is stopping (the task is cancelled)."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
    except asyncio.CancelledError:
        writer.transport.abort()
        raise
    except Exception:  # timeout or a connection error: nothing more to say to this peer
        writer.transport.abort()


async def serve(
    handler: Handler,
    *,
    credentials: Credentials | RotatingCredentials,
    host: str = "127.0.0.1",
    port: int = 0,
    peer_verifier: PeerVerifier | None = None,
    stats: ServerStats | None = None,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
) -> asyncio.AbstractServer:
    """Listen for attested TLS connections and run ``handler(reader, writer, peer)`` for each.

    Without ``peer_verifier`` any client may connect (``peer`` is None); with one, the
    client must present a certificate that ``peer_verifier.verify`` accepts before the
    handler runs (``peer`` is the :class:`AttestedPeer`), otherwise the connection is
    closed and counted in ``stats.refused``. Handler exceptions are logged and end only
    that connection; the writer is closed when the handler returns.

    Args:
        handler: the coroutine serving one connection.
        credentials: the server's certificate and key (rotating ones switch per connection).
        host, port: where to listen (port 0: any free port).
        peer_verifier: require and attest a client certificate (mutual aTLS).
        stats: counters to update (a fresh :class:`ServerStats` by default).
        handshake_timeout: seconds a client gets to finish the TLS handshake.

    Raises:
        AtlsError: cannot listen on ``host:port`` (code ``"listen"``) or build the context.
    """
    conns = _Connections(
        handler, credentials, peer_verifier, stats or ServerStats(), handshake_timeout
    )
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(conns.protocol, host, port)
    except OSError as exc:
        raise AtlsError(f"cannot listen on {host}:{port}: {exc.strerror}", code="listen") from exc
    _CONNECTIONS[server] = conns
    return server


class BackgroundServer:
    """A server on its own event loop in a daemon thread, for synchronous code (ECALLs).

    Attributes:
        host: the listening address.
        port: the listening port (the one picked when 0 was asked for).
        stats: the server's :class:`ServerStats`.
    """

    def __init__(
        self,
        start: Callable[[ServerStats], Coroutine[Any, Any, asyncio.AbstractServer]],
        *,
        cleanup: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        """Start a loop thread and run ``start(stats)`` on it to open the listener.

        Raises:
            AtlsError, EnklaveError: as ``start`` raises; the thread is stopped then.
        """
        self.stats = ServerStats()
        self._cleanup = cleanup
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="enklave-atls-server")  # fmt: skip
        self._thread.start()
        self._stopped = False
        try:
            fut = asyncio.run_coroutine_threadsafe(start(self.stats), self._loop)
            self._server = fut.result(START_TIMEOUT)
        except BaseException:
            self._halt()
            raise
        sockets = self._server.sockets if isinstance(self._server, asyncio.Server) else ()
        self.host: str = sockets[0].getsockname()[0] if sockets else ""
        self.port: int = sockets[0].getsockname()[1] if sockets else 0

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop listening, end open connections, and stop the thread (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        try:
            fut.result(START_TIMEOUT)
        finally:
            self._halt()

    async def _shutdown(self) -> None:
        self._server.close()
        conns = _CONNECTIONS.get(self._server)
        await _cancel(list(conns.tasks) if conns is not None else [])
        if self._cleanup is not None:
            await self._cleanup()
        await _cancel([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])

    def _halt(self) -> None:
        async def _executor_down() -> None:
            await self._loop.shutdown_default_executor()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_executor_down(), self._loop).result(CLOSE_TIMEOUT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CLOSE_TIMEOUT)
        if not self._thread.is_alive():
            self._loop.close()


def start_server(handler: Handler, **serve_kwargs: Any) -> BackgroundServer:
    """:func:`serve` on a background thread; returns once the server listens.

    Example (in an ECALL)::

        server = start_server(echo, credentials=issue_credentials())
        return server.port

    Raises:
        AtlsError: as :func:`serve`.
    """

    async def _start(stats: ServerStats) -> asyncio.AbstractServer:
        return await serve(handler, stats=stats, **serve_kwargs)

    return BackgroundServer(_start)
