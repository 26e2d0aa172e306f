"""Reader for the Dubai aerial set (Humans in the Loop / MBRSC, Kaggle, CC0).

Original download layout::

    <root>/Semantic segmentation dataset/
      classes.json
      Tile 1/images/image_part_001.jpg ... image_part_009.jpg
      Tile 1/masks/image_part_001.png  ... image_part_009.png
      Tile 2/...

``root`` may also be the ``Semantic segmentation dataset`` folder itself. Masks are
colour-coded (some are palette PNGs); unlabeled (#9B9B9B) and black pixels are ignored.

The split goes by whole tiles: the parts of one tile are neighbouring pieces of one image,
so a tile is either trained on or evaluated on, never both. The validation tiles are
:data:`DUBAI_VAL_TILES` (Tiles 2 and 3) unless ``val_tiles`` names others; every other
tile present is trained on. See ``data/README.md`` for why these two and their class
shares.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aerialseg.data.classes import DUBAI
from aerialseg.data.errors import DatasetNotFoundError
from aerialseg.data.io import read_image
from aerialseg.data.scene import Scene

log = logging.getLogger(__name__)

DUBAI_BANDS: tuple[str, ...] = ("r", "g", "b")
DUBAI_TILES: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
"""The tiles of the published set (9 image parts each)."""
DUBAI_PARTS: int = 9
"""Image parts per published tile."""
DUBAI_VAL_TILES: tuple[int, ...] = (2, 3)
"""Default validation tiles: every class is 5-54 % of both splits (``data/README.md``)."""
DUBAI_KAGGLE = "humansintheloop/semantic-segmentation-of-aerial-imagery"
_FOLDER = "Semantic segmentation dataset"
_MAX_SIZE_SLACK = 2  # px; larger image/mask differences mean mismatched files
_SPLITS = ("train", "val")

_LAYOUT = f"""\
  <root>/{_FOLDER}/            (or <root> is that folder)
    Tile 1/images/image_part_001.jpg ... image_part_009.jpg
    Tile 1/masks/image_part_001.png  ... image_part_009.png
    Tile 2/ ... Tile 8/"""


def _not_found(root: Path, what: str, missing: list[Path] | None = None) -> DatasetNotFoundError:
    listed = "".join(f"\n    {p}" for p in (missing or [])[:20])
    return DatasetNotFoundError(
        f"Dubai aerial dataset not found under {root}: {what}.{listed}\n"
        f"  Expected layout (the original download):\n{_LAYOUT}\n"
        f"  Download the Kaggle dataset {DUBAI_KAGGLE} (\"Semantic segmentation of aerial "
        "imagery\", Humans in the Loop with MBRSC, licence CC0 1.0), e.g. "
        f"`kaggle datasets download {DUBAI_KAGGLE}`, and unzip it under the root."
    )


def _dataset_dir(root: Path) -> Path:
    if (root / _FOLDER).is_dir():
        return root / _FOLDER
    if any(root.glob("Tile *")):
        return root
    raise _not_found(root, f"neither {root / _FOLDER} nor 'Tile N' folders exist")


def _tile_number(path: Path) -> int:
    m = re.fullmatch(r"Tile (\d+)", path.name)
    return int(m.group(1)) if m else -1


def _part_number(path: Path) -> int:
    m = re.fullmatch(r"image_part_(\d+)", path.stem)
    return int(m.group(1)) if m else -1


def check_dubai_tile(tile: int | str) -> int:
    """Normalise a tile id (``2``, ``"2"``, ``"Tile 2"``, ``"tile2"``) or fail clearly."""
    text = str(tile).strip().lower().replace(" ", "").removeprefix("tile")
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n not in DUBAI_TILES:
        raise ValueError(f"unknown Dubai tile {tile!r}: the published tiles are "
                         f"{list(DUBAI_TILES)} (folders 'Tile 1' ... 'Tile 8')")
    return n


def dubai_tiles(root: Path) -> dict[int, Path]:
    """Tile folders present under ``root`` (``{number: folder}``), in number order."""
    base = _dataset_dir(Path(root))
    found = {_tile_number(p): p for p in base.glob("Tile *") if p.is_dir()}
    return {n: found[n] for n in sorted(found) if n >= 0}


def dubai_split_tiles(present: Sequence[int], val_tiles: Sequence[int | str] | None = None
                      ) -> dict[str, tuple[int, ...]]:
    """Tile numbers of each split.

    ``val``: ``val_tiles`` (default :data:`DUBAI_VAL_TILES`); ``train``: the other tiles
    ``present``.
    """
    val = tuple(dict.fromkeys(check_dubai_tile(t) for t in (val_tiles or DUBAI_VAL_TILES)))
    return {"train": tuple(t for t in present if t not in val), "val": val}


def dubai_pairs(root: Path, split: str, val_tiles: Sequence[int | str] | None = None,
                max_scenes: int | None = None) -> list[tuple[str, Path, Path]]:
    """``(scene name, image, mask)`` of a split, without reading them.

    Parts are interleaved across tiles (part 1 of every tile, then part 2, ...), so that
    ``max_scenes`` keeps parts of several tiles.

    Raises:
        DatasetNotFoundError: the folder, a validation tile, an image or its mask is
            missing, or the split is empty (the message says how to choose ``val_tiles``).
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise _not_found(root, "the root folder does not exist")
    tiles = dubai_tiles(root)
    splits = dubai_split_tiles(list(tiles), val_tiles)
    wanted = splits[split]
    present = list(tiles)
    if split == "val" and not any(t in tiles for t in wanted):
        example = present[-1] if present else 2
        raise _not_found(
            root, f"none of the validation tiles {list(wanted)} is present (tiles present: "
            f"{present}). Choose validation tiles among them with val_tiles, e.g. "
            f"data_options={{'val_tiles': [{example}]}} (--val-tiles {example} on the command "
            "line); the other tiles are then trained on")
    absent = [t for t in wanted if t not in tiles]
    if split == "val" and absent:
        raise _not_found(root, f"validation tiles {absent} are missing (tiles present: "
                         f"{present}); choose others with val_tiles")
    if not wanted:
        raise _not_found(root, f"every tile present ({present}) is a validation tile, none "
                         "is left for training: choose fewer with val_tiles")
    per_tile: list[list[tuple[str, Path, Path]]] = []
    missing: list[Path] = []
    for t in wanted:
        tile = tiles[t]
        images = sorted((p for p in (tile / "images").glob("image_part_*.jpg")
                         if _part_number(p) >= 0), key=_part_number)
        if not images:
            missing.append(tile / "images" / "image_part_001.jpg")
        rows = []
        for img in images:
            mask = tile / "masks" / f"{img.stem}.png"
            if not mask.is_file():
                missing.append(mask)
            rows.append((f"tile{t}_part{_part_number(img):03d}", img, mask))
        per_tile.append(rows)
    if missing:
        raise _not_found(root, "files are missing", missing)
    pairs = [rows[i] for i in range(max(map(len, per_tile), default=0))
             for rows in per_tile if i < len(rows)]
    return pairs[:max_scenes] if max_scenes is not None else pairs


