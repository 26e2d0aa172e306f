"""Figures of the patch-CNN chapter (matplotlib only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from aerialseg import display
from aerialseg.data.classes import ClassTable
from aerialseg.plots import BOOK_WIDTH_IN, label_image

MAP_TITLES = {"mean_class_std": "mean-class std", "entropy": "entropy",
              "mutual_info": "mutual information"}


def _scaled(u: np.ndarray) -> np.ndarray:
    """Min-max scaled to [0, 1] over the shown map (the paper's display)."""
    u = np.asarray(u, np.float64)
    ok = np.isfinite(u)
    if not ok.any():
        return np.zeros_like(u)
    lo, hi = u[ok].min(), u[ok].max()
    return np.where(ok, (u - lo) / (hi - lo) if hi > lo else 0.0, np.nan)


def uncertainty_maps(maps: Mapping[str, Mapping[str, np.ndarray]], classes: ClassTable, *,
                     image: np.ndarray | None = None,
                     kinds: Sequence[str] = ("mean_class_std", "entropy", "mutual_info"),
                     crop: int | None = 256) -> Figure:
    """One row per model: prediction, errors, and each uncertainty map scaled to [0, 1].

    Args:
        maps: per model, the kept maps of one scene (``pred``, ``truth``, ``eval_mask`` and
            the uncertainty kinds), as in ``Evaluation.maps[scene]``.
        classes: the dataset's class table (colours).
        image: optional (H, W, 3) picture of the scene for the first column.
        kinds: uncertainty maps to show.
        crop: show the top-left ``crop`` x ``crop`` px (None: the whole scene).
    """
    names = list(maps)
    sl = (slice(0, crop), slice(0, crop)) if crop else (slice(None), slice(None))
    lead = (["image"] if image is not None else []) + ["truth", "prediction", "errors"]
    ncol = len(lead) + len(kinds)
    fig, axes = plt.subplots(len(names), ncol, figsize=(2.0 * ncol, 2.05 * len(names)),
                             squeeze=False)
    for r, name in enumerate(names):
        m = maps[name]
        truth, pred = m["truth"][sl], m["pred"][sl]
        wrong = (pred != truth) & (truth < classes.num_classes)
        panels = {"truth": label_image(truth, classes), "prediction": label_image(pred, classes),
                  "errors": wrong}
        if image is not None:
            panels["image"] = image[sl]
        for c, key in enumerate(lead + list(kinds)):
            ax = axes[r][c]
            if key in panels:
                ax.imshow(panels[key], cmap="gray_r" if key == "errors" else None,
                          interpolation="nearest")
            elif key in m:
                ax.imshow(_scaled(m[key][sl]), cmap="viridis", vmin=0, vmax=1,
                          interpolation="nearest")  # dark blue = low, as in the paper
            else:
                ax.text(0.5, 0.5, "not computed", ha="center", va="center", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(MAP_TITLES.get(key, key), fontsize=8)
        axes[r][0].set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return fig



def sample_patches(patches: np.ndarray, labels: np.ndarray, angles: np.ndarray,
                   classes: ClassTable, *, per_class: int = 6,
                   band_names: Sequence[str] = ()) -> Figure:
    """A grid of training patches, one row per class, centre pixel marked.

    The figure fits the book's column (:data:`aerialseg.plots.BOOK_WIDTH_IN`): the class
    names take the first column, the patches the others; the rotation of a rotated (car)
    patch is its title.

    Args:
        patches: (N, C, P, P) normalised patches (the first three bands are shown).
        labels: (N,) class of each patch (its centre pixel).
        angles: (N,) rotation in degrees (0 = unrotated), shown in the titles.
        classes: the class table (row names).
        per_class: patches shown per class.
        band_names: names of the shown bands (the first three), for the axis note.
    """
    present = [c for c in range(classes.num_classes) if (labels == c).any()]
    label_in = 1.35
    side = (BOOK_WIDTH_IN - label_in) / per_class
    title_in = 0.25  # room for a rotation angle above each row
    fig = plt.figure(figsize=(BOOK_WIDTH_IN, (side + title_in) * len(present) + 0.35))
    grid = fig.add_gridspec(len(present), per_class + 1,
                            width_ratios=[label_in] + [side] * per_class,
                            left=0.0, right=1.0, top=1.0 - 0.05 / len(present),
                            bottom=0.35 / fig.get_size_inches()[1],
                            hspace=title_in / side, wspace=0.05)
    rgb = patches[:, :3].transpose(0, 2, 3, 1)
    lo, hi = np.percentile(rgb, (1, 99), axis=(0, 1, 2))  # one stretch for all patches
    rgb = np.clip((rgb - lo) / np.maximum(hi - lo, 1e-6), 0, 1)
    half = patches.shape[-1] // 2
    for r, c in enumerate(present):
        name_ax = fig.add_subplot(grid[r, 0])
        name_ax.set_axis_off()
        name_ax.text(0.95, 0.5, display.class_name(classes.names[c]), ha="right",
                     va="center", fontsize=9, transform=name_ax.transAxes)
        idx = np.flatnonzero(labels == c)[:per_class]
        for j in range(per_class):
            ax = fig.add_subplot(grid[r, j + 1])
            ax.set_axis_off()
            if j >= len(idx):
                continue
            ax.imshow(rgb[idx[j]], interpolation="nearest")
            ax.plot([half], [half], "+", color="red", ms=9, mew=1.5)
            a = float(angles[idx[j]])
            if a:
                ax.set_title(f"rotated {a:.0f}°", fontsize=8.5, pad=2)
    if band_names:
        fig.text(0.5, 0.0, f"Bands shown as colours: {'-'.join(b.upper() for b in band_names[:3])}"
                 "; red cross: the centre pixel that labels the patch.", ha="center",
                 va="bottom", fontsize=9)
    return fig


def confusion_pair(cms: Mapping[str, np.ndarray], names: Sequence[str], *,
                   evaluated: Sequence[int] | None = None) -> Figure:
    """Row-normalised confusion matrices of up to two models side by side, in %.

    Args:
        cms: panel title (a method's display name) -> (C, C) counts, rows truth.
        names: class ids of the rows/columns.
        evaluated: rows and columns to show (default all; pass the evaluated classes to
            leave out an unevaluated class such as clutter).
    """
    keep = list(range(len(names)) if evaluated is None else evaluated)
    labels = [display.class_name(names[i]) for i in keep]
    n = len(cms)
    if not 1 <= n <= 2:
        raise ValueError(f"confusion_pair shows one or two matrices, got {n}")
    width = BOOK_WIDTH_IN if n == 2 else BOOK_WIDTH_IN * 0.6
    fig, axes = plt.subplots(1, n, figsize=(width, 3.9 if n == 2 else 4.2), squeeze=False,
                             sharey=True, layout="constrained")
    im = None
    for ax, (title, cm) in zip(axes[0], cms.items(), strict=True):
        cm = np.asarray(cm, float)[np.ix_(keep, keep)]
        pct = 100 * cm / np.maximum(cm.sum(1, keepdims=True), 1)
        im = ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
        for i in range(len(keep)):
            for j in range(len(keep)):
                ax.text(j, i, f"{pct[i, j]:.0f}", ha="center", va="center", fontsize=8.5,
                        color="white" if pct[i, j] > 50 else "black")
        ax.set_xticks(range(len(keep)), labels, rotation=40, ha="right")
        ax.set_yticks(range(len(keep)), labels)
        ax.set_xlabel("Predicted class")
        ax.set_title(title)
    axes[0][0].set_ylabel("True class")
    cb = fig.colorbar(im, ax=list(axes[0]), fraction=0.04, pad=0.02)
    cb.set_label("% of the true class's pixels")
    return fig


def dense_vs_patch_scatter(dense: np.ndarray, patch: np.ndarray) -> Figure:
    """Per-patch against dense class probabilities at the same pixels (should be y = x)."""
    fig, ax = plt.subplots(figsize=(3.6, 3.4))
    ax.plot([0, 1], [0, 1], color="0.7", lw=1)
    ax.scatter(patch.ravel(), dense.ravel(), s=8, alpha=0.7)
    ax.set_xlabel("Probability, each patch on its own")
    ax.set_ylabel("Probability, dense pass")
    ax.set_aspect("equal")
    fig.tight_layout()
    return fig
