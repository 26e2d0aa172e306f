"""The evaluation protocol: one confusion matrix accumulated over every evaluated pixel.

Pooling: every score here comes from counts summed over all evaluated pixels of all scenes
(one confusion matrix; one set of boundary counts), never from a mean of per-scene scores.
Primary protocol: eroded-boundary ground truth (:func:`eroded_eval_mask`, disk of radius 3);
secondary: full ground truth. See ``DESIGN.md`` ("Evaluation protocol") and ``methods.md`` §0.

Non-evaluated classes (ISPRS clutter): the papers evaluate the five ISPRS classes and leave
clutter pixels out. :func:`scores` therefore drops the confusion rows of every class not in
``evaluated`` before it computes per-class precision, recall, F1, IoU, OA and the
support-weighted means: a clutter pixel predicted as building is *not* a false positive of
building, and clutter pixels are not in OA's denominator. A pixel of an evaluated class
predicted as clutter still counts as wrong (a false negative of its class). Non-evaluated
classes get nan scores; only ``oa_all`` (trace over every counted pixel) keeps them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from scipy import ndimage

from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.data.masks import eroded_eval_mask

ArrayLike = np.ndarray | torch.Tensor


# --------------------------------------------------------------------------- confusion matrix

class ConfusionMatrix:
    """Confusion-matrix accumulator: ``matrix[t, p]`` counts pixels of truth t predicted as p.

    Args:
        num_classes: C, the number of labels the model predicts.
        ignore_index: truth value that is never counted.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((self.num_classes, self.num_classes), np.int64)

    def update(self, pred: ArrayLike, truth: ArrayLike, mask: ArrayLike | None = None) -> None:
        """Count one batch or scene.

        Args:
            pred: predicted labels (any shape; numpy or torch, CPU or GPU).
            truth: reference labels, same shape; ``ignore_index`` pixels are skipped.
            mask: optional bool array, same shape; only True pixels are counted (e.g. the
                eroded-boundary mask).
        """
        c = self.num_classes
        if isinstance(pred, torch.Tensor) or isinstance(truth, torch.Tensor):
            # Count on the tensors' device so GPU predictions need no large host copy.
            device = pred.device if isinstance(pred, torch.Tensor) else truth.device
            p = torch.as_tensor(pred, device=device)
            t = torch.as_tensor(truth, device=device)
            _check_same_shape(p.shape, t.shape, mask)
            valid = t != self.ignore_index
            if mask is not None:
                valid &= torch.as_tensor(mask, device=device).bool()
            t, p = t[valid].long(), p[valid].long()
            if t.numel():
                _check_range(int(t.min()), int(t.max()), c, "truth")
                _check_range(int(p.min()), int(p.max()), c, "pred")
            counts = torch.bincount(t * c + p, minlength=c * c).cpu().numpy()
        else:
            p, t = np.asarray(pred), np.asarray(truth)
            _check_same_shape(p.shape, t.shape, mask)
            valid = t != self.ignore_index
            if mask is not None:
                valid &= np.asarray(mask, bool)
            t, p = t[valid].astype(np.int64), p[valid].astype(np.int64)
            if t.size:
                _check_range(int(t.min()), int(t.max()), c, "truth")
                _check_range(int(p.min()), int(p.max()), c, "pred")
            counts = np.bincount(t * c + p, minlength=c * c)
        self.matrix += counts.reshape(c, c).astype(np.int64)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add ``other``'s counts into this matrix (in place) and return self."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge a {other.num_classes}-class confusion matrix into a "
                             f"{self.num_classes}-class one")
        self.matrix += other.matrix
        return self

    def __add__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        out = ConfusionMatrix(self.num_classes, self.ignore_index)
        out.matrix = self.matrix.copy()
        return out.merge(other)

    def reset(self) -> None:
        """Zero all counts."""
        self.matrix[:] = 0

    @property
    def total(self) -> int:
        """Number of counted pixels."""
        return int(self.matrix.sum())

    def scores(self, evaluated: Sequence[int]) -> dict[str, np.ndarray | float]:
        """Shorthand for :func:`scores` on this matrix."""
        return scores(self.matrix, evaluated)

    def __repr__(self) -> str:
        return f"ConfusionMatrix(num_classes={self.num_classes}, total={self.total})"


def _check_same_shape(pshape: tuple, tshape: tuple, mask: ArrayLike | None) -> None:
    if tuple(pshape) != tuple(tshape):
        raise ValueError(f"pred shape {tuple(pshape)} != truth shape {tuple(tshape)}; pass label "
                         "maps (argmax over the class axis), not probabilities")
    if mask is not None and tuple(np.shape(mask)) != tuple(tshape):
        raise ValueError(f"mask shape {tuple(np.shape(mask))} != truth shape {tuple(tshape)}")


