"""The untrusted host's handle on an enclave: typed calls, OCALL serving, restarts."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from .._interface import FunctionSpec, Interface
from .._simplatform import sim_home as default_sim_home
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
from ..errors import (
    ConfigError,
    EnclaveCallError,
    EnclaveClosed,
    EnclaveLost,
    EnklaveError,
    ProtocolError,
)
from ..models.identity import Identity
from ..package._build import read_bundle
from ._session import Session

__all__ = ["BACKENDS", "Enclave"]

log = logging.getLogger("enklave.host")
BACKENDS = ("simulation",)
OcallTable = Mapping[str, Callable[..., Any]]


class _CallProxy:
    """``enc.call.NAME(*args, **kwargs)``: one attribute per declared ECALL."""

    def __init__(self, enclave: Enclave) -> None:
        self._enclave = enclave

    def __getattr__(self, name: str) -> Callable[..., Any]:
        spec = self._enclave.interface.ecalls.get(name)
        if spec is None:
            known = ", ".join(self._enclave.interface.ecalls) or "none"
            raise AttributeError(f"the enclave declares no ECALL {name!r} (ECALLs: {known})")

        def ecall(*args: Any, **kwargs: Any) -> Any:
            return self._enclave.ecall(spec, spec.bind(args, kwargs))

        ecall.__name__ = name
        return ecall

    def __dir__(self) -> list[str]:
        return list(self._enclave.interface.ecalls)


class Enclave:
    """A running enclave, seen from the untrusted host.

    Open with :meth:`open`; call ECALLs as ``enc.call.greet("Ada")``. Arguments are
    checked here against the declared interface and re-checked inside the enclave.
    Up to ``max_threads`` ECALLs run concurrently (more wait for a free slot).

    Raises (from calls):
        BoundsError: an argument violates its declared type or bound.
        EnclaveCallError: the ECALL raised inside the enclave.
        EnclaveLost: the enclave process died; every pending call gets it. Use
            :meth:`restart`.
        EnclaveClosed: the handle was closed.
    """

    def __init__(
        self, bundle_path: Path, *, ocalls: OcallTable, sim_home: Path, load_timeout: float
    ) -> None:
        bundle = read_bundle(bundle_path)
        self.bundle_path = bundle_path
        self.config = bundle.config
        self.interface: Interface = bundle.interface
        self._expected_mrenclave = bundle.mrenclave
        self._ocalls = _check_ocalls(bundle.interface, ocalls)
        self._sim_home = sim_home
        self._load_timeout = load_timeout
        self._ids = itertools.count(1)
        self._free_slots = bundle.config.max_threads
        self._slot_cond = threading.Condition(threading.Lock())
        self._lock = threading.Lock()
        self._session: Session | None = None
        self._closed = False
        self.call = _CallProxy(self)
        self._start()

    @classmethod
    def open(
        cls,
        bundle: str | Path,
        *,
        backend: str = "simulation",
        ocalls: OcallTable | None = None,
        sim_home: str | Path | None = None,
        load_timeout: float = 30.0,
    ) -> Enclave:
        """Start the enclave in ``bundle`` and wait until it has verified itself.

        Args:
            bundle: a bundle file from ``enklave build``.
            backend: ``"simulation"`` (a software platform: no hardware protection).
            ocalls: host functions for every OCALL the enclave declares.
            sim_home: the simulated platform directory (default ``ENKLAVE_SIM_HOME``).
            load_timeout: seconds to wait for the enclave to report ready.

        Raises:
            ConfigError: unknown backend, or ``ocalls`` does not match the declared OCALLs.
            BundleError: the bundle file is unreadable or malformed.
            EnclaveLoadError: the enclave refused to load (signature, measurement,
                interface); no application code ran.
        """
        if backend not in BACKENDS:
            raise ConfigError(
                f"unknown backend {backend!r}; available here: {', '.join(BACKENDS)} "
                "(real SGX through Gramine is not available in this version)"
            )
        home = Path(sim_home) if sim_home is not None else default_sim_home()
        return cls(Path(bundle), ocalls=ocalls or {}, sim_home=home, load_timeout=load_timeout)

    # -- lifecycle -------------------------------------------------------------
    def _start(self) -> None:
        session = Session(
            self.bundle_path, self.config, sim_home=self._sim_home, load_timeout=self._load_timeout
        )
        if session.identity.mrenclave != self._expected_mrenclave:
            session.close()
            raise EnclaveLost("the enclave reported another MRENCLAVE than its bundle's")
        self._session = session
        log.info(
            "enclave %s started (pid %d, MRENCLAVE %s, %s)",
            self.config.name,
            session.pid,
            session.identity.mrenclave.hex(),
            "SIMULATED: no hardware protection" if session.identity.simulated else "hardware",
        )

    @property
    def identity(self) -> Identity:
        """The identity the enclave reported after verifying itself."""
        return self._current().identity

    @property
    def pid(self) -> int:
        """The enclave process id (for diagnostics and tests)."""
        return self._current().pid

    def _current(self) -> Session:
        if self._closed:
            raise EnclaveClosed("this enclave handle is closed; open a new one")
        session = self._session
        if session is None:
            raise EnclaveLost("the enclave is not running; call restart()")
        return session

    def restart(self) -> None:
        """Stop the enclave process if it still runs and start a fresh one from the bundle."""
        with self._lock:
            if self._closed:
                raise EnclaveClosed("this enclave handle is closed; open a new one")
            old, self._session = self._session, None
            if old is not None:
                old.close()
            self._start()

    def close(self) -> None:
        """Stop the enclave and reap its process. Idempotent."""
        with self._lock:
            self._closed = True
            old, self._session = self._session, None
        if old is not None:
            old.close()

    def __enter__(self) -> Enclave:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- calls -----------------------------------------------------------------
    def ecall(self, spec: FunctionSpec, values: list[Any]) -> Any:
        """Make an ECALL with a full positional argument list (the proxy's back end)."""
        values = spec.check_args(values)
        with self._slot_cond:  # like waiting for a free TCS: at most max_threads in flight
            while not self._free_slots:
                self._slot_cond.wait()
            self._free_slots -= 1
        session = None
        try:
            session = self._current()
            session.in_flight += 1
            mux = session.mux
            cid = next(self._ids)
            mux.register(cid)
            try:
                mux.send([VERSION, ECALL, cid, spec.name, values])
                return self._await_result(mux, cid, spec)
            finally:
                mux.unregister(cid)
        finally:
            if session is not None:
                session.in_flight -= 1
            with self._slot_cond:
                self._free_slots += 1
                self._slot_cond.notify()

    def _await_result(self, mux: Any, cid: int, spec: FunctionSpec) -> Any:
        while True:
            kind, _, a, b = mux.wait(cid)
            if kind == RETURN:
                return spec.check_result(a)
            if kind == ERROR:
                raise EnclaveCallError(
                    a["type"], a["message"], remote_traceback=a.get("traceback"), code=a["code"]
                )
            if kind == OCALL:
                self._serve_ocall(mux, cid, a, b)
            else:
                mux.kill(f"unexpected message kind {kind} during an ECALL")
                raise ProtocolError(f"the enclave sent message kind {kind} during an ECALL")

    def _serve_ocall(self, mux: Any, cid: int, name: str, args: list[Any]) -> None:
        try:
            spec = self.interface.ocalls.get(name)
            if spec is None:
                raise ProtocolError(f"the enclave called an undeclared OCALL {name!r}")
            result = self._ocalls[name](*spec.check_args(args))
            mux.send([VERSION, ORETURN, cid, result, None])
        except EnclaveLost:
            raise
        except Exception as exc:
            log.debug("OCALL %s failed on the host: %r", name, exc)
            code = exc.code if isinstance(exc, EnklaveError) else "host"
            mux.send([VERSION, OERROR, cid, error_record(type(exc).__name__, str(exc), code), None])


def _check_ocalls(interface: Interface, ocalls: OcallTable) -> dict[str, Callable[..., Any]]:
    declared = set(interface.ocalls)
    given = set(ocalls)
    if declared - given:
        missing = ", ".join(sorted(declared - given))
        raise ConfigError(
            f"the enclave declares OCALLs with no host implementation: {missing}; "
            "pass them as Enclave.open(..., ocalls={name: function})"
        )
    if given - declared:
        extra = ", ".join(sorted(given - declared))
        raise ConfigError(f"ocalls given that the enclave does not declare: {extra}")
    for name, fn in ocalls.items():
        if not callable(fn):
            raise ConfigError(f"ocall {name!r} is not callable")
    return dict(ocalls)
