"""The simulated DCAP PKI: root CA, PCK Processor CA, PCK leaf, TCB signer, CRLs.

Every certificate mirrors the shape of Intel's real SGX PKI (same extensions, same order,
same key usages, same subject DN attributes, ECDSA P-256 with SHA-256), so that verifiers
written for Intel's chain (ours, Intel QVL, dcap-qvl) accept it. The names are clearly
simulated: the organisation is ``enklave simulation (NOT Intel)`` and every CN starts with
``enklave SIMULATED``; they keep the substrings verifiers key on (``SGX Root CA``, ``SGX PCK
Processor CA``, ``SGX PCK Certificate``, ``SGX TCB Signing``). Nothing here is trusted by a
verifier that pins Intel's real root.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from enklave.errors import PlatformError

__all__ = [
    "CA_CN",
    "PCK_CN",
    "ROOT_CN",
    "SIM_ORGANIZATION",
    "TCB_SIGNER_CN",
    "cert_pem",
    "generate_key",
    "key_from_pem",
    "key_to_pem",
    "make_ca",
    "make_crl",
    "make_pck",
    "make_root",
    "make_tcb_signer",
    "raw_public_key",
    "sign_raw",
]

SIM_ORGANIZATION: Final = "enklave simulation (NOT Intel)"
ROOT_CN: Final = "enklave SIMULATED SGX Root CA"
CA_CN: Final = "enklave SIMULATED SGX PCK Processor CA"
PCK_CN: Final = "enklave SIMULATED SGX PCK Certificate"
TCB_SIGNER_CN: Final = "enklave SIMULATED SGX TCB Signing"

# Distribution points on a reserved TLD (RFC 2606): they can never resolve to a real host.
_SIM_CERT_HOST: Final = "https://certificates.enklave-sim.invalid"
_SIM_PCS_HOST: Final = "https://pcs.enklave-sim.invalid"
ROOT_CRL_URL: Final = f"{_SIM_CERT_HOST}/SimulatedSGXRootCA.der"
PCK_CRL_URL: Final = f"{_SIM_PCS_HOST}/sgx/certification/v4/pckcrl?ca=processor&encoding=der"

_DAY: Final = dt.timedelta(days=1)
_YEAR: Final = dt.timedelta(days=365)
_ROOT_LIFETIME: Final = 25 * _YEAR
_CA_LIFETIME: Final = 15 * _YEAR
_LEAF_LIFETIME: Final = 7 * _YEAR
_COORD: Final = 32


def generate_key() -> ec.EllipticCurvePrivateKey:
    """Return a fresh ECDSA P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def key_to_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """Serialize a private key as unencrypted PKCS#8 PEM (the file itself is 0600)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def key_from_pem(data: bytes, what: str) -> ec.EllipticCurvePrivateKey:
    """Load a P-256 private key written by :func:`key_to_pem`.

    Raises:
        PlatformError: if ``data`` is not a PEM P-256 private key.
    """
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise PlatformError(
            f"simulated {what} key is corrupt ({exc}); re-create the platform with "
            "`enklave sim init --force`"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise PlatformError(
            f"simulated {what} key is not an ECDSA P-256 key; re-create the platform with "
            "`enklave sim init --force`"
        )
    return key


def raw_public_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    """Return the 64-byte raw ``X || Y`` public key, as DCAP quotes carry it."""
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return point[1:]


def sign_raw(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA-P256-SHA256 sign ``data``; return the raw 64-byte ``r || s`` form DCAP uses."""
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(_COORD, "big") + s.to_bytes(_COORD, "big")


def cert_pem(cert: x509.Certificate) -> str:
    """Return a certificate as PEM text."""
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _name(common_name: str) -> x509.Name:
    """A DN shaped like Intel's: CN, O, L, ST, C (C as PrintableString, the rest UTF8)."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, SIM_ORGANIZATION),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Nowhere"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "SIM"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "ZZ"),
        ]
    )


def _builder(
    *,
    subject: str,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey,
    not_before: dt.datetime,
    lifetime: dt.timedelta,
    crl_url: str,
) -> x509.CertificateBuilder:
    """Common part of every certificate: AKI, CRL DP, SKI in Intel's order."""
    return (
        x509.CertificateBuilder()
        .serial_number(x509.random_serial_number())
        .issuer_name(issuer)
        .subject_name(_name(subject))
        .public_key(key.public_key())
        .not_valid_before(not_before)
        .not_valid_after(not_before + lifetime)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        full_name=[x509.UniformResourceIdentifier(crl_url)],
                        relative_name=None,
                        reasons=None,
                        crl_issuer=None,
                    )
                ]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """CertSign|CRLSign for CAs; DigitalSignature|NonRepudiation for leaves (as Intel)."""
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=not ca,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _start(now: int) -> dt.datetime:
    """Certificates are valid from one day before ``now`` (clock-skew margin)."""
    return dt.datetime.fromtimestamp(now, tz=dt.UTC).replace(microsecond=0) - _DAY


