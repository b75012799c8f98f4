"""Attested-TLS clients: an SSL context, a verified socket, and the attestation step.

The server's certificate is not checked against a web PKI: it is self-signed by a key that
lives inside the enclave, and what authenticates the peer is the evidence the certificate
carries (checked by a :class:`~enklave.atls.PeerVerifier`). Every helper here attests the
connection right after the TLS handshake and before the caller can send one application
byte; on any failure the socket is closed and the error raised (fail closed).

Runs on the host and inside an enclave (mutual aTLS): no httpx, no ``http.*`` here.
"""

from __future__ import annotations

import socket
import ssl
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from ..errors import AtlsError, CertificateError

if TYPE_CHECKING:
    from ._issue import Credentials
    from ._verify import AttestedPeer, PeerVerifier

__all__ = [
    "AttestedSocket",
    "attest_connection",
    "client_context",
    "connect",
    "peer_certificate_der",
]


def client_context(*, credentials: Credentials | None = None) -> ssl.SSLContext:
    """An SSL context for connecting to an attested-TLS server.

    TLS 1.2 or newer, renegotiation off. Certificate-chain and hostname checks are OFF on purpose
    (``CERT_NONE``, ``check_hostname=False``): an attested server's certificate is
    self-signed inside the enclave, and the peer is authenticated by the attestation
    evidence in that certificate instead. A context from here is therefore only safe with
    :func:`connect`, :func:`attest_connection` or the ``enklave.atls.transport``
    transports, which attest every connection before use; never use it on its own.

    Args:
        credentials: present this attested certificate to the server (mutual aTLS, for a
            client that itself runs in an enclave); ``None`` presents no certificate.

    Returns:
        A new context the caller may adjust further (ciphers, ALPN).
    """
    if credentials is not None:
        ctx = credentials.new_client_context()  # never the shared one: callers may adjust it
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if ctx.minimum_version < ssl.TLSVersion.TLSv1_2:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_RENEGOTIATION
    return ctx


def peer_certificate_der(tls: ssl.SSLSocket | ssl.SSLObject) -> bytes:
    """The DER certificate the peer sent in a completed handshake.

    Raises:
        CertificateError: the peer sent no certificate (``code="missing_certificate"``).
    """
    der = tls.getpeercert(True)  # positional: also fits the _ssl object httpcore exposes
    if not der:
        raise CertificateError(
            "the peer sent no certificate, so it cannot be attested; connect to an "
            "attested-TLS endpoint",
            code="missing_certificate",
        )
    return der


def attest_connection(sock: ssl.SSLSocket, *, verifier: PeerVerifier) -> AttestedPeer:
    """Attest the peer of a handshaken TLS socket; close the socket on any failure.

    Checks, through ``verifier``: the certificate's evidence, its binding to the
    certificate key, the quote and the policy (see :meth:`PeerVerifier.verify`).

    Raises:
        CertificateError: no certificate, or one without usable evidence.
        VerificationError: binding, quote or expiry check failed.
        PolicyError: the enclave does not satisfy the policy.
        AtlsError: the socket has no completed handshake (``code="handshake"``).
    """
    try:
        try:
            der = peer_certificate_der(sock)
        except (ValueError, OSError) as exc:
            raise AtlsError(
                f"no completed TLS handshake to attest ({exc}); call do_handshake() first",
                code="handshake",
            ) from exc
        return verifier.verify(der)
    except BaseException:
        _close_quietly(sock)
        raise


def connect(
    host: str,
    port: int,
    *,
    verifier: PeerVerifier,
    timeout: float = 10.0,
    credentials: Credentials | None = None,
    server_hostname: str | None = None,
) -> AttestedSocket:
    """Open a TLS connection and attest the server before returning it.

    Steps: TCP connect, TLS handshake (:func:`client_context`), then the server's
    certificate goes through ``verifier``. Nothing is sent over the connection before the
    attestation succeeds; on failure the socket is closed.

    Args:
        host: name or address of the server.
        port: TCP port.
        verifier: checks the server's evidence against trust anchors and a policy.
        timeout: seconds for connecting and the handshake; stays set on the socket.
        credentials: present this attested certificate (mutual aTLS).
        server_hostname: SNI name to send (default ``host``; never sent for addresses).

    Raises:
        AtlsError: the TCP connection (``code="connect"``) or the TLS handshake
            (``code="handshake"``) failed.
        CertificateError, VerificationError, PolicyError: the server was refused.
    """
    ctx = client_context(credentials=credentials)
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise AtlsError(
            f"cannot connect to {host}:{port}: {exc}; check the address and that the "
            "server is running",
            code="connect",
        ) from exc
    try:
        tls = ctx.wrap_socket(raw, server_hostname=server_hostname or host)
    except (ssl.SSLError, OSError, ValueError) as exc:
        _close_quietly(raw)
        raise AtlsError(
            f"TLS handshake with {host}:{port} failed: {exc}; check that the server "
            "speaks TLS 1.2+ on this port",
            code="handshake",
        ) from exc
    peer = attest_connection(tls, verifier=verifier)
    return AttestedSocket(tls, peer)


class AttestedSocket:
    """A TLS socket whose peer passed attestation; only :func:`connect` makes one.

    Attributes:
        peer: what the verifier established about the server (:class:`AttestedPeer`).
        sock: the underlying :class:`ssl.SSLSocket`.
    """

    __slots__ = ("peer", "sock")

    def __init__(self, sock: ssl.SSLSocket, peer: AttestedPeer) -> None:
        self.sock = sock
        self.peer = peer

    def sendall(self, data: bytes) -> None:
        """Send all of ``data`` (see :meth:`socket.socket.sendall`)."""
        self.sock.sendall(data)

    def send(self, data: bytes) -> int:
        """Send some of ``data``; returns how many bytes were sent."""
        return self.sock.send(data)

    def recv(self, bufsize: int) -> bytes:
        """Receive up to ``bufsize`` bytes; ``b""`` at end of stream."""
        return self.sock.recv(bufsize)

    def recv_into(self, buffer: bytearray | memoryview, nbytes: int = 0) -> int:
        """Receive into ``buffer``; returns the byte count."""
        return self.sock.recv_into(buffer, nbytes)

    def makefile(self, mode: str = "rb", buffering: int | None = None) -> BinaryIO | TextIO:
        """A file object over the connection (see :meth:`socket.socket.makefile`)."""
        return self.sock.makefile(mode, buffering)  # type: ignore[call-overload,no-any-return]

    def settimeout(self, value: float | None) -> None:
        """Set the socket timeout in seconds (``None`` blocks)."""
        self.sock.settimeout(value)

    def fileno(self) -> int:
        """The file descriptor (-1 once closed)."""
        return self.sock.fileno()

    def version(self) -> str | None:
        """The negotiated TLS version, e.g. ``"TLSv1.3"``."""
        return self.sock.version()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.sock.close()

    def __enter__(self) -> AttestedSocket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<AttestedSocket fd={self.fileno()} peer={self.peer!r}>"


def _close_quietly(sock: Any) -> None:
    try:
        sock.close()
    except OSError:
        pass
