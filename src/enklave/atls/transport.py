"""httpx transports that attest the server of every new connection (host side only).

Example::

    import httpx
    from enklave.atls import PeerVerifier
    from enklave.atls.transport import AttestedTransport

    peers = PeerVerifier(verifier=verifier, policy=policy)
    with httpx.Client(transport=AttestedTransport(verifier=peers)) as client:
        response = client.get("https://enclave.example:8443/health")
        response.extensions["enklave.peer"].enclave.mrenclave

How it fails closed: the transports run httpcore's connection pool over a network backend
whose ``start_tls`` completes the TLS handshake and then verifies the server's certificate
*before* returning the stream, so httpcore has no stream to write a request to until the
attestation passed. The plain TCP stream under it refuses reads and writes, and ``http://``
URLs are refused outright. A kept-alive connection is reused without attesting again (it
is the same TLS session with the same, already verified, key); a new connection to a
server whose certificate was seen before is cheap through the verifier's fingerprint cache.

What reaches the caller of ``client.get(...)`` when a server is refused: the enklave error
itself, unwrapped (:class:`~enklave.errors.CertificateError`,
:class:`~enklave.errors.VerificationError` or :class:`~enklave.errors.PolicyError`), so
``except PolicyError`` works. Network and TLS failures are httpx's own exceptions
(``httpx.ConnectError``, ``httpx.ReadTimeout`` ...), as with ``httpx.HTTPTransport``.
HTTP/1.1 only; proxies are not supported (a proxy would see only ciphertext anyway).

This module imports httpx and is never imported inside an enclave.
"""

from __future__ import annotations

import contextlib
import ssl
import typing
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any, NoReturn

import anyio.to_thread
import httpcore
import httpx

from .. import errors
from . import _client

if typing.TYPE_CHECKING:
    from ._issue import Credentials
    from ._verify import AttestedPeer, PeerVerifier

__all__ = ["PEER_EXTENSION", "AsyncAttestedTransport", "AttestedTransport"]

PEER_EXTENSION = "enklave.peer"
"""The ``response.extensions`` key holding the connection's :class:`AttestedPeer`."""

_DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20,
                               keepalive_expiry=5.0)

_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.ProxyError, httpx.ProxyError),
)


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    """httpcore exceptions become httpx ones (most specific first); enklave errors pass,
    with the cause httpcore's pool dropped (``raise exc from None``) put back."""
    try:
        yield
    except errors.EnklaveError as exc:
        cause = getattr(exc, "_enklave_cause", None)
        if exc.__cause__ is None and isinstance(cause, BaseException):
            exc.__cause__ = cause
        raise
    except Exception as exc:
        for source, target in _EXCEPTIONS:
            if isinstance(exc, source):
                raise target(str(exc)) from exc
        raise


def _remember_cause(exc: BaseException) -> None:
    if isinstance(exc, errors.EnklaveError) and exc.__cause__ is not None:
        exc._enklave_cause = exc.__cause__  # type: ignore[attr-defined]


def _core_request(request: httpx.Request) -> httpcore.Request:
    if request.url.scheme != "https":
        raise errors.AtlsError(
            f"refusing {request.url.scheme}:// ({request.url.host}): an attested transport "
            "only speaks https://, where the server's certificate carries its evidence; "
            "use an https:// URL",
            code="scheme",
        )
    return httpcore.Request(
        method=request.method,
        url=httpcore.URL(
            scheme=request.url.raw_scheme,
            host=request.url.raw_host,
            port=request.url.port,
            target=request.url.raw_path,
        ),
        headers=request.headers.raw,
        content=request.stream,
        extensions=request.extensions,
    )


def _peer_of(response: httpcore.Response) -> AttestedPeer:
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info(PEER_EXTENSION) if stream is not None else None
    if peer is None:  # cannot happen: every stream comes out of an attesting start_tls
        raise errors.AtlsError("response on a connection with no attested peer",
                               code="not_attested")
    return peer  # type: ignore[no-any-return]


def _refuse_plain() -> NoReturn:
    raise errors.AtlsError("refusing I/O on a connection that has not been attested",
                    code="not_attested")


# --------------------------------------------------------------------- sync


