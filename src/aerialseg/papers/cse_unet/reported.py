"""Numbers Wang & Xie (2020) and Mazur (2026) report for CSE-UNet, as printed.

Transcribed from ``methods.md`` §7 (paper Tables 1-3; Mazur's slides). They are shown beside
ours and never mixed into our results. All values in %; per-class cells are (IoU, F1).
The paper evaluates five classes (clutter dropped) on the validation tiles of the
Kampffmeyer split (Vaihingen areas 11/15/28/30/34; Potsdam 2_12, 3_12, 5_12, 6_12, 7_12);
whether it used the eroded ground truth is not stated.
"""

from __future__ import annotations

import pandas as pd

from aerialseg.config import Claim, PaperResult
from aerialseg.data.classes import ISPRS

ISPRS5 = ISPRS.evaluated_names
"""The five evaluated ISPRS classes."""

TABLE1: dict[str, dict[str, float]] = {
    # Ablation; Potsdam and Vaihingen mIoU / mF1.
    "unet": {"potsdam_miou": 75.88, "potsdam_mf1": 86.09,
             "vaihingen_miou": 63.60, "vaihingen_mf1": 76.96},
    "unet_dual_path": {"potsdam_miou": 75.90, "potsdam_mf1": 86.10,
                       "vaihingen_miou": 67.97, "vaihingen_mf1": 80.39},
    "unet_rfb": {"potsdam_miou": 76.16, "potsdam_mf1": 86.27,
                 "vaihingen_miou": 68.38, "vaihingen_mf1": 80.76},
    "cse_unet": {"potsdam_miou": 76.22, "potsdam_mf1": 86.30,
                 "vaihingen_miou": 68.72, "vaihingen_mf1": 81.04},
}
"""Wang & Xie 2020, Table 1 (ablation)."""

TABLE1_TITLES = {
    "unet": "UNet",
    "unet_dual_path": "UNet + dual-path encoder",
    "unet_rfb": "UNet + RFB skips",
    "cse_unet": "CSE-UNet",
}

ABLATION_ROWS = {
    # our method name -> row of Table 1
    "unet_plain": "unet",
    "unet_dual_path": "unet_dual_path",
    "unet_rfb": "unet_rfb",
    "cse_unet": "cse_unet",
}
"""Which of our methods reproduces which Table 1 row."""


def _row(cells: tuple[tuple[float, float], ...], miou: float, mf1: float,
         oa: float) -> dict[str, object]:
    return {**dict(zip(ISPRS5, cells, strict=True)), "miou": miou, "mf1": mf1, "oa": oa}


TABLE2: dict[str, dict[str, object]] = {
    # Potsdam, per-class (IoU, F1).
    "unet": _row(((78.58, 88.00), (86.14, 92.55), (68.38, 81.22), (66.97, 80.22),
                  (79.33, 88.47)), 75.88, 86.09, 86.11),
    "fcn8s_vgg16": _row(((78.43, 87.91), (86.98, 93.04), (68.76, 81.49), (66.82, 80.11),
                         (79.07, 88.31)), 76.01, 86.17, 86.57),
    "can_r50": _row(((74.09, 85.12), (85.64, 92.26), (69.14, 81.76), (66.17, 79.64),
                     (77.25, 87.17)), 74.46, 85.19, 84.82),
    "cse_unet": _row(((79.40, 88.52), (87.34, 93.24), (68.29, 81.15), (67.60, 80.67),
                      (78.47, 87.94)), 76.22, 86.30, 86.86),
}
"""Wang & Xie 2020, Table 2 (Potsdam)."""

TABLE3: dict[str, dict[str, object]] = {
    # Vaihingen, per-class (IoU, F1).
    "unet": _row(((71.77, 83.57), (78.65, 88.05), (54.26, 70.35), (69.97, 82.33),
                  (43.36, 60.50)), 63.60, 76.96, 81.08),
    "fcn8s_vgg16": _row(((71.81, 83.59), (79.86, 88.80), (55.49, 71.37), (67.37, 80.50),
                         (47.99, 64.86)), 64.50, 77.82, 81.06),
    "can_r50": _row(((72.36, 83.97), (81.21, 89.63), (53.54, 69.74), (69.50, 82.00),
                     (55.51, 71.39)), 66.42, 79.35, 81.56),
    "cse_unet": _row(((74.20, 85.19), (82.74, 90.55), (56.09, 71.87), (72.08, 83.78),
                      (58.51, 73.82)), 68.72, 81.04, 82.89),
}
"""Wang & Xie 2020, Table 3 (Vaihingen)."""

TABLE_MODEL_TITLES = {"unet": "UNet", "fcn8s_vgg16": "FCN-8s (VGG16)", "can_r50": "CAN (R50)",
                      "cse_unet": "CSE-UNet"}

MAZUR_RUNS: dict[str, dict[str, object]] = {
    # Mazur 2026 slides: his own 512 px Potsdam tiles (CSE split), fastai metrics on the
    # validation tiles, 7 labels incl. "undefined". Fractions, not %.
    "U-Net ResNet34, scratch": {"valid_acc": 0.825, "jaccard": 0.633, "note": ""},
    "U-Net ResNet34, ImageNet": {"valid_acc": None, "jaccard": 0.678, "note": ""},
    "CSE-UNet (phase 2)": {"valid_acc": 0.868, "jaccard": 0.671, "note": ""},
    "CSE-UNet (phase 4.1)": {"valid_acc": 0.864, "jaccard": 0.681,
                             "note": "warm restart, 10x lower lr"},
    "CE+Dice and focal variants": {"valid_acc": None, "jaccard": None,
                                   "note": "no better than CE"},
}
"""Mazur 2026 replication runs (fastai ``accuracy`` and ``JaccardCoeffMulti``)."""

