"""The U-CE chapter's analyses: mUnc, step costs, weight maps and tables beside the paper's."""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import Tensor, nn

from aerialseg import stats
from aerialseg.config import RunConfig
from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.data.patches import BandStats
from aerialseg.data.registry import SplitData
from aerialseg.evaluation import Evaluation
from aerialseg.models.mc import mc_forward, mc_train_probs
from aerialseg.papers.uce.method import training_uncertainty
from aerialseg.runs import TrainedRun, build_patches, stored_location
from aerialseg.tables import NA, mean_interval, mean_sd, number
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
    """What the chapter records beside the scores: mUnc, step costs, last-epoch training.

    Of the last training epoch: the mean u, the mean weight and the plain cross-entropy.

    ``ev`` must hold the uncertainty maps of every validation scene (evaluate with
    ``keep_maps`` = the number of scenes); the chapter trims them afterwards.
    """
    hist = run.history
    last = hist[-1] if hist else {}
    # the plain cross-entropy: U-CE's callback records it; the CE baseline's loss is it
    plain_ce = last.get("train_ce", last.get("loss") if run.cfg.loss == "ce" else None)
    return {"munc": mean_uncertainty(ev, test_mc_samples), **step_seconds(run),
            "train_uncertainty_last_epoch": float(last.get("train_uncertainty", np.nan)),
            "train_weight_first_epoch": float(hist[0].get("train_weight", np.nan)
                                              if hist else np.nan),
            "train_weight_last_epoch": float(last.get("train_weight", np.nan)),
            "train_ce_last_epoch": float(np.nan if plain_ce is None else plain_ce)}


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
    """Seconds per training step, the MC passes' share, and what the passes add.

    One row per method that has training times (the per-pixel baseline has none). The
    ``× its ordinary step`` column divides a whole step by the same run's step without the
    passes (forward, backward, update), both measured in the same run: unlike a ratio of two
    runs' times it does not depend on how loaded the machine was when each run trained.
    ``× CE step`` is the ratio to the baseline's own runs (times from other runs, possibly
    trained at another time, e.g. by chapter 03).
    """
    def mean(var: str, method: str) -> float:
        v = np.asarray(ds[var].sel({"method": method}).values, float)
        v = v[np.isfinite(v)]
        return float(v.mean()) if v.size else float("nan")

    rows = {}
    base = mean("step_s", baseline)
    for method in ds["method"].values:
        step = mean("step_s", method)
        if not np.isfinite(step):
            continue
        mc = mean("mc_step_s", method)
        plain = step - mc if np.isfinite(mc) else step
        rows[str(method)] = {
            "s / step": step, "MC passes s / step": mc,
            "MC share (%)": 100 * mc / step if step else np.nan,
            "× its ordinary step": step / plain if plain > 0 else np.nan,
            "× CE step": step / base if base else np.nan}
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
        ``max_prob_diff``, ``max_buffer_diff`` and ``max_buffer_rel_diff`` (the largest
        difference of a running buffer relative to that buffer's largest value; dropout
        off).
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
    rel_diff = max((float((ba - bb).abs().max() / ba.abs().max().clamp_min(1e-12))
                    for ba, bb in bufs if ba.is_floating_point()), default=0.0)
    return {"loop_s": loop_s, "batched_s": batched_s, "speedup": loop_s / batched_s,
            "max_prob_diff": float((pa - pb).abs().max()), "max_buffer_diff": buf_diff,
            "max_buffer_rel_diff": rel_diff}



# ---------------------------------------------------------------------------------------
# What the chapter trains: the recipe per profile, the methods, the shared runs
# ---------------------------------------------------------------------------------------


def optimiser_steps(cfg: RunConfig) -> int | None:
    """Optimiser steps of a run: epochs x batches per epoch (None: per-epoch size unknown)."""
    t = cfg.train
    if not t.samples_per_epoch:
        return None
    return t.epochs * math.ceil(t.samples_per_epoch / t.batch_size)


