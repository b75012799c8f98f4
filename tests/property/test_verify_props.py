"""DcapVerifier under hostile input: only EnklaveError subclasses, and no mutation of a signed
byte is ever accepted.

Inputs go to a *warm* verifier (one per trust anchor) with the right collateral at the right
``now``: real quotes from ``testvectors/dcap/cases.json`` (Intel root) and simulated SGX v3,
SGX v4 and TDX v4 quotes (simulation root). The bulk is seeded random loops (fast); hypothesis
covers structure (TCB Info / QE Identity / collateral / PCS-body parsers, and TCB Info or QE
Identity that are malformed but validly *signed*, which reach the checks after the signature).

Bytes not covered by any signature (worked out here; the oracle below accepts nothing else):

* quote: bytes after the declared signature data; the PEM formatting of certification data
  type 5 (ASCII whitespace, trailing NULs, and the unused low bits of the base64 character
  before ``=``, which Python's base64 decoder ignores) as long as the same DER comes out; a
  certificate's encoding outside its TBS (the signature BIT STRING's unused-bits byte); the
  certification data type (5 -> 4: a "PCK leaf" type that carries the whole chain); the
  signatures themselves (any other valid signature over the same bytes, e.g. ``s -> n - s``).
* collateral: issuer-chain PEM text outside the DER (whitespace, text around BEGIN/END blocks,
  PEM headers) and the chain's copy of the root (a chain without it is completed with the
  trust anchor); CRL encoding outside the TBS; other valid TCB Info / QE Identity signatures
  over the same text; in collateral JSON also hex case, string escapes and whitespace.

Oracle: an accepted mutation must decode to the same signed content as the original (signed
region, attestation key, QE report and auth data, TBS bytes and signature values of every
certificate but the root copy, CRL TBS, exact TCB Info / QE Identity text), every signature
must verify with the oracle's own ECDSA check, and status, advisories, header, body and PCK
values must be the original's. A splice may also equal its donor, itself a genuine quote.

Counts (fixed seeds): seeded loops 32,000 arbitrary buffers + 40,000 quote mutations + 18,000
collateral field mutations + 6,000 collateral JSON mutations + 4,000 signed malformed documents
= 100,000; hypothesis 1,500 + 800 + 500 + 400 + 1,200 + 300 = 4,700. Run with ``-s`` for the
per-loop counts, accepted categories and timings.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enklave.backends.simulation import SimPlatform
from enklave.backends.simulation._pki import sign_raw
from enklave.collateral import Collateral, split_signed_json
from enklave.errors import CollateralError, EnklaveError
from enklave.models.quote import Quote, build_quote, parse_quote
from enklave.models.tcb import EnclaveIdentity, TcbInfo
from enklave.verify import DcapResult, DcapVerifier

REPO = Path(__file__).resolve().parents[2]
DCAP = REPO.parent / "shared" / "testvectors" / "dcap"
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
COUNTS = {"arbitrary": 32_000, "quote": 40_000, "collateral": 18_000, "json": 6_000,
          "signed": 4_000}  # fmt: skip
SETTINGS = settings(deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
WS = b" \t\n\r\x0b\x0c"  # ASCII whitespace; WS[1:] never occurs inside a BEGIN/END label
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


@dataclass(frozen=True)
class Base:
    """One quote with its collateral, time, warm verifier and the verifier's answer."""

    name: str
    quote: bytes
    parsed: Quote
    collateral: Collateral
    now: int
    verifier: DcapVerifier
    anchor_der: bytes
    result: DcapResult | None  # None: the original itself is rejected


@dataclass(frozen=True)
class Sim:
    platform: SimPlatform
    other: SimPlatform  # a second platform: foreign chains, CRLs, signatures


def _verify(base: Base, quote: bytes, collateral: Collateral | None = None) -> DcapResult | None:
    """The verifier's answer; None for an EnklaveError (anything else propagates)."""
    try:
        return base.verifier.verify(quote, collateral or base.collateral, now=base.now)
    except EnklaveError:
        return None


def _identity(r: DcapResult) -> tuple[object, ...]:
    return (r.status, r.advisory_ids, r.quote.header, r.quote.body, r.pck, r.platform_status,
            r.qe_status, r.tdx_module_status, r.tcb_date, r.qe_tcb_date)  # fmt: skip


def _make_bases(sim: Sim) -> list[Base]:
    root = sim.platform.root_certificate.public_bytes(serialization.Encoding.DER)
    verifier = DcapVerifier(root, simulated=True)
    out = []
    rng = random.Random(7)
    makers: list[tuple[str, str, Callable[[], bytes]]] = [
        ("sim-sgx-v3", "sgx", lambda: _sim_quote(sim.platform, rng, 3)),
        ("sim-sgx-v4", "sgx", lambda: _sim_quote(sim.platform, rng, 4)),
        ("sim-sgx-v3-debug", "sgx", lambda: _sim_quote(sim.platform, rng, 3, debug=True)),
        ("sim-tdx-v4", "tdx", lambda: sim.platform.td_quote(rng.randbytes(64),
                                                             mr_td=rng.randbytes(48), debug=False)),
    ]  # fmt: skip
    for name, tee, make in makers:
        quote = make()
        coll = sim.platform.collateral(tee=tee, now=NOW)
        out.append(_base(name, quote, coll, NOW, verifier, root))
    if DCAP.is_dir():
        intel = (DCAP / "intel_sgx_root_ca.pem").read_bytes()
        intel_der = x509.load_pem_x509_certificate(intel).public_bytes(serialization.Encoding.DER)
        real = DcapVerifier(intel)
        for case in json.loads((DCAP / "cases.json").read_text())["cases"]:
            quote = _load_quote(DCAP / case["quote"])
            coll = Collateral.from_json((DCAP / case["collateral"]).read_text())
            out.append(_base(case["id"], quote, coll, case["now"], real, intel_der))
    return out


