"""Sphinx extension: an author-year bibliography that matches the author-year citations.

``bibtex_reference_style: author_year`` makes ``{cite:p}`` read "(Kampffmeyer et al.,
2016)", but the bibliography list keeps the labels of its pybtex style (``alpha``:
"[KSJ16]"). This registers the pybtex style ``aerialseg_authoryear``: the ``unsrt`` entry
format, sorted by author, year and title, labelled "Kampffmeyer et al., 2016" (two authors:
"Vlasenko and Dashkevych, 2025"; labels that coincide get "2016a", "2016b"). Select it with
``bibtex_default_style: aerialseg_authoryear`` (``_config.yml``). Works offline; needs only
pybtex, which sphinxcontrib-bibtex installs.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting import BaseSortingStyle

STYLE = "aerialseg_authoryear"


def _plain(latex: str) -> str:
    """LaTeX name text as plain text (``{Humans in the Loop}`` -> ``Humans in the Loop``)."""
    return str(Text.from_latex(latex)).strip()


def author_year_label(entry: Any) -> str:
    """"Surname et al., year" of a pybtex entry (authors, else editors, else its key)."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_plain(" ".join(p.prelast_names + p.last_names)) for p in persons]
    if not names:
        who = entry.key
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    year = entry.fields.get("year", "n.d.")
    return f"{who}, {year}"


class AuthorYearLabelStyle(BaseLabelStyle):
    """Labels "Kampffmeyer et al., 2016"; equal labels get a, b, ... after the year."""

    def format_labels(self, sorted_entries: Iterable[Any]) -> Iterator[str]:
        """One label per entry, in the given order."""
        entries = list(sorted_entries)
        labels = [author_year_label(e) for e in entries]
        counts = Counter(labels)
        seen: dict[str, int] = defaultdict(int)
        for label in labels:
            if counts[label] > 1:
                suffix = chr(ord("a") + seen[label])
                seen[label] += 1
                yield label + suffix
            else:
                yield label


class AuthorYearSortingStyle(BaseSortingStyle):
    """By the label's text ("{Humans in the Loop}" sorts under H), then the title."""

    def sorting_key(self, entry: Any) -> tuple[str, str]:
        """Label text, then title, case-insensitive."""
        return (author_year_label(entry).casefold(),
                _plain(entry.fields.get("title", "")).casefold())


class AuthorYearStyle(UnsrtStyle):
    """``unsrt`` entries, sorted by author, year and title, with author-year labels."""

    default_label_style = AuthorYearLabelStyle
    default_sorting_style = AuthorYearSortingStyle


def setup(app: Any) -> dict[str, Any]:
    """Register the pybtex style (before sphinxcontrib-bibtex formats any bibliography)."""
    register_plugin("pybtex.style.formatting", STYLE, AuthorYearStyle)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
