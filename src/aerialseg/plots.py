"""Every shared figure of the book, and the conventions every figure follows.

Functions take arrays/Datasets and return matplotlib figures. A chapter calls
:func:`book_style` once, then shows each figure with :func:`show`, which gives it a numbered
caption and alt text in the book::

    plots.book_style()
    fig = plots.per_class_scores(ds)
    plots.show(fig, name="fcn-mfb-per-class", caption="Per-class F1 of ...",
               alt="Grouped bars of F1 per class for FCN and FCN-MFB ...")

Conventions (shared here, followed by the papers' own ``plots.py``):

* a figure is at most :data:`BOOK_WIDTH_IN` inches wide (the content column, about 780 px),
  so no text is shrunk: nothing under :data:`MIN_FONT_PT` pt once shown
  (:func:`check_legible`);
* at most :data:`MAX_COLS` panels per row: :func:`panel_grid` wraps them into a grid and
  removes the unused axes;
* continuous maps get a colour bar (:func:`colour_bar`); legends sit outside the data
  (:func:`legend_below`, :func:`legend_right`);
* methods, classes and metrics appear under their display names (:mod:`aerialseg.display`).
"""

from __future__ import annotations

import base64
import io
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from aerialseg import display
from aerialseg.data.classes import IGNORE_INDEX, ClassTable
from aerialseg.data.scene import Scene

BOOK_WIDTH_IN = 7.8
"""Width of the content column in inches at :data:`SCREEN_DPI` (780 px)."""
SCREEN_DPI = 100
"""CSS pixels per inch of a figure shown at its natural size."""
SAVE_DPI = 150
"""Resolution of the PNG :func:`show` embeds (1.5 x: sharp on high-density screens)."""
MIN_FONT_PT = 8.0
"""Smallest font size, in points once the figure is scaled to the column."""
MAX_COLS = 4
"""Most panels in a row."""
FIGURE_KEY = "aerialseg"
"""Output-metadata key under which :func:`show` records a figure's caption, name and alt
text; the chapter runner (:mod:`aerialseg.pages`) turns it into the MyST-NB figure."""

BOOK_RC: dict[str, Any] = {
    "figure.figsize": (BOOK_WIDTH_IN, 3.4),
    "figure.dpi": SCREEN_DPI,
    "savefig.dpi": SAVE_DPI,
    "savefig.bbox": "tight",
    "savefig.facecolor": "white",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8.5,
    "ytick.labelsize": 8.5,
    "legend.fontsize": 8.5,
    "legend.title_fontsize": 9,
    "legend.frameon": False,
    "figure.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "image.interpolation": "nearest",
}
"""The book's matplotlib settings (:func:`book_style`)."""


def book_style() -> None:
    """Apply the book's matplotlib settings (:data:`BOOK_RC`); call once per chapter."""
    mpl.rcParams.update(BOOK_RC)


# --------------------------------------------------------------------------- layout helpers

def panel_grid(n: int, *, max_cols: int = MAX_COLS, panel_in: float | None = None,
               aspect: float = 1.0, extra_in: float = 0.0, **kwargs: Any
               ) -> tuple[Figure, list[Axes]]:
    """A figure with ``n`` panels in rows of at most ``max_cols``; unused axes removed.

    Args:
        n: number of panels.
        max_cols: most panels per row.
        panel_in: panel width in inches (default: the column width shared by the columns).
        aspect: panel height / width.
        extra_in: extra height in inches (a legend or colour bar below).
        **kwargs: passed to :func:`matplotlib.pyplot.subplots`.

    Returns:
        The figure and its ``n`` axes in reading order.
    """
    if n < 1:
        raise ValueError(f"panel_grid needs at least one panel, got {n}")
    ncol = min(n, max_cols)
    nrow = math.ceil(n / ncol)
    w = min(panel_in or BOOK_WIDTH_IN / ncol, BOOK_WIDTH_IN / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(w * ncol, w * aspect * nrow + extra_in),
                             squeeze=False, **kwargs)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.remove()
    return fig, flat[:n]


