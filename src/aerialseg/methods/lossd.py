"""Ma et al. 2026: the distance loss (Lossd) and Kervadec's boundary loss as prior art.

Three methods on one model (the plain U-Net of the library, ``unet_plain``) and one optimiser:

* ``base``: CE (label smoothing 0.05) + Dice, the base loss of the authors' GeoSeg framework;
* ``base_lossd``: ``CE + Dice + lossd_weight * Lossd`` (methods.md §8, λ_d reconstructed);
* ``base_boundary``: ``alpha * (CE + Dice) + (1 - alpha) * L_B`` (Kervadec et al.).

The distance maps depend only on the labels, so :func:`setup` computes them **once per
training scene** and hands them to the patch dataset as ``extras``: the dataset cuts and
rotates them exactly like the labels. City-block and Euclidean distance transforms commute
with the eight flips/rotations (D4), so a rotated crop of the scene's map is the map of the
rotated crop, except that the scene's map also sees object boundaries outside the crop (a
crop edge is not an object boundary; this is the more faithful value). Rescaling would break
this (distances are in pixels), so :func:`setup` rejects ``scale_range``.

This module also measures what the losses cost: :class:`LossTimer` (time of the loss's
forward pass in every training step, stored in the run's history) and
:func:`loss_step_cost` (forward + backward of the loss alone, cached maps vs maps computed on
every step), and it holds the chapter's worked examples (:func:`error_cost_table`,
:func:`lossd_cost_map`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from aerialseg.config import MethodSpec
from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.losses.dice import CEDiceLoss
from aerialseg.losses.distance import (
    BoundaryObjective,
    KervadecBoundaryLoss,
    LossdLoss,
    LossdObjective,
    kervadec_distance_maps,
    signed_distance_maps,
)
from aerialseg.training import Callback, TrainState

SOURCE = "Ma, Ren, Li, Chen 2026 (Lossd); Kervadec et al. 2021 (boundary loss)"

# -------------------------------------------------------------------------------- methods

_COMMON = {
    # model: the library's plain U-Net (CSE-UNet's "UNet" ablation row), depth 4
    "base_width": 64, "dropout2d": 0.0,
    # base loss of the authors' framework [code: UnetFormerLoss = CE(ls 0.05) + Dice]
    "label_smoothing": 0.05,
    # optimiser [reconstructed: AdamW as in the authors' configs, without Lookahead; one
    # cosine decay instead of warm restarts]
    "optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.01, "schedule": "cosine",
    "batch_size": 8, "epochs": 45, "crop_size": 256, "sampler": "grid", "tile_overlap": 0.5,
    "dihedral_aug": True,
}
_MODEL = ("base_width", "dropout2d")

# CPU profiles: a narrow U-Net and short training (the chapter says so); "full" keeps the
# U-Net's standard width 64 and the authors' 45 epochs on Potsdam.
_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"epochs": 2, "samples_per_epoch": 8, "batch_size": 4, "crop_size": 128,
              "base_width": 8},
    "default": {"epochs": 8, "samples_per_epoch": 48, "batch_size": 8, "crop_size": 128,
                "base_width": 8, "lr": 3e-3},
    "full": {"samples_per_epoch": None},
}


def _with(extra: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p: {**v, **extra.get(p, {})} for p, v in _PROFILES.items()}


LOSSD_PARAMS = {"lossd_weight": 1.0, "lossd_max_iter": 50, "lossd_norm": "log",
                "lossd_metric": "manhattan", "lossd_reduction": "mean",
                "lossd_warmup_epochs": 0}
BOUNDARY_PARAMS = {"boundary_alpha_step": 0.01, "boundary_alpha_min": 0.01}

METHODS: dict[str, MethodSpec] = {
    "base": MethodSpec(
        name="base", title="CE + Dice (base loss)", model="unet_plain", loss="ce_dice",
        params=dict(_COMMON), model_params=_MODEL, loss_params=("label_smoothing",),
        profiles=_with({}), source=SOURCE, setup="aerialseg.methods.lossd:setup"),
    "base_lossd": MethodSpec(
        name="base_lossd", title="CE + Dice + Lossd", model="unet_plain", loss="lossd",
        params={**_COMMON, **LOSSD_PARAMS}, model_params=_MODEL,
        loss_params=("label_smoothing", *LOSSD_PARAMS),
        # the smoke profile caps the distances at 10 (methods.md §8: 10-20 on CPU)
        profiles=_with({"smoke": {"lossd_max_iter": 10}}), source=SOURCE,
        setup="aerialseg.methods.lossd:setup"),
    "base_boundary": MethodSpec(
        name="base_boundary", title="α (CE + Dice) + (1 − α) boundary loss", model="unet_plain",
        loss="boundary", params={**_COMMON, **BOUNDARY_PARAMS}, model_params=_MODEL,
        loss_params=("label_smoothing", *BOUNDARY_PARAMS),
        # Kervadec's 0.01 per epoch over 200 epochs reaches the floor at half of training;
        # the short profiles keep that shape: step = 2 / epochs [reconstructed]
        profiles=_with({"smoke": {"boundary_alpha_step": 1.0},
                        "default": {"boundary_alpha_step": 0.25},
                        "full": {"boundary_alpha_step": 2 / 45}}),
        source=SOURCE, setup="aerialseg.methods.lossd:setup"),
}

# ------------------------------------------------------------------ distance maps, once


def scene_distance_maps(loss_fn: nn.Module, labels: np.ndarray) -> dict[str, np.ndarray]:
    """The distance maps ``loss_fn`` needs for one scene's (training) labels (H, W).

    Lossd: ``{"lossd_full": (C, H, W)}`` as int8 (int16 above a cap of 127): the values are
    integers in [-max_iter, max_iter], stored exactly; the positive map is
    ``lossd_full.clamp_min(0)`` (the callback rebuilds it per batch). Kervadec:
    ``{"boundary_dist": (C, H, W)}`` as float16 (relative error < 0.05 %, a quarter of the
    float32 memory). Other losses: ``{}``.
    """
    target = torch.from_numpy(np.asarray(labels, np.int64))
    lossd = _find(loss_fn, LossdLoss)
    if lossd is not None:
        full, _ = signed_distance_maps(target, lossd.num_classes, lossd.max_iter,
                                       lossd.ignore_index, lossd.metric)
        dtype = np.int8 if lossd.max_iter <= 127 else np.int16
        return {"lossd_full": full.numpy().astype(dtype)}
    boundary = _find(loss_fn, KervadecBoundaryLoss)
    if boundary is not None:
        phi = kervadec_distance_maps(target, boundary.num_classes, boundary.ignore_index)
        return {"boundary_dist": phi.numpy().astype(np.float16)}
    return {}


def _find(module: nn.Module, kind: type) -> nn.Module | None:
    return next((m for m in module.modules() if isinstance(m, kind)), None)


class LossTimer(Callback):
    """Times the loss's forward pass in every step (hooks on the loss module).

    At the end of each epoch it adds ``loss_ms`` (mean forward time per step, ms) to the
    epoch's history record, and on the first epoch ``distance_map_seconds`` (the one-off
    precomputation), so both are stored with the trained run.
    """

    def __init__(self, loss_fn: nn.Module, device: torch.device,
                 precompute_seconds: float = 0.0) -> None:
        self.device = device
        self.precompute_seconds = precompute_seconds
        self._t0 = 0.0
        self.times: list[float] = []
        loss_fn.register_forward_pre_hook(self._start)
        loss_fn.register_forward_hook(self._stop)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _start(self, *_: Any) -> None:
        self._sync()
        self._t0 = time.perf_counter()

    def _stop(self, *_: Any) -> None:
        self._sync()
        self.times.append(time.perf_counter() - self._t0)

    def on_epoch_start(self, state: TrainState) -> None:  # noqa: D102
        self.times = []

    def on_epoch_end(self, state: TrainState) -> None:  # noqa: D102
        record = state.history[-1]
        record["loss_ms"] = 1000 * float(np.mean(self.times)) if self.times else float("nan")
        if len(state.history) == 1:
            record["distance_map_seconds"] = self.precompute_seconds


class LossdPositiveMap(Callback):
    """Rebuilds ``aux["lossd_pos"]`` from the cached signed map (positive part)."""

    def batch_aux(self, state: TrainState, batch: dict[str, Tensor]) -> dict[str, Any]:  # noqa: D102
        return {"lossd_pos": batch["lossd_full"].clamp_min(0)}


def setup(ctx: Any) -> list[Callback]:
    """Method hook: cache the distance maps of every training scene in ``ctx.dataset.extras``.

    Args:
        ctx: :class:`aerialseg.runs.RunContext` (its dataset must have ``labels`` and
            ``extras``, as :class:`aerialseg.data.patches.SegmentationPatches` does).

    Returns:
        The callbacks: :class:`LossTimer` always, :class:`LossdPositiveMap` for Lossd.

    Raises:
        ValueError: random rescaling is on (distances in pixels would no longer match).
    """
    if ctx.cfg.train.scale_range is not None:
        raise ValueError("the cached distance maps are in pixels of the original scene, so "
                         "random rescaling (scale_range) would make them wrong; set "
                         "scale_range=None for base/base_lossd/base_boundary")
    ds = ctx.dataset
    t0 = time.perf_counter()
    maps: dict[str, list[np.ndarray]] = {}
    for labels in ds.labels:
        for key, arr in scene_distance_maps(ctx.loss_fn, labels).items():
            maps.setdefault(key, []).append(arr)
    seconds = time.perf_counter() - t0
    ds.extras.update(maps)
    callbacks: list[Callback] = [LossTimer(ctx.loss_fn, ctx.device, seconds)]
    if "lossd_full" in maps:
        callbacks.append(LossdPositiveMap())
    if maps:
        mb = sum(a.nbytes for arrs in maps.values() for a in arrs) / 2**20
        print(f"distance maps of {len(ds.labels)} training scenes computed once in "
              f"{seconds:.2f} s ({mb:.0f} MiB cached)")
    return callbacks

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
    return 1000 * float(np.median(times))


def loss_step_cost(target: Tensor, num_classes: int, *, max_iter: int = 50,
                   repeats: int = 5, device: str | torch.device = "cpu",
                   seed: int = 0) -> pd.DataFrame:
    """Forward + backward time (ms, median of ``repeats``) of each loss on one batch.

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


