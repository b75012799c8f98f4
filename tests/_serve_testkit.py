"""Test kit for `enklave serve`: run it as a real subprocess and build relying parties."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from enklave.atls import PeerVerifier
from enklave.backends.simulation import SimPlatform
from enklave.errors import PlatformError
from enklave.verify import Policy, TrustAnchor, Verifier, default_policy

REPO = Path(__file__).resolve().parent.parent
HELLO_HOST = REPO / "examples" / "hello" / "host.py"
_BANNER = re.compile(r"serving (https://\S+):(\d+) \(MRENCLAVE ([0-9a-f]{64}), (.+)\)")


def verifier_for(sim_home: Path, mrenclave: bytes, policy: Policy | None = None) -> PeerVerifier:
    """A relying party for simulated enclaves on ``sim_home`` (like examples/attested_tls)."""
    try:
        platform = SimPlatform.load(sim_home)
    except PlatformError:
        platform = SimPlatform.init(sim_home)
    verifier = Verifier(anchors=TrustAnchor.simulation(sim_home), collateral=platform.collateral())
    chosen = policy or default_policy(mrenclave=[mrenclave], allow_simulated=True)
    return PeerVerifier(verifier=verifier, policy=chosen)


class ServeProcess:
    """``python -m enklave serve BUNDLE --port 0 ...`` with its stderr collected."""

    def __init__(self, bundle: Path, sim_home: Path, *extra: str, bind: str = "127.0.0.1",
                 timeout: float = 60.0) -> None:
        self.sim_home = sim_home
        cmd = [sys.executable, "-m", "enklave", "serve", str(bundle), "--port", "0",
               "--bind", bind, "--sim-home", str(sim_home), *extra]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     text=True, env=env)
        self.lines: list[str] = []
        self._banner: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        line = self._wait_banner(timeout)
        m = _BANNER.search(line)
        assert m, line
        self.port = int(m.group(2))
        self.mrenclave = bytes.fromhex(m.group(3))
        self.mode = m.group(4)
        self.url = f"https://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if line.startswith("serving "):
                self._banner.put(line)
        self._banner.put("")

    def _wait_banner(self, timeout: float) -> str:
        try:
            line = self._banner.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise AssertionError("enklave serve printed no banner:\n" + self.log) from None
        if not line:
            self.proc.wait(timeout=10)
            raise AssertionError(f"enklave serve exited {self.proc.returncode}:\n{self.log}")
        return line

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def enclave_pids(self) -> list[int]:
        """The serve process's children (the enclave process)."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()]

    def terminate(self, timeout: float = 20.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def process_gone(pid: int, timeout: float = 5.0) -> bool:
    """True once ``pid`` no longer exists (or is a zombie nobody will reap)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False
