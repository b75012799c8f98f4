"""hello: the untrusted half. Stores sealed blobs on disk and prints the enclave's log."""

from __future__ import annotations

import os
import re
import tempfile
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


def open_hello(bundle: Path, store_dir: Path, *, quiet: bool = False, **kwargs: object) -> Enclave:
    store = BlobStore(store_dir)

    def log(line: str) -> None:
        if not quiet:
            print(f"  [enclave log] {line}")

    ocalls = {"log": log, "store_put": store.put, "store_get": store.get}
    return Enclave.open(bundle, ocalls=ocalls, **kwargs)  # type: ignore[arg-type]
