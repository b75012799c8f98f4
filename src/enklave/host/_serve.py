"""``enklave serve``: start an enclave whose ECALLs are reachable over attested TLS.

The host only starts things: the enclave itself listens (the ``__enklave_gateway__``
runtime ECALL), makes its TLS key and certificate, and decrypts requests. The host then
donates every enclave thread (``__enklave_gateway_worker__``): each donated call parks an
enclave thread in the gateway, and the host thread that made it serves the OCALLs the
HTTPS-called ECALLs make on it. The host sees ciphertext and OCALL traffic only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, cast

from .._interface import FunctionSpec
from ..errors import BoundsError, ConfigError, EnclaveClosed, EnclaveLost, EnklaveError
from ._enclave import Enclave

__all__ = ["Serving", "default_state_dir", "load_ocalls", "serve", "start_serving"]

START_ECALL = "__enklave_gateway__"
WORKER_ECALL = "__enklave_gateway_worker__"
SIMULATED = "SIMULATED: no hardware protection"


@dataclass(frozen=True)
class _RuntimeCall:
    """A runtime ECALL seen by :meth:`Enclave.ecall` (duck-typed like a FunctionSpec)."""

    name: str
    returns_port: bool

    def check_args(self, values: list[Any]) -> list[Any]:
        return values

    def check_result(self, value: object) -> object:
        if self.returns_port and (type(value) is not int or not 0 < value <= 65535):
            raise BoundsError(f"{self.name} returned {value!r}, not a port")
        return value


_START = cast(FunctionSpec, _RuntimeCall(START_ECALL, returns_port=True))
_WORKER = cast(FunctionSpec, _RuntimeCall(WORKER_ECALL, returns_port=False))


def default_state_dir() -> Path:
    """Where OCALL state goes without ``--state``: ``$TMPDIR/enklave-state``."""
    return Path(tempfile.gettempdir()) / "enklave-state"


def load_ocalls(path: Path, state_dir: Path) -> dict[str, Callable[..., Any]]:
    """Import ``path`` and return ``ocalls(state_dir)``: the host functions for the OCALLs.

    Raises:
        ConfigError: the file cannot be imported, defines no ``ocalls`` function, or it
            does not return a dict of callables.
    """
    spec = importlib.util.spec_from_file_location(f"enklave_ocalls_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import {path}: give a .py file defining ocalls(state_dir)")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's module: any failure is a config problem
        raise ConfigError(f"importing {path} failed: {exc!r}; fix the file") from exc
    make = getattr(module, "ocalls", None)
    if not callable(make):
        raise ConfigError(f"{path} defines no function ocalls(state_dir) -> dict[str, Callable]")
    try:
        table = make(state_dir)
    except Exception as exc:
        raise ConfigError(f"{path}: ocalls({state_dir}) failed: {exc!r}") from exc
    if not isinstance(table, Mapping) or not all(
        isinstance(k, str) and callable(v) for k, v in table.items()
    ):
        raise ConfigError(f"{path}: ocalls() must return a dict of OCALL name -> function")
    return dict(table)


class Serving:
    """An enclave serving its ECALLs over attested TLS (see :func:`start_serving`).

    Attributes:
        enclave: the host's handle (for identity and pid).
        port: the port the enclave listens on.
        url: ``https://BIND:PORT``.
        failed: the error that ended a donated thread early (the enclave died), or None.
        stopped: set when serving should end (a signal, :meth:`close`, or a failure).
    """

    def __init__(self, enclave: Enclave, port: int, bind: str) -> None:
        self.enclave, self.port = enclave, port
        self.url = f"https://{_host_in_url(bind)}:{port}"
        self.failed: EnklaveError | None = None
        self.stopped = threading.Event()
        self._threads = [
            threading.Thread(target=self._donate, name=f"enklave-gateway-{i}", daemon=True)
            for i in range(enclave.config.max_threads)
        ]
        for t in self._threads:
            t.start()

    def _donate(self) -> None:
        try:
            self.enclave.ecall(_WORKER, [])
        except EnclaveClosed:
            pass
        except EnklaveError as exc:
            if not self.stopped.is_set():
                self.failed = exc
        self.stopped.set()

    def banner(self) -> str:
        """``serving https://BIND:PORT (MRENCLAVE …, SIMULATED: no hardware protection)``."""
        ident = self.enclave.identity
        mode = SIMULATED if ident.simulated else "hardware"
        return f"serving {self.url} (MRENCLAVE {ident.mrenclave.hex()}, {mode})"

    def close(self) -> None:
        """Stop the enclave (it closes its listener as it exits) and reap it. Idempotent."""
        self.stopped.set()
        self.enclave.close()
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> Serving:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_serving(
    bundle: str | Path,
    *,
    port: int = 8443,
    bind: str = "127.0.0.1",
    ocalls: Mapping[str, Callable[..., Any]] | None = None,
    sim_home: str | Path | None = None,
    backend: str | None = None,
) -> Serving:
    """Open the enclave, have it listen on ``bind:port`` and donate its threads.

    ``backend`` is "simulation", "gramine" or "auto"; None reads ``ENKLAVE_BACKEND``
    (what the Kubernetes manifests set) and defaults to simulation. "gramine" never falls
    back to simulation.

    Raises:
        ConfigError, BundleError, EnclaveLoadError: as :meth:`Enclave.open`.
        PlatformError: "gramine" was asked for but SGX or Gramine is missing.
        EnclaveCallError: the enclave could not listen (code ``listen``: port in use or
            address not available) or issue its TLS credentials.
    """
    if not 0 <= port <= 65535:
        raise ConfigError(f"port {port} is not in 0..65535")
    from ..backends.gramine import select_backend

    enc = Enclave.open(bundle, backend=select_backend(backend), ocalls=ocalls, sim_home=sim_home)
    try:
        bound = enc.ecall(_START, [port, bind])
    except BaseException:
        enc.close()
        raise
    return Serving(enc, cast(int, bound), bind)


