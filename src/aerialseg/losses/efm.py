"""EFM: Error Fingerprint Map loss weighting (Vlasenko & Dashkevych), methods.md §6.

The "recommended implementable version": a per-pixel difficulty map (blurred, min-max-normalised
error and normalised-entropy maps, mixed 0.6 : 0.4), a ground-truth boundary weight, eq. 9 pixel
weights on CE, optional top-k hard-pixel selection, plus unweighted soft Dice (eq. 10).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.losses.dice import SoftDiceLoss
from aerialseg.losses.registry import register_loss

WEIGHT_FORMS = ("eq9", "eq7")
EFM_SOURCES = ("cached_train", "online_batch")
_RANGE_EPS = 1e-6  # maps live in [0, 1]; a smaller range is blur round-off of a constant map


def error_map(probs: Tensor, target: Tensor, *, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Eq. 2: 1 where ``argmax_c probs != target``, else 0; ignore pixels 0. (B, H, W) float."""
    wrong = probs.argmax(1) != target
    return (wrong & (target != ignore_index)).float()


def entropy_map(probs: Tensor, *, eps: float = 1e-8) -> Tensor:
    """Eq. 3 divided by log C: ``-sum_c p_c log(p_c + eps) / log C`` in [0, 1]. (B, H, W)."""
    num_classes = probs.shape[1]
    ent = -(probs * (probs + eps).log()).sum(1)
    return (ent / math.log(num_classes)).clamp(0.0, 1.0) if num_classes > 1 else ent * 0.0


