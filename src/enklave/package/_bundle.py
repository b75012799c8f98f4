"""The signed bundle: one file holding an enclave app, its measurement inputs and SIGSTRUCT.

Layout: the 16-byte magic ``b"enklave-bundle\\x00\\x01"`` followed by one deterministic
CBOR map::

    {"config":    AppConfig.to_canonical(),
     "interface": Interface.descriptor(),
     "files":     [[relative path, contents], ...]      # sorted by path
     "manifest":  [[relative path, size, sha256], ...]  # the measured app-file log
     "runtime":   [[path, size, sha256], ...]           # enklave runtime at build time
     "sigstruct": 1808 bytes}

Only ``sigstruct`` is signed; everything else is bound through MRENCLAVE
(``SIGSTRUCT.ENCLAVEHASH``). ``runtime`` is recorded only to explain a mismatch (which
runtime file differs); the loader measures its own runtime files, never these entries.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Any

from .._encoding import dumps, loads
from .._interface import Interface
from ..errors import BundleError, ConfigError, EncodingError, InterfaceError, SigningError
from ._config import AppConfig
from ._measure import FileEntry, file_entry
from ._sigstruct import Sigstruct

__all__ = ["MAGIC", "MAX_BUNDLE_SIZE", "Bundle"]

MAGIC = b"enklave-bundle\x00\x01"
MAX_BUNDLE_SIZE = 256 * 1024 * 1024
_KEYS = {"config", "interface", "files", "manifest", "runtime", "sigstruct"}


@dataclass(frozen=True)
class Bundle:
    """A parsed (not verified) bundle. Verification is :func:`enklave.package.verify_bundle`."""

    config: AppConfig
    interface: Interface
    files: tuple[tuple[str, bytes], ...]
    manifest: tuple[FileEntry, ...]
    runtime: tuple[FileEntry, ...]
    sigstruct: Sigstruct

    @property
    def mrenclave(self) -> bytes:
        """The signed MRENCLAVE (SIGSTRUCT.ENCLAVEHASH); unverified until loaded."""
        return self.sigstruct.enclave_hash

    @property
    def mrsigner(self) -> bytes:
        return self.sigstruct.mrsigner

    def file_map(self) -> dict[str, bytes]:
        return dict(self.files)

    def with_sigstruct(self, sigstruct: Sigstruct) -> Bundle:
        return replace(self, sigstruct=sigstruct)

    def to_bytes(self) -> bytes:
        body = {
            "config": self.config.to_canonical(),
            "interface": self.interface.descriptor(),
            "files": [[p, d] for p, d in self.files],
            "manifest": [list(e) for e in self.manifest],
            "runtime": [list(e) for e in self.runtime],
            "sigstruct": self.sigstruct.to_bytes(),
        }
        return MAGIC + dumps(body, max_depth=48)

    @classmethod
    def from_bytes(cls, data: bytes) -> Bundle:
        """Parse a bundle file's bytes, checking its whole structure.

        Raises:
            BundleError: wrong magic, malformed CBOR, a missing/unknown field, a bad path,
                an invalid config, interface or SIGSTRUCT (the message names the field).
        """
        if len(data) > MAX_BUNDLE_SIZE:
            raise BundleError(f"bundle is larger than {MAX_BUNDLE_SIZE} bytes")
        if not data.startswith(MAGIC):
            raise BundleError("not an enklave bundle (bad magic); build one with `enklave build`")
        try:
            body = loads(data[len(MAGIC) :], max_size=MAX_BUNDLE_SIZE, max_depth=48)
        except EncodingError as exc:
            raise BundleError(f"bundle body is not valid CBOR: {exc}") from exc
        if type(body) is not dict or set(body) != _KEYS:
            raise BundleError(f"bundle must have exactly the fields {sorted(_KEYS)}")
        try:
            config = AppConfig.from_canonical(body["config"])
            interface = Interface.from_descriptor(body["interface"])
            sigstruct = Sigstruct.from_bytes(_need_bytes(body["sigstruct"], "sigstruct"))
        except (ConfigError, InterfaceError, SigningError) as exc:
            raise BundleError(f"bundle field is invalid: {exc}") from exc
        files = tuple(_parse_files(body["files"]))
        manifest = tuple(_parse_entries(body["manifest"], "manifest"))
        runtime = tuple(_parse_entries(body["runtime"], "runtime"))
        return cls(config, interface, files, manifest, runtime, sigstruct)


def _need_bytes(value: Any, field: str) -> bytes:
    if type(value) is not bytes:
        raise BundleError(f"bundle field {field!r} must be bytes")
    return value


def _check_path(path: Any, field: str) -> str:
    if type(path) is not str or not path or len(path) > 1024:
        raise BundleError(f"bundle field {field!r} holds a path that is not a short string")
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or "\\" in path or str(pure) != path:
        raise BundleError(f"bundle field {field!r} holds an unsafe path {path!r}")
    return path


def _parse_files(value: Any) -> list[tuple[str, bytes]]:
    if type(value) is not list:
        raise BundleError("bundle field 'files' must be a list")
    out: list[tuple[str, bytes]] = []
    for item in value:
        if type(item) is not list or len(item) != 2:
            raise BundleError("each entry of 'files' must be [path, contents]")
        out.append((_check_path(item[0], "files"), _need_bytes(item[1], "files")))
    if [p for p, _ in out] != sorted({p for p, _ in out}):
        raise BundleError("bundle 'files' must be sorted by path without duplicates")
    return out


def _parse_entries(value: Any, field: str) -> list[FileEntry]:
    if type(value) is not list:
        raise BundleError(f"bundle field {field!r} must be a list")
    out: list[FileEntry] = []
    for item in value:
        if (
            type(item) is not list
            or len(item) != 3
            or type(item[1]) is not int
            or type(item[2]) is not bytes
            or len(item[2]) != 32
        ):
            raise BundleError(f"each entry of {field!r} must be [path, size, sha256]")
        out.append((_check_path(item[0], field), item[1], item[2]))
    return out


def manifest_for(files: list[tuple[str, bytes]]) -> list[FileEntry]:
    """The measured log entries for a list of (path, contents)."""
    return [file_entry(p, d) for p, d in files]

