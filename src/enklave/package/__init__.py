"""Packaging enclaves: config, measurement, signing keys, SGX SIGSTRUCT and bundles.

Example::

    from pathlib import Path
    from enklave.package import build_app, generate_signing_key, write_bundle

    bundle = build_app(Path("hello"), generate_signing_key())
    write_bundle(bundle, Path("hello.bundle"))
    print(bundle.mrenclave.hex(), bundle.mrsigner.hex())
"""

from __future__ import annotations

from ._build import build_app, read_bundle, resign_bundle, write_bundle
from ._bundle import Bundle
from ._config import AppConfig, scaffold_toml
from ._keys import (
    generate_signing_key,
    load_private_key,
    load_public_key,
    mrsigner_of,
    write_private_key,
    write_public_key,
)
from ._measure import runtime_files
from ._sigstruct import Sigstruct, sign_sigstruct
from ._verify import verify_bundle

__all__ = [
    "AppConfig",
    "Bundle",
    "Sigstruct",
    "build_app",
    "generate_signing_key",
    "load_private_key",
    "load_public_key",
    "mrsigner_of",
    "read_bundle",
    "resign_bundle",
    "runtime_files",
    "scaffold_toml",
    "sign_sigstruct",
    "verify_bundle",
    "write_bundle",
    "write_private_key",
    "write_public_key",
]
