"""Reader for ISPRS sets converted by mmsegmentation (``tools/dataset_converters``).

Layout::

    <root>/
      img_dir/train/area1_0_0_512_512.png     clips of the orthophotos (PNG, 3 bands)
      img_dir/val/...
      ann_dir/train/area1_0_0_512_512.png     the same clips of the ERODED ground truth,
      ann_dir/val/...                         as indices: 0 boundary (ignore), 1 impervious,
                                              2 building, 3 low vegetation, 4 tree, 5 car,
                                              6 clutter

Clip names are ``<tile>_<x0>_<y0>_<x1>_<y1>``: ``area{N}`` for Vaihingen, ``X_Y`` for
Potsdam. The converter cuts overlapping clips (512 px, stride 256); the reader puts them
back together into one scene per tile, named as the official readers name them
(``area1``, ``tile2_10``), so the named splits and ``val_tiles`` work the same (the
folders' ``train``/``val`` split is the named split ``mmseg``). A clip whose name does not
follow the pattern is a scene of its own. Pixels no clip covers are ignore.

Bands: the converter reads Vaihingen's IR-R-G orthophotos (``ir, r, g``) and, as its
documentation asks, Potsdam's ``2_Ortho_RGB`` (``r, g, b``). The clips hold no heights.
The labels are the eroded ground truth, so scenes have ``full_truth`` False.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aerialseg.data import isprs
from aerialseg.data.classes import IGNORE_INDEX, ISPRS
from aerialseg.data.errors import DatasetNotFoundError
from aerialseg.data.io import read_image
from aerialseg.data.scene import Scene

log = logging.getLogger(__name__)

MMSEG_BANDS: dict[str, tuple[str, ...]] = {"vaihingen": ("ir", "r", "g"),
                                           "potsdam": ("r", "g", "b")}
"""What the three channels of the converted clips are."""

_CLIP = re.compile(r"^(?P<tile>.+?)_(?P<x0>\d+)_(?P<y0>\d+)_(?P<x1>\d+)_(?P<y1>\d+)$")
_FOLDERS = ("train", "val")

MMSEG_LAYOUT = """\
  <root>/
    img_dir/train/<tile>_<x0>_<y0>_<x1>_<y1>.png     image clips (Vaihingen: IR-R-G,
    img_dir/val/...                                  Potsdam: R-G-B)
    ann_dir/train/<tile>_<x0>_<y0>_<x1>_<y1>.png     eroded labels as indices 0..6
    ann_dir/val/...                                  (0 = boundary, ignored)
  <tile> is area{N} (Vaihingen) or X_Y (Potsdam), as mmsegmentation's converters write."""


def is_mmseg_layout(root: Path) -> bool:
    """True if ``root`` holds ``img_dir/`` and ``ann_dir/`` (an mmsegmentation copy)."""
    root = Path(root)
    return (root / "img_dir").is_dir() and (root / "ann_dir").is_dir()


@dataclass(frozen=True)
class Clip:
    """One converted clip: where it sits in its tile and its two files."""

    tile: str
    box: tuple[int, int, int, int] | None  # x0, y0, x1, y1 (None: not a converter name)
    image: Path
    label: Path


def _tile_key(dataset: str, raw: str) -> str | None:
    try:
        if dataset == "vaihingen":
            return str(isprs.check_vaihingen_area(raw))
        return isprs.check_potsdam_tile(raw)
    except ValueError:
        return None


def find_clips(root: Path, dataset: str) -> dict[str, list[Clip]]:
    """Clips under ``root`` grouped by tile id (``"1"`` for area1, ``"2_10"``), sorted.

    A clip whose name is not ``<tile>_<x0>_<y0>_<x1>_<y1>`` forms a tile of its own, keyed
    by its file name. The ``train``/``val`` folders are not recorded: splits go by tile.
    """
    root = Path(root)
    out: dict[str, list[Clip]] = {}
    for folder in _FOLDERS:
        for img in sorted((root / "img_dir" / folder).glob("*.png")):
            m = _CLIP.match(img.stem)
            key = _tile_key(dataset, m["tile"]) if m else None
            box = tuple(int(m[k]) for k in ("x0", "y0", "x1", "y1")) if key else None
            out.setdefault(key or img.stem, []).append(
                Clip(key or img.stem, box, img, root / "ann_dir" / folder / img.name))
    return out


