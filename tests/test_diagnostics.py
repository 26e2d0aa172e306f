"""The per-pixel sanity baseline and the dataset diagnostics."""

from dataclasses import replace

import numpy as np
import pytest

from aerialseg.data import synthetic as syn
from aerialseg.data.classes import DUBAI, IGNORE_INDEX, ISPRS
from aerialseg.data.registry import SplitData, data_config
from aerialseg.data.scene import Scene
from aerialseg.diagnostics import (
    PixelBaseline,
    count_objects,
    dataset_summary,
    fit_pixel_baseline,
    linear_pixel_classifier,
    per_pixel_baseline,
)
from aerialseg.evaluation import Accumulator, Evaluation
from aerialseg.metrics import eroded_eval_mask, scores

CAR, CLUT = 4, 5


def _scene(area: int, split: str, size: int = 128) -> Scene:
    bands, labels = syn.generate_scene(area, size=size, seed=0)
    return Scene(f"area{area}", bands, syn.BAND_NAMES, labels, ISPRS, split,
                 eroded_eval_mask(labels, 3))


@pytest.fixture(scope="module")
def split():
    return SplitData(data_config("synthetic", "smoke"),
                     [_scene(1, "train"), _scene(3, "train")],
                     [_scene(11, "val"), _scene(15, "val")])


@pytest.fixture(scope="module")
def baseline(split):
    return per_pixel_baseline(split, max_pixels=8000)


def test_result_is_an_evaluation_with_the_protocols_confusions(split, baseline):
    assert isinstance(baseline, PixelBaseline)
    assert isinstance(baseline.evaluation, Evaluation)
    assert baseline.bands == syn.BAND_NAMES and baseline.converged
    assert baseline.train_pixels == 8000
    for protocol in ("eroded", "full"):
        cm = baseline.confusion[protocol]
        assert cm.shape == (6, 6) and cm.dtype == np.int64
        # scores are the protocol's, from that one matrix, over the evaluated classes
        s = scores(cm, ISPRS.evaluated)
        assert baseline.scores[protocol]["oa"] == s["oa"]
        np.testing.assert_array_equal(baseline.scores[protocol]["f1"], s["f1"])
    eroded = sum(int((s.eval_mask & (s.labels != IGNORE_INDEX)).sum()) for s in split.val)
    full = sum(int((s.labels != IGNORE_INDEX).sum()) for s in split.val)
    assert baseline.confusion["eroded"].sum() == eroded
    assert baseline.confusion["full"].sum() == full
    # rows are the truth: row sums are the validation class counts
    truth = sum(np.bincount(s.labels[s.eval_mask], minlength=6) for s in split.val)
    np.testing.assert_array_equal(baseline.confusion["eroded"].sum(1), truth)
    # clutter is not evaluated, so not trained on, so never predicted
    assert CLUT not in baseline.train_classes
    assert baseline.confusion["full"][:, CLUT].sum() == 0
    assert baseline.oa == baseline.scores["eroded"]["oa"]
    assert baseline.mean_f1 == pytest.approx(np.mean([baseline.f1[n]
                                                      for n in ISPRS.evaluated_names]))
    assert 0.5 < baseline.oa <= 1.0
    assert 0 <= baseline.evaluation.ece <= 1
    row = baseline.summary()
    assert row["bands"] == "ir+r+g+dsm+ndsm" and set(row) >= {"oa", "mean_f1", "f1_car"}


def test_same_as_feeding_the_accumulator_directly(split, baseline):
    acc = Accumulator(ISPRS)
    for s in split.val:
        probs = baseline.predict_proba(s)
        assert probs.shape == (6, *s.shape) and probs.dtype == np.float32
        np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
        acc.add(s, probs)
    ev = acc.result()
    for p in ("eroded", "full"):
        np.testing.assert_array_equal(ev.confusion[p], baseline.confusion[p])


