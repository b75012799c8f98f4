"""`enklave serve` end to end: real enclave processes serving ECALLs over attested TLS."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from _serve_testkit import HELLO_HOST, ServeProcess, process_gone, verifier_for
from enklave._encoding import dumps, loads
from enklave.atls.transport import attested_client
from enklave.errors import (
    AtlsError,
    BoundsError,
    EnclaveCallError,
    InterfaceError,
    PolicyError,
)
from enklave.host import Enclave, RemoteEnclave
from enklave.verify import default_policy

FAULTY = '''
from typing import Annotated
from enklave.enclave import EnclaveApp, MaxLen

app = EnclaveApp("faulty")

@app.ocall
def note(line: Annotated[str, MaxLen(100)]) -> None: ...

@app.ecall
def boom(word: Annotated[str, MaxLen(32)]) -> None:
    raise ValueError("secret detail " + word)

@app.ecall
def liar() -> Annotated[str, MaxLen(4)]:
    return "far too long"

@app.ecall
def echo(data: Annotated[bytes, MaxLen(64)]) -> Annotated[bytes, MaxLen(64)]:
    note("echo " + data.hex())
    return data
'''
FAULTY_HOST = '''
import sys
def ocalls(state_dir):
    def note(line):
        print("note:", line, file=sys.stderr, flush=True)
    return {"note": note}
'''


@pytest.fixture(scope="module")
def hello(tmp_path_factory, key):
    from conftest import HELLO_DIR, build

    tmp = tmp_path_factory.mktemp("serve-hello")
    bundle = build(HELLO_DIR, key, tmp / "hello.bundle")
    server = ServeProcess(bundle, tmp / "sim", "--ocalls", str(HELLO_HOST),
                          "--state", str(tmp / "state"))
    server.bundle, server.state = bundle, tmp / "state"
    yield server
    server.kill()


@pytest.fixture(scope="module")
def faulty(tmp_path_factory, key):
    from conftest import build, write_app

    tmp = tmp_path_factory.mktemp("serve-faulty")
    app = write_app(tmp / "app", FAULTY, name="faulty", max_threads=2)
    (tmp / "host.py").write_text(FAULTY_HOST)
    bundle = build(app, key, tmp / "faulty.bundle")
    server = ServeProcess(bundle, tmp / "sim", "--ocalls", str(tmp / "host.py"),
                          bind="0.0.0.0")
    yield server
    server.kill()


def _remote(server: ServeProcess, **kw) -> RemoteEnclave:
    return RemoteEnclave(server.url, verifier=verifier_for(server.sim_home, server.mrenclave),
                         **kw)


def _raw(server: ServeProcess) -> httpx.Client:
    return attested_client(verifier=verifier_for(server.sim_home, server.mrenclave), timeout=30)


def test_banner_names_the_measurement_and_simulation(hello) -> None:
    from enklave.package._build import read_bundle

    assert hello.mrenclave == read_bundle(hello.bundle).mrenclave
    assert hello.mode == "SIMULATED: no hardware protection"


def test_remote_calls_match_local_ecalls(hello, open_hello, tmp_path) -> None:
    with _remote(hello) as remote:
        greeting = remote.call.greet("Ada")
        assert remote.call.put("colour", "ultramarine") is None
        assert remote.call.get("colour") == "ultramarine"
        assert remote.call.get("absent") is None
        who = remote.call.whoami()
        assert remote.peer.enclave.mrenclave == hello.mrenclave
    assert "greeting Ada" in hello.log  # the OCALL ran on the host (log to stderr)
    with open_hello(hello.bundle, hello.state, quiet=True, sim_home=hello.sim_home) as enc:
        assert enc.call.greet("Ada") == greeting
        assert enc.call.whoami() == who
        assert enc.call.get("colour") == "ultramarine"  # sealed by the served enclave


def test_concurrent_remote_calls_with_ocalls(hello) -> None:
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            with _remote(hello) as remote:
                for j in range(5):
                    name = f"n{i}-{j}"
                    assert remote.call.greet(name) == f"Hello, {name}, from inside the enclave!"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []


def test_identity_and_health(hello) -> None:
    with _remote(hello) as remote:
        assert remote.health()
        ident = remote.identity()
        assert ident == remote.call.whoami()
        assert ident["mrenclave"] == hello.mrenclave.hex() and ident["simulated"] is True
    with _raw(hello) as client:
        r = client.get(hello.url + "/enklave/v1/health")
        assert (r.status_code, r.text, r.headers["content-type"]) == (200, "ok", "text/plain")
        r = client.get(hello.url + "/enklave/v1/identity")
        assert r.headers["content-type"] == "application/json" and r.json() == ident


def test_wrong_mrenclave_is_refused_before_a_byte(hello) -> None:
    policy = default_policy(mrenclave=[b"\x42" * 32], allow_simulated=True)
    verifier = verifier_for(hello.sim_home, hello.mrenclave, policy)
    with RemoteEnclave(hello.url, verifier=verifier) as remote, pytest.raises(PolicyError):
        remote.call.put("refused", "never stored")
    assert not (hello.state / "refused.sealed").exists()
    assert "refused" not in hello.log


def test_bad_cbor_body_is_400(hello) -> None:
    with _raw(hello) as client:
        for body, code in [(b"\xff", "encoding"), (b"", "encoding"), (b"\x81\x61", "encoding"),
                           (dumps({"a": 1}), "interface"), (dumps("Ada"), "interface")]:
            r = client.post(hello.url + "/enklave/v1/ecall/greet", content=body)
            assert r.status_code == 400, body
            assert loads(r.content)["error"] == code


def test_unknown_ecall_and_paths_are_404(hello) -> None:
    with _remote(hello) as remote:
        with pytest.raises(InterfaceError) as info:
            remote.call.nope()
        assert info.value.code == "not_found"
        with pytest.raises(InterfaceError):  # runtime ECALLs are unreachable over HTTP
            remote.ecall("__enklave_gateway__", [0, "0.0.0.0"])
    with _raw(hello) as client:
        for path in ["/", "/enklave/v1/ecall/", "/enklave/v1/ecall/__enklave_gateway_worker__",
                     "/enklave/v1/ecall/greet/x", "/enklave/v2/health"]:
            r = client.post(hello.url + path, content=dumps([]))
            assert r.status_code == 404, path
        assert client.get(hello.url + "/enklave/v1/ecall/greet").status_code == 405
        assert client.post(hello.url + "/enklave/v1/health").status_code == 405


def test_argument_checks_are_the_ecall_checks(hello) -> None:
    with _remote(hello) as remote:
        with pytest.raises(BoundsError) as info:
            remote.call.greet("x" * 65)
        assert info.value.code == "bounds"
        with pytest.raises(BoundsError):
            remote.call.greet(7)
        with pytest.raises(BoundsError):
            remote.call.greet("Ada", "extra")
        with pytest.raises(BoundsError):
            remote.call.put("../escape", "x" * 4097)
        assert remote.call.greet("x" * 64).startswith("Hello, x")


def test_oversized_body_is_refused(hello) -> None:
    with _raw(hello) as client:
        r = client.post(hello.url + "/enklave/v1/ecall/greet", content=b"\x00" * (1024 * 1024 + 1))
        assert r.status_code == 413
    with _remote(hello) as remote:
        with pytest.raises(BoundsError):
            remote.ecall("greet", ["x" * (2 * 1024 * 1024)])
        assert remote.health()


def test_raising_ecall_is_an_opaque_500(faulty) -> None:
    with _raw(faulty) as client:
        r = client.post(faulty.url + "/enklave/v1/ecall/boom", content=dumps(["w0rd"]))
    assert r.status_code == 500
    doc = loads(r.content)
    assert doc["error"] == "ecall"
    assert "Traceback" not in r.text and "secret" not in r.text and "w0rd" not in r.text
    with _remote(faulty) as remote:
        with pytest.raises(EnclaveCallError) as info:
            remote.call.boom("again")
        assert info.value.code == "ecall" and "secret" not in str(info.value)
        with pytest.raises(EnclaveCallError):
            remote.call.liar()  # a result outside its declared type is the enclave's fault
        assert remote.call.echo(b"\x00\xff") == b"\x00\xff"  # OCALL from a custom host file
        assert remote.health()
    # the log reaches the host, so a production enclave logs the type, not the client's data
    assert "ValueError" in faulty.log and "secret detail w0rd" not in faulty.log
    assert "note: echo 00ff" in faulty.log


def test_bind_all_interfaces(faulty) -> None:
    assert faulty.url.endswith(str(faulty.port))
    import socket

    with socket.create_connection(("127.0.0.1", faulty.port), timeout=5):
        pass
    assert any("serving https://0.0.0.0:" in line for line in faulty.lines)


def test_call_cli(hello, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(f'mrenclave = ["{hello.mrenclave.hex()}"]\nallow_simulated = true\n')
    base = [sys.executable, "-m", "enklave", "call", hello.url]
    trust = ["--policy", str(policy), "--sim", str(hello.sim_home)]
    out = subprocess.run([*base, "greet", '"Cli"', *trust], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == "Hello, Cli, from inside the enclave!"
    out = subprocess.run([*base, "whoami", *trust, "--json"], capture_output=True, text=True,
                         timeout=60)
    doc = json.loads(out.stdout)
    assert doc["result"]["mrenclave"] == hello.mrenclave.hex()
    assert doc["peer"]["enclave"]["mrenclave"] == hello.mrenclave.hex()
    out = subprocess.run([*base, "greet", "Ada", *trust], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1 and "not JSON" in out.stderr
    policy.write_text(f'mrenclave = ["{"00" * 32}"]\nallow_simulated = true\n')
    out = subprocess.run([*base, "greet", '"Ada"', *trust, "--json"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1 and json.loads(out.stdout)["error"] == "policy"


def test_remote_refuses_plain_urls() -> None:
    with pytest.raises(AtlsError) as info:
        RemoteEnclave("http://127.0.0.1:1", verifier=None)  # type: ignore[arg-type]
    assert info.value.code == "scheme"


def test_unreachable_server_is_a_connect_error(hello, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    remote = RemoteEnclave(f"https://127.0.0.1:{port}",
                           verifier=verifier_for(hello.sim_home, hello.mrenclave))
    with remote, pytest.raises(AtlsError) as info:
        remote.call.greet("x")
    assert info.value.code == "connect"


def test_sigterm_exits_0_and_the_enclave_is_gone(hello_bundle, tmp_path: Path) -> None:
    server = ServeProcess(hello_bundle, tmp_path / "sim", "--ocalls", str(HELLO_HOST),
                          "--state", str(tmp_path / "state"))
    try:
        (child,) = server.enclave_pids()
        with _remote(server) as remote:
            assert remote.call.greet("bye").startswith("Hello")
        assert server.terminate() == 0
        assert process_gone(child)
        assert "stopped: the enclave was closed" in server.log
    finally:
        server.kill()


def test_serve_refuses_a_port_in_use(hello, hello_bundle, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "enklave", "serve", str(hello_bundle), "--port",
           str(hello.port), "--sim-home", str(tmp_path / "sim"), "--ocalls", str(HELLO_HOST),
           "--state", str(tmp_path / "state")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "cannot listen" in out.stderr


def test_missing_ocalls_file_is_a_config_error(hello_bundle, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "enklave", "serve", str(hello_bundle),
                          "--port", "0", "--sim-home", str(tmp_path / "sim")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "no host implementation" in out.stderr


def test_local_enclave_handle_unchanged(hello_bundle, sim_home, tmp_path) -> None:
    from conftest import load_hello_host

    table = load_hello_host().ocalls(tmp_path / "st")
    with Enclave.open(hello_bundle, ocalls=table, sim_home=sim_home) as enc:
        assert enc.call.put("k", "v") is None and enc.call.get("k") == "v"


def test_serve_exits_1_when_the_enclave_dies(hello_bundle, tmp_path: Path) -> None:
    import os
    import signal

    server = ServeProcess(hello_bundle, tmp_path / "sim", "--ocalls", str(HELLO_HOST),
                          "--state", str(tmp_path / "state"))
    try:
        (child,) = server.enclave_pids()
        os.kill(child, signal.SIGKILL)
        assert server.proc.wait(timeout=30) == 1
        server._reader.join(timeout=5)
        assert "the enclave stopped serving" in server.log
    finally:
        server.kill()
