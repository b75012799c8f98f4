"""Property tests for enklave._interface: hostile descriptors and values never escape
the documented error types, and values built to fit a type always pass its checker."""

from __future__ import annotations

import copy
import keyword
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from enklave._interface import MAX_DEPTH, FunctionSpec, Interface, compile_checker
from enklave.errors import BoundsError, InterfaceError

PROPS = settings(max_examples=400, deadline=None)
WIRE_INT = st.integers(-(2**64), 2**64 - 1)

# ---- arbitrary data ---------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.just(0).map(lambda _: 10**5000),
    st.floats(),
    st.text(max_size=8),
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=2),
    st.binary(max_size=8),
    st.sampled_from(
        [
            "none",
            "bool",
            "int",
            "float",
            "str",
            "bytes",
            "list",
            "map",
            "dict",
            "optional",
            "ecall",
            "ocall",
            "name",
            "params",
            "version",
        ]
    ),
)
wire: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=20,
)
hostile: st.SearchStrategy[Any] = st.recursive(
    scalars | st.builds(bytearray, st.binary(max_size=4)) | st.builds(object),
    lambda c: st.one_of(
        st.lists(c, max_size=4),
        st.dictionaries(st.text(max_size=8) | st.integers(), c, max_size=4),
        st.lists(c, max_size=3).map(tuple),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=20,
)

# ---- valid type descriptors and values that fit them -------------------------------------


def depth(d: list[Any]) -> int:
    tag = d[0]
    if tag == "optional":
        return depth(d[1])
    if tag in ("list", "map"):
        return 1 + depth(d[2])
    if tag == "dict":
        return 1 + max((depth(f[1]) for f in d[1]), default=0)
    return 0


def _optional(t: list[Any]) -> list[Any]:
    return t if t[0] in ("none", "optional") else ["optional", t]


def _record(fields: dict[str, tuple[list[Any], bool]]) -> list[Any]:
    return ["dict", [[k, t, r] for k, (t, r) in sorted(fields.items())]]


leaf_types = st.one_of(
    st.sampled_from(["none", "bool", "float"]).map(lambda tag: [tag]),
    st.tuples(WIRE_INT, WIRE_INT).map(lambda p: ["int", min(p), max(p)]),
    st.builds(lambda tag, n: [tag, n], st.sampled_from(["str", "bytes"]), st.integers(0, 20)),
)
types: st.SearchStrategy[list[Any]] = st.recursive(
    leaf_types,
    lambda c: st.one_of(
        c.map(_optional),
        st.builds(lambda n, t: ["list", n, t], st.integers(0, 5), c),
        st.builds(lambda n, t: ["map", n, t], st.integers(0, 5), c),
        st.dictionaries(st.text(max_size=6), st.tuples(c, st.booleans()), max_size=4).map(_record),
    ),
    max_leaves=12,
).filter(lambda d: depth(d) <= MAX_DEPTH)


def values_for(d: list[Any], *, nan: bool = True) -> st.SearchStrategy[Any]:
    tag = d[0]
    if tag == "none":
        return st.none()
    if tag == "bool":
        return st.booleans()
    if tag == "float":
        return st.floats(allow_nan=nan)
    if tag == "int":
        return st.integers(d[1], d[2])
    if tag == "str":
        return st.text(max_size=min(d[1], 8))
    if tag == "bytes":
        return st.binary(max_size=min(d[1], 8))
    if tag == "optional":
        return st.none() | values_for(d[1], nan=nan)
    if tag == "list":
        return st.lists(values_for(d[2], nan=nan), max_size=min(d[1], 3))
    if tag == "map":
        return st.dictionaries(
            st.text(max_size=4), values_for(d[2], nan=nan), max_size=min(d[1], 3)
        )
    required = {k: values_for(t, nan=nan) for k, t, r in d[1] if r}
    optional = {k: values_for(t, nan=nan) for k, t, r in d[1] if not r}
    return st.fixed_dictionaries(required, optional=optional)


identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s)
)


@st.composite
def functions(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    names = draw(st.lists(identifiers, max_size=4, unique=True))
    params: list[list[Any]] = [[n, draw(types)] for n in names]
    first = draw(st.integers(0, len(params)))
    defaults = {n: draw(values_for(t, nan=False)) for n, t in params[first:]}
    return {
        "name": draw(identifiers),
        "kind": kind,
        "params": params,
        "defaults": defaults,
        "returns": draw(types),
    }


def _sorted_unique(fns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted({f["name"]: f for f in fns}.values(), key=lambda f: f["name"])


interfaces = st.builds(
    lambda e, o: {"version": 1, "ecalls": _sorted_unique(e), "ocalls": _sorted_unique(o)},
    st.lists(functions("ecall"), max_size=3),
    st.lists(functions("ocall"), max_size=3),
)


def positions(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) slot inside a nested list/dict structure."""
    slots: list[tuple[Any, Any]] = []
    if isinstance(node, list):
        for i, child in enumerate(node):
            slots += [(node, i), *positions(child)]
    elif isinstance(node, dict):
        for k, child in node.items():
            slots += [(node, k), *positions(child)]
    return slots


# ---- properties ----------------------------------------------------------------------------


@PROPS
@given(hostile)
def test_from_descriptor_on_arbitrary_data_raises_only_interface_error(d: Any) -> None:
    for build in (Interface.from_descriptor, FunctionSpec.from_descriptor):
        try:
            build(d)
        except InterfaceError:
            pass


@PROPS
@given(interfaces, st.data())
def test_from_descriptor_on_corrupted_descriptor_raises_only_interface_error(
    d: dict[str, Any], data: st.DataObject
) -> None:
    d = copy.deepcopy(d)  # never mutate objects hypothesis may reuse
    slots = positions(d)
    for _ in range(data.draw(st.integers(1, 3))):
        container, key = data.draw(st.sampled_from(slots))
        container[key] = data.draw(wire)
    try:
        iface = Interface.from_descriptor(d)
    except InterfaceError:
        return
    assert Interface.from_descriptor(iface.descriptor()) == iface


@PROPS
@given(interfaces)
def test_valid_descriptor_round_trips(d: dict[str, Any]) -> None:
    iface = Interface.from_descriptor(d)
    assert iface.descriptor() == d
    assert Interface.from_descriptor(iface.descriptor()) == iface


@PROPS
@given(types, hostile)
def test_checker_on_arbitrary_values_raises_only_bounds_error(t: list[Any], value: Any) -> None:
    check = compile_checker(t, where="prop")
    try:
        out = check(value)
    except BoundsError as exc:
        assert exc.message.startswith("prop: at value")
        return
    assert check(out) is out  # a normalised value is already canonical


@PROPS
@given(types, st.data())
def test_values_that_fit_always_pass_unchanged(t: list[Any], data: st.DataObject) -> None:
    value = data.draw(values_for(t))
    assert compile_checker(t, where="prop")(value) is value


@PROPS
@given(functions("ecall"), st.data())
def test_check_args_raises_only_bounds_error(fn: dict[str, Any], data: st.DataObject) -> None:
    spec = FunctionSpec.from_descriptor(fn)
    fitting = [data.draw(values_for(t)) for _, t in fn["params"]]
    assert spec.check_args(fitting) is fitting
    args = data.draw(st.lists(hostile, max_size=5) | hostile)
    try:
        spec.check_args(args)
    except BoundsError:
        pass
