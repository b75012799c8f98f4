"""EPID-era evidence: Intel Attestation Service (IAS) reports inside certificates.

Two carriers are recognised: Integritee / SubstraTEE put ``report JSON | base64 signature |
base64 signing certificate`` in a Netscape comment extension (2.16.840.1.113730.1.13);
Fortanix puts a DER ``SEQUENCE { OCTET STRING report, OCTET STRING signature, SEQUENCE OF
Certificate }`` in 1.3.6.1.4.1.49690.2.2.3. The report is checked (RSA PKCS#1 v1.5 SHA-256
over the exact report bytes, signing certificate issued by the IAS root you pass) only for
inspection and interop tests: Intel retired EPID attestation (IAS) in 2025, so
:func:`enklave.atls.verify_certificate` refuses this evidence.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..errors import CertificateError, QuoteFormatError, VerificationError
from ..models import _der
from ..models.quote import SgxReportBody
from ._x509 import Certificate

__all__ = ["IasEvidence", "parse_fortanix", "parse_integritee", "verify_ias"]

MAX_REPORT: Final = 16 * 1024
_EPID_BODY: Final = slice(48, 432)  # sgx_quote_t: 48-byte header, then the report body


def _bad(what: str) -> CertificateError:
    return CertificateError(
        f"IAS evidence is malformed: {what}; the certificate was not made by a known "
        "EPID attester", code="malformed_extension",
    )  # fmt: skip


@dataclass(frozen=True)
class IasEvidence:
    """An IAS attestation verification report as carried in a certificate (unverified).

    Attributes:
        form: "integritee" or "fortanix".
        report_body: the exact JSON bytes IAS signed.
        report: the decoded JSON object.
        signature: the RSA signature over ``report_body``.
        signing_certs: the certificates shipped with it (the IAS signing cert first).
        enclave: the 384-byte SGX report body from ``isvEnclaveQuoteBody``.
    """

    form: str
    report_body: bytes
    report: dict[str, Any]
    signature: bytes
    signing_certs: tuple[Certificate, ...]
    enclave: SgxReportBody

    @property
    def status(self) -> str:
        return str(self.report.get("isvEnclaveQuoteStatus", ""))

    @property
    def version(self) -> int | None:
        version = self.report.get("version")
        return version if type(version) is int else None

    def summary(self) -> dict[str, Any]:
        """JSON-friendly fields (no trust decision)."""
        body = self.enclave
        return {
            "form": self.form, "id": self.report.get("id"), "version": self.version,
            "timestamp": self.report.get("timestamp"), "status": self.status,
            "advisory_ids": [a for a in advisories if isinstance(a, str)]
            if isinstance(advisories := self.report.get("advisoryIDs"), list) else [],
            "mrenclave": body.mrenclave.hex(), "mrsigner": body.mrsigner.hex(),
            "isv_prod_id": body.isv_prod_id, "isv_svn": body.isv_svn, "debug": body.debug,
            "report_data": body.report_data.hex(),
        }  # fmt: skip


def _build(form: str, body: bytes, signature: bytes, certs: list[Certificate]) -> IasEvidence:
    if not body or len(body) > MAX_REPORT or not certs:
        raise _bad("empty or oversized report, or no signing certificate")
    try:
        report = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise _bad("the report is not JSON") from exc
    if type(report) is not dict or type(report.get("isvEnclaveQuoteBody")) is not str:
        raise _bad("the report has no isvEnclaveQuoteBody")
    try:
        quote = base64.b64decode(report["isvEnclaveQuoteBody"], validate=True)
        enclave = SgxReportBody.from_bytes(quote[_EPID_BODY])
    except (binascii.Error, ValueError, QuoteFormatError) as exc:
        raise _bad("isvEnclaveQuoteBody is not a base64 EPID quote") from exc
    return IasEvidence(form, body, report, signature, tuple(certs), enclave)


def parse_integritee(value: bytes) -> IasEvidence:
    """Parse ``report | base64 signature | base64 DER signing cert`` (Netscape comment).

    Raises:
        CertificateError: not three parts, bad base64 or JSON, or a malformed certificate.
    """
    parts = bytes(value).split(b"|")
    if len(parts) != 3:
        raise _bad("expected report|signature|certificate")
    try:
        signature = base64.b64decode(parts[1], validate=True)
        cert_der = base64.b64decode(parts[2], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _bad("signature or certificate is not base64") from exc
    return _build("integritee", parts[0], signature, [Certificate.from_der(cert_der)])


def parse_fortanix(value: bytes) -> IasEvidence:
    """Parse Fortanix's ``SEQUENCE { report, signature, SEQUENCE OF Certificate }``.

    Raises:
        CertificateError: another shape, or a malformed certificate.
    """
    data = bytes(value)
    try:
        tag, start, end = _der.read_header(data, 0, len(data))
        if tag != _der.SEQUENCE or end != len(data):
            raise _bad("not one DER SEQUENCE")
        fields: list[tuple[int, int, int]] = []
        pos = start
        while pos < end and len(fields) < 4:
            fields.append(_der.read_header(data, pos, end))
            pos = fields[-1][2]
        if pos != end or [f[0] for f in fields] != [0x04, 0x04, 0x30]:
            raise _bad("expected report, signature and a certificate list")
        certs = _der.split_concatenated(data[fields[2][1] : fields[2][2]], limit=4)
    except QuoteFormatError as exc:
        raise _bad(str(exc)) from exc
    report, sig = (data[f[1] : f[2]] for f in fields[:2])
    return _build("fortanix", report, sig, [Certificate.from_der(c) for c in certs])


def verify_ias(evidence: IasEvidence, *, root: Certificate) -> dict[str, Any]:
    """Check the IAS signature and that the signing certificate was issued by ``root``.

    This is no trust decision about the enclave (EPID is retired); it says whether the
    report is genuine. Returns :meth:`IasEvidence.summary`.

    Raises:
        VerificationError: code ``bad_ias_signature`` (report signature) or
            ``untrusted_root`` (signing certificate not issued by ``root``).
    """
    leaf = evidence.signing_certs[0]
    try:
        leaf.verify_signature(root)
    except CertificateError as exc:
        raise VerificationError(
            "the IAS signing certificate was not issued by the given IAS root",
            code="untrusted_root",
        ) from exc
    key = leaf.public_key()
    try:
        if not isinstance(key, rsa.RSAPublicKey):
            raise InvalidSignature
        key.verify(evidence.signature, evidence.report_body, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError) as exc:
        raise VerificationError(
            "the IAS report signature does not verify: the report was altered",
            code="bad_ias_signature",
        ) from exc
    return evidence.summary()
