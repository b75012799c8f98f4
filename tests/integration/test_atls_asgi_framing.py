"""Response framing of the in-enclave ASGI server for bodyless responses and bad statuses.

204 and 304 responses and answers to HEAD carry no body, so they must not announce one
with ``Transfer-Encoding: chunked`` (a client would wait for chunks, or read the next
response as this one's body). A 1xx status from the app cannot be a final response: the
client gets an opaque 500 and the detail goes to the local log.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
from collections.abc import Iterator

import pytest

from enklave.atls._asgi import start_asgi_server
from enklave.atls._issue import issue_credentials
from enklave.atls._server import BackgroundServer
from enklave.backends.simulation import SimPlatform
from enklave.models.evidence import Evidence, report_data_for


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        raise RuntimeError("no lifespan here")
    path = scope["path"]
    status = int(path.strip("/")) if path.strip("/").isdigit() else 200
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})  # fmt: skip
    # streamed (more_body) so the server has no length: the chunked-framing path
    await send({"type": "http.response.body", "body": b"part one ", "more_body": True})
    await send({"type": "http.response.body", "body": b"part two", "more_body": False})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    platform = SimPlatform.init(tmp_path_factory.mktemp("sim") / "platform")

    def make(claims: bytes) -> Evidence:
        quote = platform.quote(report_data_for(claims), mrenclave=b"\x11" * 32,
                               mrsigner=b"\x22" * 32, isv_prod_id=1, isv_svn=1, debug=False)
        return Evidence(quote=quote, claims=claims, simulated=True)

    with start_asgi_server(app, credentials=issue_credentials(evidence=make)) as srv:
        yield srv


def connection(server: BackgroundServer) -> http.client.HTTPSConnection:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=10)


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/204", 204), ("GET", "/304", 304), ("HEAD", "/", 200), ("HEAD", "/204", 204),
])  # fmt: skip
def test_bodyless_responses_carry_no_transfer_encoding(server, method, path, status) -> None:
    conn = connection(server)
    conn.request(method, path)
    resp = conn.getresponse()
    assert resp.status == status and resp.read() == b""
    assert resp.getheader("transfer-encoding") is None
    if status == 204:
        assert resp.getheader("content-length") is None
    conn.request("GET", "/")  # the connection is still in step: the next answer is whole
    resp = conn.getresponse()
    assert resp.getheader("transfer-encoding") == "chunked"
    assert resp.read() == b"part one part two"
    conn.close()


def test_rejects_raw_socket_desync_after_204(server) -> None:
    """On the wire: nothing, not even a last-chunk, follows a 204 head."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", server.port), timeout=10)) as s:
        s.sendall(b"GET /204 HTTP/1.1\r\nHost: x\r\n\r\nGET /200 HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")  # fmt: skip
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    first, rest = data.split(b"\r\n\r\n", 1)
    assert first.startswith(b"HTTP/1.1 204") and b"transfer-encoding" not in first.lower()
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize("status", [100, 101, 103, 199])
def test_informational_status_from_the_app_is_an_opaque_500(
    server, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="enklave.atls")
    conn = connection(server)
    conn.request("GET", f"/{status}")
    resp = conn.getresponse()
    assert resp.status == 500
    body = resp.read()
    assert str(status).encode() not in body  # the detail stays local
    conn.close()
    assert "not a final status" in caplog.text
