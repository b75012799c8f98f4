"""Kubernetes manifests for an enclave app: Deployment + Service (or a Job), SGX or simulated.

The SGX variant targets SGX node pools (AKS ``confcom`` add-on, or any cluster running
Intel's SGX device plugin): an EPC resource per device plugin, ``sgx.intel.com/provision``
for in-process quoting, or the AKS quote helper (the host's aesmd socket), node affinity,
HTTPS probes on ``/enklave/v1/health``, resources and a locked-down securityContext.

The simulation variant drops every SGX part, is marked ``io.enklave.simulated: "true"``
and opens with a comment saying it has no hardware protection; it runs locally with
``podman kube play`` (``host_port`` publishes the port on the host).

Resource names (see ``../shared/specs/sdk-anchors.md``, finding 8): Intel's plugin takes a
quantity string (``sgx.intel.com/epc: "10Mi"``); the legacy Azure plugin takes a bare
number of MiB (``kubernetes.azure.com/sgx_epc_mem_in_MiB: 10``). Whether current AKS nodes
carry an SGX-specific node *label* is unverified, so the affinity key is an option.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from ..enclave._gateway import HEALTH_PATH
from ..errors import ConfigError, DeployError
from ..package import AppConfig, Bundle, read_bundle

__all__ = [
    "DEFAULT_AFFINITY",
    "EPC_RESOURCE",
    "HEALTH_PATH",
    "MEMORY_HEADROOM_MIB",
    "ManifestOptions",
    "find_bundle",
    "k8s_name",
    "manifest_documents",
    "render_manifests",
]

EpcStyle = Literal["intel", "azure-legacy"]

EPC_RESOURCE: dict[str, str] = {
    "intel": "sgx.intel.com/epc",
    "azure-legacy": "kubernetes.azure.com/sgx_epc_mem_in_MiB",
}
"""The extended resource each device plugin advertises for EPC memory."""

DEFAULT_AFFINITY: dict[str, str] = {
    "intel": "intel.feature.node.kubernetes.io/sgx=true",
    "azure-legacy": "kubernetes.azure.com/sgx_epc_mem_in_MiB",
}
"""Default node-affinity requirement per style: ``KEY=VALUE`` (In) or ``KEY`` (Exists)."""

PROVISION_RESOURCE = "sgx.intel.com/provision"
MEMORY_HEADROOM_MIB = 256
"""Container memory on top of the app's ``memory_mb``: the host process and the runtime."""

