"""Enclave signing keys: generate, store, load and fingerprint SGX RSA-3072 keys.

SGX only accepts RSA keys with a 3072-bit modulus and public exponent 3 for signing a
SIGSTRUCT, so every loader here checks both and refuses anything else. Private keys are
stored as unencrypted PEM PKCS#8 files readable only by their owner (mode ``0600``).
The enclave's signer identity, MRSIGNER, is the SHA-256 of the modulus written as 384
little-endian bytes (:func:`mrsigner_of`).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from enklave.errors import SigningError

__all__ = [
    "KEY_BITS",
    "MODULUS_BYTES",
    "PUBLIC_EXPONENT",
    "check_sgx_key",
    "generate_signing_key",
    "load_private_key",
    "load_public_key",
    "modulus_le",
    "mrsigner_of",
    "write_private_key",
    "write_public_key",
]

KEY_BITS = 3072
"""Modulus size SGX requires for SIGSTRUCT signing keys."""
MODULUS_BYTES = KEY_BITS // 8
"""Length of the modulus, signature, Q1 and Q2 fields in a SIGSTRUCT (384)."""
PUBLIC_EXPONENT = 3
"""Public exponent SGX requires for SIGSTRUCT signing keys."""

_HINT = "generate one with `enklave genkey KEY.pem`"
_MAX_KEY_FILE = 1 << 20  # no legitimate PEM key file comes anywhere near 1 MiB
_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


def generate_signing_key() -> rsa.RSAPrivateKey:
    """Generate a fresh SGX signing key: RSA-3072 with public exponent 3.

    Returns:
        The new private key.

    Raises:
        SigningError: the crypto backend refused to generate the key.
    """
    try:
        return rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_BITS)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningError(
            f"could not generate an RSA-{KEY_BITS} key with exponent {PUBLIC_EXPONENT}: "
            f"{exc}; check that the installed `cryptography`/OpenSSL supports it"
        ) from exc


def check_sgx_key(public_key: rsa.RSAPublicKey, *, source: str = "key") -> None:
    """Check that an RSA public key is usable for SGX signing.

    Args:
        public_key: the key to check.
        source: what to call the key in error messages (e.g. its file path).

    Raises:
        SigningError: the modulus is not 3072 bits or the public exponent is not 3.
    """
    numbers = public_key.public_numbers()
    if numbers.n.bit_length() != KEY_BITS:
        raise SigningError(
            f"{source} is an RSA-{numbers.n.bit_length()} key but SGX requires "
            f"RSA-{KEY_BITS}; {_HINT}"
        )
    if numbers.e != PUBLIC_EXPONENT:
        raise SigningError(
            f"{source} has public exponent {numbers.e} but SGX requires {PUBLIC_EXPONENT}; {_HINT}"
        )


def write_private_key(key: rsa.RSAPrivateKey, path: Path, *, overwrite: bool = False) -> None:
    """Write a private key as unencrypted PEM PKCS#8, readable only by its owner (0600).

    Without ``overwrite`` the file is created exclusively (``O_CREAT | O_EXCL``); with
    it the key goes to a temporary file in the same directory that then atomically
    replaces ``path``, so a reader never sees a half-written key.

    Args:
        key: the signing key; must be RSA-3072 with exponent 3.
        path: where to write it.
        overwrite: replace ``path`` if it already exists.

    Raises:
        SigningError: the key is not a valid SGX key, ``path`` exists and ``overwrite``
            is false, or the file cannot be written.
    """
    check_sgx_key(key.public_key(), source="the key to write")
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_file(path, data, mode=0o600, overwrite=overwrite)


def write_public_key(
    key: rsa.RSAPrivateKey | rsa.RSAPublicKey, path: Path, *, overwrite: bool = False
) -> None:
    """Write the public half of a key as PEM SubjectPublicKeyInfo (mode 0644).

    Args:
        key: a private or public key; must be RSA-3072 with exponent 3.
        path: where to write it.
        overwrite: replace ``path`` if it already exists (atomically).

    Raises:
        SigningError: the key is not a valid SGX key, ``path`` exists and ``overwrite``
            is false, or the file cannot be written.
    """
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    check_sgx_key(public, source="the key to write")
    data = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_file(path, data, mode=0o644, overwrite=overwrite)


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    """Load an SGX signing key from an unencrypted PEM file.

    Args:
        path: the PEM file (PKCS#8 or traditional ``RSA PRIVATE KEY``).

    Returns:
        The private key.

    Raises:
        SigningError: the file is unreadable, not PEM, not a private key, encrypted,
            not RSA, not 3072 bits, or its public exponent is not 3.
    """
    data, label = _read_pem(path)
    if not label.endswith(b"PRIVATE KEY"):
        raise SigningError(
            f"{path} holds a PEM {label.decode()!r}, not a private key; "
            f"pass the signing key file or {_HINT}"
        )
    key = _parse_private(path, data)
    check_sgx_key(key.public_key(), source=str(path))
    return key


def load_public_key(path: Path) -> rsa.RSAPublicKey:
    """Load an SGX public key from a PEM private key or a PEM public key file.

    Args:
        path: a PEM file holding a private key (the public half is taken) or a
            ``PUBLIC KEY`` / ``RSA PUBLIC KEY``.

    Returns:
        The public key.

    Raises:
        SigningError: the file is unreadable, not PEM, an encrypted private key, not
            RSA, not 3072 bits, or its public exponent is not 3.
    """
    data, label = _read_pem(path)
    if label.endswith(b"PRIVATE KEY"):
        public = _parse_private(path, data).public_key()
    else:
        try:
            loaded = serialization.load_pem_public_key(data)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise SigningError(
                f"{path} is not a readable PEM public or private key ({exc}); {_HINT}"
            ) from exc
        if not isinstance(loaded, rsa.RSAPublicKey):
            raise SigningError(f"{path} holds a non-RSA public key; SGX needs RSA-3072; {_HINT}")
        public = loaded
    check_sgx_key(public, source=str(path))
    return public


def modulus_le(public_key: rsa.RSAPublicKey) -> bytes:
    """Return the key's modulus as 384 little-endian bytes, as SIGSTRUCT stores it.

    Args:
        public_key: an RSA-3072 public key.

    Returns:
        The 384-byte little-endian modulus.

    Raises:
        SigningError: the modulus does not fit in 384 bytes (key is not RSA-3072).
    """
    n = public_key.public_numbers().n
    if n.bit_length() > KEY_BITS:
        raise SigningError(
            f"modulus is {n.bit_length()} bits, more than the {KEY_BITS} SGX allows; {_HINT}"
        )
    return n.to_bytes(MODULUS_BYTES, "little")


def mrsigner_of(public_key: rsa.RSAPublicKey) -> bytes:
    """Return MRSIGNER for a signing key: SHA-256 of its 384-byte little-endian modulus.

    Args:
        public_key: an RSA-3072 public key.

    Returns:
        The 32-byte MRSIGNER value.

    Raises:
        SigningError: the modulus does not fit in 384 bytes.
    """
    return hashlib.sha256(modulus_le(public_key)).digest()


def _read_pem(path: Path) -> tuple[bytes, bytes]:
    """Read a small PEM file and return its bytes and the label of its first block."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_KEY_FILE + 1)
    except OSError as exc:
        raise SigningError(
            f"cannot read key file {path}: {exc.strerror or exc}; check the path and "
            f"permissions, or {_HINT}"
        ) from exc
    if len(data) > _MAX_KEY_FILE:
        raise SigningError(f"{path} is larger than 1 MiB, so it is not a PEM key; {_HINT}")
    match = _PEM_LABEL.search(data)
    if match is None:
        raise SigningError(f"{path} is not a PEM file (no '-----BEGIN' line); {_HINT}")
    return data, match.group(1)


def _parse_private(path: Path, data: bytes) -> rsa.RSAPrivateKey:
    """Parse PEM private key bytes, rejecting encrypted and non-RSA keys."""
    if b"ENCRYPTED" in data:
        raise SigningError(
            f"{path} is an encrypted private key; enklave needs an unencrypted one "
            f"(decrypt it with `openssl pkey -in {path} -out PLAIN.pem`) or {_HINT}"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # raised by cryptography for password-protected keys
        raise SigningError(f"{path} is an encrypted private key; {_HINT}") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningError(f"{path} is not a readable PEM private key ({exc}); {_HINT}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SigningError(f"{path} holds a non-RSA private key; SGX needs RSA-3072; {_HINT}")
    return key


def _write_file(path: Path, data: bytes, *, mode: int, overwrite: bool) -> None:
    """Write ``data`` to ``path`` with ``mode``: exclusively, or atomically if overwriting."""
    if overwrite:
        _replace_file(path, data, mode=mode)
        return
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError as exc:
        raise SigningError(
            f"{path} already exists; pass --force to replace it or pick another path"
        ) from exc
    except OSError as exc:
        raise SigningError(
            f"cannot create {path}: {exc.strerror or exc}; check the directory exists "
            "and is writable"
        ) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)  # exact mode regardless of umask
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        _unlink_quietly(path)
        raise SigningError(
            f"cannot write {path}: {exc.strerror or exc}; check free space and permissions"
        ) from exc


def _replace_file(path: Path, data: bytes, *, mode: int) -> None:
    """Write ``data`` to a temp file beside ``path``, then ``os.replace`` it into place."""
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            _unlink_quietly(Path(tmp))
        raise SigningError(
            f"cannot write {path}: {exc.strerror or exc}; check the directory exists, "
            "is writable and has free space"
        ) from exc


def _unlink_quietly(path: Path) -> None:
    """Remove a partially written file, ignoring errors (the caller already failed)."""
    try:
        os.unlink(path)
    except OSError:
        pass
