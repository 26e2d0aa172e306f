"""Figures of the EFM chapter: maps over training, their change, stage curves and gains.

Functions take arrays, histories or DataFrames and return matplotlib figures (no torch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from aerialseg.data.classes import ClassTable
from aerialseg.plots import label_image


def _pick(n: int, k: int) -> list[int]:
    """At most ``k`` indices of ``range(n)`` spread evenly, first and last included."""
    if n <= k:
        return list(range(n))
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, k)})


def efm_evolution(snaps: Mapping[str, np.ndarray], *, classes: ClassTable | None = None,
                  image: np.ndarray | None = None, max_columns: int = 5,
                  title: str = "") -> Figure:
    """EFM, normalised entropy and error maps of a validation crop at several epochs.

    Args:
        snaps: :func:`aerialseg.papers.efm.method.load_monitor` output (``epoch``, ``efm``,
            ``entropy``, ``error``, ``labels``).
        classes: class table for the ground-truth panel.
        image: (h, w, 3) display image of the same crop.
        max_columns: snapshots shown (spread evenly, first and last kept).
        title: figure title.
    """
    idx = _pick(len(snaps["epoch"]), max_columns)
    rows = (("efm", "EFM", "magma"), ("entropy", "entropy / log C", "viridis"),
            ("error", "errors (red)", "Reds"))
    ncol = len(idx) + 1
    fig, axes = plt.subplots(3, ncol, figsize=(2.2 * ncol, 6.8), squeeze=False)
    ref = [(image, "image")] if image is not None else []
    if classes is not None:
        ref.append((label_image(snaps["labels"], classes), "ground truth"))
    for r, ax in enumerate(axes[:, 0]):
        if r < len(ref):
            ax.imshow(ref[r][0], interpolation="nearest")
            ax.set_title(ref[r][1], fontsize=9)
        ax.set_axis_off()
    for c, i in enumerate(idx, start=1):
        for r, (key, name, cmap) in enumerate(rows):
            ax = axes[r, c]
            ax.imshow(np.asarray(snaps[key][i], float), cmap=cmap, vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_title(f"{name}, epoch {snaps['epoch'][i]:g}", fontsize=8)
            ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def efm_difference(snaps: Mapping[str, np.ndarray], *, title: str = "") -> Figure:
    """First and last EFM / entropy snapshot and their difference (start - end).

    Positive (red) where a pixel was harder at the start than at the end of training.
    """
    fig, axes = plt.subplots(2, 3, figsize=(9.6, 6.4), squeeze=False)
    e0, e1 = snaps["epoch"][0], snaps["epoch"][-1]
    for row, (key, name) in zip(axes, (("efm", "EFM"), ("entropy", "entropy / log C")),
                                strict=True):
        a, b = (np.asarray(snaps[key][i], float) for i in (0, -1))
        for ax, img, t in ((row[0], a, f"{name}, epoch {e0:g}"),
                           (row[1], b, f"{name}, epoch {e1:g}")):
            ax.imshow(img, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(t, fontsize=9)
        im = row[2].imshow(a - b, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        row[2].set_title(f"start - end (mean {np.mean(a - b):+.3f})", fontsize=9)
        fig.colorbar(im, ax=row[2], fraction=0.046)
        for ax in row:
            ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def stage_curves(panels: Mapping[str, Mapping[str, tuple[Sequence[Mapping[str, float]], int]]]
                 ) -> Figure:
    """Training loss per epoch of chained stages, one panel per model.

    Args:
        panels: ``{panel title: {run label: (history, epoch offset)}}``; a fine-tuning stage
            is drawn after its parent by giving the parent's epoch count as offset. Epochs
            that started with an EFM refresh (``efm_refreshed``) are marked with a ring.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.4), squeeze=False)
    for ax, (title, runs) in zip(axes[0], panels.items(), strict=True):
        for label, (hist, offset) in runs.items():
            x = np.array([h["epoch"] + 1 + offset for h in hist])
            y = np.array([h["loss"] for h in hist])
            (line,) = ax.plot(x, y, marker="o", ms=3, label=label)
            mark = np.array([bool(h.get("efm_refreshed", 0)) for h in hist])
            if mark.any():
                ax.plot(x[mark], y[mark], "o", ms=9, mfc="none", color=line.get_color())
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch (fine-tuning continues the parent's axis)")
        ax.set_ylabel("training loss")
        ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return fig


def gain_bars(gains: pd.DataFrame, *, value: str = "ours", paper: str | None = "paper",
              ylabel: str = "gain (points)") -> Figure:
    """Grouped bars of gains: rows of ``gains`` indexed by (model, comparison).

    ``value`` (and optionally ``paper``) are columns; a ``value + ' sd'`` column, if present,
    gives error bars (spread over seeds).
    """
    models = list(dict.fromkeys(gains.index.get_level_values(0)))
    comps = list(dict.fromkeys(gains.index.get_level_values(1)))
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 3.4), squeeze=False,
                             sharey=True)
    width = 0.38 if paper else 0.6
    for ax, model in zip(axes[0], models, strict=True):
        sub = gains.loc[model].reindex(comps)
        x = np.arange(len(comps))
        err = sub[f"{value} sd"].to_numpy(float) if f"{value} sd" in sub else None
        ax.bar(x - (width / 2 if paper else 0), sub[value].to_numpy(float), width,
               yerr=err, capsize=3, label=value)
        if paper and paper in sub:
            ax.bar(x + width / 2, sub[paper].to_numpy(float), width, label=paper,
                   color="0.7")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(x, comps, rotation=20, ha="right", fontsize=8)
        ax.set_title(model, fontsize=10)
        ax.legend(frameon=False, fontsize=8)
    axes[0, 0].set_ylabel(ylabel)
    fig.tight_layout()
    return fig


def weight_decomposition(panels: Mapping[str, np.ndarray], *, title: str = "") -> Figure:
    """A row of maps: an RGB panel (h, w, 3) is shown as is, 2-D maps with a colour bar."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.1 * len(panels), 3.2), squeeze=False)
    for ax, (name, arr) in zip(axes[0], panels.items(), strict=True):
        arr = np.asarray(arr, float)
        if arr.ndim == 3:
            ax.imshow(arr, interpolation="nearest")
        else:
            im = ax.imshow(arr, cmap="magma", interpolation="nearest")
            fig.colorbar(im, ax=ax, fraction=0.046)
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
