"""The trusted side: what code running inside an enclave may use.

Example (an enclave module, ``enclave.py``)::

    from typing import Annotated
    from enklave.enclave import EnclaveApp, MaxLen, identity, seal

    app = EnclaveApp("hello")

    @app.ocall
    def log(line: Annotated[str, MaxLen(200)]) -> None: ...

    @app.ecall
    def greet(name: Annotated[str, MaxLen(64)]) -> str:
        log(f"greeting {name}")
        return f"Hello, {name}! I am {identity().mrenclave.hex()[:8]}"

Importing this module outside an enclave is fine (the build does it to read the
interface); the runtime functions raise :class:`~enklave.errors.NotInEnclaveError` there.
This package never imports the host side, the CLI, web frameworks or HTTP clients.
"""

from __future__ import annotations

import hashlib
import typing
from typing import Literal

from .._interface import MaxLen, Range
from ..errors import NotInEnclaveError, OcallError, SealError
from ..models.evidence import Evidence
from ..models.identity import Identity
from . import _evidence, _sealing
from ._app import EnclaveApp
from ._context import current as _current

if typing.TYPE_CHECKING:
    from ..verify import TrustAnchor

__all__ = [
    "EnclaveApp",
    "Evidence",
    "Identity",
    "MaxLen",
    "NotInEnclaveError",
    "OcallError",
    "Range",
    "SealError",
    "evidence",
    "identity",
    "is_simulated",
    "measured_file",
    "peer_trust_anchor",
    "seal",
    "unseal",
]


def identity() -> Identity:
    """This enclave's identity (MRENCLAVE, MRSIGNER, product id, SVN, debug, simulated)."""
    return _current().identity


def is_simulated() -> bool:
    """True when no hardware protects this enclave (simulation backend)."""
    return _current().identity.simulated


def evidence(claims: bytes = b"", *, quote_version: int = 3) -> Evidence:
    """Evidence that this enclave is running: a DCAP quote binding ``claims``.

    The quote's report data is SHA-256(``claims``) followed by 32 zero bytes, so a
    verifier that is given the claims knows they came from this enclave (put a
    verifier's nonce or a public key in them, after a context string). In simulation the
    quote is signed by the simulated platform (``enklave sim init``; created on first use)
    and verifies only under the simulation trust anchor.

    Binding and generic evidence: attested-TLS verifiers bind a certificate's key by the
    same rule (report data = SHA-256(key encoding) || zeros). So claims that *are* a key
    encoding are refused here: a DER SubjectPublicKeyInfo or PKCS#1 RSA key, an encoded
    EC point, PEM text, or a TCG DICE claims map with ``"pubkey-hash"``. Otherwise an
    ECALL that passes host-chosen bytes as the claims would let the host build a
    certificate for its own key that verifies as this enclave's. Prefix application claims
    with a context string (``b"myapp/nonce:" + nonce``); make TLS credentials with
    :func:`enklave.atls.issue_credentials`. Verifiers can also restrict the certificate
    formats they accept (``verify_certificate(..., formats=["tcg-dice"])``).

    Args:
        claims: bytes to bind (at most 64 KiB).
        quote_version: 3 (default) or 4 (SGX quote with nested certification data).

    Raises:
        NotInEnclaveError: called outside a running enclave.
        EnklaveError: ``claims`` are a key encoding (code ``reserved_claims``).
        PlatformError: the simulated platform is unusable.
    """
    ctx = _current()
    _evidence.refuse_reserved(claims)  # whatever backend quotes them next
    return _evidence.make_evidence(ctx.identity, ctx.sim_home, claims, quote_version=quote_version)


def _atls_evidence(claims: bytes) -> Evidence:
    """Evidence for attested-TLS certificate issuance (``enklave.atls``) only.

    Unlike :func:`evidence` it accepts reserved claims (a DICE claims map, an SPKI): the
    issuer passes the encoding of a key it has just generated in this process. Never
    route caller-supplied bytes here.

    Raises:
        NotInEnclaveError, PlatformError: as :func:`evidence`.
    """
    ctx = _current()
    return _evidence.make_evidence(ctx.identity, ctx.sim_home, claims, quote_version=3)


def peer_trust_anchor() -> TrustAnchor:
    """The root that genuine peer enclaves on this platform chain to, for mutual attestation.

    On SGX hardware this is Intel's SGX Root CA. In simulation it is this simulated
    platform's root, flagged ``simulated``: a verifier built on it accepts only simulated
    evidence and only under a policy that allows simulation. The anchor comes from the
    platform, never from the host, so the host cannot slip in a root of its own.

    Raises:
        NotInEnclaveError: called outside a running enclave.
    """
    from ..verify import TrustAnchor  # the pure verifier; loaded only when a peer is verified

    ctx = _current()
    if ctx.identity.simulated:
        return TrustAnchor.simulation(ctx.sim_home)
    return TrustAnchor.intel()


def measured_file(path: str) -> bytes:
    """The contents of a measured app file (from the verified bundle, not the host's disk).

    Raises:
        KeyError: ``path`` is not one of the bundle's measured files.
    """
    return _current().files[path]


def _seal_identity() -> _sealing.SealIdentity:
    ident = _current().identity
    return _sealing.SealIdentity(
        mrenclave=ident.mrenclave,
        mrsigner=ident.mrsigner,
        product_id=ident.product_id,
        security_version=ident.security_version,
    )


def _seal_secret(policy: str) -> bytes:
    """The platform seal secret for ``policy``, separated for debug enclaves.

    Simulation: one platform secret for both policies (the policy's identity goes into
    the key derivation). Gramine-SGX: the hardware seal key of the policy,
    ``/dev/attestation/keys/_sgx_mrenclave`` for ``"unique"`` and ``_sgx_mrsigner`` for
    ``"product"``, used only as HKDF input (never directly as a cipher key).

    As SGX folds the DEBUG attribute into seal-key derivation, a debug build (whose
    memory can be inspected) must never derive a production enclave's seal keys, even
    with the same signer and product id.

    Raises:
        PlatformError: (Gramine) the seal key cannot be read.
    """
    ctx = _current()
    secret = ctx.platform_secret
    if not ctx.identity.simulated:
        from ..backends.gramine._attestation import active

        secret = active().seal_key(policy)
    if ctx.identity.debug:
        return hashlib.sha256(b"enklave-debug-seal-secret\x00" + secret).digest()
    return secret


def seal(data: bytes, *, policy: Literal["unique", "product"], aad: bytes = b"") -> bytes:
    """Encrypt ``data`` so that only this enclave (``unique``) or this product (``product``,
    same MRSIGNER and product id, equal or newer SVN) can unseal it on this platform.

    The blob is safe to hand to the host for storage: it is AES-256-GCM with a key
    derived from the platform seal secret; ``aad`` is authenticated, not encrypted.

    Raises:
        SealError: data too large or an unknown policy.
    """
    return _sealing.seal(
        _seal_secret(policy), _seal_identity(), data, policy=policy, aad=aad
    )


def unseal(blob: bytes, *, aad: bytes = b"") -> bytes:
    """Decrypt a blob from :func:`seal`.

    Raises:
        SealError: tampered blob, wrong ``aad``, sealed by another enclave / signer /
            product, or by a newer SVN than this enclave's (rollback refused).
    """
    policy = "unique"  # simulation: one secret for both policies
    if not _current().identity.simulated:  # Gramine: the key depends on the blob's policy
        policy = str(_sealing.inspect_blob(blob)["policy"])
    return _sealing.unseal(_seal_secret(policy), _seal_identity(), blob, aad=aad)
