"""The /dev/attestation client, against a directory standing in for Gramine's pseudo-files.

The stand-in (tests/_gramine_standin.py) is plain files, not Gramine: quotes and reports
in it are simulated (enklave.backends.simulation) for report data the test chooses.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from _gramine_standin import KEY_PRODUCT, KEY_UNIQUE, make_standin, sim_quote, sim_report
from enklave.backends.gramine import _attestation
from enklave.backends.gramine._attestation import GramineAttestation, resolve_root
from enklave.backends.simulation import SimPlatform
from enklave.errors import AttestationError, PlatformError, QuoteFormatError

IDENT = {"mrenclave": b"\x11" * 32, "mrsigner": b"\x22" * 32, "isv_prod_id": 7,
         "isv_svn": 3, "debug": False}  # fmt: skip
RD = bytes(range(64))


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> SimPlatform:
    return SimPlatform.init(tmp_path_factory.mktemp("sim"))


@pytest.fixture
def root(tmp_path: Path, platform: SimPlatform) -> Path:
    return make_standin(
        tmp_path / "attestation",
        quote=sim_quote(platform, RD, **IDENT),
        report=sim_report(platform, bytes(64), **IDENT),
    )


def test_quote_writes_report_data_and_parses(root: Path) -> None:
    quote = GramineAttestation(root).quote(RD)
    assert (root / "user_report_data").read_bytes() == RD
    assert quote.report_data == RD and quote.body.mrenclave == IDENT["mrenclave"]


def test_quote_for_other_report_data_is_refused(root: Path) -> None:
    with pytest.raises(AttestationError) as info:
        GramineAttestation(root).quote(bytes(64))
    assert info.value.code == "report_data_mismatch"


@pytest.mark.parametrize("bad", [b"", bytes(63), bytes(65), bytearray(64)])
def test_report_data_must_be_64_bytes(root: Path, bad: bytes) -> None:
    with pytest.raises(PlatformError, match="64 bytes"):
        GramineAttestation(root).quote(bad)


def test_garbage_quote_is_a_format_error(root: Path) -> None:
    (root / "quote").write_bytes(b"\x03\x00" + bytes(100))
    with pytest.raises(QuoteFormatError):
        GramineAttestation(root).quote(RD)


@pytest.mark.parametrize("kind", ["none", "epid", ""])
def test_attestation_type_must_be_dcap(tmp_path: Path, kind: str) -> None:
    make_standin(tmp_path, quote=b"x", attestation_type=kind)
    with pytest.raises(PlatformError, match="remote_attestation"):
        GramineAttestation(tmp_path)


def test_missing_device_names_gramine(tmp_path: Path) -> None:
    with pytest.raises(PlatformError, match="gramine-sgx"):
        GramineAttestation(tmp_path / "nowhere")


def test_identity_comes_from_the_own_report(root: Path) -> None:
    ident = GramineAttestation(root).identity()
    assert ident.mrenclave == IDENT["mrenclave"] and ident.mrsigner == IDENT["mrsigner"]
    assert (ident.product_id, ident.security_version, ident.debug) == (7, 3, False)
    assert ident.simulated is False
    assert (root / "target_info").read_bytes() == bytes(512)  # my_target_info written back


def test_report_with_other_report_data_is_refused(root: Path) -> None:
    with pytest.raises(AttestationError):
        GramineAttestation(root).report(RD)


def test_short_report_is_refused(root: Path) -> None:
    (root / "report").write_bytes(bytes(384))
    with pytest.raises(QuoteFormatError, match="432"):
        GramineAttestation(root).identity()


def test_seal_keys(root: Path) -> None:
    dev = GramineAttestation(root)
    assert dev.seal_key("unique") == KEY_UNIQUE and dev.seal_key("product") == KEY_PRODUCT
    with pytest.raises(PlatformError, match="unknown seal policy"):
        dev.seal_key("mrenclave")
    (root / "keys" / "_sgx_mrsigner").write_bytes(bytes(15))
    with pytest.raises(PlatformError, match="expected 16"):
        dev.seal_key("product")


def test_write_and_read_run_under_one_lock(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dev = GramineAttestation(root)
    seen: list[bool] = []
    real_read = dev._read

    def spy(name: str, limit: int) -> bytes:
        seen.append(dev._lock.locked())
        return real_read(name, limit)

    monkeypatch.setattr(dev, "_read", spy)
    threads = [threading.Thread(target=dev.quote, args=(RD,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [True] * 8


def test_test_hook_is_refused_where_dev_attestation_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {_attestation.ROOT_ENV: str(tmp_path / "standin")}
    monkeypatch.setattr(_attestation, "DEV_ATTESTATION", tmp_path / "missing")
    assert resolve_root(env) == tmp_path / "standin"
    assert resolve_root({}) == tmp_path / "missing"
    monkeypatch.setattr(_attestation, "DEV_ATTESTATION", tmp_path)  # "exists"
    with pytest.raises(PlatformError, match="test hook"):
        resolve_root(env)


def test_active_without_gramine_names_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_attestation, "_active", None)
    with pytest.raises(PlatformError, match="backend='gramine'"):
        _attestation.active()


def test_gramine_enclave_side_imports_only_measured_modules() -> None:
    """What the enclave loads on the Gramine backend is measured and never the host side."""
    import importlib
    import subprocess
    import sys

    from enklave.package._measure import runtime_files

    code = (
        "import sys, enklave.enclave._main, enklave.enclave, enklave.enclave._evidence\n"
        "import enklave.backends.gramine._attestation, enklave.backends.gramine._channel\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('enklave'))))\n"
        "bad = [m for m in sys.modules if m.startswith(('enklave.host', 'enklave.cli', "
        "'enklave.deploy', 'http.', 'urllib.request', 'httpx', 'pickle'))]\n"
        "print('BAD', bad)"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[-2] == "BAD []"
    measured = {p for p, _, _ in runtime_files()}
    for mod in filter(None, out[:-2]):
        path = importlib.import_module(mod).__file__
        assert path is not None
        assert "enklave/" + path.split("/enklave/", 1)[1] in measured, f"{mod} is not measured"
