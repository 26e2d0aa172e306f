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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from scipy import ndimage

from aerialseg.data.classes import IGNORE_INDEX, ClassTable
from aerialseg.data.scene import Scene
from aerialseg.evaluation import Accumulator, Evaluation
from aerialseg.metrics import eroded_eval_mask

if TYPE_CHECKING:
    import pandas as pd
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


# ------------------------------------------------------------- the data chapter's tables
def eroded_share(scenes: Sequence[Scene]) -> float:
    """Share of the labelled pixels of evaluated classes that the eroded protocol scores.

    The ratio of the two protocols' pixel counts, exactly as the confusion matrices count
    them: pixels of an evaluated class inside ``eval_mask`` over all pixels of an evaluated
    class (the full ground truth). The one number the data chapter quotes.
    """
    kept = total = 0
    for s in scenes:
        ev = np.isin(s.labels, list(s.classes.evaluated))
        mask = s.eval_mask if s.eval_mask is not None else eroded_eval_mask(s.labels, 3)
        kept += int((ev & mask).sum())
        total += int(ev.sum())
    return kept / total if total else float("nan")


def balanced_accuracy(cm: np.ndarray, evaluated: Sequence[int]) -> float:
    """Mean recall over the evaluated classes present in the truth (rows of ``cm``).

    Unlike OA it does not depend on the class mix, so datasets with different class shares
    can be compared; chance level is ``1 / len(classes present)``.
    """
    cm = np.asarray(cm, np.float64)
    rows = [i for i in evaluated if cm[i].sum() > 0]
    if not rows:
        return float("nan")
    return float(np.mean([cm[i, i] / cm[i].sum() for i in rows]))


def split_tiles(data: SplitLike) -> dict[str, list[str]]:
    """Tiles of each split, from the scene names (``tile2_part003`` → ``tile2``).

    Names without a ``_part`` suffix are tiles themselves (the ISPRS areas, the synthetic
    scenes).
    """
    out: dict[str, list[str]] = {}
    for split, scenes in (("train", data.train), ("val", data.val)):
        names = [s.name.split("_part", 1)[0] for s in scenes]
        out[split] = sorted(dict.fromkeys(names), key=_natural)
    return out


def _natural(name: str) -> tuple[Any, ...]:
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


@dataclass
class _Folds:
    """Training and validation scenes of one fold (a :class:`SplitLike`)."""

    train: list[Scene]
    val: list[Scene]


VAIHINGEN_CROP = ("isprs-samples", "vaihingen-crop")
"""Where the real Vaihingen sample lies under the shared data folder (mmsegmentation
layout: ``img_dir/*.png`` IR-R-G clips, ``ann_dir/*.png`` eroded labels, 0 = boundary)."""


def vaihingen_crop_folds(root: str | Path | None = None) -> list[_Folds] | None:
    """The real Vaihingen sample as two folds: left half → right half, and back.

    The sample is one 512-px IR-R-G clip of area 1 in the mmsegmentation layout (index
    labels of the eroded ground truth, 0 = boundary = ignore), so no tile is left to
    validate on: each half is trained on once and evaluated once, and a caller pools the
    two folds' confusion matrices. Both halves come from one area, which favours a
    per-pixel classifier over one evaluated on another area.

    Args:
        root: the sample's folder (default ``<shared data>/isprs-samples/vaihingen-crop``).

    Returns:
        Two folds, or None when the sample is absent.
    """
    from aerialseg.data.classes import ISPRS
    from aerialseg.data.io import read_image
    from aerialseg.paths import shared_data

    folder = Path(root) if root is not None else shared_data().joinpath(*VAIHINGEN_CROP)
    images = sorted((folder / "img_dir").glob("*.png")) if folder.is_dir() else []
    if not images or not (folder / "ann_dir" / images[0].name).is_file():
        return None
    img = np.asarray(read_image(images[0], "RGB"))
    ann = np.asarray(read_image(folder / "ann_dir" / images[0].name)).astype(np.int64)
    img = np.moveaxis(img[..., :3], -1, 0)
    bands = np.ascontiguousarray(img, np.float32) / np.float32(255)
    labels = np.where(ann == 0, IGNORE_INDEX, ann - 1)
    mask = ann != 0
    half = labels.shape[1] // 2
    parts = [(slice(None), slice(0, half)), (slice(None), slice(half, None))]

    def scene(k: int, split: str) -> Scene:
        sl = parts[k]
        return Scene(f"{images[0].stem}-{'ab'[k]}", np.ascontiguousarray(bands[(slice(None),
                                                                               *sl)]),
                     ("ir", "r", "g"), np.ascontiguousarray(labels[sl]), ISPRS, split,
                     np.ascontiguousarray(mask[sl]), full_truth=False)

    return [_Folds([scene(0, "train")], [scene(1, "val")]),
            _Folds([scene(1, "train")], [scene(0, "val")])]


