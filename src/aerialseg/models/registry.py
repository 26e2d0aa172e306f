"""Models are picked by name: ``build_model("fcn", in_channels=5, num_classes=6)``.

A builder registers itself beside its definition with ``@register_model("name")``; the
modules of this package are imported on the first lookup.
"""

from __future__ import annotations

from typing import Any, cast

from torch import nn

from aerialseg.utils import NameRegistry

MODELS = NameRegistry("model", "aerialseg.models")
"""Registered builders ``f(*, in_channels, num_classes, **kw) -> nn.Module``."""

register_model = MODELS.register


def model_names() -> list[str]:
    """Every registered model name."""
    return MODELS.names()


def build_model(name: str, *, in_channels: int, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name`` (an unknown name lists the valid ones)."""
    return cast(nn.Module, MODELS.build(name, in_channels=in_channels,
                                        num_classes=num_classes, **kwargs))
