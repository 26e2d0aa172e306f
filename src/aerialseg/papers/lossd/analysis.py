"""The distance-loss chapter's analyses: costs, Lossd's charges, gains, objects, summary.

What one wrong pixel costs under each loss, what the losses and the networks cost per
training step, the paired gains of Lossd and of the boundary loss over CE + Dice (by the
study's one rule, :mod:`aerialseg.stats`), and the chapter's summary sentences. Numbers in
the text the chapter shows come from here, computed from the results.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from aerialseg import display, stats
from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.losses.dice import CEDiceLoss
from aerialseg.losses.distance import (
    BoundaryObjective,
    KervadecBoundaryLoss,
    LossdLoss,
    LossdObjective,
    signed_distance_maps,
)
from aerialseg.objects import ERRORS

SOURCE = "Ma, Ren, Li, Chen 2026 (Lossd); Kervadec et al. 2021 (boundary loss)"
METHODS = ("base", "base_lossd", "base_boundary")
"""The chapter's three objectives; ``base`` (CE + Dice) is the baseline."""
BASELINE = "base"
PIXEL_BASELINE = "pixel_baseline"
"""Method id of the per-pixel sanity baseline (:data:`aerialseg.chapter.PIXEL_BASELINE`;
this layer cannot import the chapter)."""

# ------------------------------------------------------------------- cost of the losses

STEP_COST_LABELS = {
    "base": "CE + Dice (the base loss)",
    "lossd_cached": "Lossd term, maps cached",
    "lossd_step": "Lossd term, maps computed in the step",
    "boundary_cached": "Boundary-loss term, maps cached",
    "boundary_step": "Boundary-loss term, maps computed in the step",
}
"""Row names of :func:`loss_step_cost`."""


def _timed(fn: Callable[[], Tensor], logits: Tensor, repeats: int) -> float:
    fn()  # warm-up (allocations, lazy init)
    times = []
    for _ in range(repeats):
        logits.grad = None
        t0 = time.perf_counter()
        fn().backward()
        if logits.device.type == "cuda":
            torch.cuda.synchronize(logits.device)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.min(times))  # the fastest run: least disturbed by other load


def loss_step_cost(target: Tensor, num_classes: int, *, max_iter: int = 50,
                   repeats: int = 5, device: str | torch.device = "cpu",
                   seed: int = 0) -> pd.DataFrame:
    """Forward + backward time (ms, fastest of ``repeats``) of each loss on one batch.

    Rows (keys of :data:`STEP_COST_LABELS`): the base loss; Lossd alone with cached maps
    and with maps computed in the step; the Kervadec term alone likewise. ``attrs["map_ms"]``
    holds the one-off cost of the maps of this batch, ``attrs["batch"]`` the logits' shape.
    ``logits`` are random (only the shapes matter for the cost).

    Args:
        target: (B, H, W) labels of a training batch.
        num_classes: C.
        max_iter: Lossd's distance cap.
        repeats: timed repetitions.
        device: where to time.
        seed: of the random logits.
    """
    device = torch.device(device)
    target = target.to(device)
    b, h, w = target.shape
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, num_classes, h, w, generator=g).to(device).requires_grad_(True)
    base = CEDiceLoss(label_smoothing=0.05).to(device)
    lossd = LossdLoss(num_classes, max_iter=max_iter).to(device)
    kerv = KervadecBoundaryLoss(num_classes).to(device)
    t0 = time.perf_counter()
    lossd_aux = lossd.precompute(target)
    t_lossd_maps = 1000 * (time.perf_counter() - t0)
    t0 = time.perf_counter()
    kerv_aux = kerv.precompute(target)
    t_kerv_maps = 1000 * (time.perf_counter() - t0)
    rows = {
        "base": (_timed(lambda: base(logits, target), logits, repeats), "no maps"),
        "lossd_cached": (_timed(lambda: lossd(logits, target, lossd_aux), logits, repeats),
                         "once per scene"),
        "lossd_step": (_timed(lambda: lossd(logits, target), logits, repeats),
                       "in every step"),
        "boundary_cached": (_timed(lambda: kerv(logits, target, kerv_aux), logits, repeats),
                            "once per scene"),
        "boundary_step": (_timed(lambda: kerv(logits, target), logits, repeats),
                          "in every step"),
    }
    df = pd.DataFrame({"time per step (ms)": [v[0] for v in rows.values()],
                       "distance maps": [v[1] for v in rows.values()]},
                      index=pd.Index(list(rows), name="loss"))
    df.attrs["map_ms"] = {"lossd": t_lossd_maps, "boundary": t_kerv_maps}
    df.attrs["batch"] = (b, num_classes, h, w)
    return df

# ------------------------------------------------------------------- worked examples


