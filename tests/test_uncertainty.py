import math

import numpy as np
import pytest
import torch

from aerialseg.uncertainty import Calibration, ThresholdCurve, mc_statistics

# ----------------------------------------------------------------------------- mc_statistics


def _samples(*rows: list[float]) -> torch.Tensor:
    """(T, 1, C, 1, 1) from T probability vectors."""
    return torch.tensor(rows, dtype=torch.float64)[:, None, :, None, None]


def test_mc_statistics_hand_made():
    probs = _samples([0.2, 0.8], [0.6, 0.4])
    s = mc_statistics(probs)
    torch.testing.assert_close(s["mean"].flatten(), torch.tensor([0.4, 0.6], dtype=torch.float64))
    torch.testing.assert_close(s["std"].flatten(), torch.tensor([0.2, 0.2], dtype=torch.float64))
    assert s["mean_class_std"].item() == pytest.approx(0.2)
    assert s["predicted_class_std"].item() == pytest.approx(0.2)
    def h(p):
        return -sum(x * math.log(x) for x in p)

    assert s["entropy"].item() == pytest.approx(h([0.4, 0.6]))
    mi = h([0.4, 0.6]) - (h([0.2, 0.8]) + h([0.6, 0.4])) / 2
    assert s["mutual_info"].item() == pytest.approx(mi)
    s1 = mc_statistics(probs, ddof=1)
    assert s1["mean_class_std"].item() == pytest.approx(0.4 / math.sqrt(2))


def test_mc_statistics_predicted_class_std_picks_argmax_of_mean():
    probs = _samples([0.1, 0.2, 0.7], [0.1, 0.6, 0.3], [0.1, 0.4, 0.5])
    s = mc_statistics(probs)
    pred = 2  # mean (0.1, 0.4, 0.5)
    expect = probs[:, 0, pred, 0, 0].std(correction=0)
    assert s["predicted_class_std"].item() == pytest.approx(expect.item())
    assert s["std"][0, 0].item() == pytest.approx(0.0)
    assert s["mean_class_std"].item() == pytest.approx(s["std"].mean().item())


def test_mc_statistics_uniform_and_identical_samples():
    c = 6
    probs = torch.full((4, 2, c, 3, 5), 1.0 / c)
    s = mc_statistics(probs)
    assert s["mean"].shape == (2, c, 3, 5) and s["std"].shape == (2, c, 3, 5)
    for k in ("mean_class_std", "predicted_class_std", "entropy", "mutual_info"):
        assert s[k].shape == (2, 3, 5)
    torch.testing.assert_close(s["entropy"], torch.full((2, 3, 5), math.log(c)))
    assert torch.all(s["mutual_info"] == 0) and torch.all(s["std"] == 0)
    # Identical non-uniform samples (with exact zeros): MI 0, entropy finite.
    one = torch.softmax(torch.randn(1, 2, c, 3, 5), 2)
    one[..., 0, 0] = torch.eye(c)[0].expand(2, c)
    s = mc_statistics(one.expand(5, -1, -1, -1, -1))
    torch.testing.assert_close(s["mutual_info"], torch.zeros(2, 3, 5), atol=1e-6, rtol=0)
    assert torch.isfinite(s["entropy"]).all() and s["entropy"][0, 0, 0] == 0


def test_mc_statistics_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2 MC samples"):
        mc_statistics(torch.full((1, 1, 2, 2, 2), 0.5))
    with pytest.raises(ValueError, match="ddof"):
        mc_statistics(torch.full((2, 1, 2, 2, 2), 0.5), ddof=2)


# ----------------------------------------------------------------------------- ThresholdCurve


def _graded_curve() -> ThresholdCurve:
    """10 groups of 100 px at u = g (0..9), group g has 5g errors: OA(first g+1) = 1 - g/40."""
    u = np.repeat(np.arange(10.0), 100)
    correct = np.ones(1000, bool)
    for g in range(10):
        correct[g * 100:g * 100 + 5 * g] = False
    curve = ThresholdCurve()
    curve.update(u[:500], correct[:500])
    curve.update(torch.from_numpy(u[500:]), torch.from_numpy(correct[500:]))
    return curve


def test_threshold_curve_monotone_and_full_coverage_at_one():
    curve = _graded_curve()
    r = curve.result(101)
    assert r["threshold"][0] == 0 and r["threshold"][-1] == 1
    assert np.all(np.diff(r["accuracy"]) <= 1e-12)
    assert np.all(np.diff(r["coverage"]) >= 0)
    assert r["coverage"][-1] == 1.0
    assert r["accuracy"][-1] == pytest.approx(1 - 225 / 1000)  # OA of everything
    assert r["coverage"][0] == 0.1 and r["accuracy"][0] == 1.0
    # Normalised u of group g is g/9: at tau = 0.5 groups 0..4 are kept.
    i = np.flatnonzero(np.isclose(r["threshold"], 0.5))[0]
    assert r["coverage"][i] == 0.5 and r["accuracy"][i] == pytest.approx(1 - 4 / 40)


def test_threshold_curve_coverage_at_accuracy_known_answer():
    cov = _graded_curve().coverage_at_accuracy((0.975, 0.95, 0.90, 0.5, 1.0, 1.01))
    assert cov == {0.975: 0.2, 0.95: 0.3, 0.90: 0.5, 0.5: 1.0, 1.0: 0.1, 1.01: 0.0}


