"""Benchmark enclave: an empty ECALL and a bytes echo."""

from __future__ import annotations

from typing import Annotated

from enklave.enclave import EnclaveApp, MaxLen

app = EnclaveApp("ping")


@app.ecall
def ping() -> None:
    return None


@app.ecall
def echo(data: Annotated[bytes, MaxLen(2 << 20)]) -> Annotated[bytes, MaxLen(2 << 20)]:
    return data
