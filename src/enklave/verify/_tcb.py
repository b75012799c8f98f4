"""Intel QVL's TCB rules: QE identity, TDX module identity, TCB level matching, status merge.

Follows Intel's QuoteVerifier / TcbLevelCheck / TdxModuleCheck / TDRelaunchCheck (spec
``dcap.md`` §4 E.4, E.7, E.9-12), not dcap-qvl:

* TCB levels are tried in Intel's order: sorted newest first by (SGX components, PCESVN, TDX
  components), ties keeping the served order. Intel publishes them in that order already.
* SGX match: every PCK-certificate component and the PCK PCESVN >= the level's. TDX: the first
  SGX match is remembered, then TEE_TCB_SVN must also be >= the level's TDX components, from
  index 2 when TEE_TCB_SVN[1] > 0 (the module is judged by its own identity), else from 0.
* Statuses merge with Intel's tables (module, TD relaunch, QE), not by "max severity".
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import VerificationError
from ..models.quote import Quote, SgxReportBody, TdReportBody
from ..models.tcb import EnclaveIdentity, EnclaveTcbLevel, TcbInfo, TcbLevel, TdxModuleIdentity

__all__ = [
    "TcbOutcome",
    "check_qe_identity",
    "check_tdx_module",
    "evaluate_tcb",
    "intel_level_order",
]

_CONFIG_NEEDED = frozenset({
    "ConfigurationNeeded", "OutOfDateConfigurationNeeded", "ConfigurationAndSWHardeningNeeded",
    "TDRelaunchAdvisedConfigurationNeeded",
})  # fmt: skip
_RELAUNCH_SGX = frozenset({
    "UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded",
})  # fmt: skip


@dataclass(frozen=True)
class TcbOutcome:
    """The merged TCB verdict and the levels it came from."""

    status: str
    platform_level: TcbLevel
    module_level: EnclaveTcbLevel | None


def intel_level_order(info: TcbInfo) -> tuple[TcbLevel, ...]:
    """The levels in the order Intel QVL matches them (a descending, stable sort)."""

    def key(level: TcbLevel) -> tuple[tuple[int, ...], int, tuple[int, ...]]:
        return level.sgx_components, level.pcesvn, level.tdx_components or ()

    return tuple(sorted(info.levels, key=key, reverse=True))


def check_qe_identity(
    report: SgxReportBody, identity: EnclaveIdentity, tee: str
) -> EnclaveTcbLevel | None:
    """Check the QE report against the QE Identity; return its TCB level (None: no level).

    Raises:
        VerificationError: ``qe_identity_mismatch`` for the wrong identity kind (TD_QE for TDX,
            QE for SGX), or a MISCSELECT/ATTRIBUTES (masked, bytewise), MRSIGNER or ISVPRODID
            mismatch.
    """
    wanted = "TD_QE" if tee == "tdx" else "QE"
    if identity.id != wanted:
        raise VerificationError(
            f"the QE Identity is for '{identity.id}' but this {tee.upper()} quote needs "
            f"'{wanted}': fetch /{tee}/certification/v4/qe/identity",
            code="qe_identity_mismatch",
        )
    misc = report.miscselect.to_bytes(4, "little")
    checks = (
        ("MISCSELECT", _masked(misc, identity.miscselect_mask) == identity.miscselect),
        ("ATTRIBUTES", _masked(report.attributes, identity.attributes_mask)
         == identity.attributes),
        ("MRSIGNER", report.mrsigner == identity.mrsigner),
        ("ISVPRODID", report.isv_prod_id == identity.isvprodid),
    )  # fmt: skip
    for field, ok in checks:
        if not ok:
            raise VerificationError(
                f"the quoting enclave's {field} does not match the QE Identity: the quote was "
                "not produced by Intel's quoting enclave for this identity",
                code="qe_identity_mismatch",
            )
    return next((lv for lv in identity.levels if report.isv_svn >= lv.isvsvn), None)


def _masked(value: bytes, mask: bytes) -> bytes:
    return bytes(a & b for a, b in zip(value, mask, strict=True))


def _module_identity(info: TcbInfo, version: int) -> TdxModuleIdentity | None:
    wanted = f"TDX_{version:02X}"
    for ident in info.tdx_module_identities or ():
        if ident.id.upper() == wanted:
            return ident
    return None


def check_tdx_module(quote: Quote, info: TcbInfo) -> None:
    """Intel step E.4: MRSIGNERSEAM and SEAMATTRIBUTES against the TDX module (identity).

    Raises:
        VerificationError: ``tcb_info_mismatch`` when the module version needs
            ``tdxModuleIdentities`` and the TCB Info has none; ``tdx_module_mismatch`` for a
            missing identity, another MRSIGNERSEAM, or non-zero/unequal SEAMATTRIBUTES.
    """
    body = quote.body
    if not isinstance(body, TdReportBody) or info.tdx_module is None:
        return
    version = body.tee_tcb_svn[1]
    mrsigner, attributes = info.tdx_module.mrsigner, info.tdx_module.attributes
    if quote.header.version > 3 and version > 0:
        if info.tdx_module_identities is None:
            raise VerificationError(
                f"the TD runs TDX module version {version} but the TCB Info has no "
                "tdxModuleIdentities: fetch a current TDX TCB Info (PCS v4)",
                code="tcb_info_mismatch",
            )
        ident = _module_identity(info, version)
        if ident is None:
            raise VerificationError(
                f"the TCB Info has no identity TDX_{version:02X} for the TD's TDX module; "
                "fetch a current TDX TCB Info",
                code="tdx_module_mismatch",
            )
        mrsigner, attributes = ident.mrsigner, ident.attributes
    if body.mr_signer_seam != mrsigner:
        raise VerificationError(
            "MRSIGNERSEAM does not match the TDX module signer in the TCB Info: the TD is not "
            "running an Intel TDX module",
            code="tdx_module_mismatch",
        )
    if any(body.seam_attributes) or body.seam_attributes != attributes:
        raise VerificationError(
            f"SEAMATTRIBUTES {body.seam_attributes.hex()} must be zero and equal the TCB Info's "
            f"{attributes.hex()}",
            code="tdx_module_mismatch",
        )


def _match_levels(
    levels: tuple[TcbLevel, ...], comps: tuple[int, ...], pcesvn: int, tee: bytes | None
) -> tuple[TcbLevel | None, TcbLevel | None]:
    sgx: TcbLevel | None = None
    start = 2 if tee is not None and tee[1] > 0 else 0
    for level in levels:
        if pcesvn < level.pcesvn or any(c < lc for c, lc in zip(comps, level.sgx_components)):
            continue
        if tee is None:
            return level, None
        sgx = sgx or level
        tdx = level.tdx_components or ()
        if all(tee[i] >= tdx[i] for i in range(start, 16)):
            return sgx, level
    return sgx, None


def _module_status(quote: Quote, body: TdReportBody, info: TcbInfo) -> EnclaveTcbLevel | None:
    """The matched module TCB level, or None when Intel treats the module as OK (version 0)."""
    version, svn = body.tee_tcb_svn[1], body.tee_tcb_svn[0]
    if quote.header.version > 3 and version == 0:
        return None
    ident = _module_identity(info, version)
    if ident is None:
        raise VerificationError(
            f"the TCB Info has no identity TDX_{version:02X} for the TD's TDX module",
            code="tdx_module_mismatch",
        )
    level = next((lv for lv in ident.levels if svn >= lv.isvsvn), None)
    if level is None:
        raise VerificationError(
            f"no TCB level of {ident.id} covers TDX module SVN {svn}: the module is older than "
            "anything Intel still lists (Intel: TCB_NOT_SUPPORTED)",
            code="tcb_not_supported",
        )
    return level


def _converge(status: str, other: str) -> str:
    """Intel's merge of a platform status with a module or QE status (OutOfDate/Revoked)."""
    if other == "OutOfDate":
        if status in ("UpToDate", "SWHardeningNeeded"):
            return "OutOfDate"
        if status in ("ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded"):
            return "OutOfDateConfigurationNeeded"
    if other == "Revoked":
        return "Revoked"
    return status


