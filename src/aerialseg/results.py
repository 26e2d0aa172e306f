"""Results files: an ``xarray.Dataset`` per chapter run, written to netCDF with provenance.

Schema (dims in brackets):
- ``scores[method, seed, protocol, class, metric]``: per-class ``f1``, ``iou``, ``precision``,
  ``recall``, ``boundary_f1``; the ``overall`` class holds mean F1 (``f1``), mIoU (``iou``),
  mean boundary F1, ``oa``, ``ece`` and support-weighted ``weighted_f1``/``weighted_iou``.
- ``confusion[method, seed, protocol, truth, pred]``: the accumulated pixel counts.
- ``train_seconds[method, seed]``, ``pixels_per_second[method, seed]``,
  ``num_parameters[method]``.
- ``pred_crop[method, seed, y, x]``, ``truth_crop[y, x]`` (and ``uncertainty_crop`` with
  MC dropout): a fixed crop of the first validation scene for galleries.
- optional ``accuracy``/``coverage[method, seed, uncertainty, threshold]`` and
  ``coverage_at[method, seed, uncertainty, target]`` (MC-dropout threshold curves);
  ``reliability_*[method, seed, bin]`` (calibration).
- select methods with the dict form ``ds.sel({"method": "fcn"})``: ``ds.sel(method=...)``
  is xarray's fill-method argument, not the dimension.
- attributes: chapter, git commit, profile, dataset, split, parameters (JSON), device,
  hardware, torch version, wall time per phase (JSON), created (UTC).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from aerialseg.utils import atomic_write

METRICS = ("f1", "iou", "precision", "recall", "boundary_f1", "oa", "ece", "weighted_f1",
           "weighted_iou")
OVERALL = "overall"
GALLERY_CROP = 160


@dataclass
class Record:
    """One evaluated model: method label, seed and its :class:`Evaluation`."""

    method: str
    seed: int
    evaluation: Any
    train_seconds: float = float("nan")
    num_parameters: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def _record_dataset(r: Record) -> xr.Dataset:
    ev = r.evaluation
    names = list(ev.classes.names)
    class_coord = names + [OVERALL]
    protocols = list(ev.scores)
    arr = np.full((len(protocols), len(class_coord), len(METRICS)), np.nan)
    m = {k: i for i, k in enumerate(METRICS)}
    for pi, p in enumerate(protocols):
        s = ev.scores[p]
        for key in ("f1", "iou", "precision", "recall"):
            arr[pi, : len(names), m[key]] = s[key]
        arr[pi, -1, m["f1"]] = s["mean_f1"]
        arr[pi, -1, m["iou"]] = s["miou"]
        arr[pi, -1, m["oa"]] = s["oa"]
        arr[pi, -1, m["weighted_f1"]] = s["weighted_f1"]
        arr[pi, -1, m["weighted_iou"]] = s["weighted_iou"]
        arr[pi, : len(names), m["boundary_f1"]] = ev.boundary_f1["f1"]
        arr[pi, -1, m["boundary_f1"]] = ev.boundary_f1["mean"]
        arr[pi, -1, m["ece"]] = ev.ece
    conf = np.stack([ev.confusion[p] for p in protocols]).astype(np.int64)
    data: dict[str, Any] = {
        "scores": (("protocol", "class", "metric"), arr),
        "confusion": (("protocol", "truth", "pred"), conf),
        "train_seconds": ((), float(r.train_seconds)),
        "pixels_per_second": ((), float(ev.pixels_per_second)),
        "num_parameters": ((), float(r.num_parameters)),
        "reliability_confidence": (("bin",), np.asarray(ev.reliability["bin_confidence"])),
        "reliability_accuracy": (("bin",), np.asarray(ev.reliability["bin_accuracy"])),
        "reliability_count": (("bin",), np.asarray(ev.reliability["bin_count"], float)),
    }
    for key, value in r.extra.items():
        data[key] = ((), float(value))
    if ev.maps:  # a fixed crop of the first validation scene, for galleries
        first = next(iter(ev.maps.values()))
        crop = (slice(0, GALLERY_CROP), slice(0, GALLERY_CROP))
        data["pred_crop"] = (("y", "x"), first["pred"][crop].astype(np.uint8))
        data["truth_crop"] = (("y", "x"), first["truth"][crop].astype(np.uint8))
        if "mean_class_std" in first:
            data["uncertainty_crop"] = (("y", "x"),
                                        first["mean_class_std"][crop].astype(np.float32))
    coords: dict[str, Any] = {"protocol": protocols, "class": class_coord,
                              "metric": list(METRICS), "truth": names, "pred": names}
    if ev.curves:
        kinds = list(ev.curves)
        thr = np.asarray(ev.curves[kinds[0]]["threshold"])
        data["accuracy"] = (("uncertainty", "threshold"),
                            np.stack([ev.curves[k]["accuracy"] for k in kinds]))
        data["coverage"] = (("uncertainty", "threshold"),
                            np.stack([ev.curves[k]["coverage"] for k in kinds]))
        targets = sorted(next(iter(ev.coverage.values())))
        data["coverage_at"] = (("uncertainty", "target"),
                               np.array([[ev.coverage[k][t] for t in targets] for k in kinds]))
        coords.update(uncertainty=kinds, threshold=thr, target=targets)
    ds = xr.Dataset(data, coords=coords)
    return ds.expand_dims(method=[r.method], seed=[r.seed])


def build_results(records: Iterable[Record], *, chapter: str, profile: str, dataset: str,
                  params: dict[str, Any], device: str, hardware: str,
                  wall_seconds: dict[str, float], split: str = "val",
                  extra_attrs: dict[str, Any] | None = None) -> xr.Dataset:
    """Combine the records of a chapter run into one Dataset with provenance attributes."""
    records = list(records)
    parts = [_record_dataset(r) for r in records]
    if not parts:
        raise ValueError("no records to write")
    ds = xr.combine_by_coords(parts, combine_attrs="drop", compat="no_conflicts",
                           join="outer")
    if "num_parameters" in ds:
        ds["num_parameters"] = ds["num_parameters"].max("seed")
    if "truth_crop" in ds:
        ds["truth_crop"] = ds["truth_crop"].max(("method", "seed")).astype(np.uint8)
    classes = records[0].evaluation.classes
    evaluated = [n in classes.evaluated_names for n in ds["class"].values]
    evaluated[-1] = True  # the overall row
    ds = ds.assign_coords(evaluated=("class", evaluated))
    ds.attrs.update(provenance(chapter=chapter, profile=profile, dataset=dataset, split=split,
                               params=params, device=device, hardware=hardware,
                               wall_seconds=wall_seconds))
    for k, v in (extra_attrs or {}).items():
        ds.attrs[k] = v if isinstance(v, str | int | float) else json.dumps(v, default=str)
    return ds


def provenance(*, chapter: str, profile: str, dataset: str, params: dict[str, Any],
               device: str, hardware: str, wall_seconds: dict[str, float],
               split: str = "val") -> dict[str, str]:
    """The provenance attributes every results file carries."""
    import torch

    from aerialseg.utils import git_commit

    return {
        "chapter": chapter, "profile": profile, "dataset": dataset, "split": split,
        "parameters": json.dumps(params, default=str, sort_keys=True),
        "device": device, "hardware": hardware, "torch_version": torch.__version__,
        "git_commit": git_commit(), "wall_seconds": json.dumps(wall_seconds),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "schema": "aerialseg-results-1",
    }


def results_path(chapter: str, dataset: str, profile: str, folder: str | Path | None = None,
                 *, overrides: dict[str, Any] | None = None) -> Path:
    """``results/<chapter>__<dataset>__<profile>.nc``, the profile's canonical file.

    With ``overrides`` (parameters set explicitly), ``...__<profile>__<hash>.nc``: a variant
    never replaces the canonical results.
    """
    import hashlib

    from aerialseg.paths import results_dir

    base = Path(folder) if folder else results_dir()
    tag = ""
    if overrides:
        blob = json.dumps(overrides, sort_keys=True, default=str)
        tag = "__" + hashlib.sha256(blob.encode()).hexdigest()[:8]
    return base / f"{chapter}__{dataset}__{profile}{tag}.nc"


def write_results(ds: xr.Dataset, path: str | Path) -> Path:
    """Write atomically (a reader never sees a half-written file)."""
    return atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine="netcdf4"))


def read_results(path: str | Path) -> xr.Dataset:
    """Read a results file fully into memory."""
    with xr.open_dataset(path, engine="netcdf4") as ds:
        return ds.load()


def _evaluated(ds: xr.Dataset) -> list[bool]:
    if "evaluated" in ds.coords:
        return [bool(v) for v in ds["evaluated"].values]
    return [True] * ds.sizes["class"]


def summary_table(ds: xr.Dataset, *, protocol: str = "eroded",
                  metrics: tuple[str, ...] = ("f1", "iou", "oa", "boundary_f1", "ece"),
                  per_class: str | None = "f1", scale: float = 100.0) -> pd.DataFrame:
    """Mean ± std over seeds per method: per-class ``per_class`` plus overall ``metrics``."""
    sc = ds["scores"].sel(protocol=protocol)
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
