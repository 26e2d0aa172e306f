import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aerialseg.models.fcn import BilinearInitUpsample, build_fcn
from aerialseg.models.mc import enable_mc_dropout
from aerialseg.models.registry import build_model

TINY = (4, 6, 8, 8)


def tiny(**kw):
    torch.manual_seed(0)
    return build_fcn(in_channels=5, num_classes=6, widths=TINY, **kw)


@pytest.mark.parametrize("upsample", ["transposed_bilinear_init", "bilinear"])
@pytest.mark.parametrize("hw", [(50, 70), (16, 16), (64, 48), (17, 33)])
def test_output_shape_any_size(upsample, hw):
    m = tiny(upsample=upsample).eval()
    y = m(torch.randn(2, 5, *hw))
    assert y.shape == (2, 6, *hw)


def test_first_stride_one_gives_output_stride_8():
    m = tiny(first_stride=1).eval()
    assert m.output_stride == 8
    assert m(torch.randn(1, 5, 50, 70)).shape == (1, 6, 50, 70)


def test_param_count_default_widths():
    m = build_model("fcn", in_channels=5, num_classes=6)
    n = sum(p.numel() for p in m.parameters())
    # convs 4_686_528 + BN 3_840 + 1x1 3_078 + transposed 6*6*32*32 = 36_864 (no bias)
    assert n == 4_730_310
    assert abs(n - 4.7e6) < 0.1e6  # methods.md §2 ballpark


def test_structure_relu_before_bn_and_strides():
    m = build_fcn(in_channels=5, num_classes=6)
    names = [n for n, _ in m.features.named_children()]
    assert names == ["set1", "pool1", "set2", "pool2", "set3", "pool3", "drop3", "set4", "drop4"]
    for k in range(1, 5):
        types = [type(x) for x in getattr(m.features, f"set{k}")]
        assert types == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d] * 2
    assert m.features.set1[0].stride == (2, 2)
    assert m.features.set2[0].stride == (1, 1)
    up = m.upsample.deconv
    assert (up.kernel_size, up.stride, up.padding) == ((32, 32), (16, 16), (8, 8))
    assert all(d.p == 0.5 for d in m.modules() if isinstance(d, nn.Dropout))


def test_bn_after_relu_behaviour():
    # BN last => in train mode each channel of a set's output is standardised (has negative
    # values); with BN before ReLU the outputs would all be >= 0.
    m = tiny().train()
    out = m.features.set1(torch.randn(4, 5, 32, 32))
    assert out.min() < 0
    assert out.mean(dim=(0, 2, 3)).abs().max() < 1e-4


def test_he_init():
    torch.manual_seed(0)
    m = build_fcn(in_channels=5, num_classes=6)
    w = m.features.set4[3].weight
    fan_in = w.shape[1] * 9
    assert w.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.02)


@pytest.mark.parametrize("factor", [16, 8])
def test_bilinear_init_equals_bilinear_interpolation(factor):
    up = BilinearInitUpsample(3, factor)
    h, w = 5, 7
    yy, xx = torch.meshgrid(torch.arange(float(h)), torch.arange(float(w)), indexing="ij")
    x = torch.stack([torch.full((h, w), 2.5), 0.3 * xx - 1.0, 0.2 * yy + 0.1 * xx])[None]
    got = up(x)
    ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert got.shape == (1, 3, factor * h, factor * w)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[0, 0], torch.full_like(got[0, 0], 2.5))  # constant stays
    assert up.deconv.weight.requires_grad


def test_transposed_upsample_learns():
    m = tiny()
    y = m(torch.randn(2, 5, 32, 32))
    y.sum().backward()
    assert m.upsample.deconv.weight.grad is not None
    assert m.upsample.deconv.weight.grad.abs().sum() > 0


def test_dropout_only_in_mc_mode():
    m = tiny().eval()
    x = torch.randn(1, 5, 32, 32)
    torch.testing.assert_close(m(x), m(x))
    enable_mc_dropout(m)
    assert not any(b.training for b in m.modules() if isinstance(b, nn.BatchNorm2d))
    assert not torch.allclose(m(x), m(x))


def test_mc_split_reproduces_forward():
    m = tiny().eval()
    x = torch.randn(2, 5, 50, 70)
    trunk, head = m.mc_split()
    torch.testing.assert_close(head(trunk(x)), m(x))
    # split sits before the first dropout: trunk output is after pool3 (stride 16)
    feats, size = trunk(x)
    assert feats.shape == (2, 8, 4, 5) and size == (50, 70)
    # same RNG state in MC mode -> same sample
    enable_mc_dropout(m)
    torch.manual_seed(1)
    a = head(trunk(x))
    torch.manual_seed(1)
    b = m(x)
    torch.testing.assert_close(a, b)


def test_no_dropout_configs():
    for kw in ({"dropout_p": 0.0}, {"dropout_sites": ()}):
        m = tiny(**kw)
        assert not any(isinstance(d, nn.Dropout) for d in m.modules())
        trunk, head = m.eval().mc_split()
        x = torch.randn(1, 5, 32, 32)
        torch.testing.assert_close(head(trunk(x)), m(x))


def test_dropout_sites_placement():
    m = tiny(dropout_sites=("set1", "set4"), dropout_p=0.1)
    names = [n for n, _ in m.features.named_children()]
    assert names.index("drop1") == names.index("pool1") + 1
    assert names[-1] == "drop4"


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"dropout_p": 1.0}, "dropout_p"),
        ({"dropout_p": -0.1}, "dropout_p"),
        ({"dropout_sites": ("set3", "set9", "fc")}, "set9"),
        ({"dropout_sites": "set3"}, "bare string"),
        ({"upsample": "nearest"}, "upsample"),
        ({"widths": (8, 8, 8)}, "widths"),
        ({"first_stride": 4}, "first_stride"),
    ],
)
def test_bad_args(kw, msg):
    with pytest.raises(ValueError, match=msg):
        build_fcn(in_channels=5, num_classes=6, **kw)


def test_unknown_site_lists_valid_names():
    with pytest.raises(ValueError, match="set1.*set2.*set3.*set4"):
        build_fcn(in_channels=5, num_classes=6, dropout_sites=("bogus",))
