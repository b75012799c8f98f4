"""hello: the trusted half. Greets through an OCALL and keeps a sealed key-value store.

The store's values are sealed here (policy "product", so a newer version of this app can
still read them) and only the sealed blobs go to the host, which writes them to disk.
The key name is bound into each blob as associated data, so the host cannot swap blobs
between keys.
"""

from __future__ import annotations

from typing import Annotated, TypedDict

from enklave.enclave import EnclaveApp, MaxLen, evidence, identity, seal, unseal

app = EnclaveApp("hello")

Key = Annotated[str, MaxLen(64)]
Blob = Annotated[bytes, MaxLen(1 << 20)]


class WhoAmI(TypedDict):
    mrenclave: Annotated[str, MaxLen(64)]
    mrsigner: Annotated[str, MaxLen(64)]
    product_id: int
    security_version: int
    debug: bool
    simulated: bool


@app.ocall
def log(line: Annotated[str, MaxLen(200)]) -> None: ...


@app.ocall
def store_put(key: Key, blob: Blob) -> None: ...


@app.ocall
def store_get(key: Key) -> Blob | None: ...


@app.ecall
def greet(name: Annotated[str, MaxLen(64)]) -> Annotated[str, MaxLen(128)]:
    log(f"greeting {name}")
    return f"Hello, {name}, from inside the enclave!"


@app.ecall
def put(key: Key, value: Annotated[str, MaxLen(4096)]) -> None:
    store_put(key, seal(value.encode(), policy="product", aad=key.encode()))


@app.ecall
def get(key: Key) -> Annotated[str, MaxLen(4096)] | None:
    blob = store_get(key)
    if blob is None:
        return None
    return unseal(blob, aad=key.encode()).decode()


@app.ecall
def whoami() -> WhoAmI:
    me = identity()
    return {
        "mrenclave": me.mrenclave.hex(),
        "mrsigner": me.mrsigner.hex(),
        "product_id": me.product_id,
        "security_version": me.security_version,
        "debug": me.debug,
        "simulated": me.simulated,
    }


@app.ecall
def attest(nonce: Annotated[bytes, MaxLen(64)]) -> Annotated[bytes, MaxLen(65536)]:
    """Evidence (a DCAP quote) whose claims carry the verifier's nonce and a greeting."""
    claims = b"hello-claims/1\nnonce=" + nonce.hex().encode() + b"\nmotto=trust, but verify"
    return evidence(claims).to_bytes()
