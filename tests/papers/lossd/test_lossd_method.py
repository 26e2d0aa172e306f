import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from aerialseg.data.patches import SegmentationPatches, d4
from aerialseg.data.registry import DataConfig, SplitData
from aerialseg.losses.distance import (
    BoundaryObjective,
    KervadecBoundaryLoss,
    LossdLoss,
    LossdObjective,
)
from aerialseg.losses.registry import build_loss
from aerialseg.models.registry import build_model
from aerialseg.papers.lossd import analysis as LA
from aerialseg.papers.lossd import method as m
from aerialseg.registry import resolve_run
from aerialseg.runs import RunContext, get_or_train

BANDS = ("ir", "r", "g", "dsm", "ndsm")


def _labels(size: int = 24, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lab = np.zeros((size, size), np.int64)
    lab[3:11, 4:15] = 1
    lab[14:, 2:9] = 3
    lab[16:19, 15:22] = 4
    lab[rng.random((size, size)) < 0.02] = 255
    return lab


def _cfg(method: str, **kw):
    base = dict(profile="smoke", in_bands=BANDS, data={}, crop_size=32, samples_per_epoch=4,
                batch_size=2, epochs=2)
    base.update(kw)
    return resolve_run(method, **base)


def test_methods_share_model_optimiser_and_base_loss():
    cfgs = {n: _cfg(n, profile="default") for n in ("base", "base_lossd", "base_boundary")}
    assert {c.model for c in cfgs.values()} == {"fcn"}  # the shared CPU backbone
    assert {resolve_run(n, profile="full", in_bands=BANDS, data={}).model
            for n in cfgs} == {"unet_plain"}
    assert len({(str(c.model_kwargs), c.train) for c in cfgs.values()}) == 1
    assert {c.loss for c in cfgs.values()} == {"ce_dice", "lossd", "boundary"}
    assert all(c.loss_kwargs["label_smoothing"] == 0.05 for c in cfgs.values())
    assert cfgs["base_lossd"].loss_kwargs["lossd_weight"] == 1.0
    assert cfgs["base_lossd"].loss_kwargs["lossd_max_iter"] == 50
    assert _cfg("base_lossd").loss_kwargs["lossd_max_iter"] == 10  # smoke cap
    # every profile's alpha schedule reaches its floor at half of training (step = 2/epochs)
    for prof in ("smoke", "default", "full"):
        c = resolve_run("base_boundary", profile=prof, in_bands=BANDS, data={})
        assert c.loss_kwargs["boundary_alpha_step"] == pytest.approx(2 / c.train.epochs)


def test_scene_maps_match_the_losses_own_maps():
    lab = _labels()
    target = torch.from_numpy(lab)
    lossd = build_loss("lossd", num_classes=6, ignore_index=255, lossd_max_iter=7)
    got = m.scene_distance_maps(lossd, lab)
    assert set(got) == {"lossd_full"} and got["lossd_full"].dtype == np.int8
    ref = lossd.lossd.precompute(target)
    np.testing.assert_array_equal(got["lossd_full"], ref["lossd_full"].numpy())
    # the positive map is the positive part of the signed one
    np.testing.assert_array_equal(np.maximum(got["lossd_full"], 0), ref["lossd_pos"].numpy())
    big = build_loss("lossd", num_classes=6, ignore_index=255, lossd_max_iter=200)
    assert m.scene_distance_maps(big, lab)["lossd_full"].dtype == np.int16
    bnd = build_loss("boundary", num_classes=6, ignore_index=255)
    phi = m.scene_distance_maps(bnd, lab)["boundary_dist"]
    ref_phi = KervadecBoundaryLoss(6).precompute(target)["boundary_dist"].numpy()
    np.testing.assert_allclose(phi.astype(np.float32), ref_phi, rtol=1e-3, atol=1e-3)
    assert m.scene_distance_maps(build_loss("ce_dice"), lab) == {}


def _context(method: str, labels: list[np.ndarray], size: int, **kw) -> RunContext:
    cfg = _cfg(method, crop_size=size, **kw)
    images = [np.zeros((5, *lab.shape), np.float32) for lab in labels]
    ds = SegmentationPatches(images, labels, size=size, overlap=0.5)
    loss = build_loss(cfg.loss, num_classes=6, ignore_index=255, **cfg.loss_kwargs)
    model = build_model(cfg.model, in_channels=5, num_classes=6, **cfg.model_kwargs)
    return RunContext(cfg, SplitData(DataConfig()), None, ds, model, loss, torch.device("cpu"))


def test_setup_caches_maps_that_follow_every_d4_variant():
    """One window = the whole scene: each of the 8 variants must carry exactly the maps of
    the transformed labels (distance transforms commute with flips and rotations)."""
    lab = _labels()
    ctx = _context("base_lossd", [lab], size=24)
    callbacks = m.setup(ctx)
    assert len(ctx.dataset.extras["lossd_full"]) == 1
    pos_cb = next(cb for cb in callbacks if isinstance(cb, m.LossdPositiveMap))
    lossd = ctx.loss_fn.lossd
    assert len(ctx.dataset) == 8
    for k in range(8):
        item = ctx.dataset[k]
        ref = lossd.precompute(torch.from_numpy(np.ascontiguousarray(d4(lab, k))))
        torch.testing.assert_close(item["lossd_full"], ref["lossd_full"])
        torch.testing.assert_close(item["label"], torch.from_numpy(d4(lab, k).copy()))
        batch = {k2: v[None] for k2, v in item.items()}
        torch.testing.assert_close(pos_cb.batch_aux(None, batch)["lossd_pos"][0],
                                   ref["lossd_pos"])
    ctx_b = _context("base_boundary", [lab], size=24)
    m.setup(ctx_b)
    for k in (1, 6):
        item = ctx_b.dataset[k]
        ref = KervadecBoundaryLoss(6).precompute(torch.from_numpy(d4(lab, k).copy()))
        torch.testing.assert_close(item["boundary_dist"], ref["boundary_dist"], rtol=1e-3,
                                   atol=1e-3)


def test_cached_maps_give_the_same_loss_and_gradient_as_maps_on_the_crop():
    """Inside a crop whose objects lie wholly inside it, scene maps = crop maps."""
    lab = np.zeros((32, 32), np.int64)
    lab[10:20, 8:18] = 1  # one object, far from every crop edge of the 24 px windows
    ctx = _context("base_lossd", [lab], size=32)
    callbacks = m.setup(ctx)
    item = ctx.dataset[3]
    batch = {k: v[None] for k, v in item.items()}
    aux = {"lossd_full": batch["lossd_full"]}
    for cb in callbacks:
        aux.update(cb.batch_aux(None, batch))
    logits = torch.randn(1, 6, 32, 32, generator=torch.Generator().manual_seed(0),
                         requires_grad=True)
    a = ctx.loss_fn(logits, batch["label"], aux=aux)
    (ga,) = torch.autograd.grad(a, logits)
    b = ctx.loss_fn(logits, batch["label"])
    (gb,) = torch.autograd.grad(b, logits)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ga, gb)


