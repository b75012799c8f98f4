"""The simulated Quoting Enclave: real-format DCAP quotes from a platform state.

What the simulated QE does, step by step, exactly like Intel's ECDSA QE:

1. the application enclave's report body becomes the quote body;
2. the QE report's REPORTDATA is ``SHA256(attestation_pub || qe_auth_data) || 0*32``;
3. the QE report is signed by the PCK key (raw r||s);
4. the header and body are signed by the QE attestation key;
5. certification data type 5 carries the PEM chain leaf, Processor CA, root (NUL-terminated);
   v4 quotes wrap the QE part in type 6 (QE Report Certification Data).

TD quotes (v4, TEE type 0x81) work the same way with a TD report body and the TD QE.
"""

from __future__ import annotations

import hashlib
from typing import Final

from enklave.errors import PlatformError, QuoteFormatError
from enklave.models.quote import TEE_SGX, TEE_TDX, SgxReportBody, TdReportBody, build_quote

from . import _collateral as coll
from . import _pki as pki
from ._state import PlatformState

__all__ = ["QE_AUTH_DATA", "sgx_quote", "td_quote"]

QE_AUTH_DATA: Final = bytes(range(32))  # Intel's QE uses the bytes 0x00..0x1f
_CERT_TYPE_PEM_CHAIN: Final = 5
_FLAG_INIT: Final = 0x01
_FLAG_DEBUG: Final = 0x02
_FLAG_MODE64: Final = 0x04
_DEFAULT_XFRM: Final = 0xE7
_TD_DEBUG: Final = 0x01
_TD_SEPT_VE_DISABLE: Final = 1 << 28
_TD_XFAM: Final = bytes.fromhex("e702060000000000")
# A fixed, made-up measurement of the simulated TDX module (not any real module's MRSEAM).
_SIM_MRSEAM: Final = hashlib.sha384(b"enklave simulated TDX module").digest()


def _check_bytes(name: str, value: object, size: int) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != size:
        raise PlatformError(f"{name} must be {size} bytes")
    return bytes(value)


def _opt48(name: str, value: bytes | None) -> bytes:
    return bytes(48) if value is None else _check_bytes(name, value, 48)


def _check_u16(name: str, value: object) -> int:
    if type(value) is not int or not 0 <= value <= 0xFFFF:
        raise PlatformError(f"{name} must be an integer in 0..65535")
    return value


def _attributes(debug: bool, attributes: bytes | None) -> bytes:
    """ATTRIBUTES for the app report: INIT|MODE64BIT (+DEBUG), XFRM 0xE7 by default."""
    if attributes is None:
        flags = _FLAG_INIT | _FLAG_MODE64 | (_FLAG_DEBUG if debug else 0)
        return flags.to_bytes(8, "little") + _DEFAULT_XFRM.to_bytes(8, "little")
    value = _check_bytes("attributes", attributes, 16)
    if bool(value[0] & _FLAG_DEBUG) != debug:
        raise PlatformError(
            f"attributes DEBUG bit ({bool(value[0] & _FLAG_DEBUG)}) contradicts debug={debug}; "
            "pass matching values"
        )
    return value


def _qe_report(state: PlatformState, attestation_pub: bytes, tee: str) -> SgxReportBody:
    """The simulated QE's (or TD QE's) own report, binding the attestation key."""
    settings = state.settings
    binding = hashlib.sha256(attestation_pub + QE_AUTH_DATA).digest() + bytes(32)
    sgx = tee == "sgx"
    return SgxReportBody.build(
        cpu_svn=state.pck_extension().cpusvn,
        attributes=coll.QE_ATTRIBUTES,
        mrenclave=settings.qe_mrenclave_for(tee),
        mrsigner=settings.qe_mrsigner_for(tee),
        isv_prod_id=coll.QE_ISV_PROD_ID if sgx else coll.TD_QE_ISV_PROD_ID,
        isv_svn=coll.QE_ISV_SVN if sgx else coll.TD_QE_ISV_SVN,
        report_data=binding,
    )


