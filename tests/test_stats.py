import math

import numpy as np
import pytest

from aerialseg import stats
from aerialseg.config import Claim
from aerialseg.data.classes import ISPRS
from aerialseg.evaluation import Accumulator
from aerialseg.metrics import scores
from aerialseg.results import Record, build_results

NAMES = list(ISPRS.names)  # impervious, building, low_vegetation, tree, car, clutter
EV = list(ISPRS.evaluated)
CAR = NAMES.index("car")
IMP = NAMES.index("impervious")


def random_blocks(rng, seeds=3, blocks=40, scale=200):
    """(S, B, C, C) counts: mostly right, some confusion, some clutter truth."""
    c = len(NAMES)
    out = rng.integers(0, scale // 20, (seeds, blocks, c, c))
    out[..., np.arange(c), np.arange(c)] += rng.integers(0, scale, (seeds, blocks, c))
    return out


# --------------------------------------------------------------------------- metric recomputation

def test_metric_values_equal_metrics_scores_on_random_confusions():
    rng = np.random.default_rng(0)
    cms = rng.integers(0, 30, (25, 6, 6))
    cms[1, CAR] = 0  # no car support
    cms[2, :, CAR] = 0  # car never predicted
    cms[3] = 0  # empty
    keys = [("overall", m, k) for m, k in stats.OVERALL_METRICS.items()]
    keys += [(c, m, m) for c in NAMES[:5] for m in stats.CLASS_METRICS]
    for cls, metric, key in keys:
        got = stats.metric_values(cms, metric, cls, classes=NAMES, evaluated=EV)
        assert got.shape == (25,)
        for i, cm in enumerate(cms):
            want = scores(cm, EV)[key]
            want = want if cls == "overall" else want[NAMES.index(cls)]
            np.testing.assert_allclose(got[i], want, err_msg=f"{cls} {metric} #{i}")


def test_metric_values_reject_what_a_confusion_matrix_cannot_give():
    cm = np.eye(6)
    for metric in ("boundary_f1", "ece"):
        with pytest.raises(KeyError, match="cannot be recomputed"):
            stats.metric_values(cm, metric, "overall", classes=NAMES, evaluated=EV)
    with pytest.raises(KeyError, match="cannot be recomputed"):
        stats.metric_values(cm, "oa", "car", classes=NAMES, evaluated=EV)


# --------------------------------------------------------------------------- bootstrap

def test_bootstrap_weights_are_deterministic_draws_with_replacement():
    v1, w1 = stats.bootstrap_weights(3, 50, 500, seed=1)
    v2, w2 = stats.bootstrap_weights(3, 50, 500, seed=1)
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(w1, w2)
    assert (v1.sum(1) == 3).all() and (w1.sum(1) == 50).all()
    assert (w1 == 0).any() and (w1 > 1).any()  # with replacement
    _, w3 = stats.bootstrap_weights(3, 50, 500, seed=2)
    assert not np.array_equal(w1, w3)


def test_resample_confusions_sums_the_drawn_blocks():
    rng = np.random.default_rng(0)
    blocks = random_blocks(rng, seeds=2, blocks=5)
    w = np.array([[5, 0, 0, 0, 0], [1, 1, 1, 1, 1], [0, 2, 0, 3, 0]])
    out = stats.resample_confusions(blocks, w)
    assert out.shape == (3, 2, 6, 6)
    np.testing.assert_array_equal(out[0], 5 * blocks[:, 0])
    np.testing.assert_array_equal(out[1], blocks.sum(1))
    np.testing.assert_array_equal(out[2], 2 * blocks[:, 1] + 3 * blocks[:, 3])


def test_identical_runs_give_a_degenerate_zero_interval():
    blocks = random_blocks(np.random.default_rng(1))
    for cls, metric in (("overall", "f1"), ("car", "iou"), ("overall", "weighted_iou")):
        est, low, high, n = stats.paired_bootstrap(blocks, blocks, metric=metric, cls=cls,
                                                   classes=NAMES, evaluated=EV)
        assert (est, low, high) == (0.0, 0.0, 0.0) and n == stats.N_RESAMPLES


def shifted_car_recall(rng, shift_tenths=2, seeds=3, blocks=30):
    """B recalls half of the car pixels of every block; A ``shift_tenths``/10 more."""
    b = random_blocks(rng, seeds, blocks)
    a = b.copy()
    n = 10 * rng.integers(1, 20, (seeds, blocks))
    for x, right in ((b, 5), (a, 5 + shift_tenths)):
        x[..., CAR, :] = 0
        x[..., CAR, CAR] = n * right // 10
        x[..., CAR, IMP] = n - n * right // 10
    return a, b


def test_a_constant_shift_is_found_with_its_sign_and_size():
    a, b = shifted_car_recall(np.random.default_rng(2), shift_tenths=2)
    kw = {"metric": "recall", "cls": "car", "classes": NAMES, "evaluated": EV}
    est, low, high, _ = stats.paired_bootstrap(a, b, **kw)
    # recall is 0.7 vs 0.5 on every block, hence on every resample
    assert est == pytest.approx(0.2) and low == pytest.approx(0.2)
    assert high == pytest.approx(0.2)
    est, low, high, _ = stats.paired_bootstrap(b, a, **kw)
    assert est == pytest.approx(-0.2) and high == pytest.approx(-0.2)
    # F1 moves the same way (its size depends on the false positives)
    est, low, high, _ = stats.paired_bootstrap(a, b, **{**kw, "metric": "f1"})
    assert 0 < low <= est <= high


def test_a_noisy_shift_has_an_interval_around_it():
    rng = np.random.default_rng(3)
    b = random_blocks(rng, seeds=4, blocks=80)
    a = b.copy()
    moved = rng.binomial(a[..., CAR, CAR], 0.25)
    a[..., CAR, CAR] -= moved  # A misses about a quarter of B's car hits
    a[..., CAR, IMP] += moved
    est, low, high, _ = stats.paired_bootstrap(a, b, metric="recall", cls="car",
                                               classes=NAMES, evaluated=EV)
    assert low < est < high < 0
    assert est == pytest.approx(stats.metric_values(a.sum((0, 1)), "recall", "car",
                                                    classes=NAMES, evaluated=EV)
                                - stats.metric_values(b.sum((0, 1)), "recall", "car",
                                                      classes=NAMES, evaluated=EV), abs=0.02)


def test_bootstrap_is_deterministic_and_seeded():
    rng = np.random.default_rng(4)
    a, b = random_blocks(rng), random_blocks(rng)
    kw = {"metric": "f1", "cls": "overall", "classes": NAMES, "evaluated": EV}
    assert stats.paired_bootstrap(a, b, **kw) == stats.paired_bootstrap(a, b, **kw)
    assert stats.paired_bootstrap(a, b, **kw) != stats.paired_bootstrap(a, b, **kw, seed=7)


def test_bootstrap_of_typical_size_is_fast():
    import time

    rng = np.random.default_rng(5)
    a, b = random_blocks(rng, 3, 400), random_blocks(rng, 3, 400)
    t0 = time.perf_counter()
    stats.paired_bootstrap(a, b, metric="f1", cls="car", classes=NAMES, evaluated=EV)
    assert time.perf_counter() - t0 < 2.0  # ~0.05 s on one core; generous for shared CI


# --------------------------------------------------------------------------- verdicts on files

def one_hot(pred, c=6):
    return np.eye(c, dtype=np.float32)[pred].transpose(2, 0, 1)


def evaluation(scenes, *, car_miss=0.0, rng=None, never_car=False, block_size=16):
    """An Evaluation of a fake model: truth, with a fraction of car pixels called impervious."""
    acc = Accumulator(ISPRS, block_size=block_size)
    for scene in scenes:
        pred = scene.labels.copy()
        car = pred == CAR
        if never_car:
            pred[car] = IMP
        elif car_miss:
            pred[car & (rng.random(pred.shape) < car_miss)] = IMP
        acc.add(scene, one_hot(pred))
    return acc.result()


def results(scenes, spec, seeds=(0, 1, 2), method_seeds=None):
    """Results Dataset for {method: kwargs of :func:`evaluation`}, seeded noise per run."""
    recs = []
    for i, (m, kw) in enumerate(spec.items()):
        for s in (method_seeds or {}).get(m, seeds):
            rng = np.random.default_rng(100 * i + s)
            recs.append(Record(m, s, evaluation(scenes, rng=rng, **kw)))
    return build_results(recs, chapter="t", profile="smoke", dataset="synthetic", params={},
                         device="cpu", hardware="cpu", wall_seconds={})


@pytest.fixture
def scenes(scene_factory):
    return [scene_factory(f"s{i}", size=64, seed=i, split="val") for i in range(3)]


def claim(method="good", baseline="bad", cls="car", metric="f1"):
    return Claim("test", f"{method} beats {baseline}", method, baseline, cls, metric, None)


def test_judge_supported_contradicted_inconclusive(scenes):
    ds = results(scenes, {"good": {"car_miss": 0.05}, "bad": {"car_miss": 0.6},
                          "twin": {"car_miss": 0.05}})
    v = stats.judge(ds, claim())
    assert v.verdict == "supported" and v.n_seeds == 3 and v.n_blocks == 48
    assert 0 < v.low <= v.estimate <= v.high
    # the toy scenes have one car per scene: resamples without a car block have no car F1
    assert v.reason.endswith("of 2000 resamples undefined")
    assert stats.judge(ds, claim("bad", "good")).verdict == "contradicted"
    v = stats.judge(ds, claim("twin", "good"))
    assert v.verdict == "inconclusive" and v.low <= 0 <= v.high
    # a claim that the metric goes down flips the reading
    down = {"method": "bad", "baseline": "good", "cls": "car", "metric": "f1",
            "direction": "lower"}
    assert stats.judge(ds, down).verdict == "supported"


def test_judge_estimate_is_the_mean_of_per_seed_score_differences(scenes):
    ds = results(scenes, {"good": {"car_miss": 0.05}, "bad": {"car_miss": 0.6}})
    v = stats.judge(ds, claim(metric="recall"))
    sc = ds["scores"].sel({"protocol": "eroded", "class": "car", "metric": "recall"})
    want = float((sc.sel({"method": "good"}) - sc.sel({"method": "bad"})).mean())
    assert v.estimate == pytest.approx(want)


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"flags": {"good": "seed 1 has not converged"}}, "good: seed 1 has not converged"),
    ({"converged": {"bad": False}}, "bad has not converged"),
    ({"baseline_ok": {"good": False}}, "good is below the per-pixel baseline"),
])
def test_judge_untestable_for_flagged_models(scenes, kwargs, reason):
    ds = results(scenes, {"good": {"car_miss": 0.05}, "bad": {"car_miss": 0.6}})
    v = stats.judge(ds, claim(), **kwargs)
    assert v.verdict == "untestable" and reason in v.reason
    assert math.isfinite(v.estimate) and v.low > 0  # the interval is still reported