def colour_bar(fig: Figure, mappable: Any, ax: Axes | Sequence[Axes], label: str, *,
               orientation: str = "vertical", **kwargs: Any) -> Any:
    """A labelled colour bar for a continuous map (every continuous map gets one)."""
    opts = {"fraction": 0.046, "pad": 0.03} if orientation == "vertical" else \
        {"fraction": 0.05, "pad": 0.08, "aspect": 40}
    cb = fig.colorbar(mappable, ax=ax, orientation=orientation, **{**opts, **kwargs})
    cb.set_label(label)
    return cb


def legend_below(fig: Figure, handles: Sequence[Any], *, ncol: int | None = None,
                 **kwargs: Any) -> Any:
    """A figure legend under the panels (outside the data); call before :func:`show`."""
    n = len(handles)
    ncol = ncol or min(n, 4 if n > 4 else n)
    return fig.legend(handles=list(handles), loc="upper center", ncol=ncol,
                      bbox_to_anchor=(0.5, 0.0), frameon=False, **kwargs)


def legend_right(ax: Axes, **kwargs: Any) -> Any:
    """A legend to the right of the axes (outside the data)."""
    return ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False, **kwargs)


def _texts(fig: Figure) -> list[Any]:
    return [t for t in fig.findobj(mpl.text.Text)
            if t.get_visible() and t.get_text().strip() and t.figure is fig]


def shown_scale(fig: Figure, width_in: float = BOOK_WIDTH_IN) -> float:
    """Factor by which the book scales the figure (1: shown at its natural size)."""
    fig.canvas.draw()
    bbox = fig.get_tightbbox(fig.canvas.get_renderer())
    return min(1.0, width_in / max(bbox.width, 1e-6))


def check_legible(fig: Figure, *, min_pt: float = MIN_FONT_PT,
                  width_in: float = BOOK_WIDTH_IN) -> list[str]:
    """Texts smaller than ``min_pt`` once the figure is scaled to the column (empty: fine)."""
    scale = shown_scale(fig, width_in)
    small = []
    for t in _texts(fig):
        size = t.get_fontsize() * scale
        if size < min_pt - 1e-6:
            small.append(f"{t.get_text()[:40]!r}: {size:.1f} pt")
    return small


_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


def show(fig: Figure, *, caption: str, alt: str, name: str | None = None,
         check: bool = True) -> None:
    """Show ``fig`` in the notebook as a numbered book figure, then close it.

    The chapter runner turns the output into a MyST-NB figure: "Figure N" with ``caption``
    under it, ``alt`` as the image's text alternative and ``name`` as its label (the
    chapter's text refers to it with the ``numref`` role).

    Args:
        fig: the figure.
        caption: what the figure shows and what to see in it (MyST Markdown, one paragraph).
        alt: a text alternative: what is plotted against what, for readers who cannot see
            it (never a file name).
        name: a label unique in the whole book, to refer to the figure: lower case letters,
            digits and hyphens, starting with a letter and the chapter's topic
            (``"fcn-mfb-per-class"``); default ``fig-<chapter>-<k>`` (set by the runner).
        check: warn when a text would be shown under :data:`MIN_FONT_PT` pt.

    Raises:
        ValueError: empty caption or alt text, or a malformed name.
    """
    if not caption or not caption.strip():
        raise ValueError("show() needs a caption: one sentence saying what the figure shows")
    if not alt or not alt.strip() or re.search(r"\.(png|jpe?g|svg)$|/", alt.strip()):
        raise ValueError("show() needs alt text that describes the figure in words (not a "
                         f"file name), got {alt!r}")
    if name is not None and not _NAME.match(name):
        raise ValueError(f"figure name {name!r}: use lower case letters, digits and hyphens, "
                         "starting with a letter, e.g. 'fcn-mfb-per-class'")
    if check:
        small = check_legible(fig)
        if small:
            warnings.warn(f"figure {name or caption[:40]!r}: text under {MIN_FONT_PT:g} pt "
                          f"once scaled to the column: {', '.join(small[:5])}", stacklevel=2)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=SAVE_DPI, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    png = buf.getvalue()
    w_px = int.from_bytes(png[16:20], "big")  # PNG IHDR width
    css = min(round(BOOK_WIDTH_IN * SCREEN_DPI), round(w_px * SCREEN_DPI / SAVE_DPI))
    meta = {"image/png": {"width": css},
            FIGURE_KEY: {"caption": caption.strip(), "alt": " ".join(alt.split()),
                         **({"name": name} if name else {})}}
    bundle = {"image/png": base64.b64encode(png).decode("ascii"),
              "text/plain": f"<Figure: {' '.join(alt.split())[:200]}>"}
    try:
        from IPython.display import display as ipy_display
    except ImportError:  # outside IPython: nothing to show
        return
    ipy_display(bundle, raw=True, metadata=meta)


