"""The faster losses (issue 15) equal the implementations they replaced.

The ``ref_*`` functions below are verbatim copies of the code before the speed-ups (commit
c91a979): Lossd's ``class_losses`` (``argmax`` on the STE one-hot, ``unique`` for the
present classes, autograd through ``|m * full - pos|``), EFM's ``boundary_weight`` (3x3 max
and average pools, ``Tensor.norm``), Dice's ``soft_dice_scores`` (int64 one-hot, permuted)
and Kervadec's forward (channel copy ``[:, label_list]``). Values and gradients must agree
within 1e-6 relative; where both are exact (boundary weights on integer window sums, the
active-class masks, tie-breaking) they must be equal.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from aerialseg.losses.dice import CEDiceLoss, SoftDiceLoss, soft_dice_scores
from aerialseg.losses.distance import (
    KervadecBoundaryLoss,
    LossdLoss,
    ste_one_hot,
)
from aerialseg.losses.efm import EFMLoss, boundary_weight

IGNORE = 255
RTOL = 1e-6


# ---------------------------------------------------------------- reference implementations


def ref_lossd_class_losses(self: LossdLoss, logits, target, full, pos):
    m = ste_one_hot(logits.float())
    c = logits.shape[1]
    valid = target != self.ignore_index
    n_valid = valid.sum().clamp_min(1)
    present = torch.zeros(c, dtype=torch.bool, device=logits.device)
    present[target[valid].unique()] = True
    present[m.detach().argmax(1)[valid].unique()] = True  # same argmax as the STE
    active = torch.zeros_like(present)
    active[self.label_list] = present[self.label_list]
    norm = self._normalise((m * full - pos).abs())  # (B, C, H, W)
    losses = (norm * valid.unsqueeze(1)).sum((0, 2, 3)) / n_valid
    return losses * active, active


def ref_lossd_forward(self: LossdLoss, logits, target, full, pos):
    losses, active = ref_lossd_class_losses(self, logits, target, full, pos)
    if not bool(active.any()):
        return (logits * 0.0).sum()
    total = (self.class_weights * losses).sum()
    return total / active.sum() if self.reduction == "mean" else total


def ref_boundary_weight(target, *, gamma=1.2, kernel=3, num_classes, ignore_index=IGNORE):
    valid = target != ignore_index
    onehot = F.one_hot(torch.where(valid, target, 0), num_classes).permute(0, 3, 1, 2).float()
    onehot = onehot * valid.unsqueeze(1)
    pad = kernel // 2
    mx = F.max_pool2d(onehot, kernel, stride=1, padding=pad)
    summed = F.avg_pool2d(onehot, kernel, stride=1, padding=pad, divisor_override=1)
    count = F.avg_pool2d(valid.unsqueeze(1).float(), kernel, stride=1, padding=pad,
                         divisor_override=1)
    avg = summed / count.clamp_min(1.0)
    b = (mx - avg).norm(dim=1).clamp(max=1.0)
    return torch.where(valid, 1.0 + gamma * b, 0.0)


def ref_soft_dice_scores(probs, target, *, ignore_index=IGNORE, smooth=0.0, eps=1e-7):
    num_classes = probs.shape[1]
    valid = (target != ignore_index).unsqueeze(1)  # (B, 1, H, W)
    onehot = F.one_hot(torch.where(valid[:, 0], target, 0), num_classes)
    onehot = onehot.permute(0, 3, 1, 2).to(probs.dtype) * valid
    p = probs * valid
    dims = (0, 2, 3)
    inter = (p * onehot).sum(dims)
    card = (p + onehot).sum(dims)
    dice = (2.0 * inter + smooth) / (card + smooth).clamp_min(eps)
    return dice, onehot.sum(dims) > 0


def ref_soft_dice_forward(self: SoftDiceLoss, logits, target):
    probs = logits.float().log_softmax(1).exp()
    dice, present = ref_soft_dice_scores(probs, target, ignore_index=self.ignore_index,
                                         smooth=self.smooth, eps=self.eps)
    loss = 1.0 - dice
    if self.classes is not None:
        loss, present = loss[self.classes], present[self.classes]
    if self.class_average == "all":
        return loss.mean()
    if self.class_average == "smp":
        return (loss * present).mean()
    if not present.any():
        return (logits * 0.0).sum()
    return loss[present].mean()


def ref_kervadec_forward(self: KervadecBoundaryLoss, logits, target, phi):
    probs = logits.float().softmax(1)[:, self.label_list]
    valid = (target != self.ignore_index).unsqueeze(1)
    total = (probs * phi[:, self.label_list] * valid).sum() / valid.sum().clamp_min(1)
    return total / len(self.label_list) if self.class_reduction == "mean" else total


# ---------------------------------------------------------------- helpers


def blob_labels(b: int, c: int, h: int, w: int, *, seed: int = 0, ignore: float = 0.05):
    """Region-like labels (argmax of smoothed noise) with a share of ignore pixels."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(b, c, max(1, h // 8), max(1, w // 8), generator=g)
    target = F.interpolate(noise, size=(h, w), mode="bilinear", align_corners=False).argmax(1)
    target[torch.rand(b, h, w, generator=g) < ignore] = IGNORE
    return target


