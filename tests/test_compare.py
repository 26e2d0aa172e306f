import numpy as np
import pytest
from test_evaluation import Oracle

from aerialseg import compare
from aerialseg.config import Claim, PaperResult
from aerialseg.data.patches import BandStats
from aerialseg.evaluation import evaluate_model
from aerialseg.results import Record, build_results, results_path, write_results


def write_chapter(name, methods, scenes, mc, noise=0.0):
    stats = BandStats(("ir", "r", "g", "dsm", "ndsm"), (0.0,) * 5, (1.0,) * 5)
    recs = [Record(m, s, evaluate_model(Oracle(noise if m != "good" else 0.0), stats, scenes,
                                        mc_samples=mc), train_seconds=1.0, num_parameters=7)
            for m in methods for s in (0, 1)]
    ds = build_results(recs, chapter=name, profile="smoke", dataset="synthetic", params={},
                       device="cpu", hardware="cpu", wall_seconds={})
    write_results(ds, results_path(name, "synthetic", "smoke"))


def test_load_all_merges_chapters_with_and_without_curves(scene_factory):
    scenes = [scene_factory(seed=i, split="val") for i in range(2)]
    write_chapter("03_x", ["base", "good"], scenes, mc=0)
    write_chapter("04_y", ["mc_model"], scenes, mc=2)
    ds = compare.load_all("synthetic", "smoke")
    assert sorted(ds["method"].values) == ["base", "good", "mc_model"]
    assert list(ds["chapter"].sel({"method": ["base", "mc_model"]}).values) == ["03_x", "04_y"]
    assert np.isnan(ds["accuracy"].sel({"method": "base"})).all()
    assert np.isfinite(ds["accuracy"].sel({"method": "mc_model"})).any()
    assert "truth_crop" in ds and "pred_crop" in ds
    table = compare.cost_table(ds)
    assert set(table.index) == {"base", "good", "mc_model"}


def test_claims_and_paper_rows(scene_factory):
    scenes = [scene_factory(seed=0, split="val")]
    write_chapter("03_x", ["base", "good"], scenes, mc=0)
    ds = compare.load_all("synthetic", "smoke")
    claims = compare.check_claims(ds, [Claim("P", "good beats base", "good", "base", "overall",
                                             "f1", 5.0),
                                       Claim("P", "absent", "nope", "base", "overall", "f1")])
    assert len(claims) == 1 and claims.iloc[0]["ours (points)"] >= 0
    rows = compare.paper_vs_ours(ds, [PaperResult("good", "P", "d", {("overall", "oa"): 90.0})])
    assert rows.iloc[0]["ours"] == pytest.approx(100.0)
    diffs = compare.paired_differences(ds, "base")
    assert set(diffs["method"]) == {"good"}


def test_no_results_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="Run the method chapters first"):
        compare.load_all("synthetic", "smoke")


def test_write_comparison_roundtrip(scene_factory):
    from aerialseg.results import read_results

    write_chapter("03_x", ["base", "good"], [scene_factory(seed=0, split="val")], mc=0)
    files = compare.find_results("synthetic", "smoke")
    ds = compare.load_all("synthetic", "smoke")
    path = compare.write_comparison(ds, files, compare.check_claims(ds, []),
                                    dataset="synthetic", profile="smoke", params={})
    back = read_results(path)
    assert back.attrs["chapter"] == "10_comparison" and "03_x" in back.attrs["inputs"]
    assert compare.find_results("synthetic", "smoke") == files  # never reads itself


def test_method_reported_by_two_chapters_is_kept_once(scene_factory):
    scenes = [scene_factory(seed=0, split="val")]
    write_chapter("03_x", ["base"], scenes, mc=0)
    write_chapter("04_y", ["base", "other"], scenes, mc=2)
    ds = compare.load_all("synthetic", "smoke")
    assert sorted(ds["method"].values) == ["base", "other"]
    assert str(ds["chapter"].sel({"method": "base"}).values) == "03_x"
