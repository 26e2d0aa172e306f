"""Damaged files are named, non-finite rasters are refused (issue 16)."""

import shutil

import numpy as np
import pytest
import tifffile
from PIL import Image

from aerialseg.data.check import check_dataset
from aerialseg.data.classes import DUBAI
from aerialseg.data.dubai import load_dubai
from aerialseg.data.errors import CorruptFileError, NonFiniteRasterError
from aerialseg.data.io import count_nonfinite, read_image, read_raster, tiff_problem
from aerialseg.data.isprs import load_vaihingen, vaihingen_files
from aerialseg.data.registry import data_config, load_split
from aerialseg.data.synthetic import write_synthetic


def _truncate(path, keep=0.5):
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = write_synthetic(tmp_path_factory.mktemp("v") / "vaihingen", n_train=2, n_val=1,
                           size=64, seed=0)
    (root / "manifest.json").unlink()
    return root


@pytest.fixture
def vaihingen(pristine, tmp_path):
    dst = tmp_path / "vaihingen"
    shutil.copytree(pristine, dst)
    return dst


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_jpeg_and_png_are_named(tmp_path, suffix):
    path = tmp_path / f"image{suffix}"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    _truncate(path)
    with pytest.raises(CorruptFileError) as err:
        read_image(path, "RGB")
    msg = str(err.value)
    assert msg.startswith(str(path)) and "download and extract it again" in msg
    assert isinstance(err.value, ValueError)


def test_dubai_loader_names_a_truncated_mask(tmp_path):
    for n in (1, 2, 3):
        tile = tmp_path / "Semantic segmentation dataset" / f"Tile {n}"
        (tile / "images").mkdir(parents=True)
        (tile / "masks").mkdir()
        rng = np.random.default_rng(n)
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
            tile / "images" / "image_part_001.jpg")
        labels = rng.integers(0, 5, (40, 40))
        Image.fromarray(DUBAI.encode(labels)).save(tile / "masks" / "image_part_001.png")
    mask = tmp_path / "Semantic segmentation dataset" / "Tile 2" / "masks" / "image_part_001.png"
    _truncate(mask)
    with pytest.raises(CorruptFileError, match=r"Tile 2/masks/image_part_001\.png: cannot read"):
        load_dubai(tmp_path, "val")
    image = tmp_path / "Semantic segmentation dataset" / "Tile 1" / "images" / "image_part_001.jpg"
    _truncate(image)
    with pytest.raises(CorruptFileError, match=r"Tile 1/images/image_part_001\.jpg"):
        load_dubai(tmp_path, "train")


@pytest.mark.parametrize("max_size", [None, 32])  # 32: the memory-mapped window path
def test_truncated_tiff_is_named(vaihingen, max_size):
    top = vaihingen_files(vaihingen, 1)["top"]
    _truncate(top)
    assert "truncated" in tiff_problem(top)
    with pytest.raises(CorruptFileError) as err:
        load_vaihingen(vaihingen, "train", max_size=max_size)
    msg = str(err.value)
    assert str(top) in msg and "truncated download or extraction" in msg
    assert "mmap length" not in msg


def test_nan_in_a_validation_dsm_is_refused_with_its_count(vaihingen):
    dsm_path = vaihingen_files(vaihingen, 11)["dsm"]
    dsm = tifffile.imread(dsm_path)
    dsm[10:20, 5:10] = np.nan
    dsm[0, 0] = np.inf
    tifffile.imwrite(dsm_path, dsm)
    assert count_nonfinite(read_raster(dsm_path)) == 51
    with pytest.raises(NonFiniteRasterError) as err:
        load_split(data_config("vaihingen", "smoke", data_root=str(vaihingen)))
    msg = str(err.value)
    assert str(dsm_path) in msg and "51 non-finite pixel values (50 NaN, 1 infinite)" in msg
    # data check reports it too, as a problem of that area
    report = check_dataset("vaihingen", vaihingen)
    assert not report.usable
    errors = {f.where: f.message for f in report.errors}
    assert "50 NaN, 1 infinite" in errors["area11"] and "dsm_09cm_matching_area11" in errors[
        "area11"]
    assert "no usable val tile" in errors[""]
    # the same set read without heights is fine
    ok = load_split(data_config("vaihingen", "smoke", {"vaihingen_bands": "irrg"},
                                data_root=str(vaihingen)))
    assert [s.name for s in ok.val] == ["area11"]
