"""The distance-loss chapter's analyses: loss costs, Lossd's charges, paired gains.

What the losses cost per step, worked examples of the charge of one wrong pixel, and paired
gains over the base loss.
"""

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.losses.dice import CEDiceLoss
from aerialseg.losses.distance import (
    BoundaryObjective,
    KervadecBoundaryLoss,
    LossdLoss,
    LossdObjective,
    signed_distance_maps,
)

SOURCE = "Ma, Ren, Li, Chen 2026 (Lossd); Kervadec et al. 2021 (boundary loss)"
# ------------------------------------------------------------------- cost of the losses


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

    Rows: the base loss; Lossd alone with cached maps and with maps computed in the step;
    the Kervadec term alone likewise; and the one-off cost of the maps for this batch.
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
        "CE + Dice (base)": (_timed(lambda: base(logits, target), logits, repeats), "-"),
        "Lossd, cached maps": (_timed(lambda: lossd(logits, target, lossd_aux), logits,
                                      repeats), "once per scene"),
        "Lossd, maps in every step": (_timed(lambda: lossd(logits, target), logits, repeats),
                                      "every step"),
        "boundary loss, cached maps": (_timed(lambda: kerv(logits, target, kerv_aux), logits,
                                              repeats), "once per scene"),
        "boundary loss, maps in every step": (_timed(lambda: kerv(logits, target), logits,
                                                     repeats), "every step"),
    }
    df = pd.DataFrame({"ms per step (fwd + bwd)": [v[0] for v in rows.values()],
                       "distance maps computed": [v[1] for v in rows.values()]},
                      index=list(rows))
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


GAIN_METRICS = (("iou", "mIoU"), ("f1", "mean F1"), ("oa", "OA"),
                ("boundary_f1", "boundary F1"))


def paired_gain(ds: Any, method: str, metric: str, *, base: str = "base",
                protocol: str = "eroded") -> tuple[float, float]:
    """Mean and std over seeds of ``method - base`` on an overall metric (points).

    Same-seed differences, so noise shared by both runs cancels; std is NaN for one seed.
    """
    sc = 100 * ds["scores"].sel({"protocol": protocol, "class": "overall", "metric": metric})
    diff = (sc.sel({"method": method}) - sc.sel({"method": base})).values.astype(float)
    diff = diff[np.isfinite(diff)]
    if diff.size == 0:
        return float("nan"), float("nan")
    return float(diff.mean()), float(diff.std(ddof=1)) if diff.size > 1 else float("nan")


def gains_vs_base(ds: Any, *, base: str = "base", protocol: str = "eroded",
                  metrics: Sequence[tuple[str, str]] = GAIN_METRICS) -> pd.DataFrame:
    """:func:`paired_gain` of every method but ``base`` on ``metrics``, as "mean ± std".

    Args:
        ds: a results Dataset (``scores[method, seed, protocol, class, metric]``).
        base: the reference method.
        protocol: ``"eroded"`` or ``"full"``.
        metrics: (metric, label) pairs.
    """
    rows = {}
    for method in ds["method"].values:
        if method == base:
            continue
        row = {}
        for metric, label in metrics:
            mean, std = paired_gain(ds, str(method), metric, base=base, protocol=protocol)
            row[label] = ("–" if not np.isfinite(mean) else f"{mean:+.2f}" if not
                          np.isfinite(std) else f"{mean:+.2f} ± {std:.2f}")
        rows[f"{method} − {base}"] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def _mean_loss_ms(history: list[dict[str, float]]) -> float:
    v = np.array([h.get("loss_ms", np.nan) for h in history], float)
    return float(v[np.isfinite(v)].mean()) if np.isfinite(v).any() else float("nan")


def loss_time_dataarray(runs: dict[tuple[str, int], Any]) -> Any:
    """``loss_forward_ms[method, seed]``: mean forward time of the loss per training step."""
    import xarray as xr

    methods = list(dict.fromkeys(m for m, _ in runs))
    seeds = sorted({s for _, s in runs})
    arr = np.full((len(methods), len(seeds)), np.nan)
    for (m, s), run in runs.items():
        arr[methods.index(m), seeds.index(s)] = _mean_loss_ms(run.history)
    return xr.DataArray(arr, dims=("method", "seed"), coords={"method": methods, "seed": seeds},
                        name="loss_forward_ms")


def cost_summary(runs: dict[tuple[str, int], Any]) -> pd.DataFrame:
    """Per method (mean over seeds): loss forward ms per step, s per epoch, one-off maps (s).

    Reads the histories that :class:`LossTimer` filled (runs trained before it existed, or
    by another hook, show NaN).
    """
    rows: dict[str, dict[str, list[float]]] = {}
    for (method, _), run in runs.items():
        r = rows.setdefault(method, {"loss ms/step (forward)": [], "s/epoch": [],
                                     "distance maps, once (s)": []})
        hist = run.history
        r["loss ms/step (forward)"].append(_mean_loss_ms(hist))
        r["s/epoch"].append(float(np.mean([h["seconds"] for h in hist])))
        r["distance maps, once (s)"].append(float(hist[0].get("distance_map_seconds",
                                                               np.nan)))
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


def gain_text(ds: Any, method: str, metric: str) -> str:
    """:func:`paired_gain` as text: ``+m.mm ± s.ss points`` (the spread over seeds)."""
    mean, std = paired_gain(ds, method, metric)
    if not np.isfinite(std):
        return f"{mean:+.2f} points, one seed"
    return f"{mean:+.2f} ± {std:.2f} points"


def relative_change(counts: dict[str, dict[str, float]], method: str, kind: str,
                    base: str = "base") -> str:
    """Relative change of an object count against ``base``, as text (``+12 %``)."""
    b = counts[base][kind]
    return f"{100 * (counts[method][kind] - b) / b:+.0f} %" if b else "n/a"
