"""The simulated DCAP platform's state: keys, certificates, settings, signed collateral.

``PlatformState`` is an immutable snapshot. ``new_state`` creates a platform,
``reissue`` derives a new snapshot (new PCK certificate and/or fresh collateral) from an
old one, and ``to_files``/``from_files`` convert to and from the on-disk layout written
by :mod:`._store`.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from enklave.errors import PlatformError, QuoteFormatError
from enklave.models.pck import PCK_EXTENSION_OID, PckExtension, encode_pck_extension

from . import _collateral as coll
from . import _pki as pki
from ._store import read_file

__all__ = [
    "NOTICE",
    "ROLES",
    "TEES",
    "PlatformState",
    "SignedDoc",
    "from_files",
    "new_state",
    "reissue",
    "to_files",
]

NOTICE: Final = (
    "simulated DCAP platform, NOT Intel: its quotes and collateral verify only under this "
    "platform's simulated root CA, never under Intel's SGX Root CA"
)
_FORMAT: Final = "enklave-sim-dcap/1"
_BACKDATE: Final = 3600  # collateral is issued one hour before `now` (clock-skew margin)
ROLES: Final = ("root-ca", "pck-processor-ca", "tcb-signing", "pck", "qe-attestation")
_CERT_ROLES: Final = ROLES[:4]
_META: Final = "platform.json"
TEES: Final = ("sgx", "tdx")
_DOCS: Final = tuple(f"{kind}-{tee}" for tee in TEES for kind in ("tcb-info", "qe-identity"))
_PCK_CRL: Final = "pck-crl-processor.der"
_ROOT_CRL: Final = "root-ca-crl.der"
_SIZES: Final = {
    "fmspc": 6,
    "pce_id": 2,
    "ppid": 16,
    "qe_id": 16,
    "qe_mrsigner": 32,
    "qe_mrenclave": 32,
}
_BODY: Final = re.compile(
    r'\A\{"(tcbInfo|enclaveIdentity)":(.*),"signature":"([0-9a-f]{128})"\}\Z', re.DOTALL
)


@dataclass(frozen=True)
class SignedDoc:
    """A signed collateral JSON document: the exact inner text and its raw r||s signature."""

    key: str
    text: str
    signature: bytes

    def body(self) -> str:
        """The PCS response body, e.g. ``{"tcbInfo":{...},"signature":"<hex>"}``."""
        return f'{{"{self.key}":{self.text},"signature":"{self.signature.hex()}"}}'

    @classmethod
    def from_body(cls, body: str, where: Path) -> SignedDoc:
        """Split a body written by :meth:`body`; PlatformError if it is not one."""
        match = _BODY.match(body)
        if match is None:
            raise PlatformError(
                f"{where} is not a signed collateral document; run "
                "`enklave sim init --force` to re-create the platform"
            )
        return cls(match.group(1), match.group(2), bytes.fromhex(match.group(3)))


@dataclass(frozen=True)
class Settings:
    """Non-secret platform settings (``platform.json``)."""

    fmspc: bytes
    pce_id: bytes
    ppid: bytes
    qe_id: bytes
    qe_mrsigner: bytes
    qe_mrenclave: bytes
    tcb: str
    revoked: bool
    created: int
    collateral_issued: int

    def qe_mrsigner_for(self, tee: str) -> bytes:
        """MRSIGNER of the simulated QE (SGX) or TD QE (TDX, derived from the QE's)."""
        if tee == "sgx":
            return self.qe_mrsigner
        return hashlib.sha256(b"enklave-sim TD QE MRSIGNER" + self.qe_mrsigner).digest()

    def qe_mrenclave_for(self, tee: str) -> bytes:
        """MRENCLAVE of the simulated QE (SGX) or TD QE (TDX, derived from the QE's)."""
        if tee == "sgx":
            return self.qe_mrenclave
        return hashlib.sha256(b"enklave-sim TD QE MRENCLAVE" + self.qe_mrenclave).digest()

    def to_json(self) -> bytes:
        doc: dict[str, object] = {"format": _FORMAT, "notice": NOTICE}
        for name in _SIZES:
            doc[name] = getattr(self, name).hex()
        doc |= {
            "tcb": self.tcb,
            "revoked": self.revoked,
            "created": self.created,
            "collateral_issued": self.collateral_issued,
        }
        return json.dumps(doc, indent=2).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: bytes, where: Path) -> Settings:
        """Parse ``platform.json``; PlatformError naming the problem if malformed."""
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
                raise ValueError("not an enklave-sim-dcap/1 settings document")
            fields = {name: _hex(doc, name, size) for name, size in _SIZES.items()}
            tcb, revoked = doc["tcb"], doc["revoked"]
            created, issued = doc["created"], doc["collateral_issued"]
            if tcb not in coll.TCB_SITUATIONS or type(revoked) is not bool:
                raise ValueError("bad tcb or revoked value")
            if type(created) is not int or type(issued) is not int:
                raise ValueError("created and collateral_issued must be integers")
        except (ValueError, KeyError, TypeError) as exc:
            raise PlatformError(
                f"{where} is malformed ({exc}); run `enklave sim init "
                "--force` to re-create the platform"
            ) from exc
        return cls(**fields, tcb=tcb, revoked=revoked, created=created, collateral_issued=issued)


