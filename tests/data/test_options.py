"""``data_options``: every data option through one parameter, validated before loading."""

import shutil

import pytest

from aerialseg.cli import main
from aerialseg.data.errors import DataOptionError
from aerialseg.data.isprs import load_vaihingen, vaihingen_files
from aerialseg.data.registry import (
    DATA_OPTIONS,
    DATA_PROFILES,
    DataConfig,
    data_config,
    load_split,
    parse_data_options,
)
from aerialseg.data.synthetic import write_synthetic


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = write_synthetic(tmp_path_factory.mktemp("v") / "vaihingen", n_train=2, n_val=1,
                           size=64, seed=0)
    (root / "manifest.json").unlink()  # plain Vaihingen layout: the named split applies
    return root


@pytest.fixture
def vaihingen(pristine, tmp_path):
    dst = tmp_path / "vaihingen"
    shutil.copytree(pristine, dst)
    return dst


def test_every_config_field_but_dataset_is_an_option():
    fields = set(DataConfig.__dataclass_fields__) - {"dataset"}
    assert set(DATA_OPTIONS) == fields


@pytest.mark.parametrize("text", [
    '{"potsdam_bands": "r+g+b", "val_tiles": ["2_12"]}',   # JSON, as papermill -p passes it
    "{potsdam_bands: r+g+b, val_tiles: ['2_12']}",          # YAML (quote X_Y tiles)
    "{'potsdam_bands': 'r+g+b', 'val_tiles': ['2_12']}",    # a Python literal
])
def test_text_forms_parse_to_the_same_config(text):
    cfg = data_config("potsdam", "smoke", text)
    assert cfg.potsdam_bands == "r+g+b" and cfg.val_tiles == ("2_12",)
    assert cfg == data_config("potsdam", "smoke", {"potsdam_bands": ["r", "g", "b"],
                                                   "val_tiles": "2_12"})


def test_empty_forms_and_precedence():
    for empty in (None, "", "{}", "None"):
        assert parse_data_options(empty) == {}
    # data_options < nothing; profile < data_options; data_options with explicit parameters
    assert data_config("dubai", "default").max_size == 512
    assert data_config("dubai", "default", {"max_size": 300}).max_size == 300
    assert data_config("dubai", "default", {"max_size": 300}, max_scenes=2).max_scenes == 2
    assert data_config("dubai", "default", {"max_size": 300}, max_size=300).max_size == 300
    with pytest.raises(DataOptionError, match="max_size is given twice"):
        data_config("dubai", "default", {"max_size": 300}, max_size=400)


@pytest.mark.parametrize(("dataset", "options", "message"), [
    ("potsdam", {"potsdam_band": "rgb"}, r"unknown data option\(s\) \['potsdam_band'\]; "
                                         r"valid: data_root"),
    ("potsdam", "{not a mapping", "is not a mapping"),
    ("potsdam", '["r+g+b"]', "is not a mapping"),
    ("potsdam", {"dataset": "dubai"}, "cannot choose the dataset"),
    ("potsdam", {"potsdam_bands": "rgbx"}, r"potsdam_bands='rgbx': choose a preset"),
    ("potsdam", {"potsdam_bands": 3}, "potsdam_bands=3: expected text"),
    ("vaihingen", {"potsdam_bands": "rgb"}, "potsdam_bands applies to dataset 'potsdam' only"),
    ("potsdam", {"vaihingen_bands": "irrg"}, "vaihingen_bands applies to dataset 'vaihingen'"),
    ("vaihingen", {"vaihingen_bands": "ir+dsm+x"}, r"vaihingen_bands='ir\+dsm\+x': choose"),
    ("dubai", {"split_name": "x"}, "dataset 'dubai' has one fixed split"),
    ("vaihingen", {"split_name": "geoseg"}, r"unknown split_name 'geoseg'.*kampffmeyer"),
    ("vaihingen", {"max_scenes": 0}, r"max_scenes=0: must be >= 1"),
    ("vaihingen", {"max_scenes": "many"}, r"max_scenes='many': expected an integer or None"),
    ("vaihingen", {"max_size": True}, r"max_size=True: expected an integer"),
    ("vaihingen", {"snap_labels": "maybe"}, r"snap_labels='maybe': expected true or false"),
    ("vaihingen", {"val_tiles": [2, 99]}, r"val_tiles=\[2, 99\]: areas \[99\] are not"),
    ("vaihingen", {"val_tiles": []}, "val_tiles is empty"),
    ("potsdam", {"val_tiles": "2_12,9_9"}, r"unknown Potsdam tile '9_9'"),
    ("dubai", {"val_tiles": [9]}, r"unknown Dubai tile 9.*\[1, 2, 3, 4, 5, 6, 7, 8\]"),
    ("loveda", {"val_tiles": [1]}, r"val_tiles applies to \['dubai', 'potsdam', 'vaihingen'\]"),
    ("loveda", {"snap_labels": True}, "LoveDA masks hold class indices"),
    ("synthetic", {"layout": "mmseg"}, r"layout applies to \['potsdam', 'vaihingen'\]"),
    ("vaihingen", {"layout": "zip"}, "layout='zip': choose 'official'"),
])
def test_errors_name_the_option_and_what_it_takes(dataset, options, message, tmp_path):
    with pytest.raises(DataOptionError, match=message):
        # a root that does not exist: validation comes first, nothing is read
        data_config(dataset, "smoke", options, data_root=str(tmp_path / "nowhere"))


