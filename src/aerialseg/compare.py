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
import re
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
ISPRS_LIKE = frozenset({"impervious", "building", "low_vegetation", "tree", "car"})
"""Classes of the papers' benchmarks (ISPRS): per-class numbers compare only on them."""


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
    # methods in chapter order (then each file's own order), not the merge's sorted order:
    # tables read as the book does, and the first name of a run is its first chapter's
    order = [str(m) for d in renamed for m in d["method"].values]
    out = out.sel({"method": order})
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


DATASET_NAMES: dict[str, str] = {
    "synthetic": "Synthetic",
    "dubai": "Dubai (real RGB)",
    "vaihingen": "Vaihingen",
    "potsdam": "Potsdam",
    "loveda": "LoveDA",
}
"""Reader-facing names of the datasets (table headers, sentences)."""

DATASET_ORDER: tuple[str, ...] = ("synthetic", "dubai")
"""Datasets compared first, in this order; any other follows alphabetically."""


def dataset_name(dataset: str) -> str:
    """Display name of a dataset (``"dubai"`` → "Dubai (real RGB)")."""
    return DATASET_NAMES.get(str(dataset), str(dataset).capitalize())


def available_datasets(profile: str, folder: str | Path | None = None) -> list[str]:
    """Datasets with canonical method results of ``profile`` (synthetic first, Dubai second).

    A dataset counts when a canonical results file of a method chapter exists for it (not
    only the data chapter's or the comparison's own).
    """
    base = Path(folder) if folder else results_dir()
    found: set[str] = set()
    for path in base.glob(f"*__*__{profile}.nc"):
        name = parse_results_name(path)
        if name is None or name.profile != profile or name.variant is not None:
            continue
        if name.chapter == COMPARISON_CHAPTER or name.chapter.startswith("01_"):
            continue
        found.add(name.dataset)
    first = [d for d in DATASET_ORDER if d in found]
    return first + sorted(found - set(first))


# --------------------------------------------------------------------------- identities

def ensemble_members(method: str) -> tuple[list[str], str] | None:
    """``(member ids, combiner)`` of an ensemble id, or None if ``method`` is not one.

    Reads chapter 05's labels (``"PB+FCN-MFB | svm"``, ``"ALL | mean"``) and the
    ``"ens_<members>_<combiner>"`` ids of the claims.
    """
    from aerialseg.display import ENSEMBLE_MEMBERS, parse_ensemble_id

    by_label = {v: k for k, v in ENSEMBLE_MEMBERS.items()}
    method = str(method)
    if " | " in method:
        label, combiner = method.split(" | ", 1)
        if label == "ALL":
            return list(ENSEMBLE_MEMBERS), combiner
        ids = [by_label.get(p.strip()) for p in label.split("+")]
        return (ids, combiner) if ids and all(ids) else None  # type: ignore[return-value]
    return parse_ensemble_id(method)


def _present(ds: xr.Dataset, method: str) -> np.ndarray:
    return np.asarray(run_presence(ds)[[str(m) for m in ds["method"].values].index(method)])


DUPLICATE_TOLERANCE = 1e-4
"""Share of the evaluated pixels two evaluations of the same runs may disagree on (ties
between class scores broken differently by another tiling or batch size)."""


def _counts_equal(ds: xr.Dataset, a: str, b: str,
                  tolerance: float = DUPLICATE_TOLERANCE) -> bool:
    if "confusion" not in ds:
        return False
    pa, pb = _present(ds, a), _present(ds, b)
    if not pa.any() or not np.array_equal(pa, pb):
        return False
    xa = np.asarray(ds["confusion"].sel({"method": a}).values, np.int64)[pa]
    xb = np.asarray(ds["confusion"].sel({"method": b}).values, np.int64)[pb]
    # (seed, protocol, truth, pred): per run and protocol, the pixels predicted differently
    changed = np.abs(xa - xb).sum(axis=(-2, -1)) / 2
    total = xa.sum(axis=(-2, -1))
    if not (changed <= tolerance * np.maximum(total, 1)).all():
        return False
    # a model that predicts a single class everywhere says nothing about identity
    return int((xa.sum(axis=(0, 1, 2)) > 0).sum()) > 1


