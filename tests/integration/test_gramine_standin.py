"""The Gramine-SGX backend against a STAND-IN for /dev/attestation (no SGX machine here).

The directory built by tests/_gramine_standin.py stands in for Gramine's
/dev/attestation pseudo-filesystem: plain files named ``attestation_type``,
``user_report_data``, ``quote``, ``my_target_info``, ``target_info``, ``report`` and
``keys/_sgx_mrenclave``, ``keys/_sgx_mrsigner``. It is not Gramine and proves nothing
about SGX hardware.

* Real-quote variant: ``quote`` holds a REAL quote recorded on an SGX machine (from
  ../shared/testvectors/dcap; skipped when that folder is absent). Its report data is
  what that machine's enclave wrote ("Hello, world!"), so it cannot match what we write:
  the test checks that our client detects the mismatch and raises, and that parsing, the
  ``attestation_type`` check and the seal-key reading work.
* Simulated variant: ``quote`` and ``report`` are simulated
  (enklave.backends.simulation.SimPlatform) for the report data the enclave will write,
  to exercise the happy path: an enclave runtime started with ``--backend gramine``
  (through a stand-in ``gramine-sgx`` launcher that runs the manifest's fixed argv),
  taking its identity from the report, quoting through the stand-in, and sealing with
  the stand-in's seal keys. The runtime finds the stand-in through the private test
  hook ENKLAVE_GRAMINE_ATTESTATION_ROOT, which it refuses where /dev/attestation exists.

Real hardware: ``test_hello_on_real_sgx`` is marked ``sgx`` and skipped without an SGX
device and Gramine.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import sys
import time
from pathlib import Path

import pytest

from _gramine_standin import KEY_PRODUCT, make_standin, real_quote, sim_quote, sim_report
from conftest import HELLO_DIR, build
from enklave.backends.gramine import (
    GramineAttestation,
    probe,
    sign_manifest,
    write_gramine_manifest,
)
from enklave.backends.gramine._attestation import DEV_ATTESTATION
from enklave.backends.simulation import SimPlatform
from enklave.errors import AttestationError, EnclaveCallError, EnclaveLoadError, QuoteFormatError
from enklave.host import Enclave
from enklave.models.evidence import report_data_for
from enklave.models.quote import parse_quote
from enklave.package import read_bundle
from enklave.verify import DcapVerifier

APP = """
from typing import Annotated, Literal
from enklave.enclave import EnclaveApp, MaxLen, evidence, identity, seal, unseal

app = EnclaveApp("gapp")
Data = Annotated[bytes, MaxLen(16384)]


@app.ecall
def who() -> Annotated[str, MaxLen(200)]:
    me = identity()
    return f"{me.mrenclave.hex()} {me.product_id} {me.security_version} {me.simulated}"


@app.ecall
def attest(claims: Data) -> Data:
    ev = evidence(claims)
    assert ev.simulated is False
    return ev.quote


@app.ecall
def seal_it(policy: Annotated[str, MaxLen(8)], data: Data) -> Data:
    return seal(data, policy=policy, aad=b"ctx")


@app.ecall
def unseal_it(blob: Data) -> Data:
    return unseal(blob, aad=b"ctx")
"""
CLAIMS = b"gapp/nonce:0123456789"
HW_MRENCLAVE = bytes.fromhex("5e" * 32)  # what the stand-in's "hardware" reports


def test_real_quote_is_parsed_and_its_report_data_mismatch_detected(tmp_path: Path) -> None:
    quote = real_quote("sgx")
    if quote is None:
        pytest.skip("../shared/testvectors/dcap is absent (real recorded quotes)")
    root = make_standin(tmp_path, quote=quote)
    device = GramineAttestation(root)  # attestation_type "dcap" accepted
    parsed = parse_quote(quote)
    assert parsed.report_data.startswith(b"Hello, world!")
    with pytest.raises(AttestationError) as info:
        device.quote(report_data_for(CLAIMS))
    assert info.value.code == "report_data_mismatch"
    assert (root / "user_report_data").read_bytes() == report_data_for(CLAIMS)
    assert device.seal_key("product") == KEY_PRODUCT


def test_real_tdx_quote_is_refused(tmp_path: Path) -> None:
    quote = real_quote("tdx")
    if quote is None:
        pytest.skip("../shared/testvectors/dcap is absent (real recorded quotes)")
    with pytest.raises(QuoteFormatError, match="TDX"):
        GramineAttestation(make_standin(tmp_path, quote=quote)).quote(bytes(64))


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> SimPlatform:
    return SimPlatform.init(tmp_path_factory.mktemp("sim"))


def _launcher(bin_dir: Path, root: Path) -> None:
    """A stand-in ``gramine-sgx``: runs the manifest's fixed argv with only the variables
    Gramine would pass (the manifest's passthrough ENKLAVE_CHANNEL) plus the test hook."""
    bin_dir.mkdir()
    tool = bin_dir / "gramine-sgx"
    tool.write_text(
        f"#!{sys.executable}\n"
        "import os, sys, tomllib\n"
        "m = tomllib.load(open(sys.argv[1] + '.manifest.sgx', 'rb'))\n"
        "argv = m['loader']['argv']\n"
        "env = {'ENKLAVE_CHANNEL': os.environ['ENKLAVE_CHANNEL'],\n"
        f"       'ENKLAVE_GRAMINE_ATTESTATION_ROOT': {str(root)!r}}}\n"
        "os.execve(argv[0], argv, env)\n"
    )
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)


