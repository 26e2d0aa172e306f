"""The Scene: one orthophoto tile with its bands, labels and evaluation mask."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aerialseg.data.classes import IGNORE_INDEX, ClassTable


@dataclass
class Scene:
    """One tile of a dataset.

    Attributes:
        name: tile id (e.g. ``"area11"``).
        bands: float32 (C, H, W), in the order of ``band_names``, raw physical values
            (reflectance 0..1, heights in metres); models normalise them.
        band_names: names of the bands, e.g. ``("ir", "r", "g", "dsm", "ndsm")``.
        labels: int64 (H, W) class indices, :data:`IGNORE_INDEX` where unknown.
        eval_mask: bool (H, W), True where a pixel is evaluated under the eroded-boundary
            protocol; None if not yet computed.
        split: ``"train"`` or ``"val"``.
        classes: the dataset's class table.
        full_truth: True when ``labels`` is the full ground truth (every pixel labelled up to
            the class boundaries). False when only eroded ground truth was available (an
            ISPRS set with only ``*_noBoundary`` files, or an mmsegmentation-converted
            copy): ``labels`` is then ignore on the eroded boundary band and ``eval_mask``
            is ``labels != ignore``, so the eroded protocol is exact but the full-ground-
            truth protocol cannot be computed and must be reported as unavailable.
        sources: the files the scene was read from (for :func:`~aerialseg.data.registry.
            data_fingerprint`); empty for scenes built in memory.
    """

    name: str
    bands: np.ndarray
    band_names: tuple[str, ...]
    labels: np.ndarray
    classes: ClassTable
    split: str = "train"
    eval_mask: np.ndarray | None = None
    full_truth: bool = True
    sources: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.bands.ndim != 3:
            raise ValueError(f"scene {self.name}: bands must be (C, H, W), got {self.bands.shape}")
        if len(self.band_names) != self.bands.shape[0]:
            raise ValueError(f"scene {self.name}: {self.bands.shape[0]} bands but "
                             f"{len(self.band_names)} band names {self.band_names}")
        if self.labels.shape != self.bands.shape[1:]:
            raise ValueError(
                f"scene {self.name}: image is {self.bands.shape[1]}x{self.bands.shape[2]} px but "
                f"labels are {self.labels.shape[0]}x{self.labels.shape[1]} px; image and label "
                "files must cover the same tile at the same resolution")
        if self.eval_mask is not None and self.eval_mask.shape != self.labels.shape:
            raise ValueError(f"scene {self.name}: eval_mask shape {self.eval_mask.shape} != "
                             f"labels shape {self.labels.shape}")

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W)."""
        return self.labels.shape  # type: ignore[return-value]

    def select_bands(self, names: tuple[str, ...] | list[str]) -> np.ndarray:
        """Return the bands named in ``names`` (C', H, W), failing clearly on a missing band."""
        missing = [n for n in names if n not in self.band_names]
        if missing:
            raise KeyError(f"scene {self.name} has bands {self.band_names}; missing {missing}. "
                           "Choose in_bands from the bands this dataset provides.")
        idx = [self.band_names.index(n) for n in names]
        return self.bands[idx]

    def training_labels(self, ignore_unevaluated: bool) -> np.ndarray:
        """Labels for training; classes that are not evaluated become ignore if asked."""
        if not ignore_unevaluated:
            return self.labels
        lab = self.labels.copy()
        for c in range(self.classes.num_classes):
            if c not in self.classes.evaluated:
                lab[lab == c] = IGNORE_INDEX
        return lab
