"""Unit tests for enklave._interface: descriptors, declarations, binding and checking."""

from __future__ import annotations

import functools
import typing
from typing import Annotated, Any, NotRequired, Optional, Required, TypedDict, Union

import pytest

from enklave._encoding import dumps
from enklave._interface import (
    INT64_MAX,
    INT64_MIN,
    MAX_DEPTH,
    TYPE_DESCRIPTOR_NESTING,
    FunctionSpec,
    Interface,
    MaxLen,
    Range,
    compile_checker,
    describe_type,
)
from enklave.errors import BoundsError, EncodingError, InterfaceError

Name = Annotated[str, MaxLen(64)]
Blob = Annotated[bytes, MaxLen(16)]


class Item(TypedDict):
    key: Annotated[str, MaxLen(8)]
    value: Blob


class Loose(TypedDict, total=False):
    must: Required[int]
    maybe: Annotated[str, MaxLen(4)]


class Mixed(TypedDict):
    a: int
    b: NotRequired[Annotated[float, "doc only"]]
    c: Annotated[NotRequired[bool], "doc"]


class Child(Loose):
    extra: float


class Deep(TypedDict):
    tags: Annotated[dict[str, Annotated[list[Item], MaxLen(3)]], MaxLen(4)]
    when: Optional[Annotated[int, Range(0, 10)]]  # noqa: UP045


class Unresolvable(TypedDict):
    x: NoSuchType  # type: ignore[name-defined]  # noqa: F821


class Bad(TypedDict):
    v: str


# ---- declared functions (module level so get_type_hints can resolve them) ----------------


def put(items: Annotated[list[Item], MaxLen(4)], ttl: Annotated[int, Range(0, 3600)] = 60) -> bool:
    raise NotImplementedError


def get(key: Name) -> Blob | None:
    raise NotImplementedError


def ping() -> None:
    raise NotImplementedError


def scale(x: float, factor: float = 2) -> float:
    raise NotImplementedError


def tagged(tags: Annotated[list[Name], MaxLen(2)] = ["a"]) -> None:  # noqa: B006
    raise NotImplementedError


def deep(d: Deep) -> Annotated[dict[str, int], MaxLen(2)]:
    raise NotImplementedError


def log(line: Annotated[str, MaxLen(200)]) -> None:
    raise NotImplementedError


def fetch(url: Annotated[str, MaxLen(100)]) -> Annotated[bytes, MaxLen(8)]:
    raise NotImplementedError


def star(*args: int) -> None:
    raise NotImplementedError


def kwstar(**kw: int) -> None:
    raise NotImplementedError


def posonly(a: int, /) -> None:
    raise NotImplementedError


def kwonly(*, a: int) -> None:
    raise NotImplementedError


def unannotated(a) -> None:  # type: ignore[no-untyped-def]
    raise NotImplementedError


def no_return(a: int):  # type: ignore[no-untyped-def]
    raise NotImplementedError


def _private() -> None:
    raise NotImplementedError


def bad_default(ttl: Annotated[int, Range(0, 10)] = 11) -> None:
    raise NotImplementedError


def bool_default(n: int = True) -> None:
    raise NotImplementedError


def unbounded(name: str) -> None:
    raise NotImplementedError


def dangling(x: Missing) -> None:  # type: ignore[name-defined]  # noqa: F821
    raise NotImplementedError


def spec(fn: Any, kind: str = "ecall") -> FunctionSpec:
    return FunctionSpec.from_function(fn, kind=kind)  # type: ignore[arg-type]


# ---- descriptor kinds ---------------------------------------------------------------------

W = "parameter 'p' of f"


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (None, ["none"]),
        (type(None), ["none"]),
        (bool, ["bool"]),
        (int, ["int", INT64_MIN, INT64_MAX]),
        (Annotated[int, Range(-5, 5)], ["int", -5, 5]),
        (Annotated[int, Range(0, 2**64 - 1)], ["int", 0, 2**64 - 1]),
        (float, ["float"]),
        (Annotated[str, MaxLen(3)], ["str", 3]),
        (Annotated[bytes, MaxLen(0)], ["bytes", 0]),
        (Annotated[list[bool], MaxLen(2)], ["list", 2, ["bool"]]),
        (Annotated[typing.List[float], MaxLen(2)], ["list", 2, ["float"]]),  # noqa: UP006
        (Annotated[dict[str, float], MaxLen(5)], ["map", 5, ["float"]]),
        (Annotated[str, MaxLen(3)] | None, ["optional", ["str", 3]]),
        (Optional[bool], ["optional", ["bool"]]),  # noqa: UP007, UP045
        (Union[None, float], ["optional", ["float"]]),  # noqa: UP007, UP045
        (Annotated[int, "doc", Range(1, 2)], ["int", 1, 2]),
        (Item, ["dict", [["key", ["str", 8], True], ["value", ["bytes", 16], True]]]),
    ],
)
def test_describes_each_kind(annotation: object, expected: list[object]) -> None:
    assert describe_type(annotation, where=W) == expected


