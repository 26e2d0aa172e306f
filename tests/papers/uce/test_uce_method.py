import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from aerialseg.data.registry import DataConfig, SplitData
from aerialseg.losses.ce import WeightedCrossEntropy
from aerialseg.losses.uce import UncertaintyAwareCE
from aerialseg.models import mc
from aerialseg.models.mc import mc_forward
from aerialseg.models.registry import build_model
from aerialseg.papers.uce import analysis as UA
from aerialseg.papers.uce import method as uce
from aerialseg.papers.uce.reported import LANDGRAF_CITYSCAPES, landgraf_effects, landgraf_table
from aerialseg.registry import resolve_run
from aerialseg.runs import get_or_train
from aerialseg.training import TrainState

BANDS = ("ir", "r", "g", "dsm", "ndsm")


def tiny_dlv3(dropout: float = 0.2) -> nn.Module:
    torch.manual_seed(0)
    return build_model("smp_deeplabv3plus", in_channels=5, num_classes=6,
                       encoder_dropout=dropout, encoder_depth=3, decoder_channels=16,
                       decoder_atrous_rates=(2, 4, 6))


def quiet_dropout(model: nn.Module, p: float = 1e-9) -> nn.Module:
    """Dropout that (practically) never drops but still counts as dropout (keeps the split)."""
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.p = p
    return model


def buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.named_buffers()}


def cfg(method: str, **kw):
    base = dict(profile="smoke", in_bands=BANDS, data={}, crop_size=32, samples_per_epoch=4,
                batch_size=2, epochs=1)
    base.update(kw)
    return resolve_run(method, **base)


# --- method definitions -------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["smoke", "default", "full"])
def test_methods_share_model_and_optimiser(profile):
    cfgs = {m: resolve_run(m, profile=profile, in_bands=BANDS, data={}) for m in uce.METHOD_NAMES}
    ce, a1, a10 = (cfgs[m] for m in uce.METHOD_NAMES)
    assert ce.model_kwargs == a1.model_kwargs == a10.model_kwargs
    assert ce.train == a1.train == a10.train
    t = ce.train
    if profile == "full":  # the paper's DeepLabV3+ and recipe
        assert ce.model == a1.model == "smp_deeplabv3plus"
        assert ce.model_kwargs["encoder"] == "resnet18"
        assert ce.model_kwargs["encoder_dropout"] == 0.2
        assert (t.optimizer, t.momentum, t.weight_decay, t.lr, t.decoder_lr_mult,
                t.schedule) == ("sgd", 0.9, 1e-4, 0.01, 10.0, "poly")
        assert t.sampler == "random_crop" and t.scale_range == (0.5, 2.0)
    else:  # the shared backbone: the CE baseline is chapter 03's FCN, the same runs
        assert ce.model == "fcn"
        from aerialseg.runs import run_key

        fcn = resolve_run("fcn", profile=profile, in_bands=BANDS, data={})
        assert run_key(ce) == run_key(fcn)
    # a last batch of one sample would break DeepLabV3+'s image-pooling BatchNorm
    assert t.samples_per_epoch % t.batch_size == 0
    assert ce.loss == "ce" and a1.loss == a10.loss == "uce"
    assert a1.loss_kwargs["uce_exponent"] == 1.0 and a10.loss_kwargs["uce_exponent"] == 10.0
    assert a10.loss_kwargs["uce_mc_bn"] == "train"
    # the weighting starts at once in full (the paper), after a third of training on CPU
    assert a10.loss_kwargs["uce_start_epoch"] == (0 if profile in ("smoke", "full") else 10)
    if profile == "full":
        assert ce.model_kwargs["decoder_atrous_rates"] == (12, 24, 36)
        assert a10.loss_kwargs["uce_mc_samples"] == 10 and t.crop_size == 512


# --- batched MC passes ----------------------------------------------------------------------


def test_grouped_batchnorm_normalises_each_copy_on_its_own():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3, momentum=0.3).train()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    xs = [torch.randn(4, 3, 5, 5) * (k + 1) + k for k in range(3)]
    ref = copy.deepcopy(bn)
    expected = torch.cat([ref(x) for x in xs])
    with mc.GroupedBatchNorm(bn, update_stats=True) as g, g.setting(groups=3):
        got = bn(torch.cat(xs))
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(bn.running_mean, ref.running_mean)
    torch.testing.assert_close(bn.running_var, ref.running_var)
    assert int(bn.num_batches_tracked) == 3
    assert "forward" not in bn.__dict__  # the patch is removed on exit


@pytest.mark.parametrize("momentum", [0.1, None])
def test_grouped_batchnorm_repeats_count_as_separate_passes(momentum):
    torch.manual_seed(1)
    bn = nn.BatchNorm2d(2, momentum=momentum).train()
    bn.running_mean.fill_(0.5)
    bn.num_batches_tracked.fill_(3)
    x = torch.randn(3, 2, 4, 4) + 2
    ref = copy.deepcopy(bn)
    for _ in range(4):
        ref(x)
    with mc.GroupedBatchNorm(bn, update_stats=True) as g, g.setting(groups=1, repeats=4):
        bn(x)
    torch.testing.assert_close(bn.running_mean, ref.running_mean)
    torch.testing.assert_close(bn.running_var, ref.running_var)
    assert int(bn.num_batches_tracked) == int(ref.num_batches_tracked) == 7


