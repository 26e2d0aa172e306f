"""What every chapter notebook does, in one place: set up, train or reuse, evaluate, write.

A chapter's code cells stay short: narrative and parameters in the notebook, logic here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import xarray as xr

from aerialseg.config import check_profile, coerce, resolve_run
from aerialseg.data.registry import SplitData, data_config, get_spec, load_split
from aerialseg.evaluation import Evaluation, evaluate_model
from aerialseg.results import (
    Record,
    build_results,
    provenance,
    results_path,
    write_results,
)
from aerialseg.runs import TrainedRun, get_or_train
from aerialseg.utils import hardware_description, resolve_device, set_seed

SEEDS_BY_PROFILE = {"smoke": (0,), "default": (0, 1), "full": (0, 1, 2)}
"""Seeds a chapter runs when its ``seeds`` parameter is None."""


@dataclass
class Chapter:
    """The state of one chapter run."""

    name: str
    profile: str
    dataset: str
    device: torch.device
    seeds: tuple[int, ...]
    data: SplitData
    params: dict[str, Any]
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

    def train(self, method: str, seed: int, *, callbacks: Sequence[Any] = (),
              **overrides: Any) -> TrainedRun:
        """Train ``method`` with ``seed`` (or reuse it from the run store)."""
        cfg = resolve_run(method, profile=self.profile, in_bands=self.data.bands,
                          data=self.data.cfg.to_dict(), seed=seed, **overrides)
        with self.phase("train"):
            run = get_or_train(cfg, self.data, device=self.device, callbacks=callbacks)
        self.runs[(method, seed)] = run
        return run

    def evaluate(self, run: TrainedRun, *, label: str | None = None,
                 **kwargs: Any) -> Evaluation:
        """Evaluate ``run`` on the validation scenes and keep a record for the results file."""
        set_seed(run.cfg.train.seed)  # MC-dropout masks are reproducible per seed
        with self.phase("evaluate"):
            ev = evaluate_model(run.model, run.stats, self.data.val, device=self.device,
                                **kwargs)
        self.records.append(Record(label or run.cfg.method, run.cfg.train.seed, ev,
                                   train_seconds=run.train_seconds,
                                   num_parameters=run.num_parameters))
        return ev

    def write_results(self, folder: str | Path | None = None,
                      extra_attrs: dict[str, Any] | None = None) -> xr.Dataset:
        """Write ``results/<chapter>__<dataset>__<profile>.nc`` and return the Dataset."""
        ds = build_results(self.records, chapter=self.name, profile=self.profile,
                           dataset=self.dataset, params=self.params, device=str(self.device),
                           hardware=self.hardware, wall_seconds=self.wall,
                           extra_attrs=extra_attrs)
        path = write_results(ds, results_path(self.name, self.dataset, self.profile, folder))
        print(f"results written to {path}")
        return ds

    def write_summary(self, ds: xr.Dataset, folder: str | Path | None = None) -> xr.Dataset:
        """Write a chapter-specific Dataset with the standard provenance attributes."""
        ds = ds.copy()
        ds.attrs.update(provenance(chapter=self.name, profile=self.profile,
                                   dataset=self.dataset, params=self.params,
                                   device=str(self.device), hardware=self.hardware,
                                   wall_seconds=self.wall))
        path = write_results(ds, results_path(self.name, self.dataset, self.profile, folder))
        print(f"results written to {path}")
        return ds


def start(name: str, *, profile: str = "default", device: str = "auto",
          dataset: str = "synthetic", seeds: Sequence[int] | None = None,
          data_root: str | None = None, params: dict[str, Any] | None = None,
          **data_overrides: Any) -> Chapter:
    """Resolve profile, device and data for chapter ``name`` and print what will run."""
    check_profile(profile)
    get_spec(dataset)
    dev = resolve_device(device)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    seeds = tuple(coerce(seeds)) if seeds is not None else SEEDS_BY_PROFILE[profile]
    cfg = data_config(dataset, profile, data_root=data_root, **data_overrides)
    t0 = time.perf_counter()
    data = load_split(cfg)
    ch = Chapter(name, profile, dataset, dev, seeds, data, dict(params or {}))
    ch.wall["data"] = time.perf_counter() - t0
    print(f"chapter {name} | profile {profile} | dataset {dataset} | seeds {list(seeds)}")
    print(f"device: {dev} ({ch.hardware}), torch {torch.__version__}")
    sizes = sorted({s.shape for s in data.train + data.val})
    print(f"data: {len(data.train)} train / {len(data.val)} validation scenes, sizes {sizes}, "
          f"bands {data.bands}")
    print("data settings:", json.dumps(cfg.to_dict()))
    return ch
