"""EFM chapter analyses and figures: gains by the study's rule, the paper's table, texts."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from torch import nn

from aerialseg import plots, stats
from aerialseg.data.classes import ISPRS
from aerialseg.evaluation import Accumulator
from aerialseg.metrics import scores
from aerialseg.papers.efm import analysis as A
from aerialseg.papers.efm import method as M
from aerialseg.papers.efm import plots as P
from aerialseg.papers.efm import reported as R
from aerialseg.registry import resolve_run
from aerialseg.results import Record, build_results

NAMES = list(ISPRS.names)
EV = list(ISPRS.evaluated)
IMP, BUILDING = NAMES.index("impervious"), NAMES.index("building")
BANDS = ("ir", "r", "g", "dsm", "ndsm")

# how badly each stage's fake model misses: a fraction of building pixels called impervious
MISS = {"cedice": 0.6, "base": 0.4, "efm": 0.4, "ctrl": 0.3, "ft": 0.1}


def _evaluation(scenes, miss, rng, block_size=16):
    acc = Accumulator(ISPRS, block_size=block_size)
    for scene in scenes:
        pred = scene.labels.copy()
        hit = pred == BUILDING
        pred[hit & (rng.random(pred.shape) < miss)] = IMP
        acc.add(scene, np.eye(6, dtype=np.float32)[pred].transpose(2, 0, 1))
    return acc.result()


@pytest.fixture
def scenes(scene_factory):
    return [scene_factory(f"s{i}", size=64, seed=i, split="val") for i in range(3)]


@pytest.fixture
def ds(scenes):
    recs = []
    for i, (stage, miss) in enumerate(MISS.items()):
        for s in (0, 1, 2):
            rng = np.random.default_rng(10 * i + s)
            recs.append(Record(M.method_name("fpn", stage), s, _evaluation(scenes, miss, rng)))
    recs.append(Record(A.PIXEL_BASELINE, 0,
                       _evaluation(scenes, 0.9, np.random.default_rng(99))))
    return build_results(recs, chapter="07_efm", profile="smoke", dataset="synthetic",
                         params={}, device="cpu", hardware="cpu", wall_seconds={})


@pytest.fixture(autouse=True)
def _style():
    plots.book_style()
    yield
    plt.close("all")


# --------------------------------------------------------------------------- gains

def test_stage_gains_are_the_study_rule_not_a_seed_spread(ds):
    g = A.stage_gains(ds, ["fpn", "pspnet"], n_resamples=300)
    assert set(g["model"]) == {"fpn"}  # pspnet was not run: no rows, no error
    assert list(dict.fromkeys(g["comparison"])) == [c[0] for c in A.COMPARISONS]
    for key, stage, ref, _label, _paper in A.COMPARISONS:
        for name, metric, protocol in A.GAIN_METRICS:
            row = g[(g["comparison"] == key) & (g["metric"] == name)].iloc[0]
            v = stats.judge(ds, {"method": M.method_name("fpn", stage),
                                 "baseline": M.method_name("fpn", ref), "metric": metric,
                                 "cls": "overall"}, protocol=protocol, n_resamples=300)
            assert row["protocol"] == protocol and row["seeds"] == 3
            assert row["estimate"] == pytest.approx(100 * v.estimate)
            assert (row["low"], row["high"]) == pytest.approx((100 * v.low, 100 * v.high))
    # the fine-tuned model misses fewer buildings than its control: a gain excluding 0
    ft = A.gain(g, "fpn", "ft-ctrl")
    assert 0 < ft["low"] <= ft["estimate"] <= ft["high"]
    assert A.reading(ft) == "a gain"
    # identical miss rates: the interval holds 0
    assert A.reading(A.gain(g, "fpn", "efm-base")) == "no measurable change"
    # the paper's gains sit beside its own two comparisons (over CE + Dice) only
    paper = R.efm_paper_gains("IoU")["fpn"]
    assert A.gain(g, "fpn", "efm-cedice")["paper"] == pytest.approx(paper["efm"])
    assert A.gain(g, "fpn", "ft-cedice")["paper"] == pytest.approx(paper["ft"])
    assert np.isnan(A.gain(g, "fpn", "ft-ctrl")["paper"])
    assert np.isnan(A.gain(g, "fpn", "ft-cedice", "mIoU")["paper"])
    assert np.isnan(A.gain(g, "pspnet", "ft-ctrl")["estimate"])


def test_gains_table_and_phrases(ds):
    g = A.stage_gains(ds, ["fpn"], n_resamples=200)
    t = A.gains_table(g)
    assert list(t.columns) == ["Weighted IoU", "Paper's gain", "mIoU", "Mean F1", "OA"]
    assert list(t.index)[0] == "+EFM − CE + Dice" and len(t) == len(A.COMPARISONS)
    r = A.gain(g, "fpn", "ft-ctrl")
    assert t.loc["+EFM fine-tune − control", "Weighted IoU"] == A.interval_text(
        r["estimate"], r["low"], r["high"])
    assert t.loc["+EFM fine-tune − control", "Paper's gain"] == "–"
    assert t.loc["+EFM − CE + Dice", "Paper's gain"] == "+2.31"
    assert A.interval_text(1.234, -0.51, 2.0) == "+1.2\u00a0[\u22120.5,\u00a02.0]"
    assert A.interval_text(np.nan, 0, 1) == "–"
    assert A.gain_phrase({"estimate": -1.0, "low": -2.0, "high": 0.5}) == (
        "\u22121.0 points (95 % interval \u22122.0 to +0.5)")
    assert A.gain_phrase(A.gain(g, "pspnet", "ft-ctrl")) == "not measured"
    empty = A.gains_table(g.iloc[:0])
    assert empty.empty and "Weighted IoU" in empty.columns


def test_meaning_follows_the_intervals():
    up, zero, down = ({"estimate": e, "low": lo, "high": hi}
                      for e, lo, hi in ((2, 1, 3), (0, -1, 1), (-2, -3, -1)))
    assert "due to the maps" in A.meaning({"ft-ctrl": up, "ctrl-base": zero,
                                           "efm-base": zero})
    text = A.meaning({"ft-ctrl": zero, "ctrl-base": up, "efm-base": down})
    assert "cannot attribute" in text and "on their own" in text and "costs" in text
    assert "worse" in A.meaning({"ft-ctrl": down, "ctrl-base": zero, "efm-base": up})


# --------------------------------------------------------------------------- the paper's table

def test_paper_table_puts_the_paper_baseline_beside_ce_dice(ds):
    t = A.paper_table(ds, ["fpn"], n_resamples=50)
    assert list(t.index) == A.stage_methods(["fpn"]) + [A.PIXEL_BASELINE]
    assert list(t.columns) == ([f"ours {c}" for c in R.EFM_COLUMNS]
                               + [f"paper {c}" for c in R.EFM_COLUMNS])
    # the paper's baseline (CE + Dice) stands beside our CE + Dice stage
    assert t.loc["efm_fpn_cedice", "paper IoU"] == pytest.approx(
        100 * R.EFM_TABLES[("fpn", "base")]["IoU"])
    assert t.loc["efm_fpn_ft", "paper Acc"] == pytest.approx(90.54)
    for m in ("efm_fpn_base", "efm_fpn_ctrl", A.PIXEL_BASELINE):
        assert t.loc[m, [f"paper {c}" for c in R.EFM_COLUMNS]].isna().all()
    # ours: the mean over seeds of the support-weighted scores on the full ground truth
    cms = ds["confusion"].sel({"method": "efm_fpn_ft", "protocol": "full"}).values
    want = np.mean([scores(cm.astype(np.int64), EV)["weighted_iou"] for cm in cms])
    assert t.loc["efm_fpn_ft", "ours IoU"] == pytest.approx(100 * want)
    np.testing.assert_allclose(t["ours Rec"], t["ours Acc"])  # as in the paper's tables


def test_claims_compare_like_with_like():
    by_text = {c.text: c for c in R.CLAIMS}
    assert len(R.CLAIMS) == 8 and R.CLAIM_PROTOCOL == "full"
    for c in R.CLAIMS:
        assert c.method in M.METHODS and c.baseline in M.METHODS
        assert (c.cls, c.metric) == ("overall", "weighted_iou")
    paper = [c for c in R.CLAIMS if c.paper_delta is not None]
    assert {c.baseline for c in paper} == {"efm_fpn_cedice", "efm_pspnet_cedice"}
    ours = [c for c in R.CLAIMS if c.paper_delta is None]
    assert {(c.method, c.baseline) for c in ours} == {
        ("efm_fpn", "efm_fpn_base"), ("efm_fpn_ft", "efm_fpn_ctrl"),
        ("efm_pspnet", "efm_pspnet_base"), ("efm_pspnet_ft", "efm_pspnet_ctrl")}
    assert by_text["+EFM raises weighted IoU over CE + Dice (FPN)"].paper_delta == 2.31
    # the comparison's paper rows: the paper's baseline is our CE + Dice stage
    assert {r.method for r in R.PAPER_RESULTS} == {
        f"efm_{a}{s}" for a in ("fpn", "pspnet") for s in ("_cedice", "", "_ft")}


# --------------------------------------------------------------------------- texts

def test_sanity_sentence_and_readable_reasons(ds):
    assert A.sanity_sentence({"efm_fpn": None, A.PIXEL_BASELINE: None}).startswith(
        "Every stage converged")
    text = A.sanity_sentence({
        "efm_fpn": "not converged (seed 0); below the per-pixel baseline pixel_baseline "
                   "(17.5 vs 59.8)",
        "efm_fpn_ft": "not converged (seeds 0, 1)", A.PIXEL_BASELINE: None})
    assert "efm_fpn" not in text and "pixel_baseline" not in text
    assert "+EFM (17.5 against 59.8)" in text and "+EFM fine-tune" in text
    v = stats.Verdict("untestable", 0.01, -0.01, 0.03, 1,
                      "efm_fpn: not converged (seed 0); efm_fpn_base: below the per-pixel "
                      "baseline pixel_baseline (1.0 vs 2.0); 1 paired seed (the rule needs 3)",
                      method="efm_fpn", baseline="efm_fpn_base", metric="weighted_iou")
    (r,) = A.readable([v])
    assert "efm_fpn" not in r.reason and "pixel_baseline" not in r.reason
    assert r.reason.startswith("+EFM: not converged")
    assert A.brief(v).reason == ("a model has not converged; a model is below the per-pixel "
                                 "baseline; 1 paired seed (the rule needs 3)")
    assert A.count(1, "seed") == "1 seed" and A.count(3, "seed") == "3 seeds"
    assert A.epochs_phrase(1, more=True) == "one more pass"
    assert A.epochs_phrase(30) == "30 epochs"


def test_stage_config_table_and_model_text():
    configs = {m: resolve_run(m, profile="default", in_bands=BANDS, data={})
               for m in A.stage_methods(["fpn"])}
    t = A.stage_config_table(configs, tta=True)
    assert list(t.index) == A.stage_methods(["fpn"])
    assert t.loc["efm_fpn_cedice", "boundary γ"] == 0 and t.loc["efm_fpn_base",
                                                                "top-k fraction"] == 0.5
    assert np.isnan(t.loc["efm_fpn_base", "EFM maps after epochs"])
    assert t.loc["efm_fpn", "EFM maps after epochs"].startswith("10, 15")
    assert t.loc["efm_fpn_ft", "EFM maps after epochs"].startswith("0")
    assert t["flip TTA"].tolist() == [False, False, False, True, True]
    assert np.isnan(t.loc["efm_fpn", "EMA decay"]) and t.loc["efm_fpn_ctrl", "EMA decay"] > 0
    assert A.model_text(configs["efm_fpn"]).startswith("the study's FCN (chapter 03)")
    full = resolve_run("efm_pspnet", profile="full", in_bands=BANDS, data={})
    assert A.model_text(full) == "PSPNet with a randomly initialised ResNet-34 encoder"
    assert A.optimiser_text(full.train) == "AdamW (lr 0.0005, cosine schedule)"
    assert A.optimiser_text(full.train, compact=True) == "AdamW, lr 0.0005, cosine schedule"
    assert A.encoder_name("resnet18") == "ResNet-18" and A.encoder_name("vgg") == "vgg"


def _run(losses, seconds=1.0):
    hist = [{"epoch": e, "loss": v, "steps": 4} for e, v in enumerate(losses)]
    return SimpleNamespace(history=hist, train_seconds=seconds)


def test_training_rows_and_chained_histories():
    flat = [1.0] * 20
    falling = list(np.linspace(2, 1, 20))
    runs = {("fpn", 0): {"cedice": _run(flat), "base": _run(flat), "efm": _run(falling),
                         "ctrl": _run([1.0] * 5), "ft": _run([0.9] * 5)}}
    t = A.training_table(runs)
    assert t["method"].tolist() == A.stage_methods(["fpn"])
    assert t["converged"].tolist() == [True, True, False, True, True]
    assert t.loc[0, "steps"] == 80 and t.loc[3, "epochs"] == 5
    h = A.chained_histories(runs)
    assert [x["epoch"] for x in h[("efm_fpn_ft", 0)]] == list(range(20, 25))
    assert [x["epoch"] for x in h[("efm_fpn_ctrl", 0)]] == list(range(20, 25))
    assert h[("efm_fpn", 0)][0]["epoch"] == 0


def test_step_seconds_measures_a_training_step():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 1))
    s = A.step_seconds(model, in_channels=3, num_classes=5, batch=2, crop=16, steps=2)
    assert 0 < s < 5


# --------------------------------------------------------------------------- figures

def _snaps(k=5, n=24):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, (n, n))
    labels[0, :3] = 255
    return {"epoch": np.arange(k, dtype=float) * 2, "efm": rng.random((k, n, n)),
            "entropy": rng.random((k, n, n)), "error": rng.random((k, n, n)) > 0.5,
            "labels": labels}


def _colour_bars(fig):
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def test_figures_are_legible_with_colour_bars(ds):
    gains = A.stage_gains(ds, ["fpn"], n_resamples=100)
    snaps = _snaps()
    figs = {
        "evolution": (P.efm_evolution(snaps, classes=ISPRS, image=np.zeros((24, 24, 3))), 3),
        "difference": (P.efm_difference(snaps), 4),
        "weights": (P.weight_decomposition({"Ground truth": np.zeros((8, 8, 3)),
                                            "W_b": np.ones((8, 8)), "EFM": np.zeros((8, 8)),
                                            "W": np.ones((8, 8))}, classes=ISPRS), 3),
        "gains": (P.gain_intervals(gains), 0),
    }
    for name, (fig, bars) in figs.items():
        assert plots.check_legible(fig) == [], name
        assert len(_colour_bars(fig)) == bars, name
        width = fig.get_size_inches()[0]
        assert width <= plots.BOOK_WIDTH_IN + 1e-6, name
    # at most four snapshots a row, first and last kept
    evo = figs["evolution"][0]
    titles = [ax.get_title() for ax in evo.axes if ax.get_title()]
    assert "Start" in titles and "After 8 epochs" in titles and len(
        [t for t in titles if t.startswith("After")]) == 3
    # two snapshots also draw (the smoke profile keeps two)
    two = {k: (v[:2] if k != "labels" else v) for k, v in snaps.items()}
    assert plots.check_legible(P.efm_evolution(two, classes=ISPRS)) == []
    # the paper's diamonds only where the paper reports a gain
    g = pd.DataFrame({"model": ["fpn", "pspnet"], "label": ["a", "b"],
                      "metric": ["weighted IoU"] * 2, "estimate": [1.0, -1.0],
                      "low": [0.0, np.nan], "high": [2.0, np.nan], "paper": [np.nan] * 2})
    fig = P.gain_intervals(g)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a", "PSPNet: b"]


def test_claims_table_labels_each_row_with_its_claim():
    claims = R.CLAIMS[:4]
    vs = [stats.Verdict("inconclusive", 0.01, -0.01, 0.02, 3) for _ in claims]
    t = A.claims_table(vs, claims, caption="c")
    shown = t.shown()
    assert shown.columns[0] == "Claim"
    # the table capitalises a row label's first letter
    assert shown["Claim"].tolist() == [c.text[:1].upper() + c.text[1:] for c in claims]
    assert "verdict" in t.columns and len(t) == 4
