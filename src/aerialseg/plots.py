"""Every figure of the book. Functions take arrays/Datasets and return matplotlib figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from aerialseg.data.classes import IGNORE_INDEX, ClassTable
from aerialseg.data.scene import Scene


def _cmap(classes: ClassTable) -> ListedColormap:
    colours = np.asarray(classes.colours, float) / 255.0
    return ListedColormap(colours)


def label_image(labels: np.ndarray, classes: ClassTable) -> np.ndarray:
    """RGB float image of a label map; ignore pixels are black."""
    rgb = np.asarray(classes.colours, float)[np.clip(labels, 0, classes.num_classes - 1)] / 255
    rgb[labels == IGNORE_INDEX] = 0.0
    return rgb


def legend_handles(classes: ClassTable) -> list[Patch]:
    """Legend patches in the class colours."""
    return [Patch(facecolor=np.asarray(c) / 255, edgecolor="0.3", label=n)
            for n, c in zip(classes.names, classes.colours, strict=True)]


def false_colour(scene: Scene | np.ndarray) -> np.ndarray:
    """The first three bands (IR-R-G or R-G-B) stretched 1-99 % as an (H, W, 3) image.

    Takes a scene or a (C, H, W) array.
    """
    bands = scene.bands if isinstance(scene, Scene) else np.asarray(scene)
    x = bands[:3].transpose(1, 2, 0).astype(float)
    lo, hi = np.percentile(x, (1, 99), axis=(0, 1))
    return np.clip((x - lo) / np.maximum(hi - lo, 1e-6), 0, 1)


def show_scenes(scenes: Sequence[Scene], *, max_scenes: int = 3) -> Figure:
    """Image, height (nDSM if present) and labels of the first scenes."""
    scenes = list(scenes)[:max_scenes]
    has_height = "ndsm" in scenes[0].band_names
    ncol = 3 if has_height else 2
    fig, axes = plt.subplots(len(scenes), ncol, figsize=(3.2 * ncol, 3.2 * len(scenes)),
                             squeeze=False)
    for row, s in zip(axes, scenes, strict=True):
        row[0].imshow(false_colour(s))
        row[0].set_title(f"{s.name}: {'+'.join(s.band_names[:3])}")
        if has_height:
            im = row[1].imshow(s.select_bands(("ndsm",))[0], cmap="viridis")
            row[1].set_title("nDSM (m)")
            fig.colorbar(im, ax=row[1], fraction=0.046)
        row[-1].imshow(label_image(s.labels, s.classes), interpolation="nearest")
        row[-1].set_title("labels")
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.legend(handles=legend_handles(scenes[0].classes), loc="lower center",
               ncol=scenes[0].classes.num_classes, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def class_shares(shares: dict[str, np.ndarray], classes: ClassTable) -> Figure:
    """Bar chart of class pixel shares per dataset/split."""
    fig, ax = plt.subplots(figsize=(7, 3))
    n = len(shares)
    width = 0.8 / max(n, 1)
    x = np.arange(classes.num_classes)
    for i, (label, s) in enumerate(shares.items()):
        ax.bar(x + i * width - 0.4 + width / 2, 100 * np.asarray(s), width, label=label)
    ax.set_xticks(x, classes.names, rotation=20)
    ax.set_ylabel("share of pixels (%)")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def eroded_mask_figure(scene: Scene, crop: int = 160) -> Figure:
    """Labels and the eroded-boundary evaluation mask on a crop."""
    lab = scene.labels[:crop, :crop]
    mask = scene.eval_mask[:crop, :crop]
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.2))
    axes[0].imshow(label_image(lab, scene.classes), interpolation="nearest")
    axes[0].set_title("labels")
    shown = label_image(np.where(mask, lab, IGNORE_INDEX), scene.classes)
    axes[1].imshow(shown, interpolation="nearest")
    axes[1].set_title(f"evaluated pixels ({100 * mask.mean():.0f} %)")
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def prediction_gallery(maps: dict[str, dict[str, np.ndarray]], classes: ClassTable, *,
                       image: np.ndarray | None = None, crop: int | None = 256) -> Figure:
    """Truth and each model's prediction side by side (``maps``: title -> maps dict)."""
    titles = list(maps)
    first = maps[titles[0]]
    panels: list[tuple[str, np.ndarray]] = []
    if image is not None:
        panels.append(("image", image))
    panels.append(("ground truth", label_image(first["truth"].astype(np.int64), classes)))
    for t in titles:
        panels.append((t, label_image(maps[t]["pred"].astype(np.int64), classes)))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 3.3), squeeze=False)
    for ax, (t, img) in zip(axes[0], panels, strict=True):
        ax.imshow(img[:crop, :crop] if crop else img, interpolation="nearest")
        ax.set_title(t, fontsize=9)
        ax.set_axis_off()
    fig.legend(handles=legend_handles(classes), loc="lower center", ncol=classes.num_classes,
               frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def training_curves(histories: dict[str, list[dict[str, float]]]) -> Figure:
    """Training loss per epoch of several runs."""
    fig, ax = plt.subplots(figsize=(6, 3))
    for label, hist in histories.items():
        ax.plot([h["epoch"] + 1 for h in hist], [h["loss"] for h in hist], marker="o",
                ms=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def per_class_scores(ds: xr.Dataset, *, metric: str = "f1", protocol: str = "eroded",
                     reported: dict[str, dict[str, float]] | None = None) -> Figure:
    """Per-class scores of every method: mean over seeds with the seeds as dots."""
    sc = ds["scores"].sel(protocol=protocol, metric=metric)
    ev = ds["evaluated"].values if "evaluated" in ds.coords else [True] * ds.sizes["class"]
    classes = [str(c) for c, e in zip(ds["class"].values, ev, strict=True)
               if c != "overall" and e]
    methods = [str(m) for m in ds["method"].values]
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    x = np.arange(len(classes))
    width = 0.8 / len(methods)
    for i, m in enumerate(methods):
        vals = 100 * sc.sel({"method": m, "class": classes}).values  # (seed, class)
        pos = x + i * width - 0.4 + width / 2
        ax.bar(pos, np.nanmean(vals, 0), width, label=m, alpha=0.8)
        for row in np.atleast_2d(vals):
            ax.plot(pos, row, "k.", ms=3)
        if reported and m in reported:
            rep = [reported[m].get(c, np.nan) for c in classes]
            ax.plot(pos, rep, "r_", ms=12, mew=2)
    if reported:
        ax.plot([], [], "r_", ms=12, mew=2, label="paper (different data)")
    ax.set_xticks(x, classes, rotation=20)
    ax.set_ylabel(f"{metric} (%)")
    ax.set_ylim(0, 100)
    ax.legend(frameon=False, fontsize=8, ncol=3)
    fig.tight_layout()
    return fig


def confusion_heatmap(cm: np.ndarray, names: Sequence[str], title: str = "") -> Figure:
    """Row-normalised confusion matrix (rows: truth)."""
    cmn = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.imshow(cmn, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{100 * cmn[i, j]:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if cmn[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def metric_dots(ds: xr.Dataset, *, metrics: Sequence[tuple[str, str]] = (
        ("f1", "mean F1"), ("iou", "mIoU"), ("oa", "OA"), ("boundary_f1", "boundary F1")),
        protocol: str = "eroded") -> Figure:
    """Overall metrics per method: each seed as a dot, mean ± std as a bar."""
    sc = ds["scores"].sel({"protocol": protocol, "class": "overall"})
    methods = [str(m) for m in ds["method"].values]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.1 * len(metrics), 0.35 * len(methods)
                                                        + 1.4), sharey=True, squeeze=False)
    y = np.arange(len(methods))
    for ax, (metric, label) in zip(axes[0], metrics, strict=True):
        vals = 100 * sc.sel({"metric": metric}).values  # (method, seed)
        mean = np.nanmean(vals, 1)
        std = np.nanstd(vals, 1)
        ax.errorbar(mean, y, xerr=std, fmt="o", color="C0", capsize=3)
        for i, row in enumerate(vals):
            ax.plot(row, np.full_like(row, i), ".", color="0.4", ms=4)
        ax.set_title(label, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(y, methods, fontsize=8)
    axes[0][0].invert_yaxis()
    fig.tight_layout()
    return fig


def coverage_curves(ds: xr.Dataset, *, uncertainty: str = "mean_class_std",
                    paper: Mapping[float, float] | None = None,
                    threshold_panel: bool = False) -> Figure | None:
    """OA of the pixels kept against the fraction kept (the least uncertain kept first).

    One line per method (mean over seeds). ``threshold_panel`` adds, on the left, OA and the
    fraction kept against the normalised threshold itself; ``paper`` ({target OA: % kept})
    marks a paper's reported points.

    Returns:
        The figure, or None when the results hold no MC-dropout threshold curves.
    """
    if "accuracy" not in ds:
        return None
    ncol = 2 if threshold_panel else 1
    fig, axes = plt.subplots(1, ncol, figsize=(4.6 * ncol + 1.6, 3.6), squeeze=False)
    ax2 = axes[0][-1]
    tau = ds["threshold"].values
    for m in ds["method"].values:
        acc = ds["accuracy"].sel({"method": m, "uncertainty": uncertainty}).values
        cov = ds["coverage"].sel({"method": m, "uncertainty": uncertainty}).values
        if not np.isfinite(acc).any():
            continue
        a, c = np.nanmean(acc, 0), np.nanmean(cov, 0)
        line, = ax2.plot(100 * c, 100 * a, label=str(m))
        if threshold_panel:
            axes[0][0].plot(tau, 100 * a, color=line.get_color())
            axes[0][0].plot(tau, 100 * c, "--", color=line.get_color())
    if paper:
        ax2.scatter(list(paper.values()), [100 * t for t in paper], marker="x", color="k",
                    zorder=3, label="paper (reported)")
    if threshold_panel:
        ax1 = axes[0][0]
        ax1.set_xlabel("uncertainty threshold τ (normalised)")
        ax1.set_ylabel("OA on kept pixels (solid), kept (dashed), %")
        ax1.grid(alpha=0.3)
    ax2.set_xlabel("pixels kept (%), least uncertain first")
    ax2.set_ylabel("OA on kept pixels (%)")
    ax2.grid(alpha=0.3)
    ax2.legend(frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    return fig


def reliability_diagrams(ds: xr.Dataset) -> Figure:
    """Accuracy vs. confidence per method (first seed), with the ECE in the title."""
    methods = [str(m) for m in ds["method"].values]
    n = len(methods)
    ncol = min(n, 4)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.6 * nrow), squeeze=False)
    for ax, m in zip(axes.ravel(), methods, strict=False):
        sel = ds.sel({"method": m}).isel(seed=0)
        conf = sel["reliability_confidence"].values
        acc = sel["reliability_accuracy"].values
        ok = np.isfinite(conf) & np.isfinite(acc)
        ax.plot([0, 1], [0, 1], ":", color="0.5")
        ax.bar(conf[ok], acc[ok], width=1 / len(conf), alpha=0.7, edgecolor="k", lw=0.3)
        ece = float(sel["scores"].sel({"protocol": "eroded", "class": "overall",
                                       "metric": "ece"}))
        ax.set_title(f"{m}\nECE {ece:.3f}", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    fig.supxlabel("confidence", fontsize=9)
    fig.supylabel("accuracy", fontsize=9)
    fig.tight_layout()
    return fig


def gallery(ds: xr.Dataset, classes: ClassTable) -> Figure | None:
    """The same crop: ground truth, then each method's prediction (first seed)."""
    if "pred_crop" not in ds or "truth_crop" not in ds:
        return None
    methods = [str(m) for m in ds["method"].values]
    has_unc = "uncertainty_crop" in ds
    nrow = 2 if has_unc else 1
    fig, axes = plt.subplots(nrow, len(methods) + 1, figsize=(2.2 * (len(methods) + 1),
                                                              2.4 * nrow), squeeze=False)
    axes[0][0].imshow(label_image(ds["truth_crop"].values.astype(np.int64), classes),
                      interpolation="nearest")
    axes[0][0].set_title("ground truth", fontsize=8)
    for j, m in enumerate(methods, start=1):
        sel = ds.sel({"method": m}).isel(seed=0)
        pred = sel["pred_crop"].values
        axes[0][j].imshow(label_image(np.nan_to_num(pred, nan=255).astype(np.int64), classes),
                          interpolation="nearest")
        axes[0][j].set_title(m, fontsize=8)
        if has_unc:
            u = sel["uncertainty_crop"].values
            if np.isfinite(u).any():
                axes[1][j].imshow(u, cmap="viridis")
                axes[1][j].set_title("MC uncertainty", fontsize=7)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def paired_differences(df: pd.DataFrame, *, baseline: str, label: str) -> Figure:
    """Per-seed differences to the baseline (dots) with their mean (bar)."""
    methods = list(dict.fromkeys(df["method"]))
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(methods) + 1.3))
    for i, m in enumerate(methods):
        d = df.loc[df["method"] == m, "difference"].values
        ax.barh(i, d.mean(), color="C0" if d.mean() >= 0 else "C3", alpha=0.5)
        ax.plot(d, np.full_like(d, i), "k.", ms=5)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(methods)), methods, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{label}: difference to {baseline} (points, per seed)")
    fig.tight_layout()
    return fig
