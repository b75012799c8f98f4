"""httpx transports that attest the server of every new connection (host side only).

Example::

    from enklave.atls import PeerVerifier
    from enklave.atls.transport import attested_client

    peers = PeerVerifier(verifier=verifier, policy=policy)
    with attested_client(verifier=peers) as client:
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

Build clients with :func:`attested_client` / :func:`async_attested_client`: a plain
``httpx.Client(transport=AttestedTransport(...), proxy=...)`` (or ``mounts=``) sends the
requests those cover through httpx's own transports, without attestation.

This module imports httpx and is never imported inside an enclave.
"""

from __future__ import annotations

import ssl
import typing
from collections.abc import AsyncIterable, Iterable, Iterator
from typing import Any

import httpcore
import httpx

from .. import errors
from . import _client
from . import _transport_async as _async
from . import _transport_base as _base
from ._transport_base import PEER_EXTENSION

if typing.TYPE_CHECKING:
    from ._issue import Credentials
    from ._verify import AttestedPeer, PeerVerifier

__all__ = [
    "PEER_EXTENSION",
    "AsyncAttestedTransport",
    "AttestedTransport",
    "async_attested_client",
    "attested_client",
]


# --------------------------------------------------------------------- sync


class _TcpStream(httpcore.NetworkStream):
    """A connected TCP stream: no application I/O until start_tls attested the peer."""

    def __init__(self, inner: httpcore.NetworkStream, verifier: PeerVerifier) -> None:
        self._inner = inner
        self._verifier = verifier

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        _base.refuse_plain()

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _base.refuse_plain()

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
            _base.remember_cause(exc)
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
        with _base.mapped():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class AttestedTransport(_base.VerifierOwner, httpx.BaseTransport):
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
                 limits: httpx.Limits = _base.DEFAULT_LIMITS, local_address: str | None = None,
                 retries: int = 0) -> None:
        self._verifier = verifier
        self._pool = httpcore.ConnectionPool(
            network_backend=_Backend(verifier),
            **_base.pool_options(credentials=credentials, limits=limits,
                                 local_address=local_address, retries=retries),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` over an attested connection (a new one is attested first)."""
        core = _base.core_request(request)
        with _base.mapped():
            resp = self._pool.handle_request(core)
        try:
            peer = _base.peer_of(resp)
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
        with _base.mapped():
            self._pool.close()


class AsyncAttestedTransport(_base.VerifierOwner, httpx.AsyncBaseTransport):
    """The asyncio/trio (anyio) twin of :class:`AttestedTransport`; same arguments and
    errors. Verification of a certificate not in the cache runs in a worker thread, so
    ``verifier`` must tolerate calls from several threads."""

    def __init__(self, *, verifier: PeerVerifier, credentials: Credentials | None = None,
                 limits: httpx.Limits = _base.DEFAULT_LIMITS, local_address: str | None = None,
                 retries: int = 0) -> None:
        self._verifier = verifier
        self._pool = httpcore.AsyncConnectionPool(
            network_backend=_async.AsyncBackend(verifier),
            **_base.pool_options(credentials=credentials, limits=limits,
                                 local_address=local_address, retries=retries),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` over an attested connection (a new one is attested first)."""
        core = _base.core_request(request)
        with _base.mapped():
            resp = await self._pool.handle_async_request(core)
        try:
            peer = _base.peer_of(resp)
        except errors.AtlsError:
            await resp.aclose()
            raise
        assert isinstance(resp.stream, AsyncIterable)
        return httpx.Response(
            status_code=resp.status,
            headers=resp.headers,
            stream=_async.AsyncResponseStream(resp.stream),
            extensions={**resp.extensions, PEER_EXTENSION: peer},
        )

    async def aclose(self) -> None:
        """Close every pooled connection."""
        with _base.mapped():
            await self._pool.aclose()


# --------------------------------------------------------------------- clients

#: httpx.Client arguments that would route requests around the attested transport.
_BYPASSING = ("proxy", "proxies", "mounts", "transport", "verify", "cert", "trust_env", "app")


def _client_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    refused = sorted(k for k in kwargs if k in _BYPASSING)
    if refused:
        raise errors.AtlsError(
            f"attested_client() does not take {', '.join(refused)}: a proxy, a mount, another "
            "transport or TLS settings would send requests around the attested transport "
            "(unattested); leave them out (a proxy would see only ciphertext anyway)",
            code="config",
        )
    return {**kwargs, "trust_env": False}


def attested_client(*, verifier: PeerVerifier, credentials: Credentials | None = None,
                    **kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` whose every request goes through :class:`AttestedTransport`.

    Prefer it to ``httpx.Client(transport=AttestedTransport(...))``: an ``httpx.Client``
    given ``proxy=`` or ``mounts=`` sends the matching requests through *other*,
    unattested transports. Here those arguments are refused and environment proxies are
    ignored (``trust_env=False``).

    Args:
        verifier: attests each new connection's server.
        credentials: present this attested certificate (mutual aTLS).
        **kwargs: other ``httpx.Client`` arguments (``timeout``, ``headers``,
            ``base_url`` ...); ``limits`` goes to the transport.

    Raises:
        AtlsError: ``proxy``, ``mounts``, ``transport``, ``verify``, ``cert``,
            ``trust_env`` or ``app`` was given (code ``"config"``).
    """
    kwargs = _client_kwargs(kwargs)
    transport = AttestedTransport(verifier=verifier, credentials=credentials,
                                  limits=kwargs.pop("limits", _base.DEFAULT_LIMITS))
    return httpx.Client(transport=transport, **kwargs)


def async_attested_client(*, verifier: PeerVerifier, credentials: Credentials | None = None,
                          **kwargs: Any) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` twin of :func:`attested_client` (same arguments, errors)."""
    kwargs = _client_kwargs(kwargs)
    transport = AsyncAttestedTransport(verifier=verifier, credentials=credentials,
                                       limits=kwargs.pop("limits", _base.DEFAULT_LIMITS))
    return httpx.AsyncClient(transport=transport, **kwargs)
