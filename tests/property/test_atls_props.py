"""Garbage, truncated and mutated attested-TLS extensions and certificates: only typed
(EnklaveError) failures ever escape find_evidence / bind / inspect_certificate /
verify_certificate. Counts of inputs tried are printed (run with -s) and asserted."""

from __future__ import annotations

import hashlib
import random
import struct
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enklave.atls._binding import bind, pem_with_nul
from enklave.atls._dice import (
    decode_claims,
    decode_tagged_evidence,
    encode_claims,
    encode_tagged_evidence,
)
from enklave.atls._formats import OE_SGX_ECDSA_UUID, find_evidence
from enklave.atls._inspect import inspect_certificate
from enklave.atls._verify import verify_certificate
from enklave.atls._x509 import Certificate
from enklave.backends.simulation import SimPlatform
from enklave.errors import EnklaveError
from enklave.models import _der
from enklave.models.evidence import report_data_for
from enklave.verify import TrustAnchor, Verifier, default_policy

RATLS = Path(__file__).resolve().parents[2].parent / "shared" / "testvectors" / "ratls"
MRENCLAVE = b"\x11" * 32
ALG = bytes.fromhex("300a06082a8648ce3d040302")
OIDS = {  # OID content octets of every evidence format
    "dice": _der.encode_oid("2.23.133.5.4.9")[2:],
    "gramine": bytes.fromhex("06092a864886f84d8a3906"),
    "raw": _der.encode_oid("1.2.840.113741.1337.6")[2:],
    "sgxsdk": _der.encode_oid("1.2.840.113741.1.13.1")[2:],
    "oe-report": _der.encode_oid("1.3.6.1.4.1.311.105.1")[2:],
    "oe-legacy": _der.encode_oid("1.2.840.113556.10.1.1")[2:],
    "oe-evidence": _der.encode_oid("1.3.6.1.4.1.311.105.2")[2:],
    "dstack": _der.encode_oid("1.3.6.1.4.1.62397.1.1")[2:],
    "ias-comment": _der.encode_oid("2.16.840.1.113730.1.13")[2:],
    "ias-fortanix": _der.encode_oid("1.3.6.1.4.1.49690.2.2.3")[2:],
}


class World:
    """A simulated platform, a key, a certificate template and one good value per format."""

    def __init__(self, home: Path) -> None:
        self.platform = SimPlatform.init(home)
        self.verifier = Verifier(anchors=TrustAnchor.simulation(home),
                                 collateral=self.platform.collateral())
        self.policy = default_policy(mrenclave=[MRENCLAVE], allow_simulated=True)
        self.now = int(time.time())
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.spki = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.prefix = self._template()
        self.seeds = self._seeds()

    def _template(self) -> bytes:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz")])
        start = datetime.now(UTC) - timedelta(hours=1)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.key.public_key()).serial_number(7)
                .not_valid_before(start).not_valid_after(start + timedelta(days=2))
                .sign(self.key, hashes.SHA256()))
        tbs = _der.parse(cert.tbs_certificate_bytes)
        return tbs.value  # no extensions: every field up to the subject public key info

    def quote(self, report_data: bytes) -> bytes:
        return self.platform.quote(report_data, mrenclave=MRENCLAVE, mrsigner=b"\x22" * 32,
                                   isv_prod_id=1, isv_svn=1, debug=False)

    def _seeds(self) -> dict[str, bytes]:
        claims = encode_claims(self.spki, {"nonce": b"n"})
        b1 = self.quote(hashlib.sha256(self.spki).digest() + bytes(32))
        b3 = self.quote(hashlib.sha256(pem_with_nul(self.spki)).digest() + bytes(32))
        dstack = self.quote(hashlib.sha512(b"ratls-cert:" + self.spki).digest())
        oe2 = self.quote(report_data_for(pem_with_nul(self.spki))) + pem_with_nul(self.spki)
        seeds = {
            "dice": encode_tagged_evidence(self.quote(report_data_for(claims)), claims),
            "gramine": b1, "raw": b1, "sgxsdk": b1,
            "oe-report": struct.pack("<IIQ", 1, 2, len(b3)) + b3,
            "oe-legacy": struct.pack("<IIQ", 1, 2, len(b3)) + b3,
            "oe-evidence": struct.pack("<I", 3) + OE_SGX_ECDSA_UUID + bytes(4)
            + struct.pack("<Q", len(oe2)) + oe2,
            "dstack": _der.tlv(0x04, dstack + bytes(70)),
            "ias-comment": b'{"isvEnclaveQuoteBody":"AAAA"}|AAAA|AAAA',
            "ias-fortanix": _der.tlv(0x30, _der.tlv(4, b"{}") + _der.tlv(4, b"s")
                                     + _der.tlv(0x30, b"")),
        }  # fmt: skip
        for name, rel, oid in (("ias-comment", "integritee-pallets/ra_dump_cert_TEST4.der",
                                "2.16.840.1.113730.1.13"),
                               ("ias-fortanix", "fortanix-rust-sgx/test_enclave_cert.pem",
                                "1.3.6.1.4.1.49690.2.2.3")):
            if RATLS.exists():
                ext = Certificate.load((RATLS / rel).read_bytes()).extension(oid)
                assert ext is not None
                seeds[name] = ext.value
        return seeds

    def cert(self, exts: list[tuple[bytes, bytes]]) -> bytes:
        """A properly self-signed certificate carrying exactly these (oid content, value)."""
        body = b"".join(_der.tlv(0x30, _der.tlv(6, oid) + _der.tlv(4, value))
                        for oid, value in exts)
        tbs = _der.tlv(0x30, self.prefix + _der.tlv(0xA3, _der.tlv(0x30, body)))
        sig = self.key.sign(tbs, ec.ECDSA(hashes.SHA256()))
        return _der.tlv(0x30, tbs + ALG + _der.tlv(0x03, b"\0" + sig))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World(tmp_path_factory.mktemp("sim"))


