"""Differential check of enklave's DCAP verifier against dcap-qvl (the PyPI oracle).

``compare_with_dcap_qvl(quote, collateral, root_der, now)`` runs both and returns
``(ours, theirs, reason)``: ``reason`` is None when they agree (same status and advisory IDs,
or both reject), else one key of :data:`KNOWN_DIFFERENCES` (a documented, intended
divergence), else a string starting with ``"UNEXPLAINED"``.

The known differences are exactly where enklave follows Intel QVL and dcap-qvl does not
(spec dcap.md §4, §4.2, §7):
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enklave.collateral import Collateral
from enklave.errors import EnklaveError
from enklave.models.quote import TdReportBody, parse_quote
from enklave.models.tcb import TcbInfo
from enklave.verify import DcapResult, DcapVerifier
from enklave.verify._tcb import intel_level_order

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
DCAP = SHARED / "testvectors" / "dcap"


def load_quote(path: Path) -> bytes:
    """Quote bytes from a binary file or a hex text file (optional ``0x`` prefix)."""
    data = path.read_bytes()
    if path.suffix in (".hex", ".txt"):
        text = data.decode().strip()
        return bytes.fromhex(text[2:] if text.startswith("0x") else text)
    return data


def load_cases() -> list[dict[str, Any]]:
    """The cases of ``testvectors/dcap/cases.json`` (empty when the vectors are absent)."""
    path = DCAP / "cases.json"
    if not path.exists():
        return []
    cases: list[dict[str, Any]] = json.loads(path.read_text())["cases"]
    return cases


KNOWN_DIFFERENCES: dict[str, str] = {
    "dcap_qvl_policy_debug": "dcap-qvl rejects DEBUG enclaves/TDs; enklave leaves it to policy",
    "dcap_qvl_policy_td_attributes": (
        "dcap-qvl rejects TD attributes (SEPT_VE_DISABLE off, reserved bits, PKS/KL/PERFMON, "
        "migration, SERVTD_EXT); enklave leaves them to policy"
    ),
    "dcap_qvl_policy_mrservicetd": "dcap-qvl rejects non-zero MRSERVICETD; enklave: policy",
    "dcap_qvl_policy_qe_auth_data": "dcap-qvl requires 32-byte QE auth data; Intel does not",
    "max_severity_vs_intel_table": (
        "dcap-qvl merges platform/QE/module status by max severity; Intel uses its table "
        "(e.g. ConfigurationNeeded + QE OutOfDate = OutOfDateConfigurationNeeded)"
    ),
    "td_relaunch": "Intel's TD relaunch check (TD report 1.5) is missing in dcap-qvl",
    "tcb_info_v2": "dcap-qvl cannot parse TCB Info v2 (flat sgxtcbcompNNsvn); Intel accepts it",
    "revoked": "both reject Revoked, with different error kinds",
    "tdx_component_indices": (
        "dcap-qvl compares TEE_TCB_SVN[0..1] against the level's TDX components; Intel skips "
        "them when TEE_TCB_SVN[1] > 0 (the module is judged by tdxModuleIdentities)"
    ),
    "seam_attributes_mask": "dcap-qvl masks SEAMATTRIBUTES; Intel requires them zero and equal",
    "level_order": "dcap-qvl matches levels in served order; Intel sorts them first",
    "sgx_quote_v4": "dcap-qvl 0.7 accepts SGX quotes only as v3; Intel also accepts v4/v5",
    "expiry_boundary": (
        "at exactly now == nextUpdate dcap-qvl says expired; Intel QVL expires only when "
        "now > nextUpdate (pinned by test_next_update_second_itself_intel_accepts_dcap_qvl_rejects)"
    ),
}

_SEVERITY = (
    "UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded",
    "OutOfDate", "OutOfDateConfigurationNeeded", "Revoked",
)  # fmt: skip
_TD_ATTRIBUTE_ERRORS = (
    "SEPT_VE_DISABLE", "Reserved bits in TD attributes", "TD profiling", "TD migration",
    "SERVTD_EXT",
)  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    """One verifier's answer: a status + advisories, or an error (our code / their message)."""

    status: str | None
    advisory_ids: tuple[str, ...] = ()
    error: str | None = None
    result: DcapResult | None = field(default=None, compare=False)
    detail: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    def short(self) -> str:
        if self.ok:
            return f"{self.status} {list(self.advisory_ids)}"
        return f"ERROR {self.error}"


def run_ours(quote: bytes, collateral: Collateral, root_der: bytes, now: int) -> Outcome:
    try:
        result = DcapVerifier(root_der).verify(quote, collateral, now=now)
    except EnklaveError as exc:
        return Outcome(None, error=exc.code, detail={"message": str(exc)})
    return Outcome(result.status, result.advisory_ids, result=result)


