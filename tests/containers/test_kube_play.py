"""Acceptance: the generated simulation manifest runs under `podman kube play`.

examples/hello is built into a real image, `enklave k8s manifest --simulation` (the
library call) renders its Deployment + Service, podman plays it, and a client on the host
reaches `enklave serve` inside the pod over attested TLS: the peer's MRENCLAVE must equal
the image label, then ECALL results are checked. `podman kube down` must leave no pod
and no container behind.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from enklave.atls import PeerVerifier
from enklave.backends.simulation import SimPlatform
from enklave.deploy import ManifestOptions, image_labels, render_manifests
from enklave.errors import EnklaveError, PlatformError, PolicyError
from enklave.host import RemoteEnclave
from enklave.package import build_app, write_bundle
from enklave.verify import TrustAnchor, Verifier, default_policy

from ._podman_testkit import free_port, podman, requires_podman

pytestmark = [pytest.mark.containers, requires_podman]

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"
START_TIMEOUT = 90.0


def _played_containers(output: str) -> list[str]:
    """The container IDs `podman kube play` printed (after its "Container:" line)."""
    ids, in_section = [], False
    for line in output.splitlines():
        if line.strip().endswith(":"):
            in_section = line.strip() in ("Container:", "Containers:")
            continue
        if in_section and line.strip():
            ids.append(line.strip())
    return ids


def _simulated_verifier(container: str, dest: Path, mrenclave: str) -> PeerVerifier:
    """A verifier for the simulated platform that lives INSIDE the container.

    SIMULATION ONLY: the root and collateral are copied out of the very container being
    verified, so this proves nothing about hardware. Trusting a root handed over by the
    attested party is acceptable here only because the whole platform is simulated; a real
    deployment pins Intel's SGX Root CA (TrustAnchor.intel()) and fetches collateral from
    PCS/PCCS.
    """
    dest.mkdir()
    podman("cp", f"{container}:/tmp/enklave-sim", str(dest))  # -> dest/enklave-sim
    platform = SimPlatform.load(dest / "enklave-sim")
    anchor = TrustAnchor("simulation root copied from the pod (NOT Intel)",
                         platform.root_certificate, simulated=True)
    verifier = Verifier(anchors=[anchor], collateral=platform.collateral())
    return PeerVerifier(verifier=verifier,
                        policy=default_policy(mrenclave=[mrenclave], allow_simulated=True))


def _wait_attested(container: str, url: str, tmp: Path, mrenclave: str) -> PeerVerifier:
    """Poll until the pod's enclave answers an attested call; return the verifier used."""
    deadline = time.monotonic() + START_TIMEOUT
    attempt, last = 0, "nothing tried"
    while time.monotonic() < deadline:
        attempt += 1
        try:
            verifier = _simulated_verifier(container, tmp / f"sim-{attempt}", mrenclave)
            with RemoteEnclave(url, verifier=verifier, timeout=5.0) as remote:
                remote.identity()
            return verifier
        except (AssertionError, PlatformError, EnklaveError, OSError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # httpx connection errors while the server starts
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.5)
    logs = podman("logs", container, check=False)
    raise AssertionError(f"pod not reachable in {START_TIMEOUT} s ({last})\nlogs:\n{logs}")


def test_simulation_manifest_runs_under_kube_play(hello_image, key, tmp_path):
    info, _ = hello_image
    label = image_labels(info.tag)["io.enklave.mrenclave"]
    bundle = tmp_path / "hello.bundle"
    write_bundle(build_app(HELLO, key), bundle)  # the same app, built on the host
    name = f"enklave-e2e-{uuid.uuid4().hex[:6]}"
    port = free_port()
    manifest = tmp_path / "hello-sim.yaml"
    manifest.write_text(render_manifests(bundle, ManifestOptions(
        name=name, image=info.tag, simulation=True, host_port=port)))

    started = time.monotonic()
    played = podman("kube", "play", str(manifest))
    try:
        containers = _played_containers(played)
        assert len(containers) == 1, played
        url = f"https://127.0.0.1:{port}"
        verifier = _wait_attested(containers[0], url, tmp_path, label)
        startup = time.monotonic() - started
        with RemoteEnclave(url, verifier=verifier) as remote:
            peer = remote.peer
            assert peer.enclave.mrenclave.hex() == label == info.mrenclave.hex()
            assert peer.enclave.simulated
            assert remote.call.greet("CI") == "Hello, CI, from inside the enclave!"
            remote.call.put("ci-key", "sealed in the pod")
            assert remote.call.get("ci-key") == "sealed in the pod"
            assert remote.call.get("absent") is None
            identity = remote.identity()
            assert identity["mrenclave"] == label and identity["simulated"] is True
        _check_rejects_wrong_mrenclave(containers[0], url, tmp_path)
        print(f"pod start (kube play -> first attested call): {startup:.1f} s")
    finally:
        podman("kube", "down", str(manifest), check=False)
    assert podman("pod", "ps", "--filter", f"name={name}", "--format", "{{.Name}}").strip() == ""
    assert podman("ps", "-a", "--filter", f"name={name}", "--format", "{{.Names}}").strip() == ""


def _check_rejects_wrong_mrenclave(container: str, url: str, tmp: Path) -> None:
    """A client expecting another MRENCLAVE is refused before it sends a request."""
    wrong = _simulated_verifier(container, tmp / "sim-wrong", "00" * 32)
    with pytest.raises(PolicyError), RemoteEnclave(url, verifier=wrong) as remote:
        remote.call.greet("attacker")
