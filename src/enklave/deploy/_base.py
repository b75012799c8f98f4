"""``enklave image base``: a Debian + Python base image made offline from packages.

Machines that cannot pull from a registry can still build enklave images: the base is
a Debian root filesystem made by ``mmdebstrap`` (from the Debian mirrors, not from a
container registry) and turned into an image with ``podman import``. Debian bookworm's
``python3`` is CPython 3.11, which the wheels in the app images are chosen for.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from ..errors import DeployError
from ._podman import image_exists, require_tool, run_tool, stream_tool

__all__ = ["BASE_PACKAGES", "DEFAULT_BASE", "build_base_image"]

DEFAULT_BASE: Final = "localhost/enklave-python:3.11-bookworm"
"""The tag ``enklave image base`` creates and ``enklave image build`` uses by default."""

BASE_PACKAGES: Final = ("python3", "python3-venv", "ca-certificates")
"""Debian packages in the base image (the app's Python packages come as wheels)."""

_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SUITES: Final = ("bookworm",)


def _quiet(line: str) -> None:
    """Default progress sink: discard."""


def build_base_image(
    *,
    tag: str = DEFAULT_BASE,
    suite: str = "bookworm",
    force: bool = False,
    progress: Callable[[str], None] = _quiet,
) -> str:
    """Build the offline Python base image, unless ``tag`` exists already.

    ``mmdebstrap --variant=apt`` writes a root filesystem tarball with
    :data:`BASE_PACKAGES` into a temporary directory; ``podman import`` turns it into
    an image with ``PATH`` set (a bare import has no environment, so ``python3`` would
    not be found) and ``io.enklave.base.*`` labels. The tarball is deleted afterwards.

    Args:
        tag: the image name to create.
        suite: the Debian suite; only ``bookworm`` (Python 3.11) is supported.
        force: rebuild even when ``tag`` exists.
        progress: receives one line per step and every line mmdebstrap prints.

    Returns:
        ``tag``.

    Raises:
        DeployError: podman or mmdebstrap is missing (names the apt packages), the
            suite is unsupported, or a step fails (with the tool's last output lines).
    """
    if suite not in _SUITES:
        raise DeployError(
            f"unsupported base suite {suite!r}: enklave images need Python 3.11, "
            f"use one of {', '.join(_SUITES)}"
        )
    require_tool("podman")
    if not force and image_exists(tag):
        progress(f"base image {tag} exists (use --force to rebuild)")
        return tag
    require_tool("mmdebstrap")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="enklave-base-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        progress(f"mmdebstrap {suite} with {', '.join(BASE_PACKAGES)} (Debian mirror)")
        stream_tool(
            [
                "mmdebstrap", "--variant=apt", f"--include={','.join(BASE_PACKAGES)}",
                suite, str(rootfs),
            ],
            what=f"creating the {suite} root filesystem",
            progress=progress,
        )
        progress(f"podman import {rootfs.name} -> {tag}")
        image_id = run_tool(
            ["podman", "import", *_changes(suite), str(rootfs), tag],
            what=f"importing the root filesystem as {tag}",
        ).strip()
    short = image_id.removeprefix("sha256:")[:12]
    progress(f"base image {tag} ({short}) built in {time.monotonic() - started:.1f} s")
    return tag


def _changes(suite: str) -> list[str]:
    """``--change`` arguments for ``podman import``: environment and labels."""
    labels = {
        "org.opencontainers.image.title": "enklave-python",
        "org.opencontainers.image.description": (
            f"Debian {suite} with {' '.join(BASE_PACKAGES)}, made offline by enklave image base"
        ),
        "io.enklave.base.suite": suite,
        "io.enklave.base.packages": ",".join(BASE_PACKAGES),
    }
    out = ["--change", f"ENV PATH={_PATH}", "--change", 'CMD ["python3"]']
    for key, value in labels.items():
        out += ["--change", f'LABEL {key}="{value}"']
    return out
