"""The U-CE chapter's tables, sentences and figures (aerialseg.papers.uce.analysis / plots)."""

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from aerialseg import plots, stats
from aerialseg.data.classes import ISPRS
from aerialseg.data.registry import DataConfig, SplitData
from aerialseg.display import method_names
from aerialseg.evaluation import Accumulator
from aerialseg.models.registry import build_model
from aerialseg.papers.uce import analysis as UA
from aerialseg.papers.uce import plots as UP
from aerialseg.papers.uce.method import pass_cross_entropy
from aerialseg.papers.uce.reported import CALIBRATION_CLAIMS, CLAIMS, landgraf_effects
from aerialseg.registry import resolve_run
from aerialseg.results import Record, build_results
from aerialseg.runs import stored_location

BANDS = ("ir", "r", "g", "dsm", "ndsm")
METHODS = ("ce_dropout", "uce_a1", "uce_a10")


def cfg(method, profile="smoke", **kw):
    return resolve_run(method, profile=profile, in_bands=BANDS, data={}, **kw)


# --- results of fake models ---------------------------------------------------------------


def _evaluation(scenes, wrong, confidence, rng):
    """A fake model: a fraction ``wrong`` of the pixels called impervious, at a confidence."""
    acc = Accumulator(ISPRS, block_size=16)
    for scene in scenes:
        pred = scene.labels.copy()
        pred[rng.random(pred.shape) < wrong] = 0
        probs = np.full((6, *pred.shape), (1 - confidence) / 5, np.float32)
        np.put_along_axis(probs, pred[None].astype(np.int64), confidence, axis=0)
        acc.add(scene, probs)
    return acc.result()


def fake_results(scenes, spec, seeds=(0, 1, 2), extras=None):
    """{method: (wrong, confidence)} -> a results Dataset; extras: {method: {var: value}}."""
    recs = []
    for i, (m, (wrong, conf)) in enumerate(spec.items()):
        for s in seeds:
            rng = np.random.default_rng(100 * i + s)
            extra = {"converged": 1.0, **(extras or {}).get(m, {})}
            extra = {k: (v(s) if callable(v) else v) for k, v in extra.items()}
            recs.append(Record(m, s, _evaluation(scenes, wrong, conf, rng), extra=extra))
    return build_results(recs, chapter="06_uce", profile="smoke", dataset="synthetic",
                         params={}, device="cpu", hardware="cpu", wall_seconds={})


@pytest.fixture
def scenes(scene_factory):
    return [scene_factory(f"v{i}", size=64, seed=i, split="val") for i in range(2)]


@pytest.fixture
def ds(scenes):
    extras = {"ce_dropout": {"munc": 0.10, "step_s": 0.2, "mc_step_s": 0.0},
              "uce_a1": {"munc": 0.09, "step_s": 0.3, "mc_step_s": 0.1,
                         "train_weight_last_epoch": 1.2},
              "uce_a10": {"munc": lambda s: 0.08 + 0.001 * s, "step_s": 0.3,
                          "mc_step_s": 0.1, "train_weight_first_epoch": 6.0,
                          "train_weight_last_epoch": 2.5}}
    return fake_results(scenes, {"ce_dropout": (0.2, 0.9), "uce_a1": (0.1, 0.9),
                                 "uce_a10": (0.6, 0.99), "pixel_baseline": (0.3, 0.7)},
                        extras=extras)


NAMES = method_names([*METHODS, "pixel_baseline"])


# --- the training-time cross-entropy ------------------------------------------------------


def test_pass_cross_entropy_is_the_mean_over_passes_at_valid_pixels():
    probs = torch.zeros(2, 1, 3, 1, 2)
    probs[0, 0, :, 0, 0] = torch.tensor([0.5, 0.25, 0.25])
    probs[1, 0, :, 0, 0] = torch.tensor([0.25, 0.5, 0.25])
    probs[:, 0, :, 0, 1] = 1 / 3
    label = torch.tensor([[[0, 255]]])
    valid = label != 255
    got = pass_cross_entropy(probs, label, valid)
    assert got.shape == (1,)
    assert float(got[0]) == pytest.approx(-(math.log(0.5) + math.log(0.25)) / 2)


# --- what the chapter trains ----------------------------------------------------------------


def test_recipe_and_methods_tables_describe_the_profiles():
    this = (cfg("ce_dropout", "default"), cfg("uce_a10", "default"))
    full = (cfg("ce_dropout", "full"), cfg("uce_a10", "full"))
    t = UA.recipe_table({"default": this, "full": full})
    assert list(t.columns) == ["default", "full"]
    assert t.loc["Network", "default"].startswith("FCN of chapter 03, widths 16-32-64-128")
    assert t.loc["Network", "full"].startswith("DeepLabV3+ ResNet-18")
    assert t.loc["Optimiser steps", "default"] == "900"
    assert t.loc["MC passes per U-CE step (T)", "full"] == "10"
    assert "decoder 10x" in t.loc["Learning rate", "full"]
    m = UA.methods_table({n: cfg(n) for n in METHODS})
    assert m.loc["uce_a10", "pixel weight (1 + u)^α"] == "1 to 57.7"
    assert m.loc["ce_dropout", "loss"] == "cross-entropy"


