"""The SGX SIGSTRUCT: the 1808-byte signed enclave certificate checked by EINIT.

Layout (Intel SDM Vol. 3D, "Enclave Signature Structure"; integers little-endian;
offset, field, size)::

    0    HEADER       16  06000000E1..   |  904  MISCMASK       4
    16   VENDOR        4  0 or 0x8086    |  908  reserved      20  zero
    20   DATE          4  BCD YYYYMMDD   |  928  ATTRIBUTES    16  u64 flags, u64 xfrm
    24   HEADER2      16  0101000060..   |  944  ATTRIBUTEMASK 16
    40   SWDEFINED     4                 |  960  ENCLAVEHASH   32  MRENCLAVE
    44   reserved     84  zero           |  992  reserved      32  zero
    128  MODULUS     384                 |  1024 ISVPRODID      2
    512  EXPONENT      4  3              |  1026 ISVSVN         2
    516  SIGNATURE   384                 |  1028 reserved      12  zero
    900  MISCSELECT    4                 |  1040 Q1           384  floor(s^2 / m)
                                         |  1424 Q2           384  floor((s^3 - Q1*s*m) / m)

The signature is RSA PKCS#1 v1.5 with SHA-256 over bytes ``[0:128] + [900:1028]``.
"""

from __future__ import annotations

import datetime
import hashlib
import struct
from dataclasses import dataclass, replace
from typing import ClassVar

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from enklave.errors import SigningError
from enklave.package._keys import KEY_BITS, MODULUS_BYTES, PUBLIC_EXPONENT, check_sgx_key

__all__ = [
    "ATTR_DEBUG",
    "ATTR_MODE64BIT",
    "VENDOR_INTEL",
    "Sigstruct",
    "date_from_epoch",
    "sign_sigstruct",
]

HEADER = bytes.fromhex("06000000E10000000000010000000000")
HEADER2 = bytes.fromhex("01010000600000006000000001000000")
VENDOR_INTEL = 0x8086
ATTR_DEBUG = 0x2
ATTR_MODE64BIT = 0x4
_XFRM = 0x3  # x87 + SSE state, the minimum every enclave must enable
_ATTR_MASK = struct.pack("<QQ", 0xFFFFFFFFFFFFFFFF, 0)

# One struct format for the whole layout; "<" means no padding. 384s fields are
# little-endian integers converted by hand.
_LAYOUT = struct.Struct("<16sII16sI84s384sI384sII20s16s16s32s32sHH12s384s384s")
_SIGNED = ((0, 128), (900, 1028))
_FLAG_NAMES = {
    0: "INIT", 1: "DEBUG", 2: "MODE64BIT", 4: "PROVISIONKEY", 5: "EINITTOKEN_KEY", 7: "KSS"
}  # fmt: skip
_U16, _U32 = 0xFFFF, 0xFFFFFFFF
_U32_FIELDS = ("vendor", "swdefined", "exponent", "miscselect", "miscmask")


