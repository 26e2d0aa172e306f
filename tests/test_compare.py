import numpy as np
import pytest
import torch
from test_evaluation import Oracle

from aerialseg import compare, stats
from aerialseg.config import Claim, PaperResult
from aerialseg.data.patches import BandStats
from aerialseg.evaluation import evaluate_model
from aerialseg.results import Record, build_results, read_results, results_path, write_results


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
    # three names of one perfect oracle: the same predictions, listed once
    assert compare.duplicates(ds) == {"good": "base", "mc_model": "base"}
    table = compare.cost_table(ds)
    assert set(table.index) == {"base"}
    assert "good, mc model: the same runs and predictions as CE + Dice." in table.options[
        "notes"]


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


class NoisyOracle(Oracle):
    """The oracle's logits plus Gaussian noise of std ``noise`` (seeded by torch's seed)."""

    def forward(self, x):
        logits = super().forward(x)
        return logits + self.noise * torch.randn_like(logits)


def write_runs(name, runs, scenes, *, folder=None, params=None, tag=None):
    """A chapter file with the given (method, seed, noise) runs (block size 16)."""
    stats = BandStats(("ir", "r", "g", "dsm", "ndsm"), (0.0,) * 5, (1.0,) * 5)
    recs = []
    for m, s, noise in runs:
        torch.manual_seed(s)
        recs.append(Record(m, s, evaluate_model(NoisyOracle(noise), stats, scenes,
                                                block_size=16),
                           train_seconds=1.0, num_parameters=7))
    ds = build_results(recs, chapter=name, profile="smoke", dataset="synthetic",
                       params=params or {}, device="cpu", hardware="cpu", wall_seconds={})
    return write_results(ds, results_path(name, "synthetic", "smoke", folder,
                                          overrides=params, tag=tag))


def test_chapters_with_different_seeds_combine_without_fill_values(scene_factory):
    scenes = [scene_factory(seed=0, split="val")]
    long_name = "a method with a name longer than sixteen characters"
    write_runs("03_x", [("pb", s, 0.0) for s in (0, 1, 2)], scenes)
    write_runs("07_y", [(long_name, 0, 0.0)], scenes)
    ds = compare.load_all("synthetic", "smoke")
    assert ds["confusion"].dtype == np.int64 and int(ds["confusion"].min()) == 0
    assert ds["block_confusion"].dtype == np.uint32
    present = ds["present"].to_series()
    assert present[("pb", 2)] and not present[(long_name, 1)]
    assert int(ds["confusion"].sel({"method": long_name, "seed": 1}).sum()) == 0
    assert long_name in list(ds["method"].values)  # never truncated to a fixed width
    assert compare.input_files(ds) == ["03_x__synthetic__smoke.nc", "07_y__synthetic__smoke.nc"]
    assert str(ds["file"].sel({"method": "pb"}).values) == "03_x__synthetic__smoke.nc"
    files = compare.find_results("synthetic", "smoke")
    path = compare.write_comparison(ds, files, compare.check_claims(ds, []),
                                    dataset="synthetic", profile="smoke", params={})
    back = read_results(path)  # the strict schema check on read
    assert long_name in list(back["method"].values)
    assert not bool(back["present"].sel({"method": long_name, "seed": 2}))


def test_variants_are_read_only_when_asked(scene_factory):
    scenes = [scene_factory(seed=0, split="val")]
    write_runs("03_x", [("pb", 0, 0.0)], scenes)
    variant = write_runs("03_x", [("pb", 0, 0.0)], scenes, params={"epochs": 3})
    assert variant.name != "03_x__synthetic__smoke.nc"
    assert [p.name for p in compare.find_results("synthetic", "smoke")] == [
        "03_x__synthetic__smoke.nc"]
    assert len(compare.find_results("synthetic", "smoke", include_variants=True)) == 2
    ds = compare.load_all("synthetic", "smoke", include_variants=True)
    vid = variant.stem.split("__")[-1]
    assert sorted(ds["method"].values) == ["pb", f"pb [{vid}]"]
    ds = compare.load_all("synthetic", "smoke", files=[variant])
    assert list(ds["method"].values) == [f"pb [{vid}]"]
    assert compare.input_files(ds) == [variant.name]


