"""U-CE: uncertainty-aware cross-entropy, Landgraf et al. 2024 (``methods.md`` §5).

Three methods share one model and optimiser (DeepLabV3+ from segmentation_models_pytorch,
ResNet-18 encoder with element-wise dropout 0.2 after each encoder stage, SGD with a 10x
decoder learning rate and a poly schedule):

- ``ce_dropout``: the plain cross-entropy baseline with the identical dropout architecture;
- ``uce_a1`` / ``uce_a10``: U-CE with exponent alpha = 1 (the code's default) and 10 (the
  paper's best): ``L = sum_x (1 + u(x))^alpha CE(x) / #valid``.

The per-pixel uncertainty ``u`` comes from :class:`UCEUncertainty`, a training callback
that runs ``uce_mc_samples`` extra stochastic passes without gradients before every step.
The passes are batched: the deterministic trunk (stem and first ResNet block) runs once and
the rest of the network once over the T stacked copies of the batch, with every BatchNorm
normalising each copy by that copy's own statistics (:class:`GroupedBatchNorm`), so the
result is the same as T separate passes in train mode, as the U-CE code runs them.

The module also holds the chapter's evaluation helpers (mean uncertainty, step costs,
tables beside the paper's).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from aerialseg.config import MethodSpec, method_parameter_names
from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.losses.uce import UNCERTAINTY_KINDS, uce_uncertainty
from aerialseg.models.mc import get_mc_split, mc_forward, repeat_batch
from aerialseg.training import Callback, TrainState

if TYPE_CHECKING:
    import xarray as xr

    from aerialseg.chapter import Chapter
    from aerialseg.config import RunConfig
    from aerialseg.data.patches import BandStats
    from aerialseg.data.registry import SplitData
    from aerialseg.evaluation import Evaluation
    from aerialseg.runs import RunContext, TrainedRun

MC_BN_MODES = ("train", "train_frozen_stats", "eval")
"""BatchNorm during the training-time MC passes: ``"train"`` (batch statistics, running
buffers updated once per pass, as U-CE's code does), ``"train_frozen_stats"`` (batch
statistics, buffers left untouched) or ``"eval"`` (running statistics; our addition)."""

METHOD_NAMES = ("ce_dropout", "uce_a1", "uce_a10")

# ---------------------------------------------------------------------------------------
# Method definitions
# ---------------------------------------------------------------------------------------

_MODEL = {
    "encoder": "resnet18", "encoder_weights": None, "encoder_dropout": 0.2,
    "decoder_dropout": None, "encoder_output_stride": 16,
    "decoder_atrous_rates": (12, 24, 36), "decoder_channels": 256, "encoder_depth": 5,
}
_TRAIN = {
    "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4,
    "decoder_lr_mult": 10.0, "schedule": "poly", "poly_power": 0.9,
    "batch_size": 16, "epochs": 200, "sampler": "random_crop", "crop_size": 512,
    "scale_range": (0.5, 2.0), "dihedral_aug": True, "samples_per_epoch": 400, "amp": True,
}
_UCE = {"uce_mc_samples": 10, "uce_uncertainty": "predicted_class_std",
        "uce_start_epoch": 0, "uce_mc_bn": "train"}

# CPU profiles scale the network and the training down (stated in the chapter). The
# batch sizes divide samples_per_epoch: DeepLabV3+'s image-pooling BatchNorm cannot train
# on a last batch of one sample.
_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"encoder_depth": 3, "decoder_channels": 16, "decoder_atrous_rates": (2, 4, 6),
              "crop_size": 64, "batch_size": 4, "samples_per_epoch": 8, "epochs": 1},
    "default": {"encoder_depth": 4, "decoder_channels": 64, "decoder_atrous_rates": (2, 4, 6),
                "crop_size": 96, "batch_size": 8, "samples_per_epoch": 64, "epochs": 4},
    "full": {"epochs": 50, "samples_per_epoch": 320},
}
_UCE_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"uce_mc_samples": 2},
    "default": {"uce_mc_samples": 3},
    "full": {},
}

EVAL_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"test_mc_samples": 2, "tile": 256, "overlap": 32},
    "default": {"test_mc_samples": 4, "tile": 512, "overlap": 64},
    "full": {"test_mc_samples": 10, "tile": 1024, "overlap": 128},
}
"""Evaluation settings per profile (``test_mc_samples``: MC passes at evaluation)."""

_SOURCE = "Landgraf et al. 2024 (U-CE), code StevenLandgraf/U-CE"


def _spec(name: str, title: str, loss: str, extra: dict[str, Any]) -> MethodSpec:
    uce = loss == "uce"
    params = {**_MODEL, **_TRAIN, **extra}
    profiles = {p: {**_PROFILES[p], **(_UCE_PROFILES[p] if uce else {})} for p in _PROFILES}
    return MethodSpec(
        name=name, title=title, model="smp_deeplabv3plus", loss=loss, params=params,
        model_params=tuple(_MODEL),
        loss_params=("uce_exponent", *_UCE) if uce else (),
        profiles=profiles, source=_SOURCE,
        setup="aerialseg.methods.uce:setup_uce" if uce else None)


METHODS: dict[str, MethodSpec] = {
    "ce_dropout": _spec("ce_dropout", "CE baseline (DeepLabV3+ with MC dropout)", "ce", {}),
    "uce_a1": _spec("uce_a1", "U-CE, alpha = 1", "uce", {"uce_exponent": 1.0, **_UCE}),
    "uce_a10": _spec("uce_a10", "U-CE, alpha = 10", "uce", {"uce_exponent": 10.0, **_UCE}),
}


def method_overrides(method: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that ``method`` accepts (U-CE-only ones dropped for CE)."""
    valid = set(method_parameter_names(method))
    return {k: v for k, v in values.items() if k in valid}


