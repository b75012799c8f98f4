"""Property tests: hostile input into the config parsers raises only ConfigError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from enklave.errors import ConfigError
from enklave.package._config import AppConfig

KEYS = [
    "name",
    "entry",
    "product_id",
    "security_version",
    "debug",
    "max_threads",
    "memory_mb",
    "files",
    "allowed_env",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["hello", "enclave.py", "a/*.json", "TZ", "PYTHONPATH", "../x.py", ""]),
    st.binary(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=4),
    ),
    max_leaves=20,
)
config_like = st.dictionaries(
    st.one_of(st.sampled_from(KEYS), st.text(max_size=12), st.integers()), values, max_size=12
)

toml_fragments = st.sampled_from(
    [
        'name = "hello"\n',
        'entry = "enclave.py"\n',
        "product_id = 70000\n",
        "debug = true\n",
        "max_threads = 0\n",
        'files = ["*.py", "../x"]\n',
        'allowed_env = ["LD_PRELOAD"]\n',
        "[table]\n",
        "x = [[[[[[1]]]]]]\n",
        "memory_mb = 1e3\n",
        "a.b.c = 1\n",
        '"\\u0000" = 1\n',
        "= = =\n",
    ]
)
toml_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(toml_fragments, st.text(max_size=20)), max_size=10).map("".join),
)
# Env names that avoid the deny-list prefixes (E, G, L, P first letters).
ENV_RE = r"[A-DFHI-KM-OQ-Z_][A-Za-z0-9_]{0,10}"
PATTERN_RE = r"[a-z*?]{1,6}(/[a-z*]{1,6}){0,2}"


def _only_config_error(action: object) -> None:
    assert callable(action)
    try:
        result = action()
    except ConfigError:
        return
    assert isinstance(result, AppConfig)


@settings(max_examples=500, deadline=None)
@given(toml_text)
def test_from_toml_raises_only_config_error(text: str) -> None:
    _only_config_error(lambda: AppConfig.from_toml(text))


@settings(max_examples=500, deadline=None)
@given(st.one_of(values, config_like))
def test_from_canonical_raises_only_config_error(data: object) -> None:
    _only_config_error(lambda: AppConfig.from_canonical(data))


@settings(max_examples=500, deadline=None)
@given(
    base=st.builds(
        AppConfig,
        name=st.from_regex(r"[a-z0-9][a-z0-9_-]{0,62}", fullmatch=True),
        entry=st.from_regex(r"[a-z_]{1,8}(/[a-z_]{1,8}){0,2}\.py", fullmatch=True),
        product_id=st.integers(0, 65535),
        security_version=st.integers(0, 65535),
        debug=st.booleans(),
        max_threads=st.integers(1, 64),
        memory_mb=st.integers(64, 65536),
        files=st.lists(st.from_regex(PATTERN_RE, fullmatch=True)).map(tuple),
        allowed_env=st.lists(st.from_regex(ENV_RE, fullmatch=True)).map(tuple),
    ),
    key=st.sampled_from(KEYS),
    value=values,
)
def test_canonical_round_trip_and_mutation(base: AppConfig, key: str, value: object) -> None:
    data = base.to_canonical()
    assert AppConfig.from_canonical(data) == base
    assert AppConfig.from_canonical(data).to_canonical() == data
    data[key] = value
    _only_config_error(lambda: AppConfig.from_canonical(data))
