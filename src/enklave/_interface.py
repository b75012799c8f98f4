"""Typed, bounded ECALL/OCALL declarations: canonical descriptors and compiled checkers.

A declared function becomes a :class:`FunctionSpec` whose descriptor is plain,
CBOR-friendly data hashed into the enclave measurement. Type descriptor grammar::

    T := ["none"] | ["bool"] | ["float"] | ["int", lo, hi]
       | ["str", maxlen] | ["bytes", maxlen]          # str length in characters
       | ["list", maxlen, T] | ["map", maxlen, T]      # map: dict[str, T]
       | ["dict", [[key, T, required], ...]]          # TypedDict, keys strictly sorted
       | ["optional", T]                              # T is not none/optional

Containers (list, map, dict) nest at most :data:`MAX_DEPTH` deep. Each descriptor is
compiled once into a closure; checking a value never re-reads the descriptor.
"""

from __future__ import annotations

import copy
import inspect
import json
import keyword
import re
import reprlib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NotRequired, Required, Union, cast

from .errors import BoundsError, InterfaceError

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MAX_DEPTH",
    "TYPE_DESCRIPTOR_NESTING",
    "Descriptor",
    "FunctionSpec",
    "Interface",
    "Kind",
    "MaxLen",
    "Range",
    "compile_checker",
    "describe_type",
]

Descriptor = list[object]
Kind = Literal["ecall", "ocall"]
_Check = Callable[[object], object]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_WIRE_MIN, _WIRE_MAX = -(2**64), 2**64 - 1  # what deterministic CBOR can carry
MAX_DEPTH = 8
# Worst-case CBOR container nesting of one type descriptor: each container level may be
# ["optional", ["dict", [[key, T, req]]]] (4 levels), plus an optional scalar leaf (2).
TYPE_DESCRIPTOR_NESTING = 4 * MAX_DEPTH + 2
_SURROGATE = re.compile("[\ud800-\udfff]")
_FN_KEYS = frozenset({"name", "kind", "params", "defaults", "returns"})
_IFACE_KEYS = frozenset({"version", "ecalls", "ocalls"})
_ARITY = {
    "none": 1,
    "bool": 1,
    "float": 1,
    "int": 3,
    "str": 2,
    "bytes": 2,
    "list": 3,
    "map": 3,
    "dict": 2,
    "optional": 2,
}
_SIMPLE: dict[object, str] = {
    None: "none",
    type(None): "none",
    bool: "bool",
    float: "float",
    int: "int",
    str: "str",
    bytes: "bytes",
}
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 48
_CORRUPT = "the descriptor is corrupt or from an incompatible enklave version"


@dataclass(frozen=True)
class MaxLen:
    """Bound for ``Annotated[...]``: at most ``n`` characters, bytes, items or keys."""

    n: int

    def __post_init__(self) -> None:
        if type(self.n) is not int or not 0 <= self.n <= _WIRE_MAX:
            raise InterfaceError(f"MaxLen needs an int in 0..2**64-1, got {_brief(self.n)}")


@dataclass(frozen=True)
class Range:
    """Bound for ``Annotated[int, ...]``: ``lo <= value <= hi`` (both inclusive)."""

    lo: int
    hi: int

    def __post_init__(self) -> None:
        if not (_is_wire_int(self.lo) and _is_wire_int(self.hi) and self.lo <= self.hi):
            raise InterfaceError(
                f"Range needs ints lo <= hi within -2**64..2**64-1, "
                f"got Range({_brief(self.lo)}, {_brief(self.hi)})"
            )


def _is_wire_int(v: object) -> bool:
    return type(v) is int and _WIRE_MIN <= v <= _WIRE_MAX


def _brief(v: object) -> str:
    try:
        return _REPR.repr(v)
    except Exception:  # huge ints (ValueError) or hostile __repr__
        return _show(v)


def _show(v: object) -> str:
    """Describe a checked value without dumping it (it may be huge or secret)."""
    t = type(v)
    if t is str:
        s = cast(str, v)
        bad = "" if s.isascii() or _SURROGATE.search(s) is None else " with a lone surrogate"
        return f"str of {len(s)} characters{bad}"
    if t is bytes or t is list or t is dict:
        unit = "bytes" if t is bytes else "items"
        return f"{t.__name__} of {len(cast(bytes, v))} {unit}"
    if t is int:
        i = cast(int, v)
        return f"int {i}" if i.bit_length() <= 128 else f"int of {i.bit_length()} bits"
    if v is None or t is bool or t is float:
        return f"{t.__name__ if v is not None else ''} {v!r}".strip()
    return t.__qualname__


