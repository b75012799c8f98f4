"""Platform backends: where enclaves run and where their evidence comes from.

``enklave.backends.simulation`` is the simulated DCAP platform (simulated, NOT Intel).
"""

from __future__ import annotations

__all__: list[str] = []
