"""PcsClient against real HTTP servers on loopback: the simulated PCCS, and hostile ones.

The simulated PCCS stands in for Intel's PCS (which needs the internet and real SGX
platforms); it speaks the same v4 API. Hostile servers are tiny ``http.server`` handlers
that answer whatever a test scripts.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from enklave.backends.simulation import SimPlatform
from enklave.backends.simulation._pccs import PccsServer, create_pccs_server
from enklave.cli._collateral import cmd_collateral_fetch
from enklave.collateral import Collateral, CollateralCache, PcsClient
from enklave.errors import CollateralError
from enklave.models.quote import parse_quote

MEASUREMENT = bytes(range(32))


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pccs-sim")


@pytest.fixture(scope="module")
def platform(sim_root: Path) -> SimPlatform:
    return SimPlatform.init(sim_root)


def _start(server: http.server.HTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return thread


@pytest.fixture(params=["hex"])
def pccs(request: pytest.FixtureRequest, platform: SimPlatform) -> Iterator[PccsServer]:
    server = create_pccs_server(platform, root_crl_encoding=request.param)
    _start(server)
    yield server
    server.shutdown()
    server.server_close()


def _quote(platform: SimPlatform, version: int = 3) -> bytes:
    return platform.quote(
        bytes(64),
        mrenclave=MEASUREMENT,
        mrsigner=MEASUREMENT,
        isv_prod_id=1,
        isv_svn=1,
        debug=False,
        version=version,
    )


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


# -- fetching and verifying --------------------------------------------------------------


@pytest.mark.parametrize("pccs", ["hex", "der", "pem"], indirect=True)
def test_fetched_collateral_equals_the_platforms(pccs: PccsServer, platform: SimPlatform):
    client = PcsClient(pccs.url)
    fetched = client.collateral(platform.fmspc, ca="processor")
    assert fetched == platform.collateral()
    assert pccs.request_count == 4


@pytest.mark.parametrize("version", [3, 4])
def test_collateral_for_quote_verifies_it_up_to_date(
    pccs: PccsServer, platform: SimPlatform, version: int
):
    quote = _quote(platform, version)
    collateral = PcsClient(pccs.url).collateral_for(parse_quote(quote))
    assert Collateral.from_json(collateral.to_json()) == collateral
    try:
        from enklave.verify import DcapVerifier
    except ImportError:
        pytest.skip("enklave.verify.DcapVerifier is not available yet")
    result = DcapVerifier(platform.root_certificate_pem, simulated=True).verify(
        quote, collateral, now=int(time.time())
    )
    assert result.status == "UpToDate"
    assert result.fmspc == platform.fmspc


def test_third_party_pccs_client_gets_the_same_collateral(pccs: PccsServer, platform: SimPlatform):
    """dcap-qvl's own PCCS client (Rust, reqwest) accepts the simulated PCCS."""
    dcap_qvl = pytest.importorskip("dcap_qvl")
    import asyncio

    quote = _quote(platform)

    async def fetch():
        return await dcap_qvl.get_collateral(pccs.url, quote)

    theirs = Collateral.from_json(asyncio.run(fetch()).to_json())
    assert theirs.pck_certificate_chain is not None  # dcap-qvl copies the quote's PCK chain
    theirs = dataclasses.replace(theirs, pck_certificate_chain=None)
    assert theirs == PcsClient(pccs.url).collateral_for(parse_quote(quote))


def test_fmspc_as_lowercase_hex_and_base_url_with_api_suffix(
    pccs: PccsServer, platform: SimPlatform
):
    client = PcsClient(pccs.url + "/sgx/certification/v4/")
    assert client.base_url == pccs.url
    assert client.collateral(platform.fmspc.hex().lower()) == platform.collateral()


# -- the cache ---------------------------------------------------------------------------


def test_second_fetch_is_a_cache_hit(pccs: PccsServer, platform: SimPlatform, tmp_path: Path):
    client = PcsClient(pccs.url, cache=CollateralCache(tmp_path / "cache"))
    first = client.collateral(platform.fmspc)
    assert pccs.request_count == 4
    again = PcsClient(pccs.url, cache=CollateralCache(tmp_path / "cache")).collateral(
        platform.fmspc
    )
    assert again == first
    assert pccs.request_count == 4


