"""The pure DCAP quote verifier: Intel QVL's rules, one trust anchor, explicit time.

``DcapVerifier(root).verify(quote, collateral, now=...)`` runs spec ``dcap.md`` §4 in Intel's
order and returns a :class:`DcapResult` or raises:

* A. quote structure (:class:`QuoteFormatError`); QE vendor ID must be Intel's
  (``unsupported_quote``).
* B. PCK chain to the anchor (``invalid_pck_chain``, ``untrusted_root``); types 1-3 need
  ``collateral.pck_certificate_chain`` (``unsupported_quote``).
* C/D. root CA CRL (``invalid_root_ca_crl``), PCK CRL and its issuer chain
  (``invalid_pck_crl``), TCB Info and QE Identity chains and signatures over the exact text
  (``invalid_tcb_info_signature``, ``invalid_qe_identity_signature``), revoked CAs or TCB
  signer (``ca_revoked``).
* Expiry: ``expiry="strict"`` raises :class:`CollateralExpired` for any certificate, CRL, TCB
  Info or QE Identity outside its window at ``now`` (both bounds, like dcap-qvl);
  ``expiry="report"`` never raises for dates and sets ``collateral_expired`` exactly when
  strict mode would have raised (QvE-like), with ``earliest_expiration``.
* E. quote vs collateral. Collateral for another quote is a *verification* failure with
  Intel's codes, as Intel reports it: PCK CRL of another CA (``invalid_pck_crl``), PCK revoked
  (``pck_revoked``), TCB Info of another TEE/FMSPC/PCE-ID (``tcb_info_mismatch``), QE Identity
  of another kind or values (``qe_identity_mismatch``), TDX module (``tdx_module_mismatch``),
  then ``invalid_qe_report_signature``, ``invalid_qe_report_data``,
  ``invalid_quote_signature`` and the TCB verdict (``tcb_not_supported``, ``tcb_revoked``,
  ``isvsvn_not_supported``, ``isvsvn_revoked``). Malformed collateral raises
  :class:`CollateralError`.

Not checked here (policy, see ``enklave.verify`` policies): DEBUG, TD attributes,
MRSERVICETD, accepted statuses or advisories.

Collateral checks are memoised per verifier by exact content (LRU); the PCK chain by the exact
certification data. Per call we still judge every date against ``now`` and verify the QE
report signature, the attestation-key binding and the quote signature.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..collateral import Collateral
from ..errors import CollateralError, CollateralExpired, VerificationError
from ..models.quote import INTEL_QE_VENDOR_ID, Quote, parse_quote
from ..models.tcb import EnclaveTcbLevel
from ._checks import CheckedCollateral, CheckedPck, Checker, check_not_revoked
from ._pki import Window, common_name, load_certificate, p256_key_from_raw, verify_raw_signature
from ._result import DcapResult
from ._tcb import TcbOutcome, check_qe_identity, check_tdx_module, evaluate_tcb

__all__ = ["DcapResult", "DcapVerifier"]


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_seconds(now: int | datetime) -> int:
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime (e.g. datetime.now(UTC))")
        return int(now.timestamp())
    if type(now) is not int:
        raise TypeError("now must be unix seconds (int) or an aware datetime")
    return now


class DcapVerifier:
    """Verifies DCAP quotes against one trust anchor with Intel QVL's rules.

    Args:
        root: the trust anchor (Intel SGX Root CA, or a simulation root) as a certificate or
            PEM/DER bytes.
        simulated: mark results as simulated (set for simulation roots).
        cache_size: entries per memo cache (collateral, chains, CRLs, documents, PCK chains).

    Raises:
        CollateralError: ``root`` is not a certificate.
    """

    def __init__(
        self, root: x509.Certificate | bytes, *, simulated: bool = False, cache_size: int = 256
    ) -> None:
        anchor = root if isinstance(root, x509.Certificate) else load_certificate(
            root, "the trust anchor"
        )  # fmt: skip
        self._anchor = anchor
        self._checker = Checker(anchor, cache_size)
        self.simulated = simulated

    @property
    def root(self) -> x509.Certificate:
        """The trust anchor."""
        return self._anchor

    @property
    def root_fingerprint(self) -> bytes:
        """SHA-256 of the trust anchor's DER."""
        return hashlib.sha256(self._anchor.public_bytes(serialization.Encoding.DER)).digest()

    def verify(
        self,
        quote: bytes | Quote,
        collateral: Collateral,
        *,
        now: int | datetime,
        expiry: Literal["strict", "report"] = "strict",
    ) -> DcapResult:
        """Verify ``quote`` with ``collateral`` at time ``now`` (see the module docstring).

        Raises:
            QuoteFormatError: the quote is malformed.
            CollateralError: the collateral is malformed.
            CollateralExpired: strict mode, something is outside its validity window.
            VerificationError: a check failed; ``code`` names it.
            ValueError, TypeError: ``now``/``expiry`` misuse (programming errors).
        """
        if expiry not in ("strict", "report"):
            raise ValueError("expiry must be 'strict' or 'report'")
        t = _now_seconds(now)
        q = quote if isinstance(quote, Quote) else parse_quote(quote)
        if not isinstance(collateral, Collateral):
            raise CollateralError("collateral must be an enklave.collateral.Collateral")
        _check_header(q)
        pck = self._checker.pck(q.certification, collateral)
        checked = self._checker.collateral(collateral)
        self._check_revocation(pck, checked, collateral.pck_crl)
        windows = (*pck.chain.windows, *checked.windows)
        expired = _judge_dates(windows, t, strict=expiry == "strict")
        _check_tcb_info_fits(q, pck, checked)
        check_tdx_module(q, checked.tcb_info)
        _check_qe_report(q, pck)
        qe_level = check_qe_identity(q.qe_report, checked.qe_identity, q.tee)
        _check_quote_signature(q)
        outcome = evaluate_tcb(q, checked.tcb_info, checked.tcb_levels, pck.ext.tcb_components,
                               pck.ext.pcesvn, qe_level)  # fmt: skip
        assert qe_level is not None  # evaluate_tcb raises isvsvn_not_supported otherwise
        earliest = min(w.not_after for w in windows)
        return self._result(q, pck, checked, outcome, qe_level, expired, earliest)

    def _check_revocation(
        self, pck: CheckedPck, checked: CheckedCollateral, pck_crl_der: bytes
    ) -> None:
        """Root CRL over the PCK CA, PCK CRL issued by the PCK's own CA, PCK not revoked."""
        check_not_revoked(checked.root_crl, pck.ca, "ca_revoked")
        crl = checked.pck_crl
        if crl.issuer != pck.ca.subject:
            ca = common_name(pck.ca.subject)
            kind = "platform" if "Platform" in ca else "processor"
            raise VerificationError(
                f"the PCK CRL is issued by '{common_name(crl.issuer)}' but the PCK certificate by "
                f"'{ca}': fetch the PCK CRL for ca={kind} (and its issuer chain)",
                code="invalid_pck_crl",
            )
        if pck.ca != checked.pck_crl_chain.leaf:
            crl = self._checker.crl(pck_crl_der, pck.ca, "PCK CRL", "invalid_pck_crl")
        check_not_revoked(crl, pck.leaf, "pck_revoked")

    def _result(
        self, q: Quote, pck: CheckedPck, checked: CheckedCollateral, outcome: TcbOutcome,
        qe_level: EnclaveTcbLevel, expired: bool, earliest: int,
    ) -> DcapResult:  # fmt: skip
        module = outcome.module_level
        advisories = {*outcome.platform_level.advisory_ids, *qe_level.advisory_ids}
        if module is not None:
            advisories.update(module.advisory_ids)
        info, ident = checked.tcb_info, checked.qe_identity
        return DcapResult(
            status=outcome.status,
            advisory_ids=tuple(sorted(advisories)),
            platform_status=outcome.platform_level.status,
            qe_status=qe_level.status,
            tdx_module_status=module.status if module is not None else None,
            tee=q.tee,
            quote=q,
            pck=pck.ext,
            fmspc=pck.ext.fmspc,
            tcb_date=outcome.platform_level.tcb_date,
            qe_tcb_date=qe_level.tcb_date,
            tcb_evaluation_data_number=min(
                info.tcb_evaluation_data_number, ident.tcb_evaluation_data_number
            ),
            collateral_expired=expired,
            earliest_expiration=datetime.fromtimestamp(earliest, UTC),
            simulated=self.simulated,
        )


