"""CLI ``enklave doctor``: can this machine run enclave apps, and with which backend?"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..deploy._doctor import DoctorReport

__all__ = ["cmd_doctor", "register"]

_BACKENDS = ("auto", "gramine", "simulation")


def register(sub: Any) -> None:
    """Add ``doctor``."""
    s = sub.add_parser(
        "doctor", help="check SGX, aesmd, Gramine, DCAP, podman and kubectl; name the backend",
        description="Pre-flight checks with a fix for each problem. Exit status 0 when the "
        "selected backend can run here, 1 otherwise.")
    env = os.environ.get("ENKLAVE_BACKEND", "auto")
    s.add_argument("--backend", choices=_BACKENDS, default=env if env in _BACKENDS else "auto",
                   help="the backend to check for (default: ENKLAVE_BACKEND or auto)")
    s.add_argument("--root", type=Path, default=Path("/"),
                   help="check the device nodes, sockets, config files and libraries under "
                   "ROOT instead of / (tools are still looked up on PATH)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_doctor)


def _render(report: DoctorReport) -> str:
    lines = []
    for c in report.checks:
        mark = "ok  " if c.ok else ("FAIL" if c.blocking else "warn")
        lines.append(f"{mark} {c.name}: {c.detail}")
        if not c.ok:
            lines.append(f"     fix: {c.fix}")
    verdict = "ready" if report.ok else "NOT ready"
    lines.append(f"backend: {report.backend} ({verdict})")
    if report.backend == "simulation":
        lines.append("SIMULATION: no hardware protection")
    return "\n".join(lines)


def cmd_doctor(args: argparse.Namespace) -> int:
    from ..deploy._doctor import Probe, doctor_report

    report = doctor_report(Probe(root=args.root), backend=args.backend)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(_render(report))
    return 0 if report.ok else 1
