"""The in-enclave attested TLS server over real loopback TLS (simulated evidence).

Server-only aTLS: stdlib ``ssl`` clients (and ``http.client``) that then attest the
certificate the server presented. Mutual aTLS: clients presenting issued credentials, no
certificate, a plain self-signed certificate, or evidence of another enclave; the refused
ones never reach the handler and never get a byte read.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _atls_testkit import MRENCLAVE, evidence_for, peers, plain_cert, settle
from _atls_testkit import OTHER_MRENCLAVE as OTHER
from enklave.atls._asgi import start_asgi_server
from enklave.atls._client import connect
from enklave.atls._issue import Credentials, issue_credentials
from enklave.atls._rotate import RotatingCredentials
from enklave.atls._server import BackgroundServer, start_server
from enklave.atls._verify import PeerVerifier, verify_certificate
from enklave.backends.simulation import SimPlatform
from enklave.errors import AtlsError, PolicyError
from enklave.verify import TrustAnchor, Verifier, default_policy


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[SimPlatform, Path]:
    home = tmp_path_factory.mktemp("sim") / "platform"
    return SimPlatform.init(home), home


@pytest.fixture(scope="module")
def creds(sim) -> Credentials:
    return issue_credentials(evidence=evidence_for(sim[0]))


def verifier(sim) -> Verifier:
    return Verifier(anchors=TrustAnchor.simulation(sim[1]), collateral=sim[0].collateral())


def insecure_client() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # authentication is the attestation that follows
    return ctx


def tls(port: int, ctx: ssl.SSLContext | None = None, sni: str | None = None) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return (ctx or insecure_client()).wrap_socket(sock, server_hostname=sni)


def recv_until_closed(sock: ssl.SSLSocket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ssl.SSLError, OSError):
        pass
    return data


async def echo(reader, writer, peer) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


@pytest.fixture
def echo_server(creds) -> Iterator[BackgroundServer]:
    with start_server(echo, credentials=creds) as server:
        yield server


# -- server-only aTLS ---------------------------------------------------------------
def test_server_presents_its_attested_certificate(echo_server, creds, sim) -> None:
    with tls(echo_server.port) as sock:
        der = sock.getpeercert(binary_form=True)
        assert der == creds.certificate_der
        policy = default_policy(mrenclave=[MRENCLAVE], allow_simulated=True)
        peer = verify_certificate(der, verifier=verifier(sim), policy=policy,
                                  now=int(time.time()))
        assert peer.enclave.mrenclave == MRENCLAVE
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        sock.sendall(b"ping")
        assert sock.recv(10) == b"ping"
    settle(echo_server, connections=1, handshakes=1, bytes_received=4, refused=0)


def test_attesting_client_refuses_another_enclave_before_sending_a_byte(echo_server, sim):
    with pytest.raises(PolicyError):
        connect("127.0.0.1", echo_server.port, verifier=peers(sim[0], OTHER))
    with connect("127.0.0.1", echo_server.port, verifier=peers(sim[0])) as sock:
        sock.sendall(b"hello")
        assert sock.recv(10) == b"hello"
    settle(echo_server, connections=2, handshakes=2, bytes_received=5)


def test_tls12_client_is_served(echo_server) -> None:
    ctx = insecure_client()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with tls(echo_server.port, ctx) as sock:
        assert sock.version() == "TLSv1.2"
        sock.sendall(b"x")
        assert sock.recv(1) == b"x"


def test_plaintext_garbage_does_not_hurt_the_server(echo_server) -> None:
    with socket.create_connection(("127.0.0.1", echo_server.port), timeout=10) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        try:
            while raw.recv(4096):
                pass
        except OSError:
            pass
    with tls(echo_server.port) as sock:
        sock.sendall(b"ok")
        assert sock.recv(2) == b"ok"
    settle(echo_server, connections=2, handshakes=1, bytes_received=2)


def test_handler_failure_ends_only_that_connection(creds) -> None:
    async def broken(reader, writer, peer) -> None:
        if await reader.read(1) == b"!":
            raise RuntimeError("handler bug")
        writer.write(b"fine")

    with start_server(broken, credentials=creds) as server:
        with tls(server.port) as sock:
            sock.sendall(b"!")
            assert recv_until_closed(sock) == b""
        with tls(server.port) as sock:
            sock.sendall(b"?")
            assert recv_until_closed(sock) == b"fine"


def test_rotating_credentials_switch_for_new_connections(sim) -> None:
    clock = [0.0]
    rot = RotatingCredentials(interval=30, clock=lambda: clock[0],
                              evidence=evidence_for(sim[0]))  # fmt: skip
    with start_server(echo, credentials=rot) as server:
        with tls(server.port) as first_conn:
            first = first_conn.getpeercert(True)
            clock[0] = 31
            with tls(server.port, sni="enclave.example") as second_conn:
                second = second_conn.getpeercert(True)
            first_conn.sendall(b"still")  # the old connection keeps its credentials
            assert first_conn.recv(5) == b"still"
        with tls(server.port) as third_conn:  # no SNI: switched all the same
            third = third_conn.getpeercert(True)
    assert first != second == third == rot.current().certificate_der
    policy = default_policy(mrenclave=[MRENCLAVE], allow_simulated=True)
    for der in (first, second):
        verify_certificate(der, verifier=verifier(sim), policy=policy, now=int(time.time()))


def test_listen_failure_is_typed(echo_server, creds) -> None:
    with pytest.raises(AtlsError) as info:
        start_server(echo, credentials=creds, port=echo_server.port)
    assert info.value.code == "listen"


# -- ASGI --------------------------------------------------------------------------
async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                scope["state"]["greeting"] = "hello"
                await send({"type": "lifespan.startup.complete"})
            else:
                LIFESPAN.append("shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    path = scope["path"]
    if path == "/boom":
        raise RuntimeError("app bug")
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    peer = scope["extensions"]["enklave.peer"]
    text = (f"{scope['method']} {path} q={scope['query_string'].decode()} "
            f"scheme={scope['scheme']} greeting={scope['state'].get('greeting')} "
            f"peer={peer.enclave.mrenclave.hex()[:4] if peer else None} body=").encode() + body
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": text})


LIFESPAN: list[str] = []


@pytest.fixture
def asgi_server(creds) -> Iterator[BackgroundServer]:
    with start_asgi_server(app, credentials=creds) as server:
        yield server


def https(server: BackgroundServer) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection("127.0.0.1", server.port, context=insecure_client(),
                                       timeout=10)  # fmt: skip


def test_asgi_requests_over_keep_alive(asgi_server) -> None:
    conn = https(asgi_server)
    conn.request("GET", "/hello%20world?x=1")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("content-type") == "text/plain"
    assert resp.read() == b"GET /hello world q=x=1 scheme=https greeting=hello peer=None body="
    conn.request("POST", "/echo", body=b"payload")
    resp = conn.getresponse()
    assert resp.read().endswith(b"POST /echo q= scheme=https greeting=hello peer=None body=payload")
    conn.request("GET", "/stream")
    resp = conn.getresponse()
    assert resp.getheader("transfer-encoding") == "chunked" and resp.read() == b"one,two,three"
    conn.request("HEAD", "/x")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b""
    conn.close()
    settle(asgi_server, connections=1, handshakes=1, requests=4)


def test_asgi_pipelined_requests(asgi_server) -> None:
    with tls(asgi_server.port) as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                     b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")  # fmt: skip
        data = recv_until_closed(sock)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert b"GET /a" in data
    assert b"POST /b q= scheme=https greeting=hello peer=None body=abc" in data
    assert data.index(b"GET /a") < data.index(b"POST /b") < data.index(b"GET /c")


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NOT HTTP\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
         411),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n", 413),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431),
    ],
)
def test_asgi_bad_requests_get_clean_errors(asgi_server, request_bytes, status) -> None:
    with tls(asgi_server.port) as sock:
        sock.sendall(request_bytes)
        data = recv_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 %d " % status)
    assert b"connection: close" in data
    conn = https(asgi_server)  # the server goes on
    conn.request("GET", "/after")
    assert conn.getresponse().status == 200
    conn.close()


def test_asgi_app_failure_is_an_opaque_500(asgi_server) -> None:
    conn = https(asgi_server)
    conn.request("GET", "/boom")
    resp = conn.getresponse()
    assert resp.status == 500 and b"app bug" not in resp.read()
    conn.close()
    conn = https(asgi_server)
    conn.request("GET", "/ok")
    assert conn.getresponse().status == 200
    conn.close()


def test_asgi_lifespan_runs_startup_and_shutdown(creds) -> None:
    LIFESPAN.clear()
    server = start_asgi_server(app, credentials=creds)
    assert LIFESPAN == []
    server.stop()
    server.stop()  # idempotent
    assert LIFESPAN == ["shutdown"]


def test_refused_attestation_leaves_the_asgi_server_untouched(asgi_server, sim) -> None:
    with pytest.raises(PolicyError):
        connect("127.0.0.1", asgi_server.port, verifier=peers(sim[0], OTHER))
    settle(asgi_server, connections=1, handshakes=1)
    time.sleep(0.1)
    assert asgi_server.stats.bytes_received == 0 and asgi_server.stats.requests == 0


# -- mutual aTLS -------------------------------------------------------------------
def plain_client(tmp_path: Path) -> ssl.SSLContext:
    """A client presenting an ordinary self-signed certificate (no evidence)."""
    cert = plain_cert(tmp_path, name="client")
    ctx = insecure_client()
    ctx.load_cert_chain(cert.cert_file, cert.key_file)
    return ctx


class Seen:
    def __init__(self) -> None:
        self.peers: list[object] = []

    async def handler(self, reader, writer, peer) -> None:
        self.peers.append(peer)
        await echo(reader, writer, peer)


@pytest.fixture
def mutual(creds, sim) -> Iterator[tuple[BackgroundServer, Seen, PeerVerifier]]:
    seen, verifier_ = Seen(), peers(sim[0])
    with start_server(seen.handler, credentials=creds, peer_verifier=verifier_) as server:
        yield server, seen, verifier_


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_mutual_accepts_an_attested_client(mutual, creds, sim, version) -> None:
    server, seen, verifier_ = mutual
    client = issue_credentials(evidence=evidence_for(sim[0]))
    ctx = client.client_context()
    ctx.maximum_version = version
    for _ in range(2):
        with tls(server.port, ctx) as sock:
            assert sock.version() == version.name.replace("_", ".")
            assert sock.getpeercert(True) == creds.certificate_der
            sock.sendall(b"attested")
            assert sock.recv(100) == b"attested"
    assert len(seen.peers) == 2
    peer = seen.peers[0]
    assert peer.certificate.der == client.certificate_der and peer.enclave.mrenclave == MRENCLAVE
    assert verifier_.hits == 1 and verifier_.misses == 1  # the second handshake used the cache
    settle(server, connections=2, handshakes=2, refused=0, bytes_received=16)


def test_mutual_carries_large_payloads(mutual, sim) -> None:
    server, _, _ = mutual
    client = issue_credentials(evidence=evidence_for(sim[0]))
    payload = bytes(range(256)) * 8192  # 2 MiB
    with tls(server.port, client.client_context()) as sock:
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            got += sock.recv(1 << 20)
    assert got == payload


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest.mark.parametrize("client_kind", ["no certificate", "plain self-signed", "other enclave"])
def test_mutual_refuses_unattested_clients(mutual, sim, tmp_path, client_kind, version) -> None:
    server, seen, _ = mutual
    if client_kind == "no certificate":
        ctx = insecure_client()
    elif client_kind == "plain self-signed":
        ctx = plain_client(tmp_path)
    else:
        ctx = issue_credentials(evidence=evidence_for(sim[0], OTHER))._new_context(
            ssl.PROTOCOL_TLS_CLIENT
        )
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.maximum_version = version
    try:
        with tls(server.port, ctx) as sock:
            sock.sendall(b"secret request")
            assert recv_until_closed(sock) == b""
    except (ssl.SSLError, ConnectionError):
        pass  # refused during the handshake (TLS 1.2) or right after it (TLS 1.3)
    settle(server, connections=1, refused=1, bytes_received=0)
    assert seen.peers == []


def test_mutual_asgi_scope_carries_the_peer(creds, sim) -> None:
    client = issue_credentials(evidence=evidence_for(sim[0]))
    with start_asgi_server(app, credentials=creds, peer_verifier=peers(sim[0])) as server:
        conn = http.client.HTTPSConnection("127.0.0.1", server.port,
                                           context=client.client_context(), timeout=10)
        conn.request("GET", "/who")
        assert conn.getresponse().read().endswith(b"peer=1111 body=")
        conn.close()


def test_stop_ends_open_connections(creds) -> None:
    server = start_server(echo, credentials=creds)
    sock = tls(server.port)
    sock.sendall(b"x")
    assert sock.recv(1) == b"x"
    server.stop()
    assert recv_until_closed(sock) == b""
    sock.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def test_serve_in_a_caller_owned_loop(creds) -> None:
    from enklave.atls._server import serve

    async def main() -> bytes:
        server = await serve(echo, credentials=creds)
        port = server.sockets[0].getsockname()[1]
        ctx = insecure_client()
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        writer.write(b"loop")
        data = await reader.read(4)
        writer.close()
        server.close()
        return data

    assert asyncio.run(main()) == b"loop"


def test_asgi_expect_100_continue(asgi_server) -> None:
    with tls(asgi_server.port) as sock:
        sock.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                     b"Expect: 100-continue\r\n\r\n")  # fmt: skip
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"data")
        head_and_body = b""
        while not head_and_body.endswith(b"body=data"):
            head_and_body += sock.recv(1000)
        assert head_and_body.startswith(b"HTTP/1.1 200 OK")


def test_mutual_with_rotating_credentials(sim) -> None:
    clock = [0.0]
    rot = RotatingCredentials(interval=10, clock=lambda: clock[0], evidence=evidence_for(sim[0]))
    client = issue_credentials(evidence=evidence_for(sim[0]))
    seen = []
    with start_server(echo, credentials=rot, peer_verifier=peers(sim[0])) as server:
        for _ in range(2):
            with tls(server.port, client.client_context()) as sock:
                seen.append(sock.getpeercert(True))
                sock.sendall(b"r")
                assert sock.recv(1) == b"r"
            clock[0] += 11
    assert seen[0] != seen[1] and rot.issued == 2
