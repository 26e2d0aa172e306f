"""The study's profiles and the defaults every chapter shares.

A profile fills every parameter a chapter leaves at ``None``: ``smoke`` (CI: proves every
code path runs), ``default`` (the committed book on a 2-core CPU), ``gpu`` (the same study
larger, for a short run on one GPU) and ``full`` (the papers' own settings, GPU).
"""

from __future__ import annotations

from typing import Any

PROFILES: tuple[str, ...] = ("smoke", "default", "gpu", "full")

SEEDS: dict[str, tuple[int, ...]] = {
    "smoke": (0,), "default": (0, 1, 2), "gpu": (0, 1, 2), "full": (0, 1, 2)}
"""Seeds a chapter runs when its ``seeds`` parameter is None (a chapter may override)."""


def check_profile(profile: object) -> str:
    """Return ``profile`` or raise a clear error listing the valid ones."""
    name = profile.strip() if isinstance(profile, str) else profile
    if name not in PROFILES:
        raise ValueError(f"unknown profile: profile must be one of "
                         f"{', '.join(map(repr, PROFILES))} (got {profile!r})")
    return name


_FCN_SMALL = {"widths": (16, 32, 64, 128), "first_stride": 2, "dropout_p": 0.5,
              "dropout_sites": ("set3", "set4"), "upsample": "transposed_bilinear_init"}

_BACKBONE_TRAIN = {
    # every TrainConfig field but the seed, so that methods sharing the backbone resolve to
    # identical runs whatever their own defaults (the run store then trains them once)
    "batch_size": 8, "sampler": "grid", "crop_size": 128, "tile_overlap": 0.5,
    "dihedral_aug": True, "scale_range": None, "optimizer": "sgd", "lr": 0.03,
    "momentum": 0.9, "weight_decay": 5e-4, "decoder_lr_mult": 1.0, "schedule": "poly",
    "poly_power": 0.9, "step_milestones": (0.5, 0.75), "grad_clip": None, "ema_decay": None,
    "amp": True, "ignore_unevaluated": True,
}

SHARED_BACKBONE: dict[str, dict[str, Any]] = {
    "smoke": {"model": "fcn", "model_kwargs": {**_FCN_SMALL, "widths": (8, 16, 32, 64)},
              **_BACKBONE_TRAIN, "epochs": 1, "samples_per_epoch": 8, "batch_size": 4},
    # 900 SGD steps of 8 crops of 128 px: about 60 s on one CPU core, converged (the loss
    # falls by less than 2 % over the last tenth) and above the per-pixel baseline
    "default": {"model": "fcn", "model_kwargs": _FCN_SMALL, **_BACKBONE_TRAIN,
                "epochs": 30, "samples_per_epoch": 240},
    "gpu": {"model": "fcn", "model_kwargs": {**_FCN_SMALL, "widths": (32, 64, 128, 256)},
            **_BACKBONE_TRAIN, "batch_size": 16, "crop_size": 256, "epochs": 40,
            "samples_per_epoch": 640},
}
"""The one network the loss-comparison chapters (06 U-CE, 07 EFM, 09 Lossd) train in the
CPU and GPU profiles instead of each paper's own architecture: the study's FCN (chapter 03)
at a small width, with the same training for every method. A chapter's baseline is then the
same runs as chapter 03's FCN where the loss is the same, each method differs from its
baseline only in its loss, and the book fits its time budget. ``full`` trains each paper's
own architecture and recipe. ``model``/``model_kwargs`` replace a method's architecture
(see :meth:`aerialseg.config.MethodSpec.resolve`)."""


def uses_shared_backbone(profile: str) -> bool:
    """True when ``profile`` trains the shared backbone's recipe, not each paper's own."""
    return profile in SHARED_BACKBONE


def backbone(profile: str, *, flat: bool = False, **changes: Any) -> dict[str, Any]:
    """The shared backbone's profile values, with ``changes`` on top.

    ``flat=True`` gives the model's parameters as top-level keys (for a method whose own
    model is the FCN) instead of ``model``/``model_kwargs``.
    """
    values = {k: (dict(v) if isinstance(v, dict) else v)
              for k, v in SHARED_BACKBONE[profile].items()}
    if flat:
        values.pop("model")
        values.update(values.pop("model_kwargs"))
    values.update(changes)
    return values
