"""Training samples: normalisation, overlapping grid patches with D4 variants, random crops."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.data.scene import Scene


@dataclass(frozen=True)
class BandStats:
    """Per-band mean and standard deviation of the training split (z-score inputs)."""

    bands: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_scenes(cls, scenes: Sequence[Scene], bands: Sequence[str]) -> BandStats:
        """Statistics over every pixel of ``scenes`` (computed on the training split only)."""
        if not scenes:
            raise ValueError("no training scenes to compute band statistics from")
        total = np.zeros(len(bands))
        sq = np.zeros(len(bands))
        n = 0
        for s in scenes:
            x = s.select_bands(tuple(bands)).reshape(len(bands), -1).astype(np.float64)
            total += x.sum(1)
            sq += (x * x).sum(1)
            n += x.shape[1]
        mean = total / n
        std = np.sqrt(np.maximum(sq / n - mean * mean, 1e-12))
        return cls(tuple(bands), tuple(float(v) for v in mean), tuple(float(v) for v in std))

    def apply(self, scene: Scene) -> np.ndarray:
        """The scene's bands, normalised: float32 (C, H, W)."""
        x = scene.select_bands(self.bands).astype(np.float32)
        m = np.asarray(self.mean, np.float32)[:, None, None]
        s = np.asarray(self.std, np.float32)[:, None, None]
        return (x - m) / s


def d4(a: np.ndarray, k: int) -> np.ndarray:
    """The k-th (0..7) element of the dihedral group applied to the last two axes."""
    if k >= 4:
        a = a[..., :, ::-1]
    return np.rot90(a, k % 4, axes=(-2, -1))


def grid_windows(h: int, w: int, size: int, overlap: float) -> list[tuple[int, int]]:
    """Top-left corners of ``size`` windows covering (h, w) with the given overlap.

    The last window in each direction is aligned with the border so every pixel is covered.
    """
    if h < size or w < size:
        raise ValueError(f"a {h}x{w} px scene is smaller than the {size} px patch size; "
                         "lower crop_size or use larger scenes")
    stride = max(1, int(round(size * (1 - overlap))))

    def starts(n: int) -> list[int]:
        s = list(range(0, n - size + 1, stride))
        if s[-1] != n - size:
            s.append(n - size)
        return s

    return [(y, x) for y in starts(h) for x in starts(w)]


class SegmentationPatches(Dataset):
    """Patches of normalised scenes, as dicts ``image`` (C,h,w), ``label`` (h,w) + extras.

    Two samplers share one class:
    - ``"grid"``: every window of an overlapping grid, times the 8 D4 variants if
      ``dihedral_aug`` (Kampffmeyer's FCN training set).
    - ``"random_crop"``: ``length`` random crops with random D4 and optional rescaling
      (``scale_range``), deterministic from ``(seed, epoch, index)``.

    ``extras`` are further per-scene rasters (..., H, W) (e.g. cached EFM maps, distance
    maps) cut and transformed exactly like the labels; they are read at access time, so a
    callback may update them between epochs.
    """

    def __init__(self, images: Sequence[np.ndarray], labels: Sequence[np.ndarray], *,
                 size: int, sampler: str = "grid", overlap: float = 0.5,
                 dihedral_aug: bool = True, scale_range: tuple[float, float] | None = None,
                 length: int | None = None, seed: int = 0,
                 extras: dict[str, list[np.ndarray]] | None = None) -> None:
        if len(images) != len(labels) or not images:
            raise ValueError("need the same, non-zero number of images and label maps")
        self.images, self.labels = list(images), list(labels)
        self.size, self.sampler, self.seed = size, sampler, seed
        self.dihedral_aug, self.scale_range = dihedral_aug, scale_range
        self.extras = extras or {}
        self.epoch = 0
        if sampler == "grid":
            self.windows = [(i, y, x) for i, lab in enumerate(self.labels)
                            for (y, x) in grid_windows(*lab.shape, size, overlap)]
            self.variants = 8 if dihedral_aug else 1
            self._len = len(self.windows) * self.variants
        elif sampler == "random_crop":
            for lab in self.labels:
                if min(lab.shape) < size:
                    raise ValueError(f"a {lab.shape[0]}x{lab.shape[1]} px scene is smaller than "
                                     f"the {size} px crop size; lower crop_size")
            self._len = int(length or 64)
        else:
            raise ValueError(f"sampler must be 'grid' or 'random_crop', got {sampler!r}")

    def __len__(self) -> int:
        return self._len

    def set_epoch(self, epoch: int) -> None:
        """Make random crops differ between epochs yet repeat on resume."""
        self.epoch = epoch

    def _cut(self, i: int, y: int, x: int, k: int, size: int) -> tuple[np.ndarray, ...]:
        sl = (slice(y, y + size), slice(x, x + size))
        arrays = [self.images[i][(slice(None), *sl)], self.labels[i][sl]]
        arrays += [self.extras[name][i][(..., *sl)] for name in self.extras]
        return tuple(d4(a, k) for a in arrays)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        if self.sampler == "grid":
            i, y, x = self.windows[idx // self.variants]
            parts = self._cut(i, y, x, idx % self.variants, self.size)
        else:
            rng = np.random.default_rng([self.seed, self.epoch, idx])
            i = int(rng.integers(len(self.images)))
            h, w = self.labels[i].shape
            scale = 1.0
            if self.scale_range is not None:
                scale = float(np.exp(rng.uniform(np.log(self.scale_range[0]),
                                                  np.log(self.scale_range[1]))))
            # cut a window that becomes ``size`` after rescaling (clipped to the scene)
            src = int(min(h, w, max(8, round(self.size / scale))))
            y = int(rng.integers(h - src + 1))
            x = int(rng.integers(w - src + 1))
            k = int(rng.integers(8)) if self.dihedral_aug else 0
            parts = self._cut(i, y, x, k, src)
            if src != self.size:
                z = self.size / src
                img = ndimage.zoom(parts[0], (1, z, z), order=1)[:, :self.size, :self.size]
                rest = [ndimage.zoom(p, (1,) * (p.ndim - 2) + (z, z), order=0)[
                    ..., :self.size, :self.size] for p in parts[1:]]
                parts = (img, *rest)
        out = {"image": torch.from_numpy(np.ascontiguousarray(parts[0], np.float32)),
               "label": torch.from_numpy(np.ascontiguousarray(parts[1]).astype(np.int64))}
        for name, arr in zip(self.extras, parts[2:], strict=True):
            out[name] = torch.from_numpy(np.ascontiguousarray(arr, np.float32))
        return out


def label_shares(labels: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """Fraction of non-ignored pixels per class."""
    counts = np.zeros(num_classes, np.int64)
    for lab in labels:
        v = lab[lab != IGNORE_INDEX].ravel().astype(np.int64)
        counts += np.bincount(v, minlength=num_classes)[:num_classes]
    return counts / max(int(counts.sum()), 1)
