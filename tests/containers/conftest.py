"""Fixtures for the podman tests: containers.conf, the base image, the hello image.

These tests need podman (CI installs `podman runc mmdebstrap`); they skip only when
`podman` is not on PATH. The base image is made offline with mmdebstrap (Debian mirrors,
no container registry) once and reused while it exists.

podman here runs as root inside an unprivileged sandbox: the default OCI runtime and
default ulimits do not work, so a containers.conf selecting runc and ulimits within the
hard limits is written to a temporary file and passed with CONTAINERS_CONF for this test
session only (never globally). A CONTAINERS_CONF already set by the caller is kept.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from enklave.package import write_private_key

from ._podman_testkit import HELLO_DIR, HELLO_TAG, containers_conf_text


@pytest.fixture(scope="session")
def podman_env(tmp_path_factory: pytest.TempPathFactory):
    """Point podman at a session-local containers.conf (unless CONTAINERS_CONF is set)."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (CI installs it)")
    if os.environ.get("CONTAINERS_CONF"):
        yield Path(os.environ["CONTAINERS_CONF"])
        return
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(containers_conf_text())
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONTAINERS_CONF", str(conf))
        yield conf


@pytest.fixture(scope="session")
def base_image(podman_env) -> str:
    """The offline base image (built once with mmdebstrap, about 30 s; reused if present)."""
    from enklave.deploy import DEFAULT_BASE, build_base_image

    return build_base_image(tag=DEFAULT_BASE, progress=print)


@pytest.fixture(scope="session")
def key_pem(key, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "signing.pem"
    write_private_key(key, path)
    return path


@pytest.fixture(scope="session")
def hello_image(base_image: str, key_pem: Path):
    """examples/hello built into an image (tag HELLO_TAG), with the build time in seconds."""
    from enklave.deploy import build_image

    started = time.monotonic()
    info = build_image(HELLO_DIR, key=key_pem, base=base_image, tag=HELLO_TAG, progress=print)
    return info, time.monotonic() - started
