"""The comparative chapter's logic: read every chapter's results file, never retrain.

Methods from different chapters are put side by side on one ``method`` axis; a method's
chapter is kept in the ``chapter`` coordinate, its hardware in ``hardware`` and the name of
the file it came from in ``file``. Only canonical files (the chapters' default parameters,
see :mod:`aerialseg.results`) are read unless variants are asked for; methods from a
variant file are labelled ``"<method> [<variant>]"``. Runs missing for some seeds stay
missing: counts are 0 and ``present[method, seed]`` is False, never a fill value. Claims are
judged by the one rule of :mod:`aerialseg.stats`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from aerialseg import stats
from aerialseg.config import Claim, PaperResult
from aerialseg.paths import results_dir
from aerialseg.results import (
    COUNT_VARS,
    NO_CLASS,
    OVERALL,
    fill_values,
    parse_results_name,
    read_results,
    run_presence,
)

COMPARISON_CHAPTER = "10_comparison"


def find_results(dataset: str, profile: str, folder: str | Path | None = None, *,
                 include_variants: bool = False) -> list[Path]:
    """Results files of every method chapter for ``dataset`` and ``profile``, chapter order.

    Args:
        dataset: dataset name.
        profile: profile name.
        folder: default ``$AERIALSEG_RESULTS`` or ``<repo>/results``.
        include_variants: also the non-default runs (``...__<variant>.nc``), each after its
            chapter's canonical file.
    """
    base = Path(folder) if folder else results_dir()
    out = []
    for path in sorted(base.glob(f"*__{dataset}__{profile}*.nc")):
        name = parse_results_name(path)
        if name is None or (name.dataset, name.profile) != (dataset, profile):
            continue
        if name.chapter == COMPARISON_CHAPTER:
            continue
        if name.variant is not None and not include_variants:
            continue
        out.append(path)
    return out


def _normalise(ds: xr.Dataset) -> xr.Dataset:
    """One chapter's Dataset ready to be aligned with others (legacy files included)."""
    ds = ds.drop_encoding()
    # object strings: fixed-width numpy strings of one file would truncate longer names
    ds = ds.assign_coords(method=np.array([str(m) for m in ds["method"].values], object))
    if "present" not in ds:
        ds["present"] = (("method", "seed"), run_presence(ds))
    present = ds["present"]
    for v in COUNT_VARS:
        if v in ds and ds[v].dtype.kind not in "iu":  # legacy float counts
            ds[v] = ds[v].where(present, 0).fillna(0).astype(np.int64)
    if "pred_crop" in ds and ds["pred_crop"].dtype != np.uint8:
        ds["pred_crop"] = ds["pred_crop"].fillna(NO_CLASS).astype(np.uint8)
    return ds


def _layout(ds: xr.Dataset) -> tuple | None:
    if "block_confusion" not in ds:
        return None
    return (ds.attrs.get("block_size"), tuple(str(s) for s in ds["block_scene"].values),
            tuple(int(y) for y in ds["block_y"].values),
            tuple(int(x) for x in ds["block_x"].values))


