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

A chapter counts every run with an :class:`ObjectTally`: per scene (so that a change of a
count can get the study's paired bootstrap interval over seeds and scenes, see
:func:`aerialseg.papers.lossd.analysis.paired_count_change`) and under several matching
rules at once (for a sensitivity table).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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


def _check_rule(min_overlap: float) -> None:
    if not 0.0 <= min_overlap <= 1.0:
        raise ValueError(f"min_overlap must be a fraction in [0, 1], got {min_overlap}")


def _joint(pred: np.ndarray, truth: np.ndarray, cls: int, connectivity: int,
           ignore_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Component labels of class ``cls`` in truth and prediction, and their joint histogram.

    Returns ``(truth_labels, pred_labels, joint)``: every component keeps its id (0 = not
    this class); ``joint[p, t]`` counts the pixels of segment p on object t (0 = none). The
    matching rules only read this histogram, so one pass serves every rule.
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape or pred.ndim != 2:
        raise ValueError(f"pred and truth must be 2D label maps of one shape, got {pred.shape} "
                         f"and {truth.shape}; call once per scene")
    valid = truth != ignore_index
    st = _structure(connectivity)
    t_lab, nt = ndimage.label(valid & (truth == cls), st)
    p_lab, np_ = ndimage.label(valid & (pred == cls), st)
    joint = np.bincount((p_lab.astype(np.int64) * (nt + 1) + t_lab).ravel(),
                        minlength=(np_ + 1) * (nt + 1)).reshape(np_ + 1, nt + 1)
    return t_lab, p_lab, joint


def _match(t_lab: np.ndarray, p_lab: np.ndarray, joint: np.ndarray, min_overlap: float,
           min_size: int) -> ObjectMatch:
    """The rule ``(min_overlap, min_size)`` applied to :func:`_joint`'s histogram."""
    _check_rule(min_overlap)
    p_area, t_area = joint.sum(1), joint.sum(0)
    t_ids = np.flatnonzero(t_area >= max(min_size, 1))
    p_ids = np.flatnonzero(p_area >= max(min_size, 1))
    t_ids, p_ids = t_ids[t_ids > 0], p_ids[p_ids > 0]
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


def match_class(pred: np.ndarray, truth: np.ndarray, cls: int, *, min_overlap: float = 0.5,
                connectivity: int = 8, min_size: int = 1,
                ignore_index: int = IGNORE_INDEX) -> ObjectMatch:
    """Match the class-``cls`` segments of ``pred`` with the objects of ``truth`` (H, W).

    See the module docstring for the definitions.
    """
    _check_rule(min_overlap)
    return _match(*_joint(pred, truth, cls, connectivity, ignore_index), min_overlap,
                  min_size)


def object_errors_by_rule(pred: np.ndarray, truth: np.ndarray, classes: Sequence[int],
                          rules: Sequence[tuple[int, float]], *, connectivity: int = 8,
                          ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Counts ``(len(rules), len(classes), len(KINDS))`` of one scene under several rules.

    ``rules`` are ``(min_size, min_overlap)`` pairs; the components are found once.
    """
    out = np.zeros((len(rules), len(classes), len(KINDS)), np.int64)
    for i, c in enumerate(classes):
        joint = _joint(pred, truth, int(c), connectivity, ignore_index)
        for r, (size, overlap) in enumerate(rules):
            counts = _match(*joint, overlap, size).counts()
            out[r, i] = [counts[k] for k in KINDS]
    return out


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


# --------------------------------------------------------------------------- a chapter's tally

KIND_NAMES: dict[str, str] = {
    "objects": "True objects", "segments": "Predicted segments",
    "spurious": "Spurious segments", "missed": "Missed objects",
    "split": "Split objects", "merged": "Merged segments",
}
"""Reader-facing names of :data:`KINDS`."""
ERRORS: tuple[str, ...] = ("spurious", "missed", "split", "merged")
"""The four error kinds."""
RULES: tuple[tuple[int, float], ...] = ((1, 0.0), (1, 0.5), (10, 0.0), (10, 0.5), (50, 0.0),
                                        (50, 0.5))
"""Matching rules ``(min_size, min_overlap)`` of the sensitivity table."""


def count_scenes(maps: Mapping[str, Mapping[str, np.ndarray]], classes: Sequence[int], *,
                 min_overlap: float = 0.5, connectivity: int = 8, min_size: int = 1,
                 rules: Sequence[tuple[int, float]] = ()
                 ) -> tuple[list[str], np.ndarray]:
    """Counts of every scene of ``maps`` (``{scene: {"pred", "truth"}}``).

    Returns:
        The scene names and an int64 array ``(scenes, len(classes), len(KINDS))``; with
        ``rules`` (``(min_size, min_overlap)`` pairs), ``(scenes, 1 + len(rules), classes,
        KINDS)``, the first rule being ``(min_size, min_overlap)``.
    """
    names = list(maps)
    every = [(min_size, min_overlap), *rules]
    out = np.zeros((len(names), len(every), len(classes), len(KINDS)), np.int64)
    for i, name in enumerate(names):
        m = maps[name]
        # evaluation maps are uint8, where the ignore label 255 survives the cast
        out[i] = object_errors_by_rule(np.asarray(m["pred"]).astype(np.int64),
                                       np.asarray(m["truth"]).astype(np.int64), classes,
                                       every, connectivity=connectivity)
    return names, (out if rules else out[:, 0])


@dataclass
class ObjectTally:
    """Object counts of every evaluated run of a chapter, per scene, and under other rules.

    Pass :meth:`counter` as the ``extra`` of :meth:`aerialseg.chapter.Chapter.evaluate`: it
    sees the maps of every validation scene (the chapter keeps only the first afterwards)
    and returns the run's totals, which the results file records per run
    (``objects_spurious`` ...). :meth:`add` takes maps computed elsewhere (the per-pixel
    baseline's).

    Args:
        classes: class indices counted (the evaluated classes).
        class_names: their names.
        min_overlap, connectivity, min_size: the matching rule (:func:`match_class`).
        rules: further ``(min_size, min_overlap)`` rules whose totals are kept for
            :meth:`sensitivity` (same connectivity).
    """

    classes: Sequence[int]
    class_names: Sequence[str]
    min_overlap: float = 0.5
    connectivity: int = 8
    min_size: int = 10
    rules: Sequence[tuple[int, float]] = RULES
    scenes: list[str] = field(init=False, default_factory=list)
    per_scene: dict[tuple[str, int], np.ndarray] = field(init=False, default_factory=dict)
    by_rule: dict[tuple[str, int], np.ndarray] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.classes = tuple(int(c) for c in self.classes)
        self.class_names = tuple(str(c) for c in self.class_names)
        if len(self.classes) != len(self.class_names):
            raise ValueError(f"{len(self.classes)} classes but {len(self.class_names)} names")
        _structure(self.connectivity)  # checks the value

    def add(self, method: str, seed: int, maps: Mapping[str, Mapping[str, np.ndarray]]
            ) -> dict[str, float]:
        """Count one run's maps (every validation scene); returns its totals by kind."""
        names, counts = count_scenes(maps, self.classes, min_overlap=self.min_overlap,
                                     connectivity=self.connectivity, min_size=self.min_size,
                                     rules=tuple(self.rules))
        if not self.scenes:
            self.scenes = names
        elif names != self.scenes:
            raise ValueError(f"run {method!r} seed {seed} has scenes {names}, the others "
                             f"{self.scenes}: object counts need the same validation scenes")
        self.by_rule[(str(method), int(seed))] = counts[:, 1:].sum((0, 2))
        counts = counts[:, 0]
        self.per_scene[(str(method), int(seed))] = counts
        total = counts.sum((0, 1))
        return {f"objects_{k}": float(total[i]) for i, k in enumerate(KINDS)}

    def counter(self, method: str, seed: int) -> Callable[[Any], dict[str, float]]:
        """The ``extra`` function of ``Chapter.evaluate`` that counts the run's maps."""
        return lambda evaluation: self.add(method, seed, evaluation.maps)

    def dataarray(self) -> xr.DataArray:
        """``objects[method, seed, scene, class, kind]`` (NaN for a missing run)."""
        methods = list(dict.fromkeys(m for m, _ in self.per_scene))
        seeds = sorted({s for _, s in self.per_scene})
        arr = np.full((len(methods), len(seeds), len(self.scenes), len(self.classes),
                       len(KINDS)), np.nan)
        for (m, s), c in self.per_scene.items():
            arr[methods.index(m), seeds.index(s)] = c
        return xr.DataArray(arr, dims=("method", "seed", "scene", "class", "kind"),
                            coords={"method": methods, "seed": seeds, "scene": self.scenes,
                                    "class": list(self.class_names), "kind": list(KINDS)},
                            name="objects")

    def sensitivity(self, kinds: Sequence[str] = ("spurious", "missed")) -> pd.DataFrame:
        """Totals (classes and scenes; mean over seeds) under each rule of :attr:`rules`.

        Rows: ``(min_size, min_overlap)``; columns ``"<kind>|<method>"``.
        """
        methods = list(dict.fromkeys(m for m, _ in self.by_rule))
        rows = {}
        for r, rule in enumerate(self.rules):
            rows[rule] = {f"{k}|{m}": float(np.mean([v[r, KINDS.index(k)]
                                                     for (mm, _), v in self.by_rule.items()
                                                     if mm == m]))
                          for k in kinds for m in methods}
        df = pd.DataFrame.from_dict(rows, orient="index")
        df.index = pd.MultiIndex.from_tuples(df.index, names=["min_size", "min_overlap"])
        return df


# --------------------------------------------------------------------------- summaries

def totals(da: xr.DataArray) -> xr.DataArray:
    """``objects`` summed over scenes and classes: ``[method, seed, kind]`` (NaN: no run)."""
    dims = [d for d in ("scene", "class") if d in da.dims]
    return da.sum(dims, min_count=1)


def counts_frame(da: xr.DataArray, kinds: Sequence[str] = KINDS) -> pd.DataFrame:
    """Per method (rows), the mean over seeds of the total count of each kind (columns)."""
    t = totals(da)
    return pd.DataFrame({k: [float(np.nanmean(t.sel({"method": m, "kind": k}).values))
                             for m in t["method"].values] for k in kinds},
                        index=[str(m) for m in t["method"].values])