def _gramine_app(
    tmp_path: Path, key, platform: SimPlatform, *, svn: int = 1
) -> tuple[Path, Path]:
    """Build the app, its manifest dir (a copy stands in for the signed manifest, and a
    SIGSTRUCT with the stand-in's MRENCLAVE for enklave.sig), and the stand-in root."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "enklave.toml").write_text(
        'name = "gapp"\nentry = "enclave.py"\nproduct_id = 5\nsecurity_version = 1\n'
        "max_threads = 2\n"
    )
    (tmp_path / "app" / "enclave.py").write_text(APP)
    bundle = build(tmp_path / "app", key, tmp_path / "gapp.bundle")
    sig = read_bundle(bundle).sigstruct
    ident = {"mrenclave": HW_MRENCLAVE, "mrsigner": sig.mrsigner, "isv_prod_id": 5,
             "isv_svn": svn, "debug": False}  # fmt: skip
    make_standin(
        tmp_path / "attestation",
        quote=sim_quote(platform, report_data_for(CLAIMS), **ident),
        report=sim_report(platform, bytes(64), **ident),
    )
    gdir = write_gramine_manifest(bundle, tmp_path / "gramine").parent
    shutil.copy(gdir / "enklave.manifest", gdir / "enklave.manifest.sgx")
    (gdir / "enklave.sig").write_bytes(
        dataclasses.replace(sig, enclave_hash=HW_MRENCLAVE).to_bytes()
    )
    return bundle, gdir


@pytest.fixture
def gramine_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    if DEV_ATTESTATION.exists():
        pytest.skip("a real /dev/attestation exists: the stand-in test hook is refused here")
    root = tmp_path / "attestation"
    _launcher(tmp_path / "bin", root)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    return root


def _open(bundle: Path, gdir: Path, sim_home: Path) -> Enclave:
    # Enclave.open(backend="gramine") would first demand /dev/sgx_enclave; the handle is
    # built directly so that the launch path (gramine-sgx, loopback channel) runs.
    return Enclave(bundle, ocalls={}, sim_home=sim_home, load_timeout=30, gramine_dir=gdir)


def test_runtime_on_gramine_backend(tmp_path, key, platform, gramine_env) -> None:
    bundle, gdir = _gramine_app(tmp_path, key, platform)
    with _open(bundle, gdir, tmp_path / "unused-sim") as enc:
        assert enc.identity.simulated is False and enc.identity.mrenclave == HW_MRENCLAVE
        assert enc.call.who() == f"{HW_MRENCLAVE.hex()} 5 1 False"
        quote = enc.call.attest(CLAIMS)
        assert (gramine_env / "user_report_data").read_bytes() == report_data_for(CLAIMS)
        now = int(time.time())
        result = DcapVerifier(platform.root_certificate_pem, simulated=True).verify(
            quote, platform.collateral(now=now), now=now
        )
        assert result.quote.body.mrenclave == HW_MRENCLAVE
        assert result.quote.report_data == report_data_for(CLAIMS)
        with pytest.raises(EnclaveCallError) as info:
            enc.call.attest(b"gapp/other claims")
        assert info.value.code == "report_data_mismatch"
        for policy in ("unique", "product"):
            blob = enc.call.seal_it(policy, b"secret " + policy.encode())
            assert enc.call.unseal_it(blob) == b"secret " + policy.encode()
        blob = enc.call.seal_it("unique", b"bound to the hardware key")
        (gramine_env / "keys" / "_sgx_mrenclave").write_bytes(bytes(16))  # another CPU/enclave
        with pytest.raises(EnclaveCallError) as info:
            enc.call.unseal_it(blob)
        assert info.value.code == "seal"
        # the product key is separate from the unique one
        assert enc.call.unseal_it(enc.call.seal_it("product", b"p")) == b"p"


def test_host_refuses_another_mrenclave(tmp_path, key, platform, gramine_env) -> None:
    bundle, gdir = _gramine_app(tmp_path, key, platform)
    sig = read_bundle(bundle).sigstruct
    (gdir / "enklave.sig").write_bytes(sig.to_bytes())  # the simulation MRENCLAVE
    with pytest.raises(Exception, match="another MRENCLAVE"):
        _open(bundle, gdir, tmp_path / "sim")


def test_report_disagreeing_with_the_bundle_refuses_to_load(
    tmp_path, key, platform, gramine_env
) -> None:
    bundle, gdir = _gramine_app(tmp_path, key, platform, svn=2)
    with pytest.raises(EnclaveLoadError, match="ISVPRODID/ISVSVN/DEBUG"):
        _open(bundle, gdir, tmp_path / "sim")


def test_missing_attestation_root_refuses_to_load(tmp_path, key, platform, gramine_env) -> None:
    bundle, gdir = _gramine_app(tmp_path, key, platform)
    shutil.rmtree(gramine_env)
    with pytest.raises(EnclaveLoadError, match="attestation_type"):
        _open(bundle, gdir, tmp_path / "sim")


def _has_sgx() -> bool:
    found = probe()
    return found.sgx_device is not None and found.gramine_sgx is not None


@pytest.mark.sgx
@pytest.mark.skipif(not _has_sgx(), reason="needs an SGX device and Gramine (gramine-sgx)")
def test_hello_on_real_sgx(tmp_path: Path, key) -> None:  # pragma: no cover - hardware
    from cryptography.hazmat.primitives import serialization

    pem = tmp_path / "key.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))  # fmt: skip
    bundle = build(HELLO_DIR, key, tmp_path / "hello.bundle")
    sign_manifest(write_gramine_manifest(bundle), pem)
    store: dict[str, bytes] = {}
    ocalls = {"log": print, "store_put": store.__setitem__, "store_get": store.get}
    with Enclave.open(bundle, backend="gramine", ocalls=ocalls, load_timeout=300) as enc:
        assert enc.identity.simulated is False
        assert "Hello" in enc.call.greet("SGX")