def _check_range(lo: int, hi: int, num_classes: int, what: str) -> None:
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"{what} labels span [{lo}, {hi}] but num_classes={num_classes}; map "
                         "unwanted labels to the ignore index (truth) or fix num_classes")


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Element-wise num/den with nan where den == 0."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _nanmean(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


def _nanmean_last(x: np.ndarray) -> np.ndarray:
    """Mean over the last axis skipping nan; nan where every value is nan (no warning)."""
    finite = ~np.isnan(x)
    n = finite.sum(-1)
    return _div(np.where(finite, x, 0.0).sum(-1), n)


def _check_evaluated(n: int, evaluated: Sequence[int]) -> np.ndarray:
    ev = np.asarray(list(evaluated), np.int64)
    if ev.size == 0 or ev.min() < 0 or ev.max() >= n or np.unique(ev).size != ev.size:
        raise ValueError(f"evaluated must be distinct class indices in [0, {n}), got {list(ev)}")
    return ev


def batch_scores(cm: np.ndarray, evaluated: Sequence[int]) -> dict[str, np.ndarray]:
    """:func:`scores` of a stack of confusion matrices ``(..., C, C)``, vectorised.

    The same definitions as :func:`scores` (it calls this); per-class values have shape
    ``(..., C)`` and summaries shape ``(...)``. Used by :mod:`aerialseg.stats` to recompute
    scores on thousands of bootstrap resamples at once.
    """
    m = np.asarray(cm, np.float64)
    if m.ndim < 2 or m.shape[-1] != m.shape[-2]:
        raise ValueError(f"confusion matrix must be square (..., C, C), got shape {m.shape}")
    n = m.shape[-1]
    ev = _check_evaluated(n, evaluated)
    keep = np.zeros(n, bool)
    keep[ev] = True
    support_all = m.sum(-1)
    total = support_all.sum(-1)
    trace_all = np.diagonal(m, axis1=-2, axis2=-1).sum(-1)
    # Pixels whose truth is not evaluated (ISPRS clutter) leave every score but ``oa_all``:
    # they are neither false positives of the class they were predicted as nor in OA.
    me = m * keep[:, None]
    tp = np.diagonal(me, axis1=-2, axis2=-1)
    support = me.sum(-1)
    predicted = me.sum(-2)
    precision = _div(tp, predicted)
    recall = _div(tp, support)
    f1 = _div(2 * tp, support + predicted)
    iou = _div(tp, support + predicted - tp)
    for v in (precision, recall, f1, iou):
        v[..., ~keep] = np.nan  # a class that is not evaluated has no score
    w = support[..., ev]
    wsum = w.sum(-1)
    weights = _div(w, wsum[..., None])

    def weighted(v: np.ndarray) -> np.ndarray:
        # Classes with zero support have weight 0; their nan must not poison the sum.
        out = np.sum(np.nan_to_num(weights, nan=0.0) * np.nan_to_num(v[..., ev], nan=0.0), -1)
        return np.where(wsum > 0, out, np.nan)

    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "iou": iou,
        "support": support_all,
        "oa": _div(tp[..., ev].sum(-1), wsum),
        "oa_all": _div(trace_all, total),
        "mean_f1": _nanmean_last(f1[..., ev]),
        "miou": _nanmean_last(iou[..., ev]),
        "weighted_f1": weighted(f1),
        "weighted_iou": weighted(iou),
        "weighted_precision": weighted(precision),
        "weighted_recall": weighted(recall),
    }