def test_judge_untestable_with_fewer_than_three_seeds(scenes):
    ds = results(scenes, {"good": {"car_miss": 0.05}, "bad": {"car_miss": 0.6}}, seeds=(0, 1))
    v = stats.judge(ds, claim())
    assert v.verdict == "untestable" and "2 paired seeds (the rule needs 3)" in v.reason
    assert v.n_seeds == 2 and v.low > 0


def test_judge_untestable_when_neither_model_predicts_the_class(scenes):
    ds = results(scenes, {"good": {"never_car": True}, "bad": {"never_car": True}})
    v = stats.judge(ds, claim())
    assert v.verdict == "untestable" and "car is never predicted by either model" in v.reason
    # one model predicting it is a fair comparison
    ds = results(scenes, {"good": {"car_miss": 0.1}, "bad": {"never_car": True}})
    assert stats.judge(ds, claim()).verdict == "supported"


def test_judge_untestable_metric_class_or_method(scenes):
    ds = results(scenes, {"good": {}, "bad": {"car_miss": 0.5}})
    v = stats.judge(ds, claim(cls="overall", metric="boundary_f1"))
    assert v.verdict == "untestable" and "cannot be recomputed" in v.reason
    v = stats.judge(ds, claim(cls="clutter"))
    assert v.verdict == "untestable" and "clutter is not an evaluated class" in v.reason
    v = stats.judge(ds, claim("nope"))
    assert v.verdict == "untestable" and "nope not in the results" in v.reason
    assert math.isnan(v.estimate)


