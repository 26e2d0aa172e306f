"""Figures of the U-CE chapter (matplotlib only; arrays and xarray in, figures out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from aerialseg.data.classes import IGNORE_INDEX, ClassTable
from aerialseg.plots import label_image, legend_handles


def uncertainty_comparison(image: np.ndarray, truth: np.ndarray,
                           maps: Mapping[str, Mapping[str, np.ndarray]], classes: ClassTable,
                           *, crop: int | None = 256, label: str = "uncertainty u") -> Figure:
    """Prediction (top) and MC-dropout uncertainty (bottom) of each model on one scene.

    Args:
        image: (H, W, 3) display image.
        truth: (H, W) ground truth.
        maps: title -> ``{"pred": (H, W), "uncertainty": (H, W)}``.
        classes: the class table.
        crop: show the top-left ``crop`` pixels (None: all).
        label: colour-bar label.
    """
    sl = (slice(0, crop), slice(0, crop)) if crop else (slice(None), slice(None))
    titles = list(maps)
    us = [np.asarray(maps[t]["uncertainty"])[sl] for t in titles]
    vmax = float(max(np.percentile(u, 99.5) for u in us)) or 1.0
    n = len(titles) + 1
    fig, axes = plt.subplots(2, n, figsize=(2.9 * n, 6.0), squeeze=False)
    axes[0, 0].imshow(image[sl])
    axes[0, 0].set_title("image", fontsize=9)
    axes[1, 0].imshow(label_image(truth[sl].astype(np.int64), classes), interpolation="nearest")
    axes[1, 0].set_title("ground truth", fontsize=9)
    im = None
    for j, (t, u) in enumerate(zip(titles, us, strict=True), start=1):
        pred = np.asarray(maps[t]["pred"])[sl].astype(np.int64)
        axes[0, j].imshow(label_image(pred, classes), interpolation="nearest")
        err = (pred != truth[sl]) & (truth[sl] != IGNORE_INDEX)
        axes[0, j].set_title(f"{t}\nprediction ({100 * err.mean():.1f} % wrong)", fontsize=9)
        im = axes[1, j].imshow(u, cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
        axes[1, j].set_title(f"{t}\nmean u = {u.mean():.3f}", fontsize=9)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.legend(handles=legend_handles(classes), loc="lower center", ncol=classes.num_classes,
               frameon=False, fontsize=8)
    fig.subplots_adjust(left=0.01, right=0.9, bottom=0.08, top=0.93, wspace=0.05,
                        hspace=0.25)
    if im is not None:
        box = axes[1, -1].get_position()
        cax = fig.add_axes((0.915, box.y0, 0.012, box.height))
        fig.colorbar(im, cax=cax, label=label)
    return fig


def weight_maps(images: Sequence[np.ndarray], labels: np.ndarray, uncertainty: np.ndarray,
                weights: Mapping[str, np.ndarray], classes: ClassTable) -> Figure:
    """U-CE's uncertainty u and pixel weights (1 + u)^alpha on training samples.

    Args:
        images: per sample a (h, w, 3) display image.
        labels: (n, h, w) training labels (ignore pixels black).
        uncertainty: (n, h, w) u.
        weights: title -> (n, h, w) weights, each from 1 to its 99.5th percentile
            (ignore pixels, weight 0, are blank).
        classes: the class table.
    """
    n = len(images)
    ncol = 3 + len(weights)
    fig, axes = plt.subplots(n, ncol, figsize=(2.5 * ncol, 2.3 * n), squeeze=False)
    umax = float(np.percentile(uncertainty, 99.5)) or 1.0
    for i in range(n):
        row = axes[i]
        row[0].imshow(images[i])
        row[1].imshow(label_image(labels[i].astype(np.int64), classes), interpolation="nearest")
        im = row[2].imshow(uncertainty[i], cmap="magma", vmin=0, vmax=umax,
                           interpolation="nearest")
        if i == 0:
            row[0].set_title("training crop", fontsize=9)
            row[1].set_title("labels", fontsize=9)
            row[2].set_title("uncertainty u", fontsize=9)
        fig.colorbar(im, ax=row[2], fraction=0.046, pad=0.02)
        for j, (title, w) in enumerate(weights.items(), start=3):
            wi = np.where(w[i] > 0, w[i], np.nan)
            valid = w[w > 0]
            hi = float(np.percentile(valid, 99.5)) if valid.size else 1.0
            im = row[j].imshow(wi, cmap="viridis", vmin=1.0, vmax=max(hi, 1.0 + 1e-3),
                               interpolation="nearest")
            fig.colorbar(im, ax=row[j], fraction=0.046, pad=0.02)
            if i == 0:
                row[j].set_title(title, fontsize=9)
        for ax in row:
            ax.set_axis_off()
    fig.tight_layout()
    return fig


def training_curves(histories: Mapping[str, Sequence[Mapping[str, float]]]) -> Figure:
    """Per epoch: training loss, mean training uncertainty and mean U-CE weight.

    Runs without U-CE statistics (the CE baseline) appear in the loss panel only. The
    U-CE loss is a weighted sum, so its scale is not comparable with CE's.
    """
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    panels = (("loss", "training loss"), ("train_uncertainty", "mean u (training, valid px)"),
              ("train_weight", "mean (1+u)^α (training)"))
    for ax, (key, ylabel) in zip(axes, panels, strict=True):
        for i, (label, hist) in enumerate(histories.items()):
            pts = [(h["epoch"] + 1, h[key]) for h in hist if key in h]
            if pts:
                x, y = zip(*pts, strict=True)
                ax.plot(x, y, marker="o", ms=3, label=label, color=f"C{i % 10}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
    axes[0].legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return fig


def effects_vs_paper(ds: xr.Dataset, paper: Mapping[str, Mapping[str, float]], *,
                     baseline: str = "ce_dropout", protocol: str = "eroded") -> Figure:
    """Change of each U-CE method against CE, ours beside the paper's, mIoU and ECE.

    Ours: bars = mean over seeds, dots = seeds; the paper's Cityscapes change: red marks.

    Args:
        ds: the chapter's results (methods include ``baseline``).
        paper: method -> ``{"Δ mIoU (points)": .., "Δ ECE": ..}`` (see
            :func:`aerialseg.papers.uce.reported.landgraf_effects`).
        baseline: the CE method.
        protocol: evaluation protocol.
    """
    sc = ds["scores"].sel(protocol=protocol, **{"class": "overall"})
    methods = [str(m) for m in ds["method"].values if m != baseline]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, (metric, key, scale) in zip(
            axes, (("iou", "Δ mIoU (points)", 100.0), ("ece", "Δ ECE", 1.0)), strict=True):
        x = np.arange(len(methods))
        for i, m in enumerate(methods):
            d = scale * (sc.sel({"method": m, "metric": metric})
                         - sc.sel({"method": baseline, "metric": metric})).values
            d = np.atleast_1d(d)
            ax.bar(i, np.nanmean(d), 0.6, color="C0", alpha=0.7)
            ax.plot(np.full(d.shape, i), d, "k.", ms=4)
            if m in paper:
                ax.plot(i, paper[m][key], "r_", ms=20, mew=2.5)
        ax.axhline(0, color="0.4", lw=0.8)
        ax.set_xticks(x, methods)
        ax.set_ylabel(f"{key} vs {baseline}")
    axes[0].plot([], [], "r_", ms=12, mew=2, label="paper (Cityscapes)")
    axes[0].bar([], [], color="C0", alpha=0.7, label="ours (mean; dots: seeds)")
    axes[0].legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return fig