AESMD_DIR = "/var/run/aesmd"
TMP_MOUNT = "/tmp"  # noqa: S108 - an emptyDir in the pod (the root filesystem is read-only)
RUN_AS = 10001
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_KEY = re.compile(r"([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


@dataclass(frozen=True)
class ManifestOptions:
    """What to generate. Every field is checked by :func:`render_manifests`.

    Attributes:
        name: Kubernetes object name (a DNS-1123 label, at most 63 characters).
        image: container image built by ``enklave image build``.
        simulation: the simulation variant (no SGX resources; NO hardware protection).
        epc_style: ``"intel"`` (``sgx.intel.com/epc: "<n>Mi"``) or ``"azure-legacy"``
            (``kubernetes.azure.com/sgx_epc_mem_in_MiB: <n>``).
        epc_mib: EPC to request in MiB; default the app's ``memory_mb``.
        quote_helper: quote through the node's aesmd (hostPath ``/var/run/aesmd`` and
            ``SGX_AESM_ADDR="1"``) instead of in-process with ``sgx.intel.com/provision``.
        replicas: Deployment replicas (Job: parallelism and completions).
        port: the container's HTTPS port (the Service forwards it).
        host_port: also publish the port on the host (for ``podman kube play``).
        job: a Job instead of Deployment + Service.
        node_affinity: ``"auto"`` (the style's default, see :data:`DEFAULT_AFFINITY`),
            ``None`` for none, ``"KEY"`` (Exists) or ``"KEY=VALUE"`` (In). Ignored when
            simulating.
    """

    name: str
    image: str
    simulation: bool = False
    epc_style: EpcStyle = "intel"
    epc_mib: int | None = None
    quote_helper: bool = False
    replicas: int = 1
    port: int = 8443
    host_port: int | None = None
    job: bool = False
    node_affinity: str | None = "auto"


def find_bundle(app_or_bundle: Path) -> Path:
    """The bundle file for an app directory (``APP/NAME.bundle``) or a bundle path.

    Raises:
        ConfigError: the directory holds no valid ``enklave.toml``.
        DeployError: the app has not been built (the message gives the command).
    """
    if not app_or_bundle.is_dir():
        return app_or_bundle
    name = AppConfig.load(app_or_bundle).name
    bundle = app_or_bundle / f"{name}.bundle"
    if not bundle.is_file():
        raise DeployError(f"{bundle} not found; build the app first: "
                          f"enklave build {app_or_bundle} --key KEY.pem")
    return bundle


def k8s_name(app_name: str) -> str:
    """A Kubernetes object name for an app name (``_`` becomes ``-``, trimmed to 63)."""
    return app_name.replace("_", "-")[:63].strip("-") or "enklave-app"


def _check_options(opts: ManifestOptions) -> None:
    """Raise ConfigError naming the fix for the first invalid option."""
    if not _DNS_LABEL.fullmatch(opts.name):
        raise ConfigError(f"invalid name {opts.name!r}: use lowercase letters, digits and '-' "
                          "(at most 63, starting and ending with a letter or digit); pass --name")
    if not opts.image or any(c.isspace() for c in opts.image):
        raise ConfigError(f"invalid image {opts.image!r}: pass the tag printed by "
                          "`enklave image build`")
    if opts.epc_style not in EPC_RESOURCE:
        raise ConfigError(f"unknown EPC style {opts.epc_style!r}; use 'intel' or 'azure-legacy'")
    if opts.epc_mib is not None and not 1 <= opts.epc_mib <= 1 << 20:
        raise ConfigError(f"EPC size {opts.epc_mib} MiB out of range; use 1..1048576")
    low = 1 if opts.job else 0
    if not low <= opts.replicas <= 1000:
        raise ConfigError(f"replicas {opts.replicas} out of range; use {low}..1000")
    for what, port in (("port", opts.port), ("host port", opts.host_port)):
        if port is not None and not 1 <= port <= 65535:
            raise ConfigError(f"{what} {port} out of range; use 1..65535")
    if opts.node_affinity not in (None, "auto"):
        key = opts.node_affinity.split("=", 1)[0]
        if not _LABEL_KEY.fullmatch(key):
            raise ConfigError(f"invalid node affinity {opts.node_affinity!r}; use KEY or "
                              "KEY=VALUE with a Kubernetes label key, or 'none'")


def _identity(bundle: Bundle, simulated: bool) -> dict[str, str]:
    cfg = bundle.config
    notes = {
        "io.enklave.mrenclave": bundle.mrenclave.hex(),
        "io.enklave.mrsigner": bundle.mrsigner.hex(),
        "io.enklave.product-id": str(cfg.product_id),
        "io.enklave.security-version": str(cfg.security_version),
        "io.enklave.debug": "true" if cfg.debug else "false",
    }
    if simulated:
        notes["io.enklave.simulated"] = "true"
    return notes


def _labels(opts: ManifestOptions) -> dict[str, str]:
    labels = {"app.kubernetes.io/name": opts.name, "app.kubernetes.io/managed-by": "enklave"}
    if opts.simulation:
        labels["io.enklave.simulated"] = "true"
    return labels


def _resources(bundle: Bundle, opts: ManifestOptions) -> dict[str, Any]:
    cfg = bundle.config
    memory = f"{cfg.memory_mb + MEMORY_HEADROOM_MIB}Mi"
    requests: dict[str, Any] = {"cpu": "250m", "memory": memory}
    limits: dict[str, Any] = {"cpu": str(cfg.max_threads), "memory": memory}
    if not opts.simulation:
        epc = opts.epc_mib if opts.epc_mib is not None else cfg.memory_mb
        sgx: dict[str, Any] = (
            {EPC_RESOURCE["intel"]: f"{epc}Mi"} if opts.epc_style == "intel"
            else {EPC_RESOURCE["azure-legacy"]: epc}
        )
        if opts.epc_style == "intel" and not opts.quote_helper:
            sgx[PROVISION_RESOURCE] = 1
        # Extended resources cannot be overcommitted: requests must equal limits.
        requests.update(sgx)
        limits.update(sgx)
    return {"requests": requests, "limits": limits}


def _probe(opts: ManifestOptions, *, delay: int, period: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": HEALTH_PATH, "port": opts.port, "scheme": "HTTPS"},
        "initialDelaySeconds": delay,
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }


def _container(bundle: Bundle, opts: ManifestOptions) -> dict[str, Any]:
    port: dict[str, Any] = {"name": "https", "containerPort": opts.port, "protocol": "TCP"}
    if opts.host_port is not None:
        port["hostPort"] = opts.host_port
    env = [{"name": "ENKLAVE_BACKEND", "value": "simulation" if opts.simulation else "gramine"}]
    mounts = [{"name": "tmp", "mountPath": TMP_MOUNT}]
    probes = {"readinessProbe": _probe(opts, delay=2, period=5)}
    if not opts.simulation:
        # podman kube play turns a livenessProbe into `curl -f` with restart-on-failure,
        # which fails against the attested-TLS certificate: the local variant omits it.
        probes["livenessProbe"] = _probe(opts, delay=10, period=20)
    if opts.quote_helper and not opts.simulation:
        env.append({"name": "SGX_AESM_ADDR", "value": "1"})  # a string: k8s rejects an int
        mounts.append({"name": "aesmd", "mountPath": AESMD_DIR})
    return {
        "name": opts.name,
        "image": opts.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [port],
        "env": env,
        "resources": _resources(bundle, opts),
        **probes,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
    }


def _affinity(opts: ManifestOptions) -> dict[str, Any] | None:
    spec = opts.node_affinity
    if opts.simulation or spec is None:
        return None
    if spec == "auto":
        spec = DEFAULT_AFFINITY[opts.epc_style]
    key, sep, value = spec.partition("=")
    expr: dict[str, Any] = (
        {"key": key, "operator": "In", "values": [value]} if sep
        else {"key": key, "operator": "Exists"}
    )
    terms = [{"matchExpressions": [expr]}]
    return {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}


def _pod_spec(bundle: Bundle, opts: ManifestOptions) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    if opts.quote_helper and not opts.simulation:
        volumes.append({"name": "aesmd", "hostPath": {"path": AESMD_DIR, "type": "Directory"}})
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS,
                            "fsGroup": RUN_AS, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [_container(bundle, opts)],
        "volumes": volumes,
    }
    affinity = _affinity(opts)
    if affinity is not None:
        spec["affinity"] = affinity
    if opts.job:
        spec["restartPolicy"] = "Never"
    return spec


