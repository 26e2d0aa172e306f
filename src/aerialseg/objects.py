"""Object-level errors of a label map: spurious, missed, split and merged objects.

Pixel metrics (F1, IoU) cannot tell a thin boundary error from a blob in the wrong place or a
car that is not found at all; counting connected components can. Per class c, the objects
are the connected components of ``truth == c`` and the segments those of ``pred == c``
(``connectivity`` 8 by default, 4 optionally), both restricted to the valid (non-ignore)
pixels of the full ground truth. With ``min_overlap`` = f (default 0.5):

* a segment is **spurious** (over-segmentation: a false object) if less than a fraction f of
  its pixels are truly class c;
* an object is **missed** (under-segmentation: a lost object) if less than a fraction f of
  its pixels are predicted as class c;
* a segment and an object are **linked** if their overlap is at least f times the smaller
  of the two; an object linked to two or more segments is **split** (fragmented), a segment
  linked to two or more objects is **merged** (it joins separate objects).

Components smaller than ``min_size`` pixels (in truth or prediction) are not counted as
objects or segments (their pixels still count as overlap). Counts are summed over scenes
with :class:`ObjectCounter`; ``f -> 0`` gives the loosest matching ("any overlap").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage

from aerialseg.data.classes import IGNORE_INDEX

KINDS = ("objects", "segments", "spurious", "missed", "split", "merged")
"""Counts per class: true objects, predicted segments, and the four error kinds."""


@dataclass(frozen=True)
class ObjectMatch:
    """Component matching of one class in one scene.

    Attributes:
        truth_labels, pred_labels: component label images (0 = not this class or dropped).
        spurious: ids of spurious segments; missed: ids of missed objects.
        split: ids of split objects; merged: ids of merged segments.
        n_objects, n_segments: counted components.
    """

    truth_labels: np.ndarray
    pred_labels: np.ndarray
    n_objects: int
    n_segments: int
    spurious: np.ndarray
    missed: np.ndarray
    split: np.ndarray
    merged: np.ndarray

    def counts(self) -> dict[str, int]:
        """``{kind: count}`` for :data:`KINDS`."""
        return {"objects": self.n_objects, "segments": self.n_segments,
                "spurious": len(self.spurious), "missed": len(self.missed),
                "split": len(self.split), "merged": len(self.merged)}


def _structure(connectivity: int) -> np.ndarray:
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    return ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)


def _components(mask: np.ndarray, structure: np.ndarray,
                min_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels with components < min_size removed (ids kept) and the ids that count."""
    lab, n = ndimage.label(mask, structure)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    keep = np.flatnonzero(sizes >= max(min_size, 1))
    keep = keep[keep > 0]
    return lab, keep


