"""The running enclave's state, set once by the runtime after the bundle verified."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..errors import NotInEnclaveError

if TYPE_CHECKING:
    from pathlib import Path

    from ..models.identity import Identity

__all__ = ["EnclaveContext", "current", "install"]


class EnclaveContext(Protocol):
    identity: Identity
    platform_secret: bytes
    files: dict[str, bytes]
    sim_home: Path

    def ocall(self, name: str, args: list[Any]) -> Any: ...


_current: EnclaveContext | None = None


def install(ctx: EnclaveContext) -> None:
    global _current
    _current = ctx


def current() -> EnclaveContext:
    """The running enclave's context.

    Raises:
        NotInEnclaveError: called outside a running enclave (e.g. on the host, or at build).
    """
    if _current is None:
        raise NotInEnclaveError(
            "this trusted API works only inside a running enclave; start the app with "
            "Enclave.open(bundle) on the host"
        )
    return _current