# --------------------------------------------------------------------------- classes and images

def _cmap(classes: ClassTable) -> ListedColormap:
    colours = np.asarray(classes.colours, float) / 255.0
    return ListedColormap(colours)


def label_image(labels: np.ndarray, classes: ClassTable) -> np.ndarray:
    """RGB float image of a label map; ignore pixels are black."""
    rgb = np.asarray(classes.colours, float)[np.clip(labels, 0, classes.num_classes - 1)] / 255
    rgb[labels == IGNORE_INDEX] = 0.0
    return rgb


def legend_handles(classes: ClassTable) -> list[Patch]:
    """Legend patches in the class colours, labelled with the classes' display names."""
    return [Patch(facecolor=np.asarray(c) / 255, edgecolor="0.3", label=display.class_name(n))
            for n, c in zip(classes.names, classes.colours, strict=True)]


def class_legend(fig: Figure, classes: ClassTable, **kwargs: Any) -> Any:
    """The class colours as a legend under the panels (outside the data)."""
    return legend_below(fig, legend_handles(classes),
                        ncol=min(classes.num_classes, 4), **kwargs)


def false_colour(scene: Scene | np.ndarray) -> np.ndarray:
    """The first three bands (IR-R-G or R-G-B) stretched 1-99 % as an (H, W, 3) image.

    Takes a scene or a (C, H, W) array.
    """
    bands = scene.bands if isinstance(scene, Scene) else np.asarray(scene)
    x = bands[:3].transpose(1, 2, 0).astype(float)
    lo, hi = np.percentile(x, (1, 99), axis=(0, 1))
    return np.clip((x - lo) / np.maximum(hi - lo, 1e-6), 0, 1)