def run_all(world: World, der: bytes) -> str:
    """Feed one certificate through every entry point; return how far it got."""
    outcome = "parsed"
    try:
        cert = Certificate.from_der(der)
        for ev in find_evidence(cert):
            try:
                bind(cert, ev)
            except EnklaveError:
                pass
        outcome = "found"
    except EnklaveError:
        outcome = "refused"
    try:
        inspect_certificate(der).to_dict()
    except EnklaveError:
        pass
    try:
        verify_certificate(der, verifier=world.verifier, policy=world.policy, now=world.now)
        outcome = "verified"
    except EnklaveError:
        pass
    return outcome


def mutate(rng: random.Random, seed: bytes) -> bytes:
    kind = rng.randrange(6)
    if kind == 0 or not seed:  # pure garbage
        return rng.randbytes(rng.randrange(0, 700))
    if kind == 1:  # truncated
        return seed[: rng.randrange(len(seed))]
    data = bytearray(seed)
    if kind == 2:  # bit flips
        for _ in range(rng.randrange(1, 9)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == 3:  # splice random bytes in
        at = rng.randrange(len(data) + 1)
        data[at:at] = rng.randbytes(rng.randrange(1, 40))
    elif kind == 4:  # delete a run
        at = rng.randrange(len(data))
        del data[at : at + rng.randrange(1, 40)]
    else:  # overwrite a length-looking field in the first 64 bytes
        at = rng.randrange(min(len(data), 64))
        data[at : at + 4] = rng.choice([b"\xff\xff\xff\xff", b"\0\0\0\0", b"\x7f\0\0\0"])
    return bytes(data)


def test_random_extension_values_raise_only_typed_errors(world: World) -> None:
    rng = random.Random(20250919)
    outcomes: dict[str, int] = {}
    tried = 0
    names = list(OIDS)
    for i in range(8000):
        name = names[i % len(names)]
        value = mutate(rng, world.seeds[name])
        exts = [(OIDS[name], value)]
        if name == "sgxsdk" or rng.random() < 0.1:  # sometimes next to a (mutated) DICE one
            exts.append((OIDS["dice"], mutate(rng, world.seeds["dice"])))
        out = run_all(world, world.cert(exts))
        outcomes[out] = outcomes.get(out, 0) + 1
        tried += 1
    print(f"\nextension fuzz: {tried} certificates, outcomes {outcomes}")
    assert tried >= 8000 and outcomes.get("refused", 0) > 0


def test_codec_level_garbage_raises_only_typed_errors(world: World) -> None:
    rng = random.Random(7)
    tried = 0
    for _ in range(3000):
        for seed in (world.seeds["dice"], decode_tagged_evidence(world.seeds["dice"])[2]):
            data = mutate(rng, seed)
            for fn in (decode_tagged_evidence, decode_claims):
                try:
                    fn(data)
                except EnklaveError:
                    pass
                tried += 1
    print(f"\nDICE codec fuzz: {tried} decoder calls")
    assert tried >= 10000


def test_whole_certificate_mutations_raise_only_typed_errors(world: World) -> None:
    rng = random.Random(99)
    seeds = [world.cert([(OIDS[n], world.seeds[n])]) for n in ("dice", "oe-report", "dstack")]
    if RATLS.exists():
        for rel in ("interoperable-ra-tls/gramine-cert.pem", "openenclave/sgx_cert_ec_bad.der",
                    "echeck/sample.pem", "dstack-ratls-example/server.crt",
                    "fortanix-rust-sgx/test_enclave_cert.pem"):
            seeds.append(Certificate.load((RATLS / rel).read_bytes()).der)
    for seed in seeds[:3]:  # the untouched seeds verify (they are genuine)
        assert run_all(world, seed) == "verified"
    tried = 0
    for i in range(2500):
        run_all(world, mutate(rng, seeds[i % len(seeds)]))
        tried += 1
    print(f"\nwhole-certificate fuzz: {tried} mutated certificates")
    assert tried >= 2500


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(OIDS)), value=st.binary(max_size=600))
def test_hypothesis_extension_values(world: World, name: str, value: bytes) -> None:
    run_all(world, world.cert([(OIDS[name], value)]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2000))
