"""The `enklave` command, run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ENKLAVE = [sys.executable, "-m", "enklave.cli"]


def run(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ENKLAVE_SIM_HOME=str(cwd / "sim"))
    proc = subprocess.run(
        [*ENKLAVE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    run("new", "myapp", cwd=d)
    run("genkey", "key.pem", "--public", "pub.pem", cwd=d)
    run("build", "myapp", "--key", "key.pem", "-o", "myapp.bundle", cwd=d)
    return d


def test_new_genkey_build_and_scaffolded_host_runs(workdir: Path) -> None:
    assert (workdir / "key.pem").stat().st_mode & 0o777 == 0o600
    env = dict(os.environ, ENKLAVE_SIM_HOME=str(workdir / "sim"))
    out = subprocess.run(
        [sys.executable, "myapp/host.py", "myapp.bundle"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=120, check=True,
    )
    assert "Hello, world!" in out.stdout and "simulated=True" in out.stdout


def test_uniqueid_and_signerid_agree(workdir: Path) -> None:
    mrenclave = run("uniqueid", "myapp.bundle", cwd=workdir).stdout.strip()
    assert len(mrenclave) == 64
    by_bundle = run("signerid", "myapp.bundle", cwd=workdir).stdout.strip()
    by_key = run("signerid", "key.pem", cwd=workdir).stdout.strip()
    by_pub = run("signerid", "pub.pem", cwd=workdir).stdout.strip()
    assert by_bundle == by_key == by_pub and len(by_key) == 64
    inspect = run("inspect", "myapp.bundle", cwd=workdir).stdout
    for field in ("enclavehash", "isvprodid", "isvsvn", "modulus", "q1", "q2", "greet("):
        assert field in inspect
    assert mrenclave in inspect


def test_inspect_json(workdir: Path) -> None:
    import json

    data = json.loads(run("inspect", "--json", "myapp.bundle", cwd=workdir).stdout)
    assert data["config"]["name"] == "myapp"
    assert data["mrenclave"] == run("uniqueid", "myapp.bundle", cwd=workdir).stdout.strip()


def test_errors_are_one_line_with_exit_1(workdir: Path) -> None:
    proc = run("build", "nope", "--key", "key.pem", cwd=workdir, check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "enklave new" in proc.stderr
    proc = run("uniqueid", "key.pem", cwd=workdir, check=False)
    assert proc.returncode == 1 and "not an enklave bundle" in proc.stderr
    proc = run("new", "myapp", cwd=workdir, check=False)
    assert proc.returncode == 1 and "already exists" in proc.stderr


def test_genkey_refuses_overwrite(workdir: Path) -> None:
    proc = run("genkey", "key.pem", cwd=workdir, check=False)
    assert proc.returncode == 1 and "--force" in proc.stderr


def test_help_lists_commands(tmp_path: Path) -> None:
    out = run("--help", cwd=tmp_path).stdout
    for cmd in ("new", "genkey", "build", "inspect", "uniqueid", "signerid"):
        assert cmd in out