def _same_training(ds: xr.Dataset, a: str, b: str) -> bool:
    if "train_seconds" not in ds:
        return False
    pa, pb = _present(ds, a), _present(ds, b)
    if not pa.any() or not np.array_equal(pa, pb):
        return False
    ta = ds["train_seconds"].sel({"method": a}).values[pa]
    tb = ds["train_seconds"].sel({"method": b}).values[pb]
    if not (np.isfinite(ta).all() and np.isfinite(tb).all() and (ta > 0).all()):
        return False
    if "num_parameters" in ds and float(ds["num_parameters"].sel({"method": a})) != \
            float(ds["num_parameters"].sel({"method": b})):
        return False
    return bool(np.array_equal(ta, tb))


def duplicates(ds: xr.Dataset) -> dict[str, str]:
    """Methods whose runs are another method's under a second name: ``{name: first name}``.

    Two methods are the same runs when their confusion matrices agree for every seed and
    protocol up to :data:`DUPLICATE_TOLERANCE` of the pixels (the same model evaluated
    twice may break a few ties between class scores differently), with the same seeds
    present (a model predicting one class everywhere is never matched). The first name in
    the results' order (chapter order) is kept: e.g. chapter 05's single network
    "FCN | member" is chapter 03's ``fcn``.
    """
    methods = [str(m) for m in ds["method"].values]
    out: dict[str, str] = {}
    for i, m in enumerate(methods):
        for first in methods[:i]:
            if first in out:
                continue
            if _counts_equal(ds, m, first):
                out[m] = first
                break
    return out


def shared_training(ds: xr.Dataset) -> dict[str, str]:
    """Methods evaluated from another method's trained runs: ``{name: first name}``.

    The same trained models (identical recorded training times for every seed and the same
    parameter count: the run store handed both names one run) evaluated another way, e.g.
    with MC dropout (``"fcn (MC mean)"``) or by a chapter that reuses chapter 03's FCN as
    its CE baseline (U-CE's ``ce_dropout`` in the CPU profiles). Exact duplicates
    (:func:`duplicates`) are included.
    """
    methods = [str(m) for m in ds["method"].values]
    out = dict(duplicates(ds))
    for i, m in enumerate(methods):
        if m in out:
            continue
        for first in methods[:i]:
            if first in out:
                continue
            if _same_training(ds, m, first):
                out[m] = first
                break
    return out


def sanity_flags(ds: xr.Dataset, *, protocol: str = "eroded",
                 pixel_baseline: str = "pixel_baseline") -> dict[str, str | None]:
    """:func:`aerialseg.stats.sanity_flags` with the results' own records.

    Convergence from ``converged[method, seed]`` and the per-pixel baseline row
    ``pixel_baseline`` (when the results hold it). Ensembles and evaluations of another
    method's runs take their members' flags: an ensemble of a model that has not converged
    is not recommended either.
    """
    flags = stats.sanity_flags(ds, pixel_baseline=pixel_baseline, protocol=protocol)
    flags = {m: None if f is None else f.replace(f"baseline {pixel_baseline} (", "baseline (")
             for m, f in flags.items()}
    methods = {str(m) for m in ds["method"].values}
    for m in methods:
        found = ensemble_members(m)
        if found is None:
            continue
        bad = [x for x in found[0] if x in methods and flags.get(x)]
        if bad:
            from aerialseg.display import method_name

            extra = "built on " + ", ".join(method_name(x) for x in bad) + " (flagged)"
            flags[m] = "; ".join(f for f in (flags.get(m), extra) if f)
    return flags


def flag_label(reason: str | None) -> str:
    """A short reader-facing label of a sanity flag ("not converged", "below baseline")."""
    if not reason:
        return ""
    words = []
    if "not converged" in reason or "has not converged" in reason:
        words.append("not converged")
    if "per-pixel baseline" in reason:
        words.append("below the per-pixel baseline")
    if "built on" in reason and not words:
        words.append("built on a flagged member")
    return " and ".join(words) or "flagged"


# --------------------------------------------------------------------------- tables

MAX_PIXELS_PER_SECOND = 1e11
"""A throughput above this (100 Gpx/s) is a division by a time that was not measured."""


