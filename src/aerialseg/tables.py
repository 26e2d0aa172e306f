"""Numbers and tables for the reader: seed means and the book's one table formatter.

Every table a chapter shows goes through :func:`show_table` (or :func:`summary_table`,
built on it). The result is a :class:`Table`: a :class:`pandas.DataFrame` holding the plain
data (tests read it like any frame) that renders in a notebook as the book's table:

* a caption line above the table (numbered "Table 3.1" by the chapter runner);
* no index column: the row labels are the first column, in display names
  (:mod:`aerialseg.display`); every row is shown, however many;
* fractions in percent with one decimal (``percent=``), scores already in points with one
  decimal (``points=``), no scientific notation, counts with digit grouping;
* "mean ± sd" and "mean [low, high]" on one line; True/False as "yes"/"no";
* NaN, None or "nan" as "–" with a note under the table saying what it means (``na=``);
* a table wider than the content column (about 780 px) is split into several tables that
  repeat the row labels (``split=``: "auto", explicit column groups, or None), each in a
  horizontally scrolling container, so no column is ever cut silently.

The CSS is ``book/_static/aerialseg.css``.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from aerialseg import display, stats
from aerialseg.results import OVERALL

NA = "–"
"""What a cell without a value shows (an en dash)."""
NBSP = "\u00a0"
MINUS = "\u2212"
CONTENT_WIDTH_PX = 760
"""Width a table may take in the content column (sphinx-book-theme, 1400 px window)."""
_CHAR_PX = 8.2  # a character of the table font (0.85 em of 16 px, DejaVu Sans digits)
_CELL_PAD_PX = 18

Format = str | Callable[[Any], str]


# --------------------------------------------------------------------------- numbers

def _is_na(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float | np.floating):
        return not math.isfinite(float(v))
    return isinstance(v, str) and v.strip().lower() in ("nan", "none", "")


def number(x: float, digits: int = 1) -> str:
    """``x`` with ``digits`` decimals and a real minus sign ("−1.5"); "–" if undefined."""
    if _is_na(x):
        return NA
    text = f"{float(x):.{digits}f}"
    if float(text) == 0:
        text = text.lstrip("-")
    return text.replace("-", MINUS)


def percent(x: float, digits: int = 1) -> str:
    """A fraction in percent, without the sign: ``percent(0.6904)`` → "69.0"."""
    return NA if _is_na(x) else number(100 * float(x), digits)


def mean_sd(mean: float, sd: float | None = None, *, scale: float = 100.0,
            digits: int = 1) -> str:
    """"81.3 ± 0.4" (scaled; non-breaking spaces); the mean alone when ``sd`` is undefined."""
    if _is_na(mean):
        return NA
    m = number(scale * float(mean), digits)
    if sd is None or _is_na(sd):
        return m
    return f"{m}{NBSP}±{NBSP}{number(scale * float(sd), digits)}"


def mean_interval(mean: float, low: float, high: float, *, scale: float = 100.0,
                  digits: int = 1) -> str:
    """"81.3 [79.0, 83.1]" (scaled; non-breaking spaces); the mean alone without bounds."""
    if _is_na(mean):
        return NA
    m = number(scale * float(mean), digits)
    if _is_na(low) or _is_na(high):
        return m
    return (f"{m}{NBSP}[{number(scale * float(low), digits)},{NBSP}"
            f"{number(scale * float(high), digits)}]")


def _auto(v: float) -> str:
    """A number of any size without scientific notation."""
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 1000:
        return f"{v:,.0f}".replace(",", "\u202f").replace("-", MINUS)
    if a >= 10:
        return number(v, 1)
    if a >= 1:
        return number(v, 2)
    if a >= 0.001:
        return f"{v:.3f}".replace("-", MINUS)
    return f"<{NBSP}0.001" if v > 0 else f"{MINUS}<{NBSP}0.001"


FORMATS: dict[str, Callable[[Any], str]] = {
    "percent": percent,
    "points": lambda v: number(v, 1),
    "int": lambda v: f"{round(float(v)):,}".replace(",", "\u202f").replace("-", MINUS),
    "float1": lambda v: number(v, 1),
    "float2": lambda v: number(v, 2),
    "float3": lambda v: number(v, 3),
    "auto": _auto,
    "text": str,
    "yesno": lambda v: "yes" if bool(v) else "no",
    "check": lambda v: "✓" if bool(v) else "✗",
}
"""Named cell formats of :func:`show_table` (``formats={"OA": "percent"}``)."""


def format_cell(v: Any, fmt: Format = "auto") -> str:
    """The text one cell shows (``NA`` for a missing value)."""
    if _is_na(v):
        return NA
    if isinstance(v, str):
        return v.replace(" ± ", f"{NBSP}±{NBSP}")
    f = FORMATS[fmt] if isinstance(fmt, str) else fmt
    if isinstance(v, bool | np.bool_) and fmt in ("auto", "text"):
        return FORMATS["yesno"](v)
    if isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_) \
            and fmt == "auto":
        return FORMATS["int"](v)
    if isinstance(v, float | np.floating | int | np.integer) or callable(fmt) \
            or fmt in ("yesno", "check", "text"):
        return f(v)
    return str(v)


# --------------------------------------------------------------------------- the Table

_OPTIONS = ("caption", "rows", "row_header", "columns", "formats", "labels", "na",
            "notes", "split", "index")


class Table(pd.DataFrame):
    """A DataFrame that a notebook shows as one of the book's tables.

    The frame holds the plain data (numbers, or the strings :func:`summary_table` formats);
    :meth:`_repr_html_` renders it with the options of :func:`show_table`, kept in
    :attr:`options`. Every pandas operation returns a :class:`Table` with the same options.
    """

    _metadata = ["options"]

    @property
    def _constructor(self) -> type[Table]:
        return Table

    def with_options(self, **options: Any) -> Table:
        """A copy with these rendering options changed (see :func:`show_table`)."""
        bad = set(options) - set(_OPTIONS)
        if bad:
            raise TypeError(f"unknown table options {sorted(bad)}; valid: {list(_OPTIONS)}")
        out = self.copy()
        out.options = {**(getattr(self, "options", None) or {}), **options}
        return out

    # the cells as shown (tests compare these with known answers)
    def shown(self) -> pd.DataFrame:
        """The table as the reader sees it: display names and formatted cells, no index."""
        return _shown(self, getattr(self, "options", None) or {})[0]

    def _repr_html_(self) -> str:
        return render_html(self, **(getattr(self, "options", None) or {}))


def show_table(df: pd.DataFrame, *, caption: str, rows: str | Mapping[str, str] | Callable
               | None = "auto", row_header: str | None = None,
               columns: str | Mapping[str, str] | Callable | None = "column",
               formats: Mapping[str, Format] | None = None,
               percent: Sequence[str] | bool = (), points: Sequence[str] | bool = (),
               labels: Mapping[str, str] | None = None, na: str = "not applicable",
               notes: Sequence[str] = (), split: str | Sequence[Any] | None = "auto",
               index: bool | None = None) -> Table:
    """The book's table of ``df``; display it, or make it the cell's last expression.

    Args:
        df: the data. A meaningful index (method ids, class names) becomes the first
            column; a default 0..n-1 index is dropped.
        caption: one sentence or two above the table: what is compared, on which data, in
            which unit (``**bold**``, ``*italic*`` and ```code``` are allowed).
        rows: how index labels are named: "method", "class", "metric", a mapping, a function,
            None (as they are) or "auto" ("method" when the index holds method ids).
        row_header: header of the row-label column (default from ``rows``: "Method",
            "Class", ...).
        columns: how column headers are named ("column": classes and summary labels, see
            :func:`aerialseg.display.column_name`; or a kind, mapping, function, None).
        formats: per column, a key of :data:`FORMATS` or a function value → text; other
            numeric columns use "auto" (no scientific notation).
        percent: columns of fractions shown in percent with one decimal (True: every
            float column).
        points: columns already in percent (points) shown with one decimal (True: all).
        labels: columns whose values are ids to show by name, e.g. ``{"method": "method"}``.
        na: what "–" means in this table (the note under the table).
        notes: further notes under the table.
        split: "auto" splits a table wider than the content column into consecutive column
            groups; a list of column lists (or of ``(title, columns)`` pairs) splits it
            that way; None never splits (the table still scrolls horizontally).
        index: show the index as the first column (default: unless it is 0..n-1).
    """
    fmt: dict[str, Format] = {}
    numeric = [c for c in df.columns if pd.api.types.is_float_dtype(df[c])]
    for cols, name in ((percent, "percent"), (points, "points")):
        chosen = numeric if cols is True else ([] if cols is False else list(cols))
        for c in chosen:
            if c not in df.columns:
                raise KeyError(f"{name}= names column {c!r}, which is not in the table; "
                               f"columns are {list(df.columns)}")
            fmt[c] = name
    fmt.update(formats or {})
    out = Table(df.copy())
    out.options = {"caption": caption, "rows": rows, "row_header": row_header,
                   "columns": columns, "formats": fmt, "labels": dict(labels or {}),
                   "na": na, "notes": list(notes), "split": split, "index": index}
    return out


def _looks_like_methods(labels: Sequence[Any]) -> bool:
    return any(display.method_name(str(x)) != str(x).replace("_", " ") or
               str(x) in display.METHOD_NAMES for x in labels)


def _shown(df: pd.DataFrame, opts: Mapping[str, Any]
           ) -> tuple[pd.DataFrame, bool, str | None]:
    """The text frame (row labels first), whether a "–" is shown, the row-label column."""
    formats: Mapping[str, Format] = opts.get("formats") or {}
    labels: Mapping[str, str] = opts.get("labels") or {}
    show_index = opts.get("index")
    if show_index is None:
        show_index = not isinstance(df.index, pd.RangeIndex)
    rows = opts.get("rows", "auto")
    if rows == "auto":
        rows = "method" if _looks_like_methods(list(df.index)) else None
    col_namer = display.namer(opts.get("columns", "column"))
    header = opts.get("row_header")
    if header is None:
        header = {"method": "Method", "class": "Class", "metric": "Metric"}.get(
            rows if isinstance(rows, str) else "", str(df.index.name or ""))
    row_namer = display.namer(rows)
    body: dict[str, list[str]] = {}
    any_na = False
    if show_index:
        body[header] = [row_namer(str(x)) for x in df.index]
    for c in df.columns:
        namer = display.namer(labels[c]) if c in labels else None
        cells = []
        for v in df[c].tolist():
            if namer is not None and not _is_na(v):
                cells.append(namer(str(v)))
                continue
            text = format_cell(v, formats.get(c, "auto"))
            any_na |= text == NA
            cells.append(text)
        name = col_namer(str(c))
        while name in body:  # two columns may share a display name
            name += NBSP
        body[name] = cells
    return (pd.DataFrame(body, index=pd.RangeIndex(len(df))), any_na,
            header if show_index else None)


def _inline(text: str) -> str:
    """Escape, then ``**bold**``, ``*italic*`` and ```code``` as HTML."""
    t = html.escape(text)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    t = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", t)
    return re.sub(r"\*([^*]+)\*", r"<em>\1</em>", t)


def _width(col: str, cells: Sequence[str], label: bool = False) -> float:
    words = [len(w) for w in col.split()] or [0]
    longest = max([max(words)] + [len(c) for c in cells])
    if label:
        longest = min(longest, 30)  # row labels may wrap
    return longest * _CHAR_PX + _CELL_PAD_PX


def column_groups(text: pd.DataFrame, label: str | None,
                  width: float = CONTENT_WIDTH_PX) -> list[list[str]]:
    """Consecutive groups of the value columns that each fit ``width`` with the labels."""
    cols = [c for c in text.columns if c != label]
    fixed = _width(label, text[label].tolist(), True) if label else 0.0
    groups: list[list[str]] = [[]]
    used = fixed
    for c in cols:
        w = _width(c, text[c].tolist())
        if groups[-1] and used + w > width:
            groups.append([])
            used = fixed
        groups[-1].append(c)
        used += w
    return groups


def _html_table(text: pd.DataFrame, label: str | None, cols: Sequence[str],
                numeric: Mapping[str, bool]) -> str:
    head = "".join(
        f'<th scope="col" class="{"row-label" if c == label else "num" if numeric[c] else "text"}">'
        f"{html.escape(c.rstrip(NBSP))}</th>" for c in ([label] if label else []) + list(cols))
    rows = []
    for i in range(len(text)):
        cells = []
        if label:
            cells.append(f'<th scope="row" class="row-label">{html.escape(text[label][i])}</th>')
        for c in cols:
            v = text[c][i]
            cls = "na" if v == NA else "num" if numeric[c] else "text"
            cells.append(f'<td class="{cls}">{html.escape(v)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="aerialseg-scroll" tabindex="0"><table class="aerialseg">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


_NUMERIC = re.compile(r"^[\s\u2212\-+<–]*[\d.,\u202f]+.*$")


def render_html(df: pd.DataFrame, **opts: Any) -> str:
    """The HTML of :func:`show_table`'s table (what :meth:`Table._repr_html_` returns)."""
    text, any_na, label = _shown(df, opts)
    numeric = {c: bool(len(text)) and all(_NUMERIC.match(v) or v == NA for v in text[c])
               and any(v != NA for v in text[c]) for c in text.columns}
    split = opts.get("split", "auto")
    value_cols = [c for c in text.columns if c != label]
    named = dict(zip([str(c) for c in df.columns], value_cols, strict=True))
    parts: list[tuple[str | None, list[str]]]
    if split is None:
        parts = [(None, value_cols)]
    elif split == "auto":
        parts = [(None, g) for g in column_groups(text, label)]
    else:
        parts = []
        for g in split:
            title, cols = (g if isinstance(g, tuple) else (None, g))
            missing = [c for c in cols if str(c) not in named]
            if missing:
                raise KeyError(f"split names columns {missing} that are not in the table; "
                               f"columns are {list(named)}")
            parts.append((title, [named[str(c)] for c in cols]))
        rest = [c for c in value_cols if c not in {x for _, cs in parts for x in cs}]
        if rest:
            parts.append((None, rest))
        # a group that is still too wide is split further
        parts = [(t if i == 0 else None, g) for t, cols in parts
                 for i, g in enumerate(column_groups(text[([label] if label else []) + cols],
                                                     label))]
    out = ['<div class="aerialseg-table">']
    caption = opts.get("caption")
    if caption:
        out.append('<p class="aerialseg-table-caption"><span class="aerialseg-table-number">'
                   f"</span>{_inline(caption)}</p>")
    for k, (title, cols) in enumerate(parts):
        if title:
            out.append(f'<p class="aerialseg-table-subtitle">{_inline(title)}</p>')
        elif k:
            out.append('<p class="aerialseg-table-subtitle">(continued)</p>')
        out.append(_html_table(text, label, cols, numeric))
    notes = ([f"{NA} {opts.get('na') or 'not applicable'}."] if any_na else []) + \
        list(opts.get("notes") or [])
    if notes:
        out.append('<p class="aerialseg-table-notes">' +
                   " ".join(_inline(n) for n in notes) + "</p>")
    out.append("</div>")
    return "".join(out)


