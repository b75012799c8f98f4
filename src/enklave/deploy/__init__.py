"""Deploying enclave apps: container images, Kubernetes manifests and a pre-flight doctor.

Example::

    from pathlib import Path
    from enklave.deploy import ManifestOptions, render_manifests, run_doctor

    opts = ManifestOptions(name="hello", image="localhost/hello:latest", simulation=True,
                           host_port=8443)
    Path("hello-sim.yaml").write_text(render_manifests(Path("hello/hello.bundle"), opts))
    for check in run_doctor():
        print("ok  " if check.ok else "FAIL", check.name, check.detail)
"""

from __future__ import annotations

import typing

if typing.TYPE_CHECKING:  # loaded on first use: the CLI registers its commands from here
    from ._base import DEFAULT_BASE, build_base_image
    from ._containerfile import render_containerfile
    from ._doctor import Check, DoctorReport, Probe, doctor_report, run_doctor
    from ._image import ImageInfo, build_image, image_labels
    from ._k8s import ManifestOptions, manifest_documents, render_manifests

_LAZY = {
    "DEFAULT_BASE": "_base", "build_base_image": "_base",
    "render_containerfile": "_containerfile",
    "Check": "_doctor", "DoctorReport": "_doctor", "Probe": "_doctor",
    "doctor_report": "_doctor", "run_doctor": "_doctor",
    "ImageInfo": "_image", "build_image": "_image", "image_labels": "_image",
    "ManifestOptions": "_k8s", "manifest_documents": "_k8s", "render_manifests": "_k8s",
}

__all__ = [
    "DEFAULT_BASE",
    "Check",
    "DoctorReport",
    "ImageInfo",
    "ManifestOptions",
    "Probe",
    "build_base_image",
    "build_image",
    "doctor_report",
    "image_labels",
    "manifest_documents",
    "render_containerfile",
    "render_manifests",
    "run_doctor",
]


def __getattr__(name: str) -> typing.Any:
    """Import the submodule that defines ``name`` on first use.

    Every ``enklave`` command (``enklave serve`` in a container included) builds the full
    argument parser, which reaches into this package; loading yaml, ctypes, the wheel and
    podman code only when a deploy command runs keeps that start-up cheap.
    """
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
