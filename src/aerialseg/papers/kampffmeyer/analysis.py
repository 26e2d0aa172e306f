"""The Kampffmeyer chapters' analyses: the patch CNN's layers, its dense-inference check.

Chapter 02: the layer table, dense inference against per-patch classification, the cost of
training the patch CNN densely on crops with a sampled-centre loss mask (and the proof that
it is the patch batch's gradient when batch norm and dropout are off). Chapters 02 and 03:
the resolved settings beside the paper's, the sanity gates of every method, our scores
beside the paper's Table 1, the training table. Chapter 04: the coverage of a single scene
at a target accuracy.


Chapter 04 (uncertainty): the coverage of a single scene at a target accuracy
(:func:`coverage_on_scene`, :class:`SceneCoverage`), an evaluation on a subset of the
validation scenes (:func:`scene_subset`, :func:`results_view`, for the patch CNN's costly
MC-dropout pass), one Dataset for the figures (:func:`figure_view`), the MC mean against the
deterministic prediction (:func:`mc_vs_deterministic`), the coverage tables
(:func:`coverage_table`, :func:`uncertainty_kind_table`). Chapter 05 (ensembles): paired
differences against a reference (:func:`paired_differences`, :func:`difference_table`) and
the table beside the paper's Table 2 (:func:`beside_table2`). Every interval comes from
:mod:`aerialseg.stats`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import xarray as xr
from torch import nn

from aerialseg import display, stats
from aerialseg import stats as study_stats
from aerialseg.config import RunConfig
from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.data.patch_sampling import PatchCentres, extract_patches
from aerialseg.models.patch_cnn import predict_dense
from aerialseg.tables import mean_sd, number
from aerialseg.uncertainty import ThresholdCurve

if TYPE_CHECKING:
    from aerialseg.chapter import Chapter
    from aerialseg.evaluation import Evaluation


def dense_vs_patch(model: nn.Module, image: np.ndarray, *, n_pixels: int = 32,
                   seed: int = 0, tile: int = 256, batch: int = 64) -> dict[str, Any]:
    """Check dense inference against classifying patches one by one, and time both.

    Dense: :func:`~aerialseg.models.patch_cnn.predict_dense` (reflect border) over the
    whole ``image``. Per patch: the 65x65 reflect-padded patches around ``n_pixels``
    random pixels, cut by :func:`~aerialseg.data.patch_sampling.extract_patches` and
    classified on their own (1x1 output each).

    Returns:
        ``pixels`` (n, 2), ``dense`` and ``patch`` probabilities (n, C), ``max_abs_diff``,
        ``same_argmax`` (fraction), and throughputs ``dense_px_per_s``, ``patch_px_per_s``,
        ``speedup`` (dense / per patch).
    """
    model = model.eval()
    c, h, w = image.shape
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(0, h, n_pixels), rng.integers(0, w, n_pixels)
    t0 = time.perf_counter()
    dense = predict_dense(model, torch.from_numpy(np.ascontiguousarray(image)),
                          border_mode="reflect", tile=tile)[0].numpy()
    t_dense = time.perf_counter() - t0
    centres = PatchCentres(np.zeros(n_pixels, np.int64), rows, cols, np.zeros(n_pixels),
                           np.zeros(n_pixels, np.int64))
    patches = torch.from_numpy(extract_patches([image], centres, patch_size=model.patch_size))
    param = next(model.parameters())
    out = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for b in range(0, n_pixels, batch):
            logits = model(patches[b:b + batch].to(param.device, param.dtype))
            out.append(torch.softmax(logits.float(), 1)[:, :, 0, 0].cpu())
    t_patch = time.perf_counter() - t0
    per_patch = torch.cat(out).numpy()
    at = dense[:, rows, cols].T
    dense_rate = h * w / t_dense
    patch_rate = n_pixels / t_patch
    return {"pixels": np.stack([rows, cols], 1), "dense": at, "patch": per_patch,
            "max_abs_diff": float(np.abs(at - per_patch).max()),
            "same_argmax": float((at.argmax(1) == per_patch.argmax(1)).mean()),
            "dense_px_per_s": dense_rate, "patch_px_per_s": patch_rate,
            "speedup": dense_rate / patch_rate}


# ----------------------------------------------------------------------------- architecture

def architecture_table(model: nn.Module) -> pd.DataFrame:
    """Layer by layer: output side, receptive field, parameters, dense cost per pixel.

    The output side is for one patch; the dense cost counts multiply-adds per output pixel
    (stride 1: each layer runs once per pixel). The receptive field grows by ``k - 1`` per
    valid k x k layer, so after the four conv/pool pairs and the fc1 kernel it equals the
    patch side.
    """
    side, rf = model.patch_size, 1
    rows = []

    def add(name: str, mod: nn.Module, k: int) -> None:
        nonlocal side, rf
        side -= k - 1
        rf += k - 1
        params = sum(p.numel() for p in mod.parameters())
        macs = 0
        if isinstance(mod, nn.Conv2d):
            macs = mod.in_channels * mod.out_channels * k * k
        rows.append({"layer": name, "kernel": f"{k}x{k}",
                     "channels": getattr(mod, "out_channels", None) or rows[-1]["channels"],
                     "output side (one patch)": side, "receptive field": rf,
                     "parameters": params, "dense MACs / pixel": macs})

    n_conv = 0
    for mod in model.features:
        if isinstance(mod, nn.Conv2d):
            n_conv += 1
            add(f"conv{n_conv}", mod, mod.kernel_size[0])
        elif isinstance(mod, nn.MaxPool2d):
            k = mod.kernel_size if isinstance(mod.kernel_size, int) else mod.kernel_size[0]
            add(f"pool{n_conv}", mod, k)
    add("fc1", model.fc1, model.fc1.kernel_size[0])
    add("fc2", model.fc2, 1)
    add("out", model.out, 1)
    bn = sum(p.numel() for m in model.features if isinstance(m, nn.BatchNorm2d)
             for p in m.parameters())
    df = pd.DataFrame(rows).set_index("layer")
    df.attrs["batchnorm_parameters"] = bn
    return df


def coverage_on_scene(maps: Mapping[str, np.ndarray], kind: str = "mean_class_std",
                      targets: Sequence[float] = (0.975, 0.95, 0.90)) -> dict[float, float]:
    """Coverage at target OAs on one scene's kept maps (the paper's single-tile reading).

    Uses the eroded evaluation pixels, as :func:`aerialseg.evaluation.evaluate_model` does
    for the whole validation set.
    """
    truth, pred = maps["truth"], maps["pred"]
    mask = maps["eval_mask"] & (truth != IGNORE_INDEX) & (pred != IGNORE_INDEX)
    tc = ThresholdCurve()
    tc.update(np.nan_to_num(maps[kind]), pred == truth, mask)
    return tc.coverage_at_accuracy(tuple(targets))


# ----------------------------------------------------------------------------- dense training

DENSE_TRAINING_TRIAL: dict[str, Any] = {
    "patch_step_s": 0.32, "dense_step_s": 3.4, "patches": 32, "crops": 4, "crop_size": 129,
    "threads": 1, "widths": "the default profile's (conv 8, 16, 24, 32; fc 128)",
    "run_s": 190, "steps": 600,
}
"""What decided how the default profile trains the patch CNN (issue 19), measured by us on
the book's machine (2-core AMD EPYC, one thread): one SGD step on a batch of 32 patches of
65 px took ``patch_step_s``; one step on 4 crops of 129 px (65 x 65 outputs each, fc1 as an
FFT convolution, a sampled-centre loss mask) took ``dense_step_s``. A whole default run
(``steps`` steps of 32 patches) took about ``run_s`` seconds and converged. The chapter
measures both steps again on its own hardware (:func:`training_step_seconds`)."""


def centre_patches(crops: torch.Tensor, centres: torch.Tensor, patch_size: int
                   ) -> torch.Tensor:
    """The ``patch_size`` patches of ``crops`` whose dense output pixel is ``centres``.

    Args:
        crops: (B, C, H, W) input crops.
        centres: (n, 3) integer rows ``(crop, row, col)`` in the coordinates of the dense
            output, i.e. of the patch's top-left corner in the crop (the patch's centre
            pixel is at ``row + patch_size // 2``, ``col + patch_size // 2``).
        patch_size: the patch side.

    Returns:
        (n, C, patch_size, patch_size) patches (copies).
    """
    return torch.stack([crops[b, :, r:r + patch_size, c:c + patch_size]
                        for b, r, c in centres.tolist()])


def dense_centre_loss(model: nn.Module, crops: torch.Tensor, centres: torch.Tensor,
                      labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the dense output at sampled centres (a sampled-centre loss mask).

    The patch CNN run on a crop gives one output per patch of the crop; the loss is the mean
    cross-entropy at the ``centres`` only (the other outputs are masked out), so the step
    sees the same patches as a batch of ``len(centres)`` patches would.

    Args:
        model: a patch CNN (any module mapping (B, C, H, W) to (B, K, H - P + 1, W - P + 1)).
        crops: (B, C, H, W) input crops.
        centres: (n, 3) ``(crop, row, col)`` in output coordinates (:func:`centre_patches`).
        labels: (n,) class of each centre.
    """
    logits = model(crops)
    b, r, c = centres.T
    return F.cross_entropy(logits[b, :, r, c], labels)


