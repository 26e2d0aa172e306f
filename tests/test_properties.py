"""Property-based tests: colour coding, tiling of arbitrary sizes, metric invariants."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from aerialseg.data.classes import DUBAI, IGNORE_INDEX, ISPRS
from aerialseg.inference import iter_halo_tiles, iter_tiles
from aerialseg.metrics import ConfusionMatrix, scores

label_maps = arrays(np.int64, st.tuples(st.integers(1, 20), st.integers(1, 20)),
                    elements=st.integers(0, 5))


@given(label_maps)
def test_colour_roundtrip(labels):
    assert np.array_equal(ISPRS.decode(ISPRS.encode(labels)), labels)


@given(label_maps)
def test_dubai_roundtrip_and_ignore(labels):
    lab = np.where(labels == 5, IGNORE_INDEX, labels)
    rgb = DUBAI.encode(np.where(lab == IGNORE_INDEX, 0, lab))
    rgb[lab == IGNORE_INDEX] = (0x9B, 0x9B, 0x9B)
    assert np.array_equal(DUBAI.decode(rgb), lab)


@given(st.integers(1, 300), st.integers(1, 300), st.integers(8, 96), st.integers(0, 3))
@settings(max_examples=60)
def test_halo_cores_partition_the_scene(h, w, core, halo):
    tile = core + 2 * halo
    count = np.zeros((h, w), int)
    for (y0, y1, x0, x1), (cy0, cy1, cx0, cx1) in iter_halo_tiles(h, w, tile, halo):
        assert y0 <= cy0 < cy1 <= y1 and x0 <= cx0 < cx1 <= x1
        assert y1 - y0 <= tile and x1 - x0 <= tile
        count[cy0:cy1, cx0:cx1] += 1
    assert (count == 1).all()


@given(st.integers(1, 300), st.integers(1, 300), st.integers(8, 96), st.integers(0, 7))
@settings(max_examples=60)
def test_overlapping_tiles_cover_the_scene(h, w, tile, overlap):
    covered = np.zeros((h, w), bool)
    for y, x, th, tw in iter_tiles(h, w, tile, overlap):
        covered[y:y + th, x:x + tw] = True
        assert y + th <= h and x + tw <= w
    assert covered.all()


@given(label_maps, st.data())
def test_metric_invariants(truth, data):
    pred = data.draw(arrays(np.int64, truth.shape, elements=st.integers(0, 5)))
    cm = ConfusionMatrix(6)
    cm.update(pred, truth)
    assert cm.matrix.sum() == truth.size
    s = scores(cm.matrix, (0, 1, 2, 3, 4))
    assert 0.0 <= s["oa"] <= 1.0 or np.isnan(s["oa"])
    f1, iou = s["f1"], s["iou"]
    ok = ~np.isnan(f1) & ~np.isnan(iou)
    # F1 = 2 IoU / (1 + IoU) for every class
    assert np.allclose(f1[ok], 2 * iou[ok] / (1 + iou[ok]))
    perfect = ConfusionMatrix(6)
    perfect.update(truth, truth)
    sp = scores(perfect.matrix, (0, 1, 2, 3, 4))
    if (truth < 5).any():
        assert sp["oa"] == 1.0
