"""The EFM chapter's analyses: the paper's support-weighted metrics, stage gains, tables."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from aerialseg.metrics import scores
from aerialseg.papers.efm.method import ARCHS, STAGES, method_name
from aerialseg.papers.efm.reported import EFM_TABLES, STAGE_TITLES, efm_paper_gains

# --------------------------------------------------------------------------- results

PAPER_COLUMNS = ("Acc", "Prec", "Rec", "IoU", "F1")


def _evaluated_indices(ds: Any) -> list[int]:
    names = [str(c) for c in ds["class"].values]
    flags = ([bool(v) for v in ds["evaluated"].values] if "evaluated" in ds.coords
             else [True] * len(names))
    return [i for i, (n, e) in enumerate(zip(names, flags, strict=True))
            if n != "overall" and e]


def support_weighted(ds: Any, *, protocol: str = "full") -> pd.DataFrame:
    """The paper's metrics from our confusion matrices: rows (method, seed), fractions.

    ``Acc`` = overall accuracy; ``Prec``, ``Rec``, ``IoU``, ``F1`` = per-class values
    averaged with the truth support of the evaluated classes as weights
    (:func:`aerialseg.metrics.scores`), so ``Rec`` equals ``Acc`` as in the paper's tables.
    """
    ev = _evaluated_indices(ds)
    rows = {}
    for m in ds["method"].values:
        for s in ds["seed"].values:
            cm = ds["confusion"].sel({"method": m, "seed": s, "protocol": protocol}).values
            if not np.isfinite(cm).all() or cm.sum() == 0:
                continue  # this method was not run with this seed
            sc = scores(cm.astype(np.int64), ev)
            rows[(str(m), int(s))] = {
                "Acc": sc["oa"], "Prec": sc["weighted_precision"],
                "Rec": sc["weighted_recall"], "IoU": sc["weighted_iou"],
                "F1": sc["weighted_f1"]}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.names = ["method", "seed"]
    return df


def _split_method(method: str) -> tuple[str, str]:
    for arch in ARCHS:
        for stage in STAGES:
            if method == method_name(arch, stage):
                return arch, stage
    raise ValueError(f"{method!r} is not an EFM-chapter method name")


def paper_style_table(ds: Any, *, protocol: str = "full", scale: float = 100.0
                      ) -> pd.DataFrame:
    """Ours (mean over seeds) beside the paper's Tables 1-2, indexed by (model, stage)."""
    ours = support_weighted(ds, protocol=protocol).groupby("method").mean()
    rows = {}
    for method, vals in ours.iterrows():
        arch, stage = _split_method(str(method))
        paper = EFM_TABLES.get((arch, stage), {})
        row = {("ours", k): scale * vals[k] for k in PAPER_COLUMNS}
        row |= {("paper", k): scale * paper[k] if paper else np.nan for k in PAPER_COLUMNS}
        rows[(arch, STAGE_TITLES[stage])] = row
    order = [(a, STAGE_TITLES[s]) for a in ARCHS for s in STAGES if (a, STAGE_TITLES[s]) in rows]
    df = pd.DataFrame.from_dict(rows, orient="index").reindex(order)
    df.columns = pd.MultiIndex.from_tuples(df.columns)
    df.index.names = ["model", "stage"]
    return df


COMPARISONS = (("efm", "base", "+EFM - baseline"), ("ft", "base", "fine-tune - baseline"),
               ("ctrl", "base", "control - baseline"), ("ft", "ctrl", "fine-tune - control"))
"""(stage, reference, label): "fine-tune - control" is the gain attributable to EFM."""


def stage_gains(ds: Any, *, scale: float = 100.0) -> pd.DataFrame:
    """Paired (per-seed) gains between stages, in points, mean and sd over seeds.

    Rows (model, comparison); columns: ``weighted IoU`` (full ground truth, the paper's
    metric), ``mIoU``, ``mean F1`` and ``OA`` (eroded ground truth, the ISPRS protocol), each
    with an `` sd`` column (NaN with one seed), ``seeds`` and the paper's IoU gain where the
    paper has both stages.
    """
    sw = support_weighted(ds, protocol="full")["IoU"]
    sc = ds["scores"].sel({"protocol": "eroded", "class": "overall"})
    def macro(metric: str) -> Any:
        return lambda m, s: float(sc.sel({"method": m, "seed": s, "metric": metric}))

    metrics = {"weighted IoU": lambda m, s: sw.get((m, s), np.nan), "mIoU": macro("iou"),
               "mean F1": macro("f1"), "OA": macro("oa")}
    methods = {str(m) for m in ds["method"].values}
    paper = efm_paper_gains("IoU")
    rows = {}
    for arch in ARCHS:
        for stage, ref, label in COMPARISONS:
            a, b = method_name(arch, stage), method_name(arch, ref)
            if a not in methods or b not in methods:
                continue
            row: dict[str, float] = {}
            for name, get in metrics.items():
                d = np.array([get(a, int(s)) - get(b, int(s)) for s in ds["seed"].values])
                d = scale * d[np.isfinite(d)]
                row[name] = float(d.mean()) if d.size else np.nan
                row[f"{name} sd"] = float(d.std(ddof=1)) if d.size > 1 else np.nan
                row["seeds"] = float(d.size)
            row["paper IoU"] = paper[arch].get(stage, np.nan) if ref == "base" else np.nan
            rows[(arch, label)] = row
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.names = ["model", "comparison"]
    return df


def gains_records(gains: pd.DataFrame) -> list[dict[str, Any]]:
    """:func:`stage_gains` as plain records (for the results file's attributes)."""
    return [{"model": m, "comparison": c, **{k: float(v) for k, v in row.items()}}
            for (m, c), row in gains.iterrows()]


def stage_methods(archs: Any, stages: Any = STAGES) -> list[str]:
    """Method names in chapter order: per architecture, the stages in ``stages`` order."""
    return [method_name(a, s) for a in archs for s in stages]


def format_gains(gains: pd.DataFrame,
                 metrics: tuple[str, ...] = ("weighted IoU", "mIoU", "mean F1", "OA")
                 ) -> pd.DataFrame:
    """:func:`stage_gains` for display: ``+m.mm ± s.ss`` per metric, plus the paper's gain."""
    out = pd.DataFrame(index=gains.index)
    for m in metrics:
        sd = gains[f"{m} sd"]
        out[m] = [f"{v:+.2f}" + (f" ± {s:.2f}" if np.isfinite(s) else "")
                  for v, s in zip(gains[m], sd, strict=True)]
    out["paper IoU"] = [f"{v:+.2f}" if np.isfinite(v) else "–" for v in gains["paper IoU"]]
    return out


def format_gain(gains: pd.DataFrame, arch: str, comparison: str, metric: str) -> str:
    """One cell of :func:`stage_gains` as ``+m.mm ± s.ss`` ("–" if not computed)."""
    if (arch, comparison) not in gains.index:
        return "–"
    m = gains.loc[(arch, comparison), metric]
    sd = gains.loc[(arch, comparison), f"{metric} sd"]
    return f"{m:+.2f}" + (f" ± {sd:.2f}" if np.isfinite(sd) else "")
