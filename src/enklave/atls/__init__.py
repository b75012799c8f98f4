"""Attested TLS (work in progress: the public surface is assembled from the private modules)."""

from __future__ import annotations

__all__: list[str] = []
