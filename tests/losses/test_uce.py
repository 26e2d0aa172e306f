import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aerialseg.losses.ce import WeightedCrossEntropy
from aerialseg.losses.registry import build_loss
from aerialseg.losses.uce import UncertaintyAwareCE, uce_uncertainty


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 4, 6, 7, generator=g)
    target = torch.randint(0, 4, (2, 6, 7), generator=g)
    target[1, :2] = 255
    u = torch.rand(2, 6, 7, generator=g)
    return logits, target, u


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_alpha_zero_and_u_zero_equal_ce(smoothing):
    logits, target, u = _batch()
    ce = WeightedCrossEntropy(label_smoothing=smoothing)(logits, target)
    a0 = UncertaintyAwareCE(0.0, label_smoothing=smoothing)(logits, target, {"uncertainty": u})
    u0 = UncertaintyAwareCE(10.0, label_smoothing=smoothing)(
        logits, target, {"uncertainty": torch.zeros_like(u)})
    assert a0.item() == pytest.approx(ce.item(), rel=1e-6)
    assert u0.item() == pytest.approx(ce.item(), rel=1e-6)


def test_known_value_constant_uncertainty():
    logits, target, _ = _batch()
    ce = WeightedCrossEntropy()(logits, target)
    got = UncertaintyAwareCE(2.0)(logits, target, {"uncertainty": torch.full((2, 6, 7), 0.5)})
    assert got.item() == pytest.approx(1.5**2 * ce.item(), rel=1e-6)


def test_gradient_only_through_ce_term():
    logits, target, u = _batch()
    logits.requires_grad_(True)
    u.requires_grad_(True)
    UncertaintyAwareCE(3.0)(logits, target, {"uncertainty": u}).backward()
    assert u.grad is None  # the uncertainty is detached
    ref_logits = logits.detach().clone().requires_grad_(True)
    w = (1 + u.detach()) ** 3.0
    ce = F.cross_entropy(ref_logits, target, ignore_index=255, reduction="none")
    ((w * ce).sum() / (target != 255).sum()).backward()
    torch.testing.assert_close(logits.grad, ref_logits.grad)


def test_ignore_pixels_contribute_nothing_even_with_nan_uncertainty():
    logits, target, u = _batch()
    logits.requires_grad_(True)
    u_nan = u.clone()
    u_nan[target == 255] = float("nan")
    loss = UncertaintyAwareCE(10.0)(logits, target, {"uncertainty": u_nan})
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert torch.all(logits.grad.permute(0, 2, 3, 1)[target == 255] == 0)
    u_zero = u.clone()
    u_zero[target == 255] = 0.0
    ref = UncertaintyAwareCE(10.0)(logits.detach(), target, {"uncertainty": u_zero})
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)


def test_missing_uncertainty_is_a_clear_error_and_start_epoch():
    logits, target, _ = _batch()
    loss = UncertaintyAwareCE(10.0, start_epoch=2)
    assert not loss.needs_uncertainty
    assert loss(logits, target).item() == pytest.approx(
        WeightedCrossEntropy()(logits, target).item(), rel=1e-6)
    loss.set_epoch(2)
    with pytest.raises(KeyError, match="uncertainty"):
        loss(logits, target)
    with pytest.raises(ValueError, match="shape"):
        loss(logits, target, {"uncertainty": torch.zeros(2, 6)})


def test_uce_uncertainty_matches_numpy():
    g = torch.Generator().manual_seed(3)
    probs = torch.rand(5, 2, 3, 4, 4, generator=g).softmax(2)  # (T, B, C, H, W)
    p = probs.numpy().astype(np.float64)
    std = p.std(axis=0, ddof=1)
    pred = p.mean(0).argmax(1)
    expected = np.take_along_axis(std, pred[:, None], axis=1)[:, 0]
    got = uce_uncertainty(probs)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(uce_uncertainty(probs, "mean_class_std").numpy(), std.mean(1),
                               rtol=1e-5, atol=1e-7)


def test_uce_uncertainty_two_samples_known_answer():
    a = torch.tensor([0.9, 0.1]).view(1, 1, 2, 1, 1)
    b = torch.tensor([0.5, 0.5]).view(1, 1, 2, 1, 1)
    u = uce_uncertainty(torch.cat([a, b]))
    assert u.item() == pytest.approx(0.4 / np.sqrt(2), rel=1e-6)  # |0.9 - 0.5| / sqrt(2)
    with pytest.raises(ValueError, match="MC samples"):
        uce_uncertainty(a)


def test_registry_builder():
    loss = build_loss("uce", uce_exponent=1.0, num_classes=4, label_smoothing=0.0)
    assert isinstance(loss, UncertaintyAwareCE) and loss.exponent == 1.0
