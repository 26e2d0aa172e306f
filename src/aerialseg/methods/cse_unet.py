"""Wang & Xie 2020: CSE-UNet, its Table 1 ablation rows, and two U-Net baselines.

Methods (methods.md §7):
- ``unet_plain``, ``unet_dual_path``, ``unet_rfb``, ``cse_unet``: the four rows of the
  paper's ablation (U-Net; + dual-path encoder; + RFB skips; both = CSE-UNet);
- ``smp_unet_r34``: an smp U-Net with a ResNet-34 encoder trained from scratch;
- ``cse_unet_mazur``: Mazur's (2026) layout of CSE-UNet (parallel RFB branches, auxiliary
  path fed from the fused features, Dropout2d 0.2) under the paper's training.

All train as the paper states: SGD, momentum 0.99, lr 1e-3, weight decay 5e-4, batch 4,
random crops with random scaling 0.5-2 and flips; the poly schedule is reconstructed. The
CPU profiles shrink the widths (``base_width``), crops and training length; ``full`` uses
the paper's settings (widths 64..1024, 256 px crops, 400 epochs of the non-overlapping
crops of the training tiles).

Also here: parameter counts without building weights (meta device) and the chapter's
tables of our scores beside the paper's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from aerialseg.config import MethodSpec, get_method, resolve_run
from aerialseg.models.cse_unet import MAZUR_2026
from aerialseg.models.registry import build_model
from aerialseg.reported_cse import ABLATION_ROWS, TABLE1, TABLE1_TITLES

if TYPE_CHECKING:
    import xarray as xr

    from aerialseg.runs import RunContext
    from aerialseg.training import Callback

ABLATION = ("unet_plain", "unet_dual_path", "unet_rfb", "cse_unet")
"""Our methods in the order of the paper's Table 1."""

BASELINE = "smp_unet_r34"

# The paper's training (§3.2); "poly" is reconstructed. D4 flips/rotations stand in for
# the paper's horizontal flip (the sampler offers D4 or nothing).
_TRAIN = {"optimizer": "sgd", "lr": 1e-3, "momentum": 0.99, "weight_decay": 5e-4,
          "batch_size": 4, "schedule": "poly", "poly_power": 0.9, "sampler": "random_crop",
          "crop_size": 256, "scale_range": (0.5, 2.0), "dihedral_aug": True, "epochs": 400,
          "samples_per_epoch": None}

_ARCH = {"base_width": 64, "depth": 4, "dropout2d": 0.0}
_AUX = {"aux_kernels": (7, 5, 3, 2), "aux_mode": "chain"}
_RFB = {"rfb_dilations": (7, 5, 3, 1), "rfb_stack": (3, 2, 1, 1),
        "rfb_stack_kernels": (3, 3, 3, 1), "rfb_mode": "sequential"}

# CPU profiles: narrow networks and short training (the chapter says so); full = paper.
# default: 112 iterations of batch 4 on 96 px crops, about 330 CPU-seconds for 5 models x
# 2 seeds (the smp ResNet-34 U-Net is about a third of it). At base_width 8 the U-Nets were
# still far from converged after this many steps (whole classes missed by one seed or the
# other); 16 learns enough to compare.
_UNET_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"epochs": 1, "samples_per_epoch": 4, "crop_size": 64, "base_width": 8},
    "default": {"epochs": 8, "samples_per_epoch": 56, "crop_size": 96, "base_width": 16},
    "full": {},
}
_SMP_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"epochs": 1, "samples_per_epoch": 4, "crop_size": 64},
    "default": {"epochs": 8, "samples_per_epoch": 56, "crop_size": 96},
    "full": {},
}

_SOURCE = "Wang & Xie 2020"
_SETUP = "aerialseg.methods.cse_unet:paper_epoch"


