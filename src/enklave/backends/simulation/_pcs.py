"""The simulated platform's collateral in Intel PCS v4 REST shape (for a fake PCCS).

Each :class:`PcsResponse` is what Intel's PCS (``api.trustedservices.intel.com``) sends for
the matching endpoint: the body bytes, the content type, and the issuer-chain header with
URL-encoded PEM. Serving them over HTTP is left to the caller.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from . import _pki as pki
from ._state import PlatformState

__all__ = ["PcsResponse", "PcsResponses", "pcs_responses"]

_JSON: Final = "application/json"
_CRL: Final = "application/pkix-crl"
_PEM: Final = "application/x-pem-file"


@dataclass(frozen=True)
class PcsResponse:
    """One PCS HTTP response.

    Attributes:
        body: the exact response body.
        content_type: the ``Content-Type`` header value.
        headers: further headers (issuer chains URL-encoded, as PCS sends them).
    """

    body: bytes
    content_type: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class PcsResponses:
    """All PCS v4 responses for one simulated platform and TEE.

    Attributes:
        tee: ``"sgx"`` or ``"tdx"`` (which TCB Info and QE Identity).
        fmspc: the platform's FMSPC, upper-case hex (the ``fmspc`` query parameter).
        tcb_info: ``GET /{tee}/certification/v4/tcb?fmspc=<fmspc>``.
        qe_identity: ``GET /{tee}/certification/v4/qe/identity``.
        pck_crl: ``GET /sgx/certification/v4/pckcrl?ca=processor&encoding=der``.
        root_ca_crl: ``GET /sgx/certification/v4/rootcacrl`` (PCCS; DER).
        pck_certificate: ``GET /sgx/certification/v4/pckcert`` for this platform.
    """

    tee: str
    fmspc: str
    tcb_info: PcsResponse
    qe_identity: PcsResponse
    pck_crl: PcsResponse
    root_ca_crl: PcsResponse
    pck_certificate: PcsResponse

    def routes(self) -> dict[str, PcsResponse]:
        """URL path (without query) -> response; the caller checks the query parameters."""
        base = f"/{self.tee}/certification/v4"
        return {
            f"{base}/tcb": self.tcb_info,
            f"{base}/qe/identity": self.qe_identity,
            "/sgx/certification/v4/pckcrl": self.pck_crl,
            "/sgx/certification/v4/rootcacrl": self.root_ca_crl,
            "/sgx/certification/v4/pckcert": self.pck_certificate,
        }


def _chain(state: PlatformState, *roles: str) -> str:
    return "".join(pki.cert_pem(state.certs[role]) for role in roles)


def _header(pem: str) -> str:
    return urllib.parse.quote(pem, safe="")


def _response(body: bytes, content_type: str, **headers: str) -> PcsResponse:
    return PcsResponse(body, content_type, MappingProxyType(dict(headers)))


def pcs_responses(state: PlatformState, tee: str) -> PcsResponses:
    """Build the PCS responses for ``state`` and ``tee`` ("sgx" or "tdx")."""
    signing = _header(_chain(state, "tcb-signing", "root-ca"))
    ca_chain = _header(_chain(state, "pck-processor-ca", "root-ca"))
    ext = state.pck_extension()
    tcbm = ext.cpusvn.hex() + ext.pcesvn.to_bytes(2, "little").hex()
    fmspc = state.settings.fmspc.hex().upper()
    return PcsResponses(
        tee=tee,
        fmspc=fmspc,
        tcb_info=_response(
            state.tcb_info(tee).body().encode(), _JSON, **{"TCB-Info-Issuer-Chain": signing}
        ),
        qe_identity=_response(
            state.qe_identity(tee).body().encode(),
            _JSON,
            **{"SGX-Enclave-Identity-Issuer-Chain": signing},
        ),
        pck_crl=_response(state.pck_crl, _CRL, **{"SGX-PCK-CRL-Issuer-Chain": ca_chain}),
        root_ca_crl=_response(state.root_crl, _CRL),
        pck_certificate=_response(
            pki.cert_pem(state.certs["pck"]).encode(),
            _PEM,
            **{
                "SGX-PCK-Certificate-Issuer-Chain": ca_chain,
                "SGX-TCBm": tcbm.upper(),
                "SGX-FMSPC": fmspc,
                "SGX-PCK-Certificate-CA-Type": "processor",
            },
        ),
    )