def test_refetches_after_next_update(pccs: PccsServer, platform: SimPlatform, tmp_path: Path):
    clock = Clock()
    client = PcsClient(pccs.url, cache=CollateralCache(tmp_path), clock=clock)
    collateral = client.collateral(platform.fmspc)
    tcb_next = json.loads(collateral.tcb_info)["nextUpdate"]
    deadline = time.mktime(time.strptime(tcb_next, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    clock.now = deadline - 1
    client.collateral(platform.fmspc)
    tcb_fetches = [p for p in pccs.paths if "/tcb?" in p]
    assert len(tcb_fetches) == 1
    clock.now = deadline
    client.collateral(platform.fmspc)
    tcb_fetches = [p for p in pccs.paths if "/tcb?" in p]
    assert len(tcb_fetches) == 2


def test_corrupted_cache_files_are_ignored_and_refetched(
    pccs: PccsServer, platform: SimPlatform, tmp_path: Path
):
    cache = CollateralCache(tmp_path)
    PcsClient(pccs.url, cache=cache).collateral(platform.fmspc)
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 4
    for index, path in enumerate(files):
        path.write_bytes([b"", b"{not json", b"\xff\xfe\x00", b'{"format":1}'][index])
    assert PcsClient(pccs.url, cache=cache).collateral(platform.fmspc) == platform.collateral()
    assert pccs.request_count == 8
    PcsClient(pccs.url, cache=cache).collateral(platform.fmspc)
    assert pccs.request_count == 8


def test_cache_poisoned_with_another_fmspc_is_refetched(
    pccs: PccsServer, platform: SimPlatform, tmp_path: Path
):
    cache = CollateralCache(tmp_path)
    client = PcsClient(pccs.url, cache=cache)
    client.collateral(platform.fmspc)
    url = f"{pccs.url}/sgx/certification/v4/tcb?fmspc={platform.fmspc.hex().upper()}"
    doc = json.loads(cache.path_for(url).read_text())
    import base64

    body = base64.b64decode(doc["body"]).replace(
        platform.fmspc.hex().upper().encode(), b"AABBCCDDEEFF"
    )
    doc["body"] = base64.b64encode(body).decode()
    cache.path_for(url).write_text(json.dumps(doc))
    assert client.collateral(platform.fmspc) == platform.collateral()
    assert pccs.request_count == 5


# -- server answers and client errors ----------------------------------------------------


def test_unknown_fmspc_is_404_and_the_error_names_it(pccs: PccsServer):
    with pytest.raises(CollateralError, match="FMSPC 00112233AABB.*404"):
        PcsClient(pccs.url).collateral("00112233aabb")


def test_tdx_collateral_for_td_quote_verifies_it(pccs: PccsServer, platform: SimPlatform):
    quote = platform.td_quote(bytes(64), mr_td=bytes(48), debug=False)
    parsed = parse_quote(quote)
    assert parsed.tee == "tdx"
    collateral = PcsClient(pccs.url).collateral_for(parsed)
    assert collateral == platform.collateral(tee="tdx")
    assert '"id":"TDX"' in collateral.tcb_info and '"id":"TD_QE"' in collateral.qe_identity
    try:
        from enklave.verify import DcapVerifier
    except ImportError:
        pytest.skip("enklave.verify.DcapVerifier is not available yet")
    result = DcapVerifier(platform.root_certificate_pem, simulated=True).verify(
        quote, collateral, now=int(time.time())
    )
    assert result.status == "UpToDate" and result.tee == "tdx"


@pytest.mark.parametrize(
    "target,status",
    [
        ("/sgx/certification/v4/tcb", 400),
        ("/sgx/certification/v4/tcb?fmspc=zz", 400),
        ("/sgx/certification/v4/tcb?fmspc=00&fmspc=11", 400),
        ("/sgx/certification/v4/pckcrl?ca=nobody&encoding=der", 400),
        ("/sgx/certification/v4/pckcrl?ca=processor&encoding=base64", 400),
        ("/sgx/certification/v4/pckcrl?ca=platform&encoding=der", 404),
        ("/sgx/certification/v3/qe/identity", 404),
        ("/nothing", 404),
    ],
)
def test_server_rejects_bad_requests_with_json_errors(pccs: PccsServer, target: str, status: int):
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(pccs.url + target, timeout=5)
    assert info.value.code == status
    assert set(json.loads(info.value.read())) == {"error", "message"}


def test_server_sends_url_encoded_issuer_chains(pccs: PccsServer, platform: SimPlatform):
    fmspc = platform.fmspc.hex().upper()
    with urllib.request.urlopen(f"{pccs.url}/sgx/certification/v4/tcb?fmspc={fmspc}") as r:
        raw = r.headers["TCB-Info-Issuer-Chain"]
        body = r.read()
    assert "\n" not in raw and " " not in raw and "-----BEGIN%20CERTIFICATE-----%0A" in raw
    assert urllib.parse.unquote(raw) == platform.collateral().tcb_info_issuer_chain
    assert body.startswith(b'{"tcbInfo":{')


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "http://10.0.0.1:8081",
        "ftp://127.0.0.1",
        "file:///etc",
        "https://",
        "http://[::1",
    ],
)
def test_rejects_plain_http_to_non_loopback_and_other_schemes(url: str):
    with pytest.raises(CollateralError, match="https|not a valid URL"):
        PcsClient(url)
    with pytest.raises(CollateralError):
        PcsClient("https://pccs.example", root_ca_crl_url=url)