def band_names(bands: Sequence[str]) -> str:
    """Bands as readers write them: ``("ir", "r", "g", "dsm", "ndsm")`` → "IR-R-G-DSM-nDSM"."""
    return "-".join("nDSM" if b == "ndsm" else b.upper() for b in bands)


BASELINE_COLUMNS = ("data", "bands", "evaluated on", "oa", "mean_f1", "balanced_accuracy")
"""Columns of :func:`pixel_baseline_context`."""


def _context_row(data: str, bands: Sequence[str], where: str, cm: np.ndarray,
                 classes: ClassTable) -> dict[str, Any]:
    from aerialseg.metrics import scores

    s = scores(cm, classes.evaluated)
    return {"data": data, "bands": band_names(bands), "evaluated on": where,
            "oa": float(s["oa"]), "mean_f1": float(s["mean_f1"]),
            "balanced_accuracy": balanced_accuracy(cm, classes.evaluated)}


def pixel_baseline_context(data: SplitLike | None, *, dataset: str, profile: str,
                           vaihingen_root: str | Path | None = None,
                           load: Any = None, max_pixels: int = 50_000) -> pd.DataFrame:
    """The per-pixel baseline on the synthetic data and on the real samples, side by side.

    Rows (those whose data are absent are left out and named in ``attrs["skipped"]``):

    * ``synthetic``, IR-R-G and all five bands (IR-R-G-DSM-nDSM);
    * ``vaihingen crop``, IR-R-G: the real 512-px sample, two folds pooled
      (:func:`vaihingen_crop_folds`);
    * ``dubai``, R-G-B: the tile-wise split.

    ``data`` is the chapter's split of ``dataset`` (used for that dataset's rows); the other
    datasets are loaded with the same ``profile``. Every row is scored by the eroded
    protocol over the evaluated classes: OA, mean F1 and balanced accuracy (mean recall,
    independent of the class mix).

    Args:
        data: the chapter's training and validation scenes (None: load ``dataset`` too).
        dataset: the chapter's dataset.
        profile: the profile the other datasets are loaded with.
        vaihingen_root: the Vaihingen sample's folder (default: the shared data).
        load: function ``(dataset, profile) -> SplitData`` (default
            :func:`aerialseg.data.registry.load_split` of ``data_config``); it may raise
            :class:`aerialseg.data.errors.DatasetNotFoundError` (or ``FileNotFoundError``).
        max_pixels: training sample of each baseline.

    Returns:
        A DataFrame with :data:`BASELINE_COLUMNS` (scores as fractions);
        ``attrs["skipped"]``: ``(data, why)`` pairs for rows left out.
    """
    import pandas as pd

    from aerialseg.data.errors import DatasetNotFoundError

    if load is None:
        from aerialseg.data.registry import data_config, load_split

        def load(name: str, prof: str) -> Any:
            return load_split(data_config(name, prof))

    rows: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []

    def split_of(name: str) -> Any:
        if name == dataset and data is not None:
            return data, "this chapter's split"
        try:
            return load(name, profile), f"the {profile} profile's split"
        except (DatasetNotFoundError, FileNotFoundError) as exc:
            skipped.append((name, str(exc).splitlines()[0]))
            return None, ""

    syn, where = split_of("synthetic")
    if syn is not None:
        for bands in (("ir", "r", "g"), tuple(syn.train[0].band_names)):
            b = per_pixel_baseline(syn, bands, max_pixels=max_pixels)
            rows.append(_context_row("synthetic", bands, where, b.confusion["eroded"],
                                     b.classes))
    folds = vaihingen_crop_folds(vaihingen_root)
    if folds is None:
        skipped.append(("vaihingen crop", "the real Vaihingen sample is not in the shared "
                                          "data folder"))
    else:
        cm = sum(per_pixel_baseline(f, ("ir", "r", "g"), max_pixels=max_pixels)
                 .confusion["eroded"] for f in folds)
        rows.append(_context_row("vaihingen crop", ("ir", "r", "g"),
                                 "one 512-px clip, two folds (left and right half)", cm,
                                 folds[0].train[0].classes))
    dubai, where = split_of("dubai")
    if dubai is not None:
        b = per_pixel_baseline(dubai, max_pixels=max_pixels)
        rows.append(_context_row("dubai", b.bands, where, b.confusion["eroded"], b.classes))
    df = pd.DataFrame(rows, columns=list(BASELINE_COLUMNS))
    df.attrs["skipped"] = skipped
    return df


