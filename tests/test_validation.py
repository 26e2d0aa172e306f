from dataclasses import fields

import pytest

from aerialseg import paths
from aerialseg.cli import main
from aerialseg.config import TrainConfig
from aerialseg.profiles import PROFILES
from aerialseg.registry import resolve_run
from aerialseg.validation import (
    TRAIN_SPECS,
    validate_chapter_params,
    validate_train_values,
)


def test_every_train_field_has_a_spec():
    assert set(TRAIN_SPECS) == {f.name for f in fields(TrainConfig)}
    # the dataclass defaults are valid and unchanged by validation
    default = TrainConfig()
    assert validate_train_values({f.name: getattr(default, f.name)
                                  for f in fields(TrainConfig)}) == {
        f.name: getattr(default, f.name) for f in fields(TrainConfig)}


@pytest.mark.parametrize("name, given, expected", [
    ("epochs", "3", 3), ("epochs", 3.0, 3), ("epochs", " 12 ", 12),
    ("lr", "1e-3", 0.001), ("lr", 1, 1.0), ("momentum", "0", 0.0),
    ("samples_per_epoch", "None", None), ("samples_per_epoch", "64", 64),
    ("grad_clip", "none", None), ("grad_clip", "1.5", 1.5),
    ("amp", "false", False), ("amp", "True", True), ("dihedral_aug", 0, False),
    ("scale_range", "(0.5, 2)", (0.5, 2.0)), ("scale_range", [0.5, 2.0], (0.5, 2.0)),
    ("scale_range", None, None),
    ("step_milestones", "[0.5, 0.75]", (0.5, 0.75)), ("step_milestones", "0.5", (0.5,)),
    ("step_milestones", (), ()),
    ("sampler", "random_crop", "random_crop"), ("optimizer", "AdamW", "adamw"),
    ("ema_decay", "0.999", 0.999), ("seed", "7", 7),
])
def test_strings_and_numbers_are_coerced(name, given, expected):
    out = validate_train_values({name: given})[name]
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize("name, given, match", [
    ("epochs", "1.5", r"epochs must be an integer >= 1 \(got '1.5'\)"),
    ("epochs", 1.5, r"epochs must be an integer >= 1 \(got 1.5\)"),
    ("epochs", "abc", r"epochs must be an integer >= 1 \(got 'abc'\)"),
    ("epochs", True, r"epochs must be an integer >= 1 \(got True\)"),
    ("epochs", 0, r"epochs must be >= 1 \(got 0\)"),
    ("epochs", None, r"epochs must be an integer >= 1 \(got None\)"),
    ("batch_size", -2, r"batch_size must be >= 1 \(got -2\)"),
    ("samples_per_epoch", 0,
     r"samples_per_epoch must be None \(every grid patch and D4 variant\) or >= 1 \(got 0\)"),
    ("crop_size", 4, r"crop_size must be >= 8 \(got 4\)"),
    ("lr", 0, r"lr must be > 0 \(got 0\)"),
    ("lr", float("nan"), r"lr must be a finite number > 0 \(got nan\)"),
    ("lr", "inf", r"lr must be a finite number > 0 \(got 'inf'\)"),
    ("lr", "fast", r"lr must be a finite number > 0 \(got 'fast'\)"),
    ("momentum", 1.0, r"momentum must be in \[0, 1\) \(got 1.0\)"),
    ("weight_decay", -1e-4, r"weight_decay must be >= 0 \(got -0.0001\)"),
    ("tile_overlap", 1, r"tile_overlap must be in \[0, 1\) \(got 1\)"),
    ("grad_clip", 0, r"grad_clip must be None \(off\) or > 0 \(got 0\)"),
    ("ema_decay", 1.0, r"ema_decay must be None \(off\) or in \(0, 1\) \(got 1.0\)"),
    ("scale_range", (2.0, 0.5), r"scale_range must be None \(no rescaling\) or a pair of "
                                r"finite numbers > 0 in ascending order"),
    ("scale_range", "(0.5,)", r"scale_range must be .*\(got '\(0.5,\)', 1 items\)"),
    ("step_milestones", (0.5, 1.5), r"step_milestones must be a tuple of finite numbers in "
                                    r"\(0, 1\]"),
    ("sampler", "grdi", r"sampler must be one of 'grid', 'random_crop' \(got 'grdi'\)"),
    ("schedule", "linear", r"schedule must be one of 'poly', 'step', 'cosine', 'constant'"),
    ("amp", "maybe", r"amp must be True or False \(got 'maybe'\)"),
    ("seed", -1, r"seed must be in \[0, 9223372036854775807\] \(got -1\)"),
    ("seed", "abc", r"seed must be an integer"),
    ("epochz", 3, r"unknown training parameter 'epochz'; valid: \[.*'epochs'"),
])
def test_bad_values_name_parameter_value_and_range(name, given, match):
    with pytest.raises(ValueError, match="invalid training parameters: " + match):
        validate_train_values({name: given})


