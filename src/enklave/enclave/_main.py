"""Entry point of the enclave process.

Simulation backend: started by the host as ``python -I -m enklave.enclave._main --fd N
--bundle PATH --sim-home DIR``. Gramine backend: started by ``gramine-sgx`` with the
manifest's fixed ``loader.argv`` (``... --backend gramine --bundle PATH``); it connects
back to the host through ``ENKLAVE_CHANNEL`` and takes its identity from its own
hardware REPORT (``/dev/attestation``), never from the host.

It reads the bundle once, verifies signature and measurement, drops every environment
variable the config does not allow, applies the memory limit, and
only then imports application code, from the verified bytes. It answers READY with
its identity, or LOADFAIL with the reason, then serves ECALLs until the host closes the
channel.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import sys
import threading
from pathlib import Path

from .._encoding import DEFAULT_MAX_DEPTH
from .._simplatform import load_or_create_platform_secret
from ..channel import ChannelClosed, Endpoint
from ..channel._messages import LOADFAIL, READY, VERSION, error_record
from ..errors import BundleError, EnclaveLoadError, EnklaveError
from ..models.identity import Identity
from ..package._bundle import Bundle
from ..package._importer import BundleImporter
from ..package._measure import runtime_files
from ..package._verify import verify_bundle
from . import _context, _gateway
from ._app import EnclaveApp, find_app
from ._runtime import Runtime

MAX_FRAME = 16 * 1024 * 1024
EXIT_LOAD_FAILED = 3


def _parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="enklave-enclave", add_help=False)
    p.add_argument("--backend", choices=("simulation", "gramine"), default="simulation")
    p.add_argument("--fd", type=int)
    p.add_argument("--bundle", required=True)
    p.add_argument("--sim-home")
    args = p.parse_args(argv)
    if args.backend == "simulation" and (args.fd is None or args.sim_home is None):
        p.error("the simulation backend needs --fd and --sim-home")
    return args


def _open_channel(args: argparse.Namespace) -> socket.socket:
    """The host channel: the inherited socket (simulation) or loopback TCP (Gramine)."""
    if args.backend == "gramine":
        from ..backends.gramine._channel import CHANNEL_ENV, connect_host

        return connect_host(os.environ.get(CHANNEL_ENV))
    return socket.socket(fileno=args.fd)


def _read_bundle(path: str) -> Bundle:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise EnclaveLoadError(f"cannot read bundle {path}: {exc.strerror}") from exc
    try:
        return Bundle.from_bytes(data)
    except BundleError as exc:
        raise EnclaveLoadError(f"bundle rejected: {exc}") from exc


def _confine(bundle: Bundle, *, rlimit: bool = True) -> None:
    allowed = set(bundle.config.allowed_env)
    for name in list(os.environ):
        if name not in allowed:
            del os.environ[name]
    threading.stack_size(1024 * 1024)
    if not rlimit:  # Gramine: sgx.enclave_size is the hard limit
        return
    limit = bundle.config.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _import_app(bundle: Bundle, files: dict[str, bytes]) -> EnclaveApp:
    importer = BundleImporter(files)
    importer.install()
    module_name = bundle.config.entry[:-3].replace("/", ".")
    module = __import__(module_name, fromlist=["*"])
    app = find_app(module, bundle.config.entry)
    declared = app.interface()
    if declared.descriptor() != bundle.interface.descriptor():
        raise EnclaveLoadError(
            "the app's declared ECALL/OCALL interface differs from the measured interface "
            "descriptor; rebuild the bundle"
        )
    return app


def _gramine_identity(bundle: Bundle) -> Identity:
    """Install the /dev/attestation client; return the identity from our own REPORT.

    The hardware MRENCLAVE covers the manifest, whose trusted files include this bundle;
    product id, SVN and debug must also agree with the bundle's config.
    """
    from ..backends.gramine import _attestation

    device = _attestation.GramineAttestation(_attestation.resolve_root())
    ident = device.identity()
    cfg = bundle.config
    if (ident.product_id, ident.security_version, ident.debug) != (
        cfg.product_id, cfg.security_version, cfg.debug
    ):
        raise EnclaveLoadError(
            "the SGX REPORT's ISVPRODID/ISVSVN/DEBUG differ from the bundle's config; "
            "regenerate the manifest with `enklave gramine manifest` and sign it again"
        )
    _attestation.install(device)
    return ident


def _load(args: argparse.Namespace, endpoint: Endpoint, endpoint_sock: socket.socket) -> Runtime:
    bundle = _read_bundle(args.bundle)
    gramine = args.backend == "gramine"
    identity = verify_bundle(bundle, runtime_files(), simulated=not gramine)
    files = bundle.file_map()
    if gramine:
        identity = _gramine_identity(bundle)
        secret, home = b"", Path(".")
    else:
        home = Path(args.sim_home)
        secret = load_or_create_platform_secret(home)
    _confine(bundle, rlimit=not gramine)
    runtime = Runtime(
        endpoint,
        interface=bundle.interface,
        ecalls={},
        identity=identity,
        platform_secret=secret,
        files=files,
        max_threads=bundle.config.max_threads,
        sim_home=home,
        sock=endpoint_sock,
    )
    _gateway.install(runtime)
    _context.install(runtime)
    app = _import_app(bundle, files)
    runtime.set_ecalls(app.ecalls)
    return runtime


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    try:
        sock = _open_channel(args)
    except EnklaveError as exc:
        print(f"enklave enclave: {exc}", file=sys.stderr)
        return EXIT_LOAD_FAILED
    endpoint = Endpoint(sock, max_frame=MAX_FRAME, max_depth=DEFAULT_MAX_DEPTH)
    try:
        runtime = _load(args, endpoint, sock)
    except Exception as exc:
        code = exc.code if isinstance(exc, EnklaveError) else "load"
        rec = error_record(type(exc).__name__, str(exc), code)
        try:
            endpoint.send([VERSION, LOADFAIL, 0, rec, None])
        except ChannelClosed:
            pass
        endpoint.close()
        return EXIT_LOAD_FAILED
    endpoint.send([VERSION, READY, 0, runtime.identity.to_wire(), None])
    runtime.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
