"""Kampffmeyer et al. 2016: the patch-based CNN (PB), trained on centre-pixel patches.

The method ``pb`` pairs the model ``patch_cnn`` (:mod:`aerialseg.models.patch_cnn`) with
plain cross-entropy and its own training set (:func:`build_centre_patches`): class-balanced
65x65 patches labelled by their centre pixel, one per car (car-centred, rotated at random
angles), drawn by :mod:`aerialseg.data.patch_sampling`.

**Where the sampler's parameters live.** ``car_rotations`` and ``samples_per_class`` are
neither model nor :class:`~aerialseg.config.TrainConfig` parameters, yet they change the
trained weights, so they must be part of the run key. They are declared as *loss*
parameters: the ``ce`` builder ignores unknown keyword arguments, the run store hashes
``loss_kwargs``, and :func:`build_centre_patches` reads them from ``cfg.loss_kwargs``.

Border mode is an inference option, not a training one: one trained ``pb`` is evaluated
with ``predictor("reflect")`` (every pixel classified, the book's default) and with
``predictor("omit")`` (the paper's 32 px unclassified border), recorded under
:data:`BORDER_LABELS`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from aerialseg.config import MethodSpec

if TYPE_CHECKING:  # keep method discovery free of torch imports
    import pandas as pd
    import torch
    from torch import nn

    from aerialseg.config import RunConfig
    from aerialseg.data.patch_sampling import PatchCentres
    from aerialseg.data.patches import BandStats
    from aerialseg.data.registry import SplitData

SAMPLER_PARAMS = ("car_rotations", "samples_per_class")
"""Sampler parameters routed through ``loss_params`` (see the module docstring)."""

MATCH_CAR_FALLBACK = 2000
"""Patches per class when ``samples_per_class="match_car"`` but the dataset has no car class
(e.g. Dubai)."""

BORDER_LABELS = {"reflect": "pb", "omit": "pb (omit border)"}
"""Evaluation label of ``pb`` per border mode."""

_MODEL_PARAMS = ("patch_size", "conv_widths", "conv_kernel", "pool_kernel", "fc_width",
                 "dropout_p")

# CPU profiles keep the 65 px patch (the receptive field is the point of the method) and the
# paper's fc width (fc1 costs little in training: one output per patch), and shrink the
# conv widths, which set the training cost (full-resolution maps over the whole patch), and
# the number of patches. They clip the gradient norm: with He initialisation the first
# logits are large and 50 SGD steps at lr 0.01 otherwise diverged (loss ~18, then a
# constant prediction) in our trials.
_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"conv_widths": (4, 8, 8, 8), "fc_width": 32, "samples_per_class": 24,
              "car_rotations": 2, "epochs": 1, "batch_size": 24, "samples_per_epoch": None,
              "grad_clip": 1.0},
    "default": {"conv_widths": (8, 16, 24, 32), "fc_width": 128, "samples_per_class": 600,
                "car_rotations": 8, "epochs": 6, "batch_size": 32, "samples_per_epoch": 384,
                "grad_clip": 1.0},
    "full": {},
}

METHODS: dict[str, MethodSpec] = {
    "pb": MethodSpec(
        name="pb", title="Patch-based CNN (PB)", model="patch_cnn", loss="ce",
        params={"patch_size": 65, "conv_widths": (32, 64, 96, 128), "conv_kernel": 5,
                "pool_kernel": 3, "fc_width": 128, "dropout_p": 0.5,
                "car_rotations": 8, "samples_per_class": "match_car",
                "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4,
                "schedule": "step", "step_milestones": (0.5, 0.75), "batch_size": 128,
                "epochs": 30, "samples_per_epoch": None},
        model_params=_MODEL_PARAMS, loss_params=SAMPLER_PARAMS, profiles=_PROFILES,
        source="Kampffmeyer et al. 2016",
        samples="aerialseg.methods.patch_cnn:build_centre_patches"),
}


# ----------------------------------------------------------------------------- training data

def car_class_of(classes: Any) -> int | None:
    """Index of an evaluated class named ``car`` (None if the dataset has none)."""
    names = list(classes.names)
    if "car" in names and names.index("car") in classes.evaluated:
        return names.index("car")
    return None


class CentrePatches:
    """Torch-style dataset of centre-labelled patches, cut (and rotated) on demand.

    Cutting on demand keeps memory at the scenes' size: all patches of a Vaihingen-sized
    training set at 65x65x5 float32 would take several GB.

    Items: ``{"image": (C, P, P) float32, "label": (1, 1) int64}``; the (1, 1) label
    matches the model's (B, C, 1, 1) logits for a P x P patch, so the study's segmentation
    losses apply unchanged.
    """

    def __init__(self, images: Sequence[np.ndarray], centres: PatchCentres, *,
                 patch_size: int) -> None:
        self.images = list(images)
        self.centres = centres
        self.patch_size = patch_size

    def __len__(self) -> int:
        return len(self.centres)

    def patches(self, idx: Sequence[int] | np.ndarray) -> np.ndarray:
        """The patches at ``idx``: float32 (n, C, P, P)."""
        from aerialseg.data.patch_sampling import extract_patches

        return extract_patches(self.images, self.centres.take(np.asarray(idx, np.int64)),
                               patch_size=self.patch_size)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        import torch

        patch = self.patches([int(i)])[0]
        label = torch.full((1, 1), int(self.centres.label[i]), dtype=torch.int64)
        return {"image": torch.from_numpy(patch), "label": label}


def build_centre_patches(cfg: RunConfig, data: SplitData, stats: BandStats) -> CentrePatches:
    """The ``pb`` training set: balanced centre-pixel patches of the normalised scenes.

    Classes that are not evaluated (ISPRS clutter) are never centres when
    ``cfg.train.ignore_unevaluated``. Sampler settings come from ``cfg.loss_kwargs``
    (:data:`SAMPLER_PARAMS`); the seed from ``cfg.train.seed``.
    """
    from aerialseg.data.patch_sampling import sample_patch_centres

    t = cfg.train
    classes = data.classes
    patch_size = int(cfg.model_kwargs.get("patch_size", 65))
    spc = cfg.loss_kwargs.get("samples_per_class", "match_car")
    car = car_class_of(classes)
    if spc == "match_car" and car is None:
        warnings.warn(f"dataset classes {classes.names} have no car class to match; using "
                      f"{MATCH_CAR_FALLBACK} patches per class", stacklevel=2)
        spc = MATCH_CAR_FALLBACK
    wanted = list(classes.evaluated) if t.ignore_unevaluated else list(
        range(classes.num_classes))
    labels = [s.training_labels(t.ignore_unevaluated) for s in data.train]
    centres = sample_patch_centres(
        labels, patch_size=patch_size, num_classes=classes.num_classes, classes=wanted,
        car_class=car, car_rotations=int(cfg.loss_kwargs.get("car_rotations", 8)),
        samples_per_class=spc if spc == "match_car" else int(spc),
        rng=np.random.default_rng([t.seed, 65]), border="reflect")
    images = [stats.apply(s) for s in data.train]
    return CentrePatches(images, centres, patch_size=patch_size)


# ----------------------------------------------------------------------------- inference

def predictor(border_mode: str = "reflect") -> Callable[..., dict[str, np.ndarray]]:
    """Scene predictor for ``ch.evaluate(run, predictor=...)`` with the given border mode.

    The canonical implementation is :func:`aerialseg.ensemble.patch_cnn_predict` (dense
    FFT inference, exact halo tiling, MC dropout through the model's trunk/head split);
    this only fixes its ``border_mode`` (``"reflect"`` or ``"omit"``).
    """
    from aerialseg.ensemble import patch_cnn_predict

    if border_mode not in BORDER_LABELS:
        raise ValueError(f"border_mode must be one of {sorted(BORDER_LABELS)}, "
                         f"got {border_mode!r}")
    return partial(patch_cnn_predict, border_mode=border_mode)


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
    import torch

    from aerialseg.data.patch_sampling import PatchCentres, extract_patches
    from aerialseg.models.patch_cnn import predict_dense

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
    import pandas as pd
    from torch import nn

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
