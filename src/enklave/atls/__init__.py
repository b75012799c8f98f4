"""Attested TLS: certificates that carry enclave evidence, and the clients and servers that
check them.

An attested-TLS certificate is a (usually self-signed) X.509 certificate whose key pair was
made inside an enclave and whose extension carries evidence (a DCAP quote) bound to that
key. A client that verifies the evidence against its policy, right after the handshake and
before it sends a byte, knows the TLS channel ends inside that enclave. No web PKI is
involved: the attestation is the authentication.

Inside the enclave (the key never leaves the process)::

    from enklave.atls import RotatingCredentials, start_asgi_server

    server = start_asgi_server(app, credentials=RotatingCredentials(interval=3600.0), port=8443)

A relying party (see ``examples/attested_tls`` and ``docs/atls.md``)::

    from enklave.atls import PeerVerifier
    from enklave.atls.transport import attested_client
    from enklave.verify import TrustAnchor, Verifier, default_policy

    peer_verifier = PeerVerifier(
        verifier=Verifier(anchors=TrustAnchor.intel(), collateral=pccs_client),
        policy=default_policy(mrenclave=[expected_mrenclave]),
    )
    with attested_client(verifier=peer_verifier) as client:
        client.get("https://enclave.example:8443/")   # refused before sending if not attested

Reading certificates from other stacks (Gramine, Open Enclave, EGo, Intel SGX SDK, rats-tls,
Cosmian, dstack)::

    from enklave.atls import inspect_certificate, verify_certificate
    inspect_certificate(pem_or_der).to_dict()      # no trust decision
    verify_certificate(pem_or_der, verifier=..., policy=..., now=...)

``enklave.atls.transport`` (the httpx transports) is a separate module so that the enclave
side never imports an HTTP client.
"""

from __future__ import annotations

from ._asgi import ASGIApp, serve_asgi, start_asgi_server
from ._binding import Binding, bind
from ._client import AttestedSocket, attest_connection, client_context, connect
from ._formats import CertEvidence, find_evidence
from ._inspect import CertificateReport, inspect_certificate
from ._issue import KEY_TYPES, Credentials, issue_credentials
from ._rotate import RotatingCredentials
from ._server import BackgroundServer, Handler, ServerStats, serve, start_server
from ._verify import AttestedPeer, PeerVerifier, verify_certificate
from ._x509 import Certificate, Extension, load_certificates

__all__ = [
    "KEY_TYPES",
    "ASGIApp",
    "AttestedPeer",
    "AttestedSocket",
    "BackgroundServer",
    "Binding",
    "CertEvidence",
    "Certificate",
    "CertificateReport",
    "Credentials",
    "Extension",
    "Handler",
    "PeerVerifier",
    "RotatingCredentials",
    "ServerStats",
    "attest_connection",
    "bind",
    "client_context",
    "connect",
    "find_evidence",
    "inspect_certificate",
    "issue_credentials",
    "load_certificates",
    "serve",
    "serve_asgi",
    "start_asgi_server",
    "start_server",
    "verify_certificate",
]
