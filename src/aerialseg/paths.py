"""Where data, trained runs and results live (overridable by environment variables)."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The checkout this package was installed from (src layout, editable install)."""
    return Path(__file__).resolve().parents[2]


def data_home() -> Path:
    """``$AERIALSEG_DATA`` or ``<repo>/data``: where datasets are looked for."""
    return Path(os.environ.get("AERIALSEG_DATA", repo_root() / "data"))


def runs_dir() -> Path:
    """``$AERIALSEG_RUNS`` or ``<repo>/runs``: the run store of trained models."""
    return Path(os.environ.get("AERIALSEG_RUNS", repo_root() / "runs"))


def results_dir() -> Path:
    """``$AERIALSEG_RESULTS`` or ``<repo>/results``: netCDF results of chapter runs."""
    return Path(os.environ.get("AERIALSEG_RESULTS", repo_root() / "results"))


def shared_data() -> Path:
    """Real sample data beside the checkout (developer machines and CI only)."""
    return Path(os.environ.get("AERIALSEG_SHARED_DATA", repo_root().parent / "shared" / "data"))
