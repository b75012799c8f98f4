"""CLI commands for container images: ``image base`` and ``image build``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ._attest import _print_info

__all__ = ["cmd_image_base", "cmd_image_build", "register"]


def register(sub: Any) -> None:
    """Add ``image`` with its subcommands ``base`` and ``build``."""
    from ..deploy._base import DEFAULT_BASE

    image = sub.add_parser("image", help="build OCI images of enclave apps with podman")
    i_sub = image.add_subparsers(dest="image_command", required=True, metavar="SUBCOMMAND")

    s = i_sub.add_parser("base", help="make the Python 3.11 base image offline "
                         "(mmdebstrap + podman import; no registry needed)")
    s.add_argument("--tag", default=DEFAULT_BASE, help=f"image name (default {DEFAULT_BASE})")
    s.add_argument("--force", action="store_true", help="rebuild even if the image exists")
    s.set_defaults(func=cmd_image_base)

    s = i_sub.add_parser("build", help="build and sign APP on the host, then build its image "
                         "(offline, pinned wheels, non-root, MRENCLAVE labels)")
    s.add_argument("app", type=Path, help="app directory holding enklave.toml")
    s.add_argument("--key", type=Path, required=True, help="signing key (PEM) from "
                   "`enklave genkey`; it stays on the host")
    s.add_argument("--base", default=DEFAULT_BASE, help=f"base image (default {DEFAULT_BASE})")
    s.add_argument("--tag", help="image name (default localhost/APP:MRENCLAVE-prefix)")
    s.add_argument("--wheel", type=Path, help="enklave wheel to install (default: built from "
                   "the source checkout enklave runs from)")
    s.add_argument("--no-cache", action="store_true", help="rebuild every layer")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(func=cmd_image_build)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cmd_image_base(args: argparse.Namespace) -> int:
    from ..deploy import build_base_image

    print(build_base_image(tag=args.tag, force=args.force, progress=_progress))
    return 0


def cmd_image_build(args: argparse.Namespace) -> int:
    from ..deploy import build_image

    info = build_image(args.app, key=args.key, base=args.base, tag=args.tag,
                       progress=_progress, enklave_wheel=args.wheel, no_cache=args.no_cache)
    _print_info({
        "tag": info.tag,
        "image_id": info.image_id,
        "mrenclave": info.mrenclave.hex(),
        "mrsigner": info.mrsigner.hex(),
        "product_id": info.product_id,
        "security_version": info.security_version,
    }, as_json=args.json)
    return 0
