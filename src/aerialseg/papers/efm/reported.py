"""Numbers the EFM paper reports (Vlasenko & Dashkevych, Tables 1-2), as printed.

Private aerial RGB data (7 classes, 512 x 512 images), test subset taken from the validation
portion; FPN and PSPNet with ImageNet-pretrained ResNet-34 encoders. All five columns are
support-weighted (or micro) averages over the classes: recall equals accuracy in every row.
The paper's baseline row is trained with CE (label smoothing) + Dice, so it corresponds to
our ``efm_<model>_cedice`` stage. They are shown beside ours, never mixed into our results.
"""

from __future__ import annotations

import pandas as pd

from aerialseg.config import Claim, PaperResult

EFM_COLUMNS = ("Acc", "Prec", "Rec", "IoU", "F1")
EFM_STAGES = ("base", "efm", "ft")
"""Stage keys as in :mod:`aerialseg.papers.efm.method`: baseline, +EFM, +EFM fine-tune."""
STAGE_TITLES = {"base": "baseline (CE + Dice)", "efm": "+EFM", "ft": "+EFM fine-tune"}
"""The paper's row titles."""

EFM_TABLES: dict[tuple[str, str], dict[str, float]] = {
    # (model, stage): Acc, Prec, Rec, IoU, F1 as fractions, as printed
    ("fpn", "base"): dict(zip(EFM_COLUMNS, (0.8621, 0.8612, 0.8621, 0.7586, 0.8603),
                              strict=True)),
    ("fpn", "efm"): dict(zip(EFM_COLUMNS, (0.8771, 0.8769, 0.8771, 0.7817, 0.8758),
                             strict=True)),
    ("fpn", "ft"): dict(zip(EFM_COLUMNS, (0.9054, 0.9052, 0.9054, 0.8275, 0.9045),
                            strict=True)),
    ("pspnet", "base"): dict(zip(EFM_COLUMNS, (0.8322, 0.8308, 0.8322, 0.7163, 0.8306),
                                 strict=True)),
    ("pspnet", "efm"): dict(zip(EFM_COLUMNS, (0.8337, 0.8312, 0.8337, 0.7172, 0.8312),
                                strict=True)),
    ("pspnet", "ft"): dict(zip(EFM_COLUMNS, (0.8643, 0.8640, 0.8643, 0.7612, 0.8622),
                               strict=True)),
}
"""Table 1 (FPN, ResNet-34) and Table 2 (PSPNet)."""

EFM_NOTES = (
    "Support-weighted metrics: 'IoU' is not the mean IoU of the ISPRS protocol.",
    "The +EFM fine-tune stage also gets 15 extra epochs and EMA; whether test-time "
    "augmentation and EMA were also applied to the baseline and +EFM rows is not stated "
    "unambiguously, and the paper has no control for them.",
    "The encoders are ImageNet-pretrained ResNet-34.",
    "The test subset comes from the validation portion used to pick the best checkpoint.",
)


def efm_paper_table(scale: float = 100.0) -> pd.DataFrame:
    """Tables 1-2 as one DataFrame indexed by (model, stage), in % by default."""
    rows = {(m, STAGE_TITLES[s]): {k: scale * v for k, v in vals.items()}
            for (m, s), vals in EFM_TABLES.items()}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.names = ["model", "stage"]
    return df


def efm_paper_gains(metric: str = "IoU") -> dict[str, dict[str, float]]:
    """Gains in points of ``metric`` over the printed baseline: {model: {stage: gain}}."""
    if metric not in EFM_COLUMNS:
        raise ValueError(f"metric must be one of {EFM_COLUMNS}, got {metric!r}")
    out: dict[str, dict[str, float]] = {}
    for model in ("fpn", "pspnet"):
        base = EFM_TABLES[(model, "base")][metric]
        out[model] = {s: 100 * (EFM_TABLES[(model, s)][metric] - base) for s in ("efm", "ft")}
    return out


_PRIVATE = ("private aerial RGB set, 7 classes, 512 x 512 images, test subset of the validation "
            "portion; support-weighted averages (not ISPRS macro means)")
_METRIC_KEYS = {"Acc": ("overall", "oa"), "IoU": ("overall", "weighted_iou"),
                "F1": ("overall", "weighted_f1")}
_METHOD = {"base": "efm_{}_cedice", "efm": "efm_{}", "ft": "efm_{}_ft"}
"""The paper's rows -> our methods: its baseline is trained with CE + Dice (our ``cedice``)."""

PAPER_RESULTS: list[PaperResult] = [
    PaperResult(_METHOD[stage].format(model),
                f"Vlasenko & Dashkevych, Table {1 if model == 'fpn' else 2}", _PRIVATE,
                {key: round(100 * vals[col], 2) for col, key in _METRIC_KEYS.items()})
    for (model, stage), vals in EFM_TABLES.items()
]
"""Tables 1-2 as our method names and result metrics (%), for the comparison."""


def _claims() -> list[Claim]:
    gains = efm_paper_gains("IoU")
    out = []
    src = "Vlasenko & Dashkevych"
    for model in ("fpn", "pspnet"):
        cedice, base = _METHOD["base"].format(model), f"efm_{model}_base"
        efm, ft, ctrl = (_METHOD["efm"].format(model), _METHOD["ft"].format(model),
                         f"efm_{model}_ctrl")
        name = {"fpn": "FPN", "pspnet": "PSPNet"}[model]
        out += [
            Claim(src, f"+EFM raises weighted IoU over CE + Dice ({name})", efm, cedice,
                  "overall", "weighted_iou", round(gains[model]["efm"], 2)),
            Claim(src, f"+EFM fine-tuning raises weighted IoU over CE + Dice ({name})", ft,
                  cedice, "overall", "weighted_iou", round(gains[model]["ft"], 2)),
            Claim(src, f"the map's own gain: +EFM beats the same loss with EFM = 0 ({name}; "
                  "our test)", efm, base, "overall", "weighted_iou", None),
            Claim(src, "EFM's own fine-tuning gain: fine-tune beats the control (same "
                  f"epochs, EMA, TTA; no EFM) ({name}; our test)", ft, ctrl, "overall",
                  "weighted_iou", None),
        ]
    return out


CLAIMS: list[Claim] = _claims()
"""EFM's claims on support-weighted IoU, judged on the full ground truth
(:data:`CLAIM_PROTOCOL`): the paper's two gains over its CE + Dice baseline, and our two
attribution tests (the map at equal cost; the fine-tuning against its fairness control)."""

CLAIM_PROTOCOL = "full"
"""The one ground truth of EFM's weighted IoU, in chapter 07 and in the comparison."""
