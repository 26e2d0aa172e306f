"""Test data in the official ISPRS layouts, built from the real Vaihingen samples in
../shared/data/isprs-samples (and tiny generated Potsdam tiles).

The samples (see shared/data/README.md) are a 512 px crop of area 1 with its official eroded
ground truth (as class indices) and the whole area-1 tile downsampled about 4x with its full
colour-coded ground truth. They have no DSM: the fixture synthesises heights from the labels
(buildings and trees raised, a gentle terrain slope), so its height bands are cleaner than
real ones. It is for exercising readers, checker and chapters, never for judging a model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy import ndimage

from aerialseg.data.classes import ISPRS
from aerialseg.data.isprs import vaihingen_files
from aerialseg.metrics import eroded_eval_mask
from aerialseg.paths import shared_data

SAMPLES = shared_data() / "isprs-samples"
CROP = SAMPLES / "vaihingen-crop"
RESIZED = SAMPLES / "vaihingen-area1-resized"


def need_samples() -> Path:
    """The samples folder, or skip the test with the reason."""
    if not (CROP.is_dir() and RESIZED.is_dir()):
        pytest.skip(f"real ISPRS samples not found at {SAMPLES} (they live beside the checkout "
                    "in ../shared/data, or set AERIALSEG_SHARED_DATA; see "
                    "shared/data/README.md)")
    return SAMPLES


def real_crop() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 512 px crop: IR-R-G (H, W, 3) uint8, official eroded index map (0 = boundary,
    1..6 = classes), and a full ground truth (class indices) reconstructed from it.

    The full ground truth of the crop is not in the sample: the eroded band is filled from
    the nearest evaluated pixel, which puts the class boundaries in the middle of the band.
    """
    need_samples()
    top = np.asarray(Image.open(CROP / "img_dir" / "area1_0_0_512_512.png").convert("RGB"))
    ann = np.asarray(Image.open(CROP / "ann_dir" / "area1_0_0_512_512.png"))
    idx = ndimage.distance_transform_edt(ann == 0, return_distances=False, return_indices=True)
    full = ann[idx[0], idx[1]].astype(np.int64) - 1
    return top, ann, full


def real_resized() -> tuple[np.ndarray, np.ndarray]:
    """The whole area-1 tile downsampled ~4x: IR-R-G (H, W, 3) uint8 and its raw RGBA label."""
    need_samples()
    image = tifffile.imread(RESIZED / "top_mosaic_09cm_area1_image_resized.tif")[..., :3]
    label = tifffile.imread(RESIZED / "top_mosaic_09cm_area1_label_resized.tif")
    return np.ascontiguousarray(image), label


def fill_ignore(labels: np.ndarray) -> np.ndarray:
    """Labels with every ignore pixel (255) given the class of the nearest labelled pixel.

    Snapping the resampled tile leaves a few isolated three-colour blends as ignore; a full
    ground truth has none.
    """
    idx = ndimage.distance_transform_edt(labels == 255, return_distances=False,
                                         return_indices=True)
    return labels[idx[0], idx[1]]