@contextmanager
def _one_thread() -> Iterator[None]:
    """Tiny tensors: one thread avoids thread-pool overhead (large on a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _square_scene(size: int, half: int) -> np.ndarray:
    t = np.zeros((size, size), np.int64)
    c = size // 2
    t[c - half:c + half + 1, c - half:c + half + 1] = 1
    return t


@_one_thread()
def error_cost_table(depths: Sequence[int] = (1, 2, 4, 8, 16, 32), *, max_iter: int = 50,
                     size: int = 135, half: int = 33) -> pd.DataFrame:
    """What one wrong pixel costs, as a function of its distance to the true boundary.

    A square object (class 1) on background (class 0). For each depth d, one pixel at
    city-block depth d *inside* the object is predicted as background (a miss), or one
    background pixel at distance d *outside* it is predicted as object (a spurious pixel).
    Each loss is evaluated with the real loss modules on hard (one-hot, logit scale 20)
    predictions, as the increase over the perfect prediction times the number of pixels N,
    i.e. the charge of that one pixel. Lossd charges the pixel in both classes (the one it
    misses and the one it wrongly takes), each ``log(1 + d) / log(1 + max_iter)``, and
    averages over the 2 active classes, so its column equals that expression.

    Returns:
        DataFrame indexed by depth with the charges of Lossd (log and linear normalisation),
        Kervadec's boundary loss and cross-entropy, for misses and spurious pixels.
    """
    if max(depths) > min(half, size // 2 - half - 1):
        raise ValueError(f"depths up to {max(depths)} need an object half-width and a "
                         f"margin around it >= that (half={half}, size={size})")
    truth = _square_scene(size, half)
    c = size // 2
    n = truth.size
    target = torch.from_numpy(truth)[None]
    losses = {"Lossd (log)": LossdLoss(2, max_iter=max_iter),
              "Lossd (linear)": LossdLoss(2, max_iter=max_iter, norm="linear"),
              "boundary loss": KervadecBoundaryLoss(2),
              "cross-entropy": nn.CrossEntropyLoss()}
    # the truth is the same in every case: its maps once (as in training)
    aux = {**losses["Lossd (log)"].precompute(target), **losses["boundary loss"].precompute(target)}

    def onehot_logits(labels: np.ndarray) -> Tensor:
        return 20.0 * torch.nn.functional.one_hot(torch.from_numpy(labels), 2).permute(
            2, 0, 1)[None].float()

    def values(pred: np.ndarray) -> dict[str, float]:
        logits = onehot_logits(pred)
        return {name: float(fn(logits, target, aux)) if name != "cross-entropy"
                else float(fn(logits, target)) for name, fn in losses.items()}

    perfect = values(truth)

    def charge(pred: np.ndarray) -> dict[str, float]:
        return {k: (v - perfect[k]) * n for k, v in values(pred).items()}

    rows = []
    for d in depths:
        miss = truth.copy()
        miss[c, c - half + d - 1] = 0  # inside, city-block depth d from the left edge
        spur = truth.copy()
        spur[c, c - half - d] = 1  # outside, distance d to the left edge
        m, s = charge(miss), charge(spur)
        rows.append({"depth d (px)": d, **{f"{k}: miss": v for k, v in m.items()},
                     **{f"{k}: spurious": v for k, v in s.items()},
                     "log(1+d)/log(1+max_iter)": math.log1p(min(d, max_iter))
                     / math.log1p(max_iter)})
    return pd.DataFrame(rows).set_index("depth d (px)")


@_one_thread()
def lossd_cost_map(pred: np.ndarray, truth: np.ndarray, num_classes: int, *,
                   max_iter: int = 50, ignore_index: int = IGNORE_INDEX,
                   evaluated: Sequence[int] | None = None) -> np.ndarray:
    """Per-pixel Lossd charge of a hard prediction, summed over classes (H, W).

    ``sum_c norm(|m_c * full_c - gt_pos_c|)``: 0 on correct pixels; a wrong pixel pays
    ``log(1 + d)/log(1 + max_iter)`` for the class it misses (its depth inside that class's
    region) and for the class it wrongly predicts (its distance to that class's region).
    Ignore pixels are 0; with ``evaluated``, truth pixels of other classes (ISPRS clutter)
    are treated as ignore, as in training.
    """
    truth = np.asarray(truth, np.int64)
    if evaluated is not None:
        truth = np.where(np.isin(truth, list(evaluated)), truth, ignore_index)
    target = torch.from_numpy(truth)
    full, pos = signed_distance_maps(target, num_classes, max_iter, ignore_index)
    p = torch.from_numpy(np.where(truth == ignore_index, 0, pred).astype(np.int64))
    m = torch.nn.functional.one_hot(p, num_classes).permute(2, 0, 1).float()
    cost = (torch.log1p((m * full - pos).abs()) / math.log1p(max_iter)).sum(0).numpy()
    return np.where(truth == ignore_index, 0.0, cost)


def objective_weights(name: str, epochs: int, **loss_kwargs: Any) -> pd.DataFrame:
    """Per-epoch weights of the objective of method ``name`` (λ_d for Lossd, α for boundary)."""
    if name == "base_lossd":
        obj: nn.Module = LossdObjective(6, loss_kwargs.get("lossd_weight", 1.0),
                                        loss_kwargs.get("lossd_warmup_epochs", 0))
        key, attr = "λ_d", "current_weight"
    elif name == "base_boundary":
        obj = BoundaryObjective(6, loss_kwargs.get("boundary_alpha_step", 0.01),
                                loss_kwargs.get("boundary_alpha_min", 0.01))
        key, attr = "α", "alpha"
    else:
        raise ValueError(f"objective_weights knows base_lossd and base_boundary, not {name!r}")
    values = []
    for e in range(epochs):
        obj.set_epoch(e)
        values.append(float(getattr(obj, attr)))
    return pd.DataFrame({key: values}, index=pd.RangeIndex(1, epochs + 1, name="epoch"))


def schedule_table(cfgs: Mapping[str, Any], *,
                   points: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0)) -> pd.DataFrame:
    """The weights of the distance terms over training, at fractions ``points`` of it.

    Rows: λ_d (the weight of Lossd, added to CE + Dice) and 1 − α (the boundary loss's
    share; CE + Dice gets α). Columns: "0 %", "25 %", ... of training (the weight of the
    training pass that starts there; the last column is the last pass).

    Args:
        cfgs: method -> resolved run (``base_lossd`` and ``base_boundary``).
        points: fractions of training.
    """
    rows = {}
    for name, key, label in (("base_lossd", "λ_d", "λ_d: weight of Lossd"),
                             ("base_boundary", "α", "1 − α: share of the boundary loss")):
        if name not in cfgs:
            continue
        cfg = cfgs[name]
        passes = int(cfg.train.epochs)
        w = objective_weights(name, passes, **cfg.loss_kwargs)[key].to_numpy()
        if key == "α":
            w = 1.0 - w
        rows[label] = {f"{100 * p:.0f} %": float(w[min(passes - 1, int(p * passes))])
                       for p in points}
    return pd.DataFrame.from_dict(rows, orient="index")


# ------------------------------------------------------------------- networks

def _train_step(model: nn.Module, x: Tensor) -> None:
    out = model(x)
    out = out["out"] if isinstance(out, dict) else out
    out.float().mean().backward()


def architecture_step_cost(networks: Mapping[str, Any], *, num_classes: int, crop: int,
                           repeats: int = 2, device: str | torch.device = "cpu",
                           seed: int = 0) -> pd.DataFrame:
    """Forward + backward time of one training crop through each network (ms, fastest).

    Args:
        networks: label -> resolved run (:class:`aerialseg.config.RunConfig`); its model,
            model parameters and input bands are used.
        num_classes: C.
        crop: side of the square crop (px).
        repeats: timed repetitions after one warm-up.
        device: where to time.
        seed: of the weights and the random input.

    Returns:
        DataFrame indexed by label: ``model``, ``parameters (M)``, ``time per crop (ms)``,
        ``relative`` (to the first row).
    """
    from aerialseg.models.registry import build_model

    device = torch.device(device)
    rows = {}
    for label, cfg in networks.items():
        torch.manual_seed(seed)
        model = build_model(cfg.model, in_channels=len(cfg.in_bands), num_classes=num_classes,
                            **cfg.model_kwargs).to(device).train()
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(1, len(cfg.in_bands), crop, crop, generator=g).to(device)
        _train_step(model, x)  # warm-up
        times = []
        for _ in range(max(1, repeats)):
            model.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            _train_step(model, x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
        rows[label] = {"model": cfg.model,
                       "parameters (M)": sum(p.numel() for p in model.parameters()) / 1e6,
                       "time per crop (ms)": 1000 * min(times)}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df["relative"] = df["time per crop (ms)"] / df["time per crop (ms)"].iloc[0]
    return df


# ------------------------------------------------------------------- what is trained

def network_name(cfg: Any) -> str:
    """The network of a resolved run, in words (``"FCN, widths 16 to 128"``)."""
    kw = cfg.model_kwargs
    if cfg.model == "fcn":
        w = kw.get("widths", ())
        return f"FCN, widths {w[0]} to {w[-1]}" if w else "FCN"
    if cfg.model == "unet_plain":
        return f"U-Net, width {kw.get('base_width', 64)}"
    return cfg.model.replace("_", " ")


def planned_steps(train: Any) -> int | None:
    """Optimiser steps a run's training makes (None: one pass over every patch, unknown)."""
    if train.samples_per_epoch is None:
        return None
    return int(train.epochs) * math.ceil(int(train.samples_per_epoch) / int(train.batch_size))


def _grouped(n: int) -> str:
    """``5760`` → ``"5 760"`` (a thin space between thousands)."""
    return f"{n:,}".replace(",", "\u202f")


def network_phrase(cfg: Any) -> str:
    """The trained network for a sentence: the shared backbone or the paper's U-Net."""
    from aerialseg.profiles import SHARED_BACKBONE

    shared = any(cfg.model == v["model"] and dict(cfg.model_kwargs) == dict(v["model_kwargs"])
                 for v in SHARED_BACKBONE.values())
    if shared:
        return f"the study's shared backbone ({network_name(cfg)})"
    return f"the {network_name(cfg)}" if cfg.model == "unet_plain" else network_name(cfg)


def run_table(cfgs: Mapping[str, Any]) -> pd.DataFrame:
    """One row per method: network, loss, optimiser, optimiser steps, batch."""
    loss = {"ce_dice": "CE (label smoothing 0.05) + Dice",
            "lossd": "CE + Dice + λ_d Lossd",
            "boundary": "α (CE + Dice) + (1 − α) boundary loss"}
    rows = {}
    for m, cfg in cfgs.items():
        t = cfg.train
        opt = (f"SGD, lr {t.lr:g}, momentum {t.momentum:g}" if t.optimizer == "sgd"
               else f"AdamW, lr {t.lr:g}, weight decay {t.weight_decay:g}")
        steps = planned_steps(t)
        rows[m] = {"network": network_name(cfg), "loss": loss.get(cfg.loss, cfg.loss),
                   "optimiser": f"{opt}, {t.schedule} schedule",
                   "steps": "–" if steps is None else _grouped(steps),
                   "batch": f"{t.batch_size} crops of {t.crop_size} px"}
    return pd.DataFrame.from_dict(rows, orient="index")


def network_sentence(cost: pd.DataFrame, cfg: Any, hardware: str, *, runs: int) -> str:
    """What the paper's network would cost here, from :func:`architecture_step_cost`.

    Args:
        cost: rows ``backbone`` (if trained) and ``unet``.
        cfg: the resolved run of the baseline (its steps and batch).
        hardware: where it was measured.
        runs: how many runs the chapter trains.
    """
    t = cfg.train
    steps = planned_steps(t)
    unet = cost.loc["unet"]
    if "backbone" not in cost.index:
        return (f"This profile trains the U-Net itself; one crop of {t.crop_size} px takes "
                f"{unet['time per crop (ms)']:.0f} ms forward and backward on {hardware}.")
    ratio = float(unet["time per crop (ms)"] / cost.loc["backbone", "time per crop (ms)"])
    text = (f"On this machine ({hardware}), one training crop of {t.crop_size} px (forward "
            f"and backward) "
            f"takes the U-Net {unet['time per crop (ms)']:.0f} ms and the backbone "
            f"{cost.loc['backbone', 'time per crop (ms)']:.0f} ms: {ratio:.0f} times as long")
    if steps:
        hours = steps * t.batch_size * unet["time per crop (ms)"] / 3.6e6
        minutes = round(60 * hours)
        took = (f"{hours:.1f} hours" if hours >= 1 else
                f"{minutes} minute{'s' if minutes != 1 else ''}")
        text += (f". The {_grouped(steps)} steps of {t.batch_size} crops of this profile "
                 f"would take the U-Net about {took} per run, for {runs} runs")
    return text + "."


# ------------------------------------------------------------------- training

def training_table(runs: Mapping[tuple[str, int], Any]) -> pd.DataFrame:
    """One row per trained run: steps, final loss, converged (the study's rule), seconds.

    Args:
        runs: ``{(method, seed): TrainedRun}`` (``Chapter.runs``).
    """
    rows = []
    for (method, seed), run in runs.items():
        hist = run.history
        conv = stats.convergence(hist)
        rows.append({"method": method, "seed": int(seed),
                     "steps": int(sum(int(h.get("steps", 0)) for h in hist)),
                     "final loss": float(hist[-1]["loss"]) if hist else float("nan"),
                     "converged": bool(conv.converged),
                     "training (s)": float(run.train_seconds),
                     "reused": bool(run.reused)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------- gains and verdicts

GAIN_METRICS: tuple[tuple[str, str], ...] = (("overall", "iou"), ("overall", "f1"),
                                             ("overall", "oa"))
"""(class, metric) pairs of the gain table before the per-class F1 rows."""


def gain_verdicts(ds: Any, *, methods: Sequence[str] = ("base_lossd", "base_boundary"),
                  baseline: str = BASELINE, per_class: bool = True,
                  protocol: str = "eroded", flags: Mapping[str, str | None] | None = None
                  ) -> list[stats.Verdict]:
    """Every method against ``baseline`` on mIoU, mean F1, OA and each class's F1.

    Judged by the study's rule (:func:`aerialseg.stats.judge`: paired bootstrap over seeds
    and spatial blocks); ``flags`` (default :func:`aerialseg.stats.sanity_flags` with the
    per-pixel baseline) keep an unconverged or sub-baseline model out of any verdict.
    """
    if flags is None:
        flags = stats.sanity_flags(ds, pixel_baseline=PIXEL_BASELINE, protocol=protocol)
    wanted = list(GAIN_METRICS)
    if per_class:
        ev = ds["evaluated"].values if "evaluated" in ds.coords else \
            [True] * ds.sizes["class"]
        wanted += [(str(c), "f1") for c, e in zip(ds["class"].values, ev, strict=True)
                   if e and str(c) != stats.OVERALL]
    present = {str(m) for m in ds["method"].values}
    return [stats.judge(ds, {"method": m, "baseline": baseline, "cls": c, "metric": k},
                        protocol=protocol, flags=flags)
            for m in methods if m in present for c, k in wanted]


def gain_table(verdicts: Sequence[stats.Verdict]) -> pd.DataFrame:
    """Verdicts as a table: rows (class, metric), one column per method.

    Cells: ``"+1.2 [−0.3, 2.5]"``, the change in points with its 95 % interval; the
    verdict's word in parentheses when the rule can judge it, ``"(untestable)"`` otherwise.
    """
    from aerialseg.tables import mean_interval

    rows: dict[str, dict[str, str]] = {}
    for v in verdicts:
        label = display.score_label(v.metric, v.cls)
        cell = mean_interval(v.estimate, v.low, v.high)
        if np.isfinite(v.estimate) and v.estimate > 0 and not cell.startswith("+"):
            cell = "+" + cell
        rows.setdefault(label, {})[v.method] = f"{cell} ({v.verdict})"
    return pd.DataFrame.from_dict(rows, orient="index")


def readable(verdicts: Sequence[stats.Verdict], names: Mapping[str, str] | None = None
             ) -> list[stats.Verdict]:
    """The verdicts with method ids in their reasons replaced by display names."""
    return [replace(v, reason=readable_reason(v.reason, names, (v.method, v.baseline)))
            for v in verdicts]


def readable_reason(reason: str, names: Mapping[str, str] | None = None,
                    methods: Sequence[str] = ()) -> str:
    """A reason of :mod:`aerialseg.stats` with display names instead of method ids."""
    reason = reason.replace(f"per-pixel baseline {PIXEL_BASELINE}", "per-pixel baseline")
    ids = {*methods, *(names or {}), *METHODS, PIXEL_BASELINE}
    for i in sorted((i for i in ids if i), key=len, reverse=True):
        name = (names or {}).get(i) or display.method_name(i)
        reason = re.sub(rf"(?<![\w-]){re.escape(i)}(?![\w-])", name, reason)
    return reason


# ------------------------------------------------------------------- objects

def pixel_baseline_maps(baseline: Any, scenes: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """The per-pixel baseline's prediction maps, as an evaluation keeps them.

    Args:
        baseline: :class:`aerialseg.diagnostics.PixelBaseline` (``Chapter.add_pixel_baseline``).
        scenes: the validation scenes.

    Returns:
        ``{scene name: {"pred", "truth"}}`` (uint8; ignore pixels 255 in the truth).
    """
    return {s.name: {"pred": baseline.predict_proba(s).argmax(0).astype(np.uint8),
                     "truth": s.labels.astype(np.uint8)} for s in scenes}


def paired_count_change(a: np.ndarray, b: np.ndarray, *, n_resamples: int | None = None,
                        level: float | None = None, seed: int | None = None
                        ) -> tuple[float, float, float]:
    """Change of an object count, A − B, with the study's paired bootstrap interval.

    The recipe of :mod:`aerialseg.stats` with the validation scenes as the blocks: each
    resample draws the seeds and, independently, the scenes with replacement (the same
    scenes for A and B and every seed, :func:`aerialseg.stats.bootstrap_weights`); a seed's
    count is its sum over the drawn scenes, and the resample's change is the mean over the
    drawn seeds of A − B.

    Args:
        a: ``(seeds, scenes)`` counts of A, seeds in the same order as B's.
        b: the same for B.
        n_resamples: bootstrap resamples (default :data:`aerialseg.stats.N_RESAMPLES`).
        level: interval coverage (default :data:`aerialseg.stats.LEVEL`).
        seed: random generator seed (default :data:`aerialseg.stats.RNG_SEED`).

    Returns:
        ``(estimate, low, high)``: the mean over seeds of the change on all scenes and the
        percentile interval.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 2 or a.size == 0:
        raise ValueError(f"A and B need the same non-empty (seeds, scenes) shape, got "
                         f"{a.shape} and {b.shape}")
    n_resamples = stats.N_RESAMPLES if n_resamples is None else n_resamples
    level = stats.LEVEL if level is None else level
    seed_counts, scene_counts = stats.bootstrap_weights(
        a.shape[0], a.shape[1], n_resamples, stats.RNG_SEED if seed is None else seed)
    diff = a - b  # (S, N)
    per_seed = scene_counts @ diff.T  # (R, S): each seed's change on the drawn scenes
    boot = (per_seed * seed_counts).sum(1) / seed_counts.sum(1)
    q = 100 * (1 - level) / 2
    low, high = np.percentile(boot, [q, 100 - q])
    return float(diff.sum(1).mean()), float(low), float(high)


def count_changes(da: Any, baseline: str, *, methods: Sequence[str] | None = None,
                  kinds: Sequence[str] = ERRORS, **kwargs: Any) -> pd.DataFrame:
    """:func:`paired_count_change` of every method against ``baseline``, per error kind.

    Counts are summed over classes; only seeds with runs of both methods take part.

    Returns:
        Long DataFrame: method, kind, estimate, low, high, baseline (the baseline's mean
        count over the paired seeds), seeds, scenes.
    """
    per = da.sum("class", min_count=1) if "class" in da.dims else da
    if "scene" not in per.dims:
        per = per.expand_dims(scene=["all"], axis=-2)
    chosen = [str(m) for m in (methods or per["method"].values) if str(m) != baseline]
    rows = []
    for m in chosen:
        both = per.sel({"method": [m, baseline]})
        ok = np.isfinite(both.values).all(axis=(0, 2, 3))
        seeds = [s for s, k in zip(per["seed"].values, ok, strict=True) if k]
        for k in kinds:
            if not seeds:
                rows.append({"method": m, "kind": k, "estimate": np.nan, "low": np.nan,
                             "high": np.nan, "baseline": np.nan, "seeds": 0,
                             "scenes": per.sizes["scene"]})
                continue
            sel = per.sel({"seed": seeds, "kind": k}).transpose("method", "seed", "scene")
            a, b = sel.sel({"method": m}).values, sel.sel({"method": baseline}).values
            est, low, high = paired_count_change(a, b, **kwargs)
            rows.append({"method": m, "kind": k, "estimate": est, "low": low, "high": high,
                         "baseline": float(b.sum(1).mean()), "seeds": len(seeds),
                         "scenes": per.sizes["scene"]})
    return pd.DataFrame(rows)


def count_change_table(changes: pd.DataFrame) -> pd.DataFrame:
    """:func:`aerialseg.objects.count_changes` as a table: rows method, columns kinds.

    Cells: ``"−3.0 [−6.0, 0.0]"``, the change of the count (summed over classes and
    validation scenes, mean over seeds) with its 95 % interval; the baseline's count is the
    last column of each kind's block (``"<kind>|baseline"``).
    """
    from aerialseg.tables import mean_interval

    rows: dict[str, dict[str, str]] = {}
    for r in changes.to_dict("records"):
        cell = mean_interval(r["estimate"], r["low"], r["high"], scale=1.0)
        if np.isfinite(r["estimate"]) and r["estimate"] > 0:
            cell = "+" + cell
        rows.setdefault(r["method"], {})[r["kind"]] = cell
    return pd.DataFrame.from_dict(rows, orient="index")


# ------------------------------------------------------------------- data and sentences

def dataset_note(dataset: str, data: Any) -> str:
    """What this dataset changes for the chapter, in two or three sentences (Markdown)."""
    classes = [display.class_name(data.classes.names[i]).lower()
               for i in data.classes.evaluated]
    listed = ", ".join(classes[:-1]) + " and " + classes[-1]
    bands = "-".join(b.upper() for b in data.bands)
    n = f"{len(data.train)} training and {len(data.val)} validation scenes"
    common = (f"The networks see the bands {bands}; the losses see only the labels, so the "
              f"distance maps are the same whatever the bands. Evaluated classes: {listed}.")
    if dataset == "synthetic":
        return (f"**Data: the synthetic scenes** ({n}), built like the ISPRS Vaihingen tiles "
                f"(chapter 01). {common} Both claims of the paper are on overall scores "
                "(mean F1, mIoU), so both are testable here; on our data they are tests of "
                "the *direction* of the effect, not of its size.")
    if dataset == "dubai":
        return (f"**Data: the Dubai aerial set** ({n}, real RGB imagery, whole tiles for "
                f"validation; chapter 01). {common} There is no car class and no height "
                "band. Both claims are on overall scores, so both are testable; on these "
                "data they test the direction of the effect, not its size.")
    if dataset == "loveda":
        return (f"**Data: LoveDA** ({n} of its Train and Val folders, urban and rural), one "
                "of the two data sets of the paper's claims. The paper's numbers are on the "
                f"LoveDA test server with 1024-pixel scenes; ours on the Val folder, cut "
                f"down by the profile. {common} The claims still test the direction of the "
                "effect, not its size.")
    return (f"**Data: `{dataset}`** ({n}). {common} The claims test the direction of the "
            "effect on these data, not its size.")


_MEANING = {
    "supported": "our runs show the paper's direction",
    "contradicted": "our runs show the opposite direction",
    "inconclusive": "the interval holds 0, so these runs cannot tell the direction",
    "untestable": "the study's rule cannot judge it here",
}


def _kind_phrase(kind: str) -> str:
    return {"spurious": "spurious segments", "missed": "missed objects",
            "split": "split objects", "merged": "merged segments"}[kind]


def summary_text(*, edition: str, network: str, verdicts: Sequence[stats.Verdict],
                 claims: Sequence[Any], gains: Sequence[stats.Verdict],
                 changes: pd.DataFrame, step_cost: pd.DataFrame,
                 flags: Mapping[str, str | None], names: Mapping[str, str] | None = None,
                 final_losses: Mapping[str, float] | None = None) -> str:
    """The chapter's summary: sentences built from the numbers (Markdown).

    What was compared; each objective's effect on mIoU and mean F1 with its interval; the
    verdicts on the paper's claims and what they mean; the change of the object errors;
    the cost per step; which models the rule had to leave out, and why, said once.

    Args:
        edition: :meth:`aerialseg.chapter.Chapter.edition`.
        network: what was trained, in words (:func:`network_phrase`).
        verdicts: the verdicts on the paper's claims (``ch.verdicts(ds)``, :func:`readable`).
        claims: the claims, in the same order.
        gains: :func:`gain_verdicts` (readable).
        changes: :func:`aerialseg.objects.count_changes` against CE + Dice.
        step_cost: :func:`loss_step_cost`.
        flags: :func:`aerialseg.stats.sanity_flags` of the results.
        names: display names of the methods.
        final_losses: mean final training loss per method (:func:`final_losses`); with it,
            a boundary loss below the per-pixel baseline gets its likely cause.
    """
    names = {**display.method_names(METHODS), **dict(names or {})}
    base = names[BASELINE]
    parts = [f"We trained {network} with three objectives, {base}, {names['base_lossd']} and "
             f"{names['base_boundary']}, which differ only in the loss. {edition}"]
    effects = []
    for method in ("base_lossd", "base_boundary"):
        bits = [f"{stats.metric_label(g.metric, g.cls)} {_signed(g.estimate)} points "
                f"(95 % interval {_signed(g.low)} to {_signed(g.high)}"
                + (f"; {g.verdict})" if g.verdict != "untestable" else ")")
                for g in gains if g.method == method and g.cls == stats.OVERALL
                and g.metric in ("iou", "f1") and np.isfinite(g.estimate)]
        if bits:
            effects.append(f"{names[method]} changed " + " and ".join(bits))
    if effects:
        parts.append("Against " + base + ", on the eroded ground truth: "
                     + "; ".join(effects) + ".")
    for v, c in zip(verdicts, claims, strict=True):
        paper = "" if c.paper_delta is None else f" ({c.paper_delta:+.1f} points in the paper)"
        if v.verdict == "untestable":
            parts.append(f"The paper's claim *{c.text}*{paper} is **untestable** in this "
                         "edition (the reason is below).")
        else:
            parts.append(f"The paper's claim *{c.text}*{paper} is **{v.verdict}** on our "
                         f"runs: {_MEANING[v.verdict]} "
                         f"(ours {_signed(v.estimate)} points, 95 % interval "
                         f"{_signed(v.low)} to {_signed(v.high)}, {v.n_seeds} seeds).")
    obj = []
    for method in ("base_lossd", "base_boundary"):
        sel = changes[changes["method"] == method] if len(changes) else changes
        bits = [f"{_kind_phrase(r['kind'])} by {_signed(r['estimate'], 1.0)} "
                f"(95 % interval {_signed(r['low'], 1.0)} to {_signed(r['high'], 1.0)}; "
                f"{base}: {r['baseline']:.1f})"
                for r in sel.to_dict("records")
                if r["kind"] in ("spurious", "missed") and np.isfinite(r["estimate"])]
        if bits:
            obj.append(f"{names[method]} changed the number of " + " and of ".join(bits))
    if obj:
        parts.append("Summed over the classes and validation scenes, "
                     + "; ".join(obj) + ". Lossd is meant to lower both; an interval that "
                     "holds 0 means these runs do not show a change.")
    if len(step_cost):
        c = step_cost["time per step (ms)"]
        parts.append(f"Per training step, the Lossd term took {c['lossd_cached']:.0f} ms with "
                     f"the distance maps cached once per scene and {c['lossd_step']:.0f} ms "
                     f"with the maps computed in the step; CE + Dice took {c['base']:.0f} ms.")
    why = [f"{names[m]}: {readable_reason(str(flags[m]), names)}" for m in METHODS
           if flags.get(m)]
    n = min((v.n_seeds for v in verdicts), default=0)
    if n < stats.MIN_SEEDS:
        why.append(f"{n} paired seed{'s' if n != 1 else ''} (the rule needs "
                   f"{stats.MIN_SEEDS})")
    if why and any(v.verdict == "untestable" for v in [*verdicts, *gains]):
        parts.append("Why the rule gives no verdict where it says *untestable*: "
                     + "; ".join(why) + ". It needs three paired seeds and models that "
                     "converged and beat the per-pixel baseline, and leaves the others out "
                     "rather than judge undertrained models.")
    parts += boundary_cause(flags, final_losses or {}, names)
    return "\n\n".join(parts)


def final_losses(runs: Mapping[tuple[str, int], Any]) -> dict[str, float]:
    """Mean over seeds of each method's last-epoch training loss (``Chapter.runs``)."""
    t = training_table(runs)
    return {str(m): float(v) for m, v in t.groupby("method")["final loss"].mean().items()}


def boundary_cause(flags: Mapping[str, str | None], losses: Mapping[str, float],
                   names: Mapping[str, str]) -> list[str]:
    """The likely cause when the boundary loss ends below the per-pixel baseline (Markdown).

    Kervadec et al.'s term is linear in the distance in pixels and unbounded; they train
    with Adam, whose steps do not grow with the loss's scale. The study's shared recipe is
    SGD, whose steps do: once alpha has fallen, the term's gradient dwarfs CE + Dice's. The
    final training losses show the scale; the sentence says "likely", as no ablation here
    isolates the optimiser.
    """
    flag = str(flags.get("base_boundary") or "")
    lb, lbase = losses.get("base_boundary", np.nan), losses.get(BASELINE, np.nan)
    if "below" not in flag or not (np.isfinite(lb) and np.isfinite(lbase)) or lb >= 0:
        return []
    return [f"A likely cause of {names['base_boundary']}'s failure: its training loss ended "
            f"at {lb:.1f} against {lbase:.2f} for {names[BASELINE]}, so the boundary term "
            "(linear in the distance to the boundary, in pixels, and unbounded) dominated the "
            "objective once α had fallen. Kervadec et al. train it with Adam, whose steps do "
            "not grow with the scale of the loss; the study's shared recipe is SGD, whose "
            "steps do, and pixels near a boundary (all of a car's) then weigh little against "
            "the far interior of large regions. This edition does not isolate the optimiser, "
            "so the claim stays untestable rather than contradicted."]


def _signed(x: float, scale: float = 100.0, digits: int = 1) -> str:
    """``+1.2`` / ``−0.4``: a fraction in points (``scale`` 1 for counts)."""
    return f"{scale * x:+.{digits}f}".replace("-", "\u2212")


# ------------------------------------------------------------------- runs

def _mean_loss_ms(history: list[dict[str, float]]) -> float:
    v = np.array([h.get("loss_ms", np.nan) for h in history], float)
    return float(v[np.isfinite(v)].mean()) if np.isfinite(v).any() else float("nan")


def loss_time_dataarray(runs: Mapping[tuple[str, int], Any]) -> Any:
    """``loss_forward_ms[method, seed]``: mean forward time of the loss per training step."""
    import xarray as xr

    methods = list(dict.fromkeys(m for m, _ in runs))
    seeds = sorted({s for _, s in runs})
    arr = np.full((len(methods), len(seeds)), np.nan)
    for (m, s), run in runs.items():
        arr[methods.index(m), seeds.index(s)] = _mean_loss_ms(run.history)
    return xr.DataArray(arr, dims=("method", "seed"), coords={"method": methods, "seed": seeds},
                        name="loss_forward_ms")


def cost_summary(runs: Mapping[tuple[str, int], Any]) -> pd.DataFrame:
    """Per method (mean over seeds): the loss's forward time and the training step's.

    Columns: ``loss forward (ms per step)`` (the median step of each training pass, as
    :class:`~aerialseg.papers.lossd.method.LossTimer` recorded it), ``training step (ms)``
    (wall time of training over its optimiser steps) and ``distance maps, once (s)`` (the
    one-off maps of every training scene). Runs trained without the timer show NaN.
    """
    rows: dict[str, dict[str, list[float]]] = {}
    for (method, _), run in runs.items():
        r = rows.setdefault(method, {"loss forward (ms per step)": [],
                                     "training step (ms)": [],
                                     "distance maps, once (s)": []})
        hist = run.history
        steps = sum(int(h.get("steps", 0)) for h in hist)
        r["loss forward (ms per step)"].append(_mean_loss_ms(hist))
        r["training step (ms)"].append(1000 * sum(float(h["seconds"]) for h in hist) / steps
                                       if steps else float("nan"))
        maps = float(hist[0].get("distance_map_seconds", np.nan)) if hist else np.nan
        loss = getattr(getattr(run, "cfg", None), "loss", None)
        r["distance maps, once (s)"].append(np.nan if loss == "ce_dice" else maps)

    def mean(v: list[float]) -> float:
        a = np.asarray(v, float)
        return float(a[np.isfinite(a)].mean()) if np.isfinite(a).any() else float("nan")

    return pd.DataFrame({m: {k: mean(v) for k, v in r.items()} for m, r in rows.items()}).T


def label_batch(labels: Sequence[np.ndarray], batch_size: int, crop: int) -> Tensor:
    """(batch_size, crop, crop) int64 label crops, cycling over scenes and grid positions.

    A realistic training batch for :func:`loss_step_cost` (same classes and boundaries).
    """
    from aerialseg.data.patches import grid_windows

    windows = [(i, y, x) for i, lab in enumerate(labels)
               for (y, x) in grid_windows(*lab.shape, crop, 0.0)]
    # interleave scenes so a small batch still sees several of them
    windows.sort(key=lambda w: (w[1], w[2], w[0]))
    out = [labels[i][y:y + crop, x:x + crop] for i, y, x in
           (windows[k % len(windows)] for k in range(batch_size))]
    return torch.from_numpy(np.stack(out).astype(np.int64))


def sensitivity_frame(sens: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[str, list[str]]]]:
    """:meth:`aerialseg.objects.ObjectTally.sensitivity` for a table.

    Returns:
        The frame with one readable row per rule ("≥ 10 px, half overlaps") and the column
        groups (one per error kind, for ``show_table(split=...)``).
    """
    from aerialseg.objects import KIND_NAMES

    def rule(size: int, overlap: float) -> str:
        o = "any overlap" if overlap == 0 else f"overlap ≥ {100 * overlap:.0f} %"
        return f"≥ {size} px, {o}"

    out = sens.copy()
    out.index = [rule(int(a), float(b)) for a, b in sens.index]
    groups: dict[str, list[str]] = {}
    for c in out.columns:
        kind, _ = str(c).split("|", 1)
        groups.setdefault(KIND_NAMES.get(kind, kind), []).append(str(c))
    return out, list(groups.items())


def method_column_names(columns: Sequence[str]) -> dict[str, str]:
    """``"<kind>|<method>"`` column ids -> the method's display name."""
    return {str(c): display.method_name(str(c).split("|", 1)[-1]) for c in columns}


def per_class_frame(da: Any, *, kinds: Sequence[str] = ("missed", "spurious")
                    ) -> tuple[pd.DataFrame, list[tuple[str, list[str]]]]:
    """Per class (rows): true objects, then each kind per method (mean over seeds).

    Returns:
        The frame (columns ``"objects"`` and ``"<kind>|<method>"``) and its column groups
        (one per kind; the true objects open the first).
    """
    from aerialseg.objects import KIND_NAMES

    per = da.sum("scene", min_count=1) if "scene" in da.dims else da
    mean = per.mean("seed")
    methods = [str(m) for m in per["method"].values]
    cols: dict[str, Any] = {"objects": mean.sel({"kind": "objects"}).isel(method=0)
                            .to_series()}
    groups: list[tuple[str, list[str]]] = []
    for k in kinds:
        names = ["objects"] if not groups else []
        for m in methods:
            cols[f"{k}|{m}"] = mean.sel({"kind": k, "method": m}).to_series()
            names.append(f"{k}|{m}")
        title = KIND_NAMES.get(k, k)
        groups.append((f"True objects and {title.lower()}" if not groups else title, names))
    return pd.DataFrame(cols), groups
