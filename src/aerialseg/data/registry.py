"""Datasets by name: ``load_split(data_config("vaihingen", "smoke"))``.

Each dataset has its own class table and bands; nothing here assumes ISPRS beyond the
entries themselves. Profiles fill the data defaults (scene counts and sizes). Real datasets
come with named splits (``split_name``); every split separates the tiles trained on from the
tiles evaluated on, and the library never selects a model on the evaluation tiles (it trains
for a fixed number of epochs and evaluates the final weights).
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
    splits: tuple[str, ...] = ()
    """Named splits (``split_name`` values); the first is the default. Empty: one fixed
    split."""
    bands_for: Callable[[DataConfig], tuple[str, ...]] | None = None
    """Bands for a configuration when they depend on it (Potsdam's ``potsdam_bands``)."""

    def bands_of(self, cfg: DataConfig) -> tuple[str, ...]:
        """The bands scenes of ``cfg`` carry."""
        return self.bands_for(cfg) if self.bands_for else self.bands


@dataclass(frozen=True)
class DataConfig:
    """Which data a run uses. Field names double as chapter parameter names.

    Attributes:
        dataset: ``synthetic`` (embedded default), ``dubai``, ``vaihingen``, ``potsdam``.
        data_root: folder of the dataset; None looks in ``$AERIALSEG_DATA/<dataset>``
            (``data/`` in the checkout) and, for real sets, ``../shared/data``.
        synthetic_train, synthetic_val, synthetic_size, synthetic_seed: generator settings.
        max_scenes: keep at most this many scenes per split (None: all).
        max_size: crop each scene to at most this many pixels per side (None: whole tiles).
        eroded_radius: disk radius of the eroded-boundary protocol.
        split_name: named split of a real ISPRS dataset (Vaihingen: ``kampffmeyer``, the
            default, or ``cse_unet``, the same areas; Potsdam: ``cse_unet``, the default, or
            ``geoseg``); None takes the default. Not used by the other datasets.
        snap_labels: map label colours outside the palette to the nearest palette colour
            instead of failing (needed for resampled label files).
        potsdam_bands: Potsdam bands, a preset (``irrg``: IR, R, G, DSM, nDSM, the default;
            ``rgb``; ``rgbir``) or names joined by ``+`` (``"r+g+b"``).
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
    split_name: str | None = None
    snap_labels: bool = False
    potsdam_bands: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for hashing and provenance).

        Fields added after the first release are left out while they hold their defaults,
        so the run-store hashes of earlier runs stay valid.
        """
        d = asdict(self)
        for k in _LATER_FIELDS:
            if d[k] is None or d[k] is False:
                del d[k]
        return d


_LATER_FIELDS = ("split_name", "snap_labels", "potsdam_bands")


DATA_PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    # default: 30 validation scenes (7.9 Mpx, about 160 cars) so that per-class F1 intervals
    # are a few points wide; evaluation is cheap, training (6 scenes, 1.6 Mpx) is the budget
    "synthetic": {
        "smoke": {"synthetic_train": 2, "synthetic_val": 1, "synthetic_size": 256},
        "default": {"synthetic_train": 6, "synthetic_val": 30, "synthetic_size": 512},
        "gpu": {"synthetic_train": 11, "synthetic_val": 8, "synthetic_size": 1024},
        "full": {"synthetic_train": 11, "synthetic_val": 5, "synthetic_size": 1536},
    },
    "dubai": {
        "smoke": {"max_scenes": 4, "max_size": 256},
        "default": {"max_scenes": 12, "max_size": 512},
        "full": {},
    },
    # smoke: as small as the synthetic smoke scenes, so chapters keep their smoke budgets
    "vaihingen": {
        "smoke": {"max_scenes": 2, "max_size": 256},
        "default": {"max_scenes": None, "max_size": 1024},
        "full": {},
    },
    # Potsdam tiles are 6000 x 6000 px; whole tiles (full) take about 1 GB of memory each
    "potsdam": {
        "smoke": {"max_scenes": 2, "max_size": 256},
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
    spec = get_spec(dataset)
    if spec.splits:
        values["split_name"] = _check_split_name(spec, values.get("split_name"))
    elif values.get("split_name") is not None:
        raise ValueError(f"dataset {dataset!r} has one fixed split; split_name applies to "
                         f"{sorted(n for n, s in DATASETS.items() if s.splits)}")
    if dataset == "potsdam":
        from aerialseg.data.isprs import POTSDAM_BAND_PRESETS, parse_potsdam_bands

        bands = values.get("potsdam_bands") or "irrg"
        names = parse_potsdam_bands(bands)  # fails early on a bad value
        preset = isinstance(bands, str) and bands.lower() in POTSDAM_BAND_PRESETS
        values["potsdam_bands"] = bands.lower() if preset else "+".join(names)
    elif values.get("potsdam_bands") is not None:
        raise ValueError("potsdam_bands applies to dataset 'potsdam' only; the bands of "
                         f"{dataset!r} are {spec.bands}")
    if isinstance(values.get("snap_labels"), str):  # from a command line or environment
        values["snap_labels"] = values["snap_labels"].strip().lower() in ("1", "true", "yes")
    if "snap_labels" in values:
        values["snap_labels"] = bool(values["snap_labels"])
    return replace(DataConfig(dataset=dataset), **values)


def _check_split_name(spec: DatasetSpec, name: str | None) -> str:
    name = spec.splits[0] if name is None else str(name)
    if name not in spec.splits:
        raise ValueError(f"unknown split_name {name!r} for dataset {spec.name!r}; choose one "
                         f"of {list(spec.splits)} (the first is the default)")
    return name


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

    return load_vaihingen(root, split, split_name=cfg.split_name or "kampffmeyer",
                          snap_labels=cfg.snap_labels, max_size=cfg.max_size,
                          max_scenes=cfg.max_scenes)


def _load_potsdam(root: Path, split: str, cfg: DataConfig) -> list[Scene]:
    from aerialseg.data.isprs import load_potsdam

    return load_potsdam(root, split, split_name=cfg.split_name or "cse_unet",
                        bands=cfg.potsdam_bands, snap_labels=cfg.snap_labels,
                        max_size=cfg.max_size, max_scenes=cfg.max_scenes)


def _potsdam_bands(cfg: DataConfig) -> tuple[str, ...]:
    from aerialseg.data.isprs import parse_potsdam_bands

    return parse_potsdam_bands(cfg.potsdam_bands)


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
        _load_vaihingen, _real_roots("vaihingen"), splits=("kampffmeyer", "cse_unet")),
    "potsdam": DatasetSpec(
        "potsdam", ISPRS, ("ir", "r", "g", "dsm", "ndsm"),
        "ISPRS Potsdam 2D semantic labelling (RGB/IRRG/RGBIR + DSM + nDSM, 5 cm).",
        _load_potsdam, _real_roots("potsdam"), splits=("cse_unet", "geoseg"),
        bands_for=_potsdam_bands),
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


def dataset_root(cfg: DataConfig) -> Path:
    """The folder ``cfg`` reads from: the first candidate root that exists, else the first."""
    roots = get_spec(cfg.dataset).candidate_roots(cfg)
    return next((r for r in roots if r.exists()), roots[0])


def load_scenes(cfg: DataConfig, split: str) -> list[Scene]:
    """Load the ``split`` (``"train"`` or ``"val"``) scenes of ``cfg.dataset``.

    Every returned scene has an ``eval_mask`` (from the dataset's eroded files if present,
    otherwise computed with a disk of ``cfg.eroded_radius``).
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    spec = get_spec(cfg.dataset)
    scenes = spec.loader(dataset_root(cfg), split, cfg)
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
        """Bands the scenes carry (for Potsdam they follow ``potsdam_bands``)."""
        scenes = self.train + self.val
        if scenes:
            return tuple(scenes[0].band_names)
        return get_spec(self.cfg.dataset).bands_of(self.cfg)


def load_split(cfg: DataConfig) -> SplitData:
    """Load both splits; a tile in both would leak evaluation data into training."""
    train, val = load_scenes(cfg, "train"), load_scenes(cfg, "val")
    both = sorted({s.name for s in train} & {s.name for s in val})
    if both:
        raise ValueError(f"{cfg.dataset}: tiles {both} are in both the train and the val split;"
                         " the splits must be disjoint")
    return SplitData(cfg, train, val)
