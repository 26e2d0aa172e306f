import numpy as np
import pytest
import torch

from aerialseg import metrics
from aerialseg.metrics import (
    BoundaryF1,
    ConfusionMatrix,
    eroded_eval_mask,
    evaluate_predictions,
    scores,
)

# ----------------------------------------------------------------------------- scores


def test_scores_hand_made_matrix():
    cm = np.array([[5, 1, 0],
                   [2, 3, 1],
                   [0, 0, 4]])
    s = scores(cm, evaluated=(0, 1))
    # class 2 is not evaluated: no scores of its own
    np.testing.assert_allclose(s["precision"], [5 / 7, 3 / 4, np.nan])
    np.testing.assert_allclose(s["recall"], [5 / 6, 3 / 6, np.nan])
    np.testing.assert_allclose(s["f1"], [10 / 13, 6 / 10, np.nan])
    p, r = s["precision"], s["recall"]
    np.testing.assert_allclose(s["f1"], 2 * p * r / (p + r))
    np.testing.assert_allclose(s["iou"], [5 / 8, 3 / 7, np.nan])
    np.testing.assert_array_equal(s["support"], [6, 6, 4])
    # OA over truth in {0, 1}: the class-1 pixel predicted as 2 counts as wrong.
    assert s["oa"] == pytest.approx(8 / 12)
    assert s["oa_all"] == pytest.approx(12 / 16)
    assert s["mean_f1"] == pytest.approx((10 / 13 + 6 / 10) / 2)
    assert s["miou"] == pytest.approx((5 / 8 + 3 / 7) / 2)
    # Equal support -> weighted means equal unweighted ones; weighted recall is OA.
    assert s["weighted_f1"] == pytest.approx(s["mean_f1"])
    assert s["weighted_precision"] == pytest.approx((5 / 7 + 3 / 4) / 2)
    assert s["weighted_recall"] == pytest.approx(s["oa"])


def test_clutter_truth_is_left_out_of_every_evaluated_score():
    """Known answer: clutter (class 2, not evaluated) truth pixels are dropped before scoring.

    Truth rows: class 0 has 8 right, 2 predicted as 1; class 1 has 6 right, 1 predicted as
    clutter; clutter truth has 3 predicted as 0, 5 as 1 and 4 as clutter.
    """
    cm = np.array([[8, 2, 0],
                   [0, 6, 1],
                   [3, 5, 4]])
    s = scores(cm, evaluated=(0, 1))
    # without clutter truth: precision of 0 is 8/8, not 8/11; of 1 it is 6/8, not 6/13
    np.testing.assert_allclose(s["precision"][:2], [1.0, 6 / 8])
    np.testing.assert_allclose(s["recall"][:2], [8 / 10, 6 / 7])  # clutter prediction: wrong
    np.testing.assert_allclose(s["f1"][:2], [16 / 18, 12 / 15])
    np.testing.assert_allclose(s["iou"][:2], [8 / 10, 6 / 9])
    assert np.isnan(s["f1"][2]) and np.isnan(s["precision"][2])
    assert s["oa"] == pytest.approx(14 / 17)  # clutter truth out of the denominator
    assert s["oa_all"] == pytest.approx(18 / 29)  # GeoSeg-style: every counted pixel
    assert s["mean_f1"] == pytest.approx((16 / 18 + 12 / 15) / 2)
    np.testing.assert_array_equal(s["support"], [10, 7, 12])
    # identical to scoring the matrix with the clutter row removed
    no_clutter = cm.copy()
    no_clutter[2] = 0
    t = scores(no_clutter, evaluated=(0, 1))
    for k in ("precision", "recall", "f1", "iou"):
        np.testing.assert_allclose(s[k], t[k])
    for k in ("oa", "mean_f1", "miou", "weighted_f1", "weighted_iou"):
        assert s[k] == pytest.approx(t[k])


def test_batch_scores_match_scores_on_random_matrices():
    rng = np.random.default_rng(3)
    cms = rng.integers(0, 50, (20, 6, 6))
    cms[3, 4] = 0  # a class with no support
    cms[5, :, 2] = 0  # a class never predicted
    batch = metrics.batch_scores(cms, range(5))
    for i, cm in enumerate(cms):
        one = scores(cm, range(5))
        for k, v in one.items():
            np.testing.assert_allclose(batch[k][i], v, err_msg=k)


def test_weighted_scores_use_support():
    cm = np.array([[90, 10],
                   [5, 5]])
    s = scores(cm, evaluated=(0, 1))
    w = np.array([100, 10]) / 110
    assert s["weighted_f1"] == pytest.approx(float(w @ s["f1"]))
    assert s["weighted_iou"] == pytest.approx(float(w @ s["iou"]))
    assert s["weighted_recall"] == pytest.approx(s["oa"]) == pytest.approx(95 / 110)


