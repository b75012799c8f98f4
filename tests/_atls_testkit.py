"""Test kit for attested-TLS tests: certificates, simulated evidence, a peer verifier and
a counting loopback server.

The certificates are built here from parts (cryptography + a simulated quote), so tests
can also build the wrong ones (another enclave, another key). The server is a stdlib
``ssl`` server in threads that counts every application byte it receives: a refused
connection must leave the counter at 0.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from enklave.atls._dice import DICE_EVIDENCE_OID, encode_claims, encode_tagged_evidence
from enklave.atls._server import BackgroundServer
from enklave.atls._verify import PeerVerifier
from enklave.backends.simulation import SimPlatform
from enklave.models import _der
from enklave.models.evidence import Evidence, report_data_for
from enklave.verify import TrustAnchor, Verifier, default_policy

MRENCLAVE = b"\x11" * 32
MRSIGNER = b"\x22" * 32
OTHER_MRENCLAVE = b"\x33" * 32
ECDSA_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
ECDSA_SHA256_NULL = bytes.fromhex("300c06082a8648ce3d0403020500")  # the mbedTLS quirk


@dataclass(frozen=True)
class TestCert:
    """A certificate and its key on disk (what an ssl server context loads)."""

    __test__ = False
    der: bytes
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


def spki(key: Any) -> bytes:
    """The DER SubjectPublicKeyInfo of a private key (what attested evidence binds)."""
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sim_quote(platform: SimPlatform, claims: bytes, *, mrenclave: bytes = MRENCLAVE,
              debug: bool = False) -> bytes:
    """A simulated quote whose REPORTDATA binds ``claims``."""
    return platform.quote(report_data_for(claims), mrenclave=mrenclave, mrsigner=MRSIGNER,
                          isv_prod_id=1, isv_svn=1, debug=debug)


def dice_evidence(platform: SimPlatform, key: Any, *, mrenclave: bytes = MRENCLAVE,
                  debug: bool = False, extra: dict[str, Any] | None = None) -> bytes:
    """A DICE evidence extension value: claims about ``key``'s SPKI and a quote over them."""
    claims = encode_claims(spki(key), extra)
    return encode_tagged_evidence(sim_quote(platform, claims, mrenclave=mrenclave,
                                            debug=debug), claims)


def evidence_for(platform: SimPlatform,
                 mrenclave: bytes = MRENCLAVE) -> Callable[[bytes], Evidence]:
    """An ``evidence=`` callback for :func:`issue_credentials` (simulated quotes)."""
    def make(claims: bytes) -> Evidence:
        return Evidence(quote=sim_quote(platform, claims, mrenclave=mrenclave), claims=claims,
                        simulated=True)

    return make


def peers(platform: SimPlatform, mrenclave: bytes = MRENCLAVE) -> PeerVerifier:
    """A peer verifier trusting ``platform``'s root and naming only ``mrenclave``."""
    anchor = TrustAnchor("simulation root (tests)", platform.root_certificate, True)
    verifier = Verifier(anchors=anchor, collateral=platform.collateral())
    policy = default_policy(mrenclave=[mrenclave], allow_simulated=True)
    return PeerVerifier(verifier=verifier, policy=policy)


def settle(server: BackgroundServer, **expected: int) -> None:
    """Wait (briefly) until the server's counters reach the expected values."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if all(getattr(server.stats, k) == v for k, v in expected.items()):
            return
        time.sleep(0.01)
    assert server.stats.to_dict() | expected == server.stats.to_dict()


def _write(
    tmp: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> TestCert:
    tmp.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TestCert(cert.public_bytes(serialization.Encoding.DER), cert_file, key_file)


def cert_builder(key: Any, cn: str, issuer: x509.Name | None = None, *,
                 start: dt.datetime | None = None,
                 lifetime: dt.timedelta = dt.timedelta(days=1)) -> x509.CertificateBuilder:
    """A certificate for ``key`` named ``cn`` (issued by itself unless ``issuer``), valid
    from ``start`` (default five minutes ago) for ``lifetime``; add extensions, sign."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    start = start or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + lifetime)
    )


