"""Sealing (SGX EGETKEY semantics) and the simulated platform secret store."""

from __future__ import annotations

import os
import stat
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from enklave import _simplatform
from enklave._simplatform import (
    PLATFORM_KEY_FILENAME,
    load_or_create_platform_secret,
    platform_id,
    sim_home,
)
from enklave.enclave._sealing import (
    MAX_SEAL_DATA_SIZE,
    SealIdentity,
    inspect_blob,
    seal,
    unseal,
)
from enklave.errors import PlatformError, SealError

SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(1, 33))
MRENCLAVE_A = b"\xaa" * 32
MRENCLAVE_B = b"\xbb" * 32
SIGNER_A = b"\x11" * 32
SIGNER_B = b"\x22" * 32
HEADER_SIZE = 36
SVN_OFFSET = 6

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def ident(
    mrenclave: bytes = MRENCLAVE_A,
    mrsigner: bytes = SIGNER_A,
    product_id: int = 7,
    svn: int = 3,
) -> SealIdentity:
    return SealIdentity(mrenclave, mrsigner, product_id, svn)


# --- SealIdentity -----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mrenclave": b"\x00" * 31},
        {"mrsigner": b"\x00" * 33},
        {"product_id": -1},
        {"product_id": 0x10000},
        {"svn": 0x10000},
        {"svn": True},
    ],
)
def test_identity_rejects_bad_fields(kwargs: dict[str, object]) -> None:
    with pytest.raises(SealError):
        ident(**kwargs)  # type: ignore[arg-type]


def test_identity_accepts_u16_bounds() -> None:
    ident(product_id=0, svn=0xFFFF)


# --- round trips ------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["unique", "product"])
def test_round_trip(policy: str) -> None:
    blob = seal(SECRET, ident(), b"hello", policy=policy, aad=b"ctx")  # type: ignore[arg-type]
    assert unseal(SECRET, ident(), blob, aad=b"ctx") == b"hello"


def test_round_trip_empty_data() -> None:
    blob = seal(SECRET, ident(), b"", policy="unique")
    assert len(blob) == HEADER_SIZE + 16
    assert unseal(SECRET, ident(), blob) == b""


def test_key_ids_and_nonces_differ_per_seal() -> None:
    blobs = [seal(SECRET, ident(), b"same", policy="product") for _ in range(20)]
    key_ids = {inspect_blob(b)["key_id"] for b in blobs}
    nonces = {b[24:36] for b in blobs}
    assert len(key_ids) == 20
    assert len(nonces) == 20
    assert len({b[HEADER_SIZE:] for b in blobs}) == 20


def test_plaintext_not_in_blob() -> None:
    data = b"very secret plaintext value"
    assert data not in seal(SECRET, ident(), data, policy="unique")


# --- identity binding -------------------------------------------------------------


def test_unseal_by_other_enclave_unique_fails() -> None:
    blob = seal(SECRET, ident(), b"data", policy="unique")
    with pytest.raises(SealError, match="another enclave"):
        unseal(SECRET, ident(mrenclave=MRENCLAVE_B), blob)


def test_unique_blob_refused_by_higher_svn_same_enclave() -> None:
    blob = seal(SECRET, ident(svn=3), b"data", policy="unique")
    with pytest.raises(SealError, match="only the identical enclave"):
        unseal(SECRET, ident(svn=4), blob)


def test_unique_blob_refused_by_lower_svn() -> None:
    blob = seal(SECRET, ident(svn=3), b"data", policy="unique")
    with pytest.raises(SealError, match="rollback refused"):
        unseal(SECRET, ident(svn=2), blob)


def test_unseal_by_lower_svn_product_fails() -> None:
    blob = seal(SECRET, ident(svn=3), b"data", policy="product")
    with pytest.raises(SealError) as info:
        unseal(SECRET, ident(svn=2), blob)
    assert "sealed by SVN 3, this enclave has SVN 2: rollback refused" in info.value.message
    assert info.value.code == "seal"


def test_unseal_by_higher_svn_product_succeeds() -> None:
    blob = seal(SECRET, ident(svn=3), b"data", policy="product")
    assert unseal(SECRET, ident(svn=4), blob) == b"data"
    assert unseal(SECRET, ident(svn=0xFFFF), blob) == b"data"


def test_product_seal_readable_by_other_enclave_same_signer_product() -> None:
    blob = seal(SECRET, ident(mrenclave=MRENCLAVE_A), b"data", policy="product")
    assert unseal(SECRET, ident(mrenclave=MRENCLAVE_B), blob) == b"data"


def test_other_signer_cannot_unseal_product() -> None:
    blob = seal(SECRET, ident(), b"data", policy="product")
    with pytest.raises(SealError, match="another enclave/signer/product"):
        unseal(SECRET, ident(mrsigner=SIGNER_B), blob)


def test_other_product_id_cannot_unseal() -> None:
    blob = seal(SECRET, ident(product_id=7), b"data", policy="product")
    with pytest.raises(SealError, match="another enclave/signer/product"):
        unseal(SECRET, ident(product_id=8), blob)


