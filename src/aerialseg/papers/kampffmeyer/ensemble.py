"""Combining segmentation models: the paper's linear SVM, probability averaging, MC averaging.

Kampffmeyer et al. (2016, §4.4) concatenate the softmax outputs of their networks per pixel
and classify the result with one-vs-all linear SVMs (LIBLINEAR). Here:

- :func:`member_maps` predicts a trained member on the training scenes the SVM is fitted on
  and on the validation scenes (deterministic softmax and, with MC dropout, the MC mean),
  through the run's :class:`~aerialseg.evaluation.PredictionCache`: chapters 02-04 have
  usually predicted these scenes already;
- :func:`stratified_pixels` draws a class-balanced pixel sample for fitting the SVM;
- :class:`SVMCombiner` wraps ``sklearn.svm.LinearSVC`` (LIBLINEAR, one-vs-rest);
- :func:`mean_combine` averages probabilities (also used for MC averaging of MC means);
- :func:`evaluate_scores` accumulates the study's metrics from per-scene class scores,
  mirroring :func:`aerialseg.evaluation.evaluate_model` without running a model;
- :func:`evaluate_ensembles` evaluates every combination of two or more members with every
  combiner. Its results are keyed by method ids: a member's own id (``"fcn"``) and its MC
  mean (``"fcn (MC mean)"``), and ``ens_<member>_..._<combiner>`` for an ensemble
  (:func:`ensemble_id`, e.g. ``"ens_pb_fcn_fcn_mfb_svm"``), which
  :mod:`aerialseg.display` turns into "PB + FCN + FCN-MFB (SVM)".

The combiners (:data:`COMBINERS`):

- ``svm``: the paper's SVM, fitted on a class-balanced sample of training pixels;
- ``svm_onescene``: the same SVM fitted on one training scene only, a scene the members saw
  in training. It is *not* a held-out control: it only shows how much the fit depends on
  the pixels it is fitted on;
- ``svm_heldout``: the SVM fitted on one training scene that the members were retrained
  without, so that their outputs there look like test outputs (the held-out control);
- ``mean``: the plain average of the members' probabilities (nothing fitted);
- ``mc_mean``: the average of the members' MC-dropout means.
"""

from __future__ import annotations

import time
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
from aerialseg.stats import convergence
from aerialseg.utils import set_seed

COMBINERS = ("svm", "svm_onescene", "svm_heldout", "mean", "mc_mean")
"""Combiners (see the module docstring); display names in ``aerialseg.display.COMBINERS``."""

COMBINER_TEXT = {
    "svm": "SVM fitted on a class-balanced sample of training pixels (the paper)",
    "svm_onescene": "SVM fitted on one training scene, which the members saw in training",
    "svm_heldout": "SVM fitted on a training scene the members were retrained without",
    "mean": "average of the members' probabilities",
    "mc_mean": "average of the members' MC-dropout means",
}
"""One phrase per combiner, for the chapter's text."""

SHORT_NAMES = {"pb": "PB", "fcn": "FCN", "fcn_mfb": "FCN-MFB"}
MEMBER = "member"
"""Kind of a single network's row (deterministic prediction)."""
MEMBER_MC = "member_mc"
"""Kind of a single network's MC-mean row."""


def ensemble_id(combo: Sequence[str], combiner: str) -> str:
    """The method id of an ensemble: ``ensemble_id(("pb", "fcn"), "svm") == "ens_pb_fcn_svm"``."""
    if combiner not in COMBINERS:
        raise ValueError(f"unknown combiner {combiner!r}; valid: {COMBINERS}")
    if len(combo) < 2:
        raise ValueError(f"an ensemble has two or more members, got {list(combo)}")
    return "ens_" + "_".join(combo) + "_" + combiner


def mc_id(member: str) -> str:
    """The method id of a member's MC-mean prediction (as chapter 04 names it)."""
    return f"{member} (MC mean)"


def control_combiner(heldout_retrain: bool) -> str:
    """The one-scene SVM's combiner: held out only when the members were retrained without it."""
    return "svm_heldout" if heldout_retrain else "svm_onescene"