def _sign_quote(
    state: PlatformState, body: SgxReportBody | TdReportBody, *, version: int, tee: str
) -> bytes:
    """Steps 2-5: QE report, signatures, certification data; serialize."""
    attestation_key = state.keys["qe-attestation"]
    attestation_pub = pki.raw_public_key(attestation_key)
    qe_report = _qe_report(state, attestation_pub, tee)
    chain = "".join(pki.cert_pem(state.certs[r]) for r in ("pck", "pck-processor-ca", "root-ca"))
    sgx = tee == "sgx"
    try:
        return build_quote(
            version=version,
            tee_type=TEE_SGX if sgx else TEE_TDX,
            body=body,
            attestation_key=attestation_pub,
            sign=lambda region: pki.sign_raw(attestation_key, region),
            qe_report=qe_report,
            qe_report_signature=pki.sign_raw(state.keys["pck"], qe_report.to_bytes()),
            qe_auth_data=QE_AUTH_DATA,
            cert_type=_CERT_TYPE_PEM_CHAIN,
            cert_data=chain.encode("ascii") + b"\0",
            qe_svn=coll.QE_ISV_SVN if sgx else 0,  # TD quotes leave these 0, as Intel's do
            pce_svn=state.pck_extension().pcesvn if sgx else 0,
            user_data=state.settings.qe_id + bytes(4),
        )
    except QuoteFormatError as exc:
        raise PlatformError(f"cannot build the simulated quote ({exc})") from exc


def sgx_quote(
    state: PlatformState,
    report_data: bytes,
    *,
    mrenclave: bytes,
    mrsigner: bytes,
    isv_prod_id: int,
    isv_svn: int,
    debug: bool,
    attributes: bytes | None,
    version: int,
) -> bytes:
    """Build and sign an SGX DCAP quote (v3 or v4) for the given enclave identity.

    Raises:
        PlatformError: a field of the wrong size or range, DEBUG flag contradicting
            ``attributes``, or an unsupported ``version``.
    """
    if version not in (3, 4):
        raise PlatformError(f"quote version must be 3 or 4 for SGX, not {version!r}")
    ext = state.pck_extension()
    body = SgxReportBody.build(
        cpu_svn=ext.cpusvn,
        attributes=_attributes(debug, attributes),
        mrenclave=_check_bytes("mrenclave", mrenclave, 32),
        mrsigner=_check_bytes("mrsigner", mrsigner, 32),
        isv_prod_id=_check_u16("isv_prod_id", isv_prod_id),
        isv_svn=_check_u16("isv_svn", isv_svn),
        report_data=_check_bytes("report_data", report_data, 64),
    )
    return _sign_quote(state, body, version=version, tee="sgx")


def _td_attributes(debug: bool, td_attributes: bytes | None) -> bytes:
    """TDATTRIBUTES: SEPT_VE_DISABLE (+DEBUG) by default; a given value must agree on DEBUG."""
    if td_attributes is None:
        value = _TD_SEPT_VE_DISABLE | (_TD_DEBUG if debug else 0)
        return value.to_bytes(8, "little")
    given = _check_bytes("td_attributes", td_attributes, 8)
    if bool(given[0] & _TD_DEBUG) != debug:
        raise PlatformError(
            f"td_attributes DEBUG bit ({bool(given[0] & _TD_DEBUG)}) contradicts debug={debug}; "
            "pass matching values"
        )
    return given


def td_quote(
    state: PlatformState,
    report_data: bytes,
    *,
    mr_td: bytes,
    rtmrs: tuple[bytes, bytes, bytes, bytes] | None,
    mr_config_id: bytes | None,
    mr_owner: bytes | None,
    mr_owner_config: bytes | None,
    debug: bool,
    td_attributes: bytes | None,
) -> bytes:
    """Build and sign a TDX DCAP quote (v4, TD report 1.0) for the given TD measurements.

    Raises:
        PlatformError: a field of the wrong size, or DEBUG contradicting ``td_attributes``.
    """
    regs = (bytes(48),) * 4 if rtmrs is None else rtmrs
    if not isinstance(regs, tuple) or len(regs) != 4:
        raise PlatformError("rtmrs must be a tuple of four 48-byte values")
    try:
        body = TdReportBody.build(
            tee_tcb_svn=coll.TEE_TCB_SVN,
            mr_seam=_SIM_MRSEAM,
            td_attributes=_td_attributes(debug, td_attributes),
            xfam=_TD_XFAM,
            mr_td=_check_bytes("mr_td", mr_td, 48),
            mr_config_id=_opt48("mr_config_id", mr_config_id),
            mr_owner=_opt48("mr_owner", mr_owner),
            mr_owner_config=_opt48("mr_owner_config", mr_owner_config),
            rtmrs=tuple(_check_bytes(f"rtmrs[{i}]", r, 48) for i, r in enumerate(regs)),
            report_data=_check_bytes("report_data", report_data, 64),
        )
    except QuoteFormatError as exc:
        raise PlatformError(f"cannot build the simulated TD report ({exc})") from exc
    return _sign_quote(state, body, version=4, tee="tdx")