# --------------------------------------------------------------- describe_type


def describe_type(annotation: object, *, where: str) -> Descriptor:
    """Turn a resolved annotation into a type descriptor.

    Args:
        annotation: a type hint resolved with ``get_type_hints(..., include_extras=True)``.
        where: what is being described, e.g. ``"parameter 'name' of greet"``.

    Returns:
        The canonical type descriptor (see the module docstring).

    Raises:
        InterfaceError: the type is unsupported, lacks a bound, or nests too deep.
    """
    base, maxlen, rng, qual = _split(annotation, where)
    if qual is not None:
        raise InterfaceError(f"{where}: Required/NotRequired only apply to TypedDict fields")
    return _check_desc(_describe(base, maxlen, rng, where, 0), where, 0)


def _split(tp: object, where: str) -> tuple[object, MaxLen | None, Range | None, str | None]:
    """Peel Annotated/Required/NotRequired off ``tp``, collecting enklave markers."""
    maxlen: MaxLen | None = None
    rng: Range | None = None
    qual: str | None = None
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp, *meta = typing.get_args(tp)
            for m in meta:
                if isinstance(m, MaxLen | Range):
                    if (maxlen if isinstance(m, MaxLen) else rng) is not None:
                        raise InterfaceError(
                            f"{where}: more than one {type(m).__name__}; keep exactly one"
                        )
                    maxlen, rng = (m, rng) if isinstance(m, MaxLen) else (maxlen, m)
        elif origin is Required or origin is NotRequired:
            qual = "required" if origin is Required else "not_required"
            tp = typing.get_args(tp)[0]
        else:
            return tp, maxlen, rng, qual


def _no_markers(where: str, what: str, maxlen: object, rng: object, *, ok: str = "") -> None:
    if maxlen is not None and ok != "maxlen":
        raise InterfaceError(
            f"{where}: MaxLen does not apply to {what}; remove it "
            "(use Range(lo, hi) to bound an int)"
        )
    if rng is not None and ok != "range":
        raise InterfaceError(
            f"{where}: Range applies only to int, not {what}; remove it "
            "(use MaxLen(n) to bound a length)"
        )


def _describe(
    tp: object, maxlen: MaxLen | None, rng: Range | None, where: str, depth: int
) -> Descriptor:
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        return _describe_optional(tp, maxlen, rng, where, depth)
    tag = _SIMPLE.get(tp) if isinstance(tp, type) or tp is None else None
    if tag is not None:
        _no_markers(
            where,
            tag,
            maxlen,
            rng,
            ok={"int": "range", "str": "maxlen", "bytes": "maxlen"}.get(tag, ""),
        )
        if tag == "int":
            return ["int", rng.lo, rng.hi] if rng else ["int", INT64_MIN, INT64_MAX]
        if tag in ("str", "bytes"):
            if maxlen is None:
                raise InterfaceError(
                    f"{where}: {tag} needs a bound, write Annotated[{tag}, MaxLen(n)]"
                )
            return [tag, maxlen.n]
        return [tag]
    if tp is list or origin is list or tp is dict or origin is dict:
        return _describe_container(tp, maxlen, rng, where, depth)
    if typing.is_typeddict(tp):
        return _describe_typeddict(tp, maxlen, rng, where, depth)
    raise InterfaceError(f"{where}: {_unsupported(tp)}")


def _unsupported(tp: object) -> str:
    allowed = (
        "only None, bool, int, float, str, bytes, list[T], dict[str, T], "
        "TypedDict and T | None cross the boundary"
    )
    origin = typing.get_origin(tp) or tp
    if tp is Any or tp is object:
        return f"{'Any' if tp is Any else 'object'} is not allowed; declare a concrete type"
    if isinstance(tp, str | typing.ForwardRef):
        return f"unresolved forward reference {tp!r}; define the type at module level"
    if origin is tuple or origin in (set, frozenset):
        return f"{origin.__name__} is not supported; use Annotated[list[T], MaxLen(n)]"
    if isinstance(tp, type):
        return f"class {tp.__qualname__} is not supported; {allowed}"
    return f"{_brief(tp)} is not supported; {allowed}"


