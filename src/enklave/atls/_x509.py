"""A strict X.509 certificate reader for attested-TLS certificates (parse, don't validate).

The DER structure is read with :mod:`enklave.models._der` (single-byte tags, minimal
lengths, bounded depth and element count). Only one deviation from DER is tolerated, because
real attesters produce it: mbedTLS (Gramine, Open Enclave) writes an explicit NULL parameter
in ECDSA AlgorithmIdentifiers, which ``cryptography`` >= 50 refuses to load. We accept that
NULL and nothing else odd; signatures are verified with ``cryptography`` over the TBS bytes
exactly as stored. Every failure raises :class:`~enklave.errors.CertificateError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import UTC, datetime
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from ..errors import CertificateError, QuoteFormatError
from ..models import _der

__all__ = ["Certificate", "Extension", "load_certificates", "pem_encode"]

MAX_CERTS = 16
MAX_PEM = 4 << 20
_BIT_STRING, _NULL, _UTC, _GEN = 0x03, 0x05, 0x17, 0x18
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----")
_ECDSA = {"1.2.840.10045.4.3.2": "sha256", "1.2.840.10045.4.3.3": "sha384",
          "1.2.840.10045.4.3.4": "sha512"}  # fmt: skip
_RSA = {"1.2.840.113549.1.1.11": "sha256", "1.2.840.113549.1.1.12": "sha384",
        "1.2.840.113549.1.1.13": "sha512", "1.2.840.113549.1.1.5": "sha1"}  # fmt: skip
_ED25519 = "1.3.101.112"
_CURVES = {"1.2.840.10045.3.1.7": "ec-p256", "1.3.132.0.34": "ec-p384",
           "1.3.132.0.35": "ec-p521"}  # fmt: skip
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}  # fmt: skip
_NAMES = {"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
          "2.5.4.11": "OU", "1.2.840.113549.1.9.1": "emailAddress",
          "2.5.4.5": "serialNumber"}  # fmt: skip
_STRINGS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be",
            0x1C: "utf-32-be"}  # fmt: skip


def _bad(what: str, code: str = "malformed_certificate") -> CertificateError:
    return CertificateError(f"certificate is malformed: {what}", code=code)


class Extension(NamedTuple):
    """One X.509 extension.

    Attributes:
        oid: dotted, as decoded (Gramine's mangled one reads "0.6.9.42.840.113741.1337.6").
        oid_content: the OID's content octets.
        critical: the critical flag.
        value: the extnValue OCTET STRING content.
    """

    oid: str
    oid_content: bytes
    critical: bool
    value: bytes


def _kids(node: _der.Node, tag: int, what: str, count: tuple[int, int] | None = None
          ) -> tuple[_der.Node, ...]:
    if node.tag != tag or node.children is None:
        raise _bad(f"{what} is not the expected constructed element")
    if count is not None and not count[0] <= len(node.children) <= count[1]:
        raise _bad(f"{what} has {len(node.children)} elements")
    return node.children


def _prim(node: _der.Node, tag: int, what: str) -> bytes:
    if node.tag != tag or node.children is not None:
        raise _bad(f"{what}: expected tag {tag:#04x}, found {node.tag:#04x}")
    return node.value


def _oid(node: _der.Node, what: str) -> str:
    _prim(node, _der.OID, what)
    return _der.decode_oid(node)


def _bits(node: _der.Node, what: str) -> bytes:
    raw = _prim(node, _BIT_STRING, what)
    if not raw or raw[0] != 0:
        raise _bad(f"{what} must be a whole number of bytes")
    return raw[1:]


def _algorithm(node: _der.Node) -> tuple[str, str]:
    """Decode a signature AlgorithmIdentifier to (name, hash name)."""
    kids = _kids(node, _der.SEQUENCE, "signature algorithm", (1, 2))
    oid = _oid(kids[0], "signature algorithm")
    params = kids[1] if len(kids) == 2 else None
    is_null = params is not None and params.tag == _NULL and params.value == b""
    if params is not None and not is_null:
        raise _bad(f"signature algorithm {oid} has unexpected parameters")
    if oid in _ECDSA:  # absent, or NULL (the mbedTLS quirk)
        return f"ecdsa-{_ECDSA[oid]}", _ECDSA[oid]
    if oid in _RSA:  # NULL (RFC 4055) or absent
        return f"rsa-pkcs1-{_RSA[oid]}", _RSA[oid]
    if oid == _ED25519 and params is None:
        return "ed25519", ""
    raise _bad(f"signature algorithm {oid} is not supported", "unsupported_algorithm")


def _time(node: _der.Node) -> datetime:
    text = node.value.decode("ascii", "replace")
    if node.tag == _UTC and re.fullmatch(r"\d{12}Z", text):
        year = int(text[:2])
        text = ("19" if year >= 50 else "20") + text
    elif not (node.tag == _GEN and re.fullmatch(r"\d{14}Z", text)):
        raise _bad("validity time is not DER UTCTime/GeneralizedTime")
    try:
        return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise _bad(f"validity time {text!r} is not a date") from exc


def _name(node: _der.Node) -> str:
    parts: list[str] = []
    for rdn in _kids(node, _der.SEQUENCE, "name"):
        for atv in _kids(rdn, 0x31, "relative distinguished name", (1, 16)):
            oid_node, value = _kids(atv, _der.SEQUENCE, "name attribute", (2, 2))
            oid = _oid(oid_node, "name attribute")
            codec = _STRINGS.get(value.tag)
            if codec is None or value.children is not None:
                raise _bad(f"name attribute {oid} is not a string")
            try:
                text = value.value.decode(codec)
            except UnicodeDecodeError as exc:
                raise _bad(f"name attribute {oid} is not valid text") from exc
            text = re.sub(r'([,+"\\<>;])', r"\\\1", text)
            parts.append(f"{_NAMES.get(oid, oid)}={text}")
    return ",".join(reversed(parts))


def _spki(node: _der.Node) -> tuple[str, bytes]:
    alg, key = _kids(node, _der.SEQUENCE, "subject public key info", (2, 2))
    kids = _kids(alg, _der.SEQUENCE, "public key algorithm", (1, 2))
    oid = _oid(kids[0], "public key algorithm")
    raw = _bits(key, "subject public key")
    if oid == "1.2.840.10045.2.1" and len(kids) == 2 and kids[1].tag == _der.OID:
        curve = _der.decode_oid(kids[1])
        if curve in _CURVES:
            return _CURVES[curve], raw
    elif (oid == "1.2.840.113549.1.1.1" and len(kids) == 2 and kids[1].tag == _NULL
          and kids[1].value == b""):  # rsaEncryption's parameters: exactly NULL (05 00)
        modulus = _kids(_der.parse(raw), _der.SEQUENCE, "RSA public key", (2, 2))[0]
        bits = int.from_bytes(_prim(modulus, _der.INTEGER, "RSA modulus"), "big").bit_length()
        return f"rsa-{bits}", raw
    elif oid == _ED25519 and len(kids) == 1:
        return "ed25519", raw
    raise _bad(f"public key algorithm {oid} is not supported", "unsupported_algorithm")


def _extensions(node: _der.Node) -> tuple[Extension, ...]:
    out: list[Extension] = []
    seen: set[bytes] = set()
    (seq,) = _kids(node, 0xA3, "extensions", (1, 1))
    for ext in _kids(seq, _der.SEQUENCE, "extensions"):
        kids = _kids(ext, _der.SEQUENCE, "extension", (2, 3))
        content = _prim(kids[0], _der.OID, "extension id")
        critical = len(kids) == 3 and _der.decode_boolean(kids[1])
        if len(kids) == 3 and kids[1].tag != _der.BOOLEAN:
            raise _bad("extension critical flag is not a BOOLEAN")
        if content in seen:
            raise _bad(f"extension {_der.decode_oid(kids[0])} appears twice")
        seen.add(content)
        value = _prim(kids[-1], _der.OCTET_STRING, "extension value")
        out.append(Extension(_der.decode_oid(kids[0]), content, critical, value))
    return tuple(out)


class Certificate:
    """A parsed X.509 certificate. Parsing checks structure only; trust is decided elsewhere.

    Attributes:
        der, tbs, spki_der: the whole certificate, the signed TBS bytes as stored, the DER
            SubjectPublicKeyInfo.
        public_key_raw: the subjectPublicKey BIT STRING payload (EC point / PKCS#1 / raw).
        key_type, signature_algorithm: e.g. "ec-p384", "ecdsa-sha256".
        subject, issuer: RFC 4514-style text; serial; not_before/not_after (aware UTC).
        extensions: every extension in order; fingerprint: SHA-256 of ``der``.
    """

    __slots__ = (
        "_hash", "_signature", "der", "extensions", "fingerprint", "issuer", "key_type",
        "not_after", "not_before", "public_key_raw", "serial", "signature_algorithm",
        "spki_der", "subject", "tbs",
    )  # fmt: skip

    _hash: str
    _signature: bytes
    der: bytes
    tbs: bytes
    spki_der: bytes
    public_key_raw: bytes
    key_type: str
    signature_algorithm: str
    subject: str
    issuer: str
    serial: int
    not_before: datetime
    not_after: datetime
    extensions: tuple[Extension, ...]
    fingerprint: bytes

    @classmethod
    def from_der(cls, data: bytes) -> Certificate:
        """Parse one DER certificate.

        Raises:
            CertificateError: malformed DER, an unsupported key or signature algorithm
                (code ``unsupported_algorithm``), or inconsistent algorithm fields.
        """
        data = bytes(data)
        try:
            return cls._parse(data)
        except QuoteFormatError as exc:
            raise _bad(str(exc).replace("malformed DER", "DER error")) from exc

    @classmethod
    def _parse(cls, data: bytes) -> Certificate:
        root = _der.parse(data)
        tbs_node, alg_node, sig_node = _kids(root, _der.SEQUENCE, "certificate", (3, 3))
        fields = list(_kids(tbs_node, _der.SEQUENCE, "TBSCertificate", (6, 10)))
        version = 0
        if fields[0].tag == 0xA0:
            (vnode,) = _kids(fields.pop(0), 0xA0, "version", (1, 1))
            version = _der.decode_integer(vnode)
        if len(fields) < 6 or _slice(data, fields[1]) != _slice(data, alg_node):
            raise _bad("TBS signature algorithm differs from the outer one")
        self = cls.__new__(cls)
        self.serial = _serial(fields[0])
        if version not in (0, 1, 2):
            raise _bad(f"version {version} is not v1, v2 or v3")
        self.signature_algorithm, self._hash = _algorithm(alg_node)
        self._signature = _bits(sig_node, "signature")
        self.issuer, self.subject = _name(fields[2]), _name(fields[4])
        times = _kids(fields[3], _der.SEQUENCE, "validity", (2, 2))
        self.not_before, self.not_after = _time(times[0]), _time(times[1])
        self.key_type, self.public_key_raw = _spki(fields[5])
        rest = fields[6:]
        ext = [f for f in rest if f.tag == 0xA3]
        if len(ext) > 1 or (rest and rest[-1].tag != 0xA3 and ext) or (ext and version != 2):
            raise _bad("extensions are misplaced or the version is not v3")
        self.extensions = _extensions(ext[0]) if ext else ()
        self.der = data
        self.tbs = _slice(data, tbs_node)
        self.spki_der = _slice(data, fields[5])
        self.fingerprint = hashlib.sha256(data).digest()
        return self

    @classmethod
    def load(cls, data: bytes) -> Certificate:
        """Parse PEM (the first CERTIFICATE block) or DER.

        Raises:
            CertificateError: no certificate in the input, or a malformed one.
        """
        return load_certificates(data)[0]

    def public_key(self) -> PublicKeyTypes:
        """The subject public key as a ``cryptography`` object.

        Raises:
            CertificateError: the key is not a valid point / modulus (code ``bad_key``).
        """
        try:
            return serialization.load_der_public_key(self.spki_der)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise CertificateError(f"the certificate's public key is invalid: {exc}",
                                   code="bad_key") from exc

    def extension(self, oid: str) -> Extension | None:
        """The extension with this dotted OID, or None."""
        return next((e for e in self.extensions if e.oid == oid), None)

    def verify_signature(self, issuer: Certificate | None = None) -> None:
        """Check the signature over the TBS bytes under ``issuer``'s key (None: self-signed).

        Raises:
            CertificateError: code ``bad_signature`` when the signature does not verify or
                the key does not fit the algorithm.
        """
        key = (issuer or self).public_key()
        sig, tbs, name = self._signature, self.tbs, self.signature_algorithm
        try:
            if isinstance(key, ec.EllipticCurvePublicKey) and name.startswith("ecdsa-"):
                key.verify(sig, tbs, ec.ECDSA(_HASHES[self._hash]()))
            elif isinstance(key, rsa.RSAPublicKey) and name.startswith("rsa-pkcs1-"):
                key.verify(sig, tbs, padding.PKCS1v15(), _HASHES[self._hash]())
            elif isinstance(key, ed25519.Ed25519PublicKey) and name == "ed25519":
                key.verify(sig, tbs)
            else:
                raise InvalidSignature
        except (InvalidSignature, ValueError, UnsupportedAlgorithm) as exc:
            who = "its own key" if issuer is None else f"the key of {issuer.subject!r}"
            raise CertificateError(
                f"the certificate's {name} signature does not verify under {who}: it was "
                "altered or signed by someone else; refuse it",
                code="bad_signature",
            ) from exc

    def pem(self) -> str:
        """The certificate as PEM text."""
        return pem_encode(self.der, "CERTIFICATE")

    def __repr__(self) -> str:
        return f"Certificate(subject={self.subject!r}, fingerprint={self.fingerprint.hex()[:16]}…)"


def _serial(node: _der.Node) -> int:
    raw = _prim(node, _der.INTEGER, "serial number")
    if not 0 < len(raw) <= 21:
        raise _bad("serial number is empty or longer than 20 octets")
    if len(raw) > 1 and ((raw[0] == 0 and raw[1] < 0x80) or (raw[0] == 0xFF and raw[1] >= 0x80)):
        raise _bad("serial number is not minimally encoded")
    return int.from_bytes(raw, "big", signed=True)


def pem_encode(der: bytes, label: str) -> str:
    """``der`` as PEM text: BEGIN/END ``label`` lines around base64 in 64-character lines."""
    body = base64.b64encode(der).decode()
    lines = "".join(body[i : i + 64] + "\n" for i in range(0, len(body), 64))
    return f"-----BEGIN {label}-----\n{lines}-----END {label}-----\n"


def _slice(data: bytes, node: _der.Node) -> bytes:
    _, _, end = _der.read_header(data, node.offset, len(data))
    return data[node.offset : end]


def load_certificates(data: bytes) -> list[Certificate]:
    """Every certificate in a PEM bundle (at most 16), or the one DER certificate.

    Raises:
        CertificateError: no certificate, bad base64, or a malformed certificate.
    """
    data = bytes(data)
    if len(data) > MAX_PEM:
        raise _bad(f"input of {len(data)} bytes is larger than {MAX_PEM}")
    if data[:1] == b"\x30":  # DER (a DER cert may carry PEM text inside, e.g. in a quote)
        return [Certificate.from_der(data)]
    blocks = _PEM.findall(data)
    if not blocks:
        raise _bad("PEM input holds no CERTIFICATE block", "missing_certificate")
    if len(blocks) > MAX_CERTS:
        raise _bad(f"more than {MAX_CERTS} certificates in one PEM bundle")
    out = []
    for block in blocks:
        try:
            der = base64.b64decode(b"".join(block.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _bad("PEM base64 is invalid") from exc
        out.append(Certificate.from_der(der))
    return out
