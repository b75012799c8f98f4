"""SGX SIGSTRUCT layout, signing, verification and enclave signing-key files."""

from __future__ import annotations

import dataclasses
import hashlib
import stat
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from enklave.errors import SigningError
from enklave.package._keys import (
    generate_signing_key,
    load_private_key,
    load_public_key,
    modulus_le,
    mrsigner_of,
    write_private_key,
    write_public_key,
)
from enklave.package._sigstruct import Sigstruct, date_from_epoch, sign_sigstruct

MRENCLAVE = bytes(range(32))
DATE = 20261130
HEADER = bytes.fromhex("06000000E10000000000010000000000")
HEADER2 = bytes.fromhex("01010000600000006000000001000000")
# DER DigestInfo prefix for SHA-256 (RFC 8017, section 9.2, note 1).
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def key_a() -> rsa.RSAPrivateKey:
    return generate_signing_key()


@pytest.fixture(scope="module")
def key_b() -> rsa.RSAPrivateKey:
    return generate_signing_key()


@pytest.fixture(scope="module")
def key_2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=3, key_size=2048)


@pytest.fixture(scope="module")
def key_e65537(key_a: rsa.RSAPrivateKey) -> rsa.RSAPrivateKey:
    """Same primes as key_a but e=65537: a valid RSA-3072 key SGX must still refuse."""
    nums = key_a.private_numbers()
    p, q, e = nums.p, nums.q, 65537
    d = pow(e, -1, (p - 1) * (q - 1))
    return rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(e, p * q),
    ).private_key()


@pytest.fixture(scope="module")
def sig(key_a: rsa.RSAPrivateKey) -> Sigstruct:
    return sign_sigstruct(
        key_a, enclave_hash=MRENCLAVE, isv_prod_id=7, isv_svn=3, debug=True, date=DATE
    )


@pytest.fixture(scope="module")
def raw(sig: Sigstruct) -> bytes:
    return sig.to_bytes()


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _patched(raw: bytes, offset: int, new: bytes) -> bytes:
    return raw[:offset] + new + raw[offset + len(new) :]


def _flipped(raw: bytes, offset: int, mask: int = 0x01) -> bytes:
    return _patched(raw, offset, bytes([raw[offset] ^ mask]))


def _load_and_verify(data: bytes) -> None:
    Sigstruct.from_bytes(data).verify()


def _assert_bad_signature(data: bytes) -> None:
    with pytest.raises(SigningError, match="SIGNATURE does not verify"):
        _load_and_verify(data)


# ------------------------------------------------------------------- layout, round trip


def test_size_is_1808(sig: Sigstruct, raw: bytes) -> None:
    assert Sigstruct.SIZE == 1808
    assert len(raw) == 1808
    assert len(sig.signed_portion()) == 256


def test_round_trip(sig: Sigstruct, raw: bytes) -> None:
    parsed = Sigstruct.from_bytes(raw)
    assert parsed == sig
    assert parsed.to_bytes() == raw
    assert Sigstruct.from_bytes(bytearray(raw)) == sig


def test_fields_at_sdm_offsets(sig: Sigstruct, raw: bytes, key_a: rsa.RSAPrivateKey) -> None:
    n = key_a.public_key().public_numbers().n
    assert raw[0:16] == HEADER
    assert raw[16:20] == bytes(4)
    assert raw[20:24] == bytes.fromhex("30112620")  # 0x20261130 little-endian
    assert raw[24:40] == HEADER2
    assert raw[40:128] == bytes(88)  # swdefined 0 + reserved
    assert raw[128:512] == n.to_bytes(384, "little")
    assert raw[512:516] == (3).to_bytes(4, "little")
    assert int.from_bytes(raw[516:900], "little") == sig.signature
    assert struct.unpack("<II", raw[900:908]) == (0, 0xFFFFFFFF)
    assert raw[908:928] == bytes(20)
    assert struct.unpack("<QQ", raw[928:944]) == (0x6, 0x3)
    assert struct.unpack("<QQ", raw[944:960]) == (0xFFFFFFFFFFFFFFFF, 0)
    assert raw[960:992] == MRENCLAVE
    assert raw[992:1024] == bytes(32)
    assert struct.unpack("<HH", raw[1024:1028]) == (7, 3)
    assert raw[1028:1040] == bytes(12)
    assert sig.signed_portion() == raw[0:128] + raw[900:1028]


