"""The patch CNN's numbers in Kampffmeyer et al. 2016, Table 1, for the comparative chapter.

The printed PB overall accuracy (83.74 %) equals its tree accuracy and is at odds with the
per-class accuracies (``reported.KAMPFFMEYER_NOTES["pb"]``), so it is left out here; the
chapter shows it with that caveat.
"""

from __future__ import annotations

from aerialseg.reported import (
    ISPRS5,
    KAMPFFMEYER_TABLE1,
    KAMPFFMEYER_TABLE1_RECALL,
    PaperResult,
)

PAPER_RESULTS: list[PaperResult] = [
    PaperResult("pb", "Kampffmeyer et al. 2016, Table 1",
                "ISPRS Vaihingen, validation areas 11/15/28/30/34, eroded GT, 5 classes, "
                "32 px border unclassified",
                {**{(c, "f1"): KAMPFFMEYER_TABLE1["pb"][c] for c in ISPRS5},
                 **{(c, "recall"): KAMPFFMEYER_TABLE1_RECALL["pb"][c] for c in ISPRS5},
                 ("overall", "f1"): KAMPFFMEYER_TABLE1["pb"]["mean_f1"]}),
]
