"""What every chapter notebook does: resolve parameters, train or reuse, evaluate, write.

A chapter passes its parameters once::

    ch = chapter.start("06_uce", profile=profile, device=device, dataset=dataset,
                       seeds=seeds, data_root=data_root, data_options=data_options,
                       retrain=retrain, overrides=dict(epochs=epochs, lr=lr, ...),
                       settings=dict(test_mc_samples=test_mc_samples))

``None`` anywhere means "the profile's value": seeds come from
:data:`aerialseg.profiles.SEEDS` (or the chapter's own, from its paper package), settings
from the chapter's :class:`~aerialseg.config.ChapterDefaults`, method parameters from each
method's profile values. Each method receives only the non-None overrides it declares.
"""

from __future__ import annotations

import ast
import hashlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import xarray as xr

from aerialseg import stats
from aerialseg.config import TRAIN_FIELDS, RunConfig
from aerialseg.data.registry import (
    DataConfig,
    SplitData,
    data_config,
    dataset_root,
    get_spec,
    load_split,
    parse_data_options,
)
from aerialseg.diagnostics import PixelBaseline, per_pixel_baseline
from aerialseg.evaluation import Evaluation, PredictionCache, evaluate_model
from aerialseg.inference import scene_predictor
from aerialseg.profiles import SEEDS
from aerialseg.registry import chapter_defaults, claims, declared, get_method
from aerialseg.results import Record, build_results, provenance, results_path, write_results
from aerialseg.runs import TrainedRun, get_or_train
from aerialseg.threads import configure_threads
from aerialseg.utils import coerce, hardware_description, resolve_device, set_seed
from aerialseg.validation import validate_chapter_params, validate_train_values

PIXEL_BASELINE = "pixel_baseline"
"""Method name of the per-pixel sanity baseline in every chapter's results."""


def resolve_settings(chapter: str, profile: str, values: Mapping[str, Any] | None
                     ) -> dict[str, Any]:
    """A chapter's own settings: its profile values, replaced by the non-None ``values``.

    Raises:
        ValueError: a setting the chapter does not declare, or one left None that has no
            profile value.
    """
    table = chapter_defaults(chapter).settings
    values = dict(values or {})
    out: dict[str, Any] = {k: v[profile] for k, v in table.items()}
    for k, v in values.items():
        if v is not None:
            out[k] = _like(coerce(v), out.get(k), k, chapter)
        elif k not in table:
            raise ValueError(f"chapter {chapter!r}: setting {k!r} is None and has no "
                             f"profile value; give it a value")
    return out


def _like(value: Any, default: Any, name: str, chapter: str) -> Any:
    """``value`` in the type of the setting's profile value (papermill passes text)."""
    if default is None or isinstance(default, str) or not isinstance(value, str):
        return value
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value
    kind = type(default)
    if kind is float and isinstance(parsed, int) and not isinstance(parsed, bool):
        parsed = float(parsed)
    if not isinstance(parsed, kind) or (kind is int and isinstance(parsed, bool)):
        raise ValueError(f"chapter {chapter!r}: setting {name} must be a {kind.__name__} "
                         f"like its default {default!r} (got {value!r})")
    return parsed


