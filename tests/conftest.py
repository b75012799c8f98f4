"""Shared fixtures: signing keys (session-scoped: RSA-3072 keygen is slow), app builders."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from enklave.package import build_app, generate_signing_key, write_bundle

REPO = Path(__file__).resolve().parent.parent
HELLO_DIR = REPO / "examples" / "hello"
PING_DIR = REPO / "bench" / "ping"


@pytest.fixture(scope="session")
def key():
    return generate_signing_key()


@pytest.fixture(scope="session")
def other_key():
    return generate_signing_key()


def write_app(
    app_dir: Path,
    enclave_src: str,
    toml_extra: str = "",
    *,
    name: str = "testapp",
    product_id: int = 7,
    security_version: int = 1,
    debug: bool = False,
    max_threads: int = 4,
) -> Path:
    """Write an app directory (enklave.toml + enclave.py) and return it.

    ``toml_extra`` lines override nothing: give only keys not set here (memory_mb,
    files, allowed_env), or pass the keyword arguments.
    """
    app_dir.mkdir(parents=True, exist_ok=True)
    toml = (
        f'name = "{name}"\n'
        'entry = "enclave.py"\n'
        f"product_id = {product_id}\n"
        f"security_version = {security_version}\n"
        f"debug = {'true' if debug else 'false'}\n"
        f"max_threads = {max_threads}\n"
    ) + textwrap.dedent(toml_extra)
    (app_dir / "enklave.toml").write_text(toml)
    (app_dir / "enclave.py").write_text(textwrap.dedent(enclave_src))
    return app_dir


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., Path]:
    """``make_app(enclave_src, toml_extra="", *, sub="app", **toml_keys) -> app dir``."""

    def _make(enclave_src: str, toml_extra: str = "", *, sub: str = "app", **kw) -> Path:
        return write_app(tmp_path / sub, enclave_src, toml_extra, **kw)

    return _make


def build(app_dir: Path, key, out: Path) -> Path:
    """Build and sign ``app_dir`` into the bundle file ``out``; return ``out``."""
    write_bundle(build_app(app_dir, key), out)
    return out


# Bundles are built per test (about 20 ms each): a bundle measures enklave's own runtime
# files, so one built once per session goes stale if the runtime changes meanwhile.
@pytest.fixture
def hello_bundle(tmp_path: Path, key) -> Path:
    return build(HELLO_DIR, key, tmp_path / "hello.bundle")


@pytest.fixture
def ping_bundle(tmp_path: Path, key) -> Path:
    return build(PING_DIR, key, tmp_path / "ping.bundle")


def load_hello_host():
    """Import examples/hello/host.py as a module (it is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("hello_host", HELLO_DIR / "host.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def open_hello():
    return load_hello_host().open_hello


@pytest.fixture
def sim_home(tmp_path: Path) -> Path:
    return tmp_path / "sim"


def copy_app(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
