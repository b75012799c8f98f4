"""The untrusted side: start enclaves and call them.

Example::

    from enklave.host import Enclave

    with Enclave.open("hello.bundle", ocalls={"log": print}) as enc:
        print(enc.identity.mrenclave.hex(), enc.identity.simulated)
        print(enc.call.greet("Ada"))

The host never touches seal keys or the platform secret; it only moves frames.
"""

from __future__ import annotations

from ..errors import EnclaveCallError, EnclaveClosed, EnclaveLoadError, EnclaveLost
from ..models.identity import Identity
from ._aio import AsyncEnclave
from ._enclave import BACKENDS, Enclave
from ._remote import RemoteEnclave
from ._serve import Serving, load_ocalls, serve, start_serving

__all__ = [
    "BACKENDS",
    "AsyncEnclave",
    "Enclave",
    "EnclaveCallError",
    "EnclaveClosed",
    "EnclaveLoadError",
    "EnclaveLost",
    "Identity",
    "RemoteEnclave",
    "Serving",
    "load_ocalls",
    "serve",
    "start_serving",
]
