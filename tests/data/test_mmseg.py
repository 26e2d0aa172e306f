"""The mmsegmentation-converted layout (img_dir/, ann_dir/), from the real Vaihingen crop."""

import shutil

import numpy as np
import pytest
from isprs_fixtures import (
    MMSEG_CROP_NAME,
    build_mmseg_vaihingen,
    real_mmseg_clip,
    save_clip,
)
from PIL import Image

from aerialseg.cli import main
from aerialseg.data.check import check_dataset
from aerialseg.data.classes import IGNORE_INDEX, LabelValueError
from aerialseg.data.errors import DataOptionError
from aerialseg.data.mmseg import find_clips, is_mmseg_layout, load_mmseg
from aerialseg.data.registry import data_config, data_fingerprint, load_split

NAME = MMSEG_CROP_NAME


@pytest.fixture(scope="module")
def real():
    return real_mmseg_clip()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The real crop in the converted layout (see :func:`build_mmseg_vaihingen`)."""
    return build_mmseg_vaihingen(tmp_path_factory.mktemp("mmseg") / "vaihingen")


def test_real_crop_reads_through_the_registry(converted, real):
    img, ann = real
    cfg = data_config("vaihingen", "default", data_root=str(converted))
    assert cfg.layout == "mmseg" and cfg.vaihingen_bands == "irrg"  # detected
    assert cfg.to_dict()["layout"] == "mmseg"
    data = load_split(cfg)
    assert data.bands == ("ir", "r", "g")
    assert [s.name for s in data.train] == ["area1"] and [s.name for s in data.val] == ["area11"]
    s = data.train[0]
    assert s.full_truth is False and not data.full_truth
    assert np.allclose(s.bands * 255, np.moveaxis(img, -1, 0), atol=1e-3)
    assert np.array_equal(s.labels == IGNORE_INDEX, ann == 0)  # 0: eroded boundary
    assert np.array_equal(s.labels[ann != 0], ann[ann != 0].astype(np.int64) - 1)
    assert np.array_equal(s.eval_mask, ann != 0)
    # the nine overlapping clips of area11 go back together into the mirrored tile
    v = data.val[0]
    assert v.shape == (512, 512)
    assert np.allclose(v.bands * 255, np.moveaxis(img[:, ::-1], -1, 0), atol=1e-3)
    assert np.array_equal(v.eval_mask, (ann != 0)[:, ::-1])
    # real shares of the crop (impervious, building, low vegetation, tree, car)
    shares = np.bincount(s.labels[s.eval_mask], minlength=6) / s.eval_mask.sum()
    assert shares[0] == pytest.approx(0.562, abs=0.002) and shares[5] == 0


def test_window_reads_only_the_clips_it_needs(converted):
    cfg = data_config("vaihingen", "smoke", data_root=str(converted))  # max_size 256
    data = load_split(cfg)
    assert data.val[0].shape == (256, 256)
    assert len(data.val[0].sources) == 2 * 4  # clips at x0, y0 in {0, 128}: image + label
    assert data_fingerprint(cfg) == data.fingerprint


def test_splits_by_tile_and_val_tiles(converted):
    swapped = load_split(data_config("vaihingen", "smoke", {"val_tiles": ["area1"]},
                                     data_root=str(converted)))
    assert [s.name for s in swapped.val] == ["area1"]
    assert [s.name for s in swapped.train] == ["area11"]
    # the converter's folders are the named split "mmseg": areas 1 and 11 are both training
    with pytest.raises(FileNotFoundError) as err:
        load_split(data_config("vaihingen", "smoke", split_name="mmseg",
                               data_root=str(converted)))
    msg = " ".join(str(err.value).split())
    assert "no clip of the 'val' tiles" in msg and "data_options={'val_tiles': [11]}" in msg


def test_bands_options_follow_the_clips(converted):
    one = load_mmseg(converted, "vaihingen", "train", bands=("ir",))[0]
    assert one.band_names == ("ir",) and one.bands.shape[0] == 1
    with pytest.raises(DataOptionError, match="IR-R-G clips only"):
        data_config("vaihingen", vaihingen_bands="all", data_root=str(converted))
    assert data_config("vaihingen", layout="official",
                       data_root=str(converted)).layout is None


def test_data_check_recognises_it(converted, capsys):
    report = check_dataset("vaihingen", converted)
    assert report.usable, report.text()
    text = " ".join(report.text().split())
    assert "mmsegmentation-converted copy" in text and "10 clips of 2 tiles" in text
    assert "eroded labels only" in text
    assert report.count("train") == 1 and report.count("val") == 1
    assert main(["data", "check", "vaihingen", "--root", str(converted)]) == 0
    assert "area11" in capsys.readouterr().out


def test_bad_label_values_name_the_clip(converted, tmp_path):
    root = tmp_path / "v"
    shutil.copytree(converted, root)
    path = root / "ann_dir" / "train" / NAME
    ann = np.asarray(Image.open(path)).copy()
    ann[:2, :3] = 9
    Image.fromarray(ann).save(path)
    with pytest.raises(LabelValueError, match=r"ann_dir/train/area1_0_0_512_512\.png: 6 pixels"
                       r".*9 \(6 px\)"):
        load_mmseg(root, "vaihingen", "train")
    report = check_dataset("vaihingen", root)
    assert not report.usable and "9 (6 px)" in report.errors[0].message


def test_potsdam_copy_is_rgb(tmp_path):
    root = tmp_path / "potsdam"
    rng = np.random.default_rng(0)
    for tile, folder in (("2_10", "train"), ("2_12", "train")):
        for x0 in (0, 16):
            save_clip(root, folder, f"{tile}_{x0}_0_{x0 + 32}_32.png",
                      rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
                      rng.integers(0, 7, (32, 32), dtype=np.uint8))
    assert is_mmseg_layout(root) and set(find_clips(root, "potsdam")) == {"2_10", "2_12"}
    cfg = data_config("potsdam", "smoke", data_root=str(root))
    assert cfg.layout == "mmseg" and cfg.potsdam_bands == "r+g+b"
    data = load_split(cfg)  # cse_unet: 2_12 is a validation tile wherever its clips are
    assert [s.name for s in data.train] == ["tile2_10"] and data.val[0].name == "tile2_12"
    assert data.val[0].shape == (32, 48) and data.bands == ("r", "g", "b")
    with pytest.raises(DataOptionError, match="R-G-B clips only"):
        data_config("potsdam", potsdam_bands="irrg", data_root=str(root))
