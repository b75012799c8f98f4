"""The simulated platform's root sealing secret (simulation backend only).

On real SGX hardware the sealing root key is fused into the CPU and never leaves it.
The simulation backend stands in for it with 32 random bytes kept in an ordinary file,
``platform-seal.key``, under :func:`sim_home`. This is NOT hardware protection: any
process running as the same user (or root) can read the file and unseal everything
sealed on this simulated platform. Use it for development and tests only.

The file is created once, atomically: the secret is written to a private temporary
file in the same directory (``O_EXCL``, mode ``0600``), flushed to disk, then published
with ``os.link``, which fails if the name already exists. When several threads or
processes race, exactly one link succeeds and every caller reads back that one secret.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from enklave.errors import PlatformError

__all__ = [
    "PLATFORM_KEY_FILENAME",
    "PLATFORM_SECRET_SIZE",
    "load_or_create_platform_secret",
    "platform_id",
    "sim_home",
]

PLATFORM_SECRET_SIZE: Final = 32
PLATFORM_KEY_FILENAME: Final = "platform-seal.key"

_ENV_HOME: Final = "ENKLAVE_SIM_HOME"
_DIR_MODE: Final = 0o700
_FILE_MODE: Final = 0o600
_PLATFORM_ID_INFO: Final = b"enklave-platform-id"
_POSIX: Final = os.name == "posix"


def sim_home() -> Path:
    """Return the simulated platform's state directory (it is not created here).

    Checked, in order: ``$ENKLAVE_SIM_HOME`` if set and non-empty; else
    ``$XDG_DATA_HOME/enklave/sim`` if ``XDG_DATA_HOME`` is an absolute path (the XDG
    spec says to ignore relative values); else ``~/.local/share/enklave/sim``.

    Returns:
        The directory path, with ``~`` expanded.
    """
    override = os.environ.get(_ENV_HOME, "")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "enklave" / "sim"
    return Path.home() / ".local" / "share" / "enklave" / "sim"


def load_or_create_platform_secret(home: Path | None = None) -> bytes:
    """Return the simulated platform secret, creating it on first use.

    The directory is created with mode ``0700`` if missing; the secret file is created
    with mode ``0600``. Safe against concurrent callers (threads or processes): all of
    them get the same secret. An existing file is never modified.

    Args:
        home: the state directory; defaults to :func:`sim_home`.

    Returns:
        The 32-byte platform secret.

    Raises:
        PlatformError: if the directory cannot be created or is writable by group or
            others, the file is a symlink or not a regular file, is readable or
            writable by group or others (fix with ``chmod 600``), has the wrong size
            (corrupt), or cannot be read or written.
    """
    directory = sim_home() if home is None else Path(home)
    _ensure_directory(directory)
    path = directory / PLATFORM_KEY_FILENAME
    for _attempt in range(3):
        existing = _read_secret(path)
        if existing is not None:
            return existing
        created = _create_secret(directory, path)
        if created is not None:
            return created
    raise PlatformError(
        f"platform secret {path} keeps appearing and disappearing; make sure no other "
        "program deletes it, then retry"
    )


def platform_id(secret: bytes) -> str:
    """Return a short, non-secret fingerprint of a platform secret, for display.

    The fingerprint is 8 bytes of HKDF-SHA256 output (``info=b"enklave-platform-id"``)
    in hex; it does not reveal the secret.

    Args:
        secret: the platform secret.

    Returns:
        16 lowercase hex characters.

    Raises:
        PlatformError: if ``secret`` is not bytes or is empty.
    """
    if not isinstance(secret, bytes | bytearray | memoryview) or len(secret) == 0:
        raise PlatformError(
            "platform secret must be non-empty bytes; load it with load_or_create_platform_secret()"
        )
    kdf = HKDF(algorithm=hashes.SHA256(), length=8, salt=None, info=_PLATFORM_ID_INFO)
    return kdf.derive(bytes(secret)).hex()


def _ensure_directory(directory: Path) -> None:
    """Create ``directory`` with mode 0700 if missing; refuse one others can write to."""
    try:
        directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=False)
    except FileExistsError:
        pass
    except OSError as exc:
        raise PlatformError(
            f"cannot create simulated platform directory {directory} ({exc.strerror}); "
            f"check its parent's permissions or set {_ENV_HOME} to a writable directory"
        ) from exc
    else:
        _chmod(directory, _DIR_MODE)  # mkdir's mode is filtered by the umask
    try:
        info = directory.stat()
    except OSError as exc:
        raise PlatformError(
            f"cannot access simulated platform directory {directory} ({exc.strerror}); "
            f"check its permissions or set {_ENV_HOME} to another directory"
        ) from exc
    if not stat.S_ISDIR(info.st_mode):
        raise PlatformError(
            f"{directory} is not a directory; remove it or set {_ENV_HOME} elsewhere"
        )
    if _POSIX and info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PlatformError(
            f"simulated platform directory {directory} is writable by group or others; "
            f"run `chmod 700 {directory}` and retry"
        )


def _chmod(path: Path, mode: int) -> None:
    """chmod ``path``; PlatformError on failure."""
    try:
        os.chmod(path, mode)
    except OSError as exc:
        raise PlatformError(
            f"cannot set permissions on {path} ({exc.strerror}); check who owns it"
        ) from exc


def _read_secret(path: Path) -> bytes | None:
    """Read and check the secret file; None if it does not exist, PlatformError if bad."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PlatformError(
                f"platform secret {path} is a symlink, which is refused; replace it with "
                "the real file"
            ) from exc
        raise PlatformError(
            f"cannot open platform secret {path} ({exc.strerror}); check that it is "
            "owned by you and has mode 0600"
        ) from exc
    try:
        return _read_checked(fd, path)
    finally:
        os.close(fd)


