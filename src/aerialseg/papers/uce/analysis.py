"""The U-CE chapter's analyses: mUnc, step costs, weight maps and tables beside the paper's."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import Tensor, nn

from aerialseg.config import RunConfig
from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.data.patches import BandStats
from aerialseg.data.registry import SplitData
from aerialseg.evaluation import Evaluation
from aerialseg.models.mc import mc_forward, mc_train_probs
from aerialseg.papers.uce.method import training_uncertainty
from aerialseg.runs import TrainedRun, build_patches
from aerialseg.utils import unwrap_model

# ---------------------------------------------------------------------------------------
# Evaluation helpers for the chapter
# ---------------------------------------------------------------------------------------


def ddof1_factor(T: int) -> float:
    """Factor turning a population std over T samples (ddof 0) into torch's unbiased one."""
    if T < 2:
        raise ValueError(f"need T >= 2 samples, got {T}")
    return math.sqrt(T / (T - 1))


def uncertainty_maps(ev: Evaluation, T: int, kind: str = "predicted_class_std"
                     ) -> dict[str, np.ndarray]:
    """Per kept scene, the uncertainty map in U-CE's convention (unbiased std, ddof = 1).

    The evaluation's MC statistics use the population std (ddof = 0); the factor
    ``sqrt(T / (T - 1))`` converts them exactly.
    """
    f = ddof1_factor(T)
    return {name: m[kind] * f for name, m in ev.maps.items() if kind in m}


def mean_uncertainty(ev: Evaluation, T: int, kind: str = "predicted_class_std") -> float:
    """mUnc: mean predictive uncertainty over the labelled pixels of the kept scenes."""
    total, n = 0.0, 0
    f = ddof1_factor(T)
    for m in ev.maps.values():
        if kind not in m:
            continue
        valid = m["truth"] != IGNORE_INDEX
        total += float(m[kind][valid].astype(np.float64).sum()) * f
        n += int(valid.sum())
    if n == 0:
        raise ValueError(f"no {kind!r} maps in the evaluation: evaluate with mc_samples >= 2 "
                         "and keep_maps = the number of validation scenes")
    return total / n


def step_seconds(run: TrainedRun) -> dict[str, float]:
    """Seconds per training step (all of it, and the MC passes) from a run's history."""
    hist = run.history
    cfg = run.cfg.train
    per_epoch = math.ceil((cfg.samples_per_epoch or 64) / cfg.batch_size)
    steps = sum(h.get("steps", per_epoch) for h in hist)
    total = sum(h["seconds"] for h in hist)
    mc = sum(h.get("mc_seconds", 0.0) for h in hist)
    return {"step_s": total / max(steps, 1), "mc_step_s": mc / max(steps, 1)}


def run_extras(ev: Evaluation, run: TrainedRun, test_mc_samples: int) -> dict[str, float]:
    """What the chapter records beside the scores: mUnc, step costs, last training u.

    ``ev`` must hold the uncertainty maps of every validation scene (evaluate with
    ``keep_maps`` = the number of scenes); the chapter trims them afterwards.
    """
    hist = run.history
    return {"munc": mean_uncertainty(ev, test_mc_samples), **step_seconds(run),
            "train_uncertainty_last_epoch": float(
                hist[-1].get("train_uncertainty", np.nan) if hist else np.nan)}


def _fmt(v: np.ndarray, scale: float, digits: int) -> str:
    v = np.asarray(v, float)
    v = v[np.isfinite(v)] * scale
    if v.size == 0:
        return "–"
    if v.size == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def results_table(ds: xr.Dataset, protocol: str = "eroded") -> pd.DataFrame:
    """mIoU, mean F1, OA (%), ECE and mUnc per method, mean ± std over seeds."""
    sc = ds["scores"].sel(protocol=protocol, **{"class": "overall"})
    rows = {}
    for method in ds["method"].values:
        s = sc.sel({"method": method})
        row = {"mIoU (%)": _fmt(s.sel(metric="iou").values, 100, 2),
               "mean F1 (%)": _fmt(s.sel(metric="f1").values, 100, 2),
               "OA (%)": _fmt(s.sel(metric="oa").values, 100, 2),
               "ECE": _fmt(s.sel(metric="ece").values, 1, 4)}
        if "munc" in ds:
            row["mUnc"] = _fmt(ds["munc"].sel({"method": method}).values, 1, 4)
        rows[str(method)] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def effects(ds: xr.Dataset, baseline: str = "ce_dropout", protocol: str = "eroded"
            ) -> pd.DataFrame:
    """Change of each U-CE method against the baseline, paired by seed.

    mIoU and OA in points, ECE and mUnc in their units: mean ± std of the per-seed changes.
    """
    sc = ds["scores"].sel(protocol=protocol, **{"class": "overall"})
    base = sc.sel({"method": baseline})
    rows = {}
    for method in ds["method"].values:
        if method == baseline:
            continue
        d = sc.sel({"method": method}) - base
        row = {"Δ mIoU (points)": _fmt(d.sel(metric="iou").values, 100, 2),
               "Δ OA (points)": _fmt(d.sel(metric="oa").values, 100, 2),
               "Δ ECE": _fmt(d.sel(metric="ece").values, 1, 4)}
        if "munc" in ds:
            munc = ds["munc"]
            dm = munc.sel({"method": method}) - munc.sel({"method": baseline})
            row["Δ mUnc"] = _fmt(dm.values, 1, 4)
        rows[str(method)] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def step_cost_table(ds: xr.Dataset, baseline: str = "ce_dropout") -> pd.DataFrame:
    """Seconds per training step, the MC passes' share, and the cost relative to CE."""
    rows = {}
    base = float(np.nanmean(ds["step_s"].sel({"method": baseline}).values))
    for method in ds["method"].values:
        step = float(np.nanmean(ds["step_s"].sel({"method": method}).values))
        mc = float(np.nanmean(ds["mc_step_s"].sel({"method": method}).values))
        rows[str(method)] = {"s / step": round(step, 3), "MC passes s / step": round(mc, 3),
                             "MC share (%)": round(100 * mc / step, 1) if step else np.nan,
                             "× CE step": round(step / base, 2) if base else np.nan}
    return pd.DataFrame.from_dict(rows, orient="index")


