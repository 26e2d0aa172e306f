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


def _maps(*pairs):
    return {f"s{i}": {"pred": p.astype(np.uint8), "truth": t.astype(np.uint8)}
            for i, (p, t) in enumerate(pairs)}


def test_rules_share_one_pass_and_match_the_single_rule_counts():
    from aerialseg.objects import object_errors_by_rule

    t = _truth()
    p = t.copy()
    p[12:18, 2:8] = 0
    p[12:13, 2:8] = 1  # 6 of B's 36 px found
    p[0, 19] = 1  # a one-pixel speckle
    rules = [(1, 0.0), (2, 0.0), (1, 0.5), (10, 0.5)]
    got = object_errors_by_rule(p, t, (0, 1), rules)
    for r, (size, overlap) in enumerate(rules):
        np.testing.assert_array_equal(
            got[r], object_errors(p, t, (0, 1), min_overlap=overlap, min_size=size))
    spur, miss = KINDS.index("spurious"), KINDS.index("missed")
    assert got[0, 1, spur] == 1 and got[1, 1, spur] == 0  # the speckle, then below min_size
    assert got[0, 1, miss] == 0 and got[2, 1, miss] == 1  # any overlap finds B; half does not


def test_tally_counts_per_scene_and_per_rule():
    from aerialseg.objects import ObjectTally, counts_frame, totals

    t = _truth()
    p = t.copy()
    p[12:18, 2:8] = 0  # B missed
    p[2:5, 14:17] = 1  # a spurious blob
    tally = ObjectTally((1,), ("building",), min_size=1, rules=((1, 0.5), (50, 0.5)))
    got = tally.add("a", 0, _maps((p, t), (t, t)))
    assert got["objects_missed"] == 1 and got["objects_spurious"] == 1
    assert got["objects_objects"] == 4  # two objects in each of two scenes
    tally.add("a", 1, _maps((t, t), (t, t)))
    tally.counter("b", 0)(type("Ev", (), {"maps": _maps((t, t), (p, t))})())
    da = tally.dataarray()
    assert da.dims == ("method", "seed", "scene", "class", "kind")
    assert da.sizes["scene"] == 2 and np.isnan(da.sel({"method": "b", "seed": 1})).all()
    tot = totals(da)
    assert float(tot.sel({"method": "a", "seed": 0, "kind": "missed"})) == 1
    frame = counts_frame(da)
    assert frame.loc["a", "missed"] == 0.5 and frame.loc["b", "spurious"] == 1.0
    sens = tally.sensitivity()
    assert sens.loc[(1, 0.5), "spurious|a"] == 0.5  # mean over seeds 0 and 1
    assert sens.loc[(50, 0.5), "spurious|a"] == 0.0  # no component of 50 px or more
    with pytest.raises(ValueError, match="same validation scenes"):
        tally.add("c", 0, _maps((t, t)))
