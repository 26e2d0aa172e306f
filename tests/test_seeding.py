"""Seeding happens once, in the run store, before the model is built."""

import torch

from aerialseg.data.registry import DataConfig, SplitData
from aerialseg.registry import resolve_run
from aerialseg.runs import get_or_train

BANDS = ("ir", "r", "g", "dsm", "ndsm")


def _run(data, seed, loss="fcn"):
    cfg = resolve_run(loss, profile="smoke", in_bands=BANDS, data={"test": 1}, seed=seed,
                      epochs=1, samples_per_epoch=2, batch_size=2, crop_size=32)
    return get_or_train(cfg, data, retrain=True, log=None)


def test_same_seed_same_weights_whatever_ran_before(scene_factory):
    data = SplitData(DataConfig(), [scene_factory(seed=i, size=48) for i in range(2)],
                     [scene_factory(seed=9, size=48, split="val")])
    torch.manual_seed(1)
    a = _run(data, 3).model.state_dict()
    torch.manual_seed(12345)
    torch.rand(100)  # whatever the process did before must not matter
    b = _run(data, 3).model.state_dict()
    c = _run(data, 4).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_methods_of_one_model_start_from_the_same_weights_for_a_seed(scene_factory):
    """fcn and fcn_mfb differ only in the loss: the same seed gives the same start."""
    from aerialseg.models.registry import build_model
    from aerialseg.utils import set_seed

    cfg = resolve_run("fcn", profile="smoke", in_bands=BANDS, data={}, seed=5)
    mfb = resolve_run("fcn_mfb", profile="smoke", in_bands=BANDS, data={}, seed=5)
    assert cfg.model_kwargs == mfb.model_kwargs
    set_seed(5)
    w1 = build_model(cfg.model, in_channels=5, num_classes=6, **cfg.model_kwargs).state_dict()
    set_seed(5)
    w2 = build_model(mfb.model, in_channels=5, num_classes=6, **mfb.model_kwargs).state_dict()
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
