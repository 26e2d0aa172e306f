"""Reader for the Dubai aerial set (Humans in the Loop / MBRSC, Kaggle, CC0).

Original download layout::

    <root>/Semantic segmentation dataset/
      classes.json
      Tile 1/images/image_part_001.jpg ... image_part_009.jpg
      Tile 1/masks/image_part_001.png  ... image_part_009.png
      Tile 2/...

``root`` may also be the ``Semantic segmentation dataset`` folder itself. Masks are
colour-coded (some are palette PNGs); unlabeled (#9B9B9B) and black pixels are ignored.
The split is fixed: image parts 3, 6 and 9 of every tile are validation, the rest training.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
from PIL import Image

from aerialseg.data.classes import DUBAI
from aerialseg.data.errors import DatasetNotFoundError
from aerialseg.data.scene import Scene

log = logging.getLogger(__name__)

DUBAI_BANDS: tuple[str, ...] = ("r", "g", "b")
DUBAI_VAL_PARTS: tuple[int, ...] = (3, 6, 9)
"""Image parts of every tile that form the validation split."""
DUBAI_KAGGLE = "humansintheloop/semantic-segmentation-of-aerial-imagery"
_FOLDER = "Semantic segmentation dataset"
_MAX_SIZE_SLACK = 2  # px; larger image/mask differences mean mismatched files
_SPLITS = ("train", "val")

_LAYOUT = f"""\
  <root>/{_FOLDER}/            (or <root> is that folder)
    Tile 1/images/image_part_001.jpg ... image_part_009.jpg
    Tile 1/masks/image_part_001.png  ... image_part_009.png
    Tile 2/ ..."""


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


def load_dubai(root: Path, split: str) -> list[Scene]:
    """Read one split of the Dubai aerial set.

    Args:
        root: folder holding ``Semantic segmentation dataset/`` (or that folder itself).
        split: ``"train"`` (image parts 1, 2, 4, 5, 7, 8 of every tile) or ``"val"``
            (parts 3, 6, 9).

    Returns:
        Scenes named ``tile{N}_part{KKK}``, bands ``("r", "g", "b")`` float32 in [0, 1],
        labels decoded with :data:`~aerialseg.data.classes.DUBAI` (unlabeled and black are
        ignore), ``eval_mask`` None (the set has no eroded ground truth).

    Raises:
        DatasetNotFoundError: the folder, an image or its mask is missing.
        ValueError: unknown split, or an image and its mask differ by more than 2 px.
        LabelColourError: a mask holds colours outside the Dubai palette.
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise _not_found(root, "the root folder does not exist")
    base = _dataset_dir(root)
    tiles = sorted((p for p in base.glob("Tile *") if _tile_number(p) >= 0), key=_tile_number)
    pairs: list[tuple[str, Path, Path]] = []
    missing: list[Path] = []
    for tile in tiles:
        images = sorted((p for p in (tile / "images").glob("image_part_*.jpg")
                         if _part_number(p) >= 0), key=_part_number)
        if not images:
            missing.append(tile / "images" / "image_part_001.jpg")
        for img in images:
            part = _part_number(img)
            if (part in DUBAI_VAL_PARTS) != (split == "val"):
                continue
            mask = tile / "masks" / f"{img.stem}.png"
            if not mask.is_file():
                missing.append(mask)
            pairs.append((f"tile{_tile_number(tile)}_part{part:03d}", img, mask))
    if missing:
        raise _not_found(root, "files are missing", missing)
    if not pairs:
        raise _not_found(base, f"no image of the {split!r} split was found")
    return [_load_pair(name, img, mask, split) for name, img, mask in pairs]


def _load_pair(name: str, img_path: Path, mask_path: Path, split: str) -> Scene:
    with Image.open(img_path) as im:
        img = np.asarray(im.convert("RGB"))
    with Image.open(mask_path) as im:  # some masks are palette PNGs
        rgb = np.asarray(im.convert("RGB"))
    if img.shape[:2] != rgb.shape[:2]:
        (hi, wi), (hm, wm) = img.shape[:2], rgb.shape[:2]
        if max(abs(hi - hm), abs(wi - wm)) > _MAX_SIZE_SLACK:
            raise ValueError(f"{img_path} is {hi}x{wi} px but its mask {mask_path} is "
                             f"{hm}x{wm} px; they do not belong together")
        h, w = min(hi, hm), min(wi, wm)
        log.warning("%s: image %dx%d and mask %dx%d differ slightly; cropping both to %dx%d",
                    name, hi, wi, hm, wm, h, w)
        img, rgb = img[:h, :w], rgb[:h, :w]
    labels = DUBAI.decode(rgb, source=str(mask_path))
    bands = np.ascontiguousarray(np.moveaxis(img, -1, 0), dtype=np.float32) / np.float32(255)
    return Scene(name=name, bands=bands, band_names=DUBAI_BANDS, labels=labels, classes=DUBAI,
                 split=split)
