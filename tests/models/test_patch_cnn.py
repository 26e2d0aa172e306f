import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aerialseg.models.mc import mc_forward
from aerialseg.models.patch_cnn import (
    FastDropout,
    FFTConv2d,
    PatchCNN,
    build_patch_cnn,
    predict_dense,
)
from aerialseg.models.registry import build_model

# Reduced widths keep tests fast; the fc1 geometry (41x41 kernel, 65-px field) is the real one.
SMALL = dict(in_channels=3, num_classes=5, conv_widths=(4, 6, 8, 8), fc_width=16)


def small_model(seed: int = 0) -> PatchCNN:
    torch.manual_seed(seed)
    m = build_patch_cnn(**SMALL)
    g = torch.Generator().manual_seed(seed)
    for mod in m.modules():  # non-trivial BN statistics, so eval-mode BN matters
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.3, 0.3, generator=g)
            mod.running_var.uniform_(0.5, 2.0, generator=g)
            mod.weight.data.uniform_(0.5, 1.5, generator=g)
    return m.eval()


def centre_probs(m, img, i, j):
    """Classify the 65x65 patch centred at (i, j) of img (B, C, H, W) on its own."""
    with torch.no_grad():
        return torch.softmax(m(img[:, :, i - 32:i + 33, j - 32:j + 33]), 1)[:, :, 0, 0]


def test_geometry_and_shapes():
    m = small_model()
    assert m.fc1.kernel_size == (41, 41) and m.halo == 32 and m.patch_size == 65
    with torch.no_grad():
        assert m(torch.randn(2, 3, 65, 65)).shape == (2, 5, 1, 1)
        assert m(torch.randn(1, 3, 80, 101)).shape == (1, 5, 16, 37)
    with pytest.raises(ValueError, match="patch_size"):
        m(torch.randn(1, 3, 64, 90))
    with pytest.raises(ValueError, match="odd"):
        build_patch_cnn(in_channels=3, num_classes=5, patch_size=64)


def test_structure_relu_before_bn_and_stride_one_pool():
    m = small_model()
    kinds = [type(x) for x in m.features]
    assert kinds[:4] == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d, nn.MaxPool2d]
    assert all(p.stride == 1 and p.kernel_size == 3 for p in m.features
               if isinstance(p, nn.MaxPool2d))
    assert isinstance(m.drop1, nn.Dropout) and m.drop1.p == 0.5


def test_param_count_default_model():
    m = build_model("patch_cnn", in_channels=5, num_classes=6)
    n = sum(p.numel() for p in m.parameters())
    assert isinstance(m, PatchCNN)
    assert n == 28_075_878
    assert abs(n - 28.1e6) < 0.1e6  # methods.md §1
    assert m.fc1.weight.numel() == 41 * 41 * 128 * 128


@pytest.mark.parametrize("mode", ["auto", "direct"])
def test_dense_equals_per_patch_classification(mode):
    m = small_model()
    m.fc1_mode = mode
    img = torch.randn(1, 3, 96, 110)
    with torch.no_grad():
        dense = torch.softmax(m(img), 1)  # (1, 5, 32, 46): pixel (i, j) -> dense[i-32, j-32]
    assert dense.shape == (1, 5, 32, 46)
    for i, j in [(32, 32), (40, 77), (63, 32), (47, 77), (50, 55)]:
        torch.testing.assert_close(dense[:, :, i - 32, j - 32], centre_probs(m, img, i, j),
                                   atol=1e-4, rtol=0)


def test_auto_mode_picks_fft_only_in_eval_for_large_outputs():
    fc = small_model().fc1
    big, patch = torch.randn(1, 8, 120, 120), torch.randn(4, 8, 41, 41)
    with torch.no_grad():
        assert fc._use_fft(big) and not fc._use_fft(patch)
        fc.train()
        assert not fc._use_fft(big)
        fc.eval()
    assert not fc._use_fft(big)  # grad enabled and the weight needs it: direct
    fc.mode = "fft"
    assert fc._use_fft(patch)
    with pytest.raises(ValueError, match="fc1 mode"):
        fc.mode = "fast"


@pytest.mark.parametrize("block,chunk", [(64, 2**28), (16, 1)])
def test_fft_conv_matches_direct(block, chunk):
    torch.manual_seed(1)
    fc = FFTConv2d(16, 8, 41, block=block, chunk_bytes=chunk).eval()
    x = torch.relu(torch.randn(2, 16, 41 + 37, 41 + 70))  # blocks do not divide the output
    with torch.no_grad():
        fc.mode = "direct"
        ref = fc(x)
        fc.mode = "fft"
        y = fc(x)
    assert y.shape == ref.shape == (2, 8, 38, 71)
    torch.testing.assert_close(y, ref, atol=1e-4, rtol=0)


