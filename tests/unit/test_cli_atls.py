"""`enklave atls inspect|verify|get`, run as a subprocess: the shapes scripts depend on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _atls_testkit import (
    MRENCLAVE,
    OTHER_MRENCLAVE,
    CountingTLSServer,
    TestCert,
    attested_cert,
    ca_cert,
    plain_cert,
)
from enklave.backends.simulation import SimPlatform


def run(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("ENKLAVE_SIM_HOME", None)
    if home is not None:
        env["ENKLAVE_SIM_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "enklave", "atls", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim")
    SimPlatform.init(path)
    return path


@pytest.fixture(scope="module")
def cert(home: Path, tmp_path_factory: pytest.TempPathFactory) -> TestCert:
    return attested_cert(SimPlatform.load(home), tmp_path_factory.mktemp("certs"))


def policy_file(tmp_path: Path, mrenclave: bytes = MRENCLAVE) -> str:
    path = tmp_path / "policy.toml"
    path.write_text(f'mrenclave = "{mrenclave.hex()}"\nallow_simulated = true\n')
    return str(path)


# ----------------------------------------------------------------- inspect


def test_inspect_json_shows_format_binding_quote_and_claims(cert: TestCert) -> None:
    r = run("inspect", str(cert.cert_file), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["key_type"] == "ec-p256" and out["self_signature"] == "ok"
    assert out["fingerprint"] and "2.23.133.5.4.9" in [e["oid"] for e in out["extensions"]]
    ev = out["evidence"][0]
    assert ev["format"] == "tcg-dice" and ev["binding"]["ok"] is True
    assert ev["binding"]["rule"] == "dice-claims"
    assert ev["quote"]["mrenclave"] == MRENCLAVE.hex() and ev["quote"]["debug"] is False
    assert set(ev["claims"]) == {"pubkey-hash"} and out["error"] is None


def test_inspect_human_summary(cert: TestCert) -> None:
    r = run("inspect", str(cert.cert_file))
    assert r.returncode == 0, r.stderr
    assert "evidence.0.format: tcg-dice" in r.stdout
    assert f"evidence.0.quote.mrenclave: {MRENCLAVE.hex()}" in r.stdout
    assert "evidence.0.binding.ok: True" in r.stdout and "not checked here" in r.stdout
    assert "extensions: 2.23.133.5.4.9 (" in r.stdout


def test_inspect_ordinary_certificate_says_it_has_no_evidence(tmp_path: Path) -> None:
    r = run("inspect", str(plain_cert(tmp_path).cert_file))
    assert r.returncode == 0, r.stderr
    assert "evidence: none" in r.stdout


def test_inspect_garbage_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_bytes(b"\x30\x03garbage")
    r = run("inspect", str(bad))
    assert r.returncode == 1 and r.stderr.startswith("enklave atls: error:")
    assert "Traceback" not in r.stderr


# ----------------------------------------------------------------- verify


def test_verify_json_accepts_matching_enclave(cert: TestCert, home: Path, tmp_path: Path) -> None:
    r = run("verify", str(cert.cert_file), "--policy", policy_file(tmp_path), "--sim", str(home),
            "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["verdict"] == "accepted" and out["format"] == "tcg-dice"
    assert out["binding"] == "dice-claims" and "pubkey-hash" in out["claims"]
    assert out["enclave"]["mrenclave"] == MRENCLAVE.hex() and out["enclave"]["simulated"] is True


def test_verify_sim_home_from_environment(cert: TestCert, home: Path, tmp_path: Path) -> None:
    r = run("verify", str(cert.cert_file), "--policy", policy_file(tmp_path), "--sim", home=home)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "verdict: accepted" in r.stdout


def test_verify_rejects_other_enclave_with_error_json(
    cert: TestCert, home: Path, tmp_path: Path
) -> None:
    policy = policy_file(tmp_path, OTHER_MRENCLAVE)
    r = run("verify", str(cert.cert_file), "--policy", policy, "--sim", str(home), "--json")
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["verdict"] == "rejected" and out["error"] and out["message"]


def test_verify_rejects_simulated_evidence_under_intel_only_trust(
    cert: TestCert, home: Path, tmp_path: Path
) -> None:
    collateral = tmp_path / "collateral.json"
    collateral.write_text(SimPlatform.load(home).collateral().to_json())
    r = run("verify", str(cert.cert_file), "--policy", policy_file(tmp_path), "--collateral",
            str(collateral), "--json")
    assert r.returncode == 1, r.stdout
    assert json.loads(r.stdout)["verdict"] == "rejected"


def test_verify_rejects_missing_extension(home: Path, tmp_path: Path) -> None:
    r = run("verify", str(plain_cert(tmp_path).cert_file), "--policy", policy_file(tmp_path),
            "--sim", str(home), "--json")
    assert r.returncode == 1
    assert json.loads(r.stdout)["error"] == "missing_extension"


def test_verify_rejects_expired_certificate(cert: TestCert, home: Path, tmp_path: Path) -> None:
    later = str(int(cert.cert_file.stat().st_mtime) + 30 * 86400)
    r = run("verify", str(cert.cert_file), "--policy", policy_file(tmp_path), "--sim", str(home),
            "--now", later, "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["error"] == "certificate_expired"


def test_verify_without_collateral_names_the_fix(cert: TestCert, tmp_path: Path) -> None:
    r = run("verify", str(cert.cert_file), "--policy", policy_file(tmp_path))
    assert r.returncode == 1
    assert "--collateral FILE, --pccs URL, or --sim" in r.stderr and "Traceback" not in r.stderr


def test_verify_format_allow_list(cert: TestCert, home: Path, tmp_path: Path) -> None:
    base = ("verify", str(cert.cert_file), "--policy", policy_file(tmp_path), "--sim", str(home),
            "--json")
    r = run(*base, "--format", "raw-quote", "--format", "tcg-dice")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["format"] == "tcg-dice"
    r = run(*base, "--format", "gramine-legacy")
    assert r.returncode == 1 and json.loads(r.stdout)["error"] == "format_not_allowed"
    r = run(*base, "--format", "no-such-format")
    out = json.loads(r.stdout)
    assert r.returncode == 1 and out["error"] == "bad_config" and "tcg-dice" in out["message"]


@pytest.fixture(scope="module")
def ca_signed(home: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[TestCert, TestCert]:
    """An attested certificate signed by a CA (as dstack's KMS signs its app certificates)."""
    tmp = tmp_path_factory.mktemp("ca")
    ca = ca_cert(tmp)
    return attested_cert(SimPlatform.load(home), tmp, name="app", ca=ca), ca


def test_verify_ca_signed_cert_with_issuer(
    ca_signed: tuple[TestCert, TestCert], home: Path, tmp_path: Path
) -> None:
    app, ca = ca_signed
    base = ("verify", str(app.cert_file), "--policy", policy_file(tmp_path), "--sim", str(home),
            "--json")
    r = run(*base)  # not self-signed
    assert r.returncode == 1 and json.loads(r.stdout)["error"] == "bad_signature"
    other = ca_cert(tmp_path, name="other", cn="Other CA")
    r = run(*base, "--issuer", str(other.cert_file), "--issuer", str(ca.cert_file))
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["enclave"]["mrenclave"] == MRENCLAVE.hex()
    r = run(*base, "--issuer", str(other.cert_file))
    assert r.returncode == 1 and json.loads(r.stdout)["error"] == "unknown_issuer"
    lookalike = ca_cert(tmp_path, name="lookalike")  # same name, another key
    r = run(*base, "--issuer", str(lookalike.cert_file))
    assert r.returncode == 1 and json.loads(r.stdout)["error"] == "bad_signature"
    r = run(*base, "--issuer", str(tmp_path / "missing.pem"))
    assert r.returncode == 1 and "cannot read" in json.loads(r.stdout)["message"]


# ----------------------------------------------------------------- get


def test_get_prints_the_body_and_the_peer(cert: TestCert, home: Path, tmp_path: Path) -> None:
    with CountingTLSServer(cert.server_context()) as srv:
        r = run("get", f"https://127.0.0.1:{srv.port}/hello", "--policy", policy_file(tmp_path),
                "--sim", str(home), "--show-peer")
        assert r.returncode == 0, r.stderr
        assert r.stdout == "hello from the enclave"
        peer = json.loads(r.stderr)
        assert peer["verdict"] == "accepted" and peer["enclave"]["mrenclave"] == MRENCLAVE.hex()

        out = tmp_path / "body.txt"
        r = run("get", f"https://127.0.0.1:{srv.port}/", "--policy", policy_file(tmp_path),
                "--sim", str(home), "-o", str(out))
        assert r.returncode == 0 and r.stdout == "" and out.read_text() == "hello from the enclave"


def test_get_refuses_other_enclave_before_sending_a_byte(
    cert: TestCert, home: Path, tmp_path: Path
) -> None:
    with CountingTLSServer(cert.server_context()) as srv:
        r = run("get", f"https://127.0.0.1:{srv.port}/", "--policy",
                policy_file(tmp_path, OTHER_MRENCLAVE), "--sim", str(home))
        srv.join_handlers()
        assert r.returncode == 1 and r.stdout == ""
        assert r.stderr.startswith("enklave atls: error:") and "Traceback" not in r.stderr
        assert srv.connections == 1 and srv.bytes_received == 0


def test_get_format_and_issuer(
    ca_signed: tuple[TestCert, TestCert], home: Path, tmp_path: Path
) -> None:
    app, ca = ca_signed
    url_args = ("--policy", policy_file(tmp_path), "--sim", str(home))
    with CountingTLSServer(app.server_context()) as srv:
        url = f"https://127.0.0.1:{srv.port}/"
        r = run("get", url, *url_args, "--issuer", str(ca.cert_file), "--format", "tcg-dice")
        assert r.returncode == 0, r.stderr
        assert r.stdout == "hello from the enclave"
        r = run("get", url, *url_args, "--issuer", str(ca.cert_file), "--format", "dstack")
        assert r.returncode == 1 and "does not accept" in r.stderr and r.stdout == ""
        r = run("get", url, *url_args)  # no --issuer: the CA-signed certificate is refused
        assert r.returncode == 1 and "signature does not verify" in r.stderr
        srv.join_handlers()
        assert srv.requests == 1


def test_get_refuses_plain_http(home: Path, tmp_path: Path) -> None:
    r = run("get", "http://127.0.0.1:1/", "--policy", policy_file(tmp_path), "--sim", str(home))
    assert r.returncode == 1 and "https://" in r.stderr


def test_get_unreachable_server_names_the_fix(home: Path, tmp_path: Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    r = run("get", f"https://127.0.0.1:{port}/", "--policy", policy_file(tmp_path),
            "--sim", str(home))
    assert r.returncode == 1 and "server is running" in r.stderr


RATLS = Path(__file__).resolve().parents[2].parent / "shared" / "testvectors" / "ratls"
COSMIAN = RATLS / "cosmian_enclave" / "evidence.json"


@pytest.mark.skipif(not COSMIAN.is_file(), reason=f"{COSMIAN} absent (shared test vectors)")
def test_verify_real_cosmian_bundle_with_its_own_collateral(tmp_path: Path) -> None:
    policy = tmp_path / "cosmian.toml"
    policy.write_text(
        'mrenclave = "0e4ec55e690b06a574af59dfd51baa3866ac4c8d37896effc0f1fad17b31cf3b"\n'
        'accepted_tcb_statuses = ["UpToDate", "SWHardeningNeeded", "OutOfDate"]\n'
    )
    # The bundle's PCK CRL expired before its QE identity was issued: no instant has all
    # of it fresh, so expiry is reported rather than enforced.
    args = ("verify", str(COSMIAN), "--policy", str(policy), "--now", "1687651200", "--json")
    r = run(*args, "--expiry", "report")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["verdict"] == "accepted" and out["format"] == "raw-quote"
    assert out["binding"] == "rawkey-sha256" and out["enclave"]["status"] == "OutOfDate"
    assert out["enclave"]["simulated"] is False and out["enclave"]["collateral_expired"]
    r = run(*args)
    assert r.returncode == 1 and json.loads(r.stdout)["error"] == "collateral_expired"
