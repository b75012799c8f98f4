"""Running podman (and mmdebstrap) as subprocesses, with errors that name the fix.

podman reads its engine settings from ``containers.conf``; the ``CONTAINERS_CONF``
environment variable is passed through untouched, so a caller (CI, the tests) can pick
the OCI runtime (``runtime = "runc"``) and ulimits (``default_ulimits``) without enklave
overriding them.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import deque
from collections.abc import Callable, Sequence

from ..errors import DeployError

__all__ = ["INSTALL_HINT", "image_exists", "require_tool", "run_tool", "stream_tool"]

INSTALL_HINT = "install them with `apt-get install podman runc mmdebstrap`"
"""What to do when podman or mmdebstrap is missing (Debian/Ubuntu package names)."""

_TAIL_LINES = 20


def require_tool(name: str) -> str:
    """Return the absolute path of ``name`` on ``PATH``.

    Raises:
        DeployError: the program is not installed.
    """
    path = shutil.which(name)
    if path is None:
        raise DeployError(f"`{name}` is not on PATH; {INSTALL_HINT}")
    return path


def run_tool(args: Sequence[str], *, what: str, timeout: float = 600.0) -> str:
    """Run a command to completion and return its stdout (text).

    Args:
        args: the command; ``args[0]`` is looked up on ``PATH``.
        what: what the command does, for the error message ("inspecting image x").
        timeout: seconds before the command is killed.

    Raises:
        DeployError: the program is missing, fails (non-zero exit, with the end of its
            stderr in the message) or times out.
    """
    argv = [require_tool(args[0]), *args[1:]]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DeployError(f"{what}: `{' '.join(args)}` timed out after {timeout:.0f} s") from exc
    except OSError as exc:
        raise DeployError(f"{what}: cannot run {args[0]}: {exc.strerror}") from exc
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-_TAIL_LINES:])
        raise DeployError(
            f"{what}: `{' '.join(args[:3])} ...` exited with status {proc.returncode}:\n{tail}"
        )
    return proc.stdout


def stream_tool(
    args: Sequence[str], *, what: str, progress: Callable[[str], None], cwd: str | None = None
) -> None:
    """Run a long command, passing each line it prints (stdout and stderr) to ``progress``.

    Raises:
        DeployError: the program is missing or exits non-zero (the message carries the
            last lines it printed).
    """
    argv = [require_tool(args[0]), *args[1:]]
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    try:
        with subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd,
            errors="replace",
        ) as proc:
            assert proc.stdout is not None  # PIPE was requested
            for raw in proc.stdout:
                line = raw.rstrip()
                if line:
                    tail.append(line)
                    progress(line)
            status = proc.wait()
    except OSError as exc:
        raise DeployError(f"{what}: cannot run {args[0]}: {exc.strerror}") from exc
    if status != 0:
        raise DeployError(
            f"{what}: `{' '.join(args[:2])} ...` exited with status {status}:\n"
            + "\n".join(tail)
        )


def image_exists(tag: str) -> bool:
    """Whether podman has a local image called ``tag``.

    Raises:
        DeployError: podman is not installed.
    """
    argv = [require_tool("podman"), "image", "exists", tag]
    try:
        return subprocess.run(argv, capture_output=True, check=False).returncode == 0
    except OSError as exc:
        raise DeployError(f"cannot run podman: {exc.strerror}") from exc