def network_description(cfg: RunConfig) -> str:
    """The network of a run in words (architecture, width, where its dropout sits)."""
    kw = cfg.model_kwargs
    if cfg.model == "fcn":
        widths = kw.get("widths", ())
        sites = " and ".join(s.replace("set", "") for s in kw.get("dropout_sites", ()))
        return (f"FCN of chapter 03, widths {'-'.join(map(str, widths))}, dropout "
                f"{kw.get('dropout_p', 0):g} after conv sets {sites}")
    if cfg.model == "smp_deeplabv3plus":
        enc = str(kw.get("encoder", "")).replace("resnet", "ResNet-")
        return (f"DeepLabV3+ {enc}, dropout {kw.get('encoder_dropout', 0):g} after each "
                f"encoder stage (and the ASPP's own)")
    return cfg.model


def recipe_table(columns: Mapping[str, tuple[RunConfig, RunConfig]]) -> pd.DataFrame:
    """The training recipe side by side, e.g. this edition's profile and ``full``.

    Args:
        columns: column title -> (the CE baseline's config, a U-CE config) of that profile.

    Returns:
        One row per setting (network, initial weights, optimiser, learning rate, batch and
        crop, optimiser steps, MC passes per U-CE step), one column per profile; text cells.
    """
    rows: dict[str, dict[str, str]] = {}
    for title, (ce, uce) in columns.items():
        t = ce.train
        lr = f"{t.lr:g}"
        if t.decoder_lr_mult and t.decoder_lr_mult != 1:
            lr += f" (decoder {t.decoder_lr_mult:g}x)"
        lr += f", {t.schedule} decay" if t.schedule and t.schedule != "constant" else ""
        steps = optimiser_steps(ce)
        weights = ce.model_kwargs.get("encoder_weights") or "random"
        crops = f"{t.batch_size} crops of {t.crop_size} px"
        if t.scale_range:
            crops += f", rescaled by {t.scale_range[0]:g}-{t.scale_range[1]:g}"
        rows[title] = {
            "Network": network_description(ce),
            "Initial weights": "ImageNet" if weights == "imagenet" else "random",
            "Optimiser": f"{t.optimizer.upper()}, momentum {t.momentum:g}, weight decay "
                         f"{t.weight_decay:g}",
            "Learning rate": lr,
            "Batch": crops,
            "Optimiser steps": "–" if steps is None else f"{steps:,}".replace(",", "\u202f"),
            "MC passes per U-CE step (T)": str(uce.loss_kwargs.get("uce_mc_samples", "–")),
        }
    return pd.DataFrame(rows)


def methods_table(cfgs: Mapping[str, RunConfig]) -> pd.DataFrame:
    """Per method: its loss, the exponent, the training MC passes and the weight range.

    The weight of a pixel, (1 + u)^alpha with u <= 0.5, lies between 1 and 1.5^alpha.
    """
    rows = {}
    for name, cfg in cfgs.items():
        kw = cfg.loss_kwargs
        if cfg.loss == "uce":
            a = float(kw.get("uce_exponent", 1.0))
            rows[name] = {"loss": "U-CE", "α": f"{a:g}",
                          "MC passes per step (T)": str(kw.get("uce_mc_samples", "–")),
                          "pixel weight (1 + u)^α": f"1 to {1.5 ** a:.1f}"}
        else:
            rows[name] = {"loss": "cross-entropy", "α": "–", "MC passes per step (T)": "–",
                          "pixel weight (1 + u)^α": "1"}
    return pd.DataFrame.from_dict(rows, orient="index")


def sharing_table(runs: Mapping[int, TrainedRun], twins: Mapping[int, RunConfig],
                  data: SplitData) -> pd.DataFrame:
    """Whether each seed's CE baseline run is the very run of another method (chapter 03).

    Args:
        runs: seed -> the CE baseline's trained run.
        twins: seed -> the other method's resolved config (e.g. chapter 03's ``fcn``).
        data: the training data (its fingerprint enters the run key).

    Returns:
        One row per seed: the same stored model (run keys equal), whether the run store
        already held it when the chapter asked for it, and its training time (s).
    """
    rows = []
    for seed, run in runs.items():
        rows.append({"seed": seed,
                     "same stored model": stored_location(twins[seed], data)[1] == run.path,
                     "already in the run store": bool(run.reused),
                     "training (s)": float(run.train_seconds)})
    return pd.DataFrame(rows)


