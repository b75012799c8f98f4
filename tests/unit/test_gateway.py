"""The gateway's pure parts (path and body parsing, error mapping, the ASGI dispatch with a
fake runtime) and the host-side helpers of `enklave serve` / `enklave call`."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Annotated, Any

import pytest

from enklave._encoding import dumps, loads
from enklave._interface import FunctionSpec, MaxLen
from enklave.cli._serve import from_json_arg, to_json_value
from enklave.enclave import _gateway as gw
from enklave.errors import (
    BoundsError,
    ConfigError,
    EnclaveCallError,
    EncodingError,
    EnklaveError,
    InterfaceError,
)
from enklave.host._remote import remote_error
from enklave.host._serve import load_ocalls
from enklave.models.identity import Identity


def greet(name: Annotated[str, MaxLen(8)]) -> Annotated[str, MaxLen(32)]:
    return f"hi {name}"


def _handler(fn: Any) -> gw.Handler:
    spec = FunctionSpec.from_function(fn, kind="ecall")
    return (spec.check_args, fn, spec.check_result)


IDENT = Identity(mrenclave=b"\x01" * 32, mrsigner=b"\x02" * 32, product_id=3,
                 security_version=4, debug=False, simulated=True)


@pytest.mark.parametrize(("path", "name"), [
    ("/enklave/v1/ecall/greet", "greet"), ("/enklave/v1/ecall/a_1", "a_1"),
    ("/enklave/v1/ecall/", None), ("/enklave/v1/ecall/__enklave_gateway__", None),
    ("/enklave/v1/ecall/_x", None), ("/enklave/v1/ecall/a/b", None),
    ("/enklave/v1/ecall/a b", None), ("/enklave/v1/ecallgreet", None), ("/greet", None),
    ("/enklave/v1/ecall/" + "a" * 129, None), ("/enklave/v1/ecall/é", None),
])  # fmt: skip
def test_ecall_name(path: str, name: str | None) -> None:
    assert gw.ecall_name(path) == name


def test_decode_args() -> None:
    assert gw.decode_args(dumps(["a", b"b", 1, None])) == ["a", b"b", 1, None]
    with pytest.raises(InterfaceError):
        gw.decode_args(dumps({"a": 1}))
    for bad in (b"", b"\xff", b"\x81", dumps([1]) + b"\x00", b"\x9f\xff"):
        with pytest.raises(EncodingError):
            gw.decode_args(bad)


def test_run_ecall_ok_and_argument_errors() -> None:
    status, ctype, body = gw.run_ecall("greet", _handler(greet), ["Ada"])
    assert (status, ctype, loads(body)) == (200, gw.CBOR, {"result": "hi Ada"})
    for args in (["x" * 9], [1], [], ["a", "b"]):
        status, _, body = gw.run_ecall("greet", _handler(greet), args)
        assert status == 400 and loads(body)["error"] == "bounds"


def test_run_ecall_failures_are_opaque(caplog) -> None:
    def boom(name: Annotated[str, MaxLen(8)]) -> None:
        raise RuntimeError("secret " + name)

    def liar() -> Annotated[str, MaxLen(2)]:
        return "too long"

    def bounds_inside() -> None:
        raise BoundsError("raised by the app, not the argument check")

    for debug in (False, True):
        caplog.clear()
        for fn, args in ((boom, ["pw"]), (liar, []), (bounds_inside, [])):
            status, _, body = gw.run_ecall(fn.__name__, _handler(fn), args, debug=debug)
            doc = loads(body)
            assert status == 500 and doc["error"] == "ecall", fn
            assert "secret" not in doc["message"] and "Traceback" not in doc["message"]
        assert "RuntimeError" in caplog.text
        # the log reaches the host: a remote client's data only in debug enclaves
        assert ("secret pw" in caplog.text) is debug


def test_identity_json_and_error_body() -> None:
    doc = json.loads(gw.identity_json(IDENT))
    assert doc == {"mrenclave": "01" * 32, "mrsigner": "02" * 32, "product_id": 3,
                   "security_version": 4, "debug": False, "simulated": True}
    assert loads(gw.error_body("x", "m" * 5000)) == {"error": "x", "message": "m" * 1000}


def test_start_arguments_are_checked() -> None:
    assert gw._check_start([0, "0.0.0.0"]) == [0, "0.0.0.0"]
    for bad in ([], [1], [True, "h"], [-1, "h"], [65536, "h"], [1, ""], [1, b"h"],
                [1, "h" * 256], [1, "h", 2]):
        with pytest.raises(BoundsError):
            gw._check_start(bad)
    with pytest.raises(BoundsError):
        gw._check_none([1])


class FakeRuntime:
    """What the gateway needs from the runtime: identity, declared handlers, host_closed."""

    def __init__(self) -> None:
        self.identity = IDENT
        self.closed = threading.Event()
        self.reserved: dict[str, Any] = {}

    def ecall_handler(self, name: str) -> gw.Handler | None:
        return _handler(greet) if name == "greet" else None

    def host_closed(self) -> bool:
        return self.closed.is_set()

    def reserve(self, name: str, handler: Any) -> None:
        self.reserved[name] = handler


def _call(app: gw.Gateway, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []
    chunks = [{"type": "http.request", "body": body[:3], "more_body": True},
              {"type": "http.request", "body": body[3:], "more_body": False}]

    async def receive() -> dict[str, Any]:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    scope = {"type": "http", "method": method, "path": path}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], sent[1]["body"]


def test_gateway_dispatch_with_a_parked_worker() -> None:
    runtime = FakeRuntime()
    app = gw.install(runtime)  # type: ignore[arg-type]
    assert set(runtime.reserved) == {gw.START_ECALL, gw.WORKER_ECALL}
    worker = threading.Thread(target=app.work)
    worker.start()
    try:
        status, body = _call(app, "POST", "/enklave/v1/ecall/greet", dumps(["Ada"]))
        assert (status, loads(body)) == (200, {"result": "hi Ada"})
        assert _call(app, "POST", "/enklave/v1/ecall/nope", dumps([]))[0] == 404
        assert _call(app, "POST", "/elsewhere", dumps([]))[0] == 404
        assert _call(app, "PUT", "/enklave/v1/ecall/greet", dumps([]))[0] == 405
        status, body = _call(app, "POST", "/enklave/v1/ecall/greet", b"\xff\xff")
        assert (status, loads(body)["error"]) == (400, "encoding")
        assert _call(app, "GET", gw.HEALTH_PATH) == (200, b"ok")
        assert json.loads(_call(app, "GET", gw.IDENTITY_PATH)[1])["product_id"] == 3
        assert _call(app, "DELETE", gw.HEALTH_PATH)[0] == 405
    finally:
        runtime.closed.set()
        worker.join(5)
    assert not worker.is_alive()  # the parked thread left when the host closed


def test_gateway_answers_busy_when_the_queue_is_full(monkeypatch) -> None:
    monkeypatch.setattr(gw, "MAX_QUEUED", 1)
    app = gw.Gateway(FakeRuntime())  # type: ignore[arg-type]
    app._jobs.put_nowait(gw._Job("greet", _handler(greet), ["x"]))  # no worker: stays queued
    status, body = _call(app, "POST", "/enklave/v1/ecall/greet", dumps(["Ada"]))
    assert (status, loads(body)["error"]) == (503, "busy")


def test_lifespan_and_other_scopes_are_ignored() -> None:
    app = gw.Gateway(FakeRuntime())  # type: ignore[arg-type]

    async def never() -> dict[str, Any]:
        raise AssertionError

    asyncio.run(app({"type": "lifespan"}, never, never))


@pytest.mark.parametrize(("code", "cls"), [
    ("ecall", EnclaveCallError), ("bounds", BoundsError), ("interface", InterfaceError),
    ("not_found", InterfaceError), ("encoding", EncodingError), ("busy", EnklaveError),
])  # fmt: skip
def test_remote_error_mapping(code: str, cls: type[EnklaveError]) -> None:
    exc = remote_error(400, code, "why")
    assert type(exc) is cls and exc.code == code and "why" in str(exc)


def test_json_args_and_results() -> None:
    assert from_json_arg('"Ada"') == "Ada"
    assert from_json_arg('[1, {"hex": "00ff"}, {"k": {"hex": ""}}, null, true]') == [
        1, b"\x00\xff", {"k": b""}, None, True]
    assert from_json_arg('{"hex": "00", "x": 1}') == {"hex": "00", "x": 1}
    for bad in ("Ada", '{"hex": "zz"}', ""):
        with pytest.raises(ConfigError):
            from_json_arg(bad)
    assert to_json_value({"a": [b"\x01", 2, None], "b": b""}) == {"a": ["01", 2, None], "b": ""}


def test_load_ocalls(tmp_path: Path) -> None:
    good = tmp_path / "good.py"
    good.write_text("def ocalls(state_dir):\n"
                    "    return {'log': print, 'dir': lambda: str(state_dir)}\n")
    table = load_ocalls(good, tmp_path / "state")
    assert table["dir"]() == str(tmp_path / "state")
    cases = {
        "none.py": "x = 1\n",
        "raises.py": "def ocalls(d):\n    raise OSError('no disk')\n",
        "notdict.py": "def ocalls(d):\n    return [print]\n",
        "notcallable.py": "def ocalls(d):\n    return {'log': 3}\n",
        "syntax.py": "def ocalls(:\n",
    }
    for name, src in cases.items():
        (tmp_path / name).write_text(src)
        with pytest.raises(ConfigError):
            load_ocalls(tmp_path / name, tmp_path)
    with pytest.raises(ConfigError):
        load_ocalls(tmp_path / "missing.py", tmp_path)
