"""Distance-based boundary losses, methods.md §8.

* :class:`LossdLoss`: Lossd (Ma et al. 2026) on a straight-through hard one-hot prediction and
  signed, capped Manhattan ground-truth distances, log-normalised, mean over pixels and classes.
* :class:`KervadecBoundaryLoss`: Kervadec et al.'s boundary loss (signed Euclidean distance times
  softmax probability), the prior-art ablation.
* :class:`LossdObjective` (``CE + Dice + lambda_d * Lossd``) and :class:`BoundaryObjective`
  (``alpha * (CE + Dice) + (1 - alpha) * L_B`` with a per-epoch alpha schedule).

The distance maps depend only on the labels. Computing them on the fly costs 2 * max_iter
erosions per batch on GPU (a separable scan on CPU; a CPU EDT per image and class for
Kervadec), so a data pipeline should
compute them once per sample (after geometric augmentation, on the crop), e.g. in DataLoader
workers with :meth:`LossdLoss.precompute` / :meth:`KervadecBoundaryLoss.precompute`, and pass them
in ``aux``; without them, the losses compute the maps from ``target`` themselves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor, nn

from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.losses.dice import CEDiceLoss
from aerialseg.losses.registry import register_loss

NORMS = ("log", "linear", "none")
METRICS = ("manhattan", "euclidean")


def ste_one_hot(logits: Tensor) -> Tensor:
    """Straight-through hard one-hot of ``argmax`` over dim 1.

    Forward: exactly the 0/1 one-hot of ``argmax_c logits`` (first index on ties). Backward: the
    Jacobian of ``softmax(logits, 1)``. Written as ``hard + (p - p.detach())``: the bracket is
    exactly 0 in floating point, so the forward value is exactly binary.

    Args:
        logits: (B, C, ...) scores.

    Returns:
        (B, C, ...) tensor with the logits' floating dtype.
    """
    p = logits.softmax(1)
    hard = torch.zeros_like(p).scatter_(1, p.max(1, keepdim=True).indices, 1.0)
    return hard + (p - p.detach())


def _as_bool(mask: Tensor) -> Tensor:
    return mask if mask.dtype == torch.bool else mask > 0.5


def manhattan_inside_distance(mask: Tensor, max_iter: int = 50,
                              method: str = "auto") -> Tensor:
    """City-block distance of each foreground pixel to the nearest background pixel, capped.

    Definition (``method="erosion"``, the spec's GPU form): ``d = sum_{i=0}^{max_iter-1}
    erode^i(mask)`` with ``erode`` the 3x3 cross (4-neighbour) min-filter with replicate
    padding: a pixel collects 1 per erosion it survives. So the image border is not a boundary
    (a region with no background in the image gets ``max_iter`` everywhere); background pixels
    get 0. ``method="scan"`` computes the same values exactly with a separable two-pass
    distance transform (row cummax, then forward/backward column scans), O(1) full-size passes
    instead of ``max_iter``: about 10x faster on CPU. ``"auto"``: scan on CPU, erosion elsewhere.

    Args:
        mask: (..., H, W) bool, or float binarised at 0.5.
        max_iter: cap (``lossd_max_iter``).
        method: ``"auto"``, ``"erosion"`` or ``"scan"``.

    Returns:
        (..., H, W) float32 distances in {0, 1, ..., max_iter}.
    """
    if method not in ("auto", "erosion", "scan"):
        raise ValueError(f"method must be 'auto', 'erosion' or 'scan', got {method!r}")
    fg = _as_bool(mask)
    if method == "scan" or (method == "auto" and fg.device.type == "cpu"):
        return _manhattan_scan(fg, max_iter)
    cur = fg.clone()
    dist = torch.zeros(cur.shape, dtype=torch.float32, device=cur.device)
    for _ in range(max_iter):
        if not bool(cur.any()):
            break
        dist += cur
        prev = cur.clone()
        # in-place ANDs with the shifted map = cross min-pool; missing out-of-image neighbours
        # are the same as replicate padding
        cur[..., 1:, :] &= prev[..., :-1, :]
        cur[..., :-1, :] &= prev[..., 1:, :]
        cur[..., :, 1:] &= prev[..., :, :-1]
        cur[..., :, :-1] &= prev[..., :, 1:]
    return dist


def _row_distance(fg: Tensor, cap: int) -> Tensor:
    """Distance along the last axis to the nearest background pixel on the left, capped."""
    w = fg.shape[-1]
    idx = torch.arange(w, device=fg.device, dtype=torch.int32).expand(fg.shape)
    far = torch.tensor(-(cap + 1), dtype=torch.int32, device=fg.device)  # "no background yet"
    last_bg = torch.where(fg, far, idx).cummax(-1).values
    return (idx - last_bg).clamp_max(cap)


def _manhattan_scan(fg: Tensor, max_iter: int) -> Tensor:
    """Exact capped city-block distance transform (in-image background only)."""
    shape = fg.shape
    h, w = shape[-2:]
    fg = fg.reshape(-1, h, w)
    # 1D distances along rows, both directions; only distances up to the cap matter
    f = torch.minimum(_row_distance(fg, max_iter), _row_distance(fg.flip(-1), max_iter).flip(-1))
    # d(y) = min_y' f(y') + |y - y'|: two sequential scans over rows, row-major for speed
    g = f.transpose(0, 1).contiguous()  # (H, N, W)
    for y in range(1, h):
        torch.minimum(g[y], g[y - 1] + 1, out=g[y])
    for y in range(h - 2, -1, -1):
        torch.minimum(g[y], g[y + 1] + 1, out=g[y])
    return g.clamp_max(max_iter).transpose(0, 1).reshape(shape).float()


def euclidean_inside_distance(mask: Tensor, max_iter: int = 50) -> Tensor:
    """Like :func:`manhattan_inside_distance` with scipy's exact Euclidean EDT (CPU)."""
    m = _as_bool(mask).cpu().numpy()
    flat = m.reshape(-1, *m.shape[-2:])
    out = np.zeros(flat.shape, np.float32)
    for i, fg in enumerate(flat):
        if fg.all():  # no background in the image: distance is "beyond the cap"
            out[i] = max_iter
        elif fg.any():
            out[i] = np.minimum(ndimage.distance_transform_edt(fg), max_iter)
    return torch.from_numpy(out.reshape(m.shape)).to(mask.device)


def _class_masks(target: Tensor, num_classes: int, ignore_index: int) -> Tensor:
    """(..., H, W) labels -> (..., C, H, W) bool; ignore pixels are 'not c' for every c."""
    valid = target != ignore_index
    onehot = F.one_hot(torch.where(valid, target, 0).long(), num_classes).movedim(-1, -3)
    return onehot.bool() & valid.unsqueeze(-3)


def signed_distance_maps(target: Tensor, num_classes: int, max_iter: int = 50,
                         ignore_index: int = IGNORE_INDEX,
                         metric: str = "manhattan") -> tuple[Tensor, Tensor]:
    """Lossd's ground-truth distance maps ``(full, gt_pos)``, no gradient.

    With ``t_c = [target == c]`` (ignore pixels count as "not c"), ``d_in = D(t_c)`` and
    ``d_out = D(1 - t_c)``: ``full = d_in * t - d_out * (1 - t)`` (positive inside, negative
    outside) and ``gt_pos = d_in * t``. ``D`` is capped at ``max_iter``; a class absent from an
    image has ``full = -max_iter`` there.

    These depend only on the labels: compute them once per sample (after geometric
    augmentation) and pass them as ``aux["lossd_full"]`` / ``aux["lossd_pos"]`` (see
    :meth:`LossdLoss.precompute`) instead of recomputing every step.

    Args:
        target: (B, H, W) or (H, W) labels.
        num_classes: C.
        max_iter: distance cap.
        ignore_index: ignore label.
        metric: ``"manhattan"`` (torch erosions, any device) or ``"euclidean"`` (scipy, CPU).

    Returns:
        Two float32 tensors of shape (B, C, H, W) (or (C, H, W)).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    dist_fn = manhattan_inside_distance if metric == "manhattan" else euclidean_inside_distance
    with torch.no_grad():
        t = _class_masks(target, num_classes, ignore_index)
        both = dist_fn(torch.cat([t, ~t], dim=-3), max_iter)  # one pass for inside and outside
        d_in, d_out = both.split(num_classes, dim=-3)
        tf = t.float()
        gt_pos = d_in * tf
        return gt_pos - d_out * (1.0 - tf), gt_pos


def _check_maps(maps: Tensor | None, shape: tuple[int, ...], key: str) -> Tensor:
    if maps is None:
        raise KeyError(f"aux[{key!r}] is missing; pass both maps from the loss's precompute()")
    if tuple(maps.shape) != shape:
        raise ValueError(f"aux[{key!r}] must be (B, C, H, W) = {shape}, got {tuple(maps.shape)}; "
                         "build it with the loss's precompute() on the same labels")
    return maps.float()


def _class_counts(labels: Tensor, valid: Tensor, num_classes: int) -> Tensor:
    """(C,) number of valid pixels with each label in [0, C) (``labels`` any int shape)."""
    binned = torch.where(valid, labels, num_classes).flatten()
    return torch.bincount(binned, minlength=num_classes + 1)[:num_classes]


class _LossdClassSums(torch.autograd.Function):
    """Per-class ``sum_valid norm(|m * full - pos|)`` for the STE one-hot m of ``p``.

    The forward value of m is the hard one-hot of ``pred``; its gradient goes to ``p``
    unchanged (straight-through). Equal in value and gradient to the autograd expression
    ``(norm((ste_one_hot(logits) * full - pos).abs()) * valid).sum((0, 2, 3))`` (up to float
    rounding), in about a third of the full-size passes: the backward is one multiply by a
    coefficient map computed in the forward.
    """

    @staticmethod
    def forward(ctx: Any, p: Tensor, pred: Tensor, full: Tensor, pos: Tensor, validf: Tensor,
                norm: str, max_iter: int, eps: float) -> Tensor:
        c = p.shape[1]
        hard = pred == torch.arange(c, device=p.device).view(1, c, 1, 1)  # (B, C, H, W)
        # m * full - pos with m in {0, 1}, zeroed on ignore pixels: there diff = 0, norm(0) = 0
        # (log with eps > 0: log(1 + eps), taken out below) and the gradient is 0
        signed = torch.where(hard, full, 0.0).sub_(pos).mul_(validf.unsqueeze(1))
        diff = signed.abs()
        if norm == "log":
            denom = diff.add_(1.0)  # 1 + diff (+ eps), in place: diff is not needed any more
            if eps:
                denom.add_(eps)
            scale = 1.0 / math.log1p(max_iter)
            values = denom.log()
        else:
            scale = 1.0 / max_iter if norm == "linear" else 1.0
            values = diff
        sums = values.sum((0, 2, 3))
        if norm == "log" and eps:
            n_ignored = validf.numel() - validf.sum()
            sums = sums - n_ignored * math.log(1.0 + eps)
        sums = sums * scale
        if ctx.needs_input_grad[0]:
            # d norm / d m = norm'(diff) * sign(m * full - pos) * full (0 on ignore pixels)
            coef = signed.sign_().mul_(full)
            if norm == "log":
                coef.div_(denom)
            ctx.save_for_backward(coef)
            ctx.scale = scale
        return sums

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        (coef,) = ctx.saved_tensors
        g = (grad * ctx.scale).view(1, -1, 1, 1)
        return coef * g, None, None, None, None, None, None, None


class LossdLoss(nn.Module):
    """Lossd (Ma, Ren, Li, Chen 2026), §8 "Recommended implementable spec".

    For each class c in ``label_list`` present in the prediction or the target (valid pixels
    only): ``m_c`` = STE one-hot channel, ``diff = |m_c * full_c - gt_pos_c|`` (so 0 on correct
    pixels, ``d_in`` on a missed object pixel, ``d_out`` on a spurious one), ``norm(diff)``
    with ``"log"``: ``log(1 + diff + eps) / log(1 + max_iter)``, ``"linear"``: ``diff /
    max_iter``, ``"none"``: ``diff``; ``loss_c = sum over valid pixels / #valid`` (ignore pixels
    excluded, all B*H*W pixels otherwise). Total ``sum_c w_c loss_c / #active`` (``"mean"``) or
    ``sum_c w_c loss_c`` (``"sum"``); 0 with a gradient path when no class is active.

    Args:
        num_classes: C.
        max_iter: distance cap and normaliser ``max_n``.
        norm: ``"log"``, ``"linear"`` or ``"none"``.
        label_list: classes that get a term (default all).
        class_weights: (C,) w_c (default 1).
        reduction: ``"mean"`` or ``"sum"`` over active classes.
        ignore_index: ignore label.
        metric: ``"manhattan"`` (the authors') or ``"euclidean"``.
        eps: the skeleton's epsilon inside the log; default 0 so that a perfect prediction
            costs exactly 0 (|.| and log1p are fine at 0).
    """

    def __init__(self, num_classes: int, max_iter: int = 50, norm: str = "log",
                 label_list: Sequence[int] | None = None,
                 class_weights: Sequence[float] | Tensor | None = None, reduction: str = "mean",
                 ignore_index: int = IGNORE_INDEX, metric: str = "manhattan",
                 eps: float = 0.0) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        self.num_classes = num_classes
        self.max_iter = max_iter
        self.norm = norm
        self.label_list = list(range(num_classes)) if label_list is None else list(label_list)
        w = torch.ones(num_classes) if class_weights is None else torch.as_tensor(
            class_weights, dtype=torch.float32)
        if w.shape != (num_classes,):
            raise ValueError(f"class_weights needs {num_classes} entries, got {tuple(w.shape)}")
        self.register_buffer("class_weights", w)
        self.reduction = reduction
        self.ignore_index = ignore_index
        self.metric = metric
        self.eps = eps

    def precompute(self, target: Tensor) -> dict[str, Tensor]:
        """``{"lossd_full", "lossd_pos"}`` for ``target`` (H, W) or (B, H, W), to pass in aux."""
        full, pos = signed_distance_maps(target, self.num_classes, self.max_iter,
                                         self.ignore_index, self.metric)
        return {"lossd_full": full, "lossd_pos": pos}

    def _normalise(self, diff: Tensor) -> Tensor:
        if self.norm == "log":
            return torch.log(1.0 + diff + self.eps) / math.log1p(self.max_iter)
        if self.norm == "linear":
            return diff / self.max_iter
        return diff

    def class_losses(self, logits: Tensor, target: Tensor,
                     aux: dict | None = None) -> tuple[Tensor, Tensor]:
        """Per-class ``loss_c`` (C,) (unweighted; 0 where inactive) and the (C,) active mask."""
        b, c, h, w = logits.shape
        if c != self.num_classes:
            raise ValueError(f"logits have {c} classes, LossdLoss was built for {self.num_classes}")
        if aux is not None and aux.get("lossd_full") is not None:
            full = _check_maps(aux["lossd_full"], (b, c, h, w), "lossd_full")
            pos = _check_maps(aux.get("lossd_pos"), (b, c, h, w), "lossd_pos")
        else:
            full, pos = signed_distance_maps(target, c, self.max_iter, self.ignore_index,
                                             self.metric)
        # the STE one-hot m = hard + (p - p.detach()) of ste_one_hot, taken apart: the forward
        # value is the hard one-hot of ``pred`` and the gradient w.r.t. m goes to p unchanged
        p = logits.float().softmax(1)
        pred = p.detach().max(1, keepdim=True).indices  # (B, 1, H, W), first index on ties
        valid = target != self.ignore_index
        validf = valid.to(p.dtype)
        n_valid = valid.sum().clamp_min(1)
        # classes present in the valid target or prediction: bincount, no sort (unique)
        present = (_class_counts(target, valid, c) > 0) | (_class_counts(pred[:, 0], valid, c) > 0)
        active = torch.zeros_like(present)
        active[self.label_list] = present[self.label_list]
        sums = _LossdClassSums.apply(p, pred, full, pos, validf, self.norm, self.max_iter,
                                     self.eps)
        return sums / n_valid * active, active

    def forward(self, logits: Tensor, target: Tensor, aux: dict | None = None) -> Tensor:
        """Lossd of ``logits`` (B, C, H, W) against ``target`` (B, H, W)."""
        losses, active = self.class_losses(logits, target, aux)
        if not bool(active.any()):
            return (logits * 0.0).sum()
        total = (self.class_weights * losses).sum()
        return total / active.sum() if self.reduction == "mean" else total


def kervadec_distance_maps(target: Tensor, num_classes: int,
                           ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Kervadec's signed Euclidean distance ``phi_c`` per image and class (scipy EDT, CPU).

    ``phi = EDT(outside) * outside - (EDT(inside) - 1) * inside``: distance to the class region
    outside it, ``-(d - 1)`` inside (0 on the region's own boundary pixels). As in Kervadec's
    ``one_hot2dist``, a class absent from an image gives ``phi = 0``; so does a class covering the
    whole image (no boundary). Ignore pixels count as "not c".

    Args:
        target: (B, H, W) or (H, W) labels.
        num_classes: C.
        ignore_index: ignore label.

    Returns:
        float32 (B, C, H, W) (or (C, H, W)) on the target's device.
    """
    masks = _class_masks(target, num_classes, ignore_index).cpu().numpy()
    flat = masks.reshape(-1, *masks.shape[-2:])
    out = np.zeros(flat.shape, np.float32)
    for i, pos in enumerate(flat):
        if pos.any() and not pos.all():
            neg = ~pos
            out[i] = (ndimage.distance_transform_edt(neg) * neg
                      - (ndimage.distance_transform_edt(pos) - 1.0) * pos)
    return torch.from_numpy(out.reshape(masks.shape)).to(target.device)


class KervadecBoundaryLoss(nn.Module):
    """Boundary loss ``L_B = (1/#valid) sum_x sum_c phi_c(x) p_c(x)`` (Kervadec et al.).

    ``p = softmax(logits)`` (soft, no STE), ``phi`` from :func:`kervadec_distance_maps` or
    ``aux["boundary_dist"]`` (B, C, H, W). Can be negative. ``class_reduction="mean"`` also
    divides by the number of classes in ``label_list``, as Kervadec's code does (``.mean()`` over
    the class axis); the default ``"sum"`` follows methods.md's formula.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX,
                 label_list: Sequence[int] | None = None, class_reduction: str = "sum") -> None:
        super().__init__()
        if class_reduction not in ("mean", "sum"):
            raise ValueError(f"class_reduction must be 'mean' or 'sum', got {class_reduction!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.label_list = list(range(num_classes)) if label_list is None else list(label_list)
        self.class_reduction = class_reduction

    def precompute(self, target: Tensor) -> dict[str, Tensor]:
        """``{"boundary_dist": phi}`` for ``target`` (H, W) or (B, H, W), to pass in aux."""
        return {"boundary_dist": kervadec_distance_maps(target, self.num_classes,
                                                        self.ignore_index)}

    def forward(self, logits: Tensor, target: Tensor, aux: dict | None = None) -> Tensor:
        """Boundary loss of ``logits`` (B, C, H, W) against ``target`` (B, H, W)."""
        if aux is not None and aux.get("boundary_dist") is not None:
            phi = _check_maps(aux["boundary_dist"], tuple(logits.shape), "boundary_dist")
        else:
            phi = kervadec_distance_maps(target, self.num_classes, self.ignore_index)
        probs = logits.float().softmax(1)
        if self.label_list != list(range(probs.shape[1])):  # a subset: copy those channels
            probs, phi = probs[:, self.label_list], phi[:, self.label_list]
        valid = target != self.ignore_index
        # per-pixel sum over classes first, then the (B, H, W) mask: no (B, C, H, W) mask
        total = ((probs * phi).sum(1) * valid).sum() / valid.sum().clamp_min(1)
        return total / len(self.label_list) if self.class_reduction == "mean" else total


class LossdObjective(nn.Module):
    """``L = lambda_ce * CE + lambda_dice * Dice + lambda_d(epoch) * Lossd`` (§8 item 4).

    ``lambda_d(e) = lossd_weight * min(1, e / warmup_epochs)`` for a 0-based epoch e when
    ``warmup_epochs > 0`` (epoch 0 then trains on the base loss only), else ``lossd_weight``.
    The engine calls :meth:`set_epoch`. Extra keyword arguments go to :class:`LossdLoss`.
    """

    def __init__(self, num_classes: int, lossd_weight: float = 1.0, warmup_epochs: int = 0,
                 label_smoothing: float = 0.05, lambda_ce: float = 1.0,
                 lambda_dice: float = 1.0, ignore_index: int = IGNORE_INDEX,
                 **lossd_kwargs: object) -> None:
        super().__init__()
        self.base = CEDiceLoss(lambda_ce, lambda_dice, label_smoothing, ignore_index=ignore_index)
        self.lossd = LossdLoss(num_classes, ignore_index=ignore_index, **lossd_kwargs)
        self.lossd_weight = lossd_weight
        self.warmup_epochs = warmup_epochs
        self.current_weight = lossd_weight if warmup_epochs <= 0 else 0.0

    def set_epoch(self, epoch: int) -> None:
        """Update ``current_weight`` for the (0-based) ``epoch``."""
        ramp = 1.0 if self.warmup_epochs <= 0 else min(1.0, epoch / self.warmup_epochs)
        self.current_weight = self.lossd_weight * ramp

    def forward(self, logits: Tensor, target: Tensor, aux: dict | None = None) -> Tensor:
        """Return the base loss plus the weighted Lossd."""
        loss = self.base(logits, target)
        if self.current_weight != 0.0:
            loss = loss + self.current_weight * self.lossd(logits, target, aux)
        return loss


class BoundaryObjective(nn.Module):
    """``L = alpha * (CE + Dice) + (1 - alpha) * L_B`` with Kervadec's alpha schedule.

    ``alpha(e) = max(alpha_min, 1 - alpha_step * e)`` for a 0-based epoch e (1 at the start,
    minus ``boundary_alpha_step`` per epoch, floor 0.01); the engine calls :meth:`set_epoch`.
    """

    def __init__(self, num_classes: int, alpha_step: float = 0.01, alpha_min: float = 0.01,
                 label_smoothing: float = 0.05, lambda_ce: float = 1.0, lambda_dice: float = 1.0,
                 ignore_index: int = IGNORE_INDEX, label_list: Sequence[int] | None = None,
                 class_reduction: str = "sum") -> None:
        super().__init__()
        self.base = CEDiceLoss(lambda_ce, lambda_dice, label_smoothing, ignore_index=ignore_index)
        self.boundary = KervadecBoundaryLoss(num_classes, ignore_index, label_list,
                                             class_reduction)
        self.alpha_step = alpha_step
        self.alpha_min = alpha_min
        self.alpha = 1.0

    def set_epoch(self, epoch: int) -> None:
        """Update ``alpha`` for the (0-based) ``epoch``."""
        self.alpha = max(self.alpha_min, 1.0 - self.alpha_step * epoch)

    def forward(self, logits: Tensor, target: Tensor, aux: dict | None = None) -> Tensor:
        """Scheduled mix of the region and boundary losses."""
        loss = self.alpha * self.base(logits, target)
        if self.alpha < 1.0:  # skips the CPU distance transform while alpha is still 1
            loss = loss + (1.0 - self.alpha) * self.boundary(logits, target, aux)
        return loss


@register_loss("lossd")
def build_lossd_objective(*, num_classes: int, lossd_weight: float = 1.0,
                          lossd_max_iter: int = 50, lossd_norm: str = "log",
                          lossd_metric: str = "manhattan",
                          lossd_label_list: Sequence[int] | None = None,
                          lossd_class_weights: Sequence[float] | None = None,
                          lossd_reduction: str = "mean", lossd_warmup_epochs: int = 0,
                          label_smoothing: float = 0.05, lambda_ce: float = 1.0,
                          lambda_dice: float = 1.0, ignore_index: int = IGNORE_INDEX,
                          **_: object) -> nn.Module:
    """CE + Dice + Lossd (registry entry ``"lossd"``); names as in methods.md §8's table."""
    return LossdObjective(num_classes, lossd_weight, lossd_warmup_epochs, label_smoothing,
                          lambda_ce, lambda_dice, ignore_index, max_iter=lossd_max_iter,
                          norm=lossd_norm, label_list=lossd_label_list,
                          class_weights=lossd_class_weights, reduction=lossd_reduction,
                          metric=lossd_metric)


@register_loss("boundary")
def build_boundary_objective(*, num_classes: int, boundary_alpha_step: float = 0.01,
                             boundary_alpha_min: float = 0.01, label_smoothing: float = 0.05,
                             lambda_ce: float = 1.0, lambda_dice: float = 1.0,
                             ignore_index: int = IGNORE_INDEX,
                             lossd_label_list: Sequence[int] | None = None,
                             boundary_class_reduction: str = "mean",
                             **_: object) -> nn.Module:
    """CE + Dice with Kervadec's boundary loss (registry entry ``"boundary"``).

    ``boundary_class_reduction="mean"`` (default) divides the boundary term by the number of
    classes as Kervadec's public code does; ``"sum"`` is methods.md's written formula.
    """
    return BoundaryObjective(num_classes, boundary_alpha_step, boundary_alpha_min,
                             label_smoothing, lambda_ce, lambda_dice, ignore_index,
                             lossd_label_list, boundary_class_reduction)
