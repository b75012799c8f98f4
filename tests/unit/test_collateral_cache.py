"""CollateralCache: freshness by nextUpdate, atomic writes, corrupted files never crash."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enklave.collateral import CachedResponse, CollateralCache, default_cache_dir
from enklave.errors import CollateralError

URL = "https://pccs.example/sgx/certification/v4/tcb?fmspc=00906ED50000"
CHAIN = {"tcb-info-issuer-chain": "-----BEGIN%20CERTIFICATE-----%0A..."}


def _entry(next_update: float = 2000.0, fetched_at: float = 1000.0) -> CachedResponse:
    return CachedResponse(URL, b'{"tcbInfo":{},"signature":"00"}', CHAIN, next_update, fetched_at)


def test_round_trip_until_next_update(tmp_path: Path) -> None:
    cache = CollateralCache(tmp_path / "c")
    cache.put(_entry())
    assert cache.get(URL, now=1999.0) == _entry()
    assert cache.get(URL, now=2000.0) is None
    assert cache.get(URL + "&x", now=1500.0) is None


def test_max_age_forces_an_earlier_refetch(tmp_path: Path) -> None:
    cache = CollateralCache(tmp_path, max_age=100)
    cache.put(_entry())
    assert cache.get(URL, now=1099.0) is not None
    assert cache.get(URL, now=1100.0) is None


def test_put_replaces_atomically_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    cache = CollateralCache(tmp_path)
    cache.put(_entry())
    cache.put(_entry(next_update=3000.0))
    assert [p.name for p in tmp_path.iterdir()] == [cache.path_for(URL).name]
    assert cache.get(URL, now=2500.0) == _entry(next_update=3000.0)


def test_files_are_named_by_url_hash_and_hold_no_request_secrets(tmp_path: Path) -> None:
    cache = CollateralCache(tmp_path)
    cache.put(_entry())
    path = cache.path_for(URL)
    assert len(path.stem) == 64 and path.suffix == ".json"
    doc = json.loads(path.read_text())
    assert set(doc) == {"format", "url", "fetched_at", "next_update", "headers", "body"}


def _stored(tmp_path: Path) -> tuple[CollateralCache, Path, dict[str, object]]:
    cache = CollateralCache(tmp_path)
    cache.put(_entry())
    path = cache.path_for(URL)
    return cache, path, json.loads(path.read_text())


@pytest.mark.parametrize(
    "change",
    [
        {"format": 2},
        {"url": "https://evil.example/"},
        {"next_update": "2100"},
        {"next_update": float("nan")},
        {"next_update": True},
        {"fetched_at": None},
        {"headers": {"a": 1}},
        {"headers": []},
        {"body": "not base64!"},
        {"body": 5},
    ],
)
def test_rejects_tampered_entries(tmp_path: Path, change: dict[str, object]) -> None:
    cache, path, doc = _stored(tmp_path)
    doc.update(change)
    path.write_text(json.dumps(doc))
    assert cache.get(URL, now=1500.0) is None
    assert not path.exists()


@pytest.mark.parametrize(
    "content", [b"", b"{", b"[]", b"null", b"\xff\xfe", b"[" * 100_000, b"{}" * 10]
)
def test_corrupted_files_are_misses(tmp_path: Path, content: bytes) -> None:
    cache, path, _ = _stored(tmp_path)
    path.write_bytes(content)
    assert cache.get(URL, now=1500.0) is None
    cache.put(_entry())
    assert cache.get(URL, now=1500.0) == _entry()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=300))
def test_arbitrary_cache_file_bytes_never_raise(tmp_path: Path, data: bytes) -> None:
    cache = CollateralCache(tmp_path)
    cache.path_for(URL).write_bytes(data)
    assert cache.get(URL, now=1500.0) is None


def test_unreadable_entry_is_a_miss(tmp_path: Path) -> None:
    cache = CollateralCache(tmp_path)
    cache.path_for(URL).mkdir(parents=True)  # a directory where the file should be
    assert cache.get(URL, now=1500.0) is None


def test_unwritable_directory_raises_collateral_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(CollateralError, match="cannot write collateral cache"):
        CollateralCache(blocker / "cache").put(_entry())


def test_clear_and_discard(tmp_path: Path) -> None:
    cache = CollateralCache(tmp_path)
    cache.put(_entry())
    (tmp_path / "keep.json").write_text("{}")
    cache.discard(URL + "/other")
    cache.clear()
    assert [p.name for p in tmp_path.iterdir()] == ["keep.json"]


def test_body_bytes_survive_exactly(tmp_path: Path) -> None:
    body = bytes(range(256)) * 3
    cache = CollateralCache(tmp_path)
    cache.put(CachedResponse(URL, body, {}, 2000.0, 1000.0))
    entry = cache.get(URL, now=1000.0)
    assert entry is not None and entry.body == body
    raw = json.loads(cache.path_for(URL).read_text())["body"]
    assert base64.b64decode(raw) == body


def test_default_directory_follows_xdg_cache_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "enklave" / "collateral"
    assert CollateralCache().directory == tmp_path / "enklave" / "collateral"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")
    assert default_cache_dir() == Path.home() / ".cache" / "enklave" / "collateral"