def _sim_quote(platform: SimPlatform, rng: random.Random, version: int, debug: bool = False
               ) -> bytes:  # fmt: skip
    return platform.quote(rng.randbytes(64), mrenclave=rng.randbytes(32),
                          mrsigner=rng.randbytes(32), isv_prod_id=rng.randrange(1 << 16),
                          isv_svn=rng.randrange(1 << 16), debug=debug, version=version)  # fmt: skip


def _base(name: str, quote: bytes, coll: Collateral, now: int, verifier: DcapVerifier,
          anchor: bytes) -> Base:  # fmt: skip
    try:
        result: DcapResult | None = verifier.verify(quote, coll, now=now)
    except EnklaveError:
        result = None
    return Base(name, quote, parse_quote(quote), coll, now, verifier, anchor, result)


def _load_quote(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix in (".hex", ".txt"):
        text = data.decode().strip()
        return bytes.fromhex(text.removeprefix("0x"))
    return data


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Sim:
    platform = SimPlatform.init(tmp_path_factory.mktemp("sim"), tcb="SWHardeningNeeded", now=NOW)
    return Sim(platform, SimPlatform.init(tmp_path_factory.mktemp("other"), now=NOW))


@pytest.fixture(scope="module")
def bases(sim: Sim) -> list[Base]:
    made = _make_bases(sim)
    assert sum(b.result is not None for b in made) >= 4  # the sim bases are all accepted
    return made


# -- the acceptance oracle -----------------------------------------------------------------


def _valid(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    """A raw r||s ECDSA-P256-SHA256 signature over ``data`` verifies (the oracle's own check)."""
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    try:
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def _raw_key(raw: bytes) -> ec.EllipticCurvePublicKey:
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + raw)


def _cert_content(der: bytes) -> tuple[bytes, bytes]:
    """What a certificate's signature covers, plus the signature value (not its encoding)."""
    cert = x509.load_der_x509_certificate(der)
    return cert.tbs_certificate_bytes, cert.signature


def _chain_change(old: list[bytes], new: list[bytes], anchor: bytes) -> str | None:
    """Label a change of chain ``old`` to ``new``; None when a non-root certificate changed.

    The chain's copy of the root never matters (the trust anchor is used), and a certificate
    is the same when its TBS bytes and signature value are (its outer encoding is unsigned).
    """
    if old == new:
        return "pem_format"
    wanted = {_cert_content(d) for d in old if d != anchor}
    got = [_cert_content(d) for d in new]
    if not wanted <= set(got):
        return None
    if {d for d in old if d != anchor} <= set(new):
        return "root_copy"
    return "cert_encoding"


def _quote_change(b: Quote, m: Quote, anchor: bytes) -> str | None:
    """Which unsigned parts of quote ``b`` differ in ``m``; None if a signed part differs."""
    signed = ("signed_region", "attestation_key", "qe_auth_data")
    if any(getattr(m, f) != getattr(b, f) for f in signed) or m.qe_report.raw != b.qe_report.raw:
        return None
    try:
        old, new = b.certification.pck_chain_der(), m.certification.pck_chain_der()
        chain = _chain_change(old, new, anchor)
        pck = x509.load_der_x509_certificate(old[0]).public_key()
    except (EnklaveError, ValueError):
        return None
    assert isinstance(pck, ec.EllipticCurvePublicKey)
    labels = {"trailing": m.raw[len(m.raw) - m.trailing :] != b.raw[len(b.raw) - b.trailing :],
              "cert_type_5_to_4": m.certification.cert_type != b.certification.cert_type,
              "other_valid_signature": (m.signature, m.qe_report_signature)
              != (b.signature, b.qe_report_signature)}  # fmt: skip
    if chain is None or not _valid(_raw_key(m.attestation_key), m.signature, m.signed_region):
        return None
    if not _valid(pck, m.qe_report_signature, m.qe_report.raw):
        return None
    if m.certification.data != b.certification.data:
        labels[chain] = True
    return "+".join(sorted(k for k, v in labels.items() if v)) or "identical"


def _chain_ders(text: str) -> list[bytes]:
    certs = x509.load_pem_x509_certificates(text.rstrip("\0").encode("ascii"))
    return [c.public_bytes(serialization.Encoding.DER) for c in certs]


def _crl_content(der: bytes) -> tuple[bytes, bytes]:
    crl = x509.load_der_x509_crl(der)
    return crl.tbs_certlist_bytes, crl.signature


_CHAINS = ("pck_crl_issuer_chain", "tcb_info_issuer_chain", "qe_identity_issuer_chain")
_SIGNED = {"tcb_info_signature": ("tcb_info", "tcb_info_issuer_chain"),
           "qe_identity_signature": ("qe_identity", "qe_identity_issuer_chain")}  # fmt: skip


def _field_change(name: str, b: Collateral, m: Collateral, anchor: bytes) -> str | None:
    mine, orig = getattr(m, name), getattr(b, name)
    if name in _CHAINS:
        return _chain_change(_chain_ders(orig), _chain_ders(mine), anchor)
    if name in ("root_ca_crl", "pck_crl"):
        return "crl_encoding" if _crl_content(mine) == _crl_content(orig) else None
    if name in _SIGNED:
        text, chain = _SIGNED[name]
        key = x509.load_pem_x509_certificates(getattr(b, chain).encode())[0].public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        ok = getattr(m, text) == getattr(b, text) and _valid(key, mine, getattr(m, text).encode())
        return "other_valid_signature" if ok else None
    return None


def _collateral_change(b: Collateral, m: Collateral, anchor: bytes) -> str | None:
    """Which unsigned parts of collateral ``b`` differ in ``m``; None if a signed part does."""
    labels = []
    for f in dataclasses.fields(Collateral):
        if getattr(m, f.name) != getattr(b, f.name):
            try:
                label = _field_change(f.name, b, m, anchor)
            except ValueError:
                label = None
            if label is None:
                return None
            labels.append(label)
    return "+".join(sorted(set(labels))) or "same_values"


# -- quote mutations ----------------------------------------------------------------------


def _regions(q: Quote) -> dict[str, tuple[int, int]]:
    """Byte ranges of every part of the raw quote."""
    s = len(q.signed_region)
    r = {"header": (0, 48), "body": (48, s), "sig_len": (s, s + 4)}
    pos = s + 4
    for name, size in (("signature", 64), ("att_key", 64)):
        r[name], pos = (pos, pos + size), pos + size
    if q.header.version != 3:
        r["outer"], pos = (pos, pos + 6), pos + 6
    for name, size in (("qe_report", 384), ("qe_sig", 64), ("auth", 2 + len(q.qe_auth_data)),
                       ("cert_head", 6), ("cert_data", len(q.certification.data))):  # fmt: skip
        r[name], pos = (pos, pos + size), pos + size
    assert pos == len(q.raw) - q.trailing
    r["trailing"] = (pos, len(q.raw))
    return r


_REGION_WEIGHTS = {"header": 6, "body": 14, "sig_len": 2, "signature": 6, "att_key": 6,
                   "outer": 2, "qe_report": 12, "qe_sig": 5, "auth": 4, "cert_head": 3,
                   "cert_data": 36, "trailing": 4}  # fmt: skip


def _pick(rng: random.Random, regions: dict[str, tuple[int, int]]) -> int:
    names = [n for n in regions if regions[n][1] > regions[n][0]]
    name = rng.choices(names, [_REGION_WEIGHTS[n] for n in names])[0]
    start, end = regions[name]
    return rng.randrange(start, end)


def _length_fields(q: Quote, r: dict[str, tuple[int, int]]) -> list[tuple[int, int]]:
    fields = [(r["sig_len"][0], 4), (r["auth"][0], 2), (r["cert_head"][0], 2),
              (r["cert_head"][0] + 2, 4)]  # fmt: skip
    if "outer" in r:
        fields += [(r["outer"][0], 2), (r["outer"][0] + 2, 4)]
    return fields


def _rebuild(q: Quote, donor: Quote, parts: set[str]) -> bytes:
    """``q`` with the named parts taken from ``donor`` (same body type), re-serialized."""

    def pick(name: str) -> Any:
        return getattr(donor if name in parts else q, name)

    src = donor.certification if "certification" in parts else q.certification
    head = donor.header if "header" in parts else q.header
    sig = pick("signature")
    return build_quote(
        version=q.header.version, tee_type=q.header.tee_type, body=pick("body"),
        attestation_key=pick("attestation_key"), sign=lambda _: sig, qe_report=pick("qe_report"),
        qe_report_signature=pick("qe_report_signature"), qe_auth_data=pick("qe_auth_data"),
        cert_type=src.cert_type, cert_data=src.data, qe_svn=head.qe_svn, pce_svn=head.pce_svn,
        user_data=head.user_data, qe_vendor_id=head.qe_vendor_id,
    )  # fmt: skip


_SPLICE = ("header", "body", "signature", "attestation_key", "qe_report", "qe_report_signature",
           "qe_auth_data", "certification")  # fmt: skip


@dataclass(frozen=True)
class Layout:
    """Precomputed positions of one base quote (regions, PEM whitespace, base64 pad chars)."""

    regions: dict[str, tuple[int, int]]
    whitespace: list[int]
    pad_chars: list[tuple[int, int]]  # (position, mask of unused low bits)


_LAYOUTS: dict[bytes, Layout] = {}


def _layout(q: Quote) -> Layout:
    if q.raw not in _LAYOUTS:
        r = _regions(q)
        start, end = r["cert_data"]
        raw = q.raw
        ws = [i for i in range(start, end) if raw[i] in WS[1:] or (raw[i] == 0 and i == end - 1)]
        pads = [(i - 1, 0b1111 if raw[i + 1] == ord("=") else 0b11)
                for i in range(start + 1, end - 1)
                if raw[i] == ord("=") and raw[i - 1] != ord("=")]  # fmt: skip
        _LAYOUTS[q.raw] = Layout(r, ws, pads)
    return _LAYOUTS[q.raw]


def _pem_op(rng: random.Random, buf: bytearray, layout: Layout) -> str:
    """Same-length edits of the PEM formatting (whitespace, trailing NUL, base64 pad bits)."""
    if layout.pad_chars and rng.random() < 0.3:
        i, unused = rng.choice(layout.pad_chars)
        buf[i] = ord(B64[B64.index(chr(buf[i])) ^ rng.randrange(1, unused + 1)])
        return "b64_pad_bits"
    if not layout.whitespace:
        return "noop"
    i = rng.choice(layout.whitespace)
    end = layout.regions["cert_data"][1]
    buf[i] = rng.choice(WS + (b"\0" if i == end - 1 else b""))
    return "pem_whitespace"


def _mutate_quote(
    rng: random.Random, base: Base, donors: list[Base]
) -> tuple[str, bytes, Base | None]:
    """One mutation of ``base``: (operation, bytes, the donor quote of a splice or None)."""
    q, raw = base.parsed, base.quote
    layout = _layout(q)
    r = layout.regions
    buf = bytearray(raw)
    op = rng.choices(["flip", "set", "truncate", "insert", "delete", "append", "length",
                      "splice", "pem", "cert_type", "malleate"],
                     [30, 14, 4, 6, 6, 5, 8, 10, 3, 2, 2])[0]  # fmt: skip
    if op == "flip":
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            buf[_pick(rng, r)] ^= 1 << rng.randrange(8)
    elif op == "set":
        buf[_pick(rng, r)] = rng.randrange(256)
    elif op == "truncate":
        del buf[rng.randrange(len(buf)) :]
    elif op == "insert":
        pos = _pick(rng, r)
        buf[pos:pos] = rng.randbytes(rng.randint(1, 8))
    elif op == "delete":
        pos = _pick(rng, r)
        del buf[pos : pos + rng.randint(1, 8)]
    elif op == "append":
        buf += rng.choice((bytes(rng.randint(1, 64)), rng.randbytes(rng.randint(1, 64))))
    elif op == "length":
        pos, size = rng.choice(_length_fields(q, r))
        value = int.from_bytes(buf[pos : pos + size], "little")
        value = rng.choice((value + rng.randint(1, 8), value - rng.randint(1, 8),
                            rng.randrange(1 << 8 * size), 0))  # fmt: skip
        buf[pos : pos + size] = (value % (1 << 8 * size)).to_bytes(size, "little")
    elif op == "splice":
        donor = rng.choice([d for d in donors if d.parsed.body_type == q.body_type])
        parts = set(rng.sample(_SPLICE, rng.randint(1, 3)))
        return op, _rebuild(q, donor.parsed, parts), donor
    elif op == "pem":
        op = _pem_op(rng, buf, layout)
    elif op == "cert_type":
        pos = r["cert_head"][0]
        buf[pos : pos + 2] = rng.choice((4, 4, 1, 2, 3, 6)).to_bytes(2, "little")
    else:
        field = rng.choice(("signature", "qe_sig"))
        start = r[field][0]
        s = int.from_bytes(buf[start + 32 : start + 64], "big")
        buf[start + 32 : start + 64] = (P256_N - s).to_bytes(32, "big")
    return op, bytes(buf), None


@dataclass
class Tally:
    """Counts of one bulk loop; ``failures`` are oracle violations (must stay empty)."""

    inputs: int = 0
    accepted: Counter[str] = dataclasses.field(default_factory=Counter)
    ops: Counter[str] = dataclasses.field(default_factory=Counter)
    failures: list[str] = dataclasses.field(default_factory=list)

    def report(self, what: str, started: float) -> None:
        took = time.perf_counter() - started
        each = took / self.inputs * 1e6
        print(f"\n{what}: {self.inputs} inputs in {took:.1f} s ({each:.0f} us each); accepted "
              f"by category {dict(self.accepted)}; ops {dict(self.ops)}")  # fmt: skip
        assert not self.failures, self.failures[:5]


def _guard(tally: Tally, label: str, call: Callable[[], DcapResult | None]) -> DcapResult | None:
    """Run one verification; record an untyped exception as a failure."""
    tally.inputs += 1
    try:
        return call()
    except Exception as exc:  # anything but EnklaveError escaped the verifier
        tally.failures.append(f"{label}: untyped {type(exc).__name__}: {exc}")
        return None


def _check_accepted_quote(tally: Tally, base: Base, label: str, data: bytes,
                          result: DcapResult | None, donor: Base | None) -> None:  # fmt: skip
    """An accepted quote must be ``base`` (or a splice's donor, itself a genuine quote) up to
    unsigned bytes, with the same identity; unsigned edits of an accepted base must pass."""
    if result is None:
        if label in ("append", "pem_whitespace") and base.result is not None:
            tally.failures.append(f"{label}: an unsigned {label} edit was rejected ({base.name})")
        return
    mutated = parse_quote(data)
    for genuine in (base, donor):
        if genuine is None or genuine.result is None:
            continue
        change = _quote_change(genuine.parsed, mutated, genuine.anchor_der)
        if change is not None and _identity(result) == _identity(genuine.result):
            prefix = "" if genuine is base else "splice_equals_donor:"
            tally.accepted[prefix + change] += 1
            return
    tally.failures.append(f"{label}: ACCEPTED a mutation of signed bytes ({base.name}): "
                          f"{data.hex()[:64]}...")  # fmt: skip


def test_bulk_quote_mutations_are_rejected_unless_unsigned(bases: list[Base]) -> None:
    rng, tally, started = random.Random(1), Tally(), time.perf_counter()
    while tally.inputs < COUNTS["quote"]:
        base = bases[tally.inputs % len(bases)]
        op, data, donor = _mutate_quote(rng, base, bases)
        if data == base.quote:
            continue
        tally.ops[op] += 1
        result = _guard(tally, op, lambda: _verify(base, data))  # noqa: B023
        _check_accepted_quote(tally, base, op, data, result, donor)
    tally.report("quote mutations", started)
    assert {"trailing", "pem_format", "cert_type_5_to_4", "other_valid_signature"} <= set(
        tally.accepted
    )


def _arbitrary(rng: random.Random, bases: list[Base]) -> bytes:
    base = rng.choice(bases)
    kind = rng.randrange(4)
    if kind == 0:
        return rng.randbytes(rng.randrange(64))
    if kind == 1:
        return rng.randbytes(rng.randrange(8000))
    if kind == 2:  # a real header, then noise
        return base.quote[:48] + rng.randbytes(rng.randrange(6000))
    cut = len(base.parsed.signed_region) + rng.randrange(200)  # signed region, then noise
    return base.quote[:cut] + rng.randbytes(rng.randrange(5000))


def test_bulk_arbitrary_bytes_raise_only_enklave_errors(bases: list[Base]) -> None:
    rng, tally, started = random.Random(2), Tally(), time.perf_counter()
    while tally.inputs < COUNTS["arbitrary"]:
        base, data = rng.choice(bases), _arbitrary(rng, bases)
        if _guard(tally, "arbitrary", lambda: _verify(base, data)) is not None:  # noqa: B023
            tally.failures.append(f"arbitrary bytes accepted: {data.hex()[:64]}")
    tally.report("arbitrary bytes", started)


# -- collateral mutations -----------------------------------------------------------------

_TEXTS = ("tcb_info", "qe_identity")
_CRLS = ("root_ca_crl", "pck_crl")
_PEM_BLOCK = "-----END CERTIFICATE-----"


def _mutate_text(rng: random.Random, text: str) -> str:
    """A character-level edit: replace (ASCII, any code point, a lone surrogate), insert,
    delete, toggle case, truncate, or JSON whitespace after a separator."""
    pos = rng.randrange(len(text))
    op = rng.randrange(8)
    if op == 0:
        return text[:pos] + chr(rng.randrange(32, 127)) + text[pos + 1 :]
    if op == 1:
        return text[:pos] + chr(rng.choice((rng.randrange(0x110000), rng.randrange(0xD800, 0xE000)))) + text[pos + 1 :]  # fmt: skip # noqa: E501
    if op == 2:
        return text[:pos] + text[pos + rng.randint(1, 6) :]
    if op == 3:
        return text[:pos] + "".join(chr(rng.randrange(32, 127)) for _ in range(rng.randint(1, 4))) + text[pos:]  # fmt: skip # noqa: E501
    if op == 4:
        return text[:pos] + text[pos].swapcase() + text[pos + 1 :]
    if op == 5:
        return text[:pos]
    seps = [i for i in range(pos, min(len(text), pos + 400)) if text[i] in ",:"]
    i = seps[0] + 1 if seps else pos
    return text[:i] + rng.choice((" ", "\n", "\t", "\r\n")) + text[i:]


def _pem_blocks(text: str) -> list[str]:
    return [b + _PEM_BLOCK + "\n" for b in text.split(_PEM_BLOCK)[:-1]]


def _mutate_chain(rng: random.Random, text: str, foreign: str) -> str:
    """PEM-level edits of an issuer chain (plus character edits)."""
    blocks = _pem_blocks(text)
    op = rng.randrange(10)
    if op == 0:
        return text.replace("\n", rng.choice(("\r\n", " \n", "\n\n", "\t\n")))
    if op == 1:
        return rng.choice(("garbage\n", "-----\n", "\0", " ")) + text + rng.choice(("x", "\n\0"))
    if op == 2 and len(blocks) > 1:
        del blocks[rng.randrange(len(blocks))]
        return "".join(blocks)
    if op == 3:
        return "".join(blocks + [rng.choice(blocks)])
    if op == 4:
        return "".join(reversed(blocks))
    if op == 5:
        other = _pem_blocks(foreign)
        blocks[rng.randrange(len(blocks))] = rng.choice(other)
        return "".join(blocks)
    return _mutate_text(rng, text)


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    op = rng.randrange(5)
    if op == 0:
        buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    elif op == 1:
        buf[rng.randrange(len(buf))] = rng.randrange(256)
    elif op == 2:
        del buf[rng.randrange(1, len(buf)) :]
    elif op == 3:
        buf += rng.randbytes(rng.randint(1, 16))
    else:
        pos = rng.randrange(len(buf))
        buf[pos:pos] = rng.randbytes(rng.randint(1, 4))
    return bytes(buf)


def _mutate_signature(rng: random.Random, sig: bytes, other: bytes) -> bytes:
    op = rng.randrange(5)
    if op == 0:
        return sig[:32] + (P256_N - int.from_bytes(sig[32:], "big")).to_bytes(32, "big")
    if op == 1:
        return other
    if op == 2:
        return rng.choice((bytes(64), b"\xff" * 64, sig[32:] + sig[:32]))
    return _mutate_bytes(rng, sig)[:64].ljust(64, b"\0")


def _mutate_collateral(
    rng: random.Random, base: Base, foreign: Collateral, donors: list[Collateral]
) -> tuple[str, dict[str, object], bool]:
    """(field, replacement values, whether they come from genuine signed collateral)."""
    c = base.collateral
    name = rng.choice([f.name for f in dataclasses.fields(Collateral)
                       if f.name != "pck_certificate_chain"])  # fmt: skip
    if rng.random() < 0.1:  # genuine material of other collateral under the same anchor
        donor = rng.choice(donors)
        names = {name, *_SIGNED.get(name, ()), *(s for s, (t, _) in _SIGNED.items() if t == name)}
        return name, {n: getattr(donor, n) for n in names}, True
    value: object
    if name in _TEXTS:
        value = _mutate_text(rng, getattr(c, name))
    elif name in _CHAINS:
        value = _mutate_chain(rng, getattr(c, name), getattr(foreign, name))
    elif name in _CRLS:
        other = c.pck_crl if name == "root_ca_crl" else c.root_ca_crl
        value = rng.choice((other, getattr(foreign, name))) if rng.random() < 0.1 else (
            _mutate_bytes(rng, getattr(c, name)))  # fmt: skip
    else:
        other = c.qe_identity_signature if name == "tcb_info_signature" else c.tcb_info_signature
        value = _mutate_signature(rng, getattr(c, name), other)
    return name, {name: value}, False


def _check_accepted_collateral(tally: Tally, base: Base, label: str, mutated: Collateral,
                               result: DcapResult, genuine: bool) -> None:  # fmt: skip
    change = None
    if base.result is not None:
        change = _collateral_change(base.collateral, mutated, base.anchor_der)
    if change is not None and _identity(result) == _identity(base.result):  # type: ignore[arg-type]
        tally.accepted[change] += 1
    elif genuine:
        tally.accepted["genuine_signed_donor"] += 1
    else:
        tally.failures.append(f"{label}: ACCEPTED collateral with a changed signed field "
                              f"({base.name})")  # fmt: skip


def _donors(bases: list[Base], base: Base) -> list[Collateral]:
    return [b.collateral for b in bases
            if b.anchor_der == base.anchor_der and b.collateral != base.collateral]  # fmt: skip


def test_bulk_collateral_mutations_are_rejected_unless_unsigned(
    bases: list[Base], sim: Sim
) -> None:
    rng, tally, started = random.Random(3), Tally(), time.perf_counter()
    foreign = sim.other.collateral(now=NOW)
    donors = {b.name: _donors(bases, b) for b in bases}
    while tally.inputs < COUNTS["collateral"]:
        base = bases[tally.inputs % len(bases)]
        name, values, genuine = _mutate_collateral(rng, base, foreign, donors[base.name])
        if all(getattr(base.collateral, n) == v for n, v in values.items()):
            continue  # a no-op (e.g. the same root CA CRL in both collaterals)
        label = f"{name}{':genuine' if genuine else ''}"
        tally.ops[label] += 1

        _try_collateral(
            tally, base, label, genuine,
            lambda: dataclasses.replace(base.collateral, **values),  # type: ignore[arg-type]  # noqa: B023
        )
    tally.report("collateral mutations", started)


def _try_collateral(
    tally: Tally, base: Base, label: str, genuine: bool, make: Callable[[], Collateral]
) -> None:
    """Build mutated collateral with ``make`` and verify ``base``'s quote with it: malformed
    collateral must be refused with a typed error, accepted collateral is checked."""
    tally.inputs += 1
    try:
        try:
            mutated = make()
        except CollateralError:
            return
        result = _verify(base, base.quote, mutated)
    except Exception as exc:
        tally.failures.append(f"{label}: untyped {type(exc).__name__}: {exc}")
        return
    if result is not None:
        _check_accepted_collateral(tally, base, label, mutated, result, genuine)


def _mutate_json(rng: random.Random, text: str) -> tuple[str, str]:
    """Edits of the collateral JSON: hex case, string escapes, whitespace, any character."""
    op = rng.randrange(4)
    pos = rng.randrange(len(text))
    if op == 0:
        return "hex_case", text[:pos] + text[pos].swapcase() + text[pos + 1 :]
    if op == 1:
        escaped = json.dumps(text[pos])[1:-1]
        alt = "\\u%04x" % ord(text[pos]) if len(escaped) == 1 else escaped  # noqa: UP031
        return "escape", text[:pos] + alt + text[pos + 1 :]
    if op == 2:
        return "char", _mutate_text(rng, text)
    i = text.find(", ", pos)
    return "whitespace", text if i < 0 else text[:i] + ",\n  " + text[i + 2 :]


def test_bulk_collateral_json_mutations_are_rejected_unless_insignificant(
    bases: list[Base],
) -> None:
    rng, tally, started = random.Random(4), Tally(), time.perf_counter()
    texts = {b.name: b.collateral.to_json() for b in bases}
    while tally.inputs < COUNTS["json"]:
        base = bases[tally.inputs % len(bases)]
        op, text = _mutate_json(rng, texts[base.name])
        if text == texts[base.name]:
            continue
        tally.ops[op] += 1

        _try_collateral(tally, base, f"json {op}", False,
                        lambda: Collateral.from_json(text))  # noqa: B023
    tally.report("collateral JSON mutations", started)


# -- validly signed but malformed TCB Info / QE Identity (reach the checks after signatures) ---

_DATES = ("2026-01-01T00:00:00Z", "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59",
          "2026-01-01T00:00:00", "2026-01-01", "2026-13-01T00:00:00Z", "20260101T000000Z",
          "2025-12-31T23:00:00+00:00", "2027-01-01T00:00:00.999999Z")  # fmt: skip
_STRINGS = ("", "UpToDate", "Revoked", "OutOfDate", "TDRelaunchAdvised", "SGX", "TDX", "QE",
            "TD_QE", "QVE", "TDX_01", "tdx_01", "TDX_FF", "00" * 6, "00" * 8, "FF" * 48,
            "0" * 31, "zz" * 16, "\u0660" * 12, " " * 12, "INTEL-SA-00001")  # fmt: skip


def _json_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(10 if depth < 2 else 7)
    if kind == 0:
        return rng.choice((0, 1, -1, 2, 5, 13, 255, 256, 65535, 65536, 2**32, 2**63, 10**30))
    if kind == 1:
        return rng.choice((None, True, False, 1.5, -0.0, 1e308))
    if kind == 2:
        return rng.choice(_DATES)
    if kind in (3, 4):
        return rng.choice(_STRINGS)
    if kind == 5:
        return "".join(chr(rng.randrange(32, 0x3000)) for _ in range(rng.randrange(8)))
    if kind == 6:
        return rng.randbytes(rng.randrange(1, 50)).hex()
    if kind in (7, 8):
        return [_json_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(("svn", "isvsvn", "tcb", "id", "x")): _json_value(rng, depth + 1)}


def _paths(value: object, prefix: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _edit(doc: dict[str, Any], path: tuple[object, ...], action: str, new: object) -> None:
    """Replace (or delete, or duplicate) the value at ``path`` of ``doc`` in place."""
    parent: Any = doc
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if action == "delete":
        del parent[key]
    elif action == "duplicate" and isinstance(parent, list):
        parent.insert(int(key), parent[key])  # type: ignore[call-overload]
    else:
        parent[key] = new


def _mutated_doc(rng: random.Random, text: str) -> str:
    doc = json.loads(text)
    for _ in range(rng.choice((1, 1, 2, 3))):
        paths = [p for p in _paths(doc) if p]
        if rng.random() < 0.5:  # top-level fields (dates, ids, hex values) half of the time
            paths = [p for p in paths if len(p) == 1]
        path = rng.choice(paths)
        _edit(doc, path, rng.choice(("replace", "replace", "delete", "duplicate")),
              _json_value(rng))  # fmt: skip
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=rng.random() < 0.5)


def _signed_collateral(sim: Sim, base: Collateral, field: str, text: str) -> Collateral:
    key = sim.platform._state.keys["tcb-signing"]  # the simulated Intel TCB signing key
    values: dict[str, Any] = {field: text, f"{field}_signature": sign_raw(key, text.encode())}
    return dataclasses.replace(base, **values)


def test_bulk_signed_malformed_documents_raise_only_enklave_errors(
    bases: list[Base], sim: Sim
) -> None:
    rng, tally, started = random.Random(5), Tally(), time.perf_counter()
    sims = [b for b in bases if b.name in ("sim-sgx-v3", "sim-tdx-v4")]
    while tally.inputs < COUNTS["signed"]:
        base = sims[tally.inputs % len(sims)]
        field = rng.choice(_TEXTS)
        text = _mutated_doc(rng, getattr(base.collateral, field))
        tally.ops[field] += 1
        coll = _signed_collateral(sim, base.collateral, field, text)
        result = _guard(tally, f"signed {field} {text[:300]}",
                        lambda: _verify(base, base.quote, coll))  # noqa: B023  # fmt: skip
        if result is not None:
            tally.accepted["signed_variant"] += 1
    tally.report("validly signed malformed TCB Info / QE Identity", started)


# -- hypothesis: the collateral parsers -----------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=12,
)  # fmt: skip
TEXTISH = st.text() | st.binary().map(lambda b: b.decode("latin-1")) | JSON.map(json.dumps)


