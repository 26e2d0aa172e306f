"""The Kampffmeyer chapters' analyses: the patch CNN's layers, its dense-inference check.

Also the coverage of a single scene at a target accuracy (chapter 04).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.data.patch_sampling import PatchCentres, extract_patches
from aerialseg.models.patch_cnn import predict_dense
from aerialseg.uncertainty import ThresholdCurve


def dense_vs_patch(model: nn.Module, image: np.ndarray, *, n_pixels: int = 32,
                   seed: int = 0, tile: int = 256, batch: int = 64) -> dict[str, Any]:
    """Check dense inference against classifying patches one by one, and time both.

    Dense: :func:`~aerialseg.models.patch_cnn.predict_dense` (reflect border) over the
    whole ``image``. Per patch: the 65x65 reflect-padded patches around ``n_pixels``
    random pixels, cut by :func:`~aerialseg.data.patch_sampling.extract_patches` and
    classified on their own (1x1 output each).

    Returns:
        ``pixels`` (n, 2), ``dense`` and ``patch`` probabilities (n, C), ``max_abs_diff``,
        ``same_argmax`` (fraction), and throughputs ``dense_px_per_s``, ``patch_px_per_s``,
        ``speedup`` (dense / per patch).
    """
    model = model.eval()
    c, h, w = image.shape
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(0, h, n_pixels), rng.integers(0, w, n_pixels)
    t0 = time.perf_counter()
    dense = predict_dense(model, torch.from_numpy(np.ascontiguousarray(image)),
                          border_mode="reflect", tile=tile)[0].numpy()
    t_dense = time.perf_counter() - t0
    centres = PatchCentres(np.zeros(n_pixels, np.int64), rows, cols, np.zeros(n_pixels),
                           np.zeros(n_pixels, np.int64))
    patches = torch.from_numpy(extract_patches([image], centres, patch_size=model.patch_size))
    param = next(model.parameters())
    out = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for b in range(0, n_pixels, batch):
            logits = model(patches[b:b + batch].to(param.device, param.dtype))
            out.append(torch.softmax(logits.float(), 1)[:, :, 0, 0].cpu())
    t_patch = time.perf_counter() - t0
    per_patch = torch.cat(out).numpy()
    at = dense[:, rows, cols].T
    dense_rate = h * w / t_dense
    patch_rate = n_pixels / t_patch
    return {"pixels": np.stack([rows, cols], 1), "dense": at, "patch": per_patch,
            "max_abs_diff": float(np.abs(at - per_patch).max()),
            "same_argmax": float((at.argmax(1) == per_patch.argmax(1)).mean()),
            "dense_px_per_s": dense_rate, "patch_px_per_s": patch_rate,
            "speedup": dense_rate / patch_rate}


# ----------------------------------------------------------------------------- architecture

def architecture_table(model: nn.Module) -> pd.DataFrame:
    """Layer by layer: output side, receptive field, parameters, dense cost per pixel.

    The output side is for one patch; the dense cost counts multiply-adds per output pixel
    (stride 1: each layer runs once per pixel). The receptive field grows by ``k - 1`` per
    valid k x k layer, so after the four conv/pool pairs and the fc1 kernel it equals the
    patch side.
    """
    side, rf = model.patch_size, 1
    rows = []

    def add(name: str, mod: nn.Module, k: int) -> None:
        nonlocal side, rf
        side -= k - 1
        rf += k - 1
        params = sum(p.numel() for p in mod.parameters())
        macs = 0
        if isinstance(mod, nn.Conv2d):
            macs = mod.in_channels * mod.out_channels * k * k
        rows.append({"layer": name, "kernel": f"{k}x{k}",
                     "channels": getattr(mod, "out_channels", None) or rows[-1]["channels"],
                     "output side (one patch)": side, "receptive field": rf,
                     "parameters": params, "dense MACs / pixel": macs})

    n_conv = 0
    for mod in model.features:
        if isinstance(mod, nn.Conv2d):
            n_conv += 1
            add(f"conv{n_conv}", mod, mod.kernel_size[0])
        elif isinstance(mod, nn.MaxPool2d):
            k = mod.kernel_size if isinstance(mod.kernel_size, int) else mod.kernel_size[0]
            add(f"pool{n_conv}", mod, k)
    add("fc1", model.fc1, model.fc1.kernel_size[0])
    add("fc2", model.fc2, 1)
    add("out", model.out, 1)
    bn = sum(p.numel() for m in model.features if isinstance(m, nn.BatchNorm2d)
             for p in m.parameters())
    df = pd.DataFrame(rows).set_index("layer")
    df.attrs["batchnorm_parameters"] = bn
    return df


def coverage_on_scene(maps: Mapping[str, np.ndarray], kind: str = "mean_class_std",
                      targets: Sequence[float] = (0.975, 0.95, 0.90)) -> dict[float, float]:
    """Coverage at target OAs on one scene's kept maps (the paper's single-tile reading).

    Uses the eroded evaluation pixels, as :func:`aerialseg.evaluation.evaluate_model` does
    for the whole validation set.
    """
    truth, pred = maps["truth"], maps["pred"]
    mask = maps["eval_mask"] & (truth != IGNORE_INDEX) & (pred != IGNORE_INDEX)
    tc = ThresholdCurve()
    tc.update(np.nan_to_num(maps[kind]), pred == truth, mask)
    return tc.coverage_at_accuracy(tuple(targets))
