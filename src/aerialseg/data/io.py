"""Reading image and raster files, with errors that name the file.

Every reader of the library goes through these functions, so a truncated JPEG, PNG or TIFF
raises :class:`~aerialseg.data.errors.CorruptFileError` naming the file (not PIL's
``image file is truncated`` or tifffile's ``mmap length is greater than file size``), and a
raster with NaN or infinite values raises
:class:`~aerialseg.data.errors.NonFiniteRasterError` with the file name and the count.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from aerialseg.data.errors import CorruptFileError, NonFiniteRasterError

_TIFF = (".tif", ".tiff")


def _damaged(path: Path, why: object) -> CorruptFileError:
    return CorruptFileError(
        f"{path}: cannot read the file ({why}). It is damaged or incomplete (a truncated "
        "download or extraction?): download and extract it again; `aerialseg data check` "
        "lists every damaged file of a dataset")


def tiff_problem(path: Path) -> str | None:
    """Why the TIFF at ``path`` cannot be read completely, or None if its data is all there.

    Reads the header only: the image data of the first page must end inside the file.
    """
    try:
        with tifffile.TiffFile(path) as tf:
            page = tf.pages[0]
            size = os.path.getsize(path)
            ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=True)]
    except Exception as exc:  # a header that does not parse is damaged too
        return f"unreadable TIFF header: {exc}"
    if not ends or max(ends) > size:
        return (f"the file ends at byte {size} but its image data runs to byte "
                f"{max(ends) if ends else '?'} (truncated download or extraction)")
    return None


def raster_size(path: Path) -> tuple[int, int]:
    """(H, W) of a raster from its header, without reading the pixels.

    Raises:
        CorruptFileError: the header cannot be read.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in _TIFF:
            with tifffile.TiffFile(path) as tf:
                page = tf.pages[0]
                return int(page.imagelength), int(page.imagewidth)
        with Image.open(path) as im:
            return int(im.height), int(im.width)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise _damaged(path, exc) from exc


def read_image(path: Path, mode: str | None = None, *, palette_rgb: bool = False
               ) -> np.ndarray:
    """Decode a PNG/JPEG (any format PIL reads) completely.

    Args:
        path: the file.
        mode: convert to this PIL mode first (``"RGB"`` for colour-coded masks, palette
            PNGs included); None keeps the stored values (palette PNGs give their indices).
        palette_rgb: with ``mode`` None, still convert palette images to RGB.

    Raises:
        CorruptFileError: the file is truncated or damaged (names the file).
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()  # decodes everything: a truncated file fails here
            if mode is None and palette_rgb and im.mode in ("P", "PA"):
                mode = "RGB"
            if mode is not None and im.mode != mode:
                im = im.convert(mode)
            return np.asarray(im).copy()
    except FileNotFoundError:
        raise
    except Exception as exc:  # OSError, SyntaxError, zlib.error, ...: all mean "damaged"
        raise _damaged(path, exc) from exc


def read_raster(path: Path, max_size: int | None = None) -> np.ndarray:
    """Read a raster as (H, W) or (H, W, C), cropped to the top-left ``max_size`` square.

    Planar TIFFs are brought to channels-last and palette TIFFs/PNGs to RGB. Uncompressed
    TIFFs are memory-mapped when cropping, so only the window is read from disk.

    Raises:
        CorruptFileError: the file is truncated or damaged (names the file).
    """
    path = Path(path)
    win = slice(0, max_size) if max_size is not None else slice(None)
    if path.suffix.lower() not in _TIFF:
        return np.ascontiguousarray(read_image(path, palette_rgb=True)[win, win])
    problem = tiff_problem(path)
    if problem:
        raise _damaged(path, problem)
    try:
        with tifffile.TiffFile(path) as tf:
            page = tf.pages[0]
            planar = (page.samplesperpixel > 1
                      and page.planarconfig == tifffile.PLANARCONFIG.SEPARATE)
            cmap = page.colormap if page.photometric == tifffile.PHOTOMETRIC.PALETTE else None
            mappable = max_size is not None and page.is_memmappable
            arr = None if mappable else page.asarray()
        if arr is None:
            mm = tifffile.memmap(path, mode="r")
            arr = np.array(mm[:, win, win] if planar else mm[win, win])
            del mm
        elif max_size is not None:
            arr = arr[:, win, win] if planar else arr[win, win]
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise _damaged(path, exc) from exc
    if planar:
        arr = np.moveaxis(arr, 0, -1)
    if cmap is not None and arr.ndim == 2:
        lut = np.asarray(cmap).T
        lut = (lut >> 8 if lut.max() > 255 else lut).astype(np.uint8)  # 16-bit colour map
        arr = lut[arr]
    return np.ascontiguousarray(arr)


def count_nonfinite(arr: np.ndarray) -> int:
    """Number of NaN or infinite values (0 for integer arrays)."""
    if not np.issubdtype(arr.dtype, np.floating):
        return 0
    return int(arr.size - np.count_nonzero(np.isfinite(arr)))


def require_finite(arr: np.ndarray, path: Path, what: str = "raster") -> np.ndarray:
    """Return ``arr`` unchanged, or raise if it holds NaN or infinite values.

    The ISPRS rasters have no no-data value: a NaN in a DSM is a processing error, and
    letting it through would silently drop pixels from training and evaluation.

    Raises:
        NonFiniteRasterError: naming the file and counting the NaN and infinite pixels.
    """
    bad = count_nonfinite(arr)
    if bad:
        nan = int(np.isnan(arr).sum())
        raise NonFiniteRasterError(
            f"{path}: the {what} has {bad} non-finite pixel values ({nan} NaN, {bad - nan} "
            f"infinite) of {arr.size}. The readers refuse them rather than drop those pixels "
            "silently: fill the holes (e.g. gdal_fillnodata.py, or interpolate from the "
            "neighbours) or obtain an intact copy of the file")
    return arr
