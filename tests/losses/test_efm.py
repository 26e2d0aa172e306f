import math

import pytest
import torch
import torch.nn.functional as F

from aerialseg.losses.dice import SoftDiceLoss
from aerialseg.losses.efm import (
    EFMLoss,
    boundary_weight,
    efm_map,
    entropy_map,
    error_map,
    gaussian_blur,
    minmax_per_image,
)
from aerialseg.losses.registry import build_loss

GAMMA, ALPHA = 1.2, 2.0


def _stripes() -> torch.Tensor:
    """9x9: columns 0-3 class 0, column 4 class 1, columns 5-8 class 2 (a 3-class seam)."""
    t = torch.zeros(1, 9, 9, dtype=torch.long)
    t[..., 4] = 1
    t[..., 5:] = 2
    return t


def test_error_and_entropy_maps():
    probs = torch.tensor([[0.7, 0.2], [0.3, 0.8]]).view(1, 2, 1, 2)
    target = torch.tensor([[[1, 1]]])
    assert error_map(probs, target).tolist() == [[[1.0, 0.0]]]
    assert error_map(probs, torch.tensor([[[255, 0]]])).tolist() == [[[0.0, 1.0]]]
    uniform = torch.full((1, 4, 2, 2), 0.25)
    torch.testing.assert_close(entropy_map(uniform), torch.ones(1, 2, 2), atol=1e-6, rtol=0)
    onehot = F.one_hot(torch.zeros(1, 2, 2).long(), 4).permute(0, 3, 1, 2).float()
    assert entropy_map(onehot).abs().max() < 1e-6


def test_blur_and_minmax_guard():
    const = torch.full((2, 5, 6), 0.3)
    torch.testing.assert_close(gaussian_blur(const, 2.0), const)
    assert torch.all(minmax_per_image(gaussian_blur(const, 2.0)) == 0)
    x = torch.rand(2, 5, 6)
    assert torch.equal(gaussian_blur(x, 0.0), x)
    n = minmax_per_image(x)
    assert n.amin((1, 2)).tolist() == [0.0, 0.0] and n.amax((1, 2)).tolist() == [1.0, 1.0]


def test_efm_of_perfect_confident_prediction_is_zero():
    target = torch.randint(0, 5, (2, 16, 16))
    probs = F.one_hot(target, 5).permute(0, 3, 1, 2).float()
    assert torch.all(efm_map(probs, target) == 0)


def test_efm_range_and_error_location():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 3, (2, 24, 24), generator=g)
    probs = torch.randn(2, 3, 24, 24, generator=g).softmax(1)
    m = efm_map(probs, target, sigma=1.0)
    assert m.shape == (2, 24, 24) and m.min() >= 0 and m.max() <= 1
    assert m.amax((1, 2)).tolist() == [1.0, 1.0] and m.amin((1, 2)).tolist() == [0.0, 0.0]
    # a confident prediction with one wrong block: the EFM peaks on the block
    target = torch.zeros(1, 32, 32, dtype=torch.long)
    probs = F.one_hot(target, 3).permute(0, 3, 1, 2).float()
    probs[:, :, 10:14, 20:24] = torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1, 1)
    m = efm_map(probs, target, sigma=2.0)
    assert m[0, 11:13, 21:23].min() > 0.9 and m[0, :4, :4].max() == 0


def test_boundary_weight_hand_made_map():
    w = boundary_weight(_stripes(), gamma=GAMMA, num_classes=3)[0]
    # interiors (also along the image border: the border is not a boundary) weigh exactly 1
    for r in (0, 4, 8):
        for c in (0, 1, 2, 7, 8):
            assert w[r, c].item() == 1.0
    # straight two-class edge: window 6/9 vs 3/9 -> b = ||(1/3, 2/3)|| = sqrt(5) / 3
    assert w[4, 3].item() == pytest.approx(1 + GAMMA * math.sqrt(5) / 3, abs=1e-6)
    assert w[4, 5].item() == pytest.approx(1 + GAMMA * math.sqrt(5) / 3, abs=1e-6)
    # 3-class seam: window 3/9 each -> norm sqrt(3) * 2/3 = 1.155 > 1, clipped to 1
    assert w[4, 4].item() == pytest.approx(1 + GAMMA, abs=1e-6)
    assert w.max().item() == pytest.approx(1 + GAMMA, abs=1e-6)


