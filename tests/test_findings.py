"""The introduction's generated sections (aerialseg.findings)."""

from __future__ import annotations

import json

import xarray as xr

from aerialseg import findings


def _file(folder, name, **attrs):
    ds = xr.Dataset({"x": ("i", [1.0])})
    ds.attrs.update(attrs)
    ds.to_netcdf(folder / name)


def test_placeholders_without_results(tmp_path):
    written = findings.write_generated("synthetic", "default", folder=tmp_path,
                                       out_dir=tmp_path / "gen")
    assert [p.name for p in written] == ["findings.md", "edition.md"]
    for p in written:
        assert p.read_text().strip() == findings.NO_RESULTS


def test_findings_and_edition_from_results_files(tmp_path):
    common = {"profile": "default", "dataset": "synthetic", "torch_version": "2.6.0+cpu",
              "git_commit": "abcdef0123456789", "created": "2026-11-25T17:15:32+00:00"}
    _file(tmp_path, "03_fcn_mfb__synthetic__default.nc", hardware="CPU: AMD EPYC, 1 threads",
          device="cpu", **common)
    rows = [{"source": "Kampffmeyer et al. 2016", "claim": "median-frequency balancing raises "
             "car F1", "verdict": "supported", "sentence": "FCN-MFB raises car F1 over FCN by "
             "41.3 points (95 % interval 35.0 to 47.9, 3 seeds): supported."}]
    _file(tmp_path, "10_comparison__synthetic__default.nc", hardware="CPU: AMD EPYC, 1 threads",
          device="none (reads results files)", claims=json.dumps(rows), **common)
    _file(tmp_path, "03_fcn_mfb__synthetic__default__abc12345.nc", hardware="GPU: H100",
          device="cuda", **common)  # a variant: not this edition
    text = findings.findings_markdown("synthetic", "default", tmp_path)
    assert "Of the 1 claims of the papers that this edition tests, 1 supported" in text
    assert "**Kampffmeyer et al. 2016**" in text
    assert "- *Median-frequency balancing raises car F1.* FCN-MFB raises car F1" in text
    edition = findings.edition_markdown("synthetic", "default", tmp_path)
    assert "**`default` profile** on the embedded synthetic data" in edition
    assert "CPU: AMD EPYC, 1 threads" in edition and "H100" not in edition
    assert "PyTorch 2.6.0" in edition and "commit abcdef0" in edition
    assert "25 November 2026" in edition and "2 results files" in edition


def test_which_method_table():
    import numpy as np

    methods = ["fcn", "fcn_mfb", "uce_a10"]
    classes = ["car", "overall"]
    metrics = ["f1", "boundary_f1", "ece"]
    v = np.zeros((3, 2, 2, 2, 3))
    v[..., 1, 0] = np.array([0.7, 0.8, 0.75])[:, None, None]  # mean F1
    v[..., 0, 0] = np.array([0.2, 0.9, 0.5])[:, None, None]  # car F1
    v[..., 1, 1] = np.array([0.3, 0.2, 0.1])[:, None, None]  # boundary F1
    v[..., 1, 2] = np.array([0.05, 0.02, np.nan])[:, None, None]  # ECE
    ds = xr.Dataset({"scores": (("method", "seed", "protocol", "class", "metric"), v),
                     "pixels_per_second": (("method", "seed"),
                                           [[2e6, 2e6], [1e6, 1e6], [np.nan, np.nan]])},
                    coords={"method": methods, "seed": [0, 1], "protocol": ["eroded", "full"],
                            "class": classes, "metric": metrics})
    t = findings.which_method_table(ds)
    shown = t.shown()
    assert shown["Need"].tolist() == ["Overall accuracy", "Small objects", "Boundaries",
                                      "Calibration", "Cost"]
    assert shown["Best"].tolist() == ["FCN-MFB", "FCN-MFB", "FCN", "FCN-MFB", "FCN"]
    assert shown["Score"].tolist() == ["80.0", "90.0", "30.0", "2.0", "2.0"]
    assert shown["Runner-up"].tolist()[3] == "FCN"  # U-CE has no ECE: not ranked


def _claims_file(folder, name, rows, **common):
    _file(folder, f"03_fcn_mfb__{name}__default.nc", hardware="CPU: AMD EPYC, 1 threads",
          device="cpu", **common)
    _file(folder, f"10_comparison__{name}__default.nc", hardware="CPU: AMD EPYC, 1 threads",
          device="none (reads results files)", claims=json.dumps(rows), **common)


