"""Reader for LoveDA (Wang et al. 2021), a land-cover set of urban and rural scenes.

Layout of the Zenodo archives (record 5706578: ``Train.zip``, ``Val.zip``, ``Test.zip``)::

    <root>/                                  (or <root>/LoveDA/)
      Train/Urban/images_png/1366.png        RGB, 1024 x 1024 px, 0.3 m
      Train/Urban/masks_png/1366.png         class indices, uint8
      Train/Rural/images_png/0.png ...
      Val/Urban/... Val/Rural/...
      Test/...                               (no masks: not used)

Masks: 0 = no-data (ignore), 1 background, 2 building, 3 road, 4 water, 5 barren,
6 forest, 7 agriculture (:data:`~aerialseg.data.classes.LOVEDA`, all seven evaluated).
Split: ``Train`` is trained on, ``Val`` evaluated on (the test masks are withheld).
Scenes are named ``urban_1366``, ``rural_0``; they are ordered urban and rural alternately,
so that ``max_scenes`` keeps both domains.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aerialseg.data.classes import IGNORE_INDEX, LOVEDA
from aerialseg.data.errors import DatasetNotFoundError
from aerialseg.data.io import read_image
from aerialseg.data.scene import Scene

LOVEDA_BANDS: tuple[str, ...] = ("r", "g", "b")
LOVEDA_ZENODO = "https://zenodo.org/records/5706578"
LOVEDA_DOMAINS: tuple[str, ...] = ("Urban", "Rural")
_SPLIT_FOLDERS = {"train": "Train", "val": "Val"}

LOVEDA_LAYOUT = """\
  <root>/                                    (or <root>/LoveDA/)
    Train/Urban/images_png/<id>.png          RGB image, 1024 x 1024 px
    Train/Urban/masks_png/<id>.png           mask: 0 no-data, 1..7 classes
    Train/Rural/images_png/ ... masks_png/
    Val/Urban/ ... Val/Rural/ ..."""

LOVEDA_SOURCE = (
    f"Download Train.zip and Val.zip from Zenodo record 5706578 ({LOVEDA_ZENODO}; licence "
    "CC BY-NC-SA 4.0) and extract them under the root. Cite Wang, J., Zheng, Z., Ma, A., "
    "Lu, X., Zhong, Y. (2021), LoveDA: A Remote Sensing Land-Cover Dataset for Domain "
    "Adaptive Semantic Segmentation, NeurIPS Datasets and Benchmarks.")


def _not_found(root: Path, what: str, missing: list[Path] | None = None) -> DatasetNotFoundError:
    listed = "".join(f"\n    {p}" for p in (missing or [])[:20])
    return DatasetNotFoundError(f"LoveDA dataset not found under {root}: {what}.{listed}\n"
                                f"  Expected layout:\n{LOVEDA_LAYOUT}\n  {LOVEDA_SOURCE}")


def loveda_base(root: Path) -> Path:
    """The folder holding ``Train/`` and ``Val/`` (``root`` or ``root/LoveDA``)."""
    root = Path(root)
    for base in (root, root / "LoveDA"):
        if any((base / f).is_dir() for f in _SPLIT_FOLDERS.values()):
            return base
    return root


def _id(path: Path) -> tuple[int, str]:
    return (int(path.stem), "") if path.stem.isdigit() else (1 << 30, path.stem)


def loveda_pairs(root: Path, split: str, max_scenes: int | None = None
                 ) -> list[tuple[str, Path, Path]]:
    """``(scene name, image, mask)`` of a split (urban and rural interleaved), unread.

    Raises:
        DatasetNotFoundError: the split folder, or a mask of an image, is missing.
    """
    if split not in _SPLIT_FOLDERS:
        raise ValueError(f"split must be one of {tuple(_SPLIT_FOLDERS)}, got {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise _not_found(root, "the root folder does not exist")
    folder = loveda_base(root) / _SPLIT_FOLDERS[split]
    per_domain = []
    for domain in LOVEDA_DOMAINS:
        images = sorted((folder / domain / "images_png").glob("*.png"), key=_id)
        per_domain.append([(f"{domain.lower()}_{p.stem}", p,
                            folder / domain / "masks_png" / p.name) for p in images])
    pairs = [rows[i] for i in range(max(map(len, per_domain)))
             for rows in per_domain if i < len(rows)]
    if not pairs:
        other = "Val" if split == "train" else "Train"
        extra = (f" ({other}/ is there: both Train.zip and Val.zip are needed)"
                 if (folder.parent / other).is_dir() else "")
        raise _not_found(root, f"no image in {folder}/{{Urban,Rural}}/images_png{extra}",
                         [folder / "Urban" / "images_png"])
    pairs = pairs[:max_scenes] if max_scenes is not None else pairs
    missing = [m for _, _, m in pairs if not m.is_file()]
    if missing:
        raise _not_found(root, "masks are missing", missing)
    return pairs


def read_loveda_pair(name: str, image: Path, mask: Path, split: str) -> Scene:
    """One LoveDA scene from its image and mask files."""
    img = read_image(image, "RGB")
    raw = read_image(mask)
    if raw.shape[:2] != img.shape[:2]:
        raise ValueError(f"{image} is {img.shape[0]}x{img.shape[1]} px but its mask {mask} is "
                         f"{raw.shape[0]}x{raw.shape[1]} px; they do not belong together")
    labels = LOVEDA.decode_indices(raw, offset=1, ignore_values=(0, IGNORE_INDEX),
                                   source=str(mask))
    bands = np.ascontiguousarray(np.moveaxis(img, -1, 0), dtype=np.float32) / np.float32(255)
    return Scene(name=name, bands=bands, band_names=LOVEDA_BANDS, labels=labels,
                 classes=LOVEDA, split=split, sources=(str(image), str(mask)))


def load_loveda(root: Path, split: str, *, max_scenes: int | None = None) -> list[Scene]:
    """Read one split of LoveDA.

    Args:
        root: folder holding ``Train/`` and ``Val/`` (or ``LoveDA/`` with them).
        split: ``"train"`` (``Train/``) or ``"val"`` (``Val/``).
        max_scenes: read at most this many scenes (urban and rural alternately).

    Returns:
        Scenes with bands ``("r", "g", "b")`` in [0, 1], labels 0..6 (ignore = 255 where the
        mask is 0, no-data), ``eval_mask`` None (no eroded ground truth).

    Raises:
        DatasetNotFoundError: folders, images or masks missing.
        LabelValueError: a mask holds values other than 0..7.
        CorruptFileError: an image or mask is truncated or damaged.
    """
    return [read_loveda_pair(n, i, m, split) for n, i, m in loveda_pairs(root, split,
                                                                          max_scenes)]
