"""An on-disk cache of PCS/PCCS responses, kept until the collateral's ``nextUpdate``.

One file per URL, named by the SHA-256 of the URL, holding the response body as served
(base64), the few response headers the client needs (the issuer chains), when it was
fetched and when it must be refetched (the ``nextUpdate`` of the TCB Info / QE Identity
JSON, or of the CRL). Nothing secret is stored: API keys travel in request headers and
are never part of the URL or of the stored headers.

The cache is only a cache: it is not trusted. Every entry read back is parsed and
checked by the client exactly as a fresh response would be, and the verifier checks the
signatures. Writes are atomic (a private temporary file in the same directory, then
``os.replace``), so a reader never sees half an entry; an unreadable, corrupted or
mismatched file is logged, removed and treated as a miss, never an error.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeGuard

from ..errors import CollateralError

__all__ = ["CachedResponse", "CollateralCache", "default_cache_dir"]

log = logging.getLogger("enklave.collateral")

_FORMAT: Final = 1
_MAX_ENTRY: Final = 16 << 20
_DIR_MODE: Final = 0o700


def default_cache_dir() -> Path:
    """Return the default cache directory (it is not created here).

    ``$XDG_CACHE_HOME/enklave/collateral`` if ``XDG_CACHE_HOME`` is an absolute path
    (the XDG spec says to ignore relative values), else ``~/.cache/enklave/collateral``.
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "enklave" / "collateral"
    return Path.home() / ".cache" / "enklave" / "collateral"


@dataclass(frozen=True)
class CachedResponse:
    """One cached HTTP response.

    Attributes:
        url: the URL it was fetched from.
        body: the body bytes exactly as served.
        headers: the kept response headers, names in lower case.
        next_update: unix time after which the entry is stale and must be refetched.
        fetched_at: unix time of the fetch (by the client's clock).
    """

    url: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    next_update: float = 0.0
    fetched_at: float = 0.0


class CollateralCache:
    """A directory of cached collateral responses.

    Args:
        directory: where entries live; created (mode ``0700``) on the first write.
            Defaults to :func:`default_cache_dir`.
        max_age: optionally also refetch entries older than this many seconds, even
            before their ``nextUpdate`` (Intel's PCCS refreshes daily, so that a TCB
            recovery shows up before ``nextUpdate``). ``None``: only ``nextUpdate`` counts.
    """

    def __init__(self, directory: Path | None = None, *, max_age: float | None = None) -> None:
        self.directory = default_cache_dir() if directory is None else Path(directory)
        self.max_age = max_age

    def __repr__(self) -> str:
        return f"CollateralCache({str(self.directory)!r})"

    def path_for(self, url: str) -> Path:
        """The file that holds (or would hold) the entry for ``url``."""
        return self.directory / (hashlib.sha256(url.encode()).hexdigest() + ".json")

    def get(self, url: str, *, now: float) -> CachedResponse | None:
        """Return the fresh entry for ``url``, or None.

        An entry is fresh while ``now < next_update`` (and, with ``max_age``, while
        ``now - fetched_at < max_age``). A missing, stale, unreadable or corrupted entry
        gives None; a corrupted one is also removed. Never raises for cache contents.
        """
        path = self.path_for(url)
        try:
            with path.open("rb") as handle:
                data = handle.read(_MAX_ENTRY + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cannot read collateral cache entry %s (%s); refetching", path, exc)
            return None
        entry = _decode(data, url)
        if entry is None:
            log.warning("ignoring corrupted collateral cache entry %s; refetching", path)
            self.discard(url)
            return None
        if now >= entry.next_update:
            log.debug("cache entry for %s is past its nextUpdate; refetching", url)
            return None
        if self.max_age is not None and now - entry.fetched_at >= self.max_age:
            log.debug("cache entry for %s is older than %ss; refetching", url, self.max_age)
            return None
        log.debug("collateral cache hit for %s", url)
        return entry

    def put(self, entry: CachedResponse) -> None:
        """Store ``entry`` atomically (temporary file, fsync, ``os.replace``).

        Raises:
            CollateralError: the directory or file cannot be written (say which, and to
                pick another cache directory or fix its permissions).
        """
        text = json.dumps(
            {
                "format": _FORMAT,
                "url": entry.url,
                "fetched_at": entry.fetched_at,
                "next_update": entry.next_update,
                "headers": {k.lower(): v for k, v in entry.headers.items()},
                "body": base64.b64encode(entry.body).decode("ascii"),
            },
            separators=(",", ":"),
        ).encode()
        target = self.path_for(entry.url)
        try:
            self.directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
            _write_atomic(self.directory, target, text)
        except OSError as exc:
            raise CollateralError(
                f"cannot write collateral cache entry {target} ({exc}); make the directory "
                "writable or choose another cache directory"
            ) from exc

    def discard(self, url: str) -> None:
        """Remove the entry for ``url`` if there is one (errors are ignored)."""
        with contextlib.suppress(OSError):
            self.path_for(url).unlink()

    def clear(self) -> None:
        """Remove every entry (only ``*.json`` files named by a URL hash)."""
        with contextlib.suppress(OSError):
            for path in self.directory.glob("*.json"):
                if len(path.stem) == 64:
                    with contextlib.suppress(OSError):
                        path.unlink()


def _write_atomic(directory: Path, target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _is_time(value: object) -> TypeGuard[float]:
    """A finite number (NaN would compare as never stale)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _decode(data: bytes, url: str) -> CachedResponse | None:
    """Parse a cache file; None if it is not a well-formed entry for ``url``."""
    if len(data) > _MAX_ENTRY:
        return None
    try:
        doc: Any = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT or doc.get("url") != url:
        return None
    headers, body = doc.get("headers"), doc.get("body")
    fetched_at, next_update = doc.get("fetched_at"), doc.get("next_update")
    if not isinstance(headers, dict) or not isinstance(body, str):
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        return None
    if not _is_time(fetched_at) or not _is_time(next_update):
        return None
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None
    return CachedResponse(url, raw, dict(headers), float(next_update), float(fetched_at))
