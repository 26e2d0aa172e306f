"""Wang & Xie 2020: CSE-UNet, its Table 1 ablation rows, and two U-Net baselines.

Methods (methods.md §7):
- ``unet_plain``, ``unet_dual_path``, ``unet_rfb``, ``cse_unet``: the four rows of the
  paper's ablation (U-Net; + dual-path encoder; + RFB skips; both = CSE-UNet);
- ``smp_unet_r34``: an smp U-Net with a ResNet-34 encoder trained from scratch;
- ``cse_unet_mazur``: Mazur's (2026) layout of CSE-UNet (parallel RFB branches, auxiliary
  path fed from the fused features, Dropout2d 0.2) under the paper's training.

All train as the paper states: SGD, momentum 0.99, lr 1e-3, weight decay 5e-4, batch 4,
random crops with random scaling 0.5-2 and flips; the poly schedule is reconstructed. The
CPU profiles shrink the widths (``base_width``), crops and training length; ``full`` uses
the paper's settings (widths 64..1024, 256 px crops, 400 epochs of the non-overlapping
crops of the training tiles).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from aerialseg.config import MethodSpec
from aerialseg.models.cse_unet import MAZUR_2026
from aerialseg.runs import RunContext
from aerialseg.training import Callback


def paper_epoch(ctx: RunContext) -> list[Callback]:
    """Setup hook: with ``samples_per_epoch=None`` an epoch is the paper's epoch.

    That is, as many random crops as the training tiles hold non-overlapping ``crop_size``
    crops (random crops stand in for the paper's fixed ones). The random-crop sampler
    would otherwise draw a fixed 64 crops per epoch. Returns no callbacks; only the epoch
    length changes.
    """
    t = ctx.cfg.train
    if t.samples_per_epoch is None and t.sampler == "random_crop":
        n = non_overlapping_crops([s.labels.shape for s in ctx.data.train], t.crop_size)
        ctx.dataset._len = n  # type: ignore[attr-defined]  # no public setter in patches.py
    return []


def non_overlapping_crops(shapes: Iterable[Sequence[int]], size: int) -> int:
    """Number of non-overlapping ``size`` x ``size`` crops in scenes of these shapes."""
    if size < 1:
        raise ValueError(f"crop size must be >= 1, got {size}")
    return max(1, sum((int(h) // size) * (int(w) // size) for h, w in shapes))



ABLATION = ("unet_plain", "unet_dual_path", "unet_rfb", "cse_unet")
"""Our methods in the order of the paper's Table 1."""

BASELINE = "smp_unet_r34"

# The paper's training (§3.2); "poly" is reconstructed. D4 flips/rotations stand in for
# the paper's horizontal flip (the sampler offers D4 or nothing).
_TRAIN = {"optimizer": "sgd", "lr": 1e-3, "momentum": 0.99, "weight_decay": 5e-4,
          "batch_size": 4, "schedule": "poly", "poly_power": 0.9, "sampler": "random_crop",
          "crop_size": 256, "scale_range": (0.5, 2.0), "dihedral_aug": True, "epochs": 400,
          "samples_per_epoch": None}

_ARCH = {"base_width": 64, "depth": 4, "dropout2d": 0.0}
_AUX = {"aux_kernels": (7, 5, 3, 2), "aux_mode": "chain"}
_RFB = {"rfb_dilations": (7, 5, 3, 1), "rfb_stack": (3, 2, 1, 1),
        "rfb_stack_kernels": (3, 3, 3, 1), "rfb_mode": "sequential"}

# The CPU and GPU profiles: narrow U-Nets on 128 px crops with SGD at a higher rate than
# the paper's (lr 0.03, momentum 0.9: with the paper's 1e-3 / 0.99 no variant learned cars
# in 600 steps), grid crops in their eight flips and rotations, and median-frequency
# balanced cross-entropy, so that every variant learns the rare class within the budget
# (with plain CE the U-Net predicted no car before about 1000 steps). The ablation compares
# the architectures under one training; ``full`` is the paper's (CE, SGD 1e-3, 400 epochs).
_UNET_CPU = {"base_width": 8, "crop_size": 128, "batch_size": 8, "sampler": "grid",
             "scale_range": None, "lr": 0.03, "momentum": 0.9, "loss": "ce_mfb"}
_SMP_CPU = {k: v for k, v in _UNET_CPU.items() if k != "base_width"}
_UNET_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {**_UNET_CPU, "epochs": 1, "samples_per_epoch": 4, "crop_size": 64},
    # 480 steps: about 110-160 s per variant on one core, converged
    "default": {**_UNET_CPU, "epochs": 30, "samples_per_epoch": 128},
    "gpu": {**_UNET_CPU, "base_width": 16, "crop_size": 256, "epochs": 30,
            "samples_per_epoch": 480},
    "full": {},
}
_SMP_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {**_SMP_CPU, "epochs": 1, "samples_per_epoch": 4, "crop_size": 64},
    "default": {**_SMP_CPU, "epochs": 30, "samples_per_epoch": 128},
    "gpu": {**_SMP_CPU, "crop_size": 256, "epochs": 30, "samples_per_epoch": 480},
    "full": {},
}
MEASURED: dict[str, Any] = {
    # CE at the paper's lr 1e-3 / momentum 0.99 (else the default profile): no variant
    # predicted a single car pixel within this many steps
    "paper_recipe_steps": 600,
    # plain CE at lr 0.03 / momentum 0.9: the U-Net predicted no car before about this
    # many steps
    "plain_ce_first_car_steps": 1000,
    # the default profile's 480 steps, one CPU thread: seconds per variant (min, max)
    "seconds_per_variant": (110, 170),
}
"""Measurements that chose the CPU profiles' training (by us, on the synthetic data at base
width 8 and 128 px crops; not recomputed by the chapter)."""

