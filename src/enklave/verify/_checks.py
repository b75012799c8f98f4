"""Cached, time-independent DCAP checks: collateral (steps B-D) and PCK chains.

Everything here is a pure function of exact input bytes and the trust anchor, so a verifier
memoises the *results* (parsed, verified objects and their validity windows) in bounded LRU
caches. Nothing here looks at the clock: dates are returned as :class:`Window`s and judged per
call. Failures are never cached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..collateral import Collateral
from ..errors import CollateralError, QuoteFormatError, VerificationError
from ..models.pck import PckExtension, parse_pck_extension
from ..models.quote import CertificationData
from ..models.tcb import EnclaveIdentity, TcbInfo, TcbLevel
from ._pki import (
    VerifiedChain,
    VerifiedCrl,
    Window,
    build_chain,
    common_name,
    load_certificate,
    load_pem_chain,
    verify_crl,
    verify_raw_signature,
)
from ._tcb import intel_level_order

__all__ = ["CheckedCollateral", "CheckedPck", "Checker", "Lru"]

K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    """A small thread-safe LRU map."""

    def __init__(self, size: int) -> None:
        self._size = max(1, size)
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
                return value
        value = make()
        with self._lock:
            self._data[key] = value
            if len(self._data) > self._size:
                self._data.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._data)


@dataclass(frozen=True)
class CheckedCollateral:
    """Collateral whose chains, CRLs and signatures verified (dates not yet judged)."""

    root_crl: VerifiedCrl
    pck_crl: VerifiedCrl
    pck_crl_chain: VerifiedChain
    tcb_info: TcbInfo
    tcb_levels: tuple[TcbLevel, ...]
    qe_identity: EnclaveIdentity
    windows: tuple[Window, ...]


@dataclass(frozen=True)
class CheckedPck:
    """A PCK chain verified up to the anchor, with the leaf's key and SGX extension."""

    chain: VerifiedChain
    key: ec.EllipticCurvePublicKey
    ext: PckExtension

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain.certs[0]

    @property
    def ca(self) -> x509.Certificate:
        return self.chain.certs[1]


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _dated(what: str, issue: datetime, next_update: datetime) -> Window:
    return Window(what, int(issue.timestamp()), int(next_update.timestamp()))


