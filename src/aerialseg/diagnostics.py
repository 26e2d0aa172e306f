"""Dataset diagnostics shown in the data chapter and used by the synthetic data's tests.

:func:`per_pixel_baseline` is the sanity baseline of every results table: a multinomial
logistic regression on the bands of single pixels, trained on the training split and scored
on the validation split by the study's one protocol (:class:`aerialseg.evaluation.Accumulator`:
eroded and full ground truth, evaluated classes only, boundary F1, calibration).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from scipy import ndimage

from aerialseg.data.classes import IGNORE_INDEX, ClassTable
from aerialseg.data.scene import Scene
from aerialseg.evaluation import Accumulator, Evaluation
from aerialseg.metrics import eroded_eval_mask

if TYPE_CHECKING:
    import xarray as xr


class SplitLike(Protocol):
    """Anything with training and validation scenes (:class:`aerialseg.data.registry.SplitData`)."""

    train: list[Scene]
    val: list[Scene]


def pixel_sample(scenes: Sequence[Scene], bands: Sequence[str], n: int, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A random sample of ``n`` labelled pixels: features (n, len(bands)) and labels (n,)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    per_scene = max(1, n // len(scenes))
    for s in scenes:
        valid = np.flatnonzero(s.labels.ravel() != IGNORE_INDEX)
        idx = rng.choice(valid, size=min(per_scene, valid.size), replace=False)
        xs.append(s.select_bands(tuple(bands)).reshape(len(bands), -1)[:, idx].T)
        ys.append(s.labels.ravel()[idx])
    return np.concatenate(xs).astype(np.float64), np.concatenate(ys).astype(np.int64)


# ------------------------------------------------------------------ per-pixel baseline
CENTRED_BANDS: tuple[str, ...] = ("dsm",)
"""Bands the per-pixel baseline centres per scene by default (absolute heights)."""


@dataclass
class PixelBaseline:
    """The per-pixel baseline of one dataset and band set, scored by the study's protocol.

    Attributes:
        bands: the bands the classifier saw.
        centred: those of them centred per scene (their median subtracted).
        evaluation: the same :class:`aerialseg.evaluation.Evaluation` a model gets
            (confusion ``(C, C)`` int64 counts, truth rows x predicted columns, for the
            ``"eroded"`` and ``"full"`` protocols; scores; boundary F1; ECE).
        train_pixels: number of training pixels the classifier was fitted on.
        train_classes: class indices seen in training (the others are never predicted).
        converged: whether the solver converged within its iteration limit.
        fit_seconds, predict_seconds: wall time of fitting and of predicting every
            validation pixel.
        model: the fitted scikit-learn pipeline (standardisation + logistic regression).
    """

    bands: tuple[str, ...]
    centred: tuple[str, ...]
    evaluation: Evaluation
    train_pixels: int
    train_classes: tuple[int, ...]
    converged: bool
    fit_seconds: float
    predict_seconds: float
    model: Any = field(repr=False, default=None)

    @property
    def classes(self) -> ClassTable:
        """The dataset's class table."""
        return self.evaluation.classes

    @property
    def confusion(self) -> dict[str, np.ndarray]:
        """Confusion matrices per protocol (``"eroded"``, ``"full"``): truth x prediction."""
        return self.evaluation.confusion

    @property
    def scores(self) -> dict[str, dict[str, Any]]:
        """:func:`aerialseg.metrics.scores` per protocol."""
        return self.evaluation.scores

    @property
    def oa(self) -> float:
        """Overall accuracy, eroded protocol, evaluated classes."""
        return float(self.scores["eroded"]["oa"])

    @property
    def mean_f1(self) -> float:
        """Mean F1 over the evaluated classes, eroded protocol."""
        return float(self.scores["eroded"]["mean_f1"])

    @property
    def f1(self) -> dict[str, float]:
        """F1 per evaluated class (by name), eroded protocol."""
        f1 = self.scores["eroded"]["f1"]
        return {self.classes.names[i]: float(f1[i]) for i in self.classes.evaluated}

    def summary(self, protocol: str = "eroded") -> dict[str, Any]:
        """One flat row for a table: bands, OA, mean F1, mIoU, F1 per evaluated class."""
        s = self.scores[protocol]
        row: dict[str, Any] = {"bands": "+".join(self.bands), "oa": float(s["oa"]),
                               "mean_f1": float(s["mean_f1"]), "miou": float(s["miou"])}
        for i in self.classes.evaluated:
            row[f"f1_{self.classes.names[i]}"] = float(s["f1"][i])
        return row

    def predict_proba(self, scene: Scene) -> np.ndarray:
        """Class probabilities of every pixel of ``scene``: float32 (C, H, W)."""
        return _predict_proba(self.model, scene, self.bands, self.centred,
                              self.classes.num_classes)


def _features(scene: Scene, bands: tuple[str, ...], centred: tuple[str, ...]) -> np.ndarray:
    """(len(bands), H*W) float32; the ``centred`` bands minus their median over the scene."""
    x = scene.select_bands(bands).reshape(len(bands), -1)
    if centred:
        x = x.astype(np.float32, copy=True)
        for i, b in enumerate(bands):
            if b in centred:
                x[i] -= np.median(x[i])
    return x


