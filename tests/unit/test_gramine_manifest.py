"""Gramine manifest generation: golden file for hello, the keys that matter, signing."""

from __future__ import annotations

import dataclasses
import os
import stat
import sys
import tomllib
from pathlib import Path

import pytest

from _golden import assert_golden
from conftest import HELLO_DIR, build, write_app
from enklave.backends.gramine import (
    PythonLayout,
    detect_python_layout,
    enclave_size,
    read_signed_mrenclave,
    render_gramine_manifest,
    sign_manifest,
    write_gramine_manifest,
)
from enklave.backends.gramine._toml import dumps_toml
from enklave.cli import main
from enklave.errors import DeployError, PlatformError
from enklave.package import read_bundle

GOLDEN = Path(__file__).parent / "golden" / "gramine-hello.manifest"
LAYOUT = PythonLayout(
    python=Path("/opt/enklave/bin/python"),
    binary=Path("/usr/bin/python3.11"),
    stdlib=Path("/usr/lib/python3.11"),
    site_packages=(Path("/opt/enklave/lib/python3.11/site-packages"),),
    enklave_root=Path("/opt/enklave/lib/python3.11/site-packages"),
    venv_cfg=Path("/opt/enklave/pyvenv.cfg"),
)


def _render(bundle: Path, layout: PythonLayout = LAYOUT) -> str:
    return render_gramine_manifest(bundle, layout=layout)


def _hello_in(tmp_path: Path, key) -> Path:
    app = tmp_path / "app"
    app.mkdir()
    return build(HELLO_DIR, key, app / "hello.bundle")


def test_golden_hello(tmp_path: Path, key) -> None:
    """Machine paths are fixed by an explicit layout; the bundle directory is normalized
    (and the tmpfs /tmp line dropped: it is left out when the bundle lies under /tmp)."""
    bundle = _hello_in(tmp_path, key)
    tmpfs = '  { type = "tmpfs", path = "/tmp" },\n'
    text = _render(bundle).replace(str(bundle.parent), "/app").replace(tmpfs, "")
    assert_golden(text, GOLDEN)


def test_hello_keys(tmp_path: Path, key) -> None:
    bundle = _hello_in(tmp_path, key)
    m = tomllib.loads(_render(bundle))
    assert m["loader"]["argv"] == ["/opt/enklave/bin/python", "-I", "-m",
                                   "enklave.enclave._main", "--backend", "gramine",
                                   "--bundle", str(bundle)]  # fmt: skip
    assert "insecure__use_cmdline_argv" not in m["loader"]
    assert "insecure__use_host_env" not in m["loader"]
    assert m["libos"]["entrypoint"] == "/usr/bin/python3.11"
    sgx = m["sgx"]
    assert sgx["remote_attestation"] == "dcap" and sgx["debug"] is False
    assert (sgx["isvprodid"], sgx["isvsvn"], sgx["enclave_size"]) == (1, 1, "256M")
    assert sgx["max_threads"] == 4 + 2 + 3
    trusted = sgx["trusted_files"]
    for needed in ("file:/usr/bin/python3.11", "file:/usr/lib/python3.11/",
                   "file:/opt/enklave/lib/python3.11/site-packages/",
                   "file:/opt/enklave/pyvenv.cfg", f"file:{bundle}"):  # fmt: skip
        assert needed in trusted
    assert len(trusted) == len(set(trusted))
    # enklave lives inside the trusted site-packages: not listed twice
    assert not any(t.endswith("/enklave/") for t in trusted)
    assert m["loader"]["env"]["ENKLAVE_CHANNEL"] == {"passthrough": True}


def test_allowed_env_debug_threads_memory(tmp_path: Path, key) -> None:
    src = "from enklave.enclave import EnclaveApp\napp = EnclaveApp('t')\n"
    app = write_app(tmp_path / "a", src, 'memory_mb = 1000\nallowed_env = ["LANG", "TZ"]\n',
                    debug=True, max_threads=8, product_id=9, security_version=4)  # fmt: skip
    m = tomllib.loads(_render(build(app, key, tmp_path / "t.bundle")))
    env = m["loader"]["env"]
    assert env["LANG"] == env["TZ"] == {"passthrough": True}
    assert set(env) == {"LANG", "TZ", "ENKLAVE_CHANNEL", "LD_LIBRARY_PATH", "MALLOC_ARENA_MAX"}
    sgx = m["sgx"]
    assert (sgx["debug"], sgx["max_threads"], sgx["enclave_size"]) == (True, 13, "1G")
    assert (sgx["isvprodid"], sgx["isvsvn"]) == (9, 4)


@pytest.mark.parametrize(("mb", "size"), [(64, "64M"), (100, "128M"), (256, "256M"),
                                          (513, "1G"), (1024, "1G"), (1025, "2G"),
                                          (65536, "64G")])  # fmt: skip
def test_enclave_size_is_the_next_power_of_two(mb: int, size: str) -> None:
    assert enclave_size(mb) == size


