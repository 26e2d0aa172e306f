"""Chapters 02/03 helpers: dense training equivalence, step timing, tables and figures."""

import numpy as np
import pytest
import torch

from aerialseg import plots, stats
from aerialseg.data.classes import DUBAI, ISPRS
from aerialseg.evaluation import Accumulator
from aerialseg.models.registry import build_model
from aerialseg.papers.kampffmeyer import analysis as KA
from aerialseg.papers.kampffmeyer import plots as KP
from aerialseg.papers.kampffmeyer.reported import ISPRS5, KAMPFFMEYER_TABLE1
from aerialseg.registry import resolve_run
from aerialseg.results import Record, build_results

TINY = dict(patch_size=33, conv_widths=(2, 3, 3, 4), fc_width=6)


def tiny_model(seed=0, **kw):
    torch.manual_seed(seed)
    return build_model("patch_cnn", in_channels=3, num_classes=5, **{**TINY, **kw})


def crops_and_centres(seed=1, n=7):
    g = torch.Generator().manual_seed(seed)
    crops = torch.randn(2, 3, 45, 45, generator=g)
    side = 45 - 33 + 1
    centres = torch.stack([torch.randint(0, 2, (n,), generator=g),
                           torch.randint(0, side, (n,), generator=g),
                           torch.randint(0, side, (n,), generator=g)], 1)
    labels = torch.randint(0, 5, (n,), generator=g)
    return crops, centres, labels


def grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {k: p.grad.clone() for k, p in model.named_parameters()}


@pytest.mark.parametrize("fc1_mode", ["direct", "fft"])
def test_dense_centre_loss_gives_the_patch_batch_gradient_in_eval_mode(fc1_mode):
    # batch norm on running statistics, no dropout: the masked dense loss is the patch loss
    model = tiny_model().double()
    model.eval()
    for m in model.modules():  # non-trivial running statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    crops, centres, labels = crops_and_centres()
    crops = crops.double()
    model.fc1.mode = fc1_mode
    dense = KA.dense_centre_loss(model, crops, centres, labels)
    g_dense = grads(model, dense)
    model.fc1.mode = "direct"
    patch = KA.patch_batch_loss(model, crops, centres, labels)
    g_patch = grads(model, patch)
    assert dense.item() == pytest.approx(patch.item(), rel=1e-9)
    for k in g_dense:
        torch.testing.assert_close(g_dense[k], g_patch[k], rtol=1e-6, atol=1e-9)


def test_in_training_mode_batch_norm_statistics_make_the_two_differ():
    # batch statistics over whole crops are not those over the sampled patches
    model = tiny_model(dropout_p=0.0).double().train()
    crops, centres, labels = crops_and_centres()
    crops = crops.double()
    dense = KA.dense_centre_loss(model, crops, centres, labels)
    patch = KA.patch_batch_loss(model, crops, centres, labels)
    assert abs(dense.item() - patch.item()) > 1e-6


def test_centre_patches_cut_the_receptive_field_of_each_output():
    crops, centres, _ = crops_and_centres(n=3)
    p = KA.centre_patches(crops, centres, 33)
    assert p.shape == (3, 3, 33, 33)
    b, r, c = centres[0].tolist()
    torch.testing.assert_close(p[0], crops[b, :, r:r + 33, c:c + 33])


def test_training_step_seconds_times_both_and_leaves_the_model_alone():
    model = tiny_model().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = KA.training_step_seconds(model, in_channels=3, patches=8, crops=2, crop_size=41,
                                   repeats=1)
    assert out["patch_s"] > 0 and out["dense_s"] > 0
    assert out["dense_outputs"] == 2 * 9 * 9 and out["patch_outputs"] == 8
    assert out["ratio"] == pytest.approx(out["dense_s"] / out["patch_s"])
    assert not model.training and model.fc1.mode == "auto"
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])
    with pytest.raises(ValueError, match="smaller than the patch"):
        KA.training_step_seconds(model, in_channels=3, crop_size=20)