def test_other_platform_secret_fails() -> None:
    for policy in ("unique", "product"):
        blob = seal(SECRET, ident(), b"data", policy=policy)
        with pytest.raises(SealError):
            unseal(OTHER_SECRET, ident(), blob)


def test_wrong_aad_fails() -> None:
    blob = seal(SECRET, ident(), b"data", policy="unique", aad=b"record-1")
    with pytest.raises(SealError, match="aad differs"):
        unseal(SECRET, ident(), blob, aad=b"record-2")
    with pytest.raises(SealError):
        unseal(SECRET, ident(), blob)


# --- tampering --------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["unique", "product"])
def test_tampered_blob_each_byte_fails(policy: str) -> None:
    blob = seal(SECRET, ident(), b"abc", policy=policy)  # type: ignore[arg-type]
    for pos in range(len(blob)):
        for mask in (0x01, 0x80):
            bad = bytearray(blob)
            bad[pos] ^= mask
            with pytest.raises(SealError):
                unseal(SECRET, ident(), bytes(bad))


def test_header_svn_edit_fails() -> None:
    blob = seal(SECRET, ident(svn=3), b"data", policy="product")
    lowered = blob[:SVN_OFFSET] + struct.pack(">H", 2) + blob[SVN_OFFSET + 2 :]
    assert inspect_blob(lowered)["svn"] == 2
    with pytest.raises(SealError, match="corrupted"):
        unseal(SECRET, ident(svn=3), lowered)
    with pytest.raises(SealError, match="corrupted"):
        unseal(SECRET, ident(svn=2), lowered)


def test_header_policy_swap_fails() -> None:
    blob = seal(SECRET, ident(), b"data", policy="unique")
    swapped = blob[:5] + b"\x02" + blob[6:]
    with pytest.raises(SealError):
        unseal(SECRET, ident(), swapped)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda b: b"XXXX" + b[4:], "bad magic"),
        (lambda b: b[:4] + b"\x02" + b[5:], "format version 2"),
        (lambda b: b[:5] + b"\x09" + b[6:], "unknown policy"),
        (lambda b: b[: HEADER_SIZE + 15], "truncated"),
        (lambda b: b"", "truncated"),
    ],
)
def test_malformed_blob_messages(mutate: object, match: str) -> None:
    blob = seal(SECRET, ident(), b"data", policy="unique")
    with pytest.raises(SealError, match=match):
        unseal(SECRET, ident(), mutate(blob))  # type: ignore[operator]


def test_truncated_ciphertext_fails() -> None:
    blob = seal(SECRET, ident(), b"some data here", policy="unique")
    with pytest.raises(SealError):
        unseal(SECRET, ident(), blob[:-1])


# --- argument checks --------------------------------------------------------------


def test_unknown_policy_rejected() -> None:
    with pytest.raises(SealError, match="unknown seal policy"):
        seal(SECRET, ident(), b"x", policy="signer")  # type: ignore[arg-type]


def test_data_size_limit() -> None:
    assert MAX_SEAL_DATA_SIZE == 64 * 1024 * 1024
    too_big = memoryview(bytearray(MAX_SEAL_DATA_SIZE + 1))
    with pytest.raises(SealError, match="over the .* limit"):
        seal(SECRET, ident(), too_big, policy="unique")  # type: ignore[arg-type]


def test_non_bytes_rejected() -> None:
    with pytest.raises(SealError):
        seal(SECRET, ident(), "text", policy="unique")  # type: ignore[arg-type]
    with pytest.raises(SealError):
        unseal(SECRET, ident(), None)  # type: ignore[arg-type]
    with pytest.raises(SealError):
        seal(SECRET, object(), b"x", policy="unique")  # type: ignore[arg-type]


def test_short_platform_secret_rejected() -> None:
    with pytest.raises(PlatformError):
        seal(b"short", ident(), b"x", policy="unique")
    with pytest.raises(PlatformError):
        unseal("x" * 32, ident(), b"x" * 64)  # type: ignore[arg-type]


def test_bytearray_inputs_accepted() -> None:
    # Annotated as bytes; bytes-like values are accepted at runtime and copied.
    secret, data, aad = bytearray(SECRET), bytearray(b"d"), bytearray(b"a")
    blob = seal(secret, ident(), data, policy="product", aad=aad)  # type: ignore[arg-type]
    assert unseal(SECRET, ident(), bytearray(blob), aad=aad) == b"d"  # type: ignore[arg-type]


def test_inspect_blob_reports_unverified_header() -> None:
    blob = seal(SECRET, ident(svn=5), b"12345", policy="product")
    info = inspect_blob(blob)
    assert info["verified"] is False
    assert info["version"] == 1
    assert info["policy"] == "product"
    assert info["svn"] == 5
    assert info["key_id"] == blob[8:24].hex()
    assert info["ciphertext_size"] == 5
    assert info["total_size"] == len(blob) == HEADER_SIZE + 5 + 16
    with pytest.raises(SealError):
        inspect_blob(b"EKSL")