def test_setup_rejects_rescaling():
    ctx = _context("base_lossd", [_labels()], size=24, scale_range=(0.5, 2.0))
    with pytest.raises(ValueError, match="scale_range"):
        m.setup(ctx)


def test_training_records_loss_time_and_precompute(scene_factory):
    data = SplitData(DataConfig(), [scene_factory(seed=i, size=48) for i in range(2)],
                     [scene_factory(seed=9, size=48, split="val")])
    run = get_or_train(_cfg("base_lossd"), data, log=None)
    assert len(run.history) == 2
    assert all(h["loss_ms"] > 0 for h in run.history)
    assert run.history[0]["distance_map_seconds"] > 0
    assert np.isfinite([h["loss"] for h in run.history]).all()


def test_error_cost_table_known_answers():
    df = LA.error_cost_table((1, 3, 10), max_iter=50, size=61, half=12)
    for d in (1, 3, 10):
        want = math.log1p(d) / math.log1p(50)
        for kind in ("miss", "spurious"):
            assert df.loc[d, f"Lossd (log): {kind}"] == pytest.approx(want, rel=1e-4)
            assert df.loc[d, f"Lossd (linear): {kind}"] == pytest.approx(d / 50, rel=1e-4)
            # Kervadec: phi of the taken class minus phi of the true one = d + (d - 1)
            assert df.loc[d, f"boundary loss: {kind}"] == pytest.approx(2 * d - 1, abs=0.05)
    ce = df["cross-entropy: miss"]
    assert ce.max() - ce.min() < 1e-3  # CE charges every wrong pixel the same
    with pytest.raises(ValueError, match="half"):
        LA.error_cost_table((20,), half=10)


