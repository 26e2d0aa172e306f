"""The one rule for "is this difference real?", and the interval summaries chapters print.

Every chapter and the comparison judge a claim "A beats B on metric m (class c)" the same way:

* **Paired over seeds.** Runs of A and B with the same seed share their initialisation seed
  and data order, so the unit of comparison is the per-seed difference A − B. Only seeds
  present for both methods take part.
* **Stratified bootstrap over seeds and spatial blocks** (the rliable recipe, Agarwal et al.
  2021, applied to a segmentation test set): each of ``n_resamples`` resamples draws the
  seeds with replacement and, independently, the validation blocks (squares of
  ``block_size`` pixels of the validation scenes, see :mod:`aerialseg.evaluation`) with
  replacement; the *same* blocks for A and B and for every seed. The metric is recomputed
  from each run's confusion matrix summed over the drawn blocks, exactly as
  :func:`aerialseg.metrics.scores` computes it from the full matrix, and the resample's
  difference is the mean over the drawn seeds of A − B. The 95 % percentile interval of these
  differences is reported with the point estimate (mean over seeds of the per-seed
  difference on the whole validation set).
* **Verdicts**, exactly these words: ``supported`` (the interval excludes 0 on the side the
  claim predicts), ``contradicted`` (it excludes 0 on the other side), ``inconclusive``
  (it contains 0), ``untestable`` (a precondition fails: fewer than :data:`MIN_SEEDS`
  paired seeds; a claimed class that neither model ever predicts; a model that has not
  converged or is below the per-pixel baseline; a metric that cannot be recomputed from
  confusion matrices; a method missing from the results). Each :class:`Verdict` carries its
  estimate and interval whenever they can be computed, untestable ones included.

Files without per-block confusion matrices (schema ``aerialseg-results-1``) fall back to one
block per run, i.e. a bootstrap over seeds only; the verdict's ``reason`` says so.

Metrics (``cls``, ``metric``) use the names of the results files' ``scores`` variable:
``cls="overall"`` with ``f1`` (mean F1), ``iou`` (mIoU), ``oa``, ``oa_all``,
``weighted_f1``, ``weighted_iou``, ``weighted_precision``, ``weighted_recall``; a class name
with ``f1``, ``iou``, ``precision``, ``recall``. ``boundary_f1`` and ``ece`` are not functions
of the confusion matrix and are untestable here.

Convergence (:func:`convergence`): a run has converged when the mean training loss of the
last tenth of training is lower than the mean of the tenth before by less than 2 %
(relative).

Everything is deterministic (a seeded :func:`numpy.random.default_rng`) and vectorised: one
matrix product sums the drawn blocks of every resample, seed and model at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats as sps

from aerialseg.display import method_name
from aerialseg.metrics import batch_scores
from aerialseg.training import stored_difficulty

LEVEL = 0.95
"""Coverage of every interval."""
N_RESAMPLES = 2000
"""Bootstrap resamples per estimate."""
MIN_SEEDS = 3
"""Fewest paired seeds a verdict needs."""
RNG_SEED = 0
"""Seed of the bootstrap's random generator (every call draws the same resamples)."""
CONVERGENCE_TOLERANCE = 0.02
"""A run still improving by this fraction or more between its last two tenths has not
converged."""
CONVERGENCE_LEVEL = 0.05
"""...unless that fall is within the loss's step-to-step noise: a one-sided Welch test of the
two tenths' losses at this level (see :func:`convergence`)."""
CONVERGENCE_RULE = ("the training loss fell by less than 2 % between the last two tenths of "
                    "training, or not significantly, at equal difficulty of the batches drawn "
                    "(see the protocol page)")
"""The convergence rule in words, for table captions (:func:`convergence`)."""
VERDICTS = ("supported", "contradicted", "inconclusive", "untestable")
OVERALL = "overall"

OVERALL_METRICS = {"f1": "mean_f1", "iou": "miou", "oa": "oa", "oa_all": "oa_all",
                   "weighted_f1": "weighted_f1", "weighted_iou": "weighted_iou",
                   "weighted_precision": "weighted_precision",
                   "weighted_recall": "weighted_recall"}
"""``scores`` metric names of the ``overall`` row -> keys of :func:`metrics.batch_scores`."""
CLASS_METRICS = ("f1", "iou", "precision", "recall")
"""Per-class metrics recomputable from a confusion matrix."""
LOWER_IS_BETTER = frozenset({"ece"})


# --------------------------------------------------------------------------- containers

@dataclass(frozen=True)
class Verdict:
    """The judgement of one claim "method beats baseline on metric (class)".

    ``estimate``, ``low`` and ``high`` are differences method − baseline in the metric's
    own unit (fractions: 0.05 is 5 points); nan where they cannot be computed.
    """

    verdict: str
    estimate: float
    low: float
    high: float
    n_seeds: int
    reason: str = ""
    n_blocks: int = 0
    method: str = ""
    baseline: str = ""
    metric: str = ""
    cls: str = OVERALL
    direction: int = 1
    """+1: the claim is that the metric goes up; -1: that it goes down."""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for DataFrames and JSON)."""
        return asdict(self)


@dataclass(frozen=True)
class Estimate:
    """Mean over seeds of one method's metric, with its bootstrap interval (metric units)."""

    mean: float
    low: float
    high: float
    n_seeds: int
    n_blocks: int

    @property
    def width(self) -> float:
        """``high - low``."""
        return self.high - self.low


