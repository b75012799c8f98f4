"""The ``enklave.toml`` application config: parsing, validation and canonical form.

Every enclave app directory holds one ``enklave.toml`` with flat top-level keys
(no tables)::

    name = "hello"
    entry = "enclave.py"
    product_id = 1
    security_version = 1
    debug = false
    max_threads = 4
    memory_mb = 256
    files = ["helpers.py", "data/*.json"]
    allowed_env = ["LANG", "TZ"]

Keys:

* ``name`` (string, required): the app name, matching ``[a-z0-9][a-z0-9_-]{0,62}``.
* ``entry`` (string, required): relative path of the trusted module inside the app
  directory; must end in ``.py`` and may not contain glob characters.
* ``product_id`` (integer 0..65535, default 0): the SGX ISVPRODID.
* ``security_version`` (integer 0..65535, default 0): the SGX ISVSVN.
* ``debug`` (boolean, default false): a debug enclave (tracebacks cross the boundary).
* ``max_threads`` (integer 1..64, default 4): concurrent ECALLs, like SGX NumTCS.
* ``memory_mb`` (integer 64..65536, default 256): enclave memory limit; enforced in
  simulation with ``RLIMIT_AS``.
* ``files`` (array of strings, default ``[]``): extra measured files or glob patterns
  (``*``, ``?``, ``[...]`` and recursive ``**``), relative to the app directory.
* ``allowed_env`` (array of strings, default ``[]``): environment variables passed into
  the enclave; every other variable is dropped.

Rules: unknown keys are rejected (with the closest allowed key suggested); booleans
are not integers; integers must lie in their range. Paths are relative POSIX paths:
no leading ``/``, no backslashes, no empty, ``.`` or ``..`` components, no control
characters. Environment names match ``[A-Za-z_][A-Za-z0-9_]*`` and may not be names
that let the host steer the interpreter or the dynamic loader: anything starting with
``PYTHON`` or ``LD_`` (e.g. ``PYTHONPATH``, ``LD_PRELOAD``), ``ENKLAVE_`` (reserved for
the runtime), ``GCONV_PATH`` and ``GLIBC_TUNABLES`` (compared case-insensitively).

:meth:`AppConfig.to_canonical` gives the deterministic form recorded in the
measurement log; :meth:`AppConfig.from_canonical` reads it back from a (possibly
hostile) bundle, accepting only exactly canonical data. Every failure raises
:class:`~enklave.errors.ConfigError`.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from enklave.errors import ConfigError

__all__ = ["CONFIG_FILENAME", "AppConfig", "scaffold_toml"]

CONFIG_FILENAME = "enklave.toml"

_T = TypeVar("_T")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_GLOB_CHARS = frozenset("*?[")
_ENV_DENY_PREFIXES = ("PYTHON", "LD_", "ENKLAVE_")
_ENV_DENY_NAMES = frozenset({"GCONV_PATH", "GLIBC_TUNABLES"})
_INT_RANGES = {"product_id": (0, 65535), "security_version": (0, 65535),
               "max_threads": (1, 64), "memory_mb": (64, 65536)}  # fmt: skip
_KEYS = ("name", "entry", "product_id", "security_version", "debug", "max_threads",
         "memory_mb", "files", "allowed_env")  # fmt: skip
_REQUIRED = ("name", "entry")
_DEFAULTS: dict[str, object] = {"product_id": 0, "security_version": 0, "debug": False,
                                "max_threads": 4, "memory_mb": 256, "files": [],
                                "allowed_env": []}  # fmt: skip
_TYPE_NAMES = {bool: "boolean", int: "integer", float: "float", str: "string",
               list: "array", tuple: "array", dict: "table"}  # fmt: skip
_SHOW_MAX = 60


def _type_name(value: object) -> str:
    """Name a Python value's type the way TOML spells it."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _show(value: object) -> str:
    """Describe ``value`` briefly and safely (no unbounded repr of hostile data)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 64 else f"a {value.bit_length()}-bit integer"
    if isinstance(value, str):
        return repr(value if len(value) <= _SHOW_MAX else value[:_SHOW_MAX] + "...")
    return f"a {_type_name(value)}"


def _fail(source: str, key: str, text: str) -> ConfigError:
    """Build a ConfigError naming the source and the key; ``text`` says problem and fix."""
    return ConfigError(f"{source}: key {key!r} {text}")


def _typed(source: str, key: str, value: object, kind: type[_T], expected: str) -> _T:
    """Return ``value`` if it is exactly of ``kind`` (so a bool is never an int), else raise."""
    if type(value) is kind and isinstance(value, kind):
        return value
    got = f"{_type_name(value)} {_show(value)}"
    note = " (true/false are booleans, not integers)" if type(value) is bool else ""
    raise _fail(source, key, f"must be {expected}, got {got}{note}; write {key} as {expected}")


def _check_int(source: str, key: str, value: object) -> int:
    """Validate an integer key against its range."""
    lo, hi = _INT_RANGES[key]
    number = _typed(source, key, value, int, f"an integer in {lo}..{hi}")
    if not lo <= number <= hi:
        fix = f"set {key} to a value from {lo} to {hi}"
        raise _fail(source, key, f"must be in {lo}..{hi}, got {_show(number)}; {fix}")
    return number


def _check_name(source: str, value: object) -> str:
    """Validate the app name."""
    name = _typed(source, "name", value, str, "a string")
    if _NAME_RE.fullmatch(name) is None:
        fix = "use 1-63 lowercase letters, digits, '_' or '-', starting with a letter or digit"
        raise _fail(source, "name", f"must match {_NAME_RE.pattern}, got {_show(name)}; {fix}")
    return name


def _path_problem(path: str) -> str | None:
    """Say why ``path`` is not a clean relative POSIX path, or return None."""
    parts = path.split("/")
    if not path:
        return "is empty"
    if "\\" in path:
        return "contains a backslash (use '/' as the separator)"
    if path.startswith("/"):
        return "is absolute (paths are relative to the app directory)"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path):
        return "contains a control character"
    if ".." in parts:
        return "has a '..' component (paths must stay inside the app directory)"
    if "" in parts or "." in parts:
        return "has an empty or '.' component (write it like 'dir/file.py')"
    return None


def _check_path(source: str, key: str, value: object) -> str:
    """Validate one relative POSIX path (or glob pattern)."""
    path = _typed(source, key, value, str, "a string (relative path)")
    problem = _path_problem(path)
    if problem is not None:
        fix = "use a relative POSIX path inside the app directory"
        raise _fail(source, key, f"path {_show(path)} {problem}; {fix}")
    return path


def _check_entry(source: str, value: object) -> str:
    """Validate the entry module path."""
    path = _check_path(source, "entry", value)
    base = path.rsplit("/", 1)[-1]
    if not base.endswith(".py") or base == ".py" or _GLOB_CHARS & set(path):
        fix = 'set entry to the trusted module, e.g. entry = "enclave.py"'
        raise _fail(source, "entry", f"must name one .py file (no glob), got {_show(path)}; {fix}")
    return path


def _check_env_name(source: str, key: str, value: object) -> str:
    """Validate one environment variable name against the syntax and the deny-list."""
    name = _typed(source, key, value, str, "a string")
    if _ENV_RE.fullmatch(name) is None:
        raise _fail(source, key, f"has invalid name {_show(name)}; use {_ENV_RE.pattern}")
    upper = name.upper()
    if upper in _ENV_DENY_NAMES or upper.startswith(_ENV_DENY_PREFIXES):
        raise _fail(
            source,
            key,
            f"may not include {name!r}: it would let the host steer the interpreter, the "
            "loader or the enklave runtime; remove it (names starting with PYTHON, LD_ or "
            "ENKLAVE_, GCONV_PATH and GLIBC_TUNABLES are never passed in)",
        )
    return name


def _check_array(
    source: str, key: str, value: object, check: Callable[[str, str, object], str]
) -> tuple[str, ...]:
    """Validate an array of strings item by item; return it sorted and de-duplicated."""
    is_array = isinstance(value, list | tuple)
    items: list[object] = list(value) if isinstance(value, list | tuple) else []
    wrong = [item for item in items if type(item) is not str][:1] if is_array else [value]
    if wrong:
        got = f"{_type_name(wrong[0])} {_show(wrong[0])}"
        raise _fail(source, key, f'must be an array of strings, got {got}; write {key} = ["..."]')
    return tuple(sorted({check(source, key, item) for item in items}))


def _validated(source: str, raw: dict[str, object]) -> dict[str, Any]:
    """Validate every field of ``raw`` and return the normalised field values."""
    return {
        "name": _check_name(source, raw["name"]),
        "entry": _check_entry(source, raw["entry"]),
        **{key: _check_int(source, key, raw[key]) for key in _INT_RANGES},
        "debug": _typed(source, "debug", raw["debug"], bool, "a boolean (true or false)"),
        "files": _check_array(source, "files", raw["files"], _check_path),
        "allowed_env": _check_array(source, "allowed_env", raw["allowed_env"], _check_env_name),
    }


def _check_keys(source: str, data: dict[object, object], *, require_all: bool) -> None:
    """Reject unknown keys and report missing required keys."""
    for key in data:
        if not isinstance(key, str) or key not in _KEYS:
            shown = _show(key)
            close: list[str] = []
            if isinstance(key, str) and len(key) <= _SHOW_MAX:
                close = difflib.get_close_matches(key, _KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{source}: unknown key {shown}{hint}; allowed keys are "
                f"{', '.join(_KEYS)}; rename or remove it"
            )
    for key in _KEYS if require_all else _REQUIRED:
        if key not in data:
            fix = "rebuild the bundle" if require_all else f'add it, e.g. {key} = "..."'
            raise ConfigError(f"{source}: missing required key {key!r}; {fix}")


@dataclass(frozen=True)
class AppConfig:
    """A validated ``enklave.toml``.

    Construct with :meth:`from_toml`, :meth:`load` or :meth:`from_canonical`; direct
    construction validates too. ``files`` and ``allowed_env`` are kept sorted and
    de-duplicated.

    Attributes:
        name: app name.
        entry: relative path of the trusted module.
        product_id: SGX ISVPRODID (0..65535).
        security_version: SGX ISVSVN (0..65535).
        debug: whether this is a debug enclave.
        max_threads: maximum concurrent ECALLs (1..64).
        memory_mb: enclave memory limit in MiB (64..65536).
        files: extra measured file paths or glob patterns.
        allowed_env: environment variables passed into the enclave.
    """

    name: str
    entry: str
    product_id: int = 0
    security_version: int = 0
    debug: bool = False
    max_threads: int = 4
    memory_mb: int = 256
    files: tuple[str, ...] = ()
    allowed_env: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Validate every field and normalise ``files`` and ``allowed_env``."""
        clean = _validated("AppConfig", {key: getattr(self, key) for key in _KEYS})
        object.__setattr__(self, "files", clean["files"])
        object.__setattr__(self, "allowed_env", clean["allowed_env"])

    @classmethod
    def _from_mapping(cls, data: object, source: str, *, canonical: bool) -> AppConfig:
        """Validate a decoded mapping and build the config from it."""
        if not isinstance(data, dict):
            raise ConfigError(
                f"{source}: expected a table of keys, got {_type_name(data)}; rebuild the bundle"
            )
        _check_keys(source, data, require_all=canonical)
        raw = {key: data.get(key, _DEFAULTS.get(key)) for key in _KEYS}
        clean = _validated(source, raw)
        if canonical and any(raw[key] != list(clean[key]) for key in ("files", "allowed_env")):
            raise ConfigError(
                f"{source}: keys 'files' and 'allowed_env' must be sorted, "
                "de-duplicated lists; rebuild the bundle"
            )
        return cls(**clean)

    @classmethod
    def from_toml(cls, text: str, *, source: str = CONFIG_FILENAME) -> AppConfig:
        """Parse and validate ``enklave.toml`` text.

        Args:
            text: the TOML document.
            source: where the text came from, used in error messages.

        Returns:
            The validated config, with defaults filled in.

        Raises:
            ConfigError: the TOML is malformed or any key is unknown, missing or invalid.
        """
        try:
            data = tomllib.loads(text)
        except (ValueError, RecursionError) as exc:  # TOMLDecodeError is a ValueError
            raise ConfigError(f"{source}: not valid TOML: {exc}; fix the syntax") from exc
        return cls._from_mapping(data, source, canonical=False)

    @classmethod
    def load(cls, app_dir: Path) -> AppConfig:
        """Read and validate ``app_dir/enklave.toml``.

        Args:
            app_dir: the app directory.

        Returns:
            The validated config.

        Raises:
            ConfigError: the file is missing, unreadable or invalid.
        """
        path = Path(app_dir) / CONFIG_FILENAME
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ConfigError(
                f"{path}: no {CONFIG_FILENAME} found; run `enklave new NAME` "
                f"or create the file with name and entry keys"
            ) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read ({exc}); save it as UTF-8 text") from exc
        return cls.from_toml(text, source=str(path))

    @classmethod
    def from_canonical(cls, data: object) -> AppConfig:
        """Rebuild a config from :meth:`to_canonical` output read from a bundle.

        Args:
            data: decoded data, possibly hostile.

        Returns:
            The validated config.

        Raises:
            ConfigError: ``data`` is not exactly a canonical config.
        """
        return cls._from_mapping(data, "bundle config", canonical=True)

    def to_canonical(self) -> dict[str, object]:
        """Return every field as plain str/int/bool/list data, deterministically."""
        data: dict[str, object] = {key: getattr(self, key) for key in _KEYS}
        data["files"] = sorted(set(self.files))
        data["allowed_env"] = sorted(set(self.allowed_env))
        return data

    def resolve_files(self, app_dir: Path) -> list[str]:
        """List the measured files: the entry plus every match of ``files``.

        Args:
            app_dir: the app directory the paths are relative to.

        Returns:
            Sorted, unique relative POSIX paths of regular files, skipping
            ``__pycache__`` directories and ``.pyc`` files.

        Raises:
            ConfigError: the entry is missing, a pattern matches no file, or a match
                resolves outside ``app_dir`` (symlink escape).
        """
        base = Path(app_dir)
        try:
            root = base.resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            raise ConfigError(
                f"app directory {base} cannot be resolved: {exc}; check the path"
            ) from exc
        entry = base / self.entry
        _ensure_inside(entry, root, "entry")
        if not entry.is_file():
            problem = f"names {self.entry!r}, which is not a regular file in {base}"
            raise _fail(CONFIG_FILENAME, "entry", f"{problem}; create the file or fix entry")
        found = {self.entry}
        for pattern in self.files:
            found.update(_glob_files(base, root, pattern))
        return sorted(found)


