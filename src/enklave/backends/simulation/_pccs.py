"""A fake PCCS: serves the SIMULATED platform's collateral over Intel's PCS v4 REST API.

It answers the same paths, query parameters, issuer-chain headers (URL-encoded PEM) and
body shapes as Intel's PCS / a PCCS, so that :class:`enklave.collateral.PcsClient` (or any
PCCS client, e.g. dcap-qvl's) can be pointed at it. Everything it serves is signed by the
simulated root: NOT Intel, no hardware protection, for development and tests only. It
speaks plain HTTP; bind it to loopback (the default).

Paths: ``/{sgx|tdx}/certification/v4/tcb?fmspc=``, ``/{sgx|tdx}/certification/v4/qe/identity``,
``/sgx/certification/v4/pckcrl?ca=processor|platform[&encoding=der|pem]``,
``/sgx/certification/v4/rootcacrl`` and ``/sgx/certification/v4/pckcert``. Errors are JSON
``{"error": code, "message": text}``: 400 for a missing or malformed parameter, 404 for an
unknown FMSPC, CA, TEE or path.
"""

from __future__ import annotations

import base64
import http.server
import json
import logging
import re
import secrets
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Final

from enklave.errors import PlatformError

from ._pcs import PcsResponse, PcsResponses
from ._platform import SimPlatform

__all__ = ["PccsServer", "create_pccs_server", "serve_pccs"]

log = logging.getLogger("enklave.collateral")

_V4: Final = "certification/v4/"
_FMSPC: Final = re.compile(r"[0-9A-Fa-f]{12}")
_CRL_ENCODINGS: Final = ("der", "pem", "hex")