def _predict_proba(model: Any, scene: Scene, bands: tuple[str, ...], centred: tuple[str, ...],
                   num_classes: int, chunk: int = 1 << 18) -> np.ndarray:
    """Class probabilities (C, H, W) float32 of the fitted pipeline.

    The same softmax of the linear scores as ``predict_proba``, in float32 chunks with the
    standardisation folded into the weights: several times faster.
    """
    scaler, clf = model[0], model[-1]
    h, w = scene.shape
    x = _features(scene, bands, centred)
    inv = (1 / scaler.scale_).astype(np.float32)
    wt = (clf.coef_ * inv[None]).astype(np.float32)  # scaling folded into the weights
    b = (clf.intercept_ - clf.coef_ @ (scaler.mean_ * inv)).astype(np.float32)
    if wt.shape[0] == 1:  # two classes: sklearn's one logit z is softmax([0, z])
        wt = np.concatenate([np.zeros_like(wt), wt])
        b = np.concatenate([np.zeros_like(b), b])
    out = np.zeros((num_classes, h * w), np.float32)
    cls = clf.classes_
    for i in range(0, h * w, chunk):
        z = wt @ x[:, i:i + chunk].astype(np.float32, copy=False)
        z += b[:, None]
        z -= z.max(0, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(0, keepdims=True)
        out[cls, i:i + chunk] = z
    return out.reshape(num_classes, h, w)


def _training_sample(scenes: Sequence[Scene], bands: tuple[str, ...], centred: tuple[str, ...],
                     max_pixels: int, seed: int, ignore_unevaluated: bool
                     ) -> tuple[np.ndarray, np.ndarray]:
    """A uniform sample (without replacement) of the labelled training pixels of all scenes."""
    labels = [s.training_labels(ignore_unevaluated).ravel() for s in scenes]
    valid = [np.flatnonzero(lab != IGNORE_INDEX) for lab in labels]
    sizes = np.array([v.size for v in valid])
    total = int(sizes.sum())
    if total == 0:
        raise ValueError("the training scenes hold no labelled pixel of a trained class")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(total, size=min(int(max_pixels), total), replace=False))
    starts = np.concatenate([[0], np.cumsum(sizes)])
    xs, ys = [], []
    for k, s in enumerate(scenes):
        local = pick[(pick >= starts[k]) & (pick < starts[k + 1])] - starts[k]
        if local.size == 0:
            continue
        idx = valid[k][local]
        xs.append(_features(s, bands, centred)[:, idx].T)
        ys.append(labels[k][idx])
    return np.concatenate(xs).astype(np.float64), np.concatenate(ys).astype(np.int64)