def _read_checked(fd: int, path: Path) -> bytes:
    """Check type, mode and size of an open secret file and return its bytes."""
    try:
        info = os.fstat(fd)
        data = _read_all(fd, PLATFORM_SECRET_SIZE + 1)
    except OSError as exc:
        raise PlatformError(
            f"cannot read platform secret {path} ({exc.strerror}); check the disk and "
            "the file's permissions"
        ) from exc
    if not stat.S_ISREG(info.st_mode):
        raise PlatformError(f"platform secret {path} is not a regular file; remove it")
    if _POSIX and info.st_mode & 0o077:
        raise PlatformError(
            f"platform secret {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {path}` and retry"
        )
    if len(data) != PLATFORM_SECRET_SIZE:
        raise PlatformError(
            f"platform secret {path} is corrupt (expected {PLATFORM_SECRET_SIZE} bytes, "
            f"found {info.st_size}); to "
            "reset the simulated platform delete the file, but everything sealed under "
            "it will be lost for good"
        )
    return data


def _read_all(fd: int, limit: int) -> bytes:
    """Read up to ``limit`` bytes from ``fd``, looping over short reads."""
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(fd, remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _create_secret(directory: Path, path: Path) -> bytes | None:
    """Publish a new secret at ``path``; None if another caller published one first."""
    value = secrets.token_bytes(PLATFORM_SECRET_SIZE)
    tmp = directory / f".{PLATFORM_KEY_FILENAME}.{secrets.token_hex(8)}.tmp"
    try:
        _write_private(tmp, value)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return None
        _fsync_directory(directory)
    except OSError as exc:
        raise PlatformError(
            f"cannot create platform secret {path} ({exc.strerror}); check that "
            f"{directory} is writable and on a local filesystem with hard-link support, "
            f"or set {_ENV_HOME} to one"
        ) from exc
    finally:
        _unlink_quietly(tmp)
    return value


def _write_private(tmp: Path, value: bytes) -> None:
    """Write ``value`` to a new file with mode 0600 (O_EXCL) and fsync it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, _FILE_MODE)
    try:
        if _POSIX:
            os.fchmod(fd, _FILE_MODE)  # os.open's mode is filtered by the umask
        view = memoryview(value)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    """fsync ``directory`` so the new name survives a crash (no-op where unsupported)."""
    if not _POSIX:
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    """Remove a temporary file, ignoring any error (missing file included)."""
    # A leftover temp file has mode 0600 like the real one; failing here helps no one.
    with contextlib.suppress(OSError):
        os.unlink(path)
