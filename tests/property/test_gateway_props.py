"""`enklave serve` under arbitrary requests: arbitrary bytes as bodies and paths get only
clean 4xx answers (or a result, when the bytes happen to be valid arguments), never a 5xx,
and the enclave's server stays up."""

from __future__ import annotations

from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _serve_testkit import HELLO_HOST, ServeProcess, verifier_for
from enklave._encoding import dumps, loads
from enklave.atls.transport import attested_client
from enklave.errors import EncodingError

SETTINGS = settings(deadline=None, max_examples=60,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])
# put/get are left out: a host-refused key (an OCALL failure) is a legitimate 500 "ecall"
NAMES = st.sampled_from(["greet", "whoami", "attest", "nope", "__enklave_gateway__"])
BODIES = st.one_of(
    st.binary(max_size=300),
    # integers within CBOR's range (-2**64 .. 2**64-1): dumps refuses the rest
    st.lists(st.one_of(st.text(max_size=80), st.binary(max_size=80),
                       st.integers(-(2**64), 2**64 - 1),
                       st.none(), st.booleans()), max_size=3).map(dumps),
)


@pytest.fixture(scope="module")
def server(tmp_path_factory, key):
    from conftest import HELLO_DIR, build

    tmp = tmp_path_factory.mktemp("serve-props")
    bundle = build(HELLO_DIR, key, tmp / "hello.bundle")
    proc = ServeProcess(bundle, tmp / "sim", "--ocalls", str(HELLO_HOST), "--state",
                        str(tmp / "state"))
    client = attested_client(verifier=verifier_for(tmp / "sim", proc.mrenclave), timeout=30)
    yield proc, client
    client.close()
    proc.kill()


def _check(resp) -> None:
    assert resp.status_code < 500, (resp.status_code, resp.content[:200])
    cbor = resp.headers.get("content-type") == "application/cbor"
    if cbor and resp.request.method != "HEAD":  # HEAD answers have no body
        try:
            doc = loads(resp.content)
        except EncodingError:
            raise AssertionError(f"undecodable gateway answer {resp.content[:100]!r}") from None
        assert set(doc) in ({"result"}, {"error", "message"}), doc


@SETTINGS
@given(name=NAMES, body=BODIES)
def test_arbitrary_bodies_get_clean_answers(server, name: str, body: bytes) -> None:
    proc, client = server
    _check(client.post(f"{proc.url}/enklave/v1/ecall/{name}", content=body))


@SETTINGS
@given(path=st.binary(max_size=60), body=st.binary(max_size=60),
       method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD"]))
def test_arbitrary_paths_get_clean_answers(server, path: bytes, body: bytes, method: str) -> None:
    proc, client = server
    url = proc.url + "/" + quote_from_bytes(path, safe="/")
    resp = client.request(method, url, content=body if method in ("POST", "PUT") else None)
    _check(resp)


def test_server_still_up_afterwards(server) -> None:
    proc, client = server
    assert client.get(proc.url + "/enklave/v1/health").text == "ok"
    r = client.post(proc.url + "/enklave/v1/ecall/greet", content=dumps(["Ada"]))
    assert loads(r.content) == {"result": "Hello, Ada, from inside the enclave!"}
    assert proc.proc.poll() is None
