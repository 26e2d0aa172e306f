"""Datasets by name: ``load_scenes("synthetic", "train", profile="smoke")``.

Each dataset has its own class table and bands; nothing here assumes ISPRS beyond the
entries themselves. Profiles fill the data defaults (scene counts and sizes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from aerialseg import paths
from aerialseg.data.classes import DUBAI, ISPRS, ClassTable
from aerialseg.data.scene import Scene
from aerialseg.metrics import eroded_eval_mask


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset the library can read."""

    name: str
    classes: ClassTable
    bands: tuple[str, ...]
    description: str
    loader: Callable[[Path, str, DataConfig], list[Scene]]
    candidate_roots: Callable[[DataConfig], list[Path]]


@dataclass(frozen=True)
class DataConfig:
    """Which data a run uses. Field names double as chapter parameter names.

    Attributes:
        dataset: ``synthetic`` (embedded default), ``dubai``, ``vaihingen``.
        data_root: folder of the dataset; None looks in ``$AERIALSEG_DATA/<dataset>``
            (``data/`` in the checkout) and, for real sets, ``../shared/data``.
        synthetic_train, synthetic_val, synthetic_size, synthetic_seed: generator settings.
        max_scenes: keep at most this many scenes per split (None: all).
        max_size: crop each scene to at most this many pixels per side (None: whole tiles).
        eroded_radius: disk radius of the eroded-boundary protocol.
    """

    dataset: str = "synthetic"
    data_root: str | None = None
    synthetic_train: int = 6
    synthetic_val: int = 3
    synthetic_size: int = 512
    synthetic_seed: int = 0
    max_scenes: int | None = None
    max_size: int | None = None
    eroded_radius: int = 3

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for hashing and provenance)."""
        return asdict(self)


DATA_PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "synthetic": {
        "smoke": {"synthetic_train": 2, "synthetic_val": 1, "synthetic_size": 256},
        "default": {"synthetic_train": 6, "synthetic_val": 3, "synthetic_size": 512},
        "full": {"synthetic_train": 11, "synthetic_val": 5, "synthetic_size": 1536},
    },
    "dubai": {
        "smoke": {"max_scenes": 4, "max_size": 256},
        "default": {"max_scenes": 12, "max_size": 512},
        "full": {},
    },
    "vaihingen": {
        "smoke": {"max_scenes": 2, "max_size": 512},
        "default": {"max_scenes": None, "max_size": 1024},
        "full": {},
    },
}


def data_config(dataset: str = "synthetic", profile: str = "default",
                **overrides: Any) -> DataConfig:
    """Resolve the data settings: dataclass defaults < profile < explicit (non-None) values."""
    get_spec(dataset)
    from aerialseg.config import check_profile

    check_profile(profile)
    valid = {f.name for f in fields(DataConfig)}
    unknown = set(overrides) - valid
    if unknown:
        raise ValueError(f"unknown data parameter(s) {sorted(unknown)}; valid: {sorted(valid)}")
    values = dict(DATA_PROFILES.get(dataset, {}).get(profile, {}))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return replace(DataConfig(dataset=dataset), **values)


def _synthetic_roots(cfg: DataConfig) -> list[Path]:
    base = Path(cfg.data_root) if cfg.data_root else paths.data_home() / "synthetic"
    tag = (f"{cfg.synthetic_size}px-{cfg.synthetic_train}+{cfg.synthetic_val}"
           f"-seed{cfg.synthetic_seed}")
    return [base / tag]


def _load_synthetic(root: Path, split: str, cfg: DataConfig) -> list[Scene]:
    from aerialseg.data.isprs import load_vaihingen
    from aerialseg.data.synthetic import ensure_synthetic

    ensure_synthetic(root, n_train=cfg.synthetic_train, n_val=cfg.synthetic_val,
                     size=cfg.synthetic_size, seed=cfg.synthetic_seed)
    return load_vaihingen(root, split)


def _real_roots(folder: str) -> Callable[[DataConfig], list[Path]]:
    def roots(cfg: DataConfig) -> list[Path]:
        if cfg.data_root:
            return [Path(cfg.data_root)]
        return [paths.data_home() / folder, paths.shared_data() / folder]
    return roots


def _load_vaihingen(root: Path, split: str, cfg: DataConfig) -> list[Scene]:
    from aerialseg.data.isprs import load_vaihingen

    return load_vaihingen(root, split)


def _load_dubai(root: Path, split: str, cfg: DataConfig) -> list[Scene]:
    from aerialseg.data.dubai import load_dubai

    return load_dubai(root, split)


DATASETS: dict[str, DatasetSpec] = {
    "synthetic": DatasetSpec(
        "synthetic", ISPRS, ("ir", "r", "g", "dsm", "ndsm"),
        "Embedded procedural urban scenes in the Vaihingen layout (generated on first use).",
        _load_synthetic, _synthetic_roots),
    "dubai": DatasetSpec(
        "dubai", DUBAI, ("r", "g", "b"),
        "Dubai aerial imagery (Humans in the Loop / MBRSC, CC0): RGB, 5 classes + unlabeled.",
        _load_dubai, _real_roots("dubai")),
    "vaihingen": DatasetSpec(
        "vaihingen", ISPRS, ("ir", "r", "g", "dsm", "ndsm"),
        "ISPRS Vaihingen 2D semantic labelling (IRRG + DSM + nDSM, 9 cm).",
        _load_vaihingen, _real_roots("vaihingen")),
}


def get_spec(dataset: str) -> DatasetSpec:
    """The registered dataset ``dataset``; a clear error lists the valid names."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[dataset]


def _crop(scene: Scene, max_size: int) -> Scene:
    h, w = scene.shape
    if h <= max_size and w <= max_size:
        return scene
    sl = (slice(0, min(h, max_size)), slice(0, min(w, max_size)))
    return replace(scene, bands=np.ascontiguousarray(scene.bands[(slice(None), *sl)]),
                   labels=np.ascontiguousarray(scene.labels[sl]),
                   eval_mask=None if scene.eval_mask is None else scene.eval_mask[sl])


def load_scenes(cfg: DataConfig, split: str) -> list[Scene]:
    """Load the ``split`` (``"train"`` or ``"val"``) scenes of ``cfg.dataset``.

    Every returned scene has an ``eval_mask`` (from the dataset's eroded files if present,
    otherwise computed with a disk of ``cfg.eroded_radius``).
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    spec = get_spec(cfg.dataset)
    roots = spec.candidate_roots(cfg)
    root = next((r for r in roots if r.exists()), roots[0])
    scenes = spec.loader(root, split, cfg)
    if cfg.max_scenes is not None:
        scenes = scenes[: cfg.max_scenes]
    out = []
    for s in scenes:
        if cfg.max_size is not None:
            s = _crop(s, cfg.max_size)
        if s.eval_mask is None:
            s.eval_mask = eroded_eval_mask(s.labels, cfg.eroded_radius)
        out.append(s)
    return out


@dataclass
class SplitData:
    """The train and validation scenes of one data configuration."""

    cfg: DataConfig
    train: list[Scene] = field(default_factory=list)
    val: list[Scene] = field(default_factory=list)

    @property
    def classes(self) -> ClassTable:
        """Class table of the dataset."""
        return get_spec(self.cfg.dataset).classes

    @property
    def bands(self) -> tuple[str, ...]:
        """Bands the dataset provides."""
        return get_spec(self.cfg.dataset).bands


def load_split(cfg: DataConfig) -> SplitData:
    """Load both splits."""
    return SplitData(cfg, load_scenes(cfg, "train"), load_scenes(cfg, "val"))
