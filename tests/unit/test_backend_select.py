"""Backend choice: simulation, gramine (never a fallback) and auto (logged)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from enklave.backends.gramine import Probe, gramine_command, select_backend
from enklave.errors import ConfigError, PlatformError
from enklave.host import Enclave

NOTHING = Probe(sgx_device=None, gramine_sgx=None)
BOTH = Probe(sgx_device=Path("/dev/sgx_enclave"), gramine_sgx="/usr/bin/gramine-sgx")
NO_GRAMINE = Probe(sgx_device=Path("/dev/sgx_enclave"), gramine_sgx=None)
NO_DEVICE = Probe(sgx_device=None, gramine_sgx="/usr/bin/gramine-sgx")


def _never() -> Probe:
    raise AssertionError("simulation must not probe")


def test_simulation_needs_nothing() -> None:
    assert select_backend("simulation", probe=_never) == "simulation"


def test_unknown_backend() -> None:
    with pytest.raises(ConfigError, match="simulation, gramine, auto"):
        select_backend("sgx", probe=lambda: BOTH)


def test_gramine_when_present() -> None:
    assert select_backend("gramine", probe=lambda: BOTH) == "gramine"


@pytest.mark.parametrize(
    ("found", "fix"),
    [(NOTHING, "/dev/sgx_enclave"), (NO_DEVICE, "sgx.intel.com/epc"),
     (NO_GRAMINE, "apt-get install gramine")],
)  # fmt: skip
def test_gramine_never_falls_back(found: Probe, fix: str) -> None:
    with pytest.raises(PlatformError, match="backend gramine is not usable") as info:
        select_backend("gramine", probe=lambda: found)
    assert fix in str(info.value)


@pytest.mark.parametrize("found", [NOTHING, NO_DEVICE, NO_GRAMINE])
def test_auto_picks_simulation_and_says_so(found: Probe, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="enklave.host"):
        assert select_backend("auto", probe=lambda: found) == "simulation"
    assert "backend auto: simulation" in caplog.text
    assert "NO hardware protection" in caplog.text


def test_auto_picks_gramine_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="enklave.host"):
        assert select_backend("auto", probe=lambda: BOTH) == "gramine"
    assert "backend auto: gramine" in caplog.text


def test_env_var_when_nothing_requested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENKLAVE_BACKEND", "auto")
    assert select_backend(None, probe=lambda: NOTHING) == "simulation"
    monkeypatch.setenv("ENKLAVE_BACKEND", "gramine")
    with pytest.raises(PlatformError):
        select_backend(None, probe=lambda: NOTHING)
    monkeypatch.delenv("ENKLAVE_BACKEND")
    assert select_backend(None, probe=_never) == "simulation"


def test_gramine_command(tmp_path: Path) -> None:
    (tmp_path / "enklave.manifest.sgx").write_text("")
    cmd, cwd = gramine_command(tmp_path, launcher="/opt/gramine/bin/gramine-sgx")
    assert cmd == ["/opt/gramine/bin/gramine-sgx", "enklave"] and cwd == tmp_path


def test_gramine_command_needs_a_signed_manifest(tmp_path: Path) -> None:
    with pytest.raises(PlatformError, match="--sign"):
        gramine_command(tmp_path, launcher="/usr/bin/gramine-sgx")


def test_gramine_command_needs_gramine_sgx(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PlatformError, match="apt-get install gramine"):
        gramine_command(tmp_path)


def _no_sgx_here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Make the real probe find nothing, whatever machine runs the test."""
    monkeypatch.setattr("enklave.backends.gramine._select.SGX_DEVICES", (tmp_path / "no-sgx",))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))


def test_open_gramine_here_raises_instead_of_simulating(
    hello_bundle: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_sgx_here(monkeypatch, tmp_path)
    with pytest.raises(PlatformError, match="backend gramine is not usable"):
        Enclave.open(hello_bundle, backend="gramine", sim_home=tmp_path)


def test_open_unknown_backend(hello_bundle: Path) -> None:
    with pytest.raises(ConfigError, match="unknown backend"):
        Enclave.open(hello_bundle, backend="sgx")


def test_open_auto_without_sgx_runs_simulated(
    hello_bundle: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    _no_sgx_here(monkeypatch, tmp_path)
    with caplog.at_level(logging.INFO, logger="enklave.host"):
        enc = Enclave.open(
            hello_bundle, backend="auto", sim_home=tmp_path,
            ocalls={"log": lambda line: None, "store_put": lambda k, b: None,
                    "store_get": lambda k: None},
        )  # fmt: skip
    with enc:
        assert enc.identity.simulated
    assert "backend auto: simulation" in caplog.text
