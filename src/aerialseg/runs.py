"""The run store: a trained model is keyed by a hash of its full configuration.

A later chapter that asks for the same configuration loads the stored weights instead of
training again; an interrupted run resumes from its last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from aerialseg import paths
from aerialseg.config import RunConfig
from aerialseg.data.patches import BandStats, SegmentationPatches
from aerialseg.data.registry import SplitData
from aerialseg.losses.ce import median_frequency_weights
from aerialseg.losses.registry import build_loss
from aerialseg.models.registry import build_model
from aerialseg.training import Callback, fit, is_main_process
from aerialseg.utils import atomic_write, hardware_description, set_seed

STORE_VERSION = 1
"""Bump when a change to training makes stored runs stale."""


def run_key(cfg: RunConfig) -> str:
    """Short stable hash of everything that defines the trained weights."""
    material = {"store_version": STORE_VERSION, **cfg.to_dict()}
    material.pop("profile", None)  # the resolved values matter, not the profile's name
    blob = json.dumps(material, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def run_path(cfg: RunConfig) -> Path:
    """Folder of this configuration in the run store."""
    return paths.runs_dir() / f"{cfg.method}-{run_key(cfg)}"


def _prepare_ce_mfb(kwargs: dict[str, Any], data: SplitData, cfg: RunConfig) -> dict[str, Any]:
    classes = data.classes
    labels = [s.training_labels(cfg.train.ignore_unevaluated) for s in data.train]
    mode = kwargs.pop("mfb_frequency", "global")
    w = median_frequency_weights(labels, classes.num_classes, classes=classes.evaluated,
                                 mode=mode)
    return {**kwargs, "class_weights": [float(v) for v in w]}


LOSS_PREPARERS: dict[str, Callable[[dict[str, Any], SplitData, RunConfig], dict[str, Any]]] = {
    "ce_mfb": _prepare_ce_mfb,
}
"""Losses whose arguments depend on the training data (e.g. class frequencies)."""


def build_patches(cfg: RunConfig, data: SplitData, stats: BandStats) -> Dataset:
    """Segmentation patches (grid + D4, or random crops) of the normalised training scenes."""
    t = cfg.train
    images = [stats.apply(s) for s in data.train]
    labels = [s.training_labels(t.ignore_unevaluated) for s in data.train]
    return SegmentationPatches(images, labels, size=t.crop_size, sampler=t.sampler,
                               overlap=t.tile_overlap, dihedral_aug=t.dihedral_aug,
                               scale_range=t.scale_range, length=t.samples_per_epoch,
                               seed=t.seed)


DATASET_BUILDERS: dict[str, Callable[[RunConfig, SplitData, BandStats], Dataset]] = {
    "patches": build_patches,
}


@dataclass
class RunContext:
    """What a method's ``setup`` hook sees before training (it may modify the dataset)."""

    cfg: RunConfig
    data: SplitData
    stats: BandStats
    dataset: Dataset
    model: nn.Module
    loss_fn: nn.Module
    device: torch.device


@dataclass
class TrainedRun:
    """A trained model with what is needed to use and report it."""

    cfg: RunConfig
    key: str
    path: Path
    model: nn.Module
    stats: BandStats
    loss_kwargs: dict[str, Any]
    history: list[dict[str, float]]
    train_seconds: float
    hardware: str
    reused: bool

    @property
    def num_parameters(self) -> int:
        """Trainable parameters of the model."""
        return sum(p.numel() for p in self.model.parameters())


def _load_state(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


def get_or_train(cfg: RunConfig, data: SplitData, *, device: torch.device | str = "cpu",
                 callbacks: Sequence[Callback] = (), retrain: bool = False,
                 log: Callable[[str], None] | None = print) -> TrainedRun:
    """Load the run ``cfg`` from the store, or train it (resuming a checkpoint) and store it.

    The run is seeded once, here, before the model is built, so the initial weights depend
    on the seed alone (not on what ran earlier in the process); the method's ``samples``
    builder then makes the training set and its ``setup`` hook (if any) adds the method's
    callbacks to ``callbacks``.
    """
    spec = cfg.spec
    if spec is None:
        raise ValueError(f"run {cfg.method!r} carries no method spec: resolve it with "
                         "aerialseg.registry.resolve_run or MethodSpec.resolve")
    samples = spec.samples
    device = torch.device(device)
    folder = run_path(cfg)
    stats = BandStats.from_scenes(data.train, cfg.in_bands)
    loss_kwargs = dict(cfg.loss_kwargs)
    if cfg.loss in LOSS_PREPARERS:
        loss_kwargs = LOSS_PREPARERS[cfg.loss](loss_kwargs, data, cfg)
    set_seed(cfg.train.seed)  # the initial weights depend on the seed, not on the process
    model = build_model(cfg.model, in_channels=len(cfg.in_bands),
                        num_classes=data.classes.num_classes, **cfg.model_kwargs)
    final = folder / "model.pt"
    if retrain and folder.exists() and is_main_process():
        shutil.rmtree(folder)
    if final.exists():
        saved = _load_state(final)
        model.load_state_dict(saved["model"])
        model.to(device).eval()
        meta = saved["meta"]
        if log:
            log(f"{cfg.method} seed {cfg.train.seed}: reusing trained model {folder.name} "
                f"(trained in {meta['train_seconds']:.0f} s on {meta['hardware']})")
        return TrainedRun(cfg, run_key(cfg), folder, model, BandStats(**meta["stats"]),
                          meta["loss_kwargs"], meta["history"], meta["train_seconds"],
                          meta["hardware"], reused=True)
    if callable(samples):  # a method brings its own training set
        builder = samples
    elif samples in DATASET_BUILDERS:
        builder = DATASET_BUILDERS[samples]
    else:
        raise ValueError(f"unknown sample kind {samples!r}; choose one of "
                         f"{sorted(DATASET_BUILDERS)} or pass a function")
    dataset = builder(cfg, data, stats)
    loss_fn = build_loss(cfg.loss, ignore_index=255, num_classes=data.classes.num_classes,
                         **loss_kwargs)
    callbacks = list(callbacks)
    if spec.setup:
        ctx = RunContext(cfg, data, stats, dataset, model, loss_fn, device)
        callbacks += list(spec.setup(ctx) or [])
    if log:
        n = sum(p.numel() for p in model.parameters())
        log(f"training {cfg.method} seed {cfg.train.seed} ({n / 1e6:.2f} M parameters, "
            f"{len(dataset)} samples, {cfg.train.epochs} epochs) -> {folder.name}")
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = fit(model, loss_fn, dataset, cfg.train, device=device, callbacks=callbacks,
                 checkpoint=folder / "checkpoint.pt", log=log)
    seconds = time.perf_counter() - t0
    hardware = hardware_description(device)
    meta = {"config": cfg.to_dict(), "stats": asdict(stats), "loss_kwargs": loss_kwargs,
            "history": result.history, "train_seconds": seconds, "hardware": hardware,
            "resumed_from_epoch": result.resumed_from}
    if is_main_process():
        state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
        atomic_write(final, lambda tmp: torch.save({"model": state, "meta": meta}, tmp))
        atomic_write(folder / "config.json",
                     lambda tmp: tmp.write_text(json.dumps(meta, indent=1, default=str)))
        (folder / "checkpoint.pt").unlink(missing_ok=True)
    return TrainedRun(cfg, run_key(cfg), folder, result.model, stats, loss_kwargs,
                      result.history, seconds, hardware, reused=False)

