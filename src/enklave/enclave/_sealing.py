"""Sealing with SGX ``EGETKEY`` semantics: encrypt data so only a chosen identity reads it.

A sealed blob can be opened only on the same platform (same platform secret) and only
by an enclave whose identity matches the blob's policy:

* ``"unique"`` (SGX ``MRENCLAVE`` policy): the key is bound to the enclave measurement
  and security version. Only an enclave with the same ``MRENCLAVE`` and the same SVN can
  unseal.
* ``"product"`` (SGX ``MRSIGNER`` policy): the key is bound to the signer, the product id
  and the sealer's security version (SVN). Any enclave from the same signer and product
  whose SVN is equal to or *higher* than the sealer's can unseal (it derives the key for
  the blob's lower SVN, as ``EGETKEY`` allows). An enclave with a *lower* SVN is refused,
  so a downgraded enclave cannot read data sealed by a patched one.

Blob format (all integers big-endian)::

    offset  size  field
    0       4     magic b"EKSL"
    4       1     format version (1)
    5       1     policy (1 = unique, 2 = product)
    6       2     svn: the sealer's security version (u16)
    8       16    key_id: random per seal, the HKDF salt
    24      12    nonce: random per seal, the AES-GCM nonce
    36      n+16  AES-256-GCM ciphertext of the data, followed by the 16-byte tag

Key derivation::

    key = HKDF-SHA256(ikm=platform_secret, salt=key_id, length=32,
                      info=b"enklave-seal-v1" || policy (u8) || identity || svn (u16))

where ``identity`` is ``MRENCLAVE`` for ``"unique"`` and ``MRSIGNER || product_id (u16)``
for ``"product"``. The GCM associated data is the whole 36-byte header followed by the
caller's ``aad``, so any edit of the header (for example lowering the recorded SVN)
makes the tag check fail.
"""

from __future__ import annotations

import hmac
import os
import struct
from dataclasses import dataclass
from typing import Final, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from enklave.errors import PlatformError, SealError

__all__ = [
    "MAX_AAD_SIZE",
    "MAX_SEAL_DATA_SIZE",
    "SealIdentity",
    "SealPolicy",
    "inspect_blob",
    "seal",
    "unseal",
]

SealPolicy = Literal["unique", "product"]

MAX_SEAL_DATA_SIZE: Final = 64 * 1024 * 1024
"""Largest plaintext :func:`seal` accepts (64 MiB)."""

MAX_AAD_SIZE: Final = 1024 * 1024
"""Largest caller ``aad`` :func:`seal` and :func:`unseal` accept (1 MiB)."""

MIN_PLATFORM_SECRET_SIZE: Final = 16

_MAGIC: Final = b"EKSL"
_VERSION: Final = 1
_HEADER: Final = struct.Struct(">4sBBH16s12s")
_HEADER_SIZE: Final = _HEADER.size
_TAG_SIZE: Final = 16
_KEY_ID_SIZE: Final = 16
_NONCE_SIZE: Final = 12
_MEASUREMENT_SIZE: Final = 32
_U16_MAX: Final = 0xFFFF
_MAX_BLOB_SIZE: Final = _HEADER_SIZE + MAX_SEAL_DATA_SIZE + _TAG_SIZE
_KDF_LABEL: Final = b"enklave-seal-v1"

_POLICY_CODES: Final[dict[str, int]] = {"unique": 1, "product": 2}
_POLICY_NAMES: Final[dict[int, SealPolicy]] = {1: "unique", 2: "product"}


