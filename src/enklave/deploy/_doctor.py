"""``enklave doctor``: pre-flight checks for running enclave apps on this machine.

Checks the SGX device nodes, the aesmd socket, the Gramine tools, the DCAP quote library
and its provider config, podman, kubectl and kubernetes-validate, then says which backend
would be used: Gramine only when an SGX device *and* Gramine are present, otherwise the
simulation backend (no hardware protection). Every failed check carries a concrete fix.

Everything the checks look at goes through a :class:`Probe` (a filesystem root, a
``PATH``, a command runner), so tests can stand up a fake machine with SGX as a directory
tree; nothing here needs SGX hardware.
"""

from __future__ import annotations

import ctypes.util
import importlib.metadata
import json
import platform
import re
import shutil
import stat
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError

__all__ = ["Check", "DoctorReport", "Probe", "doctor_report", "run_doctor"]

Backend = Literal["gramine", "simulation"]
QCNL_CONF = "etc/sgx_default_qcnl.conf"
AESM_SOCKET = "var/run/aesmd/aesm.socket"
GRAMINE_TOOLS = ("gramine-sgx", "gramine-sgx-sign", "gramine-manifest")
_LIB_DIRS = ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu", "usr/lib64", "usr/lib",
             "usr/local/lib")  # fmt: skip
_SIM_NOTE = "SIMULATION: no hardware protection"


@dataclass(frozen=True)
class Check:
    """One finding.

    Attributes:
        name: short id (``sgx-device``, ``aesmd``, ``gramine``, ...).
        ok: whether the check passed.
        detail: what was found.
        fix: what to do when it failed (empty when ok).
        blocking: whether a failure stops the selected backend from running.
    """

    name: str
    ok: bool
    detail: str
    fix: str = ""
    blocking: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix,
                "blocking": self.blocking}


def _run_command(argv: Sequence[str]) -> tuple[int, str] | None:
    """Run a command for at most 20 s; ``None`` when it cannot be started or hangs."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=20,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.returncode, (done.stdout + done.stderr).strip()


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class Probe:
    """Where the checks look. The defaults describe this machine.

    Attributes:
        root: prefix for every absolute path checked (``/dev/sgx_enclave`` is
            ``root / "dev/sgx_enclave"``).
        path: the ``PATH`` searched for tools (default: the environment's).
        kernel: the kernel release (default: ``platform.release()``).
        run: runs a command, returning ``(status, output)`` or ``None``.
        dist_version: the installed version of a Python distribution, or ``None``.
        system_libraries: also ask the dynamic loader (``ctypes.util.find_library``);
            on by default only when ``root`` is ``/``.
    """

    root: Path = Path("/")
    path: str | None = None
    kernel: str = field(default_factory=platform.release)
    run: Callable[[Sequence[str]], tuple[int, str] | None] = _run_command
    dist_version: Callable[[str], str | None] = _dist_version
    system_libraries: bool | None = None

    def at(self, rel: str) -> Path:
        return self.root / rel

    def which(self, tool: str) -> str | None:
        return shutil.which(tool, path=self.path)

    def library(self, stem: str) -> str | None:
        """Find ``lib<stem>.so*`` under the root's library dirs, or via the loader."""
        for rel in _LIB_DIRS:
            base = self.at(rel)
            hits = sorted(base.glob(f"lib{stem}.so*")) if base.is_dir() else []
            if hits:
                return str(hits[0])
        use_loader = self.system_libraries
        if use_loader is None:
            use_loader = self.root == Path("/")
        return ctypes.util.find_library(stem) if use_loader else None


@dataclass(frozen=True)
class DoctorReport:
    """All checks, the backend that would be used and whether it can run."""

    checks: tuple[Check, ...]
    backend: Backend
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "backend": self.backend,
                "simulated": self.backend == "simulation",
                "checks": [c.to_dict() for c in self.checks]}


