"""Figures of the EFM chapter: maps over training, their change, pixel weights, gains.

Functions take arrays or DataFrames and return matplotlib figures (no torch) sized for the
book's column (:data:`aerialseg.plots.BOOK_WIDTH_IN`), at most four panels a row, a colour
bar on every continuous map. Show them with :func:`aerialseg.plots.show`.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from aerialseg.data.classes import ClassTable
from aerialseg.plots import (
    BOOK_WIDTH_IN,
    MAX_COLS,
    colour_bar,
    label_image,
    legend_below,
    legend_handles,
)

ERROR_CMAP = ListedColormap(["#f2f2f2", "#b2182b"])
"""Error maps: light grey where the prediction is right, red where it is wrong."""
MAP_ROWS = (("efm", "EFM", "magma"), ("entropy", "Entropy / log C", "viridis"),
            ("error", "Error", None))
"""(snapshot key, row label, colour map) of :func:`efm_evolution` (None: :data:`ERROR_CMAP`)."""


def _pick(n: int, k: int) -> list[int]:
    """At most ``k`` indices of ``range(n)`` spread evenly, first and last included."""
    if n <= k:
        return list(range(n))
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, k)})


def _bare(ax: Axes) -> None:
    """No ticks and no frame, but keep the y label (a row title)."""
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)


def _after(e: float) -> str:
    """A snapshot's title: the epochs trained when it was taken."""
    if e == 0:
        return "Start"
    return f"After {e:g} epoch{'s' if e != 1 else ''}"


def _error_bar(fig: Figure, im: object, axes: object) -> None:
    cb = colour_bar(fig, im, axes, "")
    cb.set_ticks([0.25, 0.75], labels=["right", "wrong"])


