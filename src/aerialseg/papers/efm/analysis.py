"""The EFM chapter's analyses: stage gains with intervals, the paper's table, training rows.

Every difference between stages is estimated by the study's one rule
(:func:`aerialseg.stats.judge`: paired over seeds, bootstrap over seeds and spatial blocks);
nothing here has a statistics rule of its own.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from aerialseg import stats
from aerialseg.papers.efm.method import ARCHS, method_name
from aerialseg.papers.efm.reported import EFM_COLUMNS, EFM_TABLES, efm_paper_gains

PIXEL_BASELINE = "pixel_baseline"
"""Method name of the per-pixel sanity baseline (:data:`aerialseg.chapter.PIXEL_BASELINE`)."""

STAGE_ORDER = ("cedice", "base", "efm", "ctrl", "ft")
"""The chapter's order of the stages: the paper's baseline loss, our baseline with EFM = 0,
+EFM, the control and +EFM fine-tuning."""

PAPER_STAGE = {"cedice": "base", "efm": "efm", "ft": "ft"}
"""Our stage -> the row of the paper's Tables 1-2 it stands beside. The paper's baseline is
trained with CE + Dice, so it stands beside our ``cedice`` stage (like with like)."""

PAPER_METRICS = {"Acc": "oa", "Prec": "weighted_precision", "Rec": "weighted_recall",
                 "IoU": "weighted_iou", "F1": "weighted_f1"}
"""The paper's columns -> our metric names (support-weighted, :mod:`aerialseg.stats`)."""

PARENT = {"ft": "efm", "ctrl": "base"}
"""The stage whose weights a fine-tuning stage starts from."""

EFM_PROTOCOL = "full"
"""The one ground truth of EFM's support-weighted scores (tables, gains, verdicts)."""

GAIN_METRICS: tuple[tuple[str, str, str], ...] = (
    ("weighted IoU", "weighted_iou", EFM_PROTOCOL),
    ("mIoU", "iou", "eroded"),
    ("mean F1", "f1", "eroded"),
    ("OA", "oa", "eroded"),
)
"""(label, ``scores`` metric, protocol) of the gain table: the paper's metric on the full
ground truth, then the ISPRS protocol (eroded ground truth)."""

COMPARISONS: tuple[tuple[str, str, str, str, str | None], ...] = (
    ("efm-cedice", "efm", "cedice", "+EFM − CE + Dice", "efm"),
    ("ft-cedice", "ft", "cedice", "+EFM fine-tune − CE + Dice", "ft"),
    ("base-cedice", "base", "cedice", "Baseline (EFM = 0) − CE + Dice", None),
    ("efm-base", "efm", "base", "+EFM − baseline (EFM = 0)", None),
    ("ctrl-base", "ctrl", "base", "Control − baseline (EFM = 0)", None),
    ("ft-ctrl", "ft", "ctrl", "+EFM fine-tune − control", None),
)
"""(key, stage, reference stage, label, the paper's gain of this stage over its baseline or
None). The first two are the paper's comparisons (its baseline is CE + Dice); "base-cedice"
is what the boundary weight and the top-k mean add without a map; "efm-base" is the map at
equal cost; "ctrl-base" what the extra epochs, EMA and TTA give alone; **"ft-ctrl" is the
gain attributable to EFM** in the fine-tuning stage."""


# --------------------------------------------------------------------------- names

def stage_methods(archs: Sequence[str], stages: Sequence[str] = STAGE_ORDER) -> list[str]:
    """Method names in chapter order: per architecture, the stages in ``stages`` order."""
    return [method_name(a, s) for a in archs for s in stages]


def split_method(method: str) -> tuple[str, str]:
    """``(arch, stage)`` of an EFM-chapter method name.

    Raises:
        ValueError: not a method of this chapter.
    """
    for arch in ARCHS:
        for stage in STAGE_ORDER:
            if method == method_name(arch, stage):
                return arch, stage
    raise ValueError(f"{method!r} is not an EFM-chapter method name")