def _mean(values: Any) -> float:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _throughput(ds: xr.Dataset, method: str) -> float:
    if "pixels_per_second" not in ds:
        return float("nan")
    v = np.asarray(ds["pixels_per_second"].sel({"method": method}).values, float)
    v = v[np.isfinite(v) & (v > 0) & (v < MAX_PIXELS_PER_SECOND)]
    return float(v.mean()) if v.size else float("nan")


def cost_frame(ds: xr.Dataset, *, methods: Sequence[str] | None = None) -> pd.DataFrame:
    """Parameters, training time and inference throughput of every method (plain numbers).

    * A method that is another's runs under a second name (:func:`duplicates`) is left out;
      ``attrs["duplicates"]`` lists them.
    * A method evaluated from another's trained runs (:func:`shared_training`) keeps its
      own inference throughput; its training is the other's (``same_runs_as``).
    * An ensemble (:func:`ensemble_members`) has its members' parameters and training time
      summed, and the throughput of running its members one after the other
      (``1 / sum(1 / members' throughput)``; the combiner's own cost is not measured);
      ``basis`` says so.
    * A throughput computed from a time that was not measured (above
      :data:`MAX_PIXELS_PER_SECOND`) is undefined, never a number.

    Returns:
        Indexed by method: chapter, parameters (count), training (s, mean over seeds),
        inference (Mpx/s), same_runs_as, basis.
    """
    dup = duplicates(ds)
    shared = shared_training(ds)
    names = [str(m) for m in ds["method"].values]
    chosen = [m for m in (methods or names) if m not in dup]
    rows = {}
    for m in chosen:
        sel = ds.sel({"method": m})
        params = float(np.nanmax(sel["num_parameters"].values)) if "num_parameters" in ds \
            else float("nan")
        train = _mean(sel["train_seconds"].values) if "train_seconds" in ds else float("nan")
        speed = _throughput(ds, m)
        basis = "measured"
        found = ensemble_members(m)
        if found is not None:
            members, combiner = found
            mc = "mc" in combiner
            members = [x for x in members if x in names]
            if members:
                params = float(sum(np.nanmax(ds["num_parameters"].sel({"method": x}).values)
                                   for x in members)) if "num_parameters" in ds else params
                train = float(sum(_mean(ds["train_seconds"].sel({"method": x}).values)
                                  for x in members)) if "train_seconds" in ds else train
                speeds = [_throughput(ds, f"{x} (MC mean)" if mc and f"{x} (MC mean)"
                                      in names else x) for x in members]
                speed = (1.0 / sum(1.0 / s for s in speeds)
                         if all(np.isfinite(s) and s > 0 for s in speeds) else float("nan"))
                basis = "sum over the members"
        if not params:
            params = float("nan")
        rows[m] = {"chapter": str(sel["chapter"].values) if "chapter" in ds.coords else "",
                   "parameters": params, "training (s)": train,
                   "inference (Mpx/s)": speed / 1e6,
                   "same_runs_as": shared.get(m, ""), "basis": basis}
    out = pd.DataFrame.from_dict(rows, orient="index",
                                 columns=["chapter", "parameters", "training (s)",
                                          "inference (Mpx/s)", "same_runs_as", "basis"])
    out.attrs["duplicates"] = {m: dup[m] for m in (methods or names) if m in dup}
    return out


def convergence_frame(ds: xr.Dataset, *, methods: Sequence[str] | None = None
                      ) -> pd.DataFrame:
    """Each trained run's last-tenth loss change, raw and at equal batch difficulty.

    Rows: methods with a recorded change (trained single models); columns: seeds. A cell
    reads ``"raw → adjusted"`` in percent of the earlier tenth's loss (negative: the loss
    fell), with ✗ where the run has not converged (:func:`aerialseg.stats.convergence`).
    Results written before the raw change was recorded show the adjusted one only.
    """
    if "loss_change_last_tenth" not in ds:
        return pd.DataFrame()
    names = methods if methods is not None else [str(m) for m in ds["method"].values]
    has_raw = "loss_change_last_tenth_raw" in ds
    rows = {}
    for m in names:
        adj = ds["loss_change_last_tenth"].sel({"method": m}).values
        if not np.isfinite(adj).any():
            continue
        raw = ds["loss_change_last_tenth_raw"].sel({"method": m}).values if has_raw else adj
        conv = ds["converged"].sel({"method": m}).values
        cells = {}
        for i, seed in enumerate(ds["seed"].values):
            if not np.isfinite(adj[i]):
                continue
            a = f"{100 * adj[i]:+.1f}".replace("-", "\u2212")
            r = f"{100 * raw[i]:+.1f}".replace("-", "\u2212")
            mark = "" if conv[i] >= 0.5 else " ✗"
            cells[f"seed {int(seed)}"] = (f"{r} → {a}" if has_raw else a) + mark
        rows[m] = cells
    return pd.DataFrame.from_dict(rows, orient="index")


