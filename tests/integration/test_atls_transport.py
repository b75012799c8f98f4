"""httpx over attested TLS: real loopback TLS servers, real httpx clients.

Each refusal is proved by the server's counter of application bytes received staying 0:
the transport attests the server before httpcore may write a request byte.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from _atls_testkit import (
    MRENCLAVE,
    MRSIGNER,
    OTHER_MRENCLAVE,
    CountingTLSServer,
    TestCert,
    attested_cert,
    evidence_for,
    peers,
    plain_cert,
)
from enklave.atls._asgi import start_asgi_server
from enklave.atls._issue import issue_credentials
from enklave.atls._verify import AttestedPeer
from enklave.atls.transport import PEER_EXTENSION, AsyncAttestedTransport, AttestedTransport
from enklave.backends.simulation import SimPlatform
from enklave.errors import AtlsError, CertificateError, PolicyError, VerificationError


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> SimPlatform:
    return SimPlatform.init(tmp_path_factory.mktemp("sim"))


@pytest.fixture(scope="module")
def enclave_cert(platform: SimPlatform, tmp_path_factory: pytest.TempPathFactory) -> TestCert:
    return attested_cert(platform, tmp_path_factory.mktemp("certs"))


def url(srv: CountingTLSServer, path: str = "/hello") -> str:
    return f"https://127.0.0.1:{srv.port}{path}"


def refused_with_no_bytes(srv: CountingTLSServer) -> None:
    srv.join_handlers()
    assert srv.connections == 1, "the client did connect (and handshake)"
    assert srv.bytes_received == 0 and srv.requests == 0


# ----------------------------------------------------------------- sync


def test_matching_policy_gets_the_response_and_the_peer(
    platform: SimPlatform, enclave_cert: TestCert
) -> None:
    with CountingTLSServer(enclave_cert.server_context()) as srv:
        with httpx.Client(transport=AttestedTransport(verifier=peers(platform))) as client:
            r = client.get(url(srv))
        assert r.status_code == 200 and r.text == "hello from the enclave"
        peer = r.extensions[PEER_EXTENSION]
        assert isinstance(peer, AttestedPeer)
        assert peer.enclave.mrenclave == MRENCLAVE and peer.enclave.mrsigner == MRSIGNER
        assert peer.format == "tcg-dice" and peer.binding == "dice-claims"
        assert srv.requests == 1 and srv.bytes_received > 0


def test_rejects_enclave_the_policy_does_not_name_before_sending_a_byte(
    platform: SimPlatform, enclave_cert: TestCert
) -> None:
    with CountingTLSServer(enclave_cert.server_context()) as srv:
        transport = AttestedTransport(verifier=peers(platform, OTHER_MRENCLAVE))
        with httpx.Client(transport=transport) as client, pytest.raises(PolicyError) as info:
            client.post(url(srv), content=b"secret prompt")
        assert "MRENCLAVE" in str(info.value) or info.value.check
        refused_with_no_bytes(srv)


def test_rejects_plain_tls_server_missing_extension(platform: SimPlatform, tmp_path: Path) -> None:
    with CountingTLSServer(plain_cert(tmp_path).server_context()) as srv:
        with httpx.Client(transport=AttestedTransport(verifier=peers(platform))) as client:
            with pytest.raises(CertificateError) as info:
                client.get(url(srv))
        assert info.value.code == "missing_extension"
        refused_with_no_bytes(srv)


def test_rejects_key_swapped_certificate(platform: SimPlatform, tmp_path: Path) -> None:
    cert = attested_cert(platform, tmp_path, swap_key=True)
    with CountingTLSServer(cert.server_context()) as srv:
        with httpx.Client(transport=AttestedTransport(verifier=peers(platform))) as client:
            with pytest.raises(VerificationError) as info:
                client.get(url(srv))
        assert info.value.code == "key_binding"
        refused_with_no_bytes(srv)


def test_rejects_debug_enclave(platform: SimPlatform, tmp_path: Path) -> None:
    cert = attested_cert(platform, tmp_path, debug=True)
    with CountingTLSServer(cert.server_context()) as srv:
        with httpx.Client(transport=AttestedTransport(verifier=peers(platform))) as client:
            with pytest.raises(PolicyError):
                client.get(url(srv))
        refused_with_no_bytes(srv)


def test_http_url_is_refused_without_connecting(
    platform: SimPlatform, enclave_cert: TestCert
) -> None:
    with CountingTLSServer(enclave_cert.server_context()) as srv:
        with httpx.Client(transport=AttestedTransport(verifier=peers(platform))) as client:
            with pytest.raises(AtlsError) as info:
                client.get(f"http://127.0.0.1:{srv.port}/")
        assert info.value.code == "scheme" and "https://" in info.value.message
        assert srv.connections == 0


def test_keep_alive_reuses_the_attested_connection(
    platform: SimPlatform, enclave_cert: TestCert
) -> None:
    verifier = peers(platform)
    with CountingTLSServer(enclave_cert.server_context()) as srv:
        with httpx.Client(transport=AttestedTransport(verifier=verifier)) as client:
            peers_seen = {id(client.get(url(srv)).extensions[PEER_EXTENSION]) for _ in range(5)}
        assert srv.connections == 1 and srv.requests == 5
    assert (verifier.misses, verifier.hits) == (1, 0) and len(peers_seen) == 1


def test_new_connection_to_a_known_certificate_is_a_cache_hit(
    platform: SimPlatform, enclave_cert: TestCert
) -> None:
    verifier = peers(platform)
    with CountingTLSServer(enclave_cert.server_context()) as srv:
        for _ in range(2):
            with httpx.Client(transport=AttestedTransport(verifier=verifier)) as client:
                assert client.get(url(srv)).status_code == 200
        assert srv.connections == 2
    assert (verifier.misses, verifier.hits) == (1, 1)


def test_failed_attestation_is_not_cached(platform: SimPlatform, enclave_cert: TestCert) -> None:
    verifier = peers(platform, OTHER_MRENCLAVE)
    with CountingTLSServer(enclave_cert.server_context()) as srv:
        with httpx.Client(transport=AttestedTransport(verifier=verifier)) as client:
            for _ in range(2):
                with pytest.raises(PolicyError):
                    client.get(url(srv))
        srv.join_handlers()
        assert srv.connections == 2 and srv.bytes_received == 0
    assert verifier.misses == 2 and verifier.hits == 0


def test_unreachable_server_is_httpx_connect_error(platform: SimPlatform) -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    with httpx.Client(transport=AttestedTransport(verifier=peers(platform))) as client:
        with pytest.raises(httpx.ConnectError):
            client.get(f"https://127.0.0.1:{port}/")


def test_mutual_atls_presents_the_client_certificate(
    platform: SimPlatform, enclave_cert: TestCert
) -> None:
    creds = issue_credentials(evidence=evidence_for(platform, MRENCLAVE))
    ctx = enclave_cert.server_context()
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=creds.certificate_pem)
    with CountingTLSServer(ctx) as srv:
        transport = AttestedTransport(verifier=peers(platform), credentials=creds)
        with httpx.Client(transport=transport) as client:
            assert client.get(url(srv)).status_code == 200
        assert srv.peer_certs == [creds.certificate_der]
    # what the server side of mutual aTLS then checks:
    assert peers(platform).verify(srv.peer_certs[0]).enclave.mrenclave == MRENCLAVE


# ----------------------------------------------------------------- async


def test_async_transport_attests_refuses_and_keeps_alive(
    platform: SimPlatform, enclave_cert: TestCert, tmp_path: Path
) -> None:
    good, wrong = peers(platform), peers(platform, OTHER_MRENCLAVE)

    async def scenario(srv: CountingTLSServer, plain: CountingTLSServer) -> None:
        async with httpx.AsyncClient(transport=AsyncAttestedTransport(verifier=good)) as client:
            for _ in range(3):
                r = await client.get(url(srv))
                assert r.text == "hello from the enclave"
                assert r.extensions[PEER_EXTENSION].enclave.mrenclave == MRENCLAVE
        async with httpx.AsyncClient(transport=AsyncAttestedTransport(verifier=wrong)) as client:
            with pytest.raises(PolicyError):
                await client.get(url(srv))
            with pytest.raises(CertificateError):
                await client.get(url(plain))
            with pytest.raises(AtlsError):
                await client.get(f"http://127.0.0.1:{srv.port}/")

    with CountingTLSServer(enclave_cert.server_context()) as srv, \
            CountingTLSServer(plain_cert(tmp_path).server_context()) as plain:
        asyncio.run(scenario(srv, plain))
        srv.join_handlers()
        plain.join_handlers()
        # one kept-alive connection with three requests, then one refused with no bytes
        assert srv.requests == 3 and srv.bytes_per_connection[0] > 0
        assert srv.bytes_per_connection[1:] == [0]
        assert plain.connections == 1 and plain.bytes_received == 0
    assert (good.misses, good.hits) == (1, 0) and (wrong.misses, wrong.hits) == (2, 0)


# ----------------------------------------------------------------- mutual aTLS, end to end


CLIENT_MRENCLAVE = b"\x44" * 32


async def whoami(scope: dict[str, Any], receive: Any, send: Any) -> None:
    peer = scope["extensions"]["enklave.peer"]
    body = peer.enclave.mrenclave.hex().encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def test_mutual_atls_between_two_enclaves(platform: SimPlatform) -> None:
    server_creds = issue_credentials(evidence=evidence_for(platform, MRENCLAVE))
    client_creds = issue_credentials(evidence=evidence_for(platform, CLIENT_MRENCLAVE))
    stranger = issue_credentials(evidence=evidence_for(platform, OTHER_MRENCLAVE))
    with start_asgi_server(whoami, credentials=server_creds,
                           peer_verifier=peers(platform, CLIENT_MRENCLAVE)) as server:
        address = f"https://127.0.0.1:{server.port}/"
        transport = AttestedTransport(verifier=peers(platform), credentials=client_creds)
        with httpx.Client(transport=transport) as client:
            r = client.get(address)
        assert r.text == CLIENT_MRENCLAVE.hex()  # the server attested us
        assert r.extensions[PEER_EXTENSION].enclave.mrenclave == MRENCLAVE  # we attested it
        received = server.stats.bytes_received

        # A client the server's policy does not name, and one with no certificate, are
        # refused by the server before it reads a byte (they see the connection close).
        for creds in (stranger, None):
            transport = AttestedTransport(verifier=peers(platform), credentials=creds)
            with httpx.Client(transport=transport) as client, pytest.raises(httpx.HTTPError):
                client.get(address)
        assert server.stats.refused == 2 and server.stats.bytes_received == received
