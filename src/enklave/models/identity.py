"""An enclave's identity, as SGX reports it (MRENCLAVE, MRSIGNER, ISVPRODID, ISVSVN)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ProtocolError

__all__ = ["Identity"]


@dataclass(frozen=True)
class Identity:
    """Who an enclave is.

    Attributes:
        mrenclave: 32-byte measurement of the enclave's code, config and interface.
        mrsigner: 32-byte SHA-256 of the signing key's modulus (little-endian).
        product_id: ISVPRODID (u16).
        security_version: ISVSVN (u16).
        debug: a debug enclave; its memory can be inspected, so never trust it in production.
        simulated: True when no hardware protects it (the simulation backend).
    """

    mrenclave: bytes
    mrsigner: bytes
    product_id: int
    security_version: int
    debug: bool
    simulated: bool

    def __post_init__(self) -> None:
        if len(self.mrenclave) != 32 or len(self.mrsigner) != 32:
            raise ProtocolError("identity measurements must be 32 bytes")
        for value in (self.product_id, self.security_version):
            if type(value) is not int or not 0 <= value <= 0xFFFF:
                raise ProtocolError("product_id and security_version must be u16 integers")

    def to_wire(self) -> dict[str, Any]:
        return {
            "mrenclave": self.mrenclave,
            "mrsigner": self.mrsigner,
            "product_id": self.product_id,
            "security_version": self.security_version,
            "debug": self.debug,
            "simulated": self.simulated,
        }

    @classmethod
    def from_wire(cls, data: Any) -> Identity:
        """Parse an identity map received from an enclave (untrusted shape check only).

        Raises:
            ProtocolError: the map does not have exactly the identity fields.
        """
        fields = {"mrenclave", "mrsigner", "product_id", "security_version", "debug", "simulated"}
        if type(data) is not dict or set(data) != fields:
            raise ProtocolError("enclave identity record has the wrong fields")
        if type(data["mrenclave"]) is not bytes or type(data["mrsigner"]) is not bytes:
            raise ProtocolError("enclave identity measurements must be bytes")
        if type(data["debug"]) is not bool or type(data["simulated"]) is not bool:
            raise ProtocolError("enclave identity flags must be booleans")
        return cls(**data)

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly view (hex measurements)."""
        return {
            "mrenclave": self.mrenclave.hex(),
            "mrsigner": self.mrsigner.hex(),
            "product_id": self.product_id,
            "security_version": self.security_version,
            "debug": self.debug,
            "simulated": self.simulated,
        }
