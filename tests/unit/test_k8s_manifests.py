"""Kubernetes manifests: golden files per option combination, schema validation, content.

Golden files live in tests/golden/k8s/; regenerate with ``UPDATE_GOLDEN=1``. MRENCLAVE
and MRSIGNER depend on enklave's runtime files and on the (random) test key, so they are
replaced by ``<MRENCLAVE>`` / ``<MRSIGNER>`` before comparing.

Every manifest is validated with the real ``kubernetes-validate`` schemas in strict mode
(unknown fields rejected) for the newest Kubernetes it ships and for 1.29. Extended
resources (``sgx.intel.com/epc``, ``kubernetes.azure.com/sgx_epc_mem_in_MiB``) are
quantities, which the schema accepts as a string or a number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from _golden import assert_golden
from conftest import build, write_app
from enklave.deploy import ManifestOptions, manifest_documents, render_manifests
from enklave.deploy._k8s import find_bundle, k8s_name
from enklave.errors import ConfigError, DeployError
from enklave.package import read_bundle

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "k8s"
K8S_VERSIONS = (kubernetes_validate.latest_version(), "1.29.0")
IMAGE = "localhost/goldapp:1.0"

CASES: dict[str, dict[str, Any]] = {
    "intel-default": {},
    "azure-legacy": {"epc_style": "azure-legacy"},
    "intel-quote-helper": {"quote_helper": True},
    "azure-legacy-quote-helper": {"epc_style": "azure-legacy", "quote_helper": True},
    "simulation-host-port": {"simulation": True, "host_port": 18443},
    "job": {"job": True},
    "replicas-port": {"replicas": 3, "port": 9443, "epc_mib": 64},
    "affinity-custom": {"node_affinity": "agentpool=acc"},
    "affinity-none": {"epc_style": "azure-legacy", "node_affinity": None},
}


@pytest.fixture
def gold_bundle(tmp_path: Path, key: Any) -> Path:
    """A fixed app (not examples/hello, so the golden files do not follow its edits)."""
    src = ("from enklave.enclave import EnclaveApp\n\napp = EnclaveApp('goldapp')\n\n\n"
           "@app.ecall\ndef ping() -> int:\n    return 1\n")
    app = write_app(tmp_path / "goldapp", src, "memory_mb = 512\n",
                    name="goldapp", product_id=7, security_version=3, max_threads=2)
    return build(app, key, tmp_path / "goldapp.bundle")


def _render(bundle: Path, **kw: Any) -> str:
    return render_manifests(bundle, ManifestOptions(name="goldapp", image=IMAGE, **kw))


def _normalised(text: str, bundle: Path) -> str:
    parsed = read_bundle(bundle)
    return (text.replace(parsed.mrenclave.hex(), "<MRENCLAVE>")
            .replace(parsed.mrsigner.hex(), "<MRSIGNER>"))


def _validate(text: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    for doc in docs:
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
    return docs


def _pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = docs[0]["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("case", sorted(CASES))
def test_manifest_matches_golden_and_validates(case: str, gold_bundle: Path) -> None:
    text = _normalised(_render(gold_bundle, **CASES[case]), gold_bundle)
    assert_golden(text, GOLDEN / f"{case}.yaml")
    _validate(text)


def test_golden_dir_has_no_stale_files() -> None:
    assert {p.stem for p in GOLDEN.glob("*.yaml")} == set(CASES)


def test_validation_rejects_what_kubernetes_rejects(gold_bundle: Path) -> None:
    """The check is real: an int env value (as the Azure docs write SGX_AESM_ADDR) fails."""
    docs = _validate(_render(gold_bundle, quote_helper=True))
    env = _pod(docs)["containers"][0]["env"]
    assert {"name": "SGX_AESM_ADDR", "value": "1"} in env
    next(e for e in env if e["name"] == "SGX_AESM_ADDR")["value"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(docs[0], K8S_VERSIONS[0], strict=True)


def test_identity_annotations_come_from_the_bundle(gold_bundle: Path) -> None:
    parsed = read_bundle(gold_bundle)
    docs = _validate(_render(gold_bundle))
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    for meta in (docs[0]["metadata"], docs[0]["spec"]["template"]["metadata"],
                 docs[1]["metadata"]):
        assert meta["annotations"] == {
            "io.enklave.mrenclave": parsed.mrenclave.hex(),
            "io.enklave.mrsigner": parsed.mrsigner.hex(),
            "io.enklave.product-id": "7", "io.enklave.security-version": "3",
            "io.enklave.debug": "false"}
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "enklave"


def test_intel_epc_is_a_quantity_string_with_provision(gold_bundle: Path) -> None:
    res = _pod(_validate(_render(gold_bundle)))["containers"][0]["resources"]
    for part in ("requests", "limits"):
        assert res[part]["sgx.intel.com/epc"] == "512Mi"
        assert res[part]["sgx.intel.com/provision"] == 1
    assert res["limits"]["memory"] == "768Mi"


def test_azure_legacy_epc_is_an_integer_of_mib(gold_bundle: Path) -> None:
    pod = _pod(_validate(_render(gold_bundle, epc_style="azure-legacy", epc_mib=10)))
    limits = pod["containers"][0]["resources"]["limits"]
    assert limits["kubernetes.azure.com/sgx_epc_mem_in_MiB"] == 10
    assert "sgx.intel.com/provision" not in limits
    term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["nodeSelectorTerms"][0]["matchExpressions"] == [
        {"key": "kubernetes.azure.com/sgx_epc_mem_in_MiB", "operator": "Exists"}]


def test_quote_helper_mounts_aesmd_and_drops_provision(gold_bundle: Path) -> None:
    pod = _pod(_validate(_render(gold_bundle, quote_helper=True)))
    box = pod["containers"][0]
    assert "sgx.intel.com/provision" not in box["resources"]["limits"]
    assert {"name": "aesmd", "mountPath": "/var/run/aesmd"} in box["volumeMounts"]
    assert {"name": "aesmd", "hostPath": {"path": "/var/run/aesmd", "type": "Directory"}} \
        in pod["volumes"]


def test_simulation_has_no_sgx_parts_and_says_so(gold_bundle: Path) -> None:
    text = _render(gold_bundle, simulation=True, host_port=18443)
    assert text.startswith("# enklave app")
    assert "NO hardware protection" in text.split("---")[0]
    for needle in ("sgx.intel.com", "sgx_epc", "aesmd", "SGX_AESM_ADDR", "affinity"):
        assert needle not in text
    docs = _validate(text)
    box = _pod(docs)["containers"][0]
    assert docs[0]["metadata"]["labels"]["io.enklave.simulated"] == "true"
    assert docs[0]["metadata"]["annotations"]["io.enklave.simulated"] == "true"
    assert box["ports"][0]["hostPort"] == 18443
    assert {"name": "ENKLAVE_BACKEND", "value": "simulation"} in box["env"]
    # podman kube play would turn a livenessProbe into a restarting `curl -f` healthcheck
    assert "livenessProbe" not in box and "readinessProbe" in box


def test_sgx_variant_has_probes_and_a_locked_down_container(gold_bundle: Path) -> None:
    pod = _pod(_validate(_render(gold_bundle)))
    box = pod["containers"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        assert box[probe]["httpGet"] == {"path": "/enklave/v1/health", "port": 8443,
                                         "scheme": "HTTPS"}
    ctx = box["securityContext"]
    assert ctx["runAsNonRoot"] and ctx["runAsUser"] == 10001
    assert ctx["readOnlyRootFilesystem"] and not ctx["allowPrivilegeEscalation"]
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    assert {"name": "ENKLAVE_BACKEND", "value": "gramine"} in box["env"]


def test_job_replaces_deployment_and_service(gold_bundle: Path) -> None:
    docs = _validate(_render(gold_bundle, job=True))
    assert [d["kind"] for d in docs] == ["Job"]
    assert docs[0]["apiVersion"] == "batch/v1"
    assert _pod(docs)["restartPolicy"] == "Never"


def test_service_forwards_the_port(gold_bundle: Path) -> None:
    docs = _validate(_render(gold_bundle, port=9443, replicas=2))
    assert docs[0]["spec"]["replicas"] == 2
    assert docs[1]["spec"]["type"] == "ClusterIP"
    assert docs[1]["spec"]["ports"] == [{"name": "https", "port": 9443, "targetPort": "https",
                                         "protocol": "TCP"}]
    assert _pod(docs)["containers"][0]["ports"][0]["containerPort"] == 9443


def test_output_has_no_yaml_aliases(gold_bundle: Path) -> None:
    text = _render(gold_bundle)
    assert "&id" not in text and "*id" not in text


@pytest.mark.parametrize("bad,fix", [
    ({"name": "Bad_Name"}, "--name"),
    ({"image": "has space"}, "enklave image build"),
    ({"port": 0}, "1..65535"),
    ({"host_port": 70000}, "1..65535"),
    ({"replicas": -1}, "0..1000"),
    ({"job": True, "replicas": 0}, "1..1000"),
    ({"epc_mib": 0}, "1..1048576"),
    ({"epc_style": "alibaba"}, "azure-legacy"),
    ({"node_affinity": "bad key!"}, "KEY=VALUE"),
])
def test_rejects_invalid_options_naming_the_fix(gold_bundle: Path, bad: dict[str, Any],
                                                fix: str) -> None:
    opts = {"name": "goldapp", "image": IMAGE, **bad}
    with pytest.raises(ConfigError, match=fix.replace(".", r"\.")):
        manifest_documents(read_bundle(gold_bundle), ManifestOptions(**opts))


def test_find_bundle_for_an_app_dir(gold_bundle: Path, tmp_path: Path) -> None:
    app = tmp_path / "goldapp"
    with pytest.raises(DeployError, match="enklave build"):
        find_bundle(app)
    (app / "goldapp.bundle").write_bytes(gold_bundle.read_bytes())
    assert find_bundle(app) == app / "goldapp.bundle"
    assert find_bundle(gold_bundle) == gold_bundle
    assert k8s_name("my_app") == "my-app"
