"""Reader for the ISPRS Vaihingen file layout (real Vaihingen and the synthetic default).

Layout (ISPRS 2D Semantic Labeling Contest, Vaihingen)::

    <root>/
      top/top_mosaic_09cm_area{N}.tif                         IR-R-G orthophoto, uint8
      dsm/dsm_09cm_matching_area{N}.tif                       DSM, float32, metres
      ndsm/ndsm_09cm_matching_area{N}.tif                     nDSM, float32, metres (ours)
        or ndsm/dsm_09cm_matching_area{N}_normalized.jpg      Gerke's nDSM, 8-bit
      gts_for_participants/top_mosaic_09cm_area{N}.tif        colour-coded ground truth
      gts_eroded_for_participants/top_mosaic_09cm_area{N}_noBoundary.tif   optional

Gerke's nDSM (``*_normalized.jpg``) is an 8-bit JPEG; its grey values are kept as they are
(0..255, not metres), so models that use it must normalise it like any other band.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from aerialseg.data.classes import IGNORE_INDEX, ISPRS
from aerialseg.data.errors import DatasetNotFoundError
from aerialseg.data.scene import Scene

VAIHINGEN_TRAIN_AREAS: tuple[int, ...] = (1, 3, 5, 7, 13, 17, 21, 23, 26, 32, 37)
"""The usual training areas of Vaihingen (11 of the 16 areas with released ground truth)."""

VAIHINGEN_VAL_AREAS: tuple[int, ...] = (11, 15, 28, 30, 34)
"""The usual validation areas of Vaihingen (the other 5)."""

VAIHINGEN_BANDS: tuple[str, ...] = ("ir", "r", "g", "dsm", "ndsm")
"""Band order of every Vaihingen scene."""

VAIHINGEN_URL = "https://www.isprs.org/education/benchmarks/UrbanSemLab/default.aspx"

_LAYOUT = """\
  <root>/
    top/top_mosaic_09cm_area{N}.tif                      IR-R-G orthophoto (uint8, 3 bands)
    dsm/dsm_09cm_matching_area{N}.tif                    DSM (float32, metres)
    ndsm/ndsm_09cm_matching_area{N}.tif                  nDSM (float32, metres), or Gerke's
    ndsm/dsm_09cm_matching_area{N}_normalized.jpg        nDSM (8-bit JPEG)
    gts_for_participants/top_mosaic_09cm_area{N}.tif     colour-coded ground truth (RGB)
    gts_eroded_for_participants/top_mosaic_09cm_area{N}_noBoundary.tif   (optional) eroded GT"""

_SPLITS = ("train", "val")


def vaihingen_files(root: Path, area: int) -> dict[str, Path]:
    """Paths of every file of one area (whether or not they exist).

    Keys: ``top``, ``dsm``, ``ndsm`` (ours, float metres), ``ndsm_gerke`` (8-bit JPEG),
    ``gts``, ``gts_eroded``.
    """
    root = Path(root)
    return {
        "top": root / "top" / f"top_mosaic_09cm_area{area}.tif",
        "dsm": root / "dsm" / f"dsm_09cm_matching_area{area}.tif",
        "ndsm": root / "ndsm" / f"ndsm_09cm_matching_area{area}.tif",
        "ndsm_gerke": root / "ndsm" / f"dsm_09cm_matching_area{area}_normalized.jpg",
        "gts": root / "gts_for_participants" / f"top_mosaic_09cm_area{area}.tif",
        "gts_eroded": root / "gts_eroded_for_participants"
        / f"top_mosaic_09cm_area{area}_noBoundary.tif",
    }


def vaihingen_split_areas(root: Path) -> dict[str, tuple[int, ...]]:
    """Area ids of each split under ``root``.

    The official Vaihingen split, unless ``root`` holds a synthetic dataset whose
    ``manifest.json`` lists its own splits (it does when it has more scenes than Vaihingen
    has areas).
    """
    manifest = Path(root) / "manifest.json"
    if manifest.is_file():
        try:
            splits = json.loads(manifest.read_text())["splits"]
            return {s: tuple(int(a) for a in splits[s]) for s in _SPLITS}
        except (KeyError, TypeError, ValueError):
            pass  # not one of our manifests: fall back to the official split
    return {"train": VAIHINGEN_TRAIN_AREAS, "val": VAIHINGEN_VAL_AREAS}


def _not_found(root: Path, what: str, missing: Sequence[Path]) -> DatasetNotFoundError:
    listed = "\n".join(f"    {p.relative_to(root) if p.is_relative_to(root) else p}"
                       for p in missing[:20])
    more = f"\n    ... and {len(missing) - 20} more" if len(missing) > 20 else ""
    return DatasetNotFoundError(
        f"ISPRS Vaihingen dataset not found under {root}: {what}.\n"
        + (f"  Missing files:\n{listed}{more}\n" if missing else "")
        + f"  Expected layout:\n{_LAYOUT}\n"
        f"  Obtain Vaihingen from the ISPRS 2D Semantic Labeling Contest, {VAIHINGEN_URL} "
        "(the data is distributed on request by ISPRS; Gerke's nDSM is offered on the same "
        "page), unpack it so that the folders above sit directly under the root, or point "
        "the reader at the right folder. Without it, the embedded synthetic stand-in "
        "(aerialseg.data.synthetic.ensure_synthetic) writes the same layout."
    )


def _read_tif(path: Path) -> np.ndarray:
    return np.asarray(tifffile.imread(path))


def _as_hwc(img: np.ndarray, path: Path, channels: int) -> np.ndarray:
    """Bring an image to (H, W, C>=channels); accepts planar (C, H, W) files too."""
    if img.ndim == 3 and img.shape[-1] < channels <= img.shape[0]:
        img = np.moveaxis(img, 0, -1)
    if img.ndim != 3 or img.shape[-1] < channels:
        raise ValueError(f"{path}: expected an image with {channels} channels, got shape "
                         f"{img.shape}")
    return img[..., :channels]


def _as_hw(img: np.ndarray, path: Path) -> np.ndarray:
    img = np.squeeze(img)
    if img.ndim == 3:  # e.g. an RGB-saved height image: take the first channel
        img = img[..., 0] if img.shape[-1] <= 4 else img[0]
    if img.ndim != 2:
        raise ValueError(f"{path}: expected a single-band raster, got shape {img.shape}")
    return img


def _load_area(root: Path, area: int, files: dict[str, Path], split: str) -> Scene:
    top = _as_hwc(_read_tif(files["top"]), files["top"], 3)
    dsm = _as_hw(_read_tif(files["dsm"]), files["dsm"]).astype(np.float32)
    if files["ndsm"].is_file():
        ndsm_path = files["ndsm"]
        ndsm = _as_hw(_read_tif(ndsm_path), ndsm_path).astype(np.float32)
    else:
        ndsm_path = files["ndsm_gerke"]
        with Image.open(ndsm_path) as im:  # 8-bit grey values, kept unscaled (see module doc)
            ndsm = _as_hw(np.asarray(im.convert("L")), ndsm_path).astype(np.float32)
    gts = _as_hwc(_read_tif(files["gts"]), files["gts"], 3)
    eroded_path = files["gts_eroded"]
    eroded = _as_hwc(_read_tif(eroded_path), eroded_path, 3) if eroded_path.is_file() else None

    shapes = {files["top"]: top.shape[:2], files["dsm"]: dsm.shape, ndsm_path: ndsm.shape,
              files["gts"]: gts.shape[:2]}
    if eroded is not None:
        shapes[eroded_path] = eroded.shape[:2]
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{p.relative_to(root)}: {s[0]}x{s[1]}" for p, s in shapes.items())
        raise ValueError(f"Vaihingen area {area}: the files of one area must have the same "
                         f"size (H x W), got {listed}. Check that they belong to the same "
                         "area and were not resampled.")

    labels = ISPRS.decode(gts, source=str(files["gts"]))
    eval_mask = None
    if eroded is not None:
        # black marks the eroded boundary
        dec = ISPRS.decode(eroded, source=str(eroded_path), extra_ignore=((0, 0, 0),))
        eval_mask = (dec != IGNORE_INDEX) & (labels != IGNORE_INDEX)
    irrg = np.moveaxis(top, -1, 0)
    if irrg.dtype == np.uint8:
        irrg = irrg.astype(np.float32) / 255.0
    else:  # 16-bit or float orthophotos: scale by the dtype's range
        irrg = irrg.astype(np.float32)
        if np.issubdtype(top.dtype, np.integer):
            irrg /= float(np.iinfo(top.dtype).max)
    bands = np.concatenate([irrg, dsm[None], ndsm[None]], axis=0).astype(np.float32)
    return Scene(name=f"area{area}", bands=bands, band_names=VAIHINGEN_BANDS, labels=labels,
                 classes=ISPRS, split=split, eval_mask=eval_mask)


def load_vaihingen(root: Path, split: str, *, areas: Sequence[int] | None = None
                   ) -> list[Scene]:
    """Read the scenes of one split from a Vaihingen-layout folder.

    Args:
        root: folder holding ``top/``, ``dsm/``, ``ndsm/``, ``gts_for_participants/`` (and
            optionally ``gts_eroded_for_participants/``).
        split: ``"train"`` or ``"val"``; picks the split's areas that exist under ``root``
            (see :func:`vaihingen_split_areas`). Recorded as ``Scene.split``.
        areas: read exactly these area ids instead (all must exist).

    Returns:
        One :class:`Scene` per area, bands ``("ir", "r", "g", "dsm", "ndsm")`` (IR-R-G scaled
        to [0, 1]), ``eval_mask`` from the eroded ground truth if present, else None.

    Raises:
        DatasetNotFoundError: the root, or a required file of a selected area, is missing.
        ValueError: unknown split, or the files of an area differ in size.
        LabelColourError: a ground-truth file holds colours outside the ISPRS palette.
    """
    root = Path(root)
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    if not root.is_dir():
        raise _not_found(root, "the root folder does not exist", [])
    if areas is None:
        candidates = vaihingen_split_areas(root)[split]
        selected = [a for a in candidates if vaihingen_files(root, a)["top"].is_file()]
        if not selected:
            missing = [vaihingen_files(root, a)["top"] for a in candidates]
            raise _not_found(root, f"no orthophoto of the {split!r} split's areas "
                             f"{list(candidates)} exists", missing)
    else:
        selected = [int(a) for a in areas]
        if not selected:
            raise ValueError("areas is empty: pass None to read the whole split")
    missing: list[Path] = []
    for a in selected:
        f = vaihingen_files(root, a)
        missing += [f[k] for k in ("top", "dsm", "gts") if not f[k].is_file()]
        if not (f["ndsm"].is_file() or f["ndsm_gerke"].is_file()):
            missing.append(f["ndsm"])
    if missing:
        raise _not_found(root, f"required files of areas {selected} are missing", missing)
    return [_load_area(root, a, vaihingen_files(root, a), split) for a in selected]
