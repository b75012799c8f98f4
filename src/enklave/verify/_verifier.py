"""The evidence verifier: DCAP checks, claims binding, then the caller's policy.

Only :class:`Verifier` makes a :class:`VerifiedEnclave`; holding one means every check
passed at the given ``now``: the quote's signatures and chains (to one of the explicit
trust anchors), CRLs, TCB Info and QE Identity, the binding of the claims to the report
data, and the policy.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from ..collateral import Collateral
from ..errors import QuoteFormatError, VerificationError
from ..models.evidence import Evidence, load_evidence, report_data_for
from ..models.quote import Quote, SgxReportBody, parse_quote
from ._anchors import TrustAnchor
from ._dcap import DcapResult, DcapVerifier
from ._policy import Policy

__all__ = ["CollateralSource", "StaticCollateral", "VerifiedEnclave", "Verifier"]

_TOKEN = object()


class CollateralSource(Protocol):
    """Where the verifier gets collateral for a quote (a PCCS client, a cache, a file)."""

    def collateral_for(self, quote: Quote) -> Collateral: ...


@dataclass(frozen=True)
class StaticCollateral:
    """Always the same collateral (an offline file, or a test)."""

    collateral: Collateral

    def collateral_for(self, quote: Quote) -> Collateral:
        return self.collateral


class VerifiedEnclave:
    """What a verified piece of evidence says; only :class:`Verifier` constructs one.

    Attributes:
        tee: "sgx" or "tdx".
        mrenclave, mrsigner, product_id, security_version: the SGX identity (None for TDX).
        mrtd, rtmrs, td_attributes: the TD identity (None for SGX).
        debug: the enclave/TD is a debug one (a policy refused it unless allowed).
        report_data: the 64-byte report data.
        claims: the runtime claims bound to the report data.
        status, advisory_ids: Intel's merged TCB status and advisories.
        fmspc, tcb_date: platform family and the matched TCB level's date.
        simulated: verified under a simulation trust anchor: no hardware protection.
        collateral_expired: only in ``expiry="report"`` mode: some collateral had expired.
        result: the full :class:`DcapResult`.
    """

    __slots__ = (
        "advisory_ids", "claims", "collateral_expired", "debug", "fmspc", "mrenclave",
        "mrsigner", "mrtd", "product_id", "report_data", "result", "rtmrs",
        "security_version", "simulated", "status", "tcb_date", "td_attributes", "tee",
    )

    def __init__(self, token: object, result: DcapResult, claims: bytes) -> None:
        if token is not _TOKEN:
            raise TypeError("VerifiedEnclave is made only by Verifier.verify()")
        body = result.quote.body
        self.tee = result.tee
        self.mrenclave = self.mrsigner = self.mrtd = self.td_attributes = None
        self.product_id = self.security_version = None
        self.rtmrs: tuple[bytes, ...] | None = None
        if isinstance(body, SgxReportBody):
            self.mrenclave, self.mrsigner = body.mrenclave, body.mrsigner
            self.product_id, self.security_version = body.isv_prod_id, body.isv_svn
        else:
            self.mrtd, self.rtmrs, self.td_attributes = body.mr_td, body.rtmrs, body.td_attributes
        self.debug = body.debug
        self.report_data = body.report_data
        self.claims = claims
        self.status = result.status
        self.advisory_ids = result.advisory_ids
        self.fmspc = result.fmspc
        self.tcb_date = result.tcb_date
        self.simulated = result.simulated
        self.collateral_expired = result.collateral_expired
        self.result = result

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (bytes as hex)."""
        out: dict[str, Any] = {"tee": self.tee}
        for key in ("mrenclave", "mrsigner", "mrtd", "td_attributes", "report_data", "fmspc"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value.hex()
        if self.rtmrs is not None:
            out["rtmrs"] = [r.hex() for r in self.rtmrs]
        if self.product_id is not None:
            out["product_id"] = self.product_id
            out["security_version"] = self.security_version
        out.update(
            debug=self.debug,
            status=self.status,
            advisory_ids=list(self.advisory_ids),
            tcb_date=self.tcb_date,
            simulated=self.simulated,
            collateral_expired=self.collateral_expired,
            claims=self.claims.hex(),
        )
        return out

    def __repr__(self) -> str:
        ident = self.mrenclave if self.mrenclave is not None else self.mrtd
        return (
            f"VerifiedEnclave(tee={self.tee}, measurement={ident.hex() if ident else '?'}, "
            f"status={self.status}, simulated={self.simulated})"
        )


class Verifier:
    """Verifies evidence against explicit trust anchors, collateral and a policy.

    Example::

        verifier = Verifier(anchors=[TrustAnchor.intel()], collateral=pccs_client)
        enclave = verifier.verify(evidence, default_policy(mrenclave=[expected]), now=now)
    """

    def __init__(
        self,
        *,
        anchors: TrustAnchor | Sequence[TrustAnchor],
        collateral: Collateral | CollateralSource,
    ) -> None:
        anchor_list = [anchors] if isinstance(anchors, TrustAnchor) else list(anchors)
        if not anchor_list:
            raise VerificationError("give at least one trust anchor", code="untrusted_root")
        self._verifiers = [
            (a, DcapVerifier(a.certificate, simulated=a.simulated)) for a in anchor_list
        ]
        self._source: CollateralSource = (
            StaticCollateral(collateral) if isinstance(collateral, Collateral) else collateral
        )

    def verify(
        self,
        evidence: Evidence | bytes,
        policy: Policy,
        *,
        now: int | datetime,
        claims: bytes | None = None,
        binding: bytes | None = None,
        expiry: Literal["strict", "report"] = "strict",
    ) -> VerifiedEnclave:
        """Run every check; return the verified enclave or raise.

        Args:
            evidence: an :class:`Evidence`, or its bytes (CBOR/JSON/bare quote).
            policy: the appraisal policy (e.g. :func:`default_policy`).
            now: verification time (unix seconds or an aware datetime).
            claims: the claims you expect; default: the claims carried in the evidence.
            binding: instead of claims, the exact report-data prefix (32 or 64 bytes) to
                require, e.g. a nonce you sent.
            expiry: "strict" (expired collateral fails) or "report" (flagged in the result).

        Raises:
            QuoteFormatError: malformed evidence or quote.
            CollateralError / CollateralExpired: bad, mismatched or expired collateral.
            VerificationError: a DCAP check or the claims binding failed (``code`` says which).
            PolicyError: everything verified, but the policy refused (``check`` says which).
        """
        ev = evidence if isinstance(evidence, Evidence) else load_evidence(evidence)
        quote = parse_quote(ev.quote)
        result = self._dcap(quote, now=now, expiry=expiry)
        bound = _check_binding(quote, ev.claims, claims, binding)
        policy.check(result)
        return VerifiedEnclave(_TOKEN, result, bound)

    def _dcap(self, quote: Quote, *, now: int | datetime, expiry: Literal["strict", "report"]
              ) -> DcapResult:
        collateral = self._source.collateral_for(quote)
        refused: list[str] = []
        for anchor, dcap in self._verifiers:
            try:
                return dcap.verify(quote, collateral, now=now, expiry=expiry)
            except VerificationError as exc:
                if exc.code != "untrusted_root":
                    raise
                refused.append(anchor.name)
        hint = ""
        if _names_simulated_ca(quote):
            hint = (
                "; this is a SIMULATED quote: pass TrustAnchor.simulation() explicitly to "
                "accept simulated evidence (development only)"
            )
        raise VerificationError(
            f"the quote's PCK chain does not end at any trusted root ({', '.join(refused)})"
            + hint,
            code="untrusted_root",
        )


def _names_simulated_ca(quote: Quote) -> bool:
    """True when the quote's embedded PCK chain names a simulated CA (for the error hint).

    The chain is usually PEM, so the DER names are base64 inside ``quote.raw``: look at the
    decoded certificates, not only at the raw bytes.
    """
    if b"SIMULATED" in quote.raw:
        return True
    try:
        ders = quote.certification.pck_chain_der()
    except QuoteFormatError:
        return False
    return any(b"SIMULATED" in der for der in ders)


def _check_binding(
    quote: Quote, carried: bytes, claims: bytes | None, binding: bytes | None
) -> bytes:
    """Check report_data against the claims (or an explicit binding); return the claims."""
    report_data = quote.body.report_data
    if binding is not None:
        if len(binding) not in (32, 64):
            raise VerificationError("binding must be 32 or 64 bytes", code="claims_mismatch")
        if not hmac.compare_digest(report_data[: len(binding)], binding):
            raise VerificationError(
                "report data does not match the expected binding (nonce/key hash): the quote "
                "was made for something else, possibly replayed",
                code="claims_mismatch",
            )
        return carried
    chosen = carried if claims is None else claims
    if claims is not None and carried and not hmac.compare_digest(carried, claims):
        raise VerificationError(
            "the evidence carries other claims than the ones you expect", code="claims_mismatch"
        )
    if not hmac.compare_digest(report_data[:32], report_data_for(chosen)[:32]):
        raise VerificationError(
            "claims do not match the report data (SHA-256(claims) != report_data[0:32]): the "
            "claims were swapped or the quote replayed",
            code="claims_mismatch",
        )
    return chosen
