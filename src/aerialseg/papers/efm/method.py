"""Vlasenko & Dashkevych: Error Fingerprint Map (EFM) loss weighting (methods.md §6).

Four stages per architecture (``fpn``: smp FPN, ``pspnet``: smp PSPNet), as methods:

========================  =================================================================
``efm_<arch>_base``       stage 1, baseline: the EFM loss with EFM = 0 (W = W_b, same top-k,
                          label smoothing and Dice as stage 2), from scratch
``efm_<arch>``            stage 2, +EFM: the same, with cached EFMs refreshed from
                          ``efm_start_epoch`` every ``efm_every`` epochs, from scratch
``efm_<arch>_ft``         stage 3, +EFM fine-tuning: starts from a stage-2 run, EFM from its
                          first epoch, EMA of weights (evaluated with flip TTA)
``efm_<arch>_ctrl``       fairness control: starts from a stage-1 run, the same extra epochs,
                          EMA (and TTA) as stage 3, no EFM
``efm_<arch>_cedice``     the paper's baseline loss as printed (CE with label smoothing +
                          Dice: no boundary weight, no top-k), the baseline of the paper's
                          Tables 1-2 and of its claims
========================  =================================================================

Stage 1 and 2 differ only in the map, and stage 3 and the control only in the map, so
"stage 3 minus control" is the gain attributable to EFM (methods.md §6, item 8).

Three parameters are not loss parameters but travel in the loss keywords (the EFM loss builder
ignores unknown keywords) so that the run store hashes them and :func:`setup_efm` can read
them: ``efm_start_epoch`` (None: no EFM), ``efm_every`` and ``init_run`` (the run-store
folder name, ``TrainedRun.path.name``, of the run whose weights a later stage starts from;
the shared run store has no "initialise from run" feature).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aerialseg import paths
from aerialseg.config import MethodSpec, RunConfig
from aerialseg.inference import predict_scene
from aerialseg.losses.efm import efm_map, entropy_map, error_map
from aerialseg.profiles import backbone
from aerialseg.runs import load_run_file, run_path
from aerialseg.training import Callback, TrainState, is_main_process
from aerialseg.utils import atomic_write, unwrap_model

SOURCE = "Vlasenko & Dashkevych (EFM)"
ARCHS: dict[str, str] = {"fpn": "smp_fpn", "pspnet": "smp_pspnet"}
"""Architecture short name -> model registry name."""
STAGES = ("base", "efm", "ft", "ctrl", "cedice")
MONITOR_FILE = "efm_monitor.npz"
MONITOR_SIZE = 256
"""Side of the validation crop whose EFM/entropy maps are kept over training (figures only)."""

SETUP_PARAMS = ("efm_start_epoch", "efm_every", "init_run")
LOSS_PARAMS = ("efm_mix_alpha", "efm_focus_alpha", "efm_focus_beta", "efm_boundary_gamma",
               "efm_boundary_kernel", "efm_sigma", "efm_weight_form", "topk_fraction",
               "lambda_ce", "lambda_dice", "label_smoothing", "efm_source") + SETUP_PARAMS


def method_name(arch: str, stage: str) -> str:
    """``efm_<arch>`` for stage ``"efm"``, else ``efm_<arch>_<stage>``."""
    if arch not in ARCHS or stage not in STAGES:
        raise ValueError(f"arch must be one of {sorted(ARCHS)} and stage one of {STAGES}, "
                         f"got {arch!r}, {stage!r}")
    return f"efm_{arch}" if stage == "efm" else f"efm_{arch}_{stage}"


# --------------------------------------------------------------------------- method specs

_LOSS_DEFAULTS: dict[str, Any] = {
    "efm_mix_alpha": 0.6, "efm_focus_alpha": 2.0, "efm_focus_beta": 1.5,
    "efm_boundary_gamma": 1.2, "efm_boundary_kernel": 3, "efm_sigma": 2.0,
    "efm_weight_form": "eq9", "topk_fraction": 0.5, "lambda_ce": 1.0, "lambda_dice": 1.0,
    "label_smoothing": 0.05, "efm_source": "cached_train",
    "efm_start_epoch": None, "efm_every": 2, "init_run": None,
}
_TRAIN_DEFAULTS: dict[str, Any] = {
    "optimizer": "adamw", "lr": 5e-4, "weight_decay": 1e-4, "schedule": "cosine",
    "grad_clip": 1.0, "ema_decay": None, "batch_size": 8, "epochs": 50,
    "sampler": "random_crop", "crop_size": 512, "samples_per_epoch": 256,
    "dihedral_aug": True,
}
_MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "fpn": {"encoder": "resnet34", "encoder_weights": None, "decoder_pyramid_channels": 256,
            "decoder_segmentation_channels": 128},
    "pspnet": {"encoder": "resnet34", "encoder_weights": None},
}
# Stage 1/2 length and data per profile. smoke/default use ResNet-18, small crops and, for
# FPN, a narrower decoder so that the chapter runs on a laptop CPU; full is the paper's.
# The CPU and GPU profiles train the study's shared backbone (aerialseg.profiles) for both
# architectures, with the same training as chapters 03, 06 and 09 (so the stages differ
# only in their loss and starting point); ``full`` is the paper's FPN / PSPNet with AdamW.
# Stage 1/2: from scratch, EFM refreshed from a third of training every sixth of it.
_SCRATCH_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": backbone("smoke", epochs=2, efm_start_epoch=1, efm_every=1),
    "default": backbone("default", efm_start_epoch=10, efm_every=5),
    "gpu": backbone("gpu", efm_start_epoch=13, efm_every=6),
    "full": {"epochs": 50, "efm_start_epoch": 5, "efm_every": 2},
}
# Stage 3 / control: a short fine-tune at a tenth of the lr with EMA. The EMA decay is
# scaled to the number of optimiser steps in the small profiles (0.999 averages over ~1000
# steps, more than those profiles take, so the EMA model would barely leave its start).
_FINETUNE_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": backbone("smoke", ema_decay=0.5, efm_every=1),
    "default": backbone("default", epochs=10, lr=0.003, ema_decay=0.99, efm_every=5),
    "gpu": backbone("gpu", epochs=10, lr=0.003, ema_decay=0.99, efm_every=5),
    "full": {"epochs": 15, "ema_decay": 0.999, "efm_every": 2},
}


def _profiles(arch: str, table: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p: dict(v) for p, v in table.items()}


def _spec(arch: str, stage: str) -> MethodSpec:
    finetune = stage in ("ft", "ctrl")
    stage_values: dict[str, Any] = {
        "base": {},
        "efm": {},
        "ft": {"efm_start_epoch": 0},
        "ctrl": {},
        "cedice": {"efm_boundary_gamma": 0.0, "topk_fraction": 1.0},
    }[stage]
    params = {**_MODEL_DEFAULTS[arch], **_LOSS_DEFAULTS, **_TRAIN_DEFAULTS, **stage_values}
    if finetune:
        # [reconstructed] the paper gives no fine-tuning lr; 1e-4 restarts the cosine gently
        params |= {"epochs": 15, "lr": 1e-4, "ema_decay": 0.999}
    if stage == "efm":
        params["efm_start_epoch"] = 5
    profiles = _profiles(arch, _FINETUNE_PROFILES if finetune else _SCRATCH_PROFILES)
    if stage in ("base", "ctrl", "cedice"):
        for v in profiles.values():  # no EFM in these stages, whatever the profile says
            v["efm_start_epoch"] = None
    if stage == "ft":
        for v in profiles.values():
            v["efm_start_epoch"] = 0
    titles = {"base": "baseline (EFM = 0)", "efm": "+EFM", "ft": "+EFM fine-tune (EMA)",
              "ctrl": "control: baseline fine-tune (EMA), no EFM",
              "cedice": "paper baseline loss (CE + Dice)"}
    labels = {"base": "Baseline (EFM = 0)", "efm": "+EFM", "ft": "+EFM fine-tune",
              "ctrl": "Control (fine-tune, no EFM)", "cedice": "CE + Dice"}
    name = method_name(arch, stage)
    # FPN stages (also the shared backbone's in the CPU profiles) go unprefixed
    label = labels[stage] if arch == "fpn" else f"PSPNet: {labels[stage]}"
    return MethodSpec(
        name=name, title=f"{arch.upper() if arch == 'fpn' else 'PSPNet'} {titles[stage]}",
        label=label,
        model=ARCHS[arch], loss="efm", params=params,
        model_params=tuple(_MODEL_DEFAULTS[arch]), loss_params=LOSS_PARAMS,
        profiles=profiles, source=SOURCE, setup=setup_efm)



# --------------------------------------------------------------------------- schedule

def refresh_due(epoch: int, start: int | None, every: int) -> bool:
    """True if EFMs are recomputed at the start of (0-based) ``epoch``.

    ``start=5, every=2``: epochs 5, 7, 9, ... (the paper's "every 2 epochs from epoch 5"
    read as: after 5 epochs of training). ``start=None``: never.
    """
    if start is None:
        return False
    if every < 1:
        raise ValueError(f"efm_every must be >= 1, got {every}")
    return epoch >= start and (epoch - start) % every == 0


def refresh_epochs(epochs: int, start: int | None, every: int) -> list[int]:
    """Every epoch in ``range(epochs)`` at whose start the EFMs are refreshed."""
    return [e for e in range(epochs) if refresh_due(e, start, every)]


# --------------------------------------------------------------------------- maps

def scene_probs(model: nn.Module, image: np.ndarray, *, device: torch.device | str,
                tile: int = 512, overlap: int = 64) -> torch.Tensor:
    """Softmax (1, C, H, W) of the current model on a whole normalised scene (eval mode)."""
    was_training = model.training
    out = predict_scene(unwrap_model(model), image, device=device, tile=tile, overlap=overlap)
    model.train(was_training)
    return torch.from_numpy(out["probs"])[None]


def scene_efm(model: nn.Module, image: np.ndarray, labels: np.ndarray, *,
              device: torch.device | str, mix_alpha: float = 0.6, sigma: float = 2.0,
              tile: int = 512, overlap: int = 64) -> np.ndarray:
    """EFM (H, W) float32 of one scene in its canonical (un-augmented) frame."""
    probs = scene_probs(model, image, device=device, tile=tile, overlap=overlap)
    target = torch.from_numpy(np.asarray(labels, np.int64))[None]
    return efm_map(probs, target, mix_alpha=mix_alpha, sigma=sigma)[0].numpy().astype(np.float32)


class EFMRefresh(Callback):
    """Cached per-scene EFMs in ``dataset.extras["efm"]``, refreshed on schedule.

    At the start of every due epoch (:func:`refresh_due`) the current model (eval mode, no
    augmentation) predicts every training scene; the EFM of each is stored in the canonical
    frame, and the dataset cuts and rotates it exactly like the labels, so each batch carries
    the map of its own pixels and the loss reads it from ``aux["efm"]``. Before the first
    refresh the key is absent and the loss uses EFM = 0.

    After a resume from a checkpoint the maps are recomputed at once from the resumed model
    (the maps themselves are not checkpointed), an approximation of the uninterrupted run.
    """

    def __init__(self, *, start_epoch: int, every: int, mix_alpha: float = 0.6,
                 sigma: float = 2.0, tile: int = 512, overlap: int = 64) -> None:
        refresh_due(start_epoch, start_epoch, every)  # validates ``every``
        self.start_epoch, self.every = start_epoch, every
        self.mix_alpha, self.sigma = mix_alpha, sigma
        self.tile, self.overlap = tile, overlap
        self.refreshed: list[int] = []
        self._seconds = 0.0

    def refresh(self, state: TrainState) -> None:
        """Recompute the EFM of every training scene with the current model."""
        ds = state.dataset
        if not hasattr(ds, "extras") or not hasattr(ds, "images"):
            raise TypeError("EFM caching needs a dataset with per-scene `images`, `labels` "
                            "and `extras` (aerialseg.data.patches.SegmentationPatches)")
        t0 = time.perf_counter()
        maps = [scene_efm(state.model, img, lab, device=state.device, mix_alpha=self.mix_alpha,
                          sigma=self.sigma, tile=self.tile, overlap=self.overlap)
                for img, lab in zip(ds.images, ds.labels, strict=True)]
        ds.extras["efm"] = maps  # replaced between epochs: the loader reads it per sample
        self.refreshed.append(state.epoch)
        self._seconds += time.perf_counter() - t0

    def on_fit_start(self, state: TrainState) -> None:  # noqa: D102
        resumed_at = len(state.history)
        if resumed_at > self.start_epoch and not refresh_due(resumed_at, self.start_epoch,
                                                              self.every):
            state.epoch = resumed_at
            self.refresh(state)

    def on_epoch_start(self, state: TrainState) -> None:  # noqa: D102
        if refresh_due(state.epoch, self.start_epoch, self.every):
            self.refresh(state)

    def on_epoch_end(self, state: TrainState) -> None:  # noqa: D102
        maps = getattr(state.dataset, "extras", {}).get("efm")
        rec = state.history[-1]
        rec["efm_refreshed"] = float(bool(self.refreshed) and self.refreshed[-1] == state.epoch)
        rec["efm_mean"] = float(np.mean([m.mean() for m in maps])) if maps else 0.0
        rec["efm_seconds"] = self._seconds
        self._seconds = 0.0


class OnlineEFMSchedule(Callback):
    """Online variant (reading A): the loss computes EFM from each batch's detached softmax.

    The loss's ``efm_source`` is switched to ``"online_batch"`` from ``efm_start_epoch`` on
    and left at ``"cached_train"`` without maps (EFM = 0) before, so both variants start
    weighting at the same epoch.
    """

    def __init__(self, *, start_epoch: int) -> None:
        self.start_epoch = start_epoch

    def on_epoch_start(self, state: TrainState) -> None:  # noqa: D102
        loss = state.loss_fn
        if not hasattr(loss, "efm_source"):
            raise TypeError("the online EFM schedule needs the EFM loss (loss='efm')")
        loss.efm_source = "online_batch" if state.epoch >= self.start_epoch else "cached_train"

    def on_epoch_end(self, state: TrainState) -> None:  # noqa: D102
        state.history[-1]["efm_refreshed"] = float(state.epoch >= self.start_epoch)


class EFMMonitor(Callback):
    """Keeps EFM, entropy and error maps of a validation crop over training (figures only).

    Snapshots at the start of every refresh epoch and after the last epoch (raw weights,
    not the EMA), written to ``<run folder>/efm_monitor.npz`` after each snapshot, so a reused
    run still has them. Validation maps never weight training pixels (methods.md §6, item 1).
    """

    def __init__(self, image: np.ndarray, labels: np.ndarray, out_file: Path | None, *,
                 start_epoch: int, every: int, epochs: int, mix_alpha: float = 0.6,
                 sigma: float = 2.0, scene: str = "") -> None:
        self.image, self.labels = image, np.asarray(labels, np.int64)
        self.out_file, self.scene = out_file, scene
        self.start_epoch, self.every, self.epochs = start_epoch, every, epochs
        self.mix_alpha, self.sigma = mix_alpha, sigma
        self.snaps: dict[str, list[Any]] = {"epoch": [], "efm": [], "entropy": [], "error": []}

    def snapshot(self, state: TrainState, epoch: float) -> None:
        """Record the maps of the current model, labelled with ``epoch`` (epochs trained)."""
        probs = scene_probs(state.model, self.image, device=state.device)
        target = torch.from_numpy(self.labels)[None]
        self.snaps["epoch"].append(epoch)
        self.snaps["efm"].append(efm_map(probs, target, mix_alpha=self.mix_alpha,
                                         sigma=self.sigma)[0].numpy().astype(np.float16))
        self.snaps["entropy"].append(entropy_map(probs)[0].numpy().astype(np.float16))
        self.snaps["error"].append(error_map(probs, target)[0].numpy().astype(bool))
        if self.out_file is not None and is_main_process():
            arrays = {k: np.asarray(v) for k, v in self.snaps.items()}
            arrays |= {"labels": self.labels.astype(np.int16), "scene": np.asarray(self.scene)}
            atomic_write(self.out_file, lambda tmp: _savez(tmp, arrays))

    def on_fit_start(self, state: TrainState) -> None:  # noqa: D102
        if state.history and self.out_file is not None and self.out_file.exists():
            # resume: keep the snapshots of the epochs trained before the checkpoint (the
            # checkpoint may be older than the monitor file; later epochs are redone)
            done = len(state.history)
            with np.load(self.out_file) as old:
                keep = np.asarray(old["epoch"]) < done
                for k in self.snaps:
                    self.snaps[k] = [v for v, ok in zip(old[k], keep, strict=True) if ok]

    def on_epoch_start(self, state: TrainState) -> None:  # noqa: D102
        if refresh_due(state.epoch, self.start_epoch, self.every):
            self.snapshot(state, float(state.epoch))

    def on_epoch_end(self, state: TrainState) -> None:  # noqa: D102
        if state.epoch == self.epochs - 1:
            self.snapshot(state, float(self.epochs))


def _savez(tmp: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to the name
        np.savez_compressed(f, **arrays)


def load_monitor(run_folder: str | Path) -> dict[str, np.ndarray] | None:
    """The monitoring snapshots kept in a run folder, or None (stages without EFM).

    Keys: ``epoch`` (K,), ``efm``, ``entropy`` (K, h, w), ``error`` (K, h, w) bool,
    ``labels`` (h, w) and ``scene`` (the validation scene's name).
    """
    f = Path(run_folder) / MONITOR_FILE
    if not f.exists():
        return None
    with np.load(f) as z:
        return {k: z[k] for k in z.files}


# --------------------------------------------------------------------------- stages

def load_init_weights(model: nn.Module, init_run: str, cfg: RunConfig) -> dict[str, Any]:
    """Load the weights of the stored run folder ``init_run`` into ``model``.

    Raises:
        FileNotFoundError: no finished run of that name in the run store.
        ValueError: the stored run has another model, model settings, data or bands.
    """
    f = paths.runs_dir() / init_run / "model.pt"
    if not f.exists():
        raise FileNotFoundError(
            f"init_run={init_run!r}: no trained model at {f}. Train the earlier stage first "
            "and pass its folder name, e.g. init_run=ch.train('efm_fpn', seed).path.name")
    saved = load_run_file(f)  # data only: a stored file never runs code
    src, dst = saved["meta"]["config"], cfg.to_dict()
    for key in ("model", "model_kwargs", "in_bands", "data"):
        if src[key] != dst[key]:
            raise ValueError(f"init_run {init_run!r} has {key} {src[key]!r} but this run needs "
                             f"{dst[key]!r}; fine-tune a run of the same model and data")
    model.load_state_dict(saved["model"])
    return saved["meta"]


def setup_efm(ctx: Any) -> list[Callback]:
    """Setup hook of every EFM-chapter method (``ctx``: :class:`aerialseg.runs.RunContext`).

    Loads ``init_run``'s weights for the fine-tuning stages, and returns the EFM callbacks:
    the cached refresh (or the online schedule) plus the validation-crop monitor.
    """
    kw, cfg = ctx.cfg.loss_kwargs, ctx.cfg
    if ctx.cfg.method.endswith(("_ft", "_ctrl")) and not kw.get("init_run"):
        raise ValueError(f"{cfg.method} fine-tunes an earlier stage: pass "
                         "init_run=<run.path.name of the stage-2 (ft) or stage-1 (ctrl) run>")
    if kw.get("init_run"):
        load_init_weights(ctx.model, kw["init_run"], cfg)
    start = kw.get("efm_start_epoch")
    if start is None:
        return []
    every = int(kw.get("efm_every", 2))
    mix, sigma = float(kw.get("efm_mix_alpha", 0.6)), float(kw.get("efm_sigma", 2.0))
    callbacks: list[Callback]
    if kw.get("efm_source", "cached_train") == "online_batch":
        callbacks = [OnlineEFMSchedule(start_epoch=int(start))]
    else:
        callbacks = [EFMRefresh(start_epoch=int(start), every=every, mix_alpha=mix,
                                sigma=sigma)]
    if ctx.data.val:
        scene = ctx.data.val[0]
        s = min(MONITOR_SIZE, *scene.shape)
        image = ctx.stats.apply(scene)[:, :s, :s]
        labels = scene.training_labels(cfg.train.ignore_unevaluated)[:s, :s]
        callbacks.append(EFMMonitor(np.ascontiguousarray(image), labels,
                                    run_path(cfg) / MONITOR_FILE, start_epoch=int(start),
                                    every=every, epochs=cfg.train.epochs, mix_alpha=mix,
                                    sigma=sigma, scene=scene.name))
    return callbacks


# --------------------------------------------------------------------------- chapter plumbing

_SCRATCH_KEYS = ("encoder", "epochs", "batch_size", "samples_per_epoch", "crop_size", "lr")
_FT_KEYS = ("encoder", "batch_size", "samples_per_epoch", "crop_size", "ema_decay")
_WEIGHT_KEYS = ("efm_boundary_gamma", "topk_fraction", "label_smoothing", "lambda_ce",
                "lambda_dice")
_MAP_KEYS = ("efm_mix_alpha", "efm_focus_alpha", "efm_focus_beta", "efm_sigma",
             "efm_weight_form", "efm_every", "efm_source")


def stage_overrides(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Route a chapter's parameters to each stage's method parameters.

    Stage 1/2 take ``epochs`` and ``lr``; the fine-tuning stages take ``finetune_epochs`` and
    ``finetune_lr`` as their ``epochs`` and ``lr``. Map parameters go only to the stages with
    EFM (``efm_start_epoch`` only to stage 2: stage 3 always refreshes from its first epoch),
    so changing them never retrains the baseline or the control. ``None`` values are kept
    (they mean "the profile's default").
    """
    def pick(keys: tuple[str, ...]) -> dict[str, Any]:
        return {k: params.get(k) for k in keys}

    scratch = pick(_SCRATCH_KEYS)
    ft = pick(_FT_KEYS) | {"epochs": params.get("finetune_epochs"),
                           "lr": params.get("finetune_lr")}
    weights, maps = pick(_WEIGHT_KEYS), pick(_MAP_KEYS)
    return {
        "base": scratch | weights,
        "efm": scratch | weights | maps | {"efm_start_epoch": params.get("efm_start_epoch")},
        "ft": ft | weights | maps,
        "ctrl": ft | weights,
        "cedice": scratch | {"label_smoothing": params.get("label_smoothing")},
    }


METHODS: dict[str, MethodSpec] = {
    method_name(a, s): _spec(a, s) for a in ARCHS for s in STAGES}
