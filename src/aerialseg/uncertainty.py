"""MC-dropout uncertainty statistics, the accuracy-vs-uncertainty curve and calibration (ECE).

All accumulators pool over every evaluated pixel of every scene, as the confusion matrix does
(``methods.md`` §0.2 and §4). Nothing here runs a model: feed it softmax outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import special
from torch import Tensor

from aerialseg.data.classes import IGNORE_INDEX

ArrayLike = np.ndarray | Tensor

NORMALISATIONS = ("global_minmax", "per_image_minmax", "none")


def _entropy(p: Tensor, dim: int) -> Tensor:
    """Shannon entropy in nats along ``dim``; 0 log 0 = 0."""
    return -torch.special.xlogy(p, p).sum(dim)


def mc_statistics(probs: Tensor, ddof: int = 0) -> dict[str, Tensor]:
    """Summaries of T Monte-Carlo softmax samples.

    Args:
        probs: softmax outputs (T, B, C, H, W) (any trailing spatial dims, class axis 2).
        ddof: std denominator is ``T - ddof``: 0 (population, Kampffmeyer default in
            ``methods.md``) or 1 (unbiased, torch's default, as U-CE's code uses).

    Returns:
        ``mean`` (B, C, H, W) MC mean probabilities; ``std`` (B, C, H, W) per-class std;
        ``mean_class_std`` (B, H, W) mean over classes of the per-class std (Kampffmeyer);
        ``predicted_class_std`` (B, H, W) std of the argmax class of the mean (U-CE);
        ``entropy`` (B, H, W) predictive entropy of the mean (nats); ``mutual_info``
        (B, H, W) entropy of the mean minus mean entropy of the samples (BALD; >= 0).
    """
    if probs.ndim < 3:
        raise ValueError(f"probs must be (T, B, C, ...) MC samples, got shape {tuple(probs.shape)}")
    t = probs.shape[0]
    if t < 2:
        raise ValueError(f"mc_statistics needs at least 2 MC samples along dim 0, got T={t}; "
                         "draw more stochastic passes (methods.md uses T=10)")
    if not 0 <= ddof < t:
        raise ValueError(f"ddof must be in [0, T) = [0, {t}), got {ddof}")
    if not probs.is_floating_point() or probs.dtype in (torch.float16, torch.bfloat16):
        probs = probs.float()  # half precision loses the small stds and entropies
    mean = probs.mean(0)
    std = probs.std(0, correction=ddof)
    pred = mean.argmax(1, keepdim=True)
    entropy = _entropy(mean, 1)
    mean_entropy = _entropy(probs, 2).mean(0)
    return {
        "mean": mean,
        "std": std,
        "mean_class_std": std.mean(1),
        "predicted_class_std": std.gather(1, pred).squeeze(1),
        "entropy": entropy,
        # Exact MI is >= 0 (Jensen); clamp the rounding residue.
        "mutual_info": (entropy - mean_entropy).clamp_min(0.0),
    }


def _flat_numpy(a: ArrayLike) -> np.ndarray:
    if isinstance(a, Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a).reshape(-1)


class ThresholdCurve:
    """Accuracy-vs-uncertainty-threshold accumulator (Kampffmeyer et al. 2016, Fig. 7).

    Stores the uncertainty (float32) and correctness (bool) of every evaluated pixel, so that
    the normalisation can be global over the whole evaluation set.
    """

    def __init__(self) -> None:
        self._u: list[np.ndarray] = []
        self._c: list[np.ndarray] = []
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def update(self, uncertainty: ArrayLike, correct: ArrayLike,
               mask: ArrayLike | None = None) -> None:
        """Add one image (or batch; one call is one image for ``per_image_minmax``).

        Args:
            uncertainty: per-pixel uncertainty, any shape.
            correct: bool, same shape: prediction == truth.
            mask: optional bool, same shape; only True pixels are kept (eroded mask, and
                truth != ignore: correctness at ignore pixels is meaningless).
        """
        u, c = _flat_numpy(uncertainty), _flat_numpy(correct)
        if u.shape != c.shape:
            raise ValueError(f"uncertainty has {u.size} pixels, correct has {c.size}")
        if mask is not None:
            m = _flat_numpy(mask).astype(bool)
            if m.shape != u.shape:
                raise ValueError(f"mask has {m.size} pixels, uncertainty has {u.size}")
            u, c = u[m], c[m]
        if u.size and not np.isfinite(u).all():
            raise ValueError("uncertainty contains nan or inf; mask those pixels out")
        self._u.append(u.astype(np.float32))
        self._c.append(c.astype(bool))
        self._cache.clear()

    @property
    def num_pixels(self) -> int:
        """Number of stored pixels."""
        return sum(u.size for u in self._u)

    def _sorted(self, normalise: str) -> tuple[np.ndarray, np.ndarray]:
        """Normalised uncertainties of all pixels, and of the correct ones, each sorted.

        Two plain sorts replace an argsort: every quantity here depends only on how many
        pixels, and how many correct ones, lie at or below a threshold.
        """
        if normalise not in NORMALISATIONS:
            raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}")
        if self.num_pixels == 0:
            raise ValueError("ThresholdCurve is empty; call update() first")
        if normalise not in self._cache:
            if normalise == "per_image_minmax":
                u = np.concatenate([_minmax(x) for x in self._u])
            else:
                u = np.concatenate(self._u)
                if normalise == "global_minmax":
                    u = _minmax(u)
            uc = np.sort(u[np.concatenate(self._c)])
            u.sort()
            self._cache = {normalise: (u, uc)}  # one at a time: these are large
        return self._cache[normalise]

    def _groups(self, normalise: str) -> tuple[np.ndarray, np.ndarray, int]:
        """Per distinct uncertainty value: pixels and correct pixels at or below it; N."""
        u, uc = self._sorted(normalise)
        ends = np.flatnonzero(np.append(u[1:] != u[:-1], True)) + 1
        correct = np.searchsorted(uc, u[ends - 1], side="right")
        return ends, correct, u.size

    def result(self, thresholds: int | Sequence[float] | np.ndarray = 101,
               normalise: str = "global_minmax") -> dict[str, np.ndarray]:
        """OA and coverage at each threshold.

        Args:
            thresholds: number of equally spaced tau in [0, 1], or explicit values.
            normalise: ``"global_minmax"`` (u scaled to [0, 1] over all stored pixels, the
                reconstructed default), ``"per_image_minmax"`` (per ``update`` call) or
                ``"none"``.

        Returns:
            ``threshold``; ``accuracy`` = OA over pixels with u <= tau (nan where none is
            kept); ``coverage`` = fraction kept; ``kept`` = pixel count.
        """
        tau = (np.linspace(0.0, 1.0, thresholds) if isinstance(thresholds, int)
               else np.asarray(thresholds, np.float64))
        u, uc = self._sorted(normalise)
        k = np.searchsorted(u, tau, side="right")
        kc = np.searchsorted(uc, tau, side="right")
        acc = np.full(tau.shape, np.nan)
        np.divide(kc, k, out=acc, where=k > 0)
        return {"threshold": tau, "accuracy": acc, "coverage": k / u.size, "kept": k}

    def coverage_at_accuracy(self, targets: Sequence[float] = (0.975, 0.95, 0.90),
                             normalise: str = "global_minmax") -> dict[float, float]:
        """Largest coverage whose kept pixels reach each target OA (Kampffmeyer Fig. 7).

        Exact: every distinct uncertainty value is a candidate threshold (no grid), so tied
        pixels are kept or dropped together. A target that no threshold reaches gives 0.0.
        Global min-max scaling does not change the answer; per-image scaling does.
        """
        ends, correct, n = self._groups(normalise)
        acc = correct / ends
        out = {}
        for target in targets:
            ok = ends[acc >= target]
            out[float(target)] = float(ok.max() / n) if ok.size else 0.0
        return out

    def auc(self, normalise: str = "global_minmax") -> float:
        """Area under accuracy vs rejection rate (rejecting the most uncertain pixels first).

        Exact mean over k = 1..N of the OA of the k least uncertain pixels, with ties broken
        at random in expectation; a constant uncertainty gives the plain OA, a perfect ranking
        of errors gives the maximum.
        """
        ends, cc_e, n = self._groups(normalise)
        starts = np.append(0, ends[:-1])
        cc_s = np.append(0, cc_e[:-1]).astype(np.float64)
        g = cc_e - cc_s
        # Within a tie group [s, e) the expected correct count among the first k is linear in
        # k: cc_s + (k - s) g / (e - s). Summing that over k with sum_{s<k<=e} 1/k = H_e - H_s
        # gives each group's share in closed form.
        size = ends - starts
        # Most groups are single pixels: 1/e directly keeps full precision there.
        dh = 1.0 / ends
        tied = size > 1
        dh[tied] = _harmonic(ends[tied]) - _harmonic(starts[tied])
        total = cc_s * dh + g - g * starts * dh / size
        return float(total.sum() / n)


def _harmonic(n: np.ndarray) -> np.ndarray:
    """Harmonic numbers H_n = sum_{k<=n} 1/k (H_0 = 0), via the digamma function."""
    return special.digamma(np.asarray(n, np.float64) + 1) + np.euler_gamma


def _minmax(u: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]; a constant array maps to 0."""
    if u.size == 0:
        return u
    lo, hi = u.min(), u.max()
    if hi <= lo:
        return np.zeros_like(u)
    return ((u - lo) / (hi - lo)).astype(np.float32)


