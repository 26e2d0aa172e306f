"""Figures of the CSE-UNet chapter (matplotlib only)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def ablation_deltas(table: pd.DataFrame, *, ours_label: str = "ours",
                    paper_label: str = "paper (Vaihingen)") -> Figure:
    """Change in mIoU of each ablation row against the plain U-Net: ours beside the paper's.

    Args:
        table: :func:`aerialseg.papers.cse_unet.analysis.ablation_table` output (columns
            ``Δ mIoU``, ``paper Δ mIoU`` and optionally ``mIoU sd``, all in %).
        ours_label: legend entry of our bars.
        paper_label: legend entry of the paper's bars.
    """
    rows = list(table.index)
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    ours = table["Δ mIoU"].to_numpy(float)
    sd = table["mIoU sd"].to_numpy(float) if "mIoU sd" in table else None
    ax.bar(x - 0.2, ours, 0.4, label=ours_label, color="tab:blue", alpha=0.85,
           yerr=None if sd is None or not np.isfinite(sd).any() else np.nan_to_num(sd),
           capsize=3, error_kw={"lw": 1})
    ax.bar(x + 0.2, table["paper Δ mIoU"].to_numpy(float), 0.4, label=paper_label,
           color="tab:red", alpha=0.6)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x, rows, rotation=15, fontsize=8)
    ax.set_ylabel("Δ mIoU vs U-Net (points)")
    if sd is not None and np.isfinite(sd).any():
        ax.set_title("error bars: seed standard deviation of the row's mIoU", fontsize=8)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