def test_hypothesis_certificate_bytes(world: World, data: bytes) -> None:
    for blob in (data, b"\x30" + data, b"-----BEGIN CERTIFICATE-----\n" + data, b"{" + data,
                 b'{"ratls_certificate": ' + data + b"}"):
        try:
            inspect_certificate(blob)
        except EnklaveError:
            pass
        try:
            verify_certificate(blob, verifier=world.verifier, policy=world.policy,
                               now=world.now)
        except EnklaveError:
            pass


@pytest.mark.skipif(not RATLS.exists(), reason="shared test vectors are absent")
def test_mutated_cosmian_bundles_and_ias_reports_raise_only_typed_errors(world: World) -> None:
    import json

    rng = random.Random(3)
    bundle = json.loads((RATLS / "cosmian_enclave/evidence.json").read_text())
    odd_values = [None, 1, [], {}, "", "AAAA", "-----BEGIN CERTIFICATE-----\nAA\n"]
    tried = 0
    for _ in range(300):
        doc = dict(bundle)
        doc[rng.choice(sorted(doc))] = rng.choice(odd_values)
        raw = json.dumps(doc).encode()
        for blob in (raw, mutate(rng, raw)):
            try:
                inspect_certificate(blob)
            except EnklaveError:
                pass
            tried += 1
    report = {"isvEnclaveQuoteBody": "AAAA", "advisoryIDs": 5, "version": "x"}
    for body in (report, {**report, "isvEnclaveQuoteBody": "A" * 576}, [], "s", 1):
        value = json.dumps(body).encode() + b"|AAAA|AAAA"
        run_all(world, world.cert([(OIDS["ias-comment"], value)]))
        tried += 1
    print(f"\nbundle / IAS report fuzz: {tried} inputs")


@settings(max_examples=500, deadline=None)
@given(claims=st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"\x30", b"\xa1", b"\x04", b"\x02", b"-----BEGIN"]).flatmap(
        lambda head: st.binary(max_size=140).map(lambda tail: head + tail)),
))  # fmt: skip
def test_reserved_claims_check_raises_only_its_typed_error(claims: bytes) -> None:
    """enklave.enclave.evidence()'s guard: any bytes either pass or are refused with
    code ``reserved_claims``; and whatever passes is no key-binding pre-image."""
    from enklave.enclave._evidence import refuse_reserved

    try:
        refuse_reserved(claims)
    except EnklaveError as exc:
        assert exc.code == "reserved_claims"
        return
    try:
        decode_claims(claims)
    except EnklaveError:
        pass
    else:  # pragma: no cover - the failure path
        pytest.fail("a DICE claims map passed the reserved-claims check")
    assert not claims.startswith(b"-----BEGIN")