# --------------------------------------------------------------------------- results

def seed_mean(ds: xr.Dataset, method: str, metric: str, cls: str = "overall", *,
              protocol: str = "eroded", scale: float = 100.0) -> float:
    """Mean over seeds of one score of ``method`` (``scale`` x, NaN if never computed)."""
    v = ds["scores"].sel({"method": method, "metric": metric, "class": cls,
                          "protocol": protocol}).values.astype(float)
    v = v[np.isfinite(v)]
    return float(scale * v.mean()) if v.size else float("nan")


def _evaluated(ds: xr.Dataset) -> list[bool]:
    if "evaluated" in ds.coords:
        return [bool(v) for v in ds["evaluated"].values]
    return [True] * ds.sizes["class"]


SUMMARY_LABELS = {"f1": "mean F1", "iou": "mIoU", "oa": "OA", "boundary_f1": "boundary F1",
                  "ece": "ECE", "weighted_f1": "weighted F1", "weighted_iou": "weighted IoU"}
"""Column keys of :func:`summary_table` for the overall metrics (shown via ``display``)."""

_PROTOCOLS = {"eroded": "eroded-boundary ground truth", "full": "full ground truth"}


def summary_table(ds: xr.Dataset, *, protocol: str = "eroded",
                  metrics: tuple[str, ...] = ("f1", "iou", "oa", "boundary_f1", "ece"),
                  per_class: str | None = "f1", scale: float = 100.0,
                  spread: str = "std", caption: str | None = None,
                  na: str = "not computed for this method") -> Table:
    """Per method: per-class ``per_class`` plus overall ``metrics``, over seeds.

    Returns a :class:`Table` (a DataFrame indexed by method id, columns the class ids then
    the :data:`SUMMARY_LABELS` of ``metrics``; cells are formatted strings) that displays as
    two tables, the per-class scores and the overall ones, with display names. Every score,
    ECE included, is in percent with one decimal.

    Args:
        ds: a results Dataset.
        protocol: ``eroded`` or ``full``.
        metrics: overall metrics (``f1`` is mean F1, ``iou`` mIoU).
        per_class: per-class metric for every evaluated class (None: none).
        scale: multiplier of the scores (100: percent).
        spread: ``"std"``: mean ± standard deviation over seeds; ``"interval"``:
            ``mean [low, high]``, the 95 % interval of :func:`aerialseg.stats.interval_frame`
            (seeds and spatial blocks) for every score a confusion matrix gives, mean ± std
            for the others (boundary F1, ECE).
        caption: the caption (default: says the data, protocol, unit and spread).
        na: what "–" means in this table.
    """
    if spread not in ("std", "interval"):
        raise ValueError(f"spread must be 'std' or 'interval', got {spread!r}")
    sc = ds["scores"].sel(protocol=protocol)
    intervals: dict[tuple[str, str, str], str] = {}
    if spread == "interval":
        ok = [m for m in metrics if m in stats.OVERALL_METRICS]
        pc = (per_class,) if per_class in stats.CLASS_METRICS else ()
        frame = stats.interval_frame(ds, protocol=protocol, metrics=ok, per_class=pc)
        for r in frame.to_dict("records"):
            intervals[(r["method"], r["class"], r["metric"])] = mean_interval(
                r["mean"], r["low"], r["high"], scale=scale)
    classes: list[str] = []
    if per_class:
        classes = [str(c) for c, e in zip(ds["class"].values, _evaluated(ds), strict=True)
                   if c != OVERALL and e]
    rows = {}
    n_seeds = 0
    for method in ds["method"].values:
        s = sc.sel({"method": method})
        row: dict[str, str] = {}
        cols: list[tuple[str, Any]] = []
        cols += [(c, s.sel(**{"class": c, "metric": per_class})) for c in classes]
        cols += [(SUMMARY_LABELS.get(m, m), s.sel(**{"class": OVERALL, "metric": m}))
                 for m in metrics]
        for name, da in cols:
            key = (str(method), str(da["class"].values), str(da["metric"].values))
            if key in intervals:
                row[name] = intervals[key]
                continue
            v = da.values.astype(float)
            v = v[np.isfinite(v)]
            n_seeds = max(n_seeds, v.size)
            if v.size == 0:
                row[name] = NA
            elif v.size == 1:
                row[name] = mean_sd(v[0], None, scale=scale)
            else:
                row[name] = mean_sd(v.mean(), v.std(ddof=1), scale=scale)
        rows[str(method)] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    overall = [SUMMARY_LABELS.get(m, m) for m in metrics]
    what = ("mean [95 % interval over seeds and spatial blocks]" if spread == "interval"
            else "mean ± standard deviation over seeds" if n_seeds > 1 else "one seed")
    if caption is None:
        caption = (f"Scores on the validation scenes ({_PROTOCOLS.get(protocol, protocol)}), "
                   f"in %: {what}.")
    groups: list[Any] = []
    if classes:
        groups.append((f"{display.metric_name(per_class, 'x')} per class (%)", classes))
    if overall:
        groups.append(("Overall (%)", overall))
    notes = ["ECE in % (0 is perfectly calibrated; lower is better)."] \
        if "ece" in metrics else []
    return show_table(out, caption=caption, rows="method", na=na, notes=notes,
                      split=groups if len(groups) > 1 else "auto")


