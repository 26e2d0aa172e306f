"""What every executed chapter's results file must show (shared by the chapter tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aerialseg.profiles import SEEDS
from aerialseg.results import OVERALL, read_results, validate_results


def check_results(name: str, path: Path, dataset: str = "synthetic") -> None:
    """The chapter's results file is its own, complete and sane, not merely present.

    Provenance names this chapter, profile and dataset; every method holds every smoke seed;
    scores are finite where the confusion matrices define them and lie in [0, 1] (the
    schema's strict check), and each method's overall mean F1 is a number.
    """
    ds = read_results(path)
    assert (ds.attrs["chapter"], ds.attrs["profile"], ds.attrs["dataset"]) == (
        name, "smoke", dataset)
    for attr in ("git_commit", "hardware", "threads", "wall_seconds", "parameters"):
        assert str(ds.attrs.get(attr, "")).strip(), f"{name}: provenance {attr!r} is empty"
    if "scores" not in ds:  # a chapter that records no method runs (none today)
        return
    methods = [str(m) for m in ds["method"].values]
    assert methods, f"{name}: no method in its results"
    validate_results(ds, strict=True, methods=methods, seeds=SEEDS["smoke"])
    mf1 = ds["scores"].sel({"class": OVERALL, "metric": "f1"}).max("protocol")
    for m in methods:
        v = np.asarray(mf1.sel(method=m).values, float)
        assert np.isfinite(v).all() and ((v >= 0) & (v <= 1)).all(), f"{name}: {m} mF1 {v}"
