"""Test data in the LoveDA Zenodo layout (``Train|Val/{Urban,Rural}/{images_png,masks_png}``),
generated (no real LoveDA data is shared)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

IDS = {("Train", "Rural"): (0, 1, 2), ("Train", "Urban"): (1366, 1367),
       ("Val", "Rural"): (2522,), ("Val", "Urban"): (3514, 3515)}
"""Image numbers per split and domain (as the release numbers them)."""


def build_loveda(root: Path, size: int = 24, ids=IDS, block: int = 1) -> Path:
    """Images whose red channel encodes the mask value (R = 10 * value), masks 0..7.

    ``block``: side of the squares of one value (1: every pixel drawn on its own; larger
    squares give objects and an eroded protocol that keeps pixels).
    """
    for (split, domain), numbers in ids.items():
        for k, n in enumerate(numbers):
            rng = np.random.default_rng(n)
            cells = rng.integers(0, 8, (-(-size // block),) * 2, dtype=np.uint8)
            mask = np.ascontiguousarray(np.kron(cells, np.ones((block, block), np.uint8))[
                :size, :size])
            mask[0, 0] = 0  # no-data
            img = np.dstack([10 * mask, np.full_like(mask, 50 + k), np.full_like(mask, 200)])
            for kind, arr in (("images_png", img), ("masks_png", mask)):
                folder = root / split / domain / kind
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(folder / f"{n}.png")
    return root