def test_spectrum_cache_reused_and_invalidated():
    torch.manual_seed(2)
    fc = FFTConv2d(4, 4, 41, mode="fft").eval()
    x = torch.randn(1, 4, 60, 60)
    with torch.no_grad():
        fc(x)
        s1 = fc._spectrum_cache[1]
        fc(x)
        assert fc._spectrum_cache[1] is s1  # reused
        fc.weight.mul_(2.0)  # in-place change bumps the version counter
        y = fc(x)
        assert fc._spectrum_cache[1] is not s1
        fc.mode = "direct"
        torch.testing.assert_close(y, fc(x), atol=1e-4, rtol=0)
        fc.mode = "fft"
        fc.weight.data.add_(0.01)  # .data bypasses the version counter; the checksum sees it
        y = fc(x)
        fc.mode = "direct"
        torch.testing.assert_close(y, fc(x), atol=1e-4, rtol=0)
    assert copy.deepcopy(fc)._spectrum_cache is None  # never copied or pickled


def test_fft_mode_is_differentiable():
    torch.manual_seed(3)
    fc = FFTConv2d(4, 3, 41, mode="fft")
    x = torch.randn(1, 4, 50, 47, requires_grad=True)
    fc(x).square().sum().backward()
    gw, gx = fc.weight.grad.clone(), x.grad.clone()
    fc.weight.grad, x.grad = None, None
    fc.mode = "direct"
    fc(x).square().sum().backward()
    torch.testing.assert_close(gw, fc.weight.grad, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(gx, x.grad, atol=1e-4, rtol=1e-4)
    assert fc._spectrum_cache is None  # a spectrum with grad is never cached


@pytest.mark.parametrize("border_mode", ["reflect", "omit"])
def test_predict_dense_tiled_equals_untiled(border_mode):
    m = small_model()
    img = torch.randn(2, 3, 100, 90)
    whole = predict_dense(m, img, border_mode=border_mode, tile=512)
    tiled = predict_dense(m, img, border_mode=border_mode, tile=24)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0, equal_nan=True)
    assert m.training is False


def test_border_modes():
    m = small_model()
    img = torch.randn(3, 100, 90)
    omit = predict_dense(m, img, border_mode="omit", tile=64)
    refl = predict_dense(m, img, border_mode="reflect", tile=64)
    assert omit.shape == refl.shape == (1, 5, 100, 90)
    nan = torch.isnan(omit[0, 0])
    inner = torch.zeros_like(nan)
    inner[32:100 - 32, 32:90 - 32] = True
    assert torch.equal(nan, ~inner)
    assert torch.isnan(omit).any(1).eq(nan).all()
    assert torch.isfinite(refl).all()
    torch.testing.assert_close(refl.sum(1), torch.ones(1, 100, 90))
    # Interior pixels see no padding: both modes agree there, and match per-patch.
    torch.testing.assert_close(refl[..., inner], omit[..., inner], atol=1e-5, rtol=0)
    torch.testing.assert_close(omit[:, :, 40, 50], centre_probs(m, img[None], 40, 50),
                               atol=1e-4, rtol=0)
    # Reflect mode classifies the border pixel (0, 0) as the patch of the mirrored image.
    padded = F.pad(img[None], (32,) * 4, mode="reflect")
    torch.testing.assert_close(refl[:, :, 0, 0], centre_probs(m, padded, 32, 32),
                               atol=1e-4, rtol=0)


def test_predict_dense_restores_train_mode_and_rejects_bad_input():
    m = small_model().train()
    predict_dense(m, torch.randn(3, 70, 70), tile=64)
    assert m.training and m.drop1.training
    with pytest.raises(ValueError, match="border_mode"):
        predict_dense(m, torch.randn(3, 70, 70), border_mode="same")
    with pytest.raises(ValueError, match="reflect-pad"):
        predict_dense(m, torch.randn(3, 20, 70))
    assert torch.isnan(predict_dense(m, torch.randn(3, 50, 70), border_mode="omit")).all()


@pytest.mark.parametrize("chunk_bytes", [2**22, 1])
def test_mc_split_consistency(chunk_bytes):
    m = small_model()
    m.head_chunk_bytes = chunk_bytes  # 1: the head runs row by row
    trunk, head = m.mc_split()
    assert not any(isinstance(x, nn.Dropout) for x in trunk.modules())
    x = torch.randn(2, 3, 80, 75)
    with torch.no_grad():
        torch.testing.assert_close(head(trunk(x)), m(x))
    # MC mode: the split and stacked full passes draw the same masks for the same seed.
    torch.manual_seed(5)
    a = mc_forward(m, x, 4, split=True)
    torch.manual_seed(5)
    b = mc_forward(m, x, 4, split=False)
    assert a.shape == (4, 2, 5, 16, 11)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert (a[0] - a[1]).abs().max() > 1e-3  # the samples differ
    assert not m.training
    head.train()  # touches only the head's modules
    assert m.drop1.training and not m.features[2].training


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_fast_dropout_statistics_and_grad(p):
    d = FastDropout(p)
    x = torch.ones(200_000, requires_grad=True)
    torch.manual_seed(0)
    y = d(x)
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - p) < 0.005
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())
    assert torch.equal(d.eval()(x), x)
