"""Display names of methods, classes and metrics (aerialseg.display)."""

from __future__ import annotations

import pytest

from aerialseg import display
from aerialseg.data.classes import DUBAI, ISPRS, LOVEDA


@pytest.mark.parametrize("method, name", [
    ("fcn_mfb", "FCN-MFB"),
    ("efm_fpn_ctrl", "Control (fine-tune, no EFM)"),
    ("base_lossd", "CE + Dice + Lossd"),
    ("uce_a10", "U-CE α=10"),
    ("pixel_baseline", "Per-pixel baseline"),
    ("ens_pb_fcn_fcn_mfb_svm", "PB + FCN + FCN-MFB (SVM)"),
    ("ens_fcn_fcn_mfb_mean", "FCN + FCN-MFB (probability mean)"),
    ("ens_pb_fcn_svm_heldout", "PB + FCN (SVM, held-out scene)"),
    ("PB+FCN-MFB | svm", "PB + FCN-MFB (SVM)"),
    ("ALL | svm_heldout", "All networks (SVM, held-out scene)"),
    ("FCN | member_mc", "FCN (single network, MC mean)"),
    ("fcn (MC mean)", "FCN, MC mean"),
    ("fcn_mfb [a1b2c3d4]", "FCN-MFB [a1b2c3d4]"),
    ("uce_a10 (MC mean) [lr0.1]", "U-CE α=10, MC mean [lr0.1]"),
])
def test_method_names(method, name):
    assert display.method_name(method) == name


def test_every_registered_method_has_a_short_name():
    from aerialseg.registry import all_methods

    for name, spec in all_methods().items():
        assert spec.label and len(spec.label) <= 42, name
        assert display.method_name(name) == spec.label


def test_unknown_methods_fall_back_to_the_id():
    assert display.method_name("my_new_method") == "my new method"
    assert display.method_name("fcn", {"fcn": "Our FCN"}) == "Our FCN"


def test_every_class_of_every_dataset_has_a_name():
    for table in (ISPRS, DUBAI, LOVEDA):
        for c in table.names:
            assert c in display.CLASS_NAMES, f"{table.name}: {c}"
    assert display.class_name("low_vegetation") == "Low vegetation"
    assert display.class_name("impervious") == "Impervious surfaces"
    assert display.class_name("some_class") == "Some class"


def test_metric_names_and_units():
    assert display.metric_name("f1", "car") == "F1"
    assert display.metric_name("f1") == "Mean F1"
    assert display.metric_name("iou") == "mIoU"
    assert display.metric_name("oa") == "OA"
    assert display.metric_name("boundary_f1") == "Boundary F1"
    assert display.metric_name("ece") == "ECE"
    assert display.metric_name("weighted_iou") == "Weighted IoU"
    assert display.metric_unit("ece") == "%"
    assert display.score_label("f1", "low_vegetation", unit=True) == "Low vegetation F1 (%)"
    assert display.column_name("boundary F1") == "Boundary F1"
    assert display.column_name("car") == "Car"
    with pytest.raises(ValueError, match="unknown kind"):
        display.namer("planet")


def test_ensemble_ids_parse_to_members_and_combiner():
    from aerialseg.display import method_name, parse_ensemble_id

    assert parse_ensemble_id("ens_pb_fcn_fcn_mfb_svm") == (["pb", "fcn", "fcn_mfb"], "svm")
    assert parse_ensemble_id("fcn") is None and parse_ensemble_id("ens_nope_svm") is None
    assert method_name("ens_pb_fcn_fcn_mfb_svm").startswith("PB + FCN + FCN-MFB (")