def test_check_claims_uses_the_one_rule(scene_factory):
    scenes = [scene_factory(seed=i, size=64, split="val") for i in range(2)]
    write_runs("03_x", [(m, s, n) for m, n in (("good", 0.0), ("plain", 6.0))
                        for s in (0, 1, 2)], scenes)
    ds = compare.load_all("synthetic", "smoke")
    c = Claim("P", "good beats base", "good", "plain", "overall", "f1", 5.0)
    rows = compare.check_claims(ds, [c, Claim("P", "absent", "nope", "plain", "overall", "f1")])
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["verdict"] == "supported" and row["holds here"]
    assert 0 < row["low (points)"] <= row["ours (points)"] <= row["high (points)"]
    assert row["sentence"].startswith("good raises mean F1 over plain by")
    rows = compare.check_claims(ds, [c], flags={"plain": "has not converged"})
    assert rows.iloc[0]["verdict"] == "untestable"
    assert "plain: has not converged" in rows.iloc[0]["reason"]
    rows = compare.check_claims(ds, [Claim("P", "x", "nope", "plain", "overall", "f1")],
                                include_missing=True)
    assert rows.iloc[0]["verdict"] == "untestable"
    diffs = compare.paired_differences(ds, "plain")
    assert set(diffs["seed"]) == {0, 1, 2} and set(diffs["verdict"]) == {"supported"}


def test_methods_come_in_chapter_order_and_duplicates_keep_the_first_chapter(scene_factory):
    scenes = [scene_factory(seed=0, split="val")]
    write_runs("03_x", [("fcn", s, 4.0) for s in (0, 1)], scenes)
    # chapter 05 reports the same runs again under another name (sorted before "fcn")
    from aerialseg.results import read_results

    src = read_results(results_path("03_x", "synthetic", "smoke"))
    copy = src.assign_coords(method=["FCN | member"])
    copy.attrs["chapter"] = "05_y"
    write_results(copy, results_path("05_y", "synthetic", "smoke"))
    write_runs("04_z", [("other", s, 6.0) for s in (0, 1)], scenes)
    ds = compare.load_all("synthetic", "smoke")
    assert list(ds["method"].values) == ["fcn", "other", "FCN | member"]
    assert compare.duplicates(ds) == {"FCN | member": "fcn"}


