"""A directory standing in for Gramine's /dev/attestation pseudo-filesystem (tests only).

Gramine serves these names from inside the LibOS; here they are plain files: the
enclave writes ``user_report_data``/``target_info`` (the bytes stay in the files, so a
test can read what was written) and reads ``quote``/``report``, whose contents are
fixed by the test. So a quote only "matches" the report data it was made for.
"""

from __future__ import annotations

import json
from pathlib import Path

from enklave.backends.simulation import SimPlatform
from enklave.models.quote import parse_quote

REPO = Path(__file__).resolve().parent.parent
DCAP_VECTORS = REPO.parent / "shared" / "testvectors" / "dcap"
KEY_UNIQUE = bytes(range(16))
KEY_PRODUCT = bytes(range(16, 32))


def make_standin(
    root: Path,
    *,
    quote: bytes,
    report: bytes | None = None,
    attestation_type: str = "dcap",
    key_unique: bytes = KEY_UNIQUE,
    key_product: bytes = KEY_PRODUCT,
) -> Path:
    """Write the stand-in tree under ``root`` and return ``root``."""
    (root / "keys").mkdir(parents=True, exist_ok=True)
    (root / "attestation_type").write_text(attestation_type)
    (root / "user_report_data").write_bytes(b"")
    (root / "target_info").write_bytes(b"")
    (root / "my_target_info").write_bytes(bytes(512))
    (root / "quote").write_bytes(quote)
    if report is not None:
        (root / "report").write_bytes(report)
    (root / "keys" / "_sgx_mrenclave").write_bytes(key_unique)
    (root / "keys" / "_sgx_mrsigner").write_bytes(key_product)
    return root


def sim_quote(platform: SimPlatform, report_data: bytes, **ident: object) -> bytes:
    """A simulated SGX quote (v3) over ``report_data`` for ``ident`` (mrenclave, ...)."""
    return platform.quote(report_data, **ident)  # type: ignore[arg-type]


def sim_report(platform: SimPlatform, report_data: bytes, **ident: object) -> bytes:
    """A 432-byte SGX REPORT (body from a simulated quote, zero KEYID and MAC)."""
    body = parse_quote(sim_quote(platform, report_data, **ident)).body
    return body.raw + bytes(48)  # type: ignore[union-attr]


def real_quote(tee: str = "sgx") -> bytes | None:
    """A real quote recorded on an SGX (or TDX) machine, from ../shared/testvectors/dcap."""
    cases = DCAP_VECTORS / "cases.json"
    if not cases.is_file():
        return None
    for case in json.loads(cases.read_text())["cases"]:
        if case["id"].startswith(f"dcapqvl-{tee}-"):
            return (DCAP_VECTORS / case["quote"]).read_bytes()
    return None
