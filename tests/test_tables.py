"""The book's table formatter (aerialseg.tables): known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from aerialseg.tables import (
    NA,
    NBSP,
    Table,
    format_cell,
    mean_interval,
    mean_sd,
    percent,
    show_table,
    summary_table,
)


def test_numbers():
    assert percent(0.6904) == "69.0"
    assert percent(float("nan")) == NA
    assert mean_sd(0.9182, 0.0034) == f"91.8{NBSP}±{NBSP}0.3"
    assert mean_sd(0.9182, float("nan")) == "91.8"
    assert mean_interval(0.813, 0.79, 0.831) == f"81.3{NBSP}[79.0,{NBSP}83.1]"
    assert mean_sd(-0.012, 0.001) == f"\u22121.2{NBSP}±{NBSP}0.1"
    assert format_cell(7.86e8) == "786\u202f000\u202f000"  # no scientific notation
    assert format_cell(0.0004) == f"<{NBSP}0.001"
    assert format_cell(True) == "yes" and format_cell(np.bool_(False)) == "no"
    assert format_cell(None) == NA and format_cell("nan") == NA
    assert format_cell(12345) == "12\u202f345"
    assert format_cell("91.82 ± 0.34") == f"91.82{NBSP}±{NBSP}0.34"


def frame(n=3):
    return pd.DataFrame({"oa": np.linspace(0.5, 0.9, n), "ece": [0.031] + [np.nan] * (n - 1),
                         "converged": [True] * n},
                        index=["fcn", "efm_fpn_ctrl", "uce_a10"][:n] if n <= 3 else
                        [f"m{i}" for i in range(n)])


def test_show_table_known_answer():
    t = show_table(frame(), caption="OA and ECE.", percent=True, na="no probabilities")
    shown = t.shown()
    assert list(shown.columns) == ["Method", "OA", "ECE", "Converged"]
    assert shown["Method"].tolist() == ["FCN", "Control (fine-tune, no EFM)", "U-CE α=10"]
    assert shown["OA"].tolist() == ["50.0", "70.0", "90.0"]
    assert shown["ECE"].tolist() == ["3.1", NA, NA]  # ECE in percent like the rest
    assert shown["Converged"].tolist() == ["yes"] * 3
    html = t._repr_html_()
    assert html.index("OA and ECE.") < html.index("<table")  # caption above
    assert "aerialseg-scroll" in html and "– no probabilities." in html
    assert "True" not in html and "nan" not in html.lower().replace("nan<", "")
    # plain data kept for tests
    assert isinstance(t, Table) and t.loc["fcn", "oa"] == pytest.approx(0.5)
    assert isinstance(t.loc[["fcn"]], Table)


def test_every_row_is_shown_and_no_index_column():
    df = pd.DataFrame({"method": [f"m{i}" for i in range(150)], "x": np.arange(150.0)})
    t = show_table(df, caption="Long.")
    html = t._repr_html_()
    assert html.count("<tr>") == 151 and "..." not in html and "…" not in html
    assert list(t.shown().columns) == ["Method", "X"]  # 0..n-1 index dropped
    assert ">0<" not in html.split("</thead>")[1].split("<td")[0]


def test_wide_tables_are_split_and_groups_respected():
    wide = pd.DataFrame(np.random.default_rng(0).random((2, 16)),
                        columns=[f"column {i}" for i in range(16)], index=["fcn", "fcn_mfb"])
    html = show_table(wide, caption="Wide.", percent=True)._repr_html_()
    assert html.count("<table") >= 2 and "(continued)" in html
    assert html.count("FCN-MFB") == html.count("<table")  # row labels repeated
    groups = [("First", ["column 0", "column 1"]), ("Second", ["column 2"])]
    html = show_table(wide, caption="Groups.", split=groups, percent=True)._repr_html_()
    assert "First" in html and "Second" in html and html.count("<table") >= 3
    with pytest.raises(KeyError, match="not in the table"):
        show_table(wide, caption="x", split=[["nope"]])._repr_html_()
    html = show_table(wide, caption="One.", split=None)._repr_html_()
    assert html.count("<table") == 1


def test_summary_table_formats_and_names():
    methods, classes = ["fcn", "fcn_mfb"], ["impervious", "car", "clutter", "overall"]
    metrics = ["f1", "iou", "oa", "boundary_f1", "ece"]
    v = np.full((2, 3, 2, 4, 5), 0.5)
    v[:, :, :, :, 4] = 0.04
    v[1, :, :, 1, 0] = 0.92
    v[0, :, 0, 1, 0] = [0.40, 0.45, 0.50]
    v[1, :, :, 3, 4] = np.nan  # no ECE
    ds = xr.Dataset({"scores": (("method", "seed", "protocol", "class", "metric"), v)},
                    coords={"method": methods, "seed": [0, 1, 2], "protocol": ["eroded", "full"],
                            "class": classes, "metric": metrics,
                            "evaluated": ("class", [True, True, False, True])})
    t = summary_table(ds)
    assert list(t.index) == methods  # ids: chapters may .loc[...] them
    assert list(t.columns) == ["impervious", "car", "mean F1", "mIoU", "OA", "boundary F1",
                               "ECE"]
    assert t.loc["fcn", "car"] == f"45.0{NBSP}±{NBSP}5.0"
    assert t.loc["fcn", "ECE"] == f"4.0{NBSP}±{NBSP}0.0"  # percent, not 0.040
    assert t.loc["fcn_mfb", "ECE"] == NA
    html = t._repr_html_()
    assert "FCN-MFB" in html and "Impervious surfaces" in html and "Boundary F1" in html
    assert "F1 per class (%)" in html and "Overall (%)" in html
    assert "mean ± standard deviation over seeds" in html and "– not computed" in html