def test_judge_pairs_only_common_seeds(scenes):
    ds = results(scenes, {"good": {"car_miss": 0.05}, "bad": {"car_miss": 0.6}},
                 method_seeds={"good": (0, 1, 2, 3), "bad": (1, 2, 3, 4)})
    assert ds["present"].sum() == 8 and ds["confusion"].dtype == np.int64
    v = stats.judge(ds, claim())
    assert v.verdict == "supported" and v.n_seeds == 3


def test_verdict_rejects_other_words():
    with pytest.raises(ValueError, match="verdict"):
        stats.Verdict("holds", 0.0, 0.0, 0.0, 3)


def test_legacy_files_without_blocks_bootstrap_over_seeds(scenes):
    ds = results(scenes, {"good": {"car_miss": 0.05}, "bad": {"car_miss": 0.6}})
    v = stats.judge(ds.drop_dims("block"), claim())
    assert v.n_blocks == 1 and "bootstrap over seeds only" in v.reason
    assert v.verdict == "supported"


# --------------------------------------------------------------------------- chapter helpers

def test_method_interval_and_tables(scenes):
    ds = results(scenes, {"good": {}, "bad": {"car_miss": 0.5}})
    e = stats.method_interval(ds, "good", metric="f1", cls="car")
    assert (e.mean, e.low, e.high, e.width) == (1.0, 1.0, 1.0, 0.0)
    e = stats.method_interval(ds, "bad", metric="f1", cls="car")
    sc = ds["scores"].sel({"method": "bad", "protocol": "eroded", "class": "car",
                           "metric": "f1"})
    assert e.mean == pytest.approx(float(sc.mean())) and e.low < e.mean < e.high
    assert (e.n_seeds, e.n_blocks) == (3, 48)
    table = stats.interval_table(ds)
    assert list(table.index) == ["bad", "good"]
    assert list(table.columns) == NAMES[:5] + ["mean F1", "mIoU", "OA"]
    assert table.loc["good", "car"] == "100.0 [100.0, 100.0]"
    widths = stats.f1_interval_widths(ds)
    assert list(widths.columns) == NAMES[:5]
    assert widths.loc["good", "car"] == 0 and widths.loc["bad", "car"] > 0
    frame = stats.interval_frame(ds, metrics=("f1",), per_class=())
    row = frame.set_index("method").loc["bad"]
    assert row["mean"] == pytest.approx(stats.method_interval(ds, "bad").mean)


