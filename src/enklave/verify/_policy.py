"""Composable appraisal policies over a verified DCAP result.

A policy is checked only after every DCAP check passed (signatures, chains, CRLs, TCB);
it decides whether *this* enclave, on *this* platform, is acceptable to the caller. Each
policy raises :class:`~enklave.errors.PolicyError` whose ``check`` names the rule that
refused. :func:`default_policy` is what a relying party should start from: it rejects
debug enclaves, simulated evidence and TCB statuses other than UpToDate and
SWHardeningNeeded. Opting out of all checks is spelled :class:`UnsafeAcceptAnything`
and logs a warning.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..errors import PolicyError
from ..models.quote import SgxReportBody

if TYPE_CHECKING:
    from ._dcap import DcapResult

__all__ = [
    "DEFAULT_ACCEPTED_STATUSES",
    "AllOf",
    "AnyOf",
    "MeasurementIs",
    "NotDebug",
    "NotSimulated",
    "Policy",
    "SignerIs",
    "TcbAccepted",
    "UnsafeAcceptAnything",
    "default_policy",
]

_log = logging.getLogger("enklave.verify")

DEFAULT_ACCEPTED_STATUSES: tuple[str, ...] = ("UpToDate", "SWHardeningNeeded")


class Policy(Protocol):
    """Anything with ``check(result)`` that raises PolicyError to refuse."""

    def check(self, result: DcapResult) -> None: ...


def _hex32(value: bytes | str, what: str, size: int = 32) -> bytes:
    raw = bytes.fromhex(value) if isinstance(value, str) else bytes(value)
    if len(raw) != size:
        raise PolicyError(f"{what} must be {size} bytes ({2 * size} hex digits)", check=what)
    return raw


@dataclass(frozen=True)
class MeasurementIs:
    """The enclave's MRENCLAVE (SGX) or MRTD (TDX) is one of the given values."""

    values: tuple[bytes, ...]

    @classmethod
    def of(cls, *values: bytes | str) -> MeasurementIs:
        raws = [bytes.fromhex(v) if isinstance(v, str) else bytes(v) for v in values]
        if not raws or any(len(r) not in (32, 48) for r in raws):
            raise PolicyError(
                "measurements are 32 (MRENCLAVE) or 48 (MRTD) bytes", check="mrenclave"
            )
        return cls(tuple(raws))

    def check(self, result: DcapResult) -> None:
        body = result.quote.body
        actual = body.mrenclave if isinstance(body, SgxReportBody) else body.mr_td
        # compare_digest on every candidate: no early exit that leaks which one matched
        matches = [hmac.compare_digest(actual, want) for want in self.values]
        if not any(matches):
            want = ", ".join(v.hex()[:16] + "…" for v in self.values)
            raise PolicyError(
                f"measurement mismatch: expected {want}, got {actual.hex()}; rebuild the "
                "enclave from the reviewed sources or update the policy",
                check="mrenclave",
            )


@dataclass(frozen=True)
class SignerIs:
    """SGX only: MRSIGNER equals ``mrsigner``; optionally product id and a minimum SVN."""

    mrsigner: bytes
    product_id: int | None = None
    min_svn: int | None = None

    def check(self, result: DcapResult) -> None:
        body = result.quote.body
        if not isinstance(body, SgxReportBody):
            raise PolicyError("a signer policy applies to SGX enclaves, not TDs", check="mrsigner")
        if not hmac.compare_digest(body.mrsigner, self.mrsigner):
            raise PolicyError(
                f"signer mismatch: expected MRSIGNER {self.mrsigner.hex()}, got "
                f"{body.mrsigner.hex()}; the enclave was signed by another key",
                check="mrsigner",
            )
        if self.product_id is not None and body.isv_prod_id != self.product_id:
            raise PolicyError(
                f"product id mismatch: expected {self.product_id}, got {body.isv_prod_id}",
                check="product_id",
            )
        if self.min_svn is not None and body.isv_svn < self.min_svn:
            raise PolicyError(
                f"security version {body.isv_svn} is below the minimum {self.min_svn}: an "
                "older (possibly vulnerable) build; deploy the current release",
                check="min_svn",
            )


@dataclass(frozen=True)
class NotDebug:
    """Refuse debug enclaves (SGX ATTRIBUTES.DEBUG) and debug TDs (TDATTRIBUTES.DEBUG)."""

    def check(self, result: DcapResult) -> None:
        if result.quote.body.debug:
            raise PolicyError(
                "debug enclave: its memory can be read by the host, so nothing in it is "
                "secret; build with debug = false (or allow_debug in a test-only policy)",
                check="debug",
            )