def _is_char_device(path: Path) -> bool:
    """A character device node; a fake root may stand in with a regular file."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISREG(mode)


def _check_device(probe: Probe) -> tuple[Check, bool]:
    """``(check, usable by Gramine)`` for the SGX enclave device."""
    found = [p for p in ("dev/sgx_enclave", "dev/sgx/enclave", "dev/isgx")
             if _is_char_device(probe.at(p))]
    shown = ", ".join("/" + p for p in found)
    if "dev/sgx_enclave" in found:
        return Check("sgx-device", True, f"in-tree SGX driver: {shown}"), True
    if "dev/sgx/enclave" in found:
        return Check("sgx-device", True, f"legacy DCAP driver path: {shown}"), True
    if found:
        return Check("sgx-device", False, f"only the out-of-tree (non-FLC) driver: {shown}",
                     "Gramine needs the in-tree driver: Linux >= 5.11 on a CPU with FLC "
                     "(/dev/sgx_enclave); remove the isgx module"), False
    return Check("sgx-device", False, "no /dev/sgx_enclave, /dev/sgx/enclave or /dev/isgx",
                 "use an SGX machine (Azure DCsv2/DCsv3, or an AKS node pool with the confcom "
                 "add-on) running Linux >= 5.11 with SGX enabled in the BIOS; until then "
                 "the simulation backend runs (no hardware protection)"), False


def _check_provision(probe: Probe) -> Check:
    found = [p for p in ("dev/sgx_provision", "dev/sgx/provision")
             if _is_char_device(probe.at(p))]
    if found:
        return Check("sgx-provision", True, "/" + found[0])
    return Check("sgx-provision", False, "no /dev/sgx_provision (needed to quote in-process)",
                 "Linux >= 5.11 creates it; add the user to group sgx_prv, request "
                 "sgx.intel.com/provision in Kubernetes, or quote through aesmd instead")


def _check_aesmd(probe: Probe) -> Check:
    sock = probe.at(AESM_SOCKET)
    try:
        mode = sock.stat().st_mode
    except OSError:
        return Check("aesmd", False, f"no aesmd socket at /{AESM_SOCKET}",
                     "apt install sgx-aesm-service libsgx-quote-ex && systemctl start aesmd; "
                     "on AKS: az aks addon update --addon confcom --enable-sgxquotehelper")
    if not stat.S_ISSOCK(mode):
        return Check("aesmd", False, f"/{AESM_SOCKET} exists but is not a socket",
                     "restart aesmd (systemctl restart aesmd) so it recreates the socket")
    return Check("aesmd", True, f"socket /{AESM_SOCKET}")


def _check_gramine(probe: Probe) -> Check:
    found = {tool: probe.which(tool) for tool in GRAMINE_TOOLS}
    missing = [tool for tool, where in found.items() if where is None]
    if missing:
        return Check("gramine", False, f"not on PATH: {', '.join(missing)}",
                     "install Gramine: apt install gramine (repository packages.gramineproject.io)")
    return Check("gramine", True, ", ".join(str(w) for w in found.values()))


def _read_qcnl(text: str) -> dict[str, Any]:
    """Parse the QCNL config: JSON (Intel ships it with ``//`` comment lines)."""
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _check_qcnl(probe: Probe) -> Check:
    conf = probe.at(QCNL_CONF)
    fix_install = "apt install libsgx-dcap-default-qcnl, then set \"pccs_url\" in it"
    try:
        text = conf.read_text(encoding="utf-8")
    except OSError:
        return Check("qcnl-config", False, f"/{QCNL_CONF} not found", fix_install)
    try:
        data = _read_qcnl(text)
    except ValueError as exc:
        return Check("qcnl-config", False, f"/{QCNL_CONF} is not valid JSON: {exc}",
                     "fix the JSON (keys are case sensitive) or reinstall "
                     "libsgx-dcap-default-qcnl")
    url = data.get("pccs_url")
    if not isinstance(url, str) or not url:
        return Check("qcnl-config", False, f"/{QCNL_CONF} has no \"pccs_url\"",
                     "set \"pccs_url\" to your PCCS (on Azure, the THIM/global.acccache "
                     "endpoint)")
    return Check("qcnl-config", True, f"/{QCNL_CONF}: PCCS {url}")


def _check_dcap_ql(probe: Probe) -> Check:
    ql = probe.library("sgx_dcap_ql")
    qpl = probe.library("sgx_default_qcnl_wrapper") or probe.library("sgx_dcap_quoteprov")
    if ql and qpl:
        return Check("dcap-ql", True, f"{ql}; quote provider {qpl}")
    missing = [n for n, v in (("libsgx_dcap_ql.so.1", ql),
                              ("libsgx_default_qcnl_wrapper.so.1", qpl)) if not v]
    return Check("dcap-ql", False, f"not found: {', '.join(missing)}",
                 "apt install libsgx-dcap-ql libsgx-dcap-default-qcnl (Intel SGX apt repository)")


def _check_kernel(probe: Probe) -> Check:
    m = re.match(r"(\d+)\.(\d+)", probe.kernel)
    version = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    if version >= (5, 11):
        return Check("kernel", True,
                     f"Linux {probe.kernel} (new enough for the in-tree SGX driver)")
    return Check("kernel", False, f"Linux {probe.kernel or 'unknown'} is older than 5.11",
                 "upgrade to Linux >= 5.11 for the in-tree SGX driver")


def _check_tool(probe: Probe, name: str, version_argv: list[str], fix: str) -> Check:
    where = probe.which(name)
    if where is None:
        return Check(name, False, f"{name} not on PATH", fix)
    got = probe.run([where, *version_argv])
    if got is None or got[0] != 0:
        return Check(name, False, f"{where} does not run ({' '.join(version_argv)})", fix)
    first = got[1].splitlines()[0] if got[1] else "version unknown"
    return Check(name, True, f"{where}: {first}")


def _check_podman(probe: Probe) -> Check:
    fix = "apt install podman (needed for `enklave image build` and `podman kube play`)"
    check = _check_tool(probe, "podman", ["--version"], fix)
    if not check.ok:
        return check
    argv = [probe.which("podman") or "podman", "info", "--format", "{{.Host.OCIRuntime.Name}}"]
    info = probe.run(argv)
    if info is None or info[0] != 0:
        tail = info[1].splitlines()[-1] if info and info[1] else "no output"
        return Check("podman", False, f"{check.detail}; `podman info` fails: {tail}",
                     "check /etc/containers/containers.conf (runtime, ulimits) and storage; "
                     "see docs/kubernetes.md")
    return Check("podman", True, f"{check.detail}; runtime {info[1] or 'default'}")


def _check_validate(probe: Probe) -> Check:
    version = probe.dist_version("kubernetes-validate")
    if version is None:
        return Check("kubernetes-validate", False, "not installed",
                     "pip install kubernetes-validate (checks generated manifests)")
    return Check("kubernetes-validate", True, f"version {version}")


def _backend_check(want: str, device_ok: bool, gramine_ok: bool,
                   quoting_ok: bool) -> tuple[Check, Backend]:
    sgx_ready = device_ok and gramine_ok
    if want == "simulation" or (want == "auto" and not sgx_ready):
        why = "" if want == "simulation" else " (no usable SGX device and Gramine)"
        return Check("backend", True, f"simulation{why}; {_SIM_NOTE}"), "simulation"
    if not sgx_ready:
        return Check("backend", False, "gramine requested but SGX device or Gramine missing",
                     "fix the sgx-device and gramine checks above", blocking=True), "gramine"
    if not quoting_ok:
        return Check("backend", False, "gramine (SGX) runs, but nothing can produce quotes",
                     "start aesmd (quote helper) or provide /dev/sgx_provision plus the DCAP "
                     "libraries and a qcnl config", blocking=True), "gramine"
    return Check("backend", True, "gramine (SGX hardware)"), "gramine"


def doctor_report(probe: Probe | None = None, *, backend: str = "auto") -> DoctorReport:
    """Run every check.

    Args:
        probe: where to look (default: this machine).
        backend: ``"auto"`` (Gramine only with an SGX device and Gramine, else simulation),
            ``"gramine"`` or ``"simulation"``: the backend whose needs decide ``ok``.

    Returns:
        The report; ``ok`` is true when the selected backend can run here.

    Raises:
        ConfigError: ``backend`` is not one of the three names.
    """
    if backend not in ("auto", "gramine", "simulation"):
        raise ConfigError(f"unknown backend {backend!r}; use auto, gramine or simulation")
    p = probe or Probe()
    device, device_ok = _check_device(p)
    provision, aesmd, gramine = _check_provision(p), _check_aesmd(p), _check_gramine(p)
    qcnl, ql = _check_qcnl(p), _check_dcap_ql(p)
    quoting_ok = aesmd.ok or (provision.ok and ql.ok and qcnl.ok)
    verdict, chosen = _backend_check(backend, device_ok, gramine.ok, quoting_ok)
    checks = [device, provision, aesmd, gramine, qcnl, ql, _check_kernel(p), _check_podman(p),
              _check_tool(p, "kubectl", ["version", "--client"],
                          "install kubectl (https://kubernetes.io/docs/tasks/tools/) to apply "
                          "the manifests"),
              _check_validate(p), verdict]
    if chosen == "gramine":
        checks = [replace(c, blocking=True) if c.name in ("sgx-device", "gramine") else c
                  for c in checks]
    ok = all(c.ok for c in checks if c.blocking)
    return DoctorReport(tuple(checks), chosen, ok)


def run_doctor(probe: Probe | None = None) -> list[Check]:
    """The checks of :func:`doctor_report` (automatic backend selection)."""
    return list(doctor_report(probe).checks)
