"""Evaluate a trained model on the validation scenes with the one protocol of the study.

One confusion matrix per protocol (eroded-boundary ground truth, the primary one, and the
full ground truth) accumulated over every evaluated pixel of every validation scene; boundary
F1; calibration (ECE, reliability); with MC dropout, the accuracy-vs-uncertainty curves.

Per-block counts: each validation scene is cut into square blocks of ``block_size`` pixels
(row-major; the last row and column of blocks may be smaller) and one confusion matrix per
block and protocol is kept beside the pooled one (their sum). :mod:`aerialseg.stats`
resamples these blocks to put intervals on any score. Scores themselves come from
:func:`aerialseg.metrics.scores`, which leaves non-evaluated truth (ISPRS clutter) out.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aerialseg.data.classes import IGNORE_INDEX, ClassTable
from aerialseg.data.patches import BandStats
from aerialseg.data.scene import Scene
from aerialseg.inference import predict_scene
from aerialseg.metrics import BoundaryF1, ConfusionMatrix, scores
from aerialseg.uncertainty import Calibration, ThresholdCurve

PROTOCOLS = ("eroded", "full")
BLOCK_SIZE = 128
"""Default side (pixels) of the spatial blocks whose confusion matrices are kept."""
UNCERTAINTY_KINDS = ("mean_class_std", "predicted_class_std", "entropy", "mutual_info")


@dataclass
class Evaluation:
    """Everything measured for one model on one validation set."""

    classes: ClassTable
    confusion: dict[str, np.ndarray]
    scores: dict[str, dict[str, Any]]
    boundary_f1: dict[str, Any]
    ece: float
    reliability: dict[str, np.ndarray]
    curves: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    coverage: dict[str, dict[float, float]] = field(default_factory=dict)
    maps: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    inference_seconds: float = 0.0
    pixels: int = 0
    block_confusion: dict[str, np.ndarray] = field(default_factory=dict)
    """Per protocol, ``(blocks, C, C)`` counts; their sum over blocks is ``confusion``."""
    block_scene: np.ndarray = field(default_factory=lambda: np.zeros(0, str))
    """Scene name of every block."""
    block_y: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """Top row of every block in its scene (pixels)."""
    block_x: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """Left column of every block in its scene (pixels)."""
    block_size: int = 0

    @property
    def pixels_per_second(self) -> float:
        """Inference throughput over the validation scenes."""
        return self.pixels / max(self.inference_seconds, 1e-9)


def evaluate_model(model: nn.Module, stats: BandStats, scenes: Sequence[Scene], *,
                   device: torch.device | str = "cpu", tile: int = 512, overlap: int = 96,
                   tta: bool = False, mc_samples: int = 0, prediction: str = "deterministic",
                   keep_maps: int = 1, thresholds: int = 101,
                   target_accuracies: Sequence[float] = (0.975, 0.95, 0.90),
                   calibration_bins: int = 15,
                   predictor: Callable[..., dict[str, np.ndarray]] | None = None,
                   block_size: int = BLOCK_SIZE,
                   cache: PredictionCache | None = None) -> Evaluation:
    """Predict every scene and accumulate the study's metrics.

    Args:
        model: trained model (eval mode is set here).
        stats: the training split's band statistics (inputs are normalised with them).
        scenes: validation scenes, each with ``eval_mask`` (eroded protocol).
        device: where inference runs.
        tile: tile side (see :func:`aerialseg.inference.predict_scene`).
        overlap: context around each tile.
        tta: average the four flip variants.
        mc_samples: T >= 2 adds MC-dropout uncertainty maps and threshold curves.
        prediction: ``"deterministic"`` (eval-mode dropout) or ``"mc_mean"`` (argmax of the
            MC mean; needs ``mc_samples``).
        keep_maps: keep predictions/uncertainty of the first N scenes for figures.
        thresholds: number of uncertainty thresholds in [0, 1].
        target_accuracies: report the coverage at which these accuracies are reached.
        calibration_bins: equal-width confidence bins of the ECE.
        predictor: replaces :func:`aerialseg.inference.predict_scene` (same signature and
            outputs), e.g. the patch CNN's dense predictor with its border modes.
        cache: reuse (and keep) each scene's prediction, e.g. the run's
            :class:`PredictionCache`; the inference time reported is the original one.
        block_size: side in pixels of the spatial blocks whose confusion matrices are kept
            for the bootstrap (:mod:`aerialseg.stats`).
    """
    if prediction not in ("deterministic", "mc_mean"):
        raise ValueError(f"prediction must be 'deterministic' or 'mc_mean', got {prediction!r}")
    if prediction == "mc_mean" and mc_samples < 2:
        raise ValueError("prediction='mc_mean' needs mc_samples >= 2")
    if not scenes:
        raise ValueError("no validation scenes to evaluate")
    classes = scenes[0].classes
    acc = Accumulator(classes, calibration_bins=calibration_bins,
                      uncertainty=UNCERTAINTY_KINDS if mc_samples else (), block_size=block_size)
    seconds = 0.0
    predict = predictor or predict_scene
    settings = prediction_settings(model, predict, tile=tile, overlap=overlap, tta=tta)
    for i, scene in enumerate(scenes):
        def run(scene: Scene = scene) -> dict[str, np.ndarray]:
            return predict(model, stats.apply(scene), device=device, tile=tile,
                           overlap=overlap, tta=tta, mc_samples=mc_samples)

        if cache is None:
            t0 = time.perf_counter()
            out = run()
            seconds += time.perf_counter() - t0
        else:
            out, took = cache.get(scene, settings, mc_samples, run,
                                  halo=getattr(model, "patch_size", 1) // 2)
            seconds += took
        probs = out["mc_mean"] if prediction == "mc_mean" else out["probs"]
        acc.add(scene, probs, extras=out, keep=i < keep_maps)
    return acc.result(thresholds=thresholds, target_accuracies=target_accuracies,
                      inference_seconds=seconds)


def prediction_settings(model: nn.Module, predict: Callable[..., Any], *, tile: int,
                        overlap: int, tta: bool) -> dict[str, Any]:
    """What a whole-scene prediction depends on besides the model and the scene.

    The patch CNN's dense prediction is exact whatever its tiles (the halo is its receptive
    field), so only its border mode counts.
    """
    border = getattr(predict, "keywords", {}).get("border_mode")
    if border is not None and hasattr(model, "patch_size"):
        return {"predictor": border}
    return {"predictor": "tiled", "tile": tile, "overlap": overlap, "tta": tta}


class PredictionCache:
    """Whole-scene predictions of one trained model, kept on disk (one inference per scene).

    Chapters predict the same model on the same scenes again (chapter 04 re-evaluates
    02/03's models with MC dropout, 05 combines them): the cache, a folder beside the run
    in the run store, serves them. An entry is keyed by the scene (name and content), the
    predictor settings and the number of MC samples; a deterministic request is also
    served by an entry with MC samples (it holds the deterministic probabilities too), and
    the patch CNN's ``omit`` border by its ``reflect`` prediction with the border blanked
    (the inner pixels are the same patches). Arrays are float32 ``.npy`` files, exact.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @staticmethod
    def _scene_key(scene: Scene) -> str:
        h = hashlib.blake2b(digest_size=8)
        h.update(scene.name.encode())
        h.update(memoryview(np.ascontiguousarray(scene.bands)).cast("B"))
        return h.hexdigest()

    def _entry(self, scene_key: str, settings: dict[str, Any], mc: int) -> Path:
        tag = hashlib.blake2b(json.dumps(settings, sort_keys=True, default=str).encode(),
                              digest_size=6).hexdigest()
        return self.folder / f"{scene_key}-{tag}-mc{mc}"

    def _load(self, entry: Path) -> tuple[dict[str, np.ndarray], float] | None:
        meta = entry / "meta.json"
        if not meta.exists():
            return None
        try:
            info = json.loads(meta.read_text())
            return ({k: np.load(entry / f"{k}.npy") for k in info["keys"]},
                    float(info["seconds"]))
        except (OSError, ValueError, KeyError):
            return None  # a broken entry is predicted again

    def _lookup(self, scene_key: str, settings: dict[str, Any], mc: int
                ) -> tuple[dict[str, np.ndarray], float] | None:
        hit = self._load(self._entry(scene_key, settings, mc))
        if hit is None and mc == 0:
            prefix = self._entry(scene_key, settings, 0).name[:-1]
            for entry in sorted(self.folder.glob(prefix + "*")):
                hit = self._load(entry)
                if hit is not None:
                    return {"probs": hit[0]["probs"]}, hit[1]
        return hit

    def get(self, scene: Scene, settings: dict[str, Any], mc_samples: int,
            predict: Callable[[], dict[str, np.ndarray]], *, halo: int = 0
            ) -> tuple[dict[str, np.ndarray], float]:
        """``(outputs, inference seconds)`` from the cache, or from ``predict()`` (kept)."""
        key = self._scene_key(scene)
        hit = self._lookup(key, settings, mc_samples)
        if hit is not None:
            return hit
        if settings.get("predictor") == "omit" and halo > 0:
            full = self._lookup(key, {**settings, "predictor": "reflect"}, mc_samples)
            if full is not None:
                out = {k: v.copy() for k, v in full[0].items()}
                for v in out.values():
                    v[..., :halo, :] = np.nan
                    v[..., -halo:, :] = np.nan
                    v[..., :, :halo] = np.nan
                    v[..., :, -halo:] = np.nan
                return out, full[1]
        t0 = time.perf_counter()
        out = predict()
        seconds = time.perf_counter() - t0
        entry = self._entry(key, settings, mc_samples)
        entry.mkdir(parents=True, exist_ok=True)
        for k, v in out.items():
            np.save(entry / f"{k}.npy", np.asarray(v, np.float32))
        # the meta file last: an entry without it (a killed write) is predicted again
        (entry / "meta.json").write_text(json.dumps({"keys": sorted(out),
                                                     "seconds": seconds}))
        return out, seconds


class Accumulator:
    """The protocol's counts over validation scenes, from per-scene class scores.

    One implementation for every caller: :func:`evaluate_model` feeds it model outputs, the
    ensembles feed it combined probabilities or SVM decision values. Besides the pooled
    confusion matrices it keeps one per spatial block of ``block_size`` pixels and protocol.
    """

    def __init__(self, classes: ClassTable, *, calibration_bins: int = 15,
                 uncertainty: Sequence[str] = (), block_size: int = BLOCK_SIZE) -> None:
        c = classes.num_classes
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1 pixel, got {block_size}")
        self.classes = classes
        self.block_size = int(block_size)
        self.cms = {p: ConfusionMatrix(c) for p in PROTOCOLS}
        self.blocks: dict[str, list[np.ndarray]] = {p: [] for p in PROTOCOLS}
        self.block_scene: list[str] = []
        self.block_y: list[np.ndarray] = []
        self.block_x: list[np.ndarray] = []
        self.bf1 = BoundaryF1(c)
        self.calib = Calibration(calibration_bins)
        self.curves = {k: ThresholdCurve() for k in uncertainty}
        self.maps: dict[str, dict[str, np.ndarray]] = {}
        self.pixels = 0

    def add(self, scene: Scene, scores_map: np.ndarray, *, probabilities: bool = True,
            extras: dict[str, np.ndarray] | None = None, keep: bool = False) -> None:
        """Count one scene; ``scores_map`` (C, H, W), NaN where a pixel is unclassified."""
        # NaN: unclassified (the patch CNN's border); -inf is a valid score (an SVM class
        # never seen in training)
        classified = ~np.isnan(scores_map).any(0)
        pred = np.where(classified, np.nan_to_num(scores_map, nan=-np.inf).argmax(0),
                        IGNORE_INDEX)
        truth = scene.labels
        valid = (truth != IGNORE_INDEX) & classified
        eroded = scene.eval_mask & valid
        # an eroded-only label set has no full ground truth: its "full" counts stay empty
        # (scores NaN, "not available"), never a copy of the eroded ones
        full = valid if scene.full_truth else np.zeros_like(valid)
        for protocol, mask in (("eroded", eroded), ("full", full)):
            self._count(protocol, pred, truth, mask)
        self._add_layout(scene.name, truth.shape)
        # unclassified pixels (patch CNN border) leave the boundary-F1 domain
        self.bf1.update(np.where(classified, pred, 0),
                        np.where(classified, truth, IGNORE_INDEX))
        if probabilities:
            self.calib.update(np.nan_to_num(scores_map, nan=0.0)[None], truth[None],
                              eroded[None])
        extras = extras or {}
        for k, tc in self.curves.items():
            tc.update(extras[k], pred == truth, eroded)
        self.pixels += truth.size
        if keep:
            kept = {"pred": pred.astype(np.uint8), "truth": truth.astype(np.uint8),
                    "eval_mask": scene.eval_mask}
            for k in UNCERTAINTY_KINDS:
                if k in extras:
                    kept[k] = extras[k]
            self.maps[scene.name] = kept

    def _grid(self, shape: tuple[int, ...]) -> tuple[int, int]:
        bs = self.block_size
        return -(-shape[0] // bs), -(-shape[1] // bs)

    def _count(self, protocol: str, pred: np.ndarray, truth: np.ndarray,
               mask: np.ndarray) -> None:
        """Per-block confusion counts of the masked pixels; their sum joins the pooled matrix.

        One band of block rows at a time with int32 codes ``(block column, truth, pred)``:
        faster than the pooled :class:`ConfusionMatrix` update it replaces.
        """
        c = self.classes.num_classes
        bs = self.block_size
        nby, nbx = self._grid(truth.shape)
        col = ((np.arange(truth.shape[1]) // bs) * (c * c)).astype(np.int32)[None, :]
        counts = np.zeros((nby, nbx * c * c), np.int64)
        for by in range(nby):
            rows = slice(by * bs, (by + 1) * bs)
            m = np.asarray(mask[rows], bool)
            t = np.asarray(truth[rows]).astype(np.int32)
            p = np.asarray(pred[rows]).astype(np.int32)
            bad = m & ((t < 0) | (t >= c) | (p < 0) | (p >= c))
            if bad.any():
                y, x = np.argwhere(bad)[0]
                raise ValueError(f"labels out of range at pixel ({by * bs + y}, {x}): truth "
                                 f"{t[y, x]}, pred {p[y, x]}, but the class table has {c} "
                                 "classes")
            counts[by] = np.bincount((col + t * c + p)[m], minlength=nbx * c * c)
        counts = counts.reshape(nby * nbx, c, c)
        self.blocks[protocol].append(counts)
        self.cms[protocol].matrix += counts.sum(0)

    def _add_layout(self, name: str, shape: tuple[int, ...]) -> None:
        bs = self.block_size
        nby, nbx = self._grid(shape)
        ys, xs = np.meshgrid(np.arange(nby) * bs, np.arange(nbx) * bs, indexing="ij")
        self.block_scene += [name] * (nby * nbx)
        self.block_y.append(ys.ravel())
        self.block_x.append(xs.ravel())

    def result(self, *, thresholds: int = 101,
               target_accuracies: Sequence[float] = (0.975, 0.95, 0.90),
               inference_seconds: float = 0.0) -> Evaluation:
        """The :class:`Evaluation` of everything added so far."""
        ev = self.classes.evaluated
        return Evaluation(
            classes=self.classes,
            confusion={p: self.cms[p].matrix for p in PROTOCOLS},
            scores={p: scores(self.cms[p].matrix, ev) for p in PROTOCOLS},
            boundary_f1=self.bf1.result(ev), ece=float(self.calib.ece()),
            reliability=self.calib.reliability(),
            curves={k: tc.result(thresholds=thresholds) for k, tc in self.curves.items()},
            coverage={k: tc.coverage_at_accuracy(tuple(target_accuracies))
                      for k, tc in self.curves.items()},
            maps=self.maps, inference_seconds=inference_seconds, pixels=self.pixels,
            block_confusion={p: _stack(self.blocks[p], self.classes.num_classes)
                             for p in PROTOCOLS},
            block_scene=np.asarray(self.block_scene, dtype=str),
            block_y=_concat(self.block_y), block_x=_concat(self.block_x),
            block_size=self.block_size)


def _stack(parts: list[np.ndarray], c: int) -> np.ndarray:
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros((0, c, c), np.int64)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
