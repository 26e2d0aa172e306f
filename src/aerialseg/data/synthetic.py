"""The embedded default dataset: procedural, seeded urban aerial scenes (9 cm GSD look).

A scene is a small town quarter drawn in a grid frame rotated by a random angle: a road
network (carriageways, verges, sidewalks; spacing, width and waviness vary, some segments
are dropped to make T-junctions), blocks split into parcels (houses with gardens,
driveways, patios and garages; apartment blocks with courtyards; commercial halls with
parking lots; parking lots; parks), buildings as rectangles or compounds of rectangles
with gable, hip or flat roofs, cars as oriented rounded rectangles (about 20 x 45 px)
parked in rows along roads and in lots, clutter as small irregular objects, hedges along
parcel edges and shrubs on lawns (low vegetation, 0.6-2.5 m high), and trees as blobby
crowns in clusters and along streets, overhanging what lies below them.

While drawing, the generator keeps count of the class pixels inside the scene and steers
toward per-scene targets drawn around the ISPRS Vaihingen shares (impervious 28 %,
building 26 %, low vegetation 21 %, tree 23 %, car 1.5 %, clutter 1 %).

Rendering: per-object albedo, multi-scale texture, hillshading of the surface model, cast
shadows (sun fixed per scene), a slight blur and sensor noise give IR-R-G in [0, 1]; each
scene has its own exposure, colour balance, haze and shadow depth (:data:`_RADIOMETRY`).
The spectra overlap on purpose: grey roofs look like asphalt, trees and hedges like lawns,
dry and bare lawn patches like paving; heights separate some of them, with exceptions
(hedges and shrubs, raised lawns and roof gardens, low or sunken flat roofs). Heights are
those a dense-matching DSM would give (:data:`_HEIGHT`): pits where the matcher sees through
crowns, raised objects smeared a few pixels over their edges toward one side, a blurred
surface, decimetre DTM errors and matching blunders (blobs metres high or deep).
DSM = smooth terrain + measured heights; nDSM = measured height above ground (not below
-0.9 m). Labels come from the same geometry displaced by a smooth 1-2 px field, so
boundaries are uncertain as in real ground truth.

Version 2.0 (issue 19) added the hedges and shrubs, the measured-height artefacts, bare
lawn patches, deeper and varying shadows and the per-scene radiometry, and made more pitched
roofs tiled: generator 1.0 was solved per pixel (a logistic regression on the five bands
reached 95-96 % OA, eroded protocol, above the default-profile CNNs), while on IR-R-G alone
it was as hard as the real Vaihingen samples, which it still is.

:func:`write_synthetic` writes scenes in the ISPRS Vaihingen file layout, so
:func:`aerialseg.data.isprs.load_vaihingen` reads them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from scipy import ndimage

from aerialseg.data.classes import ISPRS
from aerialseg.data.isprs import VAIHINGEN_TRAIN_AREAS, VAIHINGEN_VAL_AREAS, vaihingen_files
from aerialseg.data.masks import eroded_eval_mask

log = logging.getLogger(__name__)

GENERATOR_VERSION = "2.0"
"""Bumped whenever the generator's output changes; part of the manifest's identity."""

BAND_NAMES: tuple[str, ...] = ("ir", "r", "g", "dsm", "ndsm")
GSD = 0.09
"""Ground sampling distance the scenes imitate (metres per pixel)."""

TARGET_SHARES: dict[str, float] = {"impervious": 0.28, "building": 0.26, "low_vegetation": 0.21,
                                   "tree": 0.23, "car": 0.015, "clutter": 0.01}
"""Class shares the generator aims at (Vaihingen-like); each scene varies around them."""

DEFAULT_PARAMS: dict[str, int] = {"n_train": 4, "n_val": 2, "size": 512, "seed": 0}

# class indices (ISPRS order)
IMP, BLD, LOW, TREE, CAR, CLUT = range(6)
# materials: decide the texture at render time
(M_LAWN, M_TREE, M_ASPHALT, M_PAVER, M_TILE, M_FLAT, M_CAR, M_CLUTTER, M_MARK, M_WATER,
 M_GREENROOF, M_HEDGE) = range(12)
# multiplicative texture amplitude per material: fine (1 px), medium (~4 px), coarse (~40 px)
_TEX = np.array([
    [0.04, 0.07, 0.06],   # lawn (plus the lawn colour field)
    [0.10, 0.20, 0.05],   # tree crowns: leaf clumps
    [0.035, 0.03, 0.07],  # asphalt
    [0.07, 0.04, 0.05],   # pavers
    [0.06, 0.05, 0.04],   # tiled roof
    [0.035, 0.03, 0.07],  # flat roof
    [0.02, 0.0, 0.0],     # car
    [0.08, 0.08, 0.02],   # clutter
    [0.03, 0.0, 0.02],    # road marking
    [0.02, 0.02, 0.05],   # water
    [0.05, 0.08, 0.05],   # green roof
    [0.08, 0.16, 0.05],   # hedges and shrubs (low vegetation): leafy like crowns
], np.float32)
_PAD = 32  # drawn beyond the scene border so that objects and shadows continue across it
_RADIOMETRY: dict[str, Any] = {"gain": (0.9, 1.1), "balance": 0.02, "haze": 0.015,
                               "shadow": (0.2, 0.32), "drift": 0.03}
"""Scene-to-scene radiometry: exposure gain range, per-band colour balance (+-), haze offset
(max), brightness of cast shadows in IR (range; R and G are 0.06 and 0.12 brighter: the
diffuse skylight is blue) and the amplitude of a slow brightness drift across the scene."""
_HEIGHT: dict[str, Any] = {"crown_pits": 0.9, "spill_px": (4, 12), "blur": 1.5,
                           "dtm_error": 0.5, "blunders": 15.0}
"""Measured heights: threshold of the crown-pit field (unit noise; higher: fewer pits, 0.9:
about a fifth of crown pixels), edge spill length (px range), matching blur (px), DTM error
(m, slow), matching blunders per 512 x 512 px."""
_LAWN: dict[str, Any] = {"dry": (1.0, 0.5), "bare": (0.6, 1.2)}
"""Lawns: offset of the dry field (normal mean and sd over scenes; higher: lusher) and the
threshold range of the bare-patch field (unit noise; higher: fewer patches)."""
_TILED = 0.65
"""Share of pitched roofs with red/brown tiles (the others are grey, like asphalt)."""

_Slices = tuple[slice, slice]
_RectHit = tuple[_Slices, np.ndarray, np.ndarray, np.ndarray, float, float] | None
_RotHit = tuple[_Slices, np.ndarray, np.ndarray, np.ndarray] | None
_BlobHit = tuple[_Slices, np.ndarray, np.ndarray] | None


def _rng_for(area: int, seed: int) -> np.random.Generator:
    if seed < 0 or area < 0:
        raise ValueError(f"seed and area must be non-negative integers, got seed={seed}, "
                         f"area={area}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(area), 0x5EED]))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float
                  ) -> np.ndarray:
    """Zero-mean noise with std ~1 and correlation length ~``scale`` px (float32).

    White noise on a grid ``scale`` times coarser, smoothed and bilinearly upsampled
    (separably, in numpy: much cheaper than ``ndimage.zoom`` on large canvases).
    """
    h, w = shape
    if scale <= 1.0:
        return rng.standard_normal(shape, dtype=np.float32)
    coarse = (int(h / scale) + 3, int(w / scale) + 3)
    z = ndimage.gaussian_filter(rng.standard_normal(coarse, dtype=np.float32), 1.0)
    z /= z.std() + 1e-6
    pos_x = np.arange(w, dtype=np.float32) / np.float32(scale)
    j0 = pos_x.astype(np.intp)
    fx = (pos_x - j0).astype(np.float32)
    cols = z[:, j0] * (1 - fx) + z[:, j0 + 1] * fx  # (coarse h, w): cheap
    pos_y = np.arange(h, dtype=np.float32) / np.float32(scale)
    i0 = pos_y.astype(np.intp)
    fy = (pos_y - i0).astype(np.float32)[:, None]
    out = cols[i0]  # whole-row gathers are contiguous copies
    out *= 1 - fy
    out += cols[i0 + 1] * fy
    return out


def _shift(a: np.ndarray, dy: int, dx: int, fill: float) -> np.ndarray:
    """``out[y, x] = a[y + dy, x + dx]``, ``fill`` outside."""
    out = np.full_like(a, fill)
    h, w = a.shape
    ys, yd = (slice(dy, h), slice(0, h - dy)) if dy >= 0 else (slice(0, h + dy), slice(-dy, h))
    xs, xd = (slice(dx, w), slice(0, w - dx)) if dx >= 0 else (slice(0, w + dx), slice(-dx, w))
    out[yd, xd] = a[ys, xs]
    return out


def _cast_shadows(h: np.ndarray, azimuth: float, elevation: float) -> np.ndarray:
    """Boolean shadow mask of a height field (metres) for a sun at azimuth/elevation (rad).

    A pixel is shadowed if some pixel toward the sun at distance d rises above the sun ray,
    i.e. ``max_d h(p + d s) - d k > h(p)`` with ``k = GSD tan(elevation)``. The running
    maximum is built by doubling (d < 1, 2, 4, ...), so it costs log2(longest shadow) shifts.
    """
    sx, sy = math.sin(azimuth), -math.cos(azimuth)  # toward the sun, image y points down
    k = GSD * math.tan(elevation)
    longest = float(h.max()) / k
    m = h.astype(np.float32).copy()
    n = 1
    while n <= longest + 1:
        shifted = _shift(m, int(round(n * sy)), int(round(n * sx)), -1e3)
        np.maximum(m, shifted - n * k, out=m)
        n *= 2
    return m > h + 0.25


def _spill(h: np.ndarray, azimuth: float, k: int) -> np.ndarray:
    """Heights smeared over ``k`` px toward ``azimuth``, decaying linearly (float32)."""
    dx, dy = math.sin(azimuth), -math.cos(azimuth)
    out = h.copy()
    for d in range(1, k + 1):
        shifted = _shift(h, -int(round(d * dy)), -int(round(d * dx)), 0.0)
        np.maximum(out, shifted * np.float32(1 - d / (k + 1)), out=out)
    return out


def _add_blunders(ndsm: np.ndarray, rng: np.random.Generator, size: int, per_512: float
                  ) -> None:
    """Matching blunders in place: blobs of a few px to a few metres up or down."""
    n = ndsm.shape[0]
    for _ in range(int(rng.poisson(per_512 * size * size / 512 ** 2))):
        rad = rng.uniform(3, 12)
        y, x = rng.uniform(0, n, 2)
        amp = float(np.clip(rng.normal(0, 2.5), -4, 5))
        y0, y1 = max(int(y - 2 * rad), 0), min(int(y + 2 * rad) + 1, n)
        x0, x1 = max(int(x - 2 * rad), 0), min(int(x + 2 * rad) + 1, n)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        g = np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * (rad / 2) ** 2))
        ndsm[y0:y1, x0:x1] += (amp * g).astype(np.float32)


@dataclass
class _Road:
    axis: str  # "u": line u = pos (runs along v); "v": line v = pos (runs along u)
    pos: float
    w: float  # carriageway width (px)
    verge: float  # grass strip between kerb and sidewalk (px, may be 0)
    sw: float  # sidewalk width (px)
    amp: float  # waviness amplitude (px)
    wl: float  # waviness wavelength (px)
    ph: float
    colour: np.ndarray
    sw_colour: np.ndarray
    gaps: list[tuple[float, float]] = field(default_factory=list)

    @property
    def hw(self) -> float:
        return self.w / 2 + self.verge + self.sw

    def wave(self, t: np.ndarray | float) -> np.ndarray | float:
        return self.amp * np.sin(2 * np.pi * np.asarray(t) / self.wl + self.ph)

    def wave_slope(self, t: float) -> float:
        return self.amp * 2 * np.pi / self.wl * math.cos(2 * math.pi * t / self.wl + self.ph)


@dataclass
class _Parcel:
    u0: float
    u1: float
    v0: float
    v1: float
    front: int  # side facing the road: 0 v0, 1 v1, 2 u0, 3 u1
    large: bool

    @property
    def width(self) -> float:
        return (self.u1 - self.u0) if self.front < 2 else (self.v1 - self.v0)

    @property
    def depth(self) -> float:
        return (self.v1 - self.v0) if self.front < 2 else (self.u1 - self.u0)

    def rect(self, a0: float, a1: float, b0: float, b1: float
             ) -> tuple[float, float, float, float]:
        """Uv rectangle of local frontage interval [a0, a1] and depth interval [b0, b1]."""
        if self.front == 0:
            return self.u0 + a0, self.u0 + a1, self.v0 + b0, self.v0 + b1
        if self.front == 1:
            return self.u0 + a0, self.u0 + a1, self.v1 - b1, self.v1 - b0
        if self.front == 2:
            return self.u0 + b0, self.u0 + b1, self.v0 + a0, self.v0 + a1
        return self.u1 - b1, self.u1 - b0, self.v0 + a0, self.v0 + a1

    def point(self, a: float, b: float) -> tuple[float, float]:
        u, _, v, _ = self.rect(a, a, b, b)
        return u, v

    @property
    def depth_axis_is_v(self) -> bool:
        return self.front < 2


@dataclass
class _Slot:
    """A place a car may be parked: centre (x, y) px, long-axis angle, half length/width."""

    x: float
    y: float
    angle: float
    hl: float
    hw: float


def _car_dims(rng: np.random.Generator, max_w: float = 27.0) -> tuple[float, float]:
    w = float(np.clip(rng.normal(20.5, 2.3), 16.0, max_w))
    length = float(np.clip(rng.normal(45.0, 4.5), 36.0, 58.0))
    return length, w


class _Canvas:
    """Label, height, albedo and material rasters with running class counts (scene only)."""

    def __init__(self, size: int, theta: float) -> None:
        self.size, self.pad = size, _PAD
        n = self.n = size + 2 * _PAD
        self.c = (n - 1) / 2.0
        self.cos, self.sin = math.cos(theta), math.sin(theta)
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
        xx -= self.c
        yy -= self.c
        self.u = xx * self.cos + yy * self.sin
        self.v = -xx * self.sin + yy * self.cos
        self.label = np.full((n, n), LOW, np.uint8)
        self.height = np.zeros((n, n), np.float32)
        self.col = np.zeros((3, n, n), np.float32)
        self.mat = np.full((n, n), M_LAWN, np.uint8)
        self.inner = np.zeros((n, n), bool)
        self.inner[_PAD:_PAD + size, _PAD:_PAD + size] = True
        self.total = size * size
        self.counts = np.zeros(6, np.int64)
        self.counts[LOW] = self.total

    def share(self, cls: int) -> float:
        return float(self.counts[cls]) / self.total

    def to_xy(self, u: float, v: float) -> tuple[float, float]:
        return (self.c + u * self.cos - v * self.sin, self.c + u * self.sin + v * self.cos)

    def dir_angle(self, du: float, dv: float) -> float:
        """Pixel-space angle of a uv direction."""
        return math.atan2(du * self.sin + dv * self.cos, du * self.cos - dv * self.sin)

    def _bbox(self, xs: list[float], ys: list[float]) -> _Slices | None:
        x0, x1 = max(int(math.floor(min(xs))) - 1, 0), min(int(math.ceil(max(xs))) + 2, self.n)
        y0, y1 = max(int(math.floor(min(ys))) - 1, 0), min(int(math.ceil(max(ys))) + 2, self.n)
        if x0 >= x1 or y0 >= y1:
            return None
        return slice(y0, y1), slice(x0, x1)

    def rect_uv(self, u0: float, u1: float, v0: float, v1: float) -> _RectHit:
        """Mask of an axis-aligned uv rectangle: (slices, mask, du, dv, hu, hv) or None."""
        pts = [self.to_xy(u, v) for u in (u0, u1) for v in (v0, v1)]
        sl = self._bbox([p[0] for p in pts], [p[1] for p in pts])
        if sl is None:
            return None
        uc, vc, hu, hv = (u0 + u1) / 2, (v0 + v1) / 2, (u1 - u0) / 2, (v1 - v0) / 2
        du, dv = self.u[sl] - uc, self.v[sl] - vc
        m = (np.abs(du) <= hu) & (np.abs(dv) <= hv)
        if not m.any():
            return None
        return sl, m, du, dv, hu, hv

    def rect_rot(self, x: float, y: float, angle: float, hl: float, hw: float,
                 r: float = 0.0) -> _RotHit:
        """Rounded rectangle with long axis at ``angle``: (slices, mask, s, t) or None."""
        e = hl + hw + 1
        sl = self._bbox([x - e, x + e], [y - e, y + e])
        if sl is None:
            return None
        yy, xx = np.mgrid[sl]
        xx = xx - x
        yy = yy - y
        ca, sa = math.cos(angle), math.sin(angle)
        s = xx * ca + yy * sa
        t = -xx * sa + yy * ca
        qs = np.maximum(np.abs(s) - (hl - r), 0)
        qt = np.maximum(np.abs(t) - (hw - r), 0)
        m = (np.abs(s) <= hl) & (np.abs(t) <= hw) & (qs * qs + qt * qt <= r * r)
        if not m.any():
            return None
        return sl, m, s, t

    def blob(self, x: float, y: float, radius: float, rng: np.random.Generator,
             irregular: float = 0.08) -> _BlobHit:
        """Blobby disc: (slices, mask, normalised radius in [0, 1]) or None."""
        ks = np.arange(2, 6)
        amps = rng.uniform(0, irregular, ks.size)
        phases = rng.uniform(0, 2 * np.pi, ks.size)
        e = radius * (1 + amps.sum()) + 1
        sl = self._bbox([x - e, x + e], [y - e, y + e])
        if sl is None:
            return None
        yy, xx = np.mgrid[sl]
        dx, dy = xx - x, yy - y
        rho = np.hypot(dx, dy)
        phi = np.arctan2(dy, dx)
        rr = radius * (1 + (amps[:, None, None] * np.cos(ks[:, None, None] * phi
                                                         + phases[:, None, None])).sum(0))
        rn = rho / rr
        m = rn <= 1.0
        if not m.any():
            return None
        return sl, m, rn

    def paint_flat(self, idx: np.ndarray, cls: int, colour: np.ndarray, mat: int) -> None:
        """Draw ``cls`` at flat canvas indices, at ground level."""
        if idx.size == 0:
            return
        lab = self.label.ravel()
        inn = idx[self.inner.ravel()[idx]]
        if inn.size:
            self.counts -= np.bincount(lab[inn], minlength=6)[:6]
            self.counts[cls] += inn.size
        lab[idx] = cls
        self.height.ravel()[idx] = 0.0
        self.mat.ravel()[idx] = mat
        self.col.reshape(3, -1)[:, idx] = np.asarray(colour, np.float32)[:, None]

    def paint(self, sl: tuple[slice, slice], m: np.ndarray, cls: int,
              colour: np.ndarray, mat: int, height: float | np.ndarray = 0.0,
              ztest: bool = False) -> int:
        """Draw ``cls`` where ``m`` (only above the current surface with ``ztest``).

        Returns the number of scene pixels drawn.
        """
        hv = self.height[sl]
        h = np.broadcast_to(np.asarray(height, np.float32), m.shape)
        if ztest:
            m = m & (h > hv)
        inn = m & self.inner[sl]
        n_in = int(inn.sum())
        lab = self.label[sl]
        if n_in:
            self.counts -= np.bincount(lab[inn], minlength=6)[:6]
            self.counts[cls] += n_in
        lab[m] = cls
        hv[m] = h[m]
        self.mat[sl][m] = mat
        cv = self.col[:, sl[0], sl[1]]
        colour = np.asarray(colour, np.float32)
        cv[:, m] = colour[:, m] if colour.ndim == 3 else colour[:, None]
        return n_in


class _Town:
    """Lays out and renders one scene."""

    def __init__(self, rng: np.random.Generator, size: int) -> None:
        self.rng = rng
        self.size = size
        self.cv = _Canvas(size, rng.uniform(0, np.pi / 2))
        r = rng
        # per-scene targets; imp and building aim a bit high because trees overhang them
        self.t_imp = float(np.clip(r.normal(0.325, 0.02), 0.28, 0.37))
        self.t_bld = float(np.clip(r.normal(0.257, 0.02), 0.22, 0.30))
        self.t_tree = float(np.clip(r.normal(0.228, 0.02), 0.19, 0.27))
        self.t_car = float(r.uniform(0.013, 0.02))
        self.t_clut = float(r.uniform(0.008, 0.013))
        self.roads: list[_Road] = []
        self.parcels: list[_Parcel] = []
        self.parks: list[_Parcel] = []
        self.slot_groups: list[list[_Slot]] = []

    # ------------------------------------------------------------------ layout
    def build(self) -> None:
        self._roads()
        self._paint_roads()
        self._blocks()
        order = self.rng.permutation(len(self.parcels))
        for i in order:
            self._parcel(self.parcels[i])
        self._infill_buildings()
        self._infill_paving()
        self._clutter()
        self._street_slots()
        self._cars()
        self._hedges()
        self._trees()

    def _road_colours(self) -> tuple[np.ndarray, np.ndarray]:
        r = self.rng
        g = r.uniform(0.30, 0.50)
        asphalt = np.array([g * r.uniform(0.96, 1.04), g, g * r.uniform(0.98, 1.06)])
        if r.random() < 0.7:
            g2 = r.uniform(0.42, 0.66)
            paver = np.array([g2 * r.uniform(0.97, 1.05), g2, g2 * r.uniform(0.95, 1.03)])
        else:  # reddish pavers
            paver = np.array([r.uniform(0.55, 0.7), r.uniform(0.48, 0.58), r.uniform(0.38, 0.46)])
        return asphalt.astype(np.float32), paver.astype(np.float32)

    def _roads(self) -> None:
        r, cv = self.rng, self.cv
        ext = cv.n * 0.75 + 60  # beyond the canvas corners in the rotated frame

        def spacing() -> float:
            return r.uniform(560, 980)

        for axis in ("u", "v"):
            # one u-road always crosses the scene; v-roads fall where they fall
            first = (r.uniform(-0.35, 0.35) * self.size if axis == "u"
                     else r.uniform(-0.5, 0.5) * spacing())
            pos = [first]
            p = first
            while p > -ext:
                p -= spacing()
                pos.append(p)
            p = first
            while p < ext:
                p += spacing()
                pos.append(p)
            for p in sorted(pos):
                main = r.random() < 0.3
                asphalt, paver = self._road_colours()
                self.roads.append(_Road(
                    axis=axis, pos=p, w=r.uniform(62, 86) if main else r.uniform(44, 62),
                    verge=r.uniform(14, 26) if r.random() < 0.35 else 0.0,
                    sw=r.uniform(12, 24) if r.random() < 0.9 else 0.0,
                    amp=r.uniform(0, 8), wl=r.uniform(900, 2500), ph=r.uniform(0, 2 * np.pi),
                    colour=asphalt, sw_colour=paver))
        us = [rd for rd in self.roads if rd.axis == "u"]
        # drop some v-road segments between consecutive u-roads (T-junctions, long blocks)
        for rd in self.roads:
            if rd.axis != "v":
                continue
            for a, b in zip(us[:-1], us[1:], strict=True):
                if r.random() < 0.2:
                    rd.gaps.append((a.pos + a.hw, b.pos - b.hw))

    def _road_layers(self, rd: _Road) -> dict[str, np.ndarray]:
        """Flat canvas indices of a road's verge, sidewalk, carriageway and centre line."""
        cv = self.cv
        along, across = (cv.v, cv.u) if rd.axis == "u" else (cv.u, cv.v)
        # only the road's band needs the (costly) wavy distance
        band = np.flatnonzero(np.abs(across.ravel() - rd.pos) < rd.hw + rd.amp + 1)
        t = along.ravel()[band]
        d = np.abs(across.ravel()[band] - rd.pos - rd.wave(t))
        present = np.ones(band.shape, bool)
        for t0, t1 in rd.gaps:
            present &= ~((t > t0) & (t < t1))
        half = rd.w / 2
        return {
            "verge": band[present & (d >= half) & (d < half + rd.verge)],
            "sidewalk": band[present & (d >= half + rd.verge) & (d < rd.hw)],
            "carriageway": band[present & (d < half)],
            "marking": band[present & (d < 1.4) & (np.mod(t + rd.ph * 10, 64) < 30)]
            if rd.w >= 56 else band[:0],
        }

    def _paint_roads(self) -> None:
        cv = self.cv
        layers = [self._road_layers(rd) for rd in self.roads]
        lawn = np.zeros(3, np.float32)  # lawn colour comes from the lawn field at render time
        for lay in layers:
            cv.paint_flat(lay["verge"], LOW, lawn, M_LAWN)
        for lay, rd in zip(layers, self.roads, strict=True):
            cv.paint_flat(lay["sidewalk"], IMP, rd.sw_colour, M_PAVER)
        for lay, rd in zip(layers, self.roads, strict=True):
            cv.paint_flat(lay["carriageway"], IMP, rd.colour, M_ASPHALT)
        for lay in layers:  # dashed centre lines, not across crossings
            idx = lay["marking"]
            idx = idx[cv.mat.ravel()[idx] == M_ASPHALT]
            cv.paint_flat(idx, IMP, np.full(3, 0.82, np.float32), M_MARK)

    def _blocks(self) -> None:
        cv = self.cv
        us = [rd for rd in self.roads if rd.axis == "u"]
        vs = [rd for rd in self.roads if rd.axis == "v"]
        for a, b in zip(us[:-1], us[1:], strict=True):
            u0, u1 = a.pos + a.hw + a.amp + 2, b.pos - b.hw - b.amp - 2
            mid = (a.pos + b.pos) / 2
            present = [rd for rd in vs if not any(t0 < mid < t1 for t0, t1 in rd.gaps)]
            for c, d in zip(present[:-1], present[1:], strict=True):
                v0, v1 = c.pos + c.hw + c.amp + 2, d.pos - d.hw - d.amp - 2
                if u1 - u0 < 60 or v1 - v0 < 60:
                    continue
                pts = [cv.to_xy(u, v) for u in (u0, u1) for v in (v0, v1)]
                if cv._bbox([p[0] for p in pts], [p[1] for p in pts]) is None:
                    continue
                self._split_block(u0, u1, v0, v1)

    def _split_block(self, u0: float, u1: float, v0: float, v1: float) -> None:
        r = self.rng
        long_u = (u1 - u0) >= (v1 - v0)
        short = (v1 - v0) if long_u else (u1 - u0)
        if short > 280:
            cut = short * r.uniform(0.42, 0.58)
            rows = [(0.0, cut, 0), (cut, short, 1)]
        else:
            rows = [(0.0, short, int(r.integers(2)))]
        for s0, s1, side in rows:
            large = r.random() < 0.3
            lo, hi = (u0, u1) if long_u else (v0, v1)
            x = lo
            while x < hi - 1:
                wdt = r.uniform(240, 420) if large else r.uniform(120, 240)
                if hi - (x + wdt) < (110 if not large else 200):
                    wdt = hi - x  # the last parcel takes the rest
                a0, a1 = x, x + wdt
                x = a1
                if long_u:
                    p = _Parcel(a0, a1, v0 + s0, v0 + s1, front=0 if side == 0 else 1,
                                large=large)
                else:
                    p = _Parcel(u0 + s0, u0 + s1, a0, a1, front=2 if side == 0 else 3,
                                large=large)
                pts = [self.cv.to_xy(u, v) for u in (p.u0, p.u1) for v in (p.v0, p.v1)]
                if self.cv._bbox([q[0] for q in pts], [q[1] for q in pts]) is not None:
                    self.parcels.append(p)

    # ----------------------------------------------------------------- parcels
    def _inner_area(self, rect: tuple[float, float, float, float]) -> int:
        got = self.cv.rect_uv(*rect)
        if got is None:
            return 0
        sl, m = got[0], got[1]
        return int((m & self.cv.inner[sl]).sum())

    def _ground(self, rect: tuple[float, float, float, float], cls: int, colour: np.ndarray,
                mat: int, height: float = 0.0, ramp: float = 0.0) -> None:
        got = self.cv.rect_uv(*rect)
        if got is None:
            return
        sl, m, du, dv, hu, hv = got
        h: float | np.ndarray = height
        if ramp > 0:  # raised lawn: height rises over ``ramp`` px from the edge
            edge = np.minimum(hu - np.abs(du), hv - np.abs(dv))
            h = height * np.clip(edge / ramp, 0, 1)
        self.cv.paint(sl, m, cls, colour, mat, h)

    def _paver_colour(self) -> np.ndarray:
        r = self.rng
        if r.random() < 0.6:
            g = r.uniform(0.40, 0.66)
            return np.array([g, g * r.uniform(0.96, 1.02), g * r.uniform(0.95, 1.03)], np.float32)
        return np.array([r.uniform(0.55, 0.72), r.uniform(0.46, 0.58), r.uniform(0.36, 0.46)],
                        np.float32)

    def _roof_style(self, flat_bias: float = 0.0) -> tuple[str, np.ndarray, int]:
        r = self.rng
        kind = r.choice(["gable", "hip", "flat"],
                        p=np.array([0.5, 0.25, 0.25 + flat_bias]) / (1 + flat_bias))
        pick = r.random()
        if kind != "flat" and pick < _TILED:  # red/brown tiles: orange in IR-R-G
            col = np.array([r.uniform(0.52, 0.80), r.uniform(0.40, 0.60), r.uniform(0.24, 0.36)])
            return str(kind), col.astype(np.float32), M_TILE
        if kind == "flat" and pick < 0.07:
            col = np.array([r.uniform(0.55, 0.7), r.uniform(0.3, 0.4), r.uniform(0.33, 0.42)])
            return str(kind), col.astype(np.float32), M_GREENROOF
        pick = r.random()
        if pick < 0.65:  # grey: concrete tiles, bitumen, gravel - like asphalt
            g = r.uniform(0.28, 0.56)
        elif pick < 0.85:  # anthracite / slate
            g = r.uniform(0.14, 0.28)
        else:  # bright membranes
            g = r.uniform(0.6, 0.85)
        col = np.array([g * r.uniform(0.95, 1.05), g, g * r.uniform(0.96, 1.06)])
        return str(kind), col.astype(np.float32), (M_FLAT if kind == "flat" else M_TILE)

    def _building(self, rects: list[tuple[float, float, float, float]], eave: float,
                  style: tuple[str, np.ndarray, int] | None = None, details: bool = True,
                  cls: int = BLD) -> None:
        """Draw a building made of uv rectangles; each part gets its own roof profile."""
        r, cv = self.rng, self.cv
        kind, colour, mat = style or self._roof_style()
        pitch = math.tan(math.radians(r.uniform(28, 45)))
        for rect in rects:
            got = cv.rect_uv(*rect)
            if got is None:
                continue
            sl, m, du, dv, hu, hv = got
            if kind == "gable":
                rise = (hv - np.abs(dv)) if hu >= hv else (hu - np.abs(du))
                h = eave + np.clip(rise, 0, None) * GSD * pitch
            elif kind == "hip":
                h = eave + np.clip(np.minimum(hv - np.abs(dv), hu - np.abs(du)), 0, None) \
                    * GSD * pitch
            else:  # flat, with a low parapet
                edge = np.minimum(hu - np.abs(du), hv - np.abs(dv))
                h = eave + 0.35 * (edge < 3)
            cv.paint(sl, m, cls, colour, mat, h.astype(np.float32), ztest=True)
            if details and cls == BLD:
                self._roof_details(rect, kind, eave, colour, pitch)

    def _roof_details(self, rect: tuple[float, float, float, float], kind: str, eave: float,
                      colour: np.ndarray, pitch: float) -> None:
        """Vents and skylights on flat roofs, skylights/dormer windows on pitched ones."""
        r, cv = self.rng, self.cv
        u0, u1, v0, v1 = rect
        for _ in range(int(r.integers(0, 5 if kind == "flat" else 3))):
            su, sv = r.uniform(5, 16), r.uniform(5, 16)
            if u1 - u0 < su + 12 or v1 - v0 < sv + 12:
                return
            cu, cvv = r.uniform(u0 + 6, u1 - 6 - su), r.uniform(v0 + 6, v1 - 6 - sv)
            got = cv.rect_uv(cu, cu + su, cvv, cvv + sv)
            if got is None:
                continue
            sl, m = got[0], got[1]
            shade = r.uniform(0.55, 1.5)
            col = np.clip(colour * shade, 0, 1).astype(np.float32)
            if kind == "flat":
                h = eave + r.uniform(0.4, 1.4)
                cv.paint(sl, m, BLD, col, M_FLAT, h, ztest=True)
            else:  # flush skylight: keep the roof height, change the colour
                mm = m & (cv.label[sl] == BLD)
                cv.paint(sl, mm, BLD, np.array([0.15, 0.15, 0.17], np.float32), M_FLAT,
                         cv.height[sl].copy())

    def _lot(self, p: _Parcel, b0: float, b1: float, a0: float, a1: float) -> None:
        """Parking lot in local [a0, a1] x [b0, b1]: surface, bay lines and slots."""
        r, cv = self.rng, self.cv
        g = r.uniform(0.34, 0.58)
        surface = np.array([g, g * r.uniform(0.97, 1.02), g * r.uniform(0.98, 1.05)], np.float32)
        self._ground(p.rect(a0, a1, b0, b1), IMP, surface, M_ASPHALT)
        pitch = r.uniform(29, 33)
        along_v = p.depth_axis_is_v
        angle = cv.dir_angle(0.0, 1.0) if along_v else cv.dir_angle(1.0, 0.0)
        b = b0 + 29
        k = 0
        white = np.full(3, 0.8, np.float32)
        while b + 29 <= b1:
            slots: list[_Slot] = []
            a = a0 + 6
            while a + pitch <= a1 - 4:
                # bay line
                self._ground(p.rect(a - 1, a + 1, b - 25, b + 25), IMP, white, M_MARK)
                length, w = _car_dims(r, max_w=min(26.0, pitch - 6))
                cu, cvv = p.point(a + pitch / 2 + r.uniform(-2, 2), b + r.uniform(-3, 3))
                x, y = cv.to_xy(cu, cvv)
                slots.append(_Slot(x, y, angle + r.normal(0, 0.04), length / 2, w / 2))
                a += pitch
            if slots:
                self.slot_groups.append(slots)
            b += 116 if k % 2 == 0 else 56
            k += 1

    def _parcel(self, p: _Parcel) -> None:
        r, cv = self.rng, self.cv
        area_in = self._inner_area((p.u0, p.u1, p.v0, p.v1))
        need_b = (self.t_bld * cv.total - cv.counts[BLD])
        need_i = (self.t_imp * cv.total - cv.counts[IMP])
        if p.large:
            exp_b = 0.45 * area_in
            if need_b > 0.4 * exp_b or area_in == 0:
                kind = "commercial" if r.random() < 0.35 else "apartment"
            else:
                kind = "parking" if need_i > 0.5 * area_in and r.random() < 0.5 else "park"
        else:
            exp_b = 0.3 * area_in
            if need_b > 0.4 * exp_b or area_in == 0:
                kind = "house"
            elif need_i > 0.4 * area_in and r.random() < 0.5:
                kind = "parking"
            else:
                kind = "park" if r.random() < 0.45 else "yard"
        getattr(self, f"_p_{kind}")(p)

    def _imp_ok(self) -> bool:
        return self.cv.share(IMP) < self.t_imp

    def _p_house(self, p: _Parcel) -> None:
        r = self.rng
        W, D = p.width, p.depth
        sb = r.uniform(14, 45)
        ml, mr = r.uniform(8, 30), r.uniform(8, 30)
        bw = min(W - ml - mr, r.uniform(110, 210))
        bd = min(r.uniform(95, 165), D - sb - 25)
        if bw < 60 or bd < 60:
            self._p_yard(p)
            return
        a0 = ml + r.uniform(0, max(0.0, W - ml - mr - bw))
        left_free, right_free = a0, W - a0 - bw
        rects = [p.rect(a0, a0 + bw, sb, sb + bd)]
        if r.random() < 0.35 and D - sb - bd > 40:
            ww = bw * r.uniform(0.35, 0.6)
            wd = min(r.uniform(40, 90), D - sb - bd - 15)
            wa = a0 if r.random() < 0.5 else a0 + bw - ww
            rects.append(p.rect(wa, wa + ww, sb + bd - 6, sb + bd + wd))
        if r.random() < 0.45 and self._imp_ok():  # patio behind the house
            pd = r.uniform(20, 45)
            pw = bw * r.uniform(0.4, 1.0)
            pa = a0 + r.uniform(0, bw - pw)
            self._ground(p.rect(pa, pa + pw, sb + bd - 4, min(sb + bd + pd, D - 4)), IMP,
                         self._paver_colour(), M_PAVER)
        free, side = (left_free, 0) if left_free > right_free else (right_free, 1)
        if r.random() < 0.6 and self._imp_ok() and free >= 24:
            dw = min(r.uniform(26, 38), free - 2)
            da = (free - dw) / 2 if side == 0 else W - free + (free - dw) / 2
            dlen = sb + bd * r.uniform(0.3, 1.0)
            self._ground(p.rect(da, da + dw, 0, dlen), IMP, self._paver_colour(), M_PAVER)
            if dlen > 56 and r.random() < 0.5:
                length, w = _car_dims(r, max_w=dw - 3)
                cu, cvv = p.point(da + dw / 2, r.uniform(length / 2 + 3, dlen - length / 2 - 2))
                x, y = self.cv.to_xy(cu, cvv)
                ang = self.cv.dir_angle(0.0, 1.0) if p.depth_axis_is_v else \
                    self.cv.dir_angle(1.0, 0.0)
                self.slot_groups.append([_Slot(x, y, ang + r.normal(0, 0.05), length / 2,
                                               w / 2)])
            elif free >= 40 and D - dlen > 70 and r.random() < 0.5:
                # garage at the end of the driveway: a low flat roof, sometimes sunken
                eave = r.uniform(2.3, 3.1) if r.random() < 0.7 else r.uniform(0.4, 1.2)
                g = self.rng.uniform(0.3, 0.55)
                grect = p.rect(da - 2, da + dw + 2, dlen, dlen + r.uniform(55, 68))
                if r.random() < 0.2:  # roof garden: low vegetation on top of the garage
                    self._ground(grect, LOW, np.zeros(3, np.float32), M_LAWN, eave + 0.3)
                else:
                    self._building([grect], eave, ("flat", np.full(3, g, np.float32), M_FLAT),
                                   details=False)
        self._building(rects, r.uniform(4.5, 7.5))
        if r.random() < 0.12:
            self._raised_lawn(p, sb + bd + 10, D - 5)

    def _raised_lawn(self, p: _Parcel, b0: float, b1: float) -> None:
        r = self.rng
        if b1 - b0 < 40:
            return
        a0 = r.uniform(5, max(6.0, p.width * 0.4))
        a1 = min(p.width - 5, a0 + r.uniform(60, 160))
        self._ground(p.rect(a0, a1, b0, b1), LOW, np.zeros(3, np.float32), M_LAWN,
                     height=r.uniform(0.8, 2.5), ramp=r.uniform(6, 20))

    def _p_apartment(self, p: _Parcel) -> None:
        r = self.rng
        W, D = p.width, p.depth
        sb, ml, mr = r.uniform(10, 35), r.uniform(10, 30), r.uniform(10, 30)
        bd = min(r.uniform(110, 190), D - sb - 20)
        if bd < 70:
            self._p_yard(p)
            return
        bw = W - ml - mr
        rects = [p.rect(ml, ml + bw, sb, sb + bd)]
        for end in range(2):  # wings toward the back make L and U shapes
            if r.random() < 0.35 and D - sb - bd > 60:
                ww = r.uniform(60, 110)
                wa = ml if end == 0 else ml + bw - ww
                rects.append(p.rect(wa, wa + ww, sb + bd - 8,
                                    sb + bd + min(r.uniform(50, 120), D - sb - bd - 20)))
        style = self._roof_style(flat_bias=0.3)
        if D - sb - bd > 90 and self._imp_ok() and r.random() < 0.6:
            self._lot(p, sb + bd + 8, D - 6, ml + 10, W - mr - 10)
        elif D - sb - bd > 80 and r.random() < 0.3:  # underground garage with roof garden
            self._ground(p.rect(ml + 10, W - mr - 10, sb + bd + 15, D - 10), LOW,
                         np.zeros(3, np.float32), M_LAWN, height=r.uniform(0.6, 1.5),
                         ramp=r.uniform(3, 8))
        self._building(rects, r.uniform(9, 16), style)

    def _p_commercial(self, p: _Parcel) -> None:
        r = self.rng
        W, D = p.width, p.depth
        lot_d = min(r.uniform(90, 190), D * 0.5) if self._imp_ok() else 0.0
        if lot_d >= 70:
            self._lot(p, 4, lot_d, 8, W - 8)
        sb = max(lot_d + 8, r.uniform(12, 30))
        bd = D - sb - r.uniform(10, 30)
        if bd < 60:
            return
        g = r.uniform(0.3, 0.8) if r.random() < 0.7 else r.uniform(0.2, 0.3)
        style = ("flat", np.array([g, g * 1.01, g * 1.02], np.float32), M_FLAT)
        self._building([p.rect(r.uniform(8, 25), W - r.uniform(8, 25), sb, sb + bd)],
                       r.uniform(4, 9), style)

    def _p_parking(self, p: _Parcel) -> None:
        self._lot(p, 6, p.depth - 6, 8, p.width - 8)

    def _p_park(self, p: _Parcel) -> None:
        r = self.rng
        self.parks.append(p)
        if r.random() < 0.6 and self._imp_ok():  # footpath across the park
            pw = r.uniform(10, 18)
            a = r.uniform(20, max(21.0, p.width - 20 - pw))
            self._ground(p.rect(a, a + pw, 0, p.depth), IMP, self._paver_colour(), M_PAVER)
        if r.random() < 0.35:
            self._raised_lawn(p, r.uniform(20, 60), p.depth - r.uniform(10, 40))

    def _p_yard(self, p: _Parcel) -> None:
        r = self.rng
        if r.random() < 0.4 and self.cv.share(BLD) < self.t_bld:  # shed or annex
            a = r.uniform(10, max(11.0, p.width - 70))
            b = r.uniform(20, max(21.0, p.depth - 70))
            self._building([p.rect(a, a + r.uniform(35, 60), b, b + r.uniform(35, 60))],
                           r.uniform(2.2, 3.5))
        if r.random() < 0.3:
            self.parks.append(p)

    def _infill_buildings(self) -> None:
        """Annexes and sheds on low vegetation until the building target is met."""
        r, cv = self.rng, self.cv
        for _ in range(200):
            if cv.share(BLD) >= self.t_bld - 0.005:
                return
            ys, xs = np.nonzero((cv.label[::6, ::6] == LOW) & cv.inner[::6, ::6])
            if ys.size == 0:
                return
            i = int(r.integers(ys.size))
            x, y = xs[i] * 6.0, ys[i] * 6.0
            u = (x - cv.c) * cv.cos + (y - cv.c) * cv.sin
            v = -(x - cv.c) * cv.sin + (y - cv.c) * cv.cos
            hu, hv = r.uniform(25, 70), r.uniform(25, 60)
            got = cv.rect_uv(u - hu, u + hu, v - hv, v + hv)
            if got is None:
                continue
            sl, m = got[0], got[1]
            if (cv.label[sl][m] == LOW).mean() < 0.97:
                continue
            self._building([(u - hu, u + hu, v - hv, v + hv)], r.uniform(2.5, 6.0))

    def _infill_paving(self) -> None:
        """Paved yards, terraces and parking pads on low vegetation up to the target."""
        r, cv = self.rng, self.cv
        for it in range(200):
            if cv.share(IMP) >= self.t_imp - 0.005:
                return
            if it % 20 == 0:
                ys, xs = np.nonzero((cv.label[::6, ::6] == LOW) & cv.inner[::6, ::6]
                                    & (cv.height[::6, ::6] < 0.2))
            if ys.size == 0:
                return
            i = int(r.integers(ys.size))
            x, y = xs[i] * 6.0, ys[i] * 6.0
            u = (x - cv.c) * cv.cos + (y - cv.c) * cv.sin
            v = -(x - cv.c) * cv.sin + (y - cv.c) * cv.cos
            hu, hv = r.uniform(15, 50), r.uniform(15, 50)
            got = cv.rect_uv(u - hu, u + hu, v - hv, v + hv)
            if got is None:
                continue
            sl, m = got[0], got[1]
            if ((cv.label[sl][m] != LOW) | (cv.height[sl][m] > 0.2)).mean() > 0.15:
                continue
            asphalt = r.random() < 0.4
            col = self._paver_colour() if not asphalt else \
                np.full(3, r.uniform(0.32, 0.5), np.float32)
            cv.paint(sl, m & (cv.height[sl] < 0.2) & (cv.label[sl] == LOW), IMP, col,
                     M_ASPHALT if asphalt else M_PAVER)
            if asphalt and min(hu, hv) > 26 and max(hu, hv) > 30:  # a parking pad
                length, w = _car_dims(r)
                ang = cv.dir_angle(1.0, 0.0) if hu > hv else cv.dir_angle(0.0, 1.0)
                self.slot_groups.append([_Slot(x, y, ang + r.normal(0, 0.05), length / 2,
                                               w / 2)])

    # --------------------------------------------------------- small objects
    def _clutter(self) -> None:
        r, cv = self.rng, self.cv
        for it in range(400):
            if cv.share(CLUT) >= self.t_clut:
                return
            if it % 25 == 0:  # candidate places: free ground off the carriageway
                ys, xs = np.nonzero((cv.height[::4, ::4] < 0.2) & cv.inner[::4, ::4]
                                    & (cv.mat[::4, ::4] != M_ASPHALT))
            if ys.size == 0:
                return
            i = int(r.integers(ys.size))
            x, y = xs[i] * 4.0, ys[i] * 4.0
            big = r.random() < 0.25
            if r.random() < 0.4:  # boxy: containers, skips, trailers, stacked material
                hl = r.uniform(14, 30) if big else r.uniform(5, 14)
                got = cv.rect_rot(x, y, r.uniform(0, np.pi), hl, hl * r.uniform(0.3, 0.8),
                                  r=1.5)
                if got is not None:
                    got = (got[0], got[1], np.zeros(got[1].shape, np.float32))
            else:  # heaps, bushes in pots, play equipment, ponds
                got = cv.blob(x, y, r.uniform(14, 30) if big else r.uniform(5, 13), r,
                              irregular=0.15)
            if got is None:
                continue
            sl, m, rn = got
            if (cv.height[sl][m] >= 0.2).mean() > 0.05:
                continue
            kind = r.random()
            if kind < 0.12 and big:  # garden pond
                col, mat, h = np.array([0.06, 0.1, 0.16]), M_WATER, 0.0
            elif kind < 0.5:  # neutral: bins, containers, material piles
                g = r.uniform(0.15, 0.8)
                col, mat, h = np.array([g, g, g]) * r.uniform(0.85, 1.15, 3), M_CLUTTER, \
                    r.uniform(0.3, 2.5)
            else:  # coloured: tarpaulins, play equipment, crates
                col, mat, h = r.uniform(0.08, 0.9, 3), M_CLUTTER, r.uniform(0.2, 2.0)
            hh = h * np.clip((1 - rn) * 4, 0.3, 1)
            # ponds sit at ground level: no z-test for them
            cv.paint(sl, m, CLUT, np.clip(col, 0, 1).astype(np.float32), mat,
                     hh.astype(np.float32), ztest=h > 0)

    def _street_slots(self) -> None:
        """Parallel parking along carriageways (rows) and a few moving cars."""
        r, cv = self.rng, self.cv
        ext = cv.n * 0.75
        for rd in self.roads:
            if rd.w < 46:
                continue
            for side in (-1.0, 1.0):
                if r.random() > 0.65:
                    continue
                t = -ext + r.uniform(0, 60)
                run: list[_Slot] = []
                while t < ext:
                    length, w = _car_dims(r)
                    off = side * (rd.w / 2 - w / 2 - r.uniform(3, 5))
                    t += length / 2
                    across = rd.pos + float(rd.wave(t)) + off
                    u, v = (across, t) if rd.axis == "u" else (t, across)
                    slope = rd.wave_slope(t)
                    ang = (cv.dir_angle(slope, 1.0) if rd.axis == "u"
                           else cv.dir_angle(1.0, slope))
                    x, y = cv.to_xy(u, v)
                    run.append(_Slot(x, y, ang + r.normal(0, 0.03), length / 2, w / 2))
                    t += length / 2 + r.uniform(7, 26)
                    if r.random() < 0.12:  # end of a row
                        self.slot_groups.append(run)
                        run = []
                        t += r.uniform(40, 200)
                if run:
                    self.slot_groups.append(run)
            for _ in range(int(r.integers(0, 3))):  # cars driving in a lane
                length, w = _car_dims(r)
                t = r.uniform(-ext, ext)
                across = rd.pos + float(rd.wave(t)) + r.choice([-1, 1]) * rd.w / 4
                u, v = (across, t) if rd.axis == "u" else (t, across)
                ang = cv.dir_angle(0.0, 1.0) if rd.axis == "u" else cv.dir_angle(1.0, 0.0)
                x, y = cv.to_xy(u, v)
                self.slot_groups.append([_Slot(x, y, ang + r.normal(0, 0.02), length / 2,
                                               w / 2)])

    def _car_colour(self) -> np.ndarray:
        r = self.rng
        pick = r.random()
        if pick < 0.25:
            g = r.uniform(0.75, 0.9)  # white
        elif pick < 0.5:
            g = r.uniform(0.45, 0.65)  # silver
        elif pick < 0.65:
            g = r.uniform(0.25, 0.4)  # grey
        elif pick < 0.8:
            g = r.uniform(0.06, 0.14)  # black
        elif pick < 0.9:
            return np.array([r.uniform(0.4, 0.55), r.uniform(0.5, 0.7), r.uniform(0.08, 0.16)],
                            np.float32)  # red
        else:
            return np.array([r.uniform(0.15, 0.3), r.uniform(0.08, 0.16), r.uniform(0.15, 0.3)],
                            np.float32)  # blue
        return np.array([g, g, g * 1.02], np.float32)

    def _cars(self) -> None:
        r, cv = self.rng, self.cv
        order = r.permutation(len(self.slot_groups))
        for gi in order:
            group = self.slot_groups[gi]
            occ = r.uniform(0.6, 1.0)
            for s in group:
                if cv.share(CAR) >= self.t_car:
                    return
                if r.random() > occ:
                    continue
                got = cv.rect_rot(s.x, s.y, s.angle, s.hl, s.hw, r=min(5.0, s.hw * 0.4))
                if got is None:
                    continue
                sl, m, sc, tc = got
                # a car needs free ground (an empty piece of road or lot) with a margin
                grown = ndimage.binary_dilation(m, iterations=2)
                lab, mat, hgt = cv.label[sl][grown], cv.mat[sl][grown], cv.height[sl][grown]
                if (lab != IMP).any() or (hgt > 0.2).any() or \
                        not np.isin(mat, (M_ASPHALT, M_MARK, M_PAVER)).all():
                    continue
                body = self._car_colour()
                col = np.broadcast_to(body[:, None, None], (3,) + m.shape).copy()
                rel = sc / s.hl  # -1 back .. 1 front
                glass = ((rel > 0.22) & (rel < 0.48)) | ((rel < -0.55) & (rel > -0.75))
                glass &= np.abs(tc) < s.hw - 2.5
                col[:, glass] = np.array([0.1, 0.1, 0.12], np.float32)[:, None]
                edge = np.minimum(s.hl - np.abs(sc), s.hw - np.abs(tc))
                h = (r.uniform(1.35, 1.65) * np.clip(0.55 + edge / 8, 0, 1)).astype(np.float32)
                cv.paint(sl, m, CAR, col, M_CAR, h, ztest=True)

    # ------------------------------------------------------------------ hedges
    def _hedges(self) -> None:
        """Hedges along parcel edges and shrubs on lawns.

        Low vegetation (ISPRS counts hedges and bushes as low vegetation) that looks like
        tree crowns and stands 0.6-2.5 m above the ground. Drawn on lawn only, so the class
        shares do not change.
        """
        r, cv = self.rng, self.cv
        for p in self.parcels:
            if r.random() > 0.45:
                continue
            wdt = r.uniform(5, 11)
            for side in range(4):
                if r.random() > 0.5:
                    continue
                a0, a1, b0, b1 = 0.0, p.width, 0.0, p.depth
                if side == 0:  # along the front (behind the sidewalk)
                    b1 = wdt
                elif side == 1:  # along the back
                    b0 = p.depth - wdt
                elif side == 2:
                    a1 = wdt
                else:
                    a0 = p.width - wdt
                self._hedge(p.rect(a0, a1, b0, b1), r.uniform(0.7, 2.3))
        # shrubs: small blobby bushes on open lawn
        ys, xs = np.nonzero((cv.mat[::8, ::8] == M_LAWN) & (cv.height[::8, ::8] < 0.2)
                            & cv.inner[::8, ::8])
        n = min(ys.size, int(r.poisson(10 * cv.total / 512 ** 2)))
        for i in r.choice(ys.size, size=n, replace=False) if n else []:
            got = cv.blob(xs[i] * 8.0, ys[i] * 8.0, r.uniform(6, 16), r, irregular=0.15)
            if got is None:
                continue
            sl, m, rn = got
            top = r.uniform(0.6, 2.4)
            h = (top * np.sqrt(np.clip(1 - rn ** 2, 0.05, 1))).astype(np.float32)
            m = m & (cv.mat[sl] == M_LAWN) & (cv.height[sl] < 0.2)
            cv.paint(sl, m, LOW, self._hedge_colour(), M_HEDGE, h)

    def _hedge_colour(self) -> np.ndarray:
        r = self.rng
        return np.array([r.uniform(0.45, 0.68), r.uniform(0.22, 0.33), r.uniform(0.25, 0.36)],
                        np.float32)

    def _hedge(self, rect: tuple[float, float, float, float], height: float) -> None:
        cv = self.cv
        got = cv.rect_uv(*rect)
        if got is None:
            return
        sl, m = got[0], got[1]
        m = m & (cv.mat[sl] == M_LAWN) & (cv.height[sl] < 0.2)
        if m.any():
            cv.paint(sl, m, LOW, self._hedge_colour(), M_HEDGE, np.float32(height))

    # ------------------------------------------------------------------ trees
    def _tree(self, x: float, y: float, radius: float) -> None:
        r, cv = self.rng, self.cv
        got = cv.blob(x, y, radius, r, irregular=0.1)
        if got is None:
            return
        sl, m, rn = got
        top = float(np.clip(radius * GSD * r.uniform(2.0, 3.2), 4.0, 24.0))
        base = r.uniform(0.45, 0.65)
        h = top * (base + (1 - base) * np.sqrt(np.clip(1 - rn ** 2, 0, 1)))
        col = np.array([r.uniform(0.48, 0.72), r.uniform(0.22, 0.34), r.uniform(0.26, 0.37)],
                       np.float32)
        cv.paint(sl, m, TREE, col, M_TREE, h.astype(np.float32), ztest=True)

    def _trees(self) -> None:
        r, cv = self.rng, self.cv
        ext = cv.n * 0.75
        # street tree rows, at most about a third of the tree target
        for rd in r.permutation(len(self.roads)):
            road = self.roads[int(rd)]
            if cv.share(TREE) >= self.t_tree * 0.35:
                break
            if r.random() > (0.6 if road.verge > 0 else 0.2):
                continue
            for side in (-1.0, 1.0):
                off = side * (road.w / 2 + (road.verge / 2 if road.verge > 0 else road.sw / 2))
                t = -ext + r.uniform(0, 80)
                step = r.uniform(90, 150)
                radius = r.uniform(24, 42)
                while t < ext:
                    if not any(t0 < t < t1 for t0, t1 in road.gaps) and r.random() < 0.85:
                        across = road.pos + float(road.wave(t)) + off
                        u, v = (across, t) if road.axis == "u" else (t, across)
                        x, y = cv.to_xy(u, v)
                        self._tree(x + r.normal(0, 2), y + r.normal(0, 2),
                                   radius * r.uniform(0.8, 1.2))
                    t += step
        # clusters in gardens and parks: trunks stand on open ground, crowns fit the room
        # there (distance to paving and buildings), so big open areas get more and bigger
        # trees and crowns overhang roads and roofs only partly
        step = 4
        for it in range(300):
            if cv.share(TREE) >= self.t_tree:
                return
            if it % 15 == 0:
                open_ = np.isin(cv.label[::step, ::step], (LOW, TREE)) \
                    & (cv.height[::step, ::step] < 0.5) | (cv.mat[::step, ::step] == M_TREE)
                room = ndimage.distance_transform_edt(open_).astype(np.float32) * step
                pick = (cv.label[::step, ::step] == LOW) & cv.inner[::step, ::step] & (room > 8)
                ys, xs = np.nonzero(pick)
                if ys.size == 0:
                    return
                weight = room[ys, xs] / room[ys, xs].sum()
            i = int(r.choice(ys.size, p=weight))
            x, y = xs[i] * float(step), ys[i] * float(step)
            n = 1 + int(r.poisson(1.5))
            rmean = r.uniform(20, 52)
            for k in range(n):
                if cv.share(TREE) >= self.t_tree:
                    return
                dx, dy = (0.0, 0.0) if k == 0 else r.normal(0, rmean * 0.9, 2)
                xi = int(np.clip((x + dx) / step, 0, room.shape[1] - 1))
                yi = int(np.clip((y + dy) / step, 0, room.shape[0] - 1))
                if room[yi, xi] <= 0:
                    continue  # trunks stand on gardens, verges, parks
                radius = min(rmean * r.uniform(0.7, 1.3), room[yi, xi] * 1.3 + 10)
                self._tree(x + dx, y + dy, radius)

    # ----------------------------------------------------------------- render
    def render(self) -> tuple[np.ndarray, np.ndarray]:
        r, cv = self.rng, self.cv
        n = cv.n
        shape = (n, n)
        f32 = np.float32
        mat = cv.mat
        tree = mat == M_TREE
        # surface: leaf clumps roughen crowns (they feed hillshade, shadows and the nDSM)
        h_true = cv.height + np.where(tree, _smooth_noise(r, shape, 4.0) * f32(0.45), f32(0))
        np.maximum(h_true, 0, out=h_true)

        # albedo: lawns from a lush/dry colour field (how dry varies between scenes: the
        # season, the summer), worn and bare patches (paths, play areas, flower beds: grey-
        # brown, low IR, like paving), everything else per object
        dry = _smooth_noise(r, shape, 60.0)
        dry *= f32(1.6)
        dry -= f32(r.normal(*_LAWN["dry"]))
        dry = 1 / (1 + np.exp(-dry))
        bare = _smooth_noise(r, shape, 10.0)
        bare -= f32(r.uniform(*_LAWN["bare"]))
        bare = 1 / (1 + np.exp(-3 * bare))
        lush_c = np.array([r.uniform(0.62, 0.74), r.uniform(0.3, 0.38), r.uniform(0.34, 0.42)],
                          f32)
        dry_c = np.array([r.uniform(0.46, 0.56), r.uniform(0.40, 0.47), r.uniform(0.38, 0.46)],
                         f32)
        bare_c = np.array([r.uniform(0.36, 0.46), r.uniform(0.36, 0.46), r.uniform(0.33, 0.42)],
                          f32)
        col = cv.col
        lawn = mat == M_LAWN
        for b in range(3):
            c = lush_c[b] + (dry_c[b] - lush_c[b]) * dry
            c += (bare_c[b] - c) * bare
            col[b][lawn] = c[lawn]

        amp = _TEX[mat]  # (n, n, 3)
        tex = amp[..., 0] * _smooth_noise(r, shape, 1.0)
        tex += amp[..., 1] * _smooth_noise(r, shape, 4.0)
        tex += amp[..., 2] * _smooth_noise(r, shape, 40.0)
        tex += 1

        # hillshade (flat = 1) and cast shadows from the sun of this scene
        az, el = r.uniform(0, 2 * np.pi), math.radians(r.uniform(35, 58))
        gy, gx = np.gradient(ndimage.gaussian_filter(h_true, 0.8))
        gx /= f32(GSD)
        gy /= f32(GSD)
        sx, sy, sz = math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)
        g2 = gx * gx + gy * gy
        lam = (gx * f32(-sx) - gy * f32(sy) + f32(sz)) / (np.sqrt(g2 + 1) * f32(sz))
        lam[g2 > 3.0] = 1.0  # walls are not seen from above
        lam = np.clip(lam, 0.35, 1.45) ** f32(0.8)
        shade = tex * lam
        shadow = ndimage.gaussian_filter(_cast_shadows(h_true, az, el).astype(f32), 1.0)
        # illumination and radiometry of this scene's flight: exposure, colour balance, haze,
        # shadow depth (diffuse skylight: shadows are darkest in IR) and a slow brightness
        # drift across the mosaic
        gain = f32(r.uniform(*_RADIOMETRY["gain"]))
        balance = r.uniform(1 - _RADIOMETRY["balance"], 1 + _RADIOMETRY["balance"], 3)
        haze = r.uniform(0, _RADIOMETRY["haze"], 3)
        dark0 = r.uniform(*_RADIOMETRY["shadow"])
        drift = 1 + f32(_RADIOMETRY["drift"]) * _smooth_noise(r, shape, 250.0)
        img = np.empty((3, n, n), f32)
        for b, dark in enumerate((dark0, dark0 + 0.06, dark0 + 0.12)):
            light = 1 - f32(1 - dark) * shadow
            band = col[b] * shade * light
            band *= 1 + f32(0.03) * _smooth_noise(r, shape, 8.0)
            band *= drift
            band *= gain * f32(balance[b])
            band += f32(haze[b])
            ndimage.gaussian_filter(band, 0.6, output=img[b])  # optics
        img += r.standard_normal(img.shape, dtype=f32) * f32(0.012)  # sensor noise
        np.clip(img, 0, 1, out=img)

        # heights: what dense image matching measures, then the nDSM of a filtered DTM
        hm = h_true.copy()
        # crowns: the matcher sees through gaps (clustered pits) and misses thin crown edges
        pits = tree & (_smooth_noise(r, shape, 3.0) > f32(_HEIGHT["crown_pits"]))
        hm[pits] *= r.uniform(0.1, 0.7, int(pits.sum())).astype(f32)
        # raised objects spill over their edges toward the occluded side of the stereo pair
        # (a few px, varying along the edge)
        spill_az = r.uniform(0, 2 * np.pi)
        spill = _spill(hm, spill_az, int(r.integers(*_HEIGHT["spill_px"])))
        w = 1 / (1 + np.exp(-2 * _smooth_noise(r, shape, 25.0)))
        hm += (spill - hm) * w
        ndsm = ndimage.gaussian_filter(hm, _HEIGHT["blur"])
        ndsm += f32(0.06) * _smooth_noise(r, shape, 1.0)
        # DTM filtering errors: slow, decimetres; and matching blunders (spikes and pits)
        ndsm += f32(_HEIGHT["dtm_error"]) * _smooth_noise(r, shape, 40.0)
        _add_blunders(ndsm, r, self.size, _HEIGHT["blunders"])
        np.maximum(ndsm, f32(-0.9), out=ndsm)  # the DTM filter keeps the ground near zero
        beta, grade = r.uniform(0, 2 * np.pi), r.uniform(0, 0.03)
        ramp = np.arange(n, dtype=f32) - f32(cv.c)
        terrain = (f32(grade * GSD * math.cos(beta)) * ramp[None, :]
                   + f32(grade * GSD * math.sin(beta)) * ramp[:, None])
        terrain += f32(0.6) * _smooth_noise(r, shape, 120.0)
        terrain += f32(r.uniform(250, 280))

        # labels from slightly displaced geometry (1-2 px, smooth)
        d = [np.clip(np.rint(f32(1.1) * _smooth_noise(r, shape, 5.0)), -2, 2).astype(np.intp)
             for _ in range(2)]
        iy = np.clip(np.arange(n)[:, None] + d[0], 0, n - 1)
        ix = np.clip(np.arange(n)[None, :] + d[1], 0, n - 1)

        s = slice(_PAD, _PAD + self.size)
        bands = np.empty((5, self.size, self.size), f32)
        bands[:3] = img[:, s, s]
        bands[3] = terrain[s, s] + ndsm[s, s]
        bands[4] = ndsm[s, s]
        labels = cv.label[iy[s, s], ix[s, s]].astype(np.int64)
        return bands, labels


