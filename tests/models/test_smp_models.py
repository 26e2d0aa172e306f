import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before smp imports huggingface_hub

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from aerialseg.models.mc import enable_mc_dropout, mc_forward  # noqa: E402
from aerialseg.models.registry import build_model  # noqa: E402
from aerialseg.models.smp_models import (  # noqa: E402
    build_smp_deeplabv3plus,
    build_smp_unet,
    param_groups,
)

NAMES = ["smp_unet", "smp_fpn", "smp_pspnet", "smp_deeplabv3plus"]
SMALL = {
    "smp_unet": {"decoder_channels": (32, 16, 16, 8, 8)},
    "smp_fpn": {"decoder_pyramid_channels": 32, "decoder_segmentation_channels": 32},
    "smp_pspnet": {"psp_out_channels": 32},
    "smp_deeplabv3plus": {"decoder_channels": 32},
}
N_SITES = {"smp_unet": 4, "smp_fpn": 4, "smp_pspnet": 2, "smp_deeplabv3plus": 4}


def make(name, p=0.2, **kw):
    torch.manual_seed(0)
    return build_model(
        name, in_channels=5, num_classes=6, encoder="resnet18", encoder_dropout=p,
        **(SMALL[name] | kw),
    )


def enc_dropouts(m):
    return [d for d in m.encoder.modules() if isinstance(d, nn.Dropout)]


@pytest.mark.parametrize("name", NAMES)
def test_build_offline_and_odd_sizes(name):
    m = make(name).eval()
    for hw in [(50, 70), (64, 64)]:
        assert m(torch.randn(1, 5, *hw)).shape == (1, 6, *hw)
    # train mode works with batch 2 (ASPP/PSP global-pool BN needs >1 value per channel)
    m.train()
    y = m(torch.randn(2, 5, 32, 40))
    assert y.shape == (2, 6, 32, 40)
    y.mean().backward()


@pytest.mark.parametrize("name", NAMES)
def test_encoder_dropout_sites(name):
    m = make(name, p=0.2)
    ds = enc_dropouts(m)
    assert len(ds) == N_SITES[name]
    assert all(d.p == 0.2 for d in ds)
    assert enc_dropouts(make(name, p=0.0)) == []


@pytest.mark.parametrize("name", NAMES)
def test_mc_split_matches_forward(name):
    m = make(name).eval()
    x = torch.randn(2, 5, 50, 70)
    trunk, head = m.mc_split()
    torch.testing.assert_close(head(trunk(x)), m(x))
    enable_mc_dropout(m)
    torch.manual_seed(3)
    a = head(trunk(x))
    torch.manual_seed(3)
    torch.testing.assert_close(a, m(x))


@pytest.mark.parametrize("name", ["smp_unet", "smp_deeplabv3plus"])
@pytest.mark.parametrize("p", [0.2, 0.0])
def test_mc_forward_split_equals_full_passes(name, p):
    m = make(name, p=p)
    x = torch.randn(1, 5, 64, 64)
    torch.manual_seed(7)
    a = mc_forward(m, x, 3, split=True)
    torch.manual_seed(7)
    b = mc_forward(m, x, 3, split=False)
    assert a.shape == (3, 1, 6, 64, 64)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    if p > 0:
        assert not torch.allclose(a[0], a[1])


def test_eval_is_deterministic_and_mc_is_not():
    m = make("smp_unet").eval()
    x = torch.randn(1, 5, 64, 64)
    torch.testing.assert_close(m(x), m(x))
    enable_mc_dropout(m)
    assert not torch.allclose(m(x), m(x))


def test_deeplab_defaults_match_uce():
    m = build_smp_deeplabv3plus(in_channels=5, num_classes=6, encoder_dropout=0.2)
    assert m.name == "deeplabv3plus-resnet18"
    assert m.output_stride == 16
    # output stride 16: layer4 dilated instead of strided
    assert m.encoder.layer4[0][0].conv1.stride == (1, 1)
    assert m.encoder.layer4[0][0].conv1.dilation == (2, 2)
    rates = [c[0][0].dilation for c in m.decoder.aspp[0].convs[1:4]]
    assert rates == [(12, 12), (24, 24), (36, 36)]
    aspp_drop = m.decoder.aspp[0].project[-1]
    assert isinstance(aspp_drop, nn.Dropout) and aspp_drop.p == 0.5


def test_pspnet_drops_idle_stages():
    m = make("smp_pspnet")
    assert not hasattr(m.encoder, "layer3") and not hasattr(m.encoder, "layer4")
    assert m.output_stride == 8


def test_decoder_dropout_override():
    m = make("smp_fpn", decoder_dropout=0.1)
    assert m.decoder.dropout.p == 0.1
    with pytest.raises(ValueError, match="Unet has no decoder dropout"):
        make("smp_unet", decoder_dropout=0.3)


def test_param_groups():
    m = make("smp_deeplabv3plus")
    groups = param_groups(m, lr=0.01, decoder_lr_mult=10)
    assert [g["lr"] for g in groups] == [0.01, pytest.approx(0.1)]
    n_enc = sum(p.numel() for p in groups[0]["params"])
    n_rest = sum(p.numel() for p in groups[1]["params"])
    assert n_enc == sum(p.numel() for p in m.encoder.parameters())
    assert n_enc + n_rest == sum(p.numel() for p in m.parameters())
    opt = torch.optim.SGD(groups, lr=0.01, momentum=0.9)
    assert len(opt.param_groups) == 2
    with pytest.raises(ValueError, match="no `encoder`"):
        param_groups(nn.Conv2d(1, 1, 1), lr=0.1)


def test_bad_args():
    with pytest.raises(ValueError, match="encoder_dropout"):
        build_smp_unet(in_channels=5, num_classes=6, encoder="resnet18", encoder_dropout=1.0)
    with pytest.raises(ValueError, match="ResNet"):
        build_smp_unet(
            in_channels=5, num_classes=6, encoder="mobilenet_v2", encoder_dropout=0.2
        )
    with pytest.raises(ValueError, match="aux_params"):
        build_smp_unet(in_channels=5, num_classes=6, encoder="resnet18", aux_params={})
