"""The async network side of :class:`enklave.atls.transport.AsyncAttestedTransport`.

An anyio backend whose ``start_tls`` attests the server (in a worker thread on a cache
miss) before it returns a stream httpcore could write to. Host side only: imports httpx.
"""

from __future__ import annotations

import ssl
import typing
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

import anyio.to_thread
import httpcore
import httpx

from .. import errors
from . import _client
from ._transport_base import PEER_EXTENSION, mapped, refuse_plain, remember_cause

if typing.TYPE_CHECKING:
    from ._verify import AttestedPeer, PeerVerifier

__all__ = ["AsyncBackend", "AsyncResponseStream"]


class _AsyncTcpStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, verifier: PeerVerifier) -> None:
        self._inner = inner
        self._verifier = verifier

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        refuse_plain()

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        refuse_plain()

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
            remember_cause(exc)
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


class AsyncBackend(httpcore.AsyncNetworkBackend):
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


class AsyncResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with mapped():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()

