"""Kampffmeyer et al. 2016: patch CNN, FCN, FCN-MFB, MC-dropout maps and ensembles.

Chapters 02 (patch CNN), 03 (FCN and MFB), 04 (uncertainty) and 05 (ensembles).
"""

from aerialseg.config import ChapterDefaults, Paper
from aerialseg.papers.kampffmeyer.method import METHODS, SOURCE
from aerialseg.papers.kampffmeyer.reported import CLAIMS, PAPER_RESULTS

_MC = {"smoke": 4, "default": 10, "gpu": 10, "full": 10}
_ALL = ("smoke", "default", "gpu", "full")
_MEMBERS = dict.fromkeys(_ALL, ("pb", "fcn", "fcn_mfb"))
_BORDER = dict.fromkeys(_ALL, "reflect")

PAPER = Paper(
    key="kampffmeyer", citation=SOURCE, methods=METHODS, results=PAPER_RESULTS,
    claims=CLAIMS,
    chapters={
        # output tile side of the patch CNN's dense inference (memory)
        "02_patch_cnn": ChapterDefaults(settings={
            "eval_tile": {"smoke": 256, "default": 256, "gpu": 512, "full": 512}}),
        "03_fcn_mfb": ChapterDefaults(),
        "04_uncertainty": ChapterDefaults(settings={
            "members": _MEMBERS, "mc_samples": _MC, "pb_border_mode": _BORDER,
            "uncertainty": dict.fromkeys(_ALL, "mean_class_std"),
            # validation scenes (the first N) of the patch CNN's MC-dropout pass, about 20 s
            # a 512 px scene on one CPU core (None: every scene); its scores use every scene
            "pb_mc_scenes": {"smoke": None, "default": 4, "gpu": None, "full": None}}),
        "05_ensembles": ChapterDefaults(settings={
            "members": _MEMBERS, "mc_samples": _MC, "pb_border_mode": _BORDER,
            "svm_C": dict.fromkeys(_ALL, 1.0), "svm_features": dict.fromkeys(_ALL, "prob"),
            "heldout_scene": dict.fromkeys(_ALL, -1),
            # pixels sampled (equal per class) to fit the SVM: scales with the training
            # pixels available
            "svm_samples": {"smoke": 2_000, "default": 50_000, "gpu": 200_000,
                            "full": 200_000},
            "heldout_retrain": {"smoke": False, "default": False, "gpu": True,
                                "full": True},
            # training scenes (the first N) the SVM is fitted on (None: every one): the
            # patch CNN predicts a 512 px scene in about 7 s on one CPU core
            "svm_scenes": {"smoke": None, "default": 6, "gpu": None, "full": None},
            # members whose MC-dropout means are averaged (the MC-mean combiner); the patch
            # CNN's MC pass over every validation scene is too slow for the CPU profile
            "mc_members": {"smoke": ("pb", "fcn", "fcn_mfb"), "default": ("fcn", "fcn_mfb"),
                           "gpu": ("pb", "fcn", "fcn_mfb"), "full": ("pb", "fcn", "fcn_mfb")},
        }),
    })
