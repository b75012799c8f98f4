"""The enclave side of the channel: serve ECALLs on up to ``max_threads`` threads.

Every frame from the host is hostile until checked. Each ECALL's arguments are
re-checked against the measured interface before the app function runs; each OCALL
result is checked before the app sees it. Malformed frames get an ERROR answer and the
channel goes on; only framing errors and EOF end it (the process then exits).
"""

from __future__ import annotations

import logging
import threading
import traceback
from pathlib import Path
from collections.abc import Callable
from typing import Any

from .._interface import Interface
from ..channel import Endpoint, Message, Mux
from ..channel._messages import (
    ECALL,
    ERROR,
    OCALL,
    OERROR,
    ORETURN,
    RETURN,
    VERSION,
    error_record,
)
from ..errors import BoundsError, EnclaveLost, EnklaveError, OcallError, ProtocolError
from ..models.identity import Identity

__all__ = ["Runtime"]

log = logging.getLogger("enklave.enclave")
_UNROUTED = "unrouted"
#: The enclave polls its channel this long before blocking, when no ECALL is running.
ENCLAVE_SPIN_US = 50


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
    ) -> None:
        self.identity = identity
        self.platform_secret = platform_secret
        self.files = files
        self.sim_home = sim_home if sim_home is not None else Path(".")
        self._interface = interface
        self._ecalls = ecalls
        self._max_threads = max_threads
        self._local = threading.local()
        self._executing = 0  # ECALLs running now (GIL users besides the reader)
        endpoint.spin_ns = ENCLAVE_SPIN_US * 1000
        endpoint.spin_gate = self._may_spin
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
        mine = 1 if getattr(self._local, "cid", None) is not None else 0
        return self._executing <= mine

    def set_ecalls(self, ecalls: dict[str, Callable[..., Any]]) -> None:
        """Install the app's ECALL functions (after the app module was imported)."""
        self._ecalls = dict(ecalls)

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
        while True:
            try:
                _, cid, name, args = self.mux.wait(None)
            except EnclaveLost:
                return
            self._serve_ecall(cid, name, args)

    def _serve_ecall(self, cid: int, name: str, args: list[Any]) -> None:
        spec = self._interface.ecalls.get(name)
        if spec is None:
            self._reply_error(cid, ProtocolError(f"no ECALL named {name!r}"))
            return
        self.mux.register(cid)
        self._local.cid = cid
        self._executing += 1
        try:
            values = spec.check_args(args)
            result = spec.check_result(self._ecalls[name](*values))
            self.mux.send([VERSION, RETURN, cid, result, None])
        except EnclaveLost:
            pass
        except Exception as exc:
            self._reply_error(cid, exc)
        finally:
            self._executing -= 1
            self._local.cid = None
            self.mux.unregister(cid)

    def _reply_error(self, cid: int, exc: BaseException) -> None:
        code = exc.code if isinstance(exc, EnklaveError) else "app"
        tb = traceback.format_exc() if self.identity.debug else None
        rec = error_record(type(exc).__name__, str(exc), code, tb)
        try:
            self.mux.send([VERSION, ERROR, cid, rec, None])
        except EnclaveLost:
            pass
        except EnklaveError:
            # the error itself could not be encoded (should not happen): send a plain one
            plain = error_record(type(exc).__name__, "unencodable error", code)
            try:
                self.mux.send([VERSION, ERROR, cid, plain, None])
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
        cid = getattr(self._local, "cid", None)
        if cid is None:
            raise OcallError(f"OCALL {name!r} made outside an ECALL; OCALLs run on ECALL threads")
        spec = self._interface.ocalls[name]
        values = spec.check_args(args)
        self.mux.send([VERSION, OCALL, cid, name, values])
        kind, _, value, _ = self.mux.wait(cid)
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


def _never() -> bool:
    return False


def _route(msg: Message) -> Any:
    kind, cid = msg[0], msg[1]
    if kind == ECALL:
        return None
    if kind in (ORETURN, OERROR):
        return cid
    return _UNROUTED
