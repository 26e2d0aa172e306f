import copy
import os
import time
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from aerialseg.config import TrainConfig
from aerialseg.data.patches import SegmentationPatches
from aerialseg.losses.ce import WeightedCrossEntropy
from aerialseg.training import (
    Callback,
    CheckpointPolicy,
    NonFiniteLossError,
    batch_difficulty,
    difficulty_epochs,
    fit,
    lr_factor,
    replay_loader,
)
from aerialseg.utils import RunStoreWarning, UnsafeFileError, load_tensors


def tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(5, 8, 3, padding=1), nn.ReLU(), nn.Dropout(0.2),
                         nn.Conv2d(8, 6, 1))


def dataset(nan=False):
    from conftest import make_scene

    s = make_scene(size=48)
    bands = s.bands.copy()
    if nan:
        bands[:, 10:20, 10:20] = np.nan
    return SegmentationPatches([bands], [s.labels], size=32, sampler="random_crop",
                               length=8, seed=0)


CFG = TrainConfig(epochs=4, batch_size=4, lr=0.05, samples_per_epoch=8, sampler="random_crop",
                  crop_size=32)


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                  b.state_dict().values(), strict=True))


class Crash(Callback):
    """Simulates a kill: raises at the start of epoch ``at`` (0-based)."""

    def __init__(self, at):
        self.at = at

    def on_epoch_start(self, state):
        if state.epoch == self.at:
            raise KeyboardInterrupt


class Exploding(nn.Module):
    def forward(self, logits, target, aux=None):
        return logits.sum() * float("nan")


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
    assert len(part.history) == 2 and ck.exists() and part.checkpoint_epochs[-1] == 1
    rest = fit(tiny_model(), WeightedCrossEntropy(), dataset(), CFG, checkpoint=ck, log=None)
    assert rest.resumed_from == 2
    assert same_weights(full.model, rest.model)
    assert [h["loss"] for h in full.history] == [h["loss"] for h in rest.history]


def test_sparse_checkpoints_resume_from_the_last_written_one_exactly(tmp_path):
    """Checkpoints every 3rd epoch; a kill in epoch 5 loses epochs 3-4, which are redone."""
    cfg = TrainConfig(epochs=6, batch_size=4, lr=0.05, samples_per_epoch=8,
                      sampler="random_crop", crop_size=32, ema_decay=0.9)
    full = fit(tiny_model(), WeightedCrossEntropy(), dataset(), cfg, log=None)
    ck = tmp_path / "ck.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_model(), WeightedCrossEntropy(), dataset(), cfg, checkpoint=ck, log=None,
            checkpoint_every=3, callbacks=[Crash(at=4)])
    assert load_tensors(ck)["epoch"] == 2  # written after epochs 0-2 only, not after 3
    rest = fit(tiny_model(), WeightedCrossEntropy(), dataset(), cfg, checkpoint=ck, log=None,
               checkpoint_every=3)
    assert rest.resumed_from == 3
    assert rest.checkpoint_epochs == [5]  # every 3rd epoch, and the last one
    assert same_weights(full.model, rest.model)  # EMA weights, bit-identical
    assert [h["loss"] for h in rest.history] == [h["loss"] for h in full.history]


def test_checkpoint_policy_keeps_writes_under_one_percent():
    # a write of 1 s and epochs of 10 s: a write is due after 100 s of training
    p = CheckpointPolicy(max_overhead=0.01)
    p.wrote(1.0)
    due = [e for e in range(30) if p.due(e, 10.0, last=e == 29) and (p.wrote(1.0) or True)]
    assert due == [9, 19, 29]
    assert len(due) * 1.0 <= 0.01 * 30 * 10.0 + 1.0  # <= 1 % plus the forced last write
    # before the first write the cost is estimated from the size of the state
    q = CheckpointPolicy(state_bytes=500_000_000, assumed_bytes_per_second=500e6)
    assert not q.due(0, 50.0, last=False) and q.due(1, 50.0, last=False)
    fixed = CheckpointPolicy(every=2)
    assert [e for e in range(5) if fixed.due(e, 1.0, last=e == 4)] == [1, 3, 4]
    with pytest.raises(ValueError, match="checkpoint_every"):
        CheckpointPolicy(every=0)


def test_adaptive_checkpoint_skips_epochs_when_writing_is_slow(tmp_path, monkeypatch):
    import aerialseg.training as T

    real = T._save_checkpoint

    def slow(*args):  # a write that costs far more than 1 % of an epoch
        time.sleep(0.3)
        real(*args)

    monkeypatch.setattr(T, "_save_checkpoint", slow)
    cfg = TrainConfig(epochs=5, batch_size=4, lr=0.05, samples_per_epoch=8,
                      sampler="random_crop", crop_size=32)
    res = fit(tiny_model(), WeightedCrossEntropy(), dataset(), cfg, log=None,
              checkpoint=tmp_path / "ck.pt")
    # the first write comes early (tiny state), then 0.3 s needs 30 s of epochs: none
    # more until the last epoch
    assert res.checkpoint_epochs[-1] == 4 and len(res.checkpoint_epochs) <= 2


