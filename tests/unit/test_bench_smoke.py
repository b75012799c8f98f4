"""Smoke tests for the benchmarks: each runs and prints one JSON line (timings never checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KEYS = {
    "bench",
    "raw_p50_us",
    "raw_p99_us",
    "ours_p50_us",
    "ours_p99_us",
    "ratio_p50",
    "ratio_p99",
    "raw_calls_per_s",
    "ours_calls_per_s",
    "mib_raw_mb_s",
    "mib_ours_mb_s",
    "mib_ratio",
    "threads",
    "machine",
}


def run_bench(tmp_path: Path, script: str, *args: str) -> dict:
    """Run ``bench/<script>`` with ``args``; return its one JSON line, parsed."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0])


def test_bench_ecall_quick(tmp_path: Path) -> None:
    result = run_bench(tmp_path, "ecall.py", "--quick")
    assert KEYS <= set(result), KEYS - set(result)
    assert result["bench"] == "ecall"
    assert set(result["threads"]) == {"1", "2", "4"}


def test_bench_verify_quick(tmp_path: Path) -> None:
    result = run_bench(tmp_path, "verify.py", "--rounds", "1", "--seconds", "0.02")
    assert result["bench"] == "verify"
    if "skipped" not in result:
        assert {"ours_warm_qps", "ours_cold_qps", "dcap_qvl_qps", "ratio_warm"} <= set(result)


def test_bench_atls_quick(tmp_path: Path) -> None:
    result = run_bench(tmp_path, "atls.py", "--rounds", "1", "--batch", "2")
    assert result["bench"] == "atls"
    assert {"plain_p50_ms", "attested_warm_p50_ms", "attested_cold_p50_ms", "ratio_warm",
            "ratio_cold"} <= set(result)
