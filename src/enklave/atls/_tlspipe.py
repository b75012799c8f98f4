"""TLS over an asyncio stream with pyOpenSSL and memory BIOs (the mutual aTLS server side).

The stdlib :mod:`ssl` module cannot accept a self-signed client certificate, so mutual
aTLS runs its handshake here: pyOpenSSL (its context accepts any client certificate and
requires one) reads and writes ciphertext through memory BIOs, and the event loop moves
the bytes over the accepted TCP stream. After the handshake the caller attests the
client's certificate; only then :meth:`TlsPipe.start` exposes the plaintext as an
ordinary ``(StreamReader, StreamWriter)`` pair, via a small :class:`asyncio.Transport`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Final

from OpenSSL import SSL, crypto

from ..errors import AtlsError

if TYPE_CHECKING:
    from ._server import ServerStats

__all__ = ["CountingReader", "Refused", "TlsPipe", "mutual_handshake"]

CHUNK: Final = 64 * 1024
#: Pause the application's writes while this much ciphertext waits for the socket.
HIGH_WATER: Final = 256 * 1024
_NO_CERT: Final = "peer did not return a certificate"


class Refused(AtlsError):
    """A mutual aTLS client was refused: no certificate, or its attestation failed."""

    code = "refused"


class CountingReader(asyncio.StreamReader):
    """A StreamReader that adds the bytes fed to it to ``stats.bytes_received`` while
    ``counting`` is set (that is, once they are application data)."""

    def __init__(self, stats: ServerStats, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stats = stats
        self.counting = False

    def feed_data(self, data: Any) -> None:
        if self.counting:
            self.stats.bytes_received += len(data)
        super().feed_data(data)


def _flush(conn: SSL.Connection, writer: asyncio.StreamWriter) -> None:
    """Send whatever ciphertext OpenSSL has queued in its outgoing memory BIO."""
    out = []
    while True:
        try:
            out.append(conn.bio_read(CHUNK))
        except SSL.WantReadError:
            break
    if out and not writer.is_closing():
        writer.write(b"".join(out))


async def mutual_handshake(
    context: SSL.Context, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> TlsPipe:
    """Run a server-side TLS handshake that requires a client certificate.

    Raises:
        Refused: the client sent no certificate.
        AtlsError: the handshake failed or the client went away (code ``"handshake"``).
    """
    conn = SSL.Connection(context, None)
    conn.set_accept_state()
    while True:
        try:
            conn.do_handshake()
            break
        except SSL.WantReadError:
            pass
        except SSL.Error as exc:
            _flush(conn, writer)  # the alert
            if _NO_CERT in str(exc):
                raise Refused("the client presented no certificate", code="no_certificate") \
                    from exc  # fmt: skip
            raise AtlsError(f"TLS handshake failed: {exc}", code="handshake") from exc
        _flush(conn, writer)
        data = await reader.read(CHUNK)
        if not data:
            raise AtlsError("the client closed during the TLS handshake", code="handshake")
        conn.bio_write(data)
    _flush(conn, writer)  # session tickets
    # OpenSSL's own DER, not a cryptography object: cryptography >= 50 refuses the explicit
    # NULL ECDSA parameters Gramine and Open Enclave write; the verifier's parser takes them.
    cert = conn.get_peer_certificate()
    if cert is None:
        raise Refused("the client presented no certificate", code="no_certificate")
    return TlsPipe(conn, reader, writer, crypto.dump_certificate(crypto.FILETYPE_ASN1, cert))


class TlsPipe(asyncio.Transport):
    """The plaintext side of a pyOpenSSL connection, as an asyncio transport."""

    def __init__(
        self,
        conn: SSL.Connection,
        raw_reader: asyncio.StreamReader,
        raw_writer: asyncio.StreamWriter,
        peer_certificate: bytes,
    ) -> None:
        extra = {
            "peername": raw_writer.get_extra_info("peername"),
            "sockname": raw_writer.get_extra_info("sockname"),
            "socket": raw_writer.get_extra_info("socket"),
            "ssl_object": conn,
            "peercert_der": peer_certificate,
        }
        super().__init__(extra)
        self.peer_certificate = peer_certificate
        self._conn = conn
        self._raw_reader = raw_reader
        self._raw_writer = raw_writer
        self._reading = asyncio.Event()
        self._reading.set()
        self._closing = False
        self._lost = False
        self._write_paused = False
        self._protocol: asyncio.StreamReaderProtocol | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(
        self, stats: ServerStats, loop: asyncio.AbstractEventLoop
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Begin moving application data; return the streams for the handler."""
        reader = CountingReader(stats, loop=loop)
        reader.counting = True
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        self._protocol = protocol
        protocol.connection_made(self)
        self._spawn(self._pump())
        return reader, asyncio.StreamWriter(self, protocol, reader, loop)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pump(self) -> None:
        assert self._protocol is not None
        exc: Exception | None = None
        try:
            # the handshake's last read may already hold application data: deliver first
            while self._deliver() and not self._closing:
                _flush(self._conn, self._raw_writer)
                await self._reading.wait()
                data = await self._raw_reader.read(CHUNK)
                if not data:
                    self._protocol.eof_received()
                    break
                self._conn.bio_write(data)
        except (SSL.Error, OSError) as err:
            exc = err
        finally:
            self._finish(exc)

    def _deliver(self) -> bool:
        """Decrypt what the BIO holds; False once the client sent close_notify."""
        assert self._protocol is not None
        while True:
            try:
                chunk = self._conn.recv(CHUNK)
            except SSL.WantReadError:
                return True
            except SSL.ZeroReturnError:
                self._protocol.eof_received()
                return False
            self._protocol.data_received(chunk)

    def _finish(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = self._closing = True
        self._reading.set()
        if not self._raw_writer.is_closing():
            self._raw_writer.close()
        if self._protocol is not None:
            self._protocol.connection_lost(exc)

    # -- asyncio.Transport ---------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data:
            return
        try:
            self._conn.sendall(bytes(data))
        except SSL.Error as exc:
            self.abort()
            self._finish(exc)
            return
        _flush(self._conn, self._raw_writer)
        self._maybe_pause_writing()

    def _maybe_pause_writing(self) -> None:
        if self._write_paused or self.get_write_buffer_size() <= HIGH_WATER:
            return
        assert self._protocol is not None
        self._write_paused = True
        self._protocol.pause_writing()
        self._spawn(self._resume_writing())

    async def _resume_writing(self) -> None:
        with contextlib.suppress(OSError):
            await self._raw_writer.drain()
        self._write_paused = False
        if self._protocol is not None:
            self._protocol.resume_writing()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        with contextlib.suppress(SSL.Error):
            self._conn.shutdown()  # close_notify
        _flush(self._conn, self._raw_writer)
        self._raw_writer.close()
        self._reading.set()

    def abort(self) -> None:
        self._closing = True
        self._raw_writer.transport.abort()
        self._reading.set()

    def is_closing(self) -> bool:
        return self._closing

    def can_write_eof(self) -> bool:
        return False

    def pause_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    def is_reading(self) -> bool:
        return self._reading.is_set()

    def get_write_buffer_size(self) -> int:
        return self._raw_writer.transport.get_write_buffer_size()