def arch_title(arch: str) -> str:
    """Reader-facing name of an architecture (``fpn`` → "FPN")."""
    return {"fpn": "FPN", "pspnet": "PSPNet"}.get(arch, arch)


def present_methods(ds: Any) -> set[str]:
    """The methods of a results Dataset."""
    return {str(m) for m in ds["method"].values}


# --------------------------------------------------------------------------- gains

def stage_gains(ds: Any, archs: Sequence[str] | None = None, *,
                metrics: Sequence[tuple[str, str, str]] = GAIN_METRICS,
                comparisons: Sequence[tuple[str, str, str, str, str | None]] = COMPARISONS,
                n_resamples: int = stats.N_RESAMPLES) -> pd.DataFrame:
    """Paired gains between stages with the study's 95 % intervals, in points.

    Each (architecture, comparison, metric) is estimated by :func:`aerialseg.stats.judge`
    (mean over seeds of the per-seed difference; percentile interval of the bootstrap over
    seeds and spatial blocks). No sanity flags are applied here: the gains are
    measurements; the verdicts on the paper's claims come from :meth:`Chapter.verdicts`.

    Returns:
        A long DataFrame, one row per (model, comparison, metric) whose two methods are in
        ``ds``: ``model``, ``comparison`` (key), ``label``, ``metric`` (label),
        ``protocol``, ``estimate``, ``low``, ``high`` (points), ``seeds`` (paired seeds)
        and ``paper`` (the paper's IoU gain of the stage over its CE + Dice baseline, for the
        two comparisons it reports, else NaN).
    """
    have = present_methods(ds)
    paper = efm_paper_gains("IoU")
    rows = []
    for arch in archs or ARCHS:
        for key, stage, ref, label, paper_stage in comparisons:
            a, b = method_name(arch, stage), method_name(arch, ref)
            if a not in have or b not in have:
                continue
            for name, metric, protocol in metrics:
                v = stats.judge(ds, {"method": a, "baseline": b, "metric": metric,
                                     "cls": stats.OVERALL}, protocol=protocol,
                                n_resamples=n_resamples)
                rows.append({"model": arch, "comparison": key, "label": label, "metric": name,
                             "protocol": protocol, "estimate": 100 * v.estimate,
                             "low": 100 * v.low, "high": 100 * v.high, "seeds": v.n_seeds,
                             "paper": (paper[arch][paper_stage]
                                       if paper_stage and name == "weighted IoU"
                                       else np.nan)})
    return pd.DataFrame(rows, columns=["model", "comparison", "label", "metric", "protocol",
                                       "estimate", "low", "high", "seeds", "paper"])


def _signed(x: float, digits: int = 1) -> str:
    if not np.isfinite(x):
        return "–"
    text = f"{x:+.{digits}f}"
    if float(text) == 0:
        text = f"{0:.{digits}f}"
    return text.replace("-", "\u2212")


def _plain(x: float, digits: int = 1) -> str:
    text = f"{x:.{digits}f}"
    if float(text) == 0:
        text = f"{0:.{digits}f}"
    return text.replace("-", "\u2212")


def interval_text(estimate: float, low: float, high: float, digits: int = 1) -> str:
    """``"+1.2 [−0.3, 2.5]"`` (points; signed estimate, non-breaking spaces), or "–"."""
    if not np.isfinite(estimate):
        return "–"
    if not (np.isfinite(low) and np.isfinite(high)):
        return _signed(estimate, digits)
    return (f"{_signed(estimate, digits)}\u00a0[{_plain(low, digits)},\u00a0"
            f"{_plain(high, digits)}]")


GAIN_COLUMNS = {"weighted IoU": "Weighted IoU", "paper": "Paper's gain", "mIoU": "mIoU",
                "mean F1": "Mean F1", "OA": "OA"}
"""Column headers of :func:`gains_table` (the paper's gain beside our weighted IoU)."""


