"""Shared parts of the attested httpx transports (``enklave.atls.transport``).

httpcore-to-httpx exception mapping, pool settings, request conversion and the peer lookup
used by both the sync and the async transport. Host side only: imports httpx.
"""

from __future__ import annotations

import contextlib
import typing
from collections.abc import Iterator
from typing import Any, NoReturn

import httpcore
import httpx

from .. import errors
from . import _client

if typing.TYPE_CHECKING:
    from ._issue import Credentials
    from ._verify import AttestedPeer, PeerVerifier

__all__ = ["DEFAULT_LIMITS", "PEER_EXTENSION", "VerifierOwner", "core_request", "mapped",
           "peer_of", "pool_options", "refuse_plain", "remember_cause"]  # fmt: skip

PEER_EXTENSION = "enklave.peer"
"""The ``response.extensions`` key holding the connection's :class:`AttestedPeer`."""

DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20,
                              keepalive_expiry=5.0)


class VerifierOwner:
    """The ``verifier`` property both transports expose."""

    _verifier: PeerVerifier

    @property
    def verifier(self) -> PeerVerifier:
        """The verifier attesting each new connection (read-only: the connection pool's
        backend holds this one, so replacing it could not take effect)."""
        return self._verifier


def pool_options(*, credentials: Credentials | None, limits: httpx.Limits,
                 local_address: str | None, retries: int) -> dict[str, Any]:
    """The httpcore (async) connection pool arguments, less the network backend."""
    return {
        "ssl_context": _client.client_context(credentials=credentials),
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
        "http1": True,
        "http2": False,
        "retries": retries,
        "local_address": local_address,
    }


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
def mapped() -> Iterator[None]:
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


def remember_cause(exc: BaseException) -> None:
    if isinstance(exc, errors.EnklaveError) and exc.__cause__ is not None:
        exc._enklave_cause = exc.__cause__  # type: ignore[attr-defined]


def core_request(request: httpx.Request) -> httpcore.Request:
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


def peer_of(response: httpcore.Response) -> AttestedPeer:
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info(PEER_EXTENSION) if stream is not None else None
    if peer is None:  # cannot happen: every stream comes out of an attesting start_tls
        raise errors.AtlsError("response on a connection with no attested peer",
                               code="not_attested")
    return peer  # type: ignore[no-any-return]


def refuse_plain() -> NoReturn:
    raise errors.AtlsError("refusing I/O on a connection that has not been attested",
                           code="not_attested")

