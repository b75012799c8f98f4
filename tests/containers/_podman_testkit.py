"""Helpers for the podman tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import resource
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HELLO_DIR = REPO / "examples" / "hello"
HELLO_TAG = "localhost/enklave-test-hello:latest"

requires_podman = pytest.mark.skipif(shutil.which("podman") is None,
                                     reason="podman is not installed (CI installs it)")


def containers_conf_text() -> str:
    """runc plus ulimits no higher than this process's hard limits."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nofile = 20000 if nofile == resource.RLIM_INFINITY else min(nofile, 1 << 20)
    nproc = 4096 if nproc == resource.RLIM_INFINITY else min(4096, max(nproc - 1, 1))
    return (
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def podman(*args: str, check: bool = True, timeout: float = 300) -> str:
    """Run podman; return stdout (raises with stderr in the message on failure)."""
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def podman_bytes(*args: str, timeout: float = 120) -> bytes:
    """Run podman; return stdout as bytes (raises on failure)."""
    return subprocess.run(["podman", *args], capture_output=True, check=True,
                          timeout=timeout).stdout