def _nanmean(x: np.ndarray, axis: int | None = None) -> Any:
    """``np.nanmean`` without the warning on all-NaN slices (they stay NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def _nanstd(x: np.ndarray, axis: int | None = None) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanstd(x, axis=axis)


# --------------------------------------------------------------------------- data figures

def show_scenes(scenes: Sequence[Scene], *, max_scenes: int = 3) -> Figure:
    """Image, height (nDSM if present) and labels of the first scenes."""
    scenes = list(scenes)[:max_scenes]
    has_height = "ndsm" in scenes[0].band_names
    ncol = 3 if has_height else 2
    side = BOOK_WIDTH_IN / ncol
    fig, axes = plt.subplots(len(scenes), ncol, figsize=(BOOK_WIDTH_IN, side * len(scenes)),
                             squeeze=False)
    for row, s in zip(axes, scenes, strict=True):
        row[0].imshow(false_colour(s))
        row[0].set_title(f"{s.name}: {'-'.join(b.upper() for b in s.band_names[:3])}")
        if has_height:
            im = row[1].imshow(s.select_bands(("ndsm",))[0], cmap="viridis")
            row[1].set_title("Height above ground (nDSM)")
            colour_bar(fig, im, row[1], "m")
        row[-1].imshow(label_image(s.labels, s.classes), interpolation="nearest")
        row[-1].set_title("Labels")
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.tight_layout()
    class_legend(fig, scenes[0].classes)
    return fig


def class_shares(shares: dict[str, np.ndarray], classes: ClassTable) -> Figure:
    """Bar chart of class pixel shares per dataset/split."""
    fig, ax = plt.subplots(figsize=(BOOK_WIDTH_IN, 3.0))
    n = len(shares)
    width = 0.8 / max(n, 1)
    x = np.arange(classes.num_classes)
    for i, (label, s) in enumerate(shares.items()):
        ax.bar(x + i * width - 0.4 + width / 2, 100 * np.asarray(s), width, label=label)
    ax.set_xticks(x, [display.class_name(c) for c in classes.names], rotation=20, ha="right")
    ax.set_ylabel("Share of pixels (%)")
    legend_right(ax)
    fig.tight_layout()
    return fig


def eroded_mask_figure(scene: Scene, crop: int = 160) -> Figure:
    """Labels and the eroded-boundary evaluation mask on a crop."""
    lab = scene.labels[:crop, :crop]
    mask = scene.eval_mask[:crop, :crop]
    fig, axes = plt.subplots(1, 2, figsize=(BOOK_WIDTH_IN * 0.75, BOOK_WIDTH_IN * 0.375 + 0.6))
    axes[0].imshow(label_image(lab, scene.classes), interpolation="nearest")
    axes[0].set_title("Labels")
    shown = label_image(np.where(mask, lab, IGNORE_INDEX), scene.classes)
    axes[1].imshow(shown, interpolation="nearest")
    axes[1].set_title(f"Evaluated pixels ({100 * mask.mean():.0f} % of this crop)")
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    class_legend(fig, scene.classes)
    return fig


# --------------------------------------------------------------------------- predictions

def _label_panels(fig: Figure, axes: Sequence[Axes], panels: Sequence[tuple[str, np.ndarray]],
                  crop: int | None) -> None:
    for ax, (t, img) in zip(axes, panels, strict=True):
        ax.imshow(img[:crop, :crop] if crop else img, interpolation="nearest")
        ax.set_title(_wrap(t))
        ax.set_axis_off()


def prediction_gallery(maps: dict[str, dict[str, np.ndarray]], classes: ClassTable, *,
                       image: np.ndarray | None = None, crop: int | None = 256,
                       max_cols: int = MAX_COLS) -> Figure:
    """Truth and each model's prediction, in rows of ``max_cols`` (``maps``: id -> maps)."""
    titles = list(maps)
    first = maps[titles[0]]
    panels: list[tuple[str, np.ndarray]] = []
    if image is not None:
        panels.append(("Image", image))
    panels.append(("Ground truth", label_image(first["truth"].astype(np.int64), classes)))
    for t in titles:
        panels.append((display.method_name(t), label_image(maps[t]["pred"].astype(np.int64),
                                                          classes)))
    fig, axes = panel_grid(len(panels), max_cols=max_cols, extra_in=0.2)
    _label_panels(fig, axes, panels, crop)
    fig.tight_layout()
    class_legend(fig, classes)
    return fig