def serve(
    bundle: str | Path,
    *,
    port: int = 8443,
    bind: str = "127.0.0.1",
    ocalls_file: Path | None = None,
    sim_home: str | Path | None = None,
    state_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
    backend: str | None = None,
) -> int:
    """Serve ``bundle``'s ECALLs over attested TLS until SIGTERM/SIGINT; return 0.

    Args:
        bundle: the bundle file.
        port, bind: where the enclave listens (``0.0.0.0`` in a container).
        ocalls_file: a ``.py`` file defining ``ocalls(state_dir) -> dict`` (apps with OCALLs).
        sim_home: the simulated platform directory (default ``ENKLAVE_SIM_HOME``).
        state_dir: passed to ``ocalls()`` (default :func:`default_state_dir`).
        log: where the banner goes (default: stderr).
        backend: as :func:`start_serving` (None: ``ENKLAVE_BACKEND``, else simulation).

    Raises:
        ConfigError, EnclaveLoadError, EnclaveCallError: as :func:`start_serving`,
            :func:`load_ocalls`.
        EnclaveLost: the enclave died while serving.
    """
    say = log or _stderr
    table = load_ocalls(ocalls_file, state_dir or default_state_dir()) if ocalls_file else None
    with _signals_set() as stop, start_serving(
        bundle, port=port, bind=bind, ocalls=table, sim_home=sim_home, backend=backend
    ) as serving:
        say(serving.banner())
        while not (stop.is_set() or serving.stopped.is_set()):
            stop.wait(0.5)
        if serving.failed is not None and not stop.is_set():
            raise EnclaveLost(f"the enclave stopped serving: {serving.failed}")
    say("stopped: the enclave was closed")
    return 0


@contextlib.contextmanager
def _signals_set() -> Iterator[threading.Event]:
    """An event set by SIGTERM/SIGINT while inside (handlers only in the main thread)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _host_in_url(bind: str) -> str:
    return f"[{bind}]" if ":" in bind else bind


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
