"""Verification: the pure DCAP verifier (Intel QVL rules), trust anchors, policies,
and the evidence :class:`Verifier` that only hands out a :class:`VerifiedEnclave` when
every check passed.

Example::

    from enklave.verify import TrustAnchor, Verifier, default_policy

    verifier = Verifier(anchors=TrustAnchor.intel(), collateral=collateral)
    enclave = verifier.verify(evidence, default_policy(mrenclave=[expected]), now=now)
    enclave.status, enclave.advisory_ids, enclave.claims

The lower layer, without policy::

    from enklave.verify import DcapVerifier

    result = DcapVerifier(root_pem).verify(quote_bytes, collateral, now=1752919277)
    result.status, result.advisory_ids
"""

from __future__ import annotations

from ._anchors import INTEL_SGX_ROOT_CA_SHA256, TrustAnchor
from ._dcap import DcapResult, DcapVerifier
from ._policy import (
    DEFAULT_ACCEPTED_STATUSES,
    AllOf,
    AnyOf,
    MeasurementIs,
    NotDebug,
    NotSimulated,
    Policy,
    SignerIs,
    TcbAccepted,
    UnsafeAcceptAnything,
    default_policy,
)
from ._policydoc import load_policy, parse_policy
from ._verifier import CollateralSource, StaticCollateral, VerifiedEnclave, Verifier

__all__ = [
    "DEFAULT_ACCEPTED_STATUSES",
    "INTEL_SGX_ROOT_CA_SHA256",
    "AllOf",
    "AnyOf",
    "CollateralSource",
    "DcapResult",
    "DcapVerifier",
    "MeasurementIs",
    "NotDebug",
    "NotSimulated",
    "Policy",
    "SignerIs",
    "StaticCollateral",
    "TcbAccepted",
    "TrustAnchor",
    "UnsafeAcceptAnything",
    "VerifiedEnclave",
    "Verifier",
    "default_policy",
    "load_policy",
    "parse_policy",
]