@dataclass(frozen=True)
class NotSimulated:
    """Refuse evidence verified under a simulation trust anchor (no hardware protection)."""

    def check(self, result: DcapResult) -> None:
        if result.simulated:
            raise PolicyError(
                "simulated evidence: no hardware protects this enclave; run it on SGX "
                "hardware, or set allow_simulated = true for development only",
                check="simulated",
            )


@dataclass(frozen=True)
class TcbAccepted:
    """The merged TCB status is accepted and the advisories are acceptable.

    Attributes:
        statuses: accepted Intel tcbStatus values.
        rejected_advisories: any of these advisory IDs refuses.
        accepted_advisories: when given, every advisory ID must be in it.
    """

    statuses: tuple[str, ...] = DEFAULT_ACCEPTED_STATUSES
    rejected_advisories: tuple[str, ...] = ()
    accepted_advisories: tuple[str, ...] | None = None

    def check(self, result: DcapResult) -> None:
        if result.status not in self.statuses:
            raise PolicyError(
                f"TCB status {result.status} is not accepted (accepted: "
                f"{', '.join(self.statuses)}); update the platform's microcode/BIOS, or "
                "accept this status explicitly in the policy",
                check="tcb_status",
            )
        bad = sorted(set(result.advisory_ids) & set(self.rejected_advisories))
        if self.accepted_advisories is not None:
            bad += sorted(set(result.advisory_ids) - set(self.accepted_advisories))
        if bad:
            raise PolicyError(
                f"platform is affected by advisories {', '.join(bad)} that the policy does "
                "not accept",
                check="advisories",
            )


@dataclass(frozen=True)
class AllOf:
    """Every policy must pass (checked in order; the first refusal is raised)."""

    policies: tuple[Policy, ...]

    def check(self, result: DcapResult) -> None:
        for policy in self.policies:
            policy.check(result)


@dataclass(frozen=True)
class AnyOf:
    """At least one policy must pass; otherwise every refusal is reported."""

    policies: tuple[Policy, ...]

    def check(self, result: DcapResult) -> None:
        reasons: list[str] = []
        for policy in self.policies:
            try:
                policy.check(result)
            except PolicyError as exc:
                reasons.append(f"[{exc.check}] {exc.message}")
            else:
                return
        raise PolicyError("no alternative accepted: " + " | ".join(reasons), check="any_of")


@dataclass(frozen=True)
class UnsafeAcceptAnything:
    """Accept any evidence that passed the DCAP checks: debug, simulated, any TCB status.

    For experiments only; every use logs a warning.
    """

    reason: str = field(default="unspecified")

    def check(self, result: DcapResult) -> None:
        _log.warning(
            "UnsafeAcceptAnything: accepting %s evidence without policy checks (%s)",
            "simulated" if result.simulated else "hardware",
            self.reason,
        )


def default_policy(
    *,
    mrenclave: Iterable[bytes | str] | None = None,
    mrsigner: bytes | str | None = None,
    product_id: int | None = None,
    min_svn: int | None = None,
    allow_debug: bool = False,
    allow_simulated: bool = False,
    accepted_statuses: Iterable[str] = DEFAULT_ACCEPTED_STATUSES,
    rejected_advisories: Iterable[str] = (),
    accepted_advisories: Iterable[str] | None = None,
) -> AllOf:
    """The recommended policy: safe defaults plus the identity you expect.

    Without ``mrenclave`` or ``mrsigner`` any enclave passes the identity part, so name
    at least one for real use.

    Raises:
        PolicyError: a malformed value (wrong length hex).
    """
    parts: list[Policy] = []
    if not allow_debug:
        parts.append(NotDebug())
    if not allow_simulated:
        parts.append(NotSimulated())
    parts.append(
        TcbAccepted(
            statuses=tuple(accepted_statuses),
            rejected_advisories=tuple(rejected_advisories),
            accepted_advisories=None if accepted_advisories is None else tuple(accepted_advisories),
        )
    )
    if mrenclave is not None:
        parts.append(MeasurementIs.of(*mrenclave))
    if mrsigner is not None or product_id is not None or min_svn is not None:
        if mrsigner is None:
            raise PolicyError("product_id/min_svn need mrsigner too", check="mrsigner")
        parts.append(SignerIs(_hex32(mrsigner, "mrsigner"), product_id, min_svn))
    return AllOf(tuple(parts))