def eval_settings(profile: str, **overrides: Any) -> dict[str, Any]:
    """Evaluation settings of ``profile`` with explicit (non-None) overrides."""
    if profile not in EVAL_PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(EVAL_PROFILES)}")
    unknown = set(overrides) - set(EVAL_PROFILES[profile])
    if unknown:
        raise ValueError(f"unknown evaluation setting(s) {sorted(unknown)}; valid: "
                         f"{sorted(EVAL_PROFILES[profile])}")
    out = dict(EVAL_PROFILES[profile])
    out.update({k: v for k, v in overrides.items() if v is not None})
    if out["test_mc_samples"] < 2:
        raise ValueError(f"test_mc_samples must be >= 2 (got {out['test_mc_samples']})")
    return out


# ---------------------------------------------------------------------------------------
# Batched MC passes with BatchNorm in train mode
# ---------------------------------------------------------------------------------------


class GroupedBatchNorm:
    """Context manager: each BatchNorm normalises every copy in its batch on its own.

    A batch of ``groups`` equal copies (copy k = rows ``k*B:(k+1)*B``) is normalised copy by
    copy with that copy's own batch statistics, so T passes stacked into one batch behave
    like T separate train-mode passes. With ``update_stats`` the running buffers are updated
    as T sequential passes would (once per copy, in order, ``repeats`` times each: a trunk
    run once for T passes counts T times); otherwise they are left untouched. Modules in
    eval mode keep their usual forward.
    """

    def __init__(self, model: nn.Module, *, update_stats: bool) -> None:
        self.bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        self.update_stats = update_stats
        self.groups = 1
        self.repeats = 1
        self._saved: list[tuple[_BatchNorm, Any]] = []

    def __enter__(self) -> GroupedBatchNorm:
        for m in self.bns:
            self._saved.append((m, m.__dict__.get("forward")))
            # an instance attribute shadows the class's forward for this module only
            m.forward = self._make_forward(m)  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        for m, fwd in self._saved:
            if fwd is None:
                del m.forward
            else:
                m.forward = fwd  # type: ignore[method-assign]
        self._saved.clear()

    @contextmanager
    def setting(self, groups: int, repeats: int = 1) -> Iterator[None]:
        """Temporarily regroup: ``groups`` copies per batch, each counted ``repeats`` times."""
        old = self.groups, self.repeats
        self.groups, self.repeats = groups, repeats
        try:
            yield
        finally:
            self.groups, self.repeats = old

    def _make_forward(self, m: _BatchNorm) -> Callable[[Tensor], Tensor]:
        original = type(m).forward

        def forward(x: Tensor) -> Tensor:
            if not m.training:
                return original(m, x)
            return self._grouped(m, x)

        return forward

    def _grouped(self, m: _BatchNorm, x: Tensor) -> Tensor:
        g = self.groups
        n = x.shape[0]
        if n % g:
            raise ValueError(f"batch of {n} does not split into {g} equal copies")
        b = n // g
        update = self.update_stats and m.track_running_stats
        outs = []
        # one fused batch_norm per copy: each copy gets its own statistics, and the running
        # buffers see the copies in order, exactly as separate passes would update them
        for k in range(g):
            xk = x[k * b:(k + 1) * b]
            if update:
                outs.append(F.batch_norm(xk, m.running_mean, m.running_var, m.weight, m.bias,
                                         True, self._momentum(m), m.eps))
            else:
                outs.append(F.batch_norm(xk, None, None, m.weight, m.bias, True, 0.0, m.eps))
        return outs[0] if g == 1 else torch.cat(outs)

    def _momentum(self, m: _BatchNorm) -> float:
        """One update standing for ``repeats`` updates with the same batch statistics.

        r <- (1 - f)^R r + (1 - (1 - f)^R) s, i.e. momentum 1 - (1 - f)^R; with
        ``momentum=None`` (cumulative average) R more samples of s give R / (n0 + R).
        """
        r = self.repeats
        n0 = 0
        if m.num_batches_tracked is not None:
            n0 = int(m.num_batches_tracked)
            m.num_batches_tracked.add_(r)
        if m.momentum is None:
            return r / (n0 + r)
        return 1.0 - (1.0 - m.momentum) ** r


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