@pytest.mark.parametrize("bn", ["train", "train_frozen_stats"])
def test_batched_passes_equal_separate_train_mode_passes(bn):
    model = quiet_dropout(tiny_dlv3()).eval()
    x = torch.randn(3, 5, 48, 48)
    loop, batched = copy.deepcopy(model), copy.deepcopy(model)
    before = buffers(model)
    ref = mc_forward(loop, x, 4, bn=bn)  # the library's one-by-one train-mode passes
    got = mc.mc_train_probs(batched, x, 4, bn=bn, split=True, chunk=3)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)
    after = buffers(batched)
    for k, v in buffers(loop).items():
        torch.testing.assert_close(after[k].float(), v.float(), atol=1e-5, rtol=1e-4)
    changed = any(not torch.equal(before[k], after[k]) for k in before)
    assert changed == (bn == "train")
    assert not batched.training and not any(m.training for m in batched.modules())


def test_trunk_runs_once_and_head_over_stacked_copies():
    model = tiny_dlv3()
    seen = []
    model.encoder.conv1.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    model.decoder.register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
    mc.mc_train_probs(model, torch.randn(2, 5, 32, 32), 5)
    assert seen == [2, 10]  # stem once on B, decoder once on T*B
    seen.clear()
    mc.mc_train_probs(model, torch.randn(2, 5, 32, 32), 5, split=False)
    assert seen == [10, 10]


def test_mc_copies_differ_with_dropout_and_no_gradient():
    model = tiny_dlv3().train()
    x = torch.randn(2, 5, 32, 32, requires_grad=True)
    p = mc.mc_train_probs(model, x, 4)
    assert p.shape == (4, 2, 6, 32, 32) and not p.requires_grad
    torch.testing.assert_close(p.sum(2), torch.ones(4, 2, 32, 32))
    assert (p[0] - p[1]).abs().max() > 1e-3  # independent dropout masks per copy
    assert all(q.grad is None for q in model.parameters())


def test_training_uncertainty_is_the_predicted_class_std():
    torch.manual_seed(0)
    model = tiny_dlv3()
    x = torch.randn(2, 5, 32, 32)
    torch.manual_seed(5)
    probs = mc.mc_train_probs(copy.deepcopy(model), x, 3, bn="train_frozen_stats")
    torch.manual_seed(5)
    u = uce.training_uncertainty(copy.deepcopy(model), x, 3, bn="train_frozen_stats")
    c = probs.mean(0).argmax(1, keepdim=True)
    torch.testing.assert_close(u, probs.std(0).gather(1, c)[:, 0])  # ddof 1, as the code
    um = uce.training_uncertainty(model, x, 3, bn="eval", kind="mean_class_std")
    assert um.shape == (2, 32, 32) and (um >= 0).all()


def test_without_dropout_u_is_zero():
    model = tiny_dlv3(dropout=0.0)
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0  # also the ASPP dropout
    u = uce.training_uncertainty(model, torch.randn(2, 5, 32, 32), 3, bn="train_frozen_stats")
    assert float(u.abs().max()) < 1e-6


def test_compare_mc_passes_reports_agreement():
    out = UA.compare_mc_passes(tiny_dlv3(), torch.randn(2, 5, 32, 32), 3, repeats=1)
    assert out["max_prob_diff"] < 1e-5 and out["max_buffer_diff"] < 1e-5
    assert out["loop_s"] > 0 and out["batched_s"] > 0


# --- the callback and the loss --------------------------------------------------------------


def _state(model, loss_fn, epoch=0):
    cfg_ = cfg("uce_a10").train
    loss_fn.set_epoch(epoch) if hasattr(loss_fn, "set_epoch") else None
    return TrainState(model=model, loss_fn=loss_fn, optimizer=None, cfg=cfg_,
                      device=torch.device("cpu"), dataset=None, epoch=epoch,
                      history=[{"epoch": epoch, "loss": 1.0, "seconds": 1.0}])


def test_callback_gives_uncertainty_and_records_stats():
    model = tiny_dlv3().train()
    cb = uce.UCEUncertainty(mc_samples=3)
    loss_fn = UncertaintyAwareCE(10.0)
    state = _state(model, loss_fn)
    label = torch.randint(0, 5, (2, 32, 32))
    label[0, :4] = 255
    batch = {"image": torch.randn(2, 5, 32, 32), "label": label}
    cb.on_epoch_start(state)
    aux = cb.batch_aux(state, batch)
    u = aux["uncertainty"]
    assert u.shape == (2, 32, 32) and not u.requires_grad and torch.isfinite(u).all()
    cb.on_epoch_end(state)
    rec = state.history[-1]
    valid = label != 255
    assert rec["steps"] == rec["mc_steps"] == 1 and rec["mc_seconds"] > 0
    assert rec["train_uncertainty"] == pytest.approx(float(u[valid].mean()), rel=1e-5)
    assert rec["train_weight"] == pytest.approx(float((1 + u[valid]).pow(10).mean()), rel=1e-4)
    # the plain cross-entropy of the passes, comparable with the CE baseline's loss
    assert 0 < rec["train_ce"] < 10 and math.isfinite(rec["train_ce"])
    # the loss weights only valid pixels; with this u it differs from plain CE
    logits = torch.randn(2, 6, 32, 32)
    assert loss_fn(logits, label, aux) > WeightedCrossEntropy()(logits, label)


