"""Packaging enclaves: signing keys, SGX SIGSTRUCT and bundles."""

from __future__ import annotations