def training_batch(cfg: RunConfig, data: SplitData, n: int = 4, *, epoch: int = 0,
                   stats: BandStats | None = None) -> dict[str, Tensor]:
    """The first ``n`` training samples of run ``cfg`` (crops and augmentation as in training).

    ``stats``: the run's band statistics (default: computed from ``data.train``).
    """
    from aerialseg.data.patches import BandStats

    stats = stats or BandStats.from_scenes(data.train, cfg.in_bands)
    ds = build_patches(cfg, data, stats)
    ds.set_epoch(epoch)
    items = [ds[i] for i in range(min(n, len(ds)))]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def weight_maps(run: TrainedRun, batch: Mapping[str, Tensor], alphas: Sequence[float] = (1, 10),
                T: int | None = None, device: torch.device | str = "cpu"
                ) -> dict[str, np.ndarray]:
    """U-CE's uncertainty u and weights (1 + u)^alpha on a training batch, for figures.

    The passes use ``train_frozen_stats`` so the trained model's BatchNorm buffers are not
    changed. Ignore pixels get weight 0, as in the loss.
    """
    kw = run.loss_kwargs
    T = int(T or kw.get("uce_mc_samples", 10))
    model = run.model.to(device)
    x = batch["image"].to(device)
    u = training_uncertainty(model, x, T, bn="train_frozen_stats",
                             kind=kw.get("uce_uncertainty", "predicted_class_std"))
    u = u.cpu()
    valid = batch["label"] != IGNORE_INDEX
    out = {"uncertainty": u.numpy(), "valid": valid.numpy()}
    for a in alphas:
        out[f"weight_{a:g}"] = torch.where(valid, (1 + u).pow(float(a)), 0.0).numpy()
    return out


def weight_share(weight: np.ndarray, valid: np.ndarray, top: float = 0.1) -> float:
    """Share of the total loss weight on the ``top`` fraction of most-weighted valid pixels.

    Equal weights give ``top`` itself; the larger, the more the loss concentrates.
    """
    w = np.sort(np.asarray(weight, np.float64)[np.asarray(valid, bool)])[::-1]
    if w.size == 0:
        return float("nan")
    k = max(1, int(round(top * w.size)))
    return float(w[:k].sum() / w.sum())


def compare_mc_passes(model: nn.Module, x: Tensor, T: int, *, repeats: int = 2
                      ) -> dict[str, float]:
    """Time T no-grad passes one by one (as U-CE's code) against batched, and check them.

    Both run on copies of ``model`` (its buffers stay untouched).

    The check runs with every dropout rate set to 0 (so both sides are deterministic):
    probabilities and BatchNorm running buffers after the T passes must agree.

    Returns:
        ``loop_s`` and ``batched_s`` (best of ``repeats``, seconds), ``speedup``,
        ``max_prob_diff`` and ``max_buffer_diff`` (dropout off).
    """

    def best(fn: Callable[[], object]) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    m = copy.deepcopy(unwrap_model(model)).cpu() if x.device.type == "cpu" else copy.deepcopy(
        unwrap_model(model))
    loop_s = best(lambda: mc_forward(m, x, T, bn="train_frozen_stats"))
    batched_s = best(lambda: mc_train_probs(m, x, T, bn="train_frozen_stats"))
    for mod in m.modules():
        if isinstance(mod, nn.modules.dropout._DropoutNd):
            mod.p = 0.0
    a, b = copy.deepcopy(m), copy.deepcopy(m)
    pa = mc_forward(a, x, T, bn="train")
    pb = mc_train_probs(b, x, T, bn="train")
    bufs = [(ba, bb) for (na, ba), (_, bb) in zip(a.named_buffers(), b.named_buffers(),
                                                   strict=True) if "running" in na]
    buf_diff = max((float((ba - bb).abs().max()) for ba, bb in bufs), default=0.0)
    return {"loop_s": loop_s, "batched_s": batched_s, "speedup": loop_s / batched_s,
            "max_prob_diff": float((pa - pb).abs().max()), "max_buffer_diff": buf_diff}

