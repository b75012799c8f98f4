"""On-disk state of the simulated DCAP platform: one directory, replaced as a whole.

Layout (under ``<sim home>/dcap``, mode ``0700``): ``platform.json`` (non-secret
settings), ``*.key`` (PKCS#8 PEM private keys, mode ``0600``), ``*.pem`` certificates,
and the signed collateral (``tcb-info-sgx.json``, ``qe-identity-sgx.json`` in the PCS
response shape, ``pck-crl-processor.der``, ``root-ca-crl.der``).

Every change writes a complete new directory next to the old one (``O_EXCL`` files,
fsynced) and renames it into place, so a reader never sees a half-written platform.
Creation without ``replace`` uses ``rename`` onto a missing name: when two processes race,
one wins and the other keeps the winner's state. Replacing moves the old directory aside
first; between the two renames the state is briefly absent (one writer at a time, please).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from enklave._simplatform import _ensure_directory, _fsync_directory, sim_home
from enklave.errors import PlatformError

__all__ = ["STATE_DIRNAME", "read_file", "state_dir", "write_state"]

STATE_DIRNAME: Final = "dcap"
_DIR_MODE: Final = 0o700
_SECRET_MODE: Final = 0o600
_PUBLIC_MODE: Final = 0o644
_MAX_FILE: Final = 1 << 20
_POSIX: Final = os.name == "posix"


def state_dir(home: Path | None) -> Path:
    """Return ``<home>/dcap`` where ``home`` defaults to :func:`enklave._simplatform.sim_home`."""
    return (sim_home() if home is None else Path(home)) / STATE_DIRNAME


def write_state(target: Path, files: Mapping[str, tuple[bytes, bool]], *, replace: bool) -> bool:
    """Write a complete state directory and move it to ``target``.

    Args:
        target: the state directory (``<home>/dcap``); its parent is created ``0700``.
        files: name -> (content, secret); secret files get mode ``0600``, others ``0644``.
        replace: replace an existing ``target``; otherwise keep it.

    Returns:
        True if ``target`` now holds ``files``; False if it already existed (and
        ``replace`` was false), in which case nothing was changed.

    Raises:
        PlatformError: if the directory cannot be created or written.
    """
    parent = target.parent
    _ensure_directory(parent)
    tmp = parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
    try:
        _write_tree(tmp, files)
        if replace:
            return _swap_in(tmp, target)
        try:
            os.rename(tmp, target)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) or target.exists():
                return False
            raise
        _fsync_directory(parent)
        return True
    except OSError as exc:
        raise PlatformError(
            f"cannot write simulated DCAP platform state to {target} ({exc.strerror}); check "
            "that the directory is writable, or set ENKLAVE_SIM_HOME to one"
        ) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _write_tree(tmp: Path, files: Mapping[str, tuple[bytes, bool]]) -> None:
    """Create ``tmp`` (0700) and write every file into it, fsynced."""
    os.mkdir(tmp, _DIR_MODE)
    os.chmod(tmp, _DIR_MODE)  # mkdir's mode is filtered by the umask
    for name, (content, secret) in files.items():
        _write_file(tmp / name, content, _SECRET_MODE if secret else _PUBLIC_MODE)
    _fsync_directory(tmp)


def _swap_in(tmp: Path, target: Path) -> bool:
    """Move ``target`` aside (if present), move ``tmp`` to ``target``, drop the old one."""
    old = target.parent / f".{target.name}.{secrets.token_hex(8)}.old"
    had_old = True
    try:
        os.rename(target, old)
    except FileNotFoundError:
        had_old = False
    os.rename(tmp, target)
    _fsync_directory(target.parent)
    if had_old:
        shutil.rmtree(old, ignore_errors=True)
    return True


def _write_file(path: Path, content: bytes, mode: int) -> None:
    """Create ``path`` exclusively with ``mode`` (not filtered by the umask) and fsync it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, mode)
    try:
        if _POSIX:
            os.fchmod(fd, mode)
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_file(path: Path, *, secret: bool) -> bytes:
    """Read one state file, refusing symlinks, non-regular files and oversize files.

    Args:
        path: the file.
        secret: also refuse the file if group or others can access it.

    Returns:
        The file's bytes.

    Raises:
        PlatformError: if the file is missing (the platform is not initialised), is a
            symlink, is not a regular file, is too large, has unsafe permissions, or
            cannot be read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as exc:
        raise PlatformError(
            f"simulated DCAP platform file {path} is missing; run `enklave sim init` "
            "(or `enklave sim init --force` to re-create a damaged platform)"
        ) from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PlatformError(f"{path} is a symlink, which is refused; replace it") from exc
        raise PlatformError(f"cannot open {path} ({exc.strerror}); check its owner") from exc
    try:
        return _read_checked(fd, path, secret=secret)
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def _read_checked(fd: int, path: Path, *, secret: bool) -> bytes:
    """Check the open file's type, mode and size, then read it."""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PlatformError(f"{path} is not a regular file; remove it")
        if secret and _POSIX and info.st_mode & 0o077:
            raise PlatformError(
                f"private key {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {path}` and retry"
            )
        if info.st_size > _MAX_FILE:
            raise PlatformError(f"{path} is too large to be platform state; remove it")
        chunks: list[bytes] = []
        remaining = _MAX_FILE + 1
        while remaining > 0 and (chunk := os.read(fd, remaining)):
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        if len(data) > _MAX_FILE:
            raise PlatformError(f"{path} is too large to be platform state; remove it")
        return data
    except OSError as exc:
        raise PlatformError(f"cannot read {path} ({exc.strerror})") from exc
