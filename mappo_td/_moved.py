"""Modules that moved: their earlier import paths still work, and each name read through one warns.

``mappo_td.schema``, ``validation``, ``presets``, ``skrl_compat`` and ``env_section`` are now in
:mod:`mappo_td.config`; ``import mappo_td.schema`` gives a module whose every attribute comes from
``mappo_td.config.schema`` (or, for a name that moved on, :mod:`mappo_td.config`) with a ``DeprecationWarning``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import warnings
from collections.abc import Sequence
from typing import Any

MOVED = {f"mappo_td.{m}": f"mappo_td.config.{m}" for m in ("schema", "validation", "presets", "skrl_compat", "env_section")}


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the earlier paths in :data:`MOVED` and makes each a module that forwards to the new one, with a warning."""

    def find_spec(self, name: str, path: Sequence[str] | None = None, target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # a plain module

    def exec_module(self, module: types.ModuleType) -> None:
        old, new = module.__name__, MOVED[module.__name__]

        def forward(attr: str) -> Any:
            if attr.startswith("__"):  # module machinery (__path__, __file__ ...): not a moved name
                raise AttributeError(attr)
            module_new, package = importlib.import_module(new), importlib.import_module("mappo_td.config")
            source = module_new if hasattr(module_new, attr) else package  # names that moved on within the package
            warnings.warn(f"{old} moved to {source.__name__}: import {attr} from there.", DeprecationWarning, stacklevel=2)
            return getattr(source, attr)

        module.__doc__ = f"Deprecated: the earlier path of :mod:`{new}`."
        module.__getattr__ = forward  # type: ignore[method-assign]


def install() -> None:
    """Put :class:`MovedModules` on ``sys.meta_path`` (once).

    Example:
        >>> import warnings
        >>> install()
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     from mappo_td.presets import PRESETS
        >>> "mappo-paper" in PRESETS, caught[0].category.__name__
        (True, 'DeprecationWarning')
    """
    if not any(isinstance(f, MovedModules) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModules())  # before any finder that could find a stale copy of the old file
