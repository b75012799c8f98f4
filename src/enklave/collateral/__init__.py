"""DCAP collateral: TCB Info, QE Identity, CRLs and issuer chains for quote verification.

Example::

    from enklave.collateral import Collateral
    collateral = Collateral.from_json(open("sgx_quote_collateral.json").read())
    collateral.to_json()   # the same dcap-qvl QuoteCollateralV3 shape

    from enklave.collateral import CollateralCache, PcsClient
    pcs = PcsClient("https://api.trustedservices.intel.com", cache=CollateralCache())
    collateral = pcs.collateral("00906ED50000", ca="processor")   # or pcs.collateral_for(quote)
"""

from __future__ import annotations

from ._cache import CachedResponse, CollateralCache, default_cache_dir
from ._model import Collateral, split_signed_json
from ._pcs import (
    AZURE_THIM_URL,
    INTEL_PCS_URL,
    INTEL_ROOT_CA_CRL_URL,
    PcsClient,
    PcsCrl,
    PcsDocument,
)

__all__ = ["Collateral", "split_signed_json"]
__all__ += [
    "AZURE_THIM_URL",
    "INTEL_PCS_URL",
    "INTEL_ROOT_CA_CRL_URL",
    "CachedResponse",
    "CollateralCache",
    "PcsClient",
    "PcsCrl",
    "PcsDocument",
    "default_cache_dir",
]