def _parse(parse: Callable[[Any], Any], value: object) -> Any:
    """``parse(value)``, None for a CollateralError; anything else fails the test."""
    try:
        return parse(value)
    except CollateralError:
        return None


def _check_tcb_info(info: TcbInfo | None) -> None:
    if info is None:
        return
    assert info.id in ("SGX", "TDX") and info.version in (2, 3)
    assert (len(info.fmspc), len(info.pce_id)) == (6, 2)
    assert info.issue_date.utcoffset() is not None and info.levels
    for level in info.levels:
        assert len(level.sgx_components) == 16 and all(0 <= c <= 255 for c in level.sgx_components)
        assert 0 <= level.pcesvn <= 0xFFFF
        assert (level.tdx_components is None) == (info.id == "SGX")
        assert level.tdx_components is None or len(level.tdx_components) == 16
    if info.tdx_module is not None:
        m = info.tdx_module
        assert (len(m.mrsigner), len(m.attributes), len(m.attributes_mask)) == (48, 8, 8)


def _check_identity(ident: EnclaveIdentity | None) -> None:
    if ident is None:
        return
    assert ident.id in ("QE", "TD_QE", "QVE") and ident.version == 2
    sizes = (len(ident.miscselect), len(ident.miscselect_mask), len(ident.attributes),
             len(ident.attributes_mask), len(ident.mrsigner))  # fmt: skip
    assert sizes == (4, 4, 16, 16, 32) and 0 <= ident.isvprodid <= 0xFFFF and ident.levels


