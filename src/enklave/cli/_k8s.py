"""CLI ``enklave k8s manifest``: Kubernetes YAML for an app (SGX node pools or simulation)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import DeployError

__all__ = ["cmd_k8s_manifest", "register"]


def register(sub: Any) -> None:
    """Add ``k8s`` with its subcommand ``manifest``."""
    k8s = sub.add_parser("k8s", help="Kubernetes manifests for enclave apps")
    k_sub = k8s.add_subparsers(dest="k8s_command", required=True, metavar="SUBCOMMAND")
    s = k_sub.add_parser(
        "manifest", help="print a Deployment + Service (or a Job) for an app's image",
        description="Generate Kubernetes YAML for an app built with `enklave build` and "
        "`enklave image build`. The SGX variant targets SGX node pools (AKS confcom add-on or "
        "Intel's device plugin); --simulation runs anywhere, including `podman kube play`, "
        "with NO hardware protection.")
    s.add_argument("app", type=Path, help="app directory (uses APP/NAME.bundle) or a bundle")
    s.add_argument("--image", required=True, help="the image tag from `enklave image build`")
    s.add_argument("--simulation", action="store_true",
                   help="no SGX resources (NO hardware protection; for podman kube play)")
    s.add_argument("--epc-style", choices=("intel", "azure-legacy"), default="intel",
                   help="EPC resource: intel = sgx.intel.com/epc: \"<n>Mi\" (default); "
                   "azure-legacy = kubernetes.azure.com/sgx_epc_mem_in_MiB: <n>")
    s.add_argument("--epc", type=int, metavar="MiB", help="EPC to request (default: memory_mb)")
    s.add_argument("--quote-helper", action="store_true",
                   help="quote through the node's aesmd (AKS quote helper) instead of "
                   "in-process with sgx.intel.com/provision")
    s.add_argument("--node-affinity", default="auto", metavar="KEY[=VALUE]|none",
                   help="required node label (default per EPC style; 'none' for no affinity)")
    s.add_argument("--replicas", type=int, default=1, help="Deployment replicas (default 1)")
    s.add_argument("--port", type=int, default=8443, help="container HTTPS port (default 8443)")
    s.add_argument("--host-port", type=int, help="also publish on this host port (podman)")
    s.add_argument("--job", action="store_true", help="a Job instead of Deployment + Service")
    s.add_argument("--name", help="object name (default: the app name, '_' -> '-')")
    s.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    s.set_defaults(func=cmd_k8s_manifest)


def cmd_k8s_manifest(args: argparse.Namespace) -> int:
    from ..deploy._k8s import ManifestOptions, find_bundle, k8s_name, render_manifests
    from ..package import read_bundle

    bundle = read_bundle(find_bundle(args.app))
    name = args.name or k8s_name(bundle.config.name)
    affinity = None if args.node_affinity == "none" else args.node_affinity
    opts = ManifestOptions(
        name=name, image=args.image, simulation=args.simulation, epc_style=args.epc_style,
        epc_mib=args.epc, quote_helper=args.quote_helper, replicas=args.replicas,
        port=args.port, host_port=args.host_port, job=args.job, node_affinity=affinity)
    text = render_manifests(bundle, opts)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise DeployError(f"cannot write {args.output}: {exc.strerror}; "
                          "choose another -o path") from exc
    kind = "Job" if args.job else "Deployment + Service"
    mode = "SIMULATION (no hardware protection)" if args.simulation else "SGX"
    print(f"wrote {args.output}: {kind} {name!r}, {mode}", file=sys.stderr)
    return 0
