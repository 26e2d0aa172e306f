"""Class tables: names, colours, which classes are evaluated, colour <-> index coding.

Decoding never guesses. Exact decoding accepts only palette colours. Snapping (for label
images that were resampled) accepts a colour within :data:`SNAP_TOLERANCE` of a palette
colour (it takes that class) or of a blend of two palette colours (it takes the nearer
one's class; a blend at the midpoint becomes ignore); boundary colours (black) and ignore colours
snap to ignore. Colours farther from the palette than that are refused, naming the file,
the colours and their pixel counts, unless each covers at most :data:`SNAP_MAX_STRAY_PX`
pixels (isolated three-colour blends at corners): those few become ignore.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

IGNORE_INDEX = 255
"""Label value of pixels that are neither trained on nor evaluated."""

SNAP_TOLERANCE = 24.0
"""Largest RGB distance (Euclidean, 0..255 per channel) from a palette colour, or from the
straight line between two palette colours, that snapping accepts."""

SNAP_MAX_STRAY_PX = 10
"""A colour beyond :data:`SNAP_TOLERANCE` covering more pixels than this is refused by
snapping (a colour of its own, not a resampling blend); fewer become ignore."""


class LabelColourError(ValueError):
    """A label image holds colours that are not in the dataset's palette."""


class LabelValueError(ValueError):
    """An index-coded label image holds values that are not class indices."""


