"""Byte surgery on DCAP quotes and PEM chains, shared by the attack tests on real
(tests/vectors/test_dcap_attacks.py) and simulated (tests/integration/test_attestation_attacks.py)
quotes: flip one bit at a known place and let the verifier find it."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from cryptography import x509

from enklave.models.quote import parse_quote

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)


@dataclass(frozen=True)
class Layout:
    """Offsets of the signature-data parts of a quote (v3: flat; v4: inside the type-6 wrapper)."""

    body: int
    signature: int
    attestation_key: int
    qe_report: int
    qe_report_signature: int
    qe_auth_data: int
    cert_data: int


def layout(raw: bytes) -> Layout:
    q = parse_quote(raw)
    sig = len(q.signed_region) + 4
    qe_report = sig + 128 + (6 if q.header.version >= 4 else 0)
    auth = qe_report + 384 + 64 + 2
    cert = auth + len(q.qe_auth_data) + 6
    out = Layout(48, sig, sig + 64, qe_report, qe_report + 384, auth, cert)
    assert raw[out.qe_report : out.qe_report + 384] == q.qe_report.raw
    assert raw[out.cert_data : out.cert_data + len(q.certification.data)] == q.certification.data
    return out


def flip(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    """``data`` with one bit of the byte at ``offset`` flipped."""
    return data[:offset] + bytes([data[offset] ^ mask]) + data[offset + 1 :]


def splice(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def _der_offset(der: bytes, part: str) -> int:
    """Offset in ``der`` of a byte inside the signed TBS: the serial's last byte, or the last
    byte of the subject name (its country string)."""
    cert = x509.load_der_x509_certificate(der)
    if part == "serial":
        serial = cert.serial_number
        encoded = serial.to_bytes(serial.bit_length() // 8 + 1, "big")
        pos = der.find(bytes([0x02, len(encoded)]) + encoded) + 2 + len(encoded) - 1
    else:
        subject = cert.subject.public_bytes()
        pos = der.rfind(subject) + len(subject) - 1  # rfind: the issuer comes first
    tbs = der.find(cert.tbs_certificate_bytes)
    assert 0 <= tbs < pos < tbs + len(cert.tbs_certificate_bytes)
    return pos


def flip_pem_cert(pem: bytes, index: int, part: str = "serial") -> bytes:
    """Flip a bit inside the signed TBS part of certificate ``index`` of a PEM chain.

    The base64 is re-encoded into the same layout, so every length stays the same and the
    certificate still parses: only its signature (or the chain's structure) can catch it.
    """
    match = list(_PEM.finditer(pem))[index]
    body = match.group(1)
    der = base64.b64decode(b"".join(body.split()))
    mask = 0x01 if part == "serial" else 0x20  # the country letter changes case
    new = iter(base64.b64encode(flip(der, _der_offset(der, part), mask)))
    rewrapped = bytes(ch if chr(ch).isspace() else next(new) for ch in body)
    return pem[: match.start(1)] + rewrapped + pem[match.end(1) :]


def flip_quote_cert(raw: bytes, index: int, part: str = "serial") -> bytes:
    lay = layout(raw)
    data = parse_quote(raw).certification.data
    return splice(raw, lay.cert_data, flip_pem_cert(data, index, part))


def flip_digit(text: str, key: str) -> str:
    """Flip the low bit of the last digit of the first ``"key":<number>`` (JSON stays valid)."""
    match = re.search(rf'"{key}":(\d+)', text)
    assert match is not None, key
    pos = match.end(1) - 1
    return text[:pos] + chr(ord(text[pos]) ^ 1) + text[pos + 1 :]
