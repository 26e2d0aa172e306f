"""Numbers the source papers report, as printed (transcribed from ``methods.md``).

They are shown beside ours; they are never computed from or mixed into our results. Where a
printed value is inconsistent, the value is kept as printed and a note says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

ISPRS5 = ("impervious", "building", "low_vegetation", "tree", "car")

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
    "pb": "printed OA 83.74 equals its tree Acc; per-class accuracies suggest ~86 %",
}


def kampffmeyer_table1(methods: tuple[str, ...] = ("fcn", "fcn_mfb")) -> pd.DataFrame:
    """Table 1 rows for ``methods`` as a DataFrame (F1 per class, mean F1, OA; %)."""
    rows = {m: KAMPFFMEYER_TABLE1[m] for m in methods}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df["note"] = [KAMPFFMEYER_NOTES.get(m, "") for m in methods]
    return df


@dataclass(frozen=True)
class PaperResult:
    """Numbers a source prints for one of our methods: {(class, metric): value in %}."""

    method: str
    source: str
    data: str
    values: dict[tuple[str, str], float] = field(default_factory=dict)


@dataclass(frozen=True)
class Claim:
    """A claim of a source paper that the comparison checks on our data (method > baseline)."""

    source: str
    text: str
    method: str
    baseline: str
    cls: str
    metric: str
    paper_delta: float | None = None


_VAIHINGEN = "ISPRS Vaihingen, validation areas 11/15/28/30/34, eroded GT, 5 classes"

PAPER_RESULTS: list[PaperResult] = [
    PaperResult(m, "Kampffmeyer et al. 2016, Table 1", _VAIHINGEN,
                {("car", "f1"): KAMPFFMEYER_TABLE1[m]["car"],
                 ("car", "recall"): KAMPFFMEYER_TABLE1_RECALL[m]["car"],
                 # the FCN's printed mean F1 is a typo: use the mean of its printed F1 values
                 ("overall", "f1"): round(sum(KAMPFFMEYER_TABLE1[m][c] for c in ISPRS5) / 5, 2),
                 ("overall", "oa"): KAMPFFMEYER_TABLE1[m]["oa"]})
    for m in ("fcn", "fcn_mfb")
]
"""Every paper number the comparison puts beside ours (chapters register theirs here)."""

CLAIMS: list[Claim] = [
    Claim("Kampffmeyer et al. 2016", "median-frequency balancing raises car F1", "fcn_mfb",
          "fcn", "car", "f1", round(92.57 - 43.03, 2)),
    Claim("Kampffmeyer et al. 2016", "median-frequency balancing raises car recall",
          "fcn_mfb", "fcn", "car", "recall", round(86.61 - 27.42, 2)),
]
"""Claims of the sources, checked on our results by the comparative chapter."""


def _modules() -> list[object]:
    import importlib
    import pkgutil

    import aerialseg

    names = sorted(i.name for i in pkgutil.iter_modules(aerialseg.__path__)
                   if i.name.startswith("reported_"))
    return [importlib.import_module(f"aerialseg.{n}") for n in names]


def all_paper_results() -> list[PaperResult]:
    """Gather ``PAPER_RESULTS`` of this module and of every ``reported_*`` module."""
    out = list(PAPER_RESULTS)
    for m in _modules():
        out += list(getattr(m, "PAPER_RESULTS", []))
    return out


def all_claims() -> list[Claim]:
    """Gather ``CLAIMS`` of this module and of every ``reported_*`` module."""
    out = list(CLAIMS)
    for m in _modules():
        out += list(getattr(m, "CLAIMS", []))
    return out
