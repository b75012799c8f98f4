"""The wheelhouse an image installs from, offline: enklave's wheel plus pinned dependencies.

The image build never reaches an index: the host puts every wheel into the build context
together with ``requirements.lock`` (exact versions and the sha256 of each wheel), and the
Containerfile runs ``pip install --no-index --require-hashes``. Dependencies are pinned to
the versions installed in the running environment (what the host tested with), built for
the image's interpreter (CPython 3.11, glibc Linux, the host's CPU architecture).

Caches, under ``$XDG_CACHE_HOME/enklave/wheels`` (default ``~/.cache/enklave/wheels``):
``deps-<key>/`` by the pinned versions and target, ``enklave-<key>/`` by a digest of
the source tree, so warm builds neither download nor rebuild, and the wheel bytes stay
identical (which keeps podman's layer cache valid).
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Final

from ..errors import DeployError

__all__ = ["LOCK_NAME", "cache_dir", "dependency_pins", "prepare_wheelhouse", "project_root"]

LOCK_NAME: Final = "requirements.lock"
_PYTHON: Final = "3.11"
_GLIBC_MINORS: Final = (36, 35, 34, 31, 28, 27, 24, 17)  # bookworm has glibc 2.36
_EPOCH: Final = "315532800"  # 1980-01-01, the earliest zip timestamp: reproducible wheels


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/enklave/wheels`` (default ``~/.cache/enklave/wheels``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "enklave" / "wheels"


def project_root() -> Path | None:
    """The source checkout enklave runs from (``pyproject.toml`` naming ``enklave``), or None."""
    import enklave

    root = Path(enklave.__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    if not re.search(r'^name\s*=\s*"enklave"', text, re.MULTILINE):
        return None
    return root


def canonicalize_name(name: str) -> str:
    """PEP 503 normalized project name (``PyYAML`` -> ``pyyaml``, ``a_b.c`` -> ``a-b-c``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _target_env() -> dict[str, str]:
    machine = platform.machine()
    return {
        "python_version": _PYTHON, "python_full_version": f"{_PYTHON}.2",
        "implementation_name": "cpython", "platform_python_implementation": "CPython",
        "sys_platform": "linux", "os_name": "posix", "platform_system": "Linux",
        "platform_machine": machine, "extra": "",
    }


def dependency_pins() -> list[tuple[str, str]]:
    """enklave's runtime dependencies, transitively, at the versions installed here.

    Requirements are read from the installed distributions' metadata; extras are not
    followed and markers are evaluated for the image (CPython 3.11 on Linux).

    Raises:
        DeployError: enklave or one of its dependencies is not installed.
    """
    # Host side only (building images): the image itself never needs `packaging`.
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError as exc:
        raise DeployError("building an image needs `packaging` on the host: "
                          "pip install packaging") from exc

    env = _target_env()
    pins: dict[str, str] = {}
    todo = ["enklave"]
    while todo:
        name = todo.pop()
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError as exc:
            raise DeployError(
                f"{name} is not installed here, so its version cannot be pinned; "
                "install enklave with its dependencies (`pip install enklave`)"
            ) from exc
        for line in requires:
            try:
                req = Requirement(line)
            except InvalidRequirement as exc:
                raise DeployError(f"{name} declares an invalid requirement {line!r}") from exc
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            key = canonicalize_name(req.name)
            if key in pins or key == "enklave":
                continue
            if not _installed(req.name):
                raise DeployError(f"dependency {req.name} of {name} is not installed; "
                                  "reinstall enklave with its dependencies")
            pins[key] = md.version(req.name)
            todo.append(req.name)
    return sorted(pins.items())


def _installed(name: str) -> bool:
    try:
        md.version(name)
    except md.PackageNotFoundError:
        return False
    return True


def _digest(parts: Iterable[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for name, data in parts:
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:20]


def _source_files(root: Path) -> Iterator[tuple[str, bytes]]:
    """The files a wheel is built from: pyproject.toml, README.md and src/enklave/**."""
    for name in ("pyproject.toml", "README.md"):
        if (root / name).is_file():
            yield name, (root / name).read_bytes()
    for path in sorted((root / "src" / "enklave").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            yield path.relative_to(root).as_posix(), path.read_bytes()


def _pip(args: list[str], *, what: str, progress: Callable[[str], None]) -> None:
    """Run ``python -m pip`` with this interpreter, forwarding its output as progress."""
    env = {**os.environ, "SOURCE_DATE_EPOCH": _EPOCH, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    cmd = [sys.executable, "-m", "pip", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False,
                              timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DeployError(f"{what}: cannot run pip: {exc}") from exc
    for line in proc.stdout.splitlines():
        if line.startswith(("Saved", "Successfully", "Created wheel")):
            progress(f"pip: {line.strip()}")
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise DeployError(f"{what}: pip exited with status {proc.returncode}:\n{tail}")


def _enklave_wheel(progress: Callable[[str], None]) -> Path:
    """Build (or reuse from the cache) the wheel of the source tree enklave runs from."""
    root = project_root()
    if root is None:
        raise DeployError(
            "enklave is not running from a source checkout, so its wheel cannot be built; "
            "pass the enklave wheel to install in the image (--wheel enklave-*.whl)"
        )
    try:
        files = list(_source_files(root))
    except OSError as exc:
        raise DeployError(f"cannot read the enklave sources in {root}: {exc}") from exc
    key = _digest(files)
    target = cache_dir() / f"enklave-{key}"
    found = sorted(target.glob("enklave-*.whl"))
    if found:
        progress(f"enklave wheel: cached {found[0].name} (sources {key})")
        return found[0]
    progress(f"enklave wheel: building from {root}")
    with tempfile.TemporaryDirectory(prefix="enklave-wheel-") as tmp:
        # Build from a copy of exactly the digested files: nothing is written into the
        # checkout (no build/, no egg-info) and nothing else can slip into the wheel.
        tree, out = Path(tmp) / "src", Path(tmp) / "out"
        for rel, data in files:
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            (tree / rel).write_bytes(data)
        _pip(["wheel", "--no-deps", "--wheel-dir", str(out), str(tree)],
             what="building the enklave wheel", progress=progress)
        _publish(out, target)
    return sorted(target.glob("enklave-*.whl"))[0]


def _publish(src: Path, target: Path) -> None:
    """Move a finished download/build into the cache atomically (a rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    for wheel in src.glob("*.whl"):
        shutil.copy2(wheel, staging / wheel.name)
    try:
        staging.rename(target)
    except OSError:  # another build published it first: keep theirs
        shutil.rmtree(staging, ignore_errors=True)


def _download_args(pins: list[tuple[str, str]], dest: str) -> list[str]:
    machine = platform.machine()
    args = ["download", "--only-binary=:all:", "--no-deps", "--dest", dest,
            "--python-version", _PYTHON, "--implementation", "cp",
            "--abi", "cp311", "--abi", "abi3", "--abi", "none"]
    for minor in _GLIBC_MINORS:
        args += ["--platform", f"manylinux_2_{minor}_{machine}"]
    args += ["--platform", f"manylinux2014_{machine}", "--platform", "any"]
    return args + [f"{name}=={version}" for name, version in pins]


def _dependency_wheels(progress: Callable[[str], None]) -> list[Path]:
    pins = dependency_pins()
    key = _digest([(f"{n}=={v}", platform.machine().encode()) for n, v in pins])
    target = cache_dir() / f"deps-{key}"
    if not target.is_dir():
        progress(f"downloading {len(pins)} pinned dependency wheels for CPython {_PYTHON}")
        with tempfile.TemporaryDirectory(prefix="enklave-deps-") as tmp:
            _pip(_download_args(pins, tmp), what="downloading dependency wheels",
                 progress=progress)
            _publish(Path(tmp), target)
    else:
        progress(f"dependency wheels: cached ({len(pins)} pinned, key {key})")
    wheels = sorted(target.glob("*.whl"))
    names = {canonicalize_name(w.name.split("-")[0]) for w in wheels}
    missing = [n for n, _ in pins if n not in names]
    if missing:
        raise DeployError(f"the wheel cache {target} lacks {', '.join(missing)}; delete it "
                          "and build again")
    return wheels


def prepare_wheelhouse(
    dest: Path, *, enklave_wheel: Path | None = None, progress: Callable[[str], None]
) -> list[str]:
    """Fill ``dest`` with the wheels and a hash-pinned ``requirements.lock``.

    Args:
        dest: an empty directory (the build context's ``wheels/``).
        enklave_wheel: install this wheel instead of building one from the source tree.
        progress: receives a line per step.

    Returns:
        The lock file's lines (``name==version --hash=sha256:...``), sorted.

    Raises:
        DeployError: no source checkout and no wheel given, pip fails, or a wheel is
            missing.
    """
    if enklave_wheel is not None and not enklave_wheel.name.startswith("enklave-"):
        raise DeployError(f"{enklave_wheel} is not an enklave wheel (enklave-*.whl)")
    own = enklave_wheel if enklave_wheel is not None else _enklave_wheel(progress)
    lines = []
    for wheel in [own, *_dependency_wheels(progress)]:
        try:
            data = wheel.read_bytes()
        except OSError as exc:
            raise DeployError(f"cannot read wheel {wheel}: {exc.strerror}") from exc
        (dest / wheel.name).write_bytes(data)
        name, version = wheel.name.split("-")[:2]
        digest = hashlib.sha256(data).hexdigest()
        lines.append(f"{canonicalize_name(name)}=={version} --hash=sha256:{digest}")
    lines.sort()
    (dest / LOCK_NAME).write_text("".join(f"{line}\n" for line in lines), encoding="ascii")
    return lines
