"""End-to-end behaviour of a running enclave: calls, OCALLs, errors, threads, lifecycle."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from pathlib import Path

import pytest

from conftest import HELLO_DIR, build, write_app
from enklave.errors import BoundsError, EnclaveCallError, EnclaveClosed
from enklave.host import AsyncEnclave, Enclave
from enklave.package import build_app

APP = """
from __future__ import annotations

import os
import threading
from typing import Annotated

from enklave.enclave import EnclaveApp, MaxLen, Range, seal, unseal

app = EnclaveApp("testapp")

Text = Annotated[str, MaxLen(200)]
Blob = Annotated[bytes, MaxLen(1 << 16)]

_lock = threading.Condition()
_active = 0
_max_seen = 0


@app.ocall
def shout(text: Text) -> Text: ...


@app.ecall
def relay(text: Text) -> Text:
    return "enclave got " + shout(text)


@app.ecall
def combine(a: Annotated[int, Range(0, 1000)], b: Text = "x", c: bool = False) -> Text:
    return f"{a}:{b}:{c}"


class Boom(Exception):
    pass


@app.ecall
def fail(why: Text) -> None:
    raise Boom("exploded because " + why)


@app.ecall
def wait_for_peers(n: Annotated[int, Range(1, 64)]) -> int:
    global _active, _max_seen
    with _lock:
        _active += 1
        _max_seen = max(_max_seen, _active)
        _lock.notify_all()
        _lock.wait_for(lambda: _max_seen >= n, timeout=20)
        _active -= 1
        return _max_seen


@app.ecall
def allocate(mb: Annotated[int, Range(1, 1 << 20)]) -> int:
    data = bytearray(mb * 1024 * 1024)
    return len(data)


@app.ecall
def env() -> Annotated[list[Annotated[str, MaxLen(200)]], MaxLen(1000)]:
    return sorted(os.environ)


@app.ecall
def seal_it(data: Blob) -> Blob:
    return seal(data, policy="unique", aad=b"t")


@app.ecall
def unseal_it(blob: Blob) -> Blob:
    return unseal(blob, aad=b"t")
