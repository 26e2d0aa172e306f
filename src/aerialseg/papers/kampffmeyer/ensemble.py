"""Combining segmentation models: the paper's linear SVM, probability averaging, MC averaging.

Kampffmeyer et al. (2016, §4.4; ``methods.md`` §3) concatenate the softmax outputs of their
models per pixel and classify the result with one-vs-all linear SVMs (LIBLINEAR). Here:

- :func:`predict_member` predicts a trained model on scenes (deterministic softmax and, with
  MC dropout, the MC mean), through :func:`aerialseg.inference.scene_predictor`;
- :func:`stratified_pixels` draws a class-balanced pixel sample for fitting the SVM;
- :class:`SVMCombiner` wraps ``sklearn.svm.LinearSVC`` (LIBLINEAR, one-vs-rest);
- :func:`mean_combine` averages probabilities (also used for MC averaging of MC means);
- :func:`evaluate_scores` accumulates the study's metrics from per-scene class scores,
  mirroring :func:`aerialseg.evaluation.evaluate_model` without running a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import torch
from torch import nn

from aerialseg.data.patches import BandStats
from aerialseg.data.scene import Scene
from aerialseg.evaluation import (
    Accumulator,
    Evaluation,
    PredictionCache,
    prediction_settings,
)
from aerialseg.inference import scene_predictor
from aerialseg.utils import set_seed

COMBINERS = ("svm", "svm_heldout", "mean", "mc_mean")
"""Combiners: SVM fitted on training pixels, SVM fitted on the held-out scene, plain
probability average, average of the members' MC-dropout means."""

SHORT_NAMES = {"pb": "PB", "fcn": "FCN", "fcn_mfb": "FCN-MFB"}