def scores(cm: np.ndarray | ConfusionMatrix,
           evaluated: Sequence[int]) -> dict[str, np.ndarray | float]:
    """Scores from one pooled confusion matrix (rows truth, columns prediction).

    Pass the matrix accumulated over every evaluated pixel of every scene: the protocol pools
    counts, so these are not means of per-scene scores.

    Non-evaluated truth (ISPRS clutter) is dropped first: the rows of classes not in
    ``evaluated`` are removed before anything but ``oa_all`` is computed, so a clutter pixel
    predicted as building is not a false positive of building (the papers evaluate the five
    classes and exclude clutter pixels). A prediction *into* a non-evaluated class is still
    wrong: it is a false negative of the pixel's true class.

    Per-class values (arrays of length C, nan for classes not in ``evaluated``):
    ``precision`` = TP/(TP+FP), ``recall`` = TP/(TP+FN), ``f1`` = 2TP/(2TP+FP+FN) (equal to
    2PR/(P+R); 0 when the class is in truth or prediction but never right), ``iou`` =
    TP/(TP+FP+FN); FP counts pixels of any *evaluated* truth class predicted as c; nan where
    the denominator is 0. ``support`` = truth pixel counts (every row, clutter included).

    Summaries over the ``evaluated`` classes:
    ``oa`` = correct / pixels whose truth is evaluated (a prediction into a non-evaluated
    class counts as wrong); ``oa_all`` = trace / all counted pixels (GeoSeg-style, clutter
    included); ``mean_f1``, ``miou`` = unweighted means (classes with nan skipped);
    ``weighted_f1``, ``weighted_iou``, ``weighted_precision``, ``weighted_recall`` =
    means weighted by truth support (as the EFM paper reports; an undefined precision
    counts as 0; ``weighted_recall`` equals ``oa``).
    """
    m = np.asarray(cm.matrix if isinstance(cm, ConfusionMatrix) else cm, np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"confusion matrix must be square (C, C), got shape {m.shape}")
    out = batch_scores(m, evaluated)
    result: dict[str, np.ndarray | float] = {}
    for k, v in out.items():
        if k == "support":
            result[k] = v.astype(np.int64)
        elif v.ndim:
            result[k] = v
        else:
            result[k] = float(v)
    return result


# --------------------------------------------------------------------------- boundary F1

