"""attested_client / async_attested_client: httpx clients with no way around attestation.

``httpx.Client(transport=AttestedTransport(...), proxy=...)`` (or ``mounts=``) would route
requests through httpx's own, unattested transports; the helpers refuse those arguments
and ignore environment proxies. Also: the transport's verifier is read-only, and client
contexts are fresh, renegotiation-free contexts.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import httpx
import pytest

from _atls_testkit import (
    MRENCLAVE,
    OTHER_MRENCLAVE,
    CountingTLSServer,
    TestCert,
    attested_cert,
    evidence_for,
    peers,
    plain_cert,
)
from enklave.atls._client import client_context
from enklave.atls._issue import issue_credentials
from enklave.atls.transport import (
    PEER_EXTENSION,
    AsyncAttestedTransport,
    AttestedTransport,
    async_attested_client,
    attested_client,
)
from enklave.backends.simulation import SimPlatform
from enklave.errors import AtlsError, CertificateError, PolicyError


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> SimPlatform:
    return SimPlatform.init(tmp_path_factory.mktemp("sim"))


@pytest.fixture(scope="module")
def enclave_cert(platform: SimPlatform, tmp_path_factory: pytest.TempPathFactory) -> TestCert:
    return attested_cert(platform, tmp_path_factory.mktemp("certs"))


def url(srv: CountingTLSServer) -> str:
    return f"https://127.0.0.1:{srv.port}/hello"


@pytest.mark.parametrize("kwarg", [
    {"proxy": "http://127.0.0.1:3128"},
    {"mounts": {"https://": httpx.HTTPTransport(verify=False)}},
    {"transport": httpx.HTTPTransport(verify=False)},
    {"verify": False},
    {"trust_env": True},
    {"cert": "client.pem"},
])  # fmt: skip
def test_rejects_proxy_and_mount_bypass_of_attestation(platform: SimPlatform, kwarg) -> None:
    for factory in (attested_client, async_attested_client):
        with pytest.raises(AtlsError) as info:
            factory(verifier=peers(platform), **kwarg)
        assert info.value.code == "config" and next(iter(kwarg)) in info.value.message


def test_attested_client_attests_and_refuses_before_sending_a_byte(
    platform: SimPlatform, enclave_cert: TestCert, tmp_path: Path
) -> None:
    with CountingTLSServer(enclave_cert.server_context()) as srv, \
            CountingTLSServer(plain_cert(tmp_path).server_context()) as plain:
        with attested_client(verifier=peers(platform), timeout=10,
                             headers={"x-test": "1"}) as client:
            assert isinstance(client._transport, AttestedTransport)
            r = client.get(url(srv))
            assert r.text == "hello from the enclave"
            assert r.extensions[PEER_EXTENSION].enclave.mrenclave == MRENCLAVE
            with pytest.raises(CertificateError):
                client.get(url(plain))
        with attested_client(verifier=peers(platform, OTHER_MRENCLAVE)) as client:
            with pytest.raises(PolicyError):
                client.post(url(srv), content=b"secret")
        srv.join_handlers()
        plain.join_handlers()
        assert srv.bytes_per_connection[1:] == [0] and plain.bytes_received == 0


def test_rejects_environment_proxy_bypass(
    platform: SimPlatform, enclave_cert: TestCert, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An HTTPS_PROXY in the environment is ignored: the request still goes, attested,
    straight to the server (a proxy mount would have skipped the attestation)."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    with CountingTLSServer(enclave_cert.server_context()) as srv:
        with attested_client(verifier=peers(platform)) as client:
            assert client.get(url(srv)).extensions[PEER_EXTENSION] is not None
        assert srv.requests == 1


def test_async_attested_client_attests_and_refuses(
    platform: SimPlatform, enclave_cert: TestCert
) -> None:
    async def scenario(srv: CountingTLSServer) -> None:
        async with async_attested_client(verifier=peers(platform)) as client:
            assert isinstance(client._transport, AsyncAttestedTransport)
            r = await client.get(url(srv))
            assert r.extensions[PEER_EXTENSION].enclave.mrenclave == MRENCLAVE
        async with async_attested_client(verifier=peers(platform, OTHER_MRENCLAVE)) as client:
            with pytest.raises(PolicyError):
                await client.get(url(srv))

    with CountingTLSServer(enclave_cert.server_context()) as srv:
        asyncio.run(scenario(srv))
        srv.join_handlers()
        assert srv.requests == 1 and srv.bytes_per_connection[1:] == [0]


def test_rejects_verifier_swap_on_a_transport(platform: SimPlatform) -> None:
    good = peers(platform)
    for transport in (AttestedTransport(verifier=good), AsyncAttestedTransport(verifier=good)):
        assert transport.verifier is good
        with pytest.raises(AttributeError):
            transport.verifier = peers(platform, OTHER_MRENCLAVE)  # type: ignore[misc]
        assert transport.verifier is good


def test_client_context_with_credentials_is_new_each_time(platform: SimPlatform) -> None:
    creds = issue_credentials(evidence=evidence_for(platform))
    first, second = client_context(credentials=creds), client_context(credentials=creds)
    assert first is not second and first is not creds.client_context()
    first.maximum_version = ssl.TLSVersion.TLSv1_2  # a caller's change stays its own
    assert second.maximum_version != ssl.TLSVersion.TLSv1_2
    assert creds.client_context().maximum_version != ssl.TLSVersion.TLSv1_2
    for ctx in (first, second, client_context(), creds.client_context(),
                creds.server_context()):
        assert ctx.options & ssl.OP_NO_RENEGOTIATION
        assert ctx.verify_mode == ssl.CERT_NONE or ctx is creds.server_context()
