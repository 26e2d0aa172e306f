import pytest

from aerialseg.config import TrainConfig
from aerialseg.profiles import check_profile
from aerialseg.registry import resolve_run


def test_profile_defaults_and_overrides():
    smoke = resolve_run("fcn", profile="smoke", in_bands=("ir",), data={})
    assert smoke.train.epochs == 1
    assert smoke.model_kwargs["widths"] == (8, 16, 32, 64)
    over = resolve_run("fcn", profile="smoke", in_bands=("ir",), data={}, epochs=3, lr=None)
    assert over.train.epochs == 3  # explicit value wins
    assert over.train.lr == smoke.train.lr  # None keeps the profile's value


def test_mfb_parameters_go_to_the_loss():
    cfg = resolve_run("fcn_mfb", profile="default", in_bands=("ir",), data={},
                      mfb_frequency="eigen_fergus")
    assert cfg.loss == "ce_mfb"
    assert cfg.loss_kwargs == {"mfb_frequency": "eigen_fergus"}


@pytest.mark.parametrize("kwargs, match", [
    ({"profile": "fast"}, "profile must be one of 'smoke'.*got 'fast'"),
    ({"profile": "smoke", "epochz": 3}, "unknown parameter.*epochz.*valid"),
    ({"profile": "smoke", "epochs": -1}, "epochs must be >= 1"),
])
def test_bad_parameters_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        resolve_run("fcn", in_bands=("ir",), data={}, **kwargs)


def test_unknown_method_lists_choices():
    with pytest.raises(ValueError, match="unknown method 'fcnn'.*fcn_mfb"):
        resolve_run("fcnn", profile="smoke", in_bands=("ir",), data={})


def test_train_config_validation():
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=1.5)
    assert check_profile("full") == "full"


def test_the_shared_backbone_is_the_recipe_of_every_profile_but_full():
    from aerialseg.profiles import PROFILES, uses_shared_backbone

    assert [p for p in PROFILES if not uses_shared_backbone(p)] == ["full"]
