"""One training loop for every method: ``fit()``.

Schedules step per iteration; AMP (bf16) on CUDA; gradient clipping; EMA of weights;
callbacks for method-specific work (EFM refresh, U-CE uncertainty); checkpoints with exact
resume (written when cheap, see :class:`CheckpointPolicy`); DistributedDataParallel when
launched under ``torchrun``; an optional progress bar.

**Checkpoint format** (``CHECKPOINT_FORMAT``): a ``torch.save`` archive of tensors and plain
data only, read back with ``weights_only=True`` (loading never runs code)::

    {"format": 2, "epoch": k (0-based, last finished), "step": int,
     "train_seconds": float (training time of epochs 0..k, over every resume),
     "model": state dict, "optimizer": state dict, "ema": state dict | None,
     "history": [{"epoch": 0, "loss": ..., ...}, ...],
     "rng": {"torch": uint8 tensor, "cuda": [uint8 tensor, ...],
             "numpy": {"keys": int64 tensor, "pos", "has_gauss", "cached_gaussian"},
             "python": {"version", "state": int64 tensor, "gauss_next"}}}
"""

from __future__ import annotations

import copy
import math
import random
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from aerialseg.config import TrainConfig
from aerialseg.utils import (
    CorruptFileError,
    RunStoreWarning,
    load_tensors,
    save_tensors,
    set_seed,
    to_plain,
)

CHECKPOINT_FORMAT = 2
"""Version of the checkpoint layout (1: a full pickle, no longer read)."""


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


@dataclass
class TrainState:
    """What callbacks see and may change."""

    model: nn.Module
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    cfg: TrainConfig
    device: torch.device
    dataset: Dataset
    epoch: int = 0
    step: int = 0
    total_steps: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


