"""Attacks by a hostile host (bundle tampering, sealed-data games, channel abuse).

Each test is named after the attack it shows the enclave resisting.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from _raw import ECALL, ERROR, RETURN, RawEnclave, frame

from conftest import build, write_app
from enklave._encoding import dumps
from enklave._interface import Interface
from enklave.errors import BoundsError, EnclaveCallError, EnclaveLoadError
from enklave.host import Enclave
from enklave.package import Bundle, Sigstruct, resign_bundle, write_bundle
from enklave.package._sigstruct import sign_sigstruct

SEAL_APP = """
from __future__ import annotations

from typing import Annotated

from enklave.enclave import EnclaveApp, MaxLen, identity, seal, unseal

app = EnclaveApp("sealer")
Blob = Annotated[bytes, MaxLen(1 << 16)]
VARIANT = {variant!r}


@app.ecall
def seal_it(data: Blob, policy: Annotated[str, MaxLen(16)], aad: Blob) -> Blob:
    return seal(data, policy=policy, aad=aad)


@app.ecall
def unseal_it(blob: Blob, aad: Blob) -> Blob:
    return unseal(blob, aad=aad)


@app.ecall
def svn() -> int:
    return identity().security_version
"""

MARKER_APP = """
from __future__ import annotations

from typing import Annotated

from enklave.enclave import EnclaveApp, MaxLen

open({marker!r}, "w").close()  # proves the module ran
app = EnclaveApp("marker")


@app.ecall
def hello(name: Annotated[str, MaxLen(8)]) -> Annotated[str, MaxLen(64)]:
    return "hi " + name
"""

LIAR_APP = """
from __future__ import annotations

from typing import Annotated

from enklave.enclave import EnclaveApp, MaxLen

app = EnclaveApp("liar")


@app.ocall
def fetch() -> Annotated[bytes, MaxLen(8)]: ...


@app.ecall
def get() -> Annotated[bytes, MaxLen(8)]:
    return fetch()
