"""Figures of the patch-CNN chapter (matplotlib only)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from aerialseg.data.classes import ClassTable


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