def predict_member(model: nn.Module, stats: BandStats, scenes: Sequence[Scene], *,
                   device: torch.device | str = "cpu", mc_samples: int = 0, tile: int = 512,
                   overlap: int = 96, border_mode: str = "reflect",
                   seed: int = 0, cache: PredictionCache | None = None
                   ) -> list[dict[str, np.ndarray]]:
    """Predict ``model`` on ``scenes`` for combining.

    With ``cache`` (the run's :class:`~aerialseg.evaluation.PredictionCache`) a scene the
    chapters already predicted with the same settings is not predicted again.

    Returns:
        Per scene: ``probs`` (C, H, W) of the deterministic model and, with ``mc_samples``
        >= 2, ``mc_mean`` (the MC-dropout mean); float32, NaN where unclassified.
    """
    predict = scene_predictor(model, border_mode)
    settings = prediction_settings(model, predict, tile=tile, overlap=overlap, tta=False)
    set_seed(seed)  # reproducible dropout masks
    out = []
    for scene in scenes:
        def run(scene: Scene = scene) -> dict[str, np.ndarray]:
            return predict(model, stats.apply(scene), device=device, tile=tile,
                           overlap=overlap, mc_samples=mc_samples)

        res = run() if cache is None else cache.get(
            scene, settings, mc_samples, run, halo=getattr(model, "patch_size", 1) // 2)[0]
        out.append({k: res[k].astype(np.float32) for k in ("probs", "mc_mean") if k in res})
    return out


# ----------------------------------------------------------------------------- combination

def combos(members: Sequence[str]) -> list[tuple[str, ...]]:
    """Every combination of two or more members (pairs first, then larger ones)."""
    return [c for k in range(2, len(members) + 1) for c in combinations(members, k)]


def combo_label(combo: Sequence[str], all_members: Sequence[str] | None = None) -> str:
    """``"PB+FCN"``; ``"ALL"`` when ``combo`` holds every member of three or more."""
    if all_members is not None and len(combo) >= 3 and set(combo) == set(all_members):
        return "ALL"
    return "+".join(SHORT_NAMES.get(m, m) for m in combo)


def mean_combine(probs: Sequence[np.ndarray], weights: Sequence[float] | None = None
                 ) -> np.ndarray:
    """Weighted average ``sum_m a_m p_m / sum_m a_m`` of (C, H, W) probability maps.

    NaN (unclassified) in any member stays NaN: the ensemble does not classify that pixel.
    """
    if not probs:
        raise ValueError("mean_combine needs at least one member")
    a = np.ones(len(probs)) if weights is None else np.asarray(weights, np.float64)
    if a.shape != (len(probs),) or (a < 0).any() or a.sum() <= 0:
        raise ValueError(f"weights must be {len(probs)} non-negative values with a positive sum")
    acc = sum(w * p.astype(np.float64) for w, p in zip(a, probs, strict=True))
    return (acc / a.sum()).astype(np.float32)


def features(probs: Sequence[np.ndarray], kind: str = "prob") -> np.ndarray:
    """Concatenate the members' (C, H, W) maps into (M*C, H, W) SVM features.

    ``kind="logprob"`` takes log(max(p, 1e-6)) (the optional variant of ``methods.md`` §3.1).
    """
    if kind not in ("prob", "logprob"):
        raise ValueError(f"features must be 'prob' or 'logprob', got {kind!r}")
    x = np.concatenate([np.asarray(p, np.float32) for p in probs], 0)
    if kind == "logprob":
        x = np.log(np.maximum(x, 1e-6))  # NaN stays NaN
    return x


def stratified_pixels(labels: Sequence[np.ndarray], n: int, classes: Sequence[int], *,
                      valid: Sequence[np.ndarray] | None = None, seed: int = 0
                      ) -> list[np.ndarray]:
    """A class-balanced random pixel sample over several scenes.

    ``n // len(classes)`` pixels per class, capped by how many the scenes hold; pixels are
    drawn without replacement among those with a label in ``classes`` (and ``valid``).

    Returns:
        Per scene, the sorted flat indices of its sampled pixels.
    """
    if n < len(classes):
        raise ValueError(f"n={n} is smaller than the number of classes ({len(classes)})")
    rng = np.random.default_rng(seed)
    per_class = n // len(classes)
    flat = [np.asarray(lab).reshape(-1) for lab in labels]
    ok = [np.ones(f.shape, bool) if valid is None else np.asarray(v).reshape(-1)
          for f, v in zip(flat, valid if valid is not None else flat, strict=True)]
    offsets = np.cumsum([0] + [f.size for f in flat])
    picked = []
    for c in classes:
        pos = np.concatenate([np.flatnonzero((f == c) & m) + o
                              for f, m, o in zip(flat, ok, offsets[:-1], strict=True)])
        if pos.size:
            picked.append(rng.choice(pos, min(per_class, pos.size), replace=False))
    allpos = np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)
    return [allpos[(allpos >= lo) & (allpos < hi)] - lo
            for lo, hi in zip(offsets[:-1], offsets[1:], strict=True)]


def gather(maps: Sequence[np.ndarray], indices: Sequence[np.ndarray]) -> np.ndarray:
    """Rows of (K, H, W) maps at flat pixel ``indices`` per scene, stacked to (N, K)."""
    rows = [m.reshape(m.shape[0], -1)[:, i].T for m, i in zip(maps, indices, strict=True)]
    return np.concatenate(rows, 0) if rows else np.zeros((0, 0), np.float32)


