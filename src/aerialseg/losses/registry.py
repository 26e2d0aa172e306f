"""Losses are picked by name: ``build_loss("ce_mfb", class_weights=w, ignore_index=255)``.

Every loss is an ``nn.Module`` called as ``loss(logits, target, aux=None) -> scalar`` where
``logits`` is (B, C, H, W), ``target`` (B, H, W) int64 with ``ignore_index`` and ``aux`` an
optional dict of per-pixel extras (e.g. ``"uncertainty"``, ``"pixel_weight"``: (B, H, W)).
A builder registers itself beside its definition with ``@register_loss("name")``.
"""

from __future__ import annotations

from typing import Any, cast

from torch import nn

from aerialseg.utils import NameRegistry

LOSSES = NameRegistry("loss", "aerialseg.losses")
"""Registered builders ``f(**kw) -> nn.Module``."""

register_loss = LOSSES.register


def loss_names() -> list[str]:
    """Every registered loss name."""
    return LOSSES.names()


def build_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build the loss registered as ``name`` (an unknown name lists the valid ones)."""
    return cast(nn.Module, LOSSES.build(name, **kwargs))
