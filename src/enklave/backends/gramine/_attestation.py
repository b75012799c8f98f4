"""Gramine's ``/dev/attestation`` pseudo-filesystem, seen from inside the enclave.

Under ``gramine-sgx`` with ``sgx.remote_attestation = "dcap"`` the LibOS exposes:

* ``attestation_type``: ``"dcap"`` (``"none"`` when remote attestation is off);
* ``user_report_data`` (write 64 bytes) then ``quote`` (read): a DCAP quote whose
  report data is what was written;
* ``my_target_info`` (read), ``target_info`` (write) and ``report`` (read): a local
  SGX REPORT (EREPORT), no quoting enclave involved;
* ``keys/_sgx_mrenclave`` and ``keys/_sgx_mrsigner``: 16-byte SGX seal keys (EGETKEY
  with the MRENCLAVE and MRSIGNER policies).

The write/read pairs share one ``user_report_data`` slot per process, so every pair is
serialized with a lock, and the report data in each result is compared with what was
written: a mismatch (another thread raced, or the host or device returned something
else) raises instead of returning evidence for the wrong data.

Test hook (private): ``ENKLAVE_GRAMINE_ATTESTATION_ROOT`` names a directory standing in
for ``/dev/attestation``. It is read once at enclave start and refused whenever the
real ``/dev/attestation`` exists, so inside Gramine (where it always exists, and where
the manifest passes no such variable anyway) the root is always ``/dev/attestation``.
"""

from __future__ import annotations

import hmac
import os
import threading
from pathlib import Path
from typing import Final

from ...errors import AttestationError, PlatformError, QuoteFormatError
from ...models.identity import Identity
from ...models.quote import Quote, SgxReportBody, parse_quote

__all__ = [
    "DEV_ATTESTATION",
    "ROOT_ENV",
    "GramineAttestation",
    "active",
    "install",
    "resolve_root",
]

DEV_ATTESTATION: Final = Path("/dev/attestation")
ROOT_ENV: Final = "ENKLAVE_GRAMINE_ATTESTATION_ROOT"
REPORT_DATA_SIZE: Final = 64
TARGET_INFO_SIZE: Final = 512
REPORT_SIZE: Final = 432  # REPORTBODY (384) || KEYID (32) || MAC (16)
SEAL_KEY_SIZE: Final = 16
_MAX_QUOTE: Final = 64 * 1024
_SEAL_KEYS: Final = {"unique": "_sgx_mrenclave", "product": "_sgx_mrsigner"}


