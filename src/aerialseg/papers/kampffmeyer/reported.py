"""Numbers Kampffmeyer et al. (2016) report, as printed, and the claims the book judges.

Tables 1 (single networks), 2 (SVM ensembles) and the FCN's coverage at a target accuracy
(Figs. 6-7). They are shown beside ours; never computed from or mixed into our results.
Where a printed value is inconsistent, it is kept as printed and a note says why.
"""

from __future__ import annotations

import pandas as pd

from aerialseg.config import Claim, PaperResult

ISPRS5 = ("impervious", "building", "low_vegetation", "tree", "car")
"""The five evaluated ISPRS classes, in the tables' order."""

KAMPFFMEYER_TABLE1: dict[str, dict[str, float]] = {
    # Vaihingen validation areas 11/15/28/30/34, eroded GT, 5 classes; F1 in %.
    "pb": dict(zip(ISPRS5, (90.45, 95.01, 80.22, 88.39, 77.72), strict=True))
    | {"mean_f1": 86.36, "oa": 83.74},
    "fcn": dict(zip(ISPRS5, (92.77, 95.81, 83.96, 90.81, 43.03), strict=True))
    | {"mean_f1": 86.36, "oa": 86.65},
    "fcn_mfb": dict(zip(ISPRS5, (91.16, 95.30, 84.36, 90.79, 92.57), strict=True))
    | {"mean_f1": 90.84, "oa": 86.48},
}
"""Kampffmeyer et al. 2016, Table 1 (F1 per class, mean F1, OA; %)."""

KAMPFFMEYER_TABLE1_RECALL: dict[str, dict[str, float]] = {
    # the per-class "Acc" column, most likely recall (producer's accuracy)
    "pb": dict(zip(ISPRS5, (86.47, 92.23, 71.98, 83.74, 64.34), strict=True)),
    "fcn": dict(zip(ISPRS5, (89.96, 94.10, 76.86, 87.39, 27.42), strict=True)),
    "fcn_mfb": dict(zip(ISPRS5, (86.14, 93.37, 77.80, 87.39, 86.61), strict=True)),
}

KAMPFFMEYER_NOTES = {
    "fcn": "printed mean F1 86.36 is a typo: the mean of the five printed F1 values is 81.28",
    "fcn_mfb": "car F1 92.57 with recall 86.61 implies ~99.4 % precision, at odds with the "
               "text; treat as doubtful",
    "pb": "OA 83.74 is consistent with the per-class accuracies weighted by Vaihingen's "
          "class shares (about 84 %)",
}


def kampffmeyer_table1(methods: tuple[str, ...] = ("fcn", "fcn_mfb")) -> pd.DataFrame:
    """Table 1 rows for ``methods`` as a DataFrame (F1 per class, mean F1, OA; %)."""
    rows = {m: KAMPFFMEYER_TABLE1[m] for m in methods}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df["note"] = [KAMPFFMEYER_NOTES.get(m, "") for m in methods]
    return df


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


_VAIHINGEN = "ISPRS Vaihingen, validation areas 11/15/28/30/34, eroded GT, 5 classes"

PAPER_RESULTS: tuple[PaperResult, ...] = tuple(
    PaperResult(m, "Kampffmeyer et al. 2016, Table 1",
                _VAIHINGEN + (", 32 px border unclassified" if m == "pb" else ""),
                {**{(c, "f1"): KAMPFFMEYER_TABLE1[m][c] for c in ISPRS5},
                 **{(c, "recall"): KAMPFFMEYER_TABLE1_RECALL[m][c] for c in ISPRS5},
                 # the FCN's printed mean F1 is a typo: use the mean of its printed F1 values
                 ("overall", "f1"): round(sum(KAMPFFMEYER_TABLE1[m][c] for c in ISPRS5) / 5, 2),
                 ("overall", "oa"): KAMPFFMEYER_TABLE1[m]["oa"]})
    for m in ("pb", "fcn", "fcn_mfb")
)
"""Kampffmeyer et al.'s numbers beside ours in the comparison."""

ENSEMBLE_ALL_SVM = "ens_pb_fcn_fcn_mfb_svm"
"""Our method id of the paper's best ensemble: PB + FCN + FCN-MFB combined by the SVM."""

_K = "Kampffmeyer et al. 2016"
CLAIMS: tuple[Claim, ...] = (
    Claim(_K, "median-frequency balancing raises car F1", "fcn_mfb", "fcn", "car", "f1",
          round(92.57 - 43.03, 2), chapter="03_fcn_mfb"),
    Claim(_K, "median-frequency balancing raises car recall", "fcn_mfb", "fcn", "car",
          "recall", round(86.61 - 27.42, 2), chapter="03_fcn_mfb"),
) + tuple(
    Claim(_K, f"the SVM ensemble of all three networks beats {name} in OA", ENSEMBLE_ALL_SVM,
          member, "overall", "oa", round(87.03 - KAMPFFMEYER_TABLE1[member]["oa"], 2),
          chapter="05_ensembles")
    for member, name in (("pb", "PB"), ("fcn", "FCN"), ("fcn_mfb", "FCN-MFB"))
)
"""Kampffmeyer et al.'s claims, judged by the comparison."""


def kampffmeyer_table2() -> pd.DataFrame:
    """Table 2 as a DataFrame (F1 per class, mean F1, OA; %)."""
    return pd.DataFrame.from_dict(KAMPFFMEYER_TABLE2, orient="index")


def kampffmeyer_coverage() -> pd.DataFrame:
    """The FCN's coverage at 97.5 / 95 / 90 % OA (%), one row per target."""
    df = pd.DataFrame.from_dict(KAMPFFMEYER_FCN_COVERAGE, orient="index")
    df.index = [f"{100 * t:g} %" for t in df.index]
    return df
