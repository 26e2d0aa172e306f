"""Chapter 04's analyses: per-scene coverage, subsets, MC vs deterministic, the tables."""

import numpy as np
import pytest
import torch

from aerialseg import chapter, plots, stats
from aerialseg.data.classes import ISPRS
from aerialseg.data.registry import SplitData, data_config
from aerialseg.evaluation import UNCERTAINTY_KINDS, Accumulator
from aerialseg.papers.kampffmeyer import analysis, reported
from aerialseg.papers.kampffmeyer import plots as k_plots
from aerialseg.results import Record, build_results


def _probs(pred: np.ndarray, c: int = 6) -> np.ndarray:
    p = np.full((c,) + pred.shape, 0.02, np.float32)
    np.put_along_axis(p, pred[None], 0.9, 0)
    return p


def _evaluation(scenes, *, error: float, informative: bool, seed: int = 0):
    """Predictions wrong on a share ``error`` of the pixels; an uncertainty that is high on
    exactly the wrong pixels (``informative``) or random."""
    rng = np.random.default_rng(seed)
    acc = Accumulator(ISPRS, uncertainty=UNCERTAINTY_KINDS, block_size=16)
    for i, s in enumerate(scenes):
        wrong = rng.random(s.labels.shape) < error
        pred = np.where(wrong, (s.labels + 1) % 5, s.labels)
        noise = rng.random(s.labels.shape).astype(np.float32)
        u = (0.5 * wrong + 0.1 * noise).astype(np.float32) if informative else noise
        acc.add(s, _probs(pred), extras={k: u for k in UNCERTAINTY_KINDS}, keep=i < 1)
    return acc.result()


def _results(records):
    return build_results(records, chapter="04_uncertainty", profile="smoke",
                         dataset="synthetic", params={}, device="cpu", hardware="test",
                         wall_seconds={})


@pytest.fixture
def scenes(scene_factory):
    return [scene_factory(f"v{i}", 32, i, "val") for i in range(2)]


def test_scene_coverage_reads_each_scene(scenes):
    cov = analysis.SceneCoverage(kinds=("mean_class_std",))
    acc = Accumulator(ISPRS, uncertainty=UNCERTAINTY_KINDS)
    rng = np.random.default_rng(0)
    for s, informative in zip(scenes, (True, False), strict=True):
        wrong = rng.random(s.labels.shape) < 0.2
        pred = np.where(wrong, (s.labels + 1) % 5, s.labels)
        u = wrong.astype(np.float32) + 0.01 * rng.random(wrong.shape).astype(np.float32) \
            if informative else rng.random(wrong.shape).astype(np.float32)
        acc.add(s, _probs(pred), extras={k: u for k in UNCERTAINTY_KINDS}, keep=True)
    assert cov.recorder("fcn (MC mean)", 0)(acc.result()) == {}
    df = cov.frame()
    assert set(df["scene"]) == {"v0", "v1"} and len(df) == 2 * 3
    at = df[np.isclose(df["target"], 0.975)].set_index("scene")["kept"]
    assert 0.75 < at["v0"] < 0.85  # the errors rank last: all right pixels are kept
    assert at["v1"] < at["v0"]


def test_subset_chapter_keeps_its_own_records(scenes, scene_factory):
    cfg = data_config("synthetic", "smoke", {})
    data = SplitData(cfg, [scene_factory("t", 32, 9)], scenes)
    ch = chapter.Chapter("04_uncertainty", "smoke", "synthetic", torch.device("cpu"), (0,),
                         data, {})
    sub = analysis.scene_subset(ch, 1)
    assert [s.name for s in sub.data.val] == ["v0"] and len(ch.data.val) == 2
    sub.record("pb", 0, _evaluation(sub.data.val, error=0.1, informative=True))
    assert sub.records and not ch.records
    with sub.phase("evaluate"):
        pass
    assert "evaluate" in ch.wall  # timings go to the chapter
    view = analysis.results_view(sub)
    assert list(view["method"].values) == ["pb"]
    with pytest.raises(ValueError):
        analysis.scene_subset(ch, 3)


def test_paired_differences_find_zero_and_a_shift(scenes):
    recs = [Record(m, s, _evaluation(scenes, error=e, informative=True, seed=s))
            for s in (0, 1, 2) for m, e in (("a", 0.2), ("a_copy", 0.2), ("b", 0.05))]
    ds = _results(recs)
    d = analysis.paired_differences(ds, [("a_copy", "a"), ("b", "a")]).set_index(
        ["method", "metric"])
    same = d.loc[("a_copy", "oa")]
    assert same["estimate"] == pytest.approx(0) and same["low"] <= 0 <= same["high"]
    shift = d.loc[("b", "oa")]
    assert shift["estimate"] == pytest.approx(0.15, abs=0.03) and shift["low"] > 0
    assert shift["n_seeds"] == 3
    table = analysis.difference_table(ds, ["b"], "a")
    assert table.loc["b", "Δ OA (points)"].startswith("+1")


def test_signed_interval_text():
    assert analysis.signed_interval(0.012, 0.004, 0.02) == "+1.2\u00a0[+0.4,\u00a0+2.0]"
    assert analysis.signed_interval(-0.012, -0.02, 0.0).startswith("\u22121.2")
    assert analysis.signed_interval(float("nan"), 0, 0) == "–"
    assert analysis.signed_interval(0.01, float("nan"), float("nan")) == "+1.0"