def test_sanity_flags(scenes):
    ds = results(scenes, {"pixel": {"car_miss": 0.3}, "good": {}, "bad": {"never_car": True}})
    falling = [{"loss": 1.0 / (e + 1)} for e in range(20)]
    flat = [{"loss": 1.0} for _ in range(20)]
    flags = stats.sanity_flags(ds, pixel_baseline="pixel",
                               histories={"good": {0: flat, 1: falling}})
    assert flags["pixel"] is None
    assert "seed 1 has not converged" in flags["good"]
    assert "below the per-pixel baseline (mean F1" in flags["bad"]
    v = stats.judge(ds, claim("good", "pixel"), flags=flags)
    assert v.verdict == "untestable" and "not converged" in v.reason


# --------------------------------------------------------------------------- convergence

def test_convergence_rule_on_synthetic_curves():
    decay = [{"loss": 0.2 + np.exp(-e / 5)} for e in range(100)]
    assert stats.converged(decay)
    linear = [{"loss": 2 - 0.019 * e} for e in range(100)]
    c = stats.convergence(linear)
    assert not c.converged and c.window == 10 and c.unit == "epoch"
    assert c.relative_decrease == pytest.approx((0.3945 - 0.2045) / 0.3945)
    # just under / just over 2 % between the last two tenths (10 epochs each)
    def two_levels(drop):
        return [{"loss": 1.0}] * 80 + [{"loss": 1.0}] * 10 + [{"loss": 1.0 - drop}] * 10
    assert stats.converged(two_levels(0.019)) and not stats.converged(two_levels(0.021))
    rising = [{"loss": 1 + 0.01 * e} for e in range(30)]
    assert stats.converged(rising)