def test_lossd_cost_map_sums_to_the_loss():
    lab = _labels()
    pred = lab.copy()
    pred[pred == 255] = 0
    pred[5:8, 6:9] = 0  # a hole in object 1
    pred[20:22, 20:23] = 1  # a blob
    cost = LA.lossd_cost_map(pred, lab, 6, max_iter=9)
    assert (cost[lab == 255] == 0).all() and cost.min() == 0
    assert (cost > 0).sum() == ((pred != lab) & (lab != 255)).sum()
    loss = LossdLoss(6, max_iter=9)
    logits = 10.0 * torch.nn.functional.one_hot(torch.from_numpy(pred), 6).permute(2, 0, 1)[None]
    target = torch.from_numpy(lab)[None]
    _, active = loss.class_losses(logits.float(), target)
    want = float(loss(logits.float(), target)) * int(active.sum()) * int((lab != 255).sum())
    assert cost.sum() == pytest.approx(want, rel=1e-5)
    # classes outside ``evaluated`` are ignored in the truth, as in training
    pred4 = pred.copy()
    pred4[lab == 4] = 0
    assert (LA.lossd_cost_map(pred4, lab, 6, max_iter=9)[lab == 4] > 0).all()
    assert (LA.lossd_cost_map(pred4, lab, 6, max_iter=9, evaluated=(0, 1, 3))[lab == 4]
            == 0).all()


def test_loss_step_cost_table():
    target = torch.from_numpy(_labels(32))[None].repeat(2, 1, 1)
    df = LA.loss_step_cost(target, 6, max_iter=10, repeats=1)
    assert list(df.index) == list(LA.STEP_COST_LABELS)
    assert (df["time per step (ms)"] > 0).all() and df.loc["base", "distance maps"] == "no maps"
    assert df.attrs["batch"] == (2, 6, 32, 32)


def test_objective_weights():
    lam = LA.objective_weights("base_lossd", 4, lossd_warmup_epochs=2)
    assert lam["λ_d"].tolist() == [0.0, 0.5, 1.0, 1.0]
    alpha = LA.objective_weights("base_boundary", 5, boundary_alpha_step=0.25)
    assert alpha["α"].tolist() == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.01])
    assert isinstance(LossdObjective(6), torch.nn.Module)
    assert BoundaryObjective(6).alpha == 1.0
    with pytest.raises(ValueError, match="base_lossd"):
        LA.objective_weights("base", 3)