@dataclass
class SVMCombiner:
    """One-vs-all linear SVMs on concatenated member outputs (LIBLINEAR via LinearSVC).

    ``C = 1``, squared hinge, L2 penalty (``methods.md`` §3.1, reconstructed). The decision
    values of the classes seen in fitting form the class scores; unseen classes get -inf.
    """

    num_classes: int
    C: float = 1.0
    feature_kind: str = "prob"
    max_iter: int = 2000
    svm: Any = field(default=None, init=False, repr=False)

    def fit(self, x: np.ndarray, y: np.ndarray) -> SVMCombiner:
        """Fit on features ``x`` (N, F) and labels ``y`` (N,)."""
        from sklearn.svm import LinearSVC

        y = np.asarray(y)
        if x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise ValueError(f"need matching, non-empty x {x.shape} and y {y.shape}")
        if np.unique(y).size < 2:
            raise ValueError("the SVM needs pixels of at least two classes to fit")
        if not np.isfinite(x).all():
            raise ValueError("features contain NaN/inf; sample classified pixels only")
        self.svm = LinearSVC(C=self.C, loss="squared_hinge", penalty="l2", dual="auto",
                             multi_class="ovr", max_iter=self.max_iter, random_state=0)
        self.svm.fit(x, y)
        return self

    def scores(self, member_probs: Sequence[np.ndarray]) -> np.ndarray:
        """Class scores (num_classes, H, W) for one scene's member maps; NaN if unclassified."""
        if self.svm is None:
            raise RuntimeError("call fit() before scores()")
        x = features(member_probs, self.feature_kind)
        k, h, w = x.shape
        flat = x.reshape(k, -1).T
        ok = np.isfinite(flat).all(1)
        out = np.full((self.num_classes, h * w), -np.inf, np.float32)
        d = self.svm.decision_function(np.nan_to_num(flat))
        if d.ndim == 1:  # binary case: sklearn returns one column for classes_[1]
            d = np.stack([-d, d], 1)
        out[self.svm.classes_.astype(int)] = d.T
        out[:, ~ok] = np.nan
        return out.reshape(self.num_classes, h, w)


def fit_svm(member_maps: Sequence[Sequence[np.ndarray]], scenes: Sequence[Scene], *,
            samples: int = 200_000, C: float = 1.0, feature_kind: str = "prob",
            seed: int = 0) -> SVMCombiner:
    """Fit :class:`SVMCombiner` on a class-stratified pixel sample of ``scenes``.

    Args:
        member_maps: per scene, the members' (C, H, W) probability maps.
        scenes: the scenes those maps belong to (labels; clutter and ignore are skipped).
        samples: pixels in the sample (equal per evaluated class, capped by availability).
        C: LIBLINEAR's C.
        feature_kind: ``"prob"`` or ``"logprob"``.
        seed: sampling seed.
    """
    classes = scenes[0].classes
    feats = [features(m, feature_kind) for m in member_maps]
    valid = [np.isfinite(f).all(0) for f in feats]
    labels = [s.training_labels(True) for s in scenes]
    idx = stratified_pixels(labels, samples, classes.evaluated, valid=valid, seed=seed)
    x = gather(feats, idx)
    y = np.concatenate([lab.reshape(-1)[i] for lab, i in zip(labels, idx, strict=True)])
    return SVMCombiner(classes.num_classes, C=C, feature_kind=feature_kind).fit(x, y)


# ----------------------------------------------------------------------------- evaluation

def evaluate_scores(score_maps: Sequence[np.ndarray], scenes: Sequence[Scene], *,
                    probabilities: bool = True, keep_maps: int = 1,
                    calibration_bins: int = 15) -> Evaluation:
    """The study's metrics from per-scene class scores, as ``evaluate_model`` accumulates them.

    Args:
        score_maps: per scene, (C, H, W) class probabilities (or SVM decision values with
            ``probabilities=False``); NaN marks an unclassified pixel.
        scenes: the matching validation scenes.
        probabilities: whether the scores are probabilities (for the ECE and reliability;
            otherwise those are NaN: an SVM's decision values are not calibrated).
        keep_maps: keep the prediction of the first N scenes for figures.
        calibration_bins: equal-width confidence bins of the ECE.
    """
    if len(score_maps) != len(scenes) or not scenes:
        raise ValueError(f"{len(score_maps)} score maps for {len(scenes)} scenes")
    acc = Accumulator(scenes[0].classes, calibration_bins=calibration_bins)
    for i, (s, scene) in enumerate(zip(score_maps, scenes, strict=True)):
        acc.add(scene, s, probabilities=probabilities, keep=i < keep_maps)
    return acc.result()