class _Error(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class PccsServer(http.server.ThreadingHTTPServer):
    """The fake PCCS (a ``ThreadingHTTPServer``); make one with :func:`create_pccs_server`.

    Attributes:
        platform: the simulated platform served.
        root_crl_encoding: how ``/rootcacrl`` is sent: ``"der"``, ``"pem"`` or ``"hex"``.
        request_count: requests answered so far (any status), for tests.
        paths: the request targets (path and query) answered so far, in order.
    """

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], platform: SimPlatform, *, root_crl_encoding: str
    ) -> None:
        super().__init__(address, _Handler)
        self.platform = platform
        self.root_crl_encoding = root_crl_encoding
        self.request_count = 0
        self.paths: list[str] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the bound socket."""
        host, port = self.server_address[:2]
        text = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://[{text}]:{port}" if ":" in text else f"http://{text}:{port}"

    def responses(self, tee: str) -> PcsResponses:
        """The platform's PCS responses for ``tee`` (404 error if it has none)."""
        with self._lock:  # refreshing expired collateral writes the state: one at a time
            try:
                return self.platform.pcs_responses(tee=tee)
            except PlatformError as exc:
                raise _Error(404, "NotFound", f"no {tee.upper()} collateral: {exc}") from exc

    def count(self, target: str) -> None:
        with self._lock:
            self.request_count += 1
            self.paths.append(target)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: PccsServer
    server_version = "enklave-simulated-PCCS"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.count(self.path)
        try:
            response = self._route()
        except _Error as exc:
            self._send_error(exc)
            return
        self._send(200, response.body, response.content_type, response.headers)

    def _route(self) -> PcsResponse:
        parts = urllib.parse.urlsplit(self.path)
        try:
            query = urllib.parse.parse_qs(parts.query, strict_parsing=False)
        except ValueError as exc:
            raise _Error(400, "InvalidParameter", f"malformed query: {exc}") from exc
        tee, _, rest = parts.path.lstrip("/").partition("/")
        if tee not in ("sgx", "tdx") or not rest.startswith(_V4):
            raise _Error(404, "NotFound", f"no such path {parts.path!r}")
        endpoint = rest[len(_V4) :]
        if endpoint == "tcb":
            return self._tcb(tee, query)
        if endpoint == "qe/identity":
            return self.server.responses(tee).qe_identity
        if tee == "sgx" and endpoint == "pckcrl":
            return self._pck_crl(query)
        if tee == "sgx" and endpoint == "rootcacrl":
            return _encode_crl(
                self.server.responses("sgx").root_ca_crl, self.server.root_crl_encoding
            )
        if tee == "sgx" and endpoint == "pckcert":
            return self.server.responses("sgx").pck_certificate
        raise _Error(404, "NotFound", f"no such path {parts.path!r}")

    def _tcb(self, tee: str, query: dict[str, list[str]]) -> PcsResponse:
        fmspc = _single(query, "fmspc")
        if fmspc is None or not _FMSPC.fullmatch(fmspc):
            raise _Error(400, "InvalidParameter", "fmspc must be 12 hex digits")
        responses = self.server.responses(tee)
        if fmspc.upper() != responses.fmspc.upper():
            raise _Error(404, "NotFound", f"no TCB Info for FMSPC {fmspc.upper()}")
        return responses.tcb_info

    def _pck_crl(self, query: dict[str, list[str]]) -> PcsResponse:
        ca = _single(query, "ca")
        encoding = _single(query, "encoding") or "pem"
        if ca is None or ca.lower() not in ("processor", "platform"):
            raise _Error(400, "InvalidParameter", "ca must be processor or platform")
        if encoding.lower() not in ("der", "pem"):
            raise _Error(400, "InvalidParameter", "encoding must be der or pem")
        if ca.lower() != "processor":
            raise _Error(404, "NotFound", "the simulated platform has no Platform CA")
        return _encode_crl(self.server.responses("sgx").pck_crl, encoding.lower())

    def _send_error(self, exc: _Error) -> None:
        body = json.dumps({"error": exc.code, "message": exc.message}).encode()
        headers = {"Error-Code": exc.code, "Error-Message": exc.message}
        self._send(exc.status, body, "application/json", headers)

    def _send(
        self, status: int, body: bytes, content_type: str, headers: Mapping[str, str]
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Request-ID", secrets.token_hex(16))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("simulated PCCS: " + format, *args)


def _single(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) != 1:
        raise _Error(400, "InvalidParameter", f"{name} given more than once")
    return values[0]


def _encode_crl(response: PcsResponse, encoding: str) -> PcsResponse:
    """Re-encode a DER CRL response as ``der`` (unchanged), ``pem`` or ``hex``."""
    der = response.body
    if encoding == "der":
        return response
    if encoding == "hex":
        return PcsResponse(der.hex().encode(), "text/plain", response.headers)
    lines = base64.encodebytes(der).decode().replace("\n", "")
    wrapped = "\n".join(lines[i : i + 64] for i in range(0, len(lines), 64))
    pem = f"-----BEGIN X509 CRL-----\n{wrapped}\n-----END X509 CRL-----\n"
    return PcsResponse(pem.encode(), "application/x-pem-file", response.headers)


def create_pccs_server(
    platform: SimPlatform,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    root_crl_encoding: str = "hex",
) -> PccsServer:
    """Bind (but do not start) a fake PCCS for ``platform``.

    Args:
        platform: the simulated platform whose collateral is served.
        host: address to bind; keep the loopback default (plain HTTP, simulated data).
        port: TCP port; 0 picks a free one (read it from ``server.server_address``).
        root_crl_encoding: body form of ``/rootcacrl``: ``"hex"`` (default: what Intel's
            PCCS sends and PCCS clients such as dcap-qvl expect), ``"der"`` or ``"pem"``.

    Returns:
        The server; run it with ``serve_forever()`` (e.g. in a thread), stop it with
        ``shutdown()`` and ``server_close()``.

    Raises:
        PlatformError: a bad encoding, or the address cannot be bound.
    """
    if root_crl_encoding not in _CRL_ENCODINGS:
        raise PlatformError(f"root_crl_encoding must be one of {_CRL_ENCODINGS}")
    try:
        return PccsServer((host, port), platform, root_crl_encoding=root_crl_encoding)
    except OSError as exc:
        raise PlatformError(
            f"cannot serve the simulated PCCS on {host}:{port} ({exc.strerror}); pick "
            "another --port or --host"
        ) from exc


def serve_pccs(platform: SimPlatform, host: str = "127.0.0.1", port: int = 8081) -> None:
    """Serve ``platform``'s collateral until Ctrl-C (blocking).

    Prints ``serving simulated PCCS (NOT Intel) on http://HOST:PORT`` once bound.

    Raises:
        PlatformError: the address cannot be bound.
    """
    server = create_pccs_server(platform, host, port)
    print(f"serving simulated PCCS (NOT Intel) on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