def test_cost_summary_and_loss_times():
    class Run:
        def __init__(self, ms):
            self.history = [{"seconds": 2.0, "loss_ms": ms, "distance_map_seconds": 0.5},
                            {"seconds": 4.0, "loss_ms": ms + 2}]

    runs = {("base", 0): Run(1.0), ("base_lossd", 0): Run(5.0), ("base_lossd", 1): Run(7.0)}
    for run in runs.values():
        run.history[0]["steps"] = run.history[1]["steps"] = 10
    runs[("base", 0)].cfg = type("Cfg", (), {"loss": "ce_dice"})()
    cost = LA.cost_summary(runs)
    assert cost.loc["base_lossd", "loss forward (ms per step)"] == pytest.approx(7.0)
    assert cost.loc["base", "training step (ms)"] == pytest.approx(300.0)  # 6 s / 20 steps
    assert cost.loc["base_lossd", "distance maps, once (s)"] == pytest.approx(0.5)
    assert np.isnan(cost.loc["base", "distance maps, once (s)"])  # CE + Dice has no maps
    da = LA.loss_time_dataarray(runs)
    assert da.sel({"method": "base_lossd", "seed": 1}) == pytest.approx(8.0)
    assert np.isnan(da.sel({"method": "base", "seed": 1}))


def test_label_batch():
    labs = [_labels(40, 0), _labels(40, 1)]
    b = LA.label_batch(labs, 5, 16)
    assert b.shape == (5, 16, 16) and b.dtype == torch.int64
    np.testing.assert_array_equal(b[0].numpy(), labs[0][:16, :16])
    np.testing.assert_array_equal(b[1].numpy(), labs[1][:16, :16])


def test_reported_numbers():
    from aerialseg.papers.lossd.reported import CLAIMS, PAPER_RESULTS, lossd_abstract_table

    t = lossd_abstract_table()
    assert t.loc["LoveDA", "base (implied)"] == 54.2
    assert t.loc["UAVid", "base (implied)"] == 70.0
    assert t.loc["Potsdam", "base (implied)"] == 93.4
    assert t.loc["Potsdam", "metric"] == "mean F1"
    assert {r.method for r in PAPER_RESULTS} == {"base", "base_lossd"}
    assert {(c.metric, c.paper_delta) for c in CLAIMS} == {("f1", 0.7), ("iou", 1.6)}


# ------------------------------------------------------------------ what is trained


def test_schedule_and_run_tables_describe_the_profile():
    cfgs = {n: _cfg(n, profile="default", crop_size=None, samples_per_epoch=None,
                    batch_size=None, epochs=None) for n in LA.METHODS}
    sched = LA.schedule_table(cfgs)
    lam, share = sched.iloc[0], sched.iloc[1]
    assert (lam == 1.0).all()  # lambda_d constant, no warm-up
    assert share["0 %"] == 0.0 and share["50 %"] == pytest.approx(0.99)  # floor at half
    runs = LA.run_table(cfgs)
    assert list(runs.index) == list(LA.METHODS)
    assert set(runs["network"]) == {"FCN, widths 16 to 128"}
    assert set(runs["steps"]) == {"900"} and set(runs["batch"]) == {"8 crops of 128 px"}
    assert runs.loc["base", "optimiser"].startswith("SGD, lr 0.03")
    full = resolve_run("base", profile="full", in_bands=BANDS, data={})
    assert LA.network_name(full) == "U-Net, width 64"
    assert LA.planned_steps(full.train) == 45 * 128
    assert LA.network_phrase(cfgs["base"]).startswith("the study's shared backbone")
    assert LA.network_phrase(full) == "the U-Net, width 64"


def test_architecture_cost_and_its_sentence():
    fcn = _cfg("base", crop_size=32)
    unet = resolve_run("base", profile="full", in_bands=BANDS, data={}, base_width=8)
    cost = LA.architecture_step_cost({"backbone": fcn, "unet": unet}, num_classes=6, crop=32,
                                     repeats=1)
    assert list(cost.index) == ["backbone", "unet"] and cost.loc["backbone", "relative"] == 1
    assert (cost["time per crop (ms)"] > 0).all()
    assert cost.loc["unet", "parameters (M)"] > cost.loc["backbone", "parameters (M)"]
    fake = pd.DataFrame({"time per crop (ms)": [10.0, 1000.0]}, index=["backbone", "unet"])
    cfg = _cfg("base", profile="default", crop_size=None, samples_per_epoch=None,
               batch_size=None, epochs=None)
    text = LA.network_sentence(fake, cfg, "a CPU", runs=9)
    assert "100 times as long" in text and "900 steps of 8 crops" in text
    assert "about 2.0 hours per run, for 9 runs" in text  # 900 * 8 * 1 s
    assert "trains the U-Net itself" in LA.network_sentence(fake.loc[["unet"]], cfg, "x",
                                                            runs=9)