def _doc_texts(bases: list[Base], field: str) -> list[str]:
    return sorted({getattr(b.collateral, field) for b in bases})


@settings(SETTINGS, max_examples=1500)
@given(TEXTISH | st.binary())
def test_tcb_info_and_qe_identity_from_arbitrary_text_raise_only_collateral_error(
    text: str | bytes,
) -> None:
    _check_tcb_info(_parse(TcbInfo.from_json, text))
    _check_identity(_parse(EnclaveIdentity.from_json, text))


@settings(SETTINGS, max_examples=800)
@given(st.data())
def test_structurally_edited_documents_raise_only_collateral_error(
    bases: list[Base], data: st.DataObject
) -> None:
    field = data.draw(st.sampled_from(_TEXTS))
    doc = json.loads(data.draw(st.sampled_from(_doc_texts(bases, field))))
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        action = data.draw(st.sampled_from(("replace", "delete", "duplicate")))
        _edit(doc, path, action, data.draw(JSON | st.sampled_from(_DATES + _STRINGS)))
    text = json.dumps(doc, separators=(",", ":"))
    if field == "tcb_info":
        _check_tcb_info(_parse(TcbInfo.from_json, text))
    else:
        _check_identity(_parse(EnclaveIdentity.from_json, text))


_COLLATERAL_KEYS = [f.name for f in dataclasses.fields(Collateral)]


