"""Losses are picked by name: ``build_loss("ce_mfb", class_weights=w, ignore_index=255)``.

Every loss is an ``nn.Module`` called as ``loss(logits, target, aux=None) -> scalar`` where
``logits`` is (B, C, H, W), ``target`` (B, H, W) int64 with ``ignore_index`` and ``aux`` an
optional dict of per-pixel extras (e.g. ``"uncertainty"``, ``"pixel_weight"``: (B, H, W)).
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

LOSSES: dict[str, str] = {
    "ce": "aerialseg.losses.ce:build_ce",
    "ce_mfb": "aerialseg.losses.ce:build_ce_mfb",
    "ce_dice": "aerialseg.losses.dice:build_ce_dice",
    "uce": "aerialseg.losses.uce:build_uce",
    "efm": "aerialseg.losses.efm:build_efm_loss",
    "lossd": "aerialseg.losses.distance:build_lossd_objective",
    "boundary": "aerialseg.losses.distance:build_boundary_objective",
}


def build_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build the loss registered as ``name``.

    Raises:
        ValueError: unknown name (the valid names are listed).
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    module, func = LOSSES[name].split(":")
    return getattr(importlib.import_module(module), func)(**kwargs)
