"""Policy documents in TOML or JSON.

A document is a table of the keys below; anything it does not say takes the safe default
(debug and simulation refused, only UpToDate and SWHardeningNeeded accepted)::

    mrenclave = ["3f2a…"]            # or one string; MRTD (48 bytes) for TDX
    mrsigner = "8c4f…"
    product_id = 1
    min_svn = 2
    allow_debug = false
    allow_simulated = false
    accepted_tcb_statuses = ["UpToDate", "SWHardeningNeeded"]
    rejected_advisories = ["INTEL-SA-00615"]
    accepted_advisories = ["INTEL-SA-00615"]   # when set: every advisory must be listed

    [[any_of]]                        # optional alternatives; one must pass (as well as the rest)
    mrsigner = "…"

``unsafe_accept_anything = "reason"`` as the only key accepts everything that passes the
DCAP checks, with a logged warning.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Final

from ..errors import PolicyError
from ..models.tcb import TCB_STATUSES
from ._policy import AllOf, AnyOf, Policy, UnsafeAcceptAnything, default_policy

__all__ = ["load_policy", "parse_policy"]

_MAX_DEPTH: Final = 4
_KEYS: Final = {
    "mrenclave",
    "mrsigner",
    "product_id",
    "min_svn",
    "allow_debug",
    "allow_simulated",
    "accepted_tcb_statuses",
    "rejected_advisories",
    "accepted_advisories",
    "any_of",
}


def load_policy(path: str | Path) -> Policy:
    """Read a policy document (``.json`` is JSON, anything else TOML).

    Raises:
        PolicyError: unreadable file, bad syntax, unknown key or bad value.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read policy {p}: {exc}", check="document") from exc
    return parse_policy(text, fmt="json" if p.suffix.lower() == ".json" else "toml")


def parse_policy(text: str, *, fmt: str = "toml") -> Policy:
    """Parse a policy document's text.

    Raises:
        PolicyError: bad syntax, unknown key or bad value; the message names the key.
    """
    try:
        doc: Any = json.loads(text) if fmt == "json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"policy is not valid {fmt.upper()}: {exc}", check="document") from exc
    if type(doc) is not dict:
        raise PolicyError("a policy document must be a table/object", check="document")
    return _build(doc, depth=0)


def _build(doc: dict[str, Any], *, depth: int) -> Policy:
    if depth > _MAX_DEPTH:
        raise PolicyError("policy any_of nesting is too deep", check="document")
    if "unsafe_accept_anything" in doc:
        reason = doc["unsafe_accept_anything"]
        if len(doc) != 1 or type(reason) is not str or not reason:
            raise PolicyError(
                "unsafe_accept_anything must be the only key and give a reason string",
                check="document",
            )
        return UnsafeAcceptAnything(reason)
    unknown = sorted(set(doc) - _KEYS)
    if unknown:
        raise PolicyError(
            f"unknown policy key(s) {unknown}; allowed: {sorted(_KEYS)}", check="document"
        )
    base = default_policy(
        mrenclave=_hex_list(doc, "mrenclave"),
        mrsigner=_opt(doc, "mrsigner", str),
        product_id=_u16(doc, "product_id"),
        min_svn=_u16(doc, "min_svn"),
        allow_debug=_opt(doc, "allow_debug", bool) or False,
        allow_simulated=_opt(doc, "allow_simulated", bool) or False,
        accepted_statuses=_statuses(doc),
        rejected_advisories=_str_list(doc, "rejected_advisories") or (),
        accepted_advisories=_str_list(doc, "accepted_advisories"),
    )
    alternatives = doc.get("any_of")
    if alternatives is None:
        return base
    if (
        type(alternatives) is not list
        or not alternatives
        or any(type(a) is not dict for a in alternatives)
    ):
        raise PolicyError("any_of must be a non-empty list of policy tables", check="document")
    options = tuple(_identity_only(a, depth) for a in alternatives)
    return AllOf((base, AnyOf(options)))


def _identity_only(doc: dict[str, Any], depth: int) -> Policy:
    """An any_of alternative: its own keys, but the safety defaults stay with the base."""
    policy = _build(
        {
            "allow_debug": True,
            "allow_simulated": True,
            "accepted_tcb_statuses": sorted(TCB_STATUSES),
            **doc,
        },
        depth=depth + 1,
    )
    return policy


def _opt(doc: dict[str, Any], key: str, typ: type) -> Any:
    value = doc.get(key)
    if value is not None and type(value) is not typ:
        raise PolicyError(f"policy key {key!r} must be a {typ.__name__}", check="document")
    return value


def _u16(doc: dict[str, Any], key: str) -> int | None:
    value = _opt(doc, key, int)
    if value is not None and not 0 <= value <= 0xFFFF:
        raise PolicyError(f"policy key {key!r} must be in 0..65535", check="document")
    return value  # type: ignore[no-any-return]


def _str_list(doc: dict[str, Any], key: str) -> tuple[str, ...] | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if type(value) is not list or any(type(v) is not str for v in value):
        raise PolicyError(
            f"policy key {key!r} must be a string or list of strings", check="document"
        )
    return tuple(value)


def _hex_list(doc: dict[str, Any], key: str) -> tuple[str, ...] | None:
    values = _str_list(doc, key)
    for v in values or ():
        try:
            bytes.fromhex(v)
        except ValueError as exc:
            raise PolicyError(f"policy key {key!r}: {v!r} is not hex", check="document") from exc
    return values


def _statuses(doc: dict[str, Any]) -> tuple[str, ...]:
    values = _str_list(doc, "accepted_tcb_statuses")
    if values is None:
        return ("UpToDate", "SWHardeningNeeded")
    unknown = sorted(set(values) - set(TCB_STATUSES))
    if unknown:
        raise PolicyError(
            f"accepted_tcb_statuses has unknown status(es) {unknown}; known: "
            f"{sorted(TCB_STATUSES)}",
            check="document",
        )
    return values
