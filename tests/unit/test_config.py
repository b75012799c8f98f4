"""Unit tests for the ``enklave.toml`` application config."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from enklave.errors import ConfigError
from enklave.package._config import AppConfig, scaffold_toml

BASE = 'name = "hello"\nentry = "enclave.py"\n'


def parse(extra: str = "") -> AppConfig:
    return AppConfig.from_toml(BASE + extra)


def canonical(**changes: object) -> dict[str, object]:
    data = AppConfig(name="hello", entry="enclave.py").to_canonical()
    data.update(changes)
    return data


def with_int_key() -> dict[object, object]:
    data: dict[object, object] = {}
    data.update(canonical())
    data[1] = 2
    return data


# --- defaults and basic parsing ------------------------------------------------------


def test_defaults() -> None:
    cfg = parse()
    assert cfg == AppConfig(name="hello", entry="enclave.py")
    assert (cfg.product_id, cfg.security_version, cfg.debug) == (0, 0, False)
    assert (cfg.max_threads, cfg.memory_mb) == (4, 256)
    assert cfg.files == () and cfg.allowed_env == ()


def test_full_example() -> None:
    cfg = parse(
        "product_id = 1\nsecurity_version = 2\ndebug = true\nmax_threads = 8\n"
        'memory_mb = 512\nfiles = ["helpers.py", "data/*.json"]\nallowed_env = ["TZ", "LANG"]\n'
    )
    assert cfg.product_id == 1 and cfg.security_version == 2 and cfg.debug is True
    assert cfg.max_threads == 8 and cfg.memory_mb == 512
    assert cfg.files == ("data/*.json", "helpers.py")
    assert cfg.allowed_env == ("LANG", "TZ")


@pytest.mark.parametrize("missing", ["name", "entry"])
def test_missing_required_key(missing: str) -> None:
    text = "\n".join(line for line in BASE.splitlines() if not line.startswith(missing))
    with pytest.raises(ConfigError, match=f"missing required key '{missing}'"):
        AppConfig.from_toml(text)


def test_malformed_toml_names_source() -> None:
    with pytest.raises(ConfigError, match=r"apps/x/enklave\.toml: not valid TOML") as info:
        AppConfig.from_toml("name = ", source="apps/x/enklave.toml")
    assert info.value.code == "config"


# --- ranges ----------------------------------------------------------------------------

RANGES = {
    "product_id": (0, 65535),
    "security_version": (0, 65535),
    "max_threads": (1, 64),
    "memory_mb": (64, 65536),
}
VALID_EDGES = [(k, v) for k, (lo, hi) in RANGES.items() for v in (lo, hi)]
INVALID_EDGES = [(k, v) for k, (lo, hi) in RANGES.items() for v in (lo - 1, hi + 1)]


@pytest.mark.parametrize(("key", "value"), VALID_EDGES)
def test_range_edges_valid(key: str, value: int) -> None:
    assert getattr(parse(f"{key} = {value}\n"), key) == value


@pytest.mark.parametrize(("key", "value"), INVALID_EDGES)
def test_range_edges_invalid(key: str, value: int) -> None:
    lo, hi = RANGES[key]
    with pytest.raises(ConfigError, match=rf"'{key}' must be in {lo}\.\.{hi}, got {value}"):
        parse(f"{key} = {value}\n")


@pytest.mark.parametrize(("key", "value"), INVALID_EDGES)
def test_range_edges_invalid_direct_construction(key: str, value: int) -> None:
    with pytest.raises(ConfigError, match=key):
        AppConfig(name="hello", entry="enclave.py", **{key: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["a", "0", "hello-world_2", "a" * 63, "x" + "-" * 62])
def test_name_valid(name: str) -> None:
    assert AppConfig.from_toml(f'name = "{name}"\nentry = "e.py"').name == name


@pytest.mark.parametrize(
    "name", ["", "A", "-a", "_a", "a" * 64, "hello world", "héllo", "a.b", "a\\n"]
)
def test_name_invalid(name: str) -> None:
    with pytest.raises(ConfigError, match="'name' must match"):
        AppConfig.from_toml(f'name = "{name}"\nentry = "e.py"')


# --- unknown keys and types ------------------------------------------------------------


def test_unknown_key_suggests_closest() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'prodct_id' \(did you mean 'product_id'"):
        parse("prodct_id = 1\n")


def test_unknown_key_lists_allowed_keys() -> None:
    with pytest.raises(ConfigError) as info:
        parse("zzzz = 1\n")
    assert "did you mean" not in info.value.message
    assert "allowed keys are name, entry, product_id" in info.value.message


def test_table_is_unknown_key() -> None:
    with pytest.raises(ConfigError, match="unknown key 'app'"):
        parse("[app]\nx = 1\n")


@pytest.mark.parametrize(
    ("line", "key", "expected", "got"),
    [
        ('product_id = "1"', "product_id", "an integer", "string"),
        ("memory_mb = 256.0", "memory_mb", "an integer", "float"),
        ('debug = "false"', "debug", "a boolean", "string"),
        ("debug = 0", "debug", "a boolean", "integer"),
        ('files = "a.py"', "files", "an array of strings", "string"),
        ("files = [1]", "files", "an array of strings", "integer"),
        ('allowed_env = "TZ"', "allowed_env", "an array of strings", "string"),
        ("allowed_env = [[]]", "allowed_env", "an array of strings", "array"),
        ("max_threads = [4]", "max_threads", "an integer", "array"),
        ("security_version = {a = 1}", "security_version", "an integer", "table"),
        ("product_id = 1979-05-27", "product_id", "an integer", "date"),
    ],
)
def test_type_errors(line: str, key: str, expected: str, got: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(line + "\n")
    message = info.value.message
    assert f"'{key}'" in message and f"must be {expected}" in message
    assert f"got {got}" in message


def test_name_type_error() -> None:
    with pytest.raises(ConfigError, match="'name' must be a string, got integer 5"):
        AppConfig.from_toml('name = 5\nentry = "e.py"')


@pytest.mark.parametrize("key", list(RANGES))
@pytest.mark.parametrize("value", ["true", "false"])
def test_bool_is_not_int(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"'{key}' must be an integer.*got boolean {value}"):
        parse(f"{key} = {value}\n")


# --- paths -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("/abs/enclave.py", "absolute"),
        ("../enclave.py", r"'\.\.' component"),
        ("src/../../enclave.py", r"'\.\.' component"),
        ("src\\\\enclave.py", "backslash"),
        ("", "empty"),
        ("./enclave.py", "empty or '.' component"),
        ("src//enclave.py", "empty or '.' component"),
        ("enclave.txt", r"must name one \.py file"),
        ("src/.py", r"must name one \.py file"),
        ("*.py", r"must name one \.py file"),
        ("enclave.py/", "empty or '.' component"),
        ("a\\u0000.py", "control character"),
    ],
)
def test_entry_path_rules(entry: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=f"'entry'.*{reason}"):
        AppConfig.from_toml(f'name = "x"\nentry = "{entry}"')


def test_entry_nested_ok() -> None:
    assert AppConfig.from_toml('name = "x"\nentry = "src/app/main.py"').entry == "src/app/main.py"


@pytest.mark.parametrize(
    "pattern", ["/etc/*", "../x", "a/../b", "a\\\\b", "", "a//b", "./a", "**/../x"]
)
def test_files_path_rules(pattern: str) -> None:
    with pytest.raises(ConfigError, match="'files' path"):
        parse(f'files = ["{pattern}"]\n')


def test_files_globs_allowed_and_deduplicated() -> None:
    cfg = parse('files = ["data/**/*.json", "b.py", "a?.txt", "b.py", "[ab].py"]\n')
    assert cfg.files == ("[ab].py", "a?.txt", "b.py", "data/**/*.json")


# --- environment -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PYTHONINSPECT",
        "PYTHONSAFEPATH",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
        "pythonpath",
        "ENKLAVE_DEBUG",
        "GCONV_PATH",
        "GLIBC_TUNABLES",
    ],
)
def test_env_deny_list(name: str) -> None:
    with pytest.raises(ConfigError, match=f"may not include '{name}'.*steer"):
        parse(f'allowed_env = ["{name}"]\n')


@pytest.mark.parametrize("name", ["", "1ABC", "A-B", "A B", "A=B", "É"])
def test_env_invalid_names(name: str) -> None:
    with pytest.raises(ConfigError, match="'allowed_env' has invalid name"):
        parse(f'allowed_env = ["{name}"]\n')


def test_env_valid_names_sorted() -> None:
    cfg = parse('allowed_env = ["TZ", "_x", "LANG", "TZ", "LDX", "PYTHO"]\n')
    assert cfg.allowed_env == ("LANG", "LDX", "PYTHO", "TZ", "_x")


# --- canonical form --------------------------------------------------------------------


def test_canonical_round_trip() -> None:
    cfg = parse(
        'product_id = 7\ndebug = true\nfiles = ["z.py", "a/*.json", "z.py"]\n'
        'allowed_env = ["TZ", "LANG"]\n'
    )
    data = cfg.to_canonical()
    assert data == {
        "name": "hello",
        "entry": "enclave.py",
        "product_id": 7,
        "security_version": 0,
        "debug": True,
        "max_threads": 4,
        "memory_mb": 256,
        "files": ["a/*.json", "z.py"],
        "allowed_env": ["LANG", "TZ"],
    }
    assert list(data) == list(cfg.to_canonical())
    assert AppConfig.from_canonical(data) == cfg
    assert AppConfig.from_canonical(data).to_canonical() == data


def test_canonical_direct_construction_normalises() -> None:
    cfg = AppConfig(name="x", entry="e.py", files=("b", "a", "b"), allowed_env=("TZ", "LANG"))
    assert cfg.files == ("a", "b")
    assert cfg.to_canonical()["allowed_env"] == ["LANG", "TZ"]


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        "name",
        {k: v for k, v in canonical().items() if k != "debug"},
        canonical(extra=1),
        with_int_key(),
        canonical(files=["b", "a"]),
        canonical(files=["a", "a"]),
        canonical(files=("a",)),
        canonical(allowed_env=["TZ", "LANG"]),
        canonical(allowed_env=["PYTHONPATH"]),
        canonical(product_id=True),
        canonical(product_id=2**70),
        canonical(memory_mb=63),
        canonical(debug=1),
        canonical(name="Bad"),
        canonical(entry="../x.py"),
        canonical(files=[["nested"]]),
    ],
)
def test_from_canonical_rejects(data: object) -> None:
    with pytest.raises(ConfigError, match="bundle config"):
        AppConfig.from_canonical(data)


# --- files on disk ---------------------------------------------------------------------


def make_app(root: Path, files: dict[str, str], toml: str = "") -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    root.mkdir(parents=True, exist_ok=True)
    (root / "enklave.toml").write_text(BASE + toml)
    return root


def test_load(tmp_path: Path) -> None:
    make_app(tmp_path, {"enclave.py": ""}, "max_threads = 2\n")
    assert AppConfig.load(tmp_path).max_threads == 2


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="enklave new NAME"):
        AppConfig.load(tmp_path)


def test_load_error_names_path(tmp_path: Path) -> None:
    (tmp_path / "enklave.toml").write_text("name = [")
    with pytest.raises(ConfigError, match=f"{tmp_path}.*not valid TOML"):
        AppConfig.load(tmp_path)


def test_load_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "enklave.toml").write_bytes(b'name = "\xff"')
    with pytest.raises(ConfigError, match="UTF-8"):
        AppConfig.load(tmp_path)


def test_resolve_files_globs_sorted(tmp_path: Path) -> None:
    make_app(
        tmp_path,
        {
            "enclave.py": "",
            "helpers.py": "",
            "data/b.json": "",
            "data/a.json": "",
            "data/deep/c.json": "",
            "data/skip.txt": "",
            "pkg/__pycache__/m.cpython-311.pyc": "",
            "pkg/m.py": "",
            "pkg/old.pyc": "",
        },
    )
    cfg = parse('files = ["pkg/**/*", "data/**/*.json", "helpers.py", "enclave.py"]\n')
    assert cfg.resolve_files(tmp_path) == [
        "data/a.json",
        "data/b.json",
        "data/deep/c.json",
        "enclave.py",
        "helpers.py",
        "pkg/m.py",
    ]
    assert parse('files = ["data/*.json"]').resolve_files(tmp_path) == [
        "data/a.json",
        "data/b.json",
        "enclave.py",
    ]


def test_resolve_files_entry_only(tmp_path: Path) -> None:
    make_app(tmp_path, {"enclave.py": "", "other.py": ""})
    assert parse().resolve_files(tmp_path) == ["enclave.py"]


def test_resolve_files_missing_entry(tmp_path: Path) -> None:
    make_app(tmp_path, {})
    with pytest.raises(ConfigError, match="'entry' names 'enclave.py'"):
        parse().resolve_files(tmp_path)


@pytest.mark.parametrize("pattern", ["nope.py", "data/*.json", "data", "**/*.pyc"])
def test_resolve_files_pattern_matches_nothing(tmp_path: Path, pattern: str) -> None:
    make_app(tmp_path, {"enclave.py": "", "data/x.txt": "", "old.pyc": ""})
    expected = re.escape(f"pattern '{pattern}' matches no regular file")
    with pytest.raises(ConfigError, match=expected):
        parse(f'files = ["{pattern}"]').resolve_files(tmp_path)


def test_resolve_files_symlink_file_escape(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("")
    app = make_app(tmp_path / "app", {"enclave.py": ""})
    os.symlink(outside / "secret.py", app / "secret.py")
    with pytest.raises(ConfigError, match="resolves outside the app directory"):
        parse('files = ["*.py"]').resolve_files(app)


def test_resolve_files_symlink_dir_escape(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.json").write_text("")
    app = make_app(tmp_path / "app", {"enclave.py": ""})
    os.symlink(outside, app / "data")
    with pytest.raises(ConfigError, match="'files' matches .*resolves outside"):
        parse('files = ["data/*.json"]').resolve_files(app)


def test_resolve_files_entry_symlink_escape(tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text("")
    app = make_app(tmp_path / "app", {})
    os.symlink(outside, app / "enclave.py")
    with pytest.raises(ConfigError, match="'entry' matches .*resolves outside"):
        parse().resolve_files(app)


def test_resolve_files_symlink_inside_ok(tmp_path: Path) -> None:
    app = make_app(tmp_path, {"enclave.py": "", "real/x.py": ""})
    os.symlink(app / "real" / "x.py", app / "link.py")
    assert parse('files = ["link.py"]').resolve_files(app) == ["enclave.py", "link.py"]


def test_resolve_files_symlink_loop(tmp_path: Path) -> None:
    app = make_app(tmp_path, {"enclave.py": ""})
    os.symlink(app / "loop.py", app / "loop.py")
    with pytest.raises(ConfigError):
        parse('files = ["loop.py"]').resolve_files(app)


def test_resolve_files_missing_app_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="app directory"):
        parse().resolve_files(tmp_path / "nope")


# --- scaffold --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["hello", "my-app_2", "a" * 63])
def test_scaffold_parses(name: str) -> None:
    text = scaffold_toml(name)
    assert text.startswith("#")
    cfg = AppConfig.from_toml(text)
    assert cfg == AppConfig(name=name, entry="enclave.py")


def test_scaffold_rejects_bad_name() -> None:
    with pytest.raises(ConfigError, match="'name' must match"):
        scaffold_toml("Bad Name")
