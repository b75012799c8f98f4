"""The attestation CLI, run as a subprocess: the shapes scripts depend on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from enklave.backends.simulation import SimPlatform
from enklave.models.evidence import Evidence, report_data_for

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "testvectors" / "dcap"
needs_vectors = pytest.mark.skipif(not VECTORS.is_dir(), reason=f"{VECTORS} absent")
SGX = VECTORS / "dcap-qvl" / "sample"


def run(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if home is not None:
        env["ENKLAVE_SIM_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "enklave", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@needs_vectors
def test_quote_verify_json_on_a_real_sgx_quote():
    r = run(
        "quote",
        "verify",
        str(SGX / "sgx_quote"),
        "--collateral",
        str(SGX / "sgx_quote_collateral.json"),
        "--now",
        "1752919277",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "ConfigurationAndSWHardeningNeeded"
    assert out["advisory_ids"] == ["INTEL-SA-00289", "INTEL-SA-00615"]
    assert out["tee"] == "sgx" and out["debug"] is False
    assert len(out["mrenclave"]) == 64 and len(out["mrsigner"]) == 64


@needs_vectors
def test_quote_verify_json_on_a_real_tdx_quote():
    r = run(
        "quote",
        "verify",
        str(SGX / "tdx_quote"),
        "--collateral",
        str(SGX / "tdx_quote_collateral.json"),
        "--now",
        "1752919234",
        "--json",
    )
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["status"] == "UpToDate" and out["tee"] == "tdx"
    assert len(out["mrtd"]) == 96


@needs_vectors
def test_quote_verify_failure_is_exit_1_with_error_json():
    r = run(
        "quote",
        "verify",
        str(SGX / "sgx_quote"),
        "--collateral",
        str(SGX / "sgx_quote_collateral.json"),
        "--now",
        "1900000000",
        "--json",
    )
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["error"] == "collateral_expired" and "fresh collateral" in out["message"]
    r = run(
        "quote",
        "verify",
        str(SGX / "sgx_quote"),
        "--collateral",
        str(SGX / "tdx_quote_collateral.json"),
        "--now",
        "1752919277",
        "--json",
    )
    assert r.returncode == 1 and json.loads(r.stdout)["error"] in (
        "invalid_pck_crl",
        "tcb_info_mismatch",
        "qe_identity_mismatch",
    )


@needs_vectors
def test_quote_inspect_binary_and_hex():
    r = run("quote", "inspect", str(SGX / "sgx_quote"))
    assert r.returncode == 0
    assert "certification.pck_extension.fmspc: 00a067110000" in r.stdout
    hexq = VECTORS / "automata-dcap-attestation" / "samples" / "quotev3.hex"
    r = run("quote", "inspect", str(hexq), "--json")
    assert json.loads(r.stdout)["header"]["version"] == 3


def test_quote_inspect_garbage_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x03\x00garbage")
    r = run("quote", "inspect", str(bad))
    assert r.returncode == 1 and r.stderr.startswith("enklave quote: error:")
    assert "Traceback" not in r.stderr


def test_sim_init_info_and_verify_evidence_under_a_policy(tmp_path):
    home = tmp_path / "sim"
    r = run("sim", "init", "--tcb", "SWHardeningNeeded", home=home)
    assert r.returncode == 0, r.stderr
    info = json.loads(run("sim", "info", "--json", home=home).stdout)
    assert info["simulated"] is True and "NOT Intel" in json.dumps(info)

    platform = SimPlatform.load(home)
    claims = b"nonce=1234"
    mre, mrs = bytes(range(32)), bytes(range(1, 33))
    quote = platform.quote(
        report_data_for(claims), mrenclave=mre, mrsigner=mrs, isv_prod_id=4, isv_svn=3, debug=False
    )
    ev = tmp_path / "ev.cbor"
    ev.write_bytes(Evidence(quote=quote, claims=claims, simulated=True).to_bytes())
    policy = tmp_path / "p.toml"
    policy.write_text(
        f'mrenclave = "{mre.hex()}"\nmrsigner = "{mrs.hex()}"\nproduct_id = 4\n'
        "min_svn = 3\nallow_simulated = true\n"
    )

    r = run("verify", str(ev), "--policy", str(policy), "--sim", "--json", home=home)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["verdict"] == "accepted" and out["simulated"] is True
    assert out["status"] == "SWHardeningNeeded" and out["advisory_ids"] == ["INTEL-SA-00615"]

    # Without naming the simulation root, only Intel's is trusted.
    r = run(
        "verify",
        str(ev),
        "--policy",
        str(policy),
        "--collateral",
        str(_coll(platform, tmp_path)),
        "--json",
        home=home,
    )
    assert r.returncode == 1 and json.loads(r.stdout)["error"] == "untrusted_root"

    policy.write_text(f'mrenclave = "{mre.hex()}"\n')  # default: no simulation
    r = run("verify", str(ev), "--policy", str(policy), "--sim", "--json", home=home)
    out = json.loads(r.stdout)
    assert r.returncode == 1 and out["verdict"] == "rejected" and out["check"] == "simulated"


def _coll(platform: SimPlatform, tmp_path: Path) -> Path:
    path = tmp_path / "coll.json"
    path.write_text(platform.collateral().to_json())
    return path


def test_sim_info_without_platform_says_run_init(tmp_path):
    r = run("sim", "info", home=tmp_path / "none")
    assert r.returncode == 1 and "enklave sim init" in r.stderr
