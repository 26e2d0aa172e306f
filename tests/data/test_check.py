"""``aerialseg data check``: good and broken downloads, and the messages a user needs."""

import shutil

import numpy as np
import pytest
import tifffile
from isprs_fixtures import build_potsdam_fixture, official_vaihingen
from PIL import Image

from aerialseg.cli import main
from aerialseg.data.check import check_dataset
from aerialseg.data.classes import DUBAI, ISPRS
from aerialseg.data.errors import DatasetNotFoundError
from aerialseg.data.isprs import load_potsdam, load_vaihingen, vaihingen_files
from aerialseg.data.synthetic import write_synthetic


@pytest.fixture(scope="module")
def vaihingen_official(tmp_path_factory):
    """Read-only folder in the official Vaihingen layout, from the real samples."""
    return official_vaihingen(tmp_path_factory)


@pytest.fixture
def good(vaihingen_official, tmp_path):
    """A private copy of the official-layout fixture that a test may damage."""
    dst = tmp_path / "vaihingen"
    shutil.copytree(vaihingen_official, dst)
    return dst


def _loads(root) -> bool:
    try:
        load_vaihingen(root, "train")
        load_vaihingen(root, "val")
    except (ValueError, FileNotFoundError):
        return False
    return True


def test_good_download_is_usable_but_incomplete(good):
    report = check_dataset("vaihingen", good)
    assert report.usable and not report.complete and not report.errors
    assert report.exit_code() == 0 and report.exit_code(strict=True) == 1
    assert report.count("train") == 2 and report.total("train") == 11
    assert report.count("val") == 2 and report.total("val") == 5
    text = report.text()
    for part in ("split:     kampffmeyer", "no published checksums", "area1", "512x512 px",
                 "orthophoto, DSM, nDSM, ground truth, eroded ground truth",
                 "9 of the 11 train tiles have no orthophoto (area5, area7",
                 "USABLE, but incomplete", "Where to get it", "isprs.org",
                 "top/top_mosaic_09cm_area{N}.tif"):
        assert part in text, part
    assert "impervious" in text and "%" in text  # class shares of the good tiles
    assert _loads(good)


def test_missing_dsm(good):
    vaihingen_files(good, 3)["dsm"].unlink()
    report = check_dataset("vaihingen", good)
    assert not report.usable and report.exit_code() == 1
    assert [(f.where, f.message) for f in report.errors] == [
        ("area3", "missing DSM: dsm/dsm_09cm_matching_area3.tif")]
    text = report.text()
    assert "PROBLEM" in text and "NOT USABLE (1 problem(s) above)" in text
    assert "dsm/dsm_09cm_matching_area{N}.tif" in text  # the expected layout is shown
    assert not _loads(good)


def test_missing_ndsm_names_both_accepted_files(good):
    vaihingen_files(good, 11)["ndsm_gerke"].unlink()
    msg = check_dataset("vaihingen", good).errors[0].message
    assert "ndsm/dsm_09cm_matching_area11_normalized.jpg" in msg
    assert "ndsm/ndsm_09cm_matching_area11.tif" in msg


def test_size_mismatch(good):
    tifffile.imwrite(vaihingen_files(good, 1)["dsm"], np.zeros((500, 512), np.float32))
    report = check_dataset("vaihingen", good)
    (err,) = report.errors
    assert err.where == "area1" and "differ in size" in err.message
    assert "dsm/dsm_09cm_matching_area1.tif 500x512" in err.message
    assert "top/top_mosaic_09cm_area1.tif 512x512" in err.message
    assert not report.usable and not _loads(good)


def test_bad_label_colours_listed_with_counts_and_file(good):
    path = vaihingen_files(good, 15)["gts"]
    gts = tifffile.imread(path)
    gts[:3, :4] = (10, 20, 30)
    gts[7, 7] = (250, 250, 250)
    tifffile.imwrite(path, gts, photometric="rgb")
    report = check_dataset("vaihingen", good)
    (err,) = report.errors
    assert err.where == "area15"
    for part in ("gts_for_participants/top_mosaic_09cm_area15.tif", "13 px",
                 "#0A141E (12 px)", "#FAFAFA (1 px)", "building #0000FF", "snap_labels=True"):
        assert part in err.message, part
    assert not _loads(good)
    snapped = check_dataset("vaihingen", good, snap_labels=True)
    assert snapped.usable and any("snap_labels maps them" in w.message
                                  for w in snapped.warnings)