def test_findings_and_edition_cover_both_datasets(tmp_path):
    common = {"profile": "default", "torch_version": "2.6.0+cpu",
              "git_commit": "abcdef0123456789", "created": "2026-11-25T17:15:32+00:00"}
    claim = {"source": "Kampffmeyer et al. 2016", "claim": "median-frequency balancing raises "
             "car F1"}
    _claims_file(tmp_path, "synthetic", [{**claim, "verdict": "supported",
                                          "sentence": "FCN-MFB raises car F1: supported."}],
                 dataset="synthetic", **common)
    _claims_file(tmp_path, "dubai", [{**claim, "verdict": "untestable",
                                      "sentence": "untestable (no car class)."}],
                 dataset="dubai", **common)
    text = findings.findings_markdown(None, "default", tmp_path)
    assert "on the embedded synthetic data 1 supported" in text
    assert "on the Dubai aerial set (real RGB imagery) 1 untestable" in text
    assert "- *Median-frequency balancing raises car F1.*" in text
    assert "  - Synthetic: FCN-MFB raises car F1: supported." in text
    assert "  - Dubai (real RGB): untestable (no car class)." in text
    assert text.index("Synthetic:") < text.index("Dubai (real RGB):")
    edition = findings.edition_markdown(None, "default", tmp_path)
    assert "on the embedded synthetic data (" in edition
    assert "and the Dubai aerial set (real RGB imagery) (" in edition
    written = findings.write_generated(None, "default", folder=tmp_path,
                                       out_dir=tmp_path / "gen")
    assert "Dubai" in written[0].read_text()


def _scores(methods, f1, car=None, ece=None):
    import numpy as np

    classes = ["building", "car", "clutter", "overall"]
    metrics = ["f1", "boundary_f1", "ece"]
    v = np.full((len(methods), 1, 1, len(classes), len(metrics)), np.nan)
    v[:, 0, 0, 3, 0] = f1
    v[:, 0, 0, 1, 0] = car if car is not None else f1
    v[:, 0, 0, 3, 1] = f1
    v[:, 0, 0, 3, 2] = ece if ece is not None else 0.05
    return xr.Dataset({"scores": (("method", "seed", "protocol", "class", "metric"), v),
                       "pixels_per_second": (("method", "seed"), [[1e6]] * len(methods)),
                       "train_seconds": (("method", "seed"), [[10.0]] * len(methods)),
                       "num_parameters": (("method",), [5.0] * len(methods)),
                       "present": (("method", "seed"), [[True]] * len(methods))},
                      coords={"method": methods, "seed": [0], "protocol": ["eroded"],
                              "class": classes, "metric": metrics,
                              "chapter": ("method", ["03"] * len(methods))})


def test_which_method_never_recommends_a_flagged_method():
    ds = _scores(["fcn", "fcn_mfb", "pb", "pixel_baseline"], [0.7, 0.9, 0.8, 0.95])
    flags = {"fcn_mfb": "not converged (seed 0)", "fcn": None, "pb": None}
    frame = findings.which_method(ds, flags=flags)
    acc = frame.set_index("need").loc["Accuracy"]
    assert acc["recommended"] == "pb" and acc["runner_up"] == "fcn"
    assert acc["excluded"] == "fcn_mfb" and acc["excluded_reason"] == "not converged"
    assert frame.set_index("need").loc["Inference speed", "recommended"] in {"fcn", "pb"}
    table = findings.which_method_display(frame, "synthetic")
    shown = table.shown()
    assert shown["Need"][0] == "Accuracy (mean F1)"
    assert shown["Recommended"][0].startswith("Patch CNN (PB) (80.0")
    assert "not converged" in shown["Scores higher, not recommended"][0]
    text = " ".join(findings.which_method_sentences({"synthetic": frame}))
    assert "FCN-MFB scores higher but is not converged" in text
    # a dataset without cars cannot answer the small-objects need
    no_car = ds.sel({"class": ["building", "clutter", "overall"]})
    row = findings.which_method(no_car, flags=flags).set_index("need").loc[
        "Small objects"]
    assert not row["available"] and row["excluded_reason"] == "these data have no car class"
    # which_method_table too never names a flagged method
    t = findings.which_method_table(ds, flags=flags, methods=["fcn", "fcn_mfb", "pb"])
    assert "FCN-MFB" not in t.shown()["Best"].tolist()
