"""enklave: enclave-aware containers in Python.

An application is split into an untrusted host and a trusted enclave process, joined by
a typed, bounded ECALL/OCALL boundary. See ``docs/`` for the user guide.

This package's ``__init__`` stays tiny on purpose: it is part of the enclave's trusted
computing base, so it imports nothing heavy.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
