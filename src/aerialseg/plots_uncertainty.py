"""Figures of the MC-dropout uncertainty chapter (matplotlib only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
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


def threshold_curves(ds: xr.Dataset, *, uncertainty: str = "mean_class_std",
                     paper: Mapping[float, float] | None = None) -> Figure | None:
    """OA on kept pixels and fraction kept against the normalised threshold (Fig. 7).

    Args:
        ds: a results Dataset with ``accuracy``/``coverage[method, seed, uncertainty,
            threshold]``; seeds are averaged.
        uncertainty: which uncertainty map ranks the pixels.
        paper: optional {target OA: % of pixels kept} reported for the paper's FCN, drawn as
            markers on the coverage-vs-accuracy panel.
    """
    if "accuracy" not in ds:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    tau = ds["threshold"].values
    for m in ds["method"].values:
        acc = ds["accuracy"].sel({"method": m, "uncertainty": uncertainty}).values
        cov = ds["coverage"].sel({"method": m, "uncertainty": uncertainty}).values
        if not np.isfinite(acc).any():
            continue
        a, c = np.nanmean(acc, 0), np.nanmean(cov, 0)
        line, = ax1.plot(tau, 100 * a, label=f"{m}: OA")
        ax1.plot(tau, 100 * c, "--", color=line.get_color(), label=f"{m}: kept")
        ax2.plot(100 * c, 100 * a, color=line.get_color(), label=str(m))
    if paper:
        ax2.scatter(list(paper.values()), [100 * t for t in paper], marker="x", color="k",
                    zorder=3, label="paper FCN (Vaihingen)")
    ax1.set_xlabel("uncertainty threshold τ (normalised)")
    ax1.set_ylabel("%")
    ax1.legend(frameon=False, fontsize=7, ncol=2)
    ax2.set_xlabel("pixels kept (%)")
    ax2.set_ylabel("OA on kept pixels (%)")
    ax2.legend(frameon=False, fontsize=7)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
