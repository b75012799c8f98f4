"""``enklave k8s manifest`` as a real process: stdout, -o, app directories, errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import HELLO_DIR, build
from enklave.package import read_bundle


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "enklave", "k8s", "manifest",
                           *map(str, args)], capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture
def hello_app(tmp_path: Path, key: Any) -> Path:
    """A copy of examples/hello built in place (APP/hello.bundle)."""
    app = tmp_path / "hello"
    shutil.copytree(HELLO_DIR, app, ignore=shutil.ignore_patterns("*.bundle", "__pycache__"))
    build(app, key, app / "hello.bundle")
    return app


def test_stdout_for_an_app_directory(hello_app: Path) -> None:
    done = _cli(hello_app, "--image", "localhost/hello:1")
    assert done.returncode == 0, done.stderr
    docs = list(yaml.safe_load_all(done.stdout))
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    mrenclave = read_bundle(hello_app / "hello.bundle").mrenclave.hex()
    assert docs[0]["metadata"]["annotations"]["io.enklave.mrenclave"] == mrenclave
    assert docs[0]["metadata"]["name"] == "hello"


def test_output_file_simulation_and_options(hello_app: Path, tmp_path: Path) -> None:
    out = tmp_path / "sim.yaml"
    done = _cli(hello_app / "hello.bundle", "--image", "localhost/hello:1", "--simulation",
                "--host-port", "18443", "--port", "9443", "--replicas", "2", "--name", "hi",
                "-o", out)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and "SIMULATION" in done.stderr
    text = out.read_text()
    assert "NO hardware protection" in text
    dep = next(yaml.safe_load_all(text))
    box = dep["spec"]["template"]["spec"]["containers"][0]
    assert dep["metadata"]["name"] == "hi" and dep["spec"]["replicas"] == 2
    assert box["ports"][0] == {"name": "https", "containerPort": 9443, "protocol": "TCP",
                               "hostPort": 18443}


def test_sgx_options_reach_the_manifest(hello_app: Path) -> None:
    done = _cli(hello_app, "--image", "i:1", "--epc-style", "azure-legacy", "--epc", "64",
                "--quote-helper", "--node-affinity", "none", "--job")
    assert done.returncode == 0, done.stderr
    (job,) = yaml.safe_load_all(done.stdout)
    pod = job["spec"]["template"]["spec"]
    assert job["kind"] == "Job" and "affinity" not in pod
    limits = pod["containers"][0]["resources"]["limits"]
    assert limits["kubernetes.azure.com/sgx_epc_mem_in_MiB"] == 64


def test_kubernetes_validate_cli_accepts_the_output(hello_app: Path, tmp_path: Path) -> None:
    tool = shutil.which("kubernetes-validate") or str(Path(sys.executable).parent
                                                      / "kubernetes-validate")
    out = tmp_path / "sgx.yaml"
    assert _cli(hello_app, "--image", "i:1", "-o", out).returncode == 0
    done = subprocess.run([tool, "--strict", "-k", "1.29.0", str(out)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_unbuilt_app_names_the_build_command(tmp_path: Path) -> None:
    app = tmp_path / "hello"
    shutil.copytree(HELLO_DIR, app, ignore=shutil.ignore_patterns("*.bundle", "__pycache__"))
    done = _cli(app, "--image", "i:1")
    assert done.returncode == 1
    assert "enklave build" in done.stderr and "--key" in done.stderr


def test_invalid_name_is_an_error_with_the_fix(hello_app: Path) -> None:
    done = _cli(hello_app, "--image", "i:1", "--name", "Not_OK")
    assert done.returncode == 1 and "--name" in done.stderr


def test_image_is_required(hello_app: Path) -> None:
    assert _cli(hello_app).returncode == 2
