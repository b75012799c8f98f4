"""hello: the untrusted half. Stores sealed blobs on disk and prints the enclave's log."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from enklave.host import Enclave

_SAFE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class BlobStore:
    """Sealed blobs on the host's disk, one file per key, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not _SAFE.fullmatch(key) or key.startswith("."):
            raise ValueError(f"unsafe key {key!r}")
        return self.root / f"{key}.sealed"

    def put(self, key: str, blob: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._path(key))

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        return path.read_bytes() if path.exists() else None


def ocalls(state_dir: Path, *, log: Callable[[str], None] | None = None
           ) -> dict[str, Callable[..., object]]:
    """The host functions for hello's OCALLs: sealed blobs under ``state_dir``, the log.

    ``enklave serve hello.bundle --ocalls host.py --state DIR`` calls this; the log goes
    to stderr unless ``log`` is given.
    """
    store = BlobStore(Path(state_dir))

    def to_stderr(line: str) -> None:
        print(f"  [enclave log] {line}", file=sys.stderr, flush=True)

    return {"log": log or to_stderr, "store_put": store.put, "store_get": store.get}


def open_hello(bundle: Path, store_dir: Path, *, quiet: bool = False, **kwargs: object) -> Enclave:
    def log(line: str) -> None:
        if not quiet:
            print(f"  [enclave log] {line}")

    return Enclave.open(bundle, ocalls=ocalls(store_dir, log=log), **kwargs)  # type: ignore[arg-type]
