"""Mutual aTLS with the client certificates real attesters make, and failures nobody planned.

Gramine and Open Enclave (mbedTLS) write an explicit NULL in the ECDSA AlgorithmIdentifier,
which ``cryptography`` >= 50 refuses to load. The server must take such a client (the
verifier's own parser accepts the quirk), and any unexpected failure while handshaking or
attesting a client must end as a counted refusal, never as an unhandled exception.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL

from _atls_testkit import (
    MRENCLAVE,
    cert_builder,
    dice_evidence,
    evidence_for,
    peers,
    settle,
    with_null_ecdsa_params,
)
from enklave.atls import _tlspipe
from enklave.atls._dice import DICE_EVIDENCE_OID
from enklave.atls._issue import issue_credentials
from enklave.atls._server import start_server
from enklave.atls._x509 import Certificate
from enklave.backends.simulation import SimPlatform


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> SimPlatform:
    return SimPlatform.init(tmp_path_factory.mktemp("sim") / "platform")


def null_params_client(platform: SimPlatform, tmp: Path) -> tuple[ssl.SSLContext, bytes]:
    """A client context presenting an attested certificate whose ECDSA AlgorithmIdentifier
    (in the TBS and outside) carries an explicit NULL, re-signed over the new TBS."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        cert_builder(key, "gramine-like client")
        .add_extension(x509.UnrecognizedExtension(
            x509.ObjectIdentifier(DICE_EVIDENCE_OID), dice_evidence(platform, key)),
            critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    der = with_null_ecdsa_params(cert.public_bytes(serialization.Encoding.DER), key)
    with pytest.raises(ValueError):  # what made the server crash before
        x509.load_der_x509_certificate(der)
    Certificate.from_der(der).verify_signature()  # enklave's parser takes the quirk
    pem = ("-----BEGIN CERTIFICATE-----\n" + Certificate.from_der(der).pem().split("\n", 1)[1])
    (tmp / "c.pem").write_text(pem)
    (tmp / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.load_cert_chain(tmp / "c.pem", tmp / "k.pem")
    return ctx, der


def talk(port: int, ctx: ssl.SSLContext, data: bytes) -> bytes:
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10)) as sock:
        sock.sendall(data)
        got = b""
        try:
            while chunk := sock.recv(100):
                got += chunk
                if got == data:
                    break
        except (ssl.SSLError, OSError):
            pass
        return got


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_mutual_accepts_client_cert_with_null_ecdsa_parameters(sim, tmp_path, version) -> None:
    ctx, der = null_params_client(sim, tmp_path)
    ctx.maximum_version = version
    seen: list[object] = []

    async def handler(reader, writer, peer) -> None:
        seen.append(peer)
        writer.write(await reader.read(100))
        await writer.drain()

    creds = issue_credentials(evidence=evidence_for(sim))
    with start_server(handler, credentials=creds, peer_verifier=peers(sim)) as server:
        assert talk(server.port, ctx, b"gramine says hi") == b"gramine says hi"
        settle(server, connections=1, handshakes=1, refused=0)
    (peer,) = seen
    assert peer.certificate.der == der  # the bytes the client sent, not a re-encoding
    assert peer.certificate.fingerprint == hashlib.sha256(der).digest()
    assert peer.format == "tcg-dice" and peer.enclave.mrenclave == MRENCLAVE


def test_unexpected_failure_attesting_a_client_is_a_counted_refusal(
    sim, tmp_path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> bytes:
        raise ValueError("a certificate this library cannot handle")

    monkeypatch.setattr(_tlspipe.crypto, "dump_certificate", broken)
    ctx, _ = null_params_client(sim, tmp_path)
    reached: list[object] = []

    async def handler(reader, writer, peer) -> None:  # pragma: no cover - must not run
        reached.append(peer)

    creds = issue_credentials(evidence=evidence_for(sim))
    caplog.set_level(logging.INFO)
    with start_server(handler, credentials=creds, peer_verifier=peers(sim)) as server:
        assert talk(server.port, ctx, b"hello?") == b""
        settle(server, connections=1, refused=1, bytes_received=0)
        # the server still serves the next client (its task did not die)
        assert talk(server.port, ctx, b"again") == b""
        settle(server, connections=2, refused=2, bytes_received=0)
    assert reached == []
    text = caplog.text
    assert "cannot handle" in text and "refus" in text
    assert "Unhandled exception" not in text and "Traceback" not in text


def test_pyopenssl_server_context_disables_renegotiation(sim) -> None:
    creds = issue_credentials(evidence=evidence_for(sim))
    assert creds._pyopenssl_context().set_options(0) & SSL.OP_NO_RENEGOTIATION