def _issue(
    *,
    subject: str,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey,
    now: int,
    lifetime: dt.timedelta,
    crl_url: str,
    ca: bool,
    path_length: int | None = None,
    extra: x509.ExtensionType | None = None,
) -> x509.Certificate:
    """One certificate: the common part, KeyUsage, BasicConstraints, an optional extra
    (non-critical) extension, signed ECDSA-SHA256 by ``issuer_key``."""
    builder = _builder(
        subject=subject,
        issuer=issuer,
        issuer_key=issuer_key,
        key=key,
        not_before=_start(now),
        lifetime=lifetime,
        crl_url=crl_url,
    )
    builder = builder.add_extension(_key_usage(ca=ca), critical=True).add_extension(
        x509.BasicConstraints(ca=ca, path_length=path_length), critical=True
    )
    if extra is not None:
        builder = builder.add_extension(extra, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_root(key: ec.EllipticCurvePrivateKey, *, now: int) -> x509.Certificate:
    """Self-signed simulated root (CA:TRUE, pathlen 1), like Intel's SGX Root CA."""
    return _issue(
        subject=ROOT_CN, issuer=_name(ROOT_CN), issuer_key=key, key=key, now=now,
        lifetime=_ROOT_LIFETIME, crl_url=ROOT_CRL_URL, ca=True, path_length=1,
    )  # fmt: skip


def make_ca(
    root_key: ec.EllipticCurvePrivateKey,
    root: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    *,
    now: int,
) -> x509.Certificate:
    """Simulated PCK Processor CA (CA:TRUE, pathlen 0), issued by the root."""
    return _issue(
        subject=CA_CN, issuer=root.subject, issuer_key=root_key, key=key, now=now,
        lifetime=_CA_LIFETIME, crl_url=ROOT_CRL_URL, ca=True, path_length=0,
    )  # fmt: skip


def make_tcb_signer(
    root_key: ec.EllipticCurvePrivateKey,
    root: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    *,
    now: int,
) -> x509.Certificate:
    """Simulated TCB Signing leaf (signs TCB Info and QE Identity), issued by the root."""
    return _issue(
        subject=TCB_SIGNER_CN, issuer=root.subject, issuer_key=root_key, key=key, now=now,
        lifetime=_LEAF_LIFETIME, crl_url=ROOT_CRL_URL, ca=False,
    )  # fmt: skip


def make_pck(
    ca_key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    *,
    sgx_extension: bytes,
    sgx_extension_oid: str,
    now: int,
) -> x509.Certificate:
    """Simulated PCK leaf with the SGX extension (DER value), issued by the Processor CA."""
    extension = x509.UnrecognizedExtension(x509.ObjectIdentifier(sgx_extension_oid), sgx_extension)
    return _issue(
        subject=PCK_CN, issuer=ca.subject, issuer_key=ca_key, key=key, now=now,
        lifetime=_LEAF_LIFETIME, crl_url=PCK_CRL_URL, ca=False, extra=extension,
    )  # fmt: skip


def make_crl(
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate,
    *,
    revoked_serials: tuple[int, ...],
    this_update: int,
    next_update: int,
) -> bytes:
    """An X.509 v2 CRL (DER, ECDSA-SHA256) with CRL Number 1 and AKI, like Intel's.

    Args:
        issuer_key: the CA's private key.
        issuer: the CA's certificate (its subject becomes the CRL issuer).
        revoked_serials: serial numbers to list as revoked (revoked at ``this_update``).
        this_update: unix seconds.
        next_update: unix seconds.

    Returns:
        The DER-encoded CRL.
    """
    start = dt.datetime.fromtimestamp(this_update, tz=dt.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(start)
        .next_update(dt.datetime.fromtimestamp(next_update, tz=dt.UTC))
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    for serial in revoked_serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(start)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build()
        )
    crl = builder.sign(issuer_key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.DER)
