"""Smoke test for bench/image.py: it runs with the smallest settings and prints one JSON line
(timings are recorded in docs/benchmarks.md, never checked here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ._podman_testkit import REPO, podman, requires_podman

pytestmark = [pytest.mark.containers, requires_podman]


def test_bench_image_quick(podman_env, base_image):
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "image.py"), "--rounds", "1"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["bench"] == "image"
    for key in ("build_cold_s", "build_warm_s", "pod_start_cold_s", "pod_start_warm_s",
                "build_cold_ratio", "pod_start_warm_ratio"):
        assert result[key] > 0
    assert result["wheelhouse"] == "cached"
    assert podman("pod", "ps", "--filter", "name=enklave-bench", "--format", "{{.Name}}") == ""
