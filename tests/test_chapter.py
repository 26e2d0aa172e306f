import pytest

from aerialseg import chapter


@pytest.fixture(scope="module")
def smoke_data_home(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def ch03(smoke_data_home, monkeypatch):
    monkeypatch.setenv("AERIALSEG_DATA", str(smoke_data_home))
    return chapter.start("03_fcn_mfb", profile="smoke", device="cpu",
                         overrides=dict(epochs=2, lr=None, mfb_frequency="eigen_fergus"))


def test_settings_take_the_profile_value_unless_given():
    assert chapter.resolve_settings("06_uce", "smoke", {"test_mc_samples": None}) == {
        "test_mc_samples": 2, "tile": 256, "overlap": 32}
    out = chapter.resolve_settings("06_uce", "smoke", {"test_mc_samples": "3"})
    assert out["test_mc_samples"] == 3
    with pytest.raises(ValueError, match="must be a int"):
        chapter.resolve_settings("06_uce", "smoke", {"test_mc_samples": "abc"})
    with pytest.raises(ValueError, match="bogus"):
        chapter.resolve_settings("06_uce", "smoke", {"bogus": None})


def test_each_method_gets_only_the_overrides_it_declares(ch03):
    assert ch03.overrides_for("fcn") == {"epochs": 2}
    assert ch03.overrides_for("fcn_mfb") == {"epochs": 2, "mfb_frequency": "eigen_fergus"}
    assert ch03.resolve("fcn").train.epochs == 2
    assert ch03.resolve("fcn_mfb").loss_kwargs == {"mfb_frequency": "eigen_fergus"}
    # a per-run replacement (EFM routes its parameters per stage)
    assert ch03.resolve("fcn", overrides={"epochs": 5}).train.epochs == 5
    assert ch03.resolve("fcn", overrides={}).train.epochs == 1  # the smoke profile's


def test_a_variant_is_recorded_and_never_writes_the_canonical_file(ch03, tmp_path):
    assert ch03.variant == {"epochs": 2, "mfb_frequency": "eigen_fergus"}
    assert ch03.seeds == (0,)
    canonical = chapter.start("01_data", profile="smoke", device="cpu")
    assert canonical.variant == {}
    assert canonical.results_file(tmp_path).name == "01_data__synthetic__smoke.nc"
    name = ch03.results_file(tmp_path).name
    assert name.startswith("03_fcn_mfb__synthetic__smoke__") and name.endswith(".nc")


def test_another_copy_of_the_data_is_a_variant(smoke_data_home, monkeypatch, tmp_path):
    monkeypatch.setenv("AERIALSEG_DATA", str(smoke_data_home))
    # the default location named explicitly: still the canonical results
    same = chapter.start("01_data", profile="smoke", device="cpu",
                         data_root=str(smoke_data_home / "synthetic"))
    assert same.variant == {}
    other = chapter.start("01_data", profile="smoke", device="cpu",
                          data_root=str(tmp_path / "copy"))
    assert set(other.variant) == {"data_folder"}
    assert str(tmp_path) not in other.edition()  # no machine path for readers
    name = other.results_file(tmp_path).name
    assert name.startswith("01_data__synthetic__smoke__") and name.endswith(".nc")


def test_seeds_accept_a_bare_int(smoke_data_home, monkeypatch):
    monkeypatch.setenv("AERIALSEG_DATA", str(smoke_data_home))
    ch = chapter.start("03_fcn_mfb", profile="smoke", device="cpu", seeds=4)
    assert ch.seeds == (4,) and ch.variant == {"seeds": [4]}


def test_training_without_a_scene_keeps_that_model_apart(ch03):
    name = ch03.data.train[0].name
    with pytest.raises(ValueError, match="not a training scene"):
        ch03.train("fcn", 0, without_scene="nope")
    cfg = ch03.resolve("fcn", 0)
    assert "heldout_train_scene" not in cfg.data
    assert name
