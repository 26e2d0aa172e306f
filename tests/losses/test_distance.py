import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from aerialseg.losses.dice import CEDiceLoss
from aerialseg.losses.distance import (
    BoundaryObjective,
    KervadecBoundaryLoss,
    LossdLoss,
    LossdObjective,
    euclidean_inside_distance,
    kervadec_distance_maps,
    manhattan_inside_distance,
    signed_distance_maps,
    ste_one_hot,
)
from aerialseg.losses.registry import build_loss


def _onehot_logits(labels: torch.Tensor, num_classes: int, scale: float = 10.0) -> torch.Tensor:
    return scale * F.one_hot(labels, num_classes).permute(0, 3, 1, 2).float()


def test_ste_forward_exact_backward_softmax_jacobian():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 4, 3, generator=g, requires_grad=True)
    m = ste_one_hot(logits)
    expected = F.one_hot(logits.argmax(1), 5).permute(0, 3, 1, 2).float()
    assert torch.equal(m, expected)  # exactly 0/1, not just close
    upstream = torch.randn(m.shape, generator=g)
    (grad,) = torch.autograd.grad(m, logits, upstream)
    (ref,) = torch.autograd.grad(logits.softmax(1), logits, upstream)
    torch.testing.assert_close(grad, ref)


def test_manhattan_matches_scipy_taxicab_cdt():
    """Random masks against ``distance_transform_cdt(metric="taxicab")``, capped.

    scipy measures the distance to background pixels inside the array; the outside of the
    array is not background. That is our replicate-padding convention (the border is not a
    boundary), so both agree exactly on every mask that holds at least one background pixel;
    such masks are used here (scipy returns -1 for masks without background; see the next test).
    """
    rng = np.random.default_rng(0)
    masks = rng.random((6, 17, 23)) < np.array([0.6, 0.8, 0.9, 0.97, 0.99, 0.999])[:, None, None]
    masks[:, 8, 11] = False  # at least one background pixel each
    cdt = np.stack([ndimage.distance_transform_cdt(m, metric="taxicab") for m in masks])
    assert cdt.max() > 6  # the sparse masks have deep interiors, so the cap below matters
    for method in ("erosion", "scan"):
        for max_iter in (3, 6, 100):
            got = manhattan_inside_distance(torch.from_numpy(masks), max_iter, method).numpy()
            np.testing.assert_array_equal(got, np.minimum(cdt, max_iter), err_msg=method)
    edt = np.stack([ndimage.distance_transform_edt(m) for m in masks])
    got = euclidean_inside_distance(torch.from_numpy(masks), 4).numpy()
    np.testing.assert_allclose(got, np.minimum(edt, 4), rtol=1e-6)


@pytest.mark.parametrize("method", ["erosion", "scan"])
def test_manhattan_border_convention(method):
    full = torch.ones(1, 5, 6, dtype=torch.bool)
    # no background: capped everywhere
    assert torch.all(manhattan_inside_distance(full, 7, method) == 7)
    assert torch.all(manhattan_inside_distance(~full, 7, method) == 0)
    corner = full.clone()
    corner[0, 0, 0] = False
    d = manhattan_inside_distance(corner.float(), 50, method)[0]  # float masks are binarised
    rows, cols = torch.meshgrid(torch.arange(5), torch.arange(6), indexing="ij")
    assert torch.equal(d, (rows + cols).float())  # distance to the corner, not to the edge


def test_signed_distance_maps_small():
    target = torch.tensor([[[0, 1, 1, 1, 0, 255]]])
    full, pos = signed_distance_maps(target, 2, max_iter=50)
    assert full[0, 1, 0].tolist() == [-1, 1, 2, 1, -1, -2]
    assert pos[0, 1, 0].tolist() == [0, 1, 2, 1, 0, 0]
    # ignore counts as "not c" for every class: class 0's inside distance ends at the ignore
    assert full[0, 0, 0].tolist() == [1, -1, -2, -1, 1, -1]


def _square_target() -> torch.Tensor:
    """9x9, class 1 square on rows/cols 1-7, class 0 ring; the centre is at depth 4."""
    t = torch.zeros(1, 9, 9, dtype=torch.long)
    t[0, 1:8, 1:8] = 1
    return t


def test_lossd_zero_for_perfect_prediction():
    target = _square_target()
    logits = _onehot_logits(target, 3).requires_grad_(True)
    loss = LossdLoss(3)(logits, target)
    loss.backward()
    assert loss.item() == 0.0 and torch.all(logits.grad == 0)


