"""Evidence production inside the enclave (simulation and Gramine-SGX backends).

On the Gramine backend (the identity is not simulated) the quote comes from
``/dev/attestation`` (:class:`enklave.backends.gramine.GramineAttestation`).

On SGX hardware the enclave's REPORT is made by the CPU (EREPORT) and turned into a
quote by Intel's Quoting Enclave. In simulation both steps are done in software by the
simulated platform under ``ENKLAVE_SIM_HOME``: the quote has the real DCAP layout and is
signed through a real certificate chain, but that chain ends at a SIMULATED root that
no default policy accepts. Anyone who can read the simulation directory can forge such
quotes; that is the point of calling it simulation.

Reserved claims: attested-TLS key binding uses the same report-data rule as
:func:`enklave.enclave.evidence` (SHA-256(claims) || zeros), so claims that *are* a public
key encoding (a DER SubjectPublicKeyInfo, a PKCS#1 RSA key, an EC point, PEM text) or a
DICE claims map with ``"pubkey-hash"`` would let whoever chose them make a certificate
for their own key that verifies as this enclave's. :func:`refuse_reserved` rejects those
shapes for the public API; certificate issuance (``enklave.atls``) uses its own path.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ..errors import EnklaveError, PlatformError, QuoteFormatError
from ..models import _der
from ..models.evidence import Evidence, report_data_for
from ..models.identity import Identity

__all__ = ["make_evidence", "refuse_reserved"]

#: lengths of compressed (02/03) and uncompressed or hybrid (04/06/07) P-256/384/521 points
_EC_POINT_LENGTHS = {2: (33, 49, 67), 3: (33, 49, 67), 4: (65, 97, 133), 6: (65, 97, 133),
                     7: (65, 97, 133)}  # fmt: skip

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


def _reserved_kind(claims: bytes) -> str | None:
    """What key-binding pre-image ``claims`` looks like, or None for ordinary claims."""
    if claims.lstrip()[:10] == b"-----BEGIN":
        return "PEM text (a public key as Open Enclave binds it)"
    if len(claims) in _EC_POINT_LENGTHS.get(claims[0] if claims else -1, ()):
        return "an encoded elliptic-curve public key"
    if claims[:1] == b"\x30":
        try:
            node = _der.parse(claims)
        except QuoteFormatError:
            node = None
        kids = node.children if node is not None else None
        if kids is not None and len(kids) == 2 and (
            (kids[0].tag == _der.SEQUENCE and kids[1].tag == 0x03) or kids[0].tag == _der.INTEGER
        ):
            return "a DER public key (SubjectPublicKeyInfo or PKCS#1 RSA key)"
    if claims[:1] and claims[0] >> 5 == 5:  # a CBOR map: maybe TCG DICE claims
        from ..atls._dice import decode_claims  # loaded only for CBOR-map claims

        try:
            decode_claims(claims)
        except EnklaveError:
            return None
        return "a TCG DICE claims map with 'pubkey-hash'"
    return None


def refuse_reserved(claims: bytes) -> None:
    """Refuse claims that an attested-TLS verifier would read as naming a TLS key.

    Every public evidence path calls this before quoting (non-bytes are left to the
    quoting function's own type check).

    Raises:
        EnklaveError: code ``reserved_claims``.
    """
    if type(claims) is not bytes:
        return
    kind = _reserved_kind(claims)
    if kind is not None:
        raise EnklaveError(
            f"evidence claims that are {kind} are reserved for attested-TLS certificates: "
            "a certificate for that key would verify as this enclave's. Prefix application "
            "claims with a context string (e.g. b'myapp/nonce:' + nonce); to make TLS "
            "credentials use enklave.atls.issue_credentials()",
            code="reserved_claims",
        )


def make_evidence(ident: Identity, home: Path, claims: bytes, *, quote_version: int) -> Evidence:
    """A quote over ``ident`` with report_data = SHA-256(claims) || zeros, plus the claims.

    It does not refuse reserved claims: callers exposed to untrusted claims (the public
    ``enklave.enclave.evidence``) call :func:`refuse_reserved` first.

    Raises:
        EnklaveError: claims are not bytes.
        PlatformError: the simulated platform cannot be loaded or created.
        QuoteFormatError: claims too large.
    """
    if type(claims) is not bytes:
        raise EnklaveError("evidence claims must be bytes (e.g. JSON or CBOR you encode)")
    if quote_version not in (3, 4):
        raise EnklaveError("quote_version must be 3 or 4")
    if not ident.simulated:  # Gramine-SGX: the quoting enclave picks the quote version
        from ..backends.gramine._attestation import active

        quote_bytes = active().quote(report_data_for(claims)).raw
        return Evidence(quote=quote_bytes, claims=claims, simulated=False)
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
