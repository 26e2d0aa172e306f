"""Cross-entropy normalised by the number of valid pixels, and median-frequency balancing."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.losses.registry import register_loss


class WeightedCrossEntropy(nn.Module):
    """Pixel-wise cross-entropy with optional class weights, normalised by valid pixels.

    ``L = -(1/N) sum_n w_{y_n} log p_{y_n}`` with N the number of non-ignored pixels
    (Kampffmeyer et al. 2016, eq. 1). PyTorch's ``cross_entropy(weight=w)`` would divide by
    ``sum_n w_{y_n}`` instead, which cancels the balancing's effect on the loss scale.

    Args:
        class_weights: (C,) weights, or None for plain cross-entropy.
        ignore_index: label value that contributes nothing.
        label_smoothing: as in :func:`torch.nn.functional.cross_entropy`.
        reduction: ``"mean"`` (over valid pixels) or ``"none"`` (per pixel, 0 at ignore).
    """

    def __init__(self, class_weights: Tensor | Sequence[float] | None = None,
                 ignore_index: int = IGNORE_INDEX, label_smoothing: float = 0.0,
                 reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        w = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", w)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.reduction = reduction

    def forward(self, logits: Tensor, target: Tensor, aux: dict | None = None) -> Tensor:
        """Loss of ``logits`` (B, C, H, W) against ``target`` (B, H, W)."""
        per_pixel = F.cross_entropy(logits.float(), target, weight=self.class_weights,
                                    ignore_index=self.ignore_index, reduction="none",
                                    label_smoothing=self.label_smoothing)
        if self.reduction == "none":
            return per_pixel
        valid = (target != self.ignore_index).sum().clamp_min(1)
        return per_pixel.sum() / valid


def median_frequency_weights(labels: Iterable[np.ndarray], num_classes: int, *,
                             classes: Sequence[int] | None = None, mode: str = "global",
                             ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Median-frequency balancing weights ``w_c = median(f) / f_c`` (Eigen & Fergus 2015).

    Args:
        labels: label maps of the training split.
        num_classes: C; the returned vector has this length.
        classes: classes that take part (default all); others get weight 0.
        mode: ``"global"``: f_c = pixels of c / all non-ignored pixels of the taking-part
            classes; ``"eigen_fergus"``: f_c = pixels of c / total pixels of the images where c
            is present.
        ignore_index: label value that is not counted.

    A class that never occurs gets weight 0 (with a warning): it contributes no loss term.

    Raises:
        ValueError: no balanced class occurs at all, or an unknown mode.
    """
    classes = list(range(num_classes)) if classes is None else list(classes)
    counts = np.zeros(num_classes, np.float64)
    image_px = np.zeros(num_classes, np.float64)
    for lab in labels:
        lab = np.asarray(lab)
        binc = np.bincount(lab[lab != ignore_index].ravel().astype(np.int64),
                           minlength=num_classes)[:num_classes]
        counts += binc
        present = binc > 0
        image_px[present] += binc[classes].sum()
    if mode == "global":
        freq = counts[classes] / max(counts[classes].sum(), 1.0)
    elif mode == "eigen_fergus":
        freq = counts[classes] / np.maximum(image_px[classes], 1.0)
    else:
        raise ValueError(f"mfb mode must be 'global' or 'eigen_fergus', got {mode!r}")
    present = freq > 0
    if not present.any():
        raise ValueError("no labelled pixel of the balanced classes in the training labels")
    if not present.all():
        missing = [c for c, p in zip(classes, present, strict=True) if not p]
        # a class that never occurs contributes no loss term, so its weight is irrelevant
        warnings.warn(f"classes {missing} never occur in the training labels; they get "
                      "weight 0 and the median is taken over the classes present",
                      stacklevel=2)
    w = np.zeros(num_classes, np.float64)
    cls = np.asarray(classes)[present]
    w[cls] = np.median(freq[present]) / freq[present]
    return w


@register_loss("ce")
def build_ce(*, ignore_index: int = IGNORE_INDEX, label_smoothing: float = 0.0,
             **_: object) -> nn.Module:
    """Plain cross-entropy (registry entry ``"ce"``)."""
    return WeightedCrossEntropy(None, ignore_index, label_smoothing)


@register_loss("ce_mfb")
def build_ce_mfb(*, class_weights: Sequence[float], ignore_index: int = IGNORE_INDEX,
                 label_smoothing: float = 0.0, **_: object) -> nn.Module:
    """Median-frequency-balanced cross-entropy (registry entry ``"ce_mfb"``)."""
    return WeightedCrossEntropy(class_weights, ignore_index, label_smoothing)
