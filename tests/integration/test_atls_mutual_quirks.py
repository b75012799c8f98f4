"""Mutual aTLS with the client certificates real attesters make, and failures nobody planned.

Gramine and Open Enclave (mbedTLS) write an explicit NULL in the ECDSA AlgorithmIdentifier,
which ``cryptography`` >= 50 refuses to load. The server must take such a client (the
verifier's own parser accepts the quirk), and any unexpected failure while handshaking or
attesting a client must end as a counted refusal, never as an unhandled exception.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import socket
import ssl
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from enklave.atls import _tlspipe
from enklave.atls._dice import DICE_EVIDENCE_OID, encode_claims, encode_tagged_evidence
from enklave.atls._issue import issue_credentials
from enklave.atls._server import BackgroundServer, start_server
from enklave.atls._verify import PeerVerifier
from enklave.atls._x509 import Certificate
from enklave.backends.simulation import SimPlatform
from enklave.models import _der
from enklave.models.evidence import Evidence, report_data_for
from enklave.verify import TrustAnchor, Verifier, default_policy

MRENCLAVE = b"\x11" * 32
ECDSA_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
ECDSA_SHA256_NULL = bytes.fromhex("300c06082a8648ce3d0403020500")  # the mbedTLS quirk


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[SimPlatform, Path]:
    home = tmp_path_factory.mktemp("sim") / "platform"
    return SimPlatform.init(home), home


def quote_for(platform: SimPlatform, claims: bytes) -> bytes:
    return platform.quote(report_data_for(claims), mrenclave=MRENCLAVE, mrsigner=b"\x22" * 32,
                          isv_prod_id=1, isv_svn=1, debug=False)


def peers(sim) -> PeerVerifier:
    verifier = Verifier(anchors=TrustAnchor.simulation(sim[1]), collateral=sim[0].collateral())
    return PeerVerifier(verifier=verifier,
                        policy=default_policy(mrenclave=[MRENCLAVE], allow_simulated=True))


def null_params_client(platform: SimPlatform, tmp: Path) -> tuple[ssl.SSLContext, bytes]:
    """A client context presenting an attested certificate whose ECDSA AlgorithmIdentifier
    (in the TBS and outside) carries an explicit NULL, re-signed over the new TBS."""
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    claims = encode_claims(spki)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gramine-like client")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.UnrecognizedExtension(
            x509.ObjectIdentifier(DICE_EVIDENCE_OID),
            encode_tagged_evidence(quote_for(platform, claims), claims)), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    tbs = cert.tbs_certificate_bytes
    assert tbs.count(ECDSA_SHA256) == 1
    node = _der.parse(tbs)
    _, start, _ = _der.read_header(tbs, 0, len(tbs))
    assert node.tag == _der.SEQUENCE
    new_tbs = _der.tlv(_der.SEQUENCE, tbs[start:].replace(ECDSA_SHA256, ECDSA_SHA256_NULL))
    signature = key.sign(new_tbs, ec.ECDSA(hashes.SHA256()))
    der = _der.tlv(_der.SEQUENCE, new_tbs + ECDSA_SHA256_NULL
                   + _der.tlv(0x03, b"\x00" + signature))  # fmt: skip
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


def settle(server: BackgroundServer, **expected: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if all(getattr(server.stats, k) == v for k, v in expected.items()):
            return
        time.sleep(0.01)
    assert server.stats.to_dict() | expected == server.stats.to_dict()


def evidence_fn(platform: SimPlatform):
    def make(claims: bytes) -> Evidence:
        return Evidence(quote=quote_for(platform, claims), claims=claims, simulated=True)

    return make


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
    ctx, der = null_params_client(sim[0], tmp_path)
    ctx.maximum_version = version
    seen: list[object] = []

    async def handler(reader, writer, peer) -> None:
        seen.append(peer)
        writer.write(await reader.read(100))
        await writer.drain()

    creds = issue_credentials(evidence=evidence_fn(sim[0]))
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
    ctx, _ = null_params_client(sim[0], tmp_path)
    reached: list[object] = []

    async def handler(reader, writer, peer) -> None:  # pragma: no cover - must not run
        reached.append(peer)

    creds = issue_credentials(evidence=evidence_fn(sim[0]))
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
    creds = issue_credentials(evidence=evidence_fn(sim[0]))
    assert creds._pyopenssl_context().set_options(0) & SSL.OP_NO_RENEGOTIATION