def test_messages_do_not_contain_secret() -> None:
    blob = seal(SECRET, ident(), b"data", policy="unique")
    with pytest.raises(SealError) as info:
        unseal(SECRET, ident(mrenclave=MRENCLAVE_B), blob)
    text = str(info.value)
    assert SECRET.hex() not in text
    assert repr(SECRET) not in text


# --- simulated platform secret ----------------------------------------------------


def test_sim_home_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ENKLAVE_SIM_HOME", str(tmp_path / "sim"))
    assert sim_home() == tmp_path / "sim"
    secret = load_or_create_platform_secret()
    assert (tmp_path / "sim" / PLATFORM_KEY_FILENAME).read_bytes() == secret


def test_sim_home_xdg_and_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ENKLAVE_SIM_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert sim_home() == tmp_path / "enklave" / "sim"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/dir")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert sim_home() == tmp_path / "home" / ".local" / "share" / "enklave" / "sim"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert sim_home() == tmp_path / "home" / ".local" / "share" / "enklave" / "sim"


@posix_only
def test_platform_secret_modes(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        home = tmp_path / "a" / "sim"
        secret = load_or_create_platform_secret(home)
    finally:
        os.umask(old)
    assert len(secret) == 32
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / PLATFORM_KEY_FILENAME).stat().st_mode) == 0o600
    assert load_or_create_platform_secret(home) == secret
    assert [p.name for p in home.iterdir()] == [PLATFORM_KEY_FILENAME]


def test_platform_secret_differs_per_home(tmp_path: Path) -> None:
    a = load_or_create_platform_secret(tmp_path / "a")
    b = load_or_create_platform_secret(tmp_path / "b")
    assert a != b


def test_concurrent_creation_threads_one_secret(tmp_path: Path) -> None:
    home = tmp_path / "sim"
    barrier = threading.Barrier(8)
    results: list[bytes] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        try:
            value = load_or_create_platform_secret(home)
        except BaseException as exc:
            with lock:
                errors.append(exc)
            return
        with lock:
            results.append(value)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 8
    assert len(set(results)) == 1
    assert (home / PLATFORM_KEY_FILENAME).read_bytes() == results[0]
    assert [p.name for p in home.iterdir()] == [PLATFORM_KEY_FILENAME]


_CHILD = """
import sys, time
from pathlib import Path
from enklave._simplatform import load_or_create_platform_secret
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.0005)
print(load_or_create_platform_secret(Path(sys.argv[1])).hex())
"""


def test_concurrent_creation_processes_one_secret(tmp_path: Path) -> None:
    home = tmp_path / "sim"
    start = str(time.time() + 1.0)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(home), start],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outputs.append(out.strip())
    assert len(set(outputs)) == 1
    assert bytes.fromhex(outputs[0]) == (home / PLATFORM_KEY_FILENAME).read_bytes()


@pytest.mark.parametrize("size", [0, 31, 33])
def test_corrupt_platform_secret(tmp_path: Path, size: int) -> None:
    load_or_create_platform_secret(tmp_path)
    path = tmp_path / PLATFORM_KEY_FILENAME
    path.write_bytes(b"\x00" * size)
    with pytest.raises(PlatformError, match="corrupt") as info:
        load_or_create_platform_secret(tmp_path)
    assert "delete" in info.value.message
    assert "lost" in info.value.message


@posix_only
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_group_readable_platform_secret(tmp_path: Path, mode: int) -> None:
    load_or_create_platform_secret(tmp_path)
    path = tmp_path / PLATFORM_KEY_FILENAME
    path.chmod(mode)
    with pytest.raises(PlatformError, match="chmod 600"):
        load_or_create_platform_secret(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == mode  # not silently changed


@posix_only
def test_symlinked_platform_secret_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    load_or_create_platform_secret(real)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / PLATFORM_KEY_FILENAME).symlink_to(real / PLATFORM_KEY_FILENAME)
    with pytest.raises(PlatformError, match="symlink"):
        load_or_create_platform_secret(home)


@posix_only
def test_world_writable_home_refused(tmp_path: Path) -> None:
    home = tmp_path / "open"
    home.mkdir()
    home.chmod(0o777)
    with pytest.raises(PlatformError, match="chmod 700"):
        load_or_create_platform_secret(home)


def test_platform_id_is_short_stable_and_not_secret() -> None:
    pid = platform_id(SECRET)
    assert pid == platform_id(SECRET)
    assert len(pid) == 16
    assert pid != platform_id(OTHER_SECRET)
    assert pid not in SECRET.hex()
    with pytest.raises(PlatformError):
        platform_id(b"")


def test_sealed_under_sim_secret_round_trips(tmp_path: Path) -> None:
    secret = load_or_create_platform_secret(tmp_path)
    blob = seal(secret, ident(), b"payload", policy="product")
    assert unseal(load_or_create_platform_secret(tmp_path), ident(), blob) == b"payload"
    assert _simplatform.PLATFORM_SECRET_SIZE == len(secret)