def test_train_seconds_count_the_whole_training_over_a_resume(tmp_path):
    class Slow(Callback):
        def on_epoch_end(self, state):
            time.sleep(0.15)

    ck = tmp_path / "ck.pt"
    part = fit(tiny_model(), WeightedCrossEntropy(), dataset(), CFG, checkpoint=ck, log=None,
               max_epochs_this_call=2, callbacks=[Slow()])
    rest = fit(tiny_model(), WeightedCrossEntropy(), dataset(), CFG, checkpoint=ck, log=None,
               callbacks=[Slow()])
    assert part.train_seconds >= 0.3 and rest.seconds < rest.train_seconds
    assert rest.train_seconds >= 0.6
    assert rest.train_seconds == pytest.approx(part.train_seconds + rest.seconds, abs=0.05)


def test_same_seed_same_result():
    a = fit(tiny_model(), WeightedCrossEntropy(), dataset(), CFG, log=None)
    b = fit(tiny_model(), WeightedCrossEntropy(), dataset(), CFG, log=None)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]


def test_nan_before_any_checkpoint_says_so(tmp_path):
    ck = tmp_path / "run" / "ck.pt"
    with pytest.raises(NonFiniteLossError) as info:
        fit(tiny_model(), Exploding(), dataset(), CFG, checkpoint=ck, log=None)
    msg = str(info.value)
    assert "epoch 1 of 4 (batch 1 of 2, after 0 optimizer steps)" in msg
    assert "No checkpoint has been written yet" in msg and "last good" not in msg
    assert "input batch is finite" in msg and "lr=0.05" in msg
    assert "aerialseg data check" in msg
    assert not ck.exists() and not ck.parent.exists()


def test_nan_after_a_checkpoint_names_it_and_keeps_it(tmp_path):
    ck = tmp_path / "ck.pt"
    fit(tiny_model(), WeightedCrossEntropy(), dataset(), CFG, checkpoint=ck, log=None,
        max_epochs_this_call=1)
    before = ck.read_bytes()
    with pytest.raises(NonFiniteLossError, match=r"holds the state after epoch 1 of 4") as info:
        fit(tiny_model(), Exploding(), dataset(), CFG, checkpoint=ck, log=None)
    assert "in epoch 2 of 4 (batch 1 of 2, after 2 optimizer steps)" in str(info.value)
    assert ck.read_bytes() == before


def test_nan_in_the_inputs_is_named():
    with pytest.raises(NonFiniteLossError, match=r"input batch holds \d+ NaN/inf value.*"
                       r"aerialseg data check.*Checkpointing is off"):
        fit(tiny_model(), WeightedCrossEntropy(), dataset(nan=True), CFG, log=None)


def test_corrupt_checkpoint_is_discarded_with_a_warning(tmp_path):
    ck = tmp_path / "ck.pt"
    fit(tiny_model(), WeightedCrossEntropy(), dataset(), CFG, checkpoint=ck, log=None,
        max_epochs_this_call=2)
    ck.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])  # a killed write
    with pytest.warns(RunStoreWarning, match="discarding the checkpoint.*truncated"):
        res = fit(tiny_model(), WeightedCrossEntropy(), dataset(), CFG, checkpoint=ck,
                  log=None)
    assert res.resumed_from is None and len(res.history) == 4
    clean = fit(tiny_model(), WeightedCrossEntropy(), dataset(), CFG, log=None)
    assert same_weights(clean.model, res.model)


def test_checkpoint_is_data_and_a_tampered_one_is_refused(tmp_path):
    ck = tmp_path / "ck.pt"
    fit(tiny_model(), WeightedCrossEntropy(), dataset(), CFG, checkpoint=ck, log=None,
        max_epochs_this_call=1)
    torch.load(ck, weights_only=True)  # tensors and plain data only

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"format": 2, "model": {}, "x": Evil()}, ck)
    with pytest.raises(UnsafeFileError, match="refusing to load.*could run arbitrary code"):
        fit(tiny_model(), WeightedCrossEntropy(), dataset(), CFG, checkpoint=ck, log=None)
    assert not marker.exists() and ck.exists()


