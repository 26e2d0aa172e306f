"""The shared figures follow the book's conventions: width, legible text, grids, display names."""

from __future__ import annotations

import base64

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from aerialseg import plots  # noqa: E402
from aerialseg.data.classes import ISPRS  # noqa: E402

CLASSES = list(ISPRS.names) + ["overall"]
METRICS = ["f1", "iou", "oa", "boundary_f1", "ece", "recall"]


def results(methods=("fcn", "fcn_mfb", "efm_fpn_ctrl", "ens_pb_fcn_fcn_mfb_svm"), seeds=3):
    """A results-like Dataset with every variable the shared figures read."""
    rng = np.random.default_rng(0)
    m, s = len(methods), seeds
    scores = rng.uniform(0.3, 0.95, (m, s, 2, len(CLASSES), len(METRICS)))
    conf = np.linspace(0.05, 0.95, 15)
    rel_c = np.broadcast_to(conf, (m, s, 15)).copy()
    rel_a = np.clip(rel_c - rng.uniform(0, 0.1, (m, s, 15)), 0, 1)
    rel_a[-1] = np.nan  # the SVM ensemble has no probabilities
    tau = np.linspace(0, 1, 21)
    acc = np.broadcast_to(1 - 0.2 * tau, (m, s, 1, 21)).copy()
    crop = rng.integers(0, 6, (m, s, 32, 32)).astype(float)
    unc = rng.random((m, s, 32, 32))
    unc[0] = np.nan
    return xr.Dataset(
        {"scores": (("method", "seed", "protocol", "class", "metric"), scores),
         "reliability_confidence": (("method", "seed", "bin"), rel_c),
         "reliability_accuracy": (("method", "seed", "bin"), rel_a),
         "accuracy": (("method", "seed", "uncertainty", "threshold"), acc),
         "coverage": (("method", "seed", "uncertainty", "threshold"),
                      np.broadcast_to(tau, (m, s, 1, 21)).copy()),
         "pred_crop": (("method", "seed", "y", "x"), crop),
         "uncertainty_crop": (("method", "seed", "y", "x"), unc),
         "truth_crop": (("y", "x"), crop[0, 0])},
        coords={"method": list(methods), "seed": list(range(s)),
                "protocol": ["eroded", "full"], "class": CLASSES, "metric": METRICS,
                "uncertainty": ["mean_class_std"], "threshold": tau,
                "evaluated": ("class", [True] * 5 + [False, True])})


@pytest.fixture(autouse=True)
def _style():
    plots.book_style()
    yield
    plt.close("all")


def _texts(fig):
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]


FIGURES = {
    "per_class_scores": lambda ds: plots.per_class_scores(ds, reported={"fcn": {"car": 40.0}}),
    "metric_dots": lambda ds: plots.metric_dots(ds),
    "coverage_curves": lambda ds: plots.coverage_curves(ds, threshold_panel=True,
                                                        paper={0.9: 80.0}),
    "reliability_diagrams": lambda ds: plots.reliability_diagrams(ds),
    "gallery": lambda ds: plots.gallery(ds, ISPRS),
    "confusion_heatmap": lambda ds: plots.confusion_heatmap(np.eye(6) * 50 + 1, ISPRS.names),
    "training_curves": lambda ds: plots.training_curves(
        {(m, s): [{"epoch": e, "loss": 1 / (e + 1 + s)} for e in range(12)]
         for m in ("fcn", "fcn_mfb") for s in range(3)}),
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_shared_figures_are_legible_at_the_column_width(name):
    fig = FIGURES[name](results())
    assert plots.check_legible(fig) == [], name
    assert fig.get_size_inches()[0] <= plots.BOOK_WIDTH_IN + 1e-6


def test_figures_use_display_names_and_no_ids():
    texts = " ".join(_texts(plots.per_class_scores(results())))
    assert "Control (fine-tune, no EFM)" in texts and "Low vegetation" in texts
    assert "efm_fpn_ctrl" not in texts and "low_vegetation" not in texts


def test_reliability_grid_has_no_empty_panel_and_skips_methods_without_data():
    fig = plots.reliability_diagrams(results())
    assert len(fig.axes) == 3  # the SVM ensemble has no calibration data: no panel
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("FCN\nECE ") and titles[0].endswith(" %")


def test_gallery_wraps_into_rows_of_four_with_a_colour_bar():
    fig = plots.gallery(results(), ISPRS)
    image_axes = [ax for ax in fig.axes if ax.get_images()]
    # truth + 4 predictions, then 3 uncertainty maps (the first method has none) + colour bar
    assert len(image_axes) == 8
    rows: dict[float, int] = {}
    for ax in image_axes:
        y = round(ax.get_position().y0, 2)
        rows[y] = rows.get(y, 0) + 1
    assert sorted(rows.values()) == [1, 3, 4]
    assert any(im.colorbar is not None for ax in fig.axes for im in ax.get_images())


def test_panel_grid_removes_unused_axes():
    fig, axes = plots.panel_grid(6, max_cols=4)
    assert len(axes) == 6 and len(fig.axes) == 6
    assert fig.get_size_inches()[0] == pytest.approx(plots.BOOK_WIDTH_IN)


def test_training_curves_one_legend_entry_per_method():
    fig = FIGURES["training_curves"](None)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["FCN", "FCN-MFB"]


def test_check_legible_flags_a_figure_shrunk_to_the_column():
    fig, ax = plt.subplots(figsize=(20, 3))
    ax.set_title("a wide figure")
    assert plots.check_legible(fig)


def test_show_records_caption_alt_and_name(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display",
                        lambda obj, raw=False, metadata=None: shown.append((obj, metadata)))
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.plot([0, 1])
    plots.show(fig, name="demo-line", caption="A line.", alt="A straight rising line.")
    bundle, meta = shown[0]
    assert base64.b64decode(bundle["image/png"])[:4] == b"\x89PNG"
    assert meta[plots.FIGURE_KEY] == {"caption": "A line.", "alt": "A straight rising line.",
                                      "name": "demo-line"}
    assert 0 < meta["image/png"]["width"] <= 780
    assert not plt.get_fignums()  # closed: no second, uncaptioned copy
    with pytest.raises(ValueError, match="alt text"):
        plots.show(plt.figure(), caption="x", alt="../_images/a.png")
    with pytest.raises(ValueError, match="caption"):
        plots.show(plt.figure(), caption=" ", alt="a line")
    with pytest.raises(ValueError, match="figure name"):
        plots.show(plt.figure(), caption="x", alt="a line", name="03_Bad")


def test_confusion_panel_writes_row_percentages():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    plots.confusion_panel(ax, np.array([[3, 1], [0, 0]]), ["a", "b"])
    assert [t.get_text() for t in ax.texts] == ["75", "25", "0", "0"]  # empty row: zeros
    plt.close(fig)