def test_cost_of_shared_runs_and_ensembles(scene_factory):
    scenes = [scene_factory(seed=0, split="val")]
    write_runs("03_x", [(m, s, n) for m, n in (("fcn", 4.0), ("fcn_mfb", 5.0))
                        for s in (0, 1)], scenes)
    write_runs("05_y", [(m, s, n) for m, n in (("FCN+FCN-MFB | mean", 6.0), ("ce_dropout", 7.0))
                        for s in (0, 1)], scenes)
    ds = compare.load_all("synthetic", "smoke")
    # the chapters' records: ce_dropout is fcn's trained runs (same recorded training times),
    # the ensemble has no parameters and a throughput from a time that was not measured
    ds["train_seconds"].loc[{"method": "fcn"}] = [10.0, 12.0]
    ds["train_seconds"].loc[{"method": "fcn_mfb"}] = [20.0, 22.0]
    ds["train_seconds"].loc[{"method": "ce_dropout"}] = [10.0, 12.0]
    ds["train_seconds"].loc[{"method": "FCN+FCN-MFB | mean"}] = np.nan
    ds["num_parameters"].loc[{"method": "FCN+FCN-MFB | mean"}] = 0
    ds["pixels_per_second"].loc[{"method": "fcn"}] = 2e6
    ds["pixels_per_second"].loc[{"method": "fcn_mfb"}] = 2e6
    ds["pixels_per_second"].loc[{"method": "FCN+FCN-MFB | mean"}] = 6.5e13
    assert compare.ensemble_members("FCN+FCN-MFB | mean") == (["fcn", "fcn_mfb"], "mean")
    assert compare.ensemble_members("ens_pb_fcn_fcn_mfb_svm") == (["pb", "fcn", "fcn_mfb"],
                                                                  "svm")
    assert compare.ensemble_members("fcn") is None
    shared = compare.shared_training(ds)
    assert shared.get("ce_dropout") == "fcn"
    frame = compare.cost_frame(ds)
    ens = frame.loc["FCN+FCN-MFB | mean"]
    assert ens["parameters"] == 14 and ens["training (s)"] == pytest.approx(32.0)
    assert ens["inference (Mpx/s)"] == pytest.approx(1.0)  # 2 + 2 Mpx/s in sequence
    assert frame.loc["ce_dropout", "same_runs_as"] == "fcn"
    shown = compare.cost_table(ds).shown()
    row = shown[shown["Method"] == "CE (dropout network)"].iloc[0]
    assert row["Training (s, mean over seeds)"] == "same runs as FCN"
    assert "e+" not in " ".join(shown.to_numpy().ravel().tolist())  # no scientific notation
    ens_row = shown[shown["Method"].str.startswith("FCN + FCN-MFB")].iloc[0]
    assert ens_row["Inference (Mpx/s)"] == "1.00" and ens_row["Chapter"] == "5"


def test_claims_across_datasets_and_disagreements(scene_factory, tmp_path):
    scenes = [scene_factory(seed=i, size=64, split="val") for i in range(2)]
    runs = [(m, s, n) for m, n in (("good", 0.0), ("base", 6.0)) for s in (0, 1, 2)]
    write_runs("03_x", runs, scenes)
    syn = compare.load_all("synthetic", "smoke")
    other = syn.copy()
    other.attrs["dataset"] = "dubai"
    claims = [Claim("P", "good beats base", "good", "base", "overall", "f1", 5.0),
              Claim("P", "good raises car F1", "good", "base", "car", "f1", 5.0),
              Claim("P", "absent beats base", "absent", "base", "overall", "f1")]
    claims[1] = Claim("P", "good raises water F1", "good", "base", "water", "f1", 5.0)
    long = compare.claims_across({"synthetic": syn, "dubai": other}, claims,
                                 flags={"synthetic": {}, "dubai": {"good": "not converged "
                                                                           "(seed 0)"}})
    assert list(long["dataset"]) == ["synthetic"] * 3 + ["dubai"] * 3
    dubai = long[long["dataset"] == "dubai"].set_index("index")
    assert dubai.loc[1, "reason"] == "these data have no water class"
    assert dubai.loc[2, "reason"] == "absent not in these results"
    assert dubai.loc[0, "reason"].startswith("good: not converged")
    assert long.loc[0, "verdict"] == "supported"
    table = compare.verdict_comparison_table(long)
    shown = table.shown()
    assert shown.columns[0] == "Claim" and len(shown) == 3
    assert shown.iloc[0]["Paper"] == "+5.0"
    text = " ".join(compare.disagreements(long))
    assert "Of the 3 claims, 1 can be tested on both datasets" not in text
    assert "1 on the Synthetic data only" in text
    assert "1 claim is about a class the Dubai (real RGB) data do not have (water)" in text
    path = compare.write_comparison(other, [], long, dataset="dubai", profile="smoke",
                                    params={})
    import json

    from aerialseg.results import read_results

    stored = json.loads(read_results(path).attrs["claims"])
    assert [r["claim"] for r in stored] == [c.text for c in claims]
    assert compare.available_datasets("smoke") == ["synthetic"]


