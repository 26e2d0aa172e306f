"""The study's registry: it discovers the papers and resolves a method's run.

Every package under :mod:`aerialseg.papers` defines ``PAPER`` (:class:`~aerialseg.config.Paper`):
its methods, the numbers it reports, its claims and its chapters' own settings. Adding a
paper means adding a package there; nothing here changes.

Resolution order of a run's values: the method's defaults < the method's profile values <
explicit (non-None) values.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from aerialseg import papers as _papers_pkg
from aerialseg.config import (
    ChapterDefaults,
    Claim,
    MethodSpec,
    Paper,
    PaperResult,
    RunConfig,
)
from aerialseg.display import register_method_names
from aerialseg.profiles import PROFILES, check_profile


@cache
def papers() -> dict[str, Paper]:
    """Every paper package's ``PAPER``, by key (duplicate methods or chapters are errors)."""
    found: dict[str, Paper] = {}
    methods: dict[str, str] = {}
    chapters: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(_papers_pkg.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{_papers_pkg.__name__}.{info.name}")
        paper = getattr(module, "PAPER", None)
        if not isinstance(paper, Paper):
            raise RuntimeError(f"aerialseg.papers.{info.name} defines no PAPER")
        for name, spec in paper.methods.items():
            if name in methods:
                raise RuntimeError(f"method {name!r} is defined by {methods[name]} and "
                                   f"{paper.key}")
            missing = set(PROFILES) - set(spec.profiles)
            if missing:
                raise RuntimeError(f"method {name!r} ({paper.key}) has no values for "
                                   f"profile(s) {sorted(missing)}")
            methods[name] = paper.key
        for chapter in paper.chapters:
            if chapter in chapters:
                raise RuntimeError(f"chapter {chapter!r} is declared by {chapters[chapter]} "
                                   f"and {paper.key}")
            chapters[chapter] = paper.key
        found[paper.key] = paper
        register_method_names({n: s.label or s.title for n, s in paper.methods.items()})
    return found


def all_methods() -> dict[str, MethodSpec]:
    """Every registered method by name."""
    return {n: s for p in papers().values() for n, s in p.methods.items()}


def get_method(name: str) -> MethodSpec:
    """The registered method ``name``; a clear error lists the valid names."""
    methods = all_methods()
    if name not in methods:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(methods)}")
    return methods[name]


def available_methods(requested: Sequence[str]) -> list[str]:
    """The requested methods that are registered, in order.

    Raises:
        ValueError: none of them is registered (the registered ones are listed).
    """
    known = all_methods()
    out = [m for m in requested if m in known]
    if not out:
        raise ValueError(f"none of the methods {list(requested)} is registered; "
                         f"registered methods: {sorted(known)}")
    return out


def paper_of(method: str) -> Paper:
    """The paper that defines ``method``."""
    for p in papers().values():
        if method in p.methods:
            return p
    raise ValueError(f"unknown method {method!r}; choose one of {sorted(all_methods())}")


def chapter_defaults(chapter: str) -> ChapterDefaults:
    """The chapter's own settings, from the paper that declares it (empty if none does)."""
    for p in papers().values():
        if chapter in p.chapters:
            return p.chapters[chapter]
    return ChapterDefaults()


def paper_results() -> list[PaperResult]:
    """Every number the papers report for our methods."""
    return [r for p in papers().values() for r in p.results]


def claims() -> list[Claim]:
    """Every claim of the papers that the comparison judges."""
    return [c for p in papers().values() for c in p.claims]


def declared(method: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The non-None entries of ``values`` that ``method`` declares (the rest is dropped).

    One chapter's parameters serve several methods (``base_width`` is a U-Net's,
    ``encoder`` an smp model's); each method takes the ones it has.
    """
    names = get_method(method).parameter_names
    return {k: v for k, v in values.items() if v is not None and k in names}


def resolve_run(method: str, *, profile: str, in_bands: Sequence[str], data: dict[str, Any],
                **overrides: Any) -> RunConfig:
    """Resolve a method's parameters for ``profile`` with explicit (non-None) overrides.

    Raises:
        ValueError: unknown method, profile or parameter name (valid names are listed), or
            an out-of-range value.
    """
    check_profile(profile)
    return get_method(method).resolve(profile=profile, in_bands=in_bands, data=data,
                                      **overrides)
