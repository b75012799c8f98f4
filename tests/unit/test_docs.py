"""The documentation's examples run.

Every ```python block in docs/ (recursively) is executed on its own, in a fresh
interpreter (this test's ``sys.executable``), with a temporary working directory and a
temporary ``ENKLAVE_SIM_HOME``; it must exit with status 0. Blocks meant only for
display use another fence language (```text, ```toml, ```console).

Relative links between documentation pages must point at files that exist.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
_FENCE = re.compile(r"^```[ \t]*(\S*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_TIMEOUT_S = 180


def _pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md")) if DOCS.is_dir() else []


def _python_blocks() -> list[tuple[str, int, str]]:
    """``(page, line, source)`` for every python fenced block."""
    out: list[tuple[str, int, str]] = []
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        for m in _FENCE.finditer(text):
            if m.group(1).lower() in ("python", "py", "python3"):
                line = text.count("\n", 0, m.start()) + 1
                out.append((page.relative_to(DOCS).as_posix(), line, m.group(2)))
    return out


BLOCKS = _python_blocks()


def test_docs_have_runnable_examples() -> None:
    pages = {page for page, _, _ in BLOCKS}
    assert "quickstart.md" in pages
    assert "interface.md" in pages


@pytest.mark.parametrize(
    "page,line,source", BLOCKS, ids=[f"{page}:{line}" for page, line, _ in BLOCKS]
)
def test_python_block_runs(page: str, line: int, source: str, tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    sim = tmp_path / "sim"
    cwd.mkdir()
    script = tmp_path / "example.py"
    script.write_text(source, encoding="utf-8")
    env = dict(os.environ)
    env["ENKLAVE_SIM_HOME"] = str(sim)
    env.pop("SOURCE_DATE_EPOCH", None)
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
    )
    assert proc.returncode == 0, (
        f"docs/{page} block at line {line} exited with {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    )


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.relative_to(DOCS).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # external URL or in-page anchor
        path = target.split("#", 1)[0]
        if path and not (page.parent / path).exists():
            broken.append(target)
    assert not broken, f"docs/{page.relative_to(DOCS)} links to missing files: {broken}"
