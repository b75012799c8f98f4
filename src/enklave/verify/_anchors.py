"""Trust anchors: which root a quote's PCK chain and the collateral must end at.

The Intel SGX Root CA is pinned here by its DER bytes and checked against its published
SHA-256 fingerprint at import. It is public data (the same certificate Intel publishes at
certificates.trustedservices.intel.com and that every DCAP verifier ships); it anchors
trust only in combination with the signatures it verifies.

A simulation root comes from the local simulated platform
(:mod:`enklave.backends.simulation`) and is always marked ``simulated=True``: evidence
verified under it says ``simulated`` and :func:`~enklave.verify.default_policy` refuses it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..errors import VerificationError

__all__ = ["INTEL_SGX_ROOT_CA_SHA256", "TrustAnchor"]

INTEL_SGX_ROOT_CA_SHA256: Final = (
    "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
)
_INTEL_ROOT_DER_HEX: Final = (
    "3082028f30820234a003020102021422650cd65a9d3489f383b49552bf501b392706ac300a06082a8648ce3d"
    "0403023068311a301806035504030c11496e74656c2053475820526f6f74204341311a3018060355040a0c11"
    "496e74656c20436f72706f726174696f6e3114301206035504070c0b53616e746120436c617261310b300906"
    "035504080c024341310b3009060355040613025553301e170d3138303532313130343531305a170d34393132"
    "33313233353935395a3068311a301806035504030c11496e74656c2053475820526f6f74204341311a301806"
    "0355040a0c11496e74656c20436f72706f726174696f6e3114301206035504070c0b53616e746120436c6172"
    "61310b300906035504080c024341310b30090603550406130255533059301306072a8648ce3d020106082a86"
    "48ce3d030107034200040ba9c4c0c0c86193a3fe23d6b02cda10a8bbd4e88e48b4458561a36e705525f56791"
    "8e2edc88e40d860bd0cc4ee26aacc988e505a953558c453f6b0904ae7394a381bb3081b8301f0603551d2304"
    "183016801422650cd65a9d3489f383b49552bf501b392706ac30520603551d1f044b30493047a045a0438641"
    "68747470733a2f2f6365727469666963617465732e7472757374656473657276696365732e696e74656c2e63"
    "6f6d2f496e74656c534758526f6f7443412e646572301d0603551d0e0416041422650cd65a9d3489f383b495"
    "52bf501b392706ac300e0603551d0f0101ff04040302010630120603551d130101ff040830060101ff020101"
    "300a06082a8648ce3d0403020349003046022100e5bfe50911f92f428920dc368a302ee3d12ec5867ff622ec"
    "6497f78060c13c20022100e09d25ac7a0cb3e5e8e68fec5fa3bd416c47440bd950639d450edcbea4576aa2"
)


@dataclass(frozen=True)
class TrustAnchor:
    """A root certificate that evidence must chain to.

    Attributes:
        name: for messages ("Intel SGX Root CA", "simulation root …").
        certificate: the root certificate.
        simulated: True for a simulation root: results verified under it are simulated.
    """

    name: str
    certificate: x509.Certificate
    simulated: bool = False

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @classmethod
    def intel(cls) -> TrustAnchor:
        """Intel's production SGX Root CA (pinned)."""
        der = bytes.fromhex(_INTEL_ROOT_DER_HEX)
        if hashlib.sha256(der).hexdigest() != INTEL_SGX_ROOT_CA_SHA256:  # pragma: no cover
            raise VerificationError("pinned Intel root is corrupt", code="untrusted_root")
        return cls("Intel SGX Root CA", x509.load_der_x509_certificate(der))

    @classmethod
    def simulation(cls, home: Path | None = None) -> TrustAnchor:
        """The local simulated platform's root (explicit opt-in to simulated evidence).

        Raises:
            PlatformError: no simulated platform; run ``enklave sim init``.
        """
        from ..backends.simulation import SimPlatform

        platform = SimPlatform.load(home)
        return cls("enklave simulation root (NOT Intel)", platform.root_certificate, True)

    @classmethod
    def from_pem(cls, data: bytes, *, name: str = "", simulated: bool = False) -> TrustAnchor:
        """A root given as PEM or DER bytes (e.g. Intel's test PKI root).

        Raises:
            VerificationError: not a certificate.
        """
        try:
            cert = (
                x509.load_pem_x509_certificate(data)
                if b"-----BEGIN" in data
                else x509.load_der_x509_certificate(data)
            )
        except ValueError as exc:
            raise VerificationError(
                f"trust anchor is not a PEM/DER certificate: {exc}", code="untrusted_root"
            ) from exc
        return cls(name or cert.subject.rfc4514_string(), cert, simulated)