"""


def _shout(text: str) -> str:
    return text.upper()


@pytest.fixture
def app_bundle(tmp_path, key) -> Path:
    d = tmp_path / "rt"
    app = write_app(d / "app", APP, 'memory_mb = 256\nallowed_env = ["TESTVAR_OK"]\n')
    return build(app, key, d / "app.bundle")


@pytest.fixture
def debug_bundle(tmp_path, key) -> Path:
    d = tmp_path / "rtdbg"
    app = write_app(d / "app", APP, "memory_mb = 256\n", debug=True)
    return build(app, key, d / "app.bundle")


@pytest.fixture
def enc(app_bundle, sim_home):
    with Enclave.open(app_bundle, ocalls={"shout": _shout}, sim_home=sim_home) as e:
        yield e


def test_greet_round_trip_with_ocall(hello_bundle, open_hello, tmp_path, sim_home):
    lines: list[str] = []
    with open_hello(hello_bundle, tmp_path / "store", quiet=True, sim_home=sim_home) as enc:
        assert enc.call.greet("Ada") == "Hello, Ada, from inside the enclave!"
        me = enc.call.whoami()
        assert me["simulated"] is True
        assert me["product_id"] == 1
        assert bytes.fromhex(me["mrenclave"]) == enc.identity.mrenclave
    # and with our own OCALL functions
    store: dict[str, bytes] = {}
    ocalls = {
        "log": lines.append,
        "store_put": store.__setitem__,
        "store_get": store.get,
    }
    with Enclave.open(hello_bundle, ocalls=ocalls, sim_home=sim_home) as enc:
        assert enc.call.greet("Bob").startswith("Hello, Bob")
        enc.call.put("k", "v")
        assert enc.call.get("k") == "v"
    assert lines == ["greeting Bob"]
    assert set(store) == {"k"}


def test_ocall_during_ecall(enc):
    assert enc.call.relay("hi there") == "enclave got HI THERE"


def test_kwargs_and_defaults(enc):
    assert enc.call.combine(5) == "5:x:False"
    assert enc.call.combine(5, c=True) == "5:x:True"
    assert enc.call.combine(a=7, b="y") == "7:y:False"
    with pytest.raises(BoundsError):
        enc.call.combine(5, nope=1)
    with pytest.raises(BoundsError):
        enc.call.combine(5000)


def test_call_error_carries_type_and_message_no_traceback(enc):
    with pytest.raises(EnclaveCallError) as ei:
        enc.call.fail("of testing")
    err = ei.value
    assert err.type_name == "Boom"
    assert err.remote_message == "exploded because of testing"
    assert err.remote_traceback is None
    # the enclave still serves
    assert enc.call.combine(1) == "1:x:False"


def test_call_error_traceback_only_in_debug(debug_bundle, sim_home):
    with Enclave.open(debug_bundle, ocalls={"shout": _shout}, sim_home=sim_home) as enc:
        assert enc.identity.debug is True
        with pytest.raises(EnclaveCallError) as ei:
            enc.call.fail("debugging")
    err = ei.value
    assert err.type_name == "Boom"
    assert err.remote_traceback is not None
    assert "Traceback" in err.remote_traceback
    assert "exploded because debugging" in err.remote_traceback


def test_concurrent_ecalls_overlap(enc):
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(enc.call.wait_for_peers(4))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(results) == 4
    assert max(results) == 4


def test_async_variant(app_bundle, sim_home):
    async def main() -> None:
        enc = await AsyncEnclave.open(app_bundle, ocalls={"shout": _shout}, sim_home=sim_home)
        async with enc:
            assert await enc.call.relay("async") == "enclave got ASYNC"
            got = await asyncio.gather(*(enc.call.wait_for_peers(4) for _ in range(4)))
            assert max(got) == 4
            with pytest.raises(EnclaveCallError):
                await enc.call.fail("async")
            assert enc.identity.simulated

    asyncio.run(main())


def _gone(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # already reaped by its owner: good
    return not Path(f"/proc/{pid}").exists()


def test_close_leaves_no_zombie(app_bundle, sim_home):
    enc = Enclave.open(app_bundle, ocalls={"shout": _shout}, sim_home=sim_home)
    pid = enc.pid
    assert Path(f"/proc/{pid}").exists()
    enc.close()
    enc.close()  # idempotent
    assert _gone(pid)
    with pytest.raises(EnclaveClosed):
        enc.call.combine(1)


def test_restart_gives_new_process_and_no_zombie(enc):
    old = enc.pid
    enc.restart()
    assert enc.pid != old
    assert _gone(old)
    assert enc.call.combine(2) == "2:x:False"


def test_reproducible_build(tmp_path, key):
    a = shutil.copytree(HELLO_DIR, tmp_path / "one" / "hello")
    b = shutil.copytree(HELLO_DIR, tmp_path / "two" / "elsewhere")
    for i, p in enumerate(sorted(b.rglob("*"))):
        os.utime(p, (1_000_000 + i, 1_000_000 + i))
    for p in a.rglob("*"):
        os.utime(p, (2_000_000_000, 2_000_000_000))
    ba, bb = build_app(a, key), build_app(b, key)
    assert ba.to_bytes() == bb.to_bytes()
    assert ba.mrenclave == bb.mrenclave
    assert (
        build(a, key, tmp_path / "a.bundle").read_bytes()
        == build(b, key, tmp_path / "b.bundle").read_bytes()
    )


def test_sealed_data_survives_restart(hello_bundle, open_hello, tmp_path, sim_home):
    store = tmp_path / "store"
    with open_hello(hello_bundle, store, quiet=True, sim_home=sim_home) as enc:
        enc.call.put("secret", "forty-two")
        enc.restart()
        assert enc.call.get("secret") == "forty-two"
    with open_hello(hello_bundle, store, quiet=True, sim_home=sim_home) as enc:
        assert enc.call.get("secret") == "forty-two"
        assert enc.call.get("missing") is None


def test_sealed_unique_survives_restart(enc):
    blob = enc.call.seal_it(b"payload")
    enc.restart()
    assert enc.call.unseal_it(blob) == b"payload"


def test_memory_limit(enc):
    with pytest.raises(EnclaveCallError) as ei:
        enc.call.allocate(1024)
    assert ei.value.type_name == "MemoryError"
    assert enc.call.allocate(8) == 8 * 1024 * 1024
    assert enc.call.relay("still alive") == "enclave got STILL ALIVE"


def test_env_scrub(app_bundle, sim_home, monkeypatch):
    monkeypatch.setenv("TESTVAR_OK", "1")
    monkeypatch.setenv("TESTVAR_SECRET", "hunter2")
    monkeypatch.setenv("PYTHONPATH", "/evil")
    with Enclave.open(app_bundle, ocalls={"shout": _shout}, sim_home=sim_home) as enc:
        assert enc.call.env() == ["TESTVAR_OK"]
    monkeypatch.delenv("TESTVAR_OK")
    with Enclave.open(app_bundle, ocalls={"shout": _shout}, sim_home=sim_home) as enc:
        assert enc.call.env() == []