def patch_batch_loss(model: nn.Module, crops: torch.Tensor, centres: torch.Tensor,
                     labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the same centres classified as a batch of patches (1 x 1 outputs)."""
    patches = centre_patches(crops, centres, int(model.patch_size))
    return F.cross_entropy(model(patches)[:, :, 0, 0], labels)


def training_step_seconds(model: nn.Module, *, in_channels: int, patches: int = 32,
                          crops: int = 4, crop_size: int = 129, repeats: int = 2,
                          seed: int = 0, device: torch.device | str = "cpu"
                          ) -> dict[str, float]:
    """Time one training step (forward and backward) of patch and of dense training.

    *Patch training*: a batch of ``patches`` patches (1 x 1 output each; fc1 a plain matrix
    product), as the study trains the patch CNN. *Dense training*: ``crops`` crops of
    ``crop_size`` px, fc1 as an FFT convolution with its weight gradient, the loss at
    ``patches`` sampled centres (:func:`dense_centre_loss`). Both in training mode (batch
    norm on batch statistics, dropout on), on a copy of ``model`` (its weights and running
    statistics are left as they are). Random inputs: the cost does not depend on them.

    Returns:
        ``patch_s`` and ``dense_s`` (the faster of ``repeats`` steps), ``patch_outputs`` and
        ``dense_outputs`` (labelled outputs a step could use: ``patches``, and every output
        pixel of the crops), ``ratio`` (dense / patch seconds).
    """
    net = copy.deepcopy(model).to(device).train()
    p = int(net.patch_size)
    if crop_size < p:
        raise ValueError(f"crop_size {crop_size} is smaller than the patch ({p} px)")
    g = torch.Generator().manual_seed(seed)
    k = int(net.num_classes)
    side = crop_size - p + 1
    x = torch.randn(crops, in_channels, crop_size, crop_size, generator=g).to(device)
    centres = torch.stack([torch.randint(0, crops, (patches,), generator=g),
                           torch.randint(0, side, (patches,), generator=g),
                           torch.randint(0, side, (patches,), generator=g)], 1)
    labels = torch.randint(0, k, (patches,), generator=g).to(device)
    batch = centre_patches(x, centres, p)

    def step(fn: Any) -> float:
        net.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        fn().backward()
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    mode = net.fc1.mode
    try:
        net.fc1.mode = "direct"
        t_patch = min(step(lambda: F.cross_entropy(net(batch)[:, :, 0, 0], labels))
                      for _ in range(repeats))
        net.fc1.mode = "fft"
        t_dense = min(step(lambda: dense_centre_loss(net, x, centres, labels))
                      for _ in range(repeats))
    finally:
        net.fc1.mode = mode
    return {"patch_s": t_patch, "dense_s": t_dense, "patch_outputs": float(patches),
            "dense_outputs": float(crops * side * side), "ratio": t_dense / t_patch}


# ----------------------------------------------------------------------------- settings

_SETTINGS: tuple[tuple[str, str], ...] = (
    ("patch_size", "Patch side (px)"),
    ("conv_widths", "Conv layer widths"),
    ("fc_width", "fc1/fc2 width"),
    ("widths", "Conv set widths"),
    ("dropout_p", "Dropout"),
    ("samples_per_class", "Patches per class"),
    ("car_rotations", "Rotations per car"),
    ("mfb_frequency", "MFB class frequency"),
    ("crop_size", "Training crop (px)"),
    ("batch_size", "Batch"),
    ("epochs", "Epochs (passes)"),
    ("samples_per_epoch", "Samples per pass"),
    ("steps", "Optimiser steps"),
    ("optimizer", "Optimiser"),
    ("lr", "Learning rate"),
    ("schedule", "Schedule"),
    ("grad_clip", "Gradient-norm clip"),
)


def _value_text(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, list | tuple):
        return ", ".join(map(str, v))
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def settings_table(cfgs: Mapping[str, RunConfig], *,
                   samples: Mapping[str, int] | None = None) -> pd.DataFrame:
    """The resolved settings of runs side by side (rows: settings, columns: ``cfgs`` keys).

    Model, sampler and training settings that any of the runs has; the crop side is left out
    for patch runs, which train on patches. The number of optimiser steps is
    ``epochs x ceil(samples_per_epoch / batch)``; when an epoch is every training sample it
    needs the number of samples, ``samples[label]`` (else the row says "all samples, each
    pass").
    """
    rows: dict[str, dict[str, str]] = {}
    for label, cfg in cfgs.items():
        values: dict[str, Any] = {**cfg.model_kwargs, **cfg.loss_kwargs,
                                  **{k: getattr(cfg.train, k) for k in
                                     ("batch_size", "epochs", "samples_per_epoch", "optimizer",
                                      "lr", "schedule", "grad_clip", "crop_size")}}
        patch_run = "patch_size" in cfg.model_kwargs
        if patch_run:
            values.pop("crop_size")
        t = cfg.train
        n = t.samples_per_epoch or (samples or {}).get(label)
        values["steps"] = (t.epochs * math.ceil(n / t.batch_size) if n
                           else "all samples, each pass")
        if values.get("samples_per_epoch") is None:
            values["samples_per_epoch"] = f"all ({n})" if n else "all"
        if values.get("grad_clip") is None:
            values["grad_clip"] = "off"
        for key, name in _SETTINGS:
            if key in values:
                rows.setdefault(name, {})[label] = _value_text(values[key])
    df = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=list(cfgs))
    df.index.name = "Setting"
    return df


# ----------------------------------------------------------------------------- results

def sanity_table(ds: xr.Dataset, *, pixel_baseline: str = "pixel_baseline",
                 protocol: str = "eroded") -> pd.DataFrame:
    """The study's gates per method: converged runs, mean F1 against the per-pixel baseline.

    Columns: ``seeds``, ``converged`` ("3 of 3"), ``mean F1`` (fraction, mean over seeds),
    ``above baseline`` (bool; None for the baseline itself) and ``verdicts`` ("may take
    part" or the reason of :func:`aerialseg.stats.sanity_flags`). Index: method ids.
    """
    flags = study_stats.sanity_flags(ds, pixel_baseline=pixel_baseline, protocol=protocol)
    sc = ds["scores"].sel({"protocol": protocol, "class": "overall", "metric": "f1"})
    base = None
    if pixel_baseline in {str(m) for m in ds["method"].values}:
        base = float(np.nanmean(sc.sel({"method": pixel_baseline}).values))
    rows = {}
    for m in (str(x) for x in ds["method"].values):
        seeds = study_stats.present_seeds(ds, m)
        conv = ds["converged"].sel({"method": m}).sel(seed=seeds).values \
            if "converged" in ds else np.full(len(seeds), np.nan)
        n_conv = int(np.sum(np.asarray(conv) >= 0.5))
        v = sc.sel({"method": m}).sel(seed=seeds).values.astype(float)
        mean = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
        rows[m] = {"seeds": len(seeds), "converged": f"{n_conv} of {len(seeds)}",
                   "mean F1": mean,
                   "above baseline": None if m == pixel_baseline or base is None
                   else bool(mean >= base),
                   "verdicts": "is the baseline" if m == pixel_baseline
                   else (flags.get(m) or "may take part").replace(
                       f"baseline {pixel_baseline} (", "baseline (")}
    return pd.DataFrame.from_dict(rows, orient="index")


def gates_table(gates: pd.DataFrame) -> Any:
    """A :func:`sanity_table` as the chapters show it (captioned, display names, percent)."""
    from aerialseg.tables import show_table

    return show_table(
        gates,
        caption="The study's gates: a model whose runs have not all converged or whose mean "
                "F1 is below the per-pixel baseline's takes part in no verdict.",
        rows="method", formats={"seeds": "int", "above baseline": "yesno"},
        percent=["mean F1"], columns={"seeds": "Seeds", "converged": "Converged",
                                      "mean F1": "Mean F1 (%)",
                                      "above baseline": "Above the per-pixel baseline",
                                      "verdicts": "Verdicts"},
        na="not applicable (the baseline itself)")


def beside_paper(ds: xr.Dataset, rows: Mapping[str, tuple[str, str | None]], *,
                 reported: Mapping[str, Mapping[str, float]], protocol: str = "eroded",
                 classes: Sequence[str] | None = None) -> pd.DataFrame:
    """Our per-class F1, mean F1 and OA beside a paper's printed row, in points.

    Args:
        ds: a results Dataset.
        rows: row label -> ``(source, key)``: ``("paper", key)`` takes ``reported[key]``,
            ``("ours", method)`` the mean over seeds of ``method`` in ``ds``.
        reported: the paper's rows (e.g. ``reported.KAMPFFMEYER_TABLE1``), in points, with
            the class ids and ``mean_f1``, ``oa``.
        protocol: ``eroded`` (the paper's) or ``full``.
        classes: the columns (default the paper's classes, :data:`reported.ISPRS5`).

    Returns:
        A DataFrame indexed by the row labels, columns the classes then ``mean F1`` and
        ``OA``; NaN where a row has no value.
    """
    from aerialseg.papers.kampffmeyer.reported import ISPRS5

    cols = list(classes or ISPRS5)
    sc = ds["scores"].sel(protocol=protocol)
    out = {}
    for label, (source, key) in rows.items():
        if source == "paper":
            r = reported[str(key)]
            out[label] = {**{c: r.get(c, np.nan) for c in cols},
                          "mean F1": r.get("mean_f1", np.nan), "OA": r.get("oa", np.nan)}
            continue
        s = sc.sel({"method": key})

        def mean(cls: str, metric: str, s: xr.DataArray = s) -> float:
            if cls != "overall" and cls not in [str(c) for c in ds["class"].values]:
                return float("nan")
            v = s.sel({"class": cls, "metric": metric}).values.astype(float)
            return 100 * float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() \
                else float("nan")

        out[label] = {**{c: mean(c, "f1") for c in cols}, "mean F1": mean("overall", "f1"),
                      "OA": mean("overall", "oa")}
    return pd.DataFrame.from_dict(out, orient="index")


def training_summary(runs: Mapping[tuple[str, int], Any]) -> pd.DataFrame:
    """One row per trained run: epochs, steps, final loss, convergence, training seconds.

    ``runs`` maps ``(method, seed)`` to a :class:`~aerialseg.runs.TrainedRun` (a chapter's
    ``ch.runs``). The seconds are those the run store recorded when the run was trained
    (a reused run shows its original training time), with ``reused`` saying whether this
    chapter trained it or found it in the store. ``converged`` and ``loss change`` (relative
    fall of the mean loss between the last two tenths of training) are the study's rule
    (:func:`aerialseg.stats.convergence`).
    """
    rows = []
    for (method, seed), run in runs.items():
        hist = run.history
        conv = study_stats.convergence(hist)
        steps = sum(int(h.get("steps", 0)) for h in hist)
        rows.append({"method": method, "seed": seed, "epochs": len(hist),
                     "steps": steps or None,
                     "final loss": float(hist[-1]["loss"]) if hist else float("nan"),
                     "loss fall, last tenth": conv.relative_decrease,
                     "converged": conv.converged, "training (s)": float(run.train_seconds),
                     "reused": bool(run.reused)})
    return pd.DataFrame(rows)


def interval_text(e: study_stats.Estimate, *, unit: str = "%", scale: float = 100.0,
                  digits: int = 1) -> str:
    """A mean with its 95 % interval for a sentence: "81.3 % (95 % interval 79.0 to 83.1)".

    ``e`` comes from :func:`aerialseg.stats.method_interval`; "not available" when the mean
    is undefined, the mean alone when the interval is.
    """
    if not math.isfinite(e.mean):
        return "not available"
    text = f"{scale * e.mean:.{digits}f}{' ' + unit if unit else ''}"
    if not (math.isfinite(e.low) and math.isfinite(e.high)):
        return text
    return (f"{text} (95 % interval {scale * e.low:.{digits}f} to "
            f"{scale * e.high:.{digits}f})")


# ----------------------------------------------------------------------------- chapter 03

def rarest_class(labels: Sequence[np.ndarray], names: Sequence[str],
                 evaluated: Sequence[int]) -> str | None:
    """The evaluated class with the fewest training pixels among those present (its id).

    A class absent from ``labels`` is skipped (it has no weight to balance); None when no
    evaluated class is present.
    """
    counts = np.zeros(len(names), np.int64)
    for lab in labels:
        lab = np.asarray(lab)
        ok = (lab >= 0) & (lab < len(names))
        counts += np.bincount(lab[ok].ravel().astype(np.int64), minlength=len(names))
    present = [i for i in evaluated if counts[i] > 0]
    if not present:
        return None
    return str(names[min(present, key=lambda i: counts[i])])


def richest_crop(labels: Sequence[np.ndarray], cls: int, size: int = 128,
                 stride: int | None = None) -> tuple[int, int, int]:
    """``(scene, row, col)`` of the ``size`` px crop holding the most pixels of ``cls``.

    Crops on a grid of ``stride`` (default ``size // 2``) inside each label map (maps
    smaller than ``size`` are skipped). Used to show how a loss behaves on a batch rich in a
    rare class.

    Raises:
        ValueError: no label map is as large as ``size``.
    """
    stride = stride or max(1, size // 2)
    best: tuple[int, tuple[int, int, int]] | None = None
    for i, lab in enumerate(labels):
        lab = np.asarray(lab)
        h, w = lab.shape
        if h < size or w < size:
            continue
        hit = np.pad((lab == cls).astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        for r in range(0, h - size + 1, stride):
            for c in range(0, w - size + 1, stride):
                n = int(hit[r + size, c + size] - hit[r, c + size] - hit[r + size, c]
                        + hit[r, c])
                if best is None or n > best[0]:
                    best = (n, (i, r, c))
    if best is None:
        raise ValueError(f"no label map of at least {size} x {size} px")
    return best[1]


def named_verdicts(verdicts: Sequence[study_stats.Verdict], names: Mapping[str, str]
                   ) -> list[study_stats.Verdict]:
    """The verdicts with the method ids in their reasons replaced by display names.

    :func:`aerialseg.stats.judge` writes its reasons with method ids ("fcn_mfb: not
    converged"); a reader sees "FCN-MFB: not converged". The per-pixel baseline is named
    once ("below the per-pixel baseline (…)"). Ids are matched as whole words, longest
    first, so ``fcn`` never replaces part of ``fcn_mfb``.
    """
    import dataclasses
    import re

    ids = sorted(names, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w])(" + "|".join(map(re.escape, ids)) + r")(?![\w])") \
        if ids else None
    out = []
    for v in verdicts:
        reason = re.sub(r"per-pixel baseline [\w]+ \(", "per-pixel baseline (", v.reason)
        if pattern is not None:
            reason = pattern.sub(lambda m: names[m.group(1)], reason)
        out.append(dataclasses.replace(v, reason=reason))
    return out


TARGETS = (0.975, 0.95, 0.90)
"""Target OAs of the coverage readings (the paper's Figs. 6-7)."""


class SceneCoverage:
    """Coverage at the target OAs on each validation scene, collected during evaluation.

    The paper's coverage figures may be for a single tile; this gathers the same reading
    for every scene of an MC-dropout evaluation. Pass :meth:`recorder` as the ``extra`` of
    :meth:`aerialseg.chapter.Chapter.evaluate` (it sees every scene's maps), then read
    :meth:`frame`.
    """

    def __init__(self, kinds: Sequence[str] = ("mean_class_std",),
                 targets: Sequence[float] = TARGETS) -> None:
        self.kinds = tuple(kinds)
        self.targets = tuple(targets)
        self.rows: list[dict[str, Any]] = []

    def recorder(self, method: str, seed: int) -> Callable[[Evaluation], dict[str, float]]:
        """A function of an evaluation that records its per-scene coverage (returns {})."""
        def record(ev: Evaluation) -> dict[str, float]:
            for scene, maps in ev.maps.items():
                for kind in self.kinds:
                    if kind not in maps:
                        continue
                    for t, v in coverage_on_scene(maps, kind, self.targets).items():
                        self.rows.append({"method": method, "seed": seed, "scene": scene,
                                          "uncertainty": kind, "target": float(t),
                                          "kept": float(v)})
            return {}

        return record

    def frame(self) -> pd.DataFrame:
        """One row per method, seed, scene, uncertainty map and target: the fraction kept."""
        return pd.DataFrame(self.rows, columns=["method", "seed", "scene", "uncertainty",
                                                "target", "kept"])


# ----------------------------------------------------------------------------- subsets

def scene_subset(ch: Chapter, n: int) -> Chapter:
    """A copy of ``ch`` that evaluates on its first ``n`` validation scenes only.

    Its records are its own (never written: read them with :func:`results_view`); its
    phase timings go into ``ch.wall``. For an analysis too costly for every scene (the
    patch CNN's MC-dropout pass), never for a model's scores.
    """
    from aerialseg.data.registry import SplitData

    if not 1 <= n <= len(ch.data.val):
        raise ValueError(f"a subset of {n} scenes of {len(ch.data.val)} validation scenes")
    data = SplitData(ch.data.cfg, list(ch.data.train), list(ch.data.val[:n]))
    return dataclasses.replace(ch, data=data, records=[], runs={}, wall=ch.wall)


def results_view(ch: Chapter) -> xr.Dataset:
    """The results Dataset of ``ch``'s records, built in memory and not written."""
    from aerialseg.results import build_results

    return build_results(ch.records, chapter=ch.name, profile=ch.profile, dataset=ch.dataset,
                         params=ch.params, device=str(ch.device), hardware=ch.hardware,
                         wall_seconds=ch.wall)


def figure_view(ds: xr.Dataset, extra: xr.Dataset | None = None, *, tag: str = "",
                methods: Sequence[str] | None = None) -> xr.Dataset:
    """One Dataset for the figures: ``ds`` and ``extra`` without their per-block counts.

    ``extra``'s methods (e.g. evaluated on a subset of the scenes) are renamed
    ``"<method> [<tag>]"``; ``methods`` (ids after renaming) picks and orders the result.
    Not for statistics: the two may cover different scenes.
    """
    parts = [ds.drop_dims("block", errors="ignore")]
    if extra is not None:
        e = extra.drop_dims("block", errors="ignore")
        if tag:
            e = e.assign_coords(method=[f"{m} [{tag}]" for m in e["method"].values])
        parts.append(e)
    out = parts[0] if len(parts) == 1 else xr.concat(
        parts, dim="method", data_vars="minimal", coords="minimal", compat="override",
        join="outer")
    if methods is not None:
        out = out.sel({"method": list(methods)})
    return out


# ----------------------------------------------------------------------------- paired

def paired_differences(ds: xr.Dataset, pairs: Sequence[tuple[str, str]], *,
                       metrics: Sequence[str] = ("oa", "f1"), protocol: str = "eroded"
                       ) -> pd.DataFrame:
    """Method − baseline for each pair and overall metric, with the study's interval.

    The estimate and 95 % interval are :func:`aerialseg.stats.judge`'s (paired over seeds,
    bootstrap over seeds and spatial blocks), whatever the number of seeds: a comparison
    shown for information, not a verdict on a claim.

    Returns:
        One row per pair and metric: method, baseline, metric, estimate, low, high (fractions),
        n_seeds.
    """
    rows = []
    for method, baseline in pairs:
        for metric in metrics:
            v = stats.judge(ds, {"method": method, "baseline": baseline, "metric": metric,
                                 "cls": stats.OVERALL}, protocol=protocol, min_seeds=1)
            rows.append({"method": method, "baseline": baseline, "metric": metric,
                         "estimate": v.estimate, "low": v.low, "high": v.high,
                         "n_seeds": v.n_seeds})
    return pd.DataFrame(rows, columns=["method", "baseline", "metric", "estimate", "low",
                                       "high", "n_seeds"])


def signed_interval(estimate: float, low: float, high: float, *, scale: float = 100.0) -> str:
    """``"+1.2 [+0.4, +2.0]"`` in points (real minus signs), "–" when undefined."""
    def sign(x: float) -> str:
        text = number(scale * x, 1)
        return text if text.startswith(("\u2212", "0.0", "–")) else "+" + text

    if not np.isfinite(estimate):
        return "–"
    if not (np.isfinite(low) and np.isfinite(high)):
        return sign(estimate)
    return f"{sign(estimate)}\u00a0[{sign(low)},\u00a0{sign(high)}]"


def _seed_values(ds: xr.Dataset, method: str, metric: str, protocol: str = "eroded"
                 ) -> np.ndarray:
    v = ds["scores"].sel({"method": method, "metric": metric, "class": stats.OVERALL,
                          "protocol": protocol}).values.astype(float)
    return v[np.isfinite(v)]


def _mean_sd_cell(v: np.ndarray) -> str:
    if v.size == 0:
        return "–"
    return mean_sd(v.mean(), v.std(ddof=1) if v.size > 1 else None)


def mc_vs_deterministic(items: Sequence[tuple[xr.Dataset, str, str, str]], *,
                        protocol: str = "eroded") -> pd.DataFrame:
    """The MC mean against the deterministic prediction of each model, one row per model.

    Args:
        items: ``(results, deterministic id, MC-mean id, scenes)``: both ids evaluated on
            the same scenes of ``results``; ``scenes`` says which ("all 30", "first 4").
        protocol: ``eroded`` or ``full``.

    Returns:
        Indexed by the deterministic id: the validation scenes, the paired change in OA and mean F1
        (MC mean − deterministic, points, with the 95 % interval of
        :func:`paired_differences`) and the ECE of both (%, mean ± sd over seeds; the ECE is
        not a function of the confusion matrix, so it has no bootstrap interval).
    """
    rows = {}
    for ds, det, mc, scenes in items:
        d = paired_differences(ds, [(mc, det)], protocol=protocol).set_index("metric")
        rows[det] = {
            "validation scenes": scenes,
            "Δ OA (points)": signed_interval(*d.loc["oa", ["estimate", "low", "high"]]),
            "Δ mean F1 (points)": signed_interval(*d.loc["f1", ["estimate", "low", "high"]]),
            "ECE, deterministic (%)": _mean_sd_cell(_seed_values(ds, det, "ece", protocol)),
            "ECE, MC mean (%)": _mean_sd_cell(_seed_values(ds, mc, "ece", protocol)),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


# ----------------------------------------------------------------------------- coverage

def _target_label(t: float) -> str:
    return f"OA {100 * t:g} %"


def coverage_table(view: xr.Dataset, scenes: pd.DataFrame, methods: Sequence[str], *,
                   kind: str = "mean_class_std",
                   paper: Mapping[float, Mapping[str, float]] | None = None) -> pd.DataFrame:
    """Share of pixels kept at each target OA: whole set and per scene, beside the paper.

    Args:
        view: results with ``coverage_at`` (e.g. :func:`figure_view`).
        scenes: :meth:`SceneCoverage.frame` (method ids as in ``view``).
        methods: the MC-mean ids to show.
        kind: the uncertainty map.
        paper: {target: {"all_pixels": %, "eroded": %}} (the paper's FCN).

    Returns:
        Rows "<model>: whole set" (mean ± sd over seeds) and "<model>: per scene" (median
        [lowest, highest] over scenes and seeds), then the paper's rows; columns the targets;
        text cells in percent.
    """
    targets = sorted((float(t) for t in view["target"].values), reverse=True)
    rows: dict[str, dict[str, str]] = {}
    for m in methods:
        name = display.method_name(m)
        whole = view["coverage_at"].sel({"method": m, "uncertainty": kind})
        rows[f"{name}: whole set"] = {
            _target_label(t): _mean_sd_cell(np.asarray(
                whole.sel(target=t).values, float)[np.isfinite(whole.sel(target=t).values)])
            for t in targets}
        per = scenes[(scenes["method"] == m) & (scenes["uncertainty"] == kind)]
        if len(per):
            n = per["scene"].nunique()
            cells = {}
            for t in targets:
                v = 100 * per.loc[np.isclose(per["target"], t), "kept"].to_numpy(float)
                cells[_target_label(t)] = "–" if v.size == 0 else (
                    f"{number(np.median(v))}\u00a0[{number(v.min())}, {number(v.max())}]")
            rows[f"{name}: per scene ({n} scenes)"] = cells
    for t_key, label in (("all_pixels", "all pixels"), ("eroded", "eroded ground truth")):
        if paper:
            rows[f"Paper's FCN, Vaihingen ({label})"] = {
                _target_label(t): number(v[t_key]) for t, v in paper.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def uncertainty_kind_table(view: xr.Dataset, methods: Sequence[str],
                           kinds: Sequence[str] | None = None) -> pd.DataFrame:
    """Share of pixels kept at each target OA for every uncertainty map (mean over seeds).

    Rows "<model>, OA <target>", columns the maps (fractions).
    """
    kinds = [str(k) for k in (kinds or view["uncertainty"].values)]
    rows = {}
    for m in methods:
        sel = view["coverage_at"].sel({"method": m})
        for t in sorted(view["target"].values, reverse=True):
            rows[f"{display.method_name(m)}, {_target_label(float(t))}"] = {
                k: float(np.nanmean(sel.sel(uncertainty=k, target=t).values))
                if np.isfinite(sel.sel(uncertainty=k, target=t).values).any() else np.nan
                for k in kinds}
    return pd.DataFrame.from_dict(rows, orient="index")


# ----------------------------------------------------------------------------- ensembles

def difference_table(ds: xr.Dataset, methods: Sequence[str], reference: str, *,
                     metrics: Sequence[str] = ("oa", "f1"), protocol: str = "eroded"
                     ) -> pd.DataFrame:
    """Each method against ``reference``: its scores and the paired change with interval.

    Indexed by method id; per metric the mean over seeds (%) and the change (points, 95 %
    interval of :func:`paired_differences`).
    """
    diff = paired_differences(ds, [(m, reference) for m in methods], metrics=metrics,
                              protocol=protocol)
    rows: dict[str, dict[str, Any]] = {}
    for r in diff.to_dict("records"):
        label = display.score_label(r["metric"])
        row = rows.setdefault(r["method"], {})
        row[f"{label} (%)"] = _mean_sd_cell(_seed_values(ds, r["method"], r["metric"], protocol))
        row[f"Δ {label} (points)"] = signed_interval(r["estimate"], r["low"], r["high"])
    return pd.DataFrame.from_dict(rows, orient="index")


def beside_table2(ds: xr.Dataset, members: Sequence[str], table1: Mapping[str, Mapping],
                  table2: Mapping[str, Mapping[str, float]], *, combiner: str = "svm",
                  member_ids: Mapping[str, str] | None = None,
                  extra_rows: Sequence[str] = (), protocol: str = "eroded") -> pd.DataFrame:
    """Our mean F1 and OA beside the paper's Tables 1 (members) and 2 (SVM ensembles).

    Args:
        ds: chapter 05's results.
        members: the member ids (``pb``, ``fcn``, ``fcn_mfb``).
        table1: paper's mean F1 and OA per member (``{"pb": {"mean_f1": ., "oa": .}}``).
        table2: paper's rows per combination label (``"PB+FCN"``, ..., ``"ALL"``).
        combiner: our combiner beside Table 2.
        member_ids: a member's id in ``ds`` where it differs from its key.
        extra_rows: ids shown with ours only (e.g. the per-pixel baseline).
        protocol: ``eroded`` or ``full``.

    Returns:
        Indexed by our method id: paper's mean F1 and OA (points, NaN where the paper has
        no row) and ours (mean ± sd over seeds, %).
    """
    from aerialseg.papers.kampffmeyer.ensemble import combo_label, combos, ensemble_id

    ids = {m: (member_ids or {}).get(m, m) for m in members}
    have = {str(m) for m in ds["method"].values}
    rows: dict[str, dict[str, Any]] = {}

    def add(method: str, paper: Mapping[str, float] | None) -> None:
        if method not in have:
            return
        rows[method] = {
            "Paper: mean F1": float(paper["mean_f1"]) if paper else np.nan,
            "Paper: OA": float(paper["oa"]) if paper else np.nan,
            "Ours: mean F1": _mean_sd_cell(_seed_values(ds, method, "f1", protocol)),
            "Ours: OA": _mean_sd_cell(_seed_values(ds, method, "oa", protocol)),
        }

    for m in members:
        add(ids[m], table1.get(m))
    for combo in combos(list(members)):
        add(ensemble_id(combo, combiner),
            table2.get(combo_label(combo, ("pb", "fcn", "fcn_mfb"))))
    for m in extra_rows:
        add(m, None)
    return pd.DataFrame.from_dict(rows, orient="index")


def accuracy_at_coverage(view: xr.Dataset, method: str, fraction: float, *,
                         kind: str = "mean_class_std") -> float:
    """OA of the ``fraction`` least uncertain pixels, mean over seeds (NaN without curves).

    Read off each seed's accuracy-vs-coverage curve (linear interpolation between
    thresholds), e.g. ``fraction=2/3``: the paper's "rejecting the most uncertain third".
    """
    if "accuracy" not in view or method not in {str(m) for m in view["method"].values}:
        return float("nan")
    sel = view.sel({"method": method, "uncertainty": kind})
    out = []
    for seed in sel["seed"].values:
        acc = np.asarray(sel["accuracy"].sel(seed=seed).values, float)
        cov = np.asarray(sel["coverage"].sel(seed=seed).values, float)
        ok = np.isfinite(acc) & np.isfinite(cov)
        if ok.sum() < 2:
            continue
        order = np.argsort(cov[ok])
        out.append(float(np.interp(fraction, cov[ok][order], acc[ok][order])))
    return float(np.mean(out)) if out else float("nan")


def readable_verdicts(verdicts: Sequence[stats.Verdict], names: Mapping[str, str], *,
                      pixel_baseline: str = "pixel_baseline") -> list[stats.Verdict]:
    """The verdicts with method ids in their reasons replaced by display names.

    :func:`aerialseg.stats.judge` explains an untestable verdict with method ids
    (``"ens_pb_fcn_fcn_mfb_svm: not converged"``); a reader should see names.
    """
    ids = sorted((str(k) for k in names), key=len, reverse=True)
    pattern = re.compile(r"(?<![\w])(" + "|".join(re.escape(i) for i in ids) + r")(?![\w])") \
        if ids else None
    out = []
    for v in verdicts:
        text = v.reason.replace(f"the per-pixel baseline {pixel_baseline}",
                                "the per-pixel baseline")
        if pattern is not None:
            text = pattern.sub(lambda m: names[m.group(1)], text)
        out.append(dataclasses.replace(v, reason=text))
    return out


def and_join(items: Sequence[str]) -> str:
    """``"A, B and C"`` ("" for none)."""
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else (
        ", ".join(items[:-1]) + " and " + items[-1] if items else "")


def seconds_per_scene(ds: xr.Dataset, method: str, scenes: Sequence[Any]) -> float:
    """Inference seconds per scene of ``method`` (mean over seeds), from its throughput.

    ``scenes`` are the scenes it was evaluated on (their pixel count). A prediction reused
    from the run store reports the time of its first inference.
    """
    if method not in {str(m) for m in ds["method"].values} or not scenes:
        return float("nan")
    pps = np.asarray(ds["pixels_per_second"].sel({"method": method}).values, float)
    pps = pps[np.isfinite(pps) & (pps > 0)]
    if not pps.size:
        return float("nan")
    pixels = sum(int(np.asarray(s.labels).size) for s in scenes)
    return float(np.mean(pixels / pps) / len(scenes))
