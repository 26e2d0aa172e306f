"""One training step (forward, CE loss, backward, SGD step) of the book's models, for benchmarks.

Sizes follow the default profile of the chapter that trains each model (batch, crop, widths);
weights are random, inputs are random 5-band crops with random labels of 6 classes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from aerialseg.models.registry import build_model

IN_BANDS, NUM_CLASSES = 5, 6

# name -> (registry model, builder kwargs, batch, crop); crop = patch side for the patch CNN
CASES: dict[str, tuple[str, dict[str, Any], int, int]] = {
    "fcn": ("fcn", {"widths": (32, 64, 128, 256)}, 8, 256),
    "smp_unet": ("smp_unet", {"encoder": "resnet18"}, 8, 128),
    "smp_fpn": ("smp_fpn", {"encoder": "resnet18"}, 8, 128),
    "smp_deeplabv3plus": ("smp_deeplabv3plus", {"encoder": "resnet18"}, 8, 128),
    "smp_pspnet": ("smp_pspnet", {"encoder": "resnet18"}, 8, 128),
    "cse_unet": ("cse_unet", {"base_width": 16}, 4, 96),
    "patch_cnn": ("patch_cnn", {"conv_widths": (8, 16, 24, 32), "fc_width": 128}, 32, 65),
}


def make_step(name: str, *, channels_last: bool = False, batch: int | None = None,
              crop: int | None = None, seed: int = 0) -> Callable[[], float]:
    """A function running one training step of model ``name`` and returning the loss."""
    model_name, kw, default_batch, default_crop = CASES[name]
    batch = batch or default_batch
    crop = crop or default_crop
    torch.manual_seed(seed)
    model = build_model(model_name, in_channels=IN_BANDS, num_classes=NUM_CLASSES, **kw).train()
    x = torch.randn(batch, IN_BANDS, crop, crop)
    out_side = 1 if model_name == "patch_cnn" else crop
    y = torch.randint(0, NUM_CLASSES, (batch, out_side, out_side))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step
