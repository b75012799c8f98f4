"""Gramine manifest for a bundle: render, write and sign (``gramine-sgx-sign``).

The enclave is the Python interpreter running ``enklave.enclave._main`` with a fixed,
measured ``loader.argv`` (never ``loader.insecure__use_cmdline_argv``); the per-run
channel address comes through the one passthrough variable ``ENKLAVE_CHANNEL`` (see
:mod:`._channel`). Every file the enclave reads is a trusted file hashed into
MRENCLAVE at signing: Gramine's LibOS and runtime, the system library directories, the
interpreter, its standard library, the whole site-packages directories (enklave's
dependencies: cryptography, cffi, pyOpenSSL, ...), enklave itself and the bundle.

Paths inside the enclave equal the paths on the host (each directory is mounted at its
own path), so a manifest is specific to one machine or image layout; build it where the
enclave will run (e.g. inside the container image).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ...errors import DeployError, EnklaveError, PlatformError
from ...package._build import read_bundle
from ...package._sigstruct import Sigstruct
from ._toml import TomlTable, TomlValue, dumps_toml

__all__ = [
    "DEFAULT_ARCH_LIBDIR",
    "DEFAULT_GRAMINE_LIBDIR",
    "GRAMINE_HELPER_THREADS",
    "MANIFEST_NAME",
    "RUNTIME_THREADS",
    "PythonLayout",
    "default_manifest_dir",
    "detect_python_layout",
    "enclave_size",
    "read_signed_mrenclave",
    "render_gramine_manifest",
    "sign_manifest",
    "write_gramine_manifest",
]

MANIFEST_NAME: Final = "enklave"  # enklave.manifest, enklave.manifest.sgx, enklave.sig
#: Gramine's own threads: IPC, async (timers) and the pipe TLS-handshake thread.
GRAMINE_HELPER_THREADS: Final = 3
#: enklave's threads besides the ECALL workers: the attested-TLS gateway's event loop
#: and one asyncio executor thread (name resolution, ``to_thread``).
RUNTIME_THREADS: Final = 2
DEFAULT_GRAMINE_LIBDIR: Final = Path("/usr/lib/x86_64-linux-gnu/gramine")
DEFAULT_ARCH_LIBDIR: Final = Path("/lib/x86_64-linux-gnu")
_INSTALL_FIX: Final = (
    "install Gramine (Debian/Ubuntu: apt-get install gramine; see "
    "https://gramine.readthedocs.io/en/stable/installation.html)"
)

_PROBE = r"""
import glob, importlib.util, json, os, site, sys, sysconfig
spec = importlib.util.find_spec("enklave")
venv = os.path.join(sys.prefix, "pyvenv.cfg")
print(json.dumps({
    "binary": os.path.realpath(sys.executable),
    "stdlib": sysconfig.get_paths()["stdlib"],
    "site_packages": site.getsitepackages(),
    "enklave_root": os.path.dirname(os.path.dirname(spec.origin)) if spec else None,
    "venv_cfg": venv if sys.prefix != sys.base_prefix and os.path.isfile(venv) else None,
    "libpython": sorted(glob.glob(os.path.join(sys.base_prefix, "lib", "libpython*.so*"))),
}))
"""


@dataclass(frozen=True)
class PythonLayout:
    """Where the enclave's interpreter and packages live (identical inside the enclave).

    Attributes:
        python: ``argv[0]``, the interpreter as invoked; a venv's ``bin/python`` keeps
            the venv (CPython finds ``pyvenv.cfg`` next to it).
        binary: the real interpreter ELF (``libos.entrypoint``).
        stdlib: the standard library directory (holds ``lib-dynload``).
        site_packages: the site-packages directories, trusted whole.
        enklave_root: the directory holding the ``enklave`` package.
        venv_cfg: the venv's ``pyvenv.cfg`` (None outside a venv).
        libpython: shared ``libpython`` files the binary links to (may be empty).
    """

    python: Path
    binary: Path
    stdlib: Path
    site_packages: tuple[Path, ...]
    enklave_root: Path
    venv_cfg: Path | None = None
    libpython: tuple[Path, ...] = ()


def detect_python_layout(python: Path | None = None) -> PythonLayout:
    """Ask ``python`` (default: this interpreter) where its parts live.

    Raises:
        DeployError: the interpreter cannot be run or cannot import enklave.
    """
    exe = Path(os.path.abspath(python if python is not None else sys.executable))
    try:
        out = subprocess.run(
            [str(exe), "-I", "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise DeployError(f"cannot run {exe} to find its library paths: {exc}") from exc
    info = json.loads(out)
    if info["enklave_root"] is None:
        raise DeployError(f"{exe} cannot import enklave; install enklave into that interpreter")
    return PythonLayout(
        python=exe,
        binary=Path(info["binary"]),
        stdlib=Path(info["stdlib"]),
        site_packages=tuple(Path(p) for p in info["site_packages"] if os.path.isdir(p)),
        enklave_root=Path(info["enklave_root"]),
        venv_cfg=Path(info["venv_cfg"]) if info["venv_cfg"] else None,
        libpython=tuple(Path(p) for p in info["libpython"]),
    )


def enclave_size(memory_mb: int) -> str:
    """``sgx.enclave_size``: the next power of two >= ``memory_mb`` MiB ("256M", "2G")."""
    size = 1
    while size < memory_mb:
        size *= 2
    return f"{size // 1024}G" if size >= 1024 else f"{size}M"


def _under(path: Path, roots: list[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def _mounts(layout: PythonLayout, bundle: Path, libdir: Path, arch: Path) -> list[TomlTable]:
    """Chroot mounts at identical paths (nested duplicates dropped), then tmpfs /tmp."""
    mounts: list[TomlTable] = [
        {"path": "/lib", "uri": f"file:{libdir}/runtime/glibc"},
        {"path": str(arch), "uri": f"file:{arch}"},
        {"path": "/usr", "uri": "file:/usr"},
    ]
    done = [arch, Path("/usr")]
    venv = [layout.venv_cfg.parent] if layout.venv_cfg else []
    wanted = [layout.binary.parent.parent, layout.stdlib, *venv, *layout.site_packages,
              layout.enklave_root, bundle.parent]  # fmt: skip
    for path in wanted:
        if not _under(path, done):
            mounts.append({"path": str(path), "uri": f"file:{path}"})
            done.append(path)
    tmp = Path("/tmp")  # noqa: S108 - an in-enclave tmpfs, not the host's /tmp
    if not any(tmp in p.parents for p in done):  # a tmpfs /tmp would hide mounts below it
        mounts.append({"type": "tmpfs", "path": str(tmp)})
    return mounts


def _trusted(layout: PythonLayout, bundle: Path, libdir: Path, arch: Path) -> list[str]:
    """Trusted files (directories end in "/": Gramine hashes them recursively)."""
    dirs = [layout.stdlib, *layout.site_packages]
    files = [f"file:{libdir}/libsysdb.so", f"file:{libdir}/runtime/glibc/", f"file:{arch}/",
             f"file:/usr{arch}/", f"file:{layout.binary}"]  # fmt: skip
    files += [f"file:{p}" for p in layout.libpython]
    files += [f"file:{d}/" for d in dirs]
    if layout.venv_cfg is not None:
        files.append(f"file:{layout.venv_cfg}")
    package = layout.enklave_root / "enklave"
    if not _under(package, dirs):
        files.append(f"file:{package}/")
    files.append(f"file:{bundle}")
    return list(dict.fromkeys(files))


def render_gramine_manifest(
    bundle: Path,
    *,
    layout: PythonLayout | None = None,
    gramine_libdir: Path = DEFAULT_GRAMINE_LIBDIR,
    arch_libdir: Path = DEFAULT_ARCH_LIBDIR,
) -> str:
    """The Gramine manifest (TOML text) that runs ``bundle`` under ``gramine-sgx``.

    Args:
        bundle: a bundle from ``enklave build``; its config gives the enclave size, the
            thread count, ISVPRODID/ISVSVN, debug and the allowed environment.
        layout: the interpreter layout (default: :func:`detect_python_layout`).
        gramine_libdir: Gramine's install directory (``libsysdb.so``, ``runtime/glibc``).
        arch_libdir: the system's multiarch library directory.

    Raises:
        BundleError: the bundle is unreadable or malformed.
        DeployError: the interpreter layout cannot be detected.
    """
    path = Path(os.path.abspath(bundle))
    cfg = read_bundle(path).config
    lay = layout if layout is not None else detect_python_layout()
    argv = [str(lay.python), "-I", "-m", "enklave.enclave._main", "--backend", "gramine",
            "--bundle", str(path)]  # fmt: skip
    entries: list[tuple[str, TomlValue]] = [
        ("loader.entrypoint.uri", f"file:{gramine_libdir}/libsysdb.so"),
        ("libos.entrypoint", str(lay.binary)),
        ("loader.log_level", "error"),
        ("loader.argv", argv),
        ("loader.env.LD_LIBRARY_PATH", f"/lib:{arch_libdir}:/usr{arch_libdir}"),
        ("loader.env.MALLOC_ARENA_MAX", "2"),
        ("loader.env.ENKLAVE_CHANNEL", {"passthrough": True}),
        *((f"loader.env.{name}", {"passthrough": True}) for name in cfg.allowed_env),
        ("sys.stack.size", "2M"),
        ("fs.mounts", _mounts(lay, path, gramine_libdir, arch_libdir)),
        ("sgx.debug", cfg.debug),
        ("sgx.enclave_size", enclave_size(cfg.memory_mb)),
        ("sgx.max_threads", cfg.max_threads + RUNTIME_THREADS + GRAMINE_HELPER_THREADS),
        ("sgx.isvprodid", cfg.product_id),
        ("sgx.isvsvn", cfg.security_version),
        ("sgx.remote_attestation", "dcap"),
        ("sgx.trusted_files", _trusted(lay, path, gramine_libdir, arch_libdir)),
    ]
    header = (
        f"Gramine manifest for the enklave app {cfg.name!r}, generated by "
        "`enklave gramine manifest`.\nDo not edit: sign it with gramine-sgx-sign."
    )
    return dumps_toml(entries, header=header)


def default_manifest_dir(bundle: Path) -> Path:
    """Where the manifest files of ``bundle`` go by default: ``BUNDLE.gramine/``."""
    return bundle.parent / (bundle.name + ".gramine")


def write_gramine_manifest(
    bundle: Path, out_dir: Path | None = None, *, layout: PythonLayout | None = None,
    gramine_libdir: Path = DEFAULT_GRAMINE_LIBDIR, arch_libdir: Path = DEFAULT_ARCH_LIBDIR,
) -> Path:  # fmt: skip
    """Render and write ``OUT_DIR/enklave.manifest``; return its path.

    Raises:
        BundleError, DeployError: as :func:`render_gramine_manifest`, or the write fails.
    """
    text = render_gramine_manifest(
        bundle, layout=layout, gramine_libdir=gramine_libdir, arch_libdir=arch_libdir
    )
    directory = out_dir if out_dir is not None else default_manifest_dir(Path(bundle))
    target = directory / f"{MANIFEST_NAME}.manifest"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    except OSError as exc:
        raise DeployError(f"cannot write {target}: {exc.strerror}") from exc
    return target


def sign_manifest(
    manifest: Path, key: Path, *, progress: Callable[[str], None] = lambda _: None
) -> Path:
    """Sign with ``gramine-sgx-sign``: writes ``enklave.manifest.sgx`` and ``enklave.sig``.

    Returns the path of the signed manifest.

    Raises:
        DeployError: ``gramine-sgx-sign`` is not on PATH (the unsigned manifest is kept;
            the message says how to install Gramine) or it failed (its stderr is shown).
    """
    tool = shutil.which("gramine-sgx-sign")
    if tool is None:
        raise DeployError(
            f"gramine-sgx-sign is not on PATH; {_INSTALL_FIX}, then run `gramine-sgx-sign "
            f"--manifest {manifest} --output {manifest}.sgx --key {key}` (the unsigned "
            "manifest was kept)"
        )
    output = manifest.with_name(manifest.name + ".sgx")
    sigfile = manifest.with_name(f"{MANIFEST_NAME}.sig")
    cmd = [tool, "--manifest", str(manifest), "--output", str(output), "--key", str(key),
           "--sigfile", str(sigfile)]  # fmt: skip
    progress(f"signing {manifest} with gramine-sgx-sign (hashes every trusted file)")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.SubprocessError) as exc:
        raise DeployError(f"cannot run gramine-sgx-sign: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-2000:]
        raise DeployError(f"gramine-sgx-sign failed (status {done.returncode}): {tail}")
    return output


def read_signed_mrenclave(manifest_dir: Path) -> bytes:
    """MRENCLAVE from ``enklave.sig`` (the SIGSTRUCT gramine-sgx-sign wrote).

    Raises:
        PlatformError: the file is missing or not a SIGSTRUCT.
    """
    path = manifest_dir / f"{MANIFEST_NAME}.sig"
    try:
        return Sigstruct.from_bytes(path.read_bytes()).enclave_hash
    except OSError as exc:
        raise PlatformError(
            f"cannot read {path}: {exc.strerror}; run `enklave gramine manifest BUNDLE --sign "
            "--key KEY.pem` first"
        ) from exc
    except EnklaveError as exc:
        raise PlatformError(f"{path} is not a SIGSTRUCT: {exc}") from exc