class Checker:
    """Runs and memoises the cacheable checks for one trust anchor."""

    def __init__(self, anchor: x509.Certificate, cache_size: int) -> None:
        self.anchor = anchor
        self._collateral: Lru[Collateral, CheckedCollateral] = Lru(cache_size)
        self._chains: Lru[tuple[str, str], VerifiedChain] = Lru(cache_size)
        self._crls: Lru[tuple[bytes, bytes], VerifiedCrl] = Lru(cache_size)
        self._docs: Lru[tuple[str, str, bytes, str], object] = Lru(cache_size)
        self._pcks: Lru[tuple[int, bytes, str | None, str], CheckedPck] = Lru(cache_size)

    # -- collateral ------------------------------------------------------------------------

    def collateral(self, collateral: Collateral) -> CheckedCollateral:
        """Steps B-D for the collateral alone (cached by its exact content).

        Raises:
            CollateralError: malformed collateral.
            VerificationError: a chain, CRL or signature that does not verify, a revoked CA or
                TCB signer (``ca_revoked``), or a chain ending at another root.
        """
        return self._collateral.get_or_make(collateral, lambda: self._check(collateral))

    def _check(self, c: Collateral) -> CheckedCollateral:
        root_crl = self.crl(c.root_ca_crl, self.anchor, "root CA CRL", "invalid_root_ca_crl")
        crl_chain = self.chain(c.pck_crl_issuer_chain, "PCK CRL issuer chain", "invalid_pck_crl",
                               "CA", 2)  # fmt: skip
        pck_crl = self.crl(c.pck_crl, crl_chain.leaf, "PCK CRL", "invalid_pck_crl")
        tcb_chain = self.chain(c.tcb_info_issuer_chain, "TCB Info issuer chain",
                               "invalid_tcb_info_signature", "SGX TCB Signing", 2)  # fmt: skip
        qe_chain = self.chain(c.qe_identity_issuer_chain, "QE Identity issuer chain",
                              "invalid_qe_identity_signature", "SGX TCB Signing", 2)  # fmt: skip
        for chain in (crl_chain, tcb_chain, qe_chain):
            check_not_revoked(root_crl, chain.certs[-2], "ca_revoked")
        info = self._signed(TcbInfo.from_json, TcbInfo, c.tcb_info, c.tcb_info_signature,
                            c.tcb_info_issuer_chain, tcb_chain, "TCB Info",
                            "invalid_tcb_info_signature")  # fmt: skip
        ident = self._signed(EnclaveIdentity.from_json, EnclaveIdentity, c.qe_identity,
                             c.qe_identity_signature, c.qe_identity_issuer_chain, qe_chain,
                             "QE Identity", "invalid_qe_identity_signature")  # fmt: skip
        windows = (
            root_crl.window, pck_crl.window, *crl_chain.windows, *tcb_chain.windows,
            *qe_chain.windows,
            _dated(f"TCB Info for FMSPC {info.fmspc.hex()}", info.issue_date, info.next_update),
            _dated(f"QE Identity '{ident.id}'", ident.issue_date, ident.next_update),
        )  # fmt: skip
        return CheckedCollateral(root_crl, pck_crl, crl_chain, info, intel_level_order(info),
                                 ident, windows)  # fmt: skip

    def chain(self, text: str, what: str, code: str, leaf_cn: str, length: int) -> VerifiedChain:
        """A PEM issuer chain verified to the anchor (cached by its text)."""

        def make() -> VerifiedChain:
            chain = build_chain(load_pem_chain(text, what), self.anchor, what=what, code=code,
                                leaf_cn=leaf_cn)  # fmt: skip
            _check_length(chain, length, what, code)
            return chain

        return self._chains.get_or_make((what, text), make)

    def crl(self, der: bytes, issuer: x509.Certificate, what: str, code: str) -> VerifiedCrl:
        """A CRL whose issuer and signature verified (cached by CRL and issuer DER)."""
        return self._crls.get_or_make(
            (der, _der(issuer)), lambda: verify_crl(der, issuer, what=what, code=code)
        )

    def _signed(
        self, parse: Callable[[str], object], kind: type[V], text: str, signature: bytes,
        chain_text: str, chain: VerifiedChain, what: str, code: str,
    ) -> V:  # fmt: skip
        def make() -> object:
            key = chain.leaf.public_key()
            if not isinstance(key, ec.EllipticCurvePublicKey) or not verify_raw_signature(
                key, signature, text.encode("utf-8")
            ):
                raise VerificationError(
                    f"the {what} signature does not verify with the key of "
                    f"'{common_name(chain.leaf.subject)}': the {what} text was modified "
                    "(it must be the exact served bytes) or signed by someone else",
                    code=code,
                )
            return parse(text)

        value = self._docs.get_or_make((what, text, signature, chain_text), make)
        assert isinstance(value, kind)
        return value

    # -- PCK chain ---------------------------------------------------------------------------

    def pck(self, cert: CertificationData, collateral: Collateral) -> CheckedPck:
        """Step B: the quote's PCK chain (types 4/5) or the collateral's (types 1-3).

        Raises:
            VerificationError: ``unsupported_quote`` when no chain is available,
                ``invalid_pck_chain`` for a broken or malformed chain or extension,
                ``untrusted_root`` for another root.
        """
        key = (cert.cert_type, cert.data, collateral.pck_certificate_chain,
               collateral.pck_crl_issuer_chain)  # fmt: skip
        return self._pcks.get_or_make(key, lambda: self._check_pck(cert, collateral))

    def _check_pck(self, cert: CertificationData, collateral: Collateral) -> CheckedPck:
        what, code = "PCK certificate chain", "invalid_pck_chain"
        certs = _pck_certs(cert, collateral)
        if len(certs) < 3:
            certs += load_pem_chain(collateral.pck_crl_issuer_chain, "PCK CRL issuer chain")
        chain = build_chain(certs, self.anchor, what=what, code=code,
                            leaf_cn="SGX PCK Certificate")  # fmt: skip
        _check_length(chain, 3, what, code)
        if "CA" not in common_name(chain.certs[1].subject):
            raise VerificationError(f"{what}: the intermediate's CN lacks 'CA'", code=code)
        key = chain.leaf.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise VerificationError(f"{what}: the PCK key is not ECDSA P-256", code=code)
        try:
            ext = parse_pck_extension(chain.leaf)
        except QuoteFormatError as exc:
            raise VerificationError(
                f"the PCK certificate's SGX extension is invalid: {exc}", code=code
            ) from exc
        return CheckedPck(chain, key, ext)


def _pck_certs(cert: CertificationData, collateral: Collateral) -> list[x509.Certificate]:
    """Type 5: the quote's chain. Type 4: its leaf plus any collateral chain. 1-3: collateral."""
    certs: list[x509.Certificate] = []
    if cert.cert_type in (4, 5):
        try:
            ders = cert.pck_chain_der()
            certs = [load_certificate(d, "a PCK chain certificate") for d in ders]
        except (QuoteFormatError, CollateralError) as exc:
            raise VerificationError(
                f"the quote's PCK certificate chain is malformed: {exc}", code="invalid_pck_chain"
            ) from exc
    if cert.cert_type != 5 and collateral.pck_certificate_chain is not None:
        certs += load_pem_chain(collateral.pck_certificate_chain, "pck_certificate_chain")
    if not certs:
        raise VerificationError(
            f"the quote's certification data (type {cert.cert_type}) carries only a PPID, no "
            "PCK certificate chain: fetch the PCK certificate for it (PCS /pckcert) and pass it "
            "as collateral.pck_certificate_chain",
            code="unsupported_quote",
        )
    return certs


def _check_length(chain: VerifiedChain, length: int, what: str, code: str) -> None:
    if len(chain.certs) != length:
        raise VerificationError(
            f"{what} has {len(chain.certs)} certificates from leaf to root; Intel's PKI has "
            f"{length}",
            code=code,
        )


def check_not_revoked(crl: VerifiedCrl, cert: x509.Certificate, code: str) -> None:
    """Raise ``code`` when ``crl`` (issued by ``cert``'s issuer) lists ``cert``'s serial."""
    if cert.issuer == crl.issuer and cert.serial_number in crl.revoked:
        raise VerificationError(
            f"certificate '{common_name(cert.subject)}' (serial {cert.serial_number:x}) is "
            f"revoked by '{common_name(crl.issuer)}'",
            code=code,
        )