def gallery(ds: xr.Dataset, classes: ClassTable, *, methods: Sequence[str] | None = None,
            max_cols: int = MAX_COLS) -> Figure | None:
    """The same crop: ground truth, then each method's prediction and uncertainty.

    Predictions are of the first seed, in rows of ``max_cols``; the MC-dropout uncertainty
    maps follow on their own rows, on one colour scale with its colour bar.

    Args:
        ds: results with ``pred_crop`` and ``truth_crop`` (and ``uncertainty_crop``).
        classes: the class table.
        methods: which methods (default all); pick a few for a readable figure.
        max_cols: panels per row.
    """
    if "pred_crop" not in ds or "truth_crop" not in ds:
        return None
    methods = [str(m) for m in (methods or ds["method"].values)]
    panels = [("Ground truth", label_image(ds["truth_crop"].values.astype(np.int64), classes))]
    for m in methods:
        pred = ds["pred_crop"].sel({"method": m}).isel(seed=0).values
        panels.append((display.method_name(m),
                       label_image(np.nan_to_num(pred, nan=255).astype(np.int64), classes)))
    unc: list[tuple[str, np.ndarray]] = []
    if "uncertainty_crop" in ds:
        for m in methods:
            u = ds["uncertainty_crop"].sel({"method": m}).isel(seed=0).values
            if np.isfinite(u).any():
                unc.append((f"{display.method_name(m)}\n(uncertainty)", u))
    ncol = min(max_cols, max(len(panels), len(unc)))
    rows_lab, rows_unc = math.ceil(len(panels) / ncol), math.ceil(len(unc) / ncol)
    side = BOOK_WIDTH_IN / ncol
    fig, grid = plt.subplots(rows_lab + rows_unc, ncol, squeeze=False,
                             figsize=(BOOK_WIDTH_IN, (side + 0.25) * (rows_lab + rows_unc)))
    lab_axes = list(grid[:rows_lab].ravel())
    unc_axes = list(grid[rows_lab:].ravel())
    for ax in lab_axes[len(panels):] + unc_axes[len(unc):]:
        ax.remove()
    _label_panels(fig, lab_axes[:len(panels)], [(_wrap(t), img) for t, img in panels], None)
    if unc:
        hi = max(float(np.nanmax(u)) for _, u in unc)
        im = None
        for ax, (t, u) in zip(unc_axes, unc, strict=False):
            im = ax.imshow(u, cmap="viridis", vmin=0, vmax=hi)
            ax.set_title(_wrap(t))
            ax.set_axis_off()
        last = unc_axes[len(unc) - 1]
        cax = last.inset_axes((1.04, 0.0, 0.06, 1.0))
        cb = fig.colorbar(im, cax=cax)
        cb.set_label("Uncertainty")
    fig.tight_layout()
    class_legend(fig, classes)
    return fig


def _wrap(title: str, width: int = 24) -> str:
    """A panel title on lines of at most ``width`` characters (panels are narrow)."""
    import textwrap

    return "\n".join(textwrap.fill(line, width) for line in title.split("\n"))


def confusion_panel(ax: Any, cm: np.ndarray, labels: Sequence[str], *,
                    fontsize: float = 8) -> Any:
    """Draw ``cm`` row-normalised in % (rows: truth) with its values on ``ax``; the image."""
    pct = 100 * np.asarray(cm, float) / np.maximum(np.asarray(cm).sum(1, keepdims=True), 1)
    im = ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{pct[i, j]:.0f}", ha="center", va="center", fontsize=fontsize,
                    color="white" if pct[i, j] > 50 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    return im


def confusion_heatmap(cm: np.ndarray, names: Sequence[str], title: str = "") -> Figure:
    """Row-normalised confusion matrix (rows: truth), in %, with its colour bar."""
    labels = [display.class_name(n) for n in names]
    fig, ax = plt.subplots(figsize=(4.8, 4.0))
    im = confusion_panel(ax, cm, labels)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    if title:
        ax.set_title(title)
    colour_bar(fig, im, ax, "% of the true class")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- training

def training_curves(histories: Mapping[Any, Sequence[Mapping[str, float]]], *,
                    log: bool = False) -> Figure:
    """Training loss per epoch of every run, in one figure.

    ``histories`` maps ``(method, seed)`` (or a label such as ``"fcn seed 0"``) to a run's
    history. Runs of one method share a colour; the legend lists each method once.
    """
    fig, ax = plt.subplots(figsize=(BOOK_WIDTH_IN, 3.2))
    colours: dict[str, Any] = {}
    for key, hist in histories.items():
        if isinstance(key, tuple):
            method = str(key[0])
        else:
            found = re.fullmatch(r"(.+?) seed \d+", str(key))
            method = found.group(1) if found else str(key)
        first = method not in colours
        if first:
            colours[method] = f"C{len(colours) % 10}"
        ax.plot([h["epoch"] + 1 for h in hist], [h["loss"] for h in hist], marker="o", ms=2.5,
                lw=1.2, color=colours[method], alpha=0.85,
                label=display.method_name(method) if first else None)
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Training loss")
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    legend_right(ax, title="Method (one line per seed)")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- scores

