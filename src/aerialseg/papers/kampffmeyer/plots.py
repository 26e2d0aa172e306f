"""Figures of the patch-CNN chapter (matplotlib only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from aerialseg.data.classes import ClassTable
from aerialseg.plots import label_image

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

    Args:
        patches: (N, C, P, P) normalised patches (the first three bands are shown).
        labels: (N,) class of each patch (its centre pixel).
        angles: (N,) rotation in degrees (0 = unrotated), shown in the titles.
        classes: the class table (row names).
        per_class: patches shown per class.
        band_names: names of the shown bands, for the figure title.
    """
    present = [c for c in range(classes.num_classes) if (labels == c).any()]
    fig, axes = plt.subplots(len(present), per_class, figsize=(1.45 * per_class,
                                                              1.55 * len(present)),
                             squeeze=False)
    rgb = patches[:, :3].transpose(0, 2, 3, 1)
    lo, hi = np.percentile(rgb, (1, 99), axis=(0, 1, 2))  # one stretch for all patches
    rgb = np.clip((rgb - lo) / np.maximum(hi - lo, 1e-6), 0, 1)
    half = patches.shape[-1] // 2
    for row, c in zip(axes, present, strict=True):
        idx = np.flatnonzero(labels == c)[:per_class]
        for j, ax in enumerate(row):
            ax.set_axis_off()
            if j >= len(idx):
                continue
            ax.imshow(rgb[idx[j]], interpolation="nearest")
            ax.plot([half], [half], "+", color="red", ms=9, mew=1.5)
            a = float(angles[idx[j]])
            ax.set_title(f"{a:.0f}°" if a else "", fontsize=7)
        row[0].text(-0.08, 0.5, classes.names[c], transform=row[0].transAxes, ha="right",
                    va="center", fontsize=8)
    if band_names:
        fig.suptitle(f"training patches ({'-'.join(band_names[:3])}); + = labelled centre "
                     "pixel; rotation angle above car patches", fontsize=8)
    fig.tight_layout()
    return fig


def dense_vs_patch_scatter(dense: np.ndarray, patch: np.ndarray) -> Figure:
    """Per-patch against dense class probabilities at the same pixels (should be y = x)."""
    fig, ax = plt.subplots(figsize=(3.4, 3.2))
    ax.plot([0, 1], [0, 1], color="0.7", lw=1)
    ax.scatter(patch.ravel(), dense.ravel(), s=8, alpha=0.7)
    ax.set_xlabel("probability, each patch on its own")
    ax.set_ylabel("probability, dense pass")
    ax.set_aspect("equal")
    fig.tight_layout()
    return fig