def test_scores_absent_class_is_nan_and_skipped():
    cm = np.array([[4, 0, 0],
                   [0, 0, 0],
                   [1, 0, 5]])
    s = scores(cm, evaluated=(0, 1, 2))
    assert np.isnan(s["f1"][1]) and np.isnan(s["iou"][1]) and np.isnan(s["precision"][1])
    assert s["mean_f1"] == pytest.approx((8 / 9 + 10 / 11) / 2)
    # Present in truth but never predicted: F1 0, precision undefined (0 in the weighted mean).
    s2 = scores(np.array([[3, 0], [2, 0]]), evaluated=(0, 1))
    assert s2["f1"][1] == 0 and np.isnan(s2["precision"][1])
    assert s2["weighted_precision"] == pytest.approx(0.6 * 3 / 5)


def test_scores_rejects_bad_evaluated():
    with pytest.raises(ValueError, match="evaluated"):
        scores(np.eye(3), evaluated=(0, 3))
    with pytest.raises(ValueError, match="square"):
        scores(np.ones((2, 3)), evaluated=(0,))


def _matrix_with_f1(f1: list[float], support: int = 1_000_000) -> np.ndarray:
    """Confusion matrix whose evaluated classes have the given F1; misses go to clutter (5).

    With no false positives F1 = 2r/(1+r), so recall r = F1/(2-F1).
    """
    cm = np.zeros((6, 6), np.int64)
    for c, f in enumerate(f1):
        tp = round(f / (2 - f) * support)
        cm[c, c], cm[c, 5] = tp, support - tp
    cm[5, 5] = 12345  # clutter: present, not evaluated
    return cm


@pytest.mark.parametrize(("per_class", "mean"), [
    ([90.45, 95.01, 80.22, 88.39, 77.72], 86.36),  # PB
    ([92.77, 95.81, 83.96, 90.81, 43.03], 81.28),  # FCN; the paper prints 86.36 (typo)
    ([91.16, 95.30, 84.36, 90.79, 92.57], 90.84),  # FCN-MFB
])
def test_kampffmeyer_table1_mean_f1(per_class, mean):
    s = scores(_matrix_with_f1([v / 100 for v in per_class]), evaluated=range(5))
    np.testing.assert_allclose(100 * s["f1"][:5], per_class, atol=1e-4)
    assert round(100 * s["mean_f1"], 2) == mean


# ----------------------------------------------------------------------------- ConfusionMatrix


def test_confusion_matrix_counts_rows_truth_cols_pred():
    cm = ConfusionMatrix(3)
    cm.update(np.array([[0, 1], [2, 2]]), np.array([[0, 0], [2, 1]]))
    np.testing.assert_array_equal(cm.matrix, [[1, 1, 0], [0, 0, 1], [0, 0, 1]])
    assert cm.matrix.dtype == np.int64 and cm.total == 4


def test_confusion_matrix_ignore_and_mask_numpy_and_torch_agree():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, (2, 16, 16))
    truth[:, :3] = 255
    pred = rng.integers(0, 4, truth.shape)
    mask = rng.random(truth.shape) > 0.3
    a, b = ConfusionMatrix(4), ConfusionMatrix(4)
    a.update(pred, truth.astype(np.uint8), mask)
    b.update(torch.from_numpy(pred), torch.from_numpy(truth), torch.from_numpy(mask))
    keep = (truth != 255) & mask
    expect = np.zeros((4, 4), np.int64)
    np.add.at(expect, (truth[keep], pred[keep]), 1)
    np.testing.assert_array_equal(a.matrix, expect)
    np.testing.assert_array_equal(b.matrix, expect)


def test_confusion_matrix_merge_add_and_errors():
    a, b = ConfusionMatrix(2), ConfusionMatrix(2)
    a.update(np.array([0, 1]), np.array([0, 0]))
    b.update(np.array([1]), np.array([1]))
    c = a + b
    np.testing.assert_array_equal(c.matrix, [[1, 1], [0, 1]])
    np.testing.assert_array_equal(a.matrix, [[1, 1], [0, 0]])  # + does not modify
    a.merge(b)
    np.testing.assert_array_equal(a.matrix, c.matrix)
    with pytest.raises(ValueError, match="num_classes"):
        a.update(np.array([2]), np.array([0]))
    with pytest.raises(ValueError, match="shape"):
        a.update(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="merge"):
        a.merge(ConfusionMatrix(3))


def test_pooling_differs_from_mean_of_per_scene_scores():
    # Scene A: 90 px of class 0 and 10 of class 1, all right. Scene B: 10 px of class 1 -> 0.
    truth_a = np.r_[np.zeros(90), np.ones(10)].astype(int)
    pred_a = truth_a.copy()
    truth_b, pred_b = np.ones(10, int), np.zeros(10, int)
    pooled = ConfusionMatrix(2)
    per_scene = []
    for p, t in ((pred_a, truth_a), (pred_b, truth_b)):
        one = ConfusionMatrix(2)
        one.update(p, t)
        per_scene.append(one.scores((0, 1))["mean_f1"])
        pooled.update(p, t)
    np.testing.assert_array_equal(pooled.matrix, [[90, 0], [10, 10]])
    pooled_f1 = pooled.scores((0, 1))["mean_f1"]
    assert pooled_f1 == pytest.approx((180 / 190 + 20 / 30) / 2)
    assert per_scene == [1.0, 0.0]
    assert pooled_f1 != pytest.approx(np.mean(per_scene))