def _ensure_inside(path: Path, root: Path, key: str) -> None:
    """Raise ConfigError if ``path`` resolves outside ``root`` (or cannot be resolved)."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"{path}: cannot resolve ({exc}); fix or remove the link") from exc
    if resolved != root and not resolved.is_relative_to(root):
        problem = f"matches {path}, which resolves outside the app directory to {resolved}"
        fix = "remove the symlink or copy the file into the app directory"
        raise _fail(CONFIG_FILENAME, key, f"{problem}; {fix}")


def _glob_files(base: Path, root: Path, pattern: str) -> list[str]:
    """Return the regular files under ``base`` matched by ``pattern`` (relative paths)."""
    matches: list[str] = []
    try:
        candidates = sorted(base.glob(pattern))
    except (OSError, ValueError) as exc:
        problem = f"has a bad pattern {pattern!r} ({exc}); fix the pattern"
        raise _fail(CONFIG_FILENAME, "files", problem) from exc
    for path in candidates:
        rel = path.relative_to(base)
        if "__pycache__" in rel.parts or rel.suffix == ".pyc":
            continue
        _ensure_inside(path, root, "files")
        if path.is_file():
            matches.append(rel.as_posix())
    if not matches:
        problem = f"pattern {pattern!r} matches no regular file (directories, __pycache__"
        fix = "fix or remove the pattern; to include a directory use 'dir/**/*'"
        raise _fail(CONFIG_FILENAME, "files", f"{problem} and .pyc are skipped); {fix}")
    return matches


def scaffold_toml(name: str) -> str:
    """Return the commented default ``enklave.toml`` that ``enklave new NAME`` writes.

    Args:
        name: the app name.

    Returns:
        TOML text that :meth:`AppConfig.from_toml` accepts.

    Raises:
        ConfigError: ``name`` is not a valid app name.
    """
    _check_name("enklave new", name)
    return f"""\
# enklave.toml: the configuration of enclave app "{name}".

name = "{name}"                # [a-z0-9][a-z0-9_-]{{0,62}}
entry = "enclave.py"           # the trusted module, relative to this directory

product_id = 0                 # 0..65535, SGX ISVPRODID
security_version = 0           # 0..65535, SGX ISVSVN; raise it for every security fix
debug = false                  # true: debug enclave (tracebacks leave the enclave)
max_threads = 4                # 1..64 concurrent ECALLs (like SGX NumTCS)
memory_mb = 256                # 64..65536 MiB enclave memory limit

# Extra measured files or globs (relative; ** recurses), e.g. ["helpers.py", "data/*.json"]
files = []

# Environment variables passed into the enclave; all others are dropped.
allowed_env = []
"""
