"""The host/enclave channel on the Gramine backend: loopback TCP plus a one-time token.

Gramine does not hand host file descriptors (the simulation backend's inherited
``socketpair``) to the enclave, and the manifest's ``loader.argv`` is fixed and measured,
so the per-run address travels in one environment variable that the manifest passes
through: ``ENKLAVE_CHANNEL=127.0.0.1:PORT:TOKEN``. The host listens on an ephemeral
loopback port; the enclave connects and first sends the 32-character token, so the host
talks only to the process it started. The variable is untrusted input to the enclave,
like every byte on the channel: at worst the host points the enclave at another peer,
which it could do anyway.
"""

from __future__ import annotations

import hmac
import re
import secrets
import socket
import time
from collections.abc import Callable
from typing import Final

from ...errors import EnclaveLoadError, PlatformError

__all__ = ["CHANNEL_ENV", "TOKEN_SIZE", "accept_enclave", "connect_host", "new_channel"]

CHANNEL_ENV: Final = "ENKLAVE_CHANNEL"
TOKEN_SIZE: Final = 32  # hex characters
#: Seconds one connection gets to present the token (the enclave sends it right after
#: connecting); a stray local connection cannot hold the accept loop for the whole timeout.
TOKEN_WAIT: Final = 5.0
_HEX = re.compile(f"[0-9a-f]{{{TOKEN_SIZE}}}")


def new_channel() -> tuple[socket.socket, str, str]:
    """Listen on an ephemeral loopback port: (listener, token, the ENKLAVE_CHANNEL value)."""
    listener = socket.create_server(("127.0.0.1", 0))
    token = secrets.token_hex(TOKEN_SIZE // 2)
    port = listener.getsockname()[1]
    return listener, token, f"127.0.0.1:{port}:{token}"


def connect_host(value: str | None, *, timeout: float = 30.0) -> socket.socket:
    """Enclave side: connect to the host named by ``ENKLAVE_CHANNEL`` and send the token.

    Raises:
        PlatformError: the variable is missing or malformed, or the connection fails.
    """
    parts = (value or "").rsplit(":", 2)
    if len(parts) != 3 or _HEX.fullmatch(parts[2]) is None or not _port_ok(parts[1]):
        raise PlatformError(
            f"{CHANNEL_ENV} is missing or malformed; the host sets it when it starts the "
            "enclave (start it with Enclave.open(bundle, backend='gramine'))"
        )
    host, port, token = parts[0], int(parts[1]), parts[2]
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.settimeout(None)
        sock.sendall(token.encode("ascii"))
    except (OSError, ValueError) as exc:  # ValueError: a host name getaddrinfo refuses
        raise PlatformError(f"cannot reach the host at {host!r}:{port}: {exc}") from exc
    return sock


def _port_ok(text: str) -> bool:
    # ASCII digits only: str.isdigit() also accepts digits int() refuses (e.g. "²")
    return text.isascii() and text.isdigit() and 0 < int(text) <= 65535


def accept_enclave(
    listener: socket.socket, token: str, *, timeout: float, alive: Callable[[], bool] | None = None
) -> socket.socket:
    """Host side: accept connections until one presents ``token`` (others are dropped).

    Raises:
        EnclaveLoadError: no connection with the token within ``timeout`` seconds, or
            ``alive()`` turned false (the enclave process exited).
    """
    deadline = time.monotonic() + timeout
    expected = token.encode("ascii")
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or (alive is not None and not alive()):
            raise EnclaveLoadError(
                "the enclave did not connect back within the load timeout (or exited); "
                "see gramine-sgx's stderr"
            )
        listener.settimeout(min(left, 0.5))
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        if _token_ok(conn, expected, min(left, TOKEN_WAIT)):
            conn.settimeout(None)
            return conn
        conn.close()


def _token_ok(conn: socket.socket, expected: bytes, timeout: float) -> bool:
    conn.settimeout(max(timeout, 0.1))
    got = b""
    try:
        while len(got) < len(expected):
            chunk = conn.recv(len(expected) - len(got))
            if not chunk:
                return False
            got += chunk
    except OSError:
        return False
    return hmac.compare_digest(got, expected)
