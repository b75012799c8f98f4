"""Pure data types shared by the host, the enclave and verifiers (no I/O)."""

from __future__ import annotations

from .identity import Identity

__all__ = ["Identity"]
