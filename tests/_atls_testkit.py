"""Test kit for attested-TLS client tests: certificates and a counting loopback server.

The certificates are built here from parts (cryptography + a simulated quote), so tests
can also build the wrong ones (another enclave, another key). The server is a stdlib
``ssl`` server in threads that counts every application byte it receives: a refused
connection must leave the counter at 0.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from enklave.atls._dice import DICE_EVIDENCE_OID, encode_claims, encode_tagged_evidence
from enklave.backends.simulation import SimPlatform

MRENCLAVE = b"\x11" * 32
MRSIGNER = b"\x22" * 32
OTHER_MRENCLAVE = b"\x33" * 32


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


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


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


def _builder(key: ec.EllipticCurvePrivateKey, cn: str, issuer: x509.Name | None = None
             ) -> x509.CertificateBuilder:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )


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
    claims = encode_claims(_spki(bound))
    quote = platform.quote(
        hashlib.sha256(claims).digest() + bytes(32),
        mrenclave=mrenclave, mrsigner=MRSIGNER, isv_prod_id=1, isv_svn=1, debug=debug,
    )
    ext = x509.UnrecognizedExtension(
        x509.ObjectIdentifier(DICE_EVIDENCE_OID), encode_tagged_evidence(quote, claims)
    )
    signer, issuer = key, None
    if ca is not None:
        issuer = x509.load_der_x509_certificate(ca.der).subject
        loaded = serialization.load_pem_private_key(ca.key_file.read_bytes(), password=None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        signer = loaded
    builder = _builder(key, "enklave", issuer).add_extension(ext, critical=False)
    return _write(tmp, name, builder.sign(signer, hashes.SHA256()), key)


def ca_cert(tmp: Path, *, name: str = "ca", cn: str = "Test KMS CA") -> TestCert:
    """A self-signed CA certificate (no evidence) to sign attested certificates with."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(key, cn)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _write(tmp, name, cert, key)


def plain_cert(tmp: Path, *, name: str = "plain") -> TestCert:
    """An ordinary self-signed certificate: no evidence at all."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _builder(key, "localhost").sign(key, hashes.SHA256())
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
