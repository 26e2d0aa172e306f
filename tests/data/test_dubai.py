"""The Dubai aerial set reader, on the real data beside the checkout and on tiny fakes."""

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aerialseg.data.classes import DUBAI, IGNORE_INDEX, LabelColourError
from aerialseg.data.dubai import load_dubai
from aerialseg.data.errors import DatasetNotFoundError

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
DUBAI_ROOT = SHARED / "dubai"


def _require_real():
    if not (DUBAI_ROOT / "Semantic segmentation dataset").is_dir():
        pytest.skip(f"Dubai aerial set not found at {DUBAI_ROOT.resolve()} (it lives beside "
                    "the checkout in ../shared/data; see shared/data/README.md)")


@pytest.fixture(scope="module")
def real():
    _require_real()
    return {split: load_dubai(DUBAI_ROOT, split) for split in ("train", "val")}


def test_real_split_sizes_and_names(real):
    train, val = real["train"], real["val"]
    assert len(train) == 36 and len(val) == 18  # 6 tiles x (6 + 3) parts
    assert {s.name for s in val} == {f"tile{t}_part{p:03d}" for t in range(1, 7)
                                     for p in (3, 6, 9)}
    assert not {s.name for s in train} & {s.name for s in val}
    assert all(s.split == "train" for s in train) and all(s.split == "val" for s in val)


def test_real_bands_and_labels_are_valid(real):
    counts = np.zeros(256, np.int64)
    for s in real["train"] + real["val"]:
        assert s.band_names == ("r", "g", "b")
        assert s.bands.dtype == np.float32 and s.bands.shape[0] == 3
        assert 0 <= s.bands.min() and s.bands.max() <= 1
        assert s.labels.dtype == np.int64 and s.labels.shape == s.bands.shape[1:]
        assert s.eval_mask is None and s.classes is DUBAI
        counts += np.bincount(s.labels.ravel(), minlength=256)
    valid = set(range(DUBAI.num_classes)) | {IGNORE_INDEX}
    assert set(np.flatnonzero(counts)) <= valid
    shares = counts / counts.sum()
    assert (shares[: DUBAI.num_classes] > 0.03).all()  # every class is well represented
    assert shares[IGNORE_INDEX] < 0.03  # unlabeled + black


def test_real_every_class_in_both_splits(real):
    for split in ("train", "val"):
        counts = sum(np.bincount(s.labels.ravel(), minlength=256) for s in real[split])
        assert (counts[: DUBAI.num_classes] > 0).all(), split


def test_root_may_be_the_dataset_folder_itself():
    _require_real()
    val = load_dubai(DUBAI_ROOT / "Semantic segmentation dataset", "val")
    assert len(val) == 18


def test_missing_dataset_names_kaggle_source(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dubai(tmp_path / "nope", "train")
    msg = str(err.value)
    for part in ("Dubai", "humansintheloop/semantic-segmentation-of-aerial-imagery", "CC0",
                 "Tile 1/images/image_part_001.jpg", str(tmp_path / "nope")):
        assert part in msg, part
    with pytest.raises(DatasetNotFoundError, match="Semantic segmentation dataset"):
        load_dubai(tmp_path, "train")


def _fake(root: Path, parts=(1, 2, 3), img_size=(12, 10), mask_size=(12, 10), palette=False,
          colour=(0x3C, 0x10, 0x98)):
    """A one-tile fake in the download layout; sizes are (width, height)."""
    tile = root / "Semantic segmentation dataset" / "Tile 1"
    (tile / "images").mkdir(parents=True)
    (tile / "masks").mkdir(parents=True)
    for k in parts:
        Image.new("RGB", img_size, (200, 100, 50)).save(tile / "images" / f"image_part_{k:03d}.jpg")
        mask = Image.new("RGB", mask_size, colour)
        mask.putpixel((0, 0), (0x9B, 0x9B, 0x9B))  # unlabeled
        mask.putpixel((1, 0), (0, 0, 0))  # black
        if palette:
            mask = mask.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
        mask.save(tile / "masks" / f"image_part_{k:03d}.png")
    return tile


def test_fake_split_palette_masks_and_ignore(tmp_path):
    _fake(tmp_path, palette=True)
    train, val = load_dubai(tmp_path, "train"), load_dubai(tmp_path, "val")
    assert [s.name for s in train] == ["tile1_part001", "tile1_part002"]
    assert [s.name for s in val] == ["tile1_part003"]
    lab = val[0].labels
    assert lab.shape == (10, 12)
    assert lab[0, 0] == IGNORE_INDEX and lab[0, 1] == IGNORE_INDEX
    assert (lab.ravel()[2:] == DUBAI.names.index("building")).all()
    with pytest.raises(ValueError, match="split"):
        load_dubai(tmp_path, "test")


def test_fake_one_pixel_size_difference_is_cropped_with_warning(tmp_path, caplog):
    _fake(tmp_path, parts=(3,), img_size=(12, 10), mask_size=(12, 11))
    with caplog.at_level(logging.WARNING, logger="aerialseg.data.dubai"):
        scene = load_dubai(tmp_path, "val")[0]
    assert scene.labels.shape == (10, 12) and scene.bands.shape == (3, 10, 12)
    assert "cropping" in caplog.text


def test_fake_large_size_difference_is_an_error(tmp_path):
    _fake(tmp_path, parts=(3,), img_size=(12, 10), mask_size=(24, 20))
    with pytest.raises(ValueError, match="image_part_003.png is 20x24 px"):
        load_dubai(tmp_path, "val")


def test_fake_missing_mask_and_unknown_colour(tmp_path):
    tile = _fake(tmp_path / "a")
    (tile / "masks" / "image_part_002.png").unlink()
    with pytest.raises(DatasetNotFoundError, match="image_part_002.png"):
        load_dubai(tmp_path / "a", "train")
    _fake(tmp_path / "b", colour=(1, 2, 3))
    with pytest.raises(LabelColourError, match=r"image_part_001\.png.*#010203"):
        load_dubai(tmp_path / "b", "train")