def _hex(doc: dict[str, object], name: str, size: int) -> bytes:
    value = doc[name]
    if not isinstance(value, str) or len(value) != 2 * size:
        raise ValueError(f"{name} must be {size} bytes of hex")
    return bytes.fromhex(value)


@dataclass(frozen=True)
class PlatformState:
    """Everything the simulated platform holds, as one immutable snapshot."""

    settings: Settings
    keys: dict[str, ec.EllipticCurvePrivateKey]
    certs: dict[str, x509.Certificate]
    docs: dict[str, SignedDoc]
    pck_crl: bytes
    root_crl: bytes

    def tcb_info(self, tee: str) -> SignedDoc:
        """The signed TCB Info for ``tee`` ("sgx" or "tdx")."""
        return self.docs[f"tcb-info-{tee}"]

    def qe_identity(self, tee: str) -> SignedDoc:
        """The signed QE Identity (``QE`` for "sgx", ``TD_QE`` for "tdx")."""
        return self.docs[f"qe-identity-{tee}"]

    def pck_extension(self) -> PckExtension:
        """The SGX extension for this platform's TCB situation."""
        comps, pcesvn = coll.platform_components(self.settings.tcb)
        return pck_extension(self.settings, comps, pcesvn)


def pck_extension(settings: Settings, comps: tuple[int, ...], pcesvn: int) -> PckExtension:
    """PCK extension values: CPUSVN is the component SVNs as bytes (as on Intel's certs)."""
    try:
        return PckExtension(
            ppid=settings.ppid,
            tcb_components=comps,
            pcesvn=pcesvn,
            cpusvn=bytes(comps),
            pce_id=settings.pce_id,
            fmspc=settings.fmspc,
            sgx_type=0,
        )
    except QuoteFormatError as exc:  # only reachable with a corrupt platform.json
        raise PlatformError(f"bad simulated PCK extension values ({exc})") from exc


def new_state(*, tcb: str, revoked: bool, now: int) -> PlatformState:
    """Create a new platform: fresh keys, identities, certificates and collateral."""
    keys = {role: pki.generate_key() for role in ROLES}
    root = pki.make_root(keys["root-ca"], now=now)
    certs = {
        "root-ca": root,
        "pck-processor-ca": pki.make_ca(keys["root-ca"], root, keys["pck-processor-ca"], now=now),
        "tcb-signing": pki.make_tcb_signer(keys["root-ca"], root, keys["tcb-signing"], now=now),
    }
    settings = Settings(
        fmspc=bytes([0x00]) + secrets.token_bytes(3) + bytes(2),
        pce_id=bytes(2),
        ppid=secrets.token_bytes(16),
        qe_id=secrets.token_bytes(16),
        qe_mrsigner=secrets.token_bytes(32),
        qe_mrenclave=secrets.token_bytes(32),
        tcb=tcb,
        revoked=revoked,
        created=now,
        collateral_issued=now - _BACKDATE,
    )
    return _with_pck(settings, keys, certs, now)


def reissue(
    state: PlatformState, *, tcb: str, revoked: bool, now: int, new_pck: bool
) -> PlatformState:
    """A new snapshot with fresh collateral at ``now`` (and a new PCK cert if ``new_pck``)."""
    settings = replace(state.settings, tcb=tcb, revoked=revoked, collateral_issued=now - _BACKDATE)
    certs = dict(state.certs)
    if new_pck:
        del certs["pck"]
    return _with_pck(settings, state.keys, certs, now)