@torch.no_grad()
def mc_train_probs(model: nn.Module, x: Tensor, T: int, *, bn: str = "train",
                   split: bool | None = None, chunk: int | None = None) -> Tensor:
    """T stochastic passes of ``model`` on ``x`` without gradients, batched.

    ``bn="train"`` / ``"train_frozen_stats"``: every module in train mode (dropout active,
    BatchNorm on each pass's own batch statistics, as U-CE's code runs its passes); the
    running buffers are updated as by T sequential passes, or left untouched. The model's
    ``mc_split`` trunk (if any) runs once, the head once over the T stacked copies (at most
    ``chunk`` copies per call). ``bn="eval"``: test-time MC dropout
    (:func:`aerialseg.models.mc.mc_forward`). Train/eval flags are restored.

    Args:
        model: a segmentation model returning logits (B, C, H, W).
        x: input (B, bands, H, W).
        T: number of passes, >= 1.
        bn: ``"train"``, ``"train_frozen_stats"`` or ``"eval"``.
        split: None = use ``mc_split`` when available; True = require it; False = never.
        chunk: at most this many copies per batched call (memory); None = all T.

    Returns:
        Softmax probabilities (T, B, C, H, W), float32.
    """
    if T < 1:
        raise ValueError(f"T (number of MC passes) must be >= 1, got {T}")
    if bn not in MC_BN_MODES:
        raise ValueError(f"bn must be one of {MC_BN_MODES}, got {bn!r}")
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk must be None or >= 1, got {chunk}")
    model = _unwrap(model)
    if bn == "eval":
        return mc_forward(model, x, T, bn="eval", chunk=chunk, split=split)
    modes = [(m, m.training) for m in model.modules()]
    b = x.shape[0]
    chunk = min(chunk or T, T)
    try:
        model.train()
        with GroupedBatchNorm(model, update_stats=bn == "train") as gbn:
            parts = get_mc_split(model, split)
            if parts is not None:
                trunk, head = parts
                with gbn.setting(groups=1, repeats=T):
                    state = trunk(x)
                    # repeated once; every full chunk of copies reuses it
                    stacked = repeat_batch(state, chunk)

                def run(n: int) -> Tensor:
                    with gbn.setting(groups=n):
                        return head(stacked if n == chunk else repeat_batch(state, n))
            else:
                stacked = repeat_batch(x, chunk)

                def run(n: int) -> Tensor:
                    with gbn.setting(groups=n):
                        return model(stacked if n == chunk else repeat_batch(x, n))

            out = []
            for start in range(0, T, chunk):
                n = min(chunk, T - start)
                p = torch.softmax(run(n).float(), 1)
                out.append(p.reshape(n, b, *p.shape[1:]))
    finally:
        for m, training in modes:
            m.training = training
    return out[0] if len(out) == 1 else torch.cat(out)