def test_all_problems_in_one_message():
    with pytest.raises(ValueError) as info:
        validate_train_values({"epochs": 0, "lr": -1, "batch_size": 4})
    msg = str(info.value)
    assert "epochs must be >= 1 (got 0)" in msg and "lr must be > 0 (got -1)" in msg
    assert "batch_size" not in msg


def test_train_config_coerces_and_validates():
    t = TrainConfig(epochs="3", lr="0.02", grad_clip="None", scale_range="(0.5, 2)",
                    amp="false")
    assert (t.epochs, t.lr, t.grad_clip, t.scale_range, t.amp) == (3, 0.02, None,
                                                                  (0.5, 2.0), False)
    with pytest.raises(ValueError, match="epochs must be an integer"):
        TrainConfig(epochs="1.5")


def test_resolve_run_fails_before_the_store_is_touched():
    with pytest.raises(ValueError, match="samples_per_epoch must be None .* or >= 1"):
        resolve_run("fcn", profile="smoke", in_bands=("ir",), data={}, samples_per_epoch=0)
    assert not paths.runs_dir().exists()


@pytest.mark.parametrize("seeds, expected", [
    (None, None), ("None", None), (0, (0,)), ("0", (0,)), ("[0, 1]", (0, 1)),
    ("0, 2", (0, 2)), ([3, 1], (3, 1)), ((0,), (0,)), (range(3), (0, 1, 2)),
])
def test_seeds_are_coerced(seeds, expected):
    assert validate_chapter_params(seeds=seeds) == {"seeds": expected}


@pytest.mark.parametrize("seeds, match", [
    ("abc", r"e.g. 0 or \[0, 1, 2\] \(got 'abc'\)"),
    ([0, 0], r"\[0\] repeated"), ("[1, 2, 1]", r"\[1\] repeated"),
    (-1, r"\(got -1; -1 is not\)"), ([0, 1.5], r"1.5 is not"), (True, r"got True"),
    ([], r"no seed"),
])
def test_bad_seeds(seeds, match):
    with pytest.raises(ValueError, match="invalid chapter parameters: seeds must be .*" + match):
        validate_chapter_params(seeds=seeds)


def test_profile_and_device():
    assert "gpu" in PROFILES
    assert validate_chapter_params(profile="gpu", device="cuda:1") == {"profile": "gpu",
                                                                      "device": "cuda:1"}
    assert validate_chapter_params() == {}
    with pytest.raises(ValueError, match=r"profile must be one of 'smoke', 'default', 'gpu', "
                       r"'full' \(got 'fast'\).*device must be 'auto'.*\(got 'gpu'\)"):
        validate_chapter_params(profile="fast", device="gpu")


@pytest.mark.parametrize("argv, match", [
    (["--set", "seed=1"], r"--set seed=1: the seed is given with --seed N"),
    (["--set", "epochs=1.5"], r"epochs must be an integer >= 1 \(got 1.5\)"),
    (["--set", "samples_per_epoch=0"], r"samples_per_epoch must be None"),
    (["--profile", "fast"], r"profile must be one of"),
    (["--seed", "-3"], r"seeds must be"),
])
def test_cli_train_rejects_bad_parameters_before_loading_data(argv, match, capsys, tmp_path,
                                                              monkeypatch):
    monkeypatch.setenv("AERIALSEG_DATA", str(tmp_path / "data"))
    assert main(["train", "fcn", *argv]) == 2
    import re

    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / "data").exists() and not paths.runs_dir().exists()