@dataclass
class MemberMaps:
    """One member's predictions on the training and validation scenes."""

    name: str
    train: list[dict[str, np.ndarray]]
    val: list[dict[str, np.ndarray]]


def evaluate_ensembles(members: Mapping[str, MemberMaps], train_scenes: Sequence[Scene],
                       val_scenes: Sequence[Scene], *, combiners: Sequence[str] = COMBINERS,
                       heldout: int = -1, svm_samples: int = 200_000, svm_C: float = 1.0,
                       svm_features: str = "prob", seed: int = 0, keep_maps: int = 1,
                       heldout_members: Mapping[str, MemberMaps] | None = None,
                       ) -> dict[tuple[str, str], Evaluation]:
    """Evaluate every combination of two or more members with every combiner.

    ``svm`` fits on a stratified sample of all training scenes (the paper's choice);
    ``svm_heldout`` fits only on training scene ``heldout`` (the control: members trained
    without it make its outputs honest test-like outputs); ``mean`` averages the
    deterministic probabilities; ``mc_mean`` averages the members' MC means (needs them).
    ``heldout_members`` (same names) are members trained without the held-out scene: the
    control then fits on their outputs there and combines them on the validation scenes;
    without them it uses ``members`` (which saw that scene in training).

    Returns:
        ``{(combo label, combiner): Evaluation}``; single members are included with the
        combiner ``"member"`` (deterministic) and ``"member_mc"`` (MC mean, when present).
    """
    unknown = set(combiners) - set(COMBINERS)
    if unknown:
        raise ValueError(f"unknown combiner(s) {sorted(unknown)}; valid: {COMBINERS}")
    names = list(members)
    has_mc = all("mc_mean" in members[m].val[0] for m in names)
    out: dict[tuple[str, str], Evaluation] = {}
    for m in names:
        label = combo_label((m,))
        out[(label, "member")] = evaluate_scores([v["probs"] for v in members[m].val],
                                                 val_scenes, keep_maps=keep_maps)
        if has_mc:
            out[(label, "member_mc")] = evaluate_scores(
                [v["mc_mean"] for v in members[m].val], val_scenes, keep_maps=keep_maps)
    hold = heldout % len(train_scenes)
    for combo in combos(names):
        label = combo_label(combo, names)
        val = [[members[m].val[i]["probs"] for m in combo] for i in range(len(val_scenes))]
        for comb in combiners:
            if comb == "mean":
                maps = [mean_combine(v) for v in val]
            elif comb == "mc_mean":
                if not has_mc:
                    continue
                maps = [mean_combine([members[m].val[i]["mc_mean"] for m in combo])
                        for i in range(len(val_scenes))]
            else:
                src = members
                fit_idx = list(range(len(train_scenes)))
                if comb == "svm_heldout":
                    src, fit_idx = heldout_members or members, [hold]
                svm = fit_svm([[src[m].train[i]["probs"] for m in combo] for i in fit_idx],
                              [train_scenes[i] for i in fit_idx], samples=svm_samples,
                              C=svm_C, feature_kind=svm_features, seed=seed)
                maps = [svm.scores([src[m].val[i]["probs"] for m in combo])
                        for i in range(len(val_scenes))]
            out[(label, comb)] = evaluate_scores(maps, val_scenes,
                                                 probabilities=not comb.startswith("svm"),
                                                 keep_maps=keep_maps)
    return out


def heldout_fit_scenes(num_train: int, heldout: int) -> tuple[list[int], list[int]]:
    """(scenes the held-out members train on, scenes the control SVM fits on)."""
    if num_train < 2:
        raise ValueError(f"holding out a scene needs at least 2 training scenes, got {num_train}")
    hold = heldout % num_train
    return [i for i in range(num_train) if i != hold], [hold]
