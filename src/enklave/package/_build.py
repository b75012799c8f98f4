"""``enklave build``: measure an app directory and sign it into one bundle file."""

from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from .._interface import Interface
from ..errors import BundleError, EnklaveError, InterfaceError, SigningError
from ._bundle import Bundle, manifest_for
from ._config import AppConfig
from ._importer import BundleImporter
from ._measure import mrenclave_of, runtime_files
from ._sigstruct import date_from_epoch, sign_sigstruct

__all__ = ["build_app", "extract_interface", "read_bundle", "resign_bundle", "write_bundle"]


def extract_interface(config: AppConfig, files: dict[str, bytes]) -> Interface:
    """Import the entry module from ``files`` (in memory) and read its declared interface.

    This runs the app module's top-level code on the build machine, as any Python build
    does; nothing is imported from the app directory on disk.

    Raises:
        InterfaceError: the module fails to import, or declares no / several EnclaveApps,
            or an invalid ECALL/OCALL.
    """
    from ..enclave._app import find_app

    importer = BundleImporter(files)
    importer.install()
    try:
        module = importlib.import_module(config.entry[:-3].replace("/", "."))
        return find_app(module, config.entry).interface()
    except EnklaveError:
        raise
    except Exception as exc:
        raise InterfaceError(
            f"importing the enclave entry {config.entry!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        importer.uninstall()


def _build_date() -> int:
    raw = os.environ.get("SOURCE_DATE_EPOCH", "0")
    try:
        return date_from_epoch(int(raw))
    except ValueError as exc:
        raise SigningError(f"SOURCE_DATE_EPOCH={raw!r} is not an integer") from exc


def build_app(app_dir: Path, key: rsa.RSAPrivateKey) -> Bundle:
    """Measure and sign the app in ``app_dir``.

    The result depends only on the sources, the config, the key and enklave's runtime
    files; the SIGSTRUCT date comes from ``SOURCE_DATE_EPOCH`` (default 1970-01-01), so
    two builds anywhere, at any time, give identical bytes.

    Raises:
        ConfigError, InterfaceError, SigningError, BundleError: naming what to fix.
    """
    config = AppConfig.load(app_dir)
    files: list[tuple[str, bytes]] = []
    for rel in config.resolve_files(app_dir):
        try:
            files.append((rel, (app_dir / rel).read_bytes()))
        except OSError as exc:
            raise BundleError(f"cannot read app file {rel}: {exc.strerror}") from exc
    interface = extract_interface(config, dict(files))
    manifest = manifest_for(files)
    runtime = runtime_files()
    mrenclave = mrenclave_of(config.to_canonical(), interface.descriptor(), manifest, runtime)
    sig = sign_sigstruct(
        key,
        enclave_hash=mrenclave,
        isv_prod_id=config.product_id,
        isv_svn=config.security_version,
        debug=config.debug,
        date=_build_date(),
    )
    return Bundle(config, interface, tuple(files), tuple(manifest), tuple(runtime), sig)


def resign_bundle(bundle: Bundle, key: rsa.RSAPrivateKey) -> Bundle:
    """Sign the same measurement with another key (MRENCLAVE kept, MRSIGNER changes)."""
    old = bundle.sigstruct
    sig = sign_sigstruct(
        key,
        enclave_hash=old.enclave_hash,
        isv_prod_id=old.isv_prod_id,
        isv_svn=old.isv_svn,
        debug=old.debug,
        date=old.date,
    )
    return bundle.with_sigstruct(sig)


def write_bundle(bundle: Bundle, path: Path) -> None:
    """Write atomically (temp file + rename), so a crash never leaves half a bundle."""
    data = bundle.to_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise BundleError(f"cannot write bundle {path}: {exc.strerror}") from exc


def read_bundle(path: Path) -> Bundle:
    """Read and parse (not verify) a bundle file.

    Raises:
        BundleError: unreadable or malformed.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read bundle {path}: {exc.strerror}") from exc
    return Bundle.from_bytes(data)