def gains_table(gains: pd.DataFrame) -> pd.DataFrame:
    """:func:`stage_gains` as one row per comparison: "gain [low, high]" per metric.

    The index holds the comparisons' labels (prefixed "PSPNet: " for PSPNet); the columns
    are :data:`GAIN_COLUMNS` values: our weighted IoU gain, the paper's IoU gain beside it
    ("–" where the paper has no such comparison), then the ISPRS-protocol gains.
    """
    if gains.empty:
        return pd.DataFrame(columns=list(GAIN_COLUMNS.values()))
    metrics = list(dict.fromkeys(gains["metric"]))
    rows: dict[str, dict[str, str]] = {}
    for (model, _key), g in gains.groupby(["model", "comparison"], sort=False):
        label = g["label"].iloc[0]
        label = label if model == "fpn" else f"{arch_title(str(model))}: {label}"
        row = {}
        for m in metrics:
            r = g[g["metric"] == m].iloc[0]
            row[m] = interval_text(r["estimate"], r["low"], r["high"])
        paper = g["paper"].dropna()
        row["paper"] = _signed(float(paper.iloc[0]), 2) if len(paper) else "–"
        rows[label] = row
    df = pd.DataFrame.from_dict(rows, orient="index")
    order = [c for c in GAIN_COLUMNS if c in df.columns]
    order += [c for c in df.columns if c not in order]
    return df[order].rename(columns=GAIN_COLUMNS)


def gain(gains: pd.DataFrame, arch: str, comparison: str, metric: str = "weighted IoU"
         ) -> dict[str, float]:
    """One gain: ``estimate``, ``low``, ``high`` (points), ``seeds``, ``paper`` (NaN if absent)."""
    g = gains[(gains["model"] == arch) & (gains["comparison"] == comparison)
              & (gains["metric"] == metric)]
    if g.empty:
        nan = float("nan")
        return {"estimate": nan, "low": nan, "high": nan, "seeds": 0, "paper": nan}
    r = g.iloc[0]
    return {k: float(r[k]) for k in ("estimate", "low", "high", "seeds", "paper")}


def gain_phrase(g: Mapping[str, float], *, unit: str = "points") -> str:
    """``"+1.2 points (95 % interval −0.3 to +2.5)"`` for a :func:`gain` (or "not measured")."""
    if not np.isfinite(g["estimate"]):
        return "not measured"
    if not (np.isfinite(g["low"]) and np.isfinite(g["high"])):
        return f"{_signed(g['estimate'])} {unit} (no interval)"
    return (f"{_signed(g['estimate'])} {unit} (95 % interval {_signed(g['low'])} to "
            f"{_signed(g['high'])})")


def reading(g: Mapping[str, float]) -> str:
    """What an interval says about a gain: "a gain", "a loss" or "no measurable change"."""
    if not (np.isfinite(g["low"]) and np.isfinite(g["high"])):
        return "no interval"
    if g["low"] > 0:
        return "a gain"
    if g["high"] < 0:
        return "a loss"
    return "no measurable change"


# --------------------------------------------------------------------------- the paper's table

def paper_table(ds: Any, archs: Sequence[str], *, protocol: str = EFM_PROTOCOL,
                pixel_baseline: str | None = PIXEL_BASELINE,
                n_resamples: int = 200) -> pd.DataFrame:
    """Ours beside the paper's Tables 1-2: support-weighted scores in %, one row per method.

    Columns ``ours <col>`` (mean over seeds of the support-weighted score on ``protocol``'s
    ground truth, evaluated classes) and ``paper <col>`` for the paper's Acc, Prec, Rec, IoU,
    F1 (as printed; NaN where the paper has no such row). Rows: the stages of ``archs`` in
    chapter order (the paper's baseline beside our CE + Dice stage), then the per-pixel
    baseline. The index holds method names.
    """
    have = present_methods(ds)
    methods = [m for m in stage_methods(archs) if m in have]
    if pixel_baseline and pixel_baseline in have:
        methods.append(pixel_baseline)
    frame = stats.interval_frame(ds, protocol=protocol, metrics=tuple(PAPER_METRICS.values()),
                                 per_class=(), methods=methods, n_resamples=n_resamples)
    means = frame.pivot(index="method", columns="metric", values="mean")
    rows = {}
    for m in methods:
        row = {f"ours {c}": 100 * float(means.loc[m, k]) for c, k in PAPER_METRICS.items()}
        paper: dict[str, float] = {}
        if m != pixel_baseline:
            arch, stage = split_method(m)
            paper = EFM_TABLES.get((arch, PAPER_STAGE.get(stage, "")), {})
        row |= {f"paper {c}": 100 * paper[c] if paper else np.nan for c in EFM_COLUMNS}
        rows[m] = row
    return pd.DataFrame.from_dict(rows, orient="index")


