"""The Gramine-SGX backend: real SGX enclaves run by the Gramine LibOS.

* :func:`render_gramine_manifest` / :func:`write_gramine_manifest` /
  :func:`sign_manifest`: the Gramine manifest of a bundle, signed with
  ``gramine-sgx-sign`` (CLI: ``enklave gramine manifest BUNDLE [--sign --key K]``).
* :class:`GramineAttestation`: quotes, reports and seal keys from ``/dev/attestation``
  (used inside the enclave by ``evidence()``, ``identity()`` and ``seal()``).
* :func:`select_backend`: ``"simulation"``, ``"gramine"`` or ``"auto"`` (never a
  silent fallback). See docs/gramine.md.
"""

from __future__ import annotations

from ._attestation import DEV_ATTESTATION, GramineAttestation
from ._manifest import (
    MANIFEST_NAME,
    PythonLayout,
    default_manifest_dir,
    detect_python_layout,
    enclave_size,
    read_signed_mrenclave,
    render_gramine_manifest,
    sign_manifest,
    write_gramine_manifest,
)
from ._select import BACKEND_ENV, BACKENDS, Probe, gramine_command, probe, select_backend

__all__ = [
    "BACKENDS",
    "BACKEND_ENV",
    "DEV_ATTESTATION",
    "MANIFEST_NAME",
    "GramineAttestation",
    "Probe",
    "PythonLayout",
    "default_manifest_dir",
    "detect_python_layout",
    "enclave_size",
    "gramine_command",
    "probe",
    "read_signed_mrenclave",
    "render_gramine_manifest",
    "select_backend",
    "sign_manifest",
    "write_gramine_manifest",
]