def test_signature_verifies(sig: Sigstruct) -> None:
    sig.verify()


def test_signing_is_deterministic(key_a: rsa.RSAPrivateKey, raw: bytes) -> None:
    again = sign_sigstruct(
        key_a, enclave_hash=MRENCLAVE, isv_prod_id=7, isv_svn=3, debug=True, date=DATE
    )
    assert again.to_bytes() == raw


def test_debug_flag_sets_attributes(key_a: rsa.RSAPrivateKey, sig: Sigstruct) -> None:
    prod = sign_sigstruct(
        key_a, enclave_hash=MRENCLAVE, isv_prod_id=7, isv_svn=3, debug=False, date=DATE
    )
    assert sig.debug is True
    assert prod.debug is False
    assert struct.unpack("<QQ", prod.attributes) == (0x4, 0x3)
    prod.verify()


def test_independent_rsa_check(sig: Sigstruct, key_a: rsa.RSAPrivateKey) -> None:
    """s^3 mod n must equal the EMSA-PKCS1-v1_5 encoding of SHA-256(signed portion)."""
    n = key_a.public_key().public_numbers().n
    digest = hashlib.sha256(sig.signed_portion()).digest()
    t = SHA256_DIGEST_INFO + digest
    em = b"\x00\x01" + b"\xff" * (384 - len(t) - 3) + b"\x00" + t
    assert len(em) == 384
    assert pow(sig.signature, 3, n) == int.from_bytes(em, "big")
    assert sig.q1 == sig.signature**2 // n
    assert sig.q2 == (sig.signature**3 - sig.q1 * sig.signature * n) // n


def test_mrsigner_is_sha256_of_le_modulus(sig: Sigstruct, key_a: rsa.RSAPrivateKey) -> None:
    n = key_a.public_key().public_numbers().n
    expected = hashlib.sha256(n.to_bytes(384, "little")).digest()
    assert sig.mrsigner == expected
    assert mrsigner_of(key_a.public_key()) == expected
    assert modulus_le(key_a.public_key()) == n.to_bytes(384, "little")


def test_public_key_matches_signer(sig: Sigstruct, key_a: rsa.RSAPrivateKey) -> None:
    assert sig.public_key().public_numbers() == key_a.public_key().public_numbers()


def test_describe(sig: Sigstruct) -> None:
    rows = dict(sig.describe())
    names = [name for name, _ in sig.describe()]
    assert names[:3] == ["header", "vendor", "date"]
    assert names[-1] == "mrsigner"
    assert names.index("enclavehash") < names.index("isvprodid") < names.index("q1")
    assert rows["date"] == "2026-11-30"
    assert rows["attributes"] == "0x6 (DEBUG, MODE64BIT), xfrm=0x3"
    assert rows["enclavehash"] == MRENCLAVE.hex()
    assert rows["isvprodid"] == "7"
    assert rows["isvsvn"] == "3"
    assert rows["mrsigner"] == sig.mrsigner.hex()
    assert rows["exponent"] == "3"


# ------------------------------------------------------------------ tamper detection


def test_rejects_tampered_header(raw: bytes) -> None:
    with pytest.raises(SigningError, match="HEADER"):
        _load_and_verify(_flipped(raw, 0))


def test_rejects_tampered_header2(raw: bytes) -> None:
    with pytest.raises(SigningError, match="HEADER2"):
        _load_and_verify(_flipped(raw, 30))


def test_rejects_tampered_vendor(raw: bytes) -> None:
    _assert_bad_signature(_patched(raw, 16, (0x8086).to_bytes(4, "little")))


def test_rejects_tampered_date(raw: bytes) -> None:
    _assert_bad_signature(_patched(raw, 20, (0x20250101).to_bytes(4, "little")))


def test_rejects_tampered_swdefined(raw: bytes) -> None:
    _assert_bad_signature(_flipped(raw, 40))


def test_rejects_tampered_modulus(raw: bytes) -> None:
    _assert_bad_signature(_flipped(raw, 128, 0x02))  # keep n odd and 3072 bits


def test_rejects_tampered_miscselect(raw: bytes) -> None:
    _assert_bad_signature(_flipped(raw, 900))


def test_rejects_tampered_miscmask(raw: bytes) -> None:
    _assert_bad_signature(_flipped(raw, 904))


