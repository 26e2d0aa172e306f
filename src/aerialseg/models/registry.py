"""Models are picked by name: ``build_model("fcn", in_channels=5, num_classes=6)``.

Entries are ``"module:function"`` strings imported on first use, so one model's optional
dependency never breaks another's import.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

MODELS: dict[str, str] = {
    "fcn": "aerialseg.models.fcn:build_fcn",
    "patch_cnn": "aerialseg.models.patch_cnn:build_patch_cnn",
    "cse_unet": "aerialseg.models.cse_unet:build_cse_unet",
    "unet_plain": "aerialseg.models.cse_unet:build_plain_unet",
    "smp_unet": "aerialseg.models.smp_models:build_smp_unet",
    "smp_fpn": "aerialseg.models.smp_models:build_smp_fpn",
    "smp_pspnet": "aerialseg.models.smp_models:build_smp_pspnet",
    "smp_deeplabv3plus": "aerialseg.models.smp_models:build_smp_deeplabv3plus",
}


def build_model(name: str, *, in_channels: int, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name``.

    Raises:
        ValueError: unknown name (the valid names are listed).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    module, func = MODELS[name].split(":")
    builder = getattr(importlib.import_module(module), func)
    return builder(in_channels=in_channels, num_classes=num_classes, **kwargs)
