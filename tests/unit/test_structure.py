"""Import rules and public surfaces (DESIGN.md): the trusted side stays small on purpose."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from enklave.package._measure import TRUSTED_RUNTIME, runtime_files

_ENCLAVE_PROCESS = (
    "import enklave.enclave._main, enklave.enclave, enklave.enclave._evidence\n"
    "import enklave.backends.simulation  # what evidence() loads in the enclave\n"
)
_ENCLAVE_SIDE_ATLS = (
    "import enklave.enclave._main, enklave.enclave, enklave.atls, enklave.verify\n"
    "import enklave.atls._server, enklave.atls._asgi, enklave.atls._issue, enklave.atls._client\n"
    "import enklave.backends.simulation, enklave.collateral\n"
)
_NEVER_IN_THE_ENCLAVE = (
    "enklave.host", "enklave.cli", "enklave.collateral._pcs", "enklave.collateral._cache",
    "enklave.atls.transport", "http.", "urllib.request", "httpx", "httpcore", "requests",
    "flask", "fastapi", "starlette", "pickle",
)


def _modules_after(imports: str) -> list[str]:
    """Every module loaded, in a fresh isolated interpreter, by ``imports``."""
    code = "import sys\n" + imports + "print('\\n'.join(sorted(sys.modules)))"
    return subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()


def _assert_all_measured(modules: list[str]) -> None:
    measured = {p for p, _, _ in runtime_files()}
    for mod in (m for m in modules if m.startswith("enklave")):
        path = importlib.import_module(mod).__file__
        assert path is not None
        rel = "enklave/" + path.split("/enklave/", 1)[1]
        assert rel in measured, f"{mod} runs in the enclave but is not measured"


def test_enclave_process_imports_only_measured_enklave_modules() -> None:
    _assert_all_measured(_modules_after(_ENCLAVE_PROCESS))


def test_trusted_side_never_imports_host_cli_or_http() -> None:
    bad = [m for m in _modules_after(_ENCLAVE_PROCESS) if m.startswith(_NEVER_IN_THE_ENCLAVE)]
    assert bad == []


def test_enclave_side_atls_imports_only_measured_modules() -> None:
    """An enclave serving attested TLS (and verifying peers) runs only measured enklave code."""
    modules = _modules_after(_ENCLAVE_SIDE_ATLS)
    assert "enklave.atls._server" in modules
    _assert_all_measured(modules)


def test_enclave_side_atls_never_imports_http_clients_or_the_host() -> None:
    bad = [m for m in _modules_after(_ENCLAVE_SIDE_ATLS) if m.startswith(_NEVER_IN_THE_ENCLAVE)]
    assert bad == []


def test_runtime_file_list_is_stable_and_covers_the_parts() -> None:
    entries = runtime_files()
    assert entries == sorted(entries)
    paths = {p for p, _, _ in entries}
    assert "enklave/enclave/_main.py" in paths and "enklave/_encoding.py" in paths
    assert len(TRUSTED_RUNTIME) >= 5


@pytest.mark.parametrize(
    "name", ["enklave.enclave", "enklave.host", "enklave.package", "enklave.channel",
             "enklave.models", "enklave.errors", "enklave.verify", "enklave.collateral",
             "enklave.backends.simulation", "enklave.atls", "enklave.atls.transport",
             "enklave.deploy"]
)
def test_all_matches_exports(name: str) -> None:
    module = importlib.import_module(name)
    exported = set(module.__all__)
    for item in exported:
        assert hasattr(module, item), f"{name}.__all__ lists missing {item}"
    public = {
        k for k, v in vars(module).items()
        if not k.startswith("_") and not isinstance(v, type(sys)) and k != "annotations"
        and getattr(v, "__module__", name).startswith("enklave")
    }
    assert public <= exported | {"log"}, f"{name} exports {public - exported} outside __all__"


def test_no_pickle_marshal_or_yaml_load_in_src() -> None:
    import pathlib

    src = pathlib.Path(importlib.import_module("enklave").__file__).parent
    for path in src.rglob("*.py"):
        text = path.read_text()
        for bad in ("import pickle", "import marshal", "yaml.load(", "from pickle"):
            assert bad not in text, f"{path} uses {bad}"