def test_sharing_table_finds_the_fcn_run(scene_factory):
    data = SplitData(DataConfig(), [scene_factory(seed=1)], [scene_factory(seed=2, split="val")])
    fcn = cfg("fcn", seed=0)
    run = SimpleNamespace(path=stored_location(cfg("ce_dropout", seed=0), data)[1],
                          reused=True, train_seconds=3.0)
    other = SimpleNamespace(path=Path("different"), reused=False, train_seconds=2.0)
    t = UA.sharing_table({0: run, 1: other}, {0: fcn, 1: fcn}, data)
    assert t["same stored model"].tolist() == [True, False]
    assert t["already in the run store"].tolist() == [True, False]
    note = UA.sharing_note(t)
    assert note.startswith("1 of the CE baseline's 2 runs differ")
    assert "1 of 2 was already in the run store" in note
    t2 = t.iloc[:1]
    assert UA.sharing_note(t2).startswith("The CE baseline is the very model chapter 03")


def test_architecture_cost_times_a_step_of_each_network():
    fcn = build_model("fcn", in_channels=5, num_classes=6, widths=(4, 8, 8, 8),
                      first_stride=2, dropout_p=0.5, dropout_sites=("set3",))
    t = UA.architecture_cost({"a": fcn, "b": fcn}, 5, 6, batch=2, crop=32, steps=1)
    assert list(t.index) == ["a", "b"] and (t["s / step"] > 0).all()
    assert t.loc["a", "× backbone step"] == pytest.approx(1.0)
    assert t.loc["a", "parameters (M)"] == pytest.approx(
        sum(p.numel() for p in fcn.parameters()) / 1e6)


# --- the paper's quantities, ECE, verdicts --------------------------------------------------


def test_paper_quantities_have_an_interval_for_miou_only(ds):
    t = UA.paper_quantities(ds, [*METHODS, "pixel_baseline"])
    assert "[" in t.loc["uce_a1", "mIoU [95 % interval]"]
    assert "±" in t.loc["uce_a1", "ECE (mean ± sd)"]
    assert t.loc["pixel_baseline", "mUnc (mean ± sd)"] == "–"
    assert t.loc["uce_a10", "seeds"] == "3"


def test_paired_seed_differences_of_ece_and_munc(ds):
    d = UA.paired_seed_differences(ds, "ece", "ce_dropout", ["uce_a1", "uce_a10"])
    assert list(d.index) == ["seed 0", "seed 1", "seed 2", "mean", "sd"]
    ece = ds["scores"].sel(protocol="eroded", metric="ece", **{"class": "overall"})
    want = 100 * float(ece.sel({"method": "uce_a10", "seed": 1})
                       - ece.sel({"method": "ce_dropout", "seed": 1}))
    assert d.loc["seed 1", "uce_a10"] == pytest.approx(want)
    m = UA.paired_seed_differences(ds, "munc", "ce_dropout", ["uce_a10"])
    assert m.loc["seed 2", "uce_a10"] == pytest.approx(100 * (0.082 - 0.10))


def test_the_calibration_claim_is_untestable_and_not_registered(ds):
    assert all(c.metric != "ece" for c in CLAIMS)
    (c,) = CALIBRATION_CLAIMS
    assert c.metric == "ece" and c.direction == -1 and c.paper_delta == pytest.approx(-0.6)
    with pytest.raises(KeyError):
        stats.metric_key("ece")
    v = stats.judge(ds, c)
    assert v.verdict == "untestable" and "confusion" in v.reason


