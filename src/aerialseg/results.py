"""Results files: an ``xarray.Dataset`` per chapter run, written to netCDF with provenance.

Schema ``aerialseg-results-2`` (dims in brackets):
- ``scores[method, seed, protocol, class, metric]`` (float64): per-class ``f1``, ``iou``,
  ``precision``, ``recall``, ``boundary_f1``; the ``overall`` class holds mean F1 (``f1``),
  mIoU (``iou``), mean boundary F1, ``oa``, ``ece`` and support-weighted
  ``weighted_f1``/``weighted_iou``. Every finite score is in [0, 1]. NaN only where a value
  does not exist: a run that is absent (``present`` False); a metric that does not apply to
  the row (``oa``/``ece``/``weighted_*`` of a class row, ``precision``/``recall`` of the
  overall row); a class that is not evaluated (clutter); a class without support (its
  recall; F1 and IoU when it is never predicted either) or never predicted (its
  precision); a class without boundary pixels (boundary F1); a predictor without
  probabilities (ECE, e.g. the SVM ensembles).
- ``present[method, seed]`` (bool): the run exists. Files combine methods whose seeds differ;
  absent runs have zero counts and NaN scores, never fill values in integer variables.
- ``confusion[method, seed, protocol, truth, pred]`` (int64): the accumulated pixel counts.
- ``block_confusion[method, seed, protocol, block, truth, pred]`` (uint32, zlib-compressed):
  the same counts per spatial block of the validation scenes (attribute ``block_size``
  pixels; coordinates ``block_scene``, ``block_y``, ``block_x`` give each block's scene and
  top-left pixel); summed over ``block`` they equal ``confusion``. :mod:`aerialseg.stats`
  resamples them.
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
  hardware, threads (JSON: torch intra/inter-op threads and the OMP/MKL/OpenBLAS settings),
  torch version, wall time per phase (JSON), created (UTC), schema, ``overrides`` (JSON of
  the non-default parameters) and ``variant`` ("" for the canonical file).

:func:`validate_results` checks all of this; :func:`write_results` and :func:`read_results`
run it. Files of an older schema are read with a :class:`ResultsSchemaWarning` naming what
they lack, but corrupt content (negative or fill-value counts, duplicated methods, scores
outside [0, 1], NaN where the confusion matrix says a score exists) is an error in every
schema.

Naming (one canonical file per chapter, dataset and profile):
``results/<chapter>__<dataset>__<profile>.nc`` holds the run with the chapter's default
parameters. A run with any non-default parameter (a non-None method override, a changed
chapter option, data option or seed list; ``device`` does not count) goes to
``<chapter>__<dataset>__<profile>__<variant>.nc``, where ``variant`` is an explicit tag or
the first 8 hex digits of the SHA-256 of the sorted JSON of the non-default parameters
(:func:`results_path`). :func:`write_results` enforces this: handed the canonical path for
a dataset whose ``parameters`` differ from the chapter notebook's defaults, it writes the
variant file instead and says so. :func:`aerialseg.compare.load_all` reads canonical files
only unless asked otherwise.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from aerialseg.utils import atomic_write

METRICS = ("f1", "iou", "precision", "recall", "boundary_f1", "oa", "ece", "weighted_f1",
           "weighted_iou")
OVERALL = "overall"
GALLERY_CROP = 160
SCHEMA_VERSION = 2
SCHEMA = f"aerialseg-results-{SCHEMA_VERSION}"
"""Schema of the files this library writes (``schema`` attribute)."""
PROTOCOL_NAMES = ("eroded", "full")
REQUIRED_ATTRS = ("chapter", "profile", "dataset", "git_commit", "parameters", "hardware",
                  "threads", "wall_seconds", "schema")
IDENTITY_PARAMS = frozenset({"profile", "dataset", "device", "data_root", "retrain"})
"""Parameters that never make a run a variant: profile and dataset are in the file name,
``data_root`` says where that dataset lies, ``retrain`` trains the same runs again."""
COUNT_VARS = ("confusion", "block_confusion")
CROP_VARS = ("pred_crop", "truth_crop")
NO_CLASS = 255
"""Fill value of label crops where a run is absent."""
_SCORE_DIMS = ("method", "seed", "protocol", "class", "metric")
_CONF_DIMS = ("method", "seed", "protocol", "truth", "pred")
_BLOCK_DIMS = ("method", "seed", "protocol", "block", "truth", "pred")


class ResultsSchemaError(ValueError):
    """A results file or Dataset breaks the schema (the message names file, variable, values)."""


class ResultsSchemaWarning(UserWarning):
    """A results file of an older schema lacks parts of the current one."""


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
        "present": ((), True),
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
    blocks = getattr(ev, "block_confusion", None)
    if blocks:
        bc = np.stack([blocks[p] for p in protocols])
        dtype = np.uint32 if bc.max(initial=0) < np.iinfo(np.uint32).max else np.int64
        data["block_confusion"] = (("protocol", "block", "truth", "pred"), bc.astype(dtype))
        coords.update(block=np.arange(bc.shape[1]),
                      block_scene=("block", np.asarray(ev.block_scene, dtype=object)),
                      block_y=("block", np.asarray(ev.block_y, np.int64)),
                      block_x=("block", np.asarray(ev.block_x, np.int64)))
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
    keys = [(r.method, r.seed) for r in records]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ValueError(f"duplicate (method, seed) records: {dup}; give each evaluation its "
                         "own method label")
    sizes = {getattr(r.evaluation, "block_size", 0) for r in records}
    if len(sizes) > 1:
        raise ValueError(f"records were evaluated with different block sizes {sorted(sizes)}")
    truth = next((p["truth_crop"].isel(method=0, seed=0, drop=True) for p in parts
                  if "truth_crop" in p), None)
    parts = [p.drop_vars("truth_crop", errors="ignore") for p in parts]
    # variable by variable: records hold different variables (MC curves only with MC
    # dropout), and combining whole Datasets would merge groups of records whose filled
    # ``present`` disagree
    fills = fill_values(parts)
    names = list(dict.fromkeys(v for p in parts for v in p.data_vars))
    columns = [xr.combine_by_coords([p[[v]] for p in parts if v in p], combine_attrs="drop",
                                    compat="no_conflicts", join="outer",
                                    fill_value={v: fills.get(v, np.nan)})
               for v in names]
    ds = xr.merge(columns, join="outer", compat="no_conflicts", combine_attrs="drop",
                  fill_value=fills)
    if "num_parameters" in ds:
        ds["num_parameters"] = ds["num_parameters"].max("seed")
    if truth is not None:
        ds["truth_crop"] = truth.astype(np.uint8)
    if sizes != {0}:
        ds.attrs["block_size"] = int(sizes.pop())
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


def fill_values(parts: Iterable[xr.Dataset]) -> dict[str, Any]:
    """Per variable, what marks an absent (method, seed) when Datasets are aligned.

    Counts are 0 (absence is in ``present``), ``present`` False, label crops
    :data:`NO_CLASS`, floats NaN: integer variables never receive NaN and its int64 cast.
    """
    out: dict[str, Any] = {}
    for p in parts:
        for name, da in p.data_vars.items():
            kind = da.dtype.kind
            if kind == "b":
                out[name] = False
            elif kind in "iu":
                out[name] = NO_CLASS if name in CROP_VARS else 0
            elif kind == "f":
                out[name] = np.nan
    return out


def thread_settings() -> dict[str, Any]:
    """Threads the run used: torch intra- and inter-op, and the usual environment knobs."""
    import torch

    out: dict[str, Any] = {"torch": torch.get_num_threads(),
                           "torch_interop": torch.get_num_interop_threads()}
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY"):
        out[k] = os.environ.get(k)
    return out


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
        "threads": json.dumps(thread_settings(), sort_keys=True),
        "git_commit": git_commit(), "wall_seconds": json.dumps(wall_seconds),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "schema": SCHEMA,
    }


# --------------------------------------------------------------------------- naming

class ResultsName(NamedTuple):
    """The parts of a results file name; ``variant`` is None for the canonical file."""

    chapter: str
    dataset: str
    profile: str
    variant: str | None


_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*(?:_[A-Za-z0-9.-]+)*$")


def _jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))


def non_default_params(params: Mapping[str, Any] | None,
                       defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The parameters that make a run a variant of the canonical one.

    A parameter counts when it differs from ``defaults[name]`` (compared as JSON, so a tuple
    equals a list); a parameter without a known default counts when it is not None (None
    means "the profile's value"). ``profile``, ``dataset`` and ``device`` never count.
    """
    out = {}
    for k, v in sorted((params or {}).items()):
        if k in IDENTITY_PARAMS:
            continue
        if defaults is not None and k in defaults:
            if _jsonable(v) == _jsonable(defaults[k]):
                continue
        elif v is None:
            continue
        out[k] = _jsonable(v)
    return out


