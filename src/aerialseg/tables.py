"""Numbers and tables for the reader: seed means and display formatting of results."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from aerialseg import stats
from aerialseg.results import OVERALL


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


def summary_table(ds: xr.Dataset, *, protocol: str = "eroded",
                  metrics: tuple[str, ...] = ("f1", "iou", "oa", "boundary_f1", "ece"),
                  per_class: str | None = "f1", scale: float = 100.0,
                  spread: str = "std") -> pd.DataFrame:
    """Per method: per-class ``per_class`` plus overall ``metrics``, over seeds.

    Args:
        ds: a results Dataset.
        protocol: ``eroded`` or ``full``.
        metrics: overall metrics (``f1`` is mean F1, ``iou`` mIoU).
        per_class: per-class metric for every evaluated class (None: none).
        scale: multiplier of the scores (100: percent; ECE is never scaled).
        spread: ``"std"``: mean ± standard deviation over seeds; ``"interval"``:
            ``mean [low, high]``, the 95 % interval of :func:`aerialseg.stats.interval_frame`
            (seeds and spatial blocks) for every score a confusion matrix gives, mean ± std
            for the others (boundary F1, ECE).
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
            intervals[(r["method"], r["class"], r["metric"])] = stats.format_interval(
                r["mean"], r["low"], r["high"], scale=scale, digits=2)
    rows = {}
    for method in ds["method"].values:
        s = sc.sel({"method": method})
        row: dict[str, str] = {}
        cols: list[tuple[str, Any]] = []
        if per_class:
            classes = [str(c) for c, e in zip(ds["class"].values, _evaluated(ds), strict=True)
                       if c != OVERALL and e]
            cols += [(c, s.sel(**{"class": c, "metric": per_class})) for c in classes]
        labels = {"f1": "mean F1", "iou": "mIoU", "oa": "OA", "boundary_f1": "boundary F1",
                  "ece": "ECE", "weighted_f1": "weighted F1", "weighted_iou": "weighted IoU"}
        cols += [(labels.get(m, m), s.sel(**{"class": OVERALL, "metric": m})) for m in metrics]
        for name, da in cols:
            key = (str(method), str(da["class"].values), str(da["metric"].values))
            if key in intervals:
                row[name] = intervals[key]
                continue
            v = da.values.astype(float)
            v = v[np.isfinite(v)]
            k = 1.0 if name == "ECE" else scale
            if v.size == 0:
                row[name] = "–"
            elif v.size == 1:
                row[name] = f"{k * v[0]:.2f}" if name != "ECE" else f"{v[0]:.3f}"
            else:
                fmt = ".3f" if name == "ECE" else ".2f"
                row[name] = f"{k * v.mean():{fmt}} ± {k * v.std(ddof=1):{fmt}}"
        rows[str(method)] = row
    return pd.DataFrame.from_dict(rows, orient="index")
