"""MC-dropout sampling shared by every model with dropout.

The MC-split protocol: a model may define ``mc_split(self) -> (trunk, head)`` where

- ``head(trunk(x)) == model(x)`` (in eval mode, and in MC mode given the same RNG state);
- the trunk holds no dropout, so it is deterministic in MC mode and computed once;
- the head holds everything from the first dropout on and accepts the trunk's output
  with every tensor in it repeated n times along dim 0 (batch ``n * B``).

The trunk's output may be a tensor or a tuple/list/dict of tensors and plain values (e.g.
the original input size); :func:`repeat_batch` repeats the tensors and leaves the rest.
A model may raise ``NotImplementedError`` from ``mc_split`` when it cannot split; then
:func:`mc_forward` runs full passes on the input stacked T times.

Because the split and the stacked full passes draw dropout masks of the same shapes in the
same order, both give identical samples for the same RNG seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd

BNMode = Literal["eval", "train", "train_frozen_stats"]


@runtime_checkable
class SupportsMCSplit(Protocol):
    """A model exposing the MC-split protocol described in this module."""

    def mc_split(self) -> tuple[Callable[[torch.Tensor], Any], Callable[[Any], torch.Tensor]]:
        """Return ``(trunk, head)`` with ``head(trunk(x)) == model(x)``."""
        ...


def _dropouts(model: nn.Module) -> list[_DropoutNd]:
    return [m for m in model.modules() if isinstance(m, _DropoutNd)]


def has_dropout(model: nn.Module) -> bool:
    """Whether ``model`` holds any dropout module (any ``nn.Dropout*``) with p > 0."""
    return any(m.p > 0 for m in _dropouts(model))


def enable_mc_dropout(model: nn.Module) -> nn.Module:
    """Put ``model`` in eval mode, then only its dropout modules back in train mode.

    Every ``nn.Dropout*`` counts, so smp's own decoder dropouts (FPN/PSPNet
    ``Dropout2d``, DeepLabV3+ ASPP ``Dropout``) are sampled too. BatchNorm keeps its
    running statistics. Returns ``model``.
    """
    model.eval()
    for m in _dropouts(model):
        m.train()
    return model


def repeat_batch(obj: Any, n: int) -> Any:
    """Repeat every tensor in ``obj`` n times along dim 0: (B, ...) -> (n * B, ...).

    Copy k occupies rows ``k*B:(k+1)*B``. Tuples, lists and dicts are traversed; other
    values are returned unchanged.
    """
    if isinstance(obj, torch.Tensor):
        return obj.repeat(n, *([1] * (obj.dim() - 1)))
    if isinstance(obj, tuple):
        return tuple(repeat_batch(o, n) for o in obj)
    if isinstance(obj, list):
        return [repeat_batch(o, n) for o in obj]
    if isinstance(obj, dict):
        return {k: repeat_batch(v, n) for k, v in obj.items()}
    return obj


def get_mc_split(
    model: nn.Module, split: bool | None
) -> tuple[Callable[[torch.Tensor], Any], Callable[[Any], torch.Tensor]] | None:
    """The model's ``mc_split()`` (trunk, head), or None; ``split=True`` requires one."""
    # DDP/DataParallel wrap the model in `.module`; MC sampling needs no gradient sync.
    fn = getattr(model, "mc_split", None) or getattr(
        getattr(model, "module", None), "mc_split", None
    )
    if split is False:
        return None
    if fn is None:
        if split:
            raise ValueError(f"split=True but {type(model).__name__} has no mc_split()")
        return None
    try:
        return fn()
    except NotImplementedError:
        if split:
            raise
        return None


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.float(), dim=1)


def mc_forward(
    model: nn.Module,
    x: torch.Tensor,
    T: int,
    *,
    bn: BNMode = "eval",
    chunk: int | None = None,
    split: bool | None = None,
    grad: bool = False,
) -> torch.Tensor:
    """Draw T MC-dropout samples of softmax probabilities.

    ``bn="eval"``: dropout on, BatchNorm on running statistics (test-time MC dropout). If the
    model has ``mc_split`` (and ``split`` is not False) the trunk runs once and the head on
    the trunk output repeated T times; otherwise the input is stacked T times and run in
    one full pass. ``chunk`` caps the number of copies per call (memory). A model without
    dropout is run once and its probabilities expanded (a read-only view).

    ``bn="train"``: every module in train mode, as in U-CE's code: BatchNorm uses batch
    statistics and updates its running buffers once per sample. The T passes run one by
    one (batch B each), because stacking copies would pool BatchNorm statistics over
    different dropout masks; ``chunk`` and ``split`` are ignored. ``"train_frozen_stats"``
    does the same but restores the BatchNorm buffers afterwards.

    The modules' train/eval flags are restored on return.

    Args:
        model: a segmentation model returning logits (B, C, H, W).
        x: input (B, in_channels, H, W).
        T: number of samples, >= 1.
        bn: ``"eval"``, ``"train"`` or ``"train_frozen_stats"``.
        chunk: at most this many copies per batched call (``bn="eval"``); None = all T.
        split: None = use ``mc_split`` when available; True = require it; False = never.
        grad: track gradients (default False: runs under ``torch.no_grad``).

    Returns:
        Probabilities (T, B, C, H, W), float32.
    """
    if T < 1:
        raise ValueError(f"T (number of MC samples) must be >= 1, got {T}")
    if bn not in ("eval", "train", "train_frozen_stats"):
        raise ValueError(f"bn must be 'eval', 'train' or 'train_frozen_stats', got {bn!r}")
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk must be None or >= 1, got {chunk}")
    modes = [(m, m.training) for m in model.modules()]
    saved: list[tuple[torch.Tensor, torch.Tensor]] = []
    try:
        with torch.set_grad_enabled(grad):
            if bn == "eval":
                return _mc_eval(model, x, T, chunk=chunk or T, split=split)
            model.train()
            if bn == "train_frozen_stats":
                saved = [
                    (buf, buf.detach().clone())
                    for m in model.modules()
                    if isinstance(m, _BatchNorm)
                    for buf in m.buffers()
                ]
            return torch.stack([_softmax(model(x)) for _ in range(T)])
    finally:
        for m, training in modes:
            m.training = training
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)


def _mc_eval(
    model: nn.Module, x: torch.Tensor, T: int, *, chunk: int, split: bool | None
) -> torch.Tensor:
    enable_mc_dropout(model)
    b = x.shape[0]
    if not has_dropout(model):
        p = _softmax(model(x))
        return p.unsqueeze(0).expand(T, *p.shape)
    parts = get_mc_split(model, split)
    if parts is not None:
        trunk, head = parts
        state = trunk(x)

        def run(n: int) -> torch.Tensor:
            return head(repeat_batch(state, n))
    else:

        def run(n: int) -> torch.Tensor:
            return model(repeat_batch(x, n))

    out = []
    for start in range(0, T, chunk):
        n = min(chunk, T - start)
        p = _softmax(run(n))
        out.append(p.reshape(n, b, *p.shape[1:]))
    return out[0] if len(out) == 1 else torch.cat(out)
