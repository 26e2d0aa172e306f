"""Pad inputs to a multiple of a model's output stride and crop the output back."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``x`` (B, C, H, W) at the bottom/right so both sides are multiples of ``multiple``.

    Reflection is used where the input is large enough (pad < side), replication otherwise,
    so every input size >= 1 works.

    Returns:
        The padded tensor and the original ``(H, W)``, for :func:`crop_to`.
    """
    if x.dim() != 4:
        raise ValueError(f"expected a 4-D input (B, C, H, W), got shape {tuple(x.shape)}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def crop_to(y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop the spatial dims of ``y`` back to ``size`` (undoes :func:`pad_to_multiple`)."""
    h, w = size
    if y.shape[-2] == h and y.shape[-1] == w:
        return y
    return y[..., :h, :w]