def scene_name(dataset: str, tile: str) -> str:
    """The scene name of a tile id, as the official readers name it."""
    if not re.fullmatch(r"\d+(_\d+)?", tile):
        return tile
    return f"area{tile}" if dataset == "vaihingen" else f"tile{tile}"


def _tile_order(dataset: str, tile: str) -> tuple:
    named = isprs.VAIHINGEN_AREAS if dataset == "vaihingen" else isprs.POTSDAM_TILES
    ids = [str(t) for t in named]
    return (0, ids.index(tile), "") if tile in ids else (1, 0, tile)


def mmseg_selection(root: Path, dataset: str, split: str, *, split_name: str | None = None,
                    val_tiles: Sequence[int | str] | None = None,
                    max_scenes: int | None = None) -> list[str]:
    """Tile ids of ``split`` present under ``root`` (named split, or ``val_tiles``)."""
    root = Path(root)
    if not is_mmseg_layout(root):
        raise DatasetNotFoundError(
            f"mmsegmentation-converted {dataset} copy not found under {root}: it needs "
            f"img_dir/ and ann_dir/.\n  Expected layout:\n{MMSEG_LAYOUT}")
    clips = find_clips(root, dataset)
    named = isprs.get_named_split(dataset, split_name)
    splits = {"train": tuple(str(t) for t in named.train),
              "val": tuple(str(t) for t in named.val)}
    if val_tiles:
        norm = [_tile_key(dataset, str(t)) or str(t) for t in val_tiles]
        splits = isprs.resplit(splits, norm)
        unnamed = [t for t in clips if t not in splits["val"]
                   and t not in splits["train"]]
        splits["train"] = splits["train"] + tuple(unnamed)
    wanted = splits[split]
    present = sorted(clips, key=lambda t: _tile_order(dataset, t))
    if val_tiles and split == "val":
        absent = [t for t in wanted if t not in clips]
        if absent:
            raise DatasetNotFoundError(
                f"{dataset} (mmsegmentation copy under {root}): no clip of the validation "
                f"tiles {absent} in img_dir/train or img_dir/val. Tiles present: "
                f"{', '.join(present)}")
        selected = list(wanted)
    else:
        selected = [t for t in present if t in wanted]
    if not selected:
        hint = isprs.empty_split_hint(split, present, "tiles")
        raise DatasetNotFoundError(
            f"{dataset} (mmsegmentation copy under {root}): no clip of the {split!r} tiles of "
            f"split {named.name!r}.{hint}")
    return selected[:max_scenes] if max_scenes is not None else selected


def _window(clips: list[Clip], max_size: int | None) -> tuple[int, int]:
    h = max(c.box[3] for c in clips)
    w = max(c.box[2] for c in clips)
    if max_size is not None:
        h, w = min(h, max_size), min(w, max_size)
    return h, w


def used_clips(clips: list[Clip], max_size: int | None) -> list[Clip]:
    """The clips of a tile that overlap its top-left ``max_size`` window."""
    if max_size is None or any(c.box is None for c in clips):
        return clips
    return [c for c in clips if c.box[0] < max_size and c.box[1] < max_size]