def test_rejects_debug_enabled_on_production_enclave(key_a: rsa.RSAPrivateKey) -> None:
    prod = sign_sigstruct(
        key_a, enclave_hash=MRENCLAVE, isv_prod_id=7, isv_svn=3, debug=False, date=DATE
    )
    _assert_bad_signature(_flipped(prod.to_bytes(), 928, 0x02))


def test_rejects_tampered_attributes(raw: bytes) -> None:
    _assert_bad_signature(_flipped(raw, 928, 0x02))  # clear DEBUG


def test_rejects_tampered_attribute_mask(raw: bytes) -> None:
    _assert_bad_signature(_flipped(raw, 944))


def test_rejects_tampered_enclavehash(raw: bytes) -> None:
    _assert_bad_signature(_flipped(raw, 960 + 31))


def test_rejects_tampered_isvprodid(raw: bytes) -> None:
    _assert_bad_signature(_flipped(raw, 1024))


def test_rejects_tampered_isvsvn(raw: bytes) -> None:
    _assert_bad_signature(_flipped(raw, 1026))  # e.g. a rollback to an older SVN


def test_rejects_any_bit_flip_in_signed_portion(raw: bytes) -> None:
    signed_offsets = [*range(0, 128), *range(900, 1028)]
    for offset in signed_offsets:
        for mask in (0x01, 0x80):
            with pytest.raises(SigningError):
                _load_and_verify(_flipped(raw, offset, mask))


def test_rejects_tampered_signature(raw: bytes) -> None:
    _assert_bad_signature(_flipped(raw, 516))


def test_rejects_tampered_exponent(raw: bytes) -> None:
    with pytest.raises(SigningError, match="EXPONENT"):
        _load_and_verify(_patched(raw, 512, (65537).to_bytes(4, "little")))


def test_rejects_short_modulus(sig: Sigstruct) -> None:
    with pytest.raises(SigningError, match="MODULUS is"):
        dataclasses.replace(sig, modulus=sig.modulus >> 8).verify()


def test_rejects_tampered_q1(raw: bytes) -> None:
    with pytest.raises(SigningError, match="Q1"):
        _load_and_verify(_flipped(raw, 1040))


def test_rejects_tampered_q2(raw: bytes) -> None:
    with pytest.raises(SigningError, match="Q2"):
        _load_and_verify(_flipped(raw, 1424 + 100))


def test_rejects_signature_from_other_key(sig: Sigstruct, key_b: rsa.RSAPrivateKey) -> None:
    """Key A's signature with key B's modulus (and matching Q1/Q2) must not verify."""
    n_b = key_b.public_key().public_numbers().n
    s = sig.signature
    q1 = s * s // n_b
    swapped = dataclasses.replace(sig, modulus=n_b, q1=q1, q2=(s**3 - q1 * s * n_b) // n_b)
    _assert_bad_signature(swapped.to_bytes())


# ----------------------------------------------------------------------- parse errors


@pytest.mark.parametrize("size", [0, 1807, 1809])
def test_rejects_wrong_length(raw: bytes, size: int) -> None:
    with pytest.raises(SigningError, match="expected 1808"):
        Sigstruct.from_bytes((raw * 2)[:size])


@pytest.mark.parametrize("offset", [44, 127, 908, 927, 992, 1023, 1028, 1039])
def test_rejects_nonzero_reserved(raw: bytes, offset: int) -> None:
    with pytest.raises(SigningError, match="reserved"):
        Sigstruct.from_bytes(_flipped(raw, offset))


@pytest.mark.parametrize("bcd", [0x2026113A, 0x20261131, 0x20261301, 0x00000000, 0xFFFFFFFF])
def test_rejects_invalid_bcd_date(raw: bytes, bcd: int) -> None:
    with pytest.raises(SigningError, match="DATE|date"):
        Sigstruct.from_bytes(_patched(raw, 20, bcd.to_bytes(4, "little")))


def test_rejects_unknown_vendor(raw: bytes) -> None:
    with pytest.raises(SigningError, match="vendor"):
        Sigstruct.from_bytes(_patched(raw, 16, (0x1234).to_bytes(4, "little")))


# --------------------------------------------------------------- sign_sigstruct inputs


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("enclave_hash", b"\x00" * 31),
        ("isv_prod_id", 65536),
        ("isv_svn", -1),
        ("date", 20261301),
        ("date", 2026113),
        ("vendor", 5),
        ("miscmask", 1 << 32),
    ],
)
def test_sign_rejects_out_of_range(key_a: rsa.RSAPrivateKey, field: str, value: object) -> None:
    kwargs: dict[str, object] = {
        "enclave_hash": MRENCLAVE,
        "isv_prod_id": 1,
        "isv_svn": 1,
        "debug": False,
        "date": DATE,
    }
    kwargs[field] = value
    with pytest.raises(SigningError):
        sign_sigstruct(key_a, **kwargs)  # type: ignore[arg-type]


