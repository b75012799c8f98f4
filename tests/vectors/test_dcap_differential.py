"""Differential test: enklave's DCAP verifier vs dcap-qvl on every real quote we have.

Where dcap-qvl returns a result, status and advisory IDs must be equal, or the difference must
be one of the documented :data:`KNOWN_DIFFERENCES` (dcap-qvl's extra policy, max-severity vs
Intel's table, TCB Info v2, ...). Run with ``-s`` to see the table.
"""

from __future__ import annotations

from typing import Any

import pytest

from enklave.collateral import Collateral

from ._diff import DCAP, KNOWN_DIFFERENCES, compare_with_dcap_qvl, load_cases, load_quote

pytestmark = pytest.mark.skipif(not DCAP.exists(), reason="shared test vectors are absent")
pytest.importorskip("dcap_qvl", reason="dcap-qvl (dev dependency) is not installed")

ROOT = "dcap-qvl/TrustedRootCA.der"
_AUT = "automata-dcap-attestation"
_TEEKIT = "dstack-teekit/sampleQuotes"
_D = "derived"

# Other combinations of the vector files (quote, collateral, now, expected difference or None).
# `now` lies inside every validity window (source facts where the README gives one).
EXTRA: list[tuple[str, str, str, int, str | None]] = [
    ("automata-sgx-v3-tcbinfo-v2", f"{_AUT}/samples/quotev3.hex",
     f"{_D}/automata_sgx_v3_00606A000000_2025-06-04_tcbinfo_v2.collateral.json", 1749029111,
     "tcb_info_v2"),
    ("automata-tdx-v4-2025-06",
     f"{_AUT}/extracted/quote_v4_tdx_testTDXQuoteV4OnChainAttestation.bin",
     f"{_D}/automata_tdx_00806F050000_2025-06-04.collateral.json", 1749095100, None),
    ("automata-tdx-v5-mrservicetd", f"{_AUT}/samples/quotev5.dat",
     f"{_D}/automata_tdx_90C06F000000_2025-06-05.collateral.json", 1749945600,
     "dcap_qvl_policy_mrservicetd"),
    ("alibaba-tdx-v5-mrservicetd", f"{_AUT}/evm-forge-test/assets/quotes/alibaba_quote_5.dat",
     f"{_D}/automata_tdx_90C06F000000_2025-06-05.collateral.json", 1749945600,
     "dcap_qvl_policy_mrservicetd"),
    ("edgeless-tdx-v4-2025-10", f"{_TEEKIT}/tdx-v4-edgeless.dat",
     f"{_D}/automata_tdx_00806F050000_2025-10-19.collateral.json", 1760896130, None),
    ("zkdcap-types-tdx-sept-ve", "zkdcap/types-data/quote_v4.dat",
     f"{_D}/zkdcap_tdx_00806F050000_2025-01-21.collateral.json", 1737467060,
     "dcap_qvl_policy_td_attributes"),
    ("trustee-tdx-v4-debug", f"{_TEEKIT}/tdx-v4-trustee.dat",
     f"{_D}/go-tdx-guest_tdx_50806F000000_2023-06.collateral.json", 1688173200,
     "dcap_qvl_policy_debug"),
    ("gotdxguest-v5-2026-02", "go-tdx-guest/quote_v5_sample.dat",
     "dcap-qvl/sample/tdx_quote_outdated_collateral.json", 1771412331, None),
    ("tlsn-sgx-v3-2025-02", f"{_TEEKIT}/sgx-tlsn-quote9.dat",
     f"{_D}/zkdcap_sgx_00906ED50000_2025-01-21.collateral.json", 1738923989, None),
    ("dcapqvl-sgx-v3-2023-11", "dcap-qvl/sample/sgx_quote",
     "dcap-qvl/history/sgx_quote_collateral_2023-11.json", 1700527166, None),
    ("near-tdx-v4-2025-09", "dcap-qvl/near-gas-test/quote_hex.txt",
     "dcap-qvl/near-gas-test/quote_collateral.json", 1757462400, None),
    ("phala-tdx-v4-2025-06", f"{_TEEKIT}/tdx-v4-phala.dat",
     "dcap-qvl/sample/tdx_quote_collateral.json", 1752919234, None),
    ("solana-tdx-v4-2025-01", f"{_AUT}/solana/quote_tdx.bin",
     f"{_D}/zkdcap_tdx_00806F050000_2025-01-21.collateral.json", 1737467060, None),
    ("trustee-tdx-v5-no-level", f"{_TEEKIT}/tdx-v5-trustee.dat",
     "dcap-qvl/sample/tdx_quote_outdated_collateral.json", 1771412331, None),
    ("sgx-quote-with-tdx-collateral", f"{_TEEKIT}/sgx-chinenyeokafor.dat",
     f"{_D}/automata_tdx_90C06F000000_2025-06-05.collateral.json", 1749095025, None),
]  # fmt: skip

ROWS: list[dict[str, Any]] = [
    {"id": c["id"], "quote": c["quote"], "collateral": c["collateral"], "now": c["now"],
     "expected": c["expected"], "reason": "dcap_qvl_policy_debug"
     if c["expected"].get("debug") else None}
    for c in load_cases()
] + [
    {"id": i, "quote": q, "collateral": c, "now": n, "expected": None, "reason": r}
    for i, q, c, n, r in EXTRA
]  # fmt: skip


@pytest.fixture(scope="module")
def root_der() -> bytes:
    return (DCAP / ROOT).read_bytes()


@pytest.mark.parametrize("row", ROWS, ids=[r["id"] for r in ROWS])
def test_matches_dcap_qvl_or_documented_difference(row: dict[str, Any], root_der: bytes) -> None:
    collateral = Collateral.from_json((DCAP / row["collateral"]).read_text())
    ours, theirs, reason = compare_with_dcap_qvl(
        load_quote(DCAP / row["quote"]), collateral, root_der, row["now"]
    )
    print(f"\n{row['id']}: ours {ours.short()} | dcap-qvl {theirs.short()} | {reason}")
    assert reason is None or reason in KNOWN_DIFFERENCES, reason
    assert reason == row["reason"]
    if theirs.ok and reason is None:
        assert (ours.status, ours.advisory_ids) == (theirs.status, theirs.advisory_ids)
    if row["expected"] is not None and "status" in row["expected"]:
        assert ours.status == row["expected"]["status"]


def test_known_differences_are_documented() -> None:
    assert all(text for text in KNOWN_DIFFERENCES.values())
    used = {r["reason"] for r in ROWS if r["reason"]}
    assert used <= set(KNOWN_DIFFERENCES)