def variant_id(overrides: Mapping[str, Any]) -> str:
    """8 hex digits naming a set of non-default parameters (stable across runs)."""
    text = json.dumps(_jsonable(dict(overrides)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def results_path(chapter: str, dataset: str, profile: str, folder: str | Path | None = None,
                 *, overrides: Mapping[str, Any] | None = None, tag: str | None = None,
                 defaults: Mapping[str, Any] | None = None) -> Path:
    """Where a chapter run's results go.

    ``results/<chapter>__<dataset>__<profile>.nc`` for the chapter's default parameters;
    ``...__<tag>.nc`` with an explicit ``tag``; otherwise, when
    :func:`non_default_params` of ``overrides`` (against ``defaults``) is not empty,
    ``...__<variant_id>.nc``.

    Args:
        chapter: chapter name, e.g. ``03_fcn_mfb``.
        dataset: dataset name.
        profile: profile name.
        folder: default ``$AERIALSEG_RESULTS`` or ``<repo>/results``.
        overrides: the run's parameters (all of them, or only the overridden ones).
        tag: explicit variant name (letters, digits, ``.``, ``-``, single ``_``).
        defaults: the chapter's default parameters (see :func:`chapter_defaults`).
    """
    from aerialseg.paths import results_dir

    base = Path(folder) if folder else results_dir()
    stem = f"{chapter}__{dataset}__{profile}"
    if tag is not None:
        if not _TAG.match(tag):
            raise ValueError(f"tag {tag!r} must be letters, digits, '.', '-' or single '_'")
        return base / f"{stem}__{tag}.nc"
    changed = non_default_params(overrides, defaults)
    return base / (f"{stem}__{variant_id(changed)}.nc" if changed else f"{stem}.nc")


def parse_results_name(path: str | Path) -> ResultsName | None:
    """Split ``<chapter>__<dataset>__<profile>[__<variant>].nc``; None for other names."""
    p = Path(path)
    if p.suffix != ".nc":
        return None
    parts = p.stem.split("__")
    if len(parts) == 3:
        return ResultsName(*parts, None)
    if len(parts) == 4:
        return ResultsName(*parts)
    return None


def chapter_defaults(chapter: str, notebooks: str | Path | None = None
                     ) -> dict[str, Any] | None:
    """Default parameters of a chapter: the literals of its notebook's ``parameters`` cell.

    Reads ``notebooks/<chapter>.py`` (jupytext percent format); None when there is no such
    notebook. Assignments whose value is not a literal are skipped.
    """
    from aerialseg.paths import repo_root

    path = Path(notebooks or repo_root() / "notebooks") / f"{chapter}.py"
    if not path.is_file():
        return None
    lines = path.read_text().splitlines()
    start = next((i for i, line in enumerate(lines)
                  if line.startswith("# %%") and "parameters" in line), None)
    if start is None:
        return None
    cell = []
    for line in lines[start + 1:]:
        if line.startswith("# %%"):
            break
        cell.append(line)
    out: dict[str, Any] = {}
    for node in ast.parse("\n".join(cell)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return out


# --------------------------------------------------------------------------- read / write

def write_results(ds: xr.Dataset, path: str | Path, *, validate: bool = True,
                  redirect: bool = True) -> Path:
    """Validate and write atomically (a reader never sees a half-written file).

    Args:
        ds: a results Dataset (:func:`build_results`, or a chapter summary with the
            :func:`provenance` attributes).
        path: target, normally from :func:`results_path`.
        validate: run :func:`validate_results` (strict: the current schema) first.
        redirect: when ``path`` is a canonical name but ``ds.attrs["parameters"]`` differ
            from the chapter's defaults, write the variant file instead (the canonical one
            is never replaced by a non-default run).

    Returns:
        The path written (a variant path when redirected).
    """
    path = Path(path)
    ds = ds.copy()
    ds.attrs = dict(ds.attrs)
    name = parse_results_name(path)
    if name is not None and "parameters" in ds.attrs:
        params = json.loads(ds.attrs["parameters"])
        changed = non_default_params(params, chapter_defaults(name.chapter))
        ds.attrs["overrides"] = json.dumps(changed, sort_keys=True)
        if name.variant is None and changed and redirect:
            canonical = path
            path = results_path(name.chapter, name.dataset, name.profile, path.parent,
                                overrides=changed)
            print(f"non-default parameters {json.dumps(changed, sort_keys=True)}: writing "
                  f"{path.name}; the canonical {canonical.name} is left as it is")
            name = parse_results_name(path)
        ds.attrs["variant"] = (name.variant if name else None) or ""
    if validate:
        validate_results(ds, name=path.name, strict=True)
    out = ds.drop_encoding()
    encoding = {v: {"zlib": True, "complevel": 4} for v in COUNT_VARS if v in out}
    return atomic_write(path, lambda tmp: out.to_netcdf(tmp, engine="netcdf4",
                                                        encoding=encoding))


def read_results(path: str | Path, *, validate: bool = True) -> xr.Dataset:
    """Read a results file fully into memory and check it (:func:`validate_results`).

    Files of the current schema must pass every check; older ones only the integrity checks
    (a :class:`ResultsSchemaWarning` lists what they lack).
    """
    with xr.open_dataset(path, engine="netcdf4") as ds:
        ds = ds.load()
    if validate:
        validate_results(ds, name=Path(path).name)
    return ds


# --------------------------------------------------------------------------- schema check

def schema_version(ds: xr.Dataset) -> int:
    """The N of the ``aerialseg-results-N`` attribute (0 when absent or unreadable)."""
    m = re.fullmatch(r"aerialseg-results-(\d+)", str(ds.attrs.get("schema", "")))
    return int(m.group(1)) if m else 0


def _offenders(da: xr.DataArray, bad: np.ndarray, limit: int = 5) -> str:
    """``"method='x', seed=1, ...: value"`` for the first ``limit`` True cells of ``bad``."""
    idx = np.argwhere(np.asarray(bad))
    values = np.asarray(da.values)
    shown = []
    for ix in idx[:limit]:
        where = ", ".join(
            f"{d}={_label(da[d].values[i]) if d in da.coords else int(i)}"
            for d, i in zip(da.dims, ix, strict=True))
        value = values[tuple(ix)]
        shown.append(f"[{where}] = {value.item() if hasattr(value, 'item') else value!r}")
    more = f" (and {len(idx) - limit} more)" if len(idx) > limit else ""
    return "; ".join(shown) + more


def _label(v: Any) -> str:
    v = v.item() if hasattr(v, "item") else v
    return repr(str(v)) if isinstance(v, str) else str(v)


def run_presence(ds: xr.Dataset) -> np.ndarray:
    """``(method, seed)`` bool: the ``present`` mask, or legacy files' runs with valid counts."""
    if "present" in ds:
        return np.asarray(ds["present"].transpose("method", "seed").values, bool)
    c = np.asarray(ds["confusion"].transpose(*_CONF_DIMS).values, np.float64)
    axes = (2, 3, 4)
    return np.isfinite(c).all(axes) & (np.nan_to_num(c, nan=-1) >= 0).all(axes) \
        & (np.nansum(c, axes) > 0)


def validate_results(ds: xr.Dataset, *, name: str | None = None, strict: bool | None = None,
                     methods: Sequence[str] | None = None,
                     seeds: Sequence[int] | None = None) -> None:
    """Check a results Dataset against the schema (see the module docstring).

    Args:
        ds: the Dataset.
        name: file name for the messages.
        strict: require every part of the current schema; default: when the file's
            ``schema`` attribute is the current one. Non-strict checks only integrity
            (counts, scores, duplicates) and warns about what an older file lacks.
        methods: methods that must be present (every seed of ``seeds``).
        seeds: seeds that must be present.

    Raises:
        ResultsSchemaError: naming the file, the variable and the offending values.
    """
    label = name or str(ds.attrs.get("chapter", "results Dataset"))
    version = schema_version(ds)
    if strict is None:
        strict = version >= SCHEMA_VERSION
    errors: list[str] = []
    missing: list[str] = []
    if version > SCHEMA_VERSION:
        errors.append(f"schema {ds.attrs.get('schema')!r} is newer than this library's "
                      f"{SCHEMA!r}")
    for a in REQUIRED_ATTRS:
        if a not in ds.attrs:
            missing.append(f"attribute {a!r} missing")
    for a in ("parameters", "wall_seconds", "threads", "overrides"):
        if a in ds.attrs:
            try:
                value = json.loads(ds.attrs[a])
            except (TypeError, ValueError):
                errors.append(f"attribute {a!r} is not JSON: {str(ds.attrs[a])[:80]!r}")
                continue
            if not isinstance(value, dict):
                errors.append(f"attribute {a!r} is not a JSON object")
    if "scores" in ds:
        _check_method_results(ds, errors, missing, methods, seeds)
    elif methods or seeds:
        errors.append("no 'scores' variable, so no method runs")
    if strict:
        errors += missing
    elif missing:
        warnings.warn(f"{label} ({ds.attrs.get('schema', 'no schema')}, older than {SCHEMA}): "
                      + "; ".join(missing), ResultsSchemaWarning, stacklevel=3)
    if errors:
        raise ResultsSchemaError(f"{label} fails the results schema check ({SCHEMA}):\n  - "
                                 + "\n  - ".join(errors))


def _check_counts(ds: xr.Dataset, var: str, present: np.ndarray, errors: list[str],
                  missing: list[str]) -> np.ndarray | None:
    """Integer, >= 0, no fill values, zero where absent; returns the counts as float64."""
    da = ds[var]
    dims = _CONF_DIMS if var == "confusion" else _BLOCK_DIMS
    if set(da.dims) != set(dims):
        errors.append(f"variable {var!r}: dims {da.dims}, expected {dims}")
        return None
    da = da.transpose(*dims)
    v = np.asarray(da.values)
    where = present.reshape(present.shape + (1,) * (v.ndim - 2))
    if v.dtype.kind in "iu":
        bad = v < 0
        if v.dtype.kind == "u":
            bad |= v == np.iinfo(v.dtype).max
        if bad.any():
            errors.append(f"variable {var!r}: negative or fill-value counts: "
                          + _offenders(da, bad))
        f = v.astype(np.float64)
    else:
        missing.append(f"variable {var!r} has dtype {v.dtype}, counts must be integers")
        f = v.astype(np.float64)
        bad = where & ~(np.isfinite(f) & (np.nan_to_num(f, nan=-1) >= 0)
                        & (np.nan_to_num(f) == np.round(np.nan_to_num(f))))
        if bad.any():
            errors.append(f"variable {var!r}: counts that are not non-negative integers: "
                          + _offenders(da, bad))
    absent_bad = ~where & (np.nan_to_num(f, nan=0) != 0)
    if "present" in ds and absent_bad.any():
        errors.append(f"variable {var!r}: non-zero counts for absent runs: "
                      + _offenders(da, absent_bad))
    return np.where(where, np.nan_to_num(f, nan=0), 0)


def _check_method_results(ds: xr.Dataset, errors: list[str], missing: list[str],
                          methods: Sequence[str] | None, seeds: Sequence[int] | None) -> None:
    sc = ds["scores"]
    if set(sc.dims) != set(_SCORE_DIMS):
        errors.append(f"variable 'scores': dims {sc.dims}, expected {_SCORE_DIMS}")
        return
    if "confusion" not in ds:
        errors.append("variable 'confusion' missing")
        return
    for dim in ("method", "seed", "protocol", "class", "metric", "truth", "pred", "block"):
        if dim in ds.dims:
            vals = [str(v) for v in ds[dim].values]
            dups = sorted({v for v in vals if vals.count(v) > 1})
            if dups:
                errors.append(f"coordinate {dim!r}: duplicated values {dups}")
    if ds["seed"].dtype.kind not in "iu":
        errors.append(f"coordinate 'seed' has dtype {ds['seed'].dtype}, expected integers")
    bad_protocols = sorted({str(p) for p in ds["protocol"].values} - set(PROTOCOL_NAMES))
    if bad_protocols:
        errors.append(f"coordinate 'protocol': unknown protocols {bad_protocols}")
    classes = [str(c) for c in ds["class"].values]
    names = [str(c) for c in ds["truth"].values]
    if OVERALL not in classes:
        errors.append(f"coordinate 'class' lacks {OVERALL!r}")
        return
    if names != [str(c) for c in ds["pred"].values] or \
            [c for c in classes if c != OVERALL] != names:
        errors.append(f"coordinates 'truth', 'pred' and 'class' disagree: {names}, {classes}")
        return
    if "present" in ds:
        p = ds["present"]
        if set(p.dims) != {"method", "seed"} or p.dtype.kind != "b":
            errors.append(f"variable 'present': dims {p.dims} dtype {p.dtype}, expected bool "
                          "(method, seed)")
            return
    else:
        missing.append("variable 'present' missing")
    present = run_presence(ds)
    conf = _check_counts(ds, "confusion", present, errors, missing)
    if "block_confusion" in ds:
        blocks = _check_counts(ds, "block_confusion", present, errors, missing)
        for c in ("block_scene", "block_y", "block_x"):
            if c not in ds.coords:
                errors.append(f"coordinate {c!r} missing beside 'block_confusion'")
        if conf is not None and blocks is not None:
            da = ds["confusion"].transpose(*_CONF_DIMS)
            bad = blocks.sum(3) != conf
            if bad.any():
                errors.append("variable 'block_confusion': its sum over blocks differs from "
                              "'confusion' at " + _offenders(da, bad))
    elif "inputs" not in ds.attrs:  # derived files (the comparison) may leave them out
        missing.append("variable 'block_confusion' missing")
    for v in CROP_VARS:
        if v in ds and ds[v].dtype != np.uint8:
            missing.append(f"variable {v!r} has dtype {ds[v].dtype}, expected uint8")
    if conf is not None:
        _check_scores(ds, conf, present, errors)
    if methods or seeds:
        have = {(str(m), int(s)) for (i, m) in enumerate(ds["method"].values)
                for (j, s) in enumerate(ds["seed"].values) if present[i, j]}
        want = {(str(m), int(s)) for m in (methods or [str(x) for x in ds["method"].values])
                for s in (seeds if seeds is not None else [int(x) for x in ds["seed"].values])}
        lacking = sorted(want - have)
        if lacking:
            errors.append(f"expected runs missing: {lacking}")


def _check_scores(ds: xr.Dataset, conf: np.ndarray, present: np.ndarray,
                  errors: list[str]) -> None:
    da = ds["scores"].transpose(*_SCORE_DIMS)
    v = np.asarray(da.values)
    if v.dtype.kind != "f":
        errors.append(f"variable 'scores' has dtype {v.dtype}, expected float")
        return
    finite = np.isfinite(v)
    out = (finite & ((v < 0) | (v > 1))) | np.isinf(v)
    if out.any():
        errors.append("variable 'scores': values outside [0, 1]: " + _offenders(da, out))
    classes = [str(c) for c in ds["class"].values]
    names = classes[:-1] if classes[-1] == OVERALL else [c for c in classes if c != OVERALL]
    ev_names = set(names)
    if "evaluated" in ds.coords:
        ev_names = {str(c) for c, e in zip(ds["class"].values, ds["evaluated"].values,
                                           strict=True) if bool(e)} - {OVERALL}
    ev = [i for i, n in enumerate(names) if n in ev_names]
    metrics = [str(m) for m in ds["metric"].values]
    # (method, seed, protocol, class) counts from the confusion matrices
    support = conf.sum(-1)  # truth rows
    predicted = conf[..., ev, :].sum(-2)  # predictions among evaluated truth
    allowed = np.ones(v.shape, bool)
    for ci, cname in enumerate(classes):
        if cname == OVERALL:
            ev_support = support[..., ev].sum(-1)
            any_f1 = ((support + predicted)[..., ev] > 0).any(-1)
            rules = {"f1": any_f1, "iou": any_f1, "oa": ev_support > 0,
                     "weighted_f1": ev_support > 0, "weighted_iou": ev_support > 0}
        elif cname in ev_names:
            k = names.index(cname)
            rules = {"recall": support[..., k] > 0, "precision": predicted[..., k] > 0,
                     "f1": support[..., k] + predicted[..., k] > 0,
                     "iou": support[..., k] + predicted[..., k] > 0}
        else:
            continue
        for metric, must_exist in rules.items():
            if metric in metrics:
                allowed[..., ci, metrics.index(metric)] = ~must_exist
    pres = present[:, :, None, None, None]
    bad = pres & np.isnan(v) & ~allowed
    if bad.any():
        errors.append("variable 'scores': NaN where the confusion matrix defines the score: "
                      + _offenders(da, bad))
    if "present" in ds:
        absent = ~pres & finite
        if absent.any():
            errors.append("variable 'scores': values for absent runs: "
                          + _offenders(da, absent))
