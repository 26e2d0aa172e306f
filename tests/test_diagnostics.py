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


def test_eroded_share_balanced_accuracy_and_tiles(split):
    from aerialseg.diagnostics import balanced_accuracy, eroded_share, split_tiles

    ev = list(ISPRS.evaluated)
    kept = sum(int((s.eval_mask & np.isin(s.labels, ev)).sum()) for s in split.val)
    total = sum(int(np.isin(s.labels, ev).sum()) for s in split.val)
    assert eroded_share(split.val) == pytest.approx(kept / total)
    assert 0.5 < eroded_share(split.val) < 1.0
    cm = np.array([[8, 2, 0], [0, 1, 0], [0, 0, 0]])  # class 2 absent: not averaged
    assert balanced_accuracy(cm, (0, 1, 2)) == pytest.approx((0.8 + 1.0) / 2)
    assert split_tiles(split) == {"train": ["area1", "area3"], "val": ["area11", "area15"]}
    parts = SplitData(split.cfg, [replace(split.train[0], name="tile10_part001"),
                                  replace(split.train[0], name="tile4_part002")],
                      [replace(split.val[0], name="tile2_part001")])
    assert split_tiles(parts) == {"train": ["tile4", "tile10"], "val": ["tile2"]}


def _mmseg_clip(root, size=64):
    """A fake mmsegmentation Vaihingen clip: the class is written into the IR band."""
    from PIL import Image

    rng = np.random.default_rng(0)
    ann = rng.integers(1, 6, (size, size)).astype(np.uint8)  # 1..5: impervious..car
    ann[:, : size // 8] = 0  # boundary (ignore)
    img = rng.integers(0, 30, (size, size, 3)).astype(np.uint8)
    img[..., 0] = ann * 40
    (root / "img_dir").mkdir(parents=True)
    (root / "ann_dir").mkdir()
    Image.fromarray(img).save(root / "img_dir" / "area1_0_0_64_64.png")
    Image.fromarray(ann).save(root / "ann_dir" / "area1_0_0_64_64.png")


def test_vaihingen_crop_folds_and_the_context_table(tmp_path, split):
    from aerialseg.data.errors import DatasetNotFoundError
    from aerialseg.diagnostics import (
        pixel_baseline_context,
        pixel_baseline_sentences,
        vaihingen_crop_folds,
    )

    assert vaihingen_crop_folds(tmp_path / "absent") is None
    _mmseg_clip(tmp_path / "crop")
    folds = vaihingen_crop_folds(tmp_path / "crop")
    assert len(folds) == 2
    a, b = folds
    assert a.train[0].name == b.val[0].name and a.val[0].name == b.train[0].name
    assert a.train[0].band_names == ("ir", "r", "g") and a.train[0].shape == (64, 32)
    assert (a.train[0].labels[:, :8] == IGNORE_INDEX).all()
    assert not a.train[0].eval_mask[:, :8].any()

    def load(name, profile):
        raise DatasetNotFoundError(f"{name} not found\nsecond line")

    df = pixel_baseline_context(split, dataset="synthetic", profile="smoke",
                                vaihingen_root=tmp_path / "crop", load=load, max_pixels=3000)
    assert list(df["data"]) == ["synthetic", "synthetic", "vaihingen crop"]
    assert list(df["bands"]) == ["IR-R-G", "IR-R-G-DSM-nDSM", "IR-R-G"]
    assert df.loc[2, "oa"] == pytest.approx(1.0)  # the class is in the IR band
    assert df.attrs["skipped"] == [("dubai", "dubai not found")]
    text = " ".join(pixel_baseline_sentences(df))
    assert "adding the two height bands" in text
    assert "Against the real Vaihingen clip on the same bands (IR-R-G)" in text
    assert "So the synthetic scenes are not easier" in text  # the toy clip is separable


def test_pixel_baseline_sentences_say_whether_the_synthetic_data_are_easier():
    import pandas as pd

    from aerialseg.diagnostics import BASELINE_COLUMNS, pixel_baseline_sentences

    def frame(real_oa, real_bal):
        return pd.DataFrame([("synthetic", "IR-R-G", "", 0.70, 0.6, 0.60),
                             ("synthetic", "IR-R-G-DSM-nDSM", "", 0.90, 0.8, 0.80),
                             ("vaihingen crop", "IR-R-G", "", real_oa, 0.5, real_bal)],
                            columns=list(BASELINE_COLUMNS))

    harder = " ".join(pixel_baseline_sentences(frame(0.72, 0.62)))
    assert "So the synthetic scenes are not easier per pixel" in harder
    assert "−2.0 points of OA" in harder
    easier = " ".join(pixel_baseline_sentences(frame(0.60, 0.50)))
    assert "So the synthetic scenes are easier per pixel" in easier
    mixed = " ".join(pixel_baseline_sentences(frame(0.60, 0.62)))
    assert "So the evidence is mixed" in mixed
    assert pixel_baseline_sentences(frame(0.6, 0.5).iloc[:2])[0].startswith("On the synthetic")
