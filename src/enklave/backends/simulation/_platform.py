"""``SimPlatform``: a simulated DCAP platform on disk that produces real-format quotes.

Quotes and collateral are byte-for-byte in Intel's formats and signed the way Intel signs
them, under a *simulated* root CA kept in the state directory. They verify only when that
root is the trust anchor; a verifier pinned to Intel's SGX Root CA rejects them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from enklave.errors import PlatformError

from . import _collateral as coll
from . import _pki as pki
from . import _state
from ._pcs import PcsResponses, pcs_responses
from ._quoting import sgx_quote, td_quote
from ._store import state_dir, write_state

if TYPE_CHECKING:  # the enclave imports this module; keep the collateral client out of it
    from enklave.collateral import Collateral

__all__ = ["TCB_SITUATIONS", "SimPlatform"]

TCB_SITUATIONS: Final = coll.TCB_SITUATIONS
_REFRESH_MARGIN: Final = 86400  # refresh collateral once less than a day of validity is left
_TEES: Final = _state.TEES


def _now(now: int | None) -> int:
    if now is None:
        return int(time.time())
    if type(now) is not int or now < 0:
        raise PlatformError(f"now must be unix seconds (a non-negative int), not {now!r}")
    return now


def _check_situation(tcb: str, revoked: object) -> None:
    if tcb not in TCB_SITUATIONS:
        raise PlatformError(
            f"unknown TCB situation {tcb!r}; choose one of {', '.join(TCB_SITUATIONS)}"
        )
    if type(revoked) is not bool:
        raise PlatformError("revoked must be True or False")


def _check_tee(tee: str) -> None:
    if tee not in _TEES:
        raise PlatformError(
            f"the simulated platform supports tee={' or '.join(map(repr, _TEES))}, not {tee!r}"
        )


class SimPlatform:
    """A simulated SGX DCAP platform (simulated, NOT Intel).

    State lives in ``<home>/dcap`` (``home`` defaults to ``ENKLAVE_SIM_HOME`` or the XDG
    data dir, see :func:`enklave._simplatform.sim_home`): private keys (mode ``0600``)
    for the simulated root CA, PCK Processor CA, TCB Signing, PCK and QE attestation keys,
    the certificates, ``platform.json`` and the signed collateral. Create it with
    :meth:`init`, open it with :meth:`load`.

    Changing the TCB situation: :meth:`reconfigure` re-issues the PCK certificate (same
    key, new serial, new TCB components) and re-signs the collateral, keeping the root CA,
    so trust anchors already handed out stay valid. ``init(force=True)`` instead creates a
    whole new platform (new root). Collateral is valid for 30 days from when it was signed;
    :meth:`collateral` and :meth:`pcs_responses` re-sign it when it is (nearly) expired at
    ``now``, and :meth:`refresh_collateral` does so unconditionally.
    """

    def __init__(self, directory: Path, state: _state.PlatformState) -> None:
        """Use :meth:`init` or :meth:`load` instead."""
        self._dir = directory
        self._state = state

    @classmethod
    def init(
        cls,
        home: Path | None = None,
        *,
        tcb: str = "UpToDate",
        revoked: bool = False,
        force: bool = False,
        now: int | None = None,
    ) -> SimPlatform:
        """Create the platform, or open the existing one unless ``force``.

        Args:
            home: the simulation home (the state goes to ``home/"dcap"``).
            tcb: the TCB situation: the platform's PCK certificate gets TCB components whose
                first matching level in the generated TCB Info has this tcbStatus (one of
                :data:`TCB_SITUATIONS`; ``"Revoked"`` too).
            revoked: list the PCK certificate's serial on the PCK CRL.
            force: replace an existing platform (new keys, new root CA).
            now: creation time in unix seconds (default: the current time). Certificates
                are valid from ``now - 1 day``; collateral from ``now - 1 hour`` for 30 days.

        Returns:
            The platform. If one existed and ``force`` is false, that one, unchanged
            (``tcb``/``revoked`` are then ignored; use :meth:`reconfigure`).

        Raises:
            PlatformError: bad arguments, or the state cannot be written or read.
        """
        _check_situation(tcb, revoked)
        moment = _now(now)
        directory = state_dir(home)
        if not force and directory.exists():
            return cls.load(home)
        state = _state.new_state(tcb=tcb, revoked=revoked, now=moment)
        if not write_state(directory, _state.to_files(state), replace=force):
            return cls.load(home)  # another process created it first; use theirs
        return cls(directory, state)

    @classmethod
    def load(cls, home: Path | None = None) -> SimPlatform:
        """Open an existing platform.

        Raises:
            PlatformError: if there is none (run ``enklave sim init``), or its files are
                missing, corrupt or have unsafe permissions.
        """
        directory = state_dir(home)
        if not directory.is_dir():
            raise PlatformError(
                f"no simulated DCAP platform at {directory}; run `enklave sim init` first"
            )
        return cls(directory, _state.from_files(directory))

    def reconfigure(
        self, *, tcb: str | None = None, revoked: bool | None = None, now: int | None = None
    ) -> None:
        """Change the TCB situation and/or revocation; the root CA and keys are kept.

        A new PCK certificate is issued (new serial, TCB components for ``tcb``) and all
        collateral is re-signed at ``now``; the change is written to disk atomically.

        Raises:
            PlatformError: bad arguments, or the state cannot be written.
        """
        settings = self._state.settings
        new_tcb = settings.tcb if tcb is None else tcb
        new_revoked = settings.revoked if revoked is None else revoked
        _check_situation(new_tcb, new_revoked)
        self._replace(
            _state.reissue(
                self._state, tcb=new_tcb, revoked=new_revoked, now=_now(now), new_pck=True
            )
        )

    def refresh_collateral(self, *, now: int | None = None) -> None:
        """Re-sign TCB Info, QE Identity and both CRLs, valid from ``now - 1 hour``.

        Raises:
            PlatformError: if the state cannot be written.
        """
        settings = self._state.settings
        self._replace(
            _state.reissue(
                self._state,
                tcb=settings.tcb,
                revoked=settings.revoked,
                now=_now(now),
                new_pck=False,
            )
        )

    def _replace(self, state: _state.PlatformState) -> None:
        write_state(self._dir, _state.to_files(state), replace=True)
        self._state = state

    def _fresh(self, now: int | None) -> _state.PlatformState:
        """The state, with collateral re-signed first if it is not valid at ``now``."""
        moment = _now(now)
        issued = self._state.settings.collateral_issued
        if not issued <= moment < issued + coll.VALIDITY_SECONDS - _REFRESH_MARGIN:
            self.refresh_collateral(now=moment)
        return self._state

    @property
    def directory(self) -> Path:
        """The state directory (``<home>/dcap``)."""
        return self._dir

    @property
    def root_certificate(self) -> x509.Certificate:
        """The simulated root CA certificate (the trust anchor for this platform's quotes)."""
        return self._state.certs["root-ca"]

    @property
    def root_certificate_pem(self) -> bytes:
        """The simulated root CA certificate, PEM."""
        return pki.cert_pem(self.root_certificate).encode("ascii")

    @property
    def fmspc(self) -> bytes:
        """The platform's 6-byte FMSPC."""
        return self._state.settings.fmspc

    @property
    def pce_id(self) -> bytes:
        """The platform's 2-byte PCE ID."""
        return self._state.settings.pce_id

    @property
    def tcb(self) -> str:
        """The platform's TCB situation (the status its quotes verify with)."""
        return self._state.settings.tcb

    @property
    def revoked(self) -> bool:
        """Whether the PCK certificate is on the PCK CRL."""
        return self._state.settings.revoked

    def info(self) -> dict[str, object]:
        """A JSON-friendly description (no secrets), stating it is simulated, NOT Intel."""
        st = self._state
        ext = st.pck_extension()
        root = self.root_certificate
        return {
            "simulated": True,
            "notice": _state.NOTICE,
            "state_dir": str(self._dir),
            "fmspc": st.settings.fmspc.hex().upper(),
            "pce_id": st.settings.pce_id.hex().upper(),
            "tcb": st.settings.tcb,
            "revoked": st.settings.revoked,
            "tcb_components": list(ext.tcb_components),
            "pce_svn": ext.pcesvn,
            "qe_mrsigner": st.settings.qe_mrsigner.hex(),
            "root_subject": root.subject.rfc4514_string(),
            "root_fingerprint_sha256": root.fingerprint(hashes.SHA256()).hex(),
            "certificates": {role: _cert_info(cert) for role, cert in st.certs.items()},
            "collateral_issue_date": coll.format_date(st.settings.collateral_issued),
            "collateral_next_update": coll.format_date(
                st.settings.collateral_issued + coll.VALIDITY_SECONDS
            ),
        }

    def quote(
        self,
        report_data: bytes,
        *,
        mrenclave: bytes,
        mrsigner: bytes,
        isv_prod_id: int,
        isv_svn: int,
        debug: bool,
        attributes: bytes | None = None,
        version: int = 3,
        tee: str = "sgx",
    ) -> bytes:
        """Produce a real-format DCAP quote for an enclave with this identity.

        Args:
            report_data: the 64-byte REPORTDATA the enclave binds (e.g. a key hash).
            mrenclave: 32-byte MRENCLAVE.
            mrsigner: 32-byte MRSIGNER.
            isv_prod_id: ISVPRODID (u16).
            isv_svn: ISVSVN (u16).
            debug: set the DEBUG attribute.
            attributes: 16-byte ATTRIBUTES (FLAGS || XFRM) to use verbatim; its DEBUG bit
                must agree with ``debug``. Default: INIT|MODE64BIT(|DEBUG), XFRM 0xE7.
            version: 3, or 4 (QE data nested in certification data type 6).
            tee: ``"sgx"`` (for TDX use :meth:`td_quote`).

        Returns:
            The quote bytes (certification data type 5: PCK leaf, Processor CA, root).

        Raises:
            PlatformError: a field of the wrong size/range, contradicting DEBUG values, an
                unsupported version or TEE.
        """
        if tee != "sgx":
            raise PlatformError(
                f"quote() makes SGX quotes (tee='sgx', not {tee!r}); use td_quote() for a TDX quote"
            )
        return sgx_quote(
            self._state,
            report_data,
            mrenclave=mrenclave,
            mrsigner=mrsigner,
            isv_prod_id=isv_prod_id,
            isv_svn=isv_svn,
            debug=debug,
            attributes=attributes,
            version=version,
        )

    def td_quote(
        self,
        report_data: bytes,
        *,
        mr_td: bytes,
        debug: bool,
        rtmrs: tuple[bytes, bytes, bytes, bytes] | None = None,
        mr_config_id: bytes | None = None,
        mr_owner: bytes | None = None,
        mr_owner_config: bytes | None = None,
        td_attributes: bytes | None = None,
    ) -> bytes:
        """Produce a real-format TDX quote (v4, TD report 1.0) for a TD with these values.

        The TD report carries a simulated TDX module (TEE_TCB_SVN 05 01 03..., a made-up
        MRSEAM, zero MRSIGNERSEAM/SEAMATTRIBUTES) and XFAM ``e702060000000000``; the
        quote verifies with ``collateral(tee="tdx")`` with the platform's TCB situation.

        Args:
            report_data: the 64-byte REPORTDATA.
            mr_td: 48-byte MRTD.
            debug: set TDATTRIBUTES.DEBUG.
            rtmrs: four 48-byte RTMRs (default zeros).
            mr_config_id, mr_owner, mr_owner_config: 48 bytes each (default zeros).
            td_attributes: 8 bytes used verbatim (DEBUG bit must agree with ``debug``);
                default SEPT_VE_DISABLE (+DEBUG).

        Raises:
            PlatformError: a field of the wrong size, or contradicting DEBUG values.
        """
        return td_quote(
            self._state,
            report_data,
            mr_td=mr_td,
            rtmrs=rtmrs,
            mr_config_id=mr_config_id,
            mr_owner=mr_owner,
            mr_owner_config=mr_owner_config,
            debug=debug,
            td_attributes=td_attributes,
        )

    def collateral(self, *, tee: str = "sgx", now: int | None = None) -> Collateral:
        """The collateral to verify this platform's quotes, valid at ``now``.

        ``tee="sgx"``: TCB Info ``SGX`` and QE Identity ``QE``; ``tee="tdx"``: TCB Info
        ``TDX`` and QE Identity ``TD_QE``. Both: the PCK CRL and root CRL, issuer chains.

        Collateral that is not valid at ``now`` (default: the current time), or has less
        than a day left, is re-signed and saved first.

        Raises:
            PlatformError: unsupported TEE, bad ``now``, or the refreshed state cannot be
                written.
        """
        _check_tee(tee)
        st = self._fresh(now)
        certs = st.certs
        signing_chain = pki.cert_pem(certs["tcb-signing"]) + pki.cert_pem(certs["root-ca"])
        from enklave.collateral._model import Collateral

        return Collateral(
            pck_crl_issuer_chain=pki.cert_pem(certs["pck-processor-ca"])
            + pki.cert_pem(certs["root-ca"]),
            root_ca_crl=st.root_crl,
            pck_crl=st.pck_crl,
            tcb_info_issuer_chain=signing_chain,
            tcb_info=st.tcb_info(tee).text,
            tcb_info_signature=st.tcb_info(tee).signature,
            qe_identity_issuer_chain=signing_chain,
            qe_identity=st.qe_identity(tee).text,
            qe_identity_signature=st.qe_identity(tee).signature,
        )

    def pcs_responses(self, *, tee: str = "sgx", now: int | None = None) -> PcsResponses:
        """The same collateral as Intel PCS v4 responses (see :class:`PcsResponses`).

        Refreshes expired collateral like :meth:`collateral`.

        Raises:
            PlatformError: as :meth:`collateral`.
        """
        _check_tee(tee)
        return pcs_responses(self._fresh(now), tee)


def _cert_info(cert: x509.Certificate) -> dict[str, str]:
    return {
        "subject": cert.subject.rfc4514_string(),
        "serial": format(cert.serial_number, "x"),
        "not_before": cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "not_after": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "public_key_sha256": _spki_hash(cert),
    }


def _spki_hash(cert: x509.Certificate) -> str:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(
        cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return digest.finalize().hex()
