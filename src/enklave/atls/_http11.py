"""A minimal, strict HTTP/1.1 server codec for the in-enclave ASGI server.

Only what an API server needs: origin-form (or absolute-form) request targets,
Content-Length request bodies, keep-alive and pipelining, responses framed by
Content-Length or chunked encoding. Everything else is refused with a clean status:
chunked or otherwise transfer-coded request bodies (411 / 501: send Content-Length),
heads over 8 KiB or with more than 100 header fields (431), bodies over 1 MiB (413),
HTTP versions other than 1.x (505), unknown expectations (417), and anything malformed
(400): obsolete line folding, bare LF line ends, control characters, a missing or
repeated Host in HTTP/1.1, Content-Length together with Transfer-Encoding, conflicting
Content-Length values. Every refusal is an :class:`HttpError` carrying its status.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote_to_bytes

from ..errors import AtlsError

__all__ = [
    "MAX_BODY",
    "MAX_HEAD",
    "MAX_HEADERS",
    "HttpError",
    "Request",
    "RequestReader",
    "encode_chunk",
    "error_response",
    "parse_head",
    "response_head",
]

MAX_HEAD: Final = 8 * 1024
MAX_HEADERS: Final = 100
MAX_BODY: Final = 1024 * 1024
READ_CHUNK: Final = 64 * 1024
LAST_CHUNK: Final = b"0\r\n\r\n"

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_VERSION = re.compile(rb"HTTP/([0-9])\.([0-9])")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_DIGITS = re.compile(rb"[0-9]{1,18}")
_ABSOLUTE = re.compile(rb"https?://[^/?#]*", re.IGNORECASE)
_REASONS: Final = {
    100: "Continue", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
    206: "Partial Content", 301: "Moved Permanently", 302: "Found", 303: "See Other",
    304: "Not Modified", 307: "Temporary Redirect", 308: "Permanent Redirect",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 411: "Length Required",
    413: "Content Too Large", 415: "Unsupported Media Type", 417: "Expectation Failed",
    422: "Unprocessable Content", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}  # fmt: skip


class HttpError(AtlsError):
    """A request the server refuses; ``status`` is the HTTP status to answer with."""

    code = "http"

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message, code="http")
        self.status = status


@dataclass(frozen=True)
class Request:
    """A parsed request head (the body is read separately).

    Attributes:
        method: the method token (case preserved).
        raw_path: the path as sent, percent-encoded; ``path`` is it decoded (UTF-8).
        query_string: the bytes after ``?`` (without it).
        http_version: ``"1.0"`` or ``"1.1"``.
        headers: ``(lower-case name, value)`` pairs in order.
        content_length: body length in bytes (0 without Content-Length).
        keep_alive: whether the client wants the connection kept open.
        expect_continue: the client waits for ``100 Continue`` before sending the body.
    """

    method: str
    raw_path: bytes
    path: str
    query_string: bytes
    http_version: str
    headers: tuple[tuple[bytes, bytes], ...]
    content_length: int
    keep_alive: bool
    expect_continue: bool


def _request_line(line: bytes) -> tuple[str, bytes, str]:
    parts = line.split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not _TARGET.fullmatch(parts[1]):
        raise HttpError("malformed request line (expected: METHOD SP TARGET SP HTTP/1.1)")
    m = _VERSION.fullmatch(parts[2])
    if m is None:
        raise HttpError("malformed HTTP version in the request line")
    if m.group(1) != b"1":
        raise HttpError("only HTTP/1.0 and HTTP/1.1 are supported", status=505)
    return parts[0].decode("ascii"), parts[1], "1.0" if m.group(2) == b"0" else "1.1"


def _split_target(method: str, target: bytes) -> tuple[bytes, str, bytes]:
    absolute = _ABSOLUTE.match(target)
    if absolute is not None:
        target = target[absolute.end() :] or b"/"
    if target == b"*" and method == "OPTIONS":
        return b"*", "*", b""
    if not target.startswith(b"/"):
        raise HttpError("the request target must be an absolute path (origin-form)")
    raw_path, _, query = target.partition(b"?")
    try:
        path = unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HttpError("the request path is not UTF-8 after percent-decoding") from exc
    return raw_path, path, query


def _header_fields(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    if len(lines) > MAX_HEADERS:
        raise HttpError(f"more than {MAX_HEADERS} header fields", status=431)
    headers: list[tuple[bytes, bytes]] = []
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.fullmatch(name):
            raise HttpError("malformed header field (obsolete folding or a bad name)")
        value = value.strip(b" \t")
        if _BAD_VALUE.search(value):
            raise HttpError("control character in a header value")
        headers.append((name.lower(), value))
    return headers


def _values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [v for n, v in headers if n == name]


def _tokens(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [t.strip(b" \t").lower() for v in _values(headers, name) for t in v.split(b",")]


def _content_length(headers: list[tuple[bytes, bytes]]) -> int:
    codings = _tokens(headers, b"transfer-encoding")
    lengths = _values(headers, b"content-length")
    if codings and lengths:
        raise HttpError("both Transfer-Encoding and Content-Length (possible smuggling)")
    if codings:
        if codings[-1] == b"chunked":
            raise HttpError(
                "chunked request bodies are not supported; send Content-Length", status=411
            )
        raise HttpError("request transfer codings are not supported", status=501)
    if not lengths:
        return 0
    if len(set(lengths)) != 1 or not _DIGITS.fullmatch(lengths[0]):
        raise HttpError("invalid or conflicting Content-Length")
    length = int(lengths[0])
    if length > MAX_BODY:
        raise HttpError(f"request body over {MAX_BODY} bytes", status=413)
    return length


def parse_head(head: bytes) -> Request:
    """Parse a request head (request line and header fields, without the final CRLF CRLF).

    Raises:
        HttpError: malformed (400), too many fields (431), unsupported version (505),
            transfer-coded body (411/501), body too large (413), unknown Expect (417).
    """
    if len(head) > MAX_HEAD:
        raise HttpError(f"request head over {MAX_HEAD} bytes", status=431)
    if b"\n" in head.replace(b"\r\n", b""):
        raise HttpError("bare CR or LF in the request head (lines must end in CRLF)")
    line, *lines = head.split(b"\r\n")
    method, target, version = _request_line(line)
    raw_path, path, query = _split_target(method, target)
    headers = _header_fields(lines)
    hosts = _values(headers, b"host")
    if len(hosts) > 1 or (version == "1.1" and not hosts):
        raise HttpError("HTTP/1.1 requests need exactly one Host header")
    expect = _tokens(headers, b"expect")
    if expect and expect != [b"100-continue"]:
        raise HttpError("only 'Expect: 100-continue' is supported", status=417)
    connection = _tokens(headers, b"connection")
    keep_alive = b"close" not in connection and (version == "1.1" or b"keep-alive" in connection)
    return Request(
        method=method,
        raw_path=raw_path,
        path=path,
        query_string=query,
        http_version=version,
        headers=tuple(headers),
        content_length=_content_length(headers),
        keep_alive=keep_alive,
        expect_continue=bool(expect) and version == "1.1",
    )


class RequestReader:
    """Reads request heads and bodies from a stream, keeping pipelined bytes for later."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._buf = bytearray()

    async def _fill(self) -> bool:
        data = await self._reader.read(READ_CHUNK)
        self._buf += data
        return bool(data)

    async def read_head(self) -> Request | None:
        """The next request head; None when the client closed cleanly between requests.

        Raises:
            HttpError: as :func:`parse_head`, or the connection closed mid-head (400).
        """
        while True:
            while self._buf[:2] == b"\r\n":  # tolerated empty lines between requests
                del self._buf[:2]
            end = self._buf.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self._buf[:end])
                del self._buf[: end + 4]
                return parse_head(head)
            if len(self._buf) > MAX_HEAD:
                raise HttpError(f"request head over {MAX_HEAD} bytes", status=431)
            if not await self._fill():
                if bytes(self._buf) in (b"", b"\r"):
                    return None
                raise HttpError("connection closed in the middle of a request head")

    async def read_body(self, remaining: int) -> bytes:
        """Up to ``min(remaining, 64 KiB)`` body bytes (at least one when ``remaining``).

        Raises:
            HttpError: the connection closed before the body was complete (400).
        """
        if remaining <= 0:
            return b""
        if not self._buf and not await self._fill():
            raise HttpError("connection closed before the request body was complete")
        size = min(remaining, READ_CHUNK, len(self._buf))
        chunk = bytes(self._buf[:size])
        del self._buf[:size]
        return chunk


def _reason(status: int) -> bytes:
    return _REASONS.get(status, "").encode("ascii")


def response_head(status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
    """Serialize a status line and header fields (ending with the blank line).

    Raises:
        HttpError: a status outside 100-599, a bad header name, or a header value with
            CR, LF or another control character (status 500: a bug in the app).
    """
    if type(status) is not int or not 100 <= status <= 599:
        raise HttpError(f"invalid response status {status!r}", status=500)
    out = [b"HTTP/1.1 %d %s\r\n" % (status, _reason(status))]
    for name, value in headers:
        if (
            type(name) is not bytes
            or type(value) is not bytes
            or not _TOKEN.fullmatch(name)
            or _BAD_VALUE.search(value)
        ):
            raise HttpError("invalid response header from the application", status=500)
        out.append(b"%s: %s\r\n" % (name, value))
    out.append(b"\r\n")
    return b"".join(out)


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked response body (empty data gives nothing: not the last chunk)."""
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


def error_response(status: int, message: str) -> bytes:
    """A complete plain-text response that also closes the connection."""
    body = f"{status} {_reason(status).decode()}: {message}\n".encode()
    head = response_head(
        status,
        [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    )
    return head + body