class Callback:
    """Hooks into :func:`fit`. Every method is optional."""

    def on_fit_start(self, state: TrainState) -> None:  # noqa: D102
        pass

    def on_epoch_start(self, state: TrainState) -> None:  # noqa: D102
        pass

    def batch_aux(self, state: TrainState, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Extra inputs for the loss of this batch (e.g. ``{"uncertainty": u}``)."""
        return {}

    def on_epoch_end(self, state: TrainState) -> None:  # noqa: D102
        pass


class EpochSampler(Sampler[int]):
    """A seeded random subset (or permutation) of the dataset per epoch, repeatable on resume.

    Under DDP every rank draws the same epoch sample and takes every ``world``-th index from
    ``rank`` on, so the ranks together see exactly what one process would.
    """

    def __init__(self, n: int, per_epoch: int | None, seed: int, rank: int = 0,
                 world: int = 1) -> None:
        self.n, self.per_epoch, self.seed, self.epoch = n, per_epoch, seed, 0
        self.rank, self.world = rank, world

    def set_epoch(self, epoch: int) -> None:  # noqa: D102
        self.epoch = epoch

    def __len__(self) -> int:
        return len(range(self.rank, self.per_epoch or self.n, self.world))

    def __iter__(self):  # noqa: ANN204, D105
        rng = np.random.default_rng([self.seed, self.epoch])
        k = self.per_epoch or self.n
        idx = np.concatenate([rng.permutation(self.n) for _ in range(math.ceil(k / self.n))])
        return iter(idx[:k][self.rank::self.world].tolist())


def replay_loader(dataset: Dataset, cfg: TrainConfig, epoch: int) -> DataLoader:
    """The batches of training epoch ``epoch`` (0-based) of a single-process :func:`fit`.

    Same sampler, seed, batch size and last-batch rule as :func:`fit`, so a stored run's
    batches can be visited again (e.g. by :func:`batch_difficulty`). Datasets that draw per
    epoch get ``set_epoch(epoch)``.
    """
    sampler = EpochSampler(len(dataset), cfg.samples_per_epoch, cfg.seed)
    sampler.set_epoch(epoch)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    return epoch_loader(dataset, cfg, sampler)


def epoch_loader(dataset: Dataset, cfg: TrainConfig, sampler: Sampler[int]) -> DataLoader:
    """The training loader of :func:`fit` (and of :func:`replay_loader`) over ``sampler``.

    A last batch of one sample breaks batch norm in train mode (e.g. DeepLabV3+'s ASPP
    pooling): it is dropped, and only it.
    """
    n = len(sampler)  # type: ignore[arg-type]
    drop_last = n > 1 and cfg.batch_size > 1 and n % cfg.batch_size == 1
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler,
                      drop_last=drop_last, num_workers=0)


DIFFICULTY_KEY = "step_difficulty"
"""History entry of an epoch: the final model's loss on each of its batches, in order."""


def difficulty_epochs(n_epochs: int) -> list[int]:
    """The epochs whose batches the convergence rule compares: its last two tenths.

    ``2 * (n // 10)`` epochs from 10 epochs on; every epoch below that (the rule then works
    on steps; see :func:`aerialseg.stats.convergence`).
    """
    if n_epochs >= 10:
        return list(range(n_epochs - 2 * (n_epochs // 10), n_epochs))
    return list(range(n_epochs))


def stored_difficulty(history: Sequence[dict[str, Any]]) -> dict[int, list[float]] | None:
    """``{epoch: difficulty}`` recorded in ``history`` for its last two tenths, else None."""
    epochs = difficulty_epochs(len(history))
    if not epochs or not all(DIFFICULTY_KEY in history[e] for e in epochs):
        return None
    return {int(history[e].get("epoch", e)): list(history[e][DIFFICULTY_KEY]) for e in epochs}


@torch.no_grad()
def batch_difficulty(model: nn.Module, dataset: Dataset, cfg: TrainConfig,
                     epochs: Sequence[int], device: torch.device | str = "cpu",
                     ignore_index: int = 255) -> dict[int, list[float]]:
    """Each training batch's cross-entropy under ``model`` (eval mode): how hard it is.

    A stored run's step losses rise and fall with the batches drawn, not only with what
    the model learns; the final model's loss on the very same batches measures the
    first, so :func:`aerialseg.stats.adjusted_convergence` can take it out. Returns
    ``{epoch: [loss of each batch, in training order]}``.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    out: dict[int, list[float]] = {}
    try:
        for e in epochs:
            losses = []
            for batch in replay_loader(dataset, cfg, e):
                logits = model(batch["image"].to(device)).float()
                losses.append(float(nn.functional.cross_entropy(
                    logits, batch["label"].to(device).long(), ignore_index=ignore_index)))
            out[int(e)] = losses
    finally:
        model.train(was_training)
    return out


def is_distributed() -> bool:
    """True inside a torchrun process group."""
    return dist.is_available() and dist.is_initialized()


def is_main_process() -> bool:
    """Rank 0 (or not distributed): the only process that writes files."""
    return not is_distributed() or dist.get_rank() == 0


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD or AdamW; models with ``param_groups(lr, decoder_lr_mult)`` get per-group lrs."""
    base = model.module if hasattr(model, "module") else model
    if hasattr(base, "param_groups"):
        groups = base.param_groups(cfg.lr, cfg.decoder_lr_mult)
    else:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": cfg.lr}]
    for g in groups:
        g.setdefault("initial_lr", g["lr"])
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_factor(cfg: TrainConfig, step: int, total: int) -> float:
    """Multiplier of the initial lr at iteration ``step`` of ``total``."""
    t = min(step / max(total, 1), 1.0)
    if cfg.schedule == "poly":
        return (1 - t) ** cfg.poly_power
    if cfg.schedule == "step":
        return 0.1 ** sum(t >= m for m in cfg.step_milestones)
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    return 1.0


class EMA:
    """Exponential moving average of parameters and buffers (``decay`` per step)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:  # noqa: D102
        for e, m in zip(self.model.state_dict().values(), model.state_dict().values(),
                        strict=True):
            if e.dtype.is_floating_point:
                e.mul_(self.decay).add_(m.detach(), alpha=1 - self.decay)
            else:
                e.copy_(m)


@dataclass
class FitResult:
    """What :func:`fit` returns: the model to evaluate (EMA weights if enabled).

    Attributes:
        model: the trained model (EMA weights if enabled), in eval mode.
        history: one record per epoch (also of epochs trained before a resume).
        seconds: wall time of this call.
        resumed_from: the epoch (1-based count of finished epochs) a checkpoint resumed
            from, or None.
        train_seconds: training time of all epochs the model went through, over every
            resume (the checkpoint carries the earlier calls' time; epochs lost to an
            interruption and trained again are counted once).
        checkpoint_epochs: 0-based epochs after which this call wrote the checkpoint.
    """

    model: nn.Module
    history: list[dict[str, float]]
    seconds: float
    resumed_from: int | None
    train_seconds: float = 0.0
    checkpoint_epochs: list[int] = field(default_factory=list)


class CheckpointPolicy:
    """When :func:`fit` writes its checkpoint.

    Writing the weights and optimizer state of a large model after every epoch costs a few
    percent of training (an smp U-Net/ResNet-34 with SGD momentum: about 190 MiB). The
    policy writes after the last epoch of a call always, and otherwise

    * ``every=N``: after every N-th epoch (epochs N-1, 2N-1, ... counted from 0);
    * ``every=None`` (adaptive): as soon as the training time since the last write is at
      least ``write_seconds / max_overhead``, where ``write_seconds`` is the duration of the
      last write (before the first, an estimate from the size of the state at
      ``assumed_bytes_per_second``). So the writes cost at most ``max_overhead`` (1 %) of the
      training time, and an interruption loses at most ``1 / max_overhead`` times one write's
      duration of training, plus one epoch.

    Resuming from any written checkpoint gives the same weights as an uninterrupted run.
    """

    def __init__(self, every: int | None = None, *, max_overhead: float = 0.01,
                 state_bytes: int = 0, assumed_bytes_per_second: float = 500e6) -> None:
        if every is not None and (isinstance(every, bool) or int(every) != every
                                  or every < 1):
            raise ValueError(f"checkpoint_every must be None (adaptive) or an integer >= 1 "
                             f"(got {every!r})")
        if not 0 < max_overhead < 1:
            raise ValueError(f"max_overhead must be in (0, 1) (got {max_overhead})")
        self.every = None if every is None else int(every)
        self.max_overhead = max_overhead
        self.write_seconds = state_bytes / assumed_bytes_per_second
        self.since_write = 0.0

    def due(self, epoch: int, epoch_seconds: float, last: bool) -> bool:
        """Whether to write after ``epoch`` (0-based) that took ``epoch_seconds``."""
        self.since_write += epoch_seconds
        if last:
            return True
        if self.every is not None:
            return (epoch + 1) % self.every == 0
        return self.since_write * self.max_overhead >= self.write_seconds

    def wrote(self, seconds: float) -> None:
        """Record that a write took ``seconds``."""
        self.write_seconds = seconds
        self.since_write = 0.0


def _state_bytes(*dicts: dict[str, Any] | None) -> int:
    def size(obj: Any) -> int:
        if isinstance(obj, torch.Tensor):
            return obj.numel() * obj.element_size()
        if isinstance(obj, dict):
            return sum(size(v) for v in obj.values())
        if isinstance(obj, list | tuple):
            return sum(size(v) for v in obj)
        return 0

    return sum(size(d) for d in dicts if d is not None)


def _rng_state() -> dict[str, Any]:
    """Every global RNG as tensors and numbers (no pickled objects)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(np.asarray(keys, np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version),
                   "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }


def _set_rng_state(rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["torch"].cpu())
    if rng.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.cpu() for t in rng["cuda"]])
    n = rng["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    p = rng["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()),
                     p["gauss_next"]))


def _save_checkpoint(path: Path, state: TrainState, ema: EMA | None,
                     train_seconds: float) -> None:
    payload = {
        "format": CHECKPOINT_FORMAT,
        "epoch": state.epoch, "step": state.step, "train_seconds": float(train_seconds),
        "model": _unwrap(state.model).state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "ema": None if ema is None else ema.model.state_dict(),
        "history": to_plain(state.history),
        "rng": _rng_state(),
    }
    save_tensors(path, payload)


def _check_compatible(saved: dict[str, Any], module: nn.Module, what: str) -> None:
    own = module.state_dict()
    if not isinstance(saved, dict) or set(saved) != set(own):
        raise CorruptFileError(f"its {what} weights do not match the model's parameters")
    for k, v in own.items():
        if not isinstance(saved[k], torch.Tensor) or saved[k].shape != v.shape:
            raise CorruptFileError(f"its {what} weight {k!r} does not match the model")


def _read_checkpoint(path: Path, model: nn.Module, ema: EMA | None,
                     log: Callable[[str], None] | None) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if usable; a corrupt one is discarded with a warning.

    Raises:
        UnsafeFileError: the file holds pickled objects (never loaded).
    """
    try:
        ck = load_tensors(path)
        if ck.get("format") != CHECKPOINT_FORMAT:
            raise CorruptFileError(f"checkpoint format {ck.get('format')!r}, expected "
                                   f"{CHECKPOINT_FORMAT}")
        missing = {"epoch", "step", "model", "optimizer", "history", "rng"} - set(ck)
        if missing:
            raise CorruptFileError(f"entries {sorted(missing)} are missing")
        _check_compatible(ck["model"], model, "model")
        if ema is not None and ck.get("ema") is not None:
            _check_compatible(ck["ema"], ema.model, "EMA")
    except CorruptFileError as exc:
        msg = (f"discarding the checkpoint {path}: {exc}. Training starts again from the "
               "first epoch (a checkpoint is only cut short when a write was killed; the "
               "run folder holds nothing else of value).")
        warnings.warn(msg, RunStoreWarning, stacklevel=3)
        if log and is_main_process():
            log("warning: " + msg)
        if is_main_process():
            path.unlink(missing_ok=True)
        return None
    return ck


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def _nan_message(loss: torch.Tensor, batch: dict[str, torch.Tensor], cfg: TrainConfig, *,
                 epoch: int, step: int, batch_index: int, batches: int,
                 ckpt_path: Path | None, ckpt_epoch: int | None) -> str:
    """What happened, what is on disk and what to check, all of it true."""
    image = batch["image"]
    bad = int((~torch.isfinite(image)).sum())
    inputs = (f"The input batch holds {bad} NaN/inf value(s) out of {image.numel()}: the "
              "data is at fault; check it with `aerialseg data check DATASET`."
              if bad else
              "The input batch is finite, so the model diverged: the learning rate is "
              f"likely too high (lr={cfg.lr:g}); lower it or set grad_clip "
              f"(now {cfg.grad_clip}). If a lower lr does not help, check the data with "
              "`aerialseg data check DATASET`.")
    if ckpt_path is None:
        disk = "Checkpointing is off (checkpoint=None): nothing was saved."
    elif ckpt_epoch is None:
        disk = (f"No checkpoint has been written yet ({ckpt_path} does not exist; the first "
                "is written after an epoch ends), so nothing of this run was saved.")
    else:
        disk = (f"The checkpoint {ckpt_path} holds the state after epoch {ckpt_epoch + 1} "
                f"of {cfg.epochs}; it is kept, but resuming with the same settings repeats "
                "the same computation and fails again.")
    return (f"the loss became {loss.item()} in epoch {epoch + 1} of {cfg.epochs} "
            f"(batch {batch_index + 1} of {batches}, after {step} optimizer steps). "
            f"{inputs} {disk}")


def fit(model: nn.Module, loss_fn: nn.Module, dataset: Dataset, cfg: TrainConfig, *,
        device: torch.device | str = "cpu", callbacks: Sequence[Callback] = (),
        checkpoint: str | Path | None = None, log: Callable[[str], None] | None = print,
        max_epochs_this_call: int | None = None, checkpoint_every: int | None = None,
        final_checkpoint: bool = True, progress: bool = False,
        progress_label: str = "train", channels_last: bool = False) -> FitResult:
    """Train ``model`` on ``dataset`` with ``loss_fn`` as configured by ``cfg``.

    Seeds the global RNGs with ``cfg.seed`` first (dropout, ...); the initial weights are
    the caller's (the run store seeds before it builds the model).

    Args:
        model: returns logits (B, C, H, W).
        loss_fn: ``loss(logits, target, aux)``; if it has ``set_epoch`` it is called each epoch.
        dataset: yields dicts with ``image``, ``label`` and optional per-pixel extras that are
            passed to the loss in ``aux``.
        cfg: training settings.
        device: torch device.
        callbacks: method-specific hooks.
        checkpoint: file written atomically when :class:`CheckpointPolicy` says so (always
            after the last epoch of the call); if it exists, training resumes from it and
            ends with the same weights as an uninterrupted run. A corrupt checkpoint is
            discarded with a :class:`~aerialseg.utils.RunStoreWarning`.
        log: where one line per epoch goes (None: silent).
        max_epochs_this_call: stop after this many epochs in this call (to test resume).
        checkpoint_every: write every N epochs; None: adaptive (writes cost <= 1 % of the
            training time).
        final_checkpoint: write the checkpoint after the final epoch too (the run store
            passes False: it writes the trained model right away). The last epoch of a call
            that stops early (``max_epochs_this_call``) is always written.
        progress: show a progress bar (tqdm, on stderr; one bar per call, one step per
            epoch, the loss in its postfix).
        progress_label: the bar's description.
        channels_last: train in the channels-last memory layout (model and batches);
            :func:`aerialseg.perf.prefers_channels_last` says where it is faster.

    Raises:
        NonFiniteLossError: a loss was NaN/inf; the message says where, whether the inputs
            were finite and what checkpoint (if any) is on disk.
        UnsafeFileError: the checkpoint holds pickled objects (it is not loaded).
    """
    device = torch.device(device)
    set_seed(cfg.seed)
    model = model.to(device)
    if channels_last:  # faster convolutions for some models on CPU (aerialseg.perf)
        model = model.to(memory_format=torch.channels_last)
    if is_distributed():
        ddp_model: nn.Module = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
        sampler = EpochSampler(len(dataset), cfg.samples_per_epoch, cfg.seed,
                               rank=dist.get_rank(), world=dist.get_world_size())
    else:
        ddp_model = model
        sampler = EpochSampler(len(dataset), cfg.samples_per_epoch, cfg.seed)
    loader = epoch_loader(dataset, cfg, sampler)
    optimizer = build_optimizer(ddp_model, cfg)
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay else None
    state = TrainState(model=ddp_model, loss_fn=loss_fn.to(device), optimizer=optimizer,
                       cfg=cfg, device=device, dataset=dataset,
                       total_steps=cfg.epochs * len(loader))
    start_epoch, resumed, seconds_before = 0, None, 0.0
    ckpt_path = Path(checkpoint) if checkpoint else None
    ckpt_epoch: int | None = None  # 0-based epoch of the checkpoint on disk
    ck = (_read_checkpoint(ckpt_path, model, ema, log)
          if ckpt_path is not None and ckpt_path.exists() else None)
    if ck is not None:
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        if channels_last:  # stored contiguous; an uninterrupted run keeps the params' layout
            for p, st in optimizer.state.items():
                for k, v in st.items():
                    if torch.is_tensor(v) and v.shape == p.shape and v.dim() == 4:
                        st[k] = v.contiguous(memory_format=torch.channels_last)
        if ema is not None and ck.get("ema") is not None:
            ema.model.load_state_dict(ck["ema"])
        state.history = list(ck["history"])
        state.step = int(ck["step"])
        ckpt_epoch = int(ck["epoch"])
        start_epoch = resumed = ckpt_epoch + 1
        seconds_before = float(ck.get("train_seconds", 0.0))
        _set_rng_state(ck["rng"])
        if log and is_main_process():
            log(f"resumed from {ckpt_path} after epoch {start_epoch}")
        del ck
    # before the first write, its duration is estimated from the size of what it writes:
    # weights, one (SGD momentum) or two (AdamW) optimizer slots per weight, EMA weights
    slots = 2 if cfg.optimizer == "adamw" else 1 if cfg.momentum else 0
    weights = _state_bytes(model.state_dict())
    policy = CheckpointPolicy(checkpoint_every,
                              state_bytes=weights * (1 + slots + (ema is not None)))
    use_amp = cfg.amp and device.type == "cuda"
    main = is_main_process()
    bar = tqdm(total=cfg.epochs, initial=start_epoch, desc=progress_label, unit="epoch",
               file=sys.stderr, disable=not (progress and main), leave=True)
    written: list[int] = []
    t_start = time.perf_counter()
    try:
        for cb in callbacks:
            cb.on_fit_start(state)
        last = cfg.epochs - 1
        if max_epochs_this_call is not None:
            last = min(last, start_epoch + max_epochs_this_call - 1)
        for epoch in range(start_epoch, last + 1):
            state.epoch = epoch
            sampler.set_epoch(epoch)  # type: ignore[attr-defined]
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            if hasattr(loss_fn, "set_epoch"):
                loss_fn.set_epoch(epoch)
            for cb in callbacks:
                cb.on_epoch_start(state)
            ddp_model.train()
            t0, t_data, losses = time.perf_counter(), 0.0, []
            t_fetch = time.perf_counter()
            for b, batch in enumerate(loader):
                t_data += time.perf_counter() - t_fetch
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                if channels_last:
                    batch["image"] = batch["image"].contiguous(
                        memory_format=torch.channels_last)
                for g in optimizer.param_groups:
                    g["lr"] = g["initial_lr"] * lr_factor(cfg, state.step, state.total_steps)
                aux = {k: v for k, v in batch.items() if k not in ("image", "label")}
                for cb in callbacks:
                    aux.update(cb.batch_aux(state, batch))
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    logits = ddp_model(batch["image"])
                loss = loss_fn(logits.float(), batch["label"], aux=aux)
                if not torch.isfinite(loss):
                    raise NonFiniteLossError(_nan_message(
                        loss, batch, cfg, epoch=epoch, step=state.step, batch_index=b,
                        batches=len(loader), ckpt_path=ckpt_path, ckpt_epoch=ckpt_epoch))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(ddp_model.parameters(), cfg.grad_clip)
                optimizer.step()
                if ema is not None:
                    ema.update(model)
                losses.append(loss.item())
                state.step += 1
                t_fetch = time.perf_counter()
            seconds = time.perf_counter() - t0
            # the per-step losses let the convergence rule look at tenths of a short run
            record = {"epoch": epoch,
                      "loss": float(np.mean(losses)) if losses else float("nan"),
                      "lr": optimizer.param_groups[0]["lr"], "seconds": seconds,
                      "data_seconds": t_data, "steps": len(losses),
                      "step_losses": [round(x, 6) for x in losses]}
            state.history.append(record)
            for cb in callbacks:
                cb.on_epoch_end(state)
            bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}",
                            refresh=False)
            bar.update(1)
            if log and main:
                line = (f"epoch {epoch + 1}/{cfg.epochs}  loss {record['loss']:.4f}  "
                        f"lr {record['lr']:.2e}  {seconds:.1f}s (data {t_data:.1f}s)")
                if bar.disable:
                    log(line)
                else:
                    with tqdm.external_write_mode(file=sys.stderr):
                        log(line)
            skip = epoch == cfg.epochs - 1 and not final_checkpoint
            if ckpt_path is not None and main and not skip and policy.due(
                    epoch, seconds, last=epoch == last):
                t_write = time.perf_counter()
                _save_checkpoint(ckpt_path, state, ema,
                                 seconds_before + t_write - t_start)
                policy.wrote(time.perf_counter() - t_write)
                written.append(epoch)
                ckpt_epoch = epoch
    finally:
        bar.close()
    final = ema.model if ema is not None else model
    final.eval()
    elapsed = time.perf_counter() - t_start
    return FitResult(final, state.history, elapsed, resumed,
                     train_seconds=seconds_before + elapsed, checkpoint_epochs=written)
