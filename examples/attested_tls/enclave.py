"""attested_tls: the trusted half. An HTTPS server whose TLS ends inside the enclave.

The TLS key pair is generated in here and never leaves; the certificate carries evidence
(TCG DICE tagged evidence: a quote whose report data is SHA-256 of claims that hold the
hash of this key), so a client that checks the certificate against its policy knows it
talks to this code, not to the host. The host only starts the server, relays nothing and
sees only ciphertext on the wire.

The same app also shows mutual attested TLS: two instances of it accept only each other.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypedDict

from enklave.atls import (
    BackgroundServer,
    PeerVerifier,
    RotatingCredentials,
    connect,
    issue_credentials,
    start_asgi_server,
)
from enklave.collateral import Collateral
from enklave.enclave import EnclaveApp, MaxLen, Range, identity, is_simulated, peer_trust_anchor
from enklave.verify import Verifier, default_policy

app = EnclaveApp("attested_tls")
Port = Annotated[int, Range(0, 65535)]
CollateralJson = Annotated[bytes, MaxLen(1 << 20)]

_servers: dict[str, BackgroundServer] = {}


class Stats(TypedDict):
    connections: int
    handshakes: int
    refused: int
    bytes_received: int
    requests: int


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A tiny ASGI app: says who it is, and who the (attested) client is, if any."""
    if scope["type"] != "http":
        return
    more = True
    while more:  # drain the request body
        message = await receive()
        more = message.get("more_body", False)
    peer = scope.get("extensions", {}).get("enklave.peer")
    body = json.dumps({
        "message": "hello from inside the enclave",
        "path": scope["path"],
        "mrenclave": identity().mrenclave.hex(),
        "simulated": is_simulated(),
        "client_mrenclave": peer.enclave.mrenclave.hex() if peer is not None else None,
    }).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def _same_app_verifier(collateral: bytes) -> PeerVerifier:
    """Peers must be this very app (same MRENCLAVE), production and on this kind of platform.

    The collateral comes from the host (it fetched it from a PCCS); it is signed by Intel
    (or by the simulated platform), so the host cannot forge it, only withhold it.
    """
    me = identity()
    policy = default_policy(mrenclave=[me.mrenclave], allow_simulated=me.simulated)
    verifier = Verifier(anchors=peer_trust_anchor(),
                        collateral=Collateral.from_json(collateral.decode()))
    return PeerVerifier(verifier=verifier, policy=policy)


@app.ecall
def start(port: Port) -> Port:
    """Start the HTTPS server on 127.0.0.1:``port`` (0: any free port); return the port."""
    credentials = RotatingCredentials(interval=3600.0, subject="attested-tls-example")
    server = start_asgi_server(hello, credentials=credentials, host="127.0.0.1", port=port)
    _servers["https"] = server
    return server.port


@app.ecall
def start_mutual(port: Port, collateral: CollateralJson) -> Port:
    """Start a server that requires clients to be attested instances of this same app."""
    server = start_asgi_server(
        hello, credentials=issue_credentials(subject="attested-tls-mutual"), host="127.0.0.1",
        port=port, peer_verifier=_same_app_verifier(collateral),
    )
    _servers["mutual"] = server
    return server.port


@app.ecall
def ask_peer(port: Port, collateral: CollateralJson) -> Annotated[str, MaxLen(4096)]:
    """Call a peer instance over mutual attested TLS; both sides attest each other."""
    verifier = _same_app_verifier(collateral)
    with connect("127.0.0.1", port, verifier=verifier,
                 credentials=issue_credentials(subject="attested-tls-client")) as sock:
        sock.sendall(b"GET /from-a-peer HTTP/1.1\r\nHost: peer\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).split(b"\r\n\r\n", 1)[-1].decode()[:4096]


@app.ecall
def stats(which: Annotated[str, MaxLen(16)]) -> Stats:
    """What the server saw: a refused client never gets one application byte through."""
    s = _servers[which].stats
    return {"connections": s.connections, "handshakes": s.handshakes, "refused": s.refused,
            "bytes_received": s.bytes_received, "requests": s.requests}


@app.ecall
def stop() -> None:
    for server in _servers.values():
        server.stop()
    _servers.clear()