def with_null_ecdsa_params(der: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """``der`` (an ECDSA-SHA256 certificate) with an explicit NULL in its AlgorithmIdentifiers,
    in the TBS and outside, as Gramine and Open Enclave (mbedTLS) write them; the new TBS
    signed again with ``key``. ``cryptography`` >= 50 refuses to load the result."""
    tbs_node = (_der.parse(der).children or ())[0]
    assert tbs_node.tag == _der.SEQUENCE and tbs_node.value.count(ECDSA_SHA256) == 1
    tbs = _der.tlv(_der.SEQUENCE, tbs_node.value.replace(ECDSA_SHA256, ECDSA_SHA256_NULL))
    signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return _der.tlv(_der.SEQUENCE, tbs + ECDSA_SHA256_NULL + _der.tlv(0x03, b"\x00" + signature))


def attested_cert(
    platform: SimPlatform,
    tmp: Path,
    *,
    name: str = "enclave",
    mrenclave: bytes = MRENCLAVE,
    debug: bool = False,
    swap_key: bool = False,
    ca: TestCert | None = None,
) -> TestCert:
    """A self-signed P-256 certificate carrying a DICE extension over a simulated quote
    bound to its own key (what an enklave server presents). ``swap_key``: the evidence
    binds another key (the key-swap attack). ``ca``: signed by that CA (see
    :func:`ca_cert`) instead of itself, as dstack's KMS signs its app certificates."""
    key = ec.generate_private_key(ec.SECP256R1())
    bound = ec.generate_private_key(ec.SECP256R1()) if swap_key else key
    ext = x509.UnrecognizedExtension(
        x509.ObjectIdentifier(DICE_EVIDENCE_OID),
        dice_evidence(platform, bound, mrenclave=mrenclave, debug=debug),
    )
    signer, issuer = key, None
    if ca is not None:
        issuer = x509.load_der_x509_certificate(ca.der).subject
        loaded = serialization.load_pem_private_key(ca.key_file.read_bytes(), password=None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        signer = loaded
    builder = cert_builder(key, "enklave", issuer).add_extension(ext, critical=False)
    return _write(tmp, name, builder.sign(signer, hashes.SHA256()), key)


def ca_cert(tmp: Path, *, name: str = "ca", cn: str = "Test KMS CA") -> TestCert:
    """A self-signed CA certificate (no evidence) to sign attested certificates with."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        cert_builder(key, cn)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _write(tmp, name, cert, key)


def plain_cert(tmp: Path, *, name: str = "plain") -> TestCert:
    """An ordinary self-signed certificate: no evidence at all."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = cert_builder(key, "localhost").sign(key, hashes.SHA256())
    return _write(tmp, name, cert, key)


class CountingTLSServer:
    """A loopback TLS server (threads) that counts application bytes it receives.

    mode "http": answers every HTTP/1.1 request with ``body`` and keeps the connection
    alive; mode "echo": sends back what it receives.
    """

    def __init__(self, context: ssl.SSLContext, *, mode: str = "http",
                 body: bytes = b"hello from the enclave") -> None:
        self.context, self.mode, self.body = context, mode, body
        self.bytes_received = 0
        self.connections = 0
        self.handshakes = 0
        self.requests = 0
        self.bytes_per_connection: list[int] = []  # in accept order
        self.peer_certs: list[bytes] = []  # client certificates (mutual TLS)
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self.bytes_per_connection.append(0)
                index = len(self.bytes_per_connection) - 1
            t = threading.Thread(target=self._handle, args=(conn, index), daemon=True)
            self._threads.append(t)
            t.start()

    def _handle(self, conn: socket.socket, index: int) -> None:
        conn.settimeout(10)
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            conn.close()
            return
        with self._lock:
            self.handshakes += 1
            peer = tls.getpeercert(True)
            if peer:
                self.peer_certs.append(peer)
        buf = b""
        try:
            while True:
                data = tls.recv(65536)
                if not data:
                    return
                with self._lock:
                    self.bytes_received += len(data)
                    self.bytes_per_connection[index] += len(data)
                if self.mode == "echo":
                    tls.sendall(data)
                    continue
                buf += data
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    with self._lock:
                        self.requests += 1
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                b"Content-Length: %d\r\n\r\n%s" % (len(self.body), self.body))
        except (OSError, ssl.SSLError):
            return
        finally:
            tls.close()

    def join_handlers(self, timeout: float = 5.0) -> None:
        """Wait until every connection handler finished (so the counters are final)."""
        for t in list(self._threads):
            t.join(timeout)

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self._listener.close()
        self._accept.join(5)

    def __enter__(self) -> CountingTLSServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
