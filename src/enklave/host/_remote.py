"""A client for an enclave served by ``enklave serve``: ECALLs over attested TLS.

Every connection is attested (the server's certificate evidence is verified against the
caller's policy) before a byte of a request is sent; the TLS channel ends inside the
enclave, so the host running it sees only ciphertext.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._encoding import DEFAULT_MAX_DEPTH, dumps, loads
from ..errors import (
    AtlsError,
    BoundsError,
    EnclaveCallError,
    EncodingError,
    EnklaveError,
    InterfaceError,
    ProtocolError,
)

if TYPE_CHECKING:
    import httpx

    from ..atls import AttestedPeer, PeerVerifier

__all__ = ["RemoteEnclave", "remote_error"]

ECALL_PATH = "/enklave/v1/ecall/"
IDENTITY_PATH = "/enklave/v1/identity"
HEALTH_PATH = "/enklave/v1/health"
#: The largest response accepted (an ECALL result is bounded by its declared type).
MAX_RESPONSE = 16 * 1024 * 1024
#: The largest request body the gateway reads (its HTTP layer answers 413 above it).
MAX_REQUEST = 1024 * 1024
_ERRORS: dict[str, type[EnklaveError]] = {
    "bounds": BoundsError,
    "interface": InterfaceError,
    "not_found": InterfaceError,
    "method": ProtocolError,
    "encoding": EncodingError,
}


def remote_error(status: int, code: str, message: str) -> EnklaveError:
    """The exception for an error answer: ``ecall`` -> :class:`EnclaveCallError`, ``bounds``
    -> :class:`BoundsError`, ``interface``/``not_found`` -> :class:`InterfaceError`,
    ``encoding`` -> :class:`EncodingError`, others :class:`EnklaveError`; all keep ``code``."""
    if code == "ecall":
        return EnclaveCallError("ECALL", message, code=code)
    cls = _ERRORS.get(code, EnklaveError)
    return cls(f"the enclave refused the call (HTTP {status}, {code}): {message}", code=code)


class _RemoteCalls:
    """``remote.call.NAME(*args)``: any name (the server knows the declared ECALLs)."""

    def __init__(self, remote: RemoteEnclave) -> None:
        self._remote = remote

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        def ecall(*args: Any) -> Any:
            return self._remote.ecall(name, list(args))

        ecall.__name__ = name
        return ecall


class RemoteEnclave:
    """ECALLs of an enclave served by ``enklave serve``, over attested TLS.

    Example::

        with RemoteEnclave("https://enclave.example:8443", verifier=peer_verifier) as enc:
            print(enc.peer.enclave.mrenclave.hex())
            print(enc.call.greet("Ada"))

    Raises (from calls):
        CertificateError, VerificationError, PolicyError: the server was refused (its
            evidence does not verify under the verifier's policy); nothing was sent.
        BoundsError, InterfaceError, EncodingError: the enclave refused the arguments.
        EnclaveCallError: the ECALL failed inside the enclave (code ``ecall``; the
            detail stays in the server's log).
        AtlsError: unreachable server (code ``connect``), or not an https URL (``scheme``).
        ProtocolError: the answer was not the gateway's protocol.
    """

    def __init__(self, url: str, *, verifier: PeerVerifier, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise AtlsError(f"{url!r} is not an https:// URL; give https://HOST:PORT",
                            code="scheme")  # fmt: skip
        from ..atls.transport import attested_client

        self.url = url.rstrip("/")
        self._client: httpx.Client = attested_client(verifier=verifier, timeout=timeout)
        self._peer: AttestedPeer | None = None
        self.call = _RemoteCalls(self)

    @property
    def peer(self) -> AttestedPeer:
        """The verified server (its enclave identity and TCB), attested on first use."""
        if self._peer is None:
            self._request("GET", HEALTH_PATH)
        assert self._peer is not None
        return self._peer

    def identity(self) -> dict[str, Any]:
        """The enclave's self-reported identity document (``GET /enklave/v1/identity``).

        Trust :attr:`peer` (verified evidence) rather than this: it is what the enclave
        says about itself, sent over the attested channel.
        """
        resp = self._request("GET", IDENTITY_PATH)
        try:
            doc = json.loads(resp.content)
        except ValueError as exc:
            raise ProtocolError("the identity answer is not JSON") from exc
        if not isinstance(doc, dict):
            raise ProtocolError("the identity answer is not a JSON object")
        return doc

    def health(self) -> bool:
        """True when the enclave answers its health check."""
        return self._request("GET", HEALTH_PATH).content == b"ok"

    def ecall(self, name: str, args: list[Any]) -> Any:
        """Call ECALL ``name`` with positional ``args``; return its result (see class)."""
        body = dumps(list(args))
        if len(body) > MAX_REQUEST:
            raise BoundsError(f"the arguments of {name} encode to {len(body)} bytes, over the "
                              f"gateway's {MAX_REQUEST}-byte limit; send less per call")
        resp = self._request("POST", ECALL_PATH + name, content=body,
                             headers={"content-type": "application/cbor"})  # fmt: skip
        try:
            doc = loads(resp.content, max_size=MAX_RESPONSE, max_depth=DEFAULT_MAX_DEPTH)
        except EncodingError as exc:
            if resp.status_code != 200:  # the HTTP layer's own refusal (plain text)
                code = "bounds" if resp.status_code == 413 else "http"
                raise remote_error(resp.status_code, code, resp.text[:200]) from exc
            raise ProtocolError(f"the ECALL answer is not CBOR: {exc}") from exc
        if resp.status_code == 200 and isinstance(doc, dict) and set(doc) == {"result"}:
            return doc["result"]
        if isinstance(doc, dict) and type(doc.get("error")) is str:
            raise remote_error(resp.status_code, doc["error"], str(doc.get("message", "")))
        raise ProtocolError(f"unexpected ECALL answer (HTTP {resp.status_code})")

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        from ..atls.transport import PEER_EXTENSION

        try:
            resp = self._client.request(method, self.url + path, **kwargs)
        except httpx.HTTPError as exc:
            raise AtlsError(f"cannot reach {self.url}: {exc or type(exc).__name__}; check the "
                            "URL and that `enklave serve` runs", code="connect") from exc
        self._peer = resp.extensions[PEER_EXTENSION]
        if resp.status_code >= 400 and method == "GET":
            raise remote_error(resp.status_code, "http", f"GET {path} answered "
                               f"{resp.status_code}")  # fmt: skip
        return resp

    def close(self) -> None:
        """Close the pooled connections. Idempotent."""
        self._client.close()

    def __enter__(self) -> RemoteEnclave:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