def train_step_seconds(model: nn.Module, in_channels: int, num_classes: int, *,
                       batch: int, crop: int, steps: int = 2,
                       device: torch.device | str = "cpu", seed: int = 0) -> float:
    """Seconds of one SGD training step (forward, backward, update), best of ``steps``.

    One untimed warm-up step first; random inputs and labels of the given batch and crop.
    """
    dev = torch.device(device)
    model = copy.deepcopy(model).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, in_channels, crop, crop, generator=g).to(dev)
    y = torch.randint(0, num_classes, (batch, crop, crop), generator=g).to(dev)

    def step() -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter() - t0

    step()
    return min(step() for _ in range(max(1, steps)))


def architecture_cost(models: Mapping[str, nn.Module], in_channels: int, num_classes: int, *,
                      batch: int, crop: int, reference: str | None = None, steps: int = 2,
                      device: torch.device | str = "cpu") -> pd.DataFrame:
    """Parameters and seconds per training step of each network at the same batch and crop.

    Args:
        models: title -> an untrained network.
        in_channels: input bands.
        num_classes: classes.
        batch: crops per step.
        crop: crop side (px).
        reference: the title the ``× reference`` column divides by (default the first).
        steps: timed steps (best of).
        device: where the steps run.
    """
    rows = {}
    for title, model in models.items():
        rows[title] = {
            "parameters (M)": sum(p.numel() for p in model.parameters()) / 1e6,
            "s / step": train_step_seconds(model, in_channels, num_classes, batch=batch,
                                           crop=crop, steps=steps, device=device)}
    df = pd.DataFrame.from_dict(rows, orient="index")
    ref = df.loc[reference or next(iter(models)), "s / step"]
    df["× backbone step"] = df["s / step"] / ref
    return df


# ---------------------------------------------------------------------------------------
# The paper's quantities, with intervals; ECE's paired differences
# ---------------------------------------------------------------------------------------


def _per_seed(ds: xr.Dataset, method: str, metric: str, protocol: str) -> pd.Series:
    """One value per seed with a run of ``method`` (``scores`` metric or a variable)."""
    seeds = stats.present_seeds(ds, method)
    if metric in ds.data_vars and metric != "scores":
        da = ds[metric].sel({"method": method})
    else:
        da = ds["scores"].sel({"method": method, "protocol": protocol, "metric": metric,
                               "class": "overall"})
    return pd.Series({int(s): float(da.sel(seed=s)) for s in seeds}, dtype=float)


def paper_quantities(ds: xr.Dataset, methods: Sequence[str] | None = None, *,
                     protocol: str = "eroded") -> pd.DataFrame:
    """The paper's quantities per method as the reader sees them (text cells, in %).

    mIoU with its 95 % interval over seeds and spatial blocks (:func:`aerialseg.stats.
    method_interval`); ECE and mUnc (not functions of a confusion matrix, so without such an
    interval) as mean ± standard deviation over seeds; the number of seeds.
    """
    def spread(v: pd.Series) -> str:
        v = v[np.isfinite(v.values)]
        if v.empty:
            return NA
        return mean_sd(v.mean(), v.std(ddof=1) if len(v) > 1 else None)

    rows = {}
    for m in methods or [str(x) for x in ds["method"].values]:
        est = stats.method_interval(ds, m, metric="iou", protocol=protocol)
        munc = _per_seed(ds, m, "munc", protocol) if "munc" in ds else pd.Series(dtype=float)
        rows[m] = {"mIoU [95 % interval]": mean_interval(est.mean, est.low, est.high),
                   "ECE (mean ± sd)": spread(_per_seed(ds, m, "ece", protocol)),
                   "mUnc (mean ± sd)": spread(munc),
                   "seeds": str(est.n_seeds)}
    return pd.DataFrame.from_dict(rows, orient="index")


def paired_seed_differences(ds: xr.Dataset, metric: str, baseline: str,
                            methods: Sequence[str], *, protocol: str = "eroded",
                            scale: float = 100.0) -> pd.DataFrame:
    """Per seed, ``metric`` of each method minus the baseline's (same seed), scaled.

    ``metric`` is a ``scores`` metric of the overall row (e.g. ``"ece"``) or a per-run
    variable of the results (``"munc"``). Rows: the seeds both methods ran, then "mean"
    (mean over those seeds) and "sd" (their standard deviation, with 2 seeds or more).
    """
    base = _per_seed(ds, baseline, metric, protocol)
    cols = {}
    for m in methods:
        d = (_per_seed(ds, m, metric, protocol) - base).dropna() * scale
        cols[m] = d
    df = pd.DataFrame(cols)
    df.index = [f"seed {s}" for s in df.index]
    summary = {"mean": df.mean()}
    if len(df) > 1:
        summary["sd"] = df.std(ddof=1)
    return pd.concat([df, pd.DataFrame(summary).T])


