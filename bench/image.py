"""Benchmark: building an enklave app image and starting its pod, against plain podman.

Measured in one run, on the same base image (``enklave image base``):

- image build, cold: ``enklave image build examples/hello`` with ``--no-cache`` (no podman
  layer cache); the wheelhouse is warmed before timing (``wheelhouse: "cached"``), so the
  number is the podman build itself: venv + offline hash-pinned install + layers.
- image build, warm: the same build again, every layer from podman's cache (median).
- baseline build: a plain Containerfile that only COPYs the same files (wheels, bundle,
  host.py) into the base, no enklave steps; cold (``--no-cache``) and warm.
- pod start, cold: ``podman kube play`` of the generated simulation manifest until the first
  successful attested call from the host (the first pod of a freshly built image); warm:
  later pods of the same image (median). Each pod starts a fresh simulated platform.
- baseline run: ``podman run --rm BASE python3 -c pass`` (first run, then median).

Prints one JSON line with the ratios. Needs podman (and mmdebstrap if the base is absent).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HELLO = REPO / "examples" / "hello"
APP_TAG = "localhost/enklave-bench-hello:latest"
PLAIN_TAG = "localhost/enklave-bench-plain:latest"
CONF = """[containers]
default_ulimits = ["nofile={n}:{n}", "nproc=4096:4096"]
[engine]
runtime = "runc"
"""


def podman(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise SystemExit(f"podman {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - started, value


def quiet(line: str) -> None:
    pass


def plain_build(ctx: Path, base: str, *, no_cache: bool) -> None:
    (ctx / "Containerfile").write_text(
        f"FROM {base}\nCOPY wheels/ /wheels/\nCOPY app.bundle host.py /app/\n")
    args = ["build", "--pull=never", "--network=none", "--layers", "--tag", PLAIN_TAG]
    podman(*args, *(["--no-cache"] if no_cache else []), str(ctx))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pod_start(bundle: Path, mrenclave: str, work: Path, n: int) -> float:
    """kube play -> first attested call; the pod is removed afterwards (not timed)."""
    from enklave.atls import PeerVerifier
    from enklave.backends.simulation import SimPlatform
    from enklave.deploy import ManifestOptions, render_manifests
    from enklave.host import RemoteEnclave
    from enklave.verify import TrustAnchor, Verifier, default_policy

    port = free_port()
    manifest = work / f"pod-{n}.yaml"
    manifest.write_text(render_manifests(bundle, ManifestOptions(
        name=f"enklave-bench-{os.getpid()}-{n}", image=APP_TAG, simulation=True,
        host_port=port)))
    started = time.perf_counter()
    out = podman("kube", "play", str(manifest))
    container = out.split("Container:")[1].split()[0]
    try:
        for attempt in range(600):
            try:
                dest = work / f"sim-{n}-{attempt}"
                dest.mkdir()
                podman("cp", f"{container}:/tmp/enklave-sim", str(dest))
                # SIMULATION ONLY: a root copied out of the pod is trusted for timing here.
                plat = SimPlatform.load(dest / "enklave-sim")
                anchor = TrustAnchor("sim (copied)", plat.root_certificate, simulated=True)
                verifier = PeerVerifier(
                    verifier=Verifier(anchors=[anchor], collateral=plat.collateral()),
                    policy=default_policy(mrenclave=[mrenclave], allow_simulated=True))
                with RemoteEnclave(f"https://127.0.0.1:{port}", verifier=verifier,
                                   timeout=5.0) as remote:
                    assert remote.call.greet("bench").startswith("Hello, bench")
                return time.perf_counter() - started
            except (SystemExit, Exception):  # not up yet
                time.sleep(0.1)
        raise SystemExit("pod did not answer within 60 s")
    finally:
        podman("kube", "down", str(manifest), check=False)


def plain_run(base: str) -> float:
    return timed(podman, "run", "--rm", base, "python3", "-c", "pass")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="warm repetitions (median)")
    args = parser.parse_args()
    if not os.environ.get("CONTAINERS_CONF"):  # runc + ulimits within the hard limits
        import resource

        conf = Path(tempfile.mkdtemp()) / "containers.conf"
        conf.write_text(CONF.format(n=min(resource.getrlimit(resource.RLIMIT_NOFILE)[1],
                                          1 << 20)))
        os.environ["CONTAINERS_CONF"] = str(conf)

    from enklave.deploy import DEFAULT_BASE, build_base_image, build_image
    from enklave.deploy._wheels import prepare_wheelhouse
    from enklave.package import build_app, generate_signing_key, write_bundle, write_private_key

    base_s, base = timed(build_base_image, tag=DEFAULT_BASE, progress=quiet)
    with tempfile.TemporaryDirectory(prefix="enklave-bench-") as tmp:
        work = Path(tmp)
        key = generate_signing_key()
        write_private_key(key, work / "key.pem")
        ctx = work / "plain"
        (ctx / "wheels").mkdir(parents=True)
        prepare_wheelhouse(ctx / "wheels", progress=quiet)  # warms the wheel cache too
        bundle = work / "hello.bundle"
        write_bundle(build_app(HELLO, key), bundle)
        (ctx / "app.bundle").write_bytes(bundle.read_bytes())
        (ctx / "host.py").write_bytes((HELLO / "host.py").read_bytes())

        build_cold, info = timed(build_image, HELLO, key=work / "key.pem", base=str(base),
                                 tag=APP_TAG, no_cache=True)
        build_warm = statistics.median(
            timed(build_image, HELLO, key=work / "key.pem", base=str(base), tag=APP_TAG)[0]
            for _ in range(args.rounds))
        plain_cold = timed(plain_build, ctx, str(base), no_cache=True)[0]
        plain_warm = statistics.median(
            timed(plain_build, ctx, str(base), no_cache=False)[0] for _ in range(args.rounds))
        mre = info.mrenclave.hex()  # type: ignore[attr-defined]
        pod_cold = pod_start(bundle, mre, work, 0)
        pod_warm = statistics.median(pod_start(bundle, mre, work, i + 1)
                                     for i in range(args.rounds))
        run_cold = plain_run(str(base))
        run_warm = statistics.median(plain_run(str(base)) for _ in range(args.rounds))

    result = {
        "bench": "image",
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}",
        "podman": podman("--version").strip(),
        "python": sys.version.split()[0],
        "rounds": args.rounds,
        "wheelhouse": "cached",
        "base_image_s": round(base_s, 2),
        "build_cold_s": round(build_cold, 2),
        "build_warm_s": round(build_warm, 2),
        "plain_build_cold_s": round(plain_cold, 2),
        "plain_build_warm_s": round(plain_warm, 2),
        "build_cold_ratio": round(build_cold / plain_cold, 2),
        "build_warm_ratio": round(build_warm / plain_warm, 2),
        "pod_start_cold_s": round(pod_cold, 2),
        "pod_start_warm_s": round(pod_warm, 2),
        "plain_run_cold_s": round(run_cold, 2),
        "plain_run_warm_s": round(run_warm, 2),
        "pod_start_cold_ratio": round(pod_cold / run_cold, 2),
        "pod_start_warm_ratio": round(pod_warm / run_warm, 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
