import pytest
import torch
from torch import nn

from aerialseg.models.cse_unet import MAZUR_2026, CSEUNet, build_cse_unet, build_plain_unet
from aerialseg.models.registry import build_model

# Table 1 ablation rows of Wang & Xie 2020.
ABLATIONS = {
    "unet": {"use_rfb": False, "use_aux_path": False},
    "unet+dual_path": {"use_rfb": False, "use_aux_path": True},
    "unet+rfb": {"use_rfb": True, "use_aux_path": False},
    "cse_unet": {"use_rfb": True, "use_aux_path": True},
}


def n_params(**kw) -> int:
    # meta device: full-size models cost no memory and no init time
    with torch.device("meta"):
        model = build_cse_unet(**{"in_channels": 3, "num_classes": 5, **kw})
    return sum(p.numel() for p in model.parameters())


def test_param_counts_match_methods_md():
    assert abs(n_params() - 34.57e6) < 0.1e6
    assert abs(n_params(**ABLATIONS["unet"]) - 28.95e6) < 0.1e6
    # exact values for bias-free convs before BN, biased 1x1s (hand-derived, see methods.md §7)
    assert n_params() == 34_570_821
    assert n_params(**ABLATIONS["unet"]) == 28_948_933


def test_plain_builder_equals_ablation_and_registry():
    with torch.device("meta"):
        plain = build_plain_unet(in_channels=3, num_classes=5)
        reg = build_model("unet_plain", in_channels=3, num_classes=5)
    n = sum(p.numel() for p in plain.parameters())
    assert n == n_params(**ABLATIONS["unet"]) == sum(p.numel() for p in reg.parameters())
    with pytest.raises(ValueError, match="build_cse_unet"):
        build_plain_unet(in_channels=3, num_classes=5, use_rfb=True)


def test_ablation_switches_add_parameters():
    n = {k: n_params(**kw) for k, kw in ABLATIONS.items()}
    assert n["unet"] < n["unet+dual_path"] < n["cse_unet"]
    assert n["unet"] < n["unet+rfb"] < n["cse_unet"]
    # the two additions are independent modules, so their increments add up
    aux = n["unet+dual_path"] - n["unet"]
    rfb = n["unet+rfb"] - n["unet"]
    assert n["cse_unet"] == n["unet"] + aux + rfb
    assert aux == 1_226_624 and rfb == 4_395_264


def test_mazur_variant_param_count():
    n = n_params(**{**MAZUR_2026, "num_classes": 7})
    assert abs(n - 37.0e6) < 0.1e6
    assert n == 36_988_807


@pytest.mark.parametrize("name", list(ABLATIONS))
@pytest.mark.parametrize("hw", [(64, 64), (50, 70)])
def test_forward_shapes(name, hw):
    torch.manual_seed(0)
    model = build_cse_unet(in_channels=3, num_classes=5, base_width=4, **ABLATIONS[name]).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *hw))
    assert out.shape == (1, 5, *hw)
    assert torch.isfinite(out).all()


def test_mazur_forward_shape_and_dropout():
    model = build_cse_unet(in_channels=3, num_classes=7, base_width=4, **MAZUR_2026)
    assert any(isinstance(m, nn.Dropout2d) for m in model.modules())
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 50, 70)).shape == (1, 7, 50, 70)
    plain = build_cse_unet(in_channels=3, num_classes=5, base_width=4)
    assert not any(isinstance(m, nn.modules.dropout._DropoutNd) for m in plain.modules())


def test_odd_size_is_reflect_padded_then_cropped():
    torch.manual_seed(0)
    model = build_cse_unet(in_channels=3, num_classes=5, base_width=4).eval()
    x = torch.randn(1, 3, 50, 70)
    padded = torch.nn.functional.pad(x, (0, 10, 0, 14), mode="reflect")
    with torch.no_grad():
        assert torch.allclose(model(x), model(padded)[..., :50, :70], atol=1e-6)


def test_tiny_input_falls_back_without_error():
    model = build_cse_unet(in_channels=2, num_classes=3, base_width=2).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 2, 5, 7)).shape == (1, 3, 5, 7)


@pytest.mark.parametrize("kw", [{}, MAZUR_2026])
def test_gradient_reaches_every_parameter(kw):
    torch.manual_seed(0)
    model = build_cse_unet(in_channels=3, num_classes=4, base_width=4, **kw)
    logits = model(torch.randn(2, 3, 32, 32))
    nn.functional.cross_entropy(logits, torch.randint(0, 4, (2, 32, 32))).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_bad_arguments_explain_themselves():
    with pytest.raises(ValueError, match="depth=3"):
        CSEUNet(3, 5, depth=3)
    with pytest.raises(ValueError, match="rfb_mode"):
        CSEUNet(3, 5, rfb_mode="parallel")
    with pytest.raises(ValueError, match="aux_mode"):
        CSEUNet(3, 5, aux_mode="raw")
    model = CSEUNet(3, 5, base_width=2)
    with pytest.raises(ValueError, match="in_channels"):
        model(torch.randn(1, 4, 16, 16))


def test_depth_is_configurable():
    model = CSEUNet(3, 2, base_width=4, depth=2, rfb_dilations=(3, 1), rfb_stack=(1, 1),
                    rfb_stack_kernels=(3, 1), aux_kernels=(3, 2)).eval()
    assert model.widths == (4, 8, 16)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 10, 13)).shape == (1, 2, 10, 13)
