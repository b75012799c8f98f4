"""The ``enklave`` command: a thin shell over the library.

Each command parses arguments, calls one library function and prints the result; one
top-level handler turns any :class:`~enklave.errors.EnklaveError` into a message on
stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import EnklaveError
from . import _atls, _attest, _collateral, _doctor, _gramine, _image, _k8s
from . import _serve as _serve_cli
from ._commands import (
    cmd_build,
    cmd_genkey,
    cmd_inspect,
    cmd_new,
    cmd_signerid,
    cmd_uniqueid,
)

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="enklave",
        description="Build, sign, inspect, run and attest Python enclave apps "
        "(simulation backend: no hardware protection).",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("new", help="scaffold an app: NAME/enklave.toml, enclave.py, host.py")
    s.add_argument("name", help="app name and directory to create")
    s.set_defaults(func=cmd_new)

    s = sub.add_parser("genkey", help="generate an RSA-3072 (e=3) enclave signing key")
    s.add_argument("out", type=Path, help="where to write the private key (PEM, mode 0600)")
    s.add_argument("--public", type=Path, help="also write the public key here")
    s.add_argument("--force", action="store_true", help="overwrite an existing key file")
    s.set_defaults(func=cmd_genkey)

    s = sub.add_parser("build", help="measure and sign an app into one bundle file")
    s.add_argument("app", type=Path, help="app directory holding enklave.toml")
    s.add_argument("--key", type=Path, required=True, help="signing key from `enklave genkey`")
    s.add_argument("-o", "--out", type=Path, help="bundle path (default: APP/NAME.bundle)")
    s.set_defaults(func=cmd_build)

    s = sub.add_parser("inspect", help="print every field of a bundle and its SIGSTRUCT")
    s.add_argument("bundle", type=Path)
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("uniqueid", help="print a bundle's MRENCLAVE (hex)")
    s.add_argument("bundle", type=Path)
    s.set_defaults(func=cmd_uniqueid)

    s = sub.add_parser("signerid", help="print the MRSIGNER (hex) of a bundle or a key file")
    s.add_argument("source", type=Path, help="a bundle, or a PEM public/private key")
    s.set_defaults(func=cmd_signerid)

    sim_sub = _attest.register(sub)
    _collateral.add_sim_pccs(sim_sub)
    _collateral.register(sub)
    _atls.register(sub)
    _gramine.register(sub)
    _serve_cli.register(sub)
    _k8s.register(sub)
    _doctor.register(sub)
    _image.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 enklave error, 2 usage)."""
    args = _parser().parse_args(argv)
    func: Handler = args.func
    try:
        return func(args)
    except EnklaveError as exc:
        print(f"enklave {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


