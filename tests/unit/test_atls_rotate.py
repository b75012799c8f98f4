"""RotatingCredentials issues the next credentials ahead of time, off the handshake path.

An injected clock says when rotation is due; an injected slow evidence function stands in
for slow key generation: a handshake that waited for it would take seconds.
"""

from __future__ import annotations

import ssl
import threading
import time
from pathlib import Path

import pytest

from enklave.atls._rotate import RotatingCredentials
from enklave.backends.simulation import SimPlatform
from enklave.errors import AtlsError, ConfigError
from enklave.models.evidence import Evidence, report_data_for

SLOW_S = 5.0  # how long a gated re-issue may block: far above any handshake's time
FAST_S = 1.0


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> SimPlatform:
    home: Path = tmp_path_factory.mktemp("sim") / "platform"
    return SimPlatform.init(home)


class GatedEvidence:
    """Simulated evidence; every call after the first waits for ``gate`` (slow keygen)."""

    def __init__(self, platform: SimPlatform) -> None:
        self.platform = platform
        self.gate = threading.Event()
        self.threads: list[str] = []
        self.fail = False

    def __call__(self, claims: bytes) -> Evidence:
        self.threads.append(threading.current_thread().name)
        if len(self.threads) > 1:
            self.gate.wait(SLOW_S)
        if self.fail:
            raise RuntimeError("the quoting enclave is unavailable")
        quote = self.platform.quote(report_data_for(claims), mrenclave=b"\x11" * 32,
                                    mrsigner=b"\x22" * 32, isv_prod_id=1, isv_svn=1, debug=False)
        return Evidence(quote=quote, claims=claims, simulated=True)


def handshake(server: ssl.SSLContext) -> tuple[bytes, float]:
    """One in-memory TLS handshake against ``server``: (server certificate DER, seconds)."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    cli = client.wrap_bio(c_in, c_out, server_hostname="enclave.example")
    srv = server.wrap_bio(s_in, s_out, server_side=True)
    start = time.monotonic()
    done = {cli: False, srv: False}
    for _ in range(20):
        for side in (cli, srv):
            if not done[side]:
                try:
                    side.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            break
    assert all(done.values()), "the handshake did not complete"
    der = cli.getpeercert(binary_form=True)
    assert der is not None
    return der, time.monotonic() - start


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_handshake_at_rotation_time_does_not_wait_for_key_generation(platform) -> None:
    clock = [0.0]
    slow = GatedEvidence(platform)
    rot = RotatingCredentials(interval=60, clock=lambda: clock[0], evidence=slow)
    server = rot.server_context()
    first = rot.current().certificate_der
    assert handshake(server)[0] == first

    clock[0] = 50  # past 80% of the interval: the next issue starts in the background ...
    der, took = handshake(server)
    assert der == first and took < FAST_S  # ... and this handshake does not wait for it
    wait_for(lambda: len(slow.threads) == 2)
    assert slow.threads[1] == "enklave-atls-rotate"
    clock[0] = 55  # still issuing (gated): handshakes go on with the current credentials
    der, took = handshake(server)
    assert der == first and took < FAST_S and len(slow.threads) == 2

    slow.gate.set()
    wait_for(lambda: rot.prepared == 1)
    clock[0] = 60  # due: the prepared credentials are swapped in, nothing is generated
    der, took = handshake(server)
    assert der != first and took < FAST_S
    assert len(slow.threads) == 2 and rot.issued == 2
    assert der == rot.current().certificate_der


def test_due_with_the_issue_still_running_waits_for_it_not_for_a_new_one(platform) -> None:
    clock = [0.0]
    slow = GatedEvidence(platform)
    rot = RotatingCredentials(interval=60, clock=lambda: clock[0], evidence=slow)
    first = rot.current()
    clock[0] = 48
    assert rot.current() is first
    wait_for(lambda: len(slow.threads) == 2)
    clock[0] = 60  # due, nothing prepared: credentials older than interval are never served
    threading.Timer(0.3, slow.gate.set).start()
    start = time.monotonic()
    second = rot.current()
    assert second is not first and time.monotonic() - start >= 0.2
    assert len(slow.threads) == 2 and rot.issued == 2 and rot.prepared == 1


def test_due_with_nothing_prepared_issues_synchronously_as_before(platform) -> None:
    clock = [0.0]
    slow = GatedEvidence(platform)
    slow.gate.set()
    rot = RotatingCredentials(interval=60, clock=lambda: clock[0], evidence=slow)
    first = rot.current()
    clock[0] = 61  # no call between 80% and 100% (an idle server with an injected clock)
    second = rot.current()
    assert second is not first and slow.threads[1] == threading.current_thread().name
    assert rot.prepared == 0 and rot.issued == 2


def test_failed_background_issue_is_retried_when_due(platform, caplog) -> None:
    clock = [0.0]
    slow = GatedEvidence(platform)
    slow.gate.set()
    rot = RotatingCredentials(interval=60, clock=lambda: clock[0], evidence=slow)
    first = rot.current()
    slow.fail = True
    clock[0] = 50
    assert rot.current() is first
    wait_for(lambda: len(slow.threads) == 2)
    clock[0] = 55
    assert rot.current() is first and len(slow.threads) == 2  # no retry storm before due
    clock[0] = 60
    with pytest.raises(AtlsError):  # due and the evidence still fails: no stale credentials
        rot.current()
    slow.fail = False
    assert rot.current() is not first and rot.prepared == 0
    assert "in the background" in caplog.text


def test_prepare_at_is_checked(platform) -> None:
    with pytest.raises(ConfigError, match="prepare_at"):
        RotatingCredentials(interval=60, prepare_at=1.5, evidence=GatedEvidence(platform))