def test_no_tmpfs_over_a_bundle_in_tmp(tmp_path: Path, key) -> None:
    bundle = _hello_in(tmp_path, key)
    mounts = tomllib.loads(_render(bundle))["fs"]["mounts"]
    under_tmp = str(bundle).startswith("/tmp/")
    assert any(m.get("type") == "tmpfs" for m in mounts) is not under_tmp
    assert {"path": str(bundle.parent), "uri": f"file:{bundle.parent}"} in mounts


def test_enklave_outside_site_packages_is_trusted(tmp_path: Path, key) -> None:
    layout = dataclasses.replace(LAYOUT, enklave_root=Path("/src/enklave-checkout/src"))
    trusted = tomllib.loads(_render(_hello_in(tmp_path, key), layout))["sgx"]["trusted_files"]
    assert "file:/src/enklave-checkout/src/enklave/" in trusted


def test_toml_strings_are_escaped() -> None:
    odd = 'a"b\\c\nd\te\x01'
    text = dumps_toml([("k", odd), ("l", [odd]), ("t", {"x": odd, "y": True, "z": 3})])
    assert tomllib.loads(text) == {"k": odd, "l": [odd], "t": {"x": odd, "y": True, "z": 3}}


def test_detect_this_interpreter() -> None:
    layout = detect_python_layout()
    assert layout.python == Path(os.path.abspath(sys.executable))
    assert layout.binary == Path(os.path.realpath(sys.executable))
    assert (layout.enklave_root / "enklave" / "enclave" / "_main.py").is_file()
    assert (layout.stdlib / "os.py").is_file()


def test_write_defaults_next_to_the_bundle(tmp_path: Path, key) -> None:
    bundle = _hello_in(tmp_path, key)
    path = write_gramine_manifest(bundle, layout=LAYOUT)
    assert path == bundle.parent / "hello.bundle.gramine" / "enklave.manifest"
    assert path.read_text() == _render(bundle)


def test_sign_without_gramine_keeps_the_manifest(
    tmp_path: Path, key, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    manifest = write_gramine_manifest(_hello_in(tmp_path, key), tmp_path / "out", layout=LAYOUT)
    with pytest.raises(DeployError, match="apt-get install gramine") as info:
        sign_manifest(manifest, tmp_path / "key.pem")
    assert info.value.code == "deploy"
    assert manifest.is_file() and not (tmp_path / "out" / "enklave.manifest.sgx").exists()


def _fake_tool(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)


def test_sign_runs_gramine_sgx_sign(tmp_path: Path, key, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in gramine-sgx-sign records its arguments (the real one is not installed)."""
    _fake_tool(tmp_path / "bin", "gramine-sgx-sign", f'echo "$@" > {tmp_path}/args')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    manifest = write_gramine_manifest(_hello_in(tmp_path, key), tmp_path / "out", layout=LAYOUT)
    out = sign_manifest(manifest, tmp_path / "key.pem")
    assert out == tmp_path / "out" / "enklave.manifest.sgx"
    assert (tmp_path / "args").read_text().split() == [
        "--manifest", str(manifest), "--output", str(out), "--key", str(tmp_path / "key.pem"),
        "--sigfile", str(tmp_path / "out" / "enklave.sig")]  # fmt: skip


def test_sign_failure_shows_stderr(tmp_path: Path, key, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_tool(tmp_path / "bin", "gramine-sgx-sign", "echo 'bad key' >&2; exit 2")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    manifest = write_gramine_manifest(_hello_in(tmp_path, key), tmp_path / "out", layout=LAYOUT)
    with pytest.raises(DeployError, match="status 2.*bad key"):
        sign_manifest(manifest, tmp_path / "key.pem")


def test_read_signed_mrenclave(tmp_path: Path, key) -> None:
    sig = read_bundle(_hello_in(tmp_path, key)).sigstruct
    (tmp_path / "enklave.sig").write_bytes(sig.to_bytes())
    assert read_signed_mrenclave(tmp_path) == sig.enclave_hash
    with pytest.raises(PlatformError, match="--sign"):
        read_signed_mrenclave(tmp_path / "none")
    (tmp_path / "enklave.sig").write_bytes(b"short")
    with pytest.raises(PlatformError, match="not a SIGSTRUCT"):
        read_signed_mrenclave(tmp_path)


def test_cli_manifest_and_missing_signer(
    tmp_path: Path, key, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = _hello_in(tmp_path, key)
    assert main(["gramine", "manifest", str(bundle), "-o", str(tmp_path / "g")]) == 0
    text = (tmp_path / "g" / "enklave.manifest").read_text()
    assert tomllib.loads(text)["sgx"]["remote_attestation"] == "dcap"
    assert main(["gramine", "manifest", str(bundle), "--sign"]) == 1
    assert "--sign needs --key" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code = main(["gramine", "manifest", str(bundle), "-o", str(tmp_path / "h"), "--sign",
                 "--key", str(tmp_path / "k.pem")])  # fmt: skip
    assert code == 1 and "apt-get install gramine" in capsys.readouterr().err
    assert (tmp_path / "h" / "enklave.manifest").is_file()
