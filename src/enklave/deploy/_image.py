"""``enklave image build``: an OCI image of an enclave app, built with podman.

The bundle is built and signed on the host (the signing key never enters the build
context or the image), so the MRENCLAVE label, the bundle inside the image and a bundle
built from the same sources anywhere else all agree. The build runs offline:
``--pull=never`` (the base must be local, see ``enklave image base``) and
``--network=none`` (dependencies come from the wheelhouse in the build context).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import DeployError
from ..package import build_app, load_private_key, write_bundle
from ..package._bundle import Bundle
from ._base import DEFAULT_BASE
from ._containerfile import render_containerfile
from ._podman import image_exists, require_tool, run_tool, stream_tool
from ._wheels import prepare_wheelhouse

__all__ = ["ImageInfo", "build_image", "image_labels", "inspect_image", "labels_for"]

LABEL_PREFIX = "io.enklave."


def _quiet(line: str) -> None:
    """Default progress sink: discard."""


@dataclass(frozen=True)
class ImageInfo:
    """What ``enklave image build`` made.

    Attributes:
        tag: the image name.
        image_id: podman's image ID (sha256 hex).
        mrenclave, mrsigner: the identity of the bundle in the image (32 bytes each).
        product_id, security_version: ISVPRODID and ISVSVN from the bundle's SIGSTRUCT.
    """

    tag: str
    image_id: str
    mrenclave: bytes
    mrsigner: bytes
    product_id: int
    security_version: int


def labels_for(bundle: Bundle, *, base: str, backend: str = "simulation") -> dict[str, str]:
    """The image labels for ``bundle`` (``io.enklave.*`` and ``org.opencontainers.image.*``)."""
    sig = bundle.sigstruct
    name = bundle.config.name
    return {
        f"{LABEL_PREFIX}mrenclave": bundle.mrenclave.hex(),
        f"{LABEL_PREFIX}mrsigner": bundle.mrsigner.hex(),
        f"{LABEL_PREFIX}product-id": str(sig.isv_prod_id),
        f"{LABEL_PREFIX}security-version": str(sig.isv_svn),
        f"{LABEL_PREFIX}debug": "true" if sig.debug else "false",
        f"{LABEL_PREFIX}backend": backend,
        f"{LABEL_PREFIX}version": __version__,
        "org.opencontainers.image.title": name,
        "org.opencontainers.image.description": (
            f"enklave app {name} (enklave serve over attested TLS, {backend} backend)"
        ),
        "org.opencontainers.image.version": f"svn{sig.isv_svn}",
        "org.opencontainers.image.base.name": base,
    }


def build_image(
    app: Path,
    *,
    key: Path,
    base: str = DEFAULT_BASE,
    tag: str | None = None,
    progress: Callable[[str], None] = _quiet,
    enklave_wheel: Path | None = None,
    no_cache: bool = False,
) -> ImageInfo:
    """Build and sign ``app`` on the host, then build its image with podman.

    Args:
        app: the app directory (``enklave.toml``; ``host.py`` is copied when present).
        key: the SGX signing key (PEM, from ``enklave genkey``).
        base: the base image; it must exist locally (``enklave image base`` makes one).
        tag: the image name (default ``localhost/<app name>:<MRENCLAVE prefix>``).
        progress: receives a line per step and every line ``podman build`` prints.
        enklave_wheel: install this enklave wheel instead of one built from the source tree.
        no_cache: pass ``--no-cache`` to podman (rebuild every layer).

    Returns:
        The image's tag, ID and enclave identity.

    Raises:
        SigningError, ConfigError, InterfaceError, BundleError: the app does not build.
        DeployError: podman is missing, the base image is absent, the wheelhouse cannot
            be made, or ``podman build`` fails (with its last output lines).
    """
    require_tool("podman")
    if not image_exists(base):
        raise DeployError(
            f"base image {base} is not present; build it with `enklave image base` "
            f"(or pass --base with a local Python 3.11 image)"
        )
    started = time.monotonic()
    bundle = build_app(app, load_private_key(key))
    tag = tag or f"localhost/{bundle.config.name}:{bundle.mrenclave.hex()[:12]}"
    progress(f"bundle {bundle.config.name}: MRENCLAVE {bundle.mrenclave.hex()}")
    with tempfile.TemporaryDirectory(prefix="enklave-image-") as tmp:
        ctx = Path(tmp)
        has_host = _fill_context(ctx, app, bundle, base, enklave_wheel, progress)
        args = ["podman", "build", "--pull=never", "--network=none", "--layers",
                "--tag", tag, "--file", str(ctx / "Containerfile")]
        if no_cache:
            args.append("--no-cache")
        progress(f"podman build -> {tag}" + (" (host.py included)" if has_host else ""))
        stream_tool([*args, str(ctx)], what=f"building image {tag}", progress=progress)
    image_id = inspect_image(tag)["Id"]
    progress(f"image {tag} ({str(image_id)[:12]}) built in {time.monotonic() - started:.1f} s")
    sig = bundle.sigstruct
    return ImageInfo(tag, str(image_id), bundle.mrenclave, bundle.mrsigner,
                     sig.isv_prod_id, sig.isv_svn)


def _fill_context(
    ctx: Path,
    app: Path,
    bundle: Bundle,
    base: str,
    enklave_wheel: Path | None,
    progress: Callable[[str], None],
) -> bool:
    """Write the build context: Containerfile, wheels/, app.bundle, host.py (if any)."""
    write_bundle(bundle, ctx / "app.bundle")
    host = app / "host.py"
    has_host = host.is_file()
    if has_host:
        try:
            shutil.copyfile(host, ctx / "host.py")
        except OSError as exc:
            raise DeployError(f"cannot copy {host}: {exc.strerror}") from exc
    wheels = ctx / "wheels"
    wheels.mkdir()
    prepare_wheelhouse(wheels, enklave_wheel=enklave_wheel, progress=progress)
    text = render_containerfile(base=base, labels=labels_for(bundle, base=base),
                                has_host=has_host)
    (ctx / "Containerfile").write_text(text, encoding="utf-8")
    return has_host


def inspect_image(tag: str) -> dict[str, Any]:
    """``podman image inspect`` of one image, as a dict (``Id``, ``Labels``, ``Config``...).

    Raises:
        DeployError: podman is missing, the image does not exist, or the output is not
            the expected JSON.
    """
    out = run_tool(["podman", "image", "inspect", "--format", "json", tag],
                   what=f"inspecting image {tag}")
    try:
        data = json.loads(out)
    except ValueError as exc:
        raise DeployError(f"podman image inspect {tag}: output is not JSON") from exc
    if not isinstance(data, list) or len(data) != 1 or not isinstance(data[0], dict):
        raise DeployError(f"podman image inspect {tag}: expected one image, got {data!r:.200}")
    return data[0]


def image_labels(tag: str) -> dict[str, str]:
    """The labels of a local image (``io.enklave.mrenclave`` etc.).

    Raises:
        DeployError: podman is missing or the image does not exist.
    """
    labels = inspect_image(tag).get("Labels") or {}
    return {str(k): str(v) for k, v in labels.items()}
