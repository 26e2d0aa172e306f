"""Datasets by name: ``load_split(data_config("vaihingen", "smoke"))``.

Each dataset has its own class table and bands; nothing here assumes ISPRS beyond the
entries themselves. Profiles fill the data defaults (scene counts and sizes). Real datasets
come with named splits (``split_name``) or validation tiles (``val_tiles``); every split
separates the tiles trained on from the tiles evaluated on, and the library never selects a
model on the evaluation tiles (it trains for a fixed number of epochs and evaluates the
final weights).

Every data option is reachable through one parameter, ``data_options`` (a mapping, or the
JSON/YAML text of one as papermill's ``-p`` passes it), validated by :func:`data_config`
before anything is loaded: see :data:`DATA_OPTIONS`.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aerialseg import paths
from aerialseg.data.classes import DUBAI, IGNORE_INDEX, ISPRS, LOVEDA, ClassTable
from aerialseg.data.errors import DataOptionError
from aerialseg.data.masks import eroded_eval_mask
from aerialseg.data.scene import Scene
from aerialseg.utils import file_digest

if TYPE_CHECKING:
    import pandas as pd


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
    """Bands for a configuration when they depend on it (``potsdam_bands``, ...)."""
    files: Callable[[Path, str, DataConfig], list[Path]] | None = None
    """The files the loader reads for a split, listed without reading them."""
    options: tuple[str, ...] = ()
    """Dataset-specific data options that apply (besides the common ones)."""

    def bands_of(self, cfg: DataConfig) -> tuple[str, ...]:
        """The bands scenes of ``cfg`` carry."""
        return self.bands_for(cfg) if self.bands_for else self.bands


@dataclass(frozen=True)
class DataConfig:
    """Which data a run uses.

    Field names double as chapter parameter names and as the keys of ``data_options``
    (:data:`DATA_OPTIONS`).

    Attributes:
        dataset: ``synthetic`` (embedded default), ``dubai``, ``vaihingen``, ``potsdam``,
            ``loveda``.
        data_root: folder of the dataset; None looks in ``$AERIALSEG_DATA/<dataset>``
            (``data/`` in the checkout) and, for real sets, ``../shared/data``.
        synthetic_train, synthetic_val, synthetic_size, synthetic_seed: generator settings.
        max_scenes: keep at most this many scenes per split (None: all).
        max_size: crop each scene to at most this many pixels per side (None: whole tiles).
        eroded_radius: disk radius of the eroded-boundary protocol.
        split_name: named split of a real ISPRS dataset (Vaihingen: ``kampffmeyer``, the
            default, ``cse_unet`` (same areas) or ``mmseg``; Potsdam: ``cse_unet``, the
            default, ``geoseg`` or ``mmseg``); None takes the default.
        snap_labels: snap label colours near the palette (resampled label files; see
            :mod:`aerialseg.data.classes`) instead of failing.
        potsdam_bands: Potsdam bands, a preset (``irrg``: IR, R, G, DSM, nDSM, the default;
            ``rgb``; ``rgbir``) or names joined by ``+`` (``"r+g+b"``).
        vaihingen_bands: Vaihingen bands: None (all five: ir, r, g, dsm, ndsm), ``irrg``
            (ir, r, g: no DSM/nDSM files needed) or names joined by ``+``.
        val_tiles: validation tiles (Vaihingen areas such as ``(11, 15)``, Potsdam tiles such
            as ``("2_12",)``, Dubai tile numbers); the other tiles of the split are trained
            on. Dubai resolves it to its default split, ``(2, 3)``.
        layout: file layout of Vaihingen/Potsdam: None (the official archives) or
            ``"mmseg"`` (an mmsegmentation-converted copy; detected automatically).
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
    vaihingen_bands: str | None = None
    val_tiles: tuple[int | str, ...] | None = None
    layout: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (for hashing and provenance).

        The run store versions its keys with ``aerialseg.runs.STORE_VERSION``; a field added
        here changes every key once, which is what that version is for.
        """
        d = asdict(self)
        if d["val_tiles"] is not None:
            d["val_tiles"] = list(d["val_tiles"])
        return d


DATA_PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    # default: 30 validation scenes (7.9 Mpx, about 160 cars) so that per-class F1 intervals
    # are a few points wide; evaluation is cheap, training (6 scenes, 1.6 Mpx) is the budget
    "synthetic": {
        "smoke": {"synthetic_train": 2, "synthetic_val": 1, "synthetic_size": 256},
        "default": {"synthetic_train": 6, "synthetic_val": 30, "synthetic_size": 512},
        "gpu": {"synthetic_train": 11, "synthetic_val": 8, "synthetic_size": 1024},
        "full": {"synthetic_train": 11, "synthetic_val": 5, "synthetic_size": 1536},
    },
    # default: every part of every training tile, cropped to 512 px (36 train parts,
    # 9.4 Mpx; 18 validation parts of Tiles 2 and 3, 4.7 Mpx): see data/README.md
    "dubai": {
        "smoke": {"max_scenes": 4, "max_size": 256},
        "default": {"max_scenes": None, "max_size": 512},
        "gpu": {},
        "full": {},
    },
    # smoke: as small as the synthetic smoke scenes, so chapters keep their smoke budgets
    "vaihingen": {
        "smoke": {"max_scenes": 2, "max_size": 256},
        "default": {"max_scenes": None, "max_size": 1024},
        "gpu": {"max_scenes": None, "max_size": 2048},
        "full": {},
    },
    # Potsdam tiles are 6000 x 6000 px; whole tiles (full) take about 1 GB of memory each
    "potsdam": {
        "smoke": {"max_scenes": 2, "max_size": 256},
        "default": {"max_scenes": None, "max_size": 1024},
        "gpu": {"max_scenes": None, "max_size": 2048},
        "full": {},
    },
    # 2522 train / 1669 val scenes of 1024 x 1024 px; full needs about 90 GB of memory
    "loveda": {
        "smoke": {"max_scenes": 2, "max_size": 256},
        "default": {"max_scenes": 18, "max_size": 512},
        "gpu": {"max_scenes": 32},
        "full": {},
    },
}


# --------------------------------------------------------------------------- data options

DATA_OPTIONS: dict[str, str] = {
    "data_root": "folder of the dataset (str)",
    "split_name": "named split (str; vaihingen: kampffmeyer, cse_unet, mmseg; potsdam: "
                  "cse_unet, geoseg, mmseg)",
    "val_tiles": "validation tiles, the rest of the split is trained on (list, or text "
                 "'11,15'; vaihingen: areas 1..38; potsdam: tiles such as '2_12'; dubai: "
                 "tiles 1..8)",
    "potsdam_bands": "potsdam only: irrg (default), rgb, rgbir or names joined by '+' "
                     "(r+g+b)",
    "vaihingen_bands": "vaihingen only: all (default: ir, r, g, dsm, ndsm), irrg (ir, r, g; "
                       "no DSM/nDSM files needed) or names joined by '+'",
    "layout": "vaihingen/potsdam: 'official' (the archives), 'mmseg' (an mmsegmentation-"
              "converted copy) or 'auto' (default: detected)",
    "snap_labels": "snap label colours near the palette (bool; colour-coded labels only)",
    "max_scenes": "at most this many scenes per split (int >= 1, or None: all)",
    "max_size": "crop scenes to at most this many pixels per side (int >= 8, or None)",
    "eroded_radius": "disk radius of the eroded-boundary protocol (int >= 0)",
    "synthetic_train": "synthetic: training scenes (int >= 1)",
    "synthetic_val": "synthetic: validation scenes (int >= 1)",
    "synthetic_size": "synthetic: scene size in px (int >= 32)",
    "synthetic_seed": "synthetic: generator seed (int)",
}
"""Every key ``data_options`` accepts (the :class:`DataConfig` fields but ``dataset``),
with what it takes."""

_DATASET_OPTIONS = ("split_name", "val_tiles", "potsdam_bands", "vaihingen_bands", "layout")


def parse_data_options(value: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """The ``data_options`` parameter as a dict, its keys checked (values: :func:`data_config`).

    Args:
        value: a mapping; or its text as JSON (``'{"potsdam_bands": "r+g+b"}'``), YAML
            (``'{potsdam_bands: r+g+b}'``) or a Python literal; None or ``""``: no options.

    Raises:
        DataOptionError: the text does not parse to a mapping, or a key is unknown (the
            message lists the valid keys).
    """
    if value is None:
        return {}
    if isinstance(value, str):
        text = value.strip()
        if text in ("", "None", "null", "none", "{}"):
            return {}
        parsed: Any = None
        for parse in (json.loads, _yaml_load, ast.literal_eval):
            try:
                parsed = parse(text)
            except Exception:  # noqa: S112 - try the next syntax
                continue
            if isinstance(parsed, Mapping):
                break
        if not isinstance(parsed, Mapping):
            raise DataOptionError(
                f"data_options={value!r} is not a mapping: pass a dict, or its JSON text such "
                "as '{\"potsdam_bands\": \"r+g+b\", \"val_tiles\": [\"2_12\"]}'. Keys: "
                + ", ".join(DATA_OPTIONS))
        value = parsed
    if not isinstance(value, Mapping):
        raise DataOptionError(f"data_options must be a mapping (dict) or its JSON text, got "
                              f"{type(value).__name__} {value!r}")
    out = {str(k): v for k, v in value.items()}
    if "dataset" in out:
        raise DataOptionError("data_options cannot choose the dataset: pass it as the "
                              "`dataset` parameter")
    unknown = sorted(set(out) - set(DATA_OPTIONS))
    if unknown:
        raise DataOptionError(f"unknown data option(s) {unknown}; valid: "
                              + "; ".join(f"{k}: {v}" for k, v in DATA_OPTIONS.items()))
    return out


def _yaml_load(text: str) -> Any:
    import yaml  # optional: comes with papermill

    return yaml.safe_load(text)


def _int_option(name: str, v: Any, minimum: int | None, allow_none: bool = True) -> int | None:
    if v is None and allow_none:
        return None
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        v = int(v)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise DataOptionError(f"data option {name}={v!r}: expected an integer"
                              + (" or None" if allow_none else "") + f" ({DATA_OPTIONS[name]})")
    if minimum is not None and v < minimum:
        raise DataOptionError(f"data option {name}={v!r}: must be >= {minimum} "
                              f"({DATA_OPTIONS[name]})")
    return int(v)


def _bool_option(name: str, v: Any) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("1", "true", "yes", "on", "0", "false",
                                                    "no", "off"):
        return v.strip().lower() in ("1", "true", "yes", "on")
    raise DataOptionError(f"data option {name}={v!r}: expected true or false")


def _str_option(name: str, v: Any) -> str:
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    if not isinstance(v, str):
        raise DataOptionError(f"data option {name}={v!r}: expected a string "
                              f"({DATA_OPTIONS[name]})")
    return v


def _tile_list(v: Any) -> list[Any]:
    if isinstance(v, str):
        text = v.strip()
        if text.startswith("["):
            try:
                v = json.loads(text)
            except ValueError:
                v = ast.literal_eval(text)
        else:
            return [t.strip() for t in text.replace(";", ",").split(",") if t.strip()]
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return [int(v)]
    if isinstance(v, (list, tuple)):
        return list(v)
    raise DataOptionError(f"data option val_tiles={v!r}: expected a list of tiles, e.g. "
                          f"[11, 15] or '2_12,3_12' ({DATA_OPTIONS['val_tiles']})")


def _val_tiles(dataset: str, v: Any) -> tuple[int | str, ...] | None:
    if v is None:
        return None
    items = _tile_list(v)
    if not items:
        raise DataOptionError("data option val_tiles is empty: name at least one tile, or "
                              "leave it out for the split's own validation tiles")
    try:
        if dataset == "vaihingen":
            from aerialseg.data.isprs import VAIHINGEN_AREAS, check_vaihingen_area

            out: list[int | str] = [check_vaihingen_area(t) for t in items]
            bad = [a for a in out if a not in VAIHINGEN_AREAS]
            if bad:
                raise ValueError(f"areas {bad} are not Vaihingen areas; the areas are "
                                 f"{list(VAIHINGEN_AREAS)}")
        elif dataset == "potsdam":
            from aerialseg.data.isprs import check_potsdam_tile

            out = [check_potsdam_tile(t) for t in items]
        else:
            from aerialseg.data.dubai import check_dubai_tile

            out = [check_dubai_tile(t) for t in items]
    except ValueError as exc:
        raise DataOptionError(f"data option val_tiles={v!r}: {exc}") from exc
    return tuple(dict.fromkeys(out))


def _check_dataset_options(dataset: str, spec: DatasetSpec, values: dict[str, Any]) -> None:
    for key in _DATASET_OPTIONS:
        if values.get(key) is not None and key not in spec.options:
            where = sorted(n for n, s in DATASETS.items() if key in s.options)
            if key == "split_name":
                raise DataOptionError(f"dataset {dataset!r} has one fixed split; split_name "
                                      f"applies to {where}")
            if key.endswith("_bands"):
                raise DataOptionError(f"{key} applies to dataset '{key[:-6]}' only; the bands "
                                      f"of {dataset!r} are {spec.bands}")
            raise DataOptionError(f"data option {key} applies to {where}, not to {dataset!r}")
    if values.get("snap_labels") and dataset == "loveda":
        raise DataOptionError("snap_labels applies to colour-coded labels (dubai, vaihingen, "
                              "potsdam); LoveDA masks hold class indices")


def data_config(dataset: str = "synthetic", profile: str = "default",
                data_options: Mapping[str, Any] | str | None = None,
                **overrides: Any) -> DataConfig:
    """Resolve and validate the data settings, before anything is loaded.

    Precedence: dataclass defaults < profile (:data:`DATA_PROFILES`) < ``data_options`` and
    explicit (non-None) keyword values. An option given both ways with different values is
    an error.

    Args:
        dataset: a registered dataset (:data:`DATASETS`).
        profile: ``smoke``, ``default``, ``full`` (or another profile the configuration
            knows).
        data_options: every data option in one parameter: a mapping or its JSON/YAML text
            (as papermill ``-p data_options '{"potsdam_bands": "r+g+b"}'`` passes it); keys
            and values as in :data:`DATA_OPTIONS`.
        **overrides: :class:`DataConfig` fields by name (None: not set).

    Returns:
        The resolved configuration: split name, bands, validation tiles and layout made
        explicit where they apply.

    Raises:
        DataOptionError: (a ``ValueError``) an unknown name, a value of the wrong type, an
            option that does not apply to the dataset, or a value outside the valid ones;
            the message names the option and what it takes.
    """
    spec = get_spec(dataset)
    from aerialseg.profiles import check_profile

    check_profile(profile)
    valid = {f.name for f in fields(DataConfig)}
    unknown = set(overrides) - valid
    if unknown:
        raise DataOptionError(f"unknown data parameter(s) {sorted(unknown)}; valid: "
                              f"{sorted(valid)}")
    opts = parse_data_options(data_options)
    explicit = {k: v for k, v in overrides.items() if v is not None}
    for k in sorted(set(opts) & set(explicit)):
        if opts[k] != explicit[k]:
            raise DataOptionError(f"data option {k} is given twice: {explicit[k]!r} as a "
                                  f"parameter and {opts[k]!r} in data_options; give it once")
    user = {**opts, **explicit}
    user = {k: v for k, v in user.items() if v is not None}
    values = dict(DATA_PROFILES.get(dataset, {}).get(profile, {}))
    values.update(user)
    values["max_scenes"] = _int_option("max_scenes", values.get("max_scenes"), 1)
    values["max_size"] = _int_option("max_size", values.get("max_size"), 8)
    for name, minimum in (("eroded_radius", 0), ("synthetic_train", 1), ("synthetic_val", 1),
                          ("synthetic_size", 32), ("synthetic_seed", None)):
        if name in values:
            values[name] = _int_option(name, values[name], minimum, allow_none=False)
    if "data_root" in values:
        values["data_root"] = _str_option("data_root", values["data_root"])
    if "snap_labels" in values:
        values["snap_labels"] = _bool_option("snap_labels", values["snap_labels"])
    _check_dataset_options(dataset, spec, values)
    if spec.splits:
        values["split_name"] = _check_split_name(spec, values.get("split_name"))
    if "val_tiles" in spec.options:
        default = _DEFAULT_VAL_TILES.get(dataset)
        values["val_tiles"] = _val_tiles(dataset, values.get("val_tiles", default))
    if "layout" in spec.options:
        values["layout"] = _resolve_layout(dataset, values)
    if dataset == "potsdam":
        values["potsdam_bands"] = _resolve_potsdam_bands(values, "potsdam_bands" in user)
    if dataset == "vaihingen":
        values["vaihingen_bands"] = _resolve_vaihingen_bands(values,
                                                             "vaihingen_bands" in user)
    return replace(DataConfig(dataset=dataset), **values)


_DEFAULT_VAL_TILES: dict[str, tuple[int, ...]] = {"dubai": (2, 3)}


def _check_split_name(spec: DatasetSpec, name: Any) -> str:
    name = spec.splits[0] if name is None else name
    if not isinstance(name, str) or name not in spec.splits:
        raise DataOptionError(f"unknown split_name {name!r} for dataset {spec.name!r}; choose "
                              f"one of {list(spec.splits)} (the first is the default)")
    return name


def _resolve_layout(dataset: str, values: dict[str, Any]) -> str | None:
    layout = values.get("layout")
    if layout is not None and layout not in ("auto", "official", "mmseg"):
        raise DataOptionError(f"data option layout={layout!r}: choose 'official' (the "
                              "archives' layout), 'mmseg' (an mmsegmentation-converted copy: "
                              "img_dir/, ann_dir/) or 'auto' (detect)")
    if layout == "official":
        return None
    if layout == "mmseg":
        return "mmseg"
    from aerialseg.data.isprs import present_tiles
    from aerialseg.data.mmseg import is_mmseg_layout

    root = dataset_root(DataConfig(dataset=dataset, data_root=values.get("data_root")))
    if is_mmseg_layout(root) and not present_tiles(dataset, root):
        return "mmseg"
    return None


def _resolve_potsdam_bands(values: dict[str, Any], explicit: bool) -> str:
    from aerialseg.data.isprs import POTSDAM_BAND_PRESETS, parse_potsdam_bands
    from aerialseg.data.mmseg import MMSEG_BANDS

    mmseg = values.get("layout") == "mmseg"
    bands = values.get("potsdam_bands") if explicit else ("r+g+b" if mmseg else "irrg")
    if not isinstance(bands, (str, list, tuple)):
        raise DataOptionError(f"data option potsdam_bands={bands!r}: expected text such as "
                              "'r+g+b' or a list of band names")
    try:
        names = parse_potsdam_bands(bands)
    except ValueError as exc:
        raise DataOptionError(str(exc)) from exc
    if mmseg and not set(names) <= set(MMSEG_BANDS["potsdam"]):
        raise DataOptionError(f"potsdam_bands={bands!r}: an mmsegmentation-converted Potsdam "
                              "copy holds R-G-B clips only (no IR, no heights); choose from "
                              "r, g, b, e.g. 'r+g+b'")
    preset = isinstance(bands, str) and bands.lower() in POTSDAM_BAND_PRESETS
    return bands.lower() if preset else "+".join(names)


def _resolve_vaihingen_bands(values: dict[str, Any], explicit: bool) -> str | None:
    from aerialseg.data.isprs import VAIHINGEN_BANDS, parse_vaihingen_bands
    from aerialseg.data.mmseg import MMSEG_BANDS

    mmseg = values.get("layout") == "mmseg"
    bands = values.get("vaihingen_bands") if explicit else None
    if bands is not None and not isinstance(bands, (str, list, tuple)):
        raise DataOptionError(f"data option vaihingen_bands={bands!r}: expected text such "
                              "as 'irrg' or a list of band names")
    try:
        names = parse_vaihingen_bands(bands)
    except ValueError as exc:
        raise DataOptionError(str(exc)) from exc
    if mmseg:
        if explicit and not set(names) <= set(MMSEG_BANDS["vaihingen"]):
            raise DataOptionError(f"vaihingen_bands={bands!r}: an mmsegmentation-converted "
                                  "Vaihingen copy holds IR-R-G clips only (no DSM/nDSM); "
                                  "choose 'irrg' or names from ir, r, g")
        names = names if explicit else MMSEG_BANDS["vaihingen"]
    if names == VAIHINGEN_BANDS:
        return None  # the default: left out of the run-store hash
    return "irrg" if names == ("ir", "r", "g") else "+".join(names)


# ------------------------------------------------------------------------------ readers

def _synthetic_roots(cfg: DataConfig) -> list[Path]:
    base = Path(cfg.data_root) if cfg.data_root else paths.data_home() / "synthetic"
    if cfg.data_root and base.is_dir():
        # a real dataset's folder given without naming its dataset (the chapters' default is
        # "synthetic"): never generate a synthetic set inside the user's data
        foreign = sorted(p.name for p in base.iterdir() if not p.name.startswith(".")
                         and not (p / "manifest.json").is_file())
        if foreign:
            raise ValueError(
                f"data_root {base} holds files that are not synthetic sets ("
                + ", ".join(repr(n) for n in foreign[:3]) + (", ..." if len(foreign) > 3
                                                             else "")
                + ") but the dataset is 'synthetic' (the default). To use the real data "
                "there, name its dataset (papermill: -p dataset dubai|vaihingen|potsdam|"
                "loveda; CLI: --dataset); to generate the synthetic set, choose an empty or "
                "new folder.")
    tag = (f"{cfg.synthetic_size}px-{cfg.synthetic_train}+{cfg.synthetic_val}"
           f"-seed{cfg.synthetic_seed}")
    return [base / tag]


def _load_synthetic(root: Path, split: str, cfg: DataConfig) -> list[Scene]:
    from aerialseg.data.isprs import load_vaihingen
    from aerialseg.data.synthetic import ensure_synthetic

    ensure_synthetic(root, n_train=cfg.synthetic_train, n_val=cfg.synthetic_val,
                     size=cfg.synthetic_size, seed=cfg.synthetic_seed)
    return load_vaihingen(root, split)


def _synthetic_files(root: Path, split: str, cfg: DataConfig) -> list[Path]:
    from aerialseg.data.isprs import find_vaihingen_files, vaihingen_selection, vaihingen_used_files
    from aerialseg.data.synthetic import ensure_synthetic

    ensure_synthetic(root, n_train=cfg.synthetic_train, n_val=cfg.synthetic_val,
                     size=cfg.synthetic_size, seed=cfg.synthetic_seed)
    return [p for a in vaihingen_selection(root, split)
            for p in vaihingen_used_files(find_vaihingen_files(root, a))]


def _real_roots(folder: str) -> Callable[[DataConfig], list[Path]]:
    def roots(cfg: DataConfig) -> list[Path]:
        if cfg.data_root:
            return [Path(cfg.data_root)]
        return [paths.data_home() / folder, paths.shared_data() / folder]
    return roots


def _vaihingen_bands(cfg: DataConfig) -> tuple[str, ...]:
    from aerialseg.data.isprs import parse_vaihingen_bands

    return parse_vaihingen_bands(cfg.vaihingen_bands)


def _load_vaihingen(root: Path, split: str, cfg: DataConfig) -> list[Scene]:
    if cfg.layout == "mmseg":
        from aerialseg.data.mmseg import load_mmseg

        return load_mmseg(root, "vaihingen", split, split_name=cfg.split_name,
                          bands=_vaihingen_bands(cfg), val_tiles=cfg.val_tiles,
                          max_scenes=cfg.max_scenes, max_size=cfg.max_size)
    from aerialseg.data.isprs import load_vaihingen

    return load_vaihingen(root, split, split_name=cfg.split_name or "kampffmeyer",
                          snap_labels=cfg.snap_labels, max_size=cfg.max_size,
                          max_scenes=cfg.max_scenes, bands=_vaihingen_bands(cfg),
                          val_tiles=cfg.val_tiles)


def _vaihingen_files(root: Path, split: str, cfg: DataConfig) -> list[Path]:
    if cfg.layout == "mmseg":
        from aerialseg.data.mmseg import mmseg_files

        return mmseg_files(root, "vaihingen", split, split_name=cfg.split_name,
                           val_tiles=cfg.val_tiles, max_scenes=cfg.max_scenes,
                           max_size=cfg.max_size)
    from aerialseg.data.isprs import find_vaihingen_files, vaihingen_selection, vaihingen_used_files

    areas = vaihingen_selection(root, split, split_name=cfg.split_name or "kampffmeyer",
                                val_tiles=cfg.val_tiles, max_scenes=cfg.max_scenes)
    return [p for a in areas
            for p in vaihingen_used_files(find_vaihingen_files(root, a), _vaihingen_bands(cfg))]


def _load_potsdam(root: Path, split: str, cfg: DataConfig) -> list[Scene]:
    if cfg.layout == "mmseg":
        from aerialseg.data.mmseg import load_mmseg

        return load_mmseg(root, "potsdam", split, split_name=cfg.split_name,
                          bands=_potsdam_bands(cfg), val_tiles=cfg.val_tiles,
                          max_scenes=cfg.max_scenes, max_size=cfg.max_size)
    from aerialseg.data.isprs import load_potsdam

    return load_potsdam(root, split, split_name=cfg.split_name or "cse_unet",
                        bands=cfg.potsdam_bands, snap_labels=cfg.snap_labels,
                        max_size=cfg.max_size, max_scenes=cfg.max_scenes,
                        val_tiles=cfg.val_tiles)


def _potsdam_files(root: Path, split: str, cfg: DataConfig) -> list[Path]:
    if cfg.layout == "mmseg":
        from aerialseg.data.mmseg import mmseg_files

        return mmseg_files(root, "potsdam", split, split_name=cfg.split_name,
                           val_tiles=cfg.val_tiles, max_scenes=cfg.max_scenes,
                           max_size=cfg.max_size)
    from aerialseg.data.isprs import find_potsdam_files, potsdam_selection, potsdam_used_files

    tiles = potsdam_selection(root, split, split_name=cfg.split_name or "cse_unet",
                              bands=cfg.potsdam_bands, val_tiles=cfg.val_tiles,
                              max_scenes=cfg.max_scenes)
    return [p for t in tiles
            for p in potsdam_used_files(find_potsdam_files(root, t), _potsdam_bands(cfg))]


def _potsdam_bands(cfg: DataConfig) -> tuple[str, ...]:
    from aerialseg.data.isprs import parse_potsdam_bands

    return parse_potsdam_bands(cfg.potsdam_bands)


def _load_dubai(root: Path, split: str, cfg: DataConfig) -> list[Scene]:
    from aerialseg.data.dubai import load_dubai

    return load_dubai(root, split, val_tiles=cfg.val_tiles, snap_labels=cfg.snap_labels,
                      max_scenes=cfg.max_scenes)


def _dubai_files(root: Path, split: str, cfg: DataConfig) -> list[Path]:
    from aerialseg.data.dubai import dubai_pairs

    return [p for _, img, mask in dubai_pairs(root, split, cfg.val_tiles, cfg.max_scenes)
            for p in (img, mask)]


def _load_loveda(root: Path, split: str, cfg: DataConfig) -> list[Scene]:
    from aerialseg.data.loveda import load_loveda

    return load_loveda(root, split, max_scenes=cfg.max_scenes)


def _loveda_files(root: Path, split: str, cfg: DataConfig) -> list[Path]:
    from aerialseg.data.loveda import loveda_pairs

    return [p for _, img, mask in loveda_pairs(root, split, cfg.max_scenes)
            for p in (img, mask)]


_ISPRS_OPTIONS = ("split_name", "val_tiles", "layout")

DATASETS: dict[str, DatasetSpec] = {
    "synthetic": DatasetSpec(
        "synthetic", ISPRS, ("ir", "r", "g", "dsm", "ndsm"),
        "Embedded procedural urban scenes in the Vaihingen layout (generated on first use).",
        _load_synthetic, _synthetic_roots, files=_synthetic_files),
    "dubai": DatasetSpec(
        "dubai", DUBAI, ("r", "g", "b"),
        "Dubai aerial imagery (Humans in the Loop / MBRSC, CC0): RGB, 5 classes + unlabeled.",
        _load_dubai, _real_roots("dubai"), files=_dubai_files, options=("val_tiles",)),
    "vaihingen": DatasetSpec(
        "vaihingen", ISPRS, ("ir", "r", "g", "dsm", "ndsm"),
        "ISPRS Vaihingen 2D semantic labelling (IRRG + DSM + nDSM, 9 cm).",
        _load_vaihingen, _real_roots("vaihingen"), splits=("kampffmeyer", "cse_unet", "mmseg"),
        bands_for=_vaihingen_bands, files=_vaihingen_files,
        options=(*_ISPRS_OPTIONS, "vaihingen_bands")),
    "potsdam": DatasetSpec(
        "potsdam", ISPRS, ("ir", "r", "g", "dsm", "ndsm"),
        "ISPRS Potsdam 2D semantic labelling (RGB/IRRG/RGBIR + DSM + nDSM, 5 cm).",
        _load_potsdam, _real_roots("potsdam"), splits=("cse_unet", "geoseg", "mmseg"),
        bands_for=_potsdam_bands, files=_potsdam_files,
        options=(*_ISPRS_OPTIONS, "potsdam_bands")),
    "loveda": DatasetSpec(
        "loveda", LOVEDA, ("r", "g", "b"),
        "LoveDA land cover (Wang et al. 2021, CC BY-NC-SA 4.0): RGB, 0.3 m, urban and rural, "
        "7 classes.",
        _load_loveda, _real_roots("loveda"), files=_loveda_files),
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
        """Bands the scenes carry (they follow ``potsdam_bands`` / ``vaihingen_bands``)."""
        scenes = self.train + self.val
        if scenes:
            return tuple(scenes[0].band_names)
        return get_spec(self.cfg.dataset).bands_of(self.cfg)

    @property
    def full_truth(self) -> bool:
        """True if every validation scene has its full ground truth.

        False for eroded-only label sets (``Scene.full_truth``): the full-ground-truth
        protocol is then unavailable.
        """
        return all(s.full_truth for s in self.val)

    @property
    def fingerprint(self) -> str:
        """:func:`data_fingerprint` of these scenes (for run-store keys)."""
        return data_fingerprint(self)

    def class_shares(self) -> pd.DataFrame:
        """:func:`class_shares` of these scenes."""
        return class_shares(self)


def load_split(cfg: DataConfig) -> SplitData:
    """Load both splits; a tile in both would leak evaluation data into training."""
    train, val = load_scenes(cfg, "train"), load_scenes(cfg, "val")
    both = sorted({s.name for s in train} & {s.name for s in val})
    if both:
        raise ValueError(f"{cfg.dataset}: tiles {both} are in both the train and the val split;"
                         " the splits must be disjoint")
    return SplitData(cfg, train, val)


# ----------------------------------------------------------------- fingerprint and shares

def dataset_files(cfg: DataConfig, split: str) -> list[Path]:
    """The files :func:`load_scenes` reads for ``split``, listed without reading them."""
    spec = get_spec(cfg.dataset)
    if spec.files is None:
        raise ValueError(f"dataset {cfg.dataset!r} cannot list its files")
    return spec.files(dataset_root(cfg), split, cfg)


def _file_lines(split: str, files: Sequence[str | Path], root: Path, content: bool
                ) -> list[str]:
    lines = []
    for f in dict.fromkeys(Path(p) for p in files):
        rel = f.relative_to(root) if f.is_relative_to(root) else f
        st = f.stat()
        if content:
            lines.append(f"{split}\t{rel.as_posix()}\t{st.st_size}\t{file_digest(f)}")
        else:
            lines.append(f"{split}\t{rel.as_posix()}\t{st.st_size}\t{st.st_mtime_ns}")
    return lines


def data_fingerprint(data: DataConfig | SplitData, *, content: bool = False) -> str:
    """A short hash of the data files a configuration reads, for run-store keys.

    Computed from every file read (image, height and label files of both splits): its path
    relative to the dataset root, its size and its modification time, plus which split it
    serves. Changing a file in place (a mask fixed, a DSM refilled) changes the fingerprint,
    so stored models are not silently reused; unchanged files give the same value. Copying
    the data without keeping modification times (``cp`` without ``-p``) changes it too, the
    safe direction; ``content=True`` hashes the file contents instead (slower, independent
    of copies). Scenes built in memory (no ``sources``) are hashed by their arrays.

    Args:
        data: a configuration (its files are listed, not read) or loaded scenes (the files
            they were read from).
        content: hash file contents instead of sizes and modification times.

    Returns:
        20 hexadecimal characters.
    """
    cfg = data if isinstance(data, DataConfig) else data.cfg
    root = dataset_root(cfg)
    lines: list[str] = []
    if isinstance(data, DataConfig):
        for split in ("train", "val"):
            lines += _file_lines(split, dataset_files(cfg, split), root, content)
    else:
        for split, scenes in (("train", data.train), ("val", data.val)):
            lines += _file_lines(split, [p for s in scenes for p in s.sources], root, content)
            for s in scenes:
                if not s.sources:
                    h = hashlib.blake2b(digest_size=16)
                    for arr in (s.bands, s.labels):
                        h.update(str(arr.shape).encode())
                        h.update(np.ascontiguousarray(arr).tobytes())
                    lines.append(f"{split}\t{s.name}\t(in memory)\t{h.hexdigest()}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:20]


def class_shares(data: SplitData) -> pd.DataFrame:
    """Pixels and pixel shares per class in each split, for a chapter to show.

    Returns:
        A DataFrame indexed by class name plus ``"(ignored)"``, with columns
        ``train_pixels``, ``val_pixels``, ``train_share`` and ``val_share`` (fractions of all
        pixels of the split, so each share column sums to 1), and a ``Total`` row; the
        attribute ``attrs["dataset"]`` names the dataset.
    """
    import pandas as pd

    names = list(data.classes.names) + ["(ignored)"]
    cols = {}
    for split, scenes in (("train", data.train), ("val", data.val)):
        counts = np.zeros(256, np.int64)
        for s in scenes:
            counts += np.bincount(s.labels.ravel().astype(np.int64), minlength=256)[:256]
        n = data.classes.num_classes
        per = np.append(counts[:n], counts[IGNORE_INDEX])
        cols[f"{split}_pixels"] = per
        cols[f"{split}_share"] = per / max(int(per.sum()), 1)
    df = pd.DataFrame(cols, index=pd.Index(names, name="class"))
    df = df[["train_pixels", "val_pixels", "train_share", "val_share"]]
    df.loc["Total"] = df.sum()
    df[["train_pixels", "val_pixels"]] = df[["train_pixels", "val_pixels"]].astype(np.int64)
    df.attrs["dataset"] = data.cfg.dataset
    return df
