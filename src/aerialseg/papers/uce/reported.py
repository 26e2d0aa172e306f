"""Numbers U-CE (Landgraf et al. 2024) reports, as printed (transcribed from ``methods.md`` §5).

Cityscapes validation set (19 classes, 500 images), DeepLabV3+ with MC dropout 0.2, from the
results table on the authors' project website (taken from the paper). They are shown beside
ours, never mixed into our results: a different dataset (street scenes, not aerial tiles),
ImageNet-pretrained encoders and 200 or 500 epochs.
"""

from __future__ import annotations

import pandas as pd

from aerialseg.config import Claim, PaperResult

LANDGRAF_METHODS = {"CE": "ce_dropout", "U-CE α=1": "uce_a1", "U-CE α=10": "uce_a10"}
"""The paper's row names and the matching methods of this library."""

LANDGRAF_CITYSCAPES: dict[tuple[str, str, int], dict[str, float]] = {
    # (loss, encoder, epochs): mIoU, ECE, mUnc (fractions, as printed)
    ("CE", "ResNet-18", 200): {"miou": 0.690, "ece": 0.035, "munc": 0.088},
    ("U-CE α=1", "ResNet-18", 200): {"miou": 0.695, "ece": 0.036, "munc": 0.089},
    ("U-CE α=10", "ResNet-18", 200): {"miou": 0.718, "ece": 0.029, "munc": 0.085},
    ("CE", "ResNet-18", 500): {"miou": 0.719, "ece": 0.025, "munc": 0.088},
    ("U-CE α=1", "ResNet-18", 500): {"miou": 0.726, "ece": 0.027, "munc": 0.088},
    ("U-CE α=10", "ResNet-18", 500): {"miou": 0.735, "ece": 0.018, "munc": 0.084},
    ("CE", "ResNet-101", 200): {"miou": 0.746, "ece": 0.026, "munc": 0.080},
    ("U-CE α=1", "ResNet-101", 200): {"miou": 0.748, "ece": 0.024, "munc": 0.079},
    ("U-CE α=10", "ResNet-101", 200): {"miou": 0.766, "ece": 0.022, "munc": 0.073},
    ("CE", "ResNet-101", 500): {"miou": 0.763, "ece": 0.041, "munc": 0.076},
    ("U-CE α=1", "ResNet-101", 500): {"miou": 0.770, "ece": 0.041, "munc": 0.076},
    ("U-CE α=10", "ResNet-101", 500): {"miou": 0.777, "ece": 0.040, "munc": 0.073},
}
"""Landgraf et al. 2024, Cityscapes val (website results table)."""


def landgraf_table(encoder: str | None = None) -> pd.DataFrame:
    """The Cityscapes table, one row per (loss, encoder), columns per epoch count.

    Args:
        encoder: ``"ResNet-18"`` or ``"ResNet-101"`` to keep one encoder; None for both.
    """
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for (loss, enc, ep), v in LANDGRAF_CITYSCAPES.items():
        if encoder is not None and enc != encoder:
            continue
        row = rows.setdefault((loss, enc), {})
        row[f"mIoU {ep} ep"] = v["miou"]
        row[f"ECE {ep} ep"] = v["ece"]
        row[f"mUnc {ep} ep"] = v["munc"]
    if not rows:
        raise ValueError(f"unknown encoder {encoder!r}; use 'ResNet-18', 'ResNet-101' or None")
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.names = ["loss", "encoder"]
    order = [f"{m} {ep} ep" for ep in (200, 500) for m in ("mIoU", "ECE", "mUnc")]
    return df[order]


def landgraf_effects(encoder: str = "ResNet-18", epochs: int = 200) -> pd.DataFrame:
    """Each U-CE row minus the CE row: mIoU in points, ECE and mUnc as printed units."""
    base = LANDGRAF_CITYSCAPES[("CE", encoder, epochs)]
    rows = {}
    for loss in ("U-CE α=1", "U-CE α=10"):
        v = LANDGRAF_CITYSCAPES[(loss, encoder, epochs)]
        rows[LANDGRAF_METHODS[loss]] = {
            "Δ mIoU (points)": round(100 * (v["miou"] - base["miou"]), 2),
            "Δ ECE": round(v["ece"] - base["ece"], 4),
            "Δ mUnc": round(v["munc"] - base["munc"], 4)}
    return pd.DataFrame.from_dict(rows, orient="index")


def _paper_results() -> list[PaperResult]:
    data = "Cityscapes val (19 classes), DeepLabV3+ ResNet-18, ImageNet weights, 200 epochs"
    return [PaperResult(ours, "Landgraf et al. 2024 (website table)", data,
                        {("overall", "iou"): round(100 * LANDGRAF_CITYSCAPES[
                            (loss, "ResNet-18", 200)]["miou"], 1)})
            for loss, ours in LANDGRAF_METHODS.items()]


def _claims() -> list[Claim]:
    base = LANDGRAF_CITYSCAPES[("CE", "ResNet-18", 200)]["miou"]
    return [Claim("Landgraf et al. 2024", f"U-CE with α = {a} raises mIoU over CE", ours,
                  "ce_dropout", "overall", "iou",
                  round(100 * (LANDGRAF_CITYSCAPES[(loss, "ResNet-18", 200)]["miou"] - base), 2))
            for loss, ours, a in (("U-CE α=1", "uce_a1", 1), ("U-CE α=10", "uce_a10", 10))]


PAPER_RESULTS = _paper_results()
"""U-CE's printed mIoU (%) per method, for ``the comparison``."""

CLAIMS = _claims()
"""U-CE's claims (mIoU over CE, RN18, 200 epochs), for ``the comparison``."""


def _calibration_claims() -> list[Claim]:
    ece = {loss: LANDGRAF_CITYSCAPES[(loss, "ResNet-18", 200)]["ece"]
           for loss in ("CE", "U-CE α=10")}
    return [Claim("Landgraf et al. 2024", "U-CE with α = 10 lowers ECE against CE", "uce_a10",
                  "ce_dropout", "overall", "ece",
                  round(100 * (ece["U-CE α=10"] - ece["CE"]), 2), direction=-1,
                  chapter="06_uce")]


CALIBRATION_CLAIMS = _calibration_claims()
"""U-CE's calibration claim (α = 10 lowers ECE; RN18, 200 epochs: −0.6 points).

Not among :data:`CLAIMS`: ECE is not a function of a confusion matrix, so the study's rule
(:func:`aerialseg.stats.judge`) cannot bootstrap it over spatial blocks and marks it
untestable. The chapter checks that and shows ECE's paired per-seed differences as a
description instead; register it with the claims once :mod:`aerialseg.stats` can judge ECE.
"""