def test_convergence_rule_on_short_histories():
    # fewer than 10 epochs: tenths of one epoch, the last epoch against the one before
    assert stats.converged([{"loss": v} for v in (1.0, 0.5, 0.3, 0.29, 0.289)])
    c = stats.convergence([{"loss": v} for v in (1.0, 0.8, 0.6, 0.4, 0.2)])
    assert not c.converged and c.window == 1
    # with per-step losses the tenths are taken over steps
    steps = [{"loss": 0.0, "step_losses": list(np.linspace(1, 0.1, 10) - 0.1 * e)}
             for e in range(3)]
    c = stats.convergence(steps)
    assert c.unit == "step" and c.window == 3 and not c.converged
    c = stats.convergence([{"loss": 0.7}])
    assert not c.converged and "cannot be judged" in c.reason
    assert not stats.converged([{"loss": 1.0}, {"loss": float("nan")}])
    assert not stats.converged([])


# --------------------------------------------------------------------------- sentences

def test_sentence_from_a_verdict():
    v = stats.Verdict("supported", 0.413, 0.350, 0.479, 3, method="fcn_mfb", baseline="fcn",
                      metric="f1", cls="car")
    assert stats.sentence(v, names={"fcn_mfb": "MFB", "fcn": "FCN"}) == (
        "MFB raises car F1 over FCN by 41.3 points (95 % interval 35.0 to 47.9, 3 seeds): "
        "supported.")
    v = stats.Verdict("contradicted", -0.021, -0.034, -0.008, 4, method="uce_a1",
                      baseline="ce_dropout", metric="iou")
    assert stats.sentence(v) == (
        "U-CE \u03b1=1 lowers mIoU against CE (dropout network) by 2.1 points (95 % "
        "interval of the change "
        "\u22123.4 to \u22120.8, 4 seeds): contradicted.")
    v = stats.Verdict("untestable", 0.01, -0.02, 0.04, 2, "2 paired seeds (the rule needs 3)",
                      method="a", baseline="b", metric="weighted_iou")
    s = stats.sentence(v)
    assert s.startswith("a against b on support-weighted IoU: untestable (2 paired seeds")
    assert "1.0 points" in s and "2 seeds" in s
    v = stats.Verdict("untestable", float("nan"), float("nan"), float("nan"), 0,
                      "x not in the results", method="x", baseline="b", metric="f1")
    assert stats.sentence(v) == "x against b on mean F1: untestable (x not in the results)."


def test_convergence_rule_does_not_read_noise_as_improvement():
    rng = np.random.default_rng(0)
    # a plateau measured with small noisy batches: 30 epochs of 20 steps at loss 0.6 +- 0.2,
    # whose last tenth happens to lie 5 % below the one before
    hist = [{"step_losses": list(0.6 + 0.2 * rng.standard_normal(20))} for _ in range(30)]
    for h in hist[-3:]:
        h["step_losses"] = [x - 0.03 for x in h["step_losses"]]
    for h in hist:
        h["loss"] = float(np.mean(h["step_losses"]))
    c = stats.convergence(hist)
    assert c.relative_decrease >= 0.02 and c.converged and "within the loss's noise" in c.reason
    # the same fall with little noise is real: still improving
    quiet = [{"loss": h["loss"], "step_losses": [h["loss"]] * 20} for h in hist]
    assert not stats.convergence(quiet).converged
    # a steady decline with the same noise is found
    falling = [{"step_losses": list(1.5 - 0.03 * e + 0.2 * rng.standard_normal(20))}
               for e in range(30)]
    for h in falling:
        h["loss"] = float(np.mean(h["step_losses"]))
    assert not stats.convergence(falling).converged


def test_judge_untestable_on_a_protocol_the_data_lack(scenes):
    from dataclasses import replace

    eroded_only = [replace(s, full_truth=False) for s in scenes]
    ds = results(eroded_only, {"good": {"car_miss": 0.05}, "bad": {"car_miss": 0.6}})
    assert stats.judge(ds, claim()).verdict == "supported"  # eroded: the primary protocol
    v = stats.judge(ds, claim(), protocol="full")
    assert v.verdict == "untestable" and "no full ground truth in these data" in v.reason


