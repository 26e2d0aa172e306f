"""Kampffmeyer et al. 2016: the methods ``pb``, ``fcn`` and ``fcn_mfb``.

- ``fcn`` / ``fcn_mfb``: the FCN (:mod:`aerialseg.models.fcn`) with cross-entropy, and with
  median-frequency-balanced cross-entropy.
- ``pb``: the patch-based CNN (:mod:`aerialseg.models.patch_cnn`) with plain cross-entropy
  and its own training set (:func:`build_centre_patches`): class-balanced 65x65 patches
  labelled by their centre pixel, one per car (car-centred, rotated at random angles),
  drawn by :mod:`aerialseg.data.patch_sampling`.

**Where the patch sampler's parameters live.** ``car_rotations`` and ``samples_per_class``
are neither model nor :class:`~aerialseg.config.TrainConfig` parameters, yet they change the
trained weights, so they must be part of the run key. They are declared as *loss*
parameters: the ``ce`` builder ignores unknown keyword arguments, the run store hashes
``loss_kwargs``, and :func:`build_centre_patches` reads them from ``cfg.loss_kwargs``.

Border mode is an inference option, not a training one: one trained ``pb`` is evaluated
with ``border_mode="reflect"`` (every pixel classified, the book's default) and ``"omit"``
(the paper's 32 px unclassified border), see :func:`aerialseg.inference.scene_predictor`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from aerialseg.config import MethodSpec, RunConfig
from aerialseg.data.patch_sampling import PatchCentres, extract_patches, sample_patch_centres
from aerialseg.data.patches import BandStats
from aerialseg.data.registry import SplitData
from aerialseg.profiles import backbone

SOURCE = "Kampffmeyer et al. 2016"

SAMPLER_PARAMS = ("car_rotations", "samples_per_class")
"""Sampler parameters routed through ``loss_params`` (see the module docstring)."""

MATCH_CAR_FALLBACK = 2000
"""Patches per class when ``samples_per_class="match_car"`` but the dataset has no car class
(e.g. Dubai)."""

BORDER_LABELS = {"reflect": "pb", "omit": "pb (omit border)"}
"""Evaluation label of ``pb`` per border mode."""


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
        return extract_patches(self.images, self.centres.take(np.asarray(idx, np.int64)),
                               patch_size=self.patch_size)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        patch = self.patches([int(i)])[0]
        label = torch.full((1, 1), int(self.centres.label[i]), dtype=torch.int64)
        return {"image": torch.from_numpy(patch), "label": label}


def build_centre_patches(cfg: RunConfig, data: SplitData, stats: BandStats) -> CentrePatches:
    """The ``pb`` training set: balanced centre-pixel patches of the normalised scenes.

    Classes that are not evaluated (ISPRS clutter) are never centres when
    ``cfg.train.ignore_unevaluated``. Sampler settings come from ``cfg.loss_kwargs``
    (:data:`SAMPLER_PARAMS`); the seed from ``cfg.train.seed``.
    """
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
    # 600 SGD steps of 32 patches (about 190 s on one core), converged and above the
    # per-pixel baseline; 900 steps at lr 0.01 scored 2 points more for 1.5x the time
    "default": {"conv_widths": (8, 16, 24, 32), "fc_width": 128, "samples_per_class": 2000,
                "car_rotations": 8, "epochs": 30, "batch_size": 32, "samples_per_epoch": 640,
                "lr": 0.02, "grad_clip": 1.0},
    "gpu": {"samples_per_class": 4000, "car_rotations": 8, "epochs": 30, "batch_size": 64,
            "samples_per_epoch": 1920, "lr": 0.02, "grad_clip": 1.0},
    "full": {},
}

PB_METHODS: dict[str, MethodSpec] = {
    "pb": MethodSpec(
        name="pb", title="Patch-based CNN (PB)", label="Patch CNN (PB)", model="patch_cnn",
        loss="ce",
        params={"patch_size": 65, "conv_widths": (32, 64, 96, 128), "conv_kernel": 5,
                "pool_kernel": 3, "fc_width": 128, "dropout_p": 0.5,
                "car_rotations": 8, "samples_per_class": "match_car",
                "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4,
                "schedule": "step", "step_milestones": (0.5, 0.75), "batch_size": 128,
                "epochs": 30, "samples_per_epoch": None},
        model_params=_MODEL_PARAMS, loss_params=SAMPLER_PARAMS, profiles=_PROFILES,
        source=SOURCE,
        samples=build_centre_patches),
}


# the CPU and GPU profiles train the study's shared backbone (this FCN, narrower): the
# loss-comparison chapters' CE baselines are then the same runs
_FCN_PROFILES = {
    "smoke": backbone("smoke", flat=True),
    "default": backbone("default", flat=True),
    "gpu": backbone("gpu", flat=True),
    "full": {"epochs": 50, "samples_per_epoch": None, "batch_size": 8, "crop_size": 256},
}

METHODS: dict[str, MethodSpec] = {
    **PB_METHODS,
    "fcn": MethodSpec(
        name="fcn", title="FCN (cross-entropy)", label="FCN", model="fcn", loss="ce",
        params={"widths": (64, 128, 256, 512), "first_stride": 2, "dropout_p": 0.5,
                "dropout_sites": ("set3", "set4"), "upsample": "transposed_bilinear_init",
                "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "poly",
                "batch_size": 8, "epochs": 50, "crop_size": 256, "tile_overlap": 0.5,
                "dihedral_aug": True},
        model_params=("widths", "first_stride", "dropout_p", "dropout_sites", "upsample"),
        profiles=_FCN_PROFILES, source=SOURCE),
    "fcn_mfb": MethodSpec(
        name="fcn_mfb", title="FCN-MFB (median-frequency balanced CE)", label="FCN-MFB",
        model="fcn",
        loss="ce_mfb",
        params={"widths": (64, 128, 256, 512), "first_stride": 2, "dropout_p": 0.5,
                "dropout_sites": ("set3", "set4"), "upsample": "transposed_bilinear_init",
                "mfb_frequency": "global",
                "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "poly",
                "batch_size": 8, "epochs": 50, "crop_size": 256, "tile_overlap": 0.5,
                "dihedral_aug": True},
        model_params=("widths", "first_stride", "dropout_p", "dropout_sites", "upsample"),
        loss_params=("mfb_frequency",),
        profiles=_FCN_PROFILES, source=SOURCE),
}


