"""The eroded-boundary evaluation mask of a label map (the ISPRS protocol's pixel set)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from aerialseg.data.classes import IGNORE_INDEX


def disk(radius: int) -> np.ndarray:
    """Boolean disk footprint of the given radius (side 2r+1)."""
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    return (x * x + y * y) <= radius * radius


def eroded_eval_mask(labels: np.ndarray, radius: int = 3,
                     ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Eroded-boundary evaluation mask (ISPRS protocol).

    A pixel is evaluated if it survives a binary erosion of its own class mask by a disk of
    ``radius``; the image border is not a boundary (``border_value=1``). Ignore pixels are
    never evaluated.
    """
    labels = np.asarray(labels)
    mask = np.zeros(labels.shape, bool)
    if radius <= 0:
        return labels != ignore_index
    fp = disk(radius)
    for c in np.unique(labels):
        if c == ignore_index:
            continue
        m = labels == c
        mask |= ndimage.binary_erosion(m, structure=fp, border_value=1) & m
    return mask