def test_protocol_card_and_papers_table(scene_factory):
    scenes = [scene_factory(seed=0, split="val")]
    write_runs("03_x", [("pb", s, 4.0) for s in (0, 1)], scenes)
    files = compare.find_results("synthetic", "smoke")
    ds = compare.load_all("synthetic", "smoke")
    card = compare.protocol_card(ds, files).shown()
    values = dict(zip(card["Protocol"], card["Value"], strict=True))
    assert values["Files read"] == "03_x__synthetic__smoke.nc"  # names, never paths
    assert values["Seeds"] == "0, 1"
    table = compare.paper_vs_ours_table(
        {"synthetic": ds}, [PaperResult("pb", "P", "their data", {("overall", "oa"): 90.0,
                                                                  ("car", "f1"): 70.0})])
    shown = table.shown()
    assert list(shown["Score"]) == ["OA", "Car F1"]
    assert shown.iloc[0]["Paper"] == "90.0"


def test_f1_half_widths_leave_out_degenerate_intervals(scene_factory):
    scenes = [scene_factory(seed=i, size=64, split="val") for i in range(2)]
    write_runs("03_x", [(m, s, n) for m, n in (("good", 0.0), ("base", 6.0))
                        for s in (0, 1, 2)], scenes)
    ds = compare.load_all("synthetic", "smoke")
    half = compare.f1_half_widths(ds, methods=["good", "base"])
    assert list(half.index) == ["good", "base"]
    assert list(half.columns) == ["impervious", "building", "low_vegetation", "tree", "car"]
    ref = stats.f1_interval_widths(ds, methods=["base"]) / 2
    ok = half.loc["base"].notna()
    np.testing.assert_allclose(half.loc["base"][ok], ref.loc["base"][ok])
    assert half.attrs["unblocked"] == []


def test_an_ensemble_named_two_ways_is_one_method(scene_factory):
    scenes = [scene_factory(seed=0, split="val")]
    write_runs("05_y", [(m, s, n) for m, n in (("ALL | svm", 0.0), ("pb", 6.0))
                        for s in (0, 1, 2)], scenes)
    ds = compare.load_all("synthetic", "smoke")
    assert compare.resolve_method(ds, "ens_pb_fcn_fcn_mfb_svm") == "ALL | svm"
    assert compare.resolve_method(ds, "ens_pb_fcn_svm") == "ens_pb_fcn_svm"
    rows = compare.check_claims(ds, [Claim("K", "the SVM ensemble beats PB in OA",
                                           "ens_pb_fcn_fcn_mfb_svm", "pb", "overall", "oa")])
    assert rows.iloc[0]["method"] == "ALL | svm" and rows.iloc[0]["verdict"] == "supported"


def test_convergence_frame_shows_raw_and_adjusted_changes(scene_factory):
    scenes = [scene_factory(seed=0, split="val")]
    stats_ = BandStats(("ir", "r", "g", "dsm", "ndsm"), (0.0,) * 5, (1.0,) * 5)
    ev = evaluate_model(Oracle(0.0), stats_, scenes)
    extra = {("a", 0): (1.0, -0.01, -0.08), ("a", 1): (0.0, -0.045, -0.01),
             ("b", 0): (1.0, 0.002, 0.002)}
    recs = [Record(m, s, ev, extra={"converged": c, "loss_change_last_tenth": adj,
                                    "loss_change_last_tenth_raw": raw})
            for (m, s), (c, adj, raw) in extra.items()]
    recs.append(Record("ensemble", 0, ev))  # no training of its own: no row
    ds = build_results(recs, chapter="x", profile="smoke", dataset="synthetic", params={},
                       device="cpu", hardware="cpu", wall_seconds={})
    df = compare.convergence_frame(ds)
    assert list(df.index) == ["a", "b"] and list(df.columns) == ["seed 0", "seed 1"]
    assert df.loc["a", "seed 0"] == "\u22128.0 → \u22121.0"
    assert df.loc["a", "seed 1"] == "\u22121.0 → \u22124.5 ✗"
    assert df.loc["b", "seed 0"] == "+0.2 → +0.2" and df.isna().loc["b", "seed 1"]
    assert compare.convergence_frame(ds, methods=["b"]).index.tolist() == ["b"]