def test_mc_tables_and_figure_view(scenes):
    det = [Record("fcn", s, _evaluation(scenes, error=0.2, informative=False, seed=s))
           for s in (0, 1)]
    mc = [Record("fcn (MC mean)", s, _evaluation(scenes, error=0.1, informative=True, seed=s))
          for s in (0, 1)]
    ds = _results(det + mc)
    extra = _results([Record("pb (MC mean)", 0, _evaluation(scenes[:1], error=0.1,
                                                            informative=True))])
    view = analysis.figure_view(ds, extra, tag="1 scene")
    assert "block" not in view.dims
    assert list(view["method"].values) == ["fcn", "fcn (MC mean)", "pb (MC mean) [1 scene]"]
    table = analysis.mc_vs_deterministic([(ds, "fcn", "fcn (MC mean)", "all 2")])
    assert table.loc["fcn", "Δ OA (points)"].startswith("+")
    assert table.loc["fcn", "validation scenes"] == "all 2"
    cov = analysis.SceneCoverage()
    cov.rows.append({"method": "fcn (MC mean)", "seed": 0, "scene": "v0",
                     "uncertainty": "mean_class_std", "target": 0.975, "kept": 0.5})
    ct = analysis.coverage_table(view, cov.frame(), ["fcn (MC mean)"],
                                 paper=reported.KAMPFFMEYER_FCN_COVERAGE)
    assert list(ct.columns) == ["OA 97.5 %", "OA 95 %", "OA 90 %"]
    assert any(r.startswith("Paper's FCN") for r in ct.index)
    assert ct.loc["FCN, MC mean: per scene (1 scenes)", "OA 97.5 %"].startswith("50.0")
    kinds = analysis.uncertainty_kind_table(view, ["fcn (MC mean)"])
    assert kinds.shape == (3, len(UNCERTAINTY_KINDS))
    assert ((kinds >= 0) & (kinds <= 1)).all().all()
    full = analysis.accuracy_at_coverage(view, "fcn (MC mean)", 1.0)
    assert full == pytest.approx(0.9, abs=0.03)
    assert analysis.accuracy_at_coverage(view, "fcn (MC mean)", 0.5) > full
    assert np.isnan(analysis.accuracy_at_coverage(view, "nope", 0.5))


def test_readable_verdicts_name_methods():
    v = stats.Verdict("untestable", 0.1, 0.0, 0.2, 1, reason=(
        "ens_pb_fcn_fcn_mfb_svm: not converged (seed 0); below the per-pixel baseline "
        "pixel_baseline (29.0 vs 59.8); fcn_mfb: not converged"), method="x")
    names = {"ens_pb_fcn_fcn_mfb_svm": "PB + FCN + FCN-MFB (SVM)", "fcn": "FCN",
             "fcn_mfb": "FCN-MFB", "pixel_baseline": "Per-pixel baseline"}
    (out,) = analysis.readable_verdicts([v], names)
    assert out.reason == ("PB + FCN + FCN-MFB (SVM): not converged (seed 0); below the "
                          "per-pixel baseline (29.0 vs 59.8); FCN-MFB: not converged")
    assert out.estimate == v.estimate


def test_uncertainty_panels_are_legible(scenes):
    plots.book_style()
    ev = _evaluation(scenes, error=0.2, informative=True)
    maps = {"pb": ev.maps["v0"], "fcn": ev.maps["v0"]}
    fig = k_plots.uncertainty_panels(maps, ISPRS, image=np.zeros((32, 32, 3)))
    assert plots.check_legible(fig) == []
    assert len(fig.axes) >= 3 + 4 * 2  # image, truth, legend, 4 per model (+ colour bars)
    with pytest.raises(ValueError):
        k_plots.uncertainty_panels(maps, ISPRS, kinds=("entropy", "mutual_info", "x"))


def test_beside_table2_and_difference_figure(scenes):
    from aerialseg.papers.kampffmeyer.ensemble import ensemble_id

    all_svm = ensemble_id(("pb", "fcn", "fcn_mfb"), "svm")
    recs = [Record(m, s, _evaluation(scenes, error=e, informative=True, seed=s))
            for s in (0, 1) for m, e in (("pb", 0.3), ("fcn", 0.2), ("fcn_mfb", 0.25),
                                          (all_svm, 0.1), ("pixel_baseline", 0.4))]
    ds = _results(recs)
    table1 = {r.method: {"mean_f1": r.values[("overall", "f1")],
                         "oa": r.values[("overall", "oa")]} for r in reported.PAPER_RESULTS}
    t = analysis.beside_table2(ds, ["pb", "fcn", "fcn_mfb"], table1,
                               reported.KAMPFFMEYER_TABLE2, extra_rows=["pixel_baseline"])
    assert list(t.index) == ["pb", "fcn", "fcn_mfb", all_svm, "pixel_baseline"]
    assert t.loc[all_svm, "Paper: OA"] == reported.KAMPFFMEYER_TABLE2["ALL"]["oa"]
    assert t.loc["fcn", "Paper: mean F1"] == pytest.approx(81.28, abs=0.01)  # typo fixed
    assert np.isnan(t.loc["pixel_baseline", "Paper: OA"])
    assert t.loc[all_svm, "Ours: OA"].startswith("90")
    diff = analysis.paired_differences(ds, [(all_svm, "fcn"), ("pb", "fcn")])
    fig = k_plots.difference_intervals(diff, reference="fcn")
    assert plots.check_legible(fig) == []
    assert len(fig.axes) == 2


def test_and_join():
    assert analysis.and_join([]) == ""
    assert analysis.and_join(["A"]) == "A"
    assert analysis.and_join(["A", "B", "C"]) == "A, B and C"


def test_seconds_per_scene(scenes):
    ev = _evaluation(scenes, error=0.1, informative=True)
    ev.inference_seconds = 4.0
    ds = _results([Record("fcn", 0, ev)])
    assert analysis.seconds_per_scene(ds, "fcn", scenes) == pytest.approx(2.0)
    assert np.isnan(analysis.seconds_per_scene(ds, "pb", scenes))