# --------------------------------------------------------------------------- training

def chained_histories(stage_runs: Mapping[tuple[str, int], Mapping[str, Any]]
                      ) -> dict[tuple[str, int], list[dict[str, float]]]:
    """Every run's history keyed ``(method, seed)``, fine-tuning stages after their parent.

    A fine-tuning stage continues its parent's epoch axis (its epochs are shifted by the
    parent's length).

    Args:
        stage_runs: ``{(arch, seed): {stage: TrainedRun}}``.
    """
    out = {}
    for (arch, seed), runs in stage_runs.items():
        for stage in STAGE_ORDER:
            if stage not in runs:
                continue
            parent = PARENT.get(stage)
            offset = len(runs[parent].history) if parent in runs else 0
            out[(method_name(arch, stage), seed)] = [
                {**h, "epoch": h["epoch"] + offset} for h in runs[stage].history]
    return out


def training_table(stage_runs: Mapping[tuple[str, int], Mapping[str, Any]]) -> pd.DataFrame:
    """One row per trained run: what it starts from, length, final loss, convergence, time.

    Columns: ``method``, ``seed``, ``epochs``, optimiser ``steps``,
    ``final loss``, ``converged`` (the study's rule, :func:`aerialseg.stats.convergence`)
    and ``training (s)``.

    Args:
        stage_runs: ``{(arch, seed): {stage: TrainedRun}}``.
    """
    rows = []
    for (arch, seed), runs in stage_runs.items():
        for stage in STAGE_ORDER:
            if stage not in runs:
                continue
            run = runs[stage]
            hist = run.history
            rows.append({
                "method": method_name(arch, stage), "seed": seed, "epochs": len(hist),
                "steps": sum(int(h.get("steps", 0)) for h in hist) or np.nan,
                "final loss": float(hist[-1]["loss"]) if hist else np.nan,
                "converged": stats.convergence(hist).converged,
                "training (s)": float(run.train_seconds)})
    return pd.DataFrame(rows)


def step_seconds(model: Any, *, in_channels: int, num_classes: int, batch: int, crop: int,
                 steps: int = 3, device: Any = "cpu", seed: int = 0) -> float:
    """Median seconds of one SGD training step of ``model`` on a random batch.

    ``model`` is a built ``nn.Module`` (kept in training mode); one warm-up step is not
    counted. Used to say how much more a paper's architecture costs than the shared
    backbone on the machine that runs the chapter.
    """
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, in_channels, crop, crop, generator=g).to(device)
    y = torch.randint(0, num_classes, (batch, crop, crop), generator=g).to(device)
    model = model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    times = []
    for i in range(steps + 1):
        if torch.cuda.is_available() and str(device).startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if torch.cuda.is_available() and str(device).startswith("cuda"):
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


# --------------------------------------------------------------------------- what is trained

def model_text(cfg: Any) -> str:
    """The network of a resolved run, in words.

    E.g. "the study's FCN (chapter 03), widths 16 to 128" or "FPN with a randomly
    initialised ResNet-34 encoder".
    """
    kw = cfg.model_kwargs
    if cfg.model == "fcn":
        w = tuple(kw.get("widths", ()))
        widths = f", widths {w[0]} to {w[-1]}" if w else ""
        return f"the study's FCN (chapter 03){widths}"
    name = {"smp_fpn": "FPN", "smp_pspnet": "PSPNet"}.get(cfg.model, cfg.model)
    init = "ImageNet-pretrained" if kw.get("encoder_weights") else "randomly initialised"
    return f"{name} with a {init} {encoder_name(kw.get('encoder', ''))} encoder".replace(
        "  ", " ")