@dataclass(frozen=True)
class Convergence:
    """Outcome of the convergence rule on one training history."""

    converged: bool
    relative_decrease: float
    """(mean of the tenth before the last - mean of the last tenth) / |mean of the former|."""
    window: int
    """Loss values per tenth."""
    unit: str
    """``"epoch"`` or ``"step"``: what one loss value is."""
    reason: str


# --------------------------------------------------------------------------- metrics

def metric_key(metric: str, cls: str = OVERALL) -> str:
    """The :func:`aerialseg.metrics.batch_scores` key of a ``scores`` (metric, class) pair.

    Raises:
        KeyError: the metric is not a function of the confusion matrix (boundary F1, ECE) or
            unknown.
    """
    if cls == OVERALL:
        if metric not in OVERALL_METRICS:
            raise KeyError(f"overall {metric!r} cannot be recomputed from confusion matrices "
                           f"(recomputable: {sorted(OVERALL_METRICS)})")
        return OVERALL_METRICS[metric]
    if metric not in CLASS_METRICS:
        raise KeyError(f"per-class {metric!r} cannot be recomputed from confusion matrices "
                       f"(recomputable: {list(CLASS_METRICS)})")
    return metric


def metric_values(cm: np.ndarray, metric: str, cls: str = OVERALL, *,
                  classes: Sequence[str], evaluated: Sequence[int]) -> np.ndarray:
    """A score recomputed from confusion matrices ``(..., C, C)``; shape ``(...)``.

    Args:
        cm: counts, rows truth, columns prediction (any leading axes).
        metric: ``scores`` metric name (``f1``, ``iou``, ``precision``, ``recall``, ``oa``,
            ``weighted_f1``, ...; see the module docstring).
        cls: class name, or ``"overall"`` for the summaries.
        classes: the C class names (the ``truth`` coordinate).
        evaluated: indices of the evaluated classes (non-evaluated truth is dropped, as in
            :func:`aerialseg.metrics.scores`).
    """
    key = metric_key(metric, cls)
    s = batch_scores(cm, evaluated)
    if cls == OVERALL:
        return s[key]
    names = list(classes)
    if cls not in names:
        raise KeyError(f"class {cls!r} not among {names}")
    return s[key][..., names.index(cls)]


# --------------------------------------------------------------------------- bootstrap core

def bootstrap_weights(n_seeds: int, n_blocks: int, n_resamples: int = N_RESAMPLES,
                      seed: int = RNG_SEED) -> tuple[np.ndarray, np.ndarray]:
    """How often each seed and each block is drawn in each resample.

    Returns:
        ``(seed_counts, block_counts)`` of shapes ``(n_resamples, n_seeds)`` and
        ``(n_resamples, n_blocks)``; each row sums to ``n_seeds`` / ``n_blocks``
        (sampling with replacement, uniform).
    """
    if n_seeds < 1 or n_blocks < 1 or n_resamples < 1:
        raise ValueError(f"need >= 1 seed, block and resample, got {n_seeds}, {n_blocks}, "
                         f"{n_resamples}")
    rng = np.random.default_rng(seed)

    def counts(n: int) -> np.ndarray:
        draws = rng.integers(0, n, (n_resamples, n))
        flat = (np.arange(n_resamples)[:, None] * n + draws).ravel()
        return np.bincount(flat, minlength=n_resamples * n).reshape(n_resamples, n)

    return counts(n_seeds), counts(n_blocks)


def resample_confusions(blocks: np.ndarray, block_counts: np.ndarray) -> np.ndarray:
    """Confusion matrices summed over each resample's drawn blocks.

    Args:
        blocks: ``(..., B, C, C)`` per-block counts (leading axes: models, seeds).
        block_counts: ``(R, B)`` draws per block (:func:`bootstrap_weights`).

    Returns:
        ``(R, ..., C, C)`` float64 counts (exact for integers below 2**53).
    """
    blocks = np.asarray(blocks)
    *lead, b, c, c2 = blocks.shape
    if block_counts.shape[1] != b:
        raise ValueError(f"{block_counts.shape[1]} block weights for {b} blocks")
    flat = np.moveaxis(blocks, -3, 0).reshape(b, -1).astype(np.float64)
    out = block_counts.astype(np.float64) @ flat
    return out.reshape(block_counts.shape[0], *lead, c, c2)


def _seed_mean(values: np.ndarray, seed_counts: np.ndarray) -> np.ndarray:
    """Mean over drawn seeds: ``values`` (R, S) weighted by ``seed_counts`` (R, S).

    A drawn seed with an undefined value makes the resample undefined (nan).
    """
    drawn = seed_counts > 0
    bad = (drawn & ~np.isfinite(values)).any(1)
    total = np.where(drawn, values * seed_counts, 0.0).sum(1) / seed_counts.sum(1)
    return np.where(bad, np.nan, total)


def _percentiles(x: np.ndarray, level: float) -> tuple[float, float, int]:
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return float("nan"), float("nan"), 0
    q = 100 * (1 - level) / 2
    lo, hi = np.percentile(finite, [q, 100 - q])
    return float(lo), float(hi), int(finite.size)


