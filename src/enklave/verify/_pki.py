"""X.509 pieces of DCAP verification: certificate chains to one trust anchor, CRLs, raw ECDSA.

Pure functions over ``cryptography`` objects. Chains are order-independent (Intel's
``CertificateChain``: the leaf is the certificate that issues no other one; PEM or DER,
leaf-first or root-first). Every link is checked for issuer name, signature and the issuer's
``CA:TRUE``; the top must be the trust anchor (same public key; a copy that is not byte-identical
must carry a valid self-signature). Dates are *collected* as :class:`Window`s, never judged here,
so that results can be cached and checked against each call's ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from ..errors import CollateralError, VerificationError

__all__ = [
    "VerifiedChain",
    "VerifiedCrl",
    "Window",
    "build_chain",
    "common_name",
    "load_certificate",
    "load_pem_chain",
    "p256_key_from_raw",
    "verify_crl",
    "verify_raw_signature",
]

_MAX_CHAIN = 5
_X509_ERRORS = (
    ValueError, TypeError, UnsupportedAlgorithm, x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType, x509.InvalidVersion,
)  # fmt: skip
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


@dataclass(frozen=True)
class Window:
    """When one collateral item is valid: ``not_before <= now <= not_after`` (unix seconds)."""

    what: str
    not_before: int
    not_after: int


@dataclass(frozen=True)
class VerifiedChain:
    """A chain whose links and anchor were verified: ``certs[0]`` is the leaf, the last the root."""

    certs: tuple[x509.Certificate, ...]
    windows: tuple[Window, ...]

    @property
    def leaf(self) -> x509.Certificate:
        return self.certs[0]


@dataclass(frozen=True)
class VerifiedCrl:
    """A CRL whose issuer and signature were verified; ``revoked`` holds the serial numbers."""

    issuer: x509.Name
    revoked: frozenset[int]
    window: Window


def common_name(name: x509.Name) -> str:
    """The (first) CN of ``name``, or its RFC 4514 text when it has none."""
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = attrs[0].value if attrs else name.rfc4514_string()
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def load_certificate(data: bytes, what: str) -> x509.Certificate:
    """Load one PEM or DER certificate.

    Raises:
        CollateralError: neither form parses.
    """
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return _parsed(x509.load_pem_x509_certificate(data))
        return _parsed(x509.load_der_x509_certificate(data))
    except _X509_ERRORS as exc:
        raise CollateralError(f"{what} is not a valid X.509 certificate: {exc}") from exc


def _parsed(cert: x509.Certificate) -> x509.Certificate:
    """Decode every field the checks use now (``cryptography`` parses lazily)."""
    _ = (cert.subject.public_bytes(), cert.issuer.public_bytes(), cert.serial_number)
    _ = (cert.not_valid_before_utc, cert.not_valid_after_utc, cert.signature_hash_algorithm)
    _ = (cert.public_key(), list(cert.extensions), cert.tbs_certificate_bytes)
    for name in (cert.subject, cert.issuer):
        common_name(name)
    return cert


def load_pem_chain(text: str, what: str) -> list[x509.Certificate]:
    """Load every certificate of a PEM chain (trailing NULs are ignored).

    Raises:
        CollateralError: no certificate, or a block that does not parse.
    """
    try:
        certs = x509.load_pem_x509_certificates(text.rstrip("\0").encode("ascii"))
        certs = [_parsed(cert) for cert in certs]
    except (*_X509_ERRORS, UnicodeEncodeError) as exc:
        raise CollateralError(f"{what} is not a valid PEM certificate chain: {exc}") from exc
    if not certs:
        raise CollateralError(f"{what} holds no certificate")
    return certs


def _window(cert: x509.Certificate, what: str) -> Window:
    return Window(
        f"{what} certificate '{common_name(cert.subject)}'",
        int(cert.not_valid_before_utc.timestamp()),
        int(cert.not_valid_after_utc.timestamp()),
    )


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        return False


def _pick_leaf(
    pool: list[x509.Certificate], what: str, code: str, leaf_cn: str | None
) -> x509.Certificate:
    if leaf_cn is not None:
        named = [c for c in pool if leaf_cn in common_name(c.subject) and c.subject != c.issuer]
        if len(named) != 1:
            raise VerificationError(
                f"{what} must hold exactly one certificate whose CN contains '{leaf_cn}', "
                f"found {len(named)}; supply the chain that came with the quote",
                code=code,
            )
        return named[0]
    issuers = {c.issuer.public_bytes() for c in pool if c.subject != c.issuer}
    leaves = [c for c in pool if c.subject.public_bytes() not in issuers and c.subject != c.issuer]
    if len(leaves) != 1:
        raise VerificationError(
            f"{what} must end in exactly one leaf certificate, found {len(leaves)}; "
            "fetch the issuer chain again",
            code=code,
        )
    return leaves[0]


def _check_link(cert: x509.Certificate, issuer: x509.Certificate, what: str, code: str) -> None:
    name = common_name(cert.subject)
    if not _is_ca(issuer):
        raise VerificationError(
            f"{what}: '{common_name(issuer.subject)}' issued '{name}' but is not a CA "
            "(BasicConstraints CA:TRUE missing)",
            code=code,
        )
    try:
        cert.verify_directly_issued_by(issuer)
    except (*_X509_ERRORS, InvalidSignature) as exc:
        raise VerificationError(
            f"{what}: the signature on '{name}' does not verify with the key of "
            f"'{common_name(issuer.subject)}' ({exc or 'bad signature'}); the chain is forged "
            "or corrupt",
            code=code,
        ) from exc


def _check_anchor(top: x509.Certificate, anchor: x509.Certificate, what: str, code: str) -> None:
    if _der(top) == _der(anchor):
        return
    if top.public_key() != anchor.public_key():
        raise VerificationError(
            f"{what} ends at root '{common_name(top.subject)}', which is not the trust anchor "
            f"'{common_name(anchor.subject)}': pass the right root (Intel SGX Root CA for real "
            "quotes, the simulation root for simulated ones) or fetch collateral from the right "
            "service",
            code="untrusted_root",
        )
    _check_link(top, anchor, what, code)


def _check_no_stray(
    members: list[x509.Certificate], path: list[x509.Certificate], anchor: x509.Certificate,
    what: str, code: str,
) -> None:  # fmt: skip
    """Every given certificate is on the path, or a byte-identical copy of the anchor."""
    anchor_der = _der(anchor)
    stray = [c for c in members if c not in path and _der(c) != anchor_der]
    if stray:
        raise VerificationError(
            f"{what}: certificate '{common_name(stray[0].subject)}' is not on the path from "
            f"'{common_name(path[0].subject)}' to the root; the chain is corrupt or padded",
            code=code,
        )


def build_chain(
    certs: list[x509.Certificate],
    anchor: x509.Certificate,
    *,
    what: str,
    code: str,
    leaf_cn: str | None = None,
) -> VerifiedChain:
    """Order ``certs`` from leaf to root and verify every link up to ``anchor``.

    A chain that stops below the root is completed with the anchor when the anchor issued its
    top certificate. Every given certificate must be on the path (a byte-identical copy of the
    anchor may be left over): a stray or corrupted one (e.g. a root copy whose subject was
    altered) is refused rather than skipped.

    Raises:
        VerificationError: ``code`` for a broken link, a non-CA issuer, a missing issuer, an
            ambiguous leaf or a certificate off the path; ``untrusted_root`` when the chain
            ends at another root.
    """
    pool: dict[bytes, x509.Certificate] = {}
    for cert in certs:
        pool.setdefault(_der(cert), cert)
    members = list(pool.values())
    cur = _pick_leaf(members, what, code, leaf_cn)
    path = [cur]
    while cur.subject != cur.issuer:
        issuer = next((c for c in members if c.subject == cur.issuer and c is not cur), None)
        if issuer is None and anchor.subject == cur.issuer:
            issuer = anchor
        if issuer is None or len(path) >= _MAX_CHAIN or issuer in path:
            raise VerificationError(
                f"{what}: no usable issuer '{cur.issuer.rfc4514_string()}' for "
                f"'{common_name(cur.subject)}'; supply the complete chain up to the root",
                code=code,
            )
        _check_link(cur, issuer, what, code)
        path.append(issuer)
        cur = issuer
    _check_anchor(cur, anchor, what, code)
    _check_no_stray(members, path, anchor, what, code)
    path[-1] = anchor
    return VerifiedChain(tuple(path), tuple(_window(c, what) for c in path))


def verify_crl(der: bytes, issuer: x509.Certificate, *, what: str, code: str) -> VerifiedCrl:
    """Parse a DER CRL and check that ``issuer`` issued and signed it.

    Raises:
        CollateralError: not a DER CRL, or no nextUpdate.
        VerificationError: ``code`` when the issuer name differs or the signature is bad.
    """
    try:
        crl = x509.load_der_x509_crl(der)
        _ = (crl.issuer.public_bytes(), crl.last_update_utc, crl.next_update_utc)
        revoked = frozenset(entry.serial_number for entry in crl)
    except _X509_ERRORS as exc:
        raise CollateralError(f"{what} is not a valid DER CRL: {exc}") from exc
    cn = common_name(issuer.subject)
    if crl.issuer.public_bytes() != issuer.subject.public_bytes():
        raise VerificationError(
            f"{what} is issued by '{common_name(crl.issuer)}', not by '{cn}'; fetch the CRL of "
            f"'{cn}'",
            code=code,
        )
    try:
        valid = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except _X509_ERRORS:
        valid = False
    if not valid:
        raise VerificationError(
            f"{what} does not carry a valid signature by '{cn}'; it is forged or corrupt",
            code=code,
        )
    next_update = crl.next_update_utc
    if next_update is None:
        raise CollateralError(f"{what} has no nextUpdate; fetch a current CRL")
    window = Window(what, int(crl.last_update_utc.timestamp()), int(next_update.timestamp()))
    return VerifiedCrl(crl.issuer, revoked, window)


def p256_key_from_raw(raw: bytes) -> ec.EllipticCurvePublicKey | None:
    """A P-256 public key from raw 64-byte X‖Y, or None when it is not a curve point."""
    if len(raw) != 64:
        return None
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + raw)
    except ValueError:
        return None


def verify_raw_signature(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    """Check a raw 64-byte r‖s ECDSA-P256-SHA256 signature."""
    if len(signature) != 64:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not r or not s:
        return False
    try:
        key.verify(encode_dss_signature(r, s), data, _ECDSA_SHA256)
    except InvalidSignature:
        return False
    return True
