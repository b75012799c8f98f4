"""enklave.atls.connect / attest_connection / client_context over real loopback TLS."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from pathlib import Path

import pytest

from _atls_testkit import (
    MRENCLAVE,
    OTHER_MRENCLAVE,
    CountingTLSServer,
    TestCert,
    attested_cert,
    evidence_for,
    peers,
    plain_cert,
)
from enklave.atls._client import AttestedSocket, attest_connection, client_context, connect
from enklave.atls._issue import issue_credentials
from enklave.atls._server import start_server
from enklave.atls._verify import AttestedPeer
from enklave.backends.simulation import SimPlatform
from enklave.errors import AtlsError, CertificateError, PolicyError, VerificationError


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> SimPlatform:
    return SimPlatform.init(tmp_path_factory.mktemp("sim"))


@pytest.fixture(scope="module")
def enclave_cert(platform: SimPlatform, tmp_path_factory: pytest.TempPathFactory) -> TestCert:
    return attested_cert(platform, tmp_path_factory.mktemp("certs"))


def test_client_context_is_tls12_plus_and_leaves_authentication_to_attestation() -> None:
    ctx = client_context()
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_NONE and ctx.check_hostname is False


def test_connect_attests_the_server_then_carries_bytes(
    platform: SimPlatform, enclave_cert: TestCert
) -> None:
    with CountingTLSServer(enclave_cert.server_context(), mode="echo") as srv:
        with connect("127.0.0.1", srv.port, verifier=peers(platform)) as conn:
            assert isinstance(conn, AttestedSocket) and isinstance(conn.peer, AttestedPeer)
            assert conn.peer.enclave.mrenclave == MRENCLAVE
            assert conn.peer.format == "tcg-dice"
            assert conn.version() in ("TLSv1.2", "TLSv1.3")
            conn.sendall(b"ping")
            assert conn.recv(16) == b"ping"
        assert conn.fileno() == -1
        srv.join_handlers()
        assert srv.bytes_received == 4


def test_rejects_enclave_the_policy_does_not_name_before_sending_a_byte(
    platform: SimPlatform, enclave_cert: TestCert
) -> None:
    with CountingTLSServer(enclave_cert.server_context(), mode="echo") as srv:
        with pytest.raises(PolicyError):
            connect("127.0.0.1", srv.port, verifier=peers(platform, OTHER_MRENCLAVE))
        srv.join_handlers()
        assert srv.connections == 1 and srv.bytes_received == 0


def test_rejects_server_without_evidence_extension(platform: SimPlatform, tmp_path: Path) -> None:
    with CountingTLSServer(plain_cert(tmp_path).server_context(), mode="echo") as srv:
        with pytest.raises(CertificateError) as info:
            connect("127.0.0.1", srv.port, verifier=peers(platform))
        assert info.value.code == "missing_extension"
        srv.join_handlers()
        assert srv.bytes_received == 0


def test_rejects_key_swapped_certificate(platform: SimPlatform, tmp_path: Path) -> None:
    cert = attested_cert(platform, tmp_path, swap_key=True)
    with CountingTLSServer(cert.server_context(), mode="echo") as srv:
        with pytest.raises(VerificationError) as info:
            connect("127.0.0.1", srv.port, verifier=peers(platform))
        assert info.value.code == "key_binding"
        srv.join_handlers()
        assert srv.bytes_received == 0


def test_connect_to_closed_port_is_atls_connect_error(platform: SimPlatform) -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    with pytest.raises(AtlsError) as info:
        connect("127.0.0.1", port, verifier=peers(platform), timeout=2)
    assert info.value.code == "connect" and "server is running" in info.value.message


def test_connect_to_non_tls_server_is_atls_handshake_error(platform: SimPlatform) -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def speak_plain() -> None:
        conn, _ = listener.accept()
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n" * 8)
        conn.close()

    t = threading.Thread(target=speak_plain, daemon=True)
    t.start()
    try:
        with pytest.raises(AtlsError) as info:
            connect("127.0.0.1", listener.getsockname()[1], verifier=peers(platform), timeout=5)
        assert info.value.code == "handshake" and "TLS" in info.value.message
    finally:
        t.join(5)
        listener.close()


def test_attest_connection_closes_the_socket_on_refusal(
    platform: SimPlatform, enclave_cert: TestCert
) -> None:
    with CountingTLSServer(enclave_cert.server_context(), mode="echo") as srv:
        raw = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        tls = client_context().wrap_socket(raw)
        with pytest.raises(PolicyError):
            attest_connection(tls, verifier=peers(platform, OTHER_MRENCLAVE))
        assert tls.fileno() == -1
        srv.join_handlers()
        assert srv.bytes_received == 0


def test_attest_connection_without_handshake_is_refused_and_closed(platform: SimPlatform) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        raw = socket.create_connection(listener.getsockname(), timeout=5)
        tls = client_context().wrap_socket(raw, do_handshake_on_connect=False)
        with pytest.raises(AtlsError) as info:
            attest_connection(tls, verifier=peers(platform))
        assert info.value.code == "handshake" and tls.fileno() == -1


def test_a_second_connection_to_the_same_certificate_is_a_cache_hit(
    platform: SimPlatform, enclave_cert: TestCert
) -> None:
    verifier = peers(platform)
    with CountingTLSServer(enclave_cert.server_context(), mode="echo") as srv:
        for _ in range(2):
            with connect("127.0.0.1", srv.port, verifier=verifier):
                pass
    assert (verifier.misses, verifier.hits) == (1, 1)


def test_mutual_atls_connect_presents_client_credentials(
    platform: SimPlatform, enclave_cert: TestCert
) -> None:
    async def echo_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        peer: AttestedPeer | None) -> None:
        assert peer is not None
        await reader.readexactly(1)
        writer.write(peer.enclave.mrenclave)
        await writer.drain()

    client_creds = issue_credentials(evidence=evidence_for(platform, OTHER_MRENCLAVE))
    server_creds = issue_credentials(evidence=evidence_for(platform))
    with start_server(echo_peer, credentials=server_creds,
                      peer_verifier=peers(platform, OTHER_MRENCLAVE)) as server:
        with connect("127.0.0.1", server.port, verifier=peers(platform),
                     credentials=client_creds) as conn:
            assert conn.peer.enclave.mrenclave == MRENCLAVE
            conn.sendall(b"?")
            assert conn.recv(64) == OTHER_MRENCLAVE