def efm_evolution(snaps: Mapping[str, np.ndarray], *, classes: ClassTable | None = None,
                  image: np.ndarray | None = None, max_columns: int = MAX_COLS) -> Figure:
    """EFM, normalised entropy and error map of a validation crop at several epochs.

    The first row shows the crop (``image``), its ground truth and the class legend; then
    one row per map (EFM, entropy / log C, error) with a column per snapshot (at most
    ``max_columns``, spread evenly, first and last kept) and a colour bar per row.

    Args:
        snaps: :func:`aerialseg.papers.efm.method.load_monitor` output (``epoch``, ``efm``,
            ``entropy``, ``error``, ``labels``).
        classes: class table for the ground-truth panel and legend.
        image: (h, w, 3) display image of the same crop.
        max_columns: snapshots shown.
    """
    idx = _pick(len(snaps["epoch"]), max(1, min(max_columns, MAX_COLS)))
    ncol = max(len(idx), 3)
    side = (BOOK_WIDTH_IN - 0.9) / ncol
    fig, axes = plt.subplots(1 + len(MAP_ROWS), ncol, squeeze=False,
                             figsize=(BOOK_WIDTH_IN, (side + 0.3) * (1 + len(MAP_ROWS))))
    top = axes[0]
    refs = []
    if image is not None:
        refs.append(("Image", image))
    if classes is not None:
        refs.append(("Ground truth", label_image(np.asarray(snaps["labels"], np.int64),
                                                 classes)))
    for ax in top:
        ax.set_axis_off()
    for ax, (title, img) in zip(top, refs, strict=False):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title)
    if classes is not None and len(refs) < ncol:
        top[len(refs)].legend(handles=legend_handles(classes), loc="center left",
                              frameon=False, title="Class")
    for r, (key, name, cmap) in enumerate(MAP_ROWS, start=1):
        im = None
        for c in range(ncol):
            ax = axes[r, c]
            if c >= len(idx):
                ax.set_axis_off()
                continue
            i = idx[c]
            data = np.asarray(snaps[key][i], float)
            if cmap is None:
                im = ax.imshow(data, cmap=ERROR_CMAP, norm=BoundaryNorm([0, 0.5, 1], 2),
                               interpolation="nearest")
            else:
                im = ax.imshow(data, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            _bare(ax)
            if r == 1:
                ax.set_title(_after(snaps["epoch"][i]))
            if c == 0:
                ax.set_ylabel(name)
        used = list(axes[r][:len(idx)])
        if cmap is None:
            _error_bar(fig, im, used)
        else:
            colour_bar(fig, im, used, name)
    return fig


def efm_difference(snaps: Mapping[str, np.ndarray]) -> Figure:
    """First and last EFM / entropy snapshot and their difference (start − end).

    Positive (red) where a pixel was harder at the start than at the end of training. Each
    row has a colour bar for the two maps (0 to 1) and one for the difference (−1 to 1).
    """
    fig, axes = plt.subplots(2, 3, figsize=(BOOK_WIDTH_IN, 5.4), squeeze=False)
    e0, e1 = snaps["epoch"][0], snaps["epoch"][-1]
    for row, (key, name) in zip(axes, (("efm", "EFM"), ("entropy", "Entropy / log C")),
                                strict=True):
        a, b = (np.asarray(snaps[key][i], float) for i in (0, -1))
        im = None
        for ax, img, t in ((row[0], a, _after(e0)), (row[1], b, _after(e1))):
            im = ax.imshow(img, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(t)
            _bare(ax)
        row[0].set_ylabel(name)
        colour_bar(fig, im, list(row[:2]), "")  # the row's label names the map
        diff = row[2].imshow(a - b, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        row[2].set_title(f"Start − end (mean {np.mean(a - b):+.3f})".replace("-", "−"))
        _bare(row[2])
        colour_bar(fig, diff, row[2], "Start − end")
    return fig


def weight_decomposition(panels: Mapping[str, np.ndarray], *,
                         classes: ClassTable | None = None) -> Figure:
    """Maps in a grid of at most two columns, each continuous one with its colour bar.

    An RGB panel (h, w, 3) is shown as is (with the class legend below when ``classes`` is
    given); a 2-D map gets its own colour scale and bar.
    """
    n = len(panels)
    ncol = min(2, n)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(BOOK_WIDTH_IN, 3.5 * nrow), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.remove()
    for ax, (name, arr) in zip(flat, panels.items(), strict=False):
        arr = np.asarray(arr, float)
        if arr.ndim == 3:
            ax.imshow(arr, interpolation="nearest")
        else:
            im = ax.imshow(arr, cmap="magma", interpolation="nearest")
            colour_bar(fig, im, ax, name)
        ax.set_title(name)
        ax.set_axis_off()
    fig.tight_layout()
    if classes is not None:
        legend_below(fig, legend_handles(classes), ncol=min(classes.num_classes, 3))
    return fig


def gain_intervals(gains: pd.DataFrame, *, metric: str = "weighted IoU",
                   xlabel: str = "Gain in weighted IoU (points, full ground truth)") -> Figure:
    """Each comparison's gain (dot) with its 95 % interval (line), the paper's gain beside.

    Args:
        gains: :func:`aerialseg.papers.efm.analysis.stage_gains` (long form).
        metric: the ``metric`` label to plot.
        xlabel: the axis label.
    """
    g = gains[gains["metric"] == metric].reset_index(drop=True)
    labels = [row["label"] if row["model"] == "fpn" else
              f"{'PSPNet' if row['model'] == 'pspnet' else row['model']}: {row['label']}"
              for _, row in g.iterrows()]
    fig, ax = plt.subplots(figsize=(BOOK_WIDTH_IN, 0.42 * max(len(g), 1) + 1.3))
    y = np.arange(len(g))
    err = np.vstack([g["estimate"] - g["low"], g["high"] - g["estimate"]])
    err = np.where(np.isfinite(err), err, 0.0)
    ax.errorbar(g["estimate"], y, xerr=err, fmt="o", color="C0", capsize=3, ms=5,
                label="Ours: gain and 95 % interval")
    has_paper = np.isfinite(g["paper"].to_numpy(float))
    if has_paper.any():
        ax.plot(g["paper"][has_paper], y[has_paper], "D", color="0.45", ms=5, mfc="none",
                label="Paper (its baseline: CE + Dice)")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    handles = [Line2D([], [], marker="o", color="C0", ls="-", label="Ours: gain and 95 % "
                      "interval")]
    if has_paper.any():
        handles.append(Line2D([], [], marker="D", color="0.45", mfc="none", ls="none",
                              label="Paper (its baseline: CE + Dice)"))
    legend_below(fig, handles, ncol=len(handles))
    return fig