def test_settings_table_counts_steps_and_leaves_crops_out_for_patch_runs():
    bands = ("ir", "r", "g", "dsm", "ndsm")
    pb = resolve_run("pb", profile="default", in_bands=bands, data={})
    pb_full = resolve_run("pb", profile="full", in_bands=bands, data={})
    fcn = resolve_run("fcn", profile="default", in_bands=bands, data={})
    df = KA.settings_table({"paper": pb_full, "default": pb})
    assert df.loc["Optimiser steps", "default"] == "600"  # 30 x 640 / 32
    assert df.loc["Optimiser steps", "paper"] == "all samples, each pass"
    assert df.loc["Conv layer widths", "paper"] == "32, 64, 96, 128"
    assert df.loc["Gradient-norm clip", "paper"] == "off"
    assert "Training crop (px)" not in df.index
    smoke = resolve_run("pb", profile="smoke", in_bands=bands, data={})  # epochs of all
    df = KA.settings_table({"smoke": smoke, "paper": pb_full}, samples={"smoke": 120})
    assert df.loc["Optimiser steps", "smoke"] == "5"  # 1 x ceil(120 / 24)
    assert df.loc["Samples per pass", "smoke"] == "all (120)"
    df = KA.settings_table({"fcn": fcn})
    assert df.loc["Optimiser steps", "fcn"] == "900"  # the shared backbone: 30 x 240 / 8
    assert df.loc["Training crop (px)", "fcn"] == "128"
    assert df.loc["Conv set widths", "fcn"] == "16, 32, 64, 128"


def one_hot(pred, c):
    return np.eye(c, dtype=np.float32)[pred].transpose(2, 0, 1)


def fake_results(scenes, spec, classes=ISPRS, seeds=(0, 1, 2), converged=None):
    """{method: fraction of pixels called class 0}: a worse model calls more pixels 0."""
    recs = []
    for i, (m, wrong) in enumerate(spec.items()):
        for s in (seeds if m != "pixel_baseline" else seeds[:1]):
            rng = np.random.default_rng(10 * i + s)
            acc = Accumulator(classes, block_size=16)
            for scene in scenes:
                pred = scene.labels.copy()
                pred[pred >= classes.num_classes] = 0
                pred[rng.random(pred.shape) < wrong] = 0
                acc.add(scene, one_hot(pred, classes.num_classes))
            ok = 1.0 if (converged or {}).get(m, True) else 0.0
            recs.append(Record(m, s, acc.result(), extra={"converged": ok}))
    return build_results(recs, chapter="t", profile="smoke", dataset="synthetic", params={},
                         device="cpu", hardware="cpu", wall_seconds={})


@pytest.fixture
def scenes(scene_factory):
    return [scene_factory(f"v{i}", size=48, seed=i, split="val") for i in range(2)]


def test_sanity_table_reports_convergence_and_the_baseline_gate(scenes):
    ds = fake_results(scenes, {"pixel_baseline": 0.3, "good": 0.05, "bad": 0.6,
                               "slow": 0.05}, converged={"slow": False})
    df = KA.sanity_table(ds)
    assert df.loc["good", "converged"] == "3 of 3" and df.loc["good", "above baseline"]
    assert df.loc["good", "verdicts"] == "may take part"
    assert not df.loc["bad", "above baseline"]
    assert "below the per-pixel baseline (" in df.loc["bad", "verdicts"]
    assert df.loc["slow", "converged"] == "0 of 3" and "not converged" in df.loc[
        "slow", "verdicts"]
    assert df.loc["pixel_baseline", "seeds"] == 1
    assert df.loc["pixel_baseline", "above baseline"] is None
    f1 = ds["scores"].sel({"protocol": "eroded", "method": "good", "metric": "f1",
                           "class": "overall"}).values
    assert df.loc["good", "mean F1"] == pytest.approx(np.mean(f1))
    shown = KA.gates_table(df).shown()
    assert list(shown.columns)[-1] == "Verdicts" and "Mean F1 (%)" in shown.columns
    assert len(shown) == len(df)


def test_beside_paper_puts_the_printed_row_over_our_seed_means(scenes):
    ds = fake_results(scenes, {"pixel_baseline": 0.3, "pb": 0.1})
    df = KA.beside_paper(ds, {"paper": ("paper", "pb"), "ours": ("ours", "pb")},
                         reported=KAMPFFMEYER_TABLE1)
    assert list(df.columns) == list(ISPRS5) + ["mean F1", "OA"]
    assert df.loc["paper", "car"] == KAMPFFMEYER_TABLE1["pb"]["car"]
    assert df.loc["paper", "OA"] == 83.74  # the printed OA is kept (issue 19)
    oa = ds["scores"].sel({"protocol": "eroded", "method": "pb", "metric": "oa",
                           "class": "overall"}).values
    assert df.loc["ours", "OA"] == pytest.approx(100 * oa.mean())
    # a dataset without the paper's classes: NaN, not an error
    dub = KA.beside_paper(ds, {"ours": ("ours", "pb")}, reported=KAMPFFMEYER_TABLE1,
                          classes=("water",))
    assert np.isnan(dub.loc["ours", "water"])


