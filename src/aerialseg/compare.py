"""The comparative chapter's logic: read every chapter's results file, never retrain.

Methods from different chapters are put side by side on one ``method`` axis; a method's
chapter is kept in the ``chapter`` coordinate and its hardware in ``hardware``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from aerialseg.config import Claim, PaperResult
from aerialseg.paths import results_dir
from aerialseg.results import OVERALL, read_results

COMPARISON_CHAPTER = "10_comparison"


def find_results(dataset: str, profile: str, folder: str | Path | None = None
                 ) -> list[Path]:
    """Results files of every method chapter for ``dataset`` and ``profile``."""
    base = Path(folder) if folder else results_dir()
    out = []
    for path in sorted(base.glob(f"*__{dataset}__{profile}.nc")):
        if path.name.startswith(COMPARISON_CHAPTER):
            continue
        out.append(path)
    return out


def load_all(dataset: str, profile: str, folder: str | Path | None = None) -> xr.Dataset:
    """Combine the method results of every chapter (files without ``scores`` are skipped).

    A method name that several chapters report is taken from the first chapter (by chapter
    number) that reports it.

    Raises:
        FileNotFoundError: no results yet (names the folder and how to produce them).
    """
    parts = []
    for path in find_results(dataset, profile, folder):
        ds = read_results(path)
        if "scores" not in ds:
            continue
        chapter = ds.attrs.get("chapter", path.stem.split("__")[0])
        keep = [v for v in ds.data_vars if "method" in ds[v].dims or v == "truth_crop"]
        ds = ds[keep]
        ds = ds.assign_coords(chapter=("method", [chapter] * ds.sizes["method"]),
                              hardware=("method", [ds.attrs.get("hardware", "?")]
                                        * ds.sizes["method"]),
                              git_commit=("method", [ds.attrs.get("git_commit", "?")]
                                          * ds.sizes["method"]))
        parts.append(ds)
    if not parts:
        folder = Path(folder) if folder else results_dir()
        raise FileNotFoundError(
            f"no results for dataset {dataset!r}, profile {profile!r} in {folder}. Run the "
            f"method chapters first, e.g. `aerialseg book run --profile {profile} "
            f"--dataset {dataset} --no-build`.")
    # the same method evaluated the same way in a later chapter (e.g. 04 re-evaluating 03's
    # FCN) is the same model: keep its first appearance, in chapter order
    seen: set[str] = set()
    renamed = []
    for ds in parts:
        names = [str(m) for m in ds["method"].values]
        fresh = [m for m in names if m not in seen]
        seen.update(fresh)
        if fresh:
            renamed.append(ds.sel({"method": fresh}))
    truth = next((d["truth_crop"] for d in renamed if "truth_crop" in d), None)
    renamed = [d.drop_vars("truth_crop", errors="ignore") for d in renamed]
    # variables present in some chapters only (e.g. MC-dropout curves) are concatenated
    # over the chapters that have them, then aligned on the union of methods
    names = list(dict.fromkeys(v for d in renamed for v in d.data_vars))
    columns = {v: xr.concat([d[v] for d in renamed if v in d], dim="method", join="outer",
                            coords="minimal", compat="override", combine_attrs="drop")
               for v in names}
    out = xr.merge(list(columns.values()), join="outer", compat="no_conflicts",
                   combine_attrs="drop")
    if truth is not None:
        out["truth_crop"] = truth
    out.attrs.update(dataset=dataset, profile=profile)
    return out


def cost_table(ds: xr.Dataset) -> pd.DataFrame:
    """Parameters, training time and inference throughput per method, with the hardware."""
    rows = {}
    for m in ds["method"].values:
        sel = ds.sel({"method": m})
        rows[str(m)] = {
            "chapter": str(sel["chapter"].values),
            "parameters (M)": round(float(np.nanmax(sel["num_parameters"].values)) / 1e6, 3),
            "training (s, mean over seeds)": round(float(np.nanmean(sel["train_seconds"])), 1),
            "inference (Mpx/s)": round(float(np.nanmean(sel["pixels_per_second"])) / 1e6, 3),
            "hardware": str(sel["hardware"].values),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def protocol_card(ds: xr.Dataset, files: Sequence[Path]) -> pd.DataFrame:
    """The evaluation protocol behind the tables, as a two-column card."""
    attrs = [read_results(f).attrs for f in files]
    seeds = sorted({int(s) for s in ds["seed"].values})
    evaluated = [str(c) for c, e in zip(ds["class"].values, ds["evaluated"].values, strict=True)
                 if e and c != OVERALL] if "evaluated" in ds.coords else []
    params = [json.loads(a.get("parameters", "{}")) for a in attrs]
    card = {
        "dataset / split": f"{ds.attrs.get('dataset')} / validation scenes",
        "profile": ds.attrs.get("profile"),
        "primary ground truth": "eroded boundaries (disk of radius 3 px)",
        "secondary ground truth": "full",
        "classes evaluated": ", ".join(evaluated),
        "pooling": "one confusion matrix over every evaluated pixel of every validation scene",
        "tiling": "whole scenes, halo tiles (512 px) stitched exactly",
        "TTA": "none unless a chapter says so (EFM fine-tuning uses flips)",
        "seeds": ", ".join(map(str, seeds)),
        "chapters": ", ".join(sorted({a.get("chapter", "?") for a in attrs})),
        "git commits": ", ".join(sorted({a.get("git_commit", "?")[:12] for a in attrs})),
        "devices": ", ".join(sorted({a.get("hardware", "?") for a in attrs})),
        "parameters given": "; ".join(
            f"{a.get('chapter')}: " + ", ".join(f"{k}={v}" for k, v in p.items()
                                                 if v is not None)
            for a, p in zip(attrs, params, strict=True)),
    }
    return pd.DataFrame({"": list(card.values())}, index=list(card))


def paired_differences(ds: xr.Dataset, baseline: str, *, metric: str = "f1",
                       cls: str = OVERALL, protocol: str = "eroded") -> pd.DataFrame:
    """Per-seed difference of every method to ``baseline`` (percentage points)."""
    sc = ds["scores"].sel({"protocol": protocol, "metric": metric, "class": cls}) * 100
    base = sc.sel({"method": baseline})
    rows = []
    for m in ds["method"].values:
        if m == baseline:
            continue
        diff = (sc.sel({"method": m}) - base).values
        for seed, d in zip(ds["seed"].values, diff, strict=True):
            if np.isfinite(d):
                rows.append({"method": str(m), "seed": int(seed), "difference": float(d)})
    return pd.DataFrame(rows)


def check_claims(ds: xr.Dataset, claims: Sequence[Claim], *, protocol: str = "eroded"
                 ) -> pd.DataFrame:
    """Our per-seed differences for each claim whose methods are in ``ds``."""
    methods = {str(m) for m in ds["method"].values}
    rows = []
    for c in claims:
        if c.method not in methods or c.baseline not in methods:
            continue
        sc = ds["scores"].sel({"protocol": protocol, "metric": c.metric, "class": c.cls}) * 100
        d = (sc.sel({"method": c.method}) - sc.sel({"method": c.baseline})).values
        d = d[np.isfinite(d)]
        if d.size == 0:
            continue
        agree = "all seeds" if (d > 0).all() else ("no seed" if (d <= 0).all() else
                                                  f"{int((d > 0).sum())}/{d.size} seeds")
        rows.append({"source": c.source, "claim": c.text,
                     "paper (points)": c.paper_delta, "ours (points)": round(float(d.mean()), 2),
                     "seeds": d.size, "improves in": agree,
                     "holds here": bool(d.mean() > 0 and (d > 0).all())})
    return pd.DataFrame(rows)


def paper_vs_ours(ds: xr.Dataset, papers: Sequence[PaperResult], *,
                  protocol: str = "eroded") -> pd.DataFrame:
    """Each source's printed numbers next to ours (mean over seeds) for the same method."""
    methods = {str(m) for m in ds["method"].values}
    rows = []
    for p in papers:
        if p.method not in methods:
            continue
        sc = ds["scores"].sel({"protocol": protocol, "method": p.method}) * 100
        for (cls, metric), value in p.values.items():
            ours = sc.sel({"class": cls, "metric": metric}).values
            ours = ours[np.isfinite(ours)]
            name = {"f1": "F1", "iou": "IoU", "oa": "OA", "recall": "recall"}.get(metric, metric)
            what = f"mean {name}" if cls == OVERALL and metric == "f1" else (
                "mIoU" if cls == OVERALL and metric == "iou" else
                (name if cls == OVERALL else f"{cls} {name}"))
            rows.append({"method": p.method, "source": p.source, "metric": what,
                         "paper": value,
                         "ours": round(float(ours.mean()), 2) if ours.size else np.nan,
                         "ours ± (std)": round(float(ours.std(ddof=1)), 2)
                         if ours.size > 1 else np.nan,
                         "paper's data / protocol": p.data})
    return pd.DataFrame(rows)


def write_comparison(ds: xr.Dataset, files: Sequence[Path], claims: pd.DataFrame, *,
                     dataset: str, profile: str, params: dict,
                     folder: str | Path | None = None) -> Path:
    """Write the combined table this chapter showed, with the inputs it was built from."""
    from aerialseg.results import provenance, results_path, write_results
    from aerialseg.utils import hardware_description

    out = ds.drop_vars(["pred_crop", "truth_crop", "uncertainty_crop"], errors="ignore")
    out.attrs.update(provenance(chapter=COMPARISON_CHAPTER, profile=profile, dataset=dataset,
                                params=params, device="none (reads results files)",
                                hardware=hardware_description("cpu"), wall_seconds={}))
    out.attrs["inputs"] = json.dumps([f.name for f in files])
    out.attrs["claims"] = claims.to_json(orient="records")
    path = write_results(out, results_path(COMPARISON_CHAPTER, dataset, profile, folder))
    print(f"results written to {path}")
    return path