def f1_half_widths(ds: xr.Dataset, *, methods: Sequence[str] | None = None,
                   protocol: str = "eroded") -> pd.DataFrame:
    """Half-width (points) of each evaluated class's F1 interval, where it measures anything.

    :func:`aerialseg.stats.interval_frame` (seeds and spatial blocks), with undefined cells
    (NaN) where the interval says nothing about the validation set: a run without per-block
    counts (older files: the interval is over seeds only), or a class the model never
    predicts right (F1 0 on every resample, an interval of width 0).

    Returns:
        Methods x evaluated classes; ``attrs["unblocked"]`` lists the methods without
        per-block counts.
    """
    frame = stats.interval_frame(ds, protocol=protocol, metrics=(), per_class=("f1",),
                                 methods=methods)
    if frame.empty:
        out = pd.DataFrame()
        out.attrs["unblocked"] = []
        return out
    half = 100 * frame["width"] / 2
    half = half.where((frame["n_blocks"] > 1) & (frame["mean"] > 0))
    frame = frame.assign(half=half)
    table = frame.pivot(index="method", columns="class", values="half")
    order = [m for m in (methods or frame["method"].unique()) if m in table.index]
    table = table.loc[order, [str(c) for c in ds["class"].values if str(c) in table.columns]]
    table.attrs["unblocked"] = sorted(set(frame.loc[frame["n_blocks"] <= 1, "method"]))
    return table


def _chapter_number(chapter: str) -> str:
    head = str(chapter).split("_", 1)[0]
    return str(int(head)) if head.isdigit() else str(chapter)


def _runs_note(same: Mapping[str, str], what: str) -> list[str]:
    from aerialseg.display import method_name

    groups: dict[str, list[str]] = {}
    for m, first in same.items():
        groups.setdefault(first, []).append(method_name(m))
    return [f"{', '.join(v)}: {what} {method_name(k)}." for k, v in groups.items()]


def cost_table(ds: xr.Dataset, *, methods: Sequence[str] | None = None,
               caption: str | None = None) -> Any:
    """The cost table (:func:`cost_frame`) as one of the book's tables.

    Parameters in millions, training seconds (mean over seeds), inference in Mpx/s, no
    scientific notation; a method trained by another name's runs says "same runs as ...";
    each name is listed once.
    """
    from aerialseg.display import method_name
    from aerialseg.tables import show_table

    frame = cost_frame(ds, methods=methods)
    dup = frame.attrs["duplicates"]
    rows = {}
    for m, r in frame.iterrows():
        train: Any = r["training (s)"]
        if r["same_runs_as"]:
            train = f"same runs as {method_name(r['same_runs_as'])}"
        rows[m] = {"Chapter": _chapter_number(r["chapter"]),
                   "Parameters (M)": r["parameters"] / 1e6,
                   "Training (s, mean over seeds)": train,
                   "Inference (Mpx/s)": r["inference (Mpx/s)"]}
    df = pd.DataFrame.from_dict(rows, orient="index")
    hardware = sorted({str(h) for h in ds["hardware"].values}) if "hardware" in ds.coords \
        else []
    notes = []
    if (frame["basis"] != "measured").any():
        notes.append("Ensembles: their members' parameters and training times summed, and "
                     "the throughput of running the members one after the other (the "
                     "combiner's own cost is not measured).")
    notes += _runs_note(dup, "the same runs and predictions as")
    if hardware:
        notes.append("Measured on " + "; ".join(hardware) + ": compare times within one "
                     "device only.")
    return show_table(
        df, caption=caption or ("Cost of every method: parameters, training time (mean over "
                                "seeds) and inference throughput on whole validation scenes."),
        rows="method", formats={"Parameters (M)": "float3", "Inference (Mpx/s)": "float2",
                                "Training (s, mean over seeds)": "float1"},
        na="not recorded for this method", notes=notes, split=None)


