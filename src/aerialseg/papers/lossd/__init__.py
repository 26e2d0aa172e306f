"""Ma et al. 2026: the distance loss (Lossd), with Kervadec's boundary loss (chapter 09)."""

from dataclasses import replace

from aerialseg.config import ChapterDefaults, Paper
from aerialseg.papers.lossd.method import METHODS, SOURCE
from aerialseg.papers.lossd.reported import CLAIMS, PAPER_RESULTS

_ALL = ("smoke", "default", "gpu", "full")

PAPER = Paper(
    key="lossd", citation=SOURCE, methods=METHODS, results=tuple(PAPER_RESULTS),
    claims=tuple(replace(c, chapter="09_distance_loss") for c in CLAIMS),
    chapters={"09_distance_loss": ChapterDefaults(settings={
        # repetitions of the loss-cost timing
        "timing_repeats": {"smoke": 2, "default": 5, "gpu": 5, "full": 5},
        # object counting: matched if at least this fraction overlaps; 4- or
        # 8-connectivity; components smaller than this (px) are not counted
        "object_min_overlap": dict.fromkeys(_ALL, 0.5),
        "object_connectivity": dict.fromkeys(_ALL, 8),
        "object_min_size": dict.fromkeys(_ALL, 10),
    })})