def test_training_table_applies_the_convergence_rule():
    class Run:
        def __init__(self, losses, reused):
            self.history = [{"loss": v, "steps": 5} for v in losses]
            self.train_seconds, self.reused = 12.0, reused

    flat = [1.0] * 20
    falling = list(np.linspace(2.0, 1.0, 20))
    t = LA.training_table({("base", 0): Run(flat, True), ("base_lossd", 0): Run(falling, False)})
    assert list(t["converged"]) == [True, False] and list(t["steps"]) == [100, 100]
    assert list(t["reused"]) == [True, False] and t.loc[1, "final loss"] == 1.0


# ------------------------------------------------------------------ gains and the summary

CAR, IMP = 4, 0


def _evaluation(scenes, miss, rng):
    from aerialseg.data.classes import ISPRS
    from aerialseg.evaluation import Accumulator

    acc = Accumulator(ISPRS, block_size=16)
    for scene in scenes:
        pred = scene.labels.copy()
        pred[(pred == CAR) & (rng.random(pred.shape) < miss)] = IMP
        pred[pred == 255] = IMP
        acc.add(scene, np.eye(6, dtype=np.float32)[pred].transpose(2, 0, 1))
    return acc.result()


@pytest.fixture
def results(scene_factory):
    """Lossd misses fewer cars than CE + Dice; the boundary loss is CE + Dice's twin."""
    from aerialseg.results import Record, build_results

    scenes = [scene_factory(f"s{i}", size=64, seed=i, split="val") for i in range(3)]
    spec = {"base": 0.6, "base_lossd": 0.05, "base_boundary": 0.6, "pixel_baseline": 0.9}
    recs = []
    for i, (name, miss) in enumerate(spec.items()):
        for s in (0, 1, 2) if name != "pixel_baseline" else (0,):
            ev = _evaluation(scenes, miss, np.random.default_rng(100 * i + s))
            recs.append(Record(name, s, ev, extra={"converged": 1.0}))
    return build_results(recs, chapter="t", profile="smoke", dataset="synthetic", params={},
                         device="cpu", hardware="cpu", wall_seconds={})


def test_gain_verdicts_table_and_readable_reasons(results):
    gains = LA.gain_verdicts(results)
    assert {(g.method, g.cls, g.metric) for g in gains} >= {
        ("base_lossd", "overall", "iou"), ("base_boundary", "car", "f1")}
    by = {(g.method, g.cls, g.metric): g for g in gains}
    assert by[("base_lossd", "car", "f1")].verdict == "supported"
    assert by[("base_lossd", "car", "f1")].low > 0
    assert by[("base_boundary", "car", "f1")].verdict != "supported"
    table = LA.gain_table(gains)
    assert list(table.columns) == ["base_lossd", "base_boundary"]
    assert table.loc["Car F1", "base_lossd"].startswith("+")
    assert table.loc["Car F1", "base_lossd"].endswith("(supported)")
    assert list(table.index[:3]) == ["mIoU", "Mean F1", "OA"]
    flagged = LA.gain_verdicts(results, flags={"base_lossd": "not converged (seed 1)"},
                               per_class=False)
    names = {"base_lossd": "CE + Dice + Lossd", "base": "CE + Dice"}
    v = LA.readable(flagged, names)[0]
    assert v.verdict == "untestable" and v.reason.startswith("CE + Dice + Lossd: not conv")
    reason = LA.readable_reason("base_lossd: below the per-pixel baseline pixel_baseline "
                                "(1.0 vs 2.0); base: x", names)
    assert reason == ("CE + Dice + Lossd: below the per-pixel baseline (1.0 vs 2.0); "
                      "CE + Dice: x")


