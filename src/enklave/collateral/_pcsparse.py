"""Parsing for the PCS/PCCS client: URLs, FMSPC values and response bodies.

Every function raises :class:`~enklave.errors.CollateralError` naming the URL and what to
do; none lets a foreign exception out. Nothing here verifies a signature.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import json
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, Final

from cryptography import x509
from cryptography.x509.oid import NameOID

from ..errors import CollateralError, QuoteFormatError
from ..models.pck import parse_pck_extension
from ..models.quote import Quote

__all__ = [
    "CAS",
    "check_url",
    "common_name",
    "crl",
    "crl_next_update",
    "fmspc_and_ca",
    "fmspc_hex",
    "issuer_chain",
    "next_update",
    "normalize_base",
    "root_crl_point",
    "signed_json",
]

CAS: Final = ("processor", "platform")
_API_SUFFIXES: Final = ("/sgx/certification/v4", "/tdx/certification/v4")
_CRL_DEFAULT_LIFETIME: Final = 86400.0
_PEM_CRL: Final = re.compile(rb"-----BEGIN X509 CRL-----(.*?)-----END X509 CRL-----", re.S)
_FMSPC_HEX: Final = re.compile(r"[0-9A-Fa-f]{12}")


def is_loopback(host: str | None) -> bool:
    """True for ``localhost``, ``*.localhost`` and loopback IP literals (127/8, ::1)."""
    if not host:
        return False
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, what: str) -> None:
    """Accept ``https://host...``, or ``http://`` to a loopback host; else CollateralError."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError as exc:
        raise CollateralError(f"{what} {url!r} is not a valid URL: {exc}") from exc
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and is_loopback(host):
        return
    if parts.scheme == "http":
        raise CollateralError(
            f"{what} {url!r} uses plain http:// to a non-loopback host; collateral must come "
            "over https:// (plain http is allowed only for a PCCS on localhost)"
        )
    raise CollateralError(f"{what} {url!r} must be an https:// URL with a host")


def normalize_base(base_url: str) -> str:
    """Drop trailing slashes and a ``/{sgx,tdx}/certification/v4`` suffix; check the URL.

    Raises:
        CollateralError: not https (or http to loopback), or it has a query or fragment.
    """
    url = base_url.strip().rstrip("/")
    for suffix in _API_SUFFIXES:
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    check_url(url, "collateral service URL")
    parts = urllib.parse.urlsplit(url)
    if parts.query or parts.fragment:
        raise CollateralError(f"collateral service URL {base_url!r} must not have ?query or #part")
    return url


def fmspc_hex(fmspc: bytes | str) -> str:
    """Upper-case hex of a 6-byte FMSPC given as bytes or 12 hex digits.

    Raises:
        CollateralError: another length or non-hex text.
    """
    if isinstance(fmspc, bytes | bytearray):
        if len(fmspc) != 6:
            raise CollateralError(f"an FMSPC is 6 bytes, got {len(fmspc)}")
        return bytes(fmspc).hex().upper()
    if isinstance(fmspc, str) and _FMSPC_HEX.fullmatch(fmspc):
        return fmspc.upper()
    raise CollateralError(f"an FMSPC is 12 hex digits (e.g. 00906ED50000), got {fmspc!r}")


def signed_json(body: bytes, key: str, what: str, url: str) -> tuple[str, dict[str, Any]]:
    """Decode ``{"<key>": {...}, "signature": "..."}``; returns (whole text, inner object)."""
    try:
        text = body.decode("utf-8")
        doc = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CollateralError(f"{what}: {url} did not send JSON ({exc}); wrong URL?") from exc
    inner = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(inner, dict) or not isinstance(doc.get("signature"), str):
        raise CollateralError(
            f"{what}: {url} sent JSON without a {key!r} object and a 'signature'; "
            "the server is not a PCS/PCCS v4 API"
        )
    return text, inner


def next_update(inner: Mapping[str, Any], what: str, url: str) -> float:
    value = inner.get("nextUpdate")
    try:
        if not isinstance(value, str):
            raise ValueError("missing")
        when = dt.datetime.fromisoformat(value)
        if when.tzinfo is None:
            raise ValueError("no time zone")
    except ValueError as exc:
        raise CollateralError(f"{what}: {url} has a bad nextUpdate {value!r} ({exc})") from exc
    return when.timestamp()


def issuer_chain(headers: Mapping[str, str], names: tuple[str, ...], what: str, url: str) -> str:
    raw = next((headers[n.lower()] for n in names if headers.get(n.lower())), None)
    if raw is None:
        raise CollateralError(
            f"{what}: {url} sent no {names[0]} header; the server is not a PCS/PCCS v4 API"
        )
    pem = urllib.parse.unquote(raw)
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise CollateralError(f"{what}: the {names[0]} header from {url} holds no PEM certificate")
    return pem


def crl(body: bytes, what: str, url: str) -> tuple[bytes, x509.CertificateRevocationList]:
    """Decode a CRL served as DER, PEM or hex; returns (DER, parsed CRL)."""
    data = body.strip()
    try:
        if body[:1] == b"\x30":
            der = body
        elif data.startswith(b"-----BEGIN"):
            match = _PEM_CRL.search(data)
            if match is None:
                raise ValueError("PEM without an X509 CRL block")
            der = base64.b64decode(b"".join(match.group(1).split()), validate=True)
        else:
            der = bytes.fromhex(data.decode("ascii"))
        return der, x509.load_der_x509_crl(der)
    except (ValueError, binascii.Error) as exc:
        raise CollateralError(
            f"{what}: {url} did not send a CRL in DER, PEM or hex ({exc}); wrong URL?"
        ) from exc


def crl_next_update(crl: x509.CertificateRevocationList, now: float) -> float:
    when = crl.next_update_utc
    return now + _CRL_DEFAULT_LIFETIME if when is None else when.timestamp()


def common_name(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def root_crl_point(chain_pem: str | None) -> str | None:
    """The first URI CRL distribution point of the last certificate in ``chain_pem``."""
    if not chain_pem:
        return None
    try:
        root = x509.load_pem_x509_certificates(chain_pem.encode())[-1]
        points = root.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    except (ValueError, IndexError, x509.ExtensionNotFound):
        return None
    for point in points.value:
        for name in point.full_name or ():
            if isinstance(name, x509.UniformResourceIdentifier):
                return name.value
    return None


def fmspc_and_ca(quote: Quote) -> tuple[bytes, str]:
    """FMSPC (from the PCK leaf's SGX extension) and CA kind (from its issuer CN)."""
    try:
        ders = quote.certification.pck_chain_der()
    except QuoteFormatError as exc:
        raise CollateralError(f"cannot tell which collateral this quote needs: {exc}") from exc
    for der in ders:
        try:
            cert = x509.load_der_x509_certificate(der)
            extension = parse_pck_extension(cert)
        except (ValueError, QuoteFormatError):
            continue
        issuer = common_name(cert.issuer).lower()
        for ca in CAS:
            if ca in issuer:
                return extension.fmspc, ca
        raise CollateralError(
            f"the PCK certificate's issuer CN {issuer!r} names neither the Processor nor the "
            "Platform CA; pass fmspc and ca to PcsClient.collateral() yourself"
        )
    raise CollateralError(
        "the quote's certification data holds no PCK certificate with an SGX extension; "
        "pass fmspc and ca to PcsClient.collateral() yourself"
    )