def run_dcap_qvl(quote: bytes, collateral: Collateral, root_der: bytes, now: int) -> Outcome:
    import dcap_qvl  # dev dependency: imported here so the vector tests run without it

    try:
        coll = dcap_qvl.QuoteCollateralV3.from_json(collateral.to_json())
        report = dcap_qvl.verify_with_root_ca(quote, coll, root_der, now)
    except Exception as exc:  # dcap-qvl raises ValueError (and others for parse errors)
        return Outcome(None, error=str(exc))
    detail = json.loads(report.to_json())
    return Outcome(report.status, tuple(sorted(set(report.advisory_ids))), detail=detail)


def compare_with_dcap_qvl(
    quote_bytes: bytes, collateral: Collateral, root_der: bytes, now: int
) -> tuple[Outcome, Outcome, str | None]:
    """Run both verifiers and classify any difference (see the module docstring)."""
    ours = run_ours(quote_bytes, collateral, root_der, now)
    theirs = run_dcap_qvl(quote_bytes, collateral, root_der, now)
    return ours, theirs, classify(quote_bytes, collateral, ours, theirs)


def classify(quote: bytes, collateral: Collateral, ours: Outcome, theirs: Outcome) -> str | None:
    """None when the two agree, else the reason for the difference."""
    if not ours.ok and not theirs.ok:
        return None
    if ours.ok and theirs.ok:
        if (ours.status, ours.advisory_ids) == (theirs.status, theirs.advisory_ids):
            return None
        return _both_ok(quote, collateral, ours, theirs)
    if ours.ok:
        return _only_ours_ok(quote, collateral, ours, theirs)
    return _only_theirs_ok(quote, collateral, ours, theirs)


def _both_ok(quote: bytes, collateral: Collateral, ours: Outcome, theirs: Outcome) -> str:
    result = ours.result
    assert result is not None
    if result.status.startswith("TDRelaunchAdvised"):
        return "td_relaunch"
    merged = [result.platform_status, result.qe_status]
    if result.tdx_module_status is not None:
        merged.append(result.tdx_module_status)
    if theirs.status == max(merged, key=_SEVERITY.index) and ours.status != theirs.status:
        return "max_severity_vs_intel_table"
    return _matching_reason(quote, collateral) or (
        f"UNEXPLAINED: ours {ours.short()} vs dcap-qvl {theirs.short()}"
    )


def _only_ours_ok(quote: bytes, collateral: Collateral, ours: Outcome, theirs: Outcome) -> str:
    message = theirs.error or ""
    result = ours.result
    assert result is not None
    if "Debug mode is enabled" in message and result.quote.body.debug:
        return "dcap_qvl_policy_debug"
    if any(text in message for text in _TD_ATTRIBUTE_ERRORS):
        return "dcap_qvl_policy_td_attributes"
    if "MR service TD" in message:
        return "dcap_qvl_policy_mrservicetd"
    if "QE auth data length" in message and len(result.quote.qe_auth_data) != 32:
        return "dcap_qvl_policy_qe_auth_data"
    if "TcbInfo" in message and TcbInfo.from_json(collateral.tcb_info).version == 2:
        return "tcb_info_v2"
    if "SGX TEE quote must have version 3" in message and result.quote.header.version != 3:
        return "sgx_quote_v4"
    if "SEAMATTRIBUTES" in message:
        return "seam_attributes_mask"
    if "No matching TCB level" in message:
        reason = _matching_reason(quote, collateral)
        if reason:
            return reason
    return f"UNEXPLAINED: ours {ours.short()} vs dcap-qvl {theirs.short()}"


def _only_theirs_ok(quote: bytes, collateral: Collateral, ours: Outcome, theirs: Outcome) -> str:
    if ours.error in ("tcb_revoked", "isvsvn_revoked"):
        return "revoked"
    if ours.error == "tcb_not_supported":
        reason = _matching_reason(quote, collateral)
        if reason:
            return reason
    return f"UNEXPLAINED: ours {ours.short()} vs dcap-qvl {theirs.short()}"


def _matching_reason(quote: bytes, collateral: Collateral) -> str | None:
    """A level-matching difference: TDX index skipping, or Intel's level order."""
    info = TcbInfo.from_json(collateral.tcb_info)
    body = parse_quote(quote).body
    if isinstance(body, TdReportBody) and info.id == "TDX" and body.tee_tcb_svn[1] > 0:
        return "tdx_component_indices"
    if intel_level_order(info) != info.levels:
        return "level_order"
    return None