@dataclass(frozen=True)
class ClassTable:
    """The classes of one dataset.

    Attributes:
        name: dataset family the table belongs to (e.g. ``"isprs"``).
        names: class names, index order.
        colours: RGB colour per class, as in the dataset's colour-coded label files.
        evaluated: indices of the classes that metrics average over (ISPRS: clutter excluded).
        ignore_colours: colours that decode to :data:`IGNORE_INDEX` (e.g. Dubai "unlabeled").
        boundary_colours: colours that mark a boundary or no-data (black in the ISPRS
            ``_noBoundary`` files); snapping maps them to :data:`IGNORE_INDEX`, exact
            decoding refuses them unless passed as ``extra_ignore``.
    """

    name: str
    names: tuple[str, ...]
    colours: tuple[tuple[int, int, int], ...]
    evaluated: tuple[int, ...]
    ignore_colours: tuple[tuple[int, int, int], ...] = field(default=())
    boundary_colours: tuple[tuple[int, int, int], ...] = field(default=((0, 0, 0),))

    def __post_init__(self) -> None:
        if len(self.names) != len(self.colours):
            raise ValueError("a ClassTable needs one colour per class name")
        if any(not 0 <= i < len(self.names) for i in self.evaluated):
            raise ValueError(f"evaluated indices {self.evaluated} out of range")

    @property
    def num_classes(self) -> int:
        """Number of classes the models predict."""
        return len(self.names)

    @property
    def evaluated_names(self) -> tuple[str, ...]:
        """Names of the evaluated classes."""
        return tuple(self.names[i] for i in self.evaluated)

    def encode(self, labels: np.ndarray) -> np.ndarray:
        """Index map (H, W) -> RGB uint8 (H, W, 3); ignore pixels become black."""
        lut = np.zeros((256, 3), np.uint8)
        lut[: self.num_classes] = np.asarray(self.colours, np.uint8)
        return lut[np.asarray(labels).astype(np.uint8)]

    def decode(self, rgb: np.ndarray, *, snap: bool = False, source: str = "label image",
               extra_ignore: tuple[tuple[int, int, int], ...] = ()) -> np.ndarray:
        """RGB label image (H, W, 3) -> index map (H, W) int64, ignore = 255.

        Args:
            rgb: colour-coded label image.
            snap: accept colours near the palette (resampled labels): see the module
                docstring. Boundary (black) and ignore colours snap to ignore; colours far
                from the palette are refused.
            source: file name used in error messages.
            extra_ignore: further colours that decode to ignore (e.g. black nodata).

        Raises:
            LabelColourError: unknown colours (listed with pixel counts) and ``snap`` is
                False, or colours too far from the palette to snap.
        """
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] < 3:
            raise ValueError(f"{source}: expected an RGB label image (H, W, 3), "
                             f"got shape {rgb.shape}")
        rgb = rgb[..., :3].astype(np.uint8)
        r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
        code = (r << 16) | (g << 8) | b
        palette = list(self.colours) + list(self.ignore_colours) + list(extra_ignore)
        values = [IGNORE_INDEX if i >= self.num_classes else i for i in range(len(palette))]
        keys = np.array([(r << 16) | (g << 8) | b for r, g, b in palette], np.int64)
        out = np.full(code.shape, -1, np.int64)
        for key, value in zip(keys, values, strict=True):
            out[code == key] = value
        unknown = out < 0
        if not unknown.any():
            return out
        if not snap:
            vals, counts = np.unique(code[unknown], return_counts=True)
            order = np.argsort(counts)[::-1][:10]
            listed = ", ".join(f"#{int(vals[i]):06X} ({int(counts[i])} px)" for i in order)
            raise LabelColourError(
                f"{source}: {int(unknown.sum())} pixels have colours that are not in the "
                f"{self.name} palette: {listed}"
                f"{' ...' if len(vals) > 10 else ''}. Known colours: {self.palette_text()}"
                ". If the labels were resampled, map each pixel to the nearest palette "
                "colour with the data option snap_labels=True (`aerialseg data check "
                "DATASET --snap-labels` shows the result; `aerialseg train ... --set "
                "snap_labels=True`; a chapter: `-p data_options '{\"snap_labels\": true}'`; "
                "in code: decode(..., snap=True)).")
        snap_pal = palette + [c for c in self.boundary_colours if c not in palette]
        snap_val = values + [IGNORE_INDEX] * (len(snap_pal) - len(palette))
        vals, inverse, counts = np.unique(code[unknown], return_inverse=True,
                                          return_counts=True)
        colours = np.stack([(vals >> 16) & 255, (vals >> 8) & 255, vals & 255], -1)
        snapped = snap_colours(colours, snap_pal, snap_val)
        stray = snapped < 0
        if stray.any():
            many = stray & (counts > SNAP_MAX_STRAY_PX)
            if many.any():
                order = np.argsort(counts[many])[::-1][:10]
                bad_vals, bad_counts = vals[many][order], counts[many][order]
                listed = ", ".join(f"#{int(v):06X} ({int(c)} px)"
                                   for v, c in zip(bad_vals, bad_counts, strict=True))
                raise LabelColourError(
                    f"{source}: colours too far from the {self.name} palette to snap "
                    f"(farther than {SNAP_TOLERANCE:g} from every palette colour and from "
                    f"every blend of two of them, over {SNAP_MAX_STRAY_PX} px each): "
                    f"{listed}{' ...' if int(many.sum()) > 10 else ''}. Palette: "
                    f"{self.palette_text()}. Snapping never guesses a class for them: is "
                    "this a label file of this dataset?")
            log.warning("%s: %d px of %d isolated colours far from the %s palette become "
                        "ignore", source, int(counts[stray].sum()), int(stray.sum()),
                        self.name)
            snapped = np.where(stray, IGNORE_INDEX, snapped)
        out[unknown] = snapped[inverse.ravel()]
        return out

    def palette_text(self) -> str:
        """``"name #RRGGBB, ..."`` for messages."""
        return ", ".join(f"{n} #{r:02X}{g:02X}{b:02X}"
                         for n, (r, g, b) in zip(self.names, self.colours, strict=True))

    def decode_indices(self, values: np.ndarray, *, offset: int = 0,
                       ignore_values: tuple[int, ...] = (IGNORE_INDEX,),
                       source: str = "label image") -> np.ndarray:
        """Index-coded label image -> class indices (H, W) int64, ignore = 255.

        Args:
            values: stored label values (H, W), integers.
            offset: stored value of class 0 (LoveDA and the mmsegmentation ISPRS files: 1).
            ignore_values: stored values that mean ignore (e.g. 0: no-data or boundary).
            source: file name used in error messages.

        Raises:
            LabelValueError: values that are neither a class nor an ignore value (listed with
                pixel counts and the file).
        """
        v = np.asarray(values)
        if v.ndim == 3 and v.shape[-1] in (3, 4) and (v[..., :3] == v[..., :1]).all():
            v = v[..., 0]  # a grey index image saved as RGB
        if v.ndim != 2 or not np.issubdtype(v.dtype, np.integer):
            raise LabelValueError(f"{source}: expected a single-band integer label image, "
                                  f"got shape {v.shape} and type {v.dtype}")
        out = v.astype(np.int64) - offset
        valid = (out >= 0) & (out < self.num_classes)
        ignore = np.isin(v, ignore_values)
        bad = ~valid & ~ignore
        if bad.any():
            vals, counts = np.unique(v[bad], return_counts=True)
            listed = ", ".join(f"{int(a)} ({int(c)} px)" for a, c in zip(vals, counts,
                                                                           strict=True))
            raise LabelValueError(
                f"{source}: {int(bad.sum())} pixels hold values that are not {self.name} "
                f"labels: {listed}. Valid: {offset}..{offset + self.num_classes - 1} "
                f"({', '.join(self.names)}) and ignore {list(ignore_values)}")
        out[ignore] = IGNORE_INDEX
        return out


