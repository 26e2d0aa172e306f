"""Figures of the U-CE chapter (matplotlib only; arrays and xarray in, figures out).

They follow the book's conventions (:mod:`aerialseg.plots`): at most the content column's
width, no text under 8 pt once shown, at most four panels per row, a colour bar on every
continuous map, legends outside the data, display names for methods and classes.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from aerialseg import display
from aerialseg.data.classes import IGNORE_INDEX, ClassTable
from aerialseg.plots import (
    BOOK_WIDTH_IN,
    MAX_COLS,
    class_legend,
    colour_bar,
    label_image,
    legend_below,
)


def _wrap(text: str, width: int = 22) -> str:
    return "\n".join(textwrap.fill(line, width) for line in text.split("\n"))


def uncertainty_comparison(image: np.ndarray, truth: np.ndarray,
                           maps: Mapping[str, Mapping[str, np.ndarray]], classes: ClassTable,
                           *, crop: int | None = 256, label: str = "u (%)") -> Figure:
    """Each model's prediction (top row) and MC-dropout uncertainty (bottom row), one scene.

    The first column holds the image (top) and the ground truth (bottom); one further column
    per model (at most three). The uncertainty maps share one colour scale, from 0 to the
    largest 99.5th percentile of the maps, with its colour bar on the right; the class
    colours are in a legend below. u is shown in percentage points of probability.

    Args:
        image: (H, W, 3) display image.
        truth: (H, W) ground truth.
        maps: method id -> ``{"pred": (H, W), "uncertainty": (H, W)}``.
        classes: the class table.
        crop: show the top-left ``crop`` pixels (None: all).
        label: colour-bar label.
    """
    methods = list(maps)
    if not 1 <= len(methods) <= MAX_COLS - 1:
        raise ValueError(f"one to {MAX_COLS - 1} models per figure, got {len(methods)}")
    sl = (slice(0, crop), slice(0, crop)) if crop else (slice(None), slice(None))
    t = np.asarray(truth)[sl].astype(np.int64)
    us = [100 * np.asarray(maps[m]["uncertainty"], float)[sl] for m in methods]
    vmax = max(float(np.nanpercentile(u, 99.5)) for u in us) or 1.0
    ncol = len(methods) + 1
    side = (BOOK_WIDTH_IN - 0.9) / ncol
    fig, axes = plt.subplots(2, ncol, figsize=(BOOK_WIDTH_IN, 2 * side + 1.3), squeeze=False)
    axes[0, 0].imshow(np.asarray(image)[sl])
    axes[0, 0].set_title("Image")
    axes[1, 0].imshow(label_image(t, classes), interpolation="nearest")
    axes[1, 0].set_title("Ground truth")
    im = None
    labelled = t != IGNORE_INDEX
    for j, (m, u) in enumerate(zip(methods, us, strict=True), start=1):
        pred = np.asarray(maps[m]["pred"])[sl].astype(np.int64)
        wrong = 100 * float(((pred != t) & labelled).sum()) / max(int(labelled.sum()), 1)
        axes[0, j].imshow(label_image(pred, classes), interpolation="nearest")
        axes[0, j].set_title(f"{_wrap(display.method_name(m))}\n{wrong:.1f} % wrong")
        im = axes[1, j].imshow(u, cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
        axes[1, j].set_title(f"mean u = {float(np.nanmean(u)):.1f} %")
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.tight_layout()
    colour_bar(fig, im, list(axes[1, 1:]), label)
    class_legend(fig, classes)
    return fig


def weight_maps(images: Sequence[np.ndarray], labels: np.ndarray, uncertainty: np.ndarray,
                weight: np.ndarray, classes: ClassTable, *, alpha: float) -> Figure:
    """What U-CE's loss sees on training crops: u and the pixel weights (1 + u)^alpha.

    One row per crop (at most three), four panels: the crop, its labels, u (one linear
    colour scale for all rows, in percentage points of probability) and the weight (one
    logarithmic scale from 1 for all rows, so that both the many weights near 1 and the few
    large ones are visible). Ignored pixels (black in the labels) carry no weight and are
    left blank.

    Args:
        images: per crop an (h, w, 3) display image.
        labels: (n, h, w) training labels.
        uncertainty: (n, h, w) u.
        weight: (n, h, w) weights, 0 at ignored pixels.
        classes: the class table.
        alpha: the exponent the weights were computed with (for the labels).
    """
    n = len(images)
    if not 1 <= n <= 3:
        raise ValueError(f"one to three crops per figure, got {n}")
    labels = np.asarray(labels)
    uncertainty = 100 * np.asarray(uncertainty, float)
    weight = np.asarray(weight, float)
    side = (BOOK_WIDTH_IN - 0.4) / 4
    # a thin last row holds the two colour bars, so the map panels keep their size
    fig, grid = plt.subplots(n + 1, 4, figsize=(BOOK_WIDTH_IN, n * (side + 0.35) + 1.2),
                             squeeze=False, height_ratios=[1.0] * n + [0.06])
    axes = grid[:n]
    for ax in grid[n, :2]:
        ax.remove()
    valid = weight[:n] > 0
    umax = float(np.nanpercentile(uncertainty[:n][valid], 99.5)) if valid.any() else 1.0
    wmax = float(weight[:n][valid].max()) if valid.any() else 1.0
    norm = LogNorm(vmin=1.0, vmax=max(wmax, 1.01))
    im_u = im_w = None
    for i in range(n):
        row = axes[i]
        row[0].imshow(images[i])
        row[1].imshow(label_image(labels[i].astype(np.int64), classes),
                      interpolation="nearest")
        u = np.where(valid[i], uncertainty[i], np.nan)
        im_u = row[2].imshow(u, cmap="magma", vmin=0, vmax=umax or 1.0,
                             interpolation="nearest")
        w = np.where(valid[i], weight[i], np.nan)
        im_w = row[3].imshow(w, cmap="viridis", norm=norm, interpolation="nearest")
        for ax in row:
            ax.set_axis_off()
    a = f"{alpha:g}"
    for ax, title in zip(axes[0], ("Training crop", "Labels", "Uncertainty u",
                                   f"Weight (1 + u)^{a}"), strict=True):
        ax.set_title(title)
    for cax, im, lab in ((grid[n, 2], im_u, "u (%)"),
                         (grid[n, 3], im_w, f"(1 + u)^{a}, log scale")):
        fig.colorbar(im, cax=cax, orientation="horizontal").set_label(lab)
    fig.tight_layout()
    class_legend(fig, classes)
    return fig


def _method_of(key: Any) -> tuple[str, int | None]:
    if isinstance(key, tuple):
        return str(key[0]), int(key[1])
    return str(key), None


def weighting_curves(histories: Mapping[Any, Sequence[Mapping[str, float]]],
                     *, baseline: str = "ce_dropout") -> Figure:
    """What the weighting did during training, per epoch, one line per run.

    Left: the plain (unweighted) cross-entropy on the training batches, i.e. the CE
    baseline's loss and, for U-CE, the cross-entropy of its MC passes (``train_ce``): the
    one training quantity all methods share (U-CE's own loss is a weighted sum, not
    comparable). Middle: mean u over the training pixels. Right: the mean pixel weight
    (1 + u)^alpha (log scale): how much larger than the baseline's a U-CE step is on
    average at the same learning rate.

    Args:
        histories: ``(method, seed)`` -> the run's training history.
        baseline: the CE method (its ``loss`` is its plain cross-entropy).
    """
    fig, axes = plt.subplots(1, 3, figsize=(BOOK_WIDTH_IN, 2.9))
    colours: dict[str, str] = {}
    for key, hist in histories.items():
        method, _ = _method_of(key)
        colours.setdefault(method, f"C{len(colours) % 10}")
        c = colours[method]
        ce_key = "loss" if method == baseline else "train_ce"
        for ax, k in zip(axes, (ce_key, "train_uncertainty", "train_weight"), strict=True):
            pts = [(h["epoch"] + 1, h[k]) for h in hist
                   if k in h and np.isfinite(h[k])]
            if pts:
                x, y = zip(*pts, strict=True)
                ax.plot(x, y if k != "train_uncertainty" else 100 * np.asarray(y),
                        marker="o", ms=2.5, lw=1.2, color=c, alpha=0.85)
    labels = ("Training cross-entropy\n(unweighted)", "Mean u (%)", "Mean weight (1 + u)^α")
    for ax, lab in zip(axes, labels, strict=True):
        ax.set_xlabel("Epoch")
        ax.set_ylabel(lab)
        ax.grid(alpha=0.3)
    axes[2].set_yscale("log")
    axes[2].yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axes[2].yaxis.set_minor_formatter(FuncFormatter(
        lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
    fig.tight_layout()
    handles = [Line2D([], [], color=c, marker="o", ms=3, label=display.method_name(m))
               for m, c in colours.items()]
    legend_below(fig, handles, ncol=min(len(handles), 3))
    return fig


def effects_vs_paper(ds: xr.Dataset, paper: Mapping[str, Mapping[str, float]],
                     verdicts: Sequence[Any] = (), *, baseline: str = "ce_dropout",
                     protocol: str = "eroded") -> Figure:
    """Change of each U-CE method against CE, ours beside the paper's: mIoU and ECE.

    Ours: bar = mean over seeds of the paired change, dots = the seeds, and for mIoU the
    95 % interval of the study's rule (from ``verdicts``, when one judges that method's
    mIoU against ``baseline``); the paper's Cityscapes change: a red mark. Points.

    Args:
        ds: the chapter's results (methods include ``baseline``).
        paper: method -> ``{"Δ mIoU (points)": .., "Δ ECE": ..}`` (see
            :func:`aerialseg.papers.uce.reported.landgraf_effects`; ECE as a fraction).
        verdicts: :class:`aerialseg.stats.Verdict` objects of the mIoU claims.
        baseline: the CE method.
        protocol: evaluation protocol.
    """
    sc = ds["scores"].sel({"protocol": protocol, "class": "overall"})
    methods = [m for m in paper if m in {str(x) for x in ds["method"].values}]
    intervals = {v.method: (v.low, v.high) for v in verdicts
                 if getattr(v, "metric", "") == "iou" and v.baseline == baseline}
    fig, axes = plt.subplots(1, 2, figsize=(BOOK_WIDTH_IN, 3.0))
    panels = (("iou", "Δ mIoU (points)", "Δ mIoU (points)", 1.0),
              ("ece", "Δ ECE", "Δ ECE (points)", 100.0))
    for ax, (metric, key, ylabel, paper_scale) in zip(axes, panels, strict=True):
        for i, m in enumerate(methods):
            d = 100 * (sc.sel({"method": m, "metric": metric})
                       - sc.sel({"method": baseline, "metric": metric})).values
            d = np.atleast_1d(d)
            d = d[np.isfinite(d)]
            if d.size:
                ax.bar(i, d.mean(), 0.55, color="C0", alpha=0.6)
                ax.plot(np.full(d.shape, i), d, "k.", ms=5)
            if metric == "iou" and m in intervals and all(np.isfinite(intervals[m])):
                lo, hi = (100 * x for x in intervals[m])
                ax.plot([i, i], [lo, hi], color="C0", lw=2.5, solid_capstyle="butt")
            if key in paper[m]:
                ax.plot(i, paper_scale * paper[m][key], "_", color="C3", ms=22, mew=2.5)
        ax.axhline(0, color="0.4", lw=0.8)
        ax.set_xticks(range(len(methods)), [_wrap(display.method_name(m), 16)
                                            for m in methods])
        ax.set_ylabel(ylabel)
        ax.set_xlim(-0.6, len(methods) - 0.4)
    fig.tight_layout()
    handles = [plt.Rectangle((0, 0), 1, 1, color="C0", alpha=0.6, label="ours, mean of seeds"),
               Line2D([], [], color="k", marker=".", ls="", ms=6, label="ours, one seed"),
               Line2D([], [], color="C0", lw=2.5, label="ours, 95 % interval (mIoU)"),
               Line2D([], [], color="C3", marker="_", ls="", ms=14, mew=2.5,
                      label="paper (Cityscapes)")]
    legend_below(fig, handles, ncol=2)
    return fig