class GramineAttestation:
    """A client of Gramine's ``/dev/attestation`` (or a directory standing in for it).

    Thread-safe: each ``user_report_data`` write and the read that follows it run under
    one lock.

    Raises (from the constructor):
        PlatformError: ``attestation_type`` is missing or not ``"dcap"``.
    """

    def __init__(self, root: Path = DEV_ATTESTATION) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        kind = self._read("attestation_type", 16).decode("ascii", "replace").strip()
        if kind != "dcap":
            raise PlatformError(
                f"{self.root}/attestation_type says {kind!r}, not 'dcap'; set "
                'sgx.remote_attestation = "dcap" in the manifest (enklave gramine manifest '
                "does) and run under gramine-sgx with aesmd and a DCAP quote provider"
            )

    def _read(self, name: str, limit: int) -> bytes:
        try:
            with open(self.root / name, "rb") as f:
                data = f.read(limit + 1)
        except OSError as exc:
            raise PlatformError(
                f"cannot read {self.root / name}: {exc.strerror}; is this enclave running "
                "under gramine-sgx with sgx.remote_attestation = \"dcap\"?"
            ) from exc
        if len(data) > limit:
            raise PlatformError(f"{self.root / name} is larger than {limit} bytes")
        return data

    def _write(self, name: str, data: bytes) -> None:
        try:
            with open(self.root / name, "wb") as f:
                f.write(data)
        except OSError as exc:
            raise PlatformError(f"cannot write {self.root / name}: {exc.strerror}") from exc

    def quote(self, report_data: bytes) -> Quote:
        """A DCAP quote over ``report_data`` (exactly 64 bytes), parsed.

        Raises:
            PlatformError: wrong report-data size, or the pseudo-files fail.
            QuoteFormatError: the device returned bytes that are not a DCAP quote.
            AttestationError: the quote's report data differs from what was written
                (another writer raced, or the device lied).
        """
        _check_report_data(report_data)
        with self._lock:
            self._write("user_report_data", report_data)
            raw = self._read("quote", _MAX_QUOTE)
        quote = parse_quote(raw)
        if not isinstance(quote.body, SgxReportBody):
            raise QuoteFormatError("/dev/attestation/quote returned a TDX quote, not an SGX one")
        _check_bound(quote.report_data, report_data, "quote")
        return quote

    def my_target_info(self) -> bytes:
        """This enclave's TARGETINFO (512 bytes), for local reports addressed to it."""
        data = self._read("my_target_info", TARGET_INFO_SIZE)
        if len(data) != TARGET_INFO_SIZE:
            raise PlatformError(f"my_target_info is {len(data)} bytes, expected 512")
        return data

    def report(self, report_data: bytes, target_info: bytes | None = None) -> SgxReportBody:
        """A local SGX REPORT over ``report_data`` for ``target_info`` (default: ourselves).

        Returns the parsed REPORTBODY (the KEYID and MAC that follow it are checked only
        by the target enclave's EGETKEY, so they are not returned).

        Raises:
            PlatformError, QuoteFormatError, AttestationError: as :meth:`quote`.
        """
        _check_report_data(report_data)
        target = self.my_target_info() if target_info is None else target_info
        with self._lock:
            self._write("target_info", target)
            self._write("user_report_data", report_data)
            raw = self._read("report", REPORT_SIZE)
        if len(raw) != REPORT_SIZE:
            raise QuoteFormatError(f"/dev/attestation/report is {len(raw)} bytes, expected 432")
        body = SgxReportBody.from_bytes(raw[:384])
        _check_bound(body.report_data, report_data, "report")
        return body

    def identity(self) -> Identity:
        """This enclave's identity, from its own hardware REPORT (not from the host)."""
        body = self.report(bytes(REPORT_DATA_SIZE))
        return Identity(
            mrenclave=body.mrenclave,
            mrsigner=body.mrsigner,
            product_id=body.isv_prod_id,
            security_version=body.isv_svn,
            debug=body.debug,
            simulated=False,
        )

    def seal_key(self, policy: str) -> bytes:
        """The 16-byte SGX seal key for ``policy``: ``"unique"`` reads ``_sgx_mrenclave``,
        ``"product"`` reads ``_sgx_mrsigner``.

        Raises:
            PlatformError: unknown policy, or the key file is missing or not 16 bytes.
        """
        name = _SEAL_KEYS.get(policy)
        if name is None:
            raise PlatformError(f"unknown seal policy {policy!r}; use 'unique' or 'product'")
        key = self._read(f"keys/{name}", SEAL_KEY_SIZE)
        if len(key) != SEAL_KEY_SIZE:
            raise PlatformError(
                f"{self.root}/keys/{name} is {len(key)} bytes, expected {SEAL_KEY_SIZE}; "
                "upgrade Gramine (seal keys are exposed since v1.4)"
            )
        return key


def _check_report_data(report_data: bytes) -> None:
    if type(report_data) is not bytes or len(report_data) != REPORT_DATA_SIZE:
        raise PlatformError("report data must be exactly 64 bytes")


def _check_bound(got: bytes, wanted: bytes, what: str) -> None:
    if not hmac.compare_digest(got, wanted):
        raise AttestationError(
            f"the {what} from /dev/attestation carries other report data than was written "
            "(another writer raced, or the device is not Gramine's); evidence refused",
            code="report_data_mismatch",
        )


def resolve_root(environ: dict[str, str] | None = None) -> Path:
    """The attestation root: ``/dev/attestation``, or the private test stand-in.

    Raises:
        PlatformError: the test hook is set while the real ``/dev/attestation`` exists.
    """
    env = os.environ if environ is None else environ
    override = env.get(ROOT_ENV, "")
    if not override:
        return DEV_ATTESTATION
    if DEV_ATTESTATION.exists():
        raise PlatformError(
            f"{ROOT_ENV} is a test hook and is refused where /dev/attestation exists; "
            "unset it"
        )
    return Path(override)


_active: GramineAttestation | None = None


def install(attestation: GramineAttestation) -> None:
    """Make ``attestation`` the process's attestation device (set once at enclave start)."""
    global _active
    _active = attestation


def active() -> GramineAttestation:
    """The attestation device installed at enclave start.

    Raises:
        PlatformError: this enclave was not started on the Gramine backend.
    """
    if _active is None:
        raise PlatformError(
            "no Gramine attestation device in this process; hardware evidence needs the "
            "gramine backend (Enclave.open(bundle, backend='gramine'))"
        )
    return _active