def test_values_are_normalised():
    cfg = data_config("vaihingen", "smoke", {"val_tiles": "area11, 15", "snap_labels": "yes",
                                             "max_scenes": "3", "vaihingen_bands": "IRRG"})
    assert cfg.val_tiles == (11, 15) and cfg.snap_labels is True and cfg.max_scenes == 3
    assert cfg.vaihingen_bands == "irrg"
    assert data_config("vaihingen", vaihingen_bands="ir+r+g").vaihingen_bands == "irrg"
    assert data_config("vaihingen", vaihingen_bands="all").vaihingen_bands is None
    assert data_config("potsdam", val_tiles=["tile02_12", "3_12"]).val_tiles == ("2_12",
                                                                                 "3_12")
    assert data_config("dubai", val_tiles="Tile 5,6").val_tiles == (5, 6)
    assert data_config("dubai").val_tiles == (2, 3)  # the default split, recorded
    d = data_config("vaihingen", val_tiles=[11]).to_dict()
    assert d["val_tiles"] == [11]


def test_gpu_profiles_exist_for_real_datasets():
    for name in ("dubai", "vaihingen", "potsdam", "loveda"):
        assert "gpu" in DATA_PROFILES[name]


def test_vaihingen_irrg_needs_no_heights(vaihingen):
    for area in (1, 3, 11):
        vaihingen_files(vaihingen, area)["dsm"].unlink()
        vaihingen_files(vaihingen, area)["ndsm"].unlink()
    with pytest.raises(FileNotFoundError, match="vaihingen_bands='irrg'"):
        load_vaihingen(vaihingen, "train")
    data = load_split(data_config("vaihingen", "smoke", {"vaihingen_bands": "irrg"},
                                  data_root=str(vaihingen)))
    assert data.bands == ("ir", "r", "g") and data.train[0].bands.shape == (3, 64, 64)
    assert all(p.endswith(("top_mosaic_09cm_area1.tif", "_noBoundary.tif"))
               for p in data.train[0].sources)


def test_val_tiles_resplit_vaihingen(vaihingen):
    data = load_split(data_config("vaihingen", "smoke", '{"val_tiles": [3]}',
                                  data_root=str(vaihingen)))
    assert [s.name for s in data.val] == ["area3"]
    assert [s.name for s in data.train] == ["area1", "area11"]  # the rest of the split
    with pytest.raises(FileNotFoundError, match="area5"):
        load_split(data_config("vaihingen", "smoke", {"val_tiles": [5]},
                               data_root=str(vaihingen)))


def test_a_set_without_validation_tile_says_how_to_choose_one(vaihingen):
    for p in vaihingen_files(vaihingen, 11).values():
        p.unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError) as err:
        load_split(data_config("vaihingen", "smoke", data_root=str(vaihingen)))
    msg = " ".join(str(err.value).split())
    assert "Areas present: 1, 3" in msg and "data_options={'val_tiles': [3]}" in msg
    assert "--val-tiles 3" in msg


def test_cli_validates_set_before_loading(tmp_path, capsys):
    nowhere = str(tmp_path / "nowhere")
    # a bad data option in --set is reported, not a missing dataset
    assert main(["train", "fcn_mfb", "--dataset", "potsdam", "--root", nowhere,
                 "--set", "potsdam_bands=rgbx"]) == 2
    assert "potsdam_bands='rgbx'" in capsys.readouterr().err
    assert main(["train", "fcn_mfb", "--dataset", "potsdam", "--root", nowhere,
                 "--set", "data_options={'potsdam_bands': 'r+g+b', 'max_scenes': 0}"]) == 2
    assert "max_scenes=0" in capsys.readouterr().err
    # a good one gets as far as the missing data
    assert main(["train", "fcn_mfb", "--dataset", "potsdam", "--root", nowhere,
                 "--set", "potsdam_bands=r+g+b"]) == 2
    assert "Potsdam dataset not found" in capsys.readouterr().err


def test_cli_root_without_dataset_is_an_error(tmp_path, capsys):
    folder = tmp_path / "my-real-data"
    folder.mkdir()
    assert main(["train", "fcn_mfb", "--root", str(folder)]) == 2
    assert "no dataset was chosen" in capsys.readouterr().err
    assert main(["data", "--root", str(folder)]) == 2
    assert "no dataset was chosen" in capsys.readouterr().err
    assert not any(folder.iterdir())  # nothing generated into the user's folder


def test_cli_data_check_takes_options(vaihingen, capsys):
    for area in (1, 3, 11):
        vaihingen_files(vaihingen, area)["dsm"].unlink()
    assert main(["data", "check", "vaihingen", "--root", str(vaihingen)]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "--vaihingen-bands irrg" in out and "{'vaihingen_bands': 'irrg'}" in out
    assert main(["data", "check", "vaihingen", "--root", str(vaihingen),
                 "--vaihingen-bands", "irrg"]) == 0
    capsys.readouterr()
    assert main(["data", "check", "vaihingen", "--root", str(vaihingen), "--data-options",
                 '{"vaihingen_bands": "ir+r+g+ndsm", "val_tiles": [3]}']) == 0
    out = capsys.readouterr().out
    assert "bands ir+r+g+ndsm" in out and "validation tiles 3" in out