def _evaluated_classes(ds: xr.Dataset) -> list[str]:
    ev = ds["evaluated"].values if "evaluated" in ds.coords else [True] * ds.sizes["class"]
    return [str(c) for c, e in zip(ds["class"].values, ev, strict=True)
            if c != "overall" and e]


def per_class_scores(ds: xr.Dataset, *, metric: str = "f1", protocol: str = "eroded",
                     reported: dict[str, dict[str, float]] | None = None,
                     methods: Sequence[str] | None = None) -> Figure:
    """Per-class scores of every method: mean over seeds with the seeds as dots."""
    sc = ds["scores"].sel(protocol=protocol, metric=metric)
    classes = _evaluated_classes(ds)
    methods = [str(m) for m in (methods or ds["method"].values)]
    fig, ax = plt.subplots(figsize=(BOOK_WIDTH_IN, 3.4))
    x = np.arange(len(classes))
    width = 0.8 / len(methods)
    for i, m in enumerate(methods):
        vals = 100 * np.atleast_2d(sc.sel({"method": m, "class": classes}).values)
        pos = x + i * width - 0.4 + width / 2
        ax.bar(pos, _nanmean(vals, 0), width, label=display.method_name(m), alpha=0.85)
        for row in vals:
            ax.plot(pos, row, "k.", ms=3)
        if reported and m in reported:
            rep = [reported[m].get(c, np.nan) for c in classes]
            ax.plot(pos, rep, "_", color="C3", ms=12, mew=2)
    ax.plot([], [], "k.", ms=4, label="one seed")
    if reported:
        ax.plot([], [], "_", color="C3", ms=12, mew=2, label="paper (other data)")
    ax.set_xticks(x, [display.class_name(c) for c in classes], rotation=20, ha="right")
    ax.set_ylabel(f"{display.metric_name(metric, 'class')} (%)")
    ax.set_ylim(0, 100)
    legend_right(ax)
    fig.tight_layout()
    return fig


def metric_dots(ds: xr.Dataset, *, metrics: Sequence[tuple[str, str]] = (
        ("f1", "mean F1"), ("iou", "mIoU"), ("oa", "OA"), ("boundary_f1", "boundary F1")),
        protocol: str = "eroded", methods: Sequence[str] | None = None) -> Figure:
    """Overall metrics per method: each seed as a dot, mean ± std as a bar."""
    sc = ds["scores"].sel({"protocol": protocol, "class": "overall"})
    methods = [str(m) for m in (methods or ds["method"].values)]
    k = len(metrics)
    fig, axes = plt.subplots(1, k, figsize=(BOOK_WIDTH_IN, 0.28 * len(methods) + 1.2),
                             sharey=True, squeeze=False)
    y = np.arange(len(methods))
    for ax, (metric, label) in zip(axes[0], metrics, strict=True):
        vals = 100 * np.atleast_2d(sc.sel({"metric": metric, "method": methods}).values)
        mean, std = _nanmean(vals, 1), _nanstd(vals, 1)
        ax.errorbar(mean, y, xerr=std, fmt="o", color="C0", capsize=3, ms=4)
        for i, row in enumerate(vals):
            ax.plot(row, np.full_like(row, i), ".", color="0.4", ms=3)
        ax.set_title(f"{display.column_name(label)} (%)")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(y, [display.method_name(m) for m in methods])
    axes[0][0].invert_yaxis()
    fig.tight_layout()
    return fig