def paired_bootstrap(a_blocks: np.ndarray, b_blocks: np.ndarray, *, metric: str,
                     cls: str = OVERALL, classes: Sequence[str], evaluated: Sequence[int],
                     n_resamples: int = N_RESAMPLES, level: float = LEVEL,
                     seed: int = RNG_SEED) -> tuple[float, float, float, int]:
    """Point estimate and percentile interval of metric(A) − metric(B), paired over seeds.

    Args:
        a_blocks: ``(S, B, C, C)`` per-block counts of A, seeds in the same order as B's.
        b_blocks: ``(S, B, C, C)`` the same blocks for B.
        metric: see :func:`metric_values`.
        cls: class name or ``"overall"``.
        classes: class names of the C rows.
        evaluated: indices of the evaluated classes.
        n_resamples: bootstrap resamples.
        level: interval coverage.
        seed: random generator seed.

    Returns:
        ``(estimate, low, high, n_defined)``: the mean over seeds of the per-seed difference
        on the whole set, the interval bounds, and how many resamples had a defined
        difference (a resample can leave a class without pixels).
    """
    a = np.asarray(a_blocks)
    b = np.asarray(b_blocks)
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"A and B need the same (seeds, blocks, C, C) shape, got {a.shape} "
                         f"and {b.shape}")
    s, nb = a.shape[:2]
    kw = {"classes": classes, "evaluated": evaluated}
    both = np.stack([a, b])  # (2, S, B, C, C)
    whole = metric_values(both.sum(2), metric, cls, **kw)  # (2, S)
    per_seed = whole[0] - whole[1]
    estimate = float(np.mean(per_seed)) if np.isfinite(per_seed).all() else float("nan")
    seed_counts, block_counts = bootstrap_weights(s, nb, n_resamples, seed)
    m = metric_values(resample_confusions(both, block_counts), metric, cls, **kw)  # (R, 2, S)
    diffs = _seed_mean(m[:, 0] - m[:, 1], seed_counts)
    low, high, n_defined = _percentiles(diffs, level)
    return estimate, low, high, n_defined


def bootstrap_interval(blocks: np.ndarray, *, metric: str, cls: str = OVERALL,
                       classes: Sequence[str], evaluated: Sequence[int],
                       n_resamples: int = N_RESAMPLES, level: float = LEVEL,
                       seed: int = RNG_SEED) -> Estimate:
    """Mean over seeds of one method's metric with its seeds-and-blocks interval.

    Args:
        blocks: ``(S, B, C, C)`` per-block counts of the method's runs.
        metric: see :func:`metric_values`.
        cls: class name or ``"overall"``.
        classes: class names of the C rows.
        evaluated: indices of the evaluated classes.
        n_resamples: bootstrap resamples.
        level: interval coverage.
        seed: random generator seed.
    """
    blocks = np.asarray(blocks)
    s, nb = blocks.shape[:2]
    kw = {"classes": classes, "evaluated": evaluated}
    whole = metric_values(blocks.sum(1), metric, cls, **kw)
    mean = float(np.mean(whole)) if np.isfinite(whole).all() else float("nan")
    seed_counts, block_counts = bootstrap_weights(s, nb, n_resamples, seed)
    m = metric_values(resample_confusions(blocks, block_counts), metric, cls, **kw)
    low, high, _ = _percentiles(_seed_mean(m, seed_counts), level)
    return Estimate(mean, low, high, s, nb)


# --------------------------------------------------------------------------- results files

def _classes(ds: xr.Dataset) -> tuple[list[str], list[int]]:
    names = [str(c) for c in ds["truth"].values]
    if "evaluated" in ds.coords:
        ev_names = {str(c) for c, e in zip(ds["class"].values, ds["evaluated"].values,
                                           strict=True) if bool(e) and c != OVERALL}
        evaluated = [i for i, n in enumerate(names) if n in ev_names]
    else:
        evaluated = list(range(len(names)))
    return names, evaluated


def present_seeds(ds: xr.Dataset, method: str) -> list[int]:
    """Seeds with a run of ``method`` (``present`` mask, or legacy files' valid counts)."""
    from aerialseg.results import run_presence

    i = [str(m) for m in ds["method"].values].index(method)
    mask = run_presence(ds)[i]
    return [int(s) for s, p in zip(ds["seed"].values, mask, strict=True) if p]


def run_blocks(ds: xr.Dataset, method: str, seeds: Sequence[int], protocol: str = "eroded"
               ) -> tuple[np.ndarray, bool]:
    """Per-block counts ``(S, B, C, C)`` of ``method``'s runs with ``seeds``.

    Returns:
        ``(blocks, blocked)``: ``blocked`` is False when the file has no per-block counts for
        these runs (or they do not add up to the pooled matrix), and the pooled matrix is
        returned as a single block.
    """
    sel = ds.sel({"method": method, "protocol": protocol}).sel(seed=list(seeds))
    pooled = np.asarray(sel["confusion"].values)  # (S, C, C)
    if "block_confusion" in ds and ds.sizes.get("block", 0) > 0:
        blocks = np.asarray(sel["block_confusion"].transpose("seed", "block", "truth",
                                                             "pred").values, np.int64)
        if np.array_equal(blocks.sum(1), pooled):
            return blocks, True
    return np.asarray(pooled, np.int64)[:, None], False


def _field(claim: Any, name: str, default: Any = None) -> Any:
    if isinstance(claim, Mapping):
        return claim.get(name, default)
    return getattr(claim, name, default)


