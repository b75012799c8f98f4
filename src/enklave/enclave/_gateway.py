"""The enclave's HTTP gateway: the app's ECALLs over attested TLS, TLS ending in here.

``enklave serve`` starts it through the runtime ECALL ``__enklave_gateway__(port, bind)``
(it returns the bound port), then *donates* the enclave's threads with
``__enklave_gateway_worker__()``: each such ECALL parks a runtime thread here, where it
runs the ECALLs that arrive over HTTPS. A donated thread is an ECALL thread, so the app's
OCALLs from it travel on the channel as usual (the host thread that donated it serves
them), and at most ``max_threads`` run at once, as for ECALLs from the host. The host
only moves ciphertext: the TLS key and the requests exist only inside the enclave.

HTTP API (bodies are strict CBOR, :mod:`enklave._encoding`)::

    POST /enklave/v1/ecall/<name>   body: CBOR array of the arguments
        -> 200 {"result": value} | 4xx/5xx {"error": code, "message": str}
    GET  /enklave/v1/identity       -> 200 JSON identity
    GET  /enklave/v1/health         -> 200 "ok" (text/plain, for probes)

Arguments and results go through exactly the checks of a channel ECALL (the runtime's
compiled handler). Errors: 400 ``encoding`` (not strict CBOR), ``interface`` (not an
array), ``bounds`` (an argument violates its declared type); 404 ``not_found`` (no such
ECALL or path); 405 ``method``; 503 ``busy``; 500 ``ecall`` (the ECALL raised or returned
a value outside its declared type: opaque, the detail goes only to the local log).
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Final

from .._encoding import DEFAULT_MAX_DEPTH, dumps, loads
from ..errors import BoundsError, EnklaveError, InterfaceError
from ._runtime import Handler, Runtime

if TYPE_CHECKING:
    import concurrent.futures

    from ..atls import BackgroundServer
    from ..models.identity import Identity

__all__ = [
    "ECALL_PREFIX",
    "HEALTH_PATH",
    "IDENTITY_PATH",
    "START_ECALL",
    "WORKER_ECALL",
    "Gateway",
    "decode_args",
    "ecall_name",
    "error_body",
    "identity_json",
    "install",
    "run_ecall",
]

log = logging.getLogger("enklave.gateway")

START_ECALL: Final = "__enklave_gateway__"
WORKER_ECALL: Final = "__enklave_gateway_worker__"
ECALL_PREFIX: Final = "/enklave/v1/ecall/"
IDENTITY_PATH: Final = "/enklave/v1/identity"
HEALTH_PATH: Final = "/enklave/v1/health"
#: Request bodies over this are refused (the HTTP layer answers 413 before the gateway).
MAX_BODY: Final = 1024 * 1024
#: ECALLs waiting for a free enclave thread; more get 503 ``busy``.
MAX_QUEUED: Final = 64
#: Seconds a parked thread waits for work before it checks that the host is still there.
PARK_POLL: Final = 0.25
#: Credentials are re-issued (new key, fresh quote) this often.
ROTATE_SECONDS: Final = 3600.0
CBOR: Final = b"application/cbor"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,127}")
_MAX_BIND = 255

Reply = tuple[int, bytes, bytes]  # status, content type, body


# ----------------------------------------------------------------- pure parts


def ecall_name(path: str) -> str | None:
    """The ECALL name in ``/enklave/v1/ecall/<name>``, or None (not such a path, or a name
    no app could declare: reserved runtime ECALLs are unreachable over HTTP)."""
    if not path.startswith(ECALL_PREFIX):
        return None
    name = path[len(ECALL_PREFIX) :]
    return name if _NAME.fullmatch(name) else None


def decode_args(body: bytes) -> list[Any]:
    """Decode a request body: one strict CBOR array (the positional arguments).

    Raises:
        EncodingError: not exactly one well-formed, canonical-enough CBOR item.
        InterfaceError: the item is not an array.
    """
    value = loads(body, max_size=MAX_BODY, max_depth=DEFAULT_MAX_DEPTH)
    if type(value) is not list:
        raise InterfaceError("the request body must be a CBOR array of the ECALL's arguments")
    return value


def error_body(code: str, message: str) -> bytes:
    """A CBOR error answer ``{"error": code, "message": message}``."""
    return dumps({"error": code, "message": message[:1000]})


def _error(status: int, code: str, message: str) -> Reply:
    return status, CBOR, error_body(code, message)


def run_ecall(name: str, handler: Handler, args: list[Any], *, debug: bool = False) -> Reply:
    """Run one ECALL with the channel's checks and turn the outcome into an HTTP answer.

    A bad argument is the caller's fault (400, with the check's message, which names
    only the declared type); anything the app raises, or a result outside its declared
    type, is a 500 with an opaque message, never the detail. The enclave's log goes to
    the host, and an exception's message may quote a remote client's arguments, which
    the host must not see: so only ``debug`` enclaves log the message and traceback;
    others log the exception type alone.
    """
    check_args, fn, check_result = handler
    try:
        values = check_args(args)
    except EnklaveError as exc:  # BoundsError, InterfaceError: the caller's arguments
        return _error(400, exc.code, str(exc))
    try:
        body = dumps({"result": check_result(fn(*values))})
    except Exception as exc:
        if debug:
            log.exception("ECALL %s failed (answered 500 ecall)", name)
        else:
            log.error("ECALL %s failed with %s (answered 500 ecall; message and traceback "
                      "are logged only by debug enclaves)", name, type(exc).__name__)
        return _error(500, "ecall", f"the ECALL {name} failed inside the enclave")
    return 200, CBOR, body


def identity_json(identity: Identity) -> bytes:
    """The identity document of ``GET /enklave/v1/identity`` (hex measurements)."""
    return json.dumps({
        "mrenclave": identity.mrenclave.hex(),
        "mrsigner": identity.mrsigner.hex(),
        "product_id": identity.product_id,
        "security_version": identity.security_version,
        "debug": identity.debug,
        "simulated": identity.simulated,
    }).encode()  # fmt: skip


def _check_start(args: list[Any]) -> list[Any]:
    """Check ``__enklave_gateway__(port, bind)`` arguments (the host is untrusted)."""
    if type(args) is not list or len(args) != 2:
        raise BoundsError(f"{START_ECALL} takes (port, bind)")
    port, bind = args
    if type(port) is not int or not 0 <= port <= 65535:
        raise BoundsError(f"{START_ECALL}: port must be an int in 0..65535")
    if type(bind) is not str or not 0 < len(bind) <= _MAX_BIND:
        raise BoundsError(f"{START_ECALL}: bind must be a host name or address")
    return args


def _check_none(args: list[Any]) -> list[Any]:
    if type(args) is not list or args:
        raise BoundsError(f"{WORKER_ECALL} takes no arguments")
    return args


def _same(value: object) -> object:
    return value


# ----------------------------------------------------------------- the gateway


class _Job:
    __slots__ = ("args", "future", "handler", "name")

    def __init__(self, name: str, handler: Handler, args: list[Any]) -> None:
        from concurrent.futures import Future  # not at enclave start: only when serving

        self.name, self.handler, self.args = name, handler, args
        self.future: concurrent.futures.Future[Reply] = Future()


class Gateway:
    """The HTTPS front of one enclave's ECALLs (one per enclave process).

    Attributes:
        server: the attested-TLS server once started.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.server: BackgroundServer | None = None
        self._jobs: queue.Queue[_Job] = queue.Queue(MAX_QUEUED)
        self._lock = threading.Lock()

    def start(self, port: int, bind: str) -> int:
        """The ``__enklave_gateway__`` ECALL: listen on ``bind:port``; return the port.

        Raises:
            AtlsError: cannot listen (code ``listen``) or issue credentials.
            EnklaveError: the gateway already runs (code ``gateway``).
        """
        from ..atls import RotatingCredentials, start_asgi_server

        with self._lock:
            if self.server is not None:
                raise EnklaveError("the gateway is already running", code="gateway")
            creds = RotatingCredentials(interval=ROTATE_SECONDS)
            self.server = start_asgi_server(self, lifespan=False, credentials=creds,
                                            host=bind, port=port)  # fmt: skip
            log.info("gateway listening on %s:%d", bind, self.server.port)
            return self.server.port

    def work(self) -> None:
        """The ``__enklave_gateway_worker__`` ECALL: run queued ECALLs on this thread
        until the host closes the channel (then return, ending the ECALL)."""
        jobs, runtime = self._jobs, self.runtime
        while True:
            try:
                job = jobs.get(timeout=PARK_POLL)
            except queue.Empty:
                if runtime.host_closed():
                    return
                continue
            if job.future.set_running_or_notify_cancel():
                job.future.set_result(
                    run_ecall(job.name, job.handler, job.args, debug=runtime.identity.debug)
                )

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: Callable[..., Any],
        send: Callable[..., Any],
    ) -> None:  # fmt: skip
        """ASGI entry point (``http`` scopes; others are ignored)."""
        if scope.get("type") != "http":
            return
        status, ctype, body = await self._respond(scope["method"], scope["path"], receive)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", ctype), (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": body})

    async def _respond(self, method: str, path: str, receive: Callable[..., Any]) -> Reply:
        if path == HEALTH_PATH or path == IDENTITY_PATH:
            if method not in ("GET", "HEAD"):
                return _error(405, "method", f"use GET for {path}")
            if path == HEALTH_PATH:
                return 200, b"text/plain", b"ok"
            return 200, b"application/json", identity_json(self.runtime.identity)
        name = ecall_name(path)
        if name is None:
            return _error(404, "not_found", "no such path; ECALLs are POST /enklave/v1/ecall/NAME")
        if method != "POST":
            return _error(405, "method", "ECALLs are called with POST")
        body = await _read_body(receive)
        if body is None:
            return _error(400, "encoding", "the request body was incomplete")
        handler = self.runtime.ecall_handler(name)
        if handler is None:
            return _error(404, "not_found", f"the enclave declares no ECALL {name!r}")
        try:
            args = decode_args(body)
        except EnklaveError as exc:
            return _error(400, exc.code, str(exc))
        return await self._submit(_Job(name, handler, args))

    async def _submit(self, job: _Job) -> Reply:
        import asyncio  # loaded by the server already; kept out of enclave start-up

        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            return _error(503, "busy", "all enclave threads are busy; retry later")
        return await asyncio.wrap_future(job.future)


async def _read_body(receive: Callable[..., Any]) -> bytes | None:
    """The whole request body (the HTTP layer caps it), or None if the client left."""
    parts: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg.get("type") != "http.request":
            return None
        chunk = bytes(msg.get("body", b""))
        size += len(chunk)
        if size > MAX_BODY:
            return None
        parts.append(chunk)
        if not msg.get("more_body", False):
            return b"".join(parts)


def install(runtime: Runtime) -> Gateway:
    """Register the gateway's runtime ECALLs on ``runtime``; return the (idle) gateway."""
    gateway = Gateway(runtime)

    def start(port: int, bind: str) -> int:
        return gateway.start(port, bind)

    runtime.reserve(START_ECALL, (_check_start, start, _same))
    runtime.reserve(WORKER_ECALL, (_check_none, gateway.work, _same))
    return gateway