def verdict_table(verdicts: Sequence[Any], claims: Sequence[Any], *, caption: str,
                  names: Mapping[str, str] | None = None) -> Table:
    """The papers' claims judged on our runs, one row per claim, each with its interval.

    Columns: the claim, the source's effect, ours (estimate and 95 % interval, in points),
    paired seeds, the verdict (supported / contradicted / inconclusive / untestable) and why
    a claim is untestable. ``verdicts[i]`` judges ``claims[i]`` (:func:`aerialseg.stats.
    judge`).
    """
    if len(verdicts) != len(claims):
        raise ValueError(f"{len(verdicts)} verdicts for {len(claims)} claims")
    rows = []
    for v, c in zip(verdicts, claims, strict=True):
        paper = getattr(c, "paper_delta", None)
        finite = all(isinstance(x, float) and np.isfinite(x)
                     for x in (v.estimate, v.low, v.high))
        ours = (f"{100 * v.estimate:+.1f} [{100 * v.low:+.1f}, {100 * v.high:+.1f}]"
                if finite else "–")
        text = c.text[:1].upper() + c.text[1:]
        rows.append({"claim": f"{text} ({c.source})",
                     "paper": "–" if paper is None else f"{paper:+.1f}",
                     "ours [95 % interval]": ours, "seeds": str(v.n_seeds),
                     "verdict": v.verdict,
                     "why untestable": (v.reason or "–") if v.verdict == "untestable"
                     else "–"})
    df = pd.DataFrame(rows)
    return show_table(df, caption=caption, rows=None, columns=None, index=False, split=None,
                      na="no number (the claim gives none, or it cannot be computed)",
                      notes=("Effects in points (method minus baseline); the interval is the "
                             "95 % percentile interval of the paired bootstrap over seeds and "
                             "spatial blocks (see the protocol page).",))
