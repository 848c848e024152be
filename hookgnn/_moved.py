"""0.1 module paths and names that moved in 0.2: aliases that warn, removed in 0.3.

``import hookgnn.patching.atp_star`` (a 0.1 path) imports :mod:`hookgnn.attribution.atp_star`
and binds the old name to that very module, with a ``DeprecationWarning`` naming the new
one. The old paths have no files of their own (so a change to a moved file follows it by
rename); :class:`AliasFinder`, installed by ``hookgnn/__init__.py``, answers for them.
Names that moved out of a package that stays (``from hookgnn.patching import atp_star``)
are answered by that package's module ``__getattr__`` with :func:`moved_name`.

>>> import warnings
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     import hookgnn.patching.circuits as old
>>> import hookgnn.circuits.circuit as new
>>> old is new, str(caught[0].message)
(True, 'hookgnn.patching.circuits moved to hookgnn.circuits.circuit; the old path is an alias until 0.3')
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from typing import Any

#: 0.1 module path -> its 0.2 module.
MODULES: dict[str, str] = {
    "hookgnn.disk": "hookgnn.cache.disk",
    "hookgnn.grad_taps": "hookgnn.cache.grad_taps",
    "hookgnn.cli_args": "hookgnn.cli.args",
    "hookgnn.demo": "hookgnn.cli.demo",
    "hookgnn.tour": "hookgnn.cli.tour",
    "hookgnn.metamers.job": "hookgnn.cli.metamer",
    "hookgnn.training.metrics": "hookgnn.metrics.features",
    "hookgnn.patching.metrics": "hookgnn.metrics.per_graph",
    "hookgnn.patching.targets": "hookgnn.metrics.targets",
    "hookgnn.patching.attribution": "hookgnn.attribution.gradients",
    "hookgnn.patching.streamed": "hookgnn.attribution.streamed",
    "hookgnn.patching.atp_star": "hookgnn.attribution.atp_star",
    "hookgnn.patching.local": "hookgnn.attribution.local",
    "hookgnn.patching.circuits": "hookgnn.circuits.circuit",
    "hookgnn.patching.verify": "hookgnn.circuits.verify",
}


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} moved to {new}; the old path is an alias until 0.3", DeprecationWarning, stacklevel=3)


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        _warn(spec.name, self.new)
        return importlib.import_module(self.new)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the module is the new one, already imported."""


class AliasFinder(importlib.abc.MetaPathFinder):
    """Finds the 0.1 module paths of :data:`MODULES` (first: a stale file at an old path must not win)."""

    def find_spec(self, fullname: Any, path: Any = None, target: Any = None) -> Any:
        # Asked about every import (first on sys.meta_path): plain annotations, a dict lookup.
        new = MODULES.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


def install() -> None:
    """Put :class:`AliasFinder` on ``sys.meta_path`` once."""
    if not any(isinstance(f, AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, AliasFinder())


def moved_name(package: str, name: str, new_module: types.ModuleType) -> Any:
    """``getattr(new_module, name)``, with a ``DeprecationWarning`` naming the new spelling."""
    warnings.warn(f"{package}.{name} moved to {new_module.__name__}.{name} "
                  f"(from {new_module.__name__} import {name}); the old spelling is an alias until 0.3",
                  DeprecationWarning, stacklevel=3)
    return getattr(new_module, name)


def old_submodule(package: str, name: str) -> types.ModuleType | None:
    """The 0.1 submodule ``package.name`` (through its alias, which warns), ``None`` if it is not one."""
    if f"{package}.{name}" not in MODULES:
        return None
    return importlib.import_module(f"{package}.{name}")


class AliasPackage(types.ModuleType):
    """A package whose 0.1 names are served by its module ``__getattr__`` and must not be
    overwritten when a 0.1 submodule alias of the same name is imported
    (``hookgnn.patching.atp_star`` was both a function and a module path; the name wins, as in 0.1)."""

    #: names served by ``__getattr__`` that are also 0.1 submodule paths
    shadowed: frozenset[str] = frozenset()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.shadowed and isinstance(value, types.ModuleType):
            return  # the import system binding the alias module: keep serving the 0.1 name
        super().__setattr__(name, value)
