import numpy as np
import pytest
import torch
from torch import nn

from aerialseg.config import TrainConfig
from aerialseg.data.patches import SegmentationPatches
from aerialseg.losses.ce import WeightedCrossEntropy
from aerialseg.training import NonFiniteLossError, fit, lr_factor


def tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(5, 8, 3, padding=1), nn.ReLU(), nn.Dropout(0.2),
                         nn.Conv2d(8, 6, 1))


def dataset():
    from conftest import make_scene

    s = make_scene(size=48)
    return SegmentationPatches([s.bands], [s.labels], size=32, sampler="random_crop",
                               length=8, seed=0)


CFG = TrainConfig(epochs=4, batch_size=4, lr=0.05, samples_per_epoch=8, sampler="random_crop",
                  crop_size=32)


def test_fit_learns():
    res = fit(tiny_model(), WeightedCrossEntropy(), dataset(), CFG, log=None)
    losses = [h["loss"] for h in res.history]
    assert losses[-1] < losses[0]
    assert len(res.history) == 4


def test_resume_gives_identical_weights(tmp_path):
    ck = tmp_path / "ck.pt"
    full = fit(tiny_model(), WeightedCrossEntropy(), dataset(), CFG, log=None)
    part = fit(tiny_model(), WeightedCrossEntropy(), dataset(), CFG, checkpoint=ck,
               log=None, max_epochs_this_call=2)
    assert len(part.history) == 2 and ck.exists()
    rest = fit(tiny_model(), WeightedCrossEntropy(), dataset(), CFG, checkpoint=ck, log=None)
    assert rest.resumed_from == 2
    for a, b in zip(full.model.state_dict().values(), rest.model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    assert [h["loss"] for h in full.history] == [h["loss"] for h in rest.history]


def test_same_seed_same_result():
    a = fit(tiny_model(), WeightedCrossEntropy(), dataset(), CFG, log=None)
    b = fit(tiny_model(), WeightedCrossEntropy(), dataset(), CFG, log=None)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]


def test_nan_loss_stops_with_message_and_keeps_checkpoint(tmp_path):
    ck = tmp_path / "ck.pt"
    fit(tiny_model(), WeightedCrossEntropy(), dataset(), CFG, checkpoint=ck, log=None,
        max_epochs_this_call=1)
    before = ck.read_bytes()

    class Exploding(nn.Module):
        def forward(self, logits, target, aux=None):
            return logits.sum() * float("nan")

    with pytest.raises(NonFiniteLossError, match="last good checkpoint"):
        fit(tiny_model(), Exploding(), dataset(), CFG, checkpoint=ck, log=None)
    assert ck.read_bytes() == before


def test_ema_and_grad_clip_run():
    cfg = TrainConfig(epochs=2, batch_size=4, samples_per_epoch=8, sampler="random_crop",
                      crop_size=32, ema_decay=0.9, grad_clip=1.0, optimizer="adamw", lr=1e-3,
                      schedule="cosine")
    res = fit(tiny_model(), WeightedCrossEntropy(), dataset(), cfg, log=None)
    assert not res.model.training


@pytest.mark.parametrize("schedule, expected", [("poly", 0.5 ** 0.9), ("step", 0.1),
                                                ("cosine", 0.5), ("constant", 1.0)])
def test_lr_schedules(schedule, expected):
    cfg = TrainConfig(schedule=schedule, step_milestones=(0.5,))
    assert np.isclose(lr_factor(cfg, 50, 100), expected)
