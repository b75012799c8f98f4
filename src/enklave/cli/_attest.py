"""CLI commands for attestation: ``sim``, ``quote``, ``verify``.

Scripts depend on the JSON shapes printed here (``--json``): keep them stable.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from ..errors import CollateralError, EnklaveError, QuoteFormatError
from ..models.evidence import load_evidence
from ..models.pck import parse_pck_extension
from ..models.quote import CertificationData, parse_quote

__all__ = [
    "cmd_quote_inspect",
    "cmd_quote_verify",
    "cmd_sim_info",
    "cmd_sim_init",
    "cmd_verify",
    "register",
]

TCB_CHOICES = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
)


def register(sub: Any) -> argparse.ArgumentParser:
    """Add ``sim``, ``quote`` and ``verify``; returns the ``sim`` parser's subparsers."""
    sim = sub.add_parser("sim", help="the simulated SGX platform (NOT hardware protection)")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True, metavar="SUBCOMMAND")
    s = sim_sub.add_parser("init", help="create the simulated PKI, collateral and QE key")
    s.add_argument("--tcb", choices=TCB_CHOICES, default="UpToDate",
                   help="simulate a platform whose TCB has this status (default UpToDate)")
    s.add_argument("--revoked", action="store_true", help="put the PCK certificate on the CRL")
    s.add_argument("--force", action="store_true", help="replace an existing simulated platform")
    s.add_argument("--home", type=Path, help="state directory (default: ENKLAVE_SIM_HOME)")
    s.set_defaults(func=cmd_sim_init)
    s = sim_sub.add_parser("info", help="describe the simulated platform")
    s.add_argument("--home", type=Path, help="state directory (default: ENKLAVE_SIM_HOME)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_sim_info)

    quote = sub.add_parser("quote", help="inspect or verify a DCAP quote")
    q_sub = quote.add_subparsers(dest="quote_command", required=True, metavar="SUBCOMMAND")
    s = q_sub.add_parser("inspect", help="print every field of a quote (binary or hex)")
    s.add_argument("file", type=Path)
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_quote_inspect)
    s = q_sub.add_parser(
        "verify", help="check signatures, chains, CRLs and TCB (no policy); print the status"
    )
    s.add_argument("file", type=Path, help="the quote (binary, hex, or enklave evidence)")
    s.add_argument("--collateral", type=Path, required=True, help="collateral JSON")
    s.add_argument("--now", type=int, help="verification time, unix seconds (default: now)")
    s.add_argument("--root", type=Path, help="trust anchor PEM/DER (default: Intel SGX Root CA)")
    s.add_argument("--expiry", choices=("strict", "report"), default="strict",
                   help="strict: expired collateral fails; report: flag it in the output")
    s.add_argument("--json", action="store_true", help="print JSON (errors too)")
    s.set_defaults(func=cmd_quote_verify)

    s = sub.add_parser("verify", help="verify evidence under a policy and print the verdict")
    s.add_argument("evidence", type=Path, help="evidence (CBOR/JSON) or a bare quote")
    s.add_argument("--policy", type=Path, required=True, help="policy document (TOML or JSON)")
    s.add_argument("--collateral", type=Path, help="collateral JSON (default: from --pccs or "
                   "the simulated platform with --sim)")
    s.add_argument("--pccs", help="fetch collateral from this PCS/PCCS base URL")
    s.add_argument("--now", type=int, help="verification time, unix seconds (default: now)")
    s.add_argument("--root", type=Path, help="trust this root (PEM/DER) instead of Intel's")
    s.add_argument("--sim", action="store_true",
                   help="also trust the local simulation root (development only)")
    s.add_argument("--claims", type=Path, help="expected claims file (default: the evidence's)")
    s.add_argument("--json", action="store_true", help="print JSON (errors too)")
    s.set_defaults(func=cmd_verify)
    return sim_sub  # type: ignore[no-any-return]


def cmd_sim_init(args: argparse.Namespace) -> int:
    from ..backends.simulation import SimPlatform

    print("creating simulated platform (keys, PKI, collateral)...", file=sys.stderr)
    platform = SimPlatform.init(args.home, tcb=args.tcb, revoked=args.revoked, force=args.force)
    _print_info(platform.info(), as_json=False)
    return 0


def cmd_sim_info(args: argparse.Namespace) -> int:
    from ..backends.simulation import SimPlatform

    _print_info(SimPlatform.load(args.home).info(), as_json=args.json)
    return 0


def _print_info(info: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(info, indent=2, default=str))
        return
    for key, value in info.items():
        print(f"{key}: {value}")


def cmd_quote_inspect(args: argparse.Namespace) -> int:
    evidence = load_evidence(_read(args.file))
    quote = parse_quote(evidence.quote)
    tree = _plain(quote)
    if args.json:
        print(json.dumps(tree, indent=2))
        return 0
    for line in _lines(tree, ""):
        print(line)
    return 0


