"""Class tables: names, colours, which classes are evaluated, colour <-> index coding."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

IGNORE_INDEX = 255
"""Label value of pixels that are neither trained on nor evaluated."""


class LabelColourError(ValueError):
    """A label image holds colours that are not in the dataset's palette."""


@dataclass(frozen=True)
class ClassTable:
    """The classes of one dataset.

    Attributes:
        name: dataset family the table belongs to (e.g. ``"isprs"``).
        names: class names, index order.
        colours: RGB colour per class, as in the dataset's colour-coded label files.
        evaluated: indices of the classes that metrics average over (ISPRS: clutter excluded).
        ignore_colours: colours that decode to :data:`IGNORE_INDEX` (e.g. Dubai "unlabeled").
    """

    name: str
    names: tuple[str, ...]
    colours: tuple[tuple[int, int, int], ...]
    evaluated: tuple[int, ...]
    ignore_colours: tuple[tuple[int, int, int], ...] = field(default=())

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
            snap: map every pixel to the nearest palette colour instead of failing on unknown
                colours (needed for labels that were resampled).
            source: file name used in error messages.
            extra_ignore: further colours that decode to ignore (e.g. black nodata).

        Raises:
            LabelColourError: unknown colours (listed with pixel counts) and ``snap`` is False.
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
        if unknown.any():
            if not snap:
                vals, counts = np.unique(code[unknown], return_counts=True)
                order = np.argsort(counts)[::-1][:10]
                listed = ", ".join(f"#{int(vals[i]):06X} ({int(counts[i])} px)" for i in order)
                raise LabelColourError(
                    f"{source}: {int(unknown.sum())} pixels have colours that are not in the "
                    f"{self.name} palette: {listed}"
                    f"{' ...' if len(vals) > 10 else ''}. Known colours: "
                    + ", ".join(f"{n} #{r:02X}{g:02X}{b:02X}" for n, (r, g, b)
                                in zip(self.names, self.colours, strict=True))
                    + ". If the labels were resampled, decode with snap=True to map each pixel "
                    "to the nearest palette colour."
                )
            pal = np.asarray(palette, np.float64)
            px = rgb[unknown].astype(np.float64)
            d = ((px[:, None, :] - pal[None, :, :]) ** 2).sum(-1)
            out[unknown] = np.asarray(values)[d.argmin(1)]
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