@dataclass(frozen=True)
class SealIdentity:
    """The identity of the enclave that seals or unseals (the SGX key-request inputs).

    Attributes:
        mrenclave: the 32-byte enclave measurement.
        mrsigner: the 32-byte hash of the signer's public key.
        product_id: the ISV product id, an unsigned 16-bit integer.
        security_version: the ISV security version (SVN), an unsigned 16-bit integer.

    Raises:
        SealError: if a measurement is not exactly 32 bytes or an integer is not in
            ``0..65535``.
    """

    mrenclave: bytes
    mrsigner: bytes
    product_id: int
    security_version: int

    def __post_init__(self) -> None:
        """Check measurement lengths and u16 ranges; raise SealError on any mismatch."""
        for name in ("mrenclave", "mrsigner"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != _MEASUREMENT_SIZE:
                raise SealError(
                    f"SealIdentity.{name} must be exactly {_MEASUREMENT_SIZE} bytes; "
                    "pass the SHA-256 measurement from the enclave's SIGSTRUCT"
                )
        for name in ("product_id", "security_version"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise SealError(f"SealIdentity.{name} must be an int in 0..{_U16_MAX}")
            if not 0 <= value <= _U16_MAX:
                raise SealError(
                    f"SealIdentity.{name} is {value}, outside 0..{_U16_MAX}; "
                    "use the value from the enclave's SIGSTRUCT"
                )


def seal(
    platform_secret: bytes,
    identity: SealIdentity,
    data: bytes,
    *,
    policy: SealPolicy,
    aad: bytes = b"",
) -> bytes:
    """Encrypt ``data`` so only an enclave matching ``policy`` on this platform can read it.

    A fresh random ``key_id`` and nonce are drawn for every call, so sealing the same
    data twice gives unrelated blobs.

    Args:
        platform_secret: the platform's root sealing secret (at least 16 bytes).
        identity: the sealing enclave's identity; its SVN is recorded in the blob.
        data: the plaintext, at most :data:`MAX_SEAL_DATA_SIZE` bytes.
        policy: ``"unique"`` (same MRENCLAVE and SVN only) or ``"product"`` (same
            MRSIGNER and product id, equal or higher SVN).
        aad: extra authenticated data that :func:`unseal` must be given again.

    Returns:
        The sealed blob (header, ciphertext and tag; see the module docstring).

    Raises:
        SealError: if ``policy`` is unknown, ``identity`` is not a SealIdentity, or
            ``data``/``aad`` is not bytes or is too large.
        PlatformError: if ``platform_secret`` is not bytes or is too short.
    """
    secret = _check_platform_secret(platform_secret)
    _check_identity(identity)
    code = _POLICY_CODES.get(policy) if isinstance(policy, str) else None
    if code is None:
        raise SealError(f"unknown seal policy {policy!r}; use 'unique' or 'product'")
    plaintext = _as_bytes(data, "data", MAX_SEAL_DATA_SIZE)
    extra = _as_bytes(aad, "aad", MAX_AAD_SIZE)
    svn = identity.security_version
    key_id = os.urandom(_KEY_ID_SIZE)
    nonce = os.urandom(_NONCE_SIZE)
    header = _HEADER.pack(_MAGIC, _VERSION, code, svn, key_id, nonce)
    key = _derive_key(secret, code, identity, svn, key_id)
    return header + AESGCM(key).encrypt(nonce, plaintext, header + extra)


def unseal(
    platform_secret: bytes,
    identity: SealIdentity,
    blob: bytes,
    *,
    aad: bytes = b"",
) -> bytes:
    """Decrypt a blob made by :func:`seal`, enforcing its policy against ``identity``.

    Checked, in order: the blob is bytes of a plausible size, the magic, format version
    and policy are known, the recorded SVN is allowed for ``identity`` (``"unique"``:
    equal; ``"product"``: not higher than the caller's SVN), then the AES-GCM tag over
    the ciphertext, the whole header and ``aad``.

    Args:
        platform_secret: the platform's root sealing secret used at seal time.
        identity: the unsealing enclave's identity.
        blob: the sealed blob.
        aad: the same extra authenticated data given to :func:`seal`.

    Returns:
        The original plaintext.

    Raises:
        SealError: if the blob is truncated, too large, has a bad magic, unknown
            version or policy, was sealed by a higher SVN (rollback), or fails
            authentication (tampered, other enclave/signer/product/platform, or
            different ``aad``).
        PlatformError: if ``platform_secret`` is not bytes or is too short.
    """
    secret = _check_platform_secret(platform_secret)
    _check_identity(identity)
    raw = _as_bytes(blob, "blob", _MAX_BLOB_SIZE)
    extra = _as_bytes(aad, "aad", MAX_AAD_SIZE)
    code, svn, key_id, nonce = _parse_header(raw)
    _check_svn(code, svn, identity.security_version)
    key = _derive_key(secret, code, identity, svn, key_id)
    header = raw[:_HEADER_SIZE]
    try:
        return AESGCM(key).decrypt(nonce, raw[_HEADER_SIZE:], header + extra)
    except InvalidTag as exc:
        raise SealError(
            "cannot unseal: the sealed blob is corrupted, was sealed by another "
            "enclave/signer/product, or the aad differs; re-create the data or unseal "
            "it with the enclave that sealed it"
        ) from exc


def inspect_blob(blob: bytes) -> dict[str, object]:
    """Read a sealed blob's header fields WITHOUT verifying anything.

    The values come straight from the (unauthenticated) header and may have been
    edited by anyone; use them for display and diagnostics only. Only the structure
    is checked: size, magic, version and policy code.

    Args:
        blob: a blob produced by :func:`seal`.

    Returns:
        A dict with ``verified`` (always ``False``), ``version``, ``policy``, ``svn``,
        ``key_id`` (hex), ``header_size``, ``ciphertext_size`` (excluding the tag),
        ``tag_size`` and ``total_size``.

    Raises:
        SealError: if the blob is not bytes, is truncated or too large, or its magic,
            version or policy code is not recognised.
    """
    raw = _as_bytes(blob, "blob", _MAX_BLOB_SIZE)
    code, svn, key_id, _nonce = _parse_header(raw)
    return {
        "verified": False,
        "version": _VERSION,
        "policy": _POLICY_NAMES[code],
        "svn": svn,
        "key_id": key_id.hex(),
        "header_size": _HEADER_SIZE,
        "ciphertext_size": len(raw) - _HEADER_SIZE - _TAG_SIZE,
        "tag_size": _TAG_SIZE,
        "total_size": len(raw),
    }


def _parse_header(raw: bytes) -> tuple[int, int, bytes, bytes]:
    """Split the header into (policy code, svn, key_id, nonce); SealError if malformed."""
    if len(raw) < _HEADER_SIZE + _TAG_SIZE:
        raise SealError(
            f"sealed blob is truncated ({len(raw)} bytes, need at least "
            f"{_HEADER_SIZE + _TAG_SIZE}); pass the complete blob returned by seal()"
        )
    magic, version, code, svn, key_id, nonce = _HEADER.unpack_from(raw)
    if not hmac.compare_digest(magic, _MAGIC):
        raise SealError("not a sealed blob (bad magic); pass a blob returned by seal()")
    if version != _VERSION:
        raise SealError(
            f"sealed blob has format version {version}, this enklave reads version "
            f"{_VERSION}; unseal it with the enklave release that sealed it"
        )
    if code not in _POLICY_NAMES:
        raise SealError(
            f"sealed blob has unknown policy code {code}; the blob is corrupted or "
            "was made by a newer enklave"
        )
    return code, svn, key_id, nonce


def _check_svn(code: int, sealed_svn: int, own_svn: int) -> None:
    """Apply the policy's SVN rule; raise SealError when this enclave may not unseal."""
    if sealed_svn > own_svn:
        raise SealError(
            f"sealed by SVN {sealed_svn}, this enclave has SVN {own_svn}: rollback "
            "refused; run an enclave with an equal or higher security version"
        )
    if _POLICY_NAMES[code] == "unique" and sealed_svn != own_svn:
        raise SealError(
            f"blob was sealed with policy 'unique' by SVN {sealed_svn}, this enclave "
            f"has SVN {own_svn}; only the identical enclave can unseal it (use policy "
            "'product' for data that must survive enclave upgrades)"
        )


def _derive_key(secret: bytes, code: int, identity: SealIdentity, svn: int, key_id: bytes) -> bytes:
    """Derive the 32-byte AES key for a policy code, identity, SVN and key id."""
    if _POLICY_NAMES[code] == "unique":
        bound = identity.mrenclave
    else:
        bound = identity.mrsigner + struct.pack(">H", identity.product_id)
    info = _KDF_LABEL + bytes([code]) + bound + struct.pack(">H", svn)
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=key_id, info=info)
    return kdf.derive(secret)


def _check_platform_secret(secret: object) -> bytes:
    """Return the secret as bytes; PlatformError if not bytes-like or too short."""
    if not isinstance(secret, bytes | bytearray | memoryview):
        raise PlatformError(
            "platform secret must be bytes; load it with "
            "enklave._simplatform.load_or_create_platform_secret()"
        )
    value = bytes(secret)
    if len(value) < MIN_PLATFORM_SECRET_SIZE:
        raise PlatformError(
            f"platform secret is too short (need at least {MIN_PLATFORM_SECRET_SIZE} "
            "bytes); the platform secret file may be corrupt"
        )
    return value


def _check_identity(identity: object) -> None:
    """Raise SealError unless ``identity`` is a SealIdentity."""
    if not isinstance(identity, SealIdentity):
        raise SealError(
            f"identity must be a SealIdentity, got {type(identity).__name__}; build one "
            "from the enclave's MRENCLAVE, MRSIGNER, product id and SVN"
        )


def _as_bytes(value: object, name: str, limit: int) -> bytes:
    """Return ``value`` as bytes; SealError if not bytes-like or longer than ``limit``."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise SealError(f"{name} must be bytes, got {type(value).__name__}")
    size = value.nbytes if isinstance(value, memoryview) else len(value)
    if size > limit:
        raise SealError(
            f"{name} is {size} bytes, over the {limit}-byte limit; split the data "
            "into smaller pieces and seal each one"
        )
    return bytes(value)