def training_uncertainty(model: nn.Module, x: Tensor, T: int, *, bn: str = "train",
                         kind: str = "predicted_class_std", ddof: int = 1,
                         split: bool | None = None, chunk: int | None = None) -> Tensor:
    """U-CE's per-pixel uncertainty (B, H, W) from T batched no-grad passes.

    ``ddof=1`` as the code's ``torch.std``; see :func:`mc_train_probs` for the arguments.
    """
    probs = mc_train_probs(model, x, T, bn=bn, split=split, chunk=chunk)
    return uce_uncertainty(probs, kind=kind, ddof=ddof)


# ---------------------------------------------------------------------------------------
# The training callback
# ---------------------------------------------------------------------------------------


class UCEUncertainty(Callback):
    """Supplies ``aux["uncertainty"]`` to the U-CE loss before every training step.

    Skips the MC passes while the loss does not need them (``uce_start_epoch``, alpha = 0).
    Per epoch it adds to the training history: ``mc_seconds`` (time in the MC passes),
    ``steps``, ``train_uncertainty`` (mean u over valid pixels) and ``train_weight`` (mean
    (1 + u)^alpha over valid pixels).

    Args:
        mc_samples: T extra no-grad passes per step (>= 2: u is a std with ddof = 1).
        kind: ``"predicted_class_std"`` (the code's) or ``"mean_class_std"``.
        bn: one of :data:`MC_BN_MODES`.
        chunk: copies per batched call (memory); None = all T.
    """

    def __init__(self, mc_samples: int = 10, kind: str = "predicted_class_std",
                 bn: str = "train", chunk: int | None = None) -> None:
        check_uce_settings(mc_samples, kind, bn)
        self.mc_samples, self.kind, self.bn, self.chunk = int(mc_samples), kind, bn, chunk
        self._reset()

    def _reset(self) -> None:
        self.seconds, self.steps, self.mc_steps = 0.0, 0, 0
        self.u_sum, self.w_sum, self.n_valid = 0.0, 0.0, 0

    def on_epoch_start(self, state: TrainState) -> None:  # noqa: D102
        self._reset()

    def batch_aux(self, state: TrainState, batch: dict[str, Tensor]) -> dict[str, Any]:
        """``{"uncertainty": u}`` (B, H, W) for this batch, or ``{}`` if not needed."""
        self.steps += 1
        loss_fn = state.loss_fn
        if not getattr(loss_fn, "needs_uncertainty", True):
            return {}
        dev = state.device
        use_amp = state.cfg.amp and dev.type == "cuda"
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
            u = training_uncertainty(state.model, batch["image"], self.mc_samples, bn=self.bn,
                                     kind=self.kind, chunk=self.chunk)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        self.seconds += time.perf_counter() - t0
        self.mc_steps += 1
        valid = batch["label"] != getattr(loss_fn, "ignore_index", IGNORE_INDEX)
        alpha = float(getattr(loss_fn, "exponent", 1.0))
        uv = u[valid]
        self.u_sum += float(uv.sum())
        self.w_sum += float((1.0 + uv).pow(alpha).sum())
        self.n_valid += int(valid.sum())
        return {"uncertainty": u}

    def on_epoch_end(self, state: TrainState) -> None:
        """Add the epoch's MC timing and uncertainty summaries to the history record."""
        if not state.history:
            return
        n = max(self.n_valid, 1)
        state.history[-1].update({
            "mc_seconds": self.seconds, "steps": self.steps, "mc_steps": self.mc_steps,
            "train_uncertainty": self.u_sum / n if self.n_valid else float("nan"),
            "train_weight": self.w_sum / n if self.n_valid else float("nan"),
        })