@settings(SETTINGS, max_examples=500)
@given(TEXTISH | st.dictionaries(st.sampled_from(_COLLATERAL_KEYS), JSON, max_size=10)
       .map(json.dumps))  # fmt: skip
def test_collateral_from_arbitrary_json_raises_only_collateral_error(text: str) -> None:
    coll = _parse(Collateral.from_json, text)
    if coll is not None:
        assert Collateral.from_json(coll.to_json()) == coll


@settings(SETTINGS, max_examples=400)
@given(st.data())
def test_collateral_with_one_field_replaced_raises_only_collateral_error(
    bases: list[Base], data: st.DataObject
) -> None:
    doc = json.loads(data.draw(st.sampled_from(bases)).collateral.to_json())
    key = data.draw(st.sampled_from(_COLLATERAL_KEYS))
    doc[key] = data.draw(
        JSON | st.text() | st.sampled_from(["%2D%2D", "00" * 64, "30", "-----BEGIN"])
    )
    _parse(Collateral.from_json, json.dumps(doc))


_SIGNATURE = st.text(alphabet="0123456789abcdefABCDEF", min_size=126, max_size=130)


@st.composite
def _pcs_bodies(draw: st.DrawFn) -> str:
    """PCS-body-like text: members in any order, any whitespace, some duplicated or odd."""
    ws = st.sampled_from(["", " ", "\n", "\t", " \r\n "])
    names = draw(st.lists(st.sampled_from(["tcbInfo", "signature", "enclaveIdentity", "x"]),
                          max_size=4))  # fmt: skip
    members = []
    for name in names:
        value = draw(st.one_of(JSON.map(json.dumps), _SIGNATURE.map(json.dumps),
                               st.just('{"id":"SGX"}'), st.text(max_size=5)))  # fmt: skip
        members.append(f"{draw(ws)}{json.dumps(name)}{draw(ws)}:{draw(ws)}{value}{draw(ws)}")
    return f"{draw(ws)}{{{','.join(members)}}}{draw(ws)}{draw(st.sampled_from(['', '}', 'x']))}"