@dataclass
class Chapter:
    """The state of one chapter run.

    Attributes:
        params: every parameter as the notebook passed it (None = the profile's value),
            recorded in the results' provenance.
        overrides: method parameters (None = each method's profile value).
        settings: the chapter's own settings, resolved for the profile.
        variant: the parameters set explicitly (not None); a run with any writes its
            results to its own file, never to the profile's canonical one.
    """

    name: str
    profile: str
    dataset: str
    device: torch.device
    seeds: tuple[int, ...]
    data: SplitData
    params: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    variant: dict[str, Any] = field(default_factory=dict)
    retrain: bool = False
    threads: dict[str, Any] = field(default_factory=dict)
    wall: dict[str, float] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    runs: dict[tuple[str, int], TrainedRun] = field(default_factory=dict)

    @property
    def hardware(self) -> str:
        """The device this chapter ran on, in words."""
        return hardware_description(self.device)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a phase (train, evaluate, ...); totals go into the results' provenance."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - t0

    def edition(self) -> str:
        """One sentence for the top of a chapter's results: what produced them."""
        seeds = ", ".join(map(str, self.seeds))
        data = (f"{len(self.data.train)} training and {len(self.data.val)} validation "
                f"scenes of `{self.dataset}`")
        variant = "" if not self.variant else (
            " Parameters set explicitly: " + ", ".join(f"`{k}={v}`"
                                                      for k, v in self.variant.items()) + ".")
        return (f"These results come from the `{self.profile}` profile on {self.hardware}; "
                f"seeds {seeds}; {data}.{variant}")

    def overrides_for(self, method: str) -> dict[str, Any]:
        """The chapter's non-None method parameters that ``method`` declares."""
        return declared(method, self.overrides)

    def resolve(self, method: str, seed: int | None = None, *,
                data: dict[str, Any] | None = None,
                overrides: Mapping[str, Any] | None = None, **extra: Any) -> RunConfig:
        """The resolved run of ``method``.

        ``overrides`` (if given) replaces the chapter's method parameters for this run (a
        chapter that routes its parameters per method, e.g. EFM's stages); ``extra`` is
        added on top.
        """
        base = self.overrides_for(method) if overrides is None else declared(method, overrides)
        values = {**base, **declared(method, extra)}
        if seed is not None:
            values["seed"] = seed
        return get_method(method).resolve(
            profile=self.profile, in_bands=self.data.bands,
            data=self.data.cfg.to_dict() if data is None else data, **values)

    def train(self, method: str, seed: int, *, callbacks: Sequence[Any] = (),
              without_scene: str | None = None, overrides: Mapping[str, Any] | None = None,
              **extra: Any) -> TrainedRun:
        """Train ``method`` with ``seed``, or reuse it from the run store.

        Args:
            method: a registered method.
            seed: seed of initialisation, sampling and dropout.
            callbacks: extra training callbacks.
            without_scene: train on every training scene but this one (its name enters the
                run's data settings, so the run store keeps the model apart).
            overrides: method parameters replacing the chapter's (see :meth:`resolve`).
            extra: method parameters for this run only, on top.
        """
        data, cfg_data = self.data, self.data.cfg.to_dict()
        if without_scene is not None:
            names = [s.name for s in self.data.train]
            if without_scene not in names:
                raise ValueError(f"without_scene={without_scene!r} is not a training scene; "
                                 f"training scenes: {names}")
            data = SplitData(self.data.cfg, [s for s in self.data.train
                                             if s.name != without_scene], list(self.data.val))
            cfg_data = {**cfg_data, "heldout_train_scene": without_scene}
        cfg = self.resolve(method, seed, data=cfg_data, overrides=overrides, **extra)
        with self.phase("train"):
            run = get_or_train(cfg, data, device=self.device, callbacks=callbacks,
                               retrain=self.retrain, log=None)
        if without_scene is None:
            self.runs[(method, seed)] = run
        return run

    def evaluate(self, run: TrainedRun, *, label: str | None = None,
                 extra: dict[str, float] | Callable[[Evaluation], dict[str, float]] | None
                 = None, keep_maps: int = 1, border_mode: str = "reflect",
                 **kwargs: Any) -> Evaluation:
        """Evaluate ``run`` on the validation scenes and keep a record for the results file.

        Args:
            run: a trained run.
            label: the method name in the results (default: the run's method).
            extra: scalar values recorded beside the scores, or a function of the
                evaluation returning them (it sees every scene's maps; only the first
                ``keep_maps`` are kept afterwards).
            keep_maps: keep the maps of the first N validation scenes (for figures).
            border_mode: the patch CNN's border (``"reflect"`` or ``"omit"``).
            kwargs: passed to :func:`aerialseg.evaluation.evaluate_model`.
        """
        set_seed(run.cfg.train.seed)  # MC-dropout masks are reproducible per seed
        kwargs.setdefault("predictor", scene_predictor(run.model, border_mode))
        kwargs.setdefault("cache", self.prediction_cache(run))
        keep_all = callable(extra)
        with self.phase("evaluate"):
            ev = evaluate_model(run.model, run.stats, self.data.val, device=self.device,
                                keep_maps=len(self.data.val) if keep_all else keep_maps,
                                **kwargs)
        values = extra(ev) if callable(extra) else dict(extra or {})
        conv = stats.convergence(run.history)
        raw = stats.convergence(run.history, adjust=False)
        values |= {"converged": float(conv.converged),
                   "loss_change_last_tenth": -conv.relative_decrease,
                   "loss_change_last_tenth_raw": -raw.relative_decrease}
        if keep_all:
            for name in list(ev.maps)[keep_maps:]:
                del ev.maps[name]
        self.records.append(Record(label or run.cfg.method, run.cfg.train.seed, ev,
                                   train_seconds=run.train_seconds,
                                   num_parameters=run.num_parameters, extra=values))
        return ev

    def add_pixel_baseline(self, bands: Sequence[str] | None = None) -> PixelBaseline:
        """Fit and record the per-pixel sanity baseline (:data:`PIXEL_BASELINE`).

        A logistic regression on single pixels' band values, trained on the training split
        and scored by the same protocol as the models (:func:`aerialseg.diagnostics.
        per_pixel_baseline`). Every table shows it; a model below it takes part in no
        verdict. Deterministic, so it is recorded once (first seed).
        """
        with self.phase("baseline"):
            base = per_pixel_baseline(self.data, bands)
        self.records.append(Record(PIXEL_BASELINE, self.seeds[0], base.evaluation,
                                   extra={"converged": float(base.converged)}))
        return base

    def prediction_cache(self, run: TrainedRun) -> PredictionCache:
        """The run's predictions on this chapter's scenes, kept beside it in the run store."""
        return PredictionCache(run.path / "predictions")

    def record(self, label: str, seed: int, evaluation: Evaluation, **kwargs: Any) -> None:
        """Keep an evaluation computed elsewhere (e.g. an ensemble) for the results file."""
        self.records.append(Record(label, seed, evaluation, **kwargs))

    def training_table(self) -> pd.DataFrame:
        """One row per trained run: epochs, steps, final loss, converged, time, reused.

        ``converged`` is the study's rule (:func:`aerialseg.stats.convergence`); the time is
        the run store's record of the training, also for a run reused from the store.
        """
        rows = []
        for (method, seed), run in self.runs.items():
            hist = run.history
            conv = stats.convergence(hist)
            rows.append({"method": method, "seed": seed, "epochs": len(hist),
                         "steps": sum(int(h.get("steps", 0)) for h in hist) or None,
                         "final loss": hist[-1]["loss"] if hist else float("nan"),
                         "converged": "yes" if conv.converged else "no",
                         "training (s)": run.train_seconds,
                         "reused": "yes" if run.reused else "no"})
        return pd.DataFrame(rows)

    def verdicts(self, ds: xr.Dataset, *, protocol: str = "eroded") -> list[stats.Verdict]:
        """The verdicts on the papers' claims that this chapter tests, by the study's rule.

        A method that has not converged or is below the per-pixel baseline (mean F1, eroded
        ground truth: the one gate of the study) takes part in no verdict (see
        :func:`aerialseg.stats.sanity_flags`). A claim that names its own ground truth
        (``Claim.protocol``) is judged on it; the others on ``protocol``.
        """
        flags = stats.sanity_flags(ds, pixel_baseline=PIXEL_BASELINE)
        return [stats.judge(ds, c, protocol=protocol, flags=flags)
                for c in claims() if c.chapter == self.name]

    def write_results(self, extra_attrs: dict[str, Any] | None = None,
                      folder: str | Path | None = None) -> xr.Dataset:
        """Write the chapter's results file and return its Dataset."""
        ds = build_results(self.records, chapter=self.name, profile=self.profile,
                           dataset=self.dataset, params=self.params, device=str(self.device),
                           hardware=self.hardware, wall_seconds=self.wall,
                           extra_attrs=extra_attrs)
        write_results(ds, self.results_file(folder))
        return ds

    def write_summary(self, ds: xr.Dataset, folder: str | Path | None = None) -> xr.Dataset:
        """Write a chapter-specific Dataset with the standard provenance attributes."""
        ds = ds.copy()
        ds.attrs.update(provenance(chapter=self.name, profile=self.profile,
                                   dataset=self.dataset, params=self.params,
                                   device=str(self.device), hardware=self.hardware,
                                   wall_seconds=self.wall))
        write_results(ds, self.results_file(folder))
        return ds

    def results_file(self, folder: str | Path | None = None) -> Path:
        """Where this run's results go (a variant never replaces the canonical file)."""
        return results_path(self.name, self.dataset, self.profile, folder=folder,
                            overrides=self.variant or None)


