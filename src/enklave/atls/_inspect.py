"""Inspect an attested-TLS certificate: what it carries, with no trust decision.

:func:`inspect_certificate` reports the certificate fields, its extensions, every piece of
evidence found, a summary of each quote, the key-binding result (or the binding error) and
whether the self-signature verifies. It never says "trusted": use
:func:`enklave.atls.verify_certificate` for that. It also reads Cosmian's ``evidence.json``
bundle (a certificate plus its own collateral), see :func:`load_cosmian_bundle`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ..collateral import Collateral
from ..errors import CertificateError, CollateralError, EnklaveError, QuoteFormatError
from ..models import _der
from ..models.quote import SgxReportBody, parse_quote
from . import _dice, _ias
from ._binding import bind
from ._formats import CertEvidence, find_evidence
from ._x509 import Certificate, load_certificates

__all__ = ["CertificateReport", "inspect_certificate", "load_cosmian_bundle"]


@dataclass(frozen=True)
class CertificateReport:
    """What a certificate carries (no trust decision).

    Attributes:
        certificate: the parsed leaf certificate.
        source: "pem", "der" or "cosmian-evidence-json".
        certs_in_file: how many certificates the input held.
        self_signature: "ok" or the error code (e.g. "bad_signature").
        evidence: one dict per evidence extension (format, quote summary, binding ...).
        error: why no evidence could be read (code and message), else None.
    """

    certificate: Certificate
    source: str
    certs_in_file: int
    self_signature: str
    evidence: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (bytes as hex)."""
        cert = self.certificate
        return {
            "source": self.source, "certs_in_file": self.certs_in_file,
            "subject": cert.subject, "issuer": cert.issuer, "serial": hex(cert.serial),
            "not_before": cert.not_before.isoformat(), "not_after": cert.not_after.isoformat(),
            "key_type": cert.key_type, "signature_algorithm": cert.signature_algorithm,
            "fingerprint": cert.fingerprint.hex(),
            "spki_sha256": hashlib.sha256(cert.spki_der).hexdigest(),
            "extensions": [
                {"oid": e.oid, "oid_der": _der.tlv(_der.OID, e.oid_content).hex(),
                 "critical": e.critical, "length": len(e.value)}
                for e in cert.extensions
            ],
            "self_signature": self.self_signature, "evidence": self.evidence,
            "error": self.error,
        }  # fmt: skip


def _error(exc: EnklaveError) -> dict[str, str]:
    return {"code": exc.code, "message": exc.message}


def quote_summary(quote: bytes) -> dict[str, Any]:
    """Decoded quote fields (no signature checked).

    Raises:
        QuoteFormatError: the quote does not parse.
    """
    q = parse_quote(quote)
    body = q.body
    out: dict[str, Any] = {
        "version": q.header.version, "tee": q.tee, "att_key_type": q.header.att_key_type,
        "length": len(quote) - q.trailing, "certification_data_type": q.certification.cert_type,
        "debug": body.debug, "report_data": body.report_data.hex(),
    }  # fmt: skip
    if isinstance(body, SgxReportBody):
        out.update(mrenclave=body.mrenclave.hex(), mrsigner=body.mrsigner.hex(),
                   isv_prod_id=body.isv_prod_id, isv_svn=body.isv_svn)
    else:
        out.update(mrtd=body.mr_td.hex(), rtmrs=[r.hex() for r in body.rtmrs],
                   td_attributes=body.td_attributes.hex())
    return out


def _describe(cert: Certificate, ev: CertEvidence, ias_root: Certificate | None
              ) -> dict[str, Any]:
    out: dict[str, Any] = {"format": ev.format, "oid": ev.oid}
    if ev.quote is not None:
        try:
            out["quote"] = quote_summary(ev.quote)
        except QuoteFormatError as exc:
            out["quote"] = {"error": _error(exc)}
    if ev.claims is not None:
        out["claims_hex"] = ev.claims.hex()
        if ev.format in ("tcg-dice", "intel-sgxsdk"):
            try:
                claims = _dice.decode_claims(ev.claims)
                out["claims"] = {k: v.hex() for k, v in sorted(claims.items())}
            except EnklaveError as exc:
                out["claims"] = {"error": _error(exc)}
    ias = ev.details.get("ias")
    if isinstance(ias, _ias.IasEvidence):
        out["ias"] = ias.summary()
        if ias_root is not None:
            out["ias"]["signature"] = _ias_check(ias, ias_root)
    others = {k: len(v) for k, v in ev.details.items() if isinstance(v, bytes)}
    if others:
        out["side_extensions"] = others
    try:
        binding = bind(cert, ev)
        out["binding"] = {"rule": binding.rule, "ok": True}
    except EnklaveError as exc:
        out["binding"] = {"ok": False, "error": _error(exc)}
    return out


