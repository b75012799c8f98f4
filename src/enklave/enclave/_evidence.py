"""Evidence production inside the enclave (simulation backend).

On SGX hardware the enclave's REPORT is made by the CPU (EREPORT) and turned into a
quote by Intel's Quoting Enclave. In simulation both steps are done in software by the
simulated platform under ``ENKLAVE_SIM_HOME``: the quote has the real DCAP layout and is
signed through a real certificate chain, but that chain ends at a SIMULATED root that
no default policy accepts. Anyone who can read the simulation directory can forge such
quotes; that is the point of calling it simulation.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ..errors import EnklaveError, PlatformError
from ..models.evidence import Evidence, report_data_for
from ..models.identity import Identity

__all__ = ["make_evidence"]

_lock = threading.Lock()
_platforms: dict[Path, Any] = {}


def _platform(home: Path) -> Any:
    """The simulated platform for ``home``, loaded once (created on first use)."""
    from ..backends.simulation import SimPlatform  # imported only when evidence is asked for

    with _lock:
        platform = _platforms.get(home)
        if platform is None:
            try:
                platform = SimPlatform.load(home)
            except PlatformError:
                platform = SimPlatform.init(home)
            _platforms[home] = platform
        return platform


def make_evidence(ident: Identity, home: Path, claims: bytes, *, quote_version: int) -> Evidence:
    """A quote over ``ident`` with report_data = SHA-256(claims) || zeros, plus the claims.

    Raises:
        PlatformError: the simulated platform cannot be loaded or created.
        QuoteFormatError: claims too large.
    """
    if type(claims) is not bytes:
        raise EnklaveError("evidence claims must be bytes (e.g. JSON or CBOR you encode)")
    if quote_version not in (3, 4):
        raise EnklaveError("quote_version must be 3 or 4")
    platform = _platform(home)
    quote = platform.quote(
        report_data_for(claims),
        mrenclave=ident.mrenclave,
        mrsigner=ident.mrsigner,
        isv_prod_id=ident.product_id,
        isv_svn=ident.security_version,
        debug=ident.debug,
        version=quote_version,
    )
    return Evidence(quote=quote, claims=claims, simulated=True)