def test_describes_total_false_typeddict_with_required() -> None:
    assert describe_type(Loose, where=W) == [
        "dict",
        [["maybe", ["str", 4], False], ["must", ["int", INT64_MIN, INT64_MAX], True]],
    ]


def test_describes_not_required_under_postponed_annotations() -> None:
    fields = typing.cast(list[list[object]], describe_type(Mixed, where=W)[1])
    assert [(f[0], f[2]) for f in fields] == [("a", True), ("b", False), ("c", False)]


def test_describes_inherited_typeddict() -> None:
    fields = typing.cast(list[list[object]], describe_type(Child, where=W)[1])
    assert [(f[0], f[2]) for f in fields] == [("extra", True), ("maybe", False), ("must", True)]


def test_describes_nested_types() -> None:
    item = describe_type(Item, where=W)
    assert describe_type(Deep, where=W) == [
        "dict",
        [
            ["tags", ["map", 4, ["list", 3, item]], True],
            ["when", ["optional", ["int", 0, 10]], True],
        ],
    ]


def nest(levels: int) -> object:
    tp: object = bool
    for _ in range(levels):
        tp = Annotated[list[tp], MaxLen(1)]  # type: ignore[valid-type]
    return tp


def test_accepts_max_depth_nesting() -> None:
    assert describe_type(nest(MAX_DEPTH), where=W)[0] == "list"


# ---- describe_type errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "fragment"),
    [
        (str, "str needs a bound, write Annotated[str, MaxLen(n)]"),
        (bytes, "bytes needs a bound"),
        (list[int], "list needs a bound"),
        (dict[str, int], "dict needs a bound"),
        (Annotated[list, MaxLen(2)], "write list[T]"),
        (Annotated[dict, MaxLen(2)], "write dict[str, V]"),
        (Annotated[dict[int, int], MaxLen(2)], "keys must be plain str"),
        (Annotated[dict[Name, int], MaxLen(2)], "keys must be plain str"),
        (Any, "Any is not allowed"),
        (object, "object is not allowed"),
        (int | str, "only 'T | None' unions"),
        (int | str | None, "only 'T | None' unions"),
        (tuple[int, int], "tuple is not supported"),
        (Annotated[set[int], MaxLen(2)], "set is not supported"),
        (frozenset[int], "frozenset is not supported"),
        (bytearray, "class bytearray is not supported"),
        (complex, "class complex is not supported"),
        (typing.Literal["a"], "is not supported"),
        ("Item", "unresolved forward reference"),
        (Annotated[str, Range(0, 1)], "Range applies only to int, not str"),
        (Annotated[float, Range(0, 1)], "Range applies only to int, not float"),
        (Annotated[list[int], Range(0, 1), MaxLen(1)], "Range applies only to int"),
        (Annotated[int, MaxLen(3)], "MaxLen does not apply to int"),
        (Annotated[bool, MaxLen(3)], "MaxLen does not apply to bool"),
        (Annotated[None, MaxLen(3)], "MaxLen does not apply to none"),
        (Annotated[Item, MaxLen(3)], "MaxLen does not apply to TypedDict Item"),
        (Annotated[Optional[str], MaxLen(3)], "put MaxLen/Range inside the optional"),  # noqa: UP007, UP045
        (Annotated[str, MaxLen(3), MaxLen(4)], "more than one MaxLen"),
        (Annotated[int, Range(0, 1), Range(0, 2)], "more than one Range"),
        (Required[int], "only apply to TypedDict fields"),
        (Optional[Annotated[Optional[bool], "x"]], "not a plain 'T | None'"),  # noqa: UP007, UP045
        (Unresolvable, "cannot resolve the field types of Unresolvable"),
        (nest(MAX_DEPTH + 1), f"deeper than {MAX_DEPTH} levels"),
    ],
)
def test_describe_rejects(annotation: object, fragment: str) -> None:
    with pytest.raises(InterfaceError) as info:
        describe_type(annotation, where=W)
    assert fragment in str(info.value)
    assert str(info.value).startswith(W)