"""


def _sealer(tmp_path: Path, key, *, sub: str, variant: str = "a", svn: int = 1) -> Path:
    app = write_app(
        tmp_path / sub, SEAL_APP.format(variant=variant), name="sealer", security_version=svn
    )
    return build(app, key, tmp_path / f"{sub}.bundle")


def _open(bundle: Path, sim_home: Path, **ocalls) -> Enclave:
    return Enclave.open(bundle, ocalls=ocalls, sim_home=sim_home)


def _marker_bundle(tmp_path: Path, key) -> tuple[Path, Path]:
    marker = tmp_path / "marker"
    app = write_app(tmp_path / "mapp", MARKER_APP.format(marker=str(marker)), name="marker")
    bundle = build(app, key, tmp_path / "marker.bundle")
    marker.unlink()  # building imports the module once, on the build machine
    return bundle, marker


def _rewrite(path: Path, bundle: Bundle) -> None:
    path.write_bytes(bundle.to_bytes())


# -- bundle tampering -----------------------------------------------------------------


def test_untampered_marker_app_runs(tmp_path, key, sim_home):
    bundle, marker = _marker_bundle(tmp_path, key)
    with _open(bundle, sim_home) as enc:
        assert enc.call.hello("x") == "hi x"
    assert marker.exists()


def test_rejects_tampered_measured_file(tmp_path, key, sim_home):
    bundle_path, marker = _marker_bundle(tmp_path, key)
    bundle = Bundle.from_bytes(bundle_path.read_bytes())
    files = dict(bundle.files)
    files["enclave.py"] = files["enclave.py"].replace(b'"hi "', b'"pwned "')
    _rewrite(bundle_path, dataclasses.replace(bundle, files=tuple(sorted(files.items()))))
    with pytest.raises(EnclaveLoadError) as ei:
        _open(bundle_path, sim_home)
    assert "enclave.py" in str(ei.value)
    assert not marker.exists(), "app code ran in a tampered enclave"


def test_rejects_tampered_manifest_and_file_together(tmp_path, key, sim_home):
    """Fixing up the manifest too only moves the failure to MRENCLAVE."""
    from enklave.package._bundle import manifest_for

    bundle_path, marker = _marker_bundle(tmp_path, key)
    bundle = Bundle.from_bytes(bundle_path.read_bytes())
    files = dict(bundle.files)
    files["enclave.py"] += b"\n# evil\n"
    new_files = tuple(sorted(files.items()))
    forged = dataclasses.replace(
        bundle, files=new_files, manifest=tuple(manifest_for(list(new_files)))
    )
    _rewrite(bundle_path, forged)
    with pytest.raises(EnclaveLoadError, match="MRENCLAVE"):
        _open(bundle_path, sim_home)
    assert not marker.exists()


def test_rejects_added_unmeasured_file(tmp_path, key, sim_home):
    bundle_path, marker = _marker_bundle(tmp_path, key)
    bundle = Bundle.from_bytes(bundle_path.read_bytes())
    files = dict(bundle.files)
    files["evil.py"] = b"import os\n"
    _rewrite(bundle_path, dataclasses.replace(bundle, files=tuple(sorted(files.items()))))
    with pytest.raises(EnclaveLoadError, match="evil.py"):
        _open(bundle_path, sim_home)
    assert not marker.exists()


def test_rejects_tampered_interface_descriptor(tmp_path, key, sim_home):
    bundle_path, marker = _marker_bundle(tmp_path, key)
    bundle = Bundle.from_bytes(bundle_path.read_bytes())
    desc = bundle.interface.descriptor()
    (fn,) = desc["ecalls"]
    assert fn["params"][0][1] == ["str", 8]
    fn["params"][0][1] = ["str", 1 << 20]  # raise the MaxLen
    _rewrite(bundle_path, dataclasses.replace(bundle, interface=Interface.from_descriptor(desc)))
    with pytest.raises(EnclaveLoadError, match="MRENCLAVE"):
        _open(bundle_path, sim_home)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("offset", "field"),
    [(1026, "ISVSVN"), (1024, "ISVPRODID"), (960, "ENCLAVEHASH"), (128 + 5, "MODULUS")],
)
def test_rejects_tampered_sigstruct_field(tmp_path, key, sim_home, offset, field):
    bundle_path, marker = _marker_bundle(tmp_path, key)
    bundle = Bundle.from_bytes(bundle_path.read_bytes())
    raw = bytearray(bundle.sigstruct.to_bytes())
    raw[offset] ^= 0x01
    _rewrite(bundle_path, bundle.with_sigstruct(Sigstruct.from_bytes(bytes(raw))))
    with pytest.raises(EnclaveLoadError, match="SIGSTRUCT"):
        _open(bundle_path, sim_home)
    assert not marker.exists()


def test_rejects_resigned_sigstruct_with_raised_svn(tmp_path, key, other_key, sim_home):
    """A validly signed SIGSTRUCT whose ISVSVN disagrees with the measured config."""
    bundle_path, marker = _marker_bundle(tmp_path, key)
    bundle = Bundle.from_bytes(bundle_path.read_bytes())
    old = bundle.sigstruct
    sig = sign_sigstruct(
        other_key,
        enclave_hash=old.enclave_hash,
        isv_prod_id=old.isv_prod_id,
        isv_svn=old.isv_svn + 5,
        debug=old.debug,
        date=old.date,
    )
    _rewrite(bundle_path, bundle.with_sigstruct(sig))
    with pytest.raises(EnclaveLoadError, match="ISVSVN"):
        _open(bundle_path, sim_home)
    assert not marker.exists()


# -- sealing ----------------------------------------------------------------------------


def test_resigned_bundle_loads_with_other_mrsigner_and_cannot_read_product_sealed_data(
    hello_bundle, open_hello, other_key, tmp_path, sim_home
):
    store = tmp_path / "store"
    with open_hello(hello_bundle, store, quiet=True, sim_home=sim_home) as enc:
        enc.call.put("k", "product secret")
        original = enc.identity
    resigned = tmp_path / "resigned.bundle"
    write_bundle(resign_bundle(Bundle.from_bytes(hello_bundle.read_bytes()), other_key), resigned)
    with open_hello(resigned, store, quiet=True, sim_home=sim_home) as enc:
        assert enc.identity.mrenclave == original.mrenclave
        assert enc.identity.mrsigner != original.mrsigner
        with pytest.raises(EnclaveCallError) as ei:
            enc.call.get("k")
        assert ei.value.type_name == "SealError"
    # the original still reads it
    with open_hello(hello_bundle, store, quiet=True, sim_home=sim_home) as enc:
        assert enc.call.get("k") == "product secret"


def test_unique_sealed_data_unreadable_by_other_enclave(tmp_path, key, sim_home):
    one = _sealer(tmp_path, key, sub="one", variant="a")
    two = _sealer(tmp_path, key, sub="two", variant="b")
    with _open(one, sim_home) as enc:
        unique = enc.call.seal_it(b"only me", "unique", b"")
        product = enc.call.seal_it(b"my product", "product", b"")
        assert enc.call.unseal_it(unique, b"") == b"only me"
        mr_one = enc.identity.mrenclave
    with _open(two, sim_home) as enc:
        assert enc.identity.mrenclave != mr_one
        with pytest.raises(EnclaveCallError) as ei:
            enc.call.unseal_it(unique, b"")
        assert ei.value.type_name == "SealError"
        # same signer and product: product-policy data is shared
        assert enc.call.unseal_it(product, b"") == b"my product"


def test_sealed_data_unreadable_on_other_platform(tmp_path, key):
    one = _sealer(tmp_path, key, sub="one")
    with _open(one, tmp_path / "sim-a") as enc:
        blob = enc.call.seal_it(b"x", "product", b"")
    with _open(one, tmp_path / "sim-b") as enc, pytest.raises(EnclaveCallError) as ei:
        enc.call.unseal_it(blob, b"")
    assert ei.value.type_name == "SealError"


def test_product_sealed_data_unreadable_by_lower_svn(tmp_path, key, sim_home):
    v1 = _sealer(tmp_path, key, sub="v1", svn=1)
    v2 = _sealer(tmp_path, key, sub="v2", svn=2)
    v3 = _sealer(tmp_path, key, sub="v3", svn=3)
    with _open(v2, sim_home) as enc:
        assert enc.call.svn() == 2
        blob = enc.call.seal_it(b"fixed secret", "product", b"aad")
    with _open(v1, sim_home) as enc:
        with pytest.raises(EnclaveCallError) as ei:
            enc.call.unseal_it(blob, b"aad")
        assert ei.value.type_name == "SealError"
    with _open(v3, sim_home) as enc:
        assert enc.call.unseal_it(blob, b"aad") == b"fixed secret"


def test_rejects_tampered_sealed_blob(hello_bundle, open_hello, tmp_path, sim_home):
    store = tmp_path / "store"
    with open_hello(hello_bundle, store, quiet=True, sim_home=sim_home) as enc:
        enc.call.put("k", "value")
        path = store / "k.sealed"
        good = path.read_bytes()
        for i in (0, len(good) // 2, len(good) - 1):
            bad = bytearray(good)
            bad[i] ^= 0x40
            path.write_bytes(bytes(bad))
            with pytest.raises(EnclaveCallError) as ei:
                enc.call.get("k")
            assert ei.value.type_name == "SealError"
        path.write_bytes(good[:-1])
        with pytest.raises(EnclaveCallError) as ei:
            enc.call.get("k")
        assert ei.value.type_name == "SealError"
        path.write_bytes(good)
        assert enc.call.get("k") == "value"


def test_rejects_wrong_aad(hello_bundle, open_hello, tmp_path, sim_home, key):
    # the host swaps blobs between keys in hello's store
    store = tmp_path / "store"
    with open_hello(hello_bundle, store, quiet=True, sim_home=sim_home) as enc:
        enc.call.put("alice", "alice's secret")
        (store / "bob.sealed").write_bytes((store / "alice.sealed").read_bytes())
        with pytest.raises(EnclaveCallError) as ei:
            enc.call.get("bob")
        assert ei.value.type_name == "SealError"
    # and directly
    sealer = _sealer(tmp_path, key, sub="s")
    with _open(sealer, sim_home) as enc:
        blob = enc.call.seal_it(b"d", "unique", b"right")
        with pytest.raises(EnclaveCallError) as ei:
            enc.call.unseal_it(blob, b"wrong")
        assert ei.value.type_name == "SealError"
        assert enc.call.unseal_it(blob, b"right") == b"d"


# -- channel abuse ---------------------------------------------------------------------


def _ping_ok(raw: RawEnclave, cid: int = 99) -> None:
    assert raw.call(cid, "echo", [b"alive"]) == [1, RETURN, cid, b"alive", None]


def test_rejects_oversized_frame(ping_bundle, sim_home):
    with RawEnclave(ping_bundle, sim_home) as raw:
        _ping_ok(raw)
        raw.send_raw((16 * 1024 * 1024 + 1).to_bytes(4, "big") + b"\x00" * 64)
        raw.wait_eof()
        assert raw.proc.wait(timeout=10) == 0


def test_accepts_frame_at_limit_header_then_eof(ping_bundle, sim_home):
    """A header of exactly the limit is accepted (the enclave waits for the body)."""
    with RawEnclave(ping_bundle, sim_home) as raw:
        raw.send_raw((16 * 1024 * 1024).to_bytes(4, "big") + b"\x00" * 16)
        _ = raw  # closing our end ends the enclave cleanly
    assert raw.proc.returncode is not None


def _nested(depth: int) -> bytes:
    # CBOR: depth nested 1-element arrays around an integer
    return b"\x81" * depth + b"\x01"


def test_rejects_too_deep_nesting(ping_bundle, sim_home):
    with RawEnclave(ping_bundle, sim_home) as raw:
        # [1, 1, 7, "echo", [[[[...]]]]] with the argument nested 40 deep
        head = dumps([1, ECALL, 7, "echo"])
        body = bytes([0x85]) + head[1:] + bytes([0x81]) + _nested(40)
        raw.send_raw(frame(body))
        reply = raw.recv_frame()
        assert reply[1] == ERROR
        assert reply[3]["code"] == "encoding"
        assert reply[2] == 0
        # a deep but otherwise well-formed argument (within the decoder's depth)
        deep: object = b"x"
        for _ in range(10):
            deep = [deep]
        reply = raw.call(8, "echo", [deep])
        assert reply[1] == ERROR and reply[2] == 8 and reply[3]["code"] == "bounds"
        _ping_ok(raw)


def test_rejects_wrong_argument_types(ping_bundle, hello_bundle, open_hello, tmp_path, sim_home):
    with open_hello(hello_bundle, tmp_path / "store", quiet=True, sim_home=sim_home) as enc:
        with pytest.raises(BoundsError):
            enc.call.greet(42)
        with pytest.raises(BoundsError):
            enc.call.put("k", b"bytes not str")
        assert enc.call.greet("ok").startswith("Hello")
    with RawEnclave(ping_bundle, sim_home) as raw:
        for cid, args in enumerate(
            [["text"], [123], [None], [True], [1.5], [[b"x"]], [{"a": b"x"}], [], [b"a", b"b"]],
            start=10,
        ):
            reply = raw.call(cid, "echo", args)
            assert reply[:3] == [1, ERROR, cid], args
            assert reply[3]["code"] == "bounds", (args, reply)
            assert reply[3]["type"] == "BoundsError"
        _ping_ok(raw)


def test_rejects_ecall_argument_bound_violation(hello_bundle, open_hello, tmp_path, sim_home):
    with open_hello(hello_bundle, tmp_path / "store", quiet=True, sim_home=sim_home) as enc:
        with pytest.raises(BoundsError):
            enc.call.greet("x" * 65)
        with pytest.raises(BoundsError):
            enc.call.put("k", "v" * 4097)
        assert enc.call.greet("x" * 64).startswith("Hello")
    with RawEnclave(hello_bundle, sim_home) as raw:
        reply = raw.call(5, "greet", ["x" * 65])
        assert reply[:3] == [1, ERROR, 5]
        assert reply[3]["code"] == "bounds"
        reply = raw.call(6, "put", ["k" * 65, "v"])
        assert reply[:3] == [1, ERROR, 6] and reply[3]["code"] == "bounds"
        reply = raw.call(7, "put", ["k", "v" * 4097])
        assert reply[:3] == [1, ERROR, 7] and reply[3]["code"] == "bounds"
        reply = raw.call(8, "whoami", [])
        assert reply[1] == RETURN and reply[2] == 8


@pytest.mark.parametrize(
    "lie",
    [b"x" * 9, "a string", 12, None, [b"x"], {"k": b"v"}, True],
    ids=["too-long", "str", "int", "none", "list", "map", "bool"],
)
def test_rejects_lying_ocall_result(tmp_path, key, sim_home, lie):
    bundle = build(write_app(tmp_path / "liar", LIAR_APP, name="liar"), key, tmp_path / "l.b")
    answer = [lie]
    with _open(bundle, sim_home, fetch=lambda: answer[0]) as enc:
        with pytest.raises(EnclaveCallError) as ei:
            enc.call.get()
        assert ei.value.type_name == "OcallError"
        answer[0] = b"12345678"
        assert enc.call.get() == b"12345678"


def test_rejects_ocall_failure_on_host(tmp_path, key, sim_home):
    bundle = build(write_app(tmp_path / "liar", LIAR_APP, name="liar"), key, tmp_path / "l.b")

    def fetch() -> bytes:
        raise RuntimeError("host broke")

    with _open(bundle, sim_home, fetch=fetch) as enc:
        with pytest.raises(EnclaveCallError) as ei:
            enc.call.get()
        assert ei.value.type_name == "OcallError"
        assert "host broke" in ei.value.remote_message


GARBAGE = [
    # (body, expected code, expected call id in the reply)
    (b"", "encoding", 0),
    (b"\xff", "encoding", 0),
    (b"\x1f", "encoding", 0),
    (b"\x85\x01\x01\x07", "encoding", 0),  # truncated array
    (dumps([1, 1, 7, "echo", [b"x"]]) + b"\x00", "encoding", 0),  # trailing byte
    (dumps(42), "protocol", 0),
    (dumps({"a": 1}), "protocol", 0),
    (dumps([1, 1, 7, "echo"]), "protocol", 0),
    (dumps([2, 1, 7, "echo", [b"x"]]), "protocol", 7),  # bad version
    (dumps([1, 99, 7, "echo", [b"x"]]), "protocol", 7),  # unknown kind
    (dumps([1, 1, -1, "echo", [b"x"]]), "protocol", 0),  # negative call id
    (dumps([1, 1, "7", "echo", [b"x"]]), "protocol", 0),  # str call id
    (dumps([1, 1, 7, 5, [b"x"]]), "protocol", 7),  # non-str name
    (dumps([1, 1, 7, "echo", b"x"]), "protocol", 7),  # args not a list
    (dumps([1, 1, 7, "nope", []]), "protocol", 7),  # unknown ECALL
    (dumps([1, 1, 7, "__init__", []]), "protocol", 7),
    (dumps([1, 2, 7, None, None]), "protocol", 7),  # RETURN from the host
    (dumps([1, 5, 7, None, None]), "protocol", 7),  # ORETURN for no OCALL
    (dumps([1, 7, 0, {}, None]), "protocol", 0),  # READY from the host
    (dumps([1, 3, 7, {"type": "x"}, None]), "protocol", 7),  # malformed error record
]


def test_garbage_frames_get_typed_errors(ping_bundle, sim_home):
    with RawEnclave(ping_bundle, sim_home) as raw:
        for i, (body, code, cid) in enumerate(GARBAGE):
            raw.send_raw(frame(body))
            reply = raw.recv_frame()
            assert len(reply) == 5 and reply[0] == 1, (body, reply)
            assert reply[1] == ERROR, (body, reply)
            assert reply[2] == cid, (body, reply)
            assert reply[3]["code"] == code, (body, reply)
            assert isinstance(reply[3]["type"], str) and isinstance(reply[3]["message"], str)
            assert reply[4] is None
            _ping_ok(raw, 1000 + i)
        # a pipelined burst: one reply per frame, in any order
        raw.send_raw(b"".join(frame(b) for b, _, _ in GARBAGE))
        codes = sorted(raw.recv_frame()[3]["code"] for _ in GARBAGE)
        assert codes == sorted(c for _, c, _ in GARBAGE)
        _ping_ok(raw)