def test_sign_rejects_non_sgx_keys(
    key_2048: rsa.RSAPrivateKey, key_e65537: rsa.RSAPrivateKey
) -> None:
    for key, match in ((key_2048, "RSA-2048"), (key_e65537, "exponent 65537")):
        with pytest.raises(SigningError, match=match):
            sign_sigstruct(
                key, enclave_hash=MRENCLAVE, isv_prod_id=1, isv_svn=1, debug=False, date=DATE
            )


def test_date_from_epoch() -> None:
    assert date_from_epoch(0) == 19700101
    assert date_from_epoch(1_700_000_000) == 20231114
    with pytest.raises(SigningError, match="SOURCE_DATE_EPOCH"):
        date_from_epoch(-1)
    with pytest.raises(SigningError, match="SOURCE_DATE_EPOCH"):
        date_from_epoch(10**15)


# ------------------------------------------------------------------------- key files


def test_private_key_file_is_0600_and_loads(tmp_path: Path, key_a: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "key.pem"
    write_private_key(key_a, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = load_private_key(path)
    assert loaded.private_numbers() == key_a.private_numbers()
    assert load_public_key(path).public_numbers() == key_a.public_key().public_numbers()


def test_refuses_overwrite(tmp_path: Path, key_a: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(b"precious")
    with pytest.raises(SigningError, match="--force"):
        write_private_key(key_a, path)
    assert path.read_bytes() == b"precious"


def test_overwrite_replaces_atomically_with_0600(tmp_path: Path, key_a: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(b"old")
    path.chmod(0o644)
    write_private_key(key_a, path, overwrite=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_private_key(path).private_numbers() == key_a.private_numbers()
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"]  # no temp file left


def test_public_key_file(tmp_path: Path, key_a: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "key.pub.pem"
    write_public_key(key_a, path)
    assert path.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert load_public_key(path).public_numbers() == key_a.public_key().public_numbers()
    with pytest.raises(SigningError, match="not a private key"):
        load_private_key(path)


def test_rejects_exponent_65537_key(tmp_path: Path, key_e65537: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "e65537.pem"
    path.write_bytes(_pem(key_e65537))
    for loader in (load_private_key, load_public_key):
        with pytest.raises(SigningError, match=r"exponent 65537.*enklave genkey KEY\.pem"):
            loader(path)
    with pytest.raises(SigningError, match="exponent"):
        write_private_key(key_e65537, tmp_path / "out.pem")


def test_rejects_2048_bit_key(tmp_path: Path, key_2048: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "small.pem"
    path.write_bytes(_pem(key_2048))
    pub = tmp_path / "small.pub.pem"
    pub.write_bytes(
        key_2048.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(SigningError, match="RSA-2048"):
        load_private_key(path)
    for candidate in (path, pub):
        with pytest.raises(SigningError, match="RSA-2048"):
            load_public_key(candidate)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage \x00\xff not a key",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n",
    ],
)
def test_rejects_garbage_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "garbage.pem"
    path.write_bytes(content)
    for loader in (load_private_key, load_public_key):
        with pytest.raises(SigningError, match="enklave genkey"):
            loader(path)


def test_rejects_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SigningError, match="cannot read"):
        load_private_key(tmp_path / "nope.pem")


def test_rejects_encrypted_key(tmp_path: Path, key_a: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "enc.pem"
    path.write_bytes(
        key_a.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    for loader in (load_private_key, load_public_key):
        with pytest.raises(SigningError, match="encrypted"):
            loader(path)


def test_rejects_non_rsa_key(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    path.write_bytes(_pem(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(SigningError, match="non-RSA"):
        load_private_key(path)


def test_write_to_missing_directory_raises_signing_error(
    tmp_path: Path, key_a: rsa.RSAPrivateKey
) -> None:
    for overwrite in (False, True):
        with pytest.raises(SigningError, match="cannot"):
            write_private_key(key_a, tmp_path / "no" / "key.pem", overwrite=overwrite)
