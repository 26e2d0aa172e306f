"""Landgraf et al. 2024: U-CE, uncertainty-aware cross-entropy (chapter 06)."""

from dataclasses import replace

from aerialseg.config import ChapterDefaults, Paper
from aerialseg.papers.uce.method import METHODS, SOURCE
from aerialseg.papers.uce.reported import CLAIMS, PAPER_RESULTS

PAPER = Paper(
    key="uce", citation=SOURCE, methods=METHODS, results=tuple(PAPER_RESULTS),
    claims=tuple(replace(c, chapter="06_uce") for c in CLAIMS),
    chapters={"06_uce": ChapterDefaults(settings={
        # MC passes at evaluation, and the evaluation tiles
        "test_mc_samples": {"smoke": 2, "default": 4, "gpu": 10, "full": 10},
        "tile": {"smoke": 256, "default": 512, "gpu": 1024, "full": 1024},
        "overlap": {"smoke": 32, "default": 96, "gpu": 128, "full": 128},
    })})
