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


# ------------------------------------------------------------- snapping never guesses

def test_snap_black_is_ignore_not_building():
    # black is as far from blue (building) as from green and red: it used to snap to building
    rgb = np.array([[[0, 0, 0], [8, 4, 6]]], np.uint8)
    assert ISPRS.decode(rgb, snap=True).tolist() == [[IGNORE_INDEX, IGNORE_INDEX]]
    assert ISPRS.boundary_colours == ((0, 0, 0),)
    with pytest.raises(LabelColourError):
        ISPRS.decode(rgb)  # exact decoding still refuses black in a full ground truth


def test_snap_two_colour_blends_take_the_nearer_colour_ties_are_ignore():
    white, blue = np.array([255, 255, 255]), np.array([0, 0, 255])
    blends = [np.rint(white + t * (blue - white)).astype(np.uint8) for t in (0.3, 0.7)]
    assert ISPRS.decode(np.array([blends], np.uint8), snap=True).tolist() == [[0, 1]]
    # halfway between building (blue) and low vegetation (cyan), or white and tree (green):
    # either class would be a guess
    ties = np.array([[[0, 127, 255], [128, 255, 128], [127, 0, 128]]], np.uint8)
    assert ISPRS.decode(ties, snap=True).tolist() == [[IGNORE_INDEX] * 3]


def test_snap_refuses_colours_far_from_the_palette():
    rgb = ISPRS.encode(np.zeros((10, 10), np.int64))
    rgb[:4, :4] = (200, 60, 120)  # 16 px, far from every colour and every blend
    with pytest.raises(LabelColourError) as err:
        ISPRS.decode(rgb, snap=True, source="labels/area7.tif")
    msg = str(err.value)
    assert msg.startswith("labels/area7.tif: colours too far from the isprs palette")
    assert "#C83C78 (16 px)" in msg and "never guesses" in msg
    # a few isolated far pixels (three-colour blends in resampled labels) become ignore
    rgb[:4, :4] = 255
    rgb[0, 0] = rgb[5, 5] = (200, 60, 120)
    out = ISPRS.decode(rgb, snap=True)
    assert out[0, 0] == out[5, 5] == IGNORE_INDEX and (out[1:4] == 0).all()


def test_real_resized_label_snaps_without_guessing():
    path = SAMPLES / "vaihingen-area1-resized" / "top_mosaic_09cm_area1_label_resized.tif"
    if not path.is_file():
        pytest.skip(f"real ISPRS samples not found at {SAMPLES.resolve()} (they live beside "
                    "the checkout in ../shared/data; see shared/data/README.md)")
    rgb = tifffile.imread(path)[..., :3]
    labels = ISPRS.decode(rgb, snap=True, source=path.name)
    exact = (ISPRS.encode(labels) == rgb).all(-1)
    ignored = labels == IGNORE_INDEX
    # exact palette pixels keep their class; the few ignored ones are far three-colour blends
    # and midpoint blends (0.1 %)
    assert exact.mean() > 0.9 and ignored.mean() < 0.002
    # a black border (the ISPRS eroded-boundary colour) is ignore, never a class
    rgb2 = rgb.copy()
    rgb2[:5] = 0
    assert (ISPRS.decode(rgb2, snap=True)[:5] == IGNORE_INDEX).all()
    # the same file read with the wrong palette is refused, naming file and colours
    with pytest.raises(LabelColourError, match=r"top_mosaic_09cm_area1_label_resized.*px\)"):
        DUBAI.decode(rgb, snap=True, source=path.name)


def test_decode_indices():
    v = np.array([[0, 1, 7], [255, 3, 2]], np.uint8)
    from aerialseg.data.classes import LOVEDA, LabelValueError

    assert LOVEDA.decode_indices(v, offset=1, ignore_values=(0, 255)).tolist() == [
        [IGNORE_INDEX, 0, 6], [IGNORE_INDEX, 2, 1]]
    with pytest.raises(LabelValueError, match=r"m\.png: 1 pixels .* 9 \(1 px\). Valid: 1\.\.7"):
        LOVEDA.decode_indices(np.array([[9, 1]], np.uint8), offset=1, ignore_values=(0,),
                              source="m.png")