def snap_colours(colours: np.ndarray, palette: list[tuple[int, int, int]],
                 values: list[int], tolerance: float = SNAP_TOLERANCE) -> np.ndarray:
    """Snap RGB colours (K, 3) to palette values; -1 where a colour cannot be snapped.

    A colour within ``tolerance`` of a palette colour takes its value. Otherwise, if it lies
    within ``tolerance`` of the straight line between two palette colours (a resampling
    blend), it takes the value of the nearer one, or :data:`IGNORE_INDEX` where it lies
    within one grey level of the midpoint and their values differ.
    """
    c = np.asarray(colours, np.float64).reshape(-1, 3)
    pal = np.asarray(palette, np.float64)
    val = np.asarray(values, np.int64)
    d = np.sqrt(((c[:, None, :] - pal[None]) ** 2).sum(-1))  # (K, P)
    out = np.where(d.min(1) <= tolerance, val[d.argmin(1)], -1)
    todo = np.flatnonzero(out < 0)
    if not len(todo):
        return out
    best = np.full(len(todo), np.inf)
    for i, j in itertools.combinations(range(len(pal)), 2):
        a, ab = pal[i], pal[j] - pal[i]
        t = np.clip(((c[todo] - a) @ ab) / (ab @ ab), 0.0, 1.0)
        perp = np.sqrt(((c[todo] - (a + t[:, None] * ab)) ** 2).sum(-1))
        better = (perp <= tolerance) & (perp < best)
        if not better.any():
            continue
        pick = np.where(t < 0.5, val[i], val[j])
        # within one grey level of the midpoint: either class is a guess
        tie = (np.abs(t - 0.5) * np.sqrt(ab @ ab) < 1.0) & (val[i] != val[j])
        pick = np.where(tie, IGNORE_INDEX, pick)
        best = np.where(better, perp, best)
        out[todo] = np.where(better, pick, out[todo])
    return out

ISPRS = ClassTable(
    name="isprs",
    names=("impervious", "building", "low_vegetation", "tree", "car", "clutter"),
    colours=((255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)),
    evaluated=(0, 1, 2, 3, 4),
)
"""ISPRS 2D semantic labelling classes (Vaihingen, Potsdam); clutter is not evaluated."""

DUBAI = ClassTable(
    name="dubai",
    names=("building", "land", "road", "vegetation", "water"),
    colours=((0x3C, 0x10, 0x98), (0x84, 0x29, 0xF6), (0x6E, 0xC1, 0xE4), (0xFE, 0xDD, 0x3A),
             (0xE2, 0xA9, 0x29)),
    evaluated=(0, 1, 2, 3, 4),
    ignore_colours=((0x9B, 0x9B, 0x9B), (0, 0, 0)),
)
"""Dubai aerial set (Humans in the Loop / MBRSC): unlabeled (#9B9B9B) and black are ignored."""

LOVEDA = ClassTable(
    name="loveda",
    names=("background", "building", "road", "water", "barren", "forest", "agriculture"),
    colours=((255, 255, 255), (255, 0, 0), (255, 255, 0), (0, 0, 255), (159, 129, 183),
             (0, 255, 0), (255, 195, 128)),
    evaluated=(0, 1, 2, 3, 4, 5, 6),
)
"""LoveDA (Wang et al. 2021): index-coded masks, 0 = no-data (ignore), 1..7 = these seven
classes, all evaluated. The colours are for display only (the masks store indices)."""