def _as_numpy(a: ArrayLike) -> np.ndarray:
    """A NumPy view of an array or tensor (moved to the CPU if needed)."""
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


class Calibration:
    """Top-label calibration accumulator with equal-width confidence bins; O(bins) memory.

    Bin i holds confidences in [i/M, (i+1)/M) (the last bin includes 1). ``methods.md`` §0.2:
    15 bins, the torchmetrics default (reconstructed; U-CE does not say).

    Args:
        num_bins: M.
        ignore_index: truth value that is skipped.
    """

    def __init__(self, num_bins: int = 15, ignore_index: int = IGNORE_INDEX) -> None:
        if num_bins < 1:
            raise ValueError(f"num_bins must be >= 1, got {num_bins}")
        self.num_bins = int(num_bins)
        self.ignore_index = ignore_index
        self.count = np.zeros(self.num_bins, np.int64)
        self.conf_sum = np.zeros(self.num_bins, np.float64)
        self.correct = np.zeros(self.num_bins, np.int64)

    def update(self, probs: ArrayLike, truth: ArrayLike, mask: ArrayLike | None = None) -> None:
        """Add a batch.

        Args:
            probs: probabilities (B, C, H, W) or (N, C), class axis 1 (softmax, not logits).
            truth: labels (B, H, W) or (N,); ``ignore_index`` skipped.
            mask: optional bool of truth's shape; only True pixels count.
        """
        p = _as_numpy(probs)
        t = _as_numpy(truth)
        if p.ndim < 2 or tuple(t.shape) != tuple(p.shape[:1]) + tuple(p.shape[2:]):
            raise ValueError(f"probs {tuple(p.shape)} and truth {tuple(t.shape)} do not match: "
                             "expected probs (B, C, H, W) with truth (B, H, W), "
                             "or (N, C) with (N,)")
        valid = t != self.ignore_index
        if mask is not None:
            valid &= _as_numpy(mask).astype(bool)
        if not valid.any():
            return
        # top-label confidence and class along the class axis, without moving it (a copy of
        # every probability would cost more than the counting)
        conf = p.max(axis=1)[valid]
        pred = p.argmax(axis=1)[valid]
        lo, hi = float(conf.min()), float(conf.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise ValueError(f"probs span [{lo:.3g}, {hi:.3g}]; pass softmax probabilities, "
                             "not logits")
        t = t[valid].astype(np.int64)
        if int(t.max()) >= p.shape[1] or int(t.min()) < 0:
            raise ValueError(f"truth labels outside [0, {p.shape[1]}); map unwanted labels to "
                             "the ignore index")
        m = self.num_bins
        conf = conf.astype(np.float64)
        b = np.clip((conf * m).astype(np.int64), 0, m - 1)
        self.count += np.bincount(b, minlength=m)
        self.conf_sum += np.bincount(b, weights=conf, minlength=m)
        self.correct += np.bincount(b[pred == t], minlength=m)

    def merge(self, other: Calibration) -> Calibration:
        """Add ``other``'s sums into this accumulator (in place) and return self."""
        if other.num_bins != self.num_bins:
            raise ValueError("cannot merge Calibration accumulators with different bin counts")
        self.count += other.count
        self.conf_sum += other.conf_sum
        self.correct += other.correct
        return self

    def ece(self) -> float:
        """Return the ECE ``sum_b (n_b/N) |acc_b - conf_b|`` (nan if empty)."""
        n = self.count.sum()
        if n == 0:
            return float("nan")
        return float(np.abs(self.correct - self.conf_sum).sum() / n)

    def reliability(self) -> dict[str, np.ndarray]:
        """Reliability diagram data, per bin (nan for empty bins).

        Returns:
            ``bin_edges`` (M+1), ``bin_confidence`` (mean confidence), ``bin_accuracy``,
            ``bin_count``.
        """
        with np.errstate(invalid="ignore", divide="ignore"):
            conf = np.where(self.count > 0, self.conf_sum / self.count, np.nan)
            acc = np.where(self.count > 0, self.correct / self.count, np.nan)
        return {"bin_edges": np.linspace(0.0, 1.0, self.num_bins + 1), "bin_confidence": conf,
                "bin_accuracy": acc, "bin_count": self.count.copy()}
