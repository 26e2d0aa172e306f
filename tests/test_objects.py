import numpy as np
import pytest

from aerialseg.objects import (
    KINDS,
    ObjectCounter,
    count_maps,
    error_overlay,
    match_class,
    object_errors,
)


def _truth() -> np.ndarray:
    """20x20 background (0) with two class-1 squares: A at rows 2-7, B at rows 12-17."""
    t = np.zeros((20, 20), np.int64)
    t[2:8, 2:8] = 1  # object A, 36 px
    t[12:18, 2:8] = 1  # object B, 36 px
    return t


def _counts(pred, truth, cls=1, **kw):
    return match_class(pred, truth, cls, **kw).counts()


def test_perfect_prediction_has_no_errors():
    t = _truth()
    assert _counts(t, t) == {"objects": 2, "segments": 2, "spurious": 0, "missed": 0,
                             "split": 0, "merged": 0}
    # background is one connected object too
    assert _counts(t, t, cls=0)["objects"] == 1


def test_spurious_blob_and_missed_object():
    t = _truth()
    p = t.copy()
    p[12:18, 2:8] = 0  # B entirely missed
    p[2:5, 14:17] = 1  # a blob where there is only background
    c = _counts(p, t)
    assert c["missed"] == 1 and c["spurious"] == 1
    assert c["objects"] == 2 and c["segments"] == 2
    m = match_class(p, t, 1)
    assert m.truth_labels[14, 4] in m.missed  # the missed one is B
    assert m.pred_labels[3, 15] in m.spurious


def test_min_overlap_fraction_decides_matching():
    t = _truth()
    p = t.copy()
    p[12:18, 2:8] = 0
    p[12:14, 2:8] = 1  # 12 of B's 36 px found (1/3)
    assert _counts(p, t, min_overlap=0.5)["missed"] == 1
    assert _counts(p, t, min_overlap=0.3)["missed"] == 0
    assert _counts(p, t, min_overlap=0.0)["missed"] == 0  # any overlap matches
    # a segment sticking out of A: 36 px on A + 40 px outside -> < 50 % on truth
    q = t.copy()
    q[2:8, 8:15] = 1
    q[8:9, 2:8] = 0
    assert _counts(q, t, min_overlap=0.5)["spurious"] == 1
    assert _counts(q, t, min_overlap=0.4)["spurious"] == 0


def test_split_and_merged():
    t = _truth()
    p = t.copy()
    p[2:8, 5] = 0  # a crack splits A into two 18 px halves
    c = _counts(p, t)
    assert c["split"] == 1 and c["segments"] == 3 and c["missed"] == 0 and c["spurious"] == 0
    q = t.copy()
    q[8:12, 2:8] = 1  # a bridge joins A and B into one segment (72 of 96 px on truth)
    c = _counts(q, t)
    assert c["merged"] == 1 and c["segments"] == 1 and c["spurious"] == 0 and c["missed"] == 0


def test_connectivity_and_min_size():
    t = np.zeros((10, 10), np.int64)
    p = t.copy()
    p[2, 2] = p[3, 3] = 1  # two diagonal neighbours: one segment with 8-, two with 4-conn.
    p[7, 7] = 1
    assert _counts(p, t, connectivity=8)["spurious"] == 2
    assert _counts(p, t, connectivity=4)["spurious"] == 3
    assert _counts(p, t, connectivity=8, min_size=2)["spurious"] == 1
    with pytest.raises(ValueError, match="connectivity"):
        _counts(p, t, connectivity=6)


def test_ignore_pixels_are_outside_the_domain():
    t = _truth()
    t[12:18, 2:8] = 255  # B unlabelled
    p = _truth()  # predicts B: not spurious, it lies in ignore
    assert _counts(p, t) == {"objects": 1, "segments": 1, "spurious": 0, "missed": 0,
                             "split": 0, "merged": 0}


def test_counter_sums_scenes_and_classes():
    t = _truth()
    p = t.copy()
    p[12:18, 2:8] = 0
    one = object_errors(p, t, (0, 1))
    assert one.shape == (2, len(KINDS))
    counter = ObjectCounter((0, 1))
    counter.update(p, t)
    counter.update(t, t)
    np.testing.assert_array_equal(counter.counts, one + object_errors(t, t, (0, 1)))
    assert counter.total()["missed"] == 1
    assert counter.result()["objects"].tolist() == [2, 4]
    maps = {"a": {"pred": p.astype(np.uint8), "truth": t.astype(np.uint8)},
            "b": {"pred": t.astype(np.uint8), "truth": t.astype(np.uint8)}}
    np.testing.assert_array_equal(count_maps(maps, (0, 1)), counter.counts)


def test_error_overlay_marks_spurious_and_missed_pixels():
    t = _truth()
    p = t.copy()
    p[12:18, 2:8] = 0
    p[2:5, 14:17] = 1
    ov = error_overlay(p, t, (1,))
    assert (ov == 2).sum() == 36 and (ov[12:18, 2:8] == 2).all()
    assert (ov == 1).sum() == 9 and (ov[2:5, 14:17] == 1).all()


def test_bad_input():
    with pytest.raises(ValueError, match="one shape"):
        match_class(np.zeros((3, 3)), np.zeros((3, 4)), 1)
    with pytest.raises(ValueError, match="min_overlap"):
        match_class(np.zeros((3, 3)), np.zeros((3, 3)), 1, min_overlap=2.0)


def test_counts_dataarray_and_tables():
    from aerialseg.objects import counts_dataarray, counts_per_class, counts_table

    a = np.zeros((2, len(KINDS)))
    a[:, KINDS.index("spurious")] = [3, 1]
    b = a.copy()
    b[:, KINDS.index("spurious")] = [5, 3]
    da = counts_dataarray({("base", 0): a, ("base", 1): b, ("base_lossd", 0): a},
                          ["road", "car"])
    assert da.dims == ("method", "seed", "class", "kind")
    assert np.isnan(da.sel({"method": "base_lossd", "seed": 1})).all()
    table = counts_table(da)
    assert table.loc["base", "spurious"] == "6.0 ± 2.8"  # totals 4 and 8
    assert table.loc["base_lossd", "spurious"] == "4"
    assert counts_table(da, classes=["car"]).loc["base", "spurious"] == "2.0 ± 1.4"
    per_class = counts_per_class(da)
    assert per_class.loc["road", ("spurious", "base")] == 4.0


def test_sensitivity_table():
    from aerialseg.objects import sensitivity_table

    t = _truth()
    p = t.copy()
    p[12:18, 2:8] = 0
    p[12:13, 2:8] = 1  # 6 of B's 36 px found
    p[0, 19] = 1  # a one-pixel speckle
    maps = {("a", 0): {"s": {"pred": p.astype(np.uint8), "truth": t.astype(np.uint8)}},
            ("a", 1): {"s": {"pred": t.astype(np.uint8), "truth": t.astype(np.uint8)}}}
    df = sensitivity_table(maps, (1,), min_sizes=(1, 2), min_overlaps=(0.0, 0.5))
    assert df.loc[(1, 0.0), ("spurious", "a")] == 0.5  # speckle, one of two seeds
    assert df.loc[(2, 0.0), ("spurious", "a")] == 0.0  # speckle below min_size
    assert df.loc[(1, 0.0), ("missed", "a")] == 0.0  # any overlap finds B
    assert df.loc[(1, 0.5), ("missed", "a")] == 0.5  # 1/6 of B is not enough
