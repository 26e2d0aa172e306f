"""The dataset registry: profiles, named splits, Potsdam bands, hashing stability."""

import pytest
from isprs_fixtures import build_potsdam_fixture, official_vaihingen

from aerialseg.data.registry import (
    DATA_PROFILES,
    DATASETS,
    DataConfig,
    data_config,
    get_spec,
    load_split,
)


@pytest.fixture(scope="module")
def vaihingen_official(tmp_path_factory):
    """Read-only folder in the official Vaihingen layout, from the real samples."""
    return official_vaihingen(tmp_path_factory)


def test_every_dataset_has_every_profile():
    assert set(DATASETS) == {"synthetic", "dubai", "vaihingen", "potsdam", "loveda"}
    for name in DATASETS:
        assert set(DATA_PROFILES[name]) == {"smoke", "default", "gpu", "full"}, name


def test_to_dict_holds_every_field_and_the_resolved_split():
    from dataclasses import fields

    assert set(DataConfig().to_dict()) == {f.name for f in fields(DataConfig)}
    d = data_config("vaihingen", "smoke").to_dict()
    assert d["split_name"] == "kampffmeyer" and d["snap_labels"] is False
    assert data_config("vaihingen", "smoke", snap_labels=True).to_dict()["snap_labels"] is True
    # the Dubai split is by tile: its configurations record the validation tiles
    assert data_config("dubai", "smoke").to_dict()["val_tiles"] == [2, 3]


def test_split_names_are_resolved_and_validated():
    assert data_config("vaihingen").split_name == "kampffmeyer"
    assert data_config("vaihingen", split_name="cse_unet").split_name == "cse_unet"
    assert data_config("potsdam").split_name == "cse_unet"
    assert data_config("potsdam", split_name="geoseg").split_name == "geoseg"
    assert get_spec("potsdam").splits == ("cse_unet", "geoseg", "mmseg")
    with pytest.raises(ValueError, match=r"unknown split_name 'geoseg' for dataset 'vaihingen'"):
        data_config("vaihingen", split_name="geoseg")
    with pytest.raises(ValueError, match="one fixed split"):
        data_config("synthetic", split_name="kampffmeyer")


def test_potsdam_bands_option():
    assert data_config("potsdam").potsdam_bands == "irrg"
    assert data_config("potsdam", potsdam_bands="RGB").potsdam_bands == "rgb"
    assert data_config("potsdam", potsdam_bands=["r", "g", "b"]).potsdam_bands == "r+g+b"
    assert get_spec("potsdam").bands_of(data_config("potsdam", potsdam_bands="rgbir")) == (
        "r", "g", "b", "ir", "dsm", "ndsm")
    with pytest.raises(ValueError, match="potsdam_bands"):
        data_config("potsdam", potsdam_bands="rgbx")
    with pytest.raises(ValueError, match="potsdam_bands applies to dataset .potsdam. only"):
        data_config("vaihingen", potsdam_bands="rgb")


def test_vaihingen_through_the_registry_with_profiles(vaihingen_official):
    root = str(vaihingen_official)
    smoke = load_split(data_config("vaihingen", "smoke", data_root=root))
    assert len(smoke.train) == 2 and {s.shape for s in smoke.val} == {(256, 256)}
    one = load_split(data_config("vaihingen", "smoke", data_root=root, max_scenes=1,
                                 max_size=64))
    assert [s.name for s in one.train] == ["area1"] and one.train[0].shape == (64, 64)
    assert one.val[0].eval_mask is not None


def test_potsdam_through_the_registry(tmp_path):
    root = build_potsdam_fixture(tmp_path / "potsdam")
    data = load_split(data_config("potsdam", "smoke", data_root=str(root),
                                  potsdam_bands="rgb"))
    assert data.bands == ("r", "g", "b", "dsm", "ndsm")
    assert [s.name for s in data.train] == ["tile2_10", "tile2_11"]
    assert [s.name for s in data.val] == ["tile2_12", "tile3_12"]
    full = load_split(data_config("potsdam", "full", data_root=str(root)))
    assert len(full.train) == 18 and len(full.val) == 5
    assert data.classes.name == "isprs"


def test_overlapping_splits_are_refused(tmp_path):
    import json

    from aerialseg.data.synthetic import write_synthetic

    root = write_synthetic(tmp_path / "syn", n_train=1, n_val=1, size=64, seed=0)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["splits"]["val"] = manifest["splits"]["train"]
    (root / "manifest.json").write_text(json.dumps(manifest))
    # read with the Vaihingen reader, which follows a manifest's splits
    with pytest.raises(ValueError, match=r"tiles \['area1'\] are in both"):
        load_split(data_config("vaihingen", "smoke", data_root=str(root)))


def test_a_real_data_folder_is_never_filled_with_synthetic_scenes(tmp_path):
    from aerialseg.data.registry import data_config, load_split

    real = tmp_path / "dubai"
    (real / "Tile 1" / "images").mkdir(parents=True)
    with pytest.raises(ValueError, match="name its dataset"):
        load_split(data_config("synthetic", "smoke", data_root=str(real)))
    assert sorted(p.name for p in real.iterdir()) == ["Tile 1"]  # nothing written there
