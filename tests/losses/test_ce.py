import math

import numpy as np
import pytest
import torch

from aerialseg.losses.ce import WeightedCrossEntropy, median_frequency_weights


def test_weighted_ce_divides_by_valid_pixels_not_weights():
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])  # (1, 2 classes, 1, 2 px)
    target = torch.tensor([[[0, 1]]])
    w = [1.0, 3.0]
    p0 = math.exp(2) / (math.exp(2) + 1)
    p1 = math.exp(1) / (math.exp(1) + 1)
    expected = -(1.0 * math.log(p0) + 3.0 * math.log(p1)) / 2  # N = 2 pixels
    got = WeightedCrossEntropy(w)(logits, target)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    torch_default = torch.nn.functional.cross_entropy(logits, target, weight=torch.tensor(w))
    assert torch_default.item() == pytest.approx(expected * 2 / 4, rel=1e-6)  # / sum of w


def test_ignore_pixels_contribute_nothing():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.randint(0, 3, (2, 4, 4))
    target[0, 0, 0] = 255
    loss = WeightedCrossEntropy([1.0, 2.0, 0.5])(logits, target)
    loss.backward()
    assert torch.all(logits.grad[0, :, 0, 0] == 0)
    keep = target != 255
    ref = torch.nn.functional.cross_entropy(logits, target, weight=torch.tensor([1.0, 2.0, 0.5]),
                                            ignore_index=255, reduction="sum") / keep.sum()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)


def test_mfb_weights_known_answer():
    lab = np.array([[0] * 6 + [1] * 3 + [2] * 1])  # f = 0.6, 0.3, 0.1; median 0.3
    w = median_frequency_weights([lab], 3)
    assert np.allclose(w, [0.5, 1.0, 3.0])


def test_mfb_only_balances_listed_classes_and_ignores_255():
    lab = np.array([[0, 0, 1, 1, 1, 1, 2, 255]])
    w = median_frequency_weights([lab], 4, classes=(0, 1))
    # f0 = 1/3, f1 = 2/3 over the taking-part classes; median 0.5
    assert np.allclose(w, [1.5, 0.75, 0.0, 0.0])


def test_mfb_eigen_fergus_uses_images_where_class_appears():
    a = np.array([[0, 0, 0, 1]])
    b = np.array([[0, 0, 0, 0]])
    w = median_frequency_weights([a, b], 2, mode="eigen_fergus")
    f = np.array([7 / 8, 1 / 4])  # class 1 only counted against image a
    assert np.allclose(w, np.median(f) / f)


def test_mfb_missing_class_gets_zero_with_warning():
    lab = np.array([[0, 0, 1]])
    with pytest.warns(UserWarning, match=r"classes \[2\] never occur"):
        w = median_frequency_weights([lab], 3)
    assert w[2] == 0 and w[0] > 0
    with pytest.raises(ValueError, match="mode"):
        median_frequency_weights([lab], 3, mode="inverse")
