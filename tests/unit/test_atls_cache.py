"""PeerVerifier's cache: clear_cache() wins over verifications in flight, and no entry
outlives the collateral its verification relied on."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pytest

from enklave.atls import _verify
from enklave.atls._issue import Credentials, issue_credentials
from enklave.atls._verify import PeerVerifier
from enklave.backends.simulation import SimPlatform
from enklave.errors import CollateralExpired
from enklave.models.evidence import Evidence, report_data_for
from enklave.verify import TrustAnchor, Verifier, default_policy

MRENCLAVE = b"\x11" * 32


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[SimPlatform, Path]:
    home = tmp_path_factory.mktemp("sim") / "platform"
    return SimPlatform.init(home), home


@pytest.fixture(scope="module")
def creds(sim) -> Credentials:
    def make(claims: bytes) -> Evidence:
        quote = sim[0].quote(report_data_for(claims), mrenclave=MRENCLAVE,
                             mrsigner=b"\x22" * 32, isv_prod_id=1, isv_svn=1, debug=False)
        return Evidence(quote=quote, claims=claims, simulated=True)

    return issue_credentials(evidence=make, lifetime=dt.timedelta(days=3650))


def peer_verifier(sim, **kw) -> PeerVerifier:
    verifier = Verifier(anchors=TrustAnchor.simulation(sim[1]), collateral=sim[0].collateral())
    return PeerVerifier(verifier=verifier,
                        policy=default_policy(mrenclave=[MRENCLAVE], allow_simulated=True), **kw)


def test_rejects_stale_result_stored_after_clear_cache(sim, creds, monkeypatch) -> None:
    """A verification that started before clear_cache() (say, before a policy or trust
    change) returns its answer to its caller but must not be cached afterwards."""
    pv = peer_verifier(sim)
    real = _verify.verify_certificate
    started, release = threading.Event(), threading.Event()

    def slow(*args, **kwargs):
        started.set()
        assert release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(_verify, "verify_certificate", slow)
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.append(pv.verify(creds.certificate_der)))
    worker.start()
    assert started.wait(10)
    pv.clear_cache()  # while the verification is in flight
    release.set()
    worker.join(10)
    assert len(results) == 1 and pv.misses == 1
    monkeypatch.setattr(_verify, "verify_certificate", real)
    pv.verify(creds.certificate_der)
    assert (pv.hits, pv.misses) == (0, 2)  # not served from a stale entry
    pv.verify(creds.certificate_der)
    assert (pv.hits, pv.misses) == (1, 2)  # verifications after the clear are cached


def test_cache_entry_ends_at_the_earliest_collateral_expiry(sim, creds) -> None:
    clock = [time.time()]
    pv = peer_verifier(sim, clock=lambda: clock[0], cache_ttl=10.0**9)
    peer = pv.verify(creds.certificate_der)
    expires = peer.enclave.result.earliest_expiration.timestamp()
    assert expires < peer.certificate.not_after.timestamp()  # the collateral ends first
    clock[0] = expires - 1
    pv.verify(creds.certificate_der)
    assert pv.hits == 1
    clock[0] = expires + 1  # certificate and TTL still fine, collateral expired
    with pytest.raises(CollateralExpired):
        pv.verify(creds.certificate_der)
    assert (pv.hits, pv.misses) == (1, 2)


def test_report_mode_does_not_cache_results_on_expired_collateral(sim, creds) -> None:
    clock = [time.time()]
    pv = peer_verifier(sim, clock=lambda: clock[0], expiry="report")
    clock[0] = pv.verify(creds.certificate_der).enclave.result.earliest_expiration.timestamp()
    clock[0] += 10
    peer = pv.verify(creds.certificate_der)  # the cached entry ended with the collateral
    assert peer.enclave.collateral_expired and pv.misses == 2
    pv.verify(creds.certificate_der)
    assert (pv.hits, pv.misses) == (0, 3)