def _square_scene(size: int, half: int) -> np.ndarray:
    t = np.zeros((size, size), np.int64)
    c = size // 2
    t[c - half:c + half + 1, c - half:c + half + 1] = 1
    return t


def error_cost_table(depths: Sequence[int] = (1, 2, 4, 8, 16, 32), *, max_iter: int = 50,
                     size: int = 161, half: int = 40) -> pd.DataFrame:
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
    if max(depths) > half:
        raise ValueError(f"depths up to {max(depths)} need an object half-width >= that "
                         f"(half={half})")
    truth = _square_scene(size, half)
    c = size // 2
    n = truth.size
    target = torch.from_numpy(truth)[None]
    losses = {"Lossd (log)": LossdLoss(2, max_iter=max_iter),
              "Lossd (linear)": LossdLoss(2, max_iter=max_iter, norm="linear"),
              "boundary loss": KervadecBoundaryLoss(2),
              "cross-entropy": nn.CrossEntropyLoss()}

    def charge(pred: np.ndarray) -> dict[str, float]:
        logits = 20.0 * torch.nn.functional.one_hot(torch.from_numpy(pred), 2).permute(
            2, 0, 1)[None].float()
        perfect = 20.0 * torch.nn.functional.one_hot(target[0], 2).permute(2, 0, 1)[None].float()
        out = {}
        for name, fn in losses.items():
            diff = float(fn(logits, target)) - float(fn(perfect, target))
            out[name] = diff * n
        return out

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


def lossd_cost_map(pred: np.ndarray, truth: np.ndarray, num_classes: int, *,
                   max_iter: int = 50, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Per-pixel Lossd charge of a hard prediction, summed over classes (H, W).

    ``sum_c norm(|m_c * full_c - gt_pos_c|)``: 0 on correct pixels; a wrong pixel pays
    ``log(1 + d)/log(1 + max_iter)`` for the class it misses (its depth inside that class's
    region) and for the class it wrongly predicts (its distance to that class's region).
    Ignore pixels are 0.
    """
    target = torch.from_numpy(np.asarray(truth, np.int64))
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
