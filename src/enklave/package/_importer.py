"""Import an app's modules from verified in-memory file contents.

The enclave reads its bundle once, verifies it, and then imports application code from
those same bytes, never from the host's disk again: nothing can be swapped between the
check and the use. The build uses the same importer to extract the interface.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType

from ..errors import BundleError

__all__ = ["BundleImporter", "module_name_for"]


def module_name_for(path: str) -> str | None:
    """Module name for a bundle path (``pkg/mod.py`` -> ``pkg.mod``), or None if not code."""
    if not path.endswith(".py"):
        return None
    parts = path[:-3].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if not parts or not all(p.isidentifier() for p in parts):
        return None
    return ".".join(parts)


class BundleImporter(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A meta-path finder serving modules from a mapping of path -> source bytes.

    Raises:
        BundleError: a module would shadow a standard-library module or enklave itself.
    """

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self._modules: dict[str, tuple[str, bytes, bool]] = {}
        for path, data in files.items():
            name = module_name_for(path)
            if name is None:
                continue
            top = name.split(".")[0]
            if top == "enklave" or top in sys.stdlib_module_names:
                raise BundleError(
                    f"app file {path!r} would shadow the module {top!r}; rename it"
                )
            self._modules[name] = (path, data, path.endswith("__init__.py"))
        self.loaded: list[str] = []

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        entry = self._modules.get(fullname)
        if entry is None:
            return None
        spec = importlib.util.spec_from_loader(fullname, self, is_package=entry[2])
        if spec is not None:
            spec.origin = f"<bundle>/{entry[0]}"
            spec.has_location = False
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        path, data, is_pkg = self._modules[module.__name__]
        if is_pkg:
            module.__path__ = []
        module.__file__ = f"<bundle>/{path}"
        code = compile(data, f"<bundle>/{path}", "exec", dont_inherit=True)
        self.loaded.append(module.__name__)
        exec(code, module.__dict__)  # noqa: S102 - verified, measured app code

    def install(self) -> None:
        sys.meta_path.insert(0, self)

    def uninstall(self) -> None:
        """Remove the finder and forget every module it loaded."""
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for name in self.loaded:
            sys.modules.pop(name, None)
        self.loaded.clear()