def claim_direction(claim: Any) -> int:
    """+1 if the claim says the metric goes up for ``method``, -1 if it goes down.

    Uses the claim's ``direction`` (+1/-1, ``"higher"``/``"lower"``) or ``higher_is_better``
    when it has them; otherwise +1, except for lower-is-better metrics (ECE).
    """
    d = _field(claim, "direction")
    if d is not None:
        if isinstance(d, str):
            return 1 if d.lower() in ("higher", "up", "+", "increase") else -1
        return 1 if float(d) >= 0 else -1
    hib = _field(claim, "higher_is_better")
    if hib is None:
        hib = str(_field(claim, "metric")) not in LOWER_IS_BETTER
    return 1 if hib else -1


def judge(ds: xr.Dataset, claim: Any, *, protocol: str = "eroded",
          flags: Mapping[str, str | None] | None = None,
          converged: Mapping[str, bool] | None = None,
          baseline_ok: Mapping[str, bool] | None = None,
          n_resamples: int = N_RESAMPLES, level: float = LEVEL, seed: int = RNG_SEED,
          min_seeds: int = MIN_SEEDS) -> Verdict:
    """The verdict on ``claim`` (method beats baseline on metric, class) from ``ds``.

    Args:
        ds: a results Dataset (one chapter's, or :func:`aerialseg.compare.load_all`'s).
        claim: anything with ``method``, ``baseline``, ``cls``, ``metric`` (attributes or
            keys; :class:`aerialseg.config.Claim`), optionally ``direction`` or
            ``higher_is_better`` (see :func:`claim_direction`).
        protocol: ``eroded`` (primary) or ``full``.
        flags: method -> reason it takes part in no verdict (None: fine), e.g. from
            :func:`sanity_flags`.
        converged: method -> False when it has not converged.
        baseline_ok: method -> False when it is below the per-pixel baseline.
        n_resamples: bootstrap resamples.
        level: interval coverage.
        seed: random generator seed.
        min_seeds: fewest paired seeds for a verdict other than untestable.
    """
    protocol = _field(claim, "protocol", None) or protocol  # a claim may name its own
    method, baseline = str(_field(claim, "method")), str(_field(claim, "baseline"))
    metric, cls = str(_field(claim, "metric")), str(_field(claim, "cls", OVERALL))
    direction = claim_direction(claim)
    meta = {"method": method, "baseline": baseline, "metric": metric, "cls": cls,
            "direction": direction}
    nan = float("nan")
    methods = {str(m) for m in ds["method"].values}
    missing = [m for m in (method, baseline) if m not in methods]
    if missing:
        return Verdict("untestable", nan, nan, nan, 0,
                       " and ".join(missing) + " not in the results", **meta)
    reasons = []
    for m in (method, baseline):
        if flags and flags.get(m):
            reasons.append(f"{method_name(m)}: {flags[m]}")
        if converged is not None and converged.get(m, True) is False:
            reasons.append(f"{method_name(m)} has not converged")
        if baseline_ok is not None and baseline_ok.get(m, True) is False:
            reasons.append(f"{method_name(m)} is below the per-pixel baseline")
    names, evaluated = _classes(ds)
    try:
        metric_key(metric, cls)
    except KeyError as exc:
        return Verdict("untestable", nan, nan, nan, 0, "; ".join(reasons + [exc.args[0]]),
                       **meta)
    if cls != OVERALL and (cls not in names or names.index(cls) not in evaluated):
        return Verdict("untestable", nan, nan, nan, 0,
                       "; ".join(reasons + [f"{cls} is not an evaluated class"]), **meta)
    seeds = sorted(set(present_seeds(ds, method)) & set(present_seeds(ds, baseline)))
    if not seeds:
        return Verdict("untestable", nan, nan, nan, 0,
                       "; ".join(reasons + ["no seed with runs of both"]), **meta)
    a, a_blocked = run_blocks(ds, method, seeds, protocol)
    b, b_blocked = run_blocks(ds, baseline, seeds, protocol)
    if a.sum() == 0 or b.sum() == 0:  # e.g. the full protocol of an eroded-only label set
        return Verdict("untestable", nan, nan, nan, len(seeds), "; ".join(
            reasons + [f"no {protocol} ground truth in these data"]), **meta)
    notes = []
    if not (a_blocked and b_blocked):
        a, b = a.sum(1, keepdims=True), b.sum(1, keepdims=True)
        notes.append("no per-block confusion matrices: bootstrap over seeds only")
    est, low, high, n_defined = paired_bootstrap(
        a, b, metric=metric, cls=cls, classes=names, evaluated=evaluated,
        n_resamples=n_resamples, level=level, seed=seed)
    if len(seeds) < min_seeds:
        reasons.append(f"{len(seeds)} paired seed{'s' if len(seeds) != 1 else ''} "
                       f"(the rule needs {min_seeds})")
    if cls != OVERALL:
        k = names.index(cls)
        predicted = sum(x[..., evaluated, k].sum() for x in (a, b))
        if predicted == 0:
            reasons.append(f"{cls} is never predicted by either model")
    if not reasons and not (math.isfinite(low) and math.isfinite(high)):
        reasons.append(f"{metric} is undefined on every resample")
    if 0 < n_defined < n_resamples:
        notes.append(f"{n_resamples - n_defined} of {n_resamples} resamples undefined")
    kw = {"n_blocks": a.shape[1], **meta}
    if reasons:
        return Verdict("untestable", est, low, high, len(seeds), "; ".join(reasons + notes),
                       **kw)
    if low > 0 or high < 0:
        verdict = "supported" if (low > 0) == (direction > 0) else "contradicted"
    else:
        verdict = "inconclusive"
    return Verdict(verdict, est, low, high, len(seeds), "; ".join(notes), **kw)