def make_logits(b, c, h, w, *, seed=0, ties=False):
    g = torch.Generator().manual_seed(seed + 100)
    if ties:  # few distinct values: many exact ties between classes
        x = torch.randint(0, 3, (b, c, h, w), generator=g).float()
    else:
        x = 3.0 * torch.randn(b, c, h, w, generator=g)
    return x.requires_grad_(True)


def value_and_grad(fn, logits):
    value = fn(logits)
    (grad,) = torch.autograd.grad(value, logits, allow_unused=False)
    return value.detach(), grad


def assert_rel_close(new, ref, rtol=RTOL):
    """Element-wise within ``rtol`` relative, plus ``rtol`` times the tensor's scale."""
    scale = float(ref.abs().max()) if ref.numel() else 0.0
    torch.testing.assert_close(new, ref, rtol=rtol, atol=rtol * max(scale, 1e-30))


# ---------------------------------------------------------------- Lossd

LOSSD_CASES = [
    {},
    {"norm": "linear"},
    {"norm": "none"},
    {"eps": 1e-3},
    {"max_iter": 5},
    {"label_list": [0, 2, 3]},
    {"class_weights": [0.5, 1.0, 2.0, 1.5, 0.1, 3.0], "reduction": "sum"},
    {"metric": "euclidean", "max_iter": 7},
]


@pytest.mark.parametrize("kwargs", LOSSD_CASES)
@pytest.mark.parametrize("ties", [False, True])
def test_lossd_equals_reference(kwargs, ties):
    b, c, h, w = 3, 6, 40, 33
    target = blob_labels(b, c, h, w, seed=1)
    loss = LossdLoss(c, **kwargs)
    aux = loss.precompute(target)
    logits = make_logits(b, c, h, w, seed=2, ties=ties)
    new, g_new = value_and_grad(lambda x: loss(x, target, aux), logits)
    ref, g_ref = value_and_grad(
        lambda x: ref_lossd_forward(loss, x, target, aux["lossd_full"], aux["lossd_pos"]),
        logits)
    assert_rel_close(new, ref)
    assert_rel_close(g_new, g_ref)
    # the active classes (from the same first-index-on-ties argmax) are exactly the same
    _, act_new = loss.class_losses(logits, target, aux)
    _, act_ref = ref_lossd_class_losses(loss, logits, target, aux["lossd_full"],
                                        aux["lossd_pos"])
    assert torch.equal(act_new, act_ref)


def test_lossd_ties_pick_the_first_class_like_argmax():
    """Exact ties between classes: the hard one-hot and the active set use the first index."""
    c = 4
    target = torch.tensor([[[0, 1], [2, IGNORE]]])
    logits = torch.zeros(1, c, 2, 2)
    logits[0, 3] = -1.0  # classes 0-2 tie everywhere; argmax is class 0
    loss = LossdLoss(c, max_iter=3)
    aux = loss.precompute(target)
    _, active = loss.class_losses(logits, target, aux)
    _, active_ref = ref_lossd_class_losses(loss, logits, target, aux["lossd_full"],
                                           aux["lossd_pos"])
    assert active.tolist() == active_ref.tolist() == [True, True, True, False]


def test_lossd_without_aux_and_without_grad():
    b, c, h, w = 2, 5, 24, 20
    target = blob_labels(b, c, h, w, seed=3)
    loss = LossdLoss(c)
    logits = make_logits(b, c, h, w, seed=4).detach()
    full, pos = loss.precompute(target).values()
    with torch.no_grad():
        new = loss(logits, target)
    assert_rel_close(new, ref_lossd_forward(loss, logits, target, full, pos))


def test_lossd_all_ignore_keeps_a_graph():
    c = 3
    target = torch.full((1, 5, 5), IGNORE)
    logits = make_logits(1, c, 5, 5)
    value = LossdLoss(c)(logits, target)
    assert value.item() == 0.0 and value.requires_grad


# ---------------------------------------------------------------- EFM boundary weight


@pytest.mark.parametrize("kernel", [1, 3, 5, 7])
@pytest.mark.parametrize("shape", [(2, 31, 40), (1, 1, 9), (1, 2, 2), (3, 8, 1)])
def test_boundary_weight_equals_reference(kernel, shape):
    c = 5
    target = blob_labels(shape[0], c, shape[1], shape[2], seed=kernel, ignore=0.1)
    new = boundary_weight(target, gamma=1.2, kernel=kernel, num_classes=c)
    ref = ref_boundary_weight(target, gamma=1.2, kernel=kernel, num_classes=c)
    # window sums and maxima are exact; the norm may differ in the last bit
    assert_rel_close(new, ref)
    assert torch.equal(new == 0, ref == 0) and torch.equal(new == 1.0, ref == 1.0)


