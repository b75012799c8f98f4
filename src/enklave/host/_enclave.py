"""The untrusted host's handle on an enclave: typed calls, OCALL serving, restarts."""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from .._interface import FunctionSpec, Interface
from .._simplatform import sim_home as default_sim_home
from ..channel._messages import ECALL, ERROR, OCALL, OERROR, ORETURN, RETURN, error_record
from ..channel._mux import Message, Mux
from ..channel._wire import call_frame, reply_frame, text_cbor
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
BACKENDS = ("simulation", "gramine", "auto")
OcallTable = Mapping[str, Callable[..., Any]]


class _CallProxy:
    """``enc.call.NAME(*args, **kwargs)``: one attribute per declared ECALL.

    Each ECALL's function is built on first use and then kept as an attribute.
    """

    def __init__(self, enclave: Enclave) -> None:
        self._enclave = enclave

    def __getattr__(self, name: str) -> Callable[..., Any]:
        spec = self._enclave.interface.ecalls.get(name)
        if spec is None:
            known = ", ".join(self._enclave.interface.ecalls) or "none"
            raise AttributeError(f"the enclave declares no ECALL {name!r} (ECALLs: {known})")
        run, bind, n = self._enclave._runner(spec), spec.bind, len(spec.params)

        def ecall(*args: Any, **kwargs: Any) -> Any:
            if kwargs or len(args) != n:
                return run(bind(args, kwargs))
            return run(list(args))

        ecall.__name__ = name
        self.__dict__[name] = ecall
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
        self,
        bundle_path: Path,
        *,
        ocalls: OcallTable,
        sim_home: Path,
        load_timeout: float,
        gramine_dir: Path | None = None,
    ) -> None:
        bundle = read_bundle(bundle_path)
        self.bundle_path = bundle_path
        self.config = bundle.config
        self.interface: Interface = bundle.interface
        self._gramine_dir = gramine_dir
        self._expected_mrenclave = bundle.mrenclave
        if gramine_dir is not None:  # under SGX, MRENCLAVE is the signed manifest's
            from ..backends.gramine import read_signed_mrenclave

            self._expected_mrenclave = read_signed_mrenclave(gramine_dir)
        self._ocalls = _check_ocalls(bundle.interface, ocalls)
        self._sim_home = sim_home
        self._load_timeout = load_timeout
        self._ids = itertools.count(1)
        self._names = {name: text_cbor(name) for name in self.interface.ecalls}
        # one token per enclave thread (TCS): a call holds one while in flight
        self._max_threads = bundle.config.max_threads
        self._single = self._max_threads == 1  # then a call is always alone in flight
        self._slots: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(self._max_threads):
            self._slots.put(None)
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
        gramine_dir: str | Path | None = None,
    ) -> Enclave:
        """Start the enclave in ``bundle`` and wait until it has verified itself.

        Args:
            bundle: a bundle file from ``enklave build``.
            backend: ``"simulation"`` (a software platform: no hardware protection),
                ``"gramine"`` (real SGX through ``gramine-sgx``; needs an SGX device,
                Gramine and a signed manifest, never falls back) or ``"auto"`` (gramine
                when the device and ``gramine-sgx`` are present, else simulation; the
                choice is logged). See docs/gramine.md.
            ocalls: host functions for every OCALL the enclave declares.
            sim_home: the simulated platform directory (default ``ENKLAVE_SIM_HOME``).
            load_timeout: seconds to wait for the enclave to report ready.
            gramine_dir: (gramine) the directory holding ``enklave.manifest.sgx`` and
                ``enklave.sig`` (default ``BUNDLE.gramine/``, as written by
                ``enklave gramine manifest BUNDLE --sign``).

        Raises:
            ConfigError: unknown backend, or ``ocalls`` does not match the declared OCALLs.
            PlatformError: backend "gramine" without an SGX device, ``gramine-sgx`` or a
                signed manifest.
            BundleError: the bundle file is unreadable or malformed.
            EnclaveLoadError: the enclave refused to load (signature, measurement,
                interface); no application code ran.
        """
        from ..backends.gramine import default_manifest_dir, select_backend

        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}; use one of: {', '.join(BACKENDS)}")
        chosen = select_backend(backend)
        path = Path(bundle)
        manifests = None
        if chosen == "gramine":
            manifests = Path(gramine_dir) if gramine_dir is not None else default_manifest_dir(path)
        home = Path(sim_home) if sim_home is not None else default_sim_home()
        return cls(
            path, ocalls=ocalls or {}, sim_home=home, load_timeout=load_timeout,
            gramine_dir=manifests,
        )  # fmt: skip

    # -- lifecycle -------------------------------------------------------------
    def _start(self) -> None:
        session = Session(
            self.bundle_path,
            self.config,
            sim_home=self._sim_home,
            load_timeout=self._load_timeout,
            spin_gate=self._alone if self._max_threads > 1 else None,
            gramine_dir=self._gramine_dir,
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

    def _alone(self) -> bool:
        """True while at most one ECALL is in flight (the caller's own)."""
        return self._slots.qsize() >= self._max_threads - 1

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
        """Make an ECALL with a full positional argument list (the proxy's back end).

        Checks the arguments, waits for a free enclave thread (at most ``max_threads``
        ECALLs in flight, like waiting for a free TCS), sends the call and serves the
        OCALLs it makes until its result arrives; the result is checked too.
        """
        return self._runner(spec)(values)

    def _runner(self, spec: FunctionSpec) -> Callable[[list[Any]], Any]:
        """Build ``run(values)`` for one ECALL: :meth:`ecall` with its lookups done once."""
        check_args, check_result = spec.check_args, spec.check_result
        name_cbor = self._names.get(spec.name) or text_cbor(spec.name)
        slots, ids, single, alone = self._slots, self._ids, self._single, self._alone

        def run(values: list[Any]) -> Any:
            values = check_args(values)
            slots.get()
            try:
                session = self._session
                if session is None or self._closed:
                    session = self._current()  # raises
                mux = session.mux
                cid = next(ids)
                frame = call_frame(ECALL, cid, name_cbor, values)
                kind, _, a, b = mux.request(cid, frame, alone=single or alone())
                while kind != RETURN:
                    kind, _, a, b = self._not_returned(mux, cid, kind, a, b)
                return check_result(a)
            finally:
                slots.put(None)

        return run

    def _not_returned(self, mux: Mux, cid: int, kind: int, a: Any, b: Any) -> Message:
        """Handle a message for an ECALL in flight other than its RETURN; return the next."""
        if kind == ERROR:
            raise EnclaveCallError(
                a["type"], a["message"], remote_traceback=a.get("traceback"), code=a["code"]
            )
        if kind == OCALL:
            return mux.request(cid, self._serve_ocall(mux, a, b, cid), alone=self._alone())
        mux.kill(f"unexpected message kind {kind} during an ECALL")
        raise ProtocolError(f"the enclave sent message kind {kind} during an ECALL")

    def _serve_ocall(self, mux: Mux, name: str, args: list[Any], cid: int) -> bytes | list[bytes]:
        """Run an OCALL; return the frame that answers it (ORETURN, or OERROR on failure)."""
        try:
            spec = self.interface.ocalls.get(name)
            if spec is None:
                raise ProtocolError(f"the enclave called an undeclared OCALL {name!r}")
            result = self._ocalls[name](*spec.check_args(args))
            return mux.endpoint.prepare(reply_frame(ORETURN, cid, result))
        except EnclaveLost:
            raise
        except Exception as exc:
            log.debug("OCALL %s failed on the host: %r", name, exc)
            code = exc.code if isinstance(exc, EnklaveError) else "host"
            rec = error_record(type(exc).__name__, str(exc), code)
            return reply_frame(OERROR, cid, rec)


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