def _batched_history(difficulty, learned, rng, noise=0.02):
    """30 epochs of 16 steps: loss = batch difficulty + what is still to learn + noise."""
    hist = []
    for e, (d, extra) in enumerate(zip(difficulty, learned, strict=True)):
        steps = list(np.asarray(d) + extra + noise * rng.standard_normal(len(d)))
        hist.append({"epoch": e, "loss": float(np.mean(steps)), "step_losses": steps})
    return hist


def test_adjusted_convergence_takes_the_batches_difficulty_out():
    rng = np.random.default_rng(1)
    # a model that learned nothing more in its last two tenths, but drew harder batches in
    # the tenth before the last: the raw rule reads a fall, the adjusted one a plateau
    diff = [list(0.5 + 0.1 * rng.standard_normal(16)) for _ in range(30)]
    for e in (24, 25, 26):
        diff[e] = [x + 0.1 for x in diff[e]]
    flat = _batched_history(diff, [0.0] * 30, rng)
    raw = stats.convergence(flat)
    assert raw.relative_decrease > 0.1 and not raw.converged
    adj = stats.adjusted_convergence(flat, {e: diff[e] for e in range(24, 30)})
    assert adj.converged and abs(adj.relative_decrease) < 0.02
    assert "harder" in adj.reason and adj.window == 3 and adj.unit == "epoch"
    # the run store keeps the difficulty in the history: the rule then uses it by itself
    for e in range(24, 30):
        flat[e]["step_difficulty"] = diff[e]
    assert stats.convergence(flat) == adj
    # a real 6 % fall on batches of equal difficulty is still found
    same = [list(0.5 + 0.1 * rng.standard_normal(16)) for _ in range(30)]
    learning = [0.06 if e < 27 else 0.03 for e in range(30)]
    hist = _batched_history(same, learning, rng)
    adj = stats.adjusted_convergence(hist, {e: same[e] for e in range(24, 30)})
    assert not adj.converged and adj.relative_decrease == pytest.approx(0.03 / 0.56, abs=0.01)
    # ...and a fall hidden by easier batches before it is uncovered
    hidden = [list(x) for x in same]
    for e in (24, 25, 26):
        hidden[e] = [x - 0.03 for x in hidden[e]]
    hist = _batched_history(hidden, learning, rng)
    assert stats.convergence(hist).converged  # the raw rule: within the noise
    assert not stats.adjusted_convergence(hist, {e: hidden[e] for e in range(24, 30)}).converged


def test_adjusted_convergence_needs_every_step_of_the_last_two_tenths():
    rng = np.random.default_rng(2)
    diff = [list(0.5 + 0.1 * rng.standard_normal(16)) for _ in range(30)]
    hist = _batched_history(diff, [0.0] * 30, rng)
    with pytest.raises(ValueError, match="epoch 24"):
        stats.adjusted_convergence(hist, {e: diff[e] for e in range(25, 30)})
    with pytest.raises(ValueError, match="15 values"):
        stats.adjusted_convergence(hist, {e: diff[e][:15] for e in range(24, 30)})
    # short runs: tenths of steps, every epoch's difficulty
    short = hist[:4]
    c = stats.adjusted_convergence(short, {e: diff[e] for e in range(4)})
    assert c.unit == "step" and c.window == 6


def test_adjusted_convergence_of_a_one_epoch_run_is_the_raw_rule():
    one = [{"epoch": 0, "loss": 0.7, "step_losses": [0.8, 0.7, 0.6],
            "step_difficulty": [0.5, 0.5, 0.5]}]
    c = stats.convergence(one)  # the store's difficulty is there, but 3 steps are too few
    assert c == stats.convergence(one, adjust=False) and c.unit == "step"
    assert stats.convergence([dict(one[0], step_losses=[0.8])]).reason.startswith("1 loss")
    two = [{"epoch": e, "loss": v, "step_losses": [v, v], "step_difficulty": [0.5, 0.5]}
           for e, v in enumerate((1.0, 0.5))]
    assert stats.convergence(two) == stats.convergence(two, adjust=False)
