"""Figures of the CSE-UNet chapter (matplotlib; the conventions of :mod:`aerialseg.plots`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from aerialseg import display
from aerialseg.plots import BOOK_WIDTH_IN, legend_below

_METRICS = (("iou", "mIoU"), ("f1", "Mean F1"))


def ablation_deltas(frame: pd.DataFrame, *, ours_label: str = "Ours (95 % paired interval)",
                    paper_label: str = "Paper (Vaihingen)") -> Figure:
    """Change of mIoU and mean F1 of each addition against the U-Net: ours beside the paper's.

    Args:
        frame: :func:`aerialseg.papers.cse_unet.analysis.ablation_frame` (points); its
            reference row (``frame.attrs["reference"]``, else the first) is left out.
        ours_label: legend entry of our bars (their error bars are the paired intervals).
        paper_label: legend entry of the paper's bars.
    """
    ref = frame.attrs.get("reference", frame.index[0])
    rows = [m for m in frame.index if m != ref]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(1, len(_METRICS), figsize=(BOOK_WIDTH_IN, 3.0), sharey=False,
                             squeeze=False)
    handles = []
    for ax, (metric, label) in zip(axes[0], _METRICS, strict=True):
        sub = frame.loc[rows]
        ours = sub[f"d_{metric}"].to_numpy(float)
        lo, hi = sub[f"d_{metric}_low"].to_numpy(float), sub[f"d_{metric}_high"].to_numpy(float)
        err = np.vstack([np.where(np.isfinite(lo), ours - lo, 0),
                         np.where(np.isfinite(hi), hi - ours, 0)])
        h1 = ax.bar(x - 0.2, ours, 0.4, color="C0", alpha=0.85, yerr=err, capsize=3,
                    error_kw={"lw": 1}, label=ours_label)
        h2 = ax.bar(x + 0.2, sub[f"paper_d_{metric}"].to_numpy(float), 0.4, color="C3",
                    alpha=0.6, label=paper_label)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(x, [display.method_name(m).replace("U-Net + ", "+ ") for m in rows])
        ax.set_ylabel(f"Δ {label} vs U-Net (points)")
        ax.grid(axis="y", alpha=0.3)
        handles = [h1, h2]
    fig.tight_layout()
    legend_below(fig, handles, ncol=2)
    return fig
