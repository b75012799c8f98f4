"""The Gramine backend's host channel: loopback TCP plus a one-time token."""

from __future__ import annotations

import socket
import threading

import pytest

from enklave.backends.gramine import _channel
from enklave.errors import EnclaveLoadError, PlatformError

TOKEN = "ab" * 16


@pytest.mark.parametrize("value", [
    None, "", "127.0.0.1:1", "127.0.0.1:x:" + TOKEN, "127.0.0.1:\u00b2:" + TOKEN,
    "127.0.0.1:0:" + TOKEN, "127.0.0.1:70000:" + TOKEN, "127.0.0.1:1:" + TOKEN[:-1],
    "127.0.0.1:1:" + "\u00e9" * 32, "127.0.0.1:1:" + "AB" * 16,
])  # fmt: skip
def test_malformed_channel_variable_is_a_platform_error(value: str | None) -> None:
    with pytest.raises(PlatformError, match="malformed"):
        _channel.connect_host(value, timeout=1)


def test_unresolvable_host_is_a_platform_error() -> None:
    with pytest.raises(PlatformError, match="cannot reach"):
        _channel.connect_host("a\x00b:1:" + TOKEN, timeout=1)


def test_only_the_token_holder_is_accepted_and_strays_do_not_stall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_channel, "TOKEN_WAIT", 0.2)
    listener, token, address = _channel.new_channel()
    port = listener.getsockname()[1]
    silent = socket.create_connection(("127.0.0.1", port))  # connects, never sends
    wrong = socket.create_connection(("127.0.0.1", port))
    wrong.sendall(b"0" * _channel.TOKEN_SIZE)
    got: list[socket.socket] = []
    t = threading.Thread(target=lambda: got.append(_channel.connect_host(address, timeout=5)))
    t.start()
    with listener:
        conn = _channel.accept_enclave(listener, token, timeout=10)
    t.join(timeout=5)
    conn.sendall(b"x")
    assert got and got[0].recv(1) == b"x"
    for s in (conn, got[0], silent, wrong):
        s.close()


def test_no_connection_times_out() -> None:
    listener, token, _ = _channel.new_channel()
    with listener, pytest.raises(EnclaveLoadError, match="did not connect back"):
        _channel.accept_enclave(listener, token, timeout=0.3, alive=lambda: True)