@dataclass(frozen=True)
class Sigstruct:
    """A parsed SGX SIGSTRUCT.

    Construction checks only ranges and sizes (every field must fit its slot, the date
    must be a real calendar date, the vendor 0 or 0x8086) and raises
    :class:`SigningError` otherwise; it does not check the signature, see
    :meth:`verify`.

    Attributes:
        vendor: 0 or 0x8086 (Intel).
        date: signing date as the decimal number YYYYMMDD (e.g. 20261130).
        swdefined: 32 bits free for the signer's use.
        modulus: signer's RSA-3072 modulus.
        exponent: signer's public exponent (SGX requires 3).
        signature: RSA signature over :meth:`signed_portion`, as an integer.
        miscselect: MISCSELECT bits the enclave requires.
        miscmask: which MISCSELECT bits EINIT compares.
        attributes: 16 bytes, u64 flags then u64 xfrm.
        attribute_mask: 16 bytes, which attribute bits EINIT compares.
        enclave_hash: MRENCLAVE, 32 bytes.
        isv_prod_id: product id, u16.
        isv_svn: security version number, u16.
        q1: floor(signature^2 / modulus).
        q2: floor((signature^3 - q1 * signature * modulus) / modulus).
    """

    SIZE: ClassVar[int] = 1808

    vendor: int
    date: int
    swdefined: int
    modulus: int
    exponent: int
    signature: int
    miscselect: int
    miscmask: int
    attributes: bytes
    attribute_mask: bytes
    enclave_hash: bytes
    isv_prod_id: int
    isv_svn: int
    q1: int
    q2: int

    def __post_init__(self) -> None:
        """Check every field fits its slot; raise SigningError naming the first bad one."""
        for name in _U32_FIELDS:
            _check_uint(name, getattr(self, name), _U32)
        for name in ("isv_prod_id", "isv_svn"):
            _check_uint(name, getattr(self, name), _U16)
        for name in ("modulus", "signature", "q1", "q2"):
            _check_uint(name, getattr(self, name), (1 << KEY_BITS) - 1)
        for name, size in (("attributes", 16), ("attribute_mask", 16), ("enclave_hash", 32)):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != size:
                raise SigningError(f"SIGSTRUCT {name} must be {size} bytes; pass exactly {size}")
        if self.vendor not in (0, VENDOR_INTEL):
            raise SigningError(
                f"SIGSTRUCT vendor is {self.vendor:#x}; it must be 0 or 0x8086 (Intel)"
            )
        _check_date(self.date)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Sigstruct:
        """Parse a 1808-byte SIGSTRUCT without checking its signature.

        Args:
            data: the raw SIGSTRUCT (any bytes-like object).

        Returns:
            The parsed structure; ``to_bytes()`` gives ``data`` back exactly.

        Raises:
            SigningError: wrong length, wrong HEADER or HEADER2, nonzero reserved
                bytes, an invalid BCD date or a vendor other than 0/0x8086. No other
                exception escapes, whatever the input.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise SigningError(f"SIGSTRUCT must be bytes, not {type(data).__name__}")
        data = bytes(data)
        if len(data) != cls.SIZE:
            raise SigningError(
                f"SIGSTRUCT is {len(data)} bytes, expected {cls.SIZE}; the file is "
                "truncated or not a SIGSTRUCT"
            )
        (header, vendor, date, header2, swdefined, res1, modulus, exponent, signature,
         miscselect, miscmask, res2, attributes, attribute_mask, enclave_hash, res3,
         isv_prod_id, isv_svn, res4, q1, q2) = _LAYOUT.unpack(data)  # fmt: skip
        if header != HEADER:
            raise SigningError(f"SIGSTRUCT HEADER is {header.hex()}, expected {HEADER.hex()}")
        if header2 != HEADER2:
            raise SigningError(f"SIGSTRUCT HEADER2 is {header2.hex()}, expected {HEADER2.hex()}")
        for offset, reserved in ((44, res1), (908, res2), (992, res3), (1028, res4)):
            if any(reserved):
                raise SigningError(
                    f"SIGSTRUCT reserved bytes at offset {offset} are not zero; "
                    "the structure is corrupt or from an unsupported SGX version"
                )
        return cls(
            vendor=vendor,
            date=_bcd_to_date(date),
            swdefined=swdefined,
            modulus=int.from_bytes(modulus, "little"),
            exponent=exponent,
            signature=int.from_bytes(signature, "little"),
            miscselect=miscselect,
            miscmask=miscmask,
            attributes=attributes,
            attribute_mask=attribute_mask,
            enclave_hash=enclave_hash,
            isv_prod_id=isv_prod_id,
            isv_svn=isv_svn,
            q1=int.from_bytes(q1, "little"),
            q2=int.from_bytes(q2, "little"),
        )

    def to_bytes(self) -> bytes:
        """Serialize to the 1808-byte layout (exact inverse of :meth:`from_bytes`)."""
        return _LAYOUT.pack(
            HEADER, self.vendor, int(f"{self.date:08d}", 16), HEADER2, self.swdefined,
            bytes(84), _to_le(self.modulus), self.exponent, _to_le(self.signature),
            self.miscselect, self.miscmask, bytes(20), self.attributes,
            self.attribute_mask, self.enclave_hash, bytes(32), self.isv_prod_id,
            self.isv_svn, bytes(12), _to_le(self.q1), _to_le(self.q2),
        )  # fmt: skip

    def signed_portion(self) -> bytes:
        """Return the 256 signed bytes: ``to_bytes()[0:128] + to_bytes()[900:1028]``."""
        raw = self.to_bytes()
        return b"".join(raw[start:end] for start, end in _SIGNED)

    @property
    def mrsigner(self) -> bytes:
        """MRSIGNER: SHA-256 of the 384-byte little-endian modulus."""
        return hashlib.sha256(_to_le(self.modulus)).digest()

    @property
    def debug(self) -> bool:
        """Whether the DEBUG attribute (flags bit 1) is set."""
        return bool(self.attributes[0] & ATTR_DEBUG)

    def public_key(self) -> rsa.RSAPublicKey:
        """Return the signer's RSA public key from MODULUS and EXPONENT.

        Raises:
            SigningError: the modulus/exponent pair is not a valid RSA public key.
        """
        try:
            return rsa.RSAPublicNumbers(self.exponent, self.modulus).public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise SigningError(
                f"SIGSTRUCT MODULUS/EXPONENT do not form a valid RSA key ({exc}); "
                "re-sign the enclave with a valid key"
            ) from exc

    def verify(self) -> None:
        """Check the SIGSTRUCT the way EINIT does (minus launch policy).

        Checks, in order: EXPONENT is 3, MODULUS is 3072 bits, SIGNATURE is a valid
        RSA PKCS#1 v1.5 SHA-256 signature over :meth:`signed_portion` under that key,
        and Q1/Q2 match the signature and modulus.

        Raises:
            SigningError: naming the first field that fails.
        """
        if self.exponent != PUBLIC_EXPONENT:
            raise SigningError(
                f"SIGSTRUCT EXPONENT is {self.exponent}, SGX requires {PUBLIC_EXPONENT}; "
                "re-sign with a key from `enklave genkey`"
            )
        if self.modulus.bit_length() != KEY_BITS:
            raise SigningError(
                f"SIGSTRUCT MODULUS is {self.modulus.bit_length()} bits, SGX requires "
                f"{KEY_BITS}; re-sign with a key from `enklave genkey`"
            )
        try:
            self.public_key().verify(
                self.signature.to_bytes(MODULUS_BYTES, "big"),
                self.signed_portion(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, ValueError) as exc:
            raise SigningError(
                "SIGSTRUCT SIGNATURE does not verify over the signed fields under its "
                "MODULUS; the SIGSTRUCT was tampered with or signed by another key, re-sign it"
            ) from exc
        q1, q2 = _q1_q2(self.signature, self.modulus)
        if self.q1 != q1:
            raise SigningError("SIGSTRUCT Q1 does not match SIGNATURE and MODULUS; re-sign it")
        if self.q2 != q2:
            raise SigningError("SIGSTRUCT Q2 does not match SIGNATURE and MODULUS; re-sign it")

    def describe(self) -> list[tuple[str, str]]:
        """Return human-readable ``(name, value)`` rows for every field, in layout order.

        Hashes and the RSA values are hex (modulus, signature, q1 and q2 as stored,
        i.e. little-endian byte order), ids are decimal, the date is ``YYYY-MM-DD`` and
        attribute flags are decoded. A computed ``mrsigner`` row comes last.
        """
        flags, xfrm = struct.unpack("<QQ", self.attributes)
        mask_flags, mask_xfrm = struct.unpack("<QQ", self.attribute_mask)
        d = f"{self.date:08d}"
        vendor = "0x8086 (Intel)" if self.vendor == VENDOR_INTEL else "0x0 (non-Intel)"
        return [
            ("header", HEADER.hex()),
            ("vendor", vendor),
            ("date", f"{d[:4]}-{d[4:6]}-{d[6:]}"),
            ("header2", HEADER2.hex()),
            ("swdefined", f"{self.swdefined:#x}"),
            ("modulus", _to_le(self.modulus).hex()),
            ("exponent", str(self.exponent)),
            ("signature", _to_le(self.signature).hex()),
            ("miscselect", f"{self.miscselect:#x}"),
            ("miscmask", f"{self.miscmask:#x}"),
            ("attributes", f"{_describe_flags(flags)}, xfrm={xfrm:#x}"),
            ("attributemask", f"{mask_flags:#x}, xfrm={mask_xfrm:#x}"),
            ("enclavehash", self.enclave_hash.hex()),
            ("isvprodid", str(self.isv_prod_id)),
            ("isvsvn", str(self.isv_svn)),
            ("q1", _to_le(self.q1).hex()),
            ("q2", _to_le(self.q2).hex()),
            ("mrsigner", self.mrsigner.hex()),
        ]


def sign_sigstruct(
    key: rsa.RSAPrivateKey,
    *,
    enclave_hash: bytes,
    isv_prod_id: int,
    isv_svn: int,
    debug: bool,
    date: int,
    vendor: int = 0,
    swdefined: int = 0,
    miscselect: int = 0,
    miscmask: int = _U32,
) -> Sigstruct:
    """Build and sign a SIGSTRUCT. The output is deterministic (PKCS#1 v1.5).

    ATTRIBUTES is flags ``MODE64BIT | (DEBUG if debug)`` with xfrm ``0x3`` (x87+SSE).
    ATTRIBUTEMASK is all ones for the flags and zero for xfrm: EINIT must see exactly
    these flags (so a debug-signed enclave cannot launch as production or vice versa),
    while the loader may enable any extra XSAVE features the CPU offers.

    Args:
        key: RSA-3072 signing key with exponent 3.
        enclave_hash: MRENCLAVE, 32 bytes.
        isv_prod_id: product id, 0..65535.
        isv_svn: security version number, 0..65535.
        debug: set the DEBUG attribute.
        date: signing date as YYYYMMDD, e.g. ``date_from_epoch(SOURCE_DATE_EPOCH)``.
        vendor: 0 or 0x8086.
        swdefined: u32 free for the signer.
        miscselect: u32 MISCSELECT.
        miscmask: u32 MISCMASK.

    Returns:
        The signed SIGSTRUCT (verifies with :meth:`Sigstruct.verify`).

    Raises:
        SigningError: the key is not RSA-3072/e=3, an argument is out of range, or
            signing fails.
    """
    check_sgx_key(key.public_key(), source="the signing key")
    if not isinstance(enclave_hash, bytes) or len(enclave_hash) != 32:
        raise SigningError("enclave_hash must be the 32-byte MRENCLAVE; pass a SHA-256 digest")
    flags = ATTR_MODE64BIT | (ATTR_DEBUG if debug else 0)
    unsigned = Sigstruct(
        vendor=vendor,
        date=date,
        swdefined=swdefined,
        modulus=key.public_key().public_numbers().n,
        exponent=PUBLIC_EXPONENT,
        signature=0,
        miscselect=miscselect,
        miscmask=miscmask,
        attributes=struct.pack("<QQ", flags, _XFRM),
        attribute_mask=_ATTR_MASK,
        enclave_hash=enclave_hash,
        isv_prod_id=isv_prod_id,
        isv_svn=isv_svn,
        q1=0,
        q2=0,
    )
    try:
        raw = key.sign(unsigned.signed_portion(), padding.PKCS1v15(), hashes.SHA256())
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningError(f"RSA signing failed ({exc}); check the signing key") from exc
    signature = int.from_bytes(raw, "big")
    q1, q2 = _q1_q2(signature, unsigned.modulus)
    return replace(unsigned, signature=signature, q1=q1, q2=q2)


def date_from_epoch(seconds: int) -> int:
    """Return the UTC date of a Unix time as YYYYMMDD, for reproducible SIGSTRUCT dates.

    Args:
        seconds: seconds since the epoch, e.g. ``SOURCE_DATE_EPOCH`` or 0.

    Returns:
        The date as the decimal number YYYYMMDD (0 gives 19700101).

    Raises:
        SigningError: ``seconds`` is negative or beyond year 9999.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
        raise SigningError(
            f"epoch seconds must be a non-negative integer, got {seconds!r}; "
            "check SOURCE_DATE_EPOCH"
        )
    try:
        day = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).date()
    except (OverflowError, OSError, ValueError) as exc:
        raise SigningError(
            f"epoch seconds {seconds} is out of range ({exc}); check SOURCE_DATE_EPOCH"
        ) from exc
    return day.year * 10000 + day.month * 100 + day.day


