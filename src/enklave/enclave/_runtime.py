"""The enclave side of the channel: serve ECALLs on up to ``max_threads`` threads.

Every frame from the host is hostile until checked. Each ECALL's arguments are
re-checked against the measured interface before the app function runs; each OCALL
result is checked before the app sees it. Malformed frames get an ERROR answer and the
channel goes on; only framing errors and EOF end it (the process then exits).
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._interface import Interface
from ..channel import Endpoint, Message, Mux
from ..channel._messages import ECALL, ERROR, OCALL, OERROR, ORETURN, RETURN, error_record
from ..channel._wire import call_frame, reply_frame, text_cbor
from ..errors import (
    BoundsError,
    EnclaveLost,
    EnklaveError,
    InterfaceError,
    OcallError,
    ProtocolError,
)
from ..models.identity import Identity

__all__ = ["RESERVED_PREFIX", "Handler", "Runtime"]

log = logging.getLogger("enklave.enclave")
_UNROUTED = "unrouted"
#: The enclave polls its channel this long before blocking, when no ECALL is running.
ENCLAVE_SPIN_US = 50
#: Runtime ECALLs (e.g. the gateway's) are named with this prefix; app names cannot start
#: with "_" (:mod:`enklave._interface`), so no app can declare or shadow them.
RESERVED_PREFIX = "__enklave_"
#: A served ECALL: (argument check, the app's function, result check).
Handler = tuple[Callable[[list[Any]], list[Any]], Callable[..., Any], Callable[[object], object]]


class Runtime:
    """The trusted runtime of one loaded enclave (implements the enclave context)."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        interface: Interface,
        ecalls: dict[str, Callable[..., Any]],
        identity: Identity,
        platform_secret: bytes,
        files: dict[str, bytes],
        max_threads: int,
        sim_home: Path | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        self.identity = identity
        self.platform_secret = platform_secret
        self.files = files
        self.sim_home = sim_home if sim_home is not None else Path(".")
        self._interface = interface
        self._ocall_names = {name: text_cbor(name) for name in interface.ocalls}
        self._handlers: dict[str, Handler] = {}
        self._declared: dict[str, Handler] = {}
        self._reserved: dict[str, Handler] = {}
        self._sock = sock
        self.set_ecalls(ecalls)
        self._max_threads = max_threads
        self._local = threading.local()
        self._executing = 0  # ECALLs running now (counted when there are several threads)
        endpoint.spin_ns = ENCLAVE_SPIN_US * 1000
        # with one thread, the reader is the only thread that could need the GIL
        endpoint.spin_gate = self._may_spin if max_threads > 1 else None
        self.mux = Mux(
            endpoint,
            route=_route,
            make_lost=lambda why: EnclaveLost(f"host channel closed: {why}"),
            on_bad=self._answer_bad,
            on_unroutable=self._answer_unroutable,
        )
        self.mux.register(None)

    def _may_spin(self) -> bool:
        # poll only while no ECALL is running: a polling reader would starve it of the GIL
        mine = 1 if self._current_cid() is not None else 0
        return self._executing <= mine

    def _current_cid(self) -> int | None:
        """The call id of the ECALL the current thread serves (None outside ECALLs)."""
        serving: list[int | None] | None = getattr(self._local, "serving", None)
        return None if serving is None else serving[0]

    def set_ecalls(self, ecalls: dict[str, Callable[..., Any]]) -> None:
        """Install the app's ECALL functions (after the app module was imported).

        Each declared ECALL becomes a handler: its compiled argument check, the
        function, its compiled result check. Undeclared functions are never served.
        """
        self._declared = {
            name: (spec.check_args, ecalls[name], spec.check_result)
            for name, spec in self._interface.ecalls.items()
            if name in ecalls
        }
        self._handlers = {**self._declared, **self._reserved}

    def reserve(self, name: str, handler: Handler) -> None:
        """Serve a runtime ECALL (``__enklave_...``: a name no app can declare) on the channel.

        Such ECALLs are reachable from the host only, never through :meth:`ecall_handler`.

        Raises:
            InterfaceError: ``name`` is not in the reserved ``__enklave_`` namespace.
        """
        if not name.startswith(RESERVED_PREFIX):
            raise InterfaceError(f"runtime ECALL {name!r} must start with {RESERVED_PREFIX!r}")
        self._reserved[name] = handler
        self._handlers = {**self._declared, **self._reserved}

    def ecall_handler(self, name: str) -> Handler | None:
        """The app's declared ECALL ``name`` as served on the channel: (argument check,
        function, result check), or None. Runtime-reserved ECALLs are never returned."""
        return self._declared.get(name)

    def host_closed(self) -> bool:
        """True once the host has closed the channel (checked without reading a frame).

        Threads parked outside the channel (the gateway's) call this to notice the end:
        at EOF the channel is marked dead, which ends :meth:`serve`.
        """
        if self.mux.dead is not None:
            return True
        if self._sock is None:
            return False
        try:
            ready, _, _ = select.select([self._sock], [], [], 0)
            if not ready or self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                return False
        except BlockingIOError:
            return False
        except OSError:
            pass  # a broken channel is a closed one
        self.mux.kill("the host closed the channel")
        return True

    # -- serving ---------------------------------------------------------------
    def serve(self) -> None:
        """Serve until the host closes the channel. Returns when the channel is dead."""
        workers = [
            threading.Thread(target=self._worker, name=f"enclave-tcs-{i}", daemon=True)
            for i in range(1, self._max_threads)
        ]
        for t in workers:
            t.start()
        self._worker()

    def _worker(self) -> None:
        """Serve ECALLs: re-check the arguments, run the function, check its result, answer."""
        serving: list[int | None] = [None]  # the ECALL this thread serves (for OCALLs)
        self._local.serving = serving
        wait, send = self.mux.wait, self.mux.send_frame
        counted = self._max_threads > 1  # one thread: it is always the only one running
        while True:
            try:
                _, cid, name, args = wait(None)
            except EnclaveLost:
                return
            handler = self._handlers.get(name)
            if handler is None:
                self._reply_error(cid, ProtocolError(f"no ECALL named {name!r}"))
                continue
            check_args, fn, check_result = handler
            serving[0] = cid
            if counted:
                self._executing += 1
            try:
                send(reply_frame(RETURN, cid, check_result(fn(*check_args(args)))))
            except EnclaveLost:
                pass
            except Exception as exc:
                self._reply_error(cid, exc)
            finally:
                if counted:
                    self._executing -= 1
                serving[0] = None

    def _reply_error(self, cid: int, exc: BaseException) -> None:
        code = exc.code if isinstance(exc, EnklaveError) else "app"
        tb = traceback.format_exc() if self.identity.debug else None
        rec = error_record(type(exc).__name__, str(exc), code, tb)
        try:
            self.mux.send_frame(reply_frame(ERROR, cid, rec))
        except EnclaveLost:
            pass
        except EnklaveError:
            # the error itself could not be encoded (should not happen): send a plain one
            plain = error_record(type(exc).__name__, "unencodable error", code)
            try:
                self.mux.send_frame(reply_frame(ERROR, cid, plain))
            except EnklaveError:
                pass  # channel gone: the worker loop notices on its next wait

    def _answer_bad(self, exc: EnklaveError, cid: int) -> None:
        self._reply_error(cid, exc)

    def _answer_unroutable(self, msg: Message) -> None:
        kind, cid, _, _ = msg
        self._reply_error(cid, ProtocolError(f"unexpected message kind {kind} for call {cid}"))

    # -- OCALLs ----------------------------------------------------------------
    def ocall(self, name: str, args: list[Any]) -> Any:
        """Run an OCALL on the host from the current ECALL thread; check its result.

        Raises:
            OcallError: outside an ECALL, the host failed, or the result violates the
                declared type (the host may lie).
        """
        cid = self._current_cid()
        if cid is None:
            raise OcallError(f"OCALL {name!r} made outside an ECALL; OCALLs run on ECALL threads")
        spec = self._interface.ocalls[name]
        values = spec.check_args(args)
        frame = call_frame(OCALL, cid, self._ocall_names[name], values)
        # "alone": no other ECALL runs, so nothing can queue behind this thread's send
        kind, _, value, _ = self.mux.request(cid, frame, alone=self._executing <= 1)
        if kind == OERROR:
            raise OcallError(
                f"OCALL {name!r} failed on the host: {value['type']}: {value['message']}"
            )
        try:
            return spec.check_result(value)
        except BoundsError as exc:
            raise OcallError(
                f"OCALL {name!r} returned a value that violates its declared type ({exc}); "
                "the host is buggy or lying, so the result was discarded"
            ) from exc


def _route(msg: Message) -> Any:
    """New ECALLs go to any idle worker (key None), OCALL answers to their ECALL's thread."""
    kind = msg[0]
    if kind == ECALL:
        return None
    return msg[1] if kind == ORETURN or kind == OERROR else _UNROUTED