def test_lossd_single_missed_pixel():
    """Centre (4, 4) of the class-1 square (depth d = 4) predicted wrong, N = 81 valid pixels.

    Exactly asserted: the missed pixel costs class 1 ``loss_1 = log(1 + 4) / log(51) / N``.
    The wrong class c' also pays at that pixel: ``log(1 + d_out) / log(51) / N`` with d_out
    the distance of the centre to the nearest c' pixel (4 for c' = 0; for c' = 2, absent from
    the GT, d_out = max_iter = 50 and the term is 1 / N). The total divides the sum by the
    number of active classes K (present in prediction or target): K = 2 and 3 respectively.
    """
    target = _square_target()
    n = 81
    log51 = math.log(51)
    for wrong, k, d_out in ((0, 2, 4), (2, 3, 50)):
        pred = target.clone()
        pred[0, 4, 4] = wrong
        logits = _onehot_logits(pred, 3).requires_grad_(True)
        lossd = LossdLoss(3)
        per_class, active = lossd.class_losses(logits, target)
        assert per_class[1].item() * n == pytest.approx(math.log(5) / log51, rel=1e-6)
        assert per_class[wrong].item() * n == pytest.approx(math.log1p(d_out) / log51, rel=1e-6)
        assert int(active.sum()) == k
        total = lossd(logits, target)
        expected = (math.log(5) + math.log1p(d_out)) / log51 / (n * k)
        assert total.item() == pytest.approx(expected, rel=1e-6)
        total.backward()
        g = logits.grad[0].abs().sum(0)
        assert g[4, 4] > 0 and g.sum() == g[4, 4]  # gradient only at the erroneous pixel
    # the cap: with max_iter = 3 the depth-4 miss costs the maximum, log(4) / log(4) = 1
    pred = target.clone()
    pred[0, 4, 4] = 0
    per_class, _ = LossdLoss(3, max_iter=3).class_losses(_onehot_logits(pred, 3), target)
    assert per_class[1].item() * n == pytest.approx(1.0, rel=1e-6)
    per_class, _ = LossdLoss(3, norm="linear").class_losses(_onehot_logits(pred, 3), target)
    assert per_class[1].item() * n == pytest.approx(4 / 50, rel=1e-6)


def test_lossd_ignore_aux_and_empty():
    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, 4, (2, 10, 10), generator=g)
    target[:, :3] = 255
    logits = torch.randn(2, 4, 10, 10, generator=g, requires_grad=True)
    lossd = LossdLoss(4, max_iter=10)
    value = lossd(logits, target)
    value.backward()
    assert torch.all(logits.grad[:, :, :3] == 0)
    other = logits.detach().clone()
    other[:, :, :3] = torch.randn(2, 4, 3, 10, generator=g) * 5
    assert lossd(other, target).item() == pytest.approx(value.item(), rel=1e-6)
    aux = lossd.precompute(target)
    assert lossd(logits, target, aux).item() == pytest.approx(value.item(), rel=1e-6)
    per_sample = lossd.precompute(target[0])  # (C, H, W) for a dataset sample
    torch.testing.assert_close(per_sample["lossd_full"], aux["lossd_full"][0])
    empty = lossd(logits, torch.full((2, 10, 10), 255))
    empty.backward()
    assert empty.item() == 0.0


def test_kervadec_maps_and_better_prediction_lower():
    target = torch.tensor([[[0, 0, 1, 1, 1, 0]]])
    phi = kervadec_distance_maps(target, 2)
    assert phi[0, 1, 0].tolist() == [2, 1, 0, -1, 0, 1]
    target = torch.zeros(1, 32, 32, dtype=torch.long)
    target[0, 8:24, 8:24] = 1
    g = torch.Generator().manual_seed(2)
    noise = torch.randn(1, 2, 32, 32, generator=g)
    good = _onehot_logits(target, 2, 3.0) + noise
    shifted = _onehot_logits(torch.roll(target, (5, 5), (1, 2)), 2, 3.0) + noise
    kb = KervadecBoundaryLoss(2)
    perfect = kb(_onehot_logits(target, 2, 20.0), target)
    assert perfect < kb(good, target) < kb(shifted, target)
    aux = kb.precompute(target)
    assert kb(good, target, aux).item() == pytest.approx(kb(good, target).item(), rel=1e-6)


def test_objectives_schedules_and_registry():
    g = torch.Generator().manual_seed(3)
    target = torch.randint(0, 3, (1, 8, 8), generator=g)
    logits = torch.randn(1, 3, 8, 8, generator=g)
    base = CEDiceLoss(label_smoothing=0.05)(logits, target).item()
    lossd = LossdLoss(3, max_iter=8)(logits, target).item()
    obj = build_loss("lossd", num_classes=3, lossd_max_iter=8, lossd_weight=2.0,
                     lossd_warmup_epochs=4)
    assert isinstance(obj, LossdObjective) and obj.current_weight == 0.0
    assert obj(logits, target).item() == pytest.approx(base, rel=1e-6)
    obj.set_epoch(2)
    assert obj(logits, target).item() == pytest.approx(base + 1.0 * lossd, rel=1e-6)
    obj.set_epoch(9)
    assert obj.current_weight == 2.0

    bo = build_loss("boundary", num_classes=3, boundary_alpha_step=0.01)
    assert isinstance(bo, BoundaryObjective) and bo.alpha == 1.0
    assert bo(logits, target).item() == pytest.approx(base, rel=1e-6)
    bo.set_epoch(10)
    assert bo.alpha == pytest.approx(0.9)
    # the registry's default averages over the classes, as Kervadec's public code does
    lb = KervadecBoundaryLoss(3, class_reduction="mean")(logits, target).item()
    lb_sum = KervadecBoundaryLoss(3, class_reduction="sum")(logits, target).item()
    assert lb == pytest.approx(lb_sum / 3, rel=1e-6)
    assert bo(logits, target).item() == pytest.approx(0.9 * base + 0.1 * lb, rel=1e-5)
    bs = build_loss("boundary", num_classes=3, boundary_alpha_step=0.01,
                    boundary_class_reduction="sum")
    bs.set_epoch(10)
    assert bs(logits, target).item() == pytest.approx(0.9 * base + 0.1 * lb_sum, rel=1e-5)
    bo.set_epoch(1000)
    assert bo.alpha == 0.01
