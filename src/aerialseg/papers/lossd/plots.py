"""Figures of the distance-loss chapter (matplotlib only; arrays and xarray in, figures out).

Every figure follows the book's conventions (:mod:`aerialseg.plots`): at most
:data:`~aerialseg.plots.BOOK_WIDTH_IN` wide so that no text is shrunk, at most four panels a
row, a colour bar on every continuous map, legends outside the data, display names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from aerialseg import display, stats
from aerialseg.data.classes import ClassTable
from aerialseg.objects import ERRORS, KIND_NAMES
from aerialseg.plots import (
    BOOK_WIDTH_IN,
    _wrap,
    class_legend,
    colour_bar,
    label_image,
    legend_below,
    legend_handles,
    panel_grid,
)


def _crop(a: np.ndarray, crop: int | None) -> np.ndarray:
    return a[:crop, :crop] if crop else a


def distance_maps(labels: np.ndarray, full: np.ndarray, phi: np.ndarray, cls: int,
                  classes: ClassTable, *, crop: int | None = 192) -> Figure:
    """Labels, Lossd's signed capped city-block map and Kervadec's φ for class ``cls``.

    Args:
        labels: (H, W) training labels.
        full: (H, W) Lossd's signed map of ``cls`` (positive inside, negative outside).
        phi: (H, W) Kervadec's signed Euclidean map of ``cls`` (negative inside).
        cls: class index shown.
        classes: the class table.
        crop: show the top-left ``crop`` pixels (None: all).
    """
    name = display.class_name(classes.names[cls]).lower()
    fig, axes = panel_grid(3, aspect=1.0, extra_in=1.1)
    axes[0].imshow(label_image(_crop(labels, crop), classes), interpolation="nearest")
    axes[0].set_title("Training labels")
    cap = float(np.abs(full).max()) or 1.0
    im = axes[1].imshow(_crop(full, crop), cmap="RdBu_r", vmin=-cap, vmax=cap,
                        interpolation="nearest")
    axes[1].set_title(_wrap(f"Lossd map of {name}, capped at {cap:.0f}"))
    colour_bar(fig, im, axes[1], "px (+ inside, − outside)", orientation="horizontal")
    lim = float(np.percentile(np.abs(phi), 99)) or 1.0
    im = axes[2].imshow(_crop(phi, crop), cmap="RdBu", vmin=-lim, vmax=lim,
                        interpolation="nearest")
    axes[2].set_title(_wrap(f"Boundary loss φ of {name}, not capped"))
    colour_bar(fig, im, axes[2], "px (− inside, + outside)", orientation="horizontal",
               extend="both")
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    class_legend(fig, classes)
    return fig


def error_charges(table: pd.DataFrame) -> Figure:
    """Charge of one wrong pixel against its distance to the boundary (``error_cost_table``).

    Left: Lossd with its log and linear normalisation (a fraction of the cap's charge).
    Right: the unnormalised losses, Kervadec's boundary loss and cross-entropy.
    """
    d = table.index.to_numpy(float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(BOOK_WIDTH_IN, 3.1))
    h = [left.plot(d, table["Lossd (log): miss"], "o-", color="C0",
                   label="Lossd, log normalisation")[0],
         left.plot(d, table["Lossd (linear): miss"], "s--", color="C1",
                   label="Lossd, linear normalisation")[0]]
    left.set_ylabel("Charge of the pixel")
    left.set_ylim(0, 1.05)
    h.append(right.plot(d, table["boundary loss: miss"], "^-", color="C2",
                        label="Boundary loss")[0])
    h.append(right.plot(d, table["cross-entropy: miss"], "d:", color="C3",
                        label="Cross-entropy")[0])
    right.set_ylabel("Charge of the pixel")
    for ax, title in ((left, "Lossd (normalised by the cap)"),
                      (right, "Unnormalised losses")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(d, [f"{x:g}" for x in d])
        ax.set_xlabel("Distance to the true boundary (px)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    legend_below(fig, h, ncol=2)
    return fig


def object_counts(totals: xr.DataArray, *, kinds: Sequence[str] = ERRORS,
                  methods: Sequence[str] | None = None) -> Figure:
    """Object errors per method: mean over seeds (bars) and each seed (dots).

    Args:
        totals: ``[method, seed, kind]`` counts summed over classes and scenes
            (:func:`aerialseg.objects.totals`).
        kinds: which error kinds (one panel each, two a row).
        methods: which methods, top to bottom (default all).
    """
    methods = [str(m) for m in (methods or totals["method"].values)]
    labels = [_wrap(display.method_name(m), 22) for m in methods]
    n = len(kinds)
    ncol = 2 if n > 1 else 1
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, sharey=True, squeeze=False,
                             figsize=(BOOK_WIDTH_IN, nrow * (0.42 * len(methods) + 0.9)))
    y = np.arange(len(methods))
    for ax, kind in zip(axes.ravel(), kinds, strict=False):
        vals = totals.sel({"kind": kind, "method": methods}).transpose("method", "seed")
        vals = vals.values.astype(float)
        mean = np.array([np.nanmean(v) if np.isfinite(v).any() else np.nan for v in vals])
        ax.barh(y, mean, color=[f"C{i}" for i in range(len(methods))], alpha=0.75)
        for i, row in enumerate(vals):
            ok = np.isfinite(row)
            ax.plot(row[ok], np.full(ok.sum(), y[i]), "k.", ms=5)
        ax.set_title(KIND_NAMES.get(kind, kind))
        ax.set_yticks(y, labels)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlim(left=0)
    for ax in axes.ravel()[n:]:
        ax.remove()
    axes[0][0].invert_yaxis()
    fig.supxlabel("Count, all validation scenes (bars: mean over seeds; dots: seeds)",
                  fontsize=9)
    fig.tight_layout()
    return fig


_ERROR_STYLE = ((2, "black", r"\\\\"), (1, "magenta", "////"))
"""Overlay of :func:`aerialseg.objects.error_overlay`: value, colour, hatch (missed first,
spurious on top)."""


def object_errors_gallery(preds: Mapping[str, np.ndarray], overlays: Mapping[str, np.ndarray],
                          truth: np.ndarray, classes: ClassTable, *,
                          image: np.ndarray | None = None, crop: int | None = 256,
                          max_cols: int = 3) -> Figure:
    """Ground truth and each prediction, spurious segments and missed objects hatched.

    Spurious segments are hatched and outlined in magenta, missed objects in black (the
    whole area of each, so a spurious segment that covers most of a crop is hatched all
    over).

    Args:
        preds: method -> (H, W) predicted labels.
        overlays: method -> (H, W) map from :func:`aerialseg.objects.error_overlay`
            (1 spurious, 2 missed).
        truth: (H, W) ground truth.
        classes: the class table.
        image: optional RGB image shown first.
        crop: top-left window shown (None: all).
        max_cols: panels a row.
    """
    panels: list[tuple[str, np.ndarray, np.ndarray | None]] = []
    if image is not None:
        panels.append(("Image", _crop(image, crop), None))
    panels.append(("Ground truth", label_image(_crop(truth, crop).astype(np.int64), classes),
                   None))
    for m, p in preds.items():
        panels.append((display.method_name(m),
                       label_image(_crop(p, crop).astype(np.int64), classes),
                       _crop(overlays[m], crop)))
    fig, axes = panel_grid(len(panels), max_cols=max_cols, extra_in=0.3)
    for ax, (t, img, ov) in zip(axes, panels, strict=True):
        ax.imshow(img, interpolation="nearest")
        if ov is not None:
            for value, colour, hatch in _ERROR_STYLE:
                mask = (ov == value).astype(float)
                if mask.any():
                    filled = ax.contourf(mask, levels=[0.5, 1.5], colors="none",
                                         hatches=[hatch])
                    filled.set_edgecolor(colour)
                    filled.set_linewidth(0)
                    ax.contour(mask, levels=[0.5], colors=colour, linewidths=1.0)
        ax.set_title(_wrap(t, 26))
        ax.set_axis_off()
    fig.tight_layout()
    handles = legend_handles(classes) + [
        Patch(facecolor="white", edgecolor=colour, hatch=hatch, label=label)
        for (_, colour, hatch), label in zip(_ERROR_STYLE, ("Missed object",
                                                            "Spurious segment"), strict=True)]
    legend_below(fig, handles, ncol=4)
    return fig


def charge_maps(charges: Mapping[str, np.ndarray], *, crop: int | None = 256) -> Figure:
    """Per-pixel Lossd charge of each prediction (:func:`..analysis.lossd_cost_map`).

    One colour scale for all panels, with its colour bar; each title gives the mean charge
    per pixel over the whole scene, not only the crop shown.
    """
    vmax = max(float(c.max()) for c in charges.values()) or 1.0
    fig, axes = panel_grid(len(charges), max_cols=3, extra_in=0.9)
    im = None
    for ax, (m, c) in zip(axes, charges.items(), strict=True):
        im = ax.imshow(_crop(c, crop), cmap="magma_r", vmin=0, vmax=vmax,
                       interpolation="nearest")
        ax.set_title(_wrap(f"{display.method_name(m)}: mean {c.mean():.3f}", 26))
        ax.set_axis_off()
    fig.tight_layout()
    colour_bar(fig, im, axes, "Lossd charge of the pixel (summed over classes)",
               orientation="horizontal")
    return fig


def gain_intervals(verdicts: Sequence[stats.Verdict], *, scale: float = 100.0) -> Figure:
    """Change of each score against the baseline with its 95 % interval, per method.

    One row per (score, method); the dot is the estimate, the bar its interval, the colour
    the method; the vertical line is no change.
    """
    scores = list(dict.fromkeys((v.cls, v.metric) for v in verdicts))
    methods = list(dict.fromkeys(v.method for v in verdicts))
    colour = {m: f"C{i + 1}" for i, m in enumerate(methods)}
    step = 1.0 / (len(methods) + 1)
    fig, ax = plt.subplots(figsize=(BOOK_WIDTH_IN, 0.32 * len(scores) * len(methods) + 1.3))
    for v in verdicts:
        i = scores.index((v.cls, v.metric))
        y = i + (methods.index(v.method) - (len(methods) - 1) / 2) * step
        if np.isfinite(v.low) and np.isfinite(v.high):
            ax.plot([scale * v.low, scale * v.high], [y, y], "-", color=colour[v.method],
                    lw=2.5, alpha=0.7)
        if np.isfinite(v.estimate):
            ax.plot(scale * v.estimate, y, "o", color=colour[v.method], ms=5)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(scores)), [display.score_label(k, c) for c, k in scores])
    ax.invert_yaxis()
    base = display.method_name(verdicts[0].baseline) if verdicts else ""
    ax.set_xlabel(f"Change against {base} (points, 95 % interval)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    handles = [Line2D([], [], color=colour[m], marker="o", lw=2.5, label=display.method_name(m))
               for m in methods]
    legend_below(fig, handles, ncol=len(methods))
    return fig