def test_summary_text_says_effects_verdicts_objects_and_costs(results):
    from aerialseg import stats
    from aerialseg.config import Claim
    from aerialseg.objects import ERRORS

    claims = [Claim("Ma et al. 2026", "Lossd raises car F1", "base_lossd", "base", "car", "f1",
                    0.7)]
    verdicts = [stats.judge(results, c) for c in claims]
    gains = LA.gain_verdicts(results)
    changes = pd.DataFrame([{"method": m, "kind": k, "estimate": -2.0, "low": -4.0,
                             "high": 1.0, "baseline": 10.0, "seeds": 3, "scenes": 3}
                            for m in ("base_lossd", "base_boundary") for k in ERRORS])
    cost = pd.DataFrame({"time per step (ms)": [5.0, 8.0, 30.0, 1.0, 20.0]},
                        index=list(LA.STEP_COST_LABELS))
    flags = stats.sanity_flags(results, pixel_baseline="pixel_baseline")
    text = LA.summary_text(edition="These results come from X.", network="the backbone",
                           verdicts=verdicts, claims=claims, gains=gains, changes=changes,
                           step_cost=cost, flags=flags)
    assert text.startswith("We trained the backbone with three objectives, CE + Dice, "
                           "CE + Dice + Lossd and CE + Dice + boundary loss")
    assert "*Lossd raises car F1* (+0.7 points in the paper) is **supported**" in text
    assert "spurious segments by \u22122.0 (95 % interval \u22124.0 to +1.0; CE + Dice: 10.0)" \
        in text
    assert "took 8 ms with the distance maps cached" in text and "30 ms with the maps" in text
    assert "untestable" not in text.split("supported")[1]  # every model passes the gates
    flags["base"] = "not converged (seed 0)"
    again = LA.summary_text(edition="", network="n", verdicts=[replace(verdicts[0],
                            verdict="untestable", reason="base: not converged (seed 0)")],
                            claims=claims, gains=gains, changes=changes.iloc[:0],
                            step_cost=cost.iloc[:0], flags=flags)
    assert "**untestable** in this edition" in again
    assert "CE + Dice: not converged (seed 0)" in again
    assert "likely cause" not in again
    flags["base_boundary"] = "below the per-pixel baseline (mean F1 72.8 vs 73.3)"
    cause = LA.summary_text(edition="", network="n", verdicts=verdicts, claims=claims,
                            gains=gains, changes=changes.iloc[:0], step_cost=cost.iloc[:0],
                            flags=flags, final_losses={"base": 0.7, "base_boundary": -12.0})
    assert "training loss ended at -12.0 against 0.70 for CE + Dice" in cause


def test_dataset_note_per_dataset(scene_factory):
    from aerialseg.data.classes import DUBAI, ISPRS, LOVEDA

    class Data:
        def __init__(self, classes, bands):
            self.classes, self.bands = classes, bands
            self.train, self.val = [1, 2], [3]

    syn = LA.dataset_note("synthetic", Data(ISPRS, ("ir", "r", "g")))
    assert "synthetic" in syn and "IR-R-G" in syn and "clutter" not in syn
    dubai = LA.dataset_note("dubai", Data(DUBAI, ("r", "g", "b")))
    assert "no car class" in dubai and "Vaihingen" not in dubai
    loveda = LA.dataset_note("loveda", Data(LOVEDA, ("r", "g", "b")))
    assert "LoveDA" in loveda and "agriculture" in loveda


# ------------------------------------------------------------------ object counts


