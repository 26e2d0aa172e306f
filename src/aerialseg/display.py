"""Reader-facing names: methods, classes, metrics and units, in one place.

Every table (:mod:`aerialseg.tables`) and figure (:mod:`aerialseg.plots`) of the book shows
these names instead of internal ids (``efm_fpn_ctrl`` → "FPN control (EMA, no EFM)",
``low_vegetation`` → "Low vegetation", ``boundary_f1`` → "Boundary F1").

Method names are resolved in this order (:func:`method_name`):

1. :data:`METHOD_NAMES` (the short names the book uses), or a name added with
   :func:`register_method_names` (a paper package may add its own);
2. composite ids: a run variant ``"<method> [<variant>]"``, an MC-dropout evaluation
   ``"<method> (MC mean)"``, an ensemble ``"ens_<member>_..._<combiner>"`` or
   ``"<MEMBERS> | <combiner>"`` (chapter 05's labels);
3. the method's ``MethodSpec.title``, when the registry has been loaded (it always is in a
   chapter; this module never imports it, being below it in the layers);
4. the id itself with underscores as spaces.

This module imports nothing from :mod:`aerialseg`, so any layer may use it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping

OVERALL = "overall"

METHOD_NAMES: dict[str, str] = {
    "pb (omit border)": "Patch CNN (PB), border omitted",
    # the per-pixel classifier every model must beat (stats.sanity_flags)
    "pixel_baseline": "Per-pixel baseline",
}
"""Display names of composite ids; methods bring their own (``MethodSpec.label``, registered
by :mod:`aerialseg.registry`)."""

ENSEMBLE_MEMBERS: dict[str, str] = {"pb": "PB", "fcn": "FCN", "fcn_mfb": "FCN-MFB"}
"""Member ids of the ensembles (chapter 05) and their names inside an ensemble's name."""

COMBINERS: dict[str, str] = {
    "svm": "SVM",
    "svm_heldout": "SVM, held-out scene",
    # the members saw that scene in training: not held out (chapter 05's control when the
    # members are not retrained without it)
    "svm_onescene": "SVM fitted on one training scene",
    "mean": "probability mean",
    "mc_mean": "MC-mean average",
    "member": "single network",
    "member_mc": "single network, MC mean",
}
"""How an ensemble combines its members (``aerialseg.papers.kampffmeyer.ensemble``)."""

CLASS_NAMES: dict[str, str] = {
    # ISPRS Vaihingen / Potsdam and the embedded synthetic set
    "impervious": "Impervious surfaces",
    "building": "Building",
    "low_vegetation": "Low vegetation",
    "tree": "Tree",
    "car": "Car",
    "clutter": "Clutter",
    # Dubai aerial set
    "land": "Land (unpaved)",
    "road": "Road",
    "vegetation": "Vegetation",
    "water": "Water",
    # LoveDA
    "background": "Background",
    "barren": "Barren",
    "forest": "Forest",
    "agriculture": "Agriculture",
    OVERALL: "Overall",
}
"""Display name of every class of every dataset's class table (``data.classes``)."""

METRIC_NAMES: dict[str, str] = {
    "f1": "F1",
    "iou": "IoU",
    "precision": "Precision",
    "recall": "Recall",
    "oa": "OA",
    "oa_all": "OA (all pixels)",
    "boundary_f1": "Boundary F1",
    "ece": "ECE",
    "weighted_f1": "Weighted F1",
    "weighted_iou": "Weighted IoU",
    "weighted_precision": "Weighted precision",
    "weighted_recall": "Weighted recall",
    "auc": "AUC (accuracy–rejection)",
}
"""Display name of a per-class metric (the ``metric`` coordinate of the results files)."""

OVERALL_METRIC_NAMES: dict[str, str] = {
    "f1": "Mean F1",
    "iou": "mIoU",
    "precision": "Mean precision",
    "recall": "Mean recall",
    "boundary_f1": "Boundary F1",
}
"""Display name of a metric of the ``overall`` row where it differs from the per-class one."""

METRIC_UNITS: dict[str, str] = dict.fromkeys(
    ("f1", "iou", "precision", "recall", "oa", "oa_all", "boundary_f1", "ece", "weighted_f1",
     "weighted_iou", "weighted_precision", "weighted_recall", "auc"), "%")
"""Unit each metric is shown in: every score, ECE included, is shown in percent."""

COLUMN_NAMES: dict[str, str] = {
    "mean F1": "Mean F1", "mIoU": "mIoU", "OA": "OA", "boundary F1": "Boundary F1",
    "ECE": "ECE", "weighted F1": "Weighted F1", "weighted IoU": "Weighted IoU",
}
"""Column labels of :func:`aerialseg.tables.summary_table` (and ``stats.interval_table``)."""

_registered: dict[str, str] = {}


def register_method_names(names: Mapping[str, str]) -> None:
    """Add or replace method display names (e.g. from a paper package)."""
    _registered.update({str(k): str(v) for k, v in names.items()})


def _registry_title(method: str) -> str | None:
    """``MethodSpec.title`` of ``method`` if the registry is already loaded (else None)."""
    registry = sys.modules.get("aerialseg.registry")
    if registry is None:
        return None
    try:
        return registry.all_methods()[method].title
    except Exception:  # noqa: BLE001 - unknown method or registry error: no title
        return None


def _plain(name: str) -> str:
    return name.replace("_", " ")


def _members(ids: Iterable[str]) -> str:
    return " + ".join(ENSEMBLE_MEMBERS.get(m, _plain(m)) for m in ids)