def cmd_quote_verify(args: argparse.Namespace) -> int:
    from ..collateral import Collateral
    from ..verify import DcapVerifier, TrustAnchor

    try:
        quote = load_evidence(_read(args.file)).quote
        collateral = Collateral.from_json(_read(args.collateral))
        anchor = _anchor(args.root) if args.root else TrustAnchor.intel()
        now = args.now if args.now is not None else int(time.time())
        result = DcapVerifier(anchor.certificate, simulated=anchor.simulated).verify(
            quote, collateral, now=now, expiry=args.expiry
        )
    except EnklaveError as exc:
        if not args.json:
            raise
        print(json.dumps({"error": exc.code, "message": exc.message}))
        return 1
    out = result.to_json_dict()
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for key, value in out.items():
            print(f"{key}: {value}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from ..verify import Verifier, load_policy

    try:
        evidence = load_evidence(_read(args.evidence))
        policy = load_policy(args.policy)
        anchors = _anchors(args)
        verifier = Verifier(anchors=anchors, collateral=_collateral(args))
        claims = _read(args.claims) if args.claims else None
        now = args.now if args.now is not None else int(time.time())
        enclave = verifier.verify(evidence, policy, now=now, claims=claims)
    except EnklaveError as exc:
        if not args.json:
            raise
        check = getattr(exc, "check", None)
        print(json.dumps({"verdict": "rejected", "error": exc.code, "check": check,
                          "message": exc.message}))
        return 1
    out = {"verdict": "accepted", **enclave.to_dict()}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for key, value in out.items():
            print(f"{key}: {value}")
    return 0


def _anchor(path: Path) -> Any:
    from ..verify import TrustAnchor

    data = _read(path)
    anchor = TrustAnchor.from_pem(data)
    # A root that calls itself simulated is treated as one (only ever more restrictive).
    if "SIMULATED" in anchor.name.upper():
        anchor = TrustAnchor.from_pem(data, simulated=True)
    return anchor


def _anchors(args: argparse.Namespace) -> list[Any]:
    from ..verify import TrustAnchor

    anchors = [_anchor(args.root) if args.root else TrustAnchor.intel()]
    if args.sim:
        anchors.append(TrustAnchor.simulation())
    return anchors


def _collateral(args: argparse.Namespace) -> Any:
    from ..collateral import Collateral

    if args.collateral:
        return Collateral.from_json(_read(args.collateral))
    if args.pccs:
        from ..collateral import PcsClient

        return PcsClient(args.pccs)
    if args.sim:
        from ..backends.simulation import SimPlatform

        return SimPlatform.load().collateral()
    raise CollateralError("give --collateral FILE, --pccs URL, or --sim for simulated evidence")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise QuoteFormatError(f"cannot read {path}: {exc.strerror}") from exc


def _plain(value: Any) -> Any:
    """Dataclasses to dicts, bytes to hex, recursively (for printing)."""
    if isinstance(value, CertificationData):
        return _certification(value)
    if is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name))
            for f in fields(value)
            if f.name not in ("raw", "signed_region") and not f.name.startswith("_")
        }
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _certification(cert: CertificationData) -> dict[str, Any]:
    """Certification data for display: its type, and the PCK chain's certificates."""
    from cryptography import x509

    out: dict[str, Any] = {"cert_type": cert.cert_type, "size": len(cert.data)}
    if cert.cert_type not in (4, 5):
        out["data"] = cert.data.hex()
        return out
    try:
        ders = cert.pck_chain_der()
        certs = [x509.load_der_x509_certificate(der) for der in ders]
    except (QuoteFormatError, ValueError) as exc:
        out["chain_error"] = str(exc)
        return out
    out["certificates"] = {
        str(i): {
            "subject": c.subject.rfc4514_string(),
            "issuer": c.issuer.rfc4514_string(),
            "serial": format(c.serial_number, "x"),
            "not_before": c.not_valid_before_utc.isoformat(),
            "not_after": c.not_valid_after_utc.isoformat(),
        }
        for i, c in enumerate(certs)
    }
    for c in certs:
        if "PCK Certificate" in c.subject.rfc4514_string():
            try:
                out["pck_extension"] = _plain(parse_pck_extension(c))
            except QuoteFormatError as exc:
                out["pck_extension_error"] = str(exc)
    return out


def _lines(tree: Any, prefix: str) -> list[str]:
    if isinstance(tree, dict):
        out: list[str] = []
        for key, value in tree.items():
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                out.extend(_lines(value, name))
            else:
                out.append(f"{name}: {value}")
        return out
    return [f"{prefix}: {tree}"]
