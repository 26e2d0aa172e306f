"""One training loop for every method: ``fit()``.

Schedules step per iteration; AMP (bf16) on CUDA; gradient clipping; EMA of weights;
callbacks for method-specific work (EFM refresh, U-CE uncertainty); a checkpoint after every
epoch and exact resume; DistributedDataParallel when launched under ``torchrun``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from aerialseg.config import TrainConfig
from aerialseg.utils import atomic_write, set_seed


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
    """What :func:`fit` returns: the model to evaluate (EMA weights if enabled)."""

    model: nn.Module
    history: list[dict[str, float]]
    seconds: float
    resumed_from: int | None


def _save_checkpoint(path: Path, state: TrainState, ema: EMA | None) -> None:
    payload = {
        "epoch": state.epoch, "step": state.step,
        "model": _unwrap(state.model).state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "ema": None if ema is None else ema.model.state_dict(),
        "history": state.history,
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def fit(model: nn.Module, loss_fn: nn.Module, dataset: Dataset, cfg: TrainConfig, *,
        device: torch.device | str = "cpu", callbacks: Sequence[Callback] = (),
        checkpoint: str | Path | None = None, log: Callable[[str], None] | None = print,
        max_epochs_this_call: int | None = None) -> FitResult:
    """Train ``model`` on ``dataset`` with ``loss_fn`` as configured by ``cfg``.

    Args:
        model: returns logits (B, C, H, W).
        loss_fn: ``loss(logits, target, aux)``; if it has ``set_epoch`` it is called each epoch.
        dataset: yields dicts with ``image``, ``label`` and optional per-pixel extras that are
            passed to the loss in ``aux``.
        cfg: training settings.
        device: torch device.
        callbacks: method-specific hooks.
        checkpoint: file written atomically after every epoch; if it exists, training resumes
            from it and ends with the same weights as an uninterrupted run.
        log: where one line per epoch goes (None: silent).
        max_epochs_this_call: stop after this many epochs in this call (to test resume).

    Raises:
        NonFiniteLossError: a loss was NaN/inf; the last good checkpoint is kept.
    """
    device = torch.device(device)
    set_seed(cfg.seed)
    model = model.to(device)
    if is_distributed():
        ddp_model: nn.Module = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
        sampler = EpochSampler(len(dataset), cfg.samples_per_epoch, cfg.seed,
                               rank=dist.get_rank(), world=dist.get_world_size())
    else:
        ddp_model = model
        sampler = EpochSampler(len(dataset), cfg.samples_per_epoch, cfg.seed)
    # a last batch of one sample breaks batch norm in train mode (e.g. DeepLabV3+'s ASPP
    # pooling): drop it, and only it
    n = len(sampler)  # type: ignore[arg-type]
    drop_last = n > 1 and cfg.batch_size > 1 and n % cfg.batch_size == 1
    loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler,
                        drop_last=drop_last, num_workers=0)
    optimizer = build_optimizer(ddp_model, cfg)
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay else None
    state = TrainState(model=ddp_model, loss_fn=loss_fn.to(device), optimizer=optimizer,
                       cfg=cfg, device=device, dataset=dataset,
                       total_steps=cfg.epochs * len(loader))
    start_epoch, resumed = 0, None
    ckpt_path = Path(checkpoint) if checkpoint else None
    if ckpt_path is not None and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        if ema is not None and ck["ema"] is not None:
            ema.model.load_state_dict(ck["ema"])
        state.history = ck["history"]
        state.step = ck["step"]
        start_epoch = resumed = ck["epoch"] + 1
        torch.set_rng_state(ck["torch_rng"])
        if ck.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ck["cuda_rng"])
        if log:
            log(f"resumed from {ckpt_path} after epoch {start_epoch}")
    use_amp = cfg.amp and device.type == "cuda"
    t_start = time.perf_counter()
    for cb in callbacks:
        cb.on_fit_start(state)
    epochs_done = 0
    for epoch in range(start_epoch, cfg.epochs):
        if max_epochs_this_call is not None and epochs_done >= max_epochs_this_call:
            break
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
        for batch in loader:
            t_data += time.perf_counter() - t_fetch
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            for g in optimizer.param_groups:
                g["lr"] = g["initial_lr"] * lr_factor(cfg, state.step, state.total_steps)
            aux = {k: v for k, v in batch.items() if k not in ("image", "label")}
            for cb in callbacks:
                aux.update(cb.batch_aux(state, batch))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = ddp_model(batch["image"])
            loss = loss_fn(logits.float(), batch["label"], aux=aux)
            if not torch.isfinite(loss):
                where = f"epoch {epoch}, step {state.step}"
                kept = f"; the last good checkpoint is kept at {ckpt_path}" if ckpt_path else ""
                raise NonFiniteLossError(
                    f"loss became {loss.item()} at {where}{kept}. Lower lr (now {cfg.lr}), "
                    "enable grad_clip, or check the inputs for NaN values.")
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
        record = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else float("nan"),
                  "lr": optimizer.param_groups[0]["lr"], "seconds": seconds,
                  "data_seconds": t_data}
        state.history.append(record)
        for cb in callbacks:
            cb.on_epoch_end(state)
        if log and is_main_process():
            log(f"epoch {epoch + 1}/{cfg.epochs}  loss {record['loss']:.4f}  "
                f"lr {record['lr']:.2e}  {seconds:.1f}s (data {t_data:.1f}s)")
        if ckpt_path is not None and is_main_process():
            _save_checkpoint(ckpt_path, state, ema)
        epochs_done += 1
    final = ema.model if ema is not None else model
    final.eval()
    return FitResult(final, state.history, time.perf_counter() - t_start, resumed)