def test_training_summary_applies_the_convergence_rule():
    class Run:
        def __init__(self, losses, reused):
            self.history = [{"epoch": e, "loss": v, "steps": 20} for e, v in enumerate(losses)]
            self.train_seconds = 12.5
            self.reused = reused

    runs = {("fcn", 0): Run([1.0 / (e + 1) for e in range(20)], False),
            ("fcn", 1): Run([0.5] * 20, True)}
    df = KA.training_summary(runs).set_index("seed")
    assert df.loc[0, "steps"] == 400 and not df.loc[0, "converged"]
    assert df.loc[1, "converged"] and df.loc[1, "reused"]
    assert df.loc[1, "training (s)"] == 12.5  # the stored time, also for a reused run
    assert df.loc[0, "loss fall, last tenth"] == pytest.approx(
        stats.convergence(runs[("fcn", 0)].history).relative_decrease)


def test_figures_fit_the_column_and_are_legible():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 6)
    angles = np.where(labels == 4, 45.0, 0.0)
    fig = KP.sample_patches(rng.normal(size=(30, 5, 65, 65)).astype(np.float32), labels,
                            angles, ISPRS, band_names=("ir", "r", "g"))
    assert plots.check_legible(fig) == []
    assert fig.get_size_inches()[0] <= plots.BOOK_WIDTH_IN + 1e-6
    cms = {"FCN": rng.integers(0, 50, (6, 6)), "FCN-MFB": rng.integers(0, 50, (6, 6))}
    fig = KP.confusion_pair(cms, ISPRS.names, evaluated=ISPRS.evaluated)
    assert plots.check_legible(fig) == []
    fig = KP.confusion_pair({"PB": rng.integers(0, 50, (5, 5))}, DUBAI.names)
    assert plots.check_legible(fig) == []
    with pytest.raises(ValueError, match="one or two"):
        KP.confusion_pair({}, DUBAI.names)
    fig = KP.dense_vs_patch_scatter(rng.random((10, 5)), rng.random((10, 5)))
    assert plots.check_legible(fig) == []


def test_interval_text():
    e = stats.Estimate(0.8134, 0.79, 0.8312, 3, 40)
    assert KA.interval_text(e) == "81.3 % (95 % interval 79.0 to 83.1)"
    nan = float("nan")
    assert KA.interval_text(stats.Estimate(0.5, nan, nan, 1, 1)) == "50.0 %"
    assert KA.interval_text(stats.Estimate(nan, nan, nan, 0, 0)) == "not available"


def test_rarest_class_skips_absent_and_unevaluated_classes():
    lab = np.zeros((10, 10), np.int64)
    lab[:2] = 1
    lab[0, :3] = 2
    lab[9, 9] = 5  # clutter: not evaluated
    lab[5, 5] = 255
    names = ISPRS.names
    assert KA.rarest_class([lab], names, ISPRS.evaluated) == "low_vegetation"
    assert KA.rarest_class([np.full((4, 4), 5)], names, ISPRS.evaluated) is None


def test_richest_crop_finds_the_densest_window():
    a = np.zeros((64, 64), np.int64)
    b = np.zeros((64, 64), np.int64)
    b[40:60, 8:20] = 4
    assert KA.richest_crop([a, b], 4, size=32, stride=8) == (1, 32, 0)
    with pytest.raises(ValueError, match="at least"):
        KA.richest_crop([a], 4, size=128)


def test_named_verdicts_put_display_names_in_the_reasons():
    v = stats.Verdict("untestable", 0.0, 0.0, 0.0, 1,
                      "fcn_mfb: below the per-pixel baseline pixel_baseline (9.9 vs 40.6); "
                      "fcn: not converged (seed 0); car is not an evaluated class",
                      method="fcn_mfb", baseline="fcn")
    out, = KA.named_verdicts([v], {"fcn": "FCN", "fcn_mfb": "FCN-MFB",
                                   "pixel_baseline": "Per-pixel baseline"})
    assert out.reason == ("FCN-MFB: below the per-pixel baseline (9.9 vs 40.6); FCN: not "
                          "converged (seed 0); car is not an evaluated class")
    assert out.method == "fcn_mfb" and out.verdict == "untestable"
