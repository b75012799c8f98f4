"""A tiny deterministic TOML writer for Gramine manifests (the subset they need).

Values: strings, booleans, integers, arrays of strings, arrays of flat inline tables,
and flat inline tables. Keys are emitted as dotted keys, in the order given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["TomlTable", "TomlValue", "dumps_toml"]

TomlScalar = str | bool | int
TomlTable = Mapping[str, TomlScalar]
TomlValue = TomlScalar | TomlTable | Sequence[str] | Sequence[TomlTable]

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}  # fmt: skip


def _string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _scalar(value: TomlScalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return _string(value)


def _inline(table: Mapping[str, TomlScalar]) -> str:
    return "{ " + ", ".join(f"{k} = {_scalar(v)}" for k, v in table.items()) + " }"


def _value(value: TomlValue) -> str:
    if isinstance(value, str | bool | int):
        return _scalar(value)
    if isinstance(value, Mapping):
        return _inline(value)
    items = [_inline(v) if isinstance(v, Mapping) else _scalar(v) for v in value]
    if not items:
        return "[]"
    return "[\n" + "".join(f"  {item},\n" for item in items) + "]"


def dumps_toml(entries: Sequence[tuple[str, TomlValue]], *, header: str = "") -> str:
    """Render ``(dotted key, value)`` pairs, one per line, after ``header`` comment lines."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines += [f"{key} = {_value(value)}" for key, value in entries]
    return "\n".join(lines) + "\n"
