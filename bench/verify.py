"""Benchmark: DCAP quotes verified per second, enklave against dcap-qvl, in one run.

Same quotes, same collateral, same root and `now` for both. Ours runs warm (one
DcapVerifier reused: collateral signature checks cached per collateral set, per-quote
checks still done every time) and cold (a fresh DcapVerifier per quote). dcap-qvl keeps
no cache, so its one number serves as the baseline for both. Rounds alternate between
the two implementations so machine noise hits both alike.

Prints one JSON line. Needs ../shared/testvectors (the real quotes) and dcap-qvl.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dcap_qvl

from enklave.collateral import Collateral
from enklave.verify import DcapVerifier

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "testvectors" / "dcap"
CASE_IDS = ("dcapqvl-sgx-v3-2025-06", "dcapqvl-tdx-v4-2025-06", "automata-sgx-v3-2025-08")


def _load_cases() -> list[tuple[str, bytes, str, bytes, int]]:
    cases = json.loads((VECTORS / "cases.json").read_text())["cases"]
    out = []
    for case in cases:
        if case["id"] not in CASE_IDS:
            continue
        raw = (VECTORS / case["quote"]).read_bytes()
        if case["quote"].endswith(".hex"):
            text = raw.decode().strip()
            raw = bytes.fromhex(text[2:] if text.startswith("0x") else text)
        collateral = (VECTORS / case["collateral"]).read_text()
        root = (VECTORS / case["root_ca"]).read_bytes()
        out.append((case["id"], raw, collateral, root, int(case["now"])))
    return out


def _rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds``."""
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.4, help="per measurement")
    args = parser.parse_args()
    if not VECTORS.is_dir():
        print(json.dumps({"bench": "verify", "skipped": f"{VECTORS} absent"}))
        return 0
    cases = _load_cases()
    ours_warm, ours_cold, theirs = [], [], []
    for _ in range(args.rounds):
        for _cid, quote, coll_text, root, now in cases:
            coll = Collateral.from_json(coll_text)
            warm = DcapVerifier(root)
            qvl_coll = dcap_qvl.QuoteCollateralV3.from_json(coll_text)
            warm.verify(quote, coll, now=now)  # fill the cache
            ours_warm.append(_rate(lambda: warm.verify(quote, coll, now=now), args.seconds))
            theirs.append(_rate(
                lambda: dcap_qvl.verify_with_root_ca(quote, qvl_coll, root, now), args.seconds))
            ours_cold.append(_rate(
                lambda: DcapVerifier(root).verify(quote, coll, now=now), args.seconds))
    warm_qps, cold_qps = statistics.median(ours_warm), statistics.median(ours_cold)
    qvl_qps = statistics.median(theirs)
    print(json.dumps({
        "bench": "verify",
        "quotes": [c[0] for c in cases],
        "ours_warm_qps": round(warm_qps, 1),
        "ours_cold_qps": round(cold_qps, 1),
        "dcap_qvl_qps": round(qvl_qps, 1),
        "ratio_warm": round(warm_qps / qvl_qps, 3),
        "ratio_cold": round(cold_qps / qvl_qps, 3),
        "dcap_qvl_version": getattr(dcap_qvl, "__version__", "0.7.x"),
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.system()}",
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