def test_callback_skips_passes_before_start_epoch_and_at_alpha_zero():
    model = tiny_dlv3()
    batch = {"image": torch.randn(2, 5, 32, 32), "label": torch.zeros(2, 32, 32, dtype=torch.long)}
    for loss_fn, epoch in ((UncertaintyAwareCE(10.0, start_epoch=2), 1),
                           (UncertaintyAwareCE(0.0), 0)):
        cb = uce.UCEUncertainty(mc_samples=2)
        state = _state(model, loss_fn, epoch)
        cb.on_epoch_start(state)
        assert cb.batch_aux(state, batch) == {}
        cb.on_epoch_end(state)
        assert state.history[-1]["mc_steps"] == 0 and state.history[-1]["steps"] == 1
        assert math.isnan(state.history[-1]["train_uncertainty"])
        # and the loss is exactly CE there
        logits, target = torch.randn(2, 6, 32, 32), torch.randint(0, 6, (2, 32, 32))
        torch.testing.assert_close(loss_fn(logits, target), WeightedCrossEntropy()(logits, target))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="uce_mc_samples"):
        uce.UCEUncertainty(mc_samples=1)
    with pytest.raises(ValueError, match="uce_mc_bn"):
        uce.UCEUncertainty(bn="frozen")
    with pytest.raises(ValueError, match="uce_uncertainty"):
        uce.UCEUncertainty(kind="entropy")


def _split(scene_factory):
    return SplitData(DataConfig(), [scene_factory(seed=i, size=64) for i in range(2)],
                     [scene_factory(seed=9, size=64, split="val")])


def test_uce_alpha_zero_trains_exactly_like_ce(scene_factory):
    data = _split(scene_factory)
    torch.manual_seed(123)  # the store seeds the initialisation itself
    ce = get_or_train(cfg("ce_dropout"), data, log=None)
    a0 = get_or_train(cfg("uce_a10", uce_exponent=0.0), data, log=None)
    for (k, a), b in zip(ce.model.state_dict().items(), a0.model.state_dict().values(),
                         strict=True):
        torch.testing.assert_close(a, b, msg=k)
    assert a0.history[0]["mc_steps"] == 0


def test_uce_run_through_the_store(scene_factory):
    data = _split(scene_factory)
    run = get_or_train(cfg("uce_a10", epochs=2, uce_mc_samples=2), data, log=None)
    assert len(run.history) == 2
    h = run.history[-1]
    assert h["mc_steps"] == h["steps"] == 2 and h["train_uncertainty"] > 0
    assert h["train_weight"] >= 1.0 and h["train_ce"] > 0
    costs = UA.step_seconds(run)
    assert 0 < costs["mc_step_s"] < costs["step_s"]
    again = get_or_train(cfg("uce_a10", epochs=2, uce_mc_samples=2), data, log=None)
    assert again.reused and again.history[-1]["mc_steps"] == 2  # stats survive the store


# --- evaluation helpers ---------------------------------------------------------------------


def test_mean_uncertainty_uses_labelled_pixels_and_ddof1():
    truth = np.array([[0, 1], [255, 2]], np.uint8)
    u = np.array([[0.1, 0.2], [9.0, 0.3]], np.float32)
    ev = SimpleNamespace(maps={"a": {"truth": truth, "predicted_class_std": u},
                               "b": {"truth": np.zeros((1, 2), np.uint8),
                                     "predicted_class_std": np.array([[0.4, 0.0]], np.float32)}})
    f = math.sqrt(5 / 4)
    assert UA.mean_uncertainty(ev, 5) == pytest.approx(f * 1.0 / 5)
    maps = UA.uncertainty_maps(ev, 5)
    np.testing.assert_allclose(maps["a"], u * f)
    with pytest.raises(ValueError, match="mc_samples"):
        UA.mean_uncertainty(SimpleNamespace(maps={"a": {"truth": truth}}), 5)


def test_reported_table_and_effects():
    assert LANDGRAF_CITYSCAPES[("U-CE α=10", "ResNet-18", 200)]["miou"] == 0.718
    t = landgraf_table("ResNet-18")
    assert t.shape == (3, 6) and t.loc[("CE", "ResNet-18"), "ECE 500 ep"] == 0.025
    assert landgraf_table().shape == (6, 6)
    eff = landgraf_effects("ResNet-18", 200)
    assert eff.loc["uce_a10", "Δ mIoU (points)"] == pytest.approx(2.8)
    assert landgraf_effects("ResNet-101", 500).loc["uce_a10", "Δ mIoU (points)"] == (
        pytest.approx(1.4))
    with pytest.raises(ValueError, match="encoder"):
        landgraf_table("VGG")
