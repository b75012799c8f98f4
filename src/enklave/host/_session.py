"""One running enclave process and its channel.

Simulation backend: the enclave is a child process started with ``python -I`` (no
PYTHON* variables, no user site, no current directory on the path) and only the
environment variables its config allows, connected to the host by a private
``socketpair``. Gramine-SGX backend: the child is ``gramine-sgx enklave`` (the signed
manifest fixes argv and environment) and connects back over loopback TCP with a
one-time token (:mod:`enklave.backends.gramine._channel`).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from ..channel import ChannelClosed, Endpoint, Message, Mux
from ..channel._messages import LOADFAIL, READY, parse
from ..errors import EnclaveLoadError, EnclaveLost, EnklaveError, ProtocolError
from ..models.identity import Identity
from ..package._config import AppConfig

__all__ = ["MAX_FRAME", "Session"]

log = logging.getLogger("enklave.host")
MAX_FRAME = 16 * 1024 * 1024


class Session:
    """A started enclave process: ``identity``, ``mux`` and ``close()``.

    Raises (from the constructor):
        EnclaveLoadError: the enclave refused to load (signature, measurement,
            interface), with its reason, or did not answer within ``load_timeout``.
    """

    def __init__(
        self,
        bundle_path: Path,
        config: AppConfig,
        *,
        sim_home: Path,
        load_timeout: float,
        spin_gate: Callable[[], bool] | None = None,
        gramine_dir: Path | None = None,
    ) -> None:
        """Start the enclave process and wait for its READY.

        ``spin_gate`` tells the channel reader whether it may poll (see
        :class:`~enklave.channel.Endpoint`); by default it always may. With
        ``gramine_dir`` (the directory of a signed ``enklave.manifest.sgx``) the enclave
        runs under ``gramine-sgx`` (Gramine-SGX backend) instead of a plain interpreter.
        """
        if gramine_dir is not None:
            parent = self._spawn_gramine(gramine_dir, load_timeout)
        else:
            parent = self._spawn_simulation(bundle_path, config, sim_home)
        self._reaped = threading.Lock()
        self.endpoint = Endpoint(parent, max_frame=MAX_FRAME)
        try:
            self.identity = self._handshake(parent, load_timeout)
        except BaseException:
            self.close()
            raise
        if spin_gate is not None:
            self.endpoint.spin_gate = spin_gate
        self.mux = Mux(
            self.endpoint,
            route=None,  # by call id
            make_lost=self._lost,
            on_bad=self._bad_frame,
            on_unroutable=self._unroutable,
        )

    def _spawn_simulation(
        self, bundle_path: Path, config: AppConfig, sim_home: Path
    ) -> socket.socket:
        """Start ``python -I -m enklave.enclave._main`` on one end of a socketpair."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = {k: os.environ[k] for k in config.allowed_env if k in os.environ}
        env["MALLOC_ARENA_MAX"] = "2"
        cmd = [
            sys.executable, "-I", "-m", "enklave.enclave._main",
            "--fd", str(child.fileno()),
            "--bundle", str(bundle_path),
            "--sim-home", str(sim_home),
        ]  # fmt: skip
        try:
            self.proc = subprocess.Popen(
                cmd, pass_fds=(child.fileno(),), env=env, stdin=subprocess.DEVNULL
            )
        except OSError as exc:
            parent.close()
            raise EnclaveLoadError(f"cannot start the enclave process: {exc}") from exc
        finally:
            child.close()
        return parent

    def _spawn_gramine(self, manifest_dir: Path, timeout: float) -> socket.socket:
        """Start ``gramine-sgx enklave`` in ``manifest_dir``; accept its loopback connection.

        The manifest's argv is fixed, so the channel address travels in a variable the
        manifest passes through (``ENKLAVE_CHANNEL``); Gramine passes into the enclave only
        the variables the manifest names (that one and the config's ``allowed_env``), so
        the launcher gets the host's environment.
        """
        from ..backends.gramine._channel import CHANNEL_ENV, accept_enclave, new_channel
        from ..backends.gramine._select import gramine_command

        cmd, cwd = gramine_command(manifest_dir)
        listener, token, address = new_channel()
        env = dict(os.environ, **{CHANNEL_ENV: address})
        with listener:
            try:
                self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL)
            except OSError as exc:
                raise EnclaveLoadError(f"cannot start gramine-sgx: {exc}") from exc
            try:
                return accept_enclave(
                    listener, token, timeout=timeout, alive=lambda: self.proc.poll() is None
                )
            except EnclaveLoadError:
                self.proc.kill()
                self.proc.wait()
                raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _handshake(self, sock: socket.socket, timeout: float) -> Identity:
        sock.settimeout(timeout)
        try:
            kind, _, a, _ = parse(self.endpoint.recv())
        except TimeoutError as exc:
            raise EnclaveLoadError(
                f"the enclave did not report ready within {timeout:.0f}s; see its stderr"
            ) from exc
        except ChannelClosed as exc:
            code = self.proc.wait(timeout=5)
            raise EnclaveLoadError(
                f"the enclave process exited (status {code}) before loading; see its stderr"
            ) from exc
        except EnklaveError as exc:
            raise EnclaveLoadError(f"the enclave sent a malformed first message: {exc}") from exc
        finally:
            sock.settimeout(None)
        if kind == LOADFAIL:
            raise EnclaveLoadError(f"enclave refused to load: {a['message']}")
        if kind != READY:
            raise EnclaveLoadError("the enclave's first message was not READY")
        try:
            return Identity.from_wire(a)
        except ProtocolError as exc:
            raise EnclaveLoadError(f"the enclave reported a malformed identity: {exc}") from exc

    def _lost(self, why: str) -> EnclaveLost:
        status = self.reap()
        return EnclaveLost(
            f"the enclave process is gone (exit status {status}; {why}); "
            "pending calls were aborted, call restart() to start it again"
        )

    def _bad_frame(self, exc: EnklaveError, cid: int) -> None:
        log.error("enclave sent a malformed frame (%s); closing the channel", exc)
        self.mux.kill(f"malformed frame from the enclave: {exc}")

    def _unroutable(self, msg: Message) -> None:
        kind, cid, a, _ = msg
        detail = a.get("message") if isinstance(a, dict) else ""
        log.warning("dropping enclave message kind %s for unknown call %s %s", kind, cid, detail)

    def reap(self) -> int | None:
        """Make sure the process is gone and waited for (no zombies); return its status."""
        with self._reaped:
            if self.proc.poll() is None:
                try:
                    self.proc.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            return self.proc.returncode

    def close(self) -> None:
        """Close the channel (the enclave exits on EOF), then reap the process."""
        if hasattr(self, "mux"):
            self.mux.kill("closed by the host")
        else:
            self.endpoint.close()
        self.reap()