def judge_all(ds: xr.Dataset, claims: Sequence[Any], **kwargs: Any) -> list[Verdict]:
    """:func:`judge` for every claim (same keyword arguments)."""
    return [judge(ds, c, **kwargs) for c in claims]


def method_interval(ds: xr.Dataset, method: str, *, metric: str = "f1", cls: str = OVERALL,
                    protocol: str = "eroded", n_resamples: int = N_RESAMPLES,
                    level: float = LEVEL, seed: int = RNG_SEED) -> Estimate:
    """Mean over seeds of ``method``'s metric with its seeds-and-blocks interval."""
    names, evaluated = _classes(ds)
    seeds = present_seeds(ds, method)
    if not seeds:
        nan = float("nan")
        return Estimate(nan, nan, nan, 0, 0)
    blocks, _ = run_blocks(ds, method, seeds, protocol)
    return bootstrap_interval(blocks, metric=metric, cls=cls, classes=names,
                              evaluated=evaluated, n_resamples=n_resamples, level=level,
                              seed=seed)


def interval_frame(ds: xr.Dataset, *, protocol: str = "eroded",
                   metrics: Sequence[str] = ("f1", "iou", "oa"),
                   per_class: Sequence[str] = ("f1",), methods: Sequence[str] | None = None,
                   n_resamples: int = N_RESAMPLES, level: float = LEVEL,
                   seed: int = RNG_SEED) -> pd.DataFrame:
    """Mean and interval of many scores of many methods, one resampling per method.

    Args:
        ds: a results Dataset.
        protocol: ``eroded`` or ``full``.
        metrics: overall metrics (``scores`` names: ``f1`` is mean F1, ``iou`` mIoU, ...).
        per_class: per-class metrics, for every evaluated class.
        methods: default every method.
        n_resamples: bootstrap resamples.
        level: interval coverage.
        seed: random generator seed.

    Returns:
        Long DataFrame: method, class, metric, mean, low, high, width, n_seeds, n_blocks
        (metric units).
    """
    names, evaluated = _classes(ds)
    wanted = [(names[i], m) for m in per_class for i in evaluated]
    wanted += [(OVERALL, m) for m in metrics]
    for cls, m in wanted:
        metric_key(m, cls)
    rows = []
    for method in methods or [str(m) for m in ds["method"].values]:
        seeds = present_seeds(ds, method)
        if not seeds:
            continue
        blocks, _ = run_blocks(ds, method, seeds, protocol)
        s, nb = blocks.shape[:2]
        seed_counts, block_counts = bootstrap_weights(s, nb, n_resamples, seed)
        whole = batch_scores(blocks.sum(1), evaluated)
        boot = batch_scores(resample_confusions(blocks, block_counts), evaluated)
        for cls, m in wanted:
            key = metric_key(m, cls)
            idx = (...,) if cls == OVERALL else (..., names.index(cls))
            w = whole[key][idx]
            low, high, _ = _percentiles(_seed_mean(boot[key][idx], seed_counts), level)
            mean = float(np.mean(w)) if np.isfinite(w).all() else float("nan")
            rows.append({"method": method, "class": cls, "metric": m, "mean": mean,
                         "low": low, "high": high, "width": high - low, "n_seeds": s,
                         "n_blocks": nb})
    return pd.DataFrame(rows)


def format_interval(mean: float, low: float, high: float, *, scale: float = 100.0,
                    digits: int = 1) -> str:
    """``"81.3 [79.0, 83.1]"`` (scaled), or ``"–"`` when undefined."""
    if not np.isfinite(mean):
        return "–"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{scale * mean:.{digits}f}"
    return f"{scale * mean:.{digits}f} [{scale * low:.{digits}f}, {scale * high:.{digits}f}]"


def interval_table(ds: xr.Dataset, *, protocol: str = "eroded",
                   metrics: Sequence[str] = ("f1", "iou", "oa"), per_class: str | None = "f1",
                   methods: Sequence[str] | None = None, scale: float = 100.0,
                   **kwargs: Any) -> pd.DataFrame:
    """Table for a chapter: per method, "mean [low, high]" of per-class and overall scores.

    Columns: the evaluated classes (``per_class`` metric), then ``metrics`` of the overall
    row labelled as in :func:`aerialseg.tables.summary_table`. Points (``scale``).
    """
    df = interval_frame(ds, protocol=protocol, metrics=metrics,
                        per_class=(per_class,) if per_class else (), methods=methods,
                        **kwargs)
    labels = {"f1": "mean F1", "iou": "mIoU", "oa": "OA", "weighted_f1": "weighted F1",
              "weighted_iou": "weighted IoU"}
    out: dict[str, dict[str, str]] = {}
    for r in df.to_dict("records"):
        col = labels.get(r["metric"], r["metric"]) if r["class"] == OVERALL else r["class"]
        out.setdefault(r["method"], {})[col] = format_interval(r["mean"], r["low"], r["high"],
                                                               scale=scale)
    return pd.DataFrame.from_dict(out, orient="index")