def parse_ensemble_id(method: str) -> tuple[list[str], str] | None:
    """``"ens_pb_fcn_fcn_mfb_svm"`` → ``(["pb", "fcn", "fcn_mfb"], "svm")``; None if not one."""
    if not method.startswith("ens_"):
        return None
    rest = method[4:]
    combiner = next((c for c in sorted(COMBINERS, key=len, reverse=True)
                     if rest.endswith("_" + c)), None)
    if combiner is None:
        return None
    body = rest[: -len(combiner) - 1]
    members: list[str] = []
    while body:  # longest member id first: "fcn_mfb" before "fcn"
        hit = next((m for m in sorted(ENSEMBLE_MEMBERS, key=len, reverse=True)
                    if body == m or body.startswith(m + "_")), None)
        if hit is None:
            return None
        members.append(hit)
        body = body[len(hit) + 1:]
    return (members, combiner) if members else None


def _ensemble(method: str) -> str | None:
    """``"ens_pb_fcn_fcn_mfb_svm"`` → ``"PB + FCN + FCN-MFB (SVM)"``; None if not one."""
    parsed = parse_ensemble_id(method)
    if parsed is None:
        return None
    members, combiner = parsed
    return f"{_members(members)} ({COMBINERS[combiner]})"


def _combo(method: str) -> str | None:
    """Chapter 05's ``"PB+FCN | svm"`` / ``"ALL | mean"`` / ``"FCN | member"`` labels."""
    if " | " not in method:
        return None
    label, combiner = method.split(" | ", 1)
    how = COMBINERS.get(combiner, _plain(combiner))
    if label == "ALL":
        return f"All networks ({how})"
    parts = [p.strip() for p in label.split("+")]
    return f"{' + '.join(parts)} ({how})"


def method_name(method: str, names: Mapping[str, str] | None = None) -> str:
    """The display name of a method id (see the module docstring for the order).

    Args:
        method: a method id as in the results files' ``method`` coordinate.
        names: overrides for this call (id → name), checked first.
    """
    method = str(method)
    if names and method in names:
        return names[method]
    if method in _registered:
        return _registered[method]
    if method in METHOD_NAMES:
        return METHOD_NAMES[method]
    variant = re.fullmatch(r"(.+) \[(.+)\]", method)
    if variant:
        return f"{method_name(variant.group(1), names)} [{variant.group(2)}]"
    mc = re.fullmatch(r"(.+) \(MC mean\)", method)
    if mc:
        return f"{method_name(mc.group(1), names)}, MC mean"
    for parse in (_ensemble, _combo):
        found = parse(method)
        if found:
            return found
    title = _registry_title(method)
    return title if title else _plain(method)


def method_names(methods: Iterable[str], names: Mapping[str, str] | None = None
                 ) -> dict[str, str]:
    """``{id: display name}`` for many methods (handy for ``stats.sentence(names=...)``)."""
    return {str(m): method_name(m, names) for m in methods}


def class_name(cls: str) -> str:
    """The display name of a class id (``low_vegetation`` → "Low vegetation")."""
    cls = str(cls)
    if cls in CLASS_NAMES:
        return CLASS_NAMES[cls]
    text = _plain(cls)
    return text[:1].upper() + text[1:]


def metric_name(metric: str, cls: str = OVERALL) -> str:
    """The display name of a metric: per class (``f1`` → "F1") or overall ("Mean F1")."""
    metric = str(metric)
    if cls == OVERALL and metric in OVERALL_METRIC_NAMES:
        return OVERALL_METRIC_NAMES[metric]
    return METRIC_NAMES.get(metric, _plain(metric))


def metric_unit(metric: str) -> str:
    """The unit a metric is shown in ("%" for every score; "" if unknown)."""
    return METRIC_UNITS.get(str(metric), "")


def score_label(metric: str, cls: str = OVERALL, *, unit: bool = False) -> str:
    """Axis or column label of a score: "Car F1", "Mean F1", "mIoU (%)" with ``unit``."""
    text = metric_name(metric, cls) if cls == OVERALL else \
        f"{class_name(cls)} {metric_name(metric, 'x')}"
    u = metric_unit(metric)
    return f"{text} ({u})" if unit and u else text


def column_name(column: str) -> str:
    """A table column's display name: a class, a summary label or a metric id."""
    column = str(column)
    if column in COLUMN_NAMES:
        return COLUMN_NAMES[column]
    if column in CLASS_NAMES:
        return CLASS_NAMES[column]
    if column in METRIC_NAMES:
        return METRIC_NAMES[column]
    return column[:1].upper() + column[1:]


NAMERS: dict[str, Callable[[str], str]] = {
    "method": method_name,
    "class": class_name,
    "metric": metric_name,
    "column": column_name,
}
"""Kinds of ids a table maps to display names (``tables.show_table(rows="method")``)."""


def namer(kind: str | Mapping[str, str] | Callable[[str], str] | None
          ) -> Callable[[str], str]:
    """A function id → display name for ``kind``.

    ``kind`` is a key of :data:`NAMERS`, a mapping (ids it lacks stay as they are), a
    function, or None (``str``).
    """
    if kind is None:
        return str
    if callable(kind):
        return kind
    if isinstance(kind, Mapping):
        table = dict(kind)
        return lambda x: table.get(str(x), str(x))
    if kind not in NAMERS:
        raise ValueError(f"unknown kind of name {kind!r}; choose one of {sorted(NAMERS)}, a "
                         "mapping or a function")
    return NAMERS[kind]