@pytest.mark.parametrize("url", ["http://localhost:8081", "http://127.0.0.2", "http://[::1]:1"])
def test_accepts_plain_http_to_loopback(url: str):
    assert PcsClient(url).base_url == url


def test_connection_refused_names_the_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(CollateralError, match=f"127.0.0.1:{port}/sgx/certification/v4/tcb"):
        PcsClient(f"http://127.0.0.1:{port}", timeout=2).collateral("00906ED50000")


# -- hostile servers ---------------------------------------------------------------------


class Scripted(http.server.ThreadingHTTPServer):
    """Answers every GET with ``self.answer(path) -> (status, headers, body)``."""

    daemon_threads = True

    def __init__(self, answer) -> None:
        self.answer = answer
        self.seen: list[dict[str, str]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(inner) -> None:
                self.seen.append(dict(inner.headers.items()))
                status, headers, body = self.answer(inner.path)
                inner.send_response(status)
                for name, value in headers.items():
                    inner.send_header(name, value)
                inner.send_header("Content-Length", str(len(body)))
                inner.end_headers()
                inner.wfile.write(body)

            def log_message(inner, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    servers: list[Scripted] = []

    def make(answer) -> Scripted:
        server = Scripted(answer)
        _start(server)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


def _proxy_to(platform: SimPlatform, **overrides):
    """Serve the platform's responses, replacing bodies/headers per endpoint name."""
    responses = platform.pcs_responses()

    def answer(path: str):
        for name in ("tcb", "qe/identity", "pckcrl", "rootcacrl"):
            if f"/certification/v4/{name}" in path:
                key = {"tcb": "tcb_info", "qe/identity": "qe_identity"}.get(name, name)
                key = {"pckcrl": "pck_crl", "rootcacrl": "root_ca_crl"}.get(key, key)
                response = getattr(responses, key)
                status, headers, body = 200, dict(response.headers), response.body
                return overrides.get(key, lambda s, h, b: (s, h, b))(status, headers, body)
        return 404, {}, b"{}"

    return answer


def test_rejects_redirect_downgrade_to_plain_http(scripted, platform: SimPlatform):
    server = scripted(lambda path: (302, {"Location": "http://example.com" + path}, b""))
    with pytest.raises(CollateralError, match="plain http"):
        PcsClient(server.url).collateral(platform.fmspc)


def test_rejects_tcb_info_for_another_fmspc(scripted, platform: SimPlatform):
    server = scripted(_proxy_to(platform))
    with pytest.raises(CollateralError, match="served TCB Info for FMSPC"):
        PcsClient(server.url).tcb_info("AABBCCDDEEFF")


@pytest.mark.parametrize(
    "key,change,message",
    [
        ("tcb_info", lambda s, h, b: (s, h, b"<html>maintenance</html>"), "did not send JSON"),
        ("tcb_info", lambda s, h, b: (s, h, b'{"tcbInfo":{}}'), "signature"),
        ("tcb_info", lambda s, h, b: (s, {}, b), "TCB-Info-Issuer-Chain"),
        ("qe_identity", lambda s, h, b: (s, h, b.replace(b'"id":"QE"', b'"id":"QVE"')), "QVE"),
        ("pck_crl", lambda s, h, b: (s, h, b"\x30\x03\x02\x01\x00"), "CRL"),
        ("pck_crl", lambda s, h, b: (s, {"SGX-PCK-CRL-Issuer-Chain": "junk"}, b), "PEM"),
        ("root_ca_crl", lambda s, h, b: (s, h, b"zz" * 10), "DER, PEM or hex"),
        ("root_ca_crl", lambda s, h, b: (503, h, b"busy"), "503"),
    ],
)
def test_rejects_malformed_responses(scripted, platform: SimPlatform, key, change, message):
    server = scripted(_proxy_to(platform, **{key: change}))
    with pytest.raises(CollateralError, match=message):
        PcsClient(server.url).collateral(platform.fmspc)


def test_error_text_from_server_is_sanitized(scripted, platform: SimPlatform):
    hostile = lambda s, h, b: (500, {}, b"\x1b[2J\x1b]0;owned\x07 oops")  # noqa: E731
    server = scripted(_proxy_to(platform, tcb_info=hostile))
    with pytest.raises(CollateralError, match="HTTP 500") as info:
        PcsClient(server.url).collateral(platform.fmspc)
    assert "\x1b" not in str(info.value) and "\x07" not in str(info.value)


def test_unwritable_cache_does_not_fail_the_fetch(
    pccs: PccsServer, platform: SimPlatform, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    client = PcsClient(pccs.url, cache=CollateralCache(blocker / "cache"))
    assert client.collateral(platform.fmspc) == platform.collateral()
    assert "cannot write collateral cache" in caplog.text


def test_api_key_is_sent_only_when_given_and_never_logged_or_cached(
    scripted, platform: SimPlatform, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    server = scripted(_proxy_to(platform))
    caplog.set_level(logging.DEBUG, logger="enklave.collateral")
    PcsClient(server.url).collateral(platform.fmspc)
    assert all("Ocp-Apim-Subscription-Key" not in h for h in server.seen)
    secret = "k3y-do-not-leak-0123456789"
    PcsClient(server.url, api_key=secret, cache=CollateralCache(tmp_path)).collateral(
        platform.fmspc
    )
    assert all(h.get("Ocp-Apim-Subscription-Key") == secret for h in server.seen[4:])
    assert secret not in caplog.text
    assert all(secret.encode() not in p.read_bytes() for p in tmp_path.iterdir())


def test_root_crl_from_explicit_url(pccs: PccsServer, platform: SimPlatform):
    client = PcsClient(
        "https://pcs.invalid", root_ca_crl_url=pccs.url + "/sgx/certification/v4/rootcacrl"
    )
    assert client.root_ca_crl().der == platform.collateral().root_ca_crl


# -- the CLI -----------------------------------------------------------------------------


def test_cmd_collateral_fetch_writes_collateral_json(
    pccs: PccsServer, platform: SimPlatform, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    import argparse

    out = tmp_path / "f.json"
    args = argparse.Namespace(
        fmspc=platform.fmspc.hex(),
        tdx=False,
        out=out,
        pccs=pccs.url,
        ca="processor",
        cache=tmp_path / "cache",
    )
    assert cmd_collateral_fetch(args) == 0
    assert Collateral.from_json(out.read_text()) == platform.collateral()
    assert platform.fmspc.hex().upper() in capsys.readouterr().out


def _registered(*argv: str) -> bool:
    from enklave.cli import _parser

    try:
        _parser().parse_args(list(argv))
    except SystemExit:
        return False
    return True


def _env(sim_root: Path, tmp_path: Path) -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    path = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    return dict(
        os.environ, ENKLAVE_SIM_HOME=str(sim_root), XDG_CACHE_HOME=str(tmp_path), PYTHONPATH=path
    )


def test_cli_collateral_fetch_subprocess(
    pccs: PccsServer, platform: SimPlatform, sim_root: Path, tmp_path: Path
):
    fmspc = platform.fmspc.hex().upper()
    argv = ["collateral", "fetch", "--fmspc", fmspc, "--pccs", pccs.url, "--out", "f.json"]
    if not _registered(*argv):
        pytest.skip("`enklave collateral fetch` is not registered in enklave.cli yet")
    proc = subprocess.run(
        [sys.executable, "-m", "enklave.cli", *argv],
        cwd=tmp_path,
        env=_env(sim_root, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert Collateral.from_json((tmp_path / "f.json").read_text()) == platform.collateral()
    assert fmspc in proc.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "enklave.cli", *argv[:3], "00112233AABB", *argv[4:]],
        cwd=tmp_path,
        env=_env(sim_root, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "00112233AABB" in bad.stderr


def test_cli_sim_pccs_serves_until_interrupted(
    platform: SimPlatform, sim_root: Path, tmp_path: Path
):
    if not _registered("sim", "pccs", "--port", "0"):
        pytest.skip("`enklave sim pccs` is not registered in enklave.cli yet")
    proc = subprocess.Popen(
        [sys.executable, "-m", "enklave.cli", "sim", "pccs", "--port", "0"],
        env=_env(sim_root, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as from a terminal
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving simulated PCCS (NOT Intel) on http://127.0.0.1:")
        url = line.split(" on ", 1)[1].strip()
        assert PcsClient(url).collateral(platform.fmspc) == platform.collateral()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