def _ias_check(ias: _ias.IasEvidence, root: Certificate) -> str:
    try:
        _ias.verify_ias(ias, root=root)
    except EnklaveError as exc:
        return exc.code
    return "ok"


def load_cosmian_bundle(data: bytes) -> tuple[Certificate, Collateral]:
    """Read Cosmian's ``evidence.json``: the RA-TLS certificate and the collateral it ships.

    The PCK chain and root come from the quote itself; ``tcb_info`` is base64 of the hex of
    the PCS JSON, ``qe_identity`` base64 of the JSON.

    Raises:
        CertificateError: not such a bundle, or a malformed certificate.
        CollateralError: malformed collateral fields.
    """
    try:
        doc = json.loads(data)
        cert = Certificate.load(doc["ratls_certificate"].encode())
        tcb_info = bytes.fromhex(base64.b64decode(doc["tcb_info"], validate=True).decode())
        qe_identity = base64.b64decode(doc["qe_identity"], validate=True)
        texts = [doc[k] for k in ("tcb_cert", "root_ca_crl", "pck_platform_crl")]
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error,
            RecursionError) as exc:
        raise CertificateError(
            "not a Cosmian evidence.json bundle (ratls_certificate, tcb_info, qe_identity, "
            "tcb_cert, root_ca_crl, pck_platform_crl)", code="malformed_bundle",
        ) from exc
    ev = find_evidence(cert)[0]
    if ev.quote is None or not all(isinstance(t, str) for t in texts):
        raise CertificateError("the bundle's certificate holds no quote",
                               code="malformed_bundle")
    try:
        chain = [_pem(der) for der in parse_quote(ev.quote).certification.pck_chain_der()]
    except QuoteFormatError as exc:
        raise CollateralError(f"the quote's PCK chain is unreadable: {exc}") from exc
    root = chain[-1]
    collateral = Collateral.from_pcs_responses(
        tcb_info_response=tcb_info, qe_identity_response=qe_identity,
        tcb_info_issuer_chain=texts[0] + root, qe_identity_issuer_chain=texts[0] + root,
        pck_crl=texts[2], pck_crl_issuer_chain="".join(chain[1:]), root_ca_crl=texts[1],
    )  # fmt: skip
    return cert, collateral


def _pem(der: bytes) -> str:
    return Certificate.from_der(der).pem()


def _load(data: bytes) -> tuple[Certificate, str, int]:
    stripped = data.lstrip()
    if stripped.startswith(b"{"):
        return load_cosmian_bundle(data)[0], "cosmian-evidence-json", 1
    certs = load_certificates(data)
    return certs[0], "der" if data[:1] == b"\x30" else "pem", len(certs)


def inspect_certificate(data: bytes, *, ias_root: Certificate | None = None
                        ) -> CertificateReport:
    """Describe an attested-TLS certificate (PEM, DER or Cosmian evidence.json).

    Args:
        data: the file's bytes.
        ias_root: when given, IAS reports are checked under this root (EPID evidence).

    Raises:
        CertificateError: the input is not a certificate at all (everything found after
            that, including evidence and binding errors, is reported, not raised).
        CollateralError: a Cosmian bundle with malformed collateral.
    """
    cert, source, count = _load(bytes(data))
    try:
        cert.verify_signature()
        self_sig = "ok"
    except CertificateError as exc:
        self_sig = exc.code
    try:
        found = find_evidence(cert)
    except EnklaveError as exc:
        return CertificateReport(cert, source, count, self_sig, [], _error(exc))
    described = [_describe(cert, ev, ias_root) for ev in found]
    return CertificateReport(cert, source, count, self_sig, described)
