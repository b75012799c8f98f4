"""The in-enclave HTTP/1.1 codec (enklave.atls._http11) under arbitrary input: only
HttpError with a 4xx/5xx status ever escapes, the reader always terminates, valid
requests round-trip, and responses cannot be split by header injection."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enklave.atls._http11 import (
    MAX_HEAD,
    HttpError,
    Request,
    RequestReader,
    encode_chunk,
    error_response,
    parse_head,
    response_head,
)

SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
REFUSALS = {400, 411, 413, 417, 431, 501, 505}

TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~",
                min_size=1, max_size=12)
VALUE = st.binary(max_size=40).map(
    lambda b: bytes(c for c in b if c == 9 or 32 <= c < 127 or c >= 128).strip(b" \t")
)
PIECES = st.sampled_from([
    b"GET", b"POST", b"HEAD", b"OPTIONS", b" ", b"  ", b"/", b"/a?b=c", b"*", b"%ff", b"%41",
    b"http://h/x", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.", b"\r\n", b"\n", b"\r",
    b":", b"Host", b"host: x", b"Content-Length", b"content-length: 5", b"content-length: -1",
    b"Content-Length: 99999999", b"Transfer-Encoding: chunked", b"transfer-encoding: gzip",
    b"Expect: 100-continue", b"expect: x", b"Connection: close", b"connection: keep-alive",
    b"\t", b"\x00", b"\x7f", b"\xff", b"x" * 300, b"0", b"12",
])  # fmt: skip


def check_parse(head: bytes) -> Request | None:
    try:
        return parse_head(head)
    except HttpError as exc:
        assert exc.status in REFUSALS, exc.status
        assert exc.code == "http"
        return None


@settings(SETTINGS, max_examples=3000)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_parse_or_refuse_cleanly(data: bytes) -> None:
    check_parse(data)


@settings(SETTINGS, max_examples=3000)
@given(st.lists(PIECES, max_size=30))
def test_near_valid_heads_parse_or_refuse_cleanly(pieces: list[bytes]) -> None:
    req = check_parse(b"".join(pieces))
    if req is not None:
        assert req.http_version in ("1.0", "1.1")
        assert 0 <= req.content_length <= 1024 * 1024
        assert all(name == name.lower() for name, _ in req.headers)


def read_all(data: bytes, split: int) -> list[Request | int]:
    """Feed ``data`` in two pieces then EOF; read requests until the end or a refusal."""

    async def run() -> list[Request | int]:
        reader = asyncio.StreamReader()
        reader.feed_data(data[:split])
        reader.feed_data(data[split:])
        reader.feed_eof()
        body = RequestReader(reader)
        out: list[Request | int] = []
        for _ in range(len(data) + 2):  # every round consumes bytes or ends
            try:
                req = await body.read_head()
                if req is None:
                    return out
                remaining = req.content_length
                while remaining:
                    remaining -= len(await body.read_body(remaining))
            except HttpError as exc:
                out.append(exc.status)
                return out
            out.append(req)
        raise AssertionError("the reader did not terminate")

    return asyncio.run(run())


@settings(SETTINGS, max_examples=1500)
@given(st.lists(PIECES, max_size=40), st.integers(min_value=0, max_value=2000))
def test_reader_terminates_with_requests_or_a_refusal(pieces: list[bytes], split: int) -> None:
    for item in read_all(b"".join(pieces) + b"\r\n\r\n", split):
        assert isinstance(item, Request) or item in REFUSALS


@settings(SETTINGS, max_examples=1000)
@given(st.binary(max_size=400), st.integers(min_value=0, max_value=400))
def test_reader_on_arbitrary_bytes(data: bytes, split: int) -> None:
    for item in read_all(data, split):
        assert isinstance(item, Request) or item in REFUSALS


REQUEST = st.tuples(
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    st.lists(TOKEN, max_size=3).map(lambda parts: "/" + "/".join(parts)),
    st.lists(st.tuples(TOKEN, VALUE), max_size=8),
    st.binary(max_size=200),
)


@settings(SETTINGS, max_examples=500)
@given(st.lists(REQUEST, min_size=1, max_size=4), st.integers(min_value=0, max_value=3000))
def test_valid_pipelined_requests_round_trip(requests, split) -> None:
    skip = {"host", "content-length", "transfer-encoding", "expect", "connection"}
    wire = b""
    for method, path, headers, body in requests:
        headers = [(n, v) for n, v in headers if n.lower() not in skip]
        lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: example"]
        lines += [n.encode() + b": " + v for n, v in headers]
        lines.append(b"Content-Length: %d" % len(body))
        wire += b"\r\n".join(lines) + b"\r\n\r\n" + body

    async def run() -> list[tuple[Request, bytes]]:
        reader = asyncio.StreamReader()
        reader.feed_data(wire[:split])
        reader.feed_data(wire[split:])
        reader.feed_eof()
        rr, out = RequestReader(reader), []
        while (req := await rr.read_head()) is not None:
            body, remaining = b"", req.content_length
            while remaining:
                chunk = await rr.read_body(remaining)
                body, remaining = body + chunk, remaining - len(chunk)
            out.append((req, body))
        return out

    got = asyncio.run(run())
    assert len(got) == len(requests)
    for (req, body), (method, path, headers, sent) in zip(got, requests):
        assert (req.method, req.path, body, req.keep_alive) == (method, path, sent, True)
        names = [n for n, _ in req.headers]
        assert names[0] == b"host" and names[-1] == b"content-length"


@settings(SETTINGS, max_examples=1500)
@given(st.integers(min_value=0, max_value=1000),
       st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=24)), max_size=5))
def test_responses_cannot_be_split(status: int, headers: list[tuple[bytes, bytes]]) -> None:
    try:
        head = response_head(status, headers)
    except HttpError as exc:
        assert exc.status == 500
        return
    lines = head.split(b"\r\n")
    assert lines[-2:] == [b"", b""] and len(lines) == len(headers) + 3
    assert all(b"\n" not in line and b"\r" not in line for line in lines)


@settings(SETTINGS, max_examples=300)
@given(st.binary(max_size=3000))
def test_chunks_frame_their_data(data: bytes) -> None:
    chunk = encode_chunk(data)
    if data:
        size, _, rest = chunk.partition(b"\r\n")
        assert int(size, 16) == len(data) and rest == data + b"\r\n"
    else:
        assert chunk == b""


@pytest.mark.parametrize("status", sorted(REFUSALS))
def test_error_responses_are_complete_and_close(status: int) -> None:
    wire = error_response(status, "x")
    head, _, body = wire.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status)
    assert b"connection: close" in head and b"content-length: %d" % len(body) in head


def test_head_limit_is_enforced_by_the_reader() -> None:
    assert read_all(b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * MAX_HEAD, 100) == [431]
