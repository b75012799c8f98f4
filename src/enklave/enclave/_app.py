"""Declaring an enclave's ECALLs and OCALLs."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from .._interface import FunctionSpec, Interface
from ..errors import InterfaceError
from . import _context

__all__ = ["EnclaveApp"]

F = TypeVar("F", bound=Callable[..., Any])


class EnclaveApp:
    """The registry of one enclave's ECALLs (served) and OCALLs (called on the host).

    Declare exactly one per enclave entry module::

        app = EnclaveApp("hello")

        @app.ocall
        def log(line: Annotated[str, MaxLen(200)]) -> None: ...

        @app.ecall
        def greet(name: Annotated[str, MaxLen(64)]) -> str:
            log(f"greeting {name}")          # runs on the host, result re-checked here
            return f"Hello, {name}!"

    Type hints are the contract: they are extracted at build into the interface
    descriptor (part of MRENCLAVE) and checked on both sides of every call.

    Raises:
        InterfaceError: at declaration, for an unsupported or unbounded type, or a
            duplicate name.
    """

    def __init__(self, name: str = "app") -> None:
        self.name = name
        self.ecalls: dict[str, Callable[..., Any]] = {}
        self.ocalls: dict[str, Callable[..., Any]] = {}
        self._specs: list[FunctionSpec] = []

    def ecall(self, fn: F) -> F:
        """Register ``fn`` as an ECALL the host may call."""
        spec = FunctionSpec.from_function(fn, kind="ecall")
        self._add(self.ecalls, spec.name, fn, "ECALL")
        return fn

    def ocall(self, fn: F) -> F:
        """Declare an OCALL: the body is ignored; calling it runs the host's function."""
        spec = FunctionSpec.from_function(fn, kind="ocall")

        @functools.wraps(fn)
        def call_host(*args: Any, **kwargs: Any) -> Any:
            return _context.current().ocall(spec.name, spec.bind(args, kwargs))

        self._add(self.ocalls, spec.name, fn, "OCALL")
        return call_host  # type: ignore[return-value]

    def _add(self, table: dict[str, Callable[..., Any]], name: str, fn: Any, kind: str) -> None:
        if name in table:
            raise InterfaceError(f"{kind} {name!r} is declared twice; rename one")
        table[name] = fn

    def interface(self) -> Interface:
        """The declared interface (what the build measures)."""
        return Interface.from_functions(self.ecalls.values(), self.ocalls.values())


def find_app(module: object, entry: str) -> EnclaveApp:
    """The single :class:`EnclaveApp` defined at the top level of an entry module.

    Raises:
        InterfaceError: none or several are defined.
    """
    apps = [v for v in vars(module).values() if isinstance(v, EnclaveApp)]
    if len(apps) != 1:
        raise InterfaceError(
            f"entry module {entry!r} must define exactly one EnclaveApp at top level "
            f"(e.g. `app = EnclaveApp(\"name\")`), found {len(apps)}"
        )
    return apps[0]
