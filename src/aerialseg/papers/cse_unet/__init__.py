"""Wang & Xie 2020: CSE-UNet and its ablation against U-Net baselines (chapter 08)."""

from dataclasses import replace

from aerialseg.config import ChapterDefaults, Paper
from aerialseg.papers.cse_unet.method import METHODS, SOURCE
from aerialseg.papers.cse_unet.reported import CLAIMS, PAPER_RESULTS

PAPER = Paper(
    key="cse_unet", citation=SOURCE, methods=METHODS, results=tuple(PAPER_RESULTS),
    claims=tuple(replace(c, chapter="08_cse_unet") for c in CLAIMS),
    chapters={"08_cse_unet": ChapterDefaults(settings={
        # also train Mazur's (2026) layout of CSE-UNet
        "train_mazur": {"smoke": False, "default": False, "gpu": False, "full": True},
        # also train the smp U-Net with a ResNet-34 encoder (a baseline outside the
        # paper's ablation; about as costly as the four ablation rows together on a CPU)
        "train_smp": {"smoke": True, "default": False, "gpu": True, "full": True},
    })})