def test_boundary_weight_ignore():
    t = torch.zeros(1, 7, 7, dtype=torch.long)
    t[0, 3, 3] = 255
    w = boundary_weight(t, gamma=GAMMA, num_classes=2)[0]
    assert w[3, 3].item() == 0.0
    # the ignore pixel is unknown, not a class: its neighbours are still interior
    assert torch.all(w[t[0] != 255] == 1.0)
    with pytest.raises(ValueError, match="odd"):
        boundary_weight(t, kernel=2, num_classes=2)


def test_eq9_weight_bounds():
    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, 6, (4, 20, 20), generator=g)
    target[:, :3] = 255
    efm = torch.rand(4, 20, 20, generator=g)
    efm[0] = 1.0
    efm[1] = 0.0
    loss = EFMLoss(6, focus_alpha=ALPHA, boundary_gamma=GAMMA)
    w = loss.pixel_weights(target, efm)
    valid = target != 255
    assert torch.all(w[~valid] == 0)
    assert w[valid].min() >= 1.0 and w[valid].max() <= (1 + GAMMA) * (1 + ALPHA) + 1e-6
    # the upper bound is reached at a clipped seam pixel with EFM = 1
    seam = EFMLoss(3, focus_alpha=ALPHA, boundary_gamma=GAMMA).pixel_weights(
        _stripes(), torch.ones(1, 9, 9))
    assert seam.max().item() == pytest.approx((1 + GAMMA) * (1 + ALPHA), abs=1e-5)
    # eq7 puts the exponent on (1 + alpha EFM)
    eq7 = EFMLoss(3, weight_form="eq7").pixel_weights(_stripes(), torch.ones(1, 9, 9))
    assert eq7[0, 0, 0].item() == pytest.approx((1 + ALPHA) ** 1.5, rel=1e-6)


def _logits_target(seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 4, 12, 12, generator=g)
    target = torch.randint(0, 4, (2, 12, 12), generator=g)
    target[0, :2] = 255
    return logits, target


def test_total_loss_topk_and_cached_map():
    logits, target = _logits_target()
    efm = torch.rand(2, 12, 12, generator=torch.Generator().manual_seed(5))
    ce = F.cross_entropy(logits, target, ignore_index=255, reduction="none", label_smoothing=0.05)
    dice = SoftDiceLoss()(logits, target).item()
    valid = target != 255
    for frac in (1.0, 0.5, 0.1):
        loss = EFMLoss(4, topk_fraction=frac, lambda_ce=1.5, lambda_dice=0.5)
        wce = (loss.pixel_weights(target, efm) * ce)[valid]
        k = math.ceil(frac * wce.numel())
        expected = 1.5 * wce.sort(descending=True).values[:k].mean().item() + 0.5 * dice
        assert loss(logits, target, {"efm": efm}).item() == pytest.approx(expected, rel=1e-5)
    # no cached map yet: EFM = 0, W = W_b
    loss = EFMLoss(4, topk_fraction=1.0)
    wb = boundary_weight(target, num_classes=4)
    expected = (wb * ce)[valid].sum().item() / valid.sum().item() + dice
    assert loss(logits, target).item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="efm"):
        loss(logits, target, {"efm": efm[:, :5]})


def test_online_batch_equals_cached_from_detached_softmax_and_grads():
    logits, target = _logits_target()
    logits.requires_grad_(True)
    online = EFMLoss(4, efm_source="online_batch")
    value = online(logits, target)
    value.backward()
    efm = efm_map(logits.detach().softmax(1), target)
    cached = EFMLoss(4)(logits.detach(), target, {"efm": efm})
    assert value.item() == pytest.approx(cached.item(), rel=1e-6)
    assert torch.isfinite(logits.grad).all()
    assert torch.all(logits.grad.permute(0, 2, 3, 1)[target == 255] == 0)


def test_registry_builder():
    loss = build_loss("efm", num_classes=6, efm_focus_alpha=1.0, efm_weight_form="eq7",
                      topk_fraction=1.0, unrelated=3)
    assert isinstance(loss, EFMLoss)
    assert (loss.focus_alpha, loss.weight_form, loss.label_smoothing) == (1.0, "eq7", 0.05)