def _unet_spec(name: str, title: str, *, rfb: bool, aux: bool,
               extra: dict[str, Any] | None = None) -> MethodSpec:
    params: dict[str, Any] = {**_ARCH, **_TRAIN}
    if name != "unet_plain":
        params |= {"use_rfb": rfb, "use_aux_path": aux}
    if aux:
        params |= _AUX
    if rfb:
        params |= _RFB
    params |= extra or {}
    model_params = tuple(k for k in params if k not in _TRAIN)
    return MethodSpec(name=name, title=title, model="unet_plain" if name == "unet_plain"
                      else "cse_unet", loss="ce", params=params, model_params=model_params,
                      profiles=_UNET_PROFILES, source=_SOURCE, setup=_SETUP)


METHODS: dict[str, MethodSpec] = {
    "unet_plain": _unet_spec("unet_plain", "U-Net (Table 1 baseline)", rfb=False, aux=False),
    "unet_dual_path": _unet_spec("unet_dual_path", "U-Net + dual-path encoder",
                                 rfb=False, aux=True),
    "unet_rfb": _unet_spec("unet_rfb", "U-Net + RFB skips", rfb=True, aux=False),
    "cse_unet": _unet_spec("cse_unet", "CSE-UNet", rfb=True, aux=True),
    "cse_unet_mazur": _unet_spec("cse_unet_mazur", "CSE-UNet, Mazur's layout", rfb=True,
                                 aux=True, extra=dict(MAZUR_2026)),
    BASELINE: MethodSpec(
        name=BASELINE, title="smp U-Net, ResNet-34 encoder (from scratch)", model="smp_unet",
        loss="ce", params={"encoder": "resnet34", "encoder_weights": None, **_TRAIN},
        model_params=("encoder", "encoder_weights"), profiles=_SMP_PROFILES,
        source="baseline (segmentation_models_pytorch)", setup=_SETUP),
}


def paper_epoch(ctx: RunContext) -> list[Callback]:
    """Setup hook: with ``samples_per_epoch=None`` an epoch is the paper's epoch.

    That is, as many random crops as the training tiles hold non-overlapping ``crop_size``
    crops (random crops stand in for the paper's fixed ones). The random-crop sampler
    would otherwise draw a fixed 64 crops per epoch. Returns no callbacks; only the epoch
    length changes.
    """
    t = ctx.cfg.train
    if t.samples_per_epoch is None and t.sampler == "random_crop":
        n = non_overlapping_crops([s.labels.shape for s in ctx.data.train], t.crop_size)
        ctx.dataset._len = n  # type: ignore[attr-defined]  # no public setter in patches.py
    return []


def non_overlapping_crops(shapes: Iterable[Sequence[int]], size: int) -> int:
    """Number of non-overlapping ``size`` x ``size`` crops in scenes of these shapes."""
    if size < 1:
        raise ValueError(f"crop size must be >= 1, got {size}")
    return max(1, sum((int(h) // size) * (int(w) // size) for h, w in shapes))


def method_overrides(method: str, **values: Any) -> dict[str, Any]:
    """The chapter's parameter values that ``method`` accepts (others are dropped).

    One parameters cell serves U-Nets and the smp baseline, e.g. ``base_width`` only
    applies to the former and ``encoder`` only to the latter.
    """
    spec = get_method(method)
    from aerialseg.config import TRAIN_FIELDS

    valid = set(spec.params) | TRAIN_FIELDS
    return {k: v for k, v in values.items() if k in valid}


def count_parameters(method: str, *, profile: str, in_channels: int, num_classes: int,
                     **overrides: Any) -> int:
    """Trainable parameters of ``method`` as resolved for ``profile``, without weights.

    The model is built on the meta device, so the full-width networks (tens of millions of
    parameters) cost neither memory nor initialisation time.
    """
    overrides = {k: v for k, v in method_overrides(method, **overrides).items()
                 if v is not None}
    cfg = resolve_run(method, profile=profile, in_bands=tuple(f"b{i}" for i in
                                                              range(in_channels)),
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
