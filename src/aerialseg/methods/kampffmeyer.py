"""Kampffmeyer et al. 2016: FCN and FCN with median-frequency balancing."""

from __future__ import annotations

from aerialseg.config import MethodSpec

_FCN_PROFILES = {
    "smoke": {"epochs": 1, "samples_per_epoch": 8, "batch_size": 4, "crop_size": 128,
              "widths": (8, 16, 32, 64)},
    "default": {"epochs": 12, "samples_per_epoch": 96, "batch_size": 8, "crop_size": 256,
                "widths": (32, 64, 128, 256)},
    "full": {"epochs": 50, "samples_per_epoch": None, "batch_size": 8, "crop_size": 256},
}

METHODS: dict[str, MethodSpec] = {
    "fcn": MethodSpec(
        name="fcn", title="FCN (cross-entropy)", model="fcn", loss="ce",
        params={"widths": (64, 128, 256, 512), "first_stride": 2, "dropout_p": 0.5,
                "dropout_sites": ("set3", "set4"), "upsample": "transposed_bilinear_init",
                "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "poly",
                "batch_size": 8, "epochs": 50, "crop_size": 256, "tile_overlap": 0.5,
                "dihedral_aug": True},
        model_params=("widths", "first_stride", "dropout_p", "dropout_sites", "upsample"),
        profiles=_FCN_PROFILES, source="Kampffmeyer et al. 2016"),
    "fcn_mfb": MethodSpec(
        name="fcn_mfb", title="FCN-MFB (median-frequency balanced CE)", model="fcn",
        loss="ce_mfb",
        params={"widths": (64, 128, 256, 512), "first_stride": 2, "dropout_p": 0.5,
                "dropout_sites": ("set3", "set4"), "upsample": "transposed_bilinear_init",
                "mfb_frequency": "global",
                "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "poly",
                "batch_size": 8, "epochs": 50, "crop_size": 256, "tile_overlap": 0.5,
                "dihedral_aug": True},
        model_params=("widths", "first_stride", "dropout_p", "dropout_sites", "upsample"),
        loss_params=("mfb_frequency",),
        profiles=_FCN_PROFILES, source="Kampffmeyer et al. 2016"),
}