def _boundary_labels(labels: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """Inner class boundaries as a label map: the class at boundary pixels, -1 elsewhere.

    A pixel of ``domain`` is a boundary pixel of its own class if one of its 4-neighbours is
    in ``domain`` and has another label. Neighbours outside the domain (ignore pixels) and the
    image border never make a boundary.
    """
    b = np.zeros(labels.shape, bool)
    for axis in (0, 1):
        n = labels.shape[axis]
        if n < 2:
            continue
        lo = [slice(None)] * 2
        hi = [slice(None)] * 2
        lo[axis], hi[axis] = slice(0, n - 1), slice(1, n)
        lo, hi = tuple(lo), tuple(hi)
        diff = (labels[lo] != labels[hi]) & domain[lo] & domain[hi]
        b[lo] |= diff
        b[hi] |= diff
    return np.where(b, labels, -1).astype(np.int16)


_MAX_SHIFT_OFFSETS = 150
"""Tolerance disks with more offsets than this use per-class distance transforms instead."""


def _matched(src: np.ndarray, dst: np.ndarray, tolerance: float, num_classes: int) -> np.ndarray:
    """Bool map: src boundary pixels with a dst boundary pixel of the same class within reach.

    Reach is the Euclidean distance ``<= tolerance``. For small tolerances all classes are
    matched at once by shifting over the disk's offsets; for large ones, a Euclidean distance
    transform per class is cheaper. Both give the same answer.
    """
    r = int(np.floor(tolerance))
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    offsets = np.stack([y.ravel(), x.ravel()], 1)[(y * y + x * x).ravel() <= tolerance ** 2]
    out = np.zeros(src.shape, bool)
    h, w = src.shape
    if len(offsets) <= _MAX_SHIFT_OFFSETS:
        for dy, dx in offsets:
            ys, yd = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
            xs, xd = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
            s = src[ys, xs]
            out[ys, xs] |= (s == dst[yd, xd]) & (s >= 0)
        return out
    for c in range(num_classes):
        s = src == c
        d = dst == c
        if not s.any() or not d.any():
            continue
        out |= s & (ndimage.distance_transform_edt(~d) <= tolerance)
    return out


class BoundaryF1:
    """Boundary F1 (BF score, Csurka et al. 2013) accumulator with a pixel tolerance.

    Per class, boundary pixels are the inner boundaries of the class masks in prediction and
    truth (4-neighbourhood; image border and ignore pixels are not boundaries). A predicted
    boundary pixel is a hit if a true boundary pixel of the same class lies within Euclidean
    distance ``tolerance``; recall is the same with roles swapped. Counts are pooled over all
    scenes (Csurka et al. average per image instead); pass the full ground truth, never the
    eroded mask, which removes exactly the boundaries.

    Args:
        num_classes: C.
        tolerance: match distance in pixels (default 2).
        ignore_index: truth value that is neither counted nor a boundary.
    """

    def __init__(self, num_classes: int, tolerance: float = 2.0,
                 ignore_index: int = IGNORE_INDEX) -> None:
        if tolerance < 0:
            raise ValueError(f"tolerance must be >= 0 pixels, got {tolerance}")
        self.num_classes = int(num_classes)
        self.tolerance = float(tolerance)
        self.ignore_index = ignore_index
        # Rows: pred boundary pixels, matched pred, truth boundary pixels, matched truth.
        self.counts = np.zeros((4, self.num_classes), np.int64)

    def update(self, pred: np.ndarray, truth: np.ndarray,
               ignore_mask: np.ndarray | None = None) -> None:
        """Count one scene.

        Args:
            pred: predicted labels (H, W).
            truth: reference labels (H, W); ``ignore_index`` pixels are outside the domain.
            ignore_mask: optional bool (H, W); True pixels are not counted (they can still be
                matched against).
        """
        pred, truth = np.asarray(pred), np.asarray(truth)
        if pred.ndim != 2 or pred.shape != truth.shape:
            raise ValueError(f"BoundaryF1 needs 2D pred and truth of one shape, got {pred.shape} "
                             f"and {truth.shape}; call update once per scene")
        domain = truth != self.ignore_index
        c = self.num_classes
        for name, a in (("truth", truth[domain]), ("pred", pred[domain])):
            if a.size:
                _check_range(int(a.min()), int(a.max()), c, name)
        counted = domain if ignore_mask is None else domain & ~np.asarray(ignore_mask, bool)
        pb = _boundary_labels(pred, domain)
        tb = _boundary_labels(truth, domain)
        hit_p = _matched(pb, tb, self.tolerance, c)
        hit_t = _matched(tb, pb, self.tolerance, c)
        for row, (lab, hit) in enumerate(((pb, None), (pb, hit_p), (tb, None), (tb, hit_t))):
            sel = counted & (lab >= 0)
            if hit is not None:
                sel &= hit
            self.counts[row] += np.bincount(lab[sel], minlength=c)[:c]

    def merge(self, other: BoundaryF1) -> BoundaryF1:
        """Add ``other``'s counts into this accumulator (in place) and return self."""
        if other.num_classes != self.num_classes or other.tolerance != self.tolerance:
            raise ValueError("cannot merge BoundaryF1 accumulators with different classes or "
                             "tolerance")
        self.counts += other.counts
        return self

    def result(self, evaluated: Sequence[int] | None = None) -> dict[str, np.ndarray | float]:
        """Per-class ``precision``, ``recall``, ``f1`` (length C) and ``mean`` F1 over evaluated.

        F1 is nan for a class with no boundary in prediction or truth, and 0 when only one side
        has boundaries. ``mean`` skips nan classes. ``evaluated`` defaults to all classes.
        """
        n_p, hit_p, n_t, hit_t = self.counts.astype(np.float64)
        precision = _div(hit_p, n_p)
        recall = _div(hit_t, n_t)
        f1 = _div(2 * np.nan_to_num(precision) * np.nan_to_num(recall),
                  np.nan_to_num(precision) + np.nan_to_num(recall))
        f1[(n_p + n_t > 0) & np.isnan(f1)] = 0.0
        ev = list(range(self.num_classes)) if evaluated is None else list(evaluated)
        return {"precision": precision, "recall": recall, "f1": f1,
                "mean": _nanmean(f1[ev])}


# --------------------------------------------------------------------------- convenience

class Evaluation(NamedTuple):
    """Accumulators filled by :func:`evaluate_predictions`."""

    eroded: ConfusionMatrix
    """Primary protocol: eroded-boundary ground truth."""
    full: ConfusionMatrix
    """Secondary protocol: every non-ignored pixel."""
    boundary: BoundaryF1
    """Boundary F1 on the full ground truth."""


def evaluate_predictions(items: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
                         num_classes: int, *, radius: int = 3, tolerance: float = 2.0,
                         ignore_index: int = IGNORE_INDEX) -> Evaluation:
    """Accumulate the protocol's counts over scenes.

    Args:
        items: per scene ``(pred, truth, eval_mask)``, 2D label maps; ``eval_mask`` is the
            cached eroded mask, or None to compute :func:`eroded_eval_mask` with ``radius``.
        num_classes: C.
        radius: erosion radius when ``eval_mask`` is None.
        tolerance: boundary-F1 tolerance in pixels.
        ignore_index: ignored truth value.

    Returns:
        ``Evaluation(eroded, full, boundary)``; call ``.scores(evaluated)`` /
        ``.result(evaluated)`` on them.
    """
    out = Evaluation(ConfusionMatrix(num_classes, ignore_index),
                     ConfusionMatrix(num_classes, ignore_index),
                     BoundaryF1(num_classes, tolerance, ignore_index))
    for pred, truth, eval_mask in items:
        pred, truth = np.asarray(pred), np.asarray(truth)
        if eval_mask is None:
            eval_mask = eroded_eval_mask(truth, radius, ignore_index)
        out.eroded.update(pred, truth, eval_mask)
        out.full.update(pred, truth)
        out.boundary.update(pred, truth)
    return out