def test_readable_verdicts_and_the_summary(ds):
    flags = stats.sanity_flags(ds, pixel_baseline="pixel_baseline")
    assert flags["uce_a10"] and not flags["uce_a1"] and not flags["ce_dropout"]
    claims = [c for c in CLAIMS]
    verdicts = [UA.readable_verdict(stats.judge(ds, c, flags=flags), NAMES) for c in claims]
    assert verdicts[1].verdict == "untestable"
    assert "uce_a10" not in verdicts[1].reason and "pixel_baseline" not in verdicts[1].reason
    assert "below the per-pixel baseline" in verdicts[1].reason
    assert verdicts[0].verdict in ("supported", "inconclusive", "contradicted")
    assert UA.sanity_problems(ds, "uce_a10")[0].startswith("its mean F1")
    paper = landgraf_effects("ResNet-18", 200)
    costs = UA.step_cost_table(ds)
    assert "pixel_baseline" not in costs.index
    assert costs.loc["uce_a10", "× CE step"] == pytest.approx(1.5)
    assert costs.loc["uce_a10", "× its ordinary step"] == pytest.approx(1.5)
    note = UA.pass_cost_note(costs, 3)
    assert "added 0.5 ordinary training steps' time" in note and "less than the 1.0" in note
    text = UA.summary_text(ds, verdicts, flags, paper, names=NAMES, costs=costs,
                           check={"speedup": 1.4}, shares={1: 0.12, 10: 0.4},
                           ece_judgeable=False, dlv3_ratio=8.0, shared_all=True,
                           dataset="synthetic")
    assert "3 seeds" in text and "chapter 03's FCN" in text
    assert "learned less than a per-pixel classifier" in text  # α = 10, weights 6 to 2.5
    assert "6.0 in the first pass" in text
    assert "description without a verdict" in text and "8.0×" in text
    assert "uce_a10" not in text and "pixel_baseline" not in text
    table = UA.effects_beside_paper(ds, verdicts, paper)
    assert table.loc["uce_a10", "Δ mIoU, paper"] == "2.8"
    assert table.loc["uce_a10", "Δ ECE, paper"] == "\u22120.6"


def test_training_note_reports_weights_and_flags(ds):
    hist = {("ce_dropout", 0): [{"epoch": 0, "loss": 0.5}],
            ("uce_a10", 0): [{"epoch": 0, "loss": 9.0, "train_weight": 20.0,
                              "train_ce": 0.9, "train_uncertainty": 0.3}]}
    flags = stats.sanity_flags(ds, pixel_baseline="pixel_baseline")
    note = UA.training_note(ds, hist, flags, names=NAMES)
    assert "weighted a training pixel by 20.00" in note and "0.900" in note
    assert "**U-CE α=10 takes part in no verdict**" in note


def test_weight_share_table():
    w = np.ones((1, 4, 5))
    w[0, 0, 0] = 10.0
    valid = np.ones_like(w, bool)
    wm = {"valid": valid, "weight_1": w, "weight_10": w ** 2}
    t = UA.weight_share_table(wm)
    assert t.loc["α = 1", "largest weight"] == 10.0
    assert t.loc["α = 1", "share of the weight on the top 10 % pixels"] == pytest.approx(11 / 29)
    assert UA.small_number(0.0) == "0" and UA.small_number(4.8e-7) == "4.8 × 10⁻⁷"


# --- figures ----------------------------------------------------------------------------------


def test_figures_are_legible(ds):
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 6, (64, 64))
    maps = {m: {"pred": rng.integers(0, 6, (64, 64)), "uncertainty": rng.random((64, 64)) / 3}
            for m in METHODS}
    figs = [UP.uncertainty_comparison(rng.random((64, 64, 3)), truth, maps, ISPRS)]
    u = rng.random((2, 32, 32)) / 2
    w = (1 + u) ** 10
    w[:, :3] = 0
    figs.append(UP.weight_maps([rng.random((32, 32, 3))] * 2, rng.integers(0, 6, (2, 32, 32)),
                               u, w, ISPRS, alpha=10))
    hist = {(m, s): [{"epoch": e, "loss": 1.0 / (e + 1), "train_ce": 0.9 / (e + 1),
                      "train_uncertainty": 0.2, "train_weight": 5.0} for e in range(3)]
            for m in METHODS for s in (0, 1)}
    figs.append(UP.weighting_curves(hist))
    paper = landgraf_effects("ResNet-18", 200).to_dict(orient="index")
    figs.append(UP.effects_vs_paper(ds, paper))
    for fig in figs:
        assert plots.check_legible(fig) == []
        w_in = fig.get_size_inches()[0]
        assert w_in <= plots.BOOK_WIDTH_IN + 1e-6
        assert max(len(ax.images) for ax in fig.axes) <= 1
    with pytest.raises(ValueError, match="models"):
        UP.uncertainty_comparison(rng.random((8, 8, 3)), truth[:8, :8],
                                  {str(i): maps["ce_dropout"] for i in range(4)}, ISPRS)


def test_effects_figure_tolerates_one_seed(scenes):
    one = fake_results(scenes, {"ce_dropout": (0.2, 0.9), "uce_a1": (0.1, 0.9),
                                "uce_a10": (0.3, 0.9)}, seeds=(0,))
    fig = UP.effects_vs_paper(one, landgraf_effects().to_dict(orient="index"))
    assert plots.check_legible(fig) == []
    assert isinstance(UA.paper_quantities(one), pd.DataFrame)
