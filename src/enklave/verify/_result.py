"""The outcome of DCAP quote verification (:class:`DcapResult`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..models.pck import PckExtension
from ..models.quote import Quote, SgxReportBody, TdReportBody

__all__ = ["DcapResult"]


@dataclass(frozen=True)
class DcapResult:
    """A quote that passed every DCAP check, and its TCB verdict under Intel's rules.

    Attributes:
        status: the merged Intel tcbStatus (``UpToDate``, ``SWHardeningNeeded``,
            ``ConfigurationNeeded``, ``ConfigurationAndSWHardeningNeeded``, ``OutOfDate``,
            ``OutOfDateConfigurationNeeded``) or ``TDRelaunchAdvised`` /
            ``TDRelaunchAdvisedConfigurationNeeded``. Revoked never appears: it raises.
        advisory_ids: sorted, deduplicated union of the advisoryIDs of the matched platform
            TCB level (for TDX the matched TDX level), the QE Identity level and the TDX module
            identity level. This is the set a relying party must weigh (QvE reports only the
            platform level's; dcap-qvl the same union).
        platform_status: the matched platform level's own status (TDX: the TDX level's).
        qe_status: the matched QE Identity level's status.
        tdx_module_status: the matched TDX module level's status; None when not evaluated
            (SGX quotes, and TDX module version 0 which Intel treats as UpToDate).
        tee: ``"sgx"`` or ``"tdx"``.
        quote: the parsed quote (its body carries the measurements and report data).
        pck: the SGX extension of the verified PCK certificate.
        fmspc: the platform's FMSPC (6 bytes).
        tcb_date: the matched platform level's tcbDate (TDX: the TDX level's).
        qe_tcb_date: the matched QE level's tcbDate.
        tcb_evaluation_data_number: the lower of the TCB Info's and QE Identity's numbers.
        collateral_expired: only in ``expiry="report"`` mode; True when some certificate,
            CRL, TCB Info or QE Identity was outside its validity window at ``now``.
        earliest_expiration: the earliest notAfter/nextUpdate over all collateral.
        simulated: the trust anchor is a simulation root, not Intel's.
    """

    status: str
    advisory_ids: tuple[str, ...]
    platform_status: str
    qe_status: str
    tdx_module_status: str | None
    tee: str
    quote: Quote
    pck: PckExtension
    fmspc: bytes
    tcb_date: str
    qe_tcb_date: str
    tcb_evaluation_data_number: int
    collateral_expired: bool
    earliest_expiration: datetime
    simulated: bool

    @property
    def pce_id(self) -> bytes:
        """The PCE-ID from the PCK certificate."""
        return self.pck.pce_id

    @property
    def sgx_type(self) -> int:
        """The PCK certificate's SGX type (0 Standard, 1 Scalable, 2 Scalable with integrity)."""
        return self.pck.sgx_type

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: byte fields as lowercase hex, dates as RFC 3339 text."""
        body = self.quote.body
        out: dict[str, Any] = {
            "status": self.status,
            "advisory_ids": list(self.advisory_ids),
            "platform_status": self.platform_status,
            "qe_status": self.qe_status,
            "tdx_module_status": self.tdx_module_status,
            "tee": self.tee,
            "quote_version": self.quote.header.version,
            "debug": body.debug,
            "report_data": body.report_data.hex(),
        }
        if isinstance(body, SgxReportBody):
            out.update(_sgx_fields(body))
        elif isinstance(body, TdReportBody):
            out.update(_tdx_fields(body))
        out.update({
            "fmspc": self.fmspc.hex(),
            "pce_id": self.pce_id.hex(),
            "sgx_type": self.sgx_type,
            "tcb_date": self.tcb_date,
            "qe_tcb_date": self.qe_tcb_date,
            "tcb_evaluation_data_number": self.tcb_evaluation_data_number,
            "simulated": self.simulated,
            "collateral_expired": self.collateral_expired,
            "earliest_expiration": self.earliest_expiration.isoformat().replace("+00:00", "Z"),
        })  # fmt: skip
        return out


def _sgx_fields(body: SgxReportBody) -> dict[str, Any]:
    return {
        "mrenclave": body.mrenclave.hex(),
        "mrsigner": body.mrsigner.hex(),
        "isv_prod_id": body.isv_prod_id,
        "isv_svn": body.isv_svn,
        "attributes": body.attributes.hex(),
        "miscselect": body.miscselect,
        "config_svn": body.config_svn,
        "cpu_svn": body.cpu_svn.hex(),
    }


def _tdx_fields(body: TdReportBody) -> dict[str, Any]:
    out: dict[str, Any] = {
        "mrtd": body.mr_td.hex(),
        "rtmrs": [r.hex() for r in body.rtmrs],
        "mr_config_id": body.mr_config_id.hex(),
        "mr_owner": body.mr_owner.hex(),
        "mr_owner_config": body.mr_owner_config.hex(),
        "td_attributes": body.td_attributes.hex(),
        "xfam": body.xfam.hex(),
        "mr_seam": body.mr_seam.hex(),
        "tee_tcb_svn": body.tee_tcb_svn.hex(),
    }
    if body.mr_service_td is not None:
        out["mr_service_td"] = body.mr_service_td.hex()
    return out
