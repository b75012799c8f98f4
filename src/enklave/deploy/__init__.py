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

from ._base import DEFAULT_BASE, build_base_image
from ._containerfile import render_containerfile
from ._doctor import Check, DoctorReport, Probe, doctor_report, run_doctor
from ._image import ImageInfo, build_image, image_labels
from ._k8s import ManifestOptions, manifest_documents, render_manifests

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
