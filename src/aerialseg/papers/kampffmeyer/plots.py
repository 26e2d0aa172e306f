"""Figures of the Kampffmeyer chapters (matplotlib only): patch CNN, uncertainty, ensembles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from aerialseg import display
from aerialseg.data.classes import ClassTable
from aerialseg.plots import (
    BOOK_WIDTH_IN,
    MAX_COLS,
    confusion_panel,
    label_image,
    legend_handles,
)

MAP_TITLES = {"mean_class_std": "mean-class std", "entropy": "entropy",
              "mutual_info": "mutual information"}

MAP_LABELS = {"mean_class_std": ("Mean-class std", "probability"),
              "predicted_class_std": ("Std of the predicted class", "probability"),
              "entropy": ("Predictive entropy", "nats"),
              "mutual_info": ("Mutual information", "nats")}
"""Panel title and unit of each uncertainty map."""


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



def sample_patches(patches: np.ndarray, labels: np.ndarray, angles: np.ndarray,
                   classes: ClassTable, *, per_class: int = 6,
                   band_names: Sequence[str] = ()) -> Figure:
    """A grid of training patches, one row per class, centre pixel marked.

    The figure fits the book's column (:data:`aerialseg.plots.BOOK_WIDTH_IN`): the class
    names take the first column, the patches the others; the rotation of a rotated (car)
    patch is its title.

    Args:
        patches: (N, C, P, P) normalised patches (the first three bands are shown).
        labels: (N,) class of each patch (its centre pixel).
        angles: (N,) rotation in degrees (0 = unrotated), shown in the titles.
        classes: the class table (row names).
        per_class: patches shown per class.
        band_names: names of the shown bands (the first three), for the axis note.
    """
    present = [c for c in range(classes.num_classes) if (labels == c).any()]
    label_in = 1.35
    side = (BOOK_WIDTH_IN - label_in) / per_class
    title_in = 0.25  # room for a rotation angle above each row
    fig = plt.figure(figsize=(BOOK_WIDTH_IN, (side + title_in) * len(present) + 0.35))
    grid = fig.add_gridspec(len(present), per_class + 1,
                            width_ratios=[label_in] + [side] * per_class,
                            left=0.0, right=1.0, top=1.0 - 0.05 / len(present),
                            bottom=0.35 / fig.get_size_inches()[1],
                            hspace=title_in / side, wspace=0.05)
    rgb = patches[:, :3].transpose(0, 2, 3, 1)
    lo, hi = np.percentile(rgb, (1, 99), axis=(0, 1, 2))  # one stretch for all patches
    rgb = np.clip((rgb - lo) / np.maximum(hi - lo, 1e-6), 0, 1)
    half = patches.shape[-1] // 2
    for r, c in enumerate(present):
        name_ax = fig.add_subplot(grid[r, 0])
        name_ax.set_axis_off()
        name_ax.text(0.95, 0.5, display.class_name(classes.names[c]), ha="right",
                     va="center", fontsize=9, transform=name_ax.transAxes)
        idx = np.flatnonzero(labels == c)[:per_class]
        for j in range(per_class):
            ax = fig.add_subplot(grid[r, j + 1])
            ax.set_axis_off()
            if j >= len(idx):
                continue
            ax.imshow(rgb[idx[j]], interpolation="nearest")
            ax.plot([half], [half], "+", color="red", ms=9, mew=1.5)
            a = float(angles[idx[j]])
            if a:
                ax.set_title(f"rotated {a:.0f}°", fontsize=8.5, pad=2)
    if band_names:
        fig.text(0.5, 0.0, f"Bands shown as colours: {'-'.join(b.upper() for b in band_names[:3])}"
                 "; red cross: the centre pixel that labels the patch.", ha="center",
                 va="bottom", fontsize=9)
    return fig


def confusion_pair(cms: Mapping[str, np.ndarray], names: Sequence[str], *,
                   evaluated: Sequence[int] | None = None) -> Figure:
    """Row-normalised confusion matrices of up to two models side by side, in %.

    Args:
        cms: panel title (a method's display name) -> (C, C) counts, rows truth.
        names: class ids of the rows/columns.
        evaluated: rows and columns to show (default all; pass the evaluated classes to
            leave out an unevaluated class such as clutter).
    """
    keep = list(range(len(names)) if evaluated is None else evaluated)
    labels = [display.class_name(names[i]) for i in keep]
    n = len(cms)
    if not 1 <= n <= 2:
        raise ValueError(f"confusion_pair shows one or two matrices, got {n}")
    width = BOOK_WIDTH_IN if n == 2 else BOOK_WIDTH_IN * 0.6
    fig, axes = plt.subplots(1, n, figsize=(width, 3.9 if n == 2 else 4.2), squeeze=False,
                             sharey=True, layout="constrained")
    im = None
    for ax, (title, cm) in zip(axes[0], cms.items(), strict=True):
        im = confusion_panel(ax, np.asarray(cm, float)[np.ix_(keep, keep)], labels,
                             fontsize=8.5)
        ax.set_xlabel("Predicted class")
        ax.set_title(title)
    axes[0][0].set_ylabel("True class")
    cb = fig.colorbar(im, ax=list(axes[0]), fraction=0.04, pad=0.02)
    cb.set_label("% of the true class's pixels")
    return fig


def dense_vs_patch_scatter(dense: np.ndarray, patch: np.ndarray) -> Figure:
    """Per-patch against dense class probabilities at the same pixels (should be y = x)."""
    fig, ax = plt.subplots(figsize=(3.6, 3.4))
    ax.plot([0, 1], [0, 1], color="0.7", lw=1)
    ax.scatter(patch.ravel(), dense.ravel(), s=8, alpha=0.7)
    ax.set_xlabel("Probability, each patch on its own")
    ax.set_ylabel("Probability, dense pass")
    ax.set_aspect("equal")
    fig.tight_layout()
    return fig


def uncertainty_panels(maps: Mapping[str, Mapping[str, np.ndarray]], classes: ClassTable, *,
                       image: np.ndarray | None = None,
                       kinds: Sequence[str] = ("mean_class_std", "mutual_info"),
                       crop: int | None = 256) -> Figure:
    """The scene, then one row per model: MC-mean prediction, errors, uncertainty maps.

    Four panels per row. The first row shows the image, the ground truth and the class
    legend; each model row its prediction, its errors (black: wrong, white: right, grey:
    not evaluated) and the maps ``kinds`` (at most two) on one colour scale per map shared
    by the models, with a colour bar under each map's column.

    Args:
        maps: per model (row label: its display name), the kept maps of one scene
            (``pred``, ``truth``, ``eval_mask`` and the uncertainty maps), as in
            ``Evaluation.maps[scene]``.
        classes: the dataset's class table (colours, names).
        image: (H, W, 3) picture of the scene (None: the first row shows the truth only).
        kinds: the uncertainty maps shown (one or two).
        crop: the top-left ``crop`` x ``crop`` px (None: the whole scene).
    """
    if not maps:
        raise ValueError("uncertainty_panels needs the maps of at least one model")
    kinds = list(kinds)
    if not 1 <= len(kinds) <= MAX_COLS - 2:
        raise ValueError(f"show one or two uncertainty maps, got {kinds}")
    names = list(maps)
    sl = (slice(0, crop), slice(0, crop)) if crop else (slice(None), slice(None))
    ncol = 2 + len(kinds)
    side = BOOK_WIDTH_IN / ncol
    fig = plt.figure(figsize=(BOOK_WIDTH_IN, side * (1 + len(names)) + 0.9),
                     layout="constrained")
    gs = fig.add_gridspec(1 + len(names), ncol)
    first = maps[names[0]]
    top = [("Ground truth", label_image(first["truth"][sl].astype(np.int64), classes))]
    if image is not None:
        top.insert(0, ("Image", image[sl]))
    for c, (title, img) in enumerate(top):
        ax = fig.add_subplot(gs[0, c])
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title)
        ax.set_axis_off()
    leg = fig.add_subplot(gs[0, len(top):])
    leg.set_axis_off()
    leg.legend(handles=legend_handles(classes), loc="center left", frameon=False,
               title="Classes", ncol=2 if classes.num_classes > 4 else 1)
    scale = {k: max((float(np.nanmax(m[k][sl])) for m in maps.values()
                     if k in m and np.isfinite(m[k][sl]).any()), default=1.0) or 1.0
             for k in kinds}
    columns: dict[str, list] = {k: [] for k in kinds}
    images = {}
    for r, name in enumerate(names, start=1):
        m = maps[name]
        truth, pred = m["truth"][sl].astype(np.int64), m["pred"][sl].astype(np.int64)
        evaluated = np.asarray(m["eval_mask"][sl], bool) & np.isin(truth, classes.evaluated)
        errors = np.full(truth.shape + (3,), 0.75)
        errors[evaluated & (pred == truth)] = 1.0
        errors[evaluated & (pred != truth)] = 0.0
        panels = [("Prediction (MC mean)", label_image(pred, classes)),
                  ("Errors", errors)]
        for c, (title, img) in enumerate(panels):
            ax = fig.add_subplot(gs[r, c])
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if r == 1:
                ax.set_title(title)
            if c == 0:
                ax.set_ylabel(display.method_name(name))
        for c, k in enumerate(kinds, start=2):
            ax = fig.add_subplot(gs[r, c])
            columns[k].append(ax)
            if k in m:
                images[k] = ax.imshow(m[k][sl], cmap="viridis", vmin=0, vmax=scale[k],
                                      interpolation="nearest")
            else:
                ax.text(0.5, 0.5, "not computed", ha="center", va="center")
            ax.set_axis_off()
            if r == 1:
                ax.set_title(MAP_LABELS.get(k, (k, ""))[0])
    for k in kinds:
        if k in images:
            title, unit = MAP_LABELS.get(k, (k, ""))
            cb = fig.colorbar(images[k], ax=columns[k], orientation="horizontal",
                              location="bottom", shrink=0.9, aspect=18)
            cb.set_label(f"{title} ({unit})" if unit else title)
            cb.ax.tick_params(labelsize=8)
    return fig


def difference_intervals(diff: pd.DataFrame, *, reference: str,
                         metrics: Sequence[str] = ("oa", "f1")) -> Figure:
    """Each method's paired change against ``reference``: estimate and 95 % interval.

    Args:
        diff: :func:`aerialseg.papers.kampffmeyer.analysis.paired_differences` (method,
            metric, estimate, low, high; fractions).
        reference: the baseline's id (named in the axis labels).
        metrics: one panel per metric, side by side, sharing the method axis.
    """
    methods = list(dict.fromkeys(diff["method"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(BOOK_WIDTH_IN,
                                                      0.27 * len(methods) + 1.3),
                             sharey=True, squeeze=False)
    y = np.arange(len(methods))
    for ax, metric in zip(axes[0], metrics, strict=True):
        d = diff[diff["metric"] == metric].set_index("method").reindex(methods)
        est, low, high = (100 * d[k].to_numpy(float) for k in ("estimate", "low", "high"))
        excl = (low > 0) | (high < 0)
        for mask, colour in ((excl, "C0"), (~excl, "0.55")):
            ax.errorbar(est[mask], y[mask], xerr=[est[mask] - low[mask], high[mask] - est[mask]],
                        fmt="o", ms=4, capsize=2.5, color=colour, lw=1.2)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel(f"Change in {display.score_label(metric)}\n(points, vs. "
                      f"{display.method_name(reference)})")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(y, [display.method_name(m) for m in methods])
    axes[0][0].invert_yaxis()
    fig.tight_layout()
    return fig