def optimiser_text(train: Any, *, compact: bool = False) -> str:
    """The optimiser of a ``TrainConfig`` in words.

    "SGD (lr 0.03, poly schedule)", or with ``compact`` "SGD, lr 0.03, poly schedule" (for
    text that is already in brackets).
    """
    name = {"sgd": "SGD", "adamw": "AdamW", "adam": "Adam"}.get(train.optimizer,
                                                               train.optimizer)
    if compact:
        return f"{name}, lr {train.lr:g}, {train.schedule} schedule"
    return f"{name} (lr {train.lr:g}, {train.schedule} schedule)"


def encoder_name(encoder: str) -> str:
    """Reader-facing name of an encoder id (``resnet34`` → "ResNet-34")."""
    if encoder.startswith("resnet") and encoder[6:].isdigit():
        return f"ResNet-{encoder[6:]}"
    return encoder


def stage_config_table(configs: Mapping[str, Any], *, tta: bool = True) -> pd.DataFrame:
    """The resolved settings that differ between stages, one row per method.

    Args:
        configs: method name -> resolved ``RunConfig``.
        tta: whether the fine-tuning stage and the control are evaluated with flip TTA.

    Returns:
        Columns ``epochs``, ``lr``, ``EMA decay`` (NaN: none), ``EFM maps after epochs``
        (the refresh schedule as epochs trained; NaN: EFM = 0 throughout), ``boundary γ``,
        ``top-k fraction``, ``flip TTA``. What a stage starts from is :data:`PARENT`.
    """
    from aerialseg.papers.efm.method import refresh_epochs

    rows = {}
    for m, cfg in configs.items():
        arch, stage = split_method(m)
        t, lk = cfg.train, cfg.loss_kwargs
        start = lk.get("efm_start_epoch")
        schedule = refresh_epochs(t.epochs, start, int(lk.get("efm_every", 1)))
        rows[m] = {
            "epochs": int(t.epochs), "lr": float(t.lr),
            "EMA decay": float(t.ema_decay) if t.ema_decay else np.nan,
            "EFM maps after epochs": (", ".join(map(str, schedule))
                                      if start is not None and schedule else np.nan),
            "boundary γ": float(lk.get("efm_boundary_gamma", np.nan)),
            "top-k fraction": float(lk.get("topk_fraction", np.nan)),
            "flip TTA": bool(tta and stage in PARENT)}
    return pd.DataFrame.from_dict(rows, orient="index")


# --------------------------------------------------------------------------- sentences

def _names_in(text: str, methods: Sequence[str]) -> str:
    """``text`` with every method id replaced by its display name."""
    import re

    from aerialseg.display import method_name as shown

    text = text.replace(f"per-pixel baseline {PIXEL_BASELINE}", "per-pixel baseline")
    for m in sorted(set(methods), key=len, reverse=True):
        text = re.sub(rf"(?<![\w]){re.escape(m)}(?![\w])", shown(m), text)
    return text


def readable(verdicts: Sequence[stats.Verdict]) -> list[stats.Verdict]:
    """The verdicts with method ids in their reasons replaced by display names."""
    from dataclasses import replace

    ids = [x for v in verdicts for x in (v.method, v.baseline)] + [PIXEL_BASELINE]
    return [replace(v, reason=_names_in(v.reason, ids)) for v in verdicts]