def start(name: str, *, profile: str = "default", device: str = "auto",
          dataset: str = "synthetic", seeds: Sequence[int] | int | None = None,
          data_root: str | None = None, data_options: Mapping[str, Any] | None = None,
          retrain: bool = False, overrides: Mapping[str, Any] | None = None,
          settings: Mapping[str, Any] | None = None) -> Chapter:
    """Resolve profile, device, data and parameters for chapter ``name``.

    Args:
        name: the chapter (``"03_fcn_mfb"``).
        profile: ``smoke``, ``default``, ``gpu`` or ``full``.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        dataset: a registered dataset.
        seeds: the seeds (None: the profile's).
        data_root: the dataset's folder (None: the default locations).
        data_options: dataset options (see :func:`aerialseg.data.registry.data_config`).
        retrain: train every run again even if the run store holds it.
        overrides: method parameters (None: each method's profile value).
        settings: the chapter's own settings (None: the profile's value).
    """
    # every value is checked before anything is loaded or trained
    checked = validate_chapter_params(profile=profile, device=device, seeds=seeds)
    threads = configure_threads()  # the run's thread policy, recorded in provenance
    profile = checked["profile"]
    get_spec(dataset)
    dev = resolve_device(device)
    overrides = {k: coerce(v) for k, v in (overrides or {}).items()}
    validate_train_values({k: v for k, v in overrides.items()
                           if v is not None and k in TRAIN_FIELDS})
    resolved = resolve_settings(name, profile, settings)
    if seeds is None:
        chosen = chapter_defaults(name).seeds.get(profile, SEEDS[profile])
    else:
        chosen = tuple(checked["seeds"])
    options = parse_data_options(data_options)
    cfg = data_config(dataset, profile, options, data_root=data_root)
    t0 = time.perf_counter()
    data = load_split(cfg)
    params = {"profile": profile, "device": device, "dataset": dataset, "seeds": seeds,
              "data_root": data_root, "data_options": data_options or None,
              "retrain": retrain,
              **dict(overrides), **dict(settings or {})}
    variant = {k: v for k, v in {**overrides, **dict(settings or {})}.items() if v is not None}
    if seeds is not None:
        variant["seeds"] = list(chosen)
    if options:
        variant["data_options"] = options
    if data_root is not None and not _default_location(cfg):
        # another copy or subset of the dataset: its results must not replace the canonical
        # file; the id names the folder without printing a machine path
        folder = str(dataset_root(cfg).resolve())
        variant["data_folder"] = hashlib.sha256(folder.encode()).hexdigest()[:8]
    ch = Chapter(name, profile, dataset, dev, tuple(chosen), data, params,
                 overrides=dict(overrides), settings=resolved, variant=variant,
                 retrain=bool(retrain), threads=threads)
    ch.wall["data"] = time.perf_counter() - t0
    return ch


def _default_location(cfg: DataConfig) -> bool:
    """True when ``cfg.data_root`` is where the dataset is found without one."""
    here = dataset_root(cfg).resolve()
    spec = get_spec(cfg.dataset)
    return any(r.resolve() == here for r in spec.candidate_roots(replace(cfg, data_root=None)))