def test_describe_error_names_nested_location() -> None:
    with pytest.raises(InterfaceError, match=r"list item, field 'v' of Bad: str needs a bound"):
        describe_type(Annotated[list[Bad], MaxLen(1)], where=W)


@pytest.mark.parametrize("n", [-1, True, 2**64, 1.0])
def test_maxlen_rejects_bad_bound(n: object) -> None:
    with pytest.raises(InterfaceError, match="MaxLen needs an int"):
        MaxLen(n)  # type: ignore[arg-type]


@pytest.mark.parametrize(("lo", "hi"), [(5, 1), (0, 2**64), (-(2**64) - 1, 0), (False, 1)])
def test_range_rejects_bad_bounds(lo: object, hi: object) -> None:
    with pytest.raises(InterfaceError, match="Range needs ints lo <= hi"):
        Range(lo, hi)  # type: ignore[arg-type]


# ---- FunctionSpec.from_function -----------------------------------------------------------


def test_from_function_builds_descriptor() -> None:
    assert spec(put).descriptor() == {
        "name": "put",
        "kind": "ecall",
        "params": [["items", ["list", 4, describe_type(Item, where=W)]], ["ttl", ["int", 0, 3600]]],
        "defaults": {"ttl": 60},
        "returns": ["bool"],
    }


def test_from_function_normalises_default_int_for_float() -> None:
    defaults = spec(scale).descriptor()["defaults"]
    assert defaults == {"factor": 2.0}
    assert type(typing.cast(dict[str, object], defaults)["factor"]) is float


@pytest.mark.parametrize(
    ("fn", "fragment"),
    [
        (star, "variadic positional parameters are not supported"),
        (kwstar, "variadic keyword parameters are not supported"),
        (posonly, "positional-only parameters are not supported"),
        (kwonly, "keyword-only parameters are not supported"),
        (unannotated, "parameter 'a' of unannotated: missing type annotation"),
        (no_return, "result of no_return: missing return annotation"),
        (_private, "does not start with '_'"),
        (lambda: None, "'<lambda>' is invalid"),
        (bad_default, "default of parameter 'ttl' of bad_default"),
        (bool_default, "bool is not accepted for int"),
        (
            unbounded,
            "parameter 'name' of unbounded: str needs a bound, write Annotated[str, MaxLen(n)]",
        ),
        (dangling, "cannot read its signature or resolve its type hints"),
        (len, "parameter 'obj' of len: positional-only parameters are not supported"),
        (functools.partial(ping), "name None is invalid"),
    ],
)
def test_from_function_rejects(fn: Any, fragment: str) -> None:
    with pytest.raises(InterfaceError) as info:
        spec(fn)
    assert fragment in str(info.value)


def test_from_function_rejects_unknown_kind() -> None:
    with pytest.raises(InterfaceError, match="kind must be 'ecall' or 'ocall'"):
        spec(ping, kind="call")


def test_spec_is_immutable_against_caller_mutation() -> None:
    s = spec(tagged)
    s.params[0][1].append("junk")
    s.descriptor()["params"].append("junk")  # type: ignore[attr-defined]
    assert s.descriptor()["params"] == [["tags", ["list", 2, ["str", 64]]]]


# ---- bind -----------------------------------------------------------------------------------


def test_bind_positional_fast_path() -> None:
    assert spec(put).bind(([], 5), {}) == [[], 5]


def test_bind_fills_defaults_and_keywords() -> None:
    s = spec(put)
    assert s.bind(([],), {}) == [[], 60]
    assert s.bind((), {"items": [], "ttl": 7}) == [[], 7]
    assert s.bind((), {"ttl": 7, "items": []}) == [[], 7]


def test_bind_copies_mutable_defaults() -> None:
    s = spec(tagged)
    first = s.bind((), {})
    typing.cast(list[object], first[0]).append("b")
    assert s.bind((), {}) == [["a"]]


@pytest.mark.parametrize(
    ("args", "kwargs", "fragment"),
    [
        ((), {}, "missing parameter 'items'"),
        (([],), {"nope": 1}, "unexpected argument 'nope'"),
        (([],), {"items": []}, "multiple values for parameter 'items'"),
        (([], 1, 2), {}, "takes 2 arguments but 3 were given"),
    ],
)
def test_bind_rejects_bad_calls(
    args: tuple[object, ...], kwargs: dict[str, object], fragment: str
) -> None:
    with pytest.raises(BoundsError, match=fragment) as info:
        spec(put).bind(args, kwargs)
    assert "ecall put()" in str(info.value)


