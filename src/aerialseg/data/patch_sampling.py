"""Training patches for the patch-based CNN (Kampffmeyer et al. 2016, methods.md §1).

Each patch is labelled by its centre pixel. Sampling, with the reconstructed details:

- **Cars**: one patch per car, centred on the car. A car is a connected component of car
  pixels (8-connectivity, so a car whose mask touches itself only diagonally stays one car);
  its centre is the rounded centroid, or, when that pixel is not on the component (a
  concave mask), the component pixel nearest to the centroid, so the centre label is
  always car. Each car patch is kept unrotated (``keep_unrotated``, default True: the
  original view is the most realistic sample) and rotated ``car_rotations`` times by angles
  drawn uniformly from [0, 360). Rotation resamples the image bilinearly from a larger
  crop, so the rotated patch has no blank corners; the centre pixel maps onto itself, so
  its label stays car (no label resampling is needed since only the centre label is used).
- **Other classes**: random pixels of that class as patch centres.
- **Balance**: every class gets the same number of patches: ``"match_car"`` = the number of
  car patches after augmentation; an int sets that number for every class (car patches are
  then subsampled, or topped up with further random rotations of the cars, cycling through
  them). A class with too few pixels is sampled with replacement; a class with none is
  skipped with a warning.
- **Borders**: ``border="reflect"`` allows every pixel as a centre and fills the part of a
  patch outside the image by mirror reflection; ``"valid"`` only uses centres at least
  ``patch_size // 2`` px from the edge (a rotated car patch's corners may still reach up to
  about 40 % further out; those few pixels are reflected).
- Pixels whose label is not in ``classes`` (ignore = 255, and clutter when the caller leaves
  it out) are never centres.

Patches come back in random order. For big datasets, :func:`sample_patch_centres` returns
only the centres and angles, and :func:`extract_patches` cuts any subset of them on
demand (e.g. inside a ``Dataset``), since all patches of Vaihingen at 65x65x5 float32 take
several GB.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class PatchCentres:
    """Patch specifications, one entry per patch (all arrays of length N).

    Attributes:
        image: index into the image list.
        row, col: centre pixel.
        angle: rotation in degrees, counter-clockwise as displayed; 0 = none.
        label: the patch label (the class of the centre pixel).
    """

    image: np.ndarray
    row: np.ndarray
    col: np.ndarray
    angle: np.ndarray
    label: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    def take(self, idx: np.ndarray) -> PatchCentres:
        """The entries at ``idx``."""
        return PatchCentres(self.image[idx], self.row[idx], self.col[idx], self.angle[idx],
                            self.label[idx])


def car_centres(label: np.ndarray, car_class: int) -> np.ndarray:
    """Centre pixel (row, col) of every car (8-connected component of ``car_class``).

    The rounded centroid, or the component pixel nearest to it when the centroid is off
    the component. Returns int64 (K, 2).
    """
    mask = np.asarray(label) == car_class
    comp, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return np.zeros((0, 2), np.int64)
    cent = np.asarray(ndimage.center_of_mass(mask, comp, np.arange(1, n + 1)), np.float64)
    out = np.rint(cent).astype(np.int64)
    on = comp[out[:, 0], out[:, 1]] == np.arange(1, n + 1)
    if not on.all():
        slices = ndimage.find_objects(comp)
        for i in np.flatnonzero(~on):
            sl = slices[i]
            rr, cc = np.nonzero(comp[sl] == i + 1)
            rr, cc = rr + sl[0].start, cc + sl[1].start
            k = np.argmin((rr - cent[i, 0]) ** 2 + (cc - cent[i, 1]) ** 2)
            out[i] = (rr[k], cc[k])
    return out


def _valid_mask(shape: tuple[int, int], half: int, border: str) -> np.ndarray | None:
    if border == "reflect":
        return None
    m = np.zeros(shape, bool)
    m[half:shape[0] - half, half:shape[1] - half] = True
    return m


def sample_patch_centres(
    labels: Sequence[np.ndarray],
    *,
    patch_size: int = 65,
    num_classes: int,
    classes: Sequence[int],
    car_class: int | None = 4,
    car_rotations: int = 8,
    keep_unrotated: bool = True,
    samples_per_class: int | Literal["match_car"] = "match_car",
    rng: np.random.Generator,
    border: Literal["reflect", "valid"] = "reflect",
) -> PatchCentres:
    """Choose balanced patch centres (and car rotation angles); see the module docstring.

    Args:
        labels: (H, W) label maps, one per image.
        patch_size: odd patch side.
        num_classes: number of model classes (``classes`` must lie in [0, num_classes)).
        classes: classes to sample (the caller leaves out clutter by default).
        car_class: class sampled one patch per car with rotations; None = no special class.
        car_rotations: random rotations per car.
        keep_unrotated: also keep each car's unrotated patch.
        samples_per_class: ``"match_car"`` or the number of patches per class.
        rng: the only source of randomness (same state, same result).
        border: ``"reflect"`` or ``"valid"``.

    Returns:
        The centres, in random order.

    Raises:
        ValueError: bad arguments, or ``"match_car"`` without any car.
    """
    if patch_size < 1 or patch_size % 2 != 1:
        raise ValueError(f"patch_size must be a positive odd number, got {patch_size}")
    if border not in ("reflect", "valid"):
        raise ValueError(f"border must be 'reflect' or 'valid', got {border!r}")
    classes = [int(c) for c in classes]
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
        raise ValueError(f"classes {bad} are outside [0, {num_classes}); pass class indices")
    if car_rotations < 0:
        raise ValueError(f"car_rotations must be >= 0, got {car_rotations}")
    use_car = car_class is not None and car_class in classes
    if samples_per_class == "match_car":
        if not use_car:
            raise ValueError(f"samples_per_class='match_car' needs car_class ({car_class}) "
                             f"among classes {classes}; pass an int instead")
        if car_rotations == 0 and not keep_unrotated:
            raise ValueError("car_rotations=0 with keep_unrotated=False yields no car patches")
    elif not isinstance(samples_per_class, int | np.integer) or samples_per_class < 1:
        raise ValueError(f"samples_per_class must be 'match_car' or a positive int, "
                         f"got {samples_per_class!r}")
    labels = [np.asarray(lab) for lab in labels]
    if any(lab.ndim != 2 for lab in labels):
        raise ValueError("labels must be 2-D (H, W) class-index maps")
    half = patch_size // 2
    masks = [_valid_mask(lab.shape, half, border) for lab in labels]
    parts: list[PatchCentres] = []

    target = 0 if samples_per_class == "match_car" else int(samples_per_class)
    if use_car:
        cars = []
        for i, lab in enumerate(labels):
            cc = car_centres(lab, car_class)
            if masks[i] is not None and len(cc):
                cc = cc[masks[i][cc[:, 0], cc[:, 1]]]
            cars.append(np.column_stack([np.full(len(cc), i, np.int64), cc]))
        car = np.concatenate(cars) if cars else np.zeros((0, 3), np.int64)
        n_cars = len(car)
        per_car = car_rotations + int(keep_unrotated)
        if n_cars == 0:
            if samples_per_class == "match_car":
                raise ValueError(f"no car (class {car_class}) pixels to sample from; pass "
                                 "samples_per_class=<int> to sample the other classes")
            warnings.warn(f"class {car_class} (car) has no pixels; skipped", stacklevel=2)
        else:
            angles = rng.uniform(0.0, 360.0, size=(n_cars, car_rotations))
            if keep_unrotated:
                angles = np.concatenate([np.zeros((n_cars, 1)), angles], axis=1)
            which = np.repeat(np.arange(n_cars), per_car)
            ang = angles.reshape(-1)
            if samples_per_class == "match_car":
                target = len(which)
            elif target < len(which):
                keep = np.sort(rng.choice(len(which), target, replace=False))
                which, ang = which[keep], ang[keep]
            elif target > len(which):
                extra = target - len(which)
                which = np.concatenate([which, np.arange(extra) % n_cars])
                ang = np.concatenate([ang, rng.uniform(0.0, 360.0, size=extra)])
            parts.append(PatchCentres(car[which, 0], car[which, 1], car[which, 2],
                                      ang.astype(np.float64),
                                      np.full(len(which), car_class, np.int64)))

    for c in classes:
        if use_car and c == car_class:
            continue
        flat = []
        for lab, m in zip(labels, masks, strict=True):
            hit = lab == c
            if m is not None:
                hit &= m
            flat.append(np.flatnonzero(hit))
        counts = np.array([len(f) for f in flat], np.int64)
        total = int(counts.sum())
        if total == 0:
            where = " inside the valid border" if border == "valid" else ""
            warnings.warn(f"class {c} has no pixels{where}; skipped", stacklevel=2)
            continue
        pick = rng.choice(total, target, replace=total < target)
        img = np.searchsorted(np.cumsum(counts), pick, side="right")
        offs = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rows, cols = np.empty(target, np.int64), np.empty(target, np.int64)
        for i in np.unique(img):
            sel = img == i
            r, q = np.divmod(flat[i][pick[sel] - offs[i]], labels[i].shape[1])
            rows[sel], cols[sel] = r, q
        parts.append(PatchCentres(img.astype(np.int64), rows, cols, np.zeros(target),
                                  np.full(target, c, np.int64)))

    if not parts:
        raise ValueError(f"none of the classes {classes} has any pixel to sample")
    allc = PatchCentres(*(np.concatenate([getattr(p, f) for p in parts])
                          for f in ("image", "row", "col", "angle", "label")))
    return allc.take(rng.permutation(len(allc)))


def _reflect(idx: np.ndarray, n: int) -> np.ndarray:
    """Mirror indices into [0, n) like ``np.pad(mode="reflect")`` (edge not repeated)."""
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    m = np.mod(idx, period)
    return np.where(m >= n, period - m, m)


def extract_patches(images: Sequence[np.ndarray], centres: PatchCentres, *,
                    patch_size: int = 65) -> np.ndarray:
    """Cut (and rotate) the patches described by ``centres``; reflect outside the image.

    Args:
        images: (C, H, W) arrays, indexed by ``centres.image``.
        centres: from :func:`sample_patch_centres`.
        patch_size: odd patch side.

    Returns:
        float32 (N, C, patch_size, patch_size).
    """
    half = patch_size // 2
    chans = {np.asarray(im).shape[0] for im in images}
    if len(chans) > 1:
        raise ValueError(f"images have different band counts {sorted(chans)}")
    c = chans.pop() if chans else 0
    out = np.empty((len(centres), c, patch_size, patch_size), np.float32)
    off = np.arange(-half, half + 1)
    big = math.ceil(half * math.sqrt(2)) + 2  # rotated corners stay inside, plus bilinear
    big_off = np.arange(-big, big + 1)
    du, dv = np.meshgrid(off.astype(np.float64), off.astype(np.float64), indexing="ij")
    for n in range(len(centres)):
        im = images[int(centres.image[n])]
        h, w = im.shape[1:]
        r, q, a = int(centres.row[n]), int(centres.col[n]), float(centres.angle[n])
        if a == 0.0:
            out[n] = im[:, _reflect(r + off, h)[:, None], _reflect(q + off, w)[None, :]]
            continue
        crop = np.asarray(im[:, _reflect(r + big_off, h)[:, None],
                             _reflect(q + big_off, w)[None, :]], np.float32)
        t = math.radians(a)
        cos, sin = math.cos(t), math.sin(t)
        # Output offset (du, dv) samples the crop at R(t) (du, dv) about its centre pixel.
        coords = np.stack([big + cos * du + sin * dv, big - sin * du + cos * dv])
        for ch in range(c):
            ndimage.map_coordinates(crop[ch], coords, output=out[n, ch], order=1,
                                    mode="nearest")
    return out


def sample_centre_patches(
    images: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    *,
    patch_size: int = 65,
    num_classes: int,
    classes: Sequence[int],
    car_class: int | None = 4,
    car_rotations: int = 8,
    keep_unrotated: bool = True,
    samples_per_class: int | Literal["match_car"] = "match_car",
    rng: np.random.Generator,
    border: Literal["reflect", "valid"] = "reflect",
) -> tuple[np.ndarray, np.ndarray]:
    """Balanced Kampffmeyer training patches: (N, C, P, P) float32 and labels (N,) int64.

    See the module docstring for the sampling rules and :func:`sample_patch_centres` for
    the arguments; ``images`` are (C, H, W) arrays matching ``labels`` in size.
    """
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} label maps")
    for i, (im, lab) in enumerate(zip(images, labels, strict=True)):
        if np.ndim(im) != 3 or np.shape(im)[1:] != np.shape(lab):
            raise ValueError(f"image {i}: expected (C, H, W) matching labels {np.shape(lab)}, "
                             f"got {np.shape(im)}")
    centres = sample_patch_centres(
        labels, patch_size=patch_size, num_classes=num_classes, classes=classes,
        car_class=car_class, car_rotations=car_rotations, keep_unrotated=keep_unrotated,
        samples_per_class=samples_per_class, rng=rng, border=border)
    return extract_patches(images, centres, patch_size=patch_size), centres.label.copy()
