"""The CSE-UNet chapter's analyses: the ablation beside Tables 1 and 3, cost, summaries.

Settings and parameter counts, the ablation with its intervals beside Table 1, per-class
scores beside Table 3, training and cost tables, and the summary sentences.

Every interval comes from :mod:`aerialseg.stats` (the study's one rule: paired over seeds,
bootstrap over seeds and spatial blocks); nothing here decides whether a difference is
real. Parameters are counted on the meta device (no weights are built).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from aerialseg import display, stats
from aerialseg.config import RunConfig
from aerialseg.models.registry import build_model
from aerialseg.papers.cse_unet.method import ABLATION, METHODS, non_overlapping_crops
from aerialseg.papers.cse_unet.reported import ABLATION_ROWS, TABLE1
from aerialseg.tables import NA, NBSP, Table, number, show_table

REFERENCE = "unet_plain"
"""The row every ablation change is measured against (Table 1's "UNet")."""

PAPER_WIDTH = "Paper width (M)"
"""Column of :func:`parameter_table`: parameters at the paper's width (``full``)."""


# --------------------------------------------------------------------------- settings

LOSS_NAMES = {"ce": "CE", "ce_mfb": "balanced CE"}
"""Short loss names of :func:`settings_table` (balanced: median-frequency balanced)."""


def training_steps(cfg: RunConfig, train_shapes: Iterable[Sequence[int]] = ()) -> int:
    """Optimiser steps of a resolved run.

    ``samples_per_epoch=None`` with random crops is the paper's epoch: every non-overlapping
    crop of the training scenes (``train_shapes``) once (:func:`~aerialseg.papers.cse_unet.
    method.paper_epoch`).
    """
    t = cfg.train
    n = t.samples_per_epoch
    if n is None:
        n = non_overlapping_crops(list(train_shapes), t.crop_size)
    return t.epochs * math.ceil(n / t.batch_size)


def _encoder_name(encoder: str) -> str:
    """``resnet34`` -> ``ResNet-34``; other encoders as they are."""
    if encoder.startswith("resnet") and encoder[6:].isdigit():
        return f"ResNet-{encoder[6:]}"
    return encoder


def settings_table(configs: Mapping[str, RunConfig],
                   train_shapes: Iterable[Sequence[int]] = ()) -> pd.DataFrame:
    """What each model of this run is and how it is trained, one row per method id.

    Columns: ``network`` (the U-Nets' base width, or the smp encoder), ``loss`` ("CE" or
    "balanced CE"), ``SGD lr / momentum``, ``crops`` (batch x side and how they are drawn)
    and ``steps`` (optimiser steps). Short cells, so the table fits the column; the caption
    says what the abbreviations mean.
    """
    shapes = [tuple(s) for s in train_shapes]
    rows = {}
    for method, cfg in configs.items():
        t, kw = cfg.train, cfg.model_kwargs
        if cfg.model == "smp_unet":
            net = f"{_encoder_name(str(kw.get('encoder', '?')))} encoder"
            if kw.get("encoder_weights"):
                net += f", {kw['encoder_weights']}"
        else:
            net = f"width {kw['base_width']}"
            if kw.get("dropout2d"):
                net += f", dropout {kw['dropout2d']:g}"
        crops = f"{t.batch_size} × {t.crop_size} px, "
        if t.sampler == "grid":
            crops += "grid"
        else:
            crops += "random"
            if t.scale_range:
                crops += f", scaled {t.scale_range[0]:g}–{t.scale_range[1]:g}×"
        optimiser = f"{t.lr:g} / {t.momentum:g}"
        if t.optimizer != "sgd":
            optimiser = f"{t.optimizer}: {optimiser}"
        rows[method] = {"network": net, "loss": LOSS_NAMES.get(cfg.loss, cfg.loss),
                        "SGD lr / momentum": optimiser, "crops": crops,
                        "steps": training_steps(cfg, shapes)}
    return pd.DataFrame.from_dict(rows, orient="index")


# --------------------------------------------------------------------------- parameters

def count_parameters(method: str, *, profile: str, in_channels: int, num_classes: int,
                     **overrides: Any) -> int:
    """Trainable parameters of ``method`` as resolved for ``profile``, without weights.

    The model is built on the meta device, so the full-width networks (tens of millions of
    parameters) cost neither memory nor initialisation time.
    """
    spec = METHODS[method]
    overrides = {k: v for k, v in overrides.items()
                 if v is not None and k in spec.parameter_names}
    cfg = spec.resolve(profile=profile, in_bands=tuple(f"b{i}" for i in range(in_channels)),
                       data={}, **overrides)
    with torch.device("meta"):
        model = build_model(cfg.model, in_channels=in_channels, num_classes=num_classes,
                            **cfg.model_kwargs)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def parameter_table(methods: Sequence[str], *, profile: str, in_channels: int,
                    num_classes: int, paper_io: tuple[int, int] | None = (3, 5),
                    **overrides: Any) -> pd.DataFrame:
    """Parameters (millions) at the profile's width and at the paper's (``full``) width.

    Columns ``"This run (M)"`` (the profile's width with ``overrides``) and
    :data:`PAPER_WIDTH`, both for this data's bands and classes; with
    ``paper_io=(bands, classes)`` a third column counts the full-width model for that
    input/output (3 bands, 5 classes: the paper's RGB/IRRG input and five classes).
    """
    rows = {}
    for m in methods:
        row = {
            "This run (M)": count_parameters(m, profile=profile, in_channels=in_channels,
                                             num_classes=num_classes, **overrides) / 1e6,
            PAPER_WIDTH: count_parameters(m, profile="full", in_channels=in_channels,
                                          num_classes=num_classes) / 1e6,
        }
        if paper_io is not None:
            row[f"Paper width, {paper_io[0]} bands, {paper_io[1]} classes (M)"] = (
                count_parameters(m, profile="full", in_channels=paper_io[0],
                                 num_classes=paper_io[1]) / 1e6)
        rows[m] = row
    return pd.DataFrame.from_dict(rows, orient="index")


# --------------------------------------------------------------------------- ablation

_ABLATION_METRICS = {"iou": ("mIoU", "vaihingen_miou"), "f1": ("mean F1", "vaihingen_mf1")}


def ablation_frame(ds: xr.Dataset, *, protocol: str = "eroded",
                   reference: str = REFERENCE) -> pd.DataFrame:
    """Our Table 1 rows beside the paper's Vaihingen columns, in points.

    Rows: the ablation methods present in ``ds``, in Table 1 order. For ``m`` in ``iou``
    (mIoU) and ``f1`` (mean F1): ``m`` (mean over seeds) with ``m_low``/``m_high`` (its 95 %
    interval over seeds and blocks, :func:`aerialseg.stats.method_interval`), ``d_m`` the
    change against ``reference`` with ``d_m_low``/``d_m_high`` (the paired interval of
    :func:`aerialseg.stats.judge`; NaN on the reference row), ``paper_m`` and
    ``paper_d_m`` (the paper's Vaihingen value and change); and ``n_seeds``.

    Raises:
        ValueError: ``reference`` is not in the results.
    """
    present = [m for m in ABLATION if m in {str(x) for x in ds["method"].values}]
    if reference not in present:
        raise ValueError(f"reference {reference!r} is not among the methods in the results "
                         f"({[str(m) for m in ds['method'].values]})")
    rows = {}
    for m in present:
        row: dict[str, float] = {}
        for metric, (_, paper_key) in _ABLATION_METRICS.items():
            est = stats.method_interval(ds, m, metric=metric, protocol=protocol)
            row |= {metric: 100 * est.mean, f"{metric}_low": 100 * est.low,
                    f"{metric}_high": 100 * est.high}
            if m == reference:
                row |= {f"d_{metric}": 0.0, f"d_{metric}_low": np.nan,
                        f"d_{metric}_high": np.nan}
            else:
                v = stats.judge(ds, {"method": m, "baseline": reference, "metric": metric,
                                     "cls": stats.OVERALL}, protocol=protocol)
                row |= {f"d_{metric}": 100 * v.estimate, f"d_{metric}_low": 100 * v.low,
                        f"d_{metric}_high": 100 * v.high}
            paper = TABLE1[ABLATION_ROWS[m]][paper_key]
            row |= {f"paper_{metric}": paper,
                    f"paper_d_{metric}": paper - TABLE1[ABLATION_ROWS[reference]][paper_key]}
        row["n_seeds"] = float(est.n_seeds)
        rows[m] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.attrs["reference"] = reference
    return out


def signed(x: float, digits: int = 1) -> str:
    """``+4.4`` / ``−1.2`` (a real minus sign); "–" when undefined."""
    if not np.isfinite(x):
        return NA
    text = number(x, digits)
    if text.startswith("\u2212"):
        return text
    if float(x) < 0:  # rounds to zero from below: keep the side it lies on
        return "\u2212" + text
    return text if float(x) == 0 else "+" + text


def interval_text(mean: float, low: float, high: float, *, sign: bool = False,
                  digits: int = 1) -> str:
    """``"61.3 [59.0, 63.1]"`` (points), signed with ``sign``; the mean alone without bounds."""
    f = (lambda v: signed(v, digits)) if sign else (lambda v: number(v, digits))
    if not np.isfinite(mean):
        return NA
    if not (np.isfinite(low) and np.isfinite(high)):
        return f(mean)
    return f"{f(mean)}{NBSP}[{f(low)},{NBSP}{f(high)}]"


def ablation_table(frame: pd.DataFrame, *, caption: str) -> Table:
    """The book's table of :func:`ablation_frame`: ours with intervals beside the paper's."""
    out: dict[str, dict[str, str]] = {}
    groups = []
    for metric, (label, _) in _ABLATION_METRICS.items():
        title = display.column_name(label)
        cols = [f"{title}, ours", f"Δ {label}, ours", f"{title}, paper", f"Δ {label}, paper"]
        groups.append((f"{title} (%)", cols))
        for m, r in frame.iterrows():
            cells = out.setdefault(str(m), {})
            cells[cols[0]] = interval_text(r[metric], r[f"{metric}_low"], r[f"{metric}_high"])
            ref = m == frame.attrs.get("reference", REFERENCE)
            cells[cols[1]] = NA if ref else interval_text(
                r[f"d_{metric}"], r[f"d_{metric}_low"], r[f"d_{metric}_high"], sign=True)
            cells[cols[2]] = number(r[f"paper_{metric}"], 2)
            cells[cols[3]] = NA if ref else signed(r[f"paper_d_{metric}"], 2)
    df = pd.DataFrame.from_dict(out, orient="index")
    return show_table(
        df, caption=caption, rows="method", columns=None, split=groups,
        na="the reference row (the change is measured against it)",
        notes=("Ours: mean over seeds [95 % interval over seeds and spatial blocks]; Δ: "
               "change against the U-Net [95 % interval of the paired bootstrap]. Paper: "
               "Vaihingen, as printed (two decimals).",))


# --------------------------------------------------------------------------- per class

def evaluated_classes(ds: xr.Dataset) -> list[str]:
    """The evaluated classes of a results Dataset, in its order."""
    ev = ds["evaluated"].values if "evaluated" in ds.coords else [True] * ds.sizes["class"]
    return [str(c) for c, e in zip(ds["class"].values, ev, strict=True)
            if c != stats.OVERALL and e]


def _mean(ds: xr.Dataset, method: str, metric: str, cls: str, protocol: str) -> float:
    v = 100 * ds["scores"].sel({"method": method, "protocol": protocol, "class": cls,
                                "metric": metric}).values.astype(float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def iou_f1_table(ds: xr.Dataset, methods: Sequence[str], *, protocol: str = "eroded"
                 ) -> pd.DataFrame:
    """Per-class "IoU / F1" (seed means, %, one decimal) plus mIoU, mean F1 and OA.

    The layout of the paper's Table 3; rows are method ids, columns the evaluated classes
    then ``mIoU``, ``mean F1``, ``OA``. A class without a score shows "–".
    """
    rows = {}
    for m in methods:
        cells = {}
        for c in evaluated_classes(ds):
            iou, f1 = _mean(ds, m, "iou", c, protocol), _mean(ds, m, "f1", c, protocol)
            cells[c] = (f"{number(iou)}{NBSP}/{NBSP}{number(f1)}" if np.isfinite(iou)
                        else NA)
        for key, label in (("iou", "mIoU"), ("f1", "mean F1"), ("oa", "OA")):
            cells[label] = number(_mean(ds, m, key, stats.OVERALL, protocol))
        rows[m] = cells
    return pd.DataFrame.from_dict(rows, orient="index")


# --------------------------------------------------------------------------- training, cost

def training_table(runs: Mapping[tuple[str, int], Any]) -> pd.DataFrame:
    """One row per trained run: epochs, steps, final loss, converged, seconds, reused.

    ``runs`` maps ``(method, seed)`` to a :class:`aerialseg.runs.TrainedRun`; convergence
    is the study's rule (:func:`aerialseg.stats.convergence`).
    """
    rows = []
    for (method, seed), run in runs.items():
        hist = run.history
        rows.append({"method": method, "seed": seed, "epochs": len(hist),
                     "steps": sum(int(h.get("steps", 0)) for h in hist) or None,
                     "final loss": float(hist[-1]["loss"]) if hist else float("nan"),
                     "converged": stats.converged(hist),
                     "training (s)": float(run.train_seconds), "reused": bool(run.reused)})
    return pd.DataFrame(rows)


def cost_table(ds: xr.Dataset, params: pd.DataFrame, *, reference: str = REFERENCE
               ) -> pd.DataFrame:
    """Parameters, training time and inference throughput per method (seed means).

    ``params`` is :func:`parameter_table` for the same methods (its first two columns are
    kept). Training time is ``train_seconds`` (a run reused from the run store reports its
    original training); throughput is ``pixels_per_second`` over the validation scenes.
    Ratios are against ``reference`` when it is present.
    """
    present = {str(m) for m in ds["method"].values}
    methods = [str(m) for m in params.index if m in present]  # the parameter table's order
    df = params.loc[methods, list(params.columns[:2])].copy()
    df["Training (s)"] = [float(ds["train_seconds"].sel({"method": m}).mean()) for m in methods]
    df["Inference (Mpx/s)"] = [float(ds["pixels_per_second"].sel({"method": m}).mean()) / 1e6
                               for m in methods]
    if reference in methods:
        df["Training, × U-Net"] = df["Training (s)"] / df.loc[reference, "Training (s)"]
        df["Inference, × U-Net"] = (df["Inference (Mpx/s)"]
                                    / df.loc[reference, "Inference (Mpx/s)"])
    return df


# --------------------------------------------------------------------------- summary

def _names(methods: Iterable[str]) -> dict[str, str]:
    return display.method_names(methods)


def flagged_text(flags: Mapping[str, str | None]) -> str:
    """A sentence on the sanity flags: which models take part in no verdict, or none."""
    bad = {m: r for m, r in flags.items() if r}
    if not bad:
        return ("Every model converged and scored above the per-pixel baseline, so every "
                "model may take part in a verdict.")
    names = _names(bad)
    parts = []
    for m, reason in bad.items():
        why = []
        if "not converged" in reason:
            why.append("has not converged")
        if "below the per-pixel baseline" in reason:
            why.append("is below the per-pixel baseline")
        parts.append(f"{names[m]} ({' and '.join(why) or reason})")
    return ("These models take part in no verdict: " + "; ".join(parts) + ".")


def _reason_parts(reason: str, names: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """An untestable reason split into per-model clauses and the other reasons."""
    issues: dict[str, list[str]] = {}
    other: list[str] = []
    current = None
    for part in (p.strip() for p in reason.split(";") if p.strip()):
        head, sep, rest = part.partition(": ")
        if sep and (head in names or " " not in head):  # "<method id>: <its flags>"
            current, part = head, rest
        if "resamples undefined" in part:
            continue
        if "not converged" in part or "below the per-pixel baseline" in part:
            found = issues.setdefault(current or "", [])
            for key, text in (("not converged", "has not converged"),
                              ("below the per-pixel baseline",
                               "is below the per-pixel baseline")):
                if key in part and text not in found:
                    found.append(text)
            continue
        current = None
        other.append(part)
    clauses = [f"{names.get(m, m)} {' and '.join(i)}".strip() for m, i in issues.items()]
    return clauses, other


def short_reason(reason: str, names: Mapping[str, str]) -> str:
    """An untestable verdict's reason in a reader's words: display names, no repetition.

    The study's reasons name the methods by id and repeat each model's sanity flags
    (``"cse_unet: not converged (seed 0); below the per-pixel baseline pixel_baseline (6.5
    vs 59.8); 1 paired seed (the rule needs 3)"``); this keeps one clause per model ("CSE-UNet
    has not converged and is below the per-pixel baseline") and the other reasons, and drops
    the bootstrap's notes on undefined resamples.
    """
    clauses, other = _reason_parts(reason, names)
    return "; ".join(clauses + other)


def sentence(v: stats.Verdict, names: Mapping[str, str]) -> str:
    """:func:`aerialseg.stats.sentence` with an untestable reason in a reader's words."""
    if v.verdict == "untestable" and v.reason:
        v = replace(v, reason=short_reason(v.reason, names))
    return stats.sentence(v, names=names)


def readable(verdicts: Sequence[stats.Verdict], names: Mapping[str, str]
             ) -> list[stats.Verdict]:
    """The verdicts with their untestable reasons in a reader's words.

    For :func:`aerialseg.tables.verdict_table` (see :func:`short_reason`); estimates,
    intervals and verdicts are unchanged.
    """
    return [replace(v, reason=short_reason(v.reason, names)) if v.verdict == "untestable"
            and v.reason else v for v in verdicts]


def claim_sentence(v: stats.Verdict, names: Mapping[str, str],
                   paper_delta: float | None = None) -> str:
    """One summary sentence per claim: the change with its interval, the verdict, the paper's.

    An untestable verdict gets no reason here (:func:`meaning` and :func:`flagged_text`
    say why once for all claims).
    """
    paper = ("" if paper_delta is None else
             f" The paper reports {signed(paper_delta, 2)} points on Vaihingen.")
    if v.verdict != "untestable":
        return stats.sentence(v, names=names) + paper
    a, b = names.get(v.method, v.method), names.get(v.baseline, v.baseline)
    what = stats.metric_label(v.metric, v.cls)
    if not all(np.isfinite([v.estimate, v.low, v.high])):
        return f"{a} against {b} on {what}: untestable." + paper
    seeds = f"{v.n_seeds} seed{'s' if v.n_seeds != 1 else ''}"
    return (f"{a} changes {what} against {b} by {signed(100 * v.estimate)} points (95 % "
            f"interval {signed(100 * v.low)} to {signed(100 * v.high)}, {seeds}): "
            "untestable." + paper)


def meaning(verdicts: Sequence[stats.Verdict], names: Mapping[str, str] | None = None
            ) -> str:
    """What the ablation verdicts (mIoU claims) mean together, in one or two sentences."""
    words = [v.verdict for v in verdicts]
    if not words:
        return "No claim of the paper was judged."
    if all(w == "untestable" for w in words):
        needs: list[str] = []
        other: list[str] = []
        for v in verdicts:
            clauses, rest = _reason_parts(v.reason, names or {})
            if clauses and "models that converge and beat the per-pixel baseline" not in needs:
                needs.append("models that converge and beat the per-pixel baseline")
            for r in rest:
                if "paired seed" in r:
                    if f"at least {stats.MIN_SEEDS} seeds" not in needs:
                        needs.insert(0, f"at least {stats.MIN_SEEDS} seeds")
                elif r not in other:
                    other.append(r)
        why = (f"the statistics rule needs {' and '.join(needs)}" if needs else
               "the statistics rule's preconditions fail")
        if other:
            why += f" ({'; '.join(other)})"
        return (f"This run cannot judge the ablation: {why}. The `default` profile is built to "
                "meet these conditions.")
    if all(w == "supported" for w in words):
        return ("Under one shared training at small width, each addition raises mIoU beyond "
                "what seeds and validation blocks vary by, as the paper's Table 1 says; the "
                "sizes are not comparable with the paper's (other data, width and training).")
    if all(w == "contradicted" for w in words):
        return ("Under this training each addition lowers mIoU beyond what seeds and "
                "validation blocks vary by: the opposite of the paper's Table 1 at this "
                "scale; it says nothing about the paper's full-width networks and recipe.")
    counts = {w: words.count(w) for w in stats.VERDICTS if w in words}
    listing = ", ".join(f"{n} {w}" for w, n in counts.items())
    return (f"The ablation claims come out {listing}: where an interval holds zero, the change "
            "is within what seeds and validation blocks vary by, and this run neither "
            "confirms nor refutes the paper's gain there; the `full` profile on the real data "
            "is the test of the paper's own numbers.")
