"""The CSE-UNet chapter's analyses: parameter counts and scores beside Tables 1 and 3.

Parameters are counted on the meta device (no weights are built).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from aerialseg.models.registry import build_model
from aerialseg.papers.cse_unet.method import ABLATION, METHODS
from aerialseg.papers.cse_unet.reported import ABLATION_ROWS, TABLE1, TABLE1_TITLES


def count_parameters(method: str, *, profile: str, in_channels: int, num_classes: int,
                     **overrides: Any) -> int:
    """Trainable parameters of ``method`` as resolved for ``profile``, without weights.

    The model is built on the meta device, so the full-width networks (tens of millions of
    parameters) cost neither memory nor initialisation time.
    """
    spec = METHODS[method]
    overrides = {k: v for k, v in overrides.items()
                 if v is not None and k in spec.parameter_names}
    cfg = spec.resolve(profile=profile, in_bands=tuple(f"b{i}" for i in range(in_channels)),
                       data={}, **overrides)
    with torch.device("meta"):
        model = build_model(cfg.model, in_channels=in_channels, num_classes=num_classes,
                            **cfg.model_kwargs)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def parameter_table(methods: Sequence[str], *, profile: str, in_channels: int,
                    num_classes: int, paper_io: tuple[int, int] | None = (3, 5),
                    **overrides: Any) -> pd.DataFrame:
    """Parameters (millions) at the profile's width and at the paper's (``full``) width.

    With ``paper_io=(bands, classes)`` a third column counts the full-width model for that
    input/output (3 bands, 5 classes: the setting of methods.md's reference counts).
    """
    rows = {}
    for m in methods:
        row = {
            f"{profile} (M)": count_parameters(m, profile=profile, in_channels=in_channels,
                                               num_classes=num_classes, **overrides) / 1e6,
            "paper width (M)": count_parameters(m, profile="full", in_channels=in_channels,
                                                num_classes=num_classes) / 1e6,
        }
        if paper_io is not None:
            row[f"paper width, {paper_io[0]} bands, {paper_io[1]} classes (M)"] = (
                count_parameters(m, profile="full", in_channels=paper_io[0],
                                 num_classes=paper_io[1]) / 1e6)
        rows[m] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def _stat(ds: xr.Dataset, method: str, metric: str, cls: str, protocol: str
          ) -> tuple[float, float]:
    v = 100 * ds["scores"].sel({"method": method, "protocol": protocol, "class": cls,
                                "metric": metric}).values.astype(float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan")


def ablation_table(ds: xr.Dataset, *, protocol: str = "eroded",
                   reference: str = "unet_plain") -> pd.DataFrame:
    """Our Table 1 beside the paper's Vaihingen columns.

    mIoU, mF1, OA (mean and std over seeds, %) and the change in mIoU against
    ``reference``, beside the paper's Vaihingen mIoU/mF1 and its change. Rows are the
    ablation methods present in ``ds``, in Table 1 order.
    """
    present = [m for m in ABLATION if m in ds["method"].values]
    if reference not in present:
        raise ValueError(f"reference {reference!r} is not among the methods in the results "
                         f"({[str(m) for m in ds['method'].values]})")
    ref_paper = TABLE1[ABLATION_ROWS[reference]]["vaihingen_miou"]
    ref_ours = _stat(ds, reference, "iou", "overall", protocol)[0]
    rows = {}
    for m in present:
        miou, miou_sd = _stat(ds, m, "iou", "overall", protocol)
        mf1, mf1_sd = _stat(ds, m, "f1", "overall", protocol)
        oa, _ = _stat(ds, m, "oa", "overall", protocol)
        paper = TABLE1[ABLATION_ROWS[m]]
        rows[TABLE1_TITLES[ABLATION_ROWS[m]]] = {
            "mIoU": miou, "mIoU sd": miou_sd, "mF1": mf1, "mF1 sd": mf1_sd, "OA": oa,
            "Δ mIoU": miou - ref_ours,
            "paper mIoU": paper["vaihingen_miou"], "paper mF1": paper["vaihingen_mf1"],
            "paper Δ mIoU": paper["vaihingen_miou"] - ref_paper,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def iou_f1_table(ds: xr.Dataset, methods: Sequence[str], *, protocol: str = "eroded",
                 titles: dict[str, str] | None = None) -> pd.DataFrame:
    """Per-class "IoU/F1" (seed means, %) plus mIoU, mF1 and OA: the paper's Table 3 layout."""
    ev = ds["evaluated"].values if "evaluated" in ds.coords else [True] * ds.sizes["class"]
    classes = [str(c) for c, e in zip(ds["class"].values, ev, strict=True)
               if c != "overall" and e]
    rows = {}
    for m in methods:
        cells = {}
        for c in classes:
            iou = _stat(ds, m, "iou", c, protocol)[0]
            f1 = _stat(ds, m, "f1", c, protocol)[0]
            cells[c] = f"{iou:.2f}/{f1:.2f}" if np.isfinite(iou) else "–"  # class absent
        cells["mIoU"] = f"{_stat(ds, m, 'iou', 'overall', protocol)[0]:.2f}"
        cells["mF1"] = f"{_stat(ds, m, 'f1', 'overall', protocol)[0]:.2f}"
        cells["OA"] = f"{_stat(ds, m, 'oa', 'overall', protocol)[0]:.2f}"
        rows[(titles or {}).get(m, m)] = cells
    return pd.DataFrame.from_dict(rows, orient="index")


def cost_table(ds: xr.Dataset, *, profile: str, in_channels: int, num_classes: int,
               paper_io: tuple[int, int] | None = None, **overrides: Any) -> pd.DataFrame:
    """Parameters, training time and inference throughput per method.

    Parameters at the profile's and the paper's width (see :func:`parameter_table`); times
    from the results file (``train_seconds``, ``pixels_per_second``; seed means).
    """
    methods = [str(m) for m in ds["method"].values]
    df = parameter_table(methods, profile=profile, in_channels=in_channels,
                         num_classes=num_classes, paper_io=paper_io, **overrides)
    df["train (s)"] = [float(ds["train_seconds"].sel({"method": m}).mean()) for m in methods]
    df["inference (Mpx/s)"] = [float(ds["pixels_per_second"].sel({"method": m}).mean()) / 1e6
                               for m in methods]
    return df