def coverage_curves(ds: xr.Dataset, *, uncertainty: str = "mean_class_std",
                    paper: Mapping[float, float] | None = None,
                    threshold_panel: bool = False,
                    methods: Sequence[str] | None = None) -> Figure | None:
    """OA of the pixels kept against the fraction kept (the least uncertain kept first).

    One line per method (mean over seeds). ``threshold_panel`` adds, on the left, OA and the
    fraction kept against the normalised threshold itself; ``paper`` ({target OA: % kept})
    marks a paper's reported points. The legend sits under the panels.

    Returns:
        The figure, or None when the results hold no MC-dropout threshold curves.
    """
    if "accuracy" not in ds:
        return None
    ncol = 2 if threshold_panel else 1
    width = BOOK_WIDTH_IN if threshold_panel else BOOK_WIDTH_IN * 0.62
    fig, axes = plt.subplots(1, ncol, figsize=(width, 3.3), squeeze=False)
    ax2 = axes[0][-1]
    tau = ds["threshold"].values
    handles = []
    for m in (methods or ds["method"].values):
        acc = ds["accuracy"].sel({"method": m, "uncertainty": uncertainty}).values
        cov = ds["coverage"].sel({"method": m, "uncertainty": uncertainty}).values
        if not np.isfinite(acc).any():
            continue
        a, c = _nanmean(acc, 0), _nanmean(cov, 0)
        line, = ax2.plot(100 * c, 100 * a, label=display.method_name(str(m)))
        handles.append(line)
        if threshold_panel:
            axes[0][0].plot(tau, 100 * a, color=line.get_color())
            axes[0][0].plot(tau, 100 * c, "--", color=line.get_color())
    if paper:
        handles.append(ax2.scatter(list(paper.values()), [100 * t for t in paper], marker="x",
                                   color="k", zorder=3, label="paper (reported)"))
    if threshold_panel:
        ax1 = axes[0][0]
        ax1.set_xlabel("Uncertainty threshold τ (normalised)")
        ax1.set_ylabel("OA of kept pixels (solid)\nand pixels kept (dashed), %")
        ax1.grid(alpha=0.3)
    ax2.set_xlabel("Pixels kept (%), least uncertain first")
    ax2.set_ylabel("OA of kept pixels (%)")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    if handles:
        legend_below(fig, handles, ncol=min(len(handles), 3))
    return fig


def reliability_diagrams(ds: xr.Dataset, *, methods: Sequence[str] | None = None,
                         max_cols: int = MAX_COLS) -> Figure:
    """Accuracy vs. confidence per method (first seed), ECE (%) in each title.

    Methods without calibration data (e.g. an SVM combination, whose scores are not
    probabilities) get no panel; the grid has no empty panel.
    """
    chosen = [str(m) for m in (methods or ds["method"].values)]
    chosen = [m for m in chosen
              if np.isfinite(ds["reliability_accuracy"].sel({"method": m}).isel(seed=0)
                             .values).any()]
    if not chosen:
        raise ValueError("no method has reliability data (calibration bins) in these results")
    fig, axes = panel_grid(len(chosen), max_cols=max_cols, sharex=True, sharey=True)
    for ax, m in zip(axes, chosen, strict=True):
        sel = ds.sel({"method": m}).isel(seed=0)
        conf = sel["reliability_confidence"].values
        acc = sel["reliability_accuracy"].values
        ok = np.isfinite(conf) & np.isfinite(acc)
        ax.plot([0, 1], [0, 1], ":", color="0.5")
        ax.bar(conf[ok], acc[ok], width=1 / len(conf), alpha=0.7, edgecolor="k", lw=0.3)
        ece = float(sel["scores"].sel({"protocol": "eroded", "class": "overall",
                                       "metric": "ece"}))
        ax.set_title(f"{display.method_name(m)}\nECE {100 * ece:.1f} %")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    fig.supxlabel("Confidence")
    fig.supylabel("Accuracy")
    fig.tight_layout()
    return fig


def paired_differences(df: pd.DataFrame, *, baseline: str, label: str) -> Figure:
    """Per-seed differences to the baseline (dots) with their mean (bar)."""
    methods = list(dict.fromkeys(df["method"]))
    fig, ax = plt.subplots(figsize=(BOOK_WIDTH_IN, 0.3 * len(methods) + 1.2))
    for i, m in enumerate(methods):
        d = df.loc[df["method"] == m, "difference"].values
        ax.barh(i, d.mean(), color="C0" if d.mean() >= 0 else "C3", alpha=0.5)
        ax.plot(d, np.full_like(d, i), "k.", ms=5)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(methods)), [display.method_name(m) for m in methods])
    ax.invert_yaxis()
    ax.set_xlabel(f"{label}: difference to {display.method_name(baseline)} "
                  "(points, per seed)")
    fig.tight_layout()
    return fig
