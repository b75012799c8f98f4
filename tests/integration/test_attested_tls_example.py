"""examples/attested_tls: an HTTPS server inside a (simulated) enclave, end to end.

Real enclave processes, real TLS on loopback, the real httpx client with our transport,
and the real ``openssl s_client``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import REPO, build
from enklave.atls import verify_certificate
from enklave.atls.transport import AttestedTransport
from enklave.backends.simulation import SimPlatform
from enklave.errors import PolicyError
from enklave.verify import TrustAnchor, Verifier, default_policy

EXAMPLE = REPO / "examples" / "attested_tls"


def _host_module():
    spec = importlib.util.spec_from_file_location("attested_tls_host", EXAMPLE / "host.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


HOST = _host_module()


@pytest.fixture
def bundle(tmp_path: Path, key) -> Path:
    return build(EXAMPLE, key, tmp_path / "attested_tls.bundle")


@pytest.fixture
def mrenclave(bundle: Path) -> bytes:
    from enklave.package import read_bundle

    return read_bundle(bundle).mrenclave


@pytest.fixture
def enclave(bundle: Path, sim_home: Path) -> Iterator[object]:
    with HOST.open_attested_tls(bundle, sim_home) as enc:
        yield enc


def test_client_with_matching_policy_gets_the_response(enclave, sim_home, mrenclave) -> None:
    port = enclave.call.start(0)
    verifier = HOST.client_verifier(sim_home, mrenclave=mrenclave)
    with httpx.Client(transport=AttestedTransport(verifier=verifier)) as client:
        response = client.get(f"https://127.0.0.1:{port}/hello")
        again = client.get(f"https://127.0.0.1:{port}/again")  # same (attested) connection
    assert response.status_code == 200 and again.status_code == 200
    body = response.json()
    assert body["message"] == "hello from inside the enclave"
    assert body["mrenclave"] == mrenclave.hex() and body["simulated"] is True
    peer = response.extensions["enklave.peer"]
    assert peer.format == "tcg-dice" and peer.enclave.mrenclave == mrenclave
    assert enclave.call.stats("https")["requests"] == 2


def test_client_with_other_mrenclave_is_refused_before_sending_a_byte(
    enclave, sim_home, mrenclave
) -> None:
    port = enclave.call.start(0)
    wrong = HOST.client_verifier(
        sim_home, mrenclave=mrenclave,
        policy=default_policy(mrenclave=[b"\x42" * 32], allow_simulated=True),
    )
    with pytest.raises(PolicyError) as info:
        with httpx.Client(transport=AttestedTransport(verifier=wrong)) as client:
            client.get(f"https://127.0.0.1:{port}/secret-request")
    assert info.value.check == "mrenclave"
    deadline = time.monotonic() + 5
    while enclave.call.stats("https")["handshakes"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    stats = enclave.call.stats("https")
    assert stats["handshakes"] >= 1          # the client did reach the enclave's TLS ...
    assert stats["bytes_received"] == 0      # ... and sent it not one application byte
    assert stats["requests"] == 0


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command line not installed")
def test_openssl_s_client_shows_the_cert_and_our_verifier_accepts_it(
    enclave, sim_home, mrenclave
) -> None:
    port = enclave.call.start(0)
    proc = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-showcerts"],
        input=b"", capture_output=True, timeout=60,
    )
    out = proc.stdout.decode(errors="replace")
    assert "attested-tls-example" in out  # the subject openssl printed
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", out, re.S)
    assert pem is not None, out
    platform = SimPlatform.load(sim_home)
    peer = verify_certificate(
        pem.group(0).encode(),
        verifier=Verifier(anchors=TrustAnchor.simulation(sim_home),
                          collateral=platform.collateral()),
        policy=default_policy(mrenclave=[mrenclave], allow_simulated=True),
        now=int(time.time()),
    )
    assert peer.enclave.mrenclave == mrenclave and peer.format == "tcg-dice"


def test_mutual_attested_tls_between_two_enclaves(bundle, sim_home, mrenclave) -> None:
    collateral = HOST.collateral_json(sim_home)
    with HOST.open_attested_tls(bundle, sim_home) as server, \
            HOST.open_attested_tls(bundle, sim_home) as client:
        port = server.call.start_mutual(0, collateral)
        body = json.loads(client.call.ask_peer(port, collateral))
        assert body["client_mrenclave"] == mrenclave.hex()
        assert body["path"] == "/from-a-peer"
        # a client that is not attested (no certificate) gets nothing
        verifier = HOST.client_verifier(sim_home, mrenclave=mrenclave)
        with pytest.raises(Exception):  # noqa: B017 - refused by the server's TLS layer
            with httpx.Client(transport=AttestedTransport(verifier=verifier)) as plain:
                plain.get(f"https://127.0.0.1:{port}/no-client-cert")
        stats = server.call.stats("mutual")
        assert stats["requests"] == 1 and stats["refused"] >= 1


def test_demo_runs(tmp_path: Path) -> None:
    env = dict(os.environ, ENKLAVE_SIM_HOME=str(tmp_path / "sim"))
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE / "demo.py")], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "REFUSED (mrenclave)" in proc.stdout
    assert "application bytes the server received from that client: 0" in proc.stdout
    assert '"client_mrenclave"' in proc.stdout