@settings(SETTINGS, max_examples=1200)
@given(
    st.one_of(TEXTISH, st.binary(), _pcs_bodies()), st.sampled_from(["tcbInfo", "enclaveIdentity"])
)
def test_split_signed_json_raises_only_collateral_error(text: str | bytes, key: str) -> None:
    parts = _parse(lambda t: split_signed_json(t, key), text)
    if parts is not None:
        inner, signature = parts
        source = text if isinstance(text, str) else text.decode("utf-8")
        assert inner.startswith("{") and inner in source and len(signature) == 64


@settings(SETTINGS, max_examples=300)
@given(st.data())
def test_signed_structurally_edited_documents_raise_only_enklave_errors(
    bases: list[Base], sim: Sim, data: st.DataObject
) -> None:
    base = data.draw(st.sampled_from([b for b in bases if b.name in ("sim-sgx-v3",
                                                                      "sim-tdx-v4")]))  # fmt: skip
    field = data.draw(st.sampled_from(_TEXTS))
    doc = json.loads(getattr(base.collateral, field))
    paths = [p for p in _paths(doc) if p]
    _edit(doc, data.draw(st.sampled_from(paths)), "replace",
          data.draw(JSON | st.sampled_from(_DATES + _STRINGS)))  # fmt: skip
    coll = _signed_collateral(sim, base.collateral, field, json.dumps(doc, separators=(",", ":")))
    _verify(base, base.quote, coll)


