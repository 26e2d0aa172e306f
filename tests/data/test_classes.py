"""Class tables: colour <-> index coding, unknown colours, snapping."""

from pathlib import Path

import numpy as np
import pytest
import tifffile

from aerialseg.data.classes import DUBAI, IGNORE_INDEX, ISPRS, ClassTable, LabelColourError

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "isprs-samples"


def test_isprs_table():
    assert ISPRS.names == ("impervious", "building", "low_vegetation", "tree", "car", "clutter")
    assert ISPRS.colours[1] == (0, 0, 255) and ISPRS.colours[5] == (255, 0, 0)
    assert ISPRS.evaluated == (0, 1, 2, 3, 4)  # clutter is not evaluated
    assert ISPRS.evaluated_names[-1] == "car"
    assert IGNORE_INDEX == 255


@pytest.mark.parametrize("table", [ISPRS, DUBAI])
def test_encode_decode_round_trip(table):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, table.num_classes, (40, 50))
    rgb = table.encode(labels)
    assert rgb.shape == (40, 50, 3) and rgb.dtype == np.uint8
    assert np.array_equal(table.decode(rgb), labels)


def test_ignore_encodes_black_and_decodes_back_when_asked():
    labels = np.array([[0, 255], [4, 5]])
    rgb = ISPRS.encode(labels)
    assert rgb[0, 1].tolist() == [0, 0, 0]
    assert np.array_equal(ISPRS.decode(rgb, extra_ignore=((0, 0, 0),)), labels)
    with pytest.raises(LabelColourError):
        ISPRS.decode(rgb)  # black is not an ISPRS class


def test_dubai_unlabeled_and_black_are_ignored():
    rgb = np.array([[[0x9B, 0x9B, 0x9B], [0, 0, 0], [0xE2, 0xA9, 0x29]]], np.uint8)
    assert DUBAI.decode(rgb).tolist() == [[IGNORE_INDEX, IGNORE_INDEX, 4]]
    assert DUBAI.names[4] == "water"


def test_unknown_colours_are_listed_with_counts_and_source():
    rgb = ISPRS.encode(np.zeros((4, 4), np.int64))
    rgb[0, :3] = (10, 20, 30)
    rgb[1, 0] = (1, 2, 3)
    with pytest.raises(LabelColourError) as err:
        ISPRS.decode(rgb, source="gt.tif")
    msg = str(err.value)
    assert msg.startswith("gt.tif: 4 pixels")
    assert "#0A141E (3 px)" in msg and "#010203 (1 px)" in msg
    assert "impervious #FFFFFF" in msg and "snap=True" in msg
    assert msg.index("#0A141E") < msg.index("#010203")  # most frequent first


def test_snap_maps_to_the_nearest_palette_colour():
    rgb = np.array([[[250, 250, 250], [5, 5, 240], [0, 250, 10], [240, 5, 5]]], np.uint8)
    assert ISPRS.decode(rgb, snap=True).tolist() == [[0, 1, 3, 5]]
    # snapping may also land on an ignore colour
    near_grey = np.array([[[150, 150, 150]]], np.uint8)
    assert DUBAI.decode(near_grey, snap=True).tolist() == [[IGNORE_INDEX]]


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="RGB"):
        ISPRS.decode(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="one colour per class"):
        ClassTable("x", ("a", "b"), ((0, 0, 0),), (0,))
    with pytest.raises(ValueError, match="out of range"):
        ClassTable("x", ("a",), ((0, 0, 0),), (3,))


def test_real_resampled_vaihingen_label_snaps():
    path = SAMPLES / "vaihingen-area1-resized" / "top_mosaic_09cm_area1_label_resized.tif"
    if not path.is_file():
        pytest.skip(f"real ISPRS samples not found at {SAMPLES.resolve()} (they live beside "
                    "the checkout in ../shared/data; see shared/data/README.md)")
    rgb = tifffile.imread(path)[..., :3]
    with pytest.raises(LabelColourError, match="top_mosaic_09cm_area1_label_resized"):
        ISPRS.decode(rgb, source=path.name)
    labels = ISPRS.decode(rgb, snap=True)
    exact = ISPRS.encode(labels) == rgb
    assert exact.all(-1).mean() > 0.85  # most pixels were exact palette colours
    shares = np.bincount(labels.ravel(), minlength=6) / labels.size
    assert shares[1] > 0.2 and shares[0] > 0.1  # area1: buildings and roads dominate
