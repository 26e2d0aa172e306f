"""U-CE: uncertainty-aware cross-entropy (Landgraf et al. 2024), methods.md §5."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.losses.registry import register_loss

UNCERTAINTY_KINDS = ("predicted_class_std", "mean_class_std")


def uce_uncertainty(probs_samples: Tensor, kind: str = "predicted_class_std",
                    ddof: int = 1) -> Tensor:
    """Per-pixel MC-dropout uncertainty used to weight U-CE.

    As in the U-CE code: ``p_mean`` = mean over passes, ``s_c`` = std over passes (``ddof=1``,
    torch's unbiased ``std``), predicted class ``c_hat = argmax_c p_mean``.

    Args:
        probs_samples: (T, B, C, H, W) softmax outputs of T stochastic passes.
        kind: ``"predicted_class_std"``: ``u = s_{c_hat}`` (the code's definition);
            ``"mean_class_std"``: ``u = mean_c s_c``.
        ddof: delta degrees of freedom of the std.

    Returns:
        (B, H, W) uncertainty, computed without gradient.
    """
    if probs_samples.dim() != 5:
        raise ValueError(f"probs_samples must be (T, B, C, H, W), got {tuple(probs_samples.shape)}")
    if probs_samples.shape[0] <= ddof:
        raise ValueError(f"need more than ddof={ddof} MC samples for a std, got "
                         f"T={probs_samples.shape[0]}; raise uce_mc_samples")
    if kind not in UNCERTAINTY_KINDS:
        raise ValueError(f"kind must be one of {UNCERTAINTY_KINDS}, got {kind!r}")
    with torch.no_grad():
        p = probs_samples.float()
        std = p.std(dim=0, correction=ddof)  # (B, C, H, W)
        if kind == "mean_class_std":
            return std.mean(1)
        pred = p.mean(0).argmax(1, keepdim=True)
        return std.gather(1, pred)[:, 0]


class UncertaintyAwareCE(nn.Module):
    """``L = sum_x (1 + u(x))^alpha CE(x) / #valid`` with u = ``aux["uncertainty"]`` (detached).

    Ignore pixels contribute nothing, whatever their uncertainty value (even NaN). ``alpha = 0``
    or ``u = 0`` gives plain CE normalised by valid pixels.

    Args:
        exponent: alpha (paper's best 10; code default 1).
        ignore_index: label that contributes nothing.
        label_smoothing: CE label smoothing.
        start_epoch: before this epoch (see :meth:`set_epoch`) the loss is plain CE and
            ``aux["uncertainty"]`` is not needed (``uce_start_epoch``; 0 = as in the code).
    """

    def __init__(self, exponent: float = 10.0, ignore_index: int = IGNORE_INDEX,
                 label_smoothing: float = 0.0, start_epoch: int = 0) -> None:
        super().__init__()
        self.exponent = float(exponent)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.start_epoch = start_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Tell the loss the current (0-based) epoch; the training engine calls this."""
        self.epoch = int(epoch)

    @property
    def needs_uncertainty(self) -> bool:
        """Whether the next call needs ``aux["uncertainty"]`` (engine may skip MC passes)."""
        return self.epoch >= self.start_epoch and self.exponent != 0.0

    def forward(self, logits: Tensor, target: Tensor, aux: dict | None = None) -> Tensor:
        """U-CE of ``logits`` (B, C, H, W) against ``target`` (B, H, W)."""
        ce = F.cross_entropy(logits.float(), target, ignore_index=self.ignore_index,
                             reduction="none", label_smoothing=self.label_smoothing)
        valid = target != self.ignore_index
        n_valid = valid.sum().clamp_min(1)
        if not self.needs_uncertainty:
            return ce.sum() / n_valid
        if aux is None or aux.get("uncertainty") is None:
            raise KeyError("U-CE needs aux['uncertainty'] (B, H, W): compute it with "
                           "uce_uncertainty() from no-grad MC-dropout passes and pass "
                           "loss(logits, target, aux={'uncertainty': u})")
        u = aux["uncertainty"].detach().float()
        if u.dim() == 4 and u.shape[1] == 1:
            u = u[:, 0]
        if u.shape != target.shape:
            raise ValueError("aux['uncertainty'] must have the target's shape "
                             f"{tuple(target.shape)}, got {tuple(u.shape)}")
        # where() on the weight: a NaN/inf uncertainty on an ignore pixel must not leak into the
        # sum or (as 0 * NaN) into the gradient
        weight = torch.where(valid, (1.0 + u).pow(self.exponent), 0.0)
        return (weight * ce).sum() / n_valid


@register_loss("uce")
def build_uce(*, uce_exponent: float = 10.0, ignore_index: int = IGNORE_INDEX,
              label_smoothing: float = 0.0, uce_start_epoch: int = 0,
              **_: object) -> nn.Module:
    """U-CE (registry entry ``"uce"``)."""
    return UncertaintyAwareCE(uce_exponent, ignore_index, label_smoothing, uce_start_epoch)