def _check_uint(name: str, value: object, limit: int) -> None:
    """Raise SigningError unless ``value`` is an int in ``0..limit``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise SigningError(f"SIGSTRUCT {name} must be an integer in 0..2**{limit.bit_length()}-1")


def _check_date(date: object) -> None:
    """Raise SigningError unless ``date`` is a real calendar date written YYYYMMDD."""
    if isinstance(date, bool) or not isinstance(date, int) or not 0 <= date <= 99991231:
        raise SigningError(f"SIGSTRUCT date must be YYYYMMDD (e.g. 20261130), got {date!r}")
    try:
        datetime.date(date // 10000, date // 100 % 100, date % 100)
    except ValueError as exc:
        raise SigningError(
            f"SIGSTRUCT date {date:08d} is not a valid calendar date; pass YYYYMMDD"
        ) from exc


def _bcd_to_date(raw: int) -> int:
    """Decode the BCD DATE field (0x20261130) to the decimal YYYYMMDD (20261130)."""
    digits = f"{raw:08x}"
    if not digits.isdigit():
        raise SigningError(f"SIGSTRUCT DATE {raw:#010x} is not BCD YYYYMMDD; the file is corrupt")
    date = int(digits)
    _check_date(date)
    return date


def _describe_flags(flags: int) -> str:
    """Render attribute flags like ``0x6 (DEBUG, MODE64BIT)``."""
    names = [_FLAG_NAMES.get(bit, f"BIT{bit}") for bit in range(64) if flags >> bit & 1]
    return f"{flags:#x} ({', '.join(names) or 'none'})"


def _q1_q2(signature: int, modulus: int) -> tuple[int, int]:
    """Compute the EINIT helper values Q1 and Q2 for a signature and modulus."""
    if modulus == 0:
        return 0, 0
    q1 = signature * signature // modulus
    q2 = (signature**3 - q1 * signature * modulus) // modulus
    return q1, q2


def _to_le(value: int) -> bytes:
    """Encode an integer as 384 little-endian bytes."""
    return value.to_bytes(MODULUS_BYTES, "little")
