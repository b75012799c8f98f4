"""``enklave collateral fetch`` and ``enklave sim pccs``: thin shells over the library."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..collateral import INTEL_PCS_URL, CollateralCache, PcsClient
from ..errors import CollateralError

__all__ = ["add_sim_pccs", "cmd_collateral_fetch", "cmd_sim_pccs", "register"]

_API_KEY_ENV = "ENKLAVE_PCS_API_KEY"
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def register(sub: Any) -> None:
    """Add ``collateral fetch`` to the top-level subparsers ``sub``."""
    group = sub.add_parser(
        "collateral", help="DCAP collateral: fetch it from Intel PCS, a PCCS or Azure THIM"
    )
    actions = group.add_subparsers(dest="collateral_command", required=True, metavar="ACTION")
    s = actions.add_parser(
        "fetch",
        help="fetch TCB Info, QE Identity and CRLs for one FMSPC into a collateral JSON file",
        description="Fetch collateral over the PCS v4 API (API key, if needed, from "
        f"${_API_KEY_ENV}) and write it in dcap-qvl's QuoteCollateralV3 JSON shape.",
    )
    s.add_argument("--fmspc", required=True, help="platform FMSPC, 12 hex digits")
    s.add_argument("--tdx", action="store_true", help="TDX collateral (default: SGX)")
    s.add_argument(
        "--ca",
        choices=("processor", "platform"),
        default="processor",
        help="PCK CA whose CRL to fetch (the PCK certificate's issuer; default: processor)",
    )
    s.add_argument(
        "--pccs",
        default=INTEL_PCS_URL,
        metavar="URL",
        help=f"PCS/PCCS/THIM root URL (default: {INTEL_PCS_URL}); http:// only for localhost",
    )
    s.add_argument("-o", "--out", type=Path, required=True, help="collateral JSON to write")
    s.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        help="cache directory (default: $XDG_CACHE_HOME/enklave/collateral)",
    )
    s.add_argument("--no-cache", action="store_true", help="always fetch, do not cache")
    s.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    s.set_defaults(func=cmd_collateral_fetch)


def add_sim_pccs(sim_sub: Any) -> None:
    """Add ``pccs`` to the ``sim`` subparsers ``sim_sub``."""
    s = sim_sub.add_parser(
        "pccs",
        help="serve the simulated platform's collateral over the PCS v4 API (NOT Intel)",
    )
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    s.add_argument("--port", type=int, default=8081, help="TCP port (default: 8081; 0: any)")
    s.add_argument(
        "--home", type=Path, help="simulation home (default: $ENKLAVE_SIM_HOME or XDG data dir)"
    )
    s.set_defaults(func=cmd_sim_pccs)


def cmd_collateral_fetch(args: argparse.Namespace) -> int:
    """Fetch collateral for ``args.fmspc`` and write ``Collateral.to_json()`` to ``args.out``.

    Raises:
        CollateralError: bad arguments, a fetch failure, or the file cannot be written.
    """
    cache = None
    if not getattr(args, "no_cache", False):
        cache = CollateralCache(getattr(args, "cache", None))
    client = PcsClient(
        args.pccs,
        cache=cache,
        timeout=getattr(args, "timeout", 10.0),
        api_key=os.environ.get(_API_KEY_ENV) or None,
    )
    collateral = client.collateral(args.fmspc, tdx=bool(args.tdx), ca=args.ca)
    out = Path(args.out)
    try:
        out.write_text(collateral.to_json() + "\n", encoding="utf-8")
    except OSError as exc:
        raise CollateralError(
            f"cannot write collateral to {out} ({exc.strerror}); choose another --out"
        ) from exc
    tee = "TDX" if args.tdx else "SGX"
    print(
        f"wrote {tee} collateral for FMSPC {args.fmspc.upper()} ({args.ca} CA) from "
        f"{client.base_url} to {out}: TCB Info next update {_next_update(collateral.tcb_info)}, "
        f"QE Identity next update {_next_update(collateral.qe_identity)}"
    )
    return 0


def cmd_sim_pccs(args: argparse.Namespace) -> int:
    """Serve the simulated platform's collateral over the PCS v4 API until Ctrl-C.

    Raises:
        PlatformError: no simulated platform (run ``enklave sim init``) or the address
            cannot be bound.
    """
    from ..backends.simulation import SimPlatform
    from ..backends.simulation._pccs import serve_pccs

    platform = SimPlatform.load(getattr(args, "home", None))
    host = getattr(args, "host", "127.0.0.1")
    if host not in _LOOPBACK:
        print(
            f"warning: serving SIMULATED collateral over plain HTTP on {host}; "
            "clients accept plain http:// only from loopback",
            file=sys.stderr,
        )
    serve_pccs(platform, host, args.port)
    return 0


def _next_update(inner_json: str) -> str:
    """The ``nextUpdate`` of TCB Info / QE Identity text, for display ("?" if absent)."""
    try:
        value = json.loads(inner_json).get("nextUpdate")
    except (ValueError, AttributeError):
        return "?"
    return value if isinstance(value, str) else "?"
