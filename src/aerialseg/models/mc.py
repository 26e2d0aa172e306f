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

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
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


@torch.no_grad()
def deterministic_and_mc(model: nn.Module, x: torch.Tensor, T: int, *,
                         chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The eval-mode prediction and T MC-dropout samples from one pass of the trunk.

    With ``mc_split`` the deterministic trunk runs once; the head runs once in eval mode
    (the ordinary prediction) and on the trunk output repeated T times with dropout on (as
    :func:`mc_forward` with ``bn="eval"``). Without a split, two full passes.

    Returns:
        ``(probs (B, C, H, W), samples (T, B, C, H, W))``, float32 softmax probabilities.
    """
    if T < 1:
        raise ValueError(f"T (number of MC samples) must be >= 1, got {T}")
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        parts = get_mc_split(model, None) if has_dropout(model) else None
        if parts is None:
            det = _softmax(model(x))
            return det, _mc_eval(model, x, T, chunk=chunk or T, split=None)
        trunk, head = parts
        state = trunk(x)
        det = _softmax(head(state))
        enable_mc_dropout(model)
        b = x.shape[0]
        out = []
        chunk = chunk or T
        for start in range(0, T, chunk):
            n = min(chunk, T - start)
            p = _softmax(head(repeat_batch(state, n)))
            out.append(p.reshape(n, b, *p.shape[1:]))
        return det, out[0] if len(out) == 1 else torch.cat(out)
    finally:
        for m, training in modes:
            m.training = training


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


# ---- batched train-mode passes (U-CE's training-time uncertainty)

MC_BN_MODES: tuple[str, ...] = ("train", "train_frozen_stats", "eval")
"""BatchNorm during the training-time MC passes: ``"train"`` (batch statistics, running
buffers updated once per pass, as U-CE's code does), ``"train_frozen_stats"`` (batch
statistics, buffers left untouched) or ``"eval"`` (running statistics; our addition)."""

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
    model = model.module if hasattr(model, "module") else model
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
