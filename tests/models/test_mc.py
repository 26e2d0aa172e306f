import pytest
import torch
from torch import nn

from aerialseg.models.fcn import build_fcn
from aerialseg.models.mc import enable_mc_dropout, has_dropout, mc_forward, repeat_batch

T = 6


def tiny_fcn(p=0.5):
    torch.manual_seed(0)
    return build_fcn(in_channels=3, num_classes=4, widths=(4, 6, 8, 8), dropout_p=p)


class NoSplit(nn.Module):
    """A dropout model without mc_split (exercises the stacked full-pass fallback)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout2d(0.3),
            nn.Conv2d(8, 4, 1),
        )

    def forward(self, x):
        return self.body(x)


def test_enable_mc_dropout_and_has_dropout():
    m = tiny_fcn().train()
    assert has_dropout(m)
    enable_mc_dropout(m)
    for mod in m.modules():
        assert mod.training == isinstance(mod, nn.Dropout)
    assert has_dropout(NoSplit())  # Dropout2d counts
    assert not has_dropout(tiny_fcn(p=0.0))
    assert not has_dropout(nn.Sequential(nn.Conv2d(1, 1, 1), nn.Dropout(0.0)))


def test_repeat_batch():
    a = torch.arange(6.0).view(2, 3)
    out = repeat_batch(([a], {"k": a}, (5, 7)), 3)
    assert out[0][0].shape == (6, 3)
    torch.testing.assert_close(out[0][0].view(3, 2, 3)[2], a)
    assert out[2] == (5, 7)


def test_shape_probs_and_modes_restored():
    m = tiny_fcn().train()
    x = torch.randn(2, 3, 40, 24)
    p = mc_forward(m, x, T)
    assert p.shape == (T, 2, 4, 40, 24) and p.dtype == torch.float32
    torch.testing.assert_close(p.sum(2), torch.ones(T, 2, 40, 24))
    assert not p.requires_grad
    assert all(mod.training for mod in m.modules())  # caller's train mode is back
    assert not torch.allclose(p[0], p[1])  # samples differ


@pytest.mark.parametrize("chunk", [None, 4])
def test_split_equals_stacked_full_passes_same_seed(chunk):
    m = tiny_fcn()
    x = torch.randn(2, 3, 50, 70)
    torch.manual_seed(123)
    a = mc_forward(m, x, T, split=True, chunk=chunk)
    torch.manual_seed(123)
    b = mc_forward(m, x, T, split=False, chunk=chunk)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_split_runs_trunk_once():
    m = tiny_fcn()
    batches = []
    m.features.set1.register_forward_hook(lambda mod, i, o: batches.append(o.shape[0]))
    x = torch.randn(2, 3, 32, 32)
    mc_forward(m, x, T, chunk=4)
    assert batches == [2]
    batches.clear()
    mc_forward(m, x, T, chunk=4, split=False)
    assert batches == [8, 4]


def test_split_matches_sequential_passes_statistically():
    # Batched MC sampling has the same distribution as T independent eval+dropout passes.
    m = tiny_fcn(p=0.5)
    x = torch.randn(1, 3, 16, 16)
    n = 100
    torch.manual_seed(0)
    a = mc_forward(m, x, n)
    enable_mc_dropout(m)
    torch.manual_seed(1)
    with torch.no_grad():
        b = torch.stack([torch.softmax(m(x), 1) for _ in range(n)])
    assert (a.mean(0) - b.mean(0)).abs().mean() < 0.02
    assert (a.std(0).mean() - b.std(0).mean()).abs() < 0.1 * b.std(0).mean()


def test_fallback_without_mc_split():
    m = NoSplit()
    x = torch.randn(2, 3, 16, 16)
    p = mc_forward(m, x, T)
    assert p.shape == (T, 2, 4, 16, 16)
    assert not torch.allclose(p[0], p[1])
    with pytest.raises(ValueError, match="mc_split"):
        mc_forward(m, x, T, split=True)


def test_no_dropout_model_gives_identical_samples():
    m = tiny_fcn(p=0.0)
    p = mc_forward(m, torch.randn(1, 3, 32, 32), T)
    assert p.shape[0] == T
    torch.testing.assert_close(p[0], p[-1])


def test_bn_train_updates_stats_and_frozen_restores():
    x = torch.randn(2, 3, 32, 32)
    m = tiny_fcn().eval()
    bn = m.features.set1[2]
    before = bn.running_mean.clone()
    mc_forward(m, x, 3, bn="eval")
    torch.testing.assert_close(bn.running_mean, before)
    p = mc_forward(m, x, 3, bn="train_frozen_stats")
    torch.testing.assert_close(bn.running_mean, before)
    assert int(bn.num_batches_tracked) == 0
    assert not torch.allclose(p[0], p[1])
    mc_forward(m, x, 3, bn="train")
    assert int(bn.num_batches_tracked) == 3  # one update per sample, as in U-CE's code
    assert not torch.allclose(bn.running_mean, before)
    assert not any(mod.training for mod in m.modules())  # eval mode restored


def test_grad_flag():
    m = tiny_fcn()
    x = torch.randn(1, 3, 32, 32)
    p = mc_forward(m, x, 2, grad=True)
    p[:, :, 0].mean().backward()
    assert m.classifier.weight.grad is not None


@pytest.mark.parametrize(
    ("kw", "msg"), [({"T": 0}, "T"), ({"bn": "frozen"}, "bn"), ({"chunk": 0}, "chunk")]
)
def test_bad_args(kw, msg):
    args = {"T": 2} | kw
    with pytest.raises(ValueError, match=msg):
        mc_forward(tiny_fcn(), torch.randn(1, 3, 16, 16), **args)


def test_wrapped_model_uses_inner_split():
    m = tiny_fcn()
    wrapped = nn.DataParallel(m)  # on CPU just calls .module; stands in for DDP
    x = torch.randn(1, 3, 32, 32)
    torch.manual_seed(5)
    a = mc_forward(wrapped, x, 3, split=True)
    torch.manual_seed(5)
    b = mc_forward(m, x, 3, split=False)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_deterministic_and_mc_share_the_trunk_and_match_separate_passes():
    from aerialseg.models.mc import deterministic_and_mc, mc_forward
    from aerialseg.models.registry import build_model

    for name, kw in (("fcn", {"widths": (4, 8, 8, 8)}),
                     ("patch_cnn", {"conv_widths": (4, 4, 4, 4), "fc_width": 8})):
        torch.manual_seed(0)
        model = build_model(name, in_channels=3, num_classes=4, **kw).eval()
        x = torch.randn(1, 3, 80, 80)
        with torch.no_grad():
            ref = torch.softmax(model(x), 1)
        torch.manual_seed(7)
        det, samples = deterministic_and_mc(model, x, 5)
        torch.manual_seed(7)
        ref_samples = mc_forward(model, x, 5)
        assert torch.allclose(det, ref, atol=1e-6), name
        assert torch.allclose(samples, ref_samples, atol=1e-6), name
        assert not model.training and not any(m.training for m in model.modules())
