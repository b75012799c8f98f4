"""Crash resilience: SIGKILL the enclave mid-ECALL, restart, and find sealed data intact."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from conftest import build, load_hello_host, write_app
from enklave.errors import EnclaveLost
from enklave.host import Enclave

APP = """
from __future__ import annotations

import time
from typing import Annotated

from enklave.enclave import EnclaveApp, MaxLen, Range, seal, unseal

app = EnclaveApp("crashy")
Key = Annotated[str, MaxLen(64)]
Blob = Annotated[bytes, MaxLen(1 << 16)]


@app.ocall
def store_put(key: Key, blob: Blob) -> None: ...


@app.ocall
def store_get(key: Key) -> Blob | None: ...


@app.ocall
def started(tag: Annotated[int, Range(0, 1000)]) -> None: ...


@app.ecall
def put(key: Key, value: Annotated[str, MaxLen(1024)]) -> None:
    store_put(key, seal(value.encode(), policy="product", aad=key.encode()))


@app.ecall
def get(key: Key) -> Annotated[str, MaxLen(1024)] | None:
    blob = store_get(key)
    return None if blob is None else unseal(blob, aad=key.encode()).decode()


@app.ecall
def slow(tag: Annotated[int, Range(0, 1000)]) -> int:
    started(tag)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return tag


@app.ecall
def slow_put(key: Key, value: Annotated[str, MaxLen(1024)]) -> None:
    put(key, value)  # persisted through the atomic OCALL, then hang until killed
    started(0)
    time.sleep(60)
"""

ITERATIONS = 20


class Host:
    """The untrusted side: an atomic blob store and 'ECALL started' events."""

    def __init__(self, root: Path) -> None:
        self.store = load_hello_host().BlobStore(root)
        self.events: dict[int, threading.Event] = {}
        self.lock = threading.Lock()

    def event(self, tag: int) -> threading.Event:
        with self.lock:
            return self.events.setdefault(tag, threading.Event())

    def ocalls(self) -> dict[str, object]:
        return {
            "store_put": self.store.put,
            "store_get": self.store.get,
            "started": lambda tag: self.event(tag).set(),
        }


@pytest.fixture
def crashy(tmp_path, key) -> Path:
    app = write_app(tmp_path / "crashy", APP, name="crashy", max_threads=4)
    return build(app, key, tmp_path / "crashy.bundle")


def _call_in_thread(fn, *args) -> tuple[threading.Thread, list[BaseException | object]]:
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(fn(*args))
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, outcome


def _assert_reaped(pid: int) -> None:
    assert not Path(f"/proc/{pid}").exists(), f"enclave process {pid} left behind"


def test_sigkill_mid_ecall_then_restart(crashy, tmp_path, sim_home):
    host = Host(tmp_path / "store")
    expected: dict[str, str] = {}
    with Enclave.open(crashy, ocalls=host.ocalls(), sim_home=sim_home) as enc:
        for i in range(ITERATIONS):
            key, value = f"k{i}", f"value {i} " + "x" * i
            enc.call.put(key, value)
            expected[key] = value
            tag = i + 1
            t, outcome = _call_in_thread(enc.call.slow, tag)
            assert host.event(tag).wait(30), "the slow ECALL never started"
            pid = enc.pid
            os.kill(pid, signal.SIGKILL)
            t.join(30)
            assert not t.is_alive()
            assert len(outcome) == 1 and isinstance(outcome[0], EnclaveLost), outcome
            with pytest.raises(EnclaveLost):
                enc.call.get(key)  # the handle stays lost until restart()
            enc.restart()
            _assert_reaped(pid)
            assert enc.pid != pid
            for k, v in expected.items():
                assert enc.call.get(k) == v
        assert sorted(p.name for p in (tmp_path / "store").iterdir()) == sorted(
            f"{k}.sealed" for k in expected
        ), "a temporary file was left behind"


def test_data_written_before_kill_in_same_ecall_is_intact(crashy, tmp_path, sim_home):
    host = Host(tmp_path / "store")
    with Enclave.open(crashy, ocalls=host.ocalls(), sim_home=sim_home) as enc:
        enc.call.put("k", "old")
        t, outcome = _call_in_thread(enc.call.slow_put, "k", "new")
        assert host.event(0).wait(30)
        os.kill(enc.pid, signal.SIGKILL)
        t.join(30)
        assert isinstance(outcome[0], EnclaveLost)
        enc.restart()
        assert enc.call.get("k") == "new"


def test_all_pending_calls_get_enclave_lost(crashy, tmp_path, sim_home):
    host = Host(tmp_path / "store")
    with Enclave.open(crashy, ocalls=host.ocalls(), sim_home=sim_home) as enc:
        enc.call.put("k", "v")
        running = [_call_in_thread(enc.call.slow, tag) for tag in range(1, 5)]
        for tag in range(1, 5):
            assert host.event(tag).wait(30), f"ECALL {tag} never started"
        # two more wait for a free thread slot (max_threads = 4)
        queued = [_call_in_thread(enc.call.slow, tag) for tag in (5, 6)]
        pid = enc.pid
        os.kill(pid, signal.SIGKILL)
        for t, outcome in running + queued:
            t.join(30)
            assert not t.is_alive()
            assert len(outcome) == 1 and isinstance(outcome[0], EnclaveLost), outcome
        enc.restart()
        _assert_reaped(pid)
        assert enc.call.get("k") == "v"


def test_enclave_exit_on_its_own_is_lost_too(crashy, tmp_path, sim_home):
    host = Host(tmp_path / "store")
    with Enclave.open(crashy, ocalls=host.ocalls(), sim_home=sim_home) as enc:
        t, outcome = _call_in_thread(enc.call.slow, 1)
        assert host.event(1).wait(30)
        os.kill(enc.pid, signal.SIGTERM)
        t.join(30)
        assert isinstance(outcome[0], EnclaveLost)
        enc.restart()
        assert enc.call.get("missing") is None
