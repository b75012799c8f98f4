"""Implementations of the ``enklave`` subcommands (each one library call + rendering)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import BundleError, ConfigError, SigningError
from ..package import (
    build_app,
    generate_signing_key,
    load_private_key,
    load_public_key,
    mrsigner_of,
    read_bundle,
    scaffold_toml,
    write_bundle,
    write_private_key,
    write_public_key,
)
from ..package._bundle import MAGIC

_ENCLAVE_TEMPLATE = '''"""{name}: the trusted part. Keep it small: everything here is measured."""

from __future__ import annotations

from typing import Annotated

from enklave.enclave import EnclaveApp, MaxLen, identity

app = EnclaveApp("{name}")


@app.ocall
def log(line: Annotated[str, MaxLen(200)]) -> None: ...


@app.ecall
def greet(name: Annotated[str, MaxLen(64)]) -> Annotated[str, MaxLen(200)]:
    log(f"greeting {{name}}")
    me = identity()
    tag = f"MRENCLAVE {{me.mrenclave.hex()[:16]}}..., simulated={{me.simulated}}"
    return f"Hello, {{name}}! ({{tag}})"
'''

_HOST_TEMPLATE = '''"""{name}: the untrusted part.

Run: enklave genkey key.pem && enklave build . --key key.pem && python host.py
"""

from __future__ import annotations

import sys

from enklave.host import Enclave


def main(bundle: str) -> None:
    with Enclave.open(bundle, ocalls={{"log": lambda line: print("[enclave]", line)}}) as enc:
        print(enc.call.greet("world"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "{name}.bundle")
'''


def cmd_new(args: argparse.Namespace) -> int:
    root = Path(args.name)
    name = root.name
    toml = scaffold_toml(name)  # validates the name
    if root.exists():
        raise ConfigError(f"{root} already exists; pick another name or remove it")
    root.mkdir(parents=True)
    (root / "enklave.toml").write_text(toml)
    (root / "enclave.py").write_text(_ENCLAVE_TEMPLATE.format(name=name))
    (root / "host.py").write_text(_HOST_TEMPLATE.format(name=name))
    print(f"created {root}/enklave.toml, {root}/enclave.py, {root}/host.py")
    print(f"next: enklave genkey key.pem && enklave build {root} --key key.pem")
    return 0


def cmd_genkey(args: argparse.Namespace) -> int:
    print("generating an RSA-3072 key with exponent 3 ...", file=sys.stderr)
    key = generate_signing_key()
    write_private_key(key, args.out, overwrite=args.force)
    if args.public:
        write_public_key(key.public_key(), args.public, overwrite=args.force)
    print(f"wrote {args.out} (keep it secret); MRSIGNER {mrsigner_of(key.public_key()).hex()}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    key = load_private_key(args.key)
    print(f"measuring {args.app} ...", file=sys.stderr)
    bundle = build_app(args.app, key)
    out = args.out or args.app / f"{bundle.config.name}.bundle"
    write_bundle(bundle, out)
    print(f"wrote {out}")
    print(f"MRENCLAVE {bundle.mrenclave.hex()}")
    print(f"MRSIGNER  {bundle.mrsigner.hex()}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    bundle = read_bundle(args.bundle)
    cfg = bundle.config.to_canonical()
    if args.json:
        data = {
            "config": cfg,
            "interface": bundle.interface.descriptor(),
            "files": [{"path": p, "size": n, "sha256": h.hex()} for p, n, h in bundle.manifest],
            "sigstruct": dict(bundle.sigstruct.describe()),
            "mrenclave": bundle.mrenclave.hex(),
            "mrsigner": bundle.mrsigner.hex(),
        }
        print(json.dumps(data, indent=2, sort_keys=True, default=repr))
        return 0
    print(f"bundle: {args.bundle} (unverified view; the enclave verifies at load)")
    print("config:")
    for k, v in cfg.items():
        print(f"  {k}: {v}")
    print("ecalls:")
    for spec in bundle.interface.ecalls.values():
        print(f"  {_signature(spec.descriptor())}")
    print("ocalls:")
    for spec in bundle.interface.ocalls.values():
        print(f"  {_signature(spec.descriptor())}")
    print("measured files:")
    for p, n, h in bundle.manifest:
        print(f"  {p}  {n} bytes  sha256 {h.hex()}")
    print("sigstruct:")
    for name, value in bundle.sigstruct.describe():
        print(f"  {name}: {value}")
    return 0


def _signature(d: dict[str, object]) -> str:
    params = d["params"]
    assert isinstance(params, list)
    args = ", ".join(f"{p}: {json.dumps(t)}" for p, t in params)
    return f"{d['name']}({args}) -> {json.dumps(d['returns'])}"


def cmd_uniqueid(args: argparse.Namespace) -> int:
    print(read_bundle(args.bundle).mrenclave.hex())
    return 0


def cmd_signerid(args: argparse.Namespace) -> int:
    source: Path = args.source
    try:
        head = source.read_bytes()[: len(MAGIC)]
    except OSError as exc:
        raise BundleError(f"cannot read {source}: {exc.strerror}") from exc
    if head == MAGIC:
        print(read_bundle(source).mrsigner.hex())
        return 0
    try:
        public = load_public_key(source)
    except SigningError:
        public = load_private_key(source).public_key()
    print(mrsigner_of(public).hex())
    return 0