def test_paired_count_change_known_cases():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 20, (3, 12)).astype(float)
    est, low, high = LA.paired_count_change(a, a)
    assert est == 0 and low == 0 and high == 0  # identical runs: no change
    shifted = a - 1  # one error fewer in every scene of every seed
    est, low, high = LA.paired_count_change(shifted, a)
    assert est == -12 and low == -12 and high == -12  # scenes drawn with replacement: still 12
    noisy = a + rng.integers(-3, 1, a.shape)
    est, low, high = LA.paired_count_change(noisy, a)
    assert low <= est <= high and high <= 0
    with pytest.raises(ValueError, match="same"):
        LA.paired_count_change(a, a[:2])


def test_count_changes_pairs_seeds_and_sums_classes():
    import xarray as xr

    from aerialseg.objects import ERRORS, KINDS

    arr = np.zeros((2, 3, 4, 2, len(KINDS)))  # method, seed, scene, class, kind
    arr[0, :, :, :, KINDS.index("spurious")] = 2.0  # base: 2 per class and scene
    arr[1, :, :, :, KINDS.index("spurious")] = 1.0  # method: 1
    arr[1, 2] = np.nan  # no seed 2 for the method
    da = xr.DataArray(arr, dims=("method", "seed", "scene", "class", "kind"),
                      coords={"method": ["base", "m"], "seed": [0, 1, 2],
                              "scene": list("abcd"), "class": ["x", "y"], "kind": list(KINDS)})
    ch = LA.count_changes(da, "base")
    assert list(ch["kind"]) == list(ERRORS) and set(ch["method"]) == {"m"}
    row = ch.set_index("kind").loc["spurious"]
    assert row["estimate"] == -8 and row["low"] == -8 and row["baseline"] == 16
    assert row["seeds"] == 2 and row["scenes"] == 4
    assert ch.set_index("kind").loc["missed", "estimate"] == 0


def test_pixel_baseline_id_is_the_chapters():
    from aerialseg.chapter import PIXEL_BASELINE

    assert LA.PIXEL_BASELINE == PIXEL_BASELINE


# ------------------------------------------------------------------ figures


def test_figures_are_legible_at_the_column_width():
    import matplotlib.pyplot as plt
    import xarray as xr

    from aerialseg import plots, stats
    from aerialseg.data.classes import ISPRS
    from aerialseg.objects import KINDS
    from aerialseg.papers.lossd import plots as LP

    plots.book_style()
    lab = _labels(64)
    full = np.where(lab == 1, 5, -5).astype(float)
    figs = {"charges": LP.error_charges(LA.error_cost_table((1, 2, 4), max_iter=8, size=41,
                                                            half=8)),
            "maps": LP.distance_maps(lab, full, -full, 1, ISPRS, crop=48)}
    totals = xr.DataArray(np.arange(3 * 2 * len(KINDS), dtype=float).reshape(3, 2, -1),
                          dims=("method", "seed", "kind"),
                          coords={"method": list(LA.METHODS), "seed": [0, 1],
                                  "kind": list(KINDS)})
    figs["objects"] = LP.object_counts(totals)
    preds = {m: lab for m in LA.METHODS}
    over = {m: np.zeros_like(lab, np.int8) for m in LA.METHODS}
    figs["gallery"] = LP.object_errors_gallery(preds, over, lab, ISPRS,
                                               image=np.zeros((64, 64, 3)))
    figs["charge_maps"] = LP.charge_maps({m: np.random.default_rng(0).random((64, 64))
                                          for m in LA.METHODS})
    v = [stats.Verdict("inconclusive", 0.01 * i, -0.01, 0.02 * i, 3, method=m,
                       baseline="base", metric="f1", cls=c)
         for i, m in enumerate(("base_lossd", "base_boundary"))
         for c in ("overall", "building", "low_vegetation")]
    figs["gains"] = LP.gain_intervals(v)
    for name, fig in figs.items():
        assert plots.check_legible(fig) == [], name
        w, _ = fig.get_size_inches()
        assert w <= plots.BOOK_WIDTH_IN + 1e-6, name
        plt.close(fig)