def test_threshold_curve_normalisation_options_and_mask():
    curve = ThresholdCurve()
    curve.update(np.array([0.0, 2.0]), np.array([True, False]))
    curve.update(np.array([0.0, 20.0, 7.0]), np.array([True, False, True]),
                 mask=np.array([True, True, False]))
    assert curve.num_pixels == 4
    r = curve.result([0.15], normalise="global_minmax")  # u -> 0, .1, 0, 1
    assert r["coverage"][0] == 0.75 and r["accuracy"][0] == pytest.approx(2 / 3)
    r = curve.result([0.5], normalise="per_image_minmax")  # u -> 0, 1, 0, 1
    assert r["coverage"][0] == 0.5 and r["accuracy"][0] == 1.0
    r = curve.result([3.0, -1.0], normalise="none")
    np.testing.assert_array_equal(r["kept"], [3, 0])
    assert np.isnan(r["accuracy"][1])
    with pytest.raises(ValueError, match="normalise"):
        curve.result(normalise="per_tile")
    with pytest.raises(ValueError, match="empty"):
        ThresholdCurve().result()


def test_threshold_curve_auc():
    rng = np.random.default_rng(0)
    correct = rng.random(500) > 0.3
    oa = correct.mean()
    # Constant uncertainty = random rejection: the area is the OA.
    flat = ThresholdCurve()
    flat.update(np.full(500, 0.3), correct)
    assert flat.auc() == pytest.approx(oa)
    # Perfect ranking: errors most uncertain.
    best = ThresholdCurve()
    best.update(np.where(correct, 0.0, 1.0) + 1e-3 * rng.random(500), correct)
    n, nc = 500, int(correct.sum())
    expect = (nc + sum(nc / k for k in range(nc + 1, n + 1))) / n
    assert best.auc() == pytest.approx(expect)
    assert best.auc() > flat.auc()


def test_threshold_curve_auc_ties_known_answer_and_brute_force():
    tied = ThresholdCurve()
    tied.update(np.array([0.0, 0.0, 1.0]), np.array([True, False, True]))
    assert tied.auc() == pytest.approx((0.5 + 0.5 + 2 / 3) / 3)
    # Brute force: average over random orders within ties of the per-k accuracy.
    rng = np.random.default_rng(3)
    u = rng.integers(0, 6, 40).astype(float)
    correct = rng.random(40) > 0.4 + 0.08 * u
    curve = ThresholdCurve()
    curve.update(u, correct)
    runs = []
    for _ in range(3000):
        order = np.lexsort((rng.random(40), u))
        runs.append(np.mean(np.cumsum(correct[order]) / np.arange(1, 41)))
    assert curve.auc() == pytest.approx(np.mean(runs), abs=2e-3)


# ----------------------------------------------------------------------------- Calibration


def _two_class(conf: np.ndarray) -> np.ndarray:
    """(N, 2) probabilities with top-label class 0 at confidence ``conf``."""
    return np.stack([conf, 1 - conf], 1)


def test_ece_perfectly_calibrated_is_zero():
    conf, truth = [], []
    for c in (0.55, 0.75, 0.95):  # three different bins of 15
        conf.append(np.full(100, c))
        truth.append((np.arange(100) >= round(100 * c)).astype(int))  # exactly c correct
    cal = Calibration()
    cal.update(_two_class(np.concatenate(conf)), np.concatenate(truth))
    assert cal.ece() == pytest.approx(0.0, abs=1e-12)
    rel = cal.reliability()
    assert rel["bin_count"].sum() == 300 and np.count_nonzero(rel["bin_count"]) == 3
    np.testing.assert_allclose(rel["bin_accuracy"][[8, 11, 14]], [0.55, 0.75, 0.95])
    np.testing.assert_allclose(rel["bin_confidence"][[8, 11, 14]], [0.55, 0.75, 0.95])
    assert np.isnan(rel["bin_accuracy"][0]) and len(rel["bin_edges"]) == 16


def test_ece_random_calibrated_is_small():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 200_000)
    truth = (rng.random(conf.size) >= conf).astype(int)  # correct with probability conf
    cal = Calibration()
    cal.update(torch.from_numpy(_two_class(conf)), torch.from_numpy(truth))
    assert cal.ece() < 0.01


def test_ece_over_confident_known_value():
    # 200 px at confidence 0.9 with 60 % right, 100 px at 0.7 with 70 % right.
    conf = np.r_[np.full(200, 0.9), np.full(100, 0.7)]
    truth = np.r_[np.arange(200) >= 120, np.arange(100) >= 70].astype(int)
    cal = Calibration()
    cal.update(_two_class(conf), truth)
    assert cal.ece() == pytest.approx(2 / 3 * 0.3)


def test_calibration_image_layout_ignore_mask_merge():
    rng = np.random.default_rng(1)
    probs = torch.softmax(torch.randn(2, 4, 5, 6), 1)
    truth = torch.from_numpy(rng.integers(0, 4, (2, 5, 6)))
    truth[0, 0] = 255
    mask = torch.from_numpy(rng.random((2, 5, 6)) > 0.2)
    a = Calibration(10)
    a.update(probs, truth, mask)
    keep = (truth != 255) & mask
    b = Calibration(10)
    b.update(probs.movedim(1, -1)[keep], truth[keep])
    np.testing.assert_array_equal(a.count, b.count)
    np.testing.assert_allclose(a.conf_sum, b.conf_sum)
    assert a.count.sum() == int(keep.sum())
    assert a.merge(b).count.sum() == 2 * int(keep.sum())
    with pytest.raises(ValueError, match="logits"):
        a.update(torch.randn(3, 4) * 5, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="do not match"):
        a.update(probs, truth[0])
