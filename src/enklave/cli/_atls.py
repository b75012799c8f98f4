"""CLI commands for attested TLS: ``atls inspect``, ``atls verify``, ``atls get``.

Scripts depend on the JSON shapes printed here (``--json``): keep them stable.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import AtlsError, CollateralError, EnklaveError
from ._attest import _anchor, _lines, _read

if TYPE_CHECKING:
    from ..atls._x509 import Certificate

__all__ = ["cmd_atls_get", "cmd_atls_inspect", "cmd_atls_verify", "register"]


def register(sub: Any) -> None:
    """Add ``atls`` with its subcommands ``inspect``, ``verify`` and ``get``."""
    atls = sub.add_parser("atls", help="attested TLS: inspect and verify certificates, "
                          "fetch a URL from an attested server")
    a_sub = atls.add_subparsers(dest="atls_command", required=True, metavar="SUBCOMMAND")

    s = a_sub.add_parser("inspect", help="print a certificate and the evidence it carries "
                         "(unverified)")
    s.add_argument("cert", type=Path, help="certificate (PEM or DER)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_atls_inspect)

    s = a_sub.add_parser("verify", help="verify a certificate's evidence and key binding under "
                         "a policy; print the verdict")
    s.add_argument("cert", type=Path, help="certificate (PEM or DER, or a Cosmian evidence.json "
                   "with its collateral); put it before --sim")
    _trust_options(s)
    s.add_argument("--json", action="store_true", help="print JSON (errors too)")
    s.set_defaults(func=cmd_atls_verify)

    s = a_sub.add_parser("get", help="GET an https:// URL after attesting the server "
                         "(curl with attestation); prints the body, exit 1 on HTTP >= 400")
    s.add_argument("url", help="https://HOST:PORT/PATH")
    _trust_options(s)
    s.add_argument("--show-peer", action="store_true",
                   help="print the verified server (enclave identity, TCB) to stderr")
    s.add_argument("-o", "--output", type=Path, help="write the body here instead of stdout")
    s.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    s.set_defaults(func=cmd_atls_get)


def _trust_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--policy", type=Path, required=True, help="policy document (TOML or JSON)")
    s.add_argument("--collateral", type=Path, help="collateral JSON (default: from --pccs, "
                   "or the simulated platform's with --sim)")
    s.add_argument("--pccs", help="fetch collateral from this PCS/PCCS base URL")
    s.add_argument("--sim", nargs="?", const="", default=None, metavar="HOME",
                   help="also trust the simulated platform's root (development only); "
                   "HOME defaults to ENKLAVE_SIM_HOME")
    s.add_argument("--root", type=Path, help="trust this root (PEM/DER) instead of Intel's")
    s.add_argument("--now", type=int, help="verification time, unix seconds (default: now)")
    s.add_argument("--expiry", choices=("strict", "report"), default="strict",
                   help="strict: expired collateral fails; report: flag it in the output "
                   "(the certificate's own validity is always checked)")
    s.add_argument("--format", dest="formats", action="append", metavar="NAME",
                   help="accept only evidence in this format (repeatable), e.g. tcg-dice; "
                   "default: every recognised format")
    s.add_argument("--issuer", dest="issuers", action="append", type=Path, metavar="PEM",
                   help="the certificate may be signed by this CA certificate (PEM/DER, a "
                   "bundle gives all its certificates; repeatable) instead of itself, e.g. "
                   "dstack's KMS / App CA; a sanity check, not a trust root: the evidence "
                   "decides")


# --------------------------------------------------------------------- inspect


def cmd_atls_inspect(args: argparse.Namespace) -> int:
    from ..atls._inspect import inspect_certificate

    info = inspect_certificate(_read(args.cert)).to_dict()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    head = {k: v for k, v in info.items() if k not in ("evidence", "extensions", "error")}
    head["extensions"] = ", ".join(
        f"{e['oid']} ({e['length']} bytes{', critical' if e['critical'] else ''})"
        for e in info["extensions"]
    ) or "none"
    for line in _lines(head, ""):
        print(line)
    for i, ev in enumerate(info["evidence"]):
        for line in _lines(ev, f"evidence.{i}"):
            print(line)
    if info["error"] is not None:
        print(f"evidence: none ({info['error']['code']}: {info['error']['message']})")
    else:
        print("unverified: quote signatures, chains, TCB and policy are not checked here; "
              "run `enklave atls verify CERT --policy P`")
    return 0


# --------------------------------------------------------------------- verify


def cmd_atls_verify(args: argparse.Namespace) -> int:
    from ..atls._verify import verify_certificate

    try:
        cert, bundled = _load_cert(_read(args.cert))
        policy, verifier = _policy_and_verifier(args, bundled)
        peer = verify_certificate(cert, verifier=verifier, policy=policy, now=_now(args),
                                  expiry=args.expiry, formats=args.formats,
                                  issuers=_issuers(args))
    except EnklaveError as exc:
        if not args.json:
            raise
        print(json.dumps({"verdict": "rejected", "error": exc.code,
                          "check": getattr(exc, "check", None), "message": exc.message}))
        return 1
    out = {"verdict": "accepted", **peer.to_dict()}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for line in _lines(out, ""):
            print(line)
    return 0


def _load_cert(data: bytes) -> tuple[bytes | Certificate, Any]:
    """The certificate (bytes, or the one a Cosmian ``evidence.json`` holds, parsed) and the
    collateral it ships with (Cosmian bundles only)."""
    if data.lstrip().startswith(b"{"):
        from ..atls._inspect import load_cosmian_bundle

        return load_cosmian_bundle(data)
    return data, None


def _issuers(args: argparse.Namespace) -> list[bytes]:
    return [_read(path) for path in args.issuers or ()]


def _now(args: argparse.Namespace) -> int:
    return args.now if args.now is not None else int(time.time())


def _policy_and_verifier(args: argparse.Namespace, bundled: Any = None) -> tuple[Any, Any]:
    from ..verify import TrustAnchor, Verifier, load_policy

    policy = load_policy(args.policy)
    anchors = [_anchor(args.root) if args.root else TrustAnchor.intel()]
    if args.sim is not None:
        anchors.append(TrustAnchor.simulation(_sim_home(args)))
    return policy, Verifier(anchors=anchors, collateral=_collateral(args, bundled))


def _sim_home(args: argparse.Namespace) -> Path | None:
    return Path(args.sim) if args.sim else None


def _collateral(args: argparse.Namespace, bundled: Any = None) -> Any:
    from ..collateral import Collateral

    if args.collateral:
        return Collateral.from_json(_read(args.collateral))
    if args.pccs:
        from ..collateral import PcsClient

        return PcsClient(args.pccs)
    if bundled is not None:
        return bundled
    if args.sim is not None:
        from ..backends.simulation import SimPlatform

        return SimPlatform.load(_sim_home(args)).collateral()
    raise CollateralError("give --collateral FILE, --pccs URL, or --sim [HOME] for a "
                          "simulated enclave")


# --------------------------------------------------------------------- get


def cmd_atls_get(args: argparse.Namespace) -> int:
    import httpx

    from ..atls._verify import PeerVerifier
    from ..atls.transport import PEER_EXTENSION, attested_client

    _check_url(args.url)
    policy, verifier = _policy_and_verifier(args)
    clock = (lambda: float(args.now)) if args.now is not None else time.time
    peers = PeerVerifier(verifier=verifier, policy=policy, clock=clock, expiry=args.expiry,
                         formats=args.formats, issuers=_issuers(args))
    try:
        with attested_client(verifier=peers, timeout=args.timeout) as client:
            response = client.get(args.url)
    except httpx.HTTPError as exc:
        raise AtlsError(f"cannot fetch {args.url}: {exc or type(exc).__name__}; check the "
                        "URL and that the server is running", code="connect") from exc
    if args.show_peer:
        peer = response.extensions[PEER_EXTENSION]
        print(json.dumps({"verdict": "accepted", **peer.to_dict()}, indent=2), file=sys.stderr)
    _write_body(response.content, args.output)
    if response.status_code >= 400:
        print(f"enklave atls: the attested server answered HTTP {response.status_code} "
              f"{response.reason_phrase}", file=sys.stderr)
        return 1
    return 0


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise AtlsError(f"{url!r} is not an https:// URL; attested TLS needs "
                        "https://HOST:PORT/PATH", code="scheme")


def _write_body(body: bytes, output: Path | None) -> None:
    if output is None:
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
        return
    try:
        output.write_bytes(body)
    except OSError as exc:
        raise AtlsError(f"cannot write {output}: {exc.strerror}; choose a writable -o path",
                        code="output") from exc
