"""Kampffmeyer et al. (2016) numbers for ensembles (Table 2) and uncertainty (Fig. 6-7).

Transcribed from ``methods.md`` §3 and §4, as printed; shown beside ours, never mixed in.
"""

from __future__ import annotations

import pandas as pd

from aerialseg.reported import ISPRS5

KAMPFFMEYER_TABLE2: dict[str, dict[str, float]] = {
    # Vaihingen validation areas 11/15/28/30/34, eroded GT, 5 classes; F1 in %; SVM combiner.
    "PB+FCN": dict(zip(ISPRS5, (92.90, 95.86, 83.81, 90.98, 54.94), strict=True))
    | {"mean_f1": 83.70, "oa": 86.84},
    "PB+FCN-MFB": dict(zip(ISPRS5, (92.11, 95.38, 83.92, 91.02, 83.62), strict=True))
    | {"mean_f1": 89.21, "oa": 86.74},
    "FCN+FCN-MFB": dict(zip(ISPRS5, (92.47, 95.71, 83.98, 91.03, 81.52), strict=True))
    | {"mean_f1": 88.94, "oa": 86.98},
    "ALL": dict(zip(ISPRS5, (92.55, 95.77, 83.98, 91.05, 80.61), strict=True))
    | {"mean_f1": 88.79, "oa": 87.03},
}
"""Kampffmeyer et al. 2016, Table 2 (F1 per class, mean F1, OA; %), SVM combination."""

KAMPFFMEYER_TABLE2_RECALL: dict[str, dict[str, float]] = {
    "PB+FCN": dict(zip(ISPRS5, (90.06, 94.04, 76.54, 87.83, 37.89), strict=True)),
    "PB+FCN-MFB": dict(zip(ISPRS5, (88.26, 93.29, 76.82, 87.97, 71.97), strict=True)),
    "FCN+FCN-MFB": dict(zip(ISPRS5, (88.81, 93.85, 76.87, 87.94, 68.91), strict=True)),
    "ALL": dict(zip(ISPRS5, (88.95, 93.92, 76.87, 87.99, 67.61), strict=True)),
}
"""The per-class "Acc" columns of Table 2 (most likely recall)."""

KAMPFFMEYER_FCN_COVERAGE: dict[float, dict[str, float]] = {
    # OA target -> % of pixels kept (all pixels; on the eroded-boundary pixel set)
    0.975: {"all_pixels": 64.85, "eroded": 67.65},
    0.95: {"all_pixels": 75.81, "eroded": 78.27},
    0.90: {"all_pixels": 94.06, "eroded": 94.97},
}
"""FCN coverage at a target OA after rejecting the most uncertain pixels (Figs. 6-7, §5).

Possibly for the area-30 tile alone rather than the whole validation set (``methods.md`` §4).
"""


def kampffmeyer_table2() -> pd.DataFrame:
    """Table 2 as a DataFrame (F1 per class, mean F1, OA; %)."""
    return pd.DataFrame.from_dict(KAMPFFMEYER_TABLE2, orient="index")


def kampffmeyer_coverage() -> pd.DataFrame:
    """The FCN's coverage at 97.5 / 95 / 90 % OA (%), one row per target."""
    df = pd.DataFrame.from_dict(KAMPFFMEYER_FCN_COVERAGE, orient="index")
    df.index = [f"{100 * t:g} %" for t in df.index]
    return df