def _metadata(opts: ManifestOptions, notes: dict[str, str]) -> dict[str, Any]:
    return {"name": opts.name, "labels": _labels(opts), "annotations": notes}


def manifest_documents(bundle: Bundle, opts: ManifestOptions) -> list[dict[str, Any]]:
    """The manifests as Kubernetes objects (dicts), in apply order.

    Raises:
        ConfigError: an option is invalid (the message names the fix).
    """
    _check_options(opts)
    notes = _identity(bundle, opts.simulation)
    template = {"metadata": {"labels": _labels(opts), "annotations": notes},
                "spec": _pod_spec(bundle, opts)}
    if opts.job:
        job_spec = {"parallelism": opts.replicas, "completions": opts.replicas,
                    "backoffLimit": 2, "template": template}
        return [{"apiVersion": "batch/v1", "kind": "Job",
                 "metadata": _metadata(opts, notes), "spec": job_spec}]
    selector = {"app.kubernetes.io/name": opts.name}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _metadata(opts, notes),
        "spec": {"replicas": opts.replicas, "selector": {"matchLabels": selector},
                 "template": template},
    }
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": _metadata(opts, notes),
        "spec": {"type": "ClusterIP", "selector": selector,
                 "ports": [{"name": "https", "port": opts.port, "targetPort": "https",
                            "protocol": "TCP"}]},
    }
    return [deployment, service]


def _header(bundle: Bundle, opts: ManifestOptions) -> str:
    lines = [f"# enklave app {bundle.config.name!r}: MRENCLAVE {bundle.mrenclave.hex()}",
             "# Generated by `enklave k8s manifest`; the image's ENTRYPOINT runs `enklave serve`."]
    if opts.simulation:
        lines += ["# SIMULATION: NO hardware protection. The enclave runs as a plain process;",
                  "# the host can read and change its memory. For development only.",
                  "# Run locally: podman kube play THIS.yaml ; remove: podman kube down THIS.yaml"]
    else:
        plugin = "Intel SGX device plugin" if opts.epc_style == "intel" else "legacy AKS plugin"
        quoting = ("quote helper (node aesmd)" if opts.quote_helper else "in-process quoting")
        lines.append(f"# SGX: EPC {EPC_RESOURCE[opts.epc_style]} ({plugin}); {quoting}.")
    return "\n".join(lines) + "\n"


class _NoAliasDumper(yaml.SafeDumper):
    """A safe dumper that writes shared objects out in full (no ``&id`` anchors)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_manifests(bundle: Path | Bundle, opts: ManifestOptions) -> str:
    """Render the manifests for a bundle (a file, or one already read) as one YAML string.

    The bundle is read, not verified: its MRENCLAVE, MRSIGNER, product id, SVN and debug
    flag become annotations, its ``memory_mb`` and ``max_threads`` size the resources.

    Raises:
        BundleError: the bundle cannot be read or parsed.
        ConfigError: an option is invalid.
        DeployError: the YAML cannot be written.
    """
    parsed = bundle if isinstance(bundle, Bundle) else read_bundle(bundle)
    docs = manifest_documents(parsed, opts)
    try:
        body = yaml.dump_all(docs, Dumper=_NoAliasDumper, sort_keys=False, default_flow_style=False,
                                  explicit_start=True, width=100)
    except yaml.YAMLError as exc:
        raise DeployError(f"cannot write the manifests as YAML: {exc}; report a bug") from exc
    return _header(parsed, opts) + body
