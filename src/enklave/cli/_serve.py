"""CLI commands ``serve`` (an enclave's ECALLs over attested TLS) and ``call`` (its client).

Scripts depend on the JSON printed by ``call`` (``--json``): keep it stable.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError, EnklaveError
from ._atls import _check_url, _policy_and_verifier, _trust_options

__all__ = ["cmd_call", "cmd_serve", "from_json_arg", "register", "to_json_value"]


def register(sub: Any) -> None:
    """Add ``serve`` and ``call``."""
    s = sub.add_parser("serve", help="serve a bundle's ECALLs over attested TLS, the TLS "
                       "ending inside the enclave (until SIGTERM/SIGINT)")
    s.add_argument("bundle", type=Path, help="bundle from `enklave build`")
    s.add_argument("--port", type=int, default=8443, help="port (default 8443; 0: any free)")
    s.add_argument("--bind", default="127.0.0.1",
                   help="address the enclave listens on (default 127.0.0.1; 0.0.0.0 in a "
                   "container)")
    s.add_argument("--ocalls", type=Path, metavar="FILE.py",
                   help="host file defining ocalls(state_dir) -> dict (apps with OCALLs)")
    s.add_argument("--sim-home", type=Path, metavar="DIR",
                   help="simulated platform directory (default ENKLAVE_SIM_HOME)")
    s.add_argument("--state", type=Path, metavar="DIR",
                   help="state directory passed to ocalls() (default $TMPDIR/enklave-state)")
    s.add_argument("--backend", choices=("simulation", "gramine", "auto"), default=None,
                   help="default: ENKLAVE_BACKEND, else simulation; gramine never falls back")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("call", help="call an ECALL of an enclave served by `enklave serve`, "
                       "after attesting it; prints the result as JSON")
    s.add_argument("url", help="https://HOST:PORT of `enklave serve`")
    s.add_argument("name", help="ECALL name")
    s.add_argument("args", nargs="*", metavar="JSON_ARG",
                   help='arguments as JSON ("Ada", 3, true, null, [..], {..}); bytes as '
                   '{"hex": "00ff"}')
    _trust_options(s)
    s.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    s.add_argument("--json", action="store_true",
                   help='print {"result": ..., "peer": ...} (errors as JSON too)')
    s.set_defaults(func=cmd_call)


def cmd_serve(args: argparse.Namespace) -> int:
    from ..host._serve import serve

    return serve(args.bundle, port=args.port, bind=args.bind, ocalls_file=args.ocalls,
                 sim_home=args.sim_home, state_dir=args.state,
                 backend=args.backend)  # fmt: skip


def from_json_arg(text: str) -> Any:
    """One ``JSON_ARG``: JSON, with ``{"hex": "..."}`` standing for bytes (at any depth).

    Raises:
        ConfigError: not JSON, or bad hex.
    """
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"argument {text!r} is not JSON; quote strings as JSON "
                          "('\"Ada\"'), give bytes as '{\"hex\": \"00ff\"}'") from exc
    return _unhex(value)


def _unhex(value: Any) -> Any:
    if isinstance(value, list):
        return [_unhex(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"hex"} and isinstance(value["hex"], str):
            try:
                return bytes.fromhex(value["hex"])
            except ValueError as exc:
                raise ConfigError(f"bad hex in {value!r}") from exc
        return {k: _unhex(v) for k, v in value.items()}
    return value


def to_json_value(value: Any) -> Any:
    """A result made JSON-printable: bytes become hex strings."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    return value


def cmd_call(args: argparse.Namespace) -> int:
    from ..atls._verify import PeerVerifier
    from ..host._remote import RemoteEnclave

    try:
        _check_url(args.url)
        values = [from_json_arg(a) for a in args.args]
        policy, verifier = _policy_and_verifier(args)
        clock = (lambda: float(args.now)) if args.now is not None else time.time
        peers = PeerVerifier(verifier=verifier, policy=policy, clock=clock, expiry=args.expiry)
        with RemoteEnclave(args.url, verifier=peers, timeout=args.timeout) as remote:
            result = remote.ecall(args.name, values)
            peer = remote.peer
    except EnklaveError as exc:
        if not args.json:
            raise
        print(json.dumps({"error": exc.code, "message": str(exc)}))
        return 1
    if args.json:
        print(json.dumps({"result": to_json_value(result), "peer": peer.to_dict()}, indent=2))
    else:
        print(json.dumps(to_json_value(result), indent=2))
    return 0