def generate_scene(area: int, size: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Generate one synthetic scene.

    Args:
        area: scene id (like a Vaihingen area number); different ids give different towns.
        size: side length in pixels (9 cm each).
        seed: dataset seed; the scene is a deterministic function of (area, size, seed).

    Returns:
        ``bands`` float32 (5, size, size) in the order ``("ir", "r", "g", "dsm", "ndsm")``
        (IR-R-G in [0, 1], heights in metres) and ``labels`` int64 (size, size) with ISPRS
        class indices (no ignore pixels).
    """
    if size < 64:
        raise ValueError(f"size must be at least 64 px, got {size}")
    town = _Town(_rng_for(area, seed), int(size))
    town.build()
    return town.render()


# ---------------------------------------------------------------------- files
def synthetic_areas(n_train: int, n_val: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Area ids of the synthetic train and validation scenes.

    The first ``n_train`` of :data:`VAIHINGEN_TRAIN_AREAS` and the first ``n_val`` of
    :data:`VAIHINGEN_VAL_AREAS`. Beyond 11 / 5 scenes the ids continue past Vaihingen's
    areas (1-38): further training scenes take the odd numbers 39, 41, 43, ..., further
    validation scenes the even numbers 40, 42, 44, ..., so adding scenes to one split never
    changes the other.
    """
    if n_train < 0 or n_val < 0:
        raise ValueError(f"n_train and n_val must be >= 0, got {n_train}, {n_val}")
    train = list(VAIHINGEN_TRAIN_AREAS[:n_train])
    train += [39 + 2 * i for i in range(n_train - len(train))]
    val = list(VAIHINGEN_VAL_AREAS[:n_val])
    val += [40 + 2 * i for i in range(n_val - len(val))]
    return tuple(train), tuple(val)


def _imwrite(path: Path, data: np.ndarray) -> None:
    # no date, software or shape metadata: the same array gives the same bytes
    tifffile.imwrite(path, data, photometric="rgb" if data.ndim == 3 else "minisblack",
                     compression="zlib", datetime=False, software=False, metadata=None)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _params(n_train: int, n_val: int, size: int, seed: int) -> dict[str, int]:
    return {"n_train": int(n_train), "n_val": int(n_val), "size": int(size), "seed": int(seed)}


def _read_manifest(root: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("generator") == __name__ else None


def write_synthetic(root: Path, *, n_train: int = 4, n_val: int = 2, size: int = 512,
                    seed: int = 0) -> Path:
    """Write a synthetic dataset in the ISPRS Vaihingen layout under ``root``.

    Files per area N: ``top/top_mosaic_09cm_area{N}.tif`` (IR-R-G uint8),
    ``dsm/dsm_09cm_matching_area{N}.tif`` and ``ndsm/ndsm_09cm_matching_area{N}.tif``
    (float32, metres), ``gts_for_participants/top_mosaic_09cm_area{N}.tif`` (colour-coded)
    and ``gts_eroded_for_participants/top_mosaic_09cm_area{N}_noBoundary.tif`` (boundary
    pixels within a radius-3 disk black), plus ``manifest.json`` (parameters, version,
    splits, class shares, sha256 of every file). Area ids: :func:`synthetic_areas`.

    The dataset is built in a temporary folder beside ``root`` and renamed into place, so an
    interrupted run leaves nothing half-written; an existing synthetic dataset at ``root``
    is replaced. The same parameters give byte-identical files.

    Raises:
        FileExistsError: ``root`` exists, is not empty and is not a synthetic dataset.
    """
    root = Path(root)
    params = _params(n_train, n_val, size, seed)
    if root.exists() and (not root.is_dir() or (any(root.iterdir())
                                                and _read_manifest(root) is None)):
        raise FileExistsError(
            f"{root} exists and does not hold a synthetic dataset (no manifest.json written "
            "by aerialseg.data.synthetic); refusing to replace it. Choose an empty or new "
            "folder, or remove it first.")
    train, val = synthetic_areas(n_train, n_val)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        counts = np.zeros(6, np.int64)
        for area in train + val:
            bands, labels = generate_scene(area, size=size, seed=seed)
            counts += np.bincount(labels.ravel(), minlength=6)[:6]
            f = vaihingen_files(tmp, area)
            for key in ("top", "dsm", "ndsm", "gts", "gts_eroded"):
                f[key].parent.mkdir(exist_ok=True)
            top = np.rint(np.moveaxis(bands[:3], 0, -1) * 255).astype(np.uint8)
            _imwrite(f["top"], top)
            _imwrite(f["dsm"], bands[3])
            _imwrite(f["ndsm"], bands[4])
            gts = ISPRS.encode(labels)
            _imwrite(f["gts"], gts)
            eroded = gts.copy()
            eroded[~eroded_eval_mask(labels, radius=3)] = 0
            _imwrite(f["gts_eroded"], eroded)
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {
            "generator": __name__,
            "version": GENERATOR_VERSION,
            "params": params,
            "layout": "isprs-vaihingen",
            "splits": {"train": list(train), "val": list(val)},
            "band_names": list(BAND_NAMES),
            "class_shares": {name: round(float(c) / max(int(counts.sum()), 1), 4)
                             for name, c in zip(ISPRS.names, counts, strict=True)},
            "files": {p.relative_to(tmp).as_posix(): _sha256(p) for p in files},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True)
                                           + "\n")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        if root.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
            os.rename(root, old / "data")
            os.rename(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote synthetic dataset (%s) to %s", params, root)
    return root


def ensure_synthetic(root: Path, **params: int) -> Path:
    """Return ``root`` holding the synthetic dataset with ``params``, generating if needed.

    Args:
        root: dataset folder.
        **params: any of ``n_train``, ``n_val``, ``size``, ``seed`` (defaults as in
            :func:`write_synthetic`).

    The existing dataset is reused if its manifest has the same parameters and generator
    version and all its files are present; otherwise it is (re)written.
    """
    unknown = set(params) - set(DEFAULT_PARAMS)
    if unknown:
        raise TypeError(f"unknown synthetic dataset parameters {sorted(unknown)}; "
                        f"allowed: {sorted(DEFAULT_PARAMS)}")
    full = _params(**{**DEFAULT_PARAMS, **params})
    root = Path(root)
    manifest = _read_manifest(root) if root.is_dir() else None
    if (manifest is not None and manifest.get("params") == full
            and manifest.get("version") == GENERATOR_VERSION
            and all((root / rel).is_file() for rel in manifest.get("files", {}))):
        return root
    return write_synthetic(root, **full)