MAZUR_PHASE2_IOU = {"impervious": 0.56, "building": 0.66, "low_vegetation": 0.61,
                    "tree": 0.45, "car": 0.20, "clutter": 0.34}
"""Mazur's phase-2 per-class IoU on a 10 % subset of validation (his repo file gives
clutter 0.009 instead, which conflicts)."""

MAZUR_CLUTTER_IOU_REPO = 0.009
"""Clutter IoU of the same phase-2 evaluation in Mazur's repository (the slides say 0.34)."""

MAZUR_LAYOUT = (
    "the stack and the dilated convolution of every RFB skip run in parallel on the skip "
    "features and are concatenated (the paper chains them); the auxiliary path starts from "
    "the input image and each later link takes the fused features of the level before (the "
    "paper's links form a chain of their own, starting from the first level's features); the "
    "level-3 stack is a 1×1 convolution where the paper's is 3×3, and every double "
    "convolution ends in channel dropout (Dropout2d, 0.2)"
)
"""How Mazur's (2026) implementation differs from the paper's layout
(:data:`aerialseg.models.cse_unet.MAZUR_2026`)."""

MAZUR_SETUP = ("fastai fit_one_cycle, lr from the lr-finder (about 1e-4), weight decay 5e-4, "
               "effective batch 16, fp16, Dropout2d 0.2 in every double conv")

MAZUR_NOT_COMPARABLE = (
    "his own 512 px Potsdam tiles (cut with the CSE split), 7 labels including 'undefined', "
    "fastai's JaccardCoeffMulti and accuracy computed over his validation tiles (not one "
    "confusion matrix over the five ISPRS classes with eroded ground truth), a different "
    "optimiser and schedule (fastai's one-cycle), and his own layout of the network"
)
"""Why Mazur's numbers cannot be compared with the paper's or ours."""


def table1() -> pd.DataFrame:
    """Table 1 as a DataFrame indexed by the paper's row titles (%)."""
    df = pd.DataFrame.from_dict(TABLE1, orient="index")
    df.index = [TABLE1_TITLES[k] for k in df.index]
    df.columns = ["Potsdam mIoU", "Potsdam mean F1", "Vaihingen mIoU", "Vaihingen mean F1"]
    return df


def per_class_table(dataset: str = "vaihingen") -> pd.DataFrame:
    """Table 3 (``vaihingen``) or Table 2 (``potsdam``) in the paper's "IoU/F1" layout."""
    tables = {"vaihingen": TABLE3, "potsdam": TABLE2}
    if dataset not in tables:
        raise ValueError(f"dataset must be one of {sorted(tables)}, got {dataset!r}")
    rows = {}
    for key, row in tables[dataset].items():
        cells = {c: f"{row[c][0]:.2f}\u00a0/\u00a0{row[c][1]:.2f}"  # type: ignore[index]
                 for c in ISPRS5}
        cells |= {"mIoU": f"{row['miou']:.2f}", "mean F1": f"{row['mf1']:.2f}",
                  "OA": f"{row['oa']:.2f}"}
        rows[TABLE_MODEL_TITLES[key]] = cells
    return pd.DataFrame.from_dict(rows, orient="index")


def mazur_table() -> pd.DataFrame:
    """Mazur's replication runs (fractions as he reports them)."""
    df = pd.DataFrame.from_dict(MAZUR_RUNS, orient="index")
    df.columns = ["valid accuracy", "Jaccard (multi)", "note"]
    return df


_SOURCE = "Wang & Xie 2020"
_VAIHINGEN = ("ISPRS Vaihingen, validation areas 11/15/28/30/34, 5 classes "
              "(eroded GT not stated)")


def _paper_results() -> list[PaperResult]:
    out = []
    for ours, row in ABLATION_ROWS.items():
        values = {("overall", "iou"): TABLE1[row]["vaihingen_miou"],
                  ("overall", "f1"): TABLE1[row]["vaihingen_mf1"]}
        table = "Table 1"
        if row in TABLE3:  # per-class IoU/F1 and OA only for the rows of Table 3
            t3 = TABLE3[row]
            values |= {(c, m): t3[c][i] for c in ISPRS5  # type: ignore[index]
                       for i, m in enumerate(("iou", "f1"))}
            values[("overall", "oa")] = float(t3["oa"])  # type: ignore[arg-type]
            table = "Tables 1 and 3"
        out.append(PaperResult(ours, f"{_SOURCE}, {table}", _VAIHINGEN, values))
    return out


def _claims() -> list[Claim]:
    base = TABLE1["unet"]["vaihingen_miou"]
    texts = {"unet_dual_path": "the dual-path encoder raises mIoU over the U-Net",
             "unet_rfb": "the RFB skip pathways raise mIoU over the U-Net",
             "cse_unet": "CSE-UNet (both additions) raises mIoU over the U-Net"}
    claims = [Claim(_SOURCE, text, ours, "unet_plain", "overall", "iou",
                    round(TABLE1[ABLATION_ROWS[ours]]["vaihingen_miou"] - base, 2))
              for ours, text in texts.items()]
    car = TABLE3["cse_unet"]["car"][0] - TABLE3["unet"]["car"][0]  # type: ignore[index]
    claims.append(Claim(_SOURCE, "CSE-UNet raises car IoU over the U-Net", "cse_unet",
                        "unet_plain", "car", "iou", round(car, 2)))
    return claims


PAPER_RESULTS = _paper_results()
"""The paper's Vaihingen numbers per method of ours, for the comparison."""

CLAIMS = _claims()
"""The paper's ablation claims (Vaihingen, Table 1; car IoU from Table 3)."""
