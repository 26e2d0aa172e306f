"""Figures of the distance-loss chapter (matplotlib only; arrays and xarray in, figures out)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from aerialseg.data.classes import ClassTable
from aerialseg.plots import label_image, legend_handles


def distance_maps(labels: np.ndarray, full: np.ndarray, phi: np.ndarray, cls: int,
                  classes: ClassTable, *, crop: int | None = 256) -> Figure:
    """Labels, Lossd's signed capped Manhattan map and Kervadec's φ for class ``cls``.

    Args:
        labels: (H, W) training labels.
        full: (H, W) Lossd's signed map of ``cls`` (positive inside, negative outside).
        phi: (H, W) Kervadec's signed Euclidean map of ``cls`` (negative inside).
        cls: class index shown.
        classes: the class table.
        crop: show the top-left ``crop`` pixels (None: all).
    """
    sl = (slice(0, crop), slice(0, crop)) if crop else (slice(None), slice(None))
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.6))
    axes[0].imshow(label_image(labels[sl], classes), interpolation="nearest")
    axes[0].set_title("training labels", fontsize=9)
    cap = float(np.abs(full).max()) or 1.0
    im = axes[1].imshow(full[sl], cmap="RdBu_r", vmin=-cap, vmax=cap, interpolation="nearest")
    axes[1].set_title(f"Lossd: signed distance, {classes.names[cls]}\n(+ inside, − outside, "
                      f"capped at {cap:.0f})", fontsize=9)
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.02)
    lim = float(np.percentile(np.abs(phi), 99)) or 1.0
    im = axes[2].imshow(phi[sl], cmap="RdBu", vmin=-lim, vmax=lim, interpolation="nearest")
    axes[2].set_title(f"boundary loss: φ, {classes.names[cls]}\n(− inside, + outside, "
                      "not capped)", fontsize=9)
    fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.02)
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def error_charges(table: pd.DataFrame) -> Figure:
    """Charge of one wrong pixel vs its distance to the boundary (``error_cost_table``)."""
    d = table.index.to_numpy(float)
    fig, ax = plt.subplots(figsize=(6.2, 3.2))
    ax.plot(d, table["Lossd (log): miss"], "o-", label="Lossd, log (left axis)")
    ax.plot(d, table["Lossd (linear): miss"], "s--", label="Lossd, linear (left axis)")
    ax.set_xlabel("distance of the wrong pixel to the true boundary (px)")
    ax.set_ylabel("Lossd charge")
    ax.set_xscale("log", base=2)
    right = ax.twinx()
    right.plot(d, table["boundary loss: miss"], "^:", color="C2")
    right.set_ylabel("boundary-loss charge (px)", color="C2")
    handles = ax.get_lines() + [Line2D([], [], color="C2", marker="^", ls=":",
                                       label="boundary loss (right axis)")]
    ax.legend(handles=handles, frameon=False, fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def object_errors_gallery(preds: dict[str, np.ndarray], overlays: dict[str, np.ndarray],
                          truth: np.ndarray, classes: ClassTable, *,
                          image: np.ndarray | None = None, crop: int | None = 256) -> Figure:
    """Ground truth and each prediction with spurious (magenta) and missed (black) objects.

    Args:
        preds: title -> (H, W) predicted labels.
        overlays: title -> (H, W) map from :func:`aerialseg.objects.error_overlay`
            (1 spurious, 2 missed).
        truth: (H, W) ground truth.
        classes: the class table.
        image: optional RGB image shown first.
        crop: top-left window shown (None: all).
    """
    sl = (slice(0, crop), slice(0, crop)) if crop else (slice(None), slice(None))
    panels: list[tuple[str, np.ndarray, np.ndarray | None]] = []
    if image is not None:
        panels.append(("image", image[sl], None))
    panels.append(("ground truth", label_image(truth[sl].astype(np.int64), classes), None))
    for t, p in preds.items():
        panels.append((t, label_image(p[sl].astype(np.int64), classes), overlays[t][sl]))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 3.5), squeeze=False)
    for ax, (t, img, ov) in zip(axes[0], panels, strict=True):
        ax.imshow(img, interpolation="nearest")
        if ov is not None:
            for value, colour in ((1, "magenta"), (2, "black")):
                if (ov == value).any():
                    ax.contour(ov == value, levels=[0.5], colors=colour, linewidths=1.0)
        ax.set_title(t, fontsize=9)
        ax.set_axis_off()
    handles = legend_handles(classes) + [
        Line2D([], [], color="magenta", label="spurious segment"),
        Line2D([], [], color="black", label="missed object")]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), frameon=False,
               fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def object_counts(counts: xr.DataArray, *,
                  kinds: Sequence[str] = ("spurious", "missed", "split", "merged")) -> Figure:
    """Object errors per method, summed over classes: mean over seeds (bars), seeds (dots).

    Args:
        counts: ``objects[method, seed, class, kind]``.
        kinds: which error kinds to show.
    """
    total = counts.sum("class")
    methods = [str(m) for m in counts["method"].values]
    fig, axes = plt.subplots(1, len(kinds), figsize=(2.6 * len(kinds), 2.9), squeeze=False)
    x = np.arange(len(methods))
    for ax, kind in zip(axes[0], kinds, strict=True):
        vals = total.sel(kind=kind).transpose("method", "seed").values.astype(float)
        ax.bar(x, np.nanmean(vals, 1), color=[f"C{i}" for i in range(len(methods))], alpha=0.8)
        for i, row in enumerate(vals):
            ax.plot(np.full(row.shape, x[i]), row, "k.", ms=4)
        ax.set_xticks(x, methods, rotation=25, fontsize=8)
        ax.set_title(kind, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("count (validation scenes)")
    fig.tight_layout()
    return fig


def charge_maps(charges: dict[str, np.ndarray], *, crop: int | None = 256) -> Figure:
    """Per-pixel Lossd charge of each prediction (``methods.lossd.lossd_cost_map``).

    The title gives the mean charge per pixel over the whole map, not only the crop.
    """
    sl = (slice(0, crop), slice(0, crop)) if crop else (slice(None), slice(None))
    vmax = max(float(c.max()) for c in charges.values()) or 1.0
    fig, axes = plt.subplots(1, len(charges), figsize=(3.2 * len(charges) + 0.6, 3.3),
                             squeeze=False)
    im = None
    for ax, (title, c) in zip(axes[0], charges.items(), strict=True):
        im = ax.imshow(c[sl], cmap="magma_r", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_title(f"{title}\nmean {c.mean():.3f} per pixel", fontsize=9)
        ax.set_axis_off()
    fig.colorbar(im, ax=list(axes[0]), fraction=0.03, pad=0.02, label="Lossd charge")
    return fig