def test_empty_and_missing_folders(tmp_path):
    report = check_dataset("vaihingen", tmp_path)
    assert not report.usable
    text = " ".join(report.text().split())
    assert f"the folder {tmp_path} is empty" in text
    assert "none of the 16 tiles of the split was found" in text
    assert "on request" in text and "gts_for_participants/" in text
    report = check_dataset("vaihingen", tmp_path / "nowhere")
    assert report.exit_code() == 1
    text = " ".join(report.text().split())
    assert "does not exist" in text and "--root DIR" in text


def test_truncated_file_and_labels_in_place_of_images(good):
    top = vaihingen_files(good, 1)["top"]
    top.write_bytes(top.read_bytes()[: top.stat().st_size // 2])
    f3 = vaihingen_files(good, 3)
    shutil.copy(f3["gts"], f3["top"])  # a ground-truth file extracted over the orthophoto
    report = check_dataset("vaihingen", good)
    errs = {f.where: f.message for f in report.errors}
    assert "truncated" in errs["area1"] and "download and extract it again" in errs["area1"]
    assert "looks like a ground-truth file" in errs["area3"]


def test_eroded_file_of_another_tile_and_optional_eroded(good):
    f1, f11 = vaihingen_files(good, 1), vaihingen_files(good, 11)
    shutil.copy(f1["gts_eroded"], f11["gts_eroded"])  # area1's eroded file, area11 is mirrored
    vaihingen_files(good, 3)["gts_eroded"].unlink()
    report = check_dataset("vaihingen", good)
    assert report.usable
    warns = {f.where: f.message for f in report.warnings}
    assert "disagrees with the full ground truth" in warns["area11"]
    assert "falls back to our disk-3 erosion" in warns["area3"]


def test_converted_copy_and_zips_are_recognised(tmp_path):
    (tmp_path / "img_dir").mkdir()
    (tmp_path / "ann_dir").mkdir()
    (tmp_path / "ISPRS_semantic_labeling_Vaihingen.zip").write_bytes(b"PK")
    text = check_dataset("vaihingen", tmp_path).text()
    assert "mmsegmentation-converted copy" in text
    assert "archives not extracted here? ISPRS_semantic_labeling_Vaihingen.zip" in text


def test_potsdam_complete_and_geoseg_needs_complete_labels(tmp_path):
    root = build_potsdam_fixture(tmp_path / "p")  # the 24 labelled tiles, all products
    report = check_dataset("potsdam", root)
    assert report.complete and report.exit_code(strict=True) == 0
    assert report.count("train") == 18 and report.count("val") == 5
    warns = {f.where: f.message for f in report.warnings}
    assert "dropped by CSE-UNet as mislabelled" in warns["tile 4_12"]
    assert "IRRG orthophoto, DSM, nDSM" in report.text()
    geo = check_dataset("potsdam", root, split_name="geoseg")
    assert not geo.usable and "no usable val tile" in geo.text()
    # test-tile images present, their labels only in 5_Labels_all which is missing
    build_potsdam_fixture(root, ("2_13",), labels_folder="5_Labels_for_participants")
    (root / "5_Labels_for_participants" / "top_potsdam_2_13_label.tif").unlink()
    geo = check_dataset("potsdam", root, split_name="geoseg")
    assert "missing ground truth: 5_Labels_all/top_potsdam_2_13_label.tif" in geo.text()
    assert "only in 5_Labels_all.zip" in geo.text()


def test_potsdam_bands_decide_which_products_are_needed(tmp_path):
    root = build_potsdam_fixture(tmp_path / "p", ("2_10", "2_12"), products=("rgb",))
    assert not check_dataset("potsdam", root).usable  # irrg needs IR
    msg = check_dataset("potsdam", root).errors[0].message
    assert "3_Ortho_IRRG/top_potsdam_2_10_IRRG.tif" in msg
    assert "4_Ortho_RGBIR/top_potsdam_2_10_RGBIR.tif" in msg
    ok = check_dataset("potsdam", root, potsdam_bands="rgb")
    assert ok.usable and not ok.complete
    load_potsdam(root, "val", bands="rgb")
    with pytest.raises(DatasetNotFoundError):
        load_potsdam(root, "val")


def test_synthetic_checksums(tmp_path):
    root = write_synthetic(tmp_path / "syn", n_train=2, n_val=1, size=64, seed=0)
    report = check_dataset("synthetic", root)
    assert report.complete and "15/15 files match the SHA-256 sums" in report.text()
    path = vaihingen_files(root, 1)["dsm"]
    tifffile.imwrite(path, np.ones((64, 64), np.float32))
    report = check_dataset("synthetic", root)
    assert not report.usable and "dsm/dsm_09cm_matching_area1.tif" in report.errors[0].message


def _dubai_tile(root, n, parts=(1, 3), size=(20, 24)):
    tile = root / "Semantic segmentation dataset" / f"Tile {n}"
    (tile / "images").mkdir(parents=True)
    (tile / "masks").mkdir()
    labels = np.zeros(size, np.uint8)
    labels[5:] = 2
    for part in parts:
        Image.fromarray(np.full((*size, 3), 90, np.uint8)).save(
            tile / "images" / f"image_part_00{part}.jpg")
        pal = Image.fromarray(labels, mode="P")
        pal.putpalette([c for rgb in DUBAI.colours for c in rgb])
        pal.save(tile / "masks" / f"image_part_00{part}.png")
    return tile


def test_dubai_layout_palette_masks_and_tile_counts(tmp_path):
    _dubai_tile(tmp_path, 1)
    report = check_dataset("dubai", tmp_path)
    assert not report.usable  # Tile 1 alone: no validation tile
    text = " ".join(report.text().split())
    assert "no validation tile" in text and "--val-tiles 1" in text
    assert "data_options={'val_tiles': [1]}" in text
    tile2 = _dubai_tile(tmp_path, 2)
    _dubai_tile(tmp_path, 3)
    report = check_dataset("dubai", tmp_path)
    assert report.usable and not report.complete and not report.errors
    text = " ".join(report.text().split())
    assert "usable, 3 of 8 published tiles present" in text and "and complete" not in text
    assert "Tile 4, Tile 5, Tile 6, Tile 7, Tile 8 absent" in text
    assert report.count("val") == 4 and report.count("train") == 2
    # the root may be the dataset folder itself: no warning about the layout
    inner = check_dataset("dubai", tmp_path / "Semantic segmentation dataset")
    assert inner.usable and not any("expected folders" in w.message for w in inner.warnings)
    # the split follows val_tiles
    other = check_dataset("dubai", tmp_path, val_tiles=[1])
    assert other.count("val") == 2 and other.count("train") == 4
    Image.fromarray(np.zeros((30, 24, 3), np.uint8)).save(tile2 / "masks" / "image_part_003.png")
    report = check_dataset("dubai", tmp_path)
    assert not report.usable and "differ in size" in report.errors[0].message


def test_cli_exit_codes_and_report(good, tmp_path, capsys):
    assert main(["data", "check", "vaihingen", "--root", str(good)]) == 0
    assert "USABLE" in capsys.readouterr().out
    assert main(["data", "check", "vaihingen", "--root", str(good), "--strict"]) == 1
    capsys.readouterr()
    assert main(["data", "check", "vaihingen", "--root", str(tmp_path / "none")]) == 1
    assert "NOT USABLE" in capsys.readouterr().out
    assert main(["data", "check", "potsdam", "--root", str(good), "--split-name", "x"]) == 2
    assert "unknown split_name 'x'" in capsys.readouterr().err


def test_cli_data_summary_with_split_name(good, capsys):
    assert main(["data", "vaihingen", "--profile", "smoke", "--root", str(good),
                 "--split-name", "cse_unet"]) == 0
    out = capsys.readouterr().out
    assert "2 train / 2 val scenes (split cse_unet)" in out and "impervious" in out
    assert ISPRS.names[4] in out