def _with_pck(
    settings: Settings,
    keys: dict[str, ec.EllipticCurvePrivateKey],
    certs: dict[str, x509.Certificate],
    now: int,
) -> PlatformState:
    """Issue the PCK cert if missing, then sign all collateral at ``collateral_issued``."""
    certs = dict(certs)
    if "pck" not in certs:
        comps, pcesvn = coll.platform_components(settings.tcb)
        certs["pck"] = pki.make_pck(
            keys["pck-processor-ca"],
            certs["pck-processor-ca"],
            keys["pck"],
            sgx_extension=encode_pck_extension(pck_extension(settings, comps, pcesvn)),
            sgx_extension_oid=PCK_EXTENSION_OID,
            now=now,
        )
    issue = settings.collateral_issued
    docs = _sign_documents(settings, keys["tcb-signing"])
    revoked = (certs["pck"].serial_number,) if settings.revoked else ()
    window = {"this_update": issue, "next_update": issue + coll.VALIDITY_SECONDS}
    return PlatformState(
        settings=settings,
        keys=keys,
        certs=certs,
        docs=docs,
        pck_crl=pki.make_crl(
            keys["pck-processor-ca"], certs["pck-processor-ca"], revoked_serials=revoked, **window
        ),
        root_crl=pki.make_crl(keys["root-ca"], certs["root-ca"], revoked_serials=(), **window),
    )


def _sign_documents(settings: Settings, signer: ec.EllipticCurvePrivateKey) -> dict[str, SignedDoc]:
    """TCB Info and QE Identity for every TEE, signed over their exact text."""
    issue = settings.collateral_issued
    docs: dict[str, SignedDoc] = {}
    for tee in TEES:
        text = coll.tcb_info_text(
            fmspc=settings.fmspc, pce_id=settings.pce_id, issue=issue, tee=tee
        )
        docs[f"tcb-info-{tee}"] = SignedDoc("tcbInfo", text, pki.sign_raw(signer, text.encode()))
        text = coll.qe_identity_text(mrsigner=settings.qe_mrsigner_for(tee), issue=issue, tee=tee)
        docs[f"qe-identity-{tee}"] = SignedDoc(
            "enclaveIdentity", text, pki.sign_raw(signer, text.encode())
        )
    return docs


def to_files(state: PlatformState) -> dict[str, tuple[bytes, bool]]:
    """The on-disk layout: file name -> (content, is_secret)."""
    files: dict[str, tuple[bytes, bool]] = {_META: (state.settings.to_json(), False)}
    for role, key in state.keys.items():
        files[f"{role}.key"] = (pki.key_to_pem(key), True)
    for role, cert in state.certs.items():
        files[f"{role}.pem"] = (pki.cert_pem(cert).encode(), False)
    for name, doc in state.docs.items():
        files[f"{name}.json"] = (doc.body().encode(), False)
    files[_PCK_CRL] = (state.pck_crl, False)
    files[_ROOT_CRL] = (state.root_crl, False)
    return files


def from_files(directory: Path) -> PlatformState:
    """Load a state directory written from :func:`to_files`.

    Raises:
        PlatformError: if a file is missing, unsafe (see :func:`._store.read_file`) or corrupt.
    """
    settings = Settings.from_json(read_file(directory / _META, secret=False), directory / _META)
    keys = {r: pki.key_from_pem(read_file(directory / f"{r}.key", secret=True), r) for r in ROLES}
    certs = {r: _load_cert(directory / f"{r}.pem") for r in _CERT_ROLES}
    docs = {
        n: SignedDoc.from_body(_text(directory / f"{n}.json"), directory / f"{n}.json")
        for n in _DOCS
    }
    return PlatformState(
        settings=settings,
        keys=keys,
        certs=certs,
        docs=docs,
        pck_crl=read_file(directory / _PCK_CRL, secret=False),
        root_crl=read_file(directory / _ROOT_CRL, secret=False),
    )


def _text(path: Path) -> str:
    try:
        return read_file(path, secret=False).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PlatformError(f"{path} is not UTF-8 text; re-create the platform") from exc


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(read_file(path, secret=False))
    except ValueError as exc:
        raise PlatformError(
            f"{path} is not a PEM certificate ({exc}); run `enklave sim "
            "init --force` to re-create the platform"
        ) from exc