def _read_tile(dataset: str, tile: str, clips: list[Clip], split: str,
               bands: tuple[str, ...], max_size: int | None) -> Scene:
    channels = [MMSEG_BANDS[dataset].index(b) for b in bands]
    used = used_clips(clips, max_size)
    missing = [c.label for c in used if not c.label.is_file()]
    if missing:
        raise DatasetNotFoundError(f"{dataset} (mmsegmentation copy): label clips missing: "
                                   + ", ".join(str(p) for p in missing[:10]))
    if any(c.box is None for c in used):  # a single clip of its own
        (clip,) = used
        img = read_image(clip.image, "RGB")
        h, w = img.shape[:2]
        boxes = [(clip, (0, 0, w, h))]
    else:
        h, w = _window(used, max_size)
        boxes = [(c, c.box) for c in used]
    image = np.zeros((len(bands), h, w), np.float32)
    labels = np.full((h, w), IGNORE_INDEX, np.int64)
    covered = np.zeros((h, w), bool)
    for clip, (x0, y0, x1, y1) in boxes:
        img = read_image(clip.image, "RGB")
        ann = read_image(clip.label)
        if img.shape[:2] != (y1 - y0, x1 - x0) or ann.shape[:2] != img.shape[:2]:
            raise ValueError(f"{clip.image}: image {img.shape[0]}x{img.shape[1]} px and label "
                             f"{ann.shape[0]}x{ann.shape[1]} px, but its name says "
                             f"{y1 - y0}x{x1 - x0} px")
        lab = ISPRS.decode_indices(ann, offset=1, ignore_values=(0, IGNORE_INDEX),
                                   source=str(clip.label))
        ys, xs = slice(y0, min(y1, h)), slice(x0, min(x1, w))
        hh, ww = ys.stop - ys.start, xs.stop - xs.start
        image[:, ys, xs] = np.moveaxis(img[:hh, :ww, channels], -1, 0) / np.float32(255)
        labels[ys, xs] = lab[:hh, :ww]
        covered[ys, xs] = True
    if not covered.all():
        log.warning("%s %s: %d px of the %dx%d tile are covered by no clip; they are ignore",
                    dataset, tile, int((~covered).sum()), h, w)
    return Scene(name=scene_name(dataset, tile), bands=image, band_names=bands, labels=labels,
                 classes=ISPRS, split=split, eval_mask=labels != IGNORE_INDEX,
                 full_truth=False,
                 sources=tuple(str(p) for c in used for p in (c.image, c.label)))


def mmseg_files(root: Path, dataset: str, split: str, *, split_name: str | None = None,
                val_tiles: Sequence[int | str] | None = None, max_scenes: int | None = None,
                max_size: int | None = None) -> list[Path]:
    """The files :func:`load_mmseg` reads for ``split`` (without reading them)."""
    clips = find_clips(root, dataset)
    tiles = mmseg_selection(root, dataset, split, split_name=split_name, val_tiles=val_tiles,
                            max_scenes=max_scenes)
    return [p for t in tiles for c in used_clips(clips[t], max_size)
            for p in (c.image, c.label)]


def load_mmseg(root: Path, dataset: str, split: str, *, split_name: str | None = None,
               bands: Sequence[str] | None = None,
               val_tiles: Sequence[int | str] | None = None, max_scenes: int | None = None,
               max_size: int | None = None) -> list[Scene]:
    """Read one split of an mmsegmentation-converted Vaihingen or Potsdam copy.

    Args:
        root: folder holding ``img_dir/`` and ``ann_dir/``.
        dataset: ``"vaihingen"`` or ``"potsdam"``.
        split: ``"train"`` or ``"val"``.
        split_name: named split (default: the dataset's default; ``"mmseg"`` is the
            converter's folder split). Splits go by tile id, not by folder.
        bands: bands to keep, among :data:`MMSEG_BANDS` of the dataset (default: all three).
        val_tiles: validation tiles; every other tile present is trained on.
        max_scenes: read at most this many tiles.
        max_size: keep the top-left ``max_size`` square of each tile (only the clips that
            overlap it are read).

    Returns:
        One scene per tile, ``full_truth`` False, ``eval_mask`` = labelled pixels.

    Raises:
        DatasetNotFoundError: no ``img_dir``/``ann_dir``, no tile of the split, or a label
            clip missing.
        LabelValueError: a label clip holds values other than 0..6 (or 255).
        CorruptFileError: a clip is truncated or damaged.
    """
    if split not in _FOLDERS:
        raise ValueError(f"split must be one of {_FOLDERS}, got {split!r}")
    have = MMSEG_BANDS[dataset]
    names = tuple(bands) if bands else have
    bad = [b for b in names if b not in have]
    if bad:
        raise ValueError(f"{dataset} (mmsegmentation copy): the clips hold bands {have} only; "
                         f"{bad} are not available (no heights are converted)")
    clips = find_clips(root, dataset)
    tiles = mmseg_selection(root, dataset, split, split_name=split_name, val_tiles=val_tiles,
                            max_scenes=max_scenes)
    return [_read_tile(dataset, t, clips[t], split, names, max_size) for t in tiles]