def check_uce_settings(mc_samples: int, kind: str, bn: str) -> None:
    """Raise a clear error for invalid U-CE uncertainty settings."""
    problems = []
    if int(mc_samples) < 2:
        problems.append(f"uce_mc_samples must be >= 2 for a std over passes (got {mc_samples})")
    if kind not in UNCERTAINTY_KINDS:
        problems.append(f"uce_uncertainty must be one of {UNCERTAINTY_KINDS} (got {kind!r})")
    if bn not in MC_BN_MODES:
        problems.append(f"uce_mc_bn must be one of {MC_BN_MODES} (got {bn!r})")
    if problems:
        raise ValueError("invalid U-CE settings: " + "; ".join(problems))


def setup_uce(ctx: RunContext) -> list[Callback]:
    """The U-CE methods' setup hook: the uncertainty callback built from the loss settings."""
    kw = ctx.cfg.loss_kwargs
    return [UCEUncertainty(mc_samples=kw.get("uce_mc_samples", 10),
                           kind=kw.get("uce_uncertainty", "predicted_class_std"),
                           bn=kw.get("uce_mc_bn", "train"))]


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


def evaluate_run(ch: Chapter, run: TrainedRun, *, label: str | None = None,
                 test_mc_samples: int = 10, tile: int = 512, overlap: int = 64,
                 keep_maps: int = 1) -> Evaluation:
    """Evaluate ``run`` with MC dropout and record mUnc and the training step costs.

    The prediction is the argmax of the MC mean (ECE uses the MC-mean probabilities too).
    Every validation scene's uncertainty map is kept for mUnc; afterwards only the first
    ``keep_maps`` stay (for figures), so memory stays small on large tiles.
    """
    ev = ch.evaluate(run, label=label, tile=tile, overlap=overlap, mc_samples=test_mc_samples,
                     prediction="mc_mean", keep_maps=len(ch.data.val))
    record = ch.records[-1]
    record.extra["munc"] = mean_uncertainty(ev, test_mc_samples)
    record.extra.update(step_seconds(run))
    hist = run.history
    record.extra["train_uncertainty_last_epoch"] = float(
        hist[-1].get("train_uncertainty", np.nan) if hist else np.nan)
    for name in list(ev.maps)[keep_maps:]:
        del ev.maps[name]
    return ev


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
    from aerialseg.runs import build_patches

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
    import copy

    def best(fn: Callable[[], object]) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    m = copy.deepcopy(_unwrap(model)).cpu() if x.device.type == "cpu" else copy.deepcopy(
        _unwrap(model))
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


def train_run(ch: Chapter, method: str, seed: int, **overrides: Any) -> TrainedRun:
    """``ch.train`` with only the overrides that ``method`` accepts (None = profile default).

    Raises:
        ValueError: the settings leave a last batch of one sample (see below).
    """
    from aerialseg.config import resolve_run

    kw = method_overrides(method, overrides)
    t = resolve_run(method, profile=ch.profile, in_bands=ch.data.bands, data={}, seed=seed,
                    **kw).train
    if t.samples_per_epoch and t.samples_per_epoch % t.batch_size == 1:
        raise ValueError(
            f"samples_per_epoch={t.samples_per_epoch} with batch_size={t.batch_size} leaves a "
            "last batch of one sample, which DeepLabV3+'s image-pooling BatchNorm cannot "
            "train on; choose a samples_per_epoch that batch_size divides")
    return ch.train(method, seed, **kw)
