"""Chapter 09 on LoveDA: a small generated set in the Zenodo layout, with objects to count.

``python tests/papers/lossd/test_lossd_chapter.py DIR`` writes the fixture to ``DIR`` (to run
the chapter by hand: ``aerialseg book run --only 09 --profile smoke --dataset loveda`` with
``data_root``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

IDS = {("Train", "Rural"): (0, 1, 2), ("Train", "Urban"): (1366, 1367),
       ("Val", "Rural"): (2522,), ("Val", "Urban"): (3514, 3515)}
COLOURS = {0: (0, 0, 0), 1: (200, 200, 200), 2: (180, 60, 60), 3: (120, 120, 130),
           4: (40, 80, 200), 5: (190, 160, 110), 6: (30, 110, 40), 7: (150, 200, 90)}
"""Mean RGB of each LoveDA mask value (0 no-data, 1 background ... 7 agriculture)."""


def structured_mask(rng: np.random.Generator, size: int, urban: bool) -> np.ndarray:
    """A LoveDA mask (values 0-7) with roads, buildings, water, forest, barren land."""
    m = np.full((size, size), 1 if urban else 7, np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for _ in range(2):  # forest blobs
        cy, cx, r = rng.integers(0, size, 2).tolist() + [int(rng.integers(size // 10,
                                                                          size // 5))]
        m[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 6
    cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
    m[((yy - cy) / (size / 8)) ** 2 + ((xx - cx) / (size / 5)) ** 2 < 1] = 4  # water
    y0, x0 = rng.integers(0, size - size // 5, 2)
    m[y0:y0 + size // 6, x0:x0 + size // 5] = 5  # barren
    for pos in rng.integers(size // 8, size - size // 8, 2):  # one road each way
        w = int(rng.integers(5, 10))
        m[pos:pos + w, :] = 3
        m[:, pos:pos + w] = 3
    for _ in range(10 if urban else 4):  # buildings
        h, w = rng.integers(8, 26, 2)
        y, x = rng.integers(0, size - 26, 2)
        m[y:y + h, x:x + w] = 2
    m[:6, :6] = 0  # no-data
    return m


def build_structured_loveda(root: str | Path, size: int = 256, seed: int = 0) -> Path:
    """LoveDA fixture in the Zenodo layout: structured masks, images coloured by class."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    lut = np.array([COLOURS[v] for v in range(8)], np.float32)
    for (split, domain), numbers in IDS.items():
        for n in numbers:
            mask = structured_mask(rng, size, domain == "Urban")
            img = lut[mask] + rng.normal(0, 25, (size, size, 3))
            img = np.clip(img, 0, 255).astype(np.uint8)
            for kind, arr in (("images_png", img), ("masks_png", mask)):
                folder = root / split / domain / kind
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(folder / f"{n}.png")
    return root


def test_fixture_loads_with_every_class(tmp_path):
    from aerialseg.data.classes import LOVEDA
    from aerialseg.data.registry import data_config, load_split

    root = build_structured_loveda(tmp_path / "loveda", size=96)
    data = load_split(data_config("loveda", "smoke", data_root=str(root)))
    assert data.classes is LOVEDA and len(data.train) == 2 and len(data.val) == 2
    seen = np.unique(np.concatenate([s.labels.ravel() for s in data.train + data.val]))
    assert set(range(7)) <= set(seen.tolist())  # every class has objects to count


@pytest.mark.chapter
def test_chapter_runs_on_loveda(tmp_path):
    from aerialseg.book import run_chapter

    root = build_structured_loveda(tmp_path / "loveda", size=128)
    run = run_chapter("09_distance_loss", output_dir=tmp_path / "out", timeout=900,
                      parameters={"profile": "smoke", "device": "cpu", "dataset": "loveda",
                                  "data_root": str(root)})
    assert run.error is None, run.error


if __name__ == "__main__":
    print(build_structured_loveda(sys.argv[1]))