def effects_beside_paper(ds: xr.Dataset, verdicts: Sequence[object],
                         paper: pd.DataFrame, *, baseline: str = "ce_dropout",
                         protocol: str = "eroded") -> pd.DataFrame:
    """Our change against CE beside the paper's, per U-CE method (text cells, points).

    mIoU: our paired estimate with its 95 % interval (from the verdict of the mIoU claim);
    ECE and mUnc: the mean over seeds of the paired per-seed change (no interval: neither is
    a function of the confusion matrix). The paper's columns come from
    :func:`aerialseg.papers.uce.reported.landgraf_effects` (ECE and mUnc in points here).
    """
    by_method = {getattr(v, "method", None): v for v in verdicts
                 if getattr(v, "metric", None) == "iou" and getattr(v, "baseline", None)
                 == baseline}
    rows = {}
    for m in paper.index:
        v = by_method.get(m)
        ours_miou = NA if v is None else mean_interval(v.estimate, v.low, v.high)
        row = {"Δ mIoU, ours [95 % interval]": ours_miou,
               "Δ mIoU, paper": number(paper.loc[m, "Δ mIoU (points)"])}
        for key, var in (("ECE", "ece"), ("mUnc", "munc")):
            if var == "munc" and "munc" not in ds:
                continue
            d = paired_seed_differences(ds, var, baseline, [m], protocol=protocol)
            row[f"Δ {key}, ours (mean of seeds)"] = number(d.loc["mean", m]) \
                if "mean" in d.index and np.isfinite(d.loc["mean", m]) else NA
            row[f"Δ {key}, paper"] = number(100 * paper.loc[m, f"Δ {key}"])
        rows[m] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def mc_pass_table(check: Mapping[str, float], T: int, batch: int) -> pd.DataFrame:
    """The batched-vs-looped check of :func:`compare_mc_passes` as a one-row table."""
    return pd.DataFrame([{
        "passes × batch": f"{T} × {batch}",
        "one by one (s)": check["loop_s"], "batched (s)": check["batched_s"],
        "speed-up": check["speedup"],
        "largest |Δp|, dropout off": small_number(check["max_prob_diff"]),
        "largest relative Δ of the running statistics": small_number(
            check.get("max_buffer_rel_diff", check["max_buffer_diff"]))}])


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def small_number(x: float) -> str:
    """A tiny non-negative number for a reader: "0", or "4.8 × 10⁻⁷" (no e-notation)."""
    if not np.isfinite(x):
        return NA
    if x == 0:
        return "0"
    if abs(x) >= 0.01:
        return number(x, 3)
    mant, exp = f"{x:.1e}".split("e")
    return f"{mant} × 10{str(int(exp)).translate(_SUPERSCRIPT)}"


def weight_share_table(wm: Mapping[str, np.ndarray], alphas: Sequence[float] = (1, 10),
                       top: float = 0.1) -> pd.DataFrame:
    """Per exponent: weight share of the ``top`` most-weighted pixels, largest, mean weight.

    Over the labelled pixels of :func:`weight_maps`'s output.
    """
    valid = np.asarray(wm["valid"], bool)
    rows = {}
    for a in alphas:
        w = np.asarray(wm[f"weight_{a:g}"], np.float64)
        v = w[valid]
        rows[f"α = {a:g}"] = {
            f"share of the weight on the top {100 * top:.0f} % pixels":
                weight_share(w, valid, top),
            "largest weight": float(v.max()) if v.size else float("nan"),
            "mean weight": float(v.mean()) if v.size else float("nan")}
    return pd.DataFrame.from_dict(rows, orient="index")


# ---------------------------------------------------------------------------------------
# Sentences from the numbers
# ---------------------------------------------------------------------------------------


def _mean_last(histories: Mapping[tuple[str, int], Sequence[Mapping[str, float]]],
               method: str, key: str, index: int = -1) -> float:
    """Mean over the method's runs of ``history[index][key]`` (nan when absent)."""
    vals = [float(h[index][key]) for (m, _), h in histories.items()
            if m == method and h and key in h[index] and np.isfinite(h[index][key])]
    return float(np.mean(vals)) if vals else float("nan")


