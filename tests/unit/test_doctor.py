"""``enklave doctor``: backend selection, fixes and exit codes on fake machines.

There is no SGX hardware here: a machine WITH SGX is faked as a directory tree (device
nodes stood in for by regular files, a real listening unix socket for aesmd, stub
executables for the Gramine tools, podman and kubectl, stub ``.so`` files for the DCAP
libraries) and handed to the checks through :class:`enklave.deploy.Probe`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from enklave.deploy import Check, Probe, doctor_report, run_doctor
from enklave.errors import ConfigError

QCNL = """// *** ATTENTION : This file is in JSON format so the keys are case sensitive.
{
  // PCCS server address
  "pccs_url": "https://pccs.example:8081/sgx/certification/v4/",
  "use_secure_cert": true
}
"""


def _exe(path: Path, body: str = "echo stub 1.0") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _touch(root: Path, rel: str, text: str = "") -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """A machine with no SGX: only podman and kubectl stubs on PATH."""
    root = tmp_path / "r"
    _exe(root / "bin/podman", 'case "$1" in --version) echo "podman version 4.3.1";; '
         '*) echo runc;; esac')
    _exe(root / "bin/kubectl", 'echo "Client Version: v1.29.0"')
    return root


@pytest.fixture
def sock_holder() -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    yield held
    for s in held:
        s.close()


def _aesmd(root: Path, held: list[socket.socket]) -> None:
    path = root / "var/run/aesmd/aesm.socket"
    path.parent.mkdir(parents=True, exist_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(1)
    held.append(s)


def _sgx_in_tree(root: Path, held: list[socket.socket]) -> Path:
    for node in ("dev/sgx_enclave", "dev/sgx_provision"):
        _touch(root, node)
    _aesmd(root, held)
    for tool in ("gramine-sgx", "gramine-sgx-sign", "gramine-manifest"):
        _exe(root / "bin" / tool)
    _touch(root, "etc/sgx_default_qcnl.conf", QCNL)
    for lib in ("libsgx_dcap_ql.so.1", "libsgx_default_qcnl_wrapper.so.1"):
        _touch(root, f"usr/lib/x86_64-linux-gnu/{lib}")
    return root


def _probe(root: Path, kernel: str = "6.8.0") -> Probe:
    return Probe(root=root, path=str(root / "bin"), kernel=kernel,
                 dist_version=lambda name: "1.37.0")


def _by_name(checks: list[Check] | tuple[Check, ...]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_no_sgx_selects_simulation_and_still_runs(bare: Path) -> None:
    report = doctor_report(_probe(bare))
    checks = _by_name(report.checks)
    assert report.backend == "simulation" and report.ok
    assert "SIMULATION: no hardware protection" in checks["backend"].detail
    assert not checks["sgx-device"].ok and "Linux >= 5.11" in checks["sgx-device"].fix
    assert "sgx-aesm-service" in checks["aesmd"].fix
    assert "apt install gramine" in checks["gramine"].fix
    assert "libsgx-dcap-default-qcnl" in checks["qcnl-config"].fix
    assert "libsgx-dcap-ql" in checks["dcap-ql"].fix
    assert checks["podman"].ok and "4.3.1" in checks["podman"].detail
    assert checks["kubectl"].ok and checks["kubernetes-validate"].ok
    assert not any(c.blocking for c in report.checks)


def test_no_sgx_fails_when_gramine_is_required(bare: Path) -> None:
    report = doctor_report(_probe(bare), backend="gramine")
    checks = _by_name(report.checks)
    assert not report.ok
    assert checks["sgx-device"].blocking and checks["gramine"].blocking
    assert not checks["backend"].ok


def test_sgx_machine_with_in_tree_driver_selects_gramine(
    bare: Path, sock_holder: list[socket.socket]
) -> None:
    report = doctor_report(_probe(_sgx_in_tree(bare, sock_holder)))
    checks = _by_name(report.checks)
    assert report.backend == "gramine" and report.ok
    assert all(c.ok for c in report.checks), [c for c in report.checks if not c.ok]
    assert "in-tree" in checks["sgx-device"].detail
    assert "https://pccs.example:8081/" in checks["qcnl-config"].detail


def test_quoting_through_aesmd_alone_is_enough(
    bare: Path, sock_holder: list[socket.socket]
) -> None:
    root = _sgx_in_tree(bare, sock_holder)
    (root / "dev/sgx_provision").unlink()
    (root / "etc/sgx_default_qcnl.conf").unlink()
    report = doctor_report(_probe(root))
    assert report.backend == "gramine" and report.ok


def test_sgx_without_any_quoting_path_is_not_ready(
    bare: Path, sock_holder: list[socket.socket]
) -> None:
    root = _sgx_in_tree(bare, sock_holder)
    sock_holder.pop().close()
    (root / "var/run/aesmd/aesm.socket").unlink()
    (root / "etc/sgx_default_qcnl.conf").write_text("{not json")
    report = doctor_report(_probe(root))
    checks = _by_name(report.checks)
    assert report.backend == "gramine" and not report.ok
    assert "not valid JSON" in checks["qcnl-config"].detail
    assert "aesmd" in checks["backend"].fix


def test_aesmd_path_that_is_not_a_socket(bare: Path) -> None:
    _touch(bare, "var/run/aesmd/aesm.socket")
    check = _by_name(run_doctor(_probe(bare)))["aesmd"]
    assert not check.ok and "restart aesmd" in check.fix


def test_legacy_isgx_driver_is_reported_and_not_used(bare: Path) -> None:
    _touch(bare, "dev/isgx")
    for tool in ("gramine-sgx", "gramine-sgx-sign", "gramine-manifest"):
        _exe(bare / "bin" / tool)
    report = doctor_report(_probe(bare, kernel="4.15.0-213-generic"))
    checks = _by_name(report.checks)
    assert report.backend == "simulation"
    assert "out-of-tree" in checks["sgx-device"].detail
    assert "in-tree driver" in checks["sgx-device"].fix
    assert not checks["kernel"].ok and "5.11" in checks["kernel"].fix


def test_legacy_dcap_driver_path_counts(bare: Path) -> None:
    _touch(bare, "dev/sgx/enclave")
    check = _by_name(run_doctor(_probe(bare)))["sgx-device"]
    assert check.ok and "/dev/sgx/enclave" in check.detail


def test_broken_podman_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "r"
    _exe(root / "bin/podman", 'case "$1" in --version) echo "podman version 4.3.1";; '
         '*) echo "cannot set up namespace" >&2; exit 125;; esac')
    check = _by_name(run_doctor(_probe(root)))["podman"]
    assert not check.ok and "podman info" in check.detail
    assert "containers.conf" in check.fix


def test_missing_tools_and_package(tmp_path: Path) -> None:
    probe = Probe(root=tmp_path, path=str(tmp_path), kernel="6.1",
                  dist_version=lambda name: None)
    checks = _by_name(run_doctor(probe))
    assert not checks["podman"].ok and "apt install podman" in checks["podman"].fix
    assert not checks["kubectl"].ok
    assert "pip install kubernetes-validate" in checks["kubernetes-validate"].fix


def test_unknown_backend_is_rejected(bare: Path) -> None:
    with pytest.raises(ConfigError, match="auto, gramine or simulation"):
        doctor_report(_probe(bare), backend="sgx")


def _cli(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ENKLAVE_BACKEND"}
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "enklave", "doctor", *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def test_cli_json_on_this_machine_without_sgx() -> None:
    done = _cli("--json")
    report = json.loads(done.stdout)
    assert report["backend"] == "simulation" and report["simulated"] is True
    assert done.returncode == 0 and report["ok"] is True
    assert {c["name"] for c in report["checks"]} >= {"sgx-device", "aesmd", "gramine",
                                                     "qcnl-config", "podman", "backend"}


def test_cli_exit_1_when_gramine_is_required_here() -> None:
    done = _cli("--backend", "gramine")
    assert done.returncode == 1
    assert "FAIL sgx-device" in done.stdout and "NOT ready" in done.stdout


def test_cli_fake_sgx_root_selects_gramine(bare: Path, sock_holder: list[socket.socket]) -> None:
    root = _sgx_in_tree(bare, sock_holder)
    done = _cli("--json", "--root", str(root), path=f"{root / 'bin'}:{os.environ['PATH']}")
    report = json.loads(done.stdout)
    assert report["backend"] == "gramine" and done.returncode == 0, done.stdout