# ---- check_args / check_result ---------------------------------------------------------------


def test_check_args_accepts_and_returns_same_list() -> None:
    values: list[object] = [[{"key": "k", "value": b"v"}], 0]
    assert spec(put).check_args(values) is values


def test_check_args_zero_params() -> None:
    empty: list[object] = []
    assert spec(ping).check_args(empty) is empty
    with pytest.raises(BoundsError, match="expected a list of 0 argument values"):
        spec(ping).check_args([1])


@pytest.mark.parametrize("values", [[], [[]], [[], 1, 2], ([], 1), None])
def test_check_args_rejects_wrong_count(values: Any) -> None:
    with pytest.raises(BoundsError, match="ecall put: expected a list of 2 argument values"):
        spec(put).check_args(values)


def test_accepts_int_for_float_and_normalises() -> None:
    values: list[object] = [3, 1.5]
    out = spec(scale).check_args(values)
    assert out == [3.0, 1.5] and type(out[0]) is float and values == [3, 1.5]


def test_normalises_nested_floats_without_touching_input() -> None:
    check = compile_checker(["map", 2, ["list", 2, ["float"]]], where="x")
    value = {"a": [1, 2.0]}
    out = check(value)
    assert out == {"a": [1.0, 2.0]} and value == {"a": [1, 2.0]}
    assert type(typing.cast(dict[str, list[object]], out)["a"][0]) is float


def test_rejects_huge_int_for_float() -> None:
    with pytest.raises(BoundsError, match="expected float"):
        compile_checker(["float"], where="x")(10**400)


def bounds_message(fn: Any, values: list[object]) -> str:
    with pytest.raises(BoundsError) as info:
        spec(fn).check_args(values)
    return str(info.value)


def test_rejects_oversized_bytes_argument() -> None:
    msg = bounds_message(put, [[{"key": "k", "value": b"x" * 17}], 0])
    assert msg.startswith("ecall put: parameter 'items': at items[0][\"value\"]:")
    assert "expected bytes of at most 16 bytes, got bytes of 17 bytes" in msg
    assert "MaxLen" in msg


def test_rejects_oversized_top_level_str() -> None:
    msg = bounds_message(get, ["k" * 65])
    assert "at key: expected str of at most 64 characters" in msg
    assert "got str of 65 characters" in msg


def test_str_length_counts_characters_not_bytes() -> None:
    assert spec(get).check_args(["é" * 64]) == ["é" * 64]


def test_rejects_lone_surrogate() -> None:
    assert "with a lone surrogate" in bounds_message(get, ["ab\ud800"])


def test_rejects_bool_for_int() -> None:
    msg = bounds_message(put, [[], True])
    assert "at ttl: expected int in [0, 3600], got bool True" in msg
    assert "bool is not accepted for int" in msg


def test_rejects_bool_for_float() -> None:
    assert "expected float, got bool False" in bounds_message(scale, [False, 1.0])


def test_rejects_int_out_of_range() -> None:
    assert "expected int in [0, 3600], got int 3601" in bounds_message(put, [[], 3601])


def test_rejects_float_for_int() -> None:
    assert "expected int in [0, 3600], got float 1.0" in bounds_message(put, [[], 1.0])


def test_rejects_bytearray_for_bytes() -> None:
    assert "got bytearray" in bounds_message(put, [[{"key": "k", "value": bytearray()}], 0])


def test_rejects_tuple_for_list() -> None:
    assert "at items: expected list of at most 4 items, got tuple" in bounds_message(put, [(), 0])


def test_rejects_oversized_list() -> None:
    item = {"key": "k", "value": b""}
    assert "got list of 5 items" in bounds_message(put, [[item] * 5, 0])


def test_rejects_unknown_dict_key() -> None:
    item = {"key": "k", "value": b""}
    msg = bounds_message(put, [[item, item, item, {**item, "extra": 1}], 0])
    assert 'at items[3]["extra"]: expected no such key, got an unknown key' in msg
    assert "allowed keys: ['key', 'value']" in msg


def test_rejects_missing_required_key() -> None:
    msg = bounds_message(put, [[{"key": "k"}], 0])
    assert 'at items[0]["value"]: expected a value, got nothing; add this required key' in msg


