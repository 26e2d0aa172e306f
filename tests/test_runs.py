from aerialseg.data.registry import DataConfig, SplitData
from aerialseg.registry import resolve_run
from aerialseg.runs import get_or_train, run_key, run_path


def split(scene_factory):
    return SplitData(DataConfig(), [scene_factory(seed=i, size=64) for i in range(2)],
                     [scene_factory(seed=9, size=64, split="val")])


def cfg(**kw):
    base = dict(profile="smoke", in_bands=("ir", "r", "g", "dsm", "ndsm"), data={},
                crop_size=32, samples_per_epoch=4, batch_size=2)
    base.update(kw)
    return resolve_run("fcn_mfb", **base)


def test_run_key_depends_on_config_only():
    assert run_key(cfg()) == run_key(cfg())
    assert run_key(cfg()) != run_key(cfg(seed=1))
    assert run_key(cfg()) != run_key(cfg(lr=0.02))


def test_store_reuses_trained_model(scene_factory):
    data = split(scene_factory)
    first = get_or_train(cfg(), data, log=None)
    assert not first.reused and (run_path(cfg()) / "model.pt").exists()
    assert not (run_path(cfg()) / "checkpoint.pt").exists()
    w = first.loss_kwargs["class_weights"]
    assert len(w) == 6 and w[5] == 0.0  # clutter is not balanced (not evaluated)
    second = get_or_train(cfg(), data, log=None)
    assert second.reused
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(),
                    strict=True):
        assert (a.cpu() == b).all()
    assert second.loss_kwargs == first.loss_kwargs