def load_dubai(root: Path, split: str, *, val_tiles: Sequence[int | str] | None = None,
               snap_labels: bool = False, max_scenes: int | None = None) -> list[Scene]:
    """Read one split of the Dubai aerial set.

    Args:
        root: folder holding ``Semantic segmentation dataset/`` (or that folder itself).
        split: ``"train"`` (every tile but the validation tiles) or ``"val"``.
        val_tiles: validation tile numbers (default :data:`DUBAI_VAL_TILES`, Tiles 2, 3).
        snap_labels: snap mask colours outside the palette (see
            :mod:`aerialseg.data.classes`) instead of failing.
        max_scenes: read at most this many image parts (interleaved across tiles).

    Returns:
        Scenes named ``tile{N}_part{KKK}``, bands ``("r", "g", "b")`` float32 in [0, 1],
        labels decoded with :data:`~aerialseg.data.classes.DUBAI` (unlabeled and black are
        ignore), ``eval_mask`` None (the set has no eroded ground truth).

    Raises:
        DatasetNotFoundError: the folder, a tile, an image or its mask is missing.
        ValueError: unknown split or tile, or an image and its mask differ by more than 2 px.
        LabelColourError: a mask holds colours outside the Dubai palette.
        CorruptFileError: an image or mask is truncated or damaged.
    """
    pairs = dubai_pairs(root, split, val_tiles, max_scenes)
    return [_load_pair(name, img, mask, split, snap_labels) for name, img, mask in pairs]


def _load_pair(name: str, img_path: Path, mask_path: Path, split: str,
               snap: bool = False) -> Scene:
    img = read_image(img_path, "RGB")
    rgb = read_image(mask_path, "RGB")  # some masks are palette PNGs
    if img.shape[:2] != rgb.shape[:2]:
        (hi, wi), (hm, wm) = img.shape[:2], rgb.shape[:2]
        if max(abs(hi - hm), abs(wi - wm)) > _MAX_SIZE_SLACK:
            raise ValueError(f"{img_path} is {hi}x{wi} px but its mask {mask_path} is "
                             f"{hm}x{wm} px; they do not belong together")
        h, w = min(hi, hm), min(wi, wm)
        log.warning("%s: image %dx%d and mask %dx%d differ slightly; cropping both to %dx%d",
                    name, hi, wi, hm, wm, h, w)
        img, rgb = img[:h, :w], rgb[:h, :w]
    labels = DUBAI.decode(rgb, snap=snap, source=str(mask_path))
    bands = np.ascontiguousarray(np.moveaxis(img, -1, 0), dtype=np.float32) / np.float32(255)
    return Scene(name=name, bands=bands, band_names=DUBAI_BANDS, labels=labels, classes=DUBAI,
                 split=split, sources=(str(img_path), str(mask_path)))