def pixel_baseline_sentences(df: pd.DataFrame, *, margin: float = 0.05) -> list[str]:
    """What :func:`pixel_baseline_context` means, in sentences built from its numbers.

    Compares the synthetic data with the real samples on comparable bands (IR-R-G with the
    Vaihingen sample, the three spectral bands with Dubai's R-G-B) by OA and by balanced
    accuracy (which does not depend on the class mix), and says whether the synthetic
    scenes are easier per pixel by more than ``margin`` (5 points, the threshold of the
    study's issue 19) on both, on one, or on neither.
    """
    def row(data: str, bands: str | None = None) -> Any:
        sel = df[(df["data"] == data) & ((df["bands"] == bands) if bands else True)]
        return None if sel.empty else sel.iloc[0]

    def pts(x: float) -> str:
        return f"{100 * abs(x):.1f}"

    def signed(x: float) -> str:
        return ("+" if x >= 0 else "\u2212") + pts(x)

    out: list[str] = []
    syn3, syn5 = row("synthetic", "IR-R-G"), row("synthetic", "IR-R-G-DSM-nDSM")
    if syn3 is not None and syn5 is not None:
        gain = syn5["balanced_accuracy"] - syn3["balanced_accuracy"]
        out.append(f"On the synthetic data, adding the two height bands changes the per-pixel "
                   f"baseline's balanced accuracy from {pts(syn3['balanced_accuracy'])} % to "
                   f"{pts(syn5['balanced_accuracy'])} % ({signed(gain)} points): "
                   + ("height carries class information that the spectra lack."
                      if gain > margin / 5 else
                      "the spectra already carry most of what a single pixel can tell."))
    real = [(r, "the real Vaihingen clip on the same bands (IR-R-G)")
            for r in [row("vaihingen crop")] if r is not None]
    real += [(r, "Dubai on its three spectral bands (R-G-B)")
             for r in [row("dubai")] if r is not None]
    if syn3 is None or not real:
        return out
    easier = []
    for r, name in real:
        d_oa = syn3["oa"] - r["oa"]
        d_bal = syn3["balanced_accuracy"] - r["balanced_accuracy"]
        n_over = int(d_oa > margin) + int(d_bal > margin)
        easier.append(n_over)
        what = ("easier per pixel by more than the margin on both measures" if n_over == 2
                else "easier by more than the margin on one measure only" if n_over == 1
                else f"not easier per pixel by more than {pts(margin)} points")
        out.append(f"Against {name}, the synthetic IR-R-G baseline differs by {signed(d_oa)} "
                   f"points of OA ({pts(syn3['oa'])} % against {pts(r['oa'])} %) and "
                   f"{signed(d_bal)} points of balanced accuracy "
                   f"({pts(syn3['balanced_accuracy'])} % against "
                   f"{pts(r['balanced_accuracy'])} %): {what}.")
    if max(easier) == 0:
        out.append("So the synthetic scenes are not easier per pixel than the real samples on "
                   "comparable bands, and a network's gain over the per-pixel baseline "
                   "measures what it learns from spatial context much as it would on real "
                   "imagery.")
    elif min(easier) == 2:
        out.append("So the synthetic scenes are easier per pixel than the real samples on "
                   "comparable bands: a network's gain over the per-pixel baseline there "
                   "overstates what spatial context adds on real imagery.")
    else:
        out.append("So the evidence is mixed: the synthetic scenes are easier per pixel than "
                   "a real sample by more than the margin on some measure, not on every one; "
                   "read a network's gain over the per-pixel baseline with that in mind.")
    if any(r["data"] == "vaihingen crop" for r, _ in real):
        out.append("The Vaihingen clip is small (one 512-px clip of one area, trained on one "
                   "half and scored on the other, so its rare classes have few pixels), which "
                   "makes its numbers noisy; training and scoring within one area favours "
                   "the per-pixel classifier.")
    return out