def _describe_optional(
    tp: object, maxlen: MaxLen | None, rng: Range | None, where: str, depth: int
) -> Descriptor:
    args = typing.get_args(tp)
    rest = [a for a in args if a is not type(None)]
    if len(args) != 2 or len(rest) != 1:
        raise InterfaceError(
            f"{where}: only 'T | None' unions are supported, got {_brief(tp)}; "
            "split the call or use a TypedDict with optional fields"
        )
    if maxlen is not None or rng is not None:
        raise InterfaceError(
            f"{where}: put MaxLen/Range inside the optional, e.g. Annotated[str, MaxLen(n)] | None"
        )
    base, ml, rg, qual = _split(rest[0], where)
    if qual is not None:
        raise InterfaceError(f"{where}: write NotRequired[T | None], not NotRequired[T] | None")
    inner = _describe(base, ml, rg, where, depth)
    if inner[0] in ("none", "optional"):
        raise InterfaceError(f"{where}: {_brief(tp)} is not a plain 'T | None'; simplify it")
    return ["optional", inner]


def _depth_ok(where: str, depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise InterfaceError(
            f"{where}: containers nest deeper than {MAX_DEPTH} levels; flatten the type"
        )


def _describe_container(
    tp: object, maxlen: MaxLen | None, rng: Range | None, where: str, depth: int
) -> Descriptor:
    is_list = tp is list or typing.get_origin(tp) is list
    shape = "list[T]" if is_list else "dict[str, V]"
    _no_markers(where, "list" if is_list else "dict", None, rng)
    args = typing.get_args(tp)
    if len(args) != (1 if is_list else 2) or (not is_list and args[0] is not str):
        raise InterfaceError(
            f"{where}: write {shape} with concrete types"
            + ("" if is_list else " (keys must be plain str)")
        )
    if maxlen is None:
        raise InterfaceError(
            f"{where}: {shape.split('[')[0]} needs a bound, write Annotated[{shape}, MaxLen(n)]"
        )
    _depth_ok(where, depth)
    inner_where = f"{where}, {'list item' if is_list else 'dict value'}"
    base, ml, rg, qual = _split(args[-1], inner_where)
    if qual is not None:
        raise InterfaceError(f"{inner_where}: Required/NotRequired only apply to TypedDict fields")
    return ["list" if is_list else "map", maxlen.n, _describe(base, ml, rg, inner_where, depth + 1)]


def _describe_typeddict(
    tp: Any, maxlen: MaxLen | None, rng: Range | None, where: str, depth: int
) -> Descriptor:
    name = tp.__qualname__
    _no_markers(where, f"TypedDict {name}", maxlen, rng)
    _depth_ok(where, depth)
    try:
        hints = typing.get_type_hints(tp, include_extras=True)
    except Exception as exc:
        raise InterfaceError(
            f"{where}: cannot resolve the field types of {name} ({exc}); "
            "define the types it uses at module level"
        ) from exc
    fields: list[object] = []
    for key in sorted(hints):
        fwhere = f"{where}, field {key!r} of {name}"
        base, ml, rg, qual = _split(hints[key], fwhere)
        desc = _describe(base, ml, rg, fwhere, depth + 1)
        # __required_keys__ is wrong on 3.11 for postponed Required/NotRequired hints.
        required = qual == "required" if qual else key in tp.__required_keys__
        fields.append([key, desc, required])
    return ["dict", fields]


# ----------------------------------------------------- descriptor validation


def _check_desc(d: object, where: str, depth: int) -> Descriptor:
    """Validate a (possibly hostile) type descriptor and return a fresh canonical copy."""
    arity = _ARITY.get(d[0], -1) if type(d) is list and d and type(d[0]) is str else -1
    if type(d) is not list or len(d) != arity:
        raise InterfaceError(f"{where}: invalid type descriptor {_brief(d)}; {_CORRUPT}")
    tag = cast(str, d[0])
    ok = True
    if tag == "int":
        ok = _is_wire_int(d[1]) and _is_wire_int(d[2]) and cast(int, d[1]) <= cast(int, d[2])
    elif tag in ("str", "bytes", "list", "map"):
        ok = _is_wire_int(d[1]) and cast(int, d[1]) >= 0
    if not ok:
        raise InterfaceError(f"{where}: invalid bounds in {_brief(d)}; {_CORRUPT}")
    if tag == "optional":
        inner = _check_desc(d[1], where, depth)
        if inner[0] in ("none", "optional"):
            raise InterfaceError(f"{where}: {_brief(d)} is not canonical; {_CORRUPT}")
        return [tag, inner]
    if tag in ("list", "map", "dict"):
        _depth_ok(where, depth)
    if tag in ("list", "map"):
        return [tag, d[1], _check_desc(d[2], where, depth + 1)]
    if tag == "dict":
        return ["dict", _check_fields(d[1], where, depth + 1)]
    return list(d)


def _check_fields(fields: object, where: str, depth: int) -> list[object]:
    if type(fields) is not list:
        raise InterfaceError(f"{where}: dict fields must be a list; {_CORRUPT}")
    out: list[object] = []
    last: str | None = None
    for f in fields:
        if (
            type(f) is not list
            or len(f) != 3
            or type(f[0]) is not str
            or _SURROGATE.search(f[0])
            or type(f[2]) is not bool
            or (last is not None and f[0] <= last)
        ):
            raise InterfaceError(
                f"{where}: invalid dict field {_brief(f)} (need [key, T, "
                f"required] with unique sorted str keys); {_CORRUPT}"
            )
        last = f[0]
        out.append([f[0], _check_desc(f[1], f"{where}, field {f[0]!r}", depth), f[2]])
    return out


# ------------------------------------------------------------ compiled checkers


class _Violation(Exception):
    """Internal: a value misfits; containers prepend their path segment on the way out."""

    def __init__(self, expected: str, got: object, hint: str, *, said: str = "") -> None:
        super().__init__(expected)
        self.expected, self.got, self.hint = expected, said or _show(got), hint
        self.path: list[str] = []


def _seg(key: object) -> str:
    text = json.dumps(key) if type(key) is str else _brief(key)
    return f"[{text if len(text) <= 64 else text[:60] + '...'}]"


def _bounds(subject: str, root: str, exc: _Violation) -> BoundsError:
    path = root + "".join(reversed(exc.path))
    return BoundsError(f"{subject}: at {path}: expected {exc.expected}, got {exc.got}; {exc.hint}")


def _compile(d: Descriptor) -> _Check:
    return _BUILDERS[cast(str, d[0])](d)


def _scalar(d: Descriptor) -> _Check:
    tag = cast(str, d[0])
    if tag == "none":

        def none(v: object) -> object:
            if v is None:
                return v
            raise _Violation("None", v, "pass None")

        return none
    if tag == "bool":

        def boolean(v: object) -> object:
            if type(v) is bool:
                return v
            raise _Violation("bool", v, "pass True or False")

        return boolean

    def flt(v: object) -> object:
        if type(v) is float:
            return v
        if type(v) is int:
            try:
                return float(v)
            except OverflowError:
                pass
        raise _Violation("float", v, "pass a float (int is accepted if it fits)")

    return flt


def _int(d: Descriptor) -> _Check:
    lo, hi = cast(int, d[1]), cast(int, d[2])
    expected = f"int in [{lo}, {hi}]"

    def check(v: object) -> object:
        if type(v) is int and lo <= v <= hi:
            return v
        hint = (
            "bool is not accepted for int; pass int(value)"
            if type(v) is bool
            else "pass a value inside the range or widen Range in the declaration"
            if type(v) is int
            else "pass an int"
        )
        raise _Violation(expected, v, hint)

    return check


def _sized(d: Descriptor) -> _Check:
    n = cast(int, d[1])
    if d[0] == "bytes":

        def check_bytes(v: object) -> object:
            if type(v) is bytes and len(v) <= n:
                return v
            raise _Violation(
                f"bytes of at most {n} bytes",
                v,
                "pass bytes (not bytearray or memoryview) no longer than MaxLen, or raise MaxLen",
            )

        return check_bytes

    def check_str(v: object) -> object:
        if type(v) is str and len(v) <= n and (v.isascii() or _SURROGATE.search(v) is None):
            return v
        raise _Violation(
            f"str of at most {n} characters without lone surrogates",
            v,
            "pass a valid str no longer than MaxLen, or raise MaxLen",
        )

    return check_str


def _optional(d: Descriptor) -> _Check:
    inner = _compile(cast(Descriptor, d[1]))

    def check(v: object) -> object:
        if v is None:
            return v
        try:
            return inner(v)
        except _Violation as exc:
            if not exc.path:
                exc.expected += " or None"
            raise

    return check


def _sequence(d: Descriptor) -> _Check:
    n, item = cast(int, d[1]), _compile(cast(Descriptor, d[2]))
    expected = f"list of at most {n} items"

    def check(v: object) -> object:
        if type(v) is not list or len(v) > n:
            raise _Violation(expected, v, "pass a list (not a tuple) within MaxLen")
        out, i = v, 0
        try:
            for i, x in enumerate(v):
                y = item(x)
                if y is not x:
                    out = v.copy() if out is v else out
                    out[i] = y
        except _Violation as exc:
            exc.path.append(f"[{i}]")
            raise
        return out

    return check


def _mapping(d: Descriptor) -> _Check:
    n, value = cast(int, d[1]), _compile(cast(Descriptor, d[2]))
    expected = f"dict of at most {n} items with str keys"

    def check(v: object) -> object:
        if type(v) is not dict or len(v) > n:
            raise _Violation(expected, v, "pass a dict within MaxLen")
        out, k = v, None
        try:
            for k, x in v.items():
                if type(k) is not str or not (k.isascii() or _SURROGATE.search(k) is None):
                    raise _Violation("a valid str key", k, "use str keys")
                y = value(x)
                if y is not x:
                    out = v.copy() if out is v else out
                    out[k] = y
        except _Violation as exc:
            exc.path.append(_seg(k))
            raise
        return out

    return check


def _record(d: Descriptor) -> _Check:
    fields = [(f[0], _compile(f[1]), f[2]) for f in cast(list[list[Any]], d[1])]
    keys = frozenset(f[0] for f in fields)
    expected = f"dict with keys {sorted(keys)}"

    def check(v: object) -> object:
        if type(v) is not dict:
            raise _Violation(expected, v, "pass a dict")
        out, seen, key = v, 0, None
        try:
            for key, item, required in fields:
                if key in v:
                    seen += 1
                    x = v[key]
                    y = item(x)
                    if y is not x:
                        out = v.copy() if out is v else out
                        out[key] = y
                elif required:
                    raise _Violation("a value", None, "add this required key", said="nothing")
            if seen != len(v):
                key = min((k for k in v if k not in keys), key=_brief)
                raise _Violation(
                    "no such key",
                    None,
                    f"remove it; allowed keys: {sorted(keys)}",
                    said="an unknown key",
                )
        except _Violation as exc:
            exc.path.append(_seg(key))
            raise
        return out

    return check


_BUILDERS: dict[str, Callable[[Descriptor], _Check]] = {
    "none": _scalar,
    "bool": _scalar,
    "float": _scalar,
    "int": _int,
    "str": _sized,
    "bytes": _sized,
    "optional": _optional,
    "list": _sequence,
    "map": _mapping,
    "dict": _record,
}


def compile_checker(descriptor: object, *, where: str) -> Callable[[object], object]:
    """Compile a type descriptor into ``check(value) -> value`` (possibly normalised).

    Raises:
        InterfaceError: ``descriptor`` is malformed (at compile time).
        BoundsError: from the returned checker, when a value does not fit.
    """
    check = _compile(_check_desc(descriptor, where, 0))

    def checked(value: object) -> object:
        try:
            return check(value)
        except _Violation as exc:
            raise _bounds(where, "value", exc) from None

    return checked


# ------------------------------------------------------------------ functions


def _check_name(name: object, what: str) -> str:
    if (
        type(name) is not str
        or not name.isidentifier()
        or keyword.iskeyword(name)
        or name.startswith("_")
    ):
        raise InterfaceError(
            f"{what} name {_brief(name)} is invalid; use a Python identifier "
            "that is not a keyword and does not start with '_'"
        )
    return name


def _same(a: object, b: object) -> bool:
    """Strict equality that also compares types (1 != 1.0 here); values are wire data."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if type(a) is list:
        return len(a) == len(cast(list[object], b)) and all(map(_same, a, cast(list[object], b)))
    if type(a) is dict:
        bd = cast(dict[object, object], b)
        return a.keys() == bd.keys() and all(_same(a[k], bd[k]) for k in a)
    return a == b


@dataclass(frozen=True, eq=False)
class FunctionSpec:
    """One declared ECALL or OCALL, validated and compiled.

    Construct with :meth:`from_function` or :meth:`from_descriptor`. Direct construction
    validates every field too. Equality is equality of :meth:`descriptor`.

    Attributes:
        name: the function name (an identifier not starting with ``_``).
        params: ``(name, type descriptor)`` per parameter, in declaration order.
        defaults: default values of the trailing parameters that have one.
        returns: the result type descriptor.
        kind: ``"ecall"`` (host -> enclave) or ``"ocall"`` (enclave -> host).
        check_args: ``check_args(values) -> values``: check a full positional argument
            list; returns it (possibly normalised). Raises BoundsError for a wrong
            count, or a value that does not fit its declared type.
        check_result: ``check_result(value) -> value``: check a result value; returns it
            (possibly normalised). Raises BoundsError when it does not fit.

    The two checkers are closures compiled once from the descriptors (stored as
    attributes, so a call costs no method dispatch on the ECALL path).
    """

    name: str
    params: tuple[tuple[str, Descriptor], ...]
    defaults: Mapping[str, object]
    returns: Descriptor
    kind: Kind
    _desc: dict[str, Any] = field(init=False, repr=False)
    check_args: Callable[[list[object]], list[object]] = field(init=False, repr=False)
    check_result: _Check = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ("ecall", "ocall"):
            raise InterfaceError(f"kind must be 'ecall' or 'ocall', got {_brief(self.kind)}")
        name = _check_name(self.name, self.kind)
        params = self._validated_params()
        returns = _check_desc(self.returns, f"result of {name}", 0)
        checks = [_compile(d) for _, d in params]
        defaults = self._validated_defaults([p for p, _ in params], checks)
        desc = {
            "name": name,
            "kind": self.kind,
            "params": [[p, d] for p, d in params],
            "defaults": copy.deepcopy(defaults),
            "returns": returns,
        }
        setattr_ = object.__setattr__
        setattr_(self, "params", tuple((p, copy.deepcopy(d)) for p, d in params))
        setattr_(self, "returns", copy.deepcopy(returns))
        setattr_(self, "defaults", types.MappingProxyType(copy.deepcopy(defaults)))
        setattr_(self, "_desc", desc)
        setattr_(self, "check_args", _args_checker(f"{self.kind} {name}", params, checks))
        setattr_(self, "check_result", _result_checker(f"{self.kind} {name}", returns))

    def _validated_params(self) -> list[tuple[str, Descriptor]]:
        if not isinstance(self.params, tuple | list):
            raise InterfaceError(f"params of {self.name} must be a sequence of (name, type)")
        out: list[tuple[str, Descriptor]] = []
        for item in self.params:
            pname = item[0] if isinstance(item, tuple | list) and len(item) == 2 else None
            if type(pname) is not str or not pname.isidentifier() or keyword.iskeyword(pname):
                raise InterfaceError(
                    f"{self.name}: invalid parameter entry {_brief(item)}; "
                    "need (identifier, type descriptor)"
                )
            if any(pname == p for p, _ in out):
                raise InterfaceError(f"{self.name}: parameter {pname!r} appears twice")
            out.append((pname, _check_desc(item[1], f"parameter {pname!r} of {self.name}", 0)))
        return out

    def _validated_defaults(self, names: list[str], checks: list[_Check]) -> dict[str, object]:
        given = self.defaults
        if not isinstance(given, Mapping) or any(k not in names for k in given):
            raise InterfaceError(
                f"{self.name}: defaults must map parameter names to values, got {_brief(given)}"
            )
        first = next((i for i, p in enumerate(names) if p in given), len(names))
        if any(p not in given for p in names[first:]):
            raise InterfaceError(f"{self.name}: parameters with defaults must come last")
        out: dict[str, object] = {}
        for pname, check in zip(names, checks):
            if pname in given:
                try:
                    out[pname] = check(given[pname])
                except _Violation as exc:
                    err = _bounds(f"default of parameter {pname!r} of {self.name}", pname, exc)
                    raise InterfaceError(f"{err}; or change the default") from None
        return out

    @classmethod
    def from_function(cls, fn: Callable[..., object], *, kind: Kind) -> FunctionSpec:
        """Build a spec from a type-hinted function declaration.

        Raises:
            InterfaceError: bad name, parameter kind, annotation, bound or default.
        """
        name = _check_name(getattr(fn, "__name__", None), str(kind))
        try:
            hints = typing.get_type_hints(fn, include_extras=True)
            sig = inspect.signature(fn)
        except Exception as exc:
            raise InterfaceError(
                f"{kind} {name}: cannot read its signature or resolve its type "
                f"hints ({exc}); define the types it uses at module level"
            ) from exc
        params: list[tuple[str, Descriptor]] = []
        defaults: dict[str, object] = {}
        for p in sig.parameters.values():
            where = f"parameter {p.name!r} of {name}"
            if p.kind is not p.POSITIONAL_OR_KEYWORD:
                raise InterfaceError(
                    f"{where}: {p.kind.description} parameters are not "
                    "supported; use plain positional-or-keyword parameters"
                )
            if p.name not in hints:
                raise InterfaceError(
                    f"{where}: missing type annotation; annotate it, e.g. Annotated[str, MaxLen(n)]"
                )
            params.append((p.name, describe_type(hints[p.name], where=where)))
            if p.default is not p.empty:
                defaults[p.name] = p.default
        if "return" not in hints:
            raise InterfaceError(
                f"result of {name}: missing return annotation; "
                "write '-> None' if it returns nothing"
            )
        returns = describe_type(hints["return"], where=f"result of {name}")
        return cls(name, tuple(params), defaults, returns, kind)

    @classmethod
    def from_descriptor(cls, d: object) -> FunctionSpec:
        """Rebuild a spec from :meth:`descriptor` output; hostile input raises InterfaceError."""
        if not isinstance(d, dict) or type(d) is not dict or d.keys() != _FN_KEYS:
            raise InterfaceError(
                f"function descriptor must be a dict with keys "
                f"{sorted(_FN_KEYS)}, got {_brief(d)}; {_CORRUPT}"
            )
        params, defaults = d["params"], d["defaults"]
        if (
            type(params) is not list
            or type(defaults) is not dict
            or any(type(p) is not list or len(p) != 2 for p in params)
        ):
            raise InterfaceError(
                f"function descriptor {_brief(d['name'])} has malformed "
                f"params or defaults; {_CORRUPT}"
            )
        spec = cls(
            d["name"], tuple((p[0], p[1]) for p in params), defaults, d["returns"], d["kind"]
        )
        if not all(_same(v, spec._desc["defaults"][k]) for k, v in defaults.items()):
            raise InterfaceError(f"{spec.name}: defaults are not in canonical form; {_CORRUPT}")
        return spec

    def descriptor(self) -> dict[str, object]:
        """Return the canonical plain-data descriptor (a fresh copy each call)."""
        return copy.deepcopy(self._desc)

    def bind(self, args: tuple[object, ...], kwargs: Mapping[str, object]) -> list[object]:
        """Map a Python call onto the full positional argument list, filling defaults.

        Raises:
            BoundsError: missing, unexpected or duplicated arguments.
        """
        if not kwargs and len(args) == len(self.params):
            return list(args)
        names = [p for p, _ in self.params]
        call = f"{self.kind} {self.name}()"
        if len(args) > len(names):
            raise BoundsError(
                f"{call} takes {len(names)} arguments but {len(args)} were given; "
                "drop the extra ones"
            )
        for key in kwargs:
            if key not in names:
                raise BoundsError(
                    f"{call} got an unexpected argument {key!r}; its parameters are {names}"
                )
            if names.index(key) < len(args):
                raise BoundsError(
                    f"{call} got multiple values for parameter {key!r}; "
                    "pass it either by position or by keyword"
                )
        out = list(args)
        for pname in names[len(args) :]:
            if pname in kwargs:
                out.append(kwargs[pname])
            elif pname in self._desc["defaults"]:
                out.append(copy.deepcopy(self._desc["defaults"][pname]))
            else:
                raise BoundsError(f"{call} is missing parameter {pname!r}; pass a value for it")
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FunctionSpec):
            return NotImplemented
        return bool(self._desc == other._desc)

    def __hash__(self) -> int:
        return hash((self.kind, self.name))


def _args_checker(
    subject: str, params: list[tuple[str, Descriptor]], checks: list[_Check]
) -> Callable[[list[object]], list[object]]:
    n = len(checks)

    def arity(values: object) -> BoundsError:
        return BoundsError(
            f"{subject}: expected a list of {n} argument values, got "
            f"{_show(values)}; pass every parameter in order (bind() fills "
            "defaults)"
        )

    if n == 0:

        def check_none(values: list[object]) -> list[object]:
            if type(values) is list and not values:
                return values
            raise arity(values)

        return check_none
    pairs = tuple(enumerate(checks))

    def check(values: list[object]) -> list[object]:
        if type(values) is not list or len(values) != n:
            raise arity(values)
        out, i = values, 0
        try:
            for i, c in pairs:
                x = values[i]
                y = c(x)
                if y is not x:
                    out = values.copy() if out is values else out
                    out[i] = y
        except _Violation as exc:
            raise _bounds(f"{subject}: parameter {params[i][0]!r}", params[i][0], exc) from None
        return out

    return check


def _result_checker(subject: str, returns: Descriptor) -> _Check:
    inner = _compile(returns)

    def check_none(value: object) -> object:
        if value is None:  # fast path for the common "-> None" ECALL/OCALL
            return value
        return check(value)

    def check(value: object) -> object:
        try:
            return inner(value)
        except _Violation as exc:
            raise _bounds(f"{subject}: result", "result", exc) from None

    return check_none if returns == ["none"] else check


# ------------------------------------------------------------------ interface


class Interface:
    """The full declared boundary: ECALLs and OCALLs, keyed and sorted by name.

    Equality is equality of :meth:`descriptor`, which is hashed into the measurement.
    """

    __slots__ = ("ecalls", "ocalls")

    def __init__(
        self,
        ecalls: Iterable[FunctionSpec] | Mapping[str, FunctionSpec] = (),
        ocalls: Iterable[FunctionSpec] | Mapping[str, FunctionSpec] = (),
    ) -> None:
        self.ecalls: Mapping[str, FunctionSpec] = _index(ecalls, "ecall")
        self.ocalls: Mapping[str, FunctionSpec] = _index(ocalls, "ocall")

    @classmethod
    def from_functions(
        cls,
        ecalls: Iterable[Callable[..., object]] = (),
        ocalls: Iterable[Callable[..., object]] = (),
    ) -> Interface:
        """Declare an interface from plain type-hinted functions.

        Raises:
            InterfaceError: a declaration is invalid or two of one kind share a name.
        """
        return cls(
            [FunctionSpec.from_function(f, kind="ecall") for f in ecalls],
            [FunctionSpec.from_function(f, kind="ocall") for f in ocalls],
        )

    @classmethod
    def from_descriptor(cls, d: object) -> Interface:
        """Rebuild from :meth:`descriptor` output; hostile input raises InterfaceError only."""
        if not isinstance(d, dict) or type(d) is not dict or d.keys() != _IFACE_KEYS:
            raise InterfaceError(
                f"interface descriptor must be a dict with keys "
                f"{sorted(_IFACE_KEYS)}, got {_brief(d)}; {_CORRUPT}"
            )
        if type(d["version"]) is not int or d["version"] != 1:
            raise InterfaceError(
                f"unsupported interface descriptor version "
                f"{_brief(d['version'])}; rebuild with this enklave"
            )
        groups: list[list[FunctionSpec]] = []
        for kind in ("ecall", "ocall"):
            entries = d[kind + "s"]
            if type(entries) is not list:
                raise InterfaceError(f"{kind}s must be a list; {_CORRUPT}")
            specs = [FunctionSpec.from_descriptor(e) for e in entries]
            names = [s.name for s in specs]
            if names != sorted(set(names)):
                raise InterfaceError(f"{kind}s are not sorted by unique name; {_CORRUPT}")
            groups.append(specs)
        return cls(*groups)

    def descriptor(self) -> dict[str, object]:
        """Return ``{"version": 1, "ecalls": [...], "ocalls": [...]}``, sorted by name."""
        return {
            "version": 1,
            "ecalls": [s.descriptor() for s in self.ecalls.values()],
            "ocalls": [s.descriptor() for s in self.ocalls.values()],
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Interface):
            return NotImplemented
        return self.descriptor() == other.descriptor()

    def __hash__(self) -> int:
        return hash((tuple(self.ecalls), tuple(self.ocalls)))

    def __repr__(self) -> str:
        return f"Interface(ecalls={list(self.ecalls)}, ocalls={list(self.ocalls)})"


def _index(
    specs: Iterable[FunctionSpec] | Mapping[str, FunctionSpec], kind: str
) -> Mapping[str, FunctionSpec]:
    if isinstance(specs, Mapping):
        if any(spec.name != key for key, spec in specs.items()):
            raise InterfaceError(f"{kind}s mapping keys must equal the spec names")
        specs = specs.values()
    table: dict[str, FunctionSpec] = {}
    for spec in specs:
        if not isinstance(spec, FunctionSpec) or spec.kind != kind:
            raise InterfaceError(
                f"{_brief(spec)} is not an {kind} FunctionSpec; list each "
                "function under its own kind"
            )
        if spec.name in table:
            raise InterfaceError(f"two {kind}s are named {spec.name!r}; rename one")
        table[spec.name] = spec
    return types.MappingProxyType(dict(sorted(table.items())))