def load_all(dataset: str, profile: str, folder: str | Path | None = None, *,
             include_variants: bool = False, files: Sequence[str | Path] | None = None
             ) -> xr.Dataset:
    """Combine the method results of every chapter (files without ``scores`` are skipped).

    A method name that several chapters report is taken from the first chapter (by chapter
    number) that reports it. The names of the files read are in ``attrs["inputs"]`` (JSON
    list, names only) and, per method, in the ``file`` coordinate.

    Args:
        dataset: dataset name.
        profile: profile name.
        folder: default ``$AERIALSEG_RESULTS`` or ``<repo>/results``.
        include_variants: also read non-default runs (methods renamed
            ``"<method> [<variant>]"``).
        files: read exactly these files instead of searching ``folder``.

    Raises:
        FileNotFoundError: no results yet (names the folder and how to produce them).
    """
    paths = ([Path(f) for f in files] if files is not None
             else find_results(dataset, profile, folder, include_variants=include_variants))
    parts = []
    for path in paths:
        ds = read_results(path)
        if "scores" not in ds:
            continue
        name = parse_results_name(path)
        chapter = ds.attrs.get("chapter", name.chapter if name else path.stem)
        keep = [v for v in ds.data_vars if "method" in ds[v].dims or v == "truth_crop"]
        attrs = ds.attrs
        ds = _normalise(ds[keep])
        ds.attrs = {"block_size": attrs.get("block_size")}
        if name is not None and name.variant:
            ds = ds.assign_coords(method=np.array(
                [f"{m} [{name.variant}]" for m in ds["method"].values], object))
        n = ds.sizes["method"]
        ds = ds.assign_coords(chapter=("method", [chapter] * n),
                              hardware=("method", [attrs.get("hardware", "?")] * n),
                              git_commit=("method", [attrs.get("git_commit", "?")] * n),
                              file=("method", [path.name] * n))
        parts.append(ds)
    if not parts:
        folder = Path(folder) if folder else results_dir()
        raise FileNotFoundError(
            f"no results for dataset {dataset!r}, profile {profile!r} in {folder.name}/. Run "
            f"the method chapters first, e.g. `aerialseg book run --profile {profile} "
            f"--dataset {dataset} --no-build`.")
    # per-block counts are only comparable on one block layout: keep the first one seen
    layouts = [_layout(d) for d in parts]
    ref = next((lay for lay in layouts if lay is not None), None)
    for i, lay in enumerate(layouts):
        if lay is not None and lay != ref:
            warnings.warn(f"{parts[i]['file'].values[0]} uses another block layout than "
                          "the first file with per-block counts; its block counts are left "
                          "out (its claims fall back to a bootstrap over seeds only)",
                          stacklevel=2)
            parts[i] = parts[i].drop_dims("block")
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
    fills = fill_values(renamed)
    # variables present in some chapters only (e.g. MC-dropout curves) are concatenated
    # over the chapters that have them, then aligned on the union of methods and seeds
    names = list(dict.fromkeys(v for d in renamed for v in d.data_vars))
    columns = {v: xr.concat([d[v] for d in renamed if v in d], dim="method", join="outer",
                            coords="minimal", compat="override", combine_attrs="drop",
                            fill_value=fills.get(v, np.nan))
               for v in names}
    out = xr.merge(list(columns.values()), join="outer", compat="no_conflicts",
                   combine_attrs="drop", fill_value=fills)
    if truth is not None:
        out["truth_crop"] = truth
    out.attrs.update(dataset=dataset, profile=profile,
                     inputs=json.dumps([p.name for p in paths]))
    if ref is not None and ref[0] is not None:
        out.attrs["block_size"] = int(ref[0])
    return out


def input_files(ds: xr.Dataset) -> list[str]:
    """Names of the files :func:`load_all` read (reader-facing: no folders)."""
    return list(json.loads(ds.attrs.get("inputs", "[]")))


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
        "intervals and verdicts": (
            f"{100 * stats.LEVEL:.0f} % percentile bootstrap over seeds and "
            + (f"{ds.attrs['block_size']}-px blocks of the validation scenes"
               if "block_size" in ds.attrs else
               "(files without per-block counts) over seeds only")
            + f", {stats.N_RESAMPLES} resamples, paired by seed; a verdict needs "
            f"{stats.MIN_SEEDS} seeds or more"),
        "files": ", ".join(Path(f).name for f in files),
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
                       cls: str = OVERALL, protocol: str = "eroded",
                       flags: Mapping[str, str | None] | None = None,
                       **kwargs: Any) -> pd.DataFrame:
    """Per-seed difference of every method to ``baseline`` (points), with the rule's interval.

    One row per method and paired seed: ``difference`` (the per-seed scores' difference,
    points) and, repeated on the method's rows, the :func:`aerialseg.stats.judge` outcome of
    "method beats baseline": ``estimate``, ``low``, ``high`` (points), ``verdict``,
    ``reason``. ``kwargs`` go to :func:`aerialseg.stats.judge`.
    """
    sc = ds["scores"].sel({"protocol": protocol, "metric": metric, "class": cls}) * 100
    base = sc.sel({"method": baseline})
    base_seeds = set(stats.present_seeds(ds, baseline))
    rows = []
    for m in (str(x) for x in ds["method"].values):
        if m == baseline:
            continue
        seeds = sorted(set(stats.present_seeds(ds, m)) & base_seeds)
        if not seeds:
            continue
        v = stats.judge(ds, {"method": m, "baseline": baseline, "metric": metric, "cls": cls},
                        protocol=protocol, flags=flags, **kwargs)
        for seed in seeds:
            d = float(sc.sel({"method": m, "seed": seed}) - base.sel(seed=seed))
            rows.append({"method": m, "seed": seed, "difference": d,
                         "estimate": 100 * v.estimate, "low": 100 * v.low,
                         "high": 100 * v.high, "verdict": v.verdict, "reason": v.reason})
    return pd.DataFrame(rows, columns=["method", "seed", "difference", "estimate", "low",
                                       "high", "verdict", "reason"])