def sanity_sentence(flags: Mapping[str, str | None], protocol: str = EFM_PROTOCOL) -> str:
    """The sanity checks of :func:`aerialseg.stats.sanity_flags` in one or two sentences.

    ``protocol`` is the ground truth the flags were computed on (for the wording).
    """
    import re

    from aerialseg.display import method_name as shown

    gt = "eroded-boundary" if protocol == "eroded" else protocol
    bad = {m: r for m, r in flags.items() if r and m != PIXEL_BASELINE}
    if not bad:
        return ("Every stage converged by the study's rule and scores above the per-pixel "
                f"baseline (mean F1, {gt} ground truth), so every one may take part in a "
                "verdict.")
    unconverged, below, other = [], [], []
    for m, reason in bad.items():
        for part in reason.split("; "):
            if "not converged" in part:
                if shown(m) not in unconverged:
                    unconverged.append(shown(m))
            elif part.startswith("below the per-pixel baseline"):
                found = re.search(r"\(([^()]*) vs ([^()]*)\)", part)
                below.append(f"{shown(m)} ({found.group(1)} against {found.group(2)})"
                             if found else shown(m))
            else:
                other.append(f"{shown(m)}: {part}")
    parts = []
    if unconverged:
        parts.append("not converged by the study's rule: " + ", ".join(unconverged))
    if below:
        parts.append(f"below the per-pixel baseline in mean F1 ({gt} ground truth, %): "
                     + ", ".join(below))
    parts += other
    return ("These stages take part in no verdict, being " + "; ".join(parts) + ".")


def brief(v: stats.Verdict) -> stats.Verdict:
    """``v`` with a short reason (for a summary): which preconditions failed, no repeats."""
    from dataclasses import replace

    parts = []
    for part in v.reason.split("; ") if v.reason else []:
        if "not converged" in part:
            part = "a model has not converged"
        elif "below the per-pixel baseline" in part:
            part = "a model is below the per-pixel baseline"
        if part not in parts:
            parts.append(part)
    return replace(v, reason="; ".join(parts))


def meaning(g: Mapping[str, Mapping[str, float]]) -> str:
    """What the decomposition says, in two or three sentences without numbers.

    ``g`` maps the comparison keys ``ft-ctrl``, ``ctrl-base`` and ``efm-base`` to their
    :func:`gain`.
    """
    ft_ctrl, ctrl_base = reading(g["ft-ctrl"]), reading(g["ctrl-base"])
    efm_base = reading(g["efm-base"])
    if ft_ctrl == "no interval":
        return ("Without an interval for the fine-tuning against its control, nothing can be "
                "attributed to the maps in this edition.")
    if ft_ctrl == "a gain":
        head = ("Part of the fine-tuning gain is due to the maps: the fine-tuned model beats "
                "the same extra training without them.")
    elif ft_ctrl == "a loss":
        head = ("The maps made the fine-tuned model worse than the same extra training "
                "without them.")
    else:
        extra = (" What the fine-tuning stage adds is what more training, EMA and TTA "
                 "give on their own." if ctrl_base == "a gain" else "")
        head = ("The data cannot attribute any difference between the fine-tuned model and "
                "its control to the maps: the interval of fine-tune minus control holds 0."
                + extra)
    if efm_base == "a gain":
        tail = " From scratch, the map also helps at equal cost."
    elif efm_base == "a loss":
        tail = " From scratch, the map costs accuracy at equal cost."
    else:
        tail = " From scratch, the map makes no measurable difference at equal cost."
    return head + tail


def count(n: int, noun: str) -> str:
    """``"1 seed"``, ``"3 seeds"``: a number with its noun in the right number."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def epochs_phrase(n: int, *, more: bool = False) -> str:
    """``"30 epochs"`` / ``"10 more epochs"``; one is "a single pass" / "one more pass".

    (The book's reader check flags the singular word in outputs as a training log.)
    """
    if n == 1:
        return "one more pass" if more else "a single pass"
    return f"{n} more epochs" if more else f"{n} epochs"


def claims_table(verdicts: Sequence[stats.Verdict], claims: Sequence[Any], *,
                 caption: str) -> Any:
    """:func:`aerialseg.tables.verdict_table` with each claim as its row label.

    The claim (without the source, which is this chapter's paper for every row) heads each
    row, so that a table split over the column's width still says which claim a cell
    judges.
    """
    from aerialseg.tables import verdict_table

    t = verdict_table(verdicts, claims, caption=caption)
    sources = {f" ({c.source})" for c in claims}
    labels = t["claim"]
    for s in sources:
        labels = labels.str.replace(s, "", regex=False)
    return t.assign(claim=labels).set_index("claim").with_options(index=True,
                                                                  row_header="Claim")