def _overall_mean(ds: xr.Dataset, method: str, metric: str,
                  protocol: str = "eroded") -> float:
    v = _per_seed(ds, method, metric, protocol).values
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _mean_last_var(ds: xr.Dataset, method: str, var: str = "train_weight_last_epoch"
                   ) -> float:
    """Mean over seeds of a per-run variable (nan when absent)."""
    if var not in ds:
        return float("nan")
    v = np.asarray(ds[var].sel({"method": method}).values, float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def signed(x: float, digits: int = 1) -> str:
    """A change with its sign: "+0.7", "−2.3", "0.0"."""
    text = number(x, digits)
    return text if text.startswith(("\u2212", "–")) or float(f"{x:.{digits}f}") == 0 \
        else "+" + text


def sanity_problems(ds: xr.Dataset, method: str, *, pixel_baseline: str = "pixel_baseline",
                    protocol: str = "eroded") -> list[str]:
    """Why ``method`` takes part in no verdict, in words for a reader (empty: it may).

    The same two checks as :func:`aerialseg.stats.sanity_flags`: a run that has not
    converged, and a mean F1 below the per-pixel baseline's.
    """
    out = []
    if "converged" in ds:
        seeds = stats.present_seeds(ds, method)
        conv = ds["converged"].sel({"method": method})
        bad = [s for s in seeds if np.isfinite(float(conv.sel(seed=s)))
               and float(conv.sel(seed=s)) < 0.5]
        if bad:
            out.append(f"seed{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad))} "
                       "did not converge")
    if pixel_baseline in {str(m) for m in ds["method"].values}:
        f1, base = (_overall_mean(ds, m, "f1", protocol) for m in (method, pixel_baseline))
        if not f1 >= base:
            out.append(f"its mean F1 ({number(100 * f1)} %) is below the per-pixel "
                       f"baseline's ({number(100 * base)} %)")
    return out


def training_note(ds: xr.Dataset,
                  histories: Mapping[tuple[str, int], Sequence[Mapping[str, float]]],
                  flags: Mapping[str, str | None], *, names: Mapping[str, str],
                  baseline: str = "ce_dropout", methods: Sequence[str] = ("uce_a1", "uce_a10"),
                  pixel_baseline: str = "pixel_baseline") -> str:
    """What the training curves show, in sentences (Markdown), from the runs' histories.

    The mean pixel weight of the first and last epoch (how much larger a U-CE step is than a
    CE step at the same learning rate), the final plain cross-entropy against the
    baseline's, and
    which methods take part in no verdict and why (``flags`` from
    :func:`aerialseg.stats.sanity_flags`, phrased by :func:`sanity_problems`).
    """
    parts = []
    ce0 = _mean_last(histories, baseline, "loss")
    for m in methods:
        w0 = _mean_last(histories, m, "train_weight", 0)
        w = _mean_last(histories, m, "train_weight")
        ce = _mean_last(histories, m, "train_ce")
        if not np.isfinite(w):
            continue
        text = (f"{names.get(m, m)} weighted a training pixel by {number(w0, 2)} on "
                f"average in the first pass over the training samples and by {number(w, 2)} "
                f"in the last: at the shared learning rate its steps were about that many "
                f"times a CE step")
        if np.isfinite(ce) and np.isfinite(ce0):
            text += (f"; its plain cross-entropy on the training batches ended at "
                     f"{number(ce, 3)}, the CE baseline's at {number(ce0, 3)}")
        parts.append(text + ".")
    for m in (baseline, *methods):
        if flags.get(m):
            why = sanity_problems(ds, m, pixel_baseline=pixel_baseline) or [str(flags[m])]
            parts.append(f"**{names.get(m, m)} takes part in no verdict**: "
                         f"{'; '.join(why)}.")
    if not any(flags.get(m) for m in (baseline, *methods)):
        parts.append("Every run converged and every method scores above the per-pixel "
                     "baseline, so all take part in the verdicts.")
    return " ".join(parts)


def summary_text(ds: xr.Dataset, verdicts: Sequence[stats.Verdict],
                 flags: Mapping[str, str | None], paper: pd.DataFrame, *,
                 names: Mapping[str, str], costs: pd.DataFrame, check: Mapping[str, float],
                 shares: Mapping[float, float], ece_judgeable: bool, dlv3_ratio: float,
                 shared_all: bool, dataset: str, baseline: str = "ce_dropout",
                 pixel_baseline: str = "pixel_baseline") -> str:
    """The chapter's summary as Markdown sentences built from the results.

    Args:
        ds: the chapter's results.
        verdicts: the mIoU verdicts (``ch.verdicts(ds)``).
        flags: :func:`aerialseg.stats.sanity_flags` of ``ds``.
        paper: :func:`aerialseg.papers.uce.reported.landgraf_effects` (the paper's changes).
        names: method id -> display name.
        costs: :func:`step_cost_table`.
        check: :func:`compare_mc_passes`.
        shares: exponent -> :func:`weight_share` on the training batch.
        ece_judgeable: whether the statistics rule can judge ECE.
        dlv3_ratio: the paper's network's training step over the backbone's.
        shared_all: whether every CE baseline run is chapter 03's FCN run.
        dataset: the dataset's name.
        baseline: the CE method.
        pixel_baseline: the per-pixel baseline's method name.
    """
    def nm(m: str) -> str:
        return names.get(m, m)

    n_seeds = len(stats.present_seeds(ds, baseline))
    same = ("the very runs of chapter 03's FCN" if shared_all else
            "the same network and training")
    lines = [f"- **Compared**: U-CE with α = 1 and α = 10 against a CE baseline ({same}) on "
             f"the `{dataset}` data, {n_seeds} seed{'s' if n_seeds != 1 else ''}, the only "
             "difference being the loss."]
    base_problems = sanity_problems(ds, baseline, pixel_baseline=pixel_baseline)
    for v in verdicts:
        p = paper.loc[v.method, "Δ mIoU (points)"] if v.method in paper.index else np.nan
        lines.append(f"- {stats.sentence(v, names=names)} The paper's change on "
                     f"Cityscapes: {number(p)} points.")
        probs = sanity_problems(ds, v.method, pixel_baseline=pixel_baseline)
        below = any("below" in x for x in probs)
        w0 = _mean_last_var(ds, v.method, "train_weight_first_epoch")
        w = _mean_last_var(ds, v.method)
        ws = [x for x in (w0, w) if np.isfinite(x)]
        if below and not any("below" in x for x in base_problems) and ws and max(ws) >= 2:
            when = (f"{number(w0, 1)} in the first pass over the training samples and "
                    f"{number(w, 1)} in the last" if len(ws) == 2 else
                    f"{number(ws[0], 1)}")
            lines.append(
                f"  It learned less than a per-pixel classifier although the CE baseline, "
                f"with the same network and learning rate, did not. A likely cause is the "
                f"size of its steps: its mean pixel weight, {when}, makes them that "
                "many times a CE step on average at the shared learning rate, and far "
                "larger on the most uncertain pixels (see the weighting curves). This "
                "edition therefore cannot test the claim for it; a learning rate or a "
                "warm-up of its own would change the recipe the methods share.")
    if any("below" in x for x in base_problems):
        hint = (" (the `smoke` profile checks that the code runs; it does not train)"
                if ds.attrs.get("profile") == "smoke" else "")
        lines.append("- **No verdict is possible here**: even the CE baseline scores below "
                     f"the per-pixel baseline in this edition{hint}.")
    d = paired_seed_differences(ds, "ece", baseline, [m for m in paper.index
                                                      if m in set(map(str, ds["method"].values))])
    if "mean" in d.index:
        ece_bits = [f"{signed(d.loc['mean', m])} points with {nm(m)} (paper "
                    f"{signed(100 * paper.loc[m, 'Δ ECE'])})" for m in d.columns]
        why = ("" if ece_judgeable else
               "; the study's rule cannot resample ECE (it is not a function of a confusion "
               "matrix), so this is a description without a verdict")
        lines.append(f"- **Calibration**: ECE changed against CE by {' and '.join(ece_bits)}, "
                     f"mean of the paired seeds{why}.")
    if "uce_a10" in costs.index and np.isfinite(costs.loc["uce_a10", "× its ordinary step"]):
        lines.append(
            f"- **Cost**: with its MC passes a U-CE step took "
            f"{number(costs.loc['uce_a10', '× its ordinary step'], 1)}× its ordinary training "
            f"step ({number(costs.loc['uce_a10', 'MC share (%)'], 0)} % of it in the "
            f"passes); batching the passes ran {number(check['speedup'], 1)}× as fast as "
            f"looping them. The paper's DeepLabV3+ ResNet-18 step costs "
            f"{number(dlv3_ratio, 1)}× the backbone's on this hardware, which is why the "
            "CPU profiles train the backbone.")
    if shares:
        items = list(shares.items())
        first = f"{100 * items[0][1]:.0f} % of the loss's weight with α = {items[0][0]:g}"
        rest = "".join(f" and {100 * v:.0f} % with α = {a:g}" for a, v in items[1:])
        lines.append(f"- **Where the weight goes**: on a training batch the 10 % "
                     f"most-weighted pixels carry {first}{rest} (10 % would mean equal "
                     "weights).")
    lines.append("- **Beside the paper**: other data, a small FCN from random weights and far "
                 "fewer steps than the paper's ImageNet-pretrained DeepLabV3+; only the "
                 "direction of U-CE's change can be compared with Cityscapes.")
    return "\n".join(lines)


def readable_verdict(v: stats.Verdict, names: Mapping[str, str], *,
                     pixel_baseline: str = "pixel_baseline") -> stats.Verdict:
    """The verdict with method ids in its reason replaced by display names (for readers).

    :func:`aerialseg.stats.judge` names the methods of its reasons by id ("uce_a10: not
    converged", "below the per-pixel baseline pixel_baseline (9.5 vs 59.8)").
    """
    text = re.sub(rf"below the per-pixel baseline {re.escape(pixel_baseline)} "
                  r"\((\S+) vs (\S+)\)",
                  r"mean F1 \1 % below the per-pixel baseline's \2 %", v.reason)
    for m in sorted(names, key=len, reverse=True):
        text = re.sub(rf"(?<![\w-]){re.escape(m)}(?![\w-])", names[m], text)
    return dataclasses.replace(v, reason=text)


def sharing_note(sharing: pd.DataFrame) -> str:
    """One sentence on :func:`sharing_table`: shared runs, and who trained them."""
    n = len(sharing)
    shared = int(sharing["same stored model"].sum())
    stored = int(sharing["already in the run store"].sum())
    if shared == n:
        head = ("Every seed's CE baseline is the very model chapter 03 calls FCN" if n > 1
                else "The CE baseline is the very model chapter 03 calls FCN")
    else:
        head = (f"{n - shared} of the CE baseline's {n} runs differ from chapter 03's FCN (a "
                "parameter set in this chapter changed their configuration)")
    one = n == 1
    if stored == n:
        tail = ("the run store already held it, so it was not trained again" if one else
                "the run store already held every one of them, so none was trained again")
    elif stored == 0:
        tail = ("it was" if one else "they were") + " trained here"
        if shared:
            tail += ", and chapter 03 reuses " + ("it" if one else "them")
    else:
        rest = n - stored
        tail = (f"{stored} of {n} {'was' if stored == 1 else 'were'} already in the run "
                f"store, the other {rest} {'was' if rest == 1 else 'were'} trained here")
    return f"{head}: {tail}."


def pass_cost_note(costs: pd.DataFrame, T: int, method: str = "uce_a10") -> str:
    """What the measured cost of the passes means, against a forward pass at a third of a step.

    A pass is a forward pass only; if it cost a third of a training step (forward, backward
    and update), T passes would add T/3 steps.
    """
    if method not in costs.index or not np.isfinite(costs.loc[method, "× its ordinary step"]):
        return ""
    added = costs.loc[method, "× its ordinary step"] - 1
    guess = T / 3
    cmp = ("about as much as" if abs(added - guess) <= 0.25 * guess else
           "more than" if added > guess else "less than")
    return (f"The {T} passes added {number(added, 1)} ordinary training steps' time to each "
            f"U-CE step, {cmp} the {number(guess, 1)} expected if a forward pass cost a third "
            "of a training step (forward, backward and update). Batching saves the "
            "deterministic trunk and, on a GPU, the launch overhead of many small passes; on "
            "a CPU its per-copy BatchNorm adds work of its own.")
