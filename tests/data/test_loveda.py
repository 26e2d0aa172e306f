"""The LoveDA reader, on small generated files in the Zenodo layout."""

import numpy as np
import pytest
from loveda_fixtures import build_loveda
from PIL import Image

from aerialseg.cli import main
from aerialseg.data.check import check_dataset
from aerialseg.data.classes import IGNORE_INDEX, LOVEDA, LabelValueError
from aerialseg.data.errors import CorruptFileError, DatasetNotFoundError
from aerialseg.data.loveda import load_loveda, loveda_pairs
from aerialseg.data.registry import DATASETS, data_config, data_fingerprint, load_split


@pytest.fixture
def loveda(tmp_path):
    return build_loveda(tmp_path / "loveda")


def test_class_table():
    assert LOVEDA.names == ("background", "building", "road", "water", "barren", "forest",
                            "agriculture")
    assert LOVEDA.evaluated == tuple(range(7))
    assert len(set(LOVEDA.colours)) == 7  # distinct display colours
    assert "loveda" in DATASETS and DATASETS["loveda"].bands == ("r", "g", "b")


def test_reads_splits_ignores_no_data_and_interleaves_domains(loveda):
    train = load_loveda(loveda, "train")
    assert [s.name for s in train] == ["urban_1366", "rural_0", "urban_1367", "rural_1",
                                       "rural_2"]
    s = train[0]
    assert s.band_names == ("r", "g", "b") and s.bands.shape == (3, 24, 24)
    assert s.classes is LOVEDA and s.split == "train" and s.eval_mask is None
    raw = np.round(s.bands[0] * 255 / 10).astype(int)  # the mask value, from the image
    assert s.labels[0, 0] == IGNORE_INDEX
    assert np.array_equal(s.labels == IGNORE_INDEX, raw == 0)
    assert np.array_equal(s.labels[raw > 0], raw[raw > 0] - 1)
    assert [v.name for v in load_loveda(loveda, "val", max_scenes=2)] == ["urban_3514",
                                                                          "rural_2522"]
    # the archives unpacked under LoveDA/ work too
    nested = build_loveda(loveda.parent / "nested" / "LoveDA")
    assert len(load_loveda(nested.parent, "val")) == 3


def test_registry_profiles_and_fingerprint(loveda):
    cfg = data_config("loveda", "smoke", data_root=str(loveda))
    data = load_split(cfg)
    assert len(data.train) == 2 and len(data.val) == 2 and data.bands == ("r", "g", "b")
    assert data.classes is LOVEDA and all(s.eval_mask is not None for s in data.val)
    assert data.fingerprint == data_fingerprint(cfg)
    shares = data.class_shares()
    assert list(shares.index[:7]) == list(LOVEDA.names) and shares.loc["Total",
                                                                       "val_share"] == 1


def test_errors_name_files_and_values(loveda):
    mask = loveda / "Val" / "Urban" / "masks_png" / "3514.png"
    m = np.asarray(Image.open(mask)).copy()
    m[:2] = 12
    Image.fromarray(m).save(mask)
    with pytest.raises(LabelValueError, match=r"3514\.png: 48 pixels .*12 \(48 px\). Valid: 1"):
        load_loveda(loveda, "val")
    mask.write_bytes(mask.read_bytes()[:60])
    with pytest.raises(CorruptFileError, match="3514.png"):
        load_loveda(loveda, "val")
    (loveda / "Val" / "Rural" / "masks_png" / "2522.png").unlink()
    with pytest.raises(DatasetNotFoundError, match="2522.png"):
        load_loveda(loveda, "val")


def test_missing_split_says_what_to_download(tmp_path):
    build_loveda(tmp_path, ids={("Train", "Urban"): (1366,)})
    with pytest.raises(DatasetNotFoundError) as err:
        loveda_pairs(tmp_path, "val")
    msg = str(err.value)
    for part in ("Train/ is there", "Val.zip", "zenodo.org/records/5706578", "CC BY-NC-SA 4.0",
                 "NeurIPS Datasets and Benchmarks"):
        assert part in msg, part


def test_data_check(loveda, capsys):
    report = check_dataset("loveda", loveda)
    assert report.usable and report.count("train") == 5 and report.count("val") == 3
    assert "background" in report.text()
    assert main(["data", "check", "loveda", "--root", str(loveda)]) == 0
    capsys.readouterr()
    mask = loveda / "Train" / "Rural" / "masks_png" / "1.png"
    Image.fromarray(np.full((24, 24), 9, np.uint8)).save(mask)
    report = check_dataset("loveda", loveda)
    assert not report.usable
    assert report.errors[0].where == "rural_1" and "9 (576 px)" in report.errors[0].message
