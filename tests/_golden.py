"""Golden files: compare generated text with a file kept in the repository.

Run the tests with ``UPDATE_GOLDEN=1`` to rewrite the files, then review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path


def assert_golden(text: str, golden: Path) -> None:
    """``text`` must equal ``golden``'s contents (rewritten first under ``UPDATE_GOLDEN=1``)."""
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert golden.is_file(), f"missing {golden}; run with UPDATE_GOLDEN=1"
    assert text == golden.read_text(encoding="utf-8"), f"{golden.name} differs; UPDATE_GOLDEN=1"