SOURCE = "Wang & Xie 2020"
_SETUP = paper_epoch


def _unet_spec(name: str, title: str, label: str, *, rfb: bool, aux: bool,
               extra: dict[str, Any] | None = None) -> MethodSpec:
    params: dict[str, Any] = {**_ARCH, **_TRAIN}
    if name != "unet_plain":
        params |= {"use_rfb": rfb, "use_aux_path": aux}
    if aux:
        params |= _AUX
    if rfb:
        params |= _RFB
    params |= extra or {}
    model_params = tuple(k for k in params if k not in _TRAIN)
    return MethodSpec(name=name, title=title, label=label,
                      model="unet_plain" if name == "unet_plain"
                      else "cse_unet", loss="ce", params=params, model_params=model_params,
                      profiles=_UNET_PROFILES, source=SOURCE, setup=_SETUP)


METHODS: dict[str, MethodSpec] = {
    "unet_plain": _unet_spec("unet_plain", "U-Net (Table 1 baseline)", "U-Net", rfb=False,
                             aux=False),
    "unet_dual_path": _unet_spec("unet_dual_path", "U-Net + dual-path encoder", "U-Net + dual path",
                                 rfb=False, aux=True),
    "unet_rfb": _unet_spec("unet_rfb", "U-Net + RFB skips", "U-Net + RFB skips", rfb=True,
                           aux=False),
    "cse_unet": _unet_spec("cse_unet", "CSE-UNet", "CSE-UNet", rfb=True, aux=True),
    "cse_unet_mazur": _unet_spec("cse_unet_mazur", "CSE-UNet, Mazur's layout", "CSE-UNet (Mazur)",
                                 rfb=True,
                                 aux=True, extra=dict(MAZUR_2026)),
    BASELINE: MethodSpec(
        name=BASELINE, title="smp U-Net, ResNet-34 encoder (from scratch)",
        label="U-Net ResNet-34 (smp)", model="smp_unet",
        loss="ce", params={"encoder": "resnet34", "encoder_weights": None, **_TRAIN},
        model_params=("encoder", "encoder_weights"), profiles=_SMP_PROFILES,
        source="baseline (segmentation_models_pytorch)", setup=_SETUP),
}