def test_silent_without_log_and_progress(capfd):
    fit(tiny_model(), WeightedCrossEntropy(), dataset(), CFG, log=None, progress=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_progress_bar_shows_epochs_and_loss_without_warnings(capfd):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(tiny_model(), WeightedCrossEntropy(), dataset(), CFG, log=None, progress=True,
            progress_label="fcn seed 0")
    out, err = capfd.readouterr()
    assert out == ""
    assert "fcn seed 0" in err and "4/4" in err and "loss=" in err
    assert not [w for w in caught if "Tqdm" in type(w.message).__name__]


class Recorder(Callback):
    """The raw weights before every step (``batch_aux``) and after the last one."""

    def __init__(self):
        self.weights = []

    def batch_aux(self, state, batch):
        self.weights.append(copy.deepcopy(state.model.state_dict()))
        return {}

    def on_fit_start(self, state):
        self.start = copy.deepcopy(state.model.state_dict())

    def on_epoch_end(self, state):
        self.final = copy.deepcopy(state.model.state_dict())


def linear_model():
    torch.manual_seed(0)
    return nn.Conv2d(5, 6, 1)


def test_ema_weights_are_the_hand_computed_average():
    decay = 0.8
    cfg = TrainConfig(epochs=2, batch_size=4, samples_per_epoch=8, sampler="random_crop",
                      crop_size=32, ema_decay=decay, optimizer="sgd", momentum=0.0,
                      weight_decay=0.0, lr=0.5, schedule="constant")
    rec = Recorder()
    raw = linear_model()
    res = fit(raw, WeightedCrossEntropy(), dataset(), cfg, log=None, callbacks=[rec])
    after_steps = rec.weights[1:] + [rec.final]  # weights after step 1..T
    assert len(after_steps) == 4
    for name, ema_value in res.model.state_dict().items():
        expected = rec.start[name].clone()
        for w in after_steps:
            expected = decay * expected + (1 - decay) * w[name]
        torch.testing.assert_close(ema_value, expected, rtol=1e-6, atol=1e-7)
        assert not torch.allclose(ema_value, raw.state_dict()[name], atol=1e-4)
    assert res.model is not raw and not res.model.training


@pytest.mark.parametrize("clip", [None, 1e-3])
def test_grad_clip_bounds_every_update(clip):
    lr = 0.5
    cfg = TrainConfig(epochs=1, batch_size=4, samples_per_epoch=8, sampler="random_crop",
                      crop_size=32, optimizer="sgd", momentum=0.0, weight_decay=0.0, lr=lr,
                      schedule="constant", grad_clip=clip)
    rec = Recorder()
    fit(linear_model(), WeightedCrossEntropy(), dataset(), cfg, log=None, callbacks=[rec])
    states = rec.weights + [rec.final]
    norms = [torch.cat([(b[k] - a[k]).flatten() for k in a]).norm().item()
             for a, b in zip(states, states[1:], strict=False)]
    assert len(norms) == 2
    if clip is None:
        assert min(norms) > 10 * lr * 1e-3  # unclipped steps are far larger than the bound
    else:
        assert max(norms) <= lr * clip * (1 + 1e-4)
        assert min(norms) > 0.99 * lr * clip  # the clip was active (gradients are larger)


@pytest.mark.parametrize("schedule, expected", [("poly", 0.5 ** 0.9), ("step", 0.1),
                                                ("cosine", 0.5), ("constant", 1.0)])
def test_lr_schedules(schedule, expected):
    cfg = TrainConfig(schedule=schedule, step_milestones=(0.5,))
    assert np.isclose(lr_factor(cfg, 50, 100), expected)


def test_final_checkpoint_can_be_left_to_the_caller(tmp_path):
    ck = tmp_path / "ck.pt"
    res = fit(tiny_model(), WeightedCrossEntropy(), dataset(), CFG, checkpoint=ck, log=None,
              checkpoint_every=2, final_checkpoint=False)
    assert res.checkpoint_epochs == [1] and load_tensors(ck)["epoch"] == 1
    part = fit(tiny_model(), WeightedCrossEntropy(), dataset(), CFG, checkpoint=tmp_path / "b",
               log=None, checkpoint_every=10, final_checkpoint=False, max_epochs_this_call=3)
    assert part.checkpoint_epochs == [2]  # a call that stops early always writes


class BatchLabels(Callback):
    """Keeps every training batch's labels, per epoch."""

    def __init__(self):
        self.labels = {}

    def batch_aux(self, state, batch):
        self.labels.setdefault(state.epoch, []).append(batch["label"].clone())
        return {}


def test_replay_visits_the_batches_training_saw_and_measures_them():
    rec = BatchLabels()
    cfg = TrainConfig(epochs=3, batch_size=3, lr=0.05, samples_per_epoch=7,
                      sampler="random_crop", crop_size=32)  # 7 = 2 x 3 + 1: last batch dropped
    res = fit(tiny_model(), WeightedCrossEntropy(), dataset(), cfg, log=None,
              callbacks=[rec])
    for e in range(3):
        again = [b["label"] for b in replay_loader(dataset(), cfg, e)]
        assert len(again) == len(rec.labels[e]) == res.history[e]["steps"] == 2
        assert all(torch.equal(a, b) for a, b in zip(again, rec.labels[e], strict=True))
    model = res.model
    diff = batch_difficulty(model, dataset(), cfg, [1, 2])
    assert sorted(diff) == [1, 2] and all(len(v) == 2 for v in diff.values())
    first = next(iter(replay_loader(dataset(), cfg, 2)))
    with torch.no_grad():
        want = nn.functional.cross_entropy(model.eval()(first["image"]), first["label"].long(),
                                           ignore_index=255).item()
    assert diff[2][0] == pytest.approx(want, rel=1e-6)
    assert difficulty_epochs(30) == list(range(24, 30)) and difficulty_epochs(4) == [0, 1, 2, 3]
