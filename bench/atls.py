"""Benchmark: a TLS handshake plus one small HTTP request, attested TLS against plain TLS.

Both sides use the same key type (ECDSA P-256), the same server code (a stdlib asyncio TLS
server in a thread, the same handler) and a fresh TCP connection and full handshake per
request (no session resumption). They differ only in what the client checks:

- plain: the server's ordinary self-signed certificate, trusted as a pinned CA
  (CERT_REQUIRED, the usual OpenSSL chain check);
- attested, warm: enklave's aTLS certificate (DICE evidence over a simulated DCAP quote),
  checked by ``PeerVerifier`` with its fingerprint cache warm (a cert seen before);
- attested, cold: the same with the cache cleared before every connection, so each one
  runs the full check (parse, key binding, DCAP quote + collateral, policy).

Rounds alternate between the three so machine noise hits all alike. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from enklave.atls import PeerVerifier, connect, issue_credentials
from enklave.backends.simulation import SimPlatform
from enklave.models.evidence import Evidence, report_data_for
from enklave.verify import TrustAnchor, Verifier, default_policy

REQUEST = b"GET /ping HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\npong"
MRENCLAVE = bytes(range(32))


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(RESPONSE)
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
        pass
    finally:
        writer.close()


def _serve(ctx: ssl.SSLContext) -> int:
    """Start a TLS server in a daemon thread; return its port."""
    ready: list[int] = []
    started = threading.Event()

    def run() -> None:
        async def main() -> None:
            server = await asyncio.start_server(_handle, "127.0.0.1", 0, ssl=ctx)
            ready.append(server.sockets[0].getsockname()[1])
            started.set()
            await server.serve_forever()

        asyncio.run(main())

    threading.Thread(target=run, daemon=True).start()
    started.wait(10)
    return ready[0]


def _plain_contexts(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext, int]:
    """An ordinary self-signed P-256 server certificate, and a client pinning it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (tmp / "plain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "plain.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp / "plain.pem", tmp / "plain.key")
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cafile=str(tmp / "plain.pem"))
    return server, client, len(cert.public_bytes(serialization.Encoding.DER))


def _plain_request(port: int, ctx: ssl.SSLContext) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(REQUEST)
        return _read_all(tls)


def _attested_request(port: int, verifier: PeerVerifier) -> bytes:
    with connect("127.0.0.1", port, verifier=verifier) as tls:
        tls.sendall(REQUEST)
        return _read_all(tls)


def _read_all(sock: object) -> bytes:
    chunks = []
    while chunk := sock.recv(4096):  # type: ignore[attr-defined]
        chunks.append(chunk)
    body = b"".join(chunks)
    assert body.endswith(b"pong"), body
    return body


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="rounds (each: one of each kind)")
    parser.add_argument("--batch", type=int, default=10, help="connections per kind per round")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        sim = SimPlatform.init(tmp / "sim")

        def evidence(claims: bytes) -> Evidence:
            quote = sim.quote(report_data_for(claims), mrenclave=MRENCLAVE, mrsigner=b"\x01" * 32,
                              isv_prod_id=1, isv_svn=1, debug=False)
            return Evidence(quote=quote, claims=claims, simulated=True)

        creds = issue_credentials(key_type="ec-p256", subject="bench", evidence=evidence)
        plain_server, plain_client, plain_der_len = _plain_contexts(tmp)
        atls_port, plain_port = _serve(creds.server_context()), _serve(plain_server)
        verifier = PeerVerifier(
            verifier=Verifier(anchors=TrustAnchor.simulation(tmp / "sim"),
                              collateral=sim.collateral()),
            policy=default_policy(mrenclave=[MRENCLAVE], allow_simulated=True),
        )

        def cold() -> bytes:
            verifier.clear_cache()
            return _attested_request(atls_port, verifier)

        kinds: dict[str, Callable[[], object]] = {
            "plain": lambda: _plain_request(plain_port, plain_client),
            "attested_warm": lambda: _attested_request(atls_port, verifier),
            "attested_cold": cold,
        }
        for fn in kinds.values():  # warm-up: imports, first handshakes, the cache entry
            for _ in range(3):
                fn()
        times: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(args.rounds):
            for name, fn in kinds.items():
                times[name].extend(_timed(fn) for _ in range(args.batch))

    p50 = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "bench": "atls",
        "machine": f"{platform.machine()} {platform.system()} cpus={len(os.sched_getaffinity(0))}",
        "python": platform.python_version(),
        "openssl": ssl.OPENSSL_VERSION,
        "key_type": "ec-p256",
        "cert_der_bytes": {"plain": plain_der_len, "attested": len(creds.certificate_der)},
        "n_per_kind": len(times["plain"]),
        "plain_p50_ms": round(p50["plain"] * 1e3, 3),
        "attested_warm_p50_ms": round(p50["attested_warm"] * 1e3, 3),
        "attested_cold_p50_ms": round(p50["attested_cold"] * 1e3, 3),
        "ratio_warm": round(p50["attested_warm"] / p50["plain"], 3),
        "ratio_cold": round(p50["attested_cold"] / p50["plain"], 3),
        "goal_ratio_warm": 1.3,
        "cache": {"hits": verifier.hits, "misses": verifier.misses},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