def f1_interval_widths(ds: xr.Dataset, *, protocol: str = "eroded",
                       methods: Sequence[str] | None = None, scale: float = 100.0,
                       **kwargs: Any) -> pd.DataFrame:
    """Width of the 95 % interval of every evaluated class's F1, per method (points)."""
    df = interval_frame(ds, protocol=protocol, metrics=(), per_class=("f1",),
                        methods=methods, **kwargs)
    table = df.pivot(index="method", columns="class", values="width") * scale
    names, evaluated = _classes(ds)
    return table[[names[i] for i in evaluated if names[i] in table.columns]]


# --------------------------------------------------------------------------- sanity flags

def convergence(history: Sequence[Mapping[str, Any]], *,
                tolerance: float = CONVERGENCE_TOLERANCE, key: str = "loss",
                steps_key: str = "step_losses",
                level: float = CONVERGENCE_LEVEL, adjust: bool = True) -> Convergence:
    """The convergence rule on a training history.

    The loss values are the per-epoch ``history[i][key]``; with fewer than 10 epochs, and when
    every epoch also carries its per-step losses under ``steps_key``, the per-step losses
    are used instead (finer tenths). A tenth is ``max(1, n // 10)`` values, so with 2-19
    epochs (and no per-step losses) the last epoch is compared with the one before. The
    run has converged when ``(mean(previous tenth) - mean(last tenth)) / |mean(previous
    tenth)| < tolerance``: a loss that still falls by 2 % or more between the last two
    tenths has not converged; a flat or rising one has (divergence shows up as a non-finite
    loss, which is never converged). Fewer than 2 loss values: not converged (cannot be
    judged).

    When the history also holds, for the epochs of its last two tenths, each batch's loss
    under the final model (``step_difficulty``; the run store records it), the fall is
    measured at equal batch difficulty: :func:`adjusted_convergence` decides.

    ``adjust=False`` ignores it (the raw measure, for comparison).

    Otherwise, when the history records every step's loss (the engine always does), a fall of
    ``tolerance`` or more counts only when it is larger than the loss's noise: the step
    losses of the two tenths must differ by a one-sided Welch t-test at ``level``. Small batches
    make epoch means noisy (the patch CNN's epoch losses at its final learning rate jump by
    10 % between epochs), and a plateau must not be declared "still improving" on noise.
    """
    stored = stored_difficulty(history) if adjust else None
    if stored is not None:  # the run store's replay of the batches: compare at equal difficulty
        return adjusted_convergence(history, stored, tolerance=tolerance, key=key,
                                    steps_key=steps_key, level=level)
    series = [float(h[key]) for h in history if key in h]
    unit = "epoch"
    per_step = bool(history) and all(steps_key in h and len(h[steps_key]) for h in history)
    if len(history) < 10 and per_step:
        series = [float(x) for h in history for x in h[steps_key]]
        unit = "step"
    n = len(series)
    if n < 2:
        return Convergence(False, float("nan"), 0, unit,
                           f"{n} loss value{'s' if n != 1 else ''}: convergence cannot be "
                           "judged")
    values = np.asarray(series)
    if not np.isfinite(values).all():
        return Convergence(False, float("nan"), 0, unit, "the loss is not finite")
    k = max(1, n // 10)
    last, prev = values[-k:].mean(), values[-2 * k:-k].mean()
    if prev == 0:
        rel = 0.0 if last == 0 else float("-inf")
    else:
        rel = float((prev - last) / abs(prev))
    per = f"{k} {unit}{'s' if k != 1 else ''}"
    reason = f"the loss fell {100 * rel:.1f} % between the last two tenths ({per} each)"
    if rel < tolerance:
        return Convergence(True, rel, k, unit, reason)
    if not per_step:  # no per-step losses: the noise cannot be measured, the fall stands
        return Convergence(False, rel, k, unit,
                           f"{reason}, {100 * tolerance:.0f} % or more: still improving")
    if unit == "epoch":
        a, b, _, _ = _tenth_steps([h for h in history if key in h], lambda h: h[steps_key])
    else:
        a, b = values[-2 * k:-k], values[-k:]
    p = _falls(a, b)
    if p >= level:
        return Convergence(True, rel, k, unit,
                           f"{reason}, within the loss's noise (one-sided Welch test over "
                           f"{len(a)} + {len(b)} losses, p = {p:.2f}): a plateau")
    return Convergence(False, rel, k, unit,
                       f"{reason}, {100 * tolerance:.0f} % or more: still improving")


def adjusted_convergence(history: Sequence[Mapping[str, Any]],
                         difficulty: Mapping[int, Sequence[float]], *,
                         tolerance: float = CONVERGENCE_TOLERANCE, key: str = "loss",
                         steps_key: str = "step_losses",
                         level: float = CONVERGENCE_LEVEL) -> Convergence:
    """:func:`convergence` with the batches' difficulty taken out (analysis of covariance).

    A run's step losses in its last two tenths depend on what the model still learns and on
    which batches were drawn; the same seed draws the same batches for every method, so one
    unlucky draw can make every method of a seed look "still improving" (or hide a real
    fall). ``difficulty`` gives each of those steps' batch its loss under the final model
    (:func:`aerialseg.training.batch_difficulty`, ``{epoch: [per batch]}``). The step
    losses ``y`` are regressed on ``1``, the difficulty ``d`` and ``1[last tenth]``; the
    last coefficient is the fall at equal difficulty. The run has converged when that fall
    is below ``tolerance`` (relative to the previous tenth's mean loss) or not significant
    (one-sided t-test of the coefficient at ``level``). Tenths as in :func:`convergence`.

    The final model has just trained on the last tenth's batches, so it may find them a
    little easier than it would find fresh ones; the adjustment then removes slightly too
    much of a fall (a bias towards "converged"), small when the learning rate has decayed.

    Raises:
        ValueError: ``difficulty`` does not cover the steps of the last two tenths.
    """
    recent = [h for h in history if key in h and steps_key in h]
    n = len(recent)
    if n < 2 or len(recent) != len(history):  # too short to compare: the raw rule says so
        return convergence(history, tolerance=tolerance, key=key, steps_key=steps_key,
                           level=level, adjust=False)

    def diff_of(h: Mapping[str, Any]) -> list[float]:
        e = int(h.get("epoch", -1))
        d = difficulty.get(e)
        if d is None or len(d) != len(h[steps_key]):
            raise ValueError(
                f"difficulty does not match epoch {e}'s {len(h[steps_key])} steps "
                f"({'missing' if d is None else f'{len(d)} values'}); compute it with "
                "aerialseg.training.batch_difficulty over difficulty_epochs(len(history))")
        return [float(x) for x in d]

    y0, y1, k, unit = _tenth_steps(recent, lambda h: h[steps_key])
    d0, d1, _, _ = _tenth_steps(recent, diff_of)
    yv, dv = np.r_[y0, y1], np.r_[d0, d1]
    if len(yv) < 4:  # three coefficients need four losses at least: the raw rule decides
        return convergence(history, tolerance=tolerance, key=key, steps_key=steps_key,
                           level=level, adjust=False)
    if not (np.isfinite(yv).all() and np.isfinite(dv).all()):
        return Convergence(False, float("nan"), k, unit, "the loss is not finite")
    prev = float(y0.mean())
    raw = (prev - float(y1.mean())) / abs(prev) if prev else 0.0
    harder = (float(d0.mean()) - float(d1.mean())) / abs(float(d0.mean())) if d0.mean() else 0.0
    x = np.c_[np.ones_like(yv), dv, np.r_[np.zeros(len(y0)), np.ones(len(y1))]]
    beta = np.linalg.lstsq(x, yv, rcond=None)[0]
    dof = len(yv) - x.shape[1]
    rel = float(-beta[2] / abs(prev)) if prev else 0.0
    per = f"{k} {unit}{'s' if k != 1 else ''}"
    reason = (f"the loss fell {100 * raw:.1f} % between the last two tenths ({per} each); the "
              f"final model finds the earlier tenth's batches {100 * harder:.1f} % harder; at "
              f"equal difficulty the fall is {100 * rel:.1f} %")
    if rel < tolerance:
        return Convergence(True, rel, k, unit, reason)
    resid = yv - x @ beta
    cov = (resid @ resid / dof) * np.linalg.pinv(x.T @ x)
    se = float(np.sqrt(max(cov[2, 2], 0.0)))
    p = float(sps.t.cdf(beta[2] / se, dof)) if se > 0 else (0.0 if beta[2] < 0 else 1.0)
    if p >= level:
        return Convergence(True, rel, k, unit,
                           f"{reason}, within the noise (one-sided t-test, p = {p:.2f}): "
                           "a plateau")
    return Convergence(False, rel, k, unit,
                       f"{reason}, {100 * tolerance:.0f} % or more (p = {p:.3f}): still "
                       "improving")


def _tenth_steps(records: Sequence[Mapping[str, Any]],
                 values: Callable[[Mapping[str, Any]], Sequence[float]]
                 ) -> tuple[np.ndarray, np.ndarray, int, str]:
    """Per-step ``values`` of the last two tenths: (earlier, last, tenth size, unit).

    Tenths of epochs from 10 epochs on, else tenths of all the steps (as in
    :func:`convergence`).
    """
    n = len(records)
    if n >= 10:
        k = n // 10
        return (np.asarray([x for h in records[-2 * k:-k] for x in values(h)], float),
                np.asarray([x for h in records[-k:] for x in values(h)], float), k, "epoch")
    flat = np.asarray([x for h in records for x in values(h)], float)
    k = max(1, len(flat) // 10)
    return flat[-2 * k:-k], flat[-k:], k, "step"


def _falls(before: np.ndarray, after: np.ndarray) -> float:
    """p-value of "the loss is lower after than before" (one-sided Welch t-test).

    Fewer than 2 values on a side: 0 (no noise can be measured, so the fall stands).
    """
    if len(before) < 2 or len(after) < 2:
        return 0.0
    if before.var(ddof=1) + after.var(ddof=1) == 0:  # constant levels: any fall is real
        return 0.0 if before.mean() > after.mean() else 1.0
    return float(sps.ttest_ind(before, after, equal_var=False, alternative="greater").pvalue)


def converged(history: Sequence[Mapping[str, Any]], **kwargs: Any) -> bool:
    """True when :func:`convergence` finds the run converged."""
    return convergence(history, **kwargs).converged


def sanity_flags(ds: xr.Dataset, *, pixel_baseline: str | None = None,
                 histories: Mapping[str, Mapping[int, Sequence[Mapping[str, Any]]]]
                 | None = None, protocol: str = "eroded", metric: str = "f1",
                 cls: str = OVERALL) -> dict[str, str | None]:
    """Why each method may take part in no verdict (None: it may), for :func:`judge`.

    Args:
        ds: a results Dataset.
        pixel_baseline: the per-pixel classifier's method name; a method whose mean over
            seeds of ``metric`` (class ``cls``) is lower than the baseline's is flagged.
        histories: method -> {seed: training history}; a run that has not converged
            (:func:`convergence`) flags its method. None: the results' own
            ``converged[method, seed]`` record (written by the chapters) is used.
        protocol: ``eroded`` or ``full``.
        metric: the ``scores`` metric compared with the baseline (default mean F1).
        cls: its class (default the overall row).
    """
    out: dict[str, str | None] = {}
    stored = "converged" in ds and histories is None  # a results file's own record
    sc = ds["scores"].sel({"protocol": protocol, "metric": metric, "class": cls})
    base = None
    if pixel_baseline is not None and pixel_baseline in {str(m) for m in ds["method"].values}:
        base = float(np.nanmean(sc.sel({"method": pixel_baseline}).values))
    for m in (str(x) for x in ds["method"].values):
        reasons = []
        for s, hist in sorted((histories or {}).get(m, {}).items()):
            c = convergence(hist)
            if not c.converged:
                reasons.append(f"seed {s} has not converged ({c.reason})")
        if stored:
            flags = ds["converged"].sel({"method": m})
            present = ds["present"].sel({"method": m}).values if "present" in ds else None
            bad = [int(s) for i, (s, f) in enumerate(zip(ds["seed"].values, flags.values,
                                                          strict=True))
                   if (present is None or present[i]) and np.isfinite(f) and f < 0.5]
            if bad:
                reasons.append(f"not converged (seed{'s' if len(bad) > 1 else ''} "
                               f"{', '.join(map(str, bad))})")
        if base is not None and m != pixel_baseline:
            v = sc.sel({"method": m}).values
            mean = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
            if not mean >= base:
                reasons.append(f"below the per-pixel baseline ({metric_label(metric, cls)} "
                               f"{100 * mean:.1f} vs {100 * base:.1f})")
        out[m] = "; ".join(reasons) or None
    return out


# --------------------------------------------------------------------------- sentences

def metric_label(metric: str, cls: str = OVERALL) -> str:
    """Reader-facing name of a (metric, class): ``mean F1``, ``mIoU``, ``car F1``, ..."""
    names = {"f1": "F1", "iou": "IoU", "precision": "precision", "recall": "recall",
             "oa": "OA", "oa_all": "OA (all pixels)", "ece": "ECE",
             "boundary_f1": "boundary F1", "weighted_f1": "support-weighted F1",
             "weighted_iou": "support-weighted IoU",
             "weighted_precision": "support-weighted precision",
             "weighted_recall": "support-weighted recall"}
    if cls == OVERALL:
        return {"f1": "mean F1", "iou": "mIoU", "boundary_f1": "mean boundary F1"}.get(
            metric, names.get(metric, metric))
    return f"{cls.replace('_', ' ')} {names.get(metric, metric)}"


def _num(x: float, digits: int) -> str:
    return f"{x:.{digits}f}".replace("-", "\u2212")


def sentence(v: Verdict, *, names: Mapping[str, str] | None = None, scale: float = 100.0,
             unit: str = "points", digits: int = 1, level: float = LEVEL) -> str:
    """One reader-facing sentence for a verdict.

    E.g. ``"MFB raises car F1 over FCN by 41.3 points (95 % interval 35.0 to 47.9, 3 seeds):
    supported."``. ``names`` maps method names to display names.
    """
    names = names or {}
    # display names (registered labels) unless the caller gives its own
    a = names.get(v.method, method_name(v.method))
    b = names.get(v.baseline, method_name(v.baseline))
    what = metric_label(v.metric, v.cls)
    pct = f"{100 * level:.0f} %"
    seeds = f"{v.n_seeds} seed{'s' if v.n_seeds != 1 else ''}"
    has_interval = all(np.isfinite([v.estimate, v.low, v.high]))
    interval = (f"{pct} interval {_num(scale * v.low, digits)} to "
                f"{_num(scale * v.high, digits)}, {seeds}")
    if v.verdict == "untestable":
        head = f"{a} against {b} on {what}: untestable ({v.reason})"
        if has_interval:
            return (head + f"; measured change {_num(scale * v.estimate, digits)} {unit} "
                    f"({interval}).")
        return head + "."
    e = scale * v.estimate
    if round(e, digits) == 0:
        body = f"{a} leaves {what} unchanged against {b} ({interval})"
    elif e > 0:
        body = f"{a} raises {what} over {b} by {_num(e, digits)} {unit} ({interval})"
    else:
        body = (f"{a} lowers {what} against {b} by {_num(-e, digits)} {unit} "
                f"({pct} interval of the change {_num(scale * v.low, digits)} to "
                f"{_num(scale * v.high, digits)}, {seeds})")
    note = f"; {v.reason}" if v.reason else ""
    return f"{body}: {v.verdict}{note}."
