"""Multi-class soft Dice (segmentation_models_pytorch style) and CE + Dice."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.losses.ce import WeightedCrossEntropy
from aerialseg.losses.registry import register_loss

CLASS_AVERAGES = ("smp", "present", "all")


def soft_dice_scores(probs: Tensor, target: Tensor, *, ignore_index: int = IGNORE_INDEX,
                     smooth: float = 0.0, eps: float = 1e-7) -> tuple[Tensor, Tensor]:
    """Per-class soft Dice over the whole batch.

    ``dice_c = (2 sum p_c t_c + smooth) / max(sum p_c + sum t_c + smooth, eps)`` with the sums over
    all non-ignored pixels of all images (smp's ``dims=(0, 2)``).

    Args:
        probs: (B, C, H, W) class probabilities.
        target: (B, H, W) int64 labels.
        ignore_index: label whose pixels are left out of every sum.
        smooth: additive smoothing of numerator and denominator.
        eps: lower clamp of the denominator.

    Returns:
        ``(dice, present)``: (C,) scores and (C,) bool "class occurs in the valid target".
    """
    if probs.dim() != 4 or target.shape != (probs.shape[0], *probs.shape[2:]):
        raise ValueError(f"expected probs (B, C, H, W) and target (B, H, W), got "
                         f"{tuple(probs.shape)} and {tuple(target.shape)}")
    num_classes = probs.shape[1]
    b, _, h, w = probs.shape
    valid = target != ignore_index
    validf = valid.unsqueeze(1).to(probs.dtype)  # (B, 1, H, W)
    # float one-hot in the probabilities' layout, zero on ignore pixels: no int64 one-hot,
    # no permuted copies
    onehot = probs.new_zeros(b, num_classes, h, w).scatter_(
        1, torch.where(valid, target, 0).unsqueeze(1), validf)
    dims = (0, 2, 3)
    counts = onehot.sum(dims)
    inter = (probs * onehot).sum(dims)
    card = (probs * validf).sum(dims) + counts
    dice = (2.0 * inter + smooth) / (card + smooth).clamp_min(eps)
    return dice, counts > 0


class SoftDiceLoss(nn.Module):
    """Multi-class soft Dice loss on softmax probabilities, ignore pixels excluded.

    Per class ``1 - dice_c`` (see :func:`soft_dice_scores`), then averaged over classes according
    to ``class_average``:

    * ``"smp"`` (default): exactly ``smp.losses.DiceLoss("multiclass", from_logits=True)``: classes
      absent from the (valid) target get loss 0 but still count in the mean over all C classes,
      so the loss scale shrinks when a batch holds fewer classes.
    * ``"present"``: mean over the classes present in the target only (scale-stable; an absent
      class contributes no gradient even if it is predicted, which CE still penalises).
    * ``"all"``: mean over all C classes; an absent class has Dice ``smooth / (sum p_c + smooth)``,
      i.e. constant 0 (loss 1, no gradient) when ``smooth == 0``.

    Args:
        ignore_index: label that contributes nothing.
        smooth: Dice smoothing (smp default 0; GeoSeg uses 0.05).
        eps: denominator clamp.
        class_average: ``"smp"``, ``"present"`` or ``"all"``.
        classes: optional subset of class indices that take part in the average.
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX, smooth: float = 0.0, eps: float = 1e-7,
                 class_average: str = "smp", classes: Sequence[int] | None = None) -> None:
        super().__init__()
        if class_average not in CLASS_AVERAGES:
            raise ValueError(f"class_average must be one of {CLASS_AVERAGES}, "
                             f"got {class_average!r}")
        self.ignore_index = ignore_index
        self.smooth = smooth
        self.eps = eps
        self.class_average = class_average
        self.classes = None if classes is None else list(classes)

    def forward(self, logits: Tensor, target: Tensor, aux: dict | None = None) -> Tensor:
        """Dice loss of ``logits`` (B, C, H, W) against ``target`` (B, H, W)."""
        # log_softmax().exp() as smp: better-behaved gradient at saturated logits
        probs = logits.float().log_softmax(1).exp()
        dice, present = soft_dice_scores(probs, target, ignore_index=self.ignore_index,
                                         smooth=self.smooth, eps=self.eps)
        loss = 1.0 - dice
        if self.classes is not None:
            loss, present = loss[self.classes], present[self.classes]
        if self.class_average == "all":
            return loss.mean()
        if self.class_average == "smp":
            return (loss * present).mean()
        if not present.any():  # only ignore pixels: keep a graph, value 0
            return (logits * 0.0).sum()
        return loss[present].mean()


class CEDiceLoss(nn.Module):
    """``lambda_ce * CE + lambda_dice * Dice`` (the GeoSeg / EFM / Lossd base loss).

    CE is :class:`~aerialseg.losses.ce.WeightedCrossEntropy` (normalised by valid pixels); Dice
    is :class:`SoftDiceLoss` (unweighted).
    """

    def __init__(self, lambda_ce: float = 1.0, lambda_dice: float = 1.0,
                 label_smoothing: float = 0.0,
                 class_weights: Tensor | Sequence[float] | None = None,
                 ignore_index: int = IGNORE_INDEX, dice_smooth: float = 0.0,
                 dice_class_average: str = "smp") -> None:
        super().__init__()
        self.lambda_ce = lambda_ce
        self.lambda_dice = lambda_dice
        self.ce = WeightedCrossEntropy(class_weights, ignore_index, label_smoothing)
        self.dice = SoftDiceLoss(ignore_index, smooth=dice_smooth, class_average=dice_class_average)

    def forward(self, logits: Tensor, target: Tensor, aux: dict | None = None) -> Tensor:
        """Weighted sum of CE and Dice."""
        return (self.lambda_ce * self.ce(logits, target)
                + self.lambda_dice * self.dice(logits, target))


@register_loss("ce_dice")
def build_ce_dice(*, lambda_ce: float = 1.0, lambda_dice: float = 1.0,
                  label_smoothing: float = 0.0,
                  class_weights: Sequence[float] | None = None,
                  ignore_index: int = IGNORE_INDEX, dice_smooth: float = 0.0,
                  dice_class_average: str = "smp", **_: object) -> nn.Module:
    """CE + Dice (registry entry ``"ce_dice"``)."""
    return CEDiceLoss(lambda_ce, lambda_dice, label_smoothing, class_weights, ignore_index,
                      dice_smooth, dice_class_average)
