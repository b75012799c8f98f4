"""Pure data types shared by the host, the enclave and verifiers (no I/O)."""

from __future__ import annotations

from .identity import Identity
from .pck import (
    PCK_EXTENSION_OID,
    PckExtension,
    encode_pck_extension,
    parse_pck_extension,
    parse_pck_extension_der,
)
from .quote import (
    INTEL_QE_VENDOR_ID,
    TEE_SGX,
    TEE_TDX,
    CertificationData,
    PckCertId,
    Quote,
    QuoteHeader,
    SgxReportBody,
    TdReportBody,
    build_quote,
    parse_quote,
)

__all__ = [
    "INTEL_QE_VENDOR_ID",
    "PCK_EXTENSION_OID",
    "TEE_SGX",
    "TEE_TDX",
    "CertificationData",
    "Identity",
    "PckCertId",
    "PckExtension",
    "Quote",
    "QuoteHeader",
    "SgxReportBody",
    "TdReportBody",
    "build_quote",
    "encode_pck_extension",
    "parse_pck_extension",
    "parse_pck_extension_der",
    "parse_quote",
]
