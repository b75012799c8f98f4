"""A raw host for attack tests: launch the enclave process and talk bytes to it."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from enklave._encoding import dumps, loads

READY, LOADFAIL = 7, 8
ECALL, RETURN, ERROR = 1, 2, 3


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def msg(*items: Any) -> bytes:
    """Frame a message (any items, encoded as deterministic CBOR)."""
    return frame(dumps(list(items), max_depth=64))


class RawEnclave:
    """An enclave process on one end of a socketpair, the test on the other."""

    def __init__(
        self, bundle: Path, sim_home: Path, *, timeout: float = 20.0, wait: bool = True
    ) -> None:
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        cmd = [
            sys.executable, "-I", "-m", "enklave.enclave._main",
            "--fd", str(child.fileno()),
            "--bundle", str(bundle),
            "--sim-home", str(sim_home),
        ]  # fmt: skip
        try:
            self.proc = subprocess.Popen(
                cmd, pass_fds=(child.fileno(),), env={}, stdin=subprocess.DEVNULL
            )
        finally:
            child.close()
        self.sock.settimeout(timeout)
        self._buf = bytearray()
        self.identity: Any = None
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Read the first frame and check it is READY (start several, then wait on each)."""
        first = self.recv_frame()
        if first[1] != READY:
            self.close()
            raise AssertionError(f"enclave did not report READY: {first!r}")
        self.identity = first[3]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise EOFError("enclave closed the channel")
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def recv_frame(self) -> list[Any]:
        """Read one frame and decode it; a hang raises TimeoutError, EOF raises EOFError."""
        n = int.from_bytes(self._read_exact(4), "big")
        return loads(self._read_exact(n), max_depth=64)

    def call(self, cid: int, name: str, args: list[Any]) -> list[Any]:
        self.send_raw(msg(1, ECALL, cid, name, args))
        return self.recv_frame()

    def wait_eof(self) -> None:
        """Assert the enclave closes the channel (reads and discards until EOF)."""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return

    def close(self) -> int | None:
        try:
            self.sock.close()
        finally:
            try:
                return self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait()

    def __enter__(self) -> RawEnclave:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