def _relaunch(
    body: TdReportBody, info: TcbInfo, latest: TcbLevel, sgx_status: str, tdx_status: str,
    module: EnclaveTcbLevel | None, qe_status: str,
) -> str:  # fmt: skip
    """Intel's TD relaunch check for TD report 1.5 (TDRelaunchCheck.cpp)."""
    svn2 = body.tee_tcb_svn2
    if (
        svn2 is None or qe_status != "UpToDate" or sgx_status not in _RELAUNCH_SGX
        or tdx_status not in ("OutOfDate", "OutOfDateConfigurationNeeded")
        or module is None or module.status != "OutOfDate"
    ):  # fmt: skip
        return tdx_status
    latest_tdx = latest.tdx_components or (0,) * 16
    if svn2[1] == 0:
        module_ok = svn2[0] >= latest_tdx[0]
    else:
        ident = _module_identity(info, svn2[1])
        if ident is None:
            raise VerificationError(
                f"the TCB Info has no identity TDX_{svn2[1]:02X} for TEE_TCB_SVN_2",
                code="tdx_module_mismatch",
            )
        module_ok = svn2[0] >= ident.levels[0].isvsvn
    if not (module_ok and svn2[2] >= latest_tdx[2]):
        return tdx_status
    if sgx_status in _CONFIG_NEEDED or tdx_status in _CONFIG_NEEDED:
        return "TDRelaunchAdvisedConfigurationNeeded"
    return "TDRelaunchAdvised"