def test_boundary_weight_all_ignore():
    target = torch.full((1, 4, 4), IGNORE)
    assert torch.equal(boundary_weight(target, num_classes=3),
                       ref_boundary_weight(target, num_classes=3))


def test_efm_loss_equals_reference(monkeypatch):
    b, c, h, w = 2, 6, 48, 40
    target = blob_labels(b, c, h, w, seed=5)
    logits = make_logits(b, c, h, w, seed=6)
    efm = torch.rand(b, h, w, generator=torch.Generator().manual_seed(7))
    loss = EFMLoss(c)
    new, g_new = value_and_grad(lambda x: loss(x, target, {"efm": efm}), logits)
    import aerialseg.losses.dice as dice_mod
    import aerialseg.losses.efm as efm_mod

    monkeypatch.setattr(efm_mod, "boundary_weight", ref_boundary_weight)
    monkeypatch.setattr(dice_mod, "soft_dice_scores", ref_soft_dice_scores)
    ref, g_ref = value_and_grad(lambda x: loss(x, target, {"efm": efm}), logits)
    assert_rel_close(new, ref)
    assert_rel_close(g_new, g_ref)


# ---------------------------------------------------------------- Dice


@pytest.mark.parametrize("class_average", ["smp", "present", "all"])
@pytest.mark.parametrize("smooth", [0.0, 0.05])
@pytest.mark.parametrize("classes", [None, [1, 2, 4]])
def test_soft_dice_equals_reference(class_average, smooth, classes):
    b, c, h, w = 3, 6, 36, 44
    target = blob_labels(b, c, h, w, seed=8)
    target[0, :, : w // 2] = IGNORE
    logits = make_logits(b, c, h, w, seed=9)
    loss = SoftDiceLoss(smooth=smooth, class_average=class_average, classes=classes)
    new, g_new = value_and_grad(lambda x: loss(x, target), logits)
    ref, g_ref = value_and_grad(lambda x: ref_soft_dice_forward(loss, x, target), logits)
    assert_rel_close(new, ref)
    assert_rel_close(g_new, g_ref)


def test_soft_dice_scores_present_and_absent_classes():
    target = blob_labels(2, 4, 16, 16, seed=10)
    target[target == 3] = 1  # class 3 absent
    probs = make_logits(2, 4, 16, 16).detach().softmax(1)
    dice, present = soft_dice_scores(probs, target, smooth=0.5)
    dice_ref, present_ref = ref_soft_dice_scores(probs, target, smooth=0.5)
    assert torch.equal(present, present_ref) and present.tolist() == [True, True, True, False]
    assert_rel_close(dice, dice_ref)


def test_ce_dice_equals_reference(monkeypatch):
    target = blob_labels(2, 6, 32, 32, seed=11)
    logits = make_logits(2, 6, 32, 32, seed=12)
    loss = CEDiceLoss(label_smoothing=0.05)
    new, g_new = value_and_grad(lambda x: loss(x, target), logits)
    import aerialseg.losses.dice as dice_mod

    monkeypatch.setattr(dice_mod, "soft_dice_scores", ref_soft_dice_scores)
    ref, g_ref = value_and_grad(lambda x: loss(x, target), logits)
    assert_rel_close(new, ref)
    assert_rel_close(g_new, g_ref)


# ---------------------------------------------------------------- Kervadec


@pytest.mark.parametrize("label_list", [None, [1, 3], [4, 0, 2]])
@pytest.mark.parametrize("class_reduction", ["sum", "mean"])
def test_kervadec_equals_reference(label_list, class_reduction):
    b, c, h, w = 2, 5, 30, 26
    target = blob_labels(b, c, h, w, seed=13)
    loss = KervadecBoundaryLoss(c, label_list=label_list, class_reduction=class_reduction)
    phi = loss.precompute(target)["boundary_dist"]
    logits = make_logits(b, c, h, w, seed=14)
    new, g_new = value_and_grad(lambda x: loss(x, target, {"boundary_dist": phi}), logits)
    ref, g_ref = value_and_grad(lambda x: ref_kervadec_forward(loss, x, target, phi), logits)
    assert_rel_close(new, ref)
    assert_rel_close(g_new, g_ref)


def test_kervadec_full_label_list_needs_no_copy(monkeypatch):
    """With every class listed, the channels are not indexed (no copy of probs and phi)."""
    c = 3
    target = blob_labels(1, c, 8, 8, seed=15)
    loss = KervadecBoundaryLoss(c)
    phi = loss.precompute(target)["boundary_dist"]
    calls = []
    orig = torch.Tensor.__getitem__

    def spy(self, idx):
        if isinstance(idx, tuple) and len(idx) > 1 and isinstance(idx[1], list):
            calls.append(idx)
        return orig(self, idx)

    monkeypatch.setattr(torch.Tensor, "__getitem__", spy)
    loss(make_logits(1, c, 8, 8), target, {"boundary_dist": phi})
    assert calls == []
    ref = ref_kervadec_forward(loss, make_logits(1, c, 8, 8), target, phi)
    assert math.isfinite(ref.item())
    assert len(calls) == 2  # the reference copied both
