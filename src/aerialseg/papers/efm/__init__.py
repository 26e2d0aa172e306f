"""Vlasenko & Dashkevych: Error Fingerprint Map (EFM) loss weighting (chapter 07)."""

from dataclasses import replace

from aerialseg.config import ChapterDefaults, Paper
from aerialseg.papers.efm.method import METHODS, SOURCE
from aerialseg.papers.efm.reported import CLAIM_PROTOCOL, CLAIMS, PAPER_RESULTS

_ALL = ("smoke", "default", "gpu", "full")

PAPER = Paper(
    key="efm", citation=SOURCE, methods=METHODS, results=tuple(PAPER_RESULTS),
    claims=tuple(replace(c, chapter="07_efm", protocol=CLAIM_PROTOCOL) for c in CLAIMS),
    chapters={"07_efm": ChapterDefaults(settings={
        # the CPU and GPU profiles train both architectures' stages on the shared backbone,
        # so their FPN and PSPNet stages are identical runs: one set (FPN's) stands for both
        "archs": {"smoke": ("fpn",), "default": ("fpn",), "gpu": ("fpn",),
                  "full": ("fpn", "pspnet")},
        # flip TTA for stage 3 and the control (the paper's test-time setting)
        "tta": dict.fromkeys(_ALL, True),
    })})
