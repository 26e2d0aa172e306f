"""Method definitions, one module per source paper.

Every module in this package defines ``METHODS: dict[str, MethodSpec]``; they are found
automatically, so adding a chapter's methods never touches a shared list.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from aerialseg.config import MethodSpec


@cache
def all_methods() -> dict[str, MethodSpec]:
    """Every registered method by name (duplicates are an error)."""
    found: dict[str, MethodSpec] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for name, spec in getattr(module, "METHODS", {}).items():
            if name in found:
                raise RuntimeError(f"method {name!r} is defined twice (in {info.name})")
            found[name] = spec
    return found