def check_claims(ds: xr.Dataset, claims: Sequence[Claim], *, protocol: str = "eroded",
                 flags: Mapping[str, str | None] | None = None,
                 include_missing: bool = False, names: Mapping[str, str] | None = None,
                 **kwargs: Any) -> pd.DataFrame:
    """The verdict of :func:`aerialseg.stats.judge` on each claim whose methods are in ``ds``.

    Args:
        ds: combined results (:func:`load_all`).
        claims: the sources' claims (:func:`aerialseg.registry.claims`).
        protocol: ``eroded`` (primary) or ``full``.
        flags: method -> why it takes part in no verdict (not converged, below the per-pixel
            baseline; :func:`aerialseg.stats.sanity_flags`); None: no flags.
        include_missing: also list claims whose methods are not in ``ds`` (untestable).
        names: display names for the sentences.
        **kwargs: passed to :func:`aerialseg.stats.judge` (``converged``, ``baseline_ok``,
            ``n_resamples``, ``level``, ``seed``, ``min_seeds``).

    Returns:
        One row per claim: source, claim, paper (points), ours (points), low (points),
        high (points), seeds, verdict, reason, sentence, and ``holds here`` (verdict is
        ``supported``).
    """
    methods = {str(m) for m in ds["method"].values}
    rows = []
    for c in claims:
        if not include_missing and (c.method not in methods or c.baseline not in methods):
            continue
        v = stats.judge(ds, c, protocol=protocol, flags=flags, **kwargs)
        rows.append({"source": c.source, "claim": c.text, "paper (points)": c.paper_delta,
                     "ours (points)": round(100 * v.estimate, 2),
                     "low (points)": round(100 * v.low, 2),
                     "high (points)": round(100 * v.high, 2),
                     "seeds": v.n_seeds, "verdict": v.verdict, "reason": v.reason,
                     "sentence": stats.sentence(v, names=names),
                     "holds here": v.verdict == "supported"})
    return pd.DataFrame(rows, columns=["source", "claim", "paper (points)", "ours (points)",
                                       "low (points)", "high (points)", "seeds", "verdict",
                                       "reason", "sentence", "holds here"])


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
    if "block" in out.dims:  # the inputs keep them; this file is the table shown
        out = out.drop_dims("block")
    out.attrs.update(provenance(chapter=COMPARISON_CHAPTER, profile=profile, dataset=dataset,
                                params=params, device="none (reads results files)",
                                hardware=hardware_description("cpu"), wall_seconds={}))
    out.attrs["inputs"] = json.dumps([Path(f).name for f in files])
    out.attrs["claims"] = claims.to_json(orient="records")
    path = write_results(out, results_path(COMPARISON_CHAPTER, dataset, profile, folder))
    print(f"results written to {path.name}")
    return path
