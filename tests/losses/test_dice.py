import math

import pytest
import torch

from aerialseg.losses.ce import WeightedCrossEntropy
from aerialseg.losses.dice import CEDiceLoss, SoftDiceLoss, soft_dice_scores
from aerialseg.losses.registry import build_loss


def _toy():
    """Two valid pixels of class 0 with p0 = 0.8, 0.3 and one ignore pixel; C = 2."""
    p = torch.tensor([[0.8, 0.3, 0.5], [0.2, 0.7, 0.5]])  # (C, W)
    logits = p.log().view(1, 2, 1, 3)
    target = torch.tensor([[[0, 0, 255]]])
    return logits, target


def test_known_values_per_class_average():
    logits, target = _toy()
    # class 0: I = 1.1, card = 1.1 + 2 -> loss 1 - 2.2 / 3.1; class 1 absent from the target
    l0 = 1 - 2.2 / 3.1
    expected = {"smp": l0 / 2, "present": l0, "all": (l0 + 1.0) / 2}
    for mode, value in expected.items():
        got = SoftDiceLoss(class_average=mode)(logits, target)
        assert got.item() == pytest.approx(value, abs=1e-6), mode


def test_smoothing_is_classic_form():
    logits, target = _toy()
    dice, present = soft_dice_scores(logits.softmax(1), target, smooth=0.5)
    assert dice[0].item() == pytest.approx((2.2 + 0.5) / (3.1 + 0.5), abs=1e-6)
    assert dice[1].item() == pytest.approx(0.5 / (0.9 + 0.5), abs=1e-6)
    assert present.tolist() == [True, False]


def test_perfect_prediction_is_zero():
    target = torch.randint(0, 4, (2, 8, 8))
    logits = 50.0 * torch.nn.functional.one_hot(target, 4).permute(0, 3, 1, 2).float()
    for mode in ("smp", "present"):
        assert SoftDiceLoss(class_average=mode)(logits, target).item() == pytest.approx(0, abs=1e-6)


def test_ignore_pixels_contribute_nothing():
    torch.manual_seed(0)
    target = torch.randint(0, 3, (2, 6, 6))
    target[:, :2] = 255
    logits = torch.randn(2, 3, 6, 6, requires_grad=True)
    loss = SoftDiceLoss()(logits, target)
    loss.backward()
    assert torch.all(logits.grad[:, :, :2] == 0)
    changed = logits.detach().clone()
    changed[:, :, :2] = torch.randn(2, 3, 2, 6) * 10
    assert SoftDiceLoss()(changed, target).item() == pytest.approx(loss.item(), abs=1e-7)


def test_all_ignore_present_mode_has_graph():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = SoftDiceLoss(class_average="present")(logits, torch.full((1, 4, 4), 255))
    loss.backward()
    assert loss.item() == 0 and logits.grad is not None


def test_ce_dice_combination_and_registry():
    torch.manual_seed(1)
    logits = torch.randn(2, 5, 8, 8)
    target = torch.randint(0, 5, (2, 8, 8))
    target[0, 0] = 255
    ce = WeightedCrossEntropy(label_smoothing=0.1)(logits, target)
    dice = SoftDiceLoss()(logits, target)
    got = CEDiceLoss(lambda_ce=0.5, lambda_dice=2.0, label_smoothing=0.1)(logits, target)
    assert got.item() == pytest.approx(0.5 * ce.item() + 2.0 * dice.item(), rel=1e-6)
    built = build_loss("ce_dice", label_smoothing=0.1, lambda_ce=0.5, lambda_dice=2.0,
                       num_classes=5, unused=1)
    assert built(logits, target).item() == pytest.approx(got.item(), rel=1e-6)


def test_bad_mode_message():
    with pytest.raises(ValueError, match="class_average"):
        SoftDiceLoss(class_average="micro")
    assert math.isfinite(SoftDiceLoss()(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2).long()))
