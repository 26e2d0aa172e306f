"""The Vaihingen-layout reader, on synthetic files and on real ISPRS samples."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy import ndimage

from aerialseg.data.classes import ISPRS, LabelColourError
from aerialseg.data.errors import DatasetNotFoundError
from aerialseg.data.isprs import (
    VAIHINGEN_TRAIN_AREAS,
    VAIHINGEN_VAL_AREAS,
    load_vaihingen,
    vaihingen_files,
)
from aerialseg.data.synthetic import write_synthetic
from aerialseg.metrics import eroded_eval_mask

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
SAMPLES = SHARED / "isprs-samples"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("v") / "vaihingen", n_train=2, n_val=1,
                           size=64, seed=0)


@pytest.fixture
def root(pristine, tmp_path):
    """A private copy each test may damage."""
    dst = tmp_path / "vaihingen"
    shutil.copytree(pristine, dst)
    return dst


def test_official_split():
    assert len(VAIHINGEN_TRAIN_AREAS) == 11 and len(VAIHINGEN_VAL_AREAS) == 5
    assert not set(VAIHINGEN_TRAIN_AREAS) & set(VAIHINGEN_VAL_AREAS)


def test_split_picks_existing_areas_and_areas_override(root):
    (root / "manifest.json").unlink()  # plain Vaihingen layout: the official split applies
    train = load_vaihingen(root, "train")
    assert [s.name for s in train] == ["area1", "area3"]
    assert all(s.split == "train" for s in train)
    s = train[0]
    assert s.band_names == ("ir", "r", "g", "dsm", "ndsm")
    assert s.bands.dtype == np.float32 and s.bands.shape == (5, 64, 64)
    assert 0 <= s.bands[:3].min() and s.bands[:3].max() <= 1
    assert s.labels.dtype == np.int64 and s.eval_mask.dtype == bool
    assert [s.name for s in load_vaihingen(root, "val")] == ["area11"]
    only = load_vaihingen(root, "val", areas=[3])
    assert [s.name for s in only] == ["area3"] and only[0].split == "val"
    with pytest.raises(ValueError, match="split"):
        load_vaihingen(root, "test")


def test_missing_root_names_dataset_layout_and_source(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        load_vaihingen(tmp_path / "nowhere", "train")
    msg = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    for part in ("Vaihingen", str(tmp_path / "nowhere"), "top/top_mosaic_09cm_area{N}.tif",
                 "gts_for_participants", "ndsm", "isprs.org/education/benchmarks/UrbanSemLab",
                 "on request"):
        assert part in msg, part


def test_empty_root_lists_the_expected_files(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="top_mosaic_09cm_area11.tif"):
        load_vaihingen(tmp_path, "val")


def test_missing_required_file_is_named(root):
    vaihingen_files(root, 3)["dsm"].unlink()
    vaihingen_files(root, 1)["gts"].unlink()
    with pytest.raises(DatasetNotFoundError) as err:
        load_vaihingen(root, "train")
    assert "dsm/dsm_09cm_matching_area3.tif" in str(err.value)
    assert "gts_for_participants/top_mosaic_09cm_area1.tif" in str(err.value)
    with pytest.raises(DatasetNotFoundError, match="area5"):
        load_vaihingen(root, "train", areas=[5])


def test_size_mismatch_names_files_and_shapes(root):
    tifffile.imwrite(vaihingen_files(root, 1)["dsm"], np.zeros((60, 64), np.float32))
    with pytest.raises(ValueError) as err:
        load_vaihingen(root, "train", areas=[1])
    msg = str(err.value)
    assert "dsm/dsm_09cm_matching_area1.tif: 60x64" in msg
    assert "top/top_mosaic_09cm_area1.tif: 64x64" in msg


def test_unknown_label_colour_names_the_file(root):
    path = vaihingen_files(root, 1)["gts"]
    gts = tifffile.imread(path)
    gts[:2, :2] = (10, 20, 30)
    tifffile.imwrite(path, gts, photometric="rgb")
    with pytest.raises(LabelColourError, match=r"top_mosaic_09cm_area1\.tif.*#0A141E \(4 px\)"):
        load_vaihingen(root, "train", areas=[1])


def test_eroded_file_is_optional(root):
    vaihingen_files(root, 1)["gts_eroded"].unlink()
    scene = load_vaihingen(root, "train", areas=[1])[0]
    assert scene.eval_mask is None


def test_gerke_ndsm_jpeg_is_read_raw(root):
    f = vaihingen_files(root, 1)
    f["ndsm"].unlink()
    raw = np.tile(np.linspace(0, 200, 64).astype(np.uint8), (64, 1))
    Image.fromarray(raw).save(f["ndsm_gerke"], quality=100)
    scene = load_vaihingen(root, "train", areas=[1])[0]
    assert np.abs(scene.bands[4] - raw).max() <= 3  # 8-bit grey values, not metres


def _real_crop_layout(tmp_path):
    """Vaihingen layout from the real mmsegmentation crop (IR-R-G + eroded ground truth)."""
    crop = SAMPLES / "vaihingen-crop"
    if not crop.is_dir():
        pytest.skip(f"real ISPRS samples not found at {SAMPLES.resolve()} (they live beside "
                    "the checkout in ../shared/data; see shared/data/README.md)")
    top = np.asarray(Image.open(crop / "img_dir" / "area1_0_0_512_512.png").convert("RGB"))
    ann = np.asarray(Image.open(crop / "ann_dir" / "area1_0_0_512_512.png"))
    eroded = ann == 0  # 0 = eroded boundary, 1..6 = classes
    # the full ground truth is not in the sample: fill the eroded band from the nearest
    # evaluated pixel, which puts the class boundaries in the middle of the band
    idx = ndimage.distance_transform_edt(eroded, return_distances=False, return_indices=True)
    full = ann[idx[0], idx[1]].astype(np.int64) - 1
    f = vaihingen_files(tmp_path, 1)
    for p in f.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(f["top"], top, photometric="rgb")
    tifffile.imwrite(f["dsm"], np.zeros(ann.shape, np.float32))
    tifffile.imwrite(f["ndsm"], np.zeros(ann.shape, np.float32))
    tifffile.imwrite(f["gts"], ISPRS.encode(full), photometric="rgb")
    gts_eroded = ISPRS.encode(full)
    gts_eroded[eroded] = 0
    tifffile.imwrite(f["gts_eroded"], gts_eroded, photometric="rgb")
    return top, ann, full


def test_real_vaihingen_crop_with_eroded_ground_truth(tmp_path):
    top, ann, full = _real_crop_layout(tmp_path)
    scene = load_vaihingen(tmp_path, "train")[0]
    assert scene.name == "area1"
    assert np.allclose(scene.bands[:3] * 255, np.moveaxis(top, -1, 0), atol=1e-3)
    assert np.array_equal(scene.eval_mask, ann != 0)
    assert np.array_equal(scene.labels[ann != 0], ann[ann != 0] - 1)
    # the ISPRS eroded ground truth is our radius-3 protocol, up to the unknown exact
    # boundary positions inside the eroded band
    agree = (eroded_eval_mask(scene.labels, radius=3) == scene.eval_mask).mean()
    assert agree > 0.97
    # vegetation is brighter in IR than in red (shadowed crowns aside)
    veg = np.isin(scene.labels, (2, 3)) & scene.eval_mask
    assert (scene.bands[0][veg] > scene.bands[1][veg]).mean() > 0.8


def test_real_resampled_labels_fail_clearly(tmp_path):
    res = SAMPLES / "vaihingen-area1-resized"
    if not res.is_dir():
        pytest.skip(f"real ISPRS samples not found at {SAMPLES.resolve()}")
    image = tifffile.imread(res / "top_mosaic_09cm_area1_image_resized.tif")  # IR-R-G + alpha
    label = tifffile.imread(res / "top_mosaic_09cm_area1_label_resized.tif")
    f = vaihingen_files(tmp_path, 1)
    for p in f.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(f["top"], image)
    tifffile.imwrite(f["dsm"], np.zeros(image.shape[:2], np.float32))
    tifffile.imwrite(f["ndsm"], np.zeros(image.shape[:2], np.float32))
    tifffile.imwrite(f["gts"], label)
    # the interpolated label holds colours outside the palette: the error names the file
    with pytest.raises(LabelColourError, match="gts_for_participants/top_mosaic_09cm_area1"):
        load_vaihingen(tmp_path, "train")
    # snapped to the palette it reads fine
    tifffile.imwrite(f["gts"], ISPRS.encode(ISPRS.decode(label, snap=True)),
                     photometric="rgb")
    scene = load_vaihingen(tmp_path, "train")[0]
    assert scene.bands.shape == (5,) + image.shape[:2]
    assert set(np.unique(scene.labels)) <= set(range(6))