def test_accepts_missing_optional_key() -> None:
    check = compile_checker(describe_type(Loose, where=W), where="x")
    assert check({"must": 1}) == {"must": 1}


def test_rejects_wrong_type_in_map_value() -> None:
    value = {"t": [{"key": "k", "value": b""}, {"key": 5, "value": b""}]}
    msg = bounds_message(deep, [{"tags": value, "when": None}])
    assert 'at d["tags"]["t"][1]["key"]: expected str of at most 8 characters' in msg
    assert "got int 5" in msg


def test_rejects_non_str_map_key() -> None:
    msg = bounds_message(deep, [{"tags": {1: []}, "when": None}])
    assert 'at d["tags"][1]: expected a valid str key, got int 1' in msg


def test_rejects_oversized_map() -> None:
    tags: dict[str, list[object]] = {str(i): [] for i in range(5)}
    assert 'at d["tags"]: expected dict of at most 4 items' in bounds_message(
        deep, [{"tags": tags, "when": None}]
    )


def test_rejects_bad_optional_value() -> None:
    msg = bounds_message(deep, [{"tags": {}, "when": 11}])
    assert 'at d["when"]: expected int in [0, 10] or None, got int 11' in msg


def test_rejects_non_dict_for_typeddict() -> None:
    assert "at d: expected dict with keys ['tags', 'when'], got list" in bounds_message(deep, [[]])


def test_rejects_bad_ocall_result() -> None:
    s = spec(fetch, kind="ocall")
    assert s.check_result(b"12345678") == b"12345678"
    with pytest.raises(
        BoundsError,
        match=r"ocall fetch: result: at result: expected bytes of "
        r"at most 8 bytes, got bytes of 9 bytes",
    ):
        s.check_result(b"123456789")


def test_result_none() -> None:
    assert spec(ping).check_result(None) is None
    with pytest.raises(BoundsError, match="expected None, got int 0"):
        spec(ping).check_result(0)


def test_message_does_not_leak_value_contents() -> None:
    msg = bounds_message(get, ["SECRET" * 20])
    assert "SECRET" not in msg


def test_bounds_error_has_code() -> None:
    with pytest.raises(BoundsError) as info:
        spec(get).check_args([1])
    assert info.value.code == "bounds"


def test_compile_checker_rejects_bad_descriptor() -> None:
    with pytest.raises(InterfaceError, match="invalid type descriptor"):
        compile_checker(["str"], where="x")


# ---- descriptors: round trip, determinism, hostile input ---------------------------------


def make() -> Interface:
    return Interface.from_functions([put, get, ping, scale, tagged, deep], [log, fetch])


def test_interface_descriptor_shape() -> None:
    d = make().descriptor()
    assert d["version"] == 1
    assert [e["name"] for e in d["ecalls"]] == ["deep", "get", "ping", "put", "scale", "tagged"]  # type: ignore[attr-defined]
    assert [e["name"] for e in d["ocalls"]] == ["fetch", "log"]  # type: ignore[attr-defined]


def test_descriptor_round_trip() -> None:
    d = make().descriptor()
    assert Interface.from_descriptor(d).descriptor() == d
    assert Interface.from_descriptor(d) == make()
    for entry in typing.cast(list[dict[str, object]], d["ecalls"]):
        assert FunctionSpec.from_descriptor(entry).descriptor() == entry


def test_descriptor_is_deterministic_regardless_of_order() -> None:
    a = Interface.from_functions([put, get, ping], [log, fetch])
    b = Interface.from_functions([ping, get, put], [fetch, log])
    assert a.descriptor() == b.descriptor() and a == b and hash(a) == hash(b)
    assert list(a.ecalls) == ["get", "ping", "put"]


def test_interface_inequality() -> None:
    assert Interface.from_functions([put]) != Interface.from_functions([get])
    assert Interface.from_functions([put]) != "put"


def test_interface_rejects_duplicate_names() -> None:
    with pytest.raises(InterfaceError, match="two ecalls are named 'put'"):
        Interface.from_functions([put, put])


def test_interface_allows_same_name_across_kinds() -> None:
    iface = Interface.from_functions([log], [log])
    assert list(iface.ecalls) == list(iface.ocalls) == ["log"]


def test_interface_accepts_mapping() -> None:
    iface = make()
    assert Interface(iface.ecalls, iface.ocalls) == iface
    with pytest.raises(InterfaceError, match="keys must equal the spec names"):
        Interface({"other": spec(put)})


