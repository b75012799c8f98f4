"""Choosing the backend (simulation or Gramine-SGX) and the ``gramine-sgx`` command line.

``select_backend("auto")`` picks ``"gramine"`` only when an SGX device node and
``gramine-sgx`` are both present, and logs the choice either way; ``"gramine"`` never
falls back: a missing part raises an error naming the fix.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ...errors import ConfigError, PlatformError
from ._manifest import MANIFEST_NAME

__all__ = [
    "BACKENDS",
    "BACKEND_ENV",
    "SGX_DEVICES",
    "Probe",
    "gramine_command",
    "probe",
    "select_backend",
]

log = logging.getLogger("enklave.host")
BACKENDS: Final = ("simulation", "gramine", "auto")
BACKEND_ENV: Final = "ENKLAVE_BACKEND"
#: In-kernel driver (Linux >= 5.11) and the older out-of-tree DCAP driver.
SGX_DEVICES: Final = (Path("/dev/sgx_enclave"), Path("/dev/sgx/enclave"))


@dataclass(frozen=True)
class Probe:
    """What this machine offers: an SGX device node and the gramine-sgx launcher."""

    sgx_device: Path | None
    gramine_sgx: str | None


def probe() -> Probe:
    """Look for ``/dev/sgx_enclave`` (or ``/dev/sgx/enclave``) and ``gramine-sgx`` on PATH."""
    device = next((d for d in SGX_DEVICES if os.path.exists(d)), None)
    return Probe(sgx_device=device, gramine_sgx=shutil.which("gramine-sgx"))


def select_backend(requested: str | None = None, *, probe: Callable[[], Probe] = probe) -> str:
    """Resolve ``requested`` ("simulation", "gramine" or "auto"; None reads
    ``ENKLAVE_BACKEND``, default "simulation") to the backend to use.

    Raises:
        ConfigError: an unknown backend name.
        PlatformError: "gramine" was asked for but the SGX device or gramine-sgx is
            missing (never a silent fallback to simulation).
    """
    name = requested if requested is not None else os.environ.get(BACKEND_ENV) or "simulation"
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; use one of: {', '.join(BACKENDS)}")
    if name == "simulation":
        return name
    found = probe()
    missing = _missing(found)
    if name == "gramine":
        if missing:
            raise PlatformError(f"backend gramine is not usable here: {'; '.join(missing)}")
        return name
    if missing:
        log.warning("backend auto: simulation (%s) — NO hardware protection", "; ".join(missing))
        return "simulation"
    log.info("backend auto: gramine (SGX device %s, %s)", found.sgx_device, found.gramine_sgx)
    return "gramine"


def _missing(found: Probe) -> list[str]:
    problems = []
    if found.sgx_device is None:
        problems.append(
            "no SGX device (/dev/sgx_enclave): run on an SGX machine with the in-kernel SGX "
            "driver (Linux >= 5.11) or, on Kubernetes, request sgx.intel.com/epc"
        )
    if found.gramine_sgx is None:
        problems.append("gramine-sgx is not on PATH: install Gramine (apt-get install gramine)")
    return problems


def gramine_command(manifest_dir: Path, *, launcher: str | None = None) -> tuple[list[str], Path]:
    """The command and working directory that start the signed manifest in ``manifest_dir``.

    ``gramine-sgx enklave`` loads ``enklave.manifest.sgx`` (and ``enklave.sig``) from the
    working directory; the manifest's fixed ``loader.argv`` starts the enclave runtime.

    Raises:
        PlatformError: ``gramine-sgx`` is not on PATH, or the signed manifest is missing.
    """
    exe = launcher if launcher is not None else shutil.which("gramine-sgx")
    if exe is None:
        raise PlatformError("gramine-sgx is not on PATH: install Gramine (apt-get install gramine)")
    signed = manifest_dir / f"{MANIFEST_NAME}.manifest.sgx"
    if not signed.is_file():
        raise PlatformError(
            f"no signed manifest at {signed}; run `enklave gramine manifest BUNDLE --sign "
            "--key KEY.pem` first"
        )
    return [exe, MANIFEST_NAME], manifest_dir