def protocol_card(ds: xr.Dataset, files: Sequence[str | Path] | None = None, *,
                  caption: str | None = None) -> Any:
    """The evaluation protocol behind one dataset's tables, as a two-column table.

    Args:
        ds: one dataset's combined results (:func:`load_all`).
        files: the files it was read from (default: ``attrs["inputs"]`` of ``ds`` is used
            for names, and nothing is re-read).
        caption: default names the dataset and profile.
    """
    from aerialseg.data.registry import DataConfig
    from aerialseg.display import class_name
    from aerialseg.tables import show_table

    names = [Path(f).name for f in files] if files is not None else input_files(ds)
    attrs = [read_results(f, validate=False).attrs for f in files] if files is not None \
        else []
    seeds = sorted({int(s) for s in ds["seed"].values})
    evaluated = [str(c) for c, e in zip(ds["class"].values, ds["evaluated"].values, strict=True)
                 if e and c != OVERALL] if "evaluated" in ds.coords else []
    scenes = sorted({str(s) for s in ds["block_scene"].values}) if "block_scene" in ds else []
    first = str(ds["method"].values[0])
    pixels = int(ds["confusion"].sel({"method": first, "protocol": "full"})
                 .isel(seed=int(np.argmax(_present(ds, first)))).sum()) \
        if "confusion" in ds else 0
    dataset = str(ds.attrs.get("dataset"))
    radius = DataConfig().eroded_radius
    card = {
        "Data": dataset_name(dataset) + (
            f": {len(scenes)} validation scenes" if scenes else ": the validation scenes")
        + (f", {pixels / 1e6:.2f} Mpx labelled" if pixels else ""),
        "Profile": str(ds.attrs.get("profile")),
        "Classes evaluated": ", ".join(class_name(c) for c in evaluated),
        "Primary ground truth": f"eroded boundaries (disk of radius {radius} px)",
        "Secondary ground truth": "full",
        "Pooling": "one confusion matrix over every evaluated pixel of every validation scene",
        "Seeds": ", ".join(map(str, seeds)),
        "Intervals and verdicts": (
            f"{100 * stats.LEVEL:.0f} % percentile bootstrap over "
            + (f"seeds and {ds.attrs['block_size']}-px blocks of the validation scenes"
               if "block_size" in ds.attrs else
               "seeds only (these files hold no per-block counts)")
            + f", {stats.N_RESAMPLES} resamples, paired by seed; a verdict needs "
            f"{stats.MIN_SEEDS} seeds or more"),
        "Sanity gates": ("a model not converged or below the per-pixel baseline takes part "
                         "in no verdict and is never recommended"),
        "Parameters": "each chapter's defaults (canonical results files only)",
        "Files read": ", ".join(names),
    }
    if attrs:
        card["Git commits"] = ", ".join(sorted({str(a.get("git_commit", "?"))[:12]
                                                for a in attrs}))
        card["Hardware"] = "; ".join(sorted({str(a.get("hardware", "?")) for a in attrs
                                             if a.get("device") != "none (reads results "
                                             "files)"}))
    df = pd.DataFrame({"Value": list(card.values())}, index=list(card))
    return show_table(df, caption=caption or (
        f"Protocol card of the {dataset_name(dataset)} results (`{ds.attrs.get('profile')}` "
        "profile): what every table of this dataset shares."),
        rows=None, row_header="Protocol", columns=None, split=None)


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


