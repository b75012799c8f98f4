"""`make demo`, part 2: an HTTPS server inside an enclave, reached over attested TLS.

Builds the attested_tls app, starts it (simulation backend), and shows:
1. a client whose policy names this MRENCLAVE gets its answer;
2. the same client with a policy for another MRENCLAVE is refused before it sends a
   byte (the enclave's server counts what it received);
3. two instances of the app talk over mutual attested TLS.
Everything goes to ./demo-out/attested_tls.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from enklave.atls.transport import attested_client
from enklave.errors import PolicyError
from enklave.package import build_app, generate_signing_key, write_bundle
from enklave.verify import default_policy

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from host import client_verifier, collateral_json, open_attested_tls  # noqa: E402


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def main() -> int:
    out = Path("demo-out").resolve() / "attested_tls"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    sim_home = out / "sim-platform"

    step("building and signing the attested_tls app")
    bundle = build_app(HERE, generate_signing_key())
    write_bundle(bundle, out / "attested_tls.bundle")
    print(f"MRENCLAVE {bundle.mrenclave.hex()}")

    with open_attested_tls(out / "attested_tls.bundle", sim_home) as enc:
        step("starting the HTTPS server inside the enclave (key made inside, never leaves)")
        url = f"https://127.0.0.1:{enc.call.start(0)}/hello"
        print(f"listening on {url}  (simulation: NO hardware protection; the quote says so)")

        step("a client whose policy names this MRENCLAVE")
        verifier = client_verifier(sim_home, mrenclave=bundle.mrenclave)
        with attested_client(verifier=verifier) as client:
            response = client.get(url)
        peer = response.extensions["enklave.peer"]
        print(f"HTTP {response.status_code}: {response.text}")
        print(f"attested peer: format {peer.format}, binding {peer.binding}, "
              f"MRENCLAVE {peer.enclave.mrenclave.hex()[:16]}…, simulated {peer.enclave.simulated}")

        step("the same client with a policy for another MRENCLAVE")
        before = enc.call.stats("https")["bytes_received"]
        wrong = client_verifier(sim_home, mrenclave=bundle.mrenclave,
                                policy=default_policy(mrenclave=[b"\x42" * 32],
                                                      allow_simulated=True))
        try:
            with attested_client(verifier=wrong) as client:
                client.get(url)
            print("UNEXPECTED: accepted")
            return 1
        except PolicyError as exc:
            print(f"REFUSED ({exc.check}): {exc}")
        after = enc.call.stats("https")["bytes_received"]
        print(f"application bytes the server received from that client: {after - before}")

        step("the same from the command line: curl with attestation")
        policy = out / "policy.toml"
        policy.write_text(f'mrenclave = "{bundle.mrenclave.hex()}"\nallow_simulated = true\n')
        command = [sys.executable, "-m", "enklave", "atls", "get", url, "--policy", str(policy),
                   "--show-peer", "--sim", str(sim_home)]
        print("$ enklave atls get " + url + f" --policy {policy.name} --show-peer --sim HOME")
        subprocess.run(command, check=True)

        step("mutual attested TLS: a second instance of the app calls the first")
        collateral = collateral_json(sim_home)
        port = enc.call.start_mutual(0, collateral)
        with open_attested_tls(out / "attested_tls.bundle", sim_home) as other:
            print(other.call.ask_peer(port, collateral))
        enc.call.stop()
    step("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
