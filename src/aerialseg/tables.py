"""Numbers and tables for the reader: seed means and display formatting of results."""

from __future__ import annotations

import numpy as np
import xarray as xr


def seed_mean(ds: xr.Dataset, method: str, metric: str, cls: str = "overall", *,
              protocol: str = "eroded", scale: float = 100.0) -> float:
    """Mean over seeds of one score of ``method`` (``scale`` x, NaN if never computed)."""
    v = ds["scores"].sel({"method": method, "metric": metric, "class": cls,
                          "protocol": protocol}).values.astype(float)
    v = v[np.isfinite(v)]
    return float(scale * v.mean()) if v.size else float("nan")