def match_class(pred: np.ndarray, truth: np.ndarray, cls: int, *, min_overlap: float = 0.5,
                connectivity: int = 8, min_size: int = 1,
                ignore_index: int = IGNORE_INDEX) -> ObjectMatch:
    """Match the class-``cls`` segments of ``pred`` with the objects of ``truth`` (H, W).

    See the module docstring for the definitions.
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape or pred.ndim != 2:
        raise ValueError(f"pred and truth must be 2D label maps of one shape, got {pred.shape} "
                         f"and {truth.shape}; call once per scene")
    if not 0.0 <= min_overlap <= 1.0:
        raise ValueError(f"min_overlap must be a fraction in [0, 1], got {min_overlap}")
    valid = truth != ignore_index
    st = _structure(connectivity)
    t_lab, t_ids = _components(valid & (truth == cls), st, min_size)
    p_lab, p_ids = _components(valid & (pred == cls), st, min_size)
    nt, np_ = int(t_lab.max()), int(p_lab.max())
    # joint histogram of (segment id, object id) over all pixels, 0 = none
    joint = np.bincount((p_lab.astype(np.int64) * (nt + 1) + t_lab).ravel(),
                        minlength=(np_ + 1) * (nt + 1)).reshape(np_ + 1, nt + 1)
    p_area, t_area = joint.sum(1), joint.sum(0)
    p_on_truth = joint[:, 1:].sum(1)  # segment pixels that are truly cls (any object)
    t_found = joint[1:, :].sum(0)  # object pixels predicted as cls (any segment)

    def enough(overlap: np.ndarray, area: np.ndarray) -> np.ndarray:
        return (overlap > 0) & (overlap >= min_overlap * area)

    spurious = p_ids[~enough(p_on_truth[p_ids], p_area[p_ids])]
    missed = t_ids[~enough(t_found[t_ids], t_area[t_ids])]
    sub = joint[np.ix_(p_ids, t_ids)]
    smaller = np.minimum(p_area[p_ids][:, None], t_area[t_ids][None, :])
    linked = enough(sub, smaller)
    split = t_ids[linked.sum(0) >= 2]
    merged = p_ids[linked.sum(1) >= 2]
    return ObjectMatch(t_lab, p_lab, len(t_ids), len(p_ids), spurious, missed, split, merged)


def object_errors(pred: np.ndarray, truth: np.ndarray, classes: Sequence[int], *,
                  min_overlap: float = 0.5, connectivity: int = 8, min_size: int = 1,
                  ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Counts (len(classes), len(KINDS)) of one scene; see :func:`match_class`."""
    out = np.zeros((len(classes), len(KINDS)), np.int64)
    for i, c in enumerate(classes):
        m = match_class(pred, truth, int(c), min_overlap=min_overlap, connectivity=connectivity,
                        min_size=min_size, ignore_index=ignore_index)
        out[i] = [m.counts()[k] for k in KINDS]
    return out


@dataclass
class ObjectCounter:
    """Accumulates :func:`object_errors` over scenes.

    Args:
        classes: class indices to count (e.g. the evaluated classes).
        min_overlap, connectivity, min_size, ignore_index: as in :func:`match_class`.
    """

    classes: Sequence[int]
    min_overlap: float = 0.5
    connectivity: int = 8
    min_size: int = 1
    ignore_index: int = IGNORE_INDEX
    counts: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.classes = tuple(int(c) for c in self.classes)
        self.counts = np.zeros((len(self.classes), len(KINDS)), np.int64)

    def update(self, pred: np.ndarray, truth: np.ndarray) -> None:
        """Add one scene (full ground truth, not the eroded mask: erosion splits objects)."""
        self.counts += object_errors(pred, truth, self.classes, min_overlap=self.min_overlap,
                                     connectivity=self.connectivity, min_size=self.min_size,
                                     ignore_index=self.ignore_index)

    def result(self) -> dict[str, np.ndarray]:
        """``{kind: (len(classes),) counts}``."""
        return {k: self.counts[:, i].copy() for i, k in enumerate(KINDS)}

    def total(self) -> dict[str, int]:
        """Counts summed over the classes."""
        return {k: int(self.counts[:, i].sum()) for i, k in enumerate(KINDS)}


def count_maps(maps: dict[str, dict[str, np.ndarray]], classes: Sequence[int], *,
               min_overlap: float = 0.5, connectivity: int = 8,
               min_size: int = 1) -> np.ndarray:
    """Counts (len(classes), len(KINDS)) over kept evaluation maps (``pred`` and ``truth``)."""
    counter = ObjectCounter(classes, min_overlap, connectivity, min_size)
    for m in maps.values():
        # evaluation maps are uint8, where the ignore label 255 survives the cast
        counter.update(m["pred"].astype(np.int64), m["truth"].astype(np.int64))
    return counter.counts


