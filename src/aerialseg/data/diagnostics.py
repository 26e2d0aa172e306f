"""Dataset diagnostics shown in the data chapter and used by the synthetic data's tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.data.scene import Scene

if TYPE_CHECKING:
    import xarray as xr


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


def linear_pixel_classifier(train: Sequence[Scene], test: Sequence[Scene],
                            bands: Sequence[str], *, n: int = 20000, seed: int = 0
                            ) -> dict[str, object]:
    """Fit a per-pixel multinomial logistic regression on ``bands``; score it on ``test``.

    Returns accuracy and the row-normalised confusion matrix; used to show how much of the
    class information is spectral and how much needs height.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = pixel_sample(train, bands, n, seed)
    xt, yt = pixel_sample(test, bands, n, seed + 1)
    scaler = StandardScaler().fit(x)
    clf = LogisticRegression(max_iter=500).fit(scaler.transform(x), y)
    pred = clf.predict(scaler.transform(xt))
    c = train[0].classes.num_classes
    cm = np.zeros((c, c), np.int64)
    np.add.at(cm, (yt, pred), 1)
    return {"accuracy": float((pred == yt).mean()), "confusion": cm,
            "confusion_rate": cm / np.maximum(cm.sum(1, keepdims=True), 1)}


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