# ----------------------------------------------------------------------------- eroded mask


def test_eroded_eval_mask_split_image():
    labels = np.zeros((20, 20), int)
    labels[:, 10:] = 1
    mask = eroded_eval_mask(labels, radius=3)
    expect_cols = np.r_[np.ones(7), np.zeros(6), np.ones(7)].astype(bool)  # 7..12 excluded
    np.testing.assert_array_equal(mask, np.broadcast_to(expect_cols, (20, 20)))
    assert mask[0, 0] and mask[-1, -1]  # the image border is not a boundary
    labels[0, 0] = 255
    assert not eroded_eval_mask(labels, radius=3)[0, 0]


# ----------------------------------------------------------------------------- boundary F1


def _square(shift: int = 0, size: int = 48) -> np.ndarray:
    lab = np.zeros((size, size), int)
    lab[12:36, 12 + shift:36 + shift] = 1
    return lab


def _split(shift: int = 0) -> np.ndarray:
    lab = np.zeros((32, 32), int)
    lab[:, 16 + shift:] = 1
    return lab


def test_boundary_f1_perfect_is_one():
    bf = BoundaryF1(2, tolerance=2)
    bf.update(_square(), _square())
    r = bf.result()
    np.testing.assert_array_equal(r["f1"], [1.0, 1.0])
    assert r["mean"] == 1.0


@pytest.mark.parametrize(("shift", "tol", "ok"), [(1, 2, True), (2, 2, True), (3, 2, False)])
def test_boundary_f1_shift_tolerance(shift, tol, ok):
    for make in (_square, _split):
        bf = BoundaryF1(2, tolerance=tol)
        bf.update(make(shift), make())
        mean = bf.result()["mean"]
        assert (mean == 1.0) if ok else (mean < 1.0)
    if not ok:  # a straight edge shifted past the tolerance matches nowhere
        bf = BoundaryF1(2, tolerance=tol)
        bf.update(_split(shift), _split())
        assert bf.result()["mean"] == 0.0


def test_boundary_f1_shift_and_distance_transform_paths_agree(monkeypatch):
    rng = np.random.default_rng(1)
    truth = np.kron(rng.integers(0, 3, (8, 8)), np.ones((6, 6), int))
    pred = np.roll(truth, 1, axis=0)
    pred[rng.random(pred.shape) > 0.95] = 2
    for tol in (0, 1, 1.5, 2, 3):
        a = BoundaryF1(3, tolerance=tol)
        a.update(pred, truth)
        monkeypatch.setattr(metrics, "_MAX_SHIFT_OFFSETS", 0)
        b = BoundaryF1(3, tolerance=tol)
        b.update(pred, truth)
        monkeypatch.undo()
        np.testing.assert_array_equal(a.counts, b.counts)


def test_boundary_f1_ignore_regions_and_pooling():
    truth = _split()
    truth[4:10, 2:8] = 255  # unlabelled block inside class 0
    pred = _split()
    pred[4:10, 2:8] = 1  # whatever the model says there is not a boundary error
    bf = BoundaryF1(2)
    bf.update(pred, truth)
    assert bf.result()["mean"] == 1.0
    # ignore_mask drops counts but nothing else: masking the real edge leaves no boundary.
    bf = BoundaryF1(2)
    bf.update(pred, truth, ignore_mask=np.ones_like(truth, bool))
    assert np.isnan(bf.result()["mean"])
    # Counts pool over scenes: a perfect scene and a hopeless one.
    bf = BoundaryF1(2)
    bf.update(_split(), _split())
    bf.update(_split(3), _split())
    r = bf.result(evaluated=(0, 1))
    np.testing.assert_allclose(r["precision"], [0.5, 0.5])
    np.testing.assert_allclose(r["f1"], [0.5, 0.5])


def test_boundary_f1_class_missing_on_one_side():
    bf = BoundaryF1(3)
    bf.update(_split(), np.zeros((32, 32), int))  # truth has no boundary at all
    r = bf.result()
    np.testing.assert_array_equal(r["f1"][:2], [0.0, 0.0])
    assert np.isnan(r["f1"][2])


# ----------------------------------------------------------------------------- convenience


def test_evaluate_predictions():
    truth = _square()
    pred = _square(1)
    ev = evaluate_predictions([(pred, truth, None), (truth, truth, eroded_eval_mask(truth))], 2)
    full, eroded = ConfusionMatrix(2), ConfusionMatrix(2)
    for p in (pred, truth):
        full.update(p, truth)
        eroded.update(p, truth, eroded_eval_mask(truth))
    np.testing.assert_array_equal(ev.full.matrix, full.matrix)
    np.testing.assert_array_equal(ev.eroded.matrix, eroded.matrix)
    assert ev.eroded.total < ev.full.total
    # A 1-px shift is invisible to the eroded protocol and within the boundary tolerance.
    assert ev.eroded.scores((0, 1))["oa"] == 1.0
    assert ev.full.scores((0, 1))["oa"] < 1.0
    assert ev.boundary.result()["mean"] == 1.0