def synthetic_heights(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A DSM (metres) and an 8-bit nDSM for a label map: stand-ins for the missing heights."""
    rng = np.random.default_rng(seed)
    h, w = labels.shape
    above = np.select([labels == 1, labels == 3, labels == 4, labels == 5],
                      [8.0, 6.0, 1.5, 0.8], 0.0)
    above += ndimage.gaussian_filter(rng.normal(0, 1.5, (h, w)), 6) * (above > 0)
    ndsm = ndimage.gaussian_filter(np.clip(above, 0, None), 1.0)
    yy, xx = np.mgrid[0:h, 0:w]
    dsm = (265.0 + 0.004 * yy + 0.002 * xx + ndsm).astype(np.float32)
    return dsm, np.clip(np.rint(ndsm * 12), 0, 255).astype(np.uint8)


def write_area(root: Path, area: int, top: np.ndarray, full: np.ndarray,
               eroded_mask: np.ndarray, seed: int) -> None:
    """One area in the official Vaihingen layout, with Gerke-style nDSM JPEG."""
    f = vaihingen_files(root, area)
    for p in f.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    dsm, ndsm8 = synthetic_heights(full, seed)
    tifffile.imwrite(f["top"], np.ascontiguousarray(top), photometric="rgb")
    tifffile.imwrite(f["dsm"], dsm)
    Image.fromarray(ndsm8).save(f["ndsm_gerke"], quality=95)
    gts = ISPRS.encode(full)
    tifffile.imwrite(f["gts"], gts, photometric="rgb")
    eroded = gts.copy()
    eroded[~eroded_mask] = 0
    tifffile.imwrite(f["gts_eroded"], eroded, photometric="rgb")


def build_vaihingen_fixture(root: Path) -> Path:
    """Four areas in the official layout from the real samples.

    train area1: the real crop, its official eroded ground truth; train area3: the
    downsampled tile, labels snapped to the palette, eroded by our disk-3 rule; val area11
    and area15: the same, mirrored (so validation repeats training content: plumbing only).
    """
    top, ann, full = real_crop()
    image, label = real_resized()
    res_full = fill_ignore(ISPRS.decode(label, snap=True))
    res_eroded = eroded_eval_mask(res_full, 3)
    write_area(root, 1, top, full, ann != 0, seed=1)
    write_area(root, 3, image, res_full, res_eroded, seed=3)
    write_area(root, 11, top[:, ::-1], full[:, ::-1], (ann != 0)[:, ::-1], seed=11)
    write_area(root, 15, image[::-1], res_full[::-1], res_eroded[::-1], seed=15)
    return root


def build_potsdam_fixture(root: Path, tiles: tuple[str, ...] | None = None, *,
                          size: tuple[int, int] = (40, 48),
                          products: tuple[str, ...] = ("rgb", "irrg", "rgbir"),
                          labels_folder: str = "5_Labels_all", eroded: bool = True,
                          heights: bool = True) -> Path:
    """Tiny generated tiles in the official Potsdam layout (no real Potsdam data is shared).

    Pixel values are built so that bands can be told apart: R = 10 + tile row, G = 20,
    B = 30, IR = 40 + class index, DSM = 100 + class index (metres), nDSM = 5 * class index.
    """
    from aerialseg.data.isprs import POTSDAM_LABELLED_TILES, potsdam_files

    tiles = POTSDAM_LABELLED_TILES if tiles is None else tiles
    h, w = size
    for i, tile in enumerate(tiles):
        f = potsdam_files(root, tile)
        f["label"] = root / labels_folder / f["label"].name
        f["label_eroded"] = root / (labels_folder + "_noBoundary") / f["label_eroded"].name
        rng = np.random.default_rng(i)
        labels = np.zeros((h, w), np.int64)
        for c in range(1, 6):
            y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
            labels[y:y + 8, x:x + 10] = c
        r = np.full((h, w), 10 + i, np.uint8)
        g, b = np.full((h, w), 20, np.uint8), np.full((h, w), 30, np.uint8)
        ir = (40 + labels).astype(np.uint8)
        data = {"rgb": np.dstack([r, g, b]), "irrg": np.dstack([ir, r, g]),
                "rgbir": np.dstack([r, g, b, ir])}
        for p in products:
            f[p].parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(f[p], data[p], photometric="rgb")  # RGBIR: 4th as extra sample
        if heights:
            for k in ("dsm", "ndsm"):
                f[k].parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(f["dsm"], (100 + labels).astype(np.float32))
            Image.fromarray((5 * labels).astype(np.uint8)).save(f["ndsm"], quality=100)
        f["label"].parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(f["label"], ISPRS.encode(labels), photometric="rgb")
        if eroded:
            f["label_eroded"].parent.mkdir(parents=True, exist_ok=True)
            er = ISPRS.encode(labels)
            er[~eroded_eval_mask(labels, 1)] = 0
            tifffile.imwrite(f["label_eroded"], er, photometric="rgb")
    return root


def save_clip(root: Path, folder: str, name: str, img: np.ndarray, ann: np.ndarray) -> None:
    """One clip in the mmsegmentation-converted layout: ``img_dir/<folder>/<name>`` and
    ``ann_dir/<folder>/<name>`` (PNG)."""
    for kind, arr in (("img_dir", img), ("ann_dir", ann)):
        (root / kind / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(arr)).save(root / kind / folder / name)


MMSEG_CROP_NAME = "area1_0_0_512_512.png"
"""The real crop's clip name, as mmsegmentation's converter wrote it."""


def real_mmseg_clip() -> tuple[np.ndarray, np.ndarray]:
    """The real crop as converted: IR-R-G (H, W, 3) uint8 and its index label (0 = boundary)."""
    need_samples()
    img = np.asarray(Image.open(CROP / "img_dir" / MMSEG_CROP_NAME).convert("RGB"))
    ann = np.asarray(Image.open(CROP / "ann_dir" / MMSEG_CROP_NAME))
    return img, ann


def build_mmseg_vaihingen(root: Path) -> Path:
    """Vaihingen in the mmsegmentation-converted layout, from the real crop.

    area1: the real clip as converted (train folder); area11: the mirrored crop cut into
    overlapping 256 px clips as the converter cuts tiles (val folder).
    """
    img, ann = real_mmseg_clip()
    save_clip(root, "train", MMSEG_CROP_NAME, img, ann)
    mimg, mann = img[:, ::-1], ann[:, ::-1]
    for y0 in (0, 128, 256):
        for x0 in (0, 128, 256):
            box = (x0, y0, x0 + 256, y0 + 256)
            save_clip(root, "val", f"area11_{x0}_{y0}_{x0 + 256}_{y0 + 256}.png",
                      mimg[box[1]:box[3], box[0]:box[2]], mann[box[1]:box[3], box[0]:box[2]])
    return root


def official_vaihingen(tmp_path_factory) -> Path:
    """Build the official-layout Vaihingen fixture in a fresh temporary folder.

    Test modules wrap this in their own module-scoped fixture: a conftest.py here would
    shadow tests/conftest.py for modules that import helpers from ``conftest``.
    """
    need_samples()
    return build_vaihingen_fixture(tmp_path_factory.mktemp("official") / "vaihingen")