# -- regressions (bugs this file found) ------------------------------------------------------


def test_lone_surrogate_in_collateral_text_is_a_collateral_error(bases: list[Base]) -> None:
    """Was UnicodeEncodeError from DcapVerifier.verify (the signature check encodes the text)."""
    base = bases[0]
    text = base.collateral.to_json().replace('"tcb_info": "{', '"tcb_info": "{\\ud800', 1)
    with pytest.raises(CollateralError, match="surrogate"):
        Collateral.from_json(text)
    with pytest.raises(CollateralError, match="surrogate"):
        dataclasses.replace(base.collateral, qe_identity=base.collateral.qe_identity + "\udc00")


@pytest.mark.parametrize(
    "value", ["0011223344  ", " 00112233445", "00 11 22 33 ", "0011223344\n\n"]
)
def test_hex_field_with_whitespace_is_rejected_not_shortened(bases: list[Base], value: str) -> None:
    """Was accepted: bytes.fromhex skips whitespace, so a 12-character FMSPC gave 5 bytes."""
    info = json.loads(bases[0].collateral.tcb_info)
    info["fmspc"] = value
    with pytest.raises(CollateralError, match="fmspc"):
        TcbInfo.from_json(json.dumps(info))
    ident = json.loads(bases[0].collateral.qe_identity)
    ident["mrsigner"] = "  " + ident["mrsigner"][2:]
    with pytest.raises(CollateralError, match="mrsigner"):
        EnclaveIdentity.from_json(json.dumps(ident))


@pytest.mark.parametrize("field", _TEXTS)
@pytest.mark.parametrize(
    ("key", "value"),
    [("issueDate", "9999-12-31T23:59:59-23:59"), ("nextUpdate", "0001-01-01T00:00:00+23:59")],
)
def test_signed_date_outside_datetime_range_is_a_collateral_error(
    bases: list[Base], sim: Sim, field: str, key: str, value: str
) -> None:
    """Was ValueError ("year 10000 is out of range") from DcapVerifier.verify when a validly
    signed TCB Info / QE Identity had a date that leaves years 1-9999 when converted to UTC."""
    base = next(b for b in bases if b.name == "sim-sgx-v3")
    doc = json.loads(getattr(base.collateral, field))
    doc[key] = value
    coll = _signed_collateral(sim, base.collateral, field, json.dumps(doc))
    for expiry in ("strict", "report"):
        with pytest.raises(CollateralError, match=key):
            base.verifier.verify(base.quote, coll, now=base.now, expiry=expiry)