class _TcpStream(httpcore.NetworkStream):
    """A connected TCP stream: no application I/O until start_tls attested the peer."""

    def __init__(self, inner: httpcore.NetworkStream, verifier: PeerVerifier) -> None:
        self._inner = inner
        self._verifier = verifier

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        _refuse_plain()

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _refuse_plain()

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        tls = self._inner.start_tls(ssl_context, server_hostname, timeout)
        try:
            der = _client.peer_certificate_der(tls.get_extra_info("ssl_object"))
            peer = self._verifier.verify(der)
        except BaseException as exc:
            tls.close()
            _remember_cause(exc)
            raise
        return _AttestedStream(tls, peer)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _AttestedStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, peer: AttestedPeer) -> None:
        self._inner = inner
        self.peer = peer

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise errors.AtlsError("TLS inside attested TLS is not supported", code="scheme")

    def get_extra_info(self, info: str) -> Any:
        return self.peer if info == PEER_EXTENSION else self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, verifier: PeerVerifier) -> None:
        self._inner = httpcore.SyncBackend()
        self._verifier = verifier

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _TcpStream(stream, self._verifier)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise errors.AtlsError("unix sockets are not supported by the attested transport",
                        code="scheme")


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _mapped():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class AttestedTransport(httpx.BaseTransport):
    """An httpx transport that attests the server of every new connection.

    Args:
        verifier: checks each server certificate (evidence, binding, quote, policy);
            its fingerprint cache makes reconnecting to a known certificate cheap.
        credentials: present this attested certificate (mutual aTLS, from an enclave).
        limits: connection pool limits (httpx defaults).
        local_address: bind outgoing connections to this address.
        retries: connection retries on connect errors (not on refused attestation).

    Raises (from ``client.get`` and friends):
        CertificateError, VerificationError, PolicyError: the server was refused; no
            request byte was sent.
        AtlsError: a non-https URL (``code="scheme"``).
        httpx.HTTPError: network, TLS and HTTP protocol failures.
    """

    def __init__(self, *, verifier: PeerVerifier, credentials: Credentials | None = None,
                 limits: httpx.Limits = _DEFAULT_LIMITS, local_address: str | None = None,
                 retries: int = 0) -> None:
        self.verifier = verifier
        self._pool = httpcore.ConnectionPool(
            ssl_context=_client.client_context(credentials=credentials),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            retries=retries,
            local_address=local_address,
            network_backend=_Backend(verifier),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` over an attested connection (a new one is attested first)."""
        core = _core_request(request)
        with _mapped():
            resp = self._pool.handle_request(core)
        try:
            peer = _peer_of(resp)
        except errors.AtlsError:
            resp.close()
            raise
        assert isinstance(resp.stream, Iterable)
        return httpx.Response(
            status_code=resp.status,
            headers=resp.headers,
            stream=_ResponseStream(resp.stream),
            extensions={**resp.extensions, PEER_EXTENSION: peer},
        )

    def close(self) -> None:
        """Close every pooled connection."""
        with _mapped():
            self._pool.close()


# --------------------------------------------------------------------- async


class _AsyncTcpStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, verifier: PeerVerifier) -> None:
        self._inner = inner
        self._verifier = verifier

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        _refuse_plain()

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _refuse_plain()

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        tls = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        try:
            der = _client.peer_certificate_der(tls.get_extra_info("ssl_object"))
            # A cache miss may verify a quote or fetch collateral: keep the loop free.
            peer = await anyio.to_thread.run_sync(self._verifier.verify, der)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await tls.aclose()
            _remember_cause(exc)
            raise
        return _AsyncAttestedStream(tls, peer)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _AsyncAttestedStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, peer: AttestedPeer) -> None:
        self._inner = inner
        self.peer = peer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise errors.AtlsError("TLS inside attested TLS is not supported", code="scheme")

    def get_extra_info(self, info: str) -> Any:
        return self.peer if info == PEER_EXTENSION else self._inner.get_extra_info(info)


class _AsyncBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, verifier: PeerVerifier) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._verifier = verifier

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address,
                                               socket_options)
        return _AsyncTcpStream(stream, self._verifier)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise errors.AtlsError("unix sockets are not supported by the attested transport",
                        code="scheme")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _AsyncResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


class AsyncAttestedTransport(httpx.AsyncBaseTransport):
    """The asyncio/trio (anyio) twin of :class:`AttestedTransport`; same arguments and
    errors. Verification of a certificate not in the cache runs in a worker thread, so
    ``verifier`` must tolerate calls from several threads."""

    def __init__(self, *, verifier: PeerVerifier, credentials: Credentials | None = None,
                 limits: httpx.Limits = _DEFAULT_LIMITS, local_address: str | None = None,
                 retries: int = 0) -> None:
        self.verifier = verifier
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_client.client_context(credentials=credentials),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            retries=retries,
            local_address=local_address,
            network_backend=_AsyncBackend(verifier),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` over an attested connection (a new one is attested first)."""
        core = _core_request(request)
        with _mapped():
            resp = await self._pool.handle_async_request(core)
        try:
            peer = _peer_of(resp)
        except errors.AtlsError:
            await resp.aclose()
            raise
        assert isinstance(resp.stream, AsyncIterable)
        return httpx.Response(
            status_code=resp.status,
            headers=resp.headers,
            stream=_AsyncResponseStream(resp.stream),
            extensions={**resp.extensions, PEER_EXTENSION: peer},
        )

    async def aclose(self) -> None:
        """Close every pooled connection."""
        with _mapped():
            await self._pool.aclose()
