"""Real podman images: the offline base, examples/hello's image, its labels and layout.

Acceptance: the MRENCLAVE label on the image equals the MRENCLAVE of the bundle inside
it, of the same app built on the host, and of that bundle re-measured by the enklave
runtime installed in the image.
"""

from __future__ import annotations

import json
from importlib import metadata

import pytest

from enklave.deploy import image_labels
from enklave.deploy._image import inspect_image
from enklave.package import build_app, read_bundle

from ._podman_testkit import HELLO_DIR, HELLO_TAG, podman, podman_bytes, requires_podman

pytestmark = [pytest.mark.containers, requires_podman]

_MEASURE_IN_IMAGE = """
import sys
from enklave.package import read_bundle
from enklave.package._measure import mrenclave_of, runtime_files
b = read_bundle(__import__("pathlib").Path("/app/app.bundle"))
print(mrenclave_of(b.config.to_canonical(), b.interface.descriptor(), b.manifest,
                   runtime_files()).hex())
"""


def test_base_image_has_python_311_with_venv(base_image):
    out = podman("run", "--rm", base_image, "python3", "-c",
                 "import sys, venv, ensurepip; print(sys.version_info[:2])")
    assert out.strip() == "(3, 11)"
    labels = image_labels(base_image)
    assert labels["io.enklave.base.suite"] == "bookworm"


def test_mrenclave_label_matches_bundle_inside_and_host_build(hello_image, key, tmp_path):
    info, _ = hello_image
    labels = image_labels(info.tag)
    copied = tmp_path / "from-image.bundle"
    copied.write_bytes(podman_bytes("run", "--rm", "--entrypoint", "cat", info.tag,
                                    "/app/app.bundle"))
    inside = read_bundle(copied)
    on_host = build_app(HELLO_DIR, key)  # the same app and key, built here again
    assert labels["io.enklave.mrenclave"] == inside.mrenclave.hex() == on_host.mrenclave.hex()
    assert info.mrenclave == on_host.mrenclave
    assert labels["io.enklave.mrsigner"] == on_host.mrsigner.hex() == info.mrsigner.hex()
    assert labels["io.enklave.product-id"] == "1"
    assert labels["io.enklave.security-version"] == "1"
    assert labels["io.enklave.debug"] == "false"
    assert labels["io.enklave.backend"] == "simulation"
    assert labels["org.opencontainers.image.title"] == "hello"


def test_runtime_in_image_measures_the_bundle_to_the_label(hello_image):
    """The enklave installed in the image is byte-for-byte the runtime the bundle measured."""
    info, _ = hello_image
    out = podman("run", "--rm", "--entrypoint", "/opt/enklave/bin/python", info.tag,
                 "-c", _MEASURE_IN_IMAGE)
    assert out.strip() == image_labels(info.tag)["io.enklave.mrenclave"]


def test_image_runs_as_uid_10001(hello_image):
    info, _ = hello_image
    assert podman("run", "--rm", "--entrypoint", "id", info.tag).split()[:2] == [
        "uid=10001(10001)", "gid=10001(10001)"]
    assert inspect_image(info.tag)["Config"]["User"] == "10001:10001"


def test_enklave_cli_works_inside_the_image(hello_image):
    info, _ = hello_image
    out = podman("run", "--rm", "--entrypoint", "enklave", info.tag, "--help")
    assert "usage: enklave" in out
    assert "serve" in podman("run", "--rm", "--entrypoint", "enklave", info.tag, "serve", "-h")


def test_image_layout_entrypoint_env_and_port(hello_image):
    info, _ = hello_image
    config = inspect_image(info.tag)["Config"]
    assert config["Entrypoint"] == [
        "/opt/enklave/bin/enklave", "serve", "/app/app.bundle", "--bind", "0.0.0.0",
        "--port", "8443", "--ocalls", "/app/host.py"]
    assert "ENKLAVE_SIM_HOME=/tmp/enklave-sim" in config["Env"]
    assert "8443/tcp" in config["ExposedPorts"]
    out = podman("run", "--rm", "--entrypoint", "ls", info.tag, "/app")
    assert out.split() == ["app.bundle", "host.py"]


def test_dependencies_pinned_to_the_host_versions(hello_image):
    info, _ = hello_image
    names = ["cryptography", "httpx", "pyOpenSSL", "PyYAML", "cffi"]
    code = ("import json, importlib.metadata as m; "
            f"print(json.dumps({{n: m.version(n) for n in {names!r}}}))")
    out = podman("run", "--rm", "--entrypoint", "/opt/enklave/bin/python", info.tag, "-c", code)
    assert json.loads(out) == {n: metadata.version(n) for n in names}
    # pip is removed from the runtime venv after the offline install
    probe = podman("run", "--rm", "--entrypoint", "/opt/enklave/bin/python", info.tag, "-c",
                   "import importlib.util as u; print(u.find_spec('pip') is None)")
    assert probe.strip() == "True"


def test_warm_rebuild_reuses_cached_layers(hello_image, key_pem, base_image):
    from enklave.deploy import build_image

    info, cold = hello_image
    lines: list[str] = []
    warm_info = build_image(HELLO_DIR, key=key_pem, base=base_image, tag=info.tag,
                            progress=lines.append)
    if warm_info.mrenclave != info.mrenclave:  # only while enklave itself is being edited
        pytest.skip("enklave's sources changed during the session: nothing to compare")
    assert warm_info.image_id == info.image_id  # every layer came from the cache
    assert any("Using cache" in line for line in lines)
    print(f"image build: cold {cold:.1f} s")


def test_missing_base_image_names_the_fix(podman_env, key_pem):
    from enklave.deploy import build_image
    from enklave.errors import DeployError

    with pytest.raises(DeployError, match="enklave image base"):
        build_image(HELLO_DIR, key=key_pem, base="localhost/enklave-no-such-base:1")


@pytest.fixture(autouse=True)
def _no_leftover_containers(podman_env):
    yield
    assert podman("ps", "-a", "--filter", f"ancestor={HELLO_TAG}",
                  "--format", "{{.Names}}").strip() == ""


def test_cli_image_build_prints_identity(hello_image, key_pem, base_image, capsys):
    from enklave.cli import main

    info, _ = hello_image
    assert main(["image", "build", str(HELLO_DIR), "--key", str(key_pem), "--base",
                 base_image, "--tag", HELLO_TAG, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tag"] == HELLO_TAG
    assert out["mrenclave"] == image_labels(HELLO_TAG)["io.enklave.mrenclave"]
    assert main(["image", "base", "--tag", base_image]) == 0  # exists: reused, not rebuilt
    assert "exists" in capsys.readouterr().err
