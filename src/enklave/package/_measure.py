"""Simulation MRENCLAVE: SHA-256 over a canonical measurement log.

The log is the deterministic CBOR encoding of::

    ["enklave-mrenclave-v1",
     config,          # AppConfig.to_canonical()
     interface,       # Interface.descriptor()
     app_files,       # [[relative path, size, sha256], ...] sorted by path
     runtime_files]   # enklave's own trusted-runtime files, same shape

It depends only on file contents and relative paths, never on times, owners or the
build directory, so the same sources give the same MRENCLAVE anywhere. Including the
trusted runtime means an enclave built with one enklave version refuses to load under
another, as an SGX enclave's measurement covers its runtime library.

What it does not cover (simulation): the Python interpreter, the standard library and
third-party packages such as ``cryptography``. Under Gramine those are measured as
trusted files; in simulation nothing protects them (see docs/threat-model.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from importlib import resources
from pathlib import PurePosixPath
from typing import Any

from .._encoding import dumps

__all__ = [
    "TRUSTED_RUNTIME",
    "FileEntry",
    "file_entry",
    "measurement_log",
    "mrenclave_of",
    "runtime_files",
]

FileEntry = tuple[str, int, bytes]

#: The parts of enklave that run inside the enclave (files or whole subpackages).
TRUSTED_RUNTIME: tuple[str, ...] = (
    "__init__.py",
    "errors.py",
    "_encoding.py",
    "_interface.py",
    "_simplatform.py",
    "backends/__init__.py",
    "backends/simulation/",
    "backends/gramine/",
    "atls/",
    "channel/",
    "collateral/__init__.py",
    "collateral/_model.py",
    "enclave/",
    "models/",
    "package/",
    "verify/",
)
_LOG_TAG = "enklave-mrenclave-v1"


def file_entry(path: str, data: bytes) -> FileEntry:
    """The log entry of one file: (relative path, size, SHA-256)."""
    return (path, len(data), hashlib.sha256(data).digest())


def runtime_files() -> list[FileEntry]:
    """Log entries for this installation's trusted-runtime files.

    Read afresh on every call (about a millisecond; once per build or load), so a
    long-lived build process never measures a stale runtime.
    """
    root = resources.files("enklave")
    entries: list[FileEntry] = []
    for part in TRUSTED_RUNTIME:
        node = root.joinpath(part.rstrip("/"))
        if part.endswith("/"):
            names = sorted(n.name for n in node.iterdir() if n.name.endswith(".py"))
            paths = [(f"enklave/{part}{name}", node.joinpath(name)) for name in names]
        else:
            paths = [(f"enklave/{part}", node)]
        entries.extend(file_entry(rel, p.read_bytes()) for rel, p in paths)
    return sorted(entries)


def measurement_log(
    config: dict[str, Any],
    interface: dict[str, Any],
    app_files: Iterable[FileEntry],
    runtime: Iterable[FileEntry],
) -> bytes:
    """The canonical measurement log (deterministic CBOR bytes)."""
    app_list = sorted(app_files)
    for path, _, _ in app_list:
        pure = PurePosixPath(path)
        if pure.is_absolute() or ".." in pure.parts:  # pragma: no cover - checked earlier
            raise ValueError(f"measured path {path!r} is not a clean relative path")
    apps = [[p, n, h] for p, n, h in app_list]
    rt = [[p, n, h] for p, n, h in sorted(runtime)]
    return dumps([_LOG_TAG, config, interface, apps, rt], max_depth=48)


def mrenclave_of(
    config: dict[str, Any],
    interface: dict[str, Any],
    app_files: Iterable[FileEntry],
    runtime: Iterable[FileEntry],
) -> bytes:
    """SHA-256 of :func:`measurement_log`: the simulation MRENCLAVE (32 bytes)."""
    return hashlib.sha256(measurement_log(config, interface, app_files, runtime)).digest()