def predict_member(model: nn.Module, stats: BandStats, scenes: Sequence[Scene], *,
                   device: torch.device | str = "cpu", mc_samples: int = 0, tile: int = 512,
                   overlap: int = 96, border_mode: str = "reflect",
                   seed: int = 0, cache: PredictionCache | None = None,
                   seconds: list[float] | None = None) -> list[dict[str, np.ndarray]]:
    """Predict ``model`` on ``scenes`` for combining.

    With ``cache`` (the run's :class:`~aerialseg.evaluation.PredictionCache`) a scene the
    chapters already predicted with the same settings is not predicted again. ``seconds``,
    if given, receives each scene's inference time (the original one for a cached scene).

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

        if cache is None:
            t0 = time.perf_counter()
            res = run()
            took = time.perf_counter() - t0
        else:
            res, took = cache.get(scene, settings, mc_samples, run,
                                  halo=getattr(model, "patch_size", 1) // 2)
        if seconds is not None:
            seconds.append(float(took))
        out.append({k: res[k].astype(np.float32) for k in ("probs", "mc_mean") if k in res})
    return out


@dataclass
class MemberMaps:
    """One member's predictions on the training and validation scenes.

    ``train[i]`` is empty for a training scene that was not predicted (the SVM is fitted
    on the others).
    """

    name: str
    train: list[dict[str, np.ndarray]]
    val: list[dict[str, np.ndarray]]
    val_seconds: float = 0.0
    """Inference time on the validation scenes (seconds)."""

    @property
    def has_mc(self) -> bool:
        """Whether the validation maps hold MC means."""
        return bool(self.val) and all("mc_mean" in v for v in self.val)

    def predicted_train(self) -> list[int]:
        """Indices of the training scenes with a prediction."""
        return [i for i, t in enumerate(self.train) if "probs" in t]


def member_maps(name: str, model: nn.Module, stats: BandStats, train_scenes: Sequence[Scene],
                val_scenes: Sequence[Scene], *, train_indices: Sequence[int],
                mc_samples: int = 0, **kwargs: Any) -> MemberMaps:
    """A member's maps on some training scenes and on every validation scene.

    Deterministic maps on ``train_scenes[train_indices]``; on the validation scenes also the
    MC mean when ``mc_samples`` >= 2.

    ``kwargs`` go to :func:`predict_member` (device, border_mode, seed, cache, tile, ...).
    """
    bad = [i for i in train_indices if not 0 <= i < len(train_scenes)]
    if bad:
        raise ValueError(f"training scene indices {bad} out of range 0..{len(train_scenes) - 1}")
    chosen = sorted(set(train_indices))
    fit = predict_member(model, stats, [train_scenes[i] for i in chosen], **kwargs)
    train: list[dict[str, np.ndarray]] = [{} for _ in train_scenes]
    for i, m in zip(chosen, fit, strict=True):
        train[i] = m
    took: list[float] = []
    val = predict_member(model, stats, val_scenes, mc_samples=mc_samples, seconds=took,
                         **kwargs)
    return MemberMaps(name, train, val, val_seconds=float(sum(took)))


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
        flat = x.reshape(k, -1)
        ok = np.isfinite(flat).all(0)
        out = np.full((self.num_classes, h * w), -np.inf, np.float32)
        # the linear decision function w.x + b (as LinearSVC.decision_function computes it,
        # without its per-call input checks and copies: ~50x faster on a whole scene)
        coef = np.asarray(self.svm.coef_, np.float64)
        d = coef @ np.nan_to_num(flat).astype(np.float64) + \
            np.asarray(self.svm.intercept_, np.float64)[:, None]
        if d.shape[0] == 1:  # binary case: one row, for classes_[1]
            d = np.concatenate([-d, d], 0)
        out[self.svm.classes_.astype(int)] = d
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
                    calibration_bins: int = 15, inference_seconds: float = 0.0) -> Evaluation:
    """The study's metrics from per-scene class scores, as ``evaluate_model`` accumulates them.

    Args:
        score_maps: per scene, (C, H, W) class probabilities (or SVM decision values with
            ``probabilities=False``); NaN marks an unclassified pixel.
        scenes: the matching scenes (validation scenes, or training scenes for a score on
            the data the SVM is fitted on).
        probabilities: whether the scores are probabilities (for the ECE and reliability;
            otherwise those are NaN: an SVM's decision values are not calibrated).
        keep_maps: keep the prediction of the first N scenes for figures.
        calibration_bins: equal-width confidence bins of the ECE.
        inference_seconds: the time it took to produce the scores (throughput in the
            results; members' inference plus combining for an ensemble).
    """
    if len(score_maps) != len(scenes) or not scenes:
        raise ValueError(f"{len(score_maps)} score maps for {len(scenes)} scenes")
    acc = Accumulator(scenes[0].classes, calibration_bins=calibration_bins)
    for i, (s, scene) in enumerate(zip(score_maps, scenes, strict=True)):
        acc.add(scene, s, probabilities=probabilities, keep=i < keep_maps)
    return acc.result(inference_seconds=inference_seconds)


@dataclass
class Combined:
    """One evaluated row of the ensembles chapter: a member or an ensemble."""

    evaluation: Evaluation
    members: tuple[str, ...]
    combiner: str
    """:data:`MEMBER`, :data:`MEMBER_MC` or one of :data:`COMBINERS`."""


def member_training_scores(members: Mapping[str, MemberMaps], train_scenes: Sequence[Scene],
                           *, protocol: str = "eroded") -> dict[str, dict[str, float]]:
    """Each member's OA and mean F1 on the training scenes it predicted.

    Used to pick a reference member without looking at the validation scenes (the members
    saw these scenes in training, so the values are optimistic for every member).
    """
    out = {}
    for name, mm in members.items():
        idx = mm.predicted_train()
        if not idx:
            raise ValueError(f"member {name!r} has no prediction on a training scene")
        ev = evaluate_scores([mm.train[i]["probs"] for i in idx],
                             [train_scenes[i] for i in idx], keep_maps=0)
        s = ev.scores[protocol]
        out[name] = {"oa": float(s["oa"]), "f1": float(s["mean_f1"])}
    return out


def evaluate_ensembles(members: Mapping[str, MemberMaps], train_scenes: Sequence[Scene],
                       val_scenes: Sequence[Scene], *,
                       combiners: Sequence[str] = ("svm", "svm_onescene", "mean", "mc_mean"),
                       fit_scenes: Sequence[int] | None = None, heldout: int = -1,
                       svm_samples: int = 200_000, svm_C: float = 1.0,
                       svm_features: str = "prob", seed: int = 0, keep_maps: int = 1,
                       heldout_members: Mapping[str, MemberMaps] | None = None,
                       member_ids: Mapping[str, str] | None = None,
                       ) -> dict[str, Combined]:
    """Evaluate every member, and every combination of two or more with every combiner.

    Args:
        members: member id -> its maps (:func:`member_maps`).
        train_scenes: all training scenes (indices as in the maps).
        val_scenes: the validation scenes.
        combiners: which combiners (``mc_mean`` is skipped for a combination with a member
            without MC means).
        fit_scenes: training scenes the ``svm`` is fitted on (default: every scene all
            members predicted).
        heldout: the training scene ``svm_onescene`` / ``svm_heldout`` fit on.
        svm_samples: pixels in the SVM's class-balanced sample.
        svm_C: LIBLINEAR's C.
        svm_features: ``"prob"`` or ``"logprob"``.
        seed: sampling seed.
        keep_maps: keep the predictions of the first N validation scenes.
        heldout_members: members retrained without the held-out scene (same ids), needed by
            ``svm_heldout``: it fits on their outputs on that scene and combines their
            validation outputs.
        member_ids: the method id of a member's own rows where it differs from its key
            (e.g. ``{"pb": "pb (omit border)"}``).

    Returns:
        ``{method id: Combined}``: the members (``"fcn"``, ``"fcn (MC mean)"`` when MC means
        are given), then ``ens_<members>_<combiner>`` for every combination.
    """
    unknown = set(combiners) - set(COMBINERS)
    if unknown:
        raise ValueError(f"unknown combiner(s) {sorted(unknown)}; valid: {COMBINERS}")
    if "svm_heldout" in combiners and not heldout_members:
        raise ValueError("combiner 'svm_heldout' needs heldout_members (members retrained "
                         "without the held-out scene); without them use 'svm_onescene'")
    names = list(members)
    ids = {m: (member_ids or {}).get(m, m) for m in names}
    hold = heldout % len(train_scenes)
    if fit_scenes is None:
        fit_scenes = sorted(set.intersection(*(set(members[m].predicted_train())
                                               for m in names)))
    fit_idx = list(fit_scenes)
    out: dict[str, Combined] = {}
    for m in names:
        mm = members[m]
        out[ids[m]] = Combined(
            evaluate_scores([v["probs"] for v in mm.val], val_scenes, keep_maps=keep_maps,
                            inference_seconds=mm.val_seconds), (m,), MEMBER)
        if mm.has_mc:
            out[mc_id(ids[m])] = Combined(
                evaluate_scores([v["mc_mean"] for v in mm.val], val_scenes,
                                keep_maps=keep_maps, inference_seconds=mm.val_seconds),
                (m,), MEMBER_MC)
    n_val = len(val_scenes)
    for combo in combos(names):
        for comb in combiners:
            src = heldout_members if comb == "svm_heldout" else members
            if comb == "mc_mean" and not all(members[m].has_mc for m in combo):
                continue
            t0 = time.perf_counter()
            if comb in ("mean", "mc_mean"):
                key = "probs" if comb == "mean" else "mc_mean"
                maps = [mean_combine([members[m].val[i][key] for m in combo])
                        for i in range(n_val)]
            else:
                idx = fit_idx if comb == "svm" else [hold]
                missing = [(m, i) for m in combo for i in idx if "probs" not in src[m].train[i]]
                if missing:
                    raise ValueError(f"combiner {comb!r} fits on training scenes {idx}, but "
                                     f"these (member, scene) have no prediction: {missing}")
                svm = fit_svm([[src[m].train[i]["probs"] for m in combo] for i in idx],
                              [train_scenes[i] for i in idx], samples=svm_samples,
                              C=svm_C, feature_kind=svm_features, seed=seed)
                maps = [svm.scores([src[m].val[i]["probs"] for m in combo])
                        for i in range(n_val)]
            took = time.perf_counter() - t0 + sum(src[m].val_seconds for m in combo)
            out[ensemble_id(combo, comb)] = Combined(
                evaluate_scores(maps, val_scenes, probabilities=not comb.startswith("svm"),
                                keep_maps=keep_maps, inference_seconds=took),
                tuple(combo), comb)
    return out


def record_fields(result: Combined, runs: Mapping[str, Any]) -> dict[str, Any]:
    """What a chapter records beside an evaluation (``Chapter.record`` keywords).

    The members' summed training time and parameters, and ``converged`` (1 when every
    member's training converged).

    ``runs`` maps a member id to its trained run (``history``, ``train_seconds``,
    ``num_parameters``) for the seed of ``result``.
    """
    used = [runs[m] for m in result.members]
    conv = [convergence(r.history) for r in used]
    extra = {"converged": float(all(c.converged for c in conv))}
    if len(used) == 1:
        extra["loss_change_last_tenth"] = -conv[0].relative_decrease
    return {"train_seconds": float(sum(r.train_seconds for r in used)),
            "num_parameters": int(sum(r.num_parameters for r in used)), "extra": extra}


def heldout_fit_scenes(num_train: int, heldout: int) -> tuple[list[int], list[int]]:
    """(scenes the held-out members train on, scenes the control SVM fits on)."""
    if num_train < 2:
        raise ValueError(f"holding out a scene needs at least 2 training scenes, got {num_train}")
    hold = heldout % num_train
    return [i for i in range(num_train) if i != hold], [hold]
