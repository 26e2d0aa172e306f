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


def test_real_split_is_by_whole_tiles(real):
    train, val = real["train"], real["val"]
    assert len(train) == 36 and len(val) == 18  # tiles 1, 4, 5, 6 / tiles 2, 3; 9 parts each
    assert {s.name for s in val} == {f"tile{t}_part{p:03d}" for t in (2, 3)
                                     for p in range(1, 10)}
    assert {s.name.split("_")[0] for s in train} == {"tile1", "tile4", "tile5", "tile6"}
    # parts are interleaved across tiles, so max_scenes keeps several tiles
    assert [s.name for s in train[:4]] == ["tile1_part001", "tile4_part001", "tile5_part001",
                                           "tile6_part001"]
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
    val = load_dubai(DUBAI_ROOT / "Semantic segmentation dataset", "val", max_scenes=2)
    assert [s.name for s in val] == ["tile2_part001", "tile3_part001"]


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
          colour=(0x3C, 0x10, 0x98), tile_number=1):
    """A one-tile fake in the download layout; sizes are (width, height)."""
    tile = root / "Semantic segmentation dataset" / f"Tile {tile_number}"
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
    _fake(tmp_path, parts=(1,), tile_number=2)
    with pytest.raises(DatasetNotFoundError, match=r"validation tiles \[3\] are missing"):
        load_dubai(tmp_path, "val")  # the default split is Tiles 2 and 3: both must be there
    _fake(tmp_path, parts=(1, 2), tile_number=3)
    train, val = load_dubai(tmp_path, "train"), load_dubai(tmp_path, "val")
    assert [s.name for s in train] == ["tile1_part001", "tile1_part002", "tile1_part003"]
    assert [s.name for s in val] == ["tile2_part001", "tile3_part001", "tile3_part002"]
    assert load_dubai(tmp_path, "val", val_tiles=["Tile 1"])[2].name == "tile1_part003"
    assert [s.name for s in load_dubai(tmp_path, "train", val_tiles=[1])] == [
        "tile2_part001", "tile3_part001", "tile3_part002"]
    lab = load_dubai(tmp_path, "train")[2].labels
    assert lab.shape == (10, 12)
    assert lab[0, 0] == IGNORE_INDEX and lab[0, 1] == IGNORE_INDEX
    assert (lab.ravel()[2:] == DUBAI.names.index("building")).all()
    with pytest.raises(ValueError, match="split"):
        load_dubai(tmp_path, "test")


def test_fake_one_pixel_size_difference_is_cropped_with_warning(tmp_path, caplog):
    _fake(tmp_path, parts=(3,), img_size=(12, 10), mask_size=(12, 11))
    with caplog.at_level(logging.WARNING, logger="aerialseg.data.dubai"):
        scene = load_dubai(tmp_path, "val", val_tiles=[1])[0]
    assert scene.labels.shape == (10, 12) and scene.bands.shape == (3, 10, 12)
    assert "cropping" in caplog.text


def test_fake_large_size_difference_is_an_error(tmp_path):
    _fake(tmp_path, parts=(3,), img_size=(12, 10), mask_size=(24, 20))
    with pytest.raises(ValueError, match="image_part_003.png is 20x24 px"):
        load_dubai(tmp_path, "val", val_tiles=[1])


def test_fake_missing_mask_and_unknown_colour(tmp_path):
    tile = _fake(tmp_path / "a")
    (tile / "masks" / "image_part_002.png").unlink()
    with pytest.raises(DatasetNotFoundError, match="image_part_002.png"):
        load_dubai(tmp_path / "a", "train", val_tiles=[2])
    _fake(tmp_path / "b", colour=(1, 2, 3))
    with pytest.raises(LabelColourError, match=r"image_part_001\.png.*#010203"):
        load_dubai(tmp_path / "b", "train", val_tiles=[2])


def test_real_split_class_shares_every_class_in_both_splits(real):
    from aerialseg.data.registry import SplitData, class_shares, data_config

    data = SplitData(data_config("dubai", "full"), real["train"], real["val"])
    shares = class_shares(data)
    labelled = shares.loc[list(DUBAI.names)]
    for split in ("train", "val"):
        of_labelled = labelled[f"{split}_pixels"] / labelled[f"{split}_pixels"].sum()
        assert (of_labelled > 0.045).all(), (split, of_labelled)  # every class >= 4.5 %
    assert shares.loc["Total", "train_pixels"] == 30_185_157  # whole parts of Tiles 1, 4-6
    assert shares.loc["Total", "val_pixels"] == 6_532_500  # whole parts of Tiles 2, 3
    assert shares.loc["Total", "val_share"] == pytest.approx(1)
    # the default profile crops every part to 512 px: pixels per split
    crop = {s: sum(min(x.shape[0], 512) * min(x.shape[1], 512) for x in real[s])
            for s in ("train", "val")}
    assert crop == {"train": 9_437_184, "val": 4_706_304}


def test_default_profile_uses_every_training_tile():
    from aerialseg.data.registry import DATA_PROFILES, data_config

    assert DATA_PROFILES["dubai"]["default"] == {"max_scenes": None, "max_size": 512}
    cfg = data_config("dubai", "default")
    assert cfg.val_tiles == (2, 3) and cfg.max_scenes is None


def test_snap_labels_is_honoured_by_loader_and_checker(tmp_path):
    from aerialseg.data.check import check_dataset
    from aerialseg.data.registry import data_config, load_split

    for n in (1, 2, 3):
        _fake(tmp_path, parts=(1,), tile_number=n, colour=(0x3C, 0x12, 0x96))  # near building
    with pytest.raises(LabelColourError, match="#3C1296"):
        load_dubai(tmp_path, "train")
    assert not check_dataset("dubai", tmp_path).usable
    assert check_dataset("dubai", tmp_path, snap_labels=True).usable
    data = load_split(data_config("dubai", "smoke", {"snap_labels": True},
                                  data_root=str(tmp_path)))
    lab = data.train[0].labels
    assert (lab.ravel()[2:] == DUBAI.names.index("building")).all()
    assert lab[0, 0] == IGNORE_INDEX and lab[0, 1] == IGNORE_INDEX


def test_only_validation_tiles_present_says_why_not_usable(tmp_path):
    from aerialseg.data.check import check_dataset

    for n in (2, 3):
        _fake(tmp_path, parts=(1,), tile_number=n)
    report = check_dataset("dubai", tmp_path)
    assert not report.usable
    text = " ".join(report.text().split())
    assert "NOT USABLE (0 problem" not in text
    assert "no training tile: every tile present is a validation tile" in text
    with pytest.raises(DatasetNotFoundError, match="none is left for training"):
        load_dubai(tmp_path, "train")