def _qe_kind(level: EnclaveTcbLevel | None) -> str:
    """Intel's QE verdict: UpToDate, OutOfDate (any other status), Revoked or NotSupported."""
    if level is None:
        return "NotSupported"
    return level.status if level.status in ("UpToDate", "Revoked") else "OutOfDate"


def _raise_for_qe(level: EnclaveTcbLevel | None) -> None:
    if level is None:
        raise VerificationError(
            "no TCB level of the QE Identity covers the quoting enclave's ISVSVN: the QE is "
            "older than anything Intel still lists; update the platform software",
            code="isvsvn_not_supported",
        )
    if level.status == "Revoked":
        raise VerificationError(
            f"the quoting enclave's TCB level (ISVSVN {level.isvsvn}) is Revoked: do not trust "
            "quotes from this platform until its software is updated",
            code="isvsvn_revoked",
        )


def _no_level(info: TcbInfo, what: str) -> VerificationError:
    return VerificationError(
        f"no TCB level in the TCB Info matches the platform's {what} (Intel: "
        f"TCB_NOT_SUPPORTED): the platform is older than anything Intel lists for FMSPC "
        f"{info.fmspc.hex()}, or the TCB Info is for another platform",
        code="tcb_not_supported",
    )


def evaluate_tcb(
    quote: Quote,
    info: TcbInfo,
    levels: tuple[TcbLevel, ...],
    pck_components: tuple[int, ...],
    pck_pcesvn: int,
    qe_level: EnclaveTcbLevel | None,
) -> TcbOutcome:
    """Intel steps E.9-E.12: match the platform level, merge module, relaunch and QE statuses.

    Raises:
        VerificationError: ``tcb_not_supported`` (no SGX, TDX or module level matches),
            ``tdx_module_mismatch``, ``isvsvn_revoked``/``isvsvn_not_supported`` (QE level),
            ``tcb_revoked`` when the merged status is Revoked.
    """
    body = quote.body
    tdx = isinstance(body, TdReportBody) and info.id == "TDX"
    tee = body.tee_tcb_svn if isinstance(body, TdReportBody) and tdx else None
    sgx_level, tdx_level = _match_levels(levels, pck_components, pck_pcesvn, tee)
    if sgx_level is None or (tdx and tdx_level is None):
        raise _no_level(info, "SGX components and PCESVN" if sgx_level is None else "TEE_TCB_SVN")
    level, module = sgx_level, None
    status = sgx_level.status
    if tdx and tdx_level is not None and isinstance(body, TdReportBody):
        level = tdx_level
        module = _module_status(quote, body, info)
        status = _converge(tdx_level.status, module.status if module else "UpToDate")
        if status != "Revoked":
            status = _relaunch(
                body, info, levels[0], sgx_level.status, status, module, _qe_kind(qe_level)
            )
    if status != "Revoked" or not tdx:
        _raise_for_qe(qe_level)
        status = _converge(status, _qe_kind(qe_level))
    if status == "Revoked":
        raise VerificationError(
            f"the platform's TCB level (tcbDate {level.tcb_date}) is Revoked: its keys may be "
            "compromised; do not trust it until it is updated",
            code="tcb_revoked",
        )
    return TcbOutcome(status, level, module)