def fit_pixel_baseline(train: Sequence[Scene], val: Sequence[Scene],
                       bands: Sequence[str] | None = None, *, max_pixels: int = 50_000,
                       seed: int = 0, ignore_unevaluated: bool = True,
                       centre: Sequence[str] = CENTRED_BANDS, eroded_radius: int = 3,
                       keep_maps: int = 0, max_iter: int = 1000) -> PixelBaseline:
    """:func:`per_pixel_baseline` on explicit lists of training and validation scenes."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if not train or not val:
        raise ValueError(f"the per-pixel baseline needs training and validation scenes, got "
                         f"{len(train)} and {len(val)}")
    used = tuple(bands) if bands is not None else tuple(train[0].band_names)
    classes = train[0].classes
    centred = tuple(b for b in used if b in tuple(centre))
    t0 = time.perf_counter()
    x, y = _training_sample(train, used, centred, max_pixels, seed, ignore_unevaluated)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, tol=1e-4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x, y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    fit_seconds = time.perf_counter() - t0

    acc = Accumulator(classes)
    t0 = time.perf_counter()
    for i, scene in enumerate(val):
        if scene.eval_mask is None:
            scene = replace(scene, eval_mask=eroded_eval_mask(scene.labels, eroded_radius))
        probs = _predict_proba(model, scene, used, centred, classes.num_classes)
        acc.add(scene, probs, keep=i < keep_maps)
    predict_seconds = time.perf_counter() - t0
    return PixelBaseline(
        bands=used, centred=centred, evaluation=acc.result(inference_seconds=predict_seconds),
        train_pixels=int(y.size), train_classes=tuple(int(c) for c in np.unique(y)),
        converged=converged, fit_seconds=fit_seconds, predict_seconds=predict_seconds,
        model=model)


def per_pixel_baseline(data: SplitLike, bands: Sequence[str] | None = None, *,
                       max_pixels: int = 50_000, seed: int = 0,
                       ignore_unevaluated: bool = True,
                       centre: Sequence[str] = CENTRED_BANDS, eroded_radius: int = 3,
                       keep_maps: int = 0) -> PixelBaseline:
    """The per-pixel sanity baseline: logistic regression on single pixels' band values.

    A multinomial logistic regression on the standardised values of ``bands`` (default: all
    bands of the scenes; absolute heights centred per scene, see ``centre``) is fitted on a
    uniform random sample of at most ``max_pixels``
    labelled training pixels (non-evaluated classes left out when ``ignore_unevaluated``, as
    the models are trained), then predicts every pixel of every validation scene; its class
    probabilities go through :class:`aerialseg.evaluation.Accumulator`, so the result is
    scored exactly like a model (eroded-boundary protocol first, full ground truth second,
    scores over the evaluated classes, boundary F1, ECE).

    Deterministic for a given ``seed``; takes seconds (fitting is on the sample, prediction
    is one matrix product per pixel).

    Args:
        data: the training and validation scenes (a :class:`~aerialseg.data.registry.SplitData`).
        bands: band names to use; None: all bands of the scenes.
        max_pixels: size of the training sample.
        seed: seed of the training sample.
        ignore_unevaluated: leave non-evaluated classes (ISPRS clutter) out of training.
        centre: bands whose median over each scene is subtracted first (default: ``dsm``;
            absolute heights differ between tiles by the terrain, which says nothing about
            the class, and a linear model extrapolates such offsets badly); ``()`` uses
            every band as is.
        eroded_radius: eroded-protocol disk radius for scenes without an ``eval_mask``.
        keep_maps: keep the prediction maps of the first N validation scenes (for figures).

    Returns:
        :class:`PixelBaseline`; its ``evaluation`` is an :class:`aerialseg.evaluation.Evaluation`.
    """
    return fit_pixel_baseline(data.train, data.val, bands, max_pixels=max_pixels, seed=seed,
                              ignore_unevaluated=ignore_unevaluated, centre=centre,
                              eroded_radius=eroded_radius, keep_maps=keep_maps)


def linear_pixel_classifier(train: Sequence[Scene], test: Sequence[Scene],
                            bands: Sequence[str], *, n: int = 20000, seed: int = 0
                            ) -> dict[str, object]:
    """Per-pixel logistic regression on ``bands`` (:func:`fit_pixel_baseline`), on ``test``.

    Returns the eroded-protocol overall accuracy, confusion matrix and row-normalised
    confusion matrix; used to show how much of the class information is spectral and how
    much needs height.
    """
    r = fit_pixel_baseline(train, test, bands, max_pixels=n, seed=seed)
    cm = r.confusion["eroded"]
    return {"accuracy": r.oa, "confusion": cm,
            "confusion_rate": cm / np.maximum(cm.sum(1, keepdims=True), 1)}


# ------------------------------------------------------------------------ objects, summary
def object_extents(labels: np.ndarray, cls: int) -> np.ndarray:
    """(width, length) in pixels of every connected component of class ``cls``.

    Extents are measured along the component's principal axes, so rotated cars count right.
    """
    comp, n = ndimage.label(labels == cls)
    out = []
    for i in range(1, n + 1):
        yy, xx = np.nonzero(comp == i)
        if yy.size < 5:
            continue
        pts = np.stack([yy, xx], 1).astype(float)
        pts -= pts.mean(0)
        _, vecs = np.linalg.eigh(np.cov(pts.T))
        proj = pts @ vecs
        ext = proj.max(0) - proj.min(0) + 1
        out.append(sorted(ext))
    return np.asarray(out).reshape(-1, 2)


def count_objects(scenes: Sequence[Scene], cls: int, *, min_pixels: int = 30) -> int:
    """Number of objects of class ``cls`` over all ``scenes``.

    Objects are connected components (8-neighbourhood) of at least ``min_pixels`` pixels;
    cars parked bumper to bumper may merge into one.
    """
    n = 0
    for s in scenes:
        comp, k = ndimage.label(s.labels == cls, structure=np.ones((3, 3)))
        if k:
            n += int((np.bincount(comp.ravel())[1:] >= min_pixels).sum())
    return n


def dataset_summary(train: Sequence[Scene], val: Sequence[Scene], *,
                    height_bands: Sequence[str] = ("dsm", "ndsm"), n: int = 20000,
                    seed: int = 0) -> xr.Dataset:
    """Class shares per split and the spectral-vs-height linear separability, as a Dataset."""
    import xarray as xr

    from aerialseg.data.patches import label_shares

    classes = train[0].classes
    shares = np.stack([label_shares([s.labels for s in sc], classes.num_classes)
                       for sc in (train, val)])
    bands = train[0].band_names
    spectral = tuple(b for b in bands if b not in height_bands)
    variants = {"spectral": spectral}
    if any(b in bands for b in height_bands):
        variants["spectral+height"] = bands
    acc, rates = [], []
    for used in variants.values():
        r = linear_pixel_classifier(train, val, used, n=n, seed=seed)
        acc.append(r["accuracy"])
        rates.append(r["confusion_rate"])
    return xr.Dataset(
        {"class_share": (("split", "class"), shares),
         "linear_accuracy": (("bands",), np.asarray(acc)),
         "linear_confusion": (("bands", "truth", "pred"), np.stack(rates))},
        coords={"split": ["train", "val"], "class": list(classes.names),
                "bands": list(variants), "truth": list(classes.names),
                "pred": list(classes.names)})