def test_default_is_isolated_from_declaration() -> None:
    s = spec(tagged)
    default = tagged.__defaults__[0]  # type: ignore[index]
    default.append("mutated")
    try:
        assert s.descriptor()["defaults"] == {"tags": ["a"]}
        assert s.bind((), {}) == [["a"]]
    finally:
        default.remove("mutated")


def test_interface_rejects_wrong_kind() -> None:
    with pytest.raises(InterfaceError, match="is not an ecall FunctionSpec"):
        Interface([spec(log, kind="ocall")])


def test_function_spec_equality_and_hash() -> None:
    assert spec(put) == spec(put) and hash(spec(put)) == hash(spec(put))
    assert spec(put) != spec(put, kind="ocall")


def nest_desc(levels: int) -> list[object]:
    d: list[object] = ["bool"]
    for _ in range(levels):
        d = ["list", 1, d]
    return d


def good_fn() -> dict[str, Any]:
    return spec(scale).descriptor()


def mutated(**changes: object) -> dict[str, Any]:
    d = good_fn()
    d.update(changes)
    return d


@pytest.mark.parametrize(
    "d",
    [
        None,
        [],
        "x",
        {},
        {**good_fn(), "extra": 1},
        mutated(name="_x"),
        mutated(name="class"),
        mutated(name=5),
        mutated(kind="ECALL"),
        mutated(kind=["ecall"]),
        mutated(params={}),
        mutated(params=[["x"]]),
        mutated(params=[["x", ["float"], 1]]),
        mutated(params=[["x", ["float"]], ["x", ["float"]]]),
        mutated(params=[["1x", ["float"]], ["factor", ["float"]]]),
        mutated(params=[["x", ["floaty"]], ["factor", ["float"]]]),
        mutated(defaults=[]),
        mutated(defaults={"factor": 2}),
        mutated(defaults={"nope": 1.0}),
        mutated(defaults={"x": 1.0}),
        mutated(defaults={"factor": "2"}),
        mutated(returns=[]),
        mutated(returns=["str"]),
        mutated(returns=["str", -1]),
        mutated(returns=["str", True]),
        mutated(returns=["int", 5, 1]),
        mutated(returns=["int", 0, 2**64]),
        mutated(returns=["optional", ["none"]]),
        mutated(returns=["optional", ["optional", ["bool"]]]),
        mutated(returns=["dict", [["b", ["bool"], True], ["a", ["bool"], True]]]),
        mutated(returns=["dict", [["a", ["bool"], True], ["a", ["bool"], True]]]),
        mutated(returns=["dict", [["a", ["bool"], 1]]]),
        mutated(returns=["dict", [["\ud800", ["bool"], True]]]),
        mutated(returns=["dict", {}]),
        mutated(returns=typing.cast(object, nest_desc(MAX_DEPTH + 1))),
    ],
)
def test_function_from_descriptor_rejects(d: object) -> None:
    with pytest.raises(InterfaceError):
        FunctionSpec.from_descriptor(d)


def worst_case_desc() -> list[object]:
    d: list[object] = ["optional", ["bool"]]
    for _ in range(MAX_DEPTH):
        d = ["optional", ["dict", [["k", d, True]]]]
    return d


def test_type_descriptor_nesting_bound_is_exact() -> None:
    d = worst_case_desc()
    compile_checker(d, where="x")  # legal
    dumps(d, max_depth=TYPE_DESCRIPTOR_NESTING)
    with pytest.raises(EncodingError):
        dumps(d, max_depth=TYPE_DESCRIPTOR_NESTING - 1)


def test_function_from_descriptor_accepts_max_depth() -> None:
    FunctionSpec.from_descriptor(mutated(returns=nest_desc(MAX_DEPTH)))


def test_interface_from_descriptor_rejects_bad_shapes() -> None:
    good = make().descriptor()
    bad: list[object] = [
        None,
        {},
        {**good, "version": 2},
        {**good, "version": True},
        {**good, "x": 1},
        {**good, "ecalls": {}},
        {**good, "ecalls": list(reversed(good["ecalls"]))},  # type: ignore[call-overload]
        {**good, "ecalls": good["ecalls"] + good["ecalls"]},  # type: ignore[operator]
        {**good, "ecalls": good["ocalls"]},
    ]
    for d in bad:
        with pytest.raises(InterfaceError):
            Interface.from_descriptor(d)