def _check_header(q: Quote) -> None:
    if q.header.qe_vendor_id != INTEL_QE_VENDOR_ID:
        raise VerificationError(
            f"QE vendor ID {q.header.qe_vendor_id.hex()} is not Intel's "
            f"({INTEL_QE_VENDOR_ID.hex()}): only quotes from Intel's quoting enclave are "
            "supported",
            code="unsupported_quote",
        )


def _judge_dates(windows: tuple[Window, ...], t: int, *, strict: bool) -> bool:
    """True when some window excludes ``t``; strict mode raises for the first one instead."""
    for w in windows:
        if w.not_before <= t <= w.not_after:
            continue
        if not strict:
            return True
        if t > w.not_after:
            raise CollateralExpired(
                f"{w.what} expired at {_iso(w.not_after)} (verification time {_iso(t)}): "
                "fetch fresh collateral, or check the clock"
            )
        raise CollateralExpired(
            f"{w.what} is not valid before {_iso(w.not_before)} (verification time {_iso(t)}): "
            "check the clock, or use collateral issued before that time"
        )
    return False


def _check_tcb_info_fits(q: Quote, pck: CheckedPck, checked: CheckedCollateral) -> None:
    info = checked.tcb_info
    fmspc = pck.ext.fmspc.hex()
    wanted = "TDX" if q.tee == "tdx" else "SGX"
    if info.id != wanted:
        raise VerificationError(
            f"the TCB Info is for {info.id} (version {info.version}) but the quote is "
            f"{wanted}: fetch /{q.tee}/certification/v4/tcb?fmspc={fmspc}",
            code="tcb_info_mismatch",
        )
    if info.fmspc != pck.ext.fmspc or info.pce_id != pck.ext.pce_id:
        raise VerificationError(
            f"the TCB Info is for FMSPC {info.fmspc.hex()} / PCE-ID {info.pce_id.hex()} but the "
            f"PCK certificate says {fmspc} / {pck.ext.pce_id.hex()}: fetch collateral for "
            f"FMSPC {fmspc}",
            code="tcb_info_mismatch",
        )


def _check_qe_report(q: Quote, pck: CheckedPck) -> None:
    if not verify_raw_signature(pck.key, q.qe_report_signature, q.qe_report.raw):
        raise VerificationError(
            "the QE report signature does not verify with the PCK certificate's key: the PCK "
            "chain belongs to another platform, or the quote is forged",
            code="invalid_qe_report_signature",
        )
    digest = hashlib.sha256(q.attestation_key + q.qe_auth_data).digest()
    if q.qe_report.report_data[:32] != digest:
        raise VerificationError(
            "the QE report does not bind this attestation key (REPORTDATA != SHA-256(key || QE "
            "auth data)): the attestation key was swapped",
            code="invalid_qe_report_data",
        )


def _check_quote_signature(q: Quote) -> None:
    key = p256_key_from_raw(q.attestation_key)
    if key is None:
        raise VerificationError(
            "the quote's attestation key is not a P-256 point", code="unsupported_quote"
        )
    if not verify_raw_signature(key, q.signature, q.signed_region):
        raise VerificationError(
            "the quote signature does not verify with the attestation key: the quote body or "
            "header was modified",
            code="invalid_quote_signature",
        )
