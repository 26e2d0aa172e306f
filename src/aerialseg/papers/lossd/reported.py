"""Numbers Ma et al. 2026 report for Lossd, as printed in the abstract of the paper.

Only the abstract's three numbers and their gains are public; the per-class tables, the
model they belong to (probably SFA-Net, from the public configs) and λ_d are not. The
baselines are implied (value minus gain). The data and protocols differ from ours (LoveDA
and UAVid test sets, Potsdam with the GeoSeg split, eroded GT and likely TTA), so these are
shown beside our numbers, never compared value for value.
"""

from __future__ import annotations

import pandas as pd

from aerialseg.config import Claim, PaperResult

LOSSD_ABSTRACT: dict[str, dict[str, float | str]] = {
    "LoveDA": {"metric": "mIoU", "with_lossd": 55.8, "gain": 1.6},
    "UAVid": {"metric": "mIoU", "with_lossd": 70.8, "gain": 0.8},
    "Potsdam": {"metric": "mF1", "with_lossd": 94.1, "gain": 0.7},
}
"""Dataset -> metric (%), the score with Lossd and its gain over the base loss."""

LOSSD_NOTES = {
    "LoveDA": "7 classes, test server",
    "UAVid": "8 classes",
    "Potsdam": "GeoSeg split, 5 classes (clutter excluded), eroded GT, likely TTA",
}


def lossd_abstract_table() -> pd.DataFrame:
    """The abstract's numbers with the implied baselines (%)."""
    rows = {}
    for name, r in LOSSD_ABSTRACT.items():
        with_lossd, gain = float(r["with_lossd"]), float(r["gain"])
        rows[name] = {"metric": "mean F1" if r["metric"] == "mF1" else r["metric"],
                      "base (implied)": round(with_lossd - gain, 1),
                      "with Lossd": with_lossd, "gain": gain, "data": LOSSD_NOTES[name]}
    return pd.DataFrame.from_dict(rows, orient="index")


_POTSDAM = ("ISPRS Potsdam, GeoSeg split, 5 classes (clutter excluded), eroded GT; "
            "network not stated (probably SFA-Net)")

PAPER_RESULTS = [
    PaperResult("base_lossd", "Ma et al. 2026 (abstract)", _POTSDAM,
                {("overall", "f1"): float(LOSSD_ABSTRACT["Potsdam"]["with_lossd"])}),
    PaperResult("base", "Ma et al. 2026 (abstract, implied: score minus gain)", _POTSDAM,
                {("overall", "f1"): round(float(LOSSD_ABSTRACT["Potsdam"]["with_lossd"])
                                          - float(LOSSD_ABSTRACT["Potsdam"]["gain"]), 1)}),
]
"""Lossd's Potsdam mF1 (%), for ``the comparison``."""

CLAIMS = [
    Claim("Ma et al. 2026", "Lossd raises mean F1 over CE + Dice (Potsdam)", "base_lossd",
          "base", "overall", "f1", float(LOSSD_ABSTRACT["Potsdam"]["gain"])),
    Claim("Ma et al. 2026", "Lossd raises mIoU over CE + Dice (LoveDA)", "base_lossd", "base",
          "overall", "iou", float(LOSSD_ABSTRACT["LoveDA"]["gain"])),
]
"""Lossd's claims, for ``the comparison``."""
