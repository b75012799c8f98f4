"""``enklave gramine manifest BUNDLE [-o DIR] [--sign --key K]``: the Gramine-SGX manifest."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..backends.gramine import (
    default_manifest_dir,
    detect_python_layout,
    sign_manifest,
    write_gramine_manifest,
)
from ..backends.gramine._manifest import DEFAULT_ARCH_LIBDIR, DEFAULT_GRAMINE_LIBDIR
from ..errors import ConfigError

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add ``gramine`` with its subcommand ``manifest``."""
    gramine = sub.add_parser("gramine", help="real SGX through Gramine: manifests and signing")
    g_sub = gramine.add_subparsers(dest="gramine_command", required=True, metavar="SUBCOMMAND")
    s = g_sub.add_parser(
        "manifest",
        help="write BUNDLE's Gramine manifest (enklave.manifest) and optionally sign it",
    )
    s.add_argument("bundle", type=Path, help="a bundle from `enklave build`")
    s.add_argument("-o", "--out", type=Path, help="output directory (default: BUNDLE.gramine/)")
    s.add_argument("--python", type=Path, help="the enclave's interpreter (default: this one)")
    s.add_argument("--gramine-libdir", type=Path, default=DEFAULT_GRAMINE_LIBDIR,
                   help=f"Gramine's install directory (default {DEFAULT_GRAMINE_LIBDIR})")
    s.add_argument("--arch-libdir", type=Path, default=DEFAULT_ARCH_LIBDIR,
                   help=f"multiarch library directory (default {DEFAULT_ARCH_LIBDIR})")
    s.add_argument("--sign", action="store_true", help="sign with gramine-sgx-sign")
    s.add_argument("--key", type=Path, help="RSA-3072 (e=3) signing key, with --sign")
    s.set_defaults(func=cmd_gramine_manifest)


def cmd_gramine_manifest(args: argparse.Namespace) -> int:
    """Write the manifest; sign it when asked. Prints the paths written."""
    if args.sign and args.key is None:
        raise ConfigError("--sign needs --key KEY.pem (the same key as `enklave build --key`)")
    out = args.out if args.out is not None else default_manifest_dir(args.bundle)
    layout = detect_python_layout(args.python)
    manifest = write_gramine_manifest(
        args.bundle, out, layout=layout, gramine_libdir=args.gramine_libdir,
        arch_libdir=args.arch_libdir,
    )  # fmt: skip
    print(manifest)
    if args.sign:
        print(sign_manifest(manifest, args.key, progress=lambda m: print(m, file=sys.stderr)))
    return 0