def error_overlay(pred: np.ndarray, truth: np.ndarray, classes: Sequence[int], *,
                  min_overlap: float = 0.5, connectivity: int = 8, min_size: int = 1,
                  ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """(H, W) int8 map for figures: 1 spurious segment, 2 missed object, 0 neither.

    Spurious wins where both occur (different classes).
    """
    out = np.zeros(np.shape(truth), np.int8)
    for c in classes:
        m = match_class(pred, truth, int(c), min_overlap=min_overlap, connectivity=connectivity,
                        min_size=min_size, ignore_index=ignore_index)
        out[np.isin(m.truth_labels, m.missed) & (m.truth_labels > 0)] = 2
        out[np.isin(m.pred_labels, m.spurious) & (m.pred_labels > 0)] = 1
    return out


def counts_dataarray(counts: dict[tuple[str, int], np.ndarray],
                     class_names: Sequence[str]) -> xr.DataArray:
    """``objects[method, seed, class, kind]`` from ``{(method, seed): (classes, KINDS)}``.

    Missing (method, seed) pairs are NaN.
    """
    methods = list(dict.fromkeys(m for m, _ in counts))
    seeds = sorted({s for _, s in counts})
    arr = np.full((len(methods), len(seeds), len(class_names), len(KINDS)), np.nan)
    for (m, s), c in counts.items():
        arr[methods.index(m), seeds.index(s)] = c
    return xr.DataArray(arr, dims=("method", "seed", "class", "kind"),
                        coords={"method": methods, "seed": seeds, "class": list(class_names),
                                "kind": list(KINDS)}, name="objects")


def counts_table(da: xr.DataArray, *, classes: Sequence[str] | None = None,
                 kinds: Sequence[str] = KINDS) -> pd.DataFrame:
    """Mean ± std over seeds per method of the counts summed over ``classes`` (default all)."""
    sel = da if classes is None else da.sel({"class": list(classes)})
    total = sel.sum("class", min_count=1)
    rows = {}
    for m in da["method"].values:
        row = {}
        for k in kinds:
            v = total.sel({"method": m, "kind": k}).values.astype(float)
            v = v[np.isfinite(v)]
            row[k] = ("–" if v.size == 0 else f"{v[0]:.0f}" if v.size == 1
                      else f"{v.mean():.1f} ± {v.std(ddof=1):.1f}")
        rows[str(m)] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def counts_per_class(da: xr.DataArray, *,
                     kinds: Sequence[str] = ("objects", "segments", "spurious", "missed")
                     ) -> pd.DataFrame:
    """Mean over seeds per class (rows) and (kind, method) (columns)."""
    mean = da.mean("seed").sel(kind=list(kinds))
    cols = {(k, str(m)): mean.sel({"kind": k, "method": m}).to_series()
            for k in kinds for m in da["method"].values}
    df = pd.DataFrame(cols)
    df.columns = pd.MultiIndex.from_tuples(df.columns, names=["kind", "method"])
    return df


def sensitivity_table(maps: dict[tuple[str, int], dict[str, dict[str, np.ndarray]]],
                      classes: Sequence[int], *, min_sizes: Sequence[int] = (1, 10, 50),
                      min_overlaps: Sequence[float] = (0.0, 0.5),
                      kinds: Sequence[str] = ("spurious", "missed"),
                      connectivity: int = 8) -> pd.DataFrame:
    """How the counts depend on the matching rule: totals over classes, mean over seeds.

    Args:
        maps: ``{(method, seed): evaluation maps}`` (``pred`` and ``truth`` per scene).
        classes: class indices counted.
        min_sizes: smallest component sizes tried (px).
        min_overlaps: overlap fractions tried (every combination with ``min_sizes``).
        kinds: error kinds shown.
        connectivity: 4 or 8.

    Returns:
        Rows (min_size, min_overlap), columns (kind, method).
    """
    methods = list(dict.fromkeys(m for m, _ in maps))
    rows = {}
    for size in min_sizes:
        for overlap in min_overlaps:
            per: dict[str, list[np.ndarray]] = {m: [] for m in methods}
            for (m, _), mp in maps.items():
                c = count_maps(mp, classes, min_overlap=overlap, connectivity=connectivity,
                               min_size=size).sum(0)
                per[m].append(c)
            rows[(size, overlap)] = {(k, m): float(np.mean([c[KINDS.index(k)] for c in per[m]]))
                                     for k in kinds for m in methods}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index = pd.MultiIndex.from_tuples(df.index, names=["min_size (px)", "min_overlap"])
    df.columns = pd.MultiIndex.from_tuples(df.columns, names=["kind", "method"])
    return df