def gaussian_blur(maps: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (B, H, W) maps; radius ceil(4 sigma), replicate padding.

    ``sigma <= 0`` returns the input. Replicate padding works for any image size (reflect
    would need the radius to be smaller than the image).
    """
    if sigma <= 0:
        return maps
    radius = max(1, math.ceil(4.0 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    out = maps.unsqueeze(1)
    out = F.conv2d(F.pad(out, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1))
    return out[:, 0]


def minmax_per_image(maps: Tensor) -> Tensor:
    """Min-max normalise each (H, W) map of a (B, H, W) batch to [0, 1]; constant maps -> 0."""
    flat = maps.flatten(1)
    lo = flat.min(1).values.view(-1, 1, 1)
    rng = flat.max(1).values.view(-1, 1, 1) - lo
    ok = rng > _RANGE_EPS
    return torch.where(ok, (maps - lo) / torch.where(ok, rng, 1.0), 0.0)


def efm_map(probs: Tensor, target: Tensor, *, mix_alpha: float = 0.6, sigma: float = 2.0,
            ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Error fingerprint map (eqs. 2-5, §6 normalisation order), no gradient.

    ``E``: blur then min-max; ``H``: entropy / log C, blur, min-max; ``EFM = minmax(mix_alpha * E
    + (1 - mix_alpha) * H)``, all per image, constant maps mapped to 0.

    Args:
        probs: (B, C, H, W) softmax probabilities (canonical, un-augmented frame for caching).
        target: (B, H, W) labels.
        mix_alpha: error-vs-entropy mix (``efm_mix_alpha``).
        sigma: Gaussian std in px (``efm_sigma``).
        ignore_index: ignore label (never an error).

    Returns:
        (B, H, W) map in [0, 1].
    """
    with torch.no_grad():
        probs = probs.detach().float()
        e = minmax_per_image(gaussian_blur(error_map(probs, target, ignore_index=ignore_index),
                                           sigma))
        h = minmax_per_image(gaussian_blur(entropy_map(probs), sigma))
        return minmax_per_image(mix_alpha * e + (1.0 - mix_alpha) * h)


def boundary_weight(target: Tensor, *, gamma: float = 1.2, kernel: int = 3, num_classes: int,
                    ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Eq. 8 boundary weight ``W_b = 1 + gamma * b`` on the one-hot ground truth.

    ``b = min(1, ||maxpool_k(onehot) - avgpool_k(onehot)||_2)`` over class channels (stride 1,
    same size): 0 inside a class region, up to 1 on boundaries (the clip acts where 3+ classes
    meet). Ignore pixels are left out of both pools (they are unknown, not a class) and get weight
    0; the image border is not a boundary.

    Returns:
        (B, H, W) float weights in {0} U [1, 1 + gamma].
    """
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"boundary kernel must be a positive odd size, got {kernel}")
    valid = target != ignore_index
    b, h, w = target.shape
    # float one-hot in (B, C, H, W), all zero on ignore pixels (they are not a class)
    onehot = torch.zeros(b, num_classes, h, w, device=target.device).scatter_(
        1, torch.where(valid, target, 0).unsqueeze(1), valid.unsqueeze(1).float())
    # window sums by shifted slices (exact: small integers in float32); zero padding and
    # ignore pixels do not count. For 0/1 maps the window max is [sum > 0].
    summed = _box_sum(onehot, kernel)
    count = _box_sum(valid.float(), kernel).clamp_min_(1.0)
    diff = (summed > 0).float().sub_(summed.div_(count.unsqueeze(1)))  # max - mean
    # L2 norm over classes; Tensor.norm(dim=1) was 7x slower than this on CPU
    b_map = diff.square_().sum(1).sqrt_().clamp_(max=1.0)
    return torch.where(valid, 1.0 + gamma * b_map, 0.0)


def _box_sum(x: Tensor, kernel: int) -> Tensor:
    """Sum over the ``kernel`` x ``kernel`` window centred on each pixel of (..., H, W).

    Stride 1, same size, zeros outside the image: ``avg_pool2d(..., divisor_override=1)``
    without the pooling kernel, as 2 (kernel - 1) shifted in-place additions.
    """
    out = x
    for axis in (-1, -2):
        src, out = out, out.clone()
        n = out.shape[axis]
        for s in range(1, min(kernel // 2, n - 1) + 1):
            out.narrow(axis, s, n - s).add_(src.narrow(axis, 0, n - s))
            out.narrow(axis, 0, n - s).add_(src.narrow(axis, s, n - s))
    return out


class EFMLoss(nn.Module):
    """EFM-weighted CE (eq. 9/10, top-k) plus soft Dice.

    ``total = lambda_ce * mean_kept(W * CE) + lambda_dice * Dice`` with

    * eq9 (default): ``W = W_b * (1 + focus_alpha * EFM ** focus_beta)``, so on valid pixels
      ``W in [1, (1 + boundary_gamma)(1 + focus_alpha)]``;
    * eq7: ``W = W_b * (1 + focus_alpha * EFM) ** focus_beta``. Eq. 7 weights the per-pixel base
      loss, but Dice has no per-pixel value, so here it weights CE only and keeps W_b: the two
      forms differ only in the focus term.

    ``mean_kept``: the ``ceil(topk_fraction * #valid)`` largest W * CE values of the whole batch
    are averaged; ``topk_fraction = 1`` gives ``sum(W * CE) / #valid`` (eq. 10's 1/N). Ignore
    pixels have W = 0 and are never kept.

    EFM source: ``"cached_train"`` reads ``aux["efm"]`` (B, H, W), the cached map augmented like
    the image; absent means EFM = 0 (before the first refresh), so W = W_b. ``"online_batch"``
    computes :func:`efm_map` from the current batch's detached softmax.
    """

    def __init__(self, num_classes: int, focus_alpha: float = 2.0, focus_beta: float = 1.5,
                 boundary_gamma: float = 1.2, boundary_kernel: int = 3, weight_form: str = "eq9",
                 topk_fraction: float = 0.5, lambda_ce: float = 1.0, lambda_dice: float = 1.0,
                 label_smoothing: float = 0.05, efm_source: str = "cached_train",
                 mix_alpha: float = 0.6, sigma: float = 2.0,
                 ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        if weight_form not in WEIGHT_FORMS:
            raise ValueError(f"weight_form must be one of {WEIGHT_FORMS}, got {weight_form!r}")
        if efm_source not in EFM_SOURCES:
            raise ValueError(f"efm_source must be one of {EFM_SOURCES}, got {efm_source!r}")
        if not 0.0 < topk_fraction <= 1.0:
            raise ValueError(f"topk_fraction must be in (0, 1] (1.0 = no top-k), "
                             f"got {topk_fraction}")
        self.num_classes = num_classes
        self.focus_alpha = focus_alpha
        self.focus_beta = focus_beta
        self.boundary_gamma = boundary_gamma
        self.boundary_kernel = boundary_kernel
        self.weight_form = weight_form
        self.topk_fraction = topk_fraction
        self.lambda_ce = lambda_ce
        self.lambda_dice = lambda_dice
        self.label_smoothing = label_smoothing
        self.efm_source = efm_source
        self.mix_alpha = mix_alpha
        self.sigma = sigma
        self.ignore_index = ignore_index
        self.dice = SoftDiceLoss(ignore_index)

    def pixel_weights(self, target: Tensor, efm: Tensor | None) -> Tensor:
        """Per-pixel weight W (B, H, W) for ``efm`` in [0, 1] (None = 0); 0 on ignore pixels."""
        wb = boundary_weight(target, gamma=self.boundary_gamma, kernel=self.boundary_kernel,
                             num_classes=self.num_classes, ignore_index=self.ignore_index)
        if efm is None:
            return wb
        # clamp: a cached map resampled by augmentation may leave [0, 1] slightly; a negative
        # base with a fractional exponent would give NaN
        efm = efm.detach().float().clamp(0.0, 1.0)
        if self.weight_form == "eq9":
            return wb * (1.0 + self.focus_alpha * efm.pow(self.focus_beta))
        return wb * (1.0 + self.focus_alpha * efm).pow(self.focus_beta)

    def _efm(self, logits: Tensor, target: Tensor, aux: dict | None) -> Tensor | None:
        if self.efm_source == "online_batch":
            return efm_map(logits.detach().float().softmax(1), target, mix_alpha=self.mix_alpha,
                           sigma=self.sigma, ignore_index=self.ignore_index)
        efm = None if aux is None else aux.get("efm")
        if efm is None:
            return None
        if efm.dim() == 4 and efm.shape[1] == 1:
            efm = efm[:, 0]
        if efm.shape != target.shape:
            raise ValueError(f"aux['efm'] must have the target's shape {tuple(target.shape)}, got "
                             f"{tuple(efm.shape)}; crop/flip the cached map like the image")
        return efm

    def forward(self, logits: Tensor, target: Tensor, aux: dict | None = None) -> Tensor:
        """EFM loss of ``logits`` (B, C, H, W) against ``target`` (B, H, W)."""
        w = self.pixel_weights(target, self._efm(logits, target, aux))
        ce = F.cross_entropy(logits.float(), target, ignore_index=self.ignore_index,
                             reduction="none", label_smoothing=self.label_smoothing)
        valid = target != self.ignore_index
        wce = (w * ce)[valid]
        n_valid = wce.numel()
        if n_valid == 0:
            ce_term = (logits * 0.0).sum()
        elif self.topk_fraction >= 1.0:
            ce_term = wce.sum() / n_valid
        else:
            k = max(1, math.ceil(self.topk_fraction * n_valid))
            ce_term = wce.topk(k, sorted=False).values.mean()
        return self.lambda_ce * ce_term + self.lambda_dice * self.dice(logits, target)


@register_loss("efm")
def build_efm_loss(*, num_classes: int, efm_focus_alpha: float = 2.0,
                   efm_focus_beta: float = 1.5, efm_boundary_gamma: float = 1.2,
                   efm_boundary_kernel: int = 3, efm_weight_form: str = "eq9",
                   topk_fraction: float = 0.5, lambda_ce: float = 1.0, lambda_dice: float = 1.0,
                   label_smoothing: float = 0.05, efm_source: str = "cached_train",
                   efm_mix_alpha: float = 0.6, efm_sigma: float = 2.0,
                   ignore_index: int = IGNORE_INDEX, **_: object) -> nn.Module:
    """EFM loss (registry entry ``"efm"``); keyword names as in methods.md §6's table."""
    return EFMLoss(num_classes, efm_focus_alpha, efm_focus_beta, efm_boundary_gamma,
                   efm_boundary_kernel, efm_weight_form, topk_fraction, lambda_ce, lambda_dice,
                   label_smoothing, efm_source, efm_mix_alpha, efm_sigma, ignore_index)