def test_deterministic_and_band_subsets(split, baseline):
    again = per_pixel_baseline(split, max_pixels=8000)
    np.testing.assert_array_equal(again.confusion["eroded"], baseline.confusion["eroded"])
    irrg = per_pixel_baseline(split, ("ir", "r", "g"), max_pixels=8000)
    assert irrg.bands == ("ir", "r", "g")
    assert irrg.confusion["eroded"].sum() == baseline.confusion["eroded"].sum()
    with pytest.raises(KeyError, match="missing"):
        per_pixel_baseline(split, ("r", "g", "b"))
    with pytest.raises(ValueError, match="training and validation"):
        fit_pixel_baseline(split.train, [], None)


def test_missing_eval_mask_is_computed_and_maps_are_kept(split):
    val = [replace(s, eval_mask=None) for s in split.val]
    r = fit_pixel_baseline(split.train, val, max_pixels=4000, keep_maps=1)
    ref = fit_pixel_baseline(split.train, split.val, max_pixels=4000)
    np.testing.assert_array_equal(r.confusion["eroded"], ref.confusion["eroded"])
    assert list(r.evaluation.maps) == ["area11"]
    assert all(s.eval_mask is None for s in val)  # the caller's scenes are left alone


def test_separable_toy_is_perfect_and_other_class_tables_work():
    """Any class table and bands: here Dubai's, with the class written into one band."""
    rng = np.random.default_rng(0)

    def toy(name, split):
        labels = rng.integers(0, 5, (40, 40))
        labels[:3] = IGNORE_INDEX  # unlabeled pixels are neither trained nor counted
        bands = rng.normal(0, 1, (3, 40, 40)).astype(np.float32)
        bands[1] = np.where(labels == IGNORE_INDEX, 0, labels) * 4.0
        return Scene(name, bands, ("r", "g", "b"), labels, DUBAI, split,
                     labels != IGNORE_INDEX)

    r = fit_pixel_baseline([toy("a", "train")], [toy("b", "val")])
    assert r.confusion["eroded"].shape == (5, 5)
    assert r.oa == 1.0 and r.mean_f1 == 1.0
    assert r.confusion["eroded"].sum() == 37 * 40


def test_linear_pixel_classifier_and_summary_use_the_baseline(split):
    r = linear_pixel_classifier(split.train, split.val, ("ir", "r", "g"), n=4000)
    ref = fit_pixel_baseline(split.train, split.val, ("ir", "r", "g"), max_pixels=4000)
    assert r["accuracy"] == ref.oa
    np.testing.assert_allclose(r["confusion_rate"].sum(1)[list(ISPRS.evaluated)], 1.0)
    ds = dataset_summary(split.train, split.val, n=4000)
    assert list(ds["bands"].values) == ["spectral", "spectral+height"]
    assert ds["linear_accuracy"].sel(bands="spectral") == pytest.approx(ref.oa)
    assert float(ds["linear_accuracy"].sel(bands="spectral+height")) > ref.oa


def test_count_objects():
    lab = np.zeros((60, 60), np.int64)
    lab[5:15, 5:30] = CAR  # 250 px
    lab[20:30, 5:30] = CAR
    lab[40:43, 40:43] = CAR  # 9 px: a sliver, not a car
    s = Scene("x", np.zeros((1, 60, 60), np.float32), ("r",), lab, ISPRS)
    assert count_objects([s, s], CAR) == 4
    assert count_objects([s], CAR, min_pixels=5) == 3


def test_fast_probabilities_equal_sklearns(split, baseline):
    s = split.val[0]
    x = s.bands.reshape(5, -1).T.astype(np.float64)
    x[:, 3] -= np.median(x[:, 3])  # dsm is centred per scene
    ref = baseline.model.predict_proba(x).T.reshape(-1, *s.shape)
    got = baseline.predict_proba(s)[list(baseline.train_classes)]
    np.testing.assert_allclose(got, ref, atol=2e-5)
