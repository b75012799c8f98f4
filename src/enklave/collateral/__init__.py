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

import typing

from ._model import Collateral, split_signed_json

if typing.TYPE_CHECKING:  # the network client loads lazily, so the pure model stays import-light
    from ._cache import CachedResponse, CollateralCache, default_cache_dir
    from ._pcs import (
        AZURE_THIM_URL,
        INTEL_PCS_URL,
        INTEL_ROOT_CA_CRL_URL,
        PcsClient,
        PcsCrl,
        PcsDocument,
    )

_LAZY = {
    "CachedResponse": "_cache", "CollateralCache": "_cache", "default_cache_dir": "_cache",
    "AZURE_THIM_URL": "_pcs", "INTEL_PCS_URL": "_pcs", "INTEL_ROOT_CA_CRL_URL": "_pcs",
    "PcsClient": "_pcs", "PcsCrl": "_pcs", "PcsDocument": "_pcs",
}

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


def __getattr__(name: str) -> typing.Any:
    """Load the PCS/PCCS client (urllib, http.client) only when it is asked for.

    The verifier (which also runs inside enclaves, for mutual attested TLS) needs only the
    pure :class:`Collateral` model.
    """
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
