"""`make demo`: build, sign and run the hello enclave end to end (simulation backend).

Everything goes to ./demo-out: a signing key, the bundle, a simulated platform and the
host's store of sealed blobs.
"""

from __future__ import annotations

import secrets
import shutil
import sys
import time
from pathlib import Path

from enklave.errors import PolicyError, VerificationError
from enklave.models.evidence import Evidence
from enklave.package import build_app, generate_signing_key, write_bundle, write_private_key
from enklave.verify import TrustAnchor, Verifier, default_policy

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from host import open_hello  # noqa: E402


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def verify_evidence(evidence: Evidence, nonce: bytes, bundle: object, sim_home: Path) -> None:
    """Verify like a relying party: explicit trust anchor, collateral, policy and time."""
    from enklave.backends.simulation import SimPlatform

    platform = SimPlatform.load(sim_home)
    now = int(time.time())
    policy = default_policy(
        mrenclave=[bundle.mrenclave], mrsigner=bundle.mrsigner, product_id=1, min_svn=1,
        allow_simulated=True,  # development only: this platform is simulated
    )
    try:  # first as production would: only Intel's root is trusted
        Verifier(anchors=TrustAnchor.intel(), collateral=platform.collateral()).verify(
            evidence, policy, now=now)
    except VerificationError as exc:
        print(f"under Intel's root: REFUSED ({exc.code}): simulated quotes never pass as hardware")
    verifier = Verifier(anchors=TrustAnchor.simulation(sim_home), collateral=platform.collateral())
    enclave = verifier.verify(evidence, policy, now=now)
    print("under the simulation root, with a policy for this MRENCLAVE/MRSIGNER: ACCEPTED")
    for key, value in enclave.to_dict().items():
        if key != "claims":
            print(f"  {key:18s} {value}")
    print(f"  claims             {enclave.claims.decode()!r}")
    assert nonce.hex().encode() in enclave.claims
    try:
        verifier.verify(evidence, default_policy(mrenclave=[bundle.mrenclave]), now=now)
    except PolicyError as exc:
        print(f"same evidence under the default policy: REFUSED ({exc.check})")


def main() -> int:
    out = Path("demo-out").resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    sim_home, store = out / "sim-platform", out / "store"

    step("generating an RSA-3072 (e=3) signing key")
    key = generate_signing_key()
    write_private_key(key, out / "signing-key.pem")

    step(f"building and signing {HERE.name}")
    bundle = build_app(HERE, key)
    bundle_path = out / "hello.bundle"
    write_bundle(bundle, bundle_path)
    print(f"bundle    {bundle_path}")
    print(f"MRENCLAVE {bundle.mrenclave.hex()}")
    print(f"MRSIGNER  {bundle.mrsigner.hex()}")

    step("starting the enclave (it re-checks signature and measurement before running)")
    with open_hello(bundle_path, store, sim_home=sim_home) as enc:
        me = enc.call.whoami()
        for field in ("mrenclave", "mrsigner", "product_id", "security_version", "debug"):
            print(f"{field:17s} {me[field]}")
        print(f"{'simulated':17s} {str(me['simulated']).lower()}  (software platform: "
              "NO hardware protection)")
        step("calling greet (the enclave logs through an OCALL)")
        print(enc.call.greet("Ada"))
        step("sealing two values; the host stores only sealed blobs")
        enc.call.put("colour", "ultramarine")
        enc.call.put("motto", "trust, but verify")
        for blob in sorted(store.glob("*.sealed")):
            print(f"{blob.name}: {blob.stat().st_size} bytes, "
                  f"plaintext visible: {b'ultramarine' in blob.read_bytes()}")
        step("restarting the enclave process and reading the sealed data back")
        enc.restart()
        print(f"colour = {enc.call.get('colour')!r}")
        print(f"motto  = {enc.call.get('motto')!r}")
        print(f"absent = {enc.call.get('absent')!r}")
        step("remote attestation: the enclave makes evidence bound to our nonce")
        nonce = secrets.token_bytes(32)
        evidence = Evidence.from_bytes(enc.call.attest(nonce))
        print(f"quote     {len(evidence.quote)} bytes (DCAP v3, simulated PCK chain)")
        verify_evidence(evidence, nonce, bundle, sim_home)
    step("done: the enclave process was stopped and reaped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