def resolve_method(ds: xr.Dataset, method: str) -> str:
    """``method`` as ``ds`` names it: an ensemble id may be written two ways.

    ``"ens_pb_fcn_fcn_mfb_svm"`` (the claims' id) and ``"ALL | svm"`` (chapter 05's label)
    name the same ensemble; a name ``ds`` lacks is matched to the method with the same
    members and combiner, else returned as it is.
    """
    names = [str(m) for m in ds["method"].values]
    if method in names:
        return method
    found = ensemble_members(method)
    if found is None:
        return method
    key = (sorted(found[0]), found[1])
    for m in names:
        other = ensemble_members(m)
        if other is not None and (sorted(other[0]), other[1]) == key:
            return m
    return method


def _resolved(claim: Claim, ds: xr.Dataset) -> Claim:
    from dataclasses import replace

    return replace(claim, method=resolve_method(ds, claim.method),
                   baseline=resolve_method(ds, claim.baseline))


CLAIM_COLUMNS = ["source", "claim", "paper (points)", "ours (points)", "low (points)",
                 "high (points)", "seeds", "verdict", "reason", "sentence", "holds here",
                 "method", "baseline", "metric", "class"]
"""Columns of :func:`check_claims`."""


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
            baseline; :func:`sanity_flags`); None: no flags.
        include_missing: also list claims whose methods are not in ``ds`` (untestable).
        names: display names for the sentences.
        **kwargs: passed to :func:`aerialseg.stats.judge` (``converged``, ``baseline_ok``,
            ``n_resamples``, ``level``, ``seed``, ``min_seeds``).

    Returns:
        One row per claim (:data:`CLAIM_COLUMNS`): source, claim, paper (points), ours,
        low and high (points), seeds, verdict, reason, sentence, ``holds here`` (verdict is
        ``supported``), and the claim's method, baseline, metric and class. A claim about a
        class the dataset does not have is untestable for that reason.
    """
    methods = {str(m) for m in ds["method"].values}
    classes = {str(c) for c in ds["truth"].values} if "truth" in ds.coords else set()
    rows = []
    for c in claims:
        c = _resolved(c, ds)
        if not include_missing and (c.method not in methods or c.baseline not in methods):
            continue
        v = stats.judge(ds, c, protocol=protocol, flags=flags, **kwargs)
        if v.reason:
            from dataclasses import replace

            from aerialseg.display import method_name

            reason = v.reason
            for m in sorted({c.method, c.baseline}, key=len, reverse=True):
                reason = re.sub(rf"(^|; | and )({re.escape(m)})(: | not in | and )",
                                lambda x, m=m: x.group(1) + method_name(m) + x.group(3),
                                reason)
            v = replace(v, reason=reason.replace(" not in the results",
                                                 " not in these results"))
        if c.cls != OVERALL and classes and c.cls not in classes:
            from dataclasses import replace

            from aerialseg.display import class_name

            v = replace(v, verdict="untestable",
                        reason=f"these data have no {class_name(c.cls).lower()} class")
        rows.append({"source": c.source, "claim": c.text, "paper (points)": c.paper_delta,
                     "ours (points)": round(100 * v.estimate, 2),
                     "low (points)": round(100 * v.low, 2),
                     "high (points)": round(100 * v.high, 2),
                     "seeds": v.n_seeds, "verdict": v.verdict, "reason": v.reason,
                     "sentence": stats.sentence(v, names=names),
                     "holds here": v.verdict == "supported", "method": c.method,
                     "baseline": c.baseline, "metric": c.metric, "class": c.cls})
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def claims_across(results: Mapping[str, xr.Dataset], claims: Sequence[Claim], *,
                  protocol: str = "eroded",
                  flags: Mapping[str, Mapping[str, str | None]] | None = None,
                  **kwargs: Any) -> pd.DataFrame:
    """Every claim judged on every dataset: :func:`check_claims` rows with a ``dataset``.

    Args:
        results: dataset name -> its combined results (:func:`load_all`).
        claims: every claim (all are listed; a missing method makes it untestable).
        protocol: ``eroded`` or ``full``.
        flags: dataset -> method -> sanity flag (default :func:`sanity_flags` of each).
        kwargs: passed to :func:`aerialseg.stats.judge`.
    """
    from aerialseg.display import method_names

    parts = []
    for name, ds in results.items():
        f = (flags or {}).get(name)
        if f is None:
            f = sanity_flags(ds, protocol=protocol)
        rows = check_claims(ds, claims, protocol=protocol, flags=f, include_missing=True,
                            names=method_names(ds["method"].values), **kwargs)
        rows.insert(0, "dataset", name)
        rows.insert(1, "index", range(len(rows)))
        parts.append(rows)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["dataset", "index", *CLAIM_COLUMNS])


def _effect(r: Mapping[str, Any]) -> str:
    from aerialseg.tables import number

    if not np.isfinite(r["ours (points)"]):
        return "–"
    text = f"{'+' if r['ours (points)'] >= 0 else ''}{number(r['ours (points)'])}"
    if np.isfinite(r["low (points)"]) and np.isfinite(r["high (points)"]):
        text += f"\u00a0[{number(r['low (points)'])},\u00a0{number(r['high (points)'])}]"
    return text.replace("+−", "−")


def verdict_comparison_table(long: pd.DataFrame, *, datasets: Sequence[str] | None = None,
                             caption: str | None = None) -> Any:
    """The claims judged on each dataset side by side (from :func:`claims_across`).

    One row per claim: the paper's effect, then per dataset our effect with its 95 %
    interval, the paired seeds, the verdict and why a claim is untestable.
    """
    from aerialseg.tables import show_table

    datasets = list(datasets or dict.fromkeys(long["dataset"]))
    first = long[long["dataset"] == datasets[0]].sort_values("index")
    table: dict[str, list[Any]] = {
        "Claim": [f"{c[:1].upper()}{c[1:]} ({s})" for c, s in zip(first["claim"],
                                                                   first["source"],
                                                                   strict=True)],
        "Paper": ["–" if p is None or not np.isfinite(p) else f"{p:+.1f}".replace("-", "−")
                  for p in first["paper (points)"].astype(float)],
    }
    groups = []
    for d in datasets:
        rows = long[long["dataset"] == d].sort_values("index")
        head = dataset_name(d)
        cols = [f"{head}: ours [95 % interval]", f"{head}: seeds", f"{head}: verdict",
                f"{head}: why untestable"]
        table[cols[0]] = [_effect(r) for r in rows.to_dict("records")]
        table[cols[1]] = [str(int(n)) for n in rows["seeds"]]
        table[cols[2]] = list(rows["verdict"])
        table[cols[3]] = [r if v == "untestable" and r else "–"
                          for v, r in zip(rows["verdict"], rows["reason"], strict=True)]
        groups.append((head, cols))
    # the paper's effect opens the first dataset's part (each part repeats the claims)
    groups[0] = (f"The paper, and ours on the {groups[0][0]} data", ["Paper", *groups[0][1]])
    groups[1:] = [(f"Ours on the {h} data", c) for h, c in groups[1:]]
    df = pd.DataFrame(table).set_index("Claim")
    return show_table(
        df, caption=caption or ("The papers' claims judged on each dataset by the study's rule: "
                                "effect in points (method minus baseline) with its 95 % "
                                "interval, paired seeds and verdict."),
        rows=None, row_header="Claim", columns=lambda c: c.split(": ", 1)[-1].capitalize()
        if ": " in c else c, split=groups,
        na="no number (the paper gives none, or it cannot be computed)",
        notes=("The interval is the 95 % percentile interval of the paired bootstrap over "
               "seeds and spatial blocks; supported / contradicted: it excludes 0 on the "
               "claimed / the other side; inconclusive: it holds 0; untestable: a "
               "precondition fails (the reason is given).",))


def disagreements(long: pd.DataFrame, *, datasets: Sequence[str] | None = None) -> list[str]:
    """Sentences saying where the datasets' verdicts agree and where they disagree."""
    datasets = list(datasets or dict.fromkeys(long["dataset"]))
    if len(datasets) < 2:
        return []
    a, b = datasets[:2]
    ra = long[long["dataset"] == a].sort_values("index").to_dict("records")
    rb = long[long["dataset"] == b].sort_values("index").to_dict("records")
    na, nb = dataset_name(a), dataset_name(b)
    both, only_a, only_b, neither, differ = [], [], [], [], []
    for x, y in zip(ra, rb, strict=True):
        ta, tb = x["verdict"] != "untestable", y["verdict"] != "untestable"
        if ta and tb:
            both.append((x, y))
            if x["verdict"] != y["verdict"]:
                differ.append((x, y))
        elif ta:
            only_a.append(x)
        elif tb:
            only_b.append(y)
        else:
            neither.append(x)
    out = [f"Of the {len(ra)} claims, {len(both)} can be tested on both datasets, "
           f"{len(only_a)} on the {na} data only, {len(only_b)} on the {nb} data only and "
           f"{len(neither)} on neither."]
    if both:
        agree = len(both) - len(differ)
        out.append(f"Where both can be tested, the verdicts agree on {agree} "
                   f"claim{'s' if agree != 1 else ''} and differ on {len(differ)}.")
    for x, y in differ:
        out.append(f"*{x['claim'][:1].upper()}{x['claim'][1:]}* ({x['source']}): "
                   f"{x['verdict']} on the {na} data ({_effect(x)} points), {y['verdict']} "
                   f"on the {nb} data ({_effect(y)} points).")
    no_class = [y for y in rb if y["verdict"] == "untestable"
                and str(y["reason"]).startswith("these data have no")]
    if no_class:
        out.append(f"{len(no_class)} claim{'s are' if len(no_class) != 1 else ' is'} about a "
                   f"class the {nb} data do not have (" + "; ".join(
                       sorted({str(y['reason']).removeprefix('these data have no ')
                               .removesuffix(' class') for y in no_class}))
                   + "), so untestable there by construction.")
    return out


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


def paper_vs_ours_table(results: Mapping[str, xr.Dataset], papers: Sequence[PaperResult], *,
                        protocol: str = "eroded", caption: str | None = None) -> Any:
    """Each source's printed numbers beside ours on every dataset (mean over seeds, %).

    One row per (method, source, score); a column per dataset ("–" where the dataset lacks
    the method or the class); the sources' data and protocols go in the notes.
    """
    from aerialseg.display import method_name, score_label
    from aerialseg.tables import show_table

    def ours(ds: xr.Dataset, method: str, cls: str, metric: str) -> float:
        classes = {str(c) for c in ds["class"].values}
        # a class is only comparable in the papers' (ISPRS) class table: Dubai's building is
        # not Vaihingen's
        if method not in {str(m) for m in ds["method"].values} or cls not in classes or \
                (cls != OVERALL and not ISPRS_LIKE <= classes):
            return float("nan")
        v = ds["scores"].sel({"protocol": protocol, "method": method, "class": cls,
                              "metric": metric}).values * 100
        return _mean(v)

    keys: dict[tuple[str, str, str], dict[str, Any]] = {}
    for p in papers:
        for (cls, metric), value in p.values.items():
            label = score_label(metric, cls)
            keys.setdefault((p.method, p.source, label), {
                "paper": value, **{d: ours(ds, p.method, cls, metric)
                                   for d, ds in results.items()}})
    present = {m for ds in results.values() for m in (str(x) for x in ds["method"].values)}
    rows = []
    for (method, source, label), vals in keys.items():
        if method not in present:
            continue
        rows.append({"Method": method_name(method), "Source": source, "Score": label,
                     "Paper": vals["paper"],
                     **{f"Ours: {dataset_name(d)}": vals.get(d, np.nan) for d in results}})
    df = pd.DataFrame(rows)
    notes = sorted({f"{p.source}: {p.data}." for p in papers if p.method in present})
    return show_table(df, caption=caption or (
        "The papers' printed numbers beside ours (mean over seeds, %). The papers' data and "
        "protocols differ from ours (notes), so compare the direction and size of effects, "
        "not the values."), rows=None, columns=lambda c: c.replace("Ours: ", "Ours, "),
        points=[c for c in df.columns if c == "Paper" or c.startswith("Ours")],
        na="no such method in these results, or a class of another class table (a Dubai "
           "class is not the papers' ISPRS class)", notes=notes, split=None)


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
    if "dataset" in claims.columns:  # rows of claims_across: this dataset's
        claims = claims[claims["dataset"] == dataset].drop(columns=["dataset", "index"])
    out.attrs["claims"] = claims.to_json(orient="records")
    return write_results(out, results_path(COMPARISON_CHAPTER, dataset, profile, folder))
