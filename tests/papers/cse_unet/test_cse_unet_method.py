import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from aerialseg import stats
from aerialseg.config import TRAIN_FIELDS
from aerialseg.data.classes import ISPRS
from aerialseg.data.registry import DataConfig, SplitData
from aerialseg.evaluation import Accumulator
from aerialseg.papers.cse_unet import analysis as CA
from aerialseg.papers.cse_unet import method as cse
from aerialseg.papers.cse_unet import plots as plots_cse
from aerialseg.papers.cse_unet import reported as reported_cse
from aerialseg.papers.cse_unet.reported import ISPRS5
from aerialseg.plots import check_legible
from aerialseg.registry import all_methods, get_method, resolve_run
from aerialseg.results import Record, build_results
from aerialseg.runs import get_or_train
from aerialseg.tables import seed_mean
from aerialseg.training import Callback

BANDS5 = ("ir", "r", "g", "dsm", "ndsm")
SWITCHES = {"unet_dual_path": (False, True), "unet_rfb": (True, False),
            "cse_unet": (True, True), "cse_unet_mazur": (True, True)}


def resolved(method, profile="full", **kw):
    return resolve_run(method, profile=profile, in_bands=BANDS5, data={}, **kw)


def test_methods_registered_with_models():
    methods = all_methods()
    for name in (*cse.ABLATION, cse.BASELINE, "cse_unet_mazur"):
        assert name in methods
    assert methods["unet_plain"].model == "unet_plain"
    assert methods[cse.BASELINE].model == "smp_unet"
    for name, (rfb, aux) in SWITCHES.items():
        kw = resolved(name).model_kwargs
        assert methods[name].model == "cse_unet"
        assert (kw["use_rfb"], kw["use_aux_path"]) == (rfb, aux)
    # every declared parameter is a model or a training parameter (resolve_run checks it)
    for name in (*cse.ABLATION, cse.BASELINE, "cse_unet_mazur"):
        spec = get_method(name)
        assert set(spec.params) - set(spec.model_params) <= TRAIN_FIELDS


@pytest.mark.parametrize("name", [*cse.ABLATION, cse.BASELINE, "cse_unet_mazur"])
def test_full_profile_is_the_papers_training(name):
    t = resolved(name).train
    assert (t.optimizer, t.lr, t.momentum, t.weight_decay, t.batch_size) == (
        "sgd", 1e-3, 0.99, 5e-4, 4)
    assert (t.sampler, t.crop_size, t.scale_range, t.epochs) == (
        "random_crop", 256, (0.5, 2.0), 400)
    assert t.schedule == "poly" and t.samples_per_epoch is None
    if name != cse.BASELINE:
        assert resolved(name).model_kwargs["base_width"] == 64


@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_cpu_profiles_train_every_variant_alike_and_the_paper_in_full(profile):
    full = resolved("cse_unet")
    assert (full.loss, full.train.lr, full.train.momentum) == ("ce", 1e-3, 0.99)
    trains = set()
    for name in (*cse.ABLATION, cse.BASELINE):
        cfg = resolved(name, profile)
        t = cfg.train
        assert t.epochs * t.samples_per_epoch <= 4096
        assert t.crop_size < full.train.crop_size
        # one training for the whole ablation: balanced CE that learns cars in the budget
        assert cfg.loss == "ce_mfb" and t.sampler == "grid" and t.scale_range is None
        trains.add((t.lr, t.momentum, t.batch_size, t.crop_size, t.epochs))
        if name != cse.BASELINE:
            assert cfg.model_kwargs["base_width"] <= 16
    assert len(trains) == 1
    # explicit values override the profile
    assert resolved("cse_unet", profile, base_width=4).model_kwargs["base_width"] == 4


def test_mazur_variant_uses_his_layout():
    kw = resolved("cse_unet_mazur").model_kwargs
    assert kw["rfb_mode"] == "parallel_concat" and kw["aux_mode"] == "from_fused"
    assert kw["dropout2d"] == 0.2 and kw["rfb_stack_kernels"] == (3, 3, 1, 1)


def test_parameter_counts_at_paper_width_match_methods_md():
    def n(method, classes=5):
        return CA.count_parameters(method, profile="full", in_channels=3,
                                    num_classes=classes)

    assert n("cse_unet") == 34_570_821  # methods.md: ~34.57 M
    assert n("unet_plain") == 28_948_933  # ~28.95 M
    assert n("cse_unet_mazur", classes=7) == 36_988_807  # ~37.0 M
    counts = [n(m) for m in cse.ABLATION]
    assert counts[0] < counts[1] < counts[3] and counts[0] < counts[2] < counts[3]
    # independent additions: their increments add up
    assert counts[3] - counts[0] == (counts[1] - counts[0]) + (counts[2] - counts[0])
    # the CPU profile is much smaller, and an explicit width is honoured
    assert CA.count_parameters("cse_unet", profile="smoke", in_channels=3,
                                num_classes=5) < 1e6
    assert CA.count_parameters("cse_unet", profile="default", in_channels=3,
                                num_classes=5) < 3e6
    assert CA.count_parameters("cse_unet", profile="smoke", in_channels=3, num_classes=5,
                                base_width=64) == 34_570_821


def test_parameter_count_equals_built_model_and_table_columns():
    with torch.device("meta"):
        from aerialseg.models.registry import build_model

        ref = build_model("smp_unet", in_channels=5, num_classes=6, encoder="resnet34")
    expected = sum(p.numel() for p in ref.parameters())
    assert CA.count_parameters(cse.BASELINE, profile="smoke", in_channels=5,
                                num_classes=6) == expected
    df = CA.parameter_table(["unet_plain", cse.BASELINE], profile="smoke", in_channels=5,
                             num_classes=6, base_width=None)
    assert list(df.columns) == ["This run (M)", CA.PAPER_WIDTH,
                                "Paper width, 3 bands, 5 classes (M)"]
    assert df.loc["unet_plain", "Paper width, 3 bands, 5 classes (M)"] == pytest.approx(
        28.948933)
    assert df.loc[cse.BASELINE, "This run (M)"] == pytest.approx(expected / 1e6)


def test_non_overlapping_crops_known_answer():
    assert cse.non_overlapping_crops([(512, 512), (300, 700)], 256) == 4 + 2
    assert cse.non_overlapping_crops([(100, 100)], 256) == 1  # never an empty epoch
    with pytest.raises(ValueError, match="crop size"):
        cse.non_overlapping_crops([(10, 10)], 0)


class CountBatches(Callback):
    def __init__(self):
        self.sizes = []

    def batch_aux(self, state, batch):
        self.sizes.append(len(batch["image"]))
        return {}


def test_paper_epoch_hook_sets_epoch_to_non_overlapping_crops(scene_factory):
    data = SplitData(DataConfig(), [scene_factory(seed=i, size=64) for i in range(2)],
                     [scene_factory(seed=9, size=64, split="val")])
    # the full profile leaves samples_per_epoch None (a None override means "profile value")
    kw = dict(profile="full", in_bands=BANDS5, data={}, base_width=4, crop_size=32,
              epochs=1, batch_size=4)
    counter = CountBatches()
    # 2 scenes x (64 // 32) ** 2 non-overlapping crops = 8 samples = 2 batches of 4
    get_or_train(resolve_run("cse_unet", **kw), data, callbacks=[counter], log=None)
    assert counter.sizes == [4, 4]
    counter = CountBatches()
    run = get_or_train(resolve_run("unet_plain", **kw, samples_per_epoch=4), data,
                       callbacks=[counter], log=None)
    assert counter.sizes == [4]
    assert math.isfinite(run.history[0]["loss"])


# ---- reported numbers ----------------------------------------------------------------


@pytest.mark.parametrize("table", [reported_cse.TABLE2, reported_cse.TABLE3])
def test_reported_means_and_f1_iou_consistency(table):
    for row in table.values():
        iou = [row[c][0] for c in ISPRS5]
        f1 = [row[c][1] for c in ISPRS5]
        assert np.mean(iou) == pytest.approx(row["miou"], abs=0.011)
        assert np.mean(f1) == pytest.approx(row["mf1"], abs=0.011)
        # one confusion matrix per class: F1 = 2 IoU / (1 + IoU)
        for i, f in zip(iou, f1, strict=True):
            assert 200 * i / (100 + i) == pytest.approx(f, abs=0.02)


def test_table1_agrees_with_tables_2_and_3():
    for row in ("unet", "cse_unet"):
        t1 = reported_cse.TABLE1[row]
        assert t1["vaihingen_miou"] == reported_cse.TABLE3[row]["miou"]
        assert t1["vaihingen_mf1"] == reported_cse.TABLE3[row]["mf1"]
        assert t1["potsdam_miou"] == reported_cse.TABLE2[row]["miou"]
        assert t1["potsdam_mf1"] == reported_cse.TABLE2[row]["mf1"]
    assert set(reported_cse.ABLATION_ROWS) == set(cse.ABLATION)
    df = reported_cse.per_class_table("vaihingen")
    assert df.loc["CSE-UNet", "car"] == "58.51\u00a0/\u00a073.82"
    assert df.loc["CSE-UNet", "mIoU"] == "68.72"
    assert reported_cse.table1().loc["CSE-UNet", "Vaihingen mean F1"] == 81.04
    assert reported_cse.mazur_table().loc["CSE-UNet (phase 4.1)", "Jaccard (multi)"] == 0.681
    with pytest.raises(ValueError, match="potsdam"):
        reported_cse.per_class_table("dubai")


# ---- chapter tables -----------------------------------------------------------------

NAMES = list(ISPRS.names)
CAR, IMP = NAMES.index("car"), NAMES.index("impervious")


def evaluation(scenes, car_miss, rng):
    """An Evaluation of a fake model: the truth, with a fraction of car pixels missed."""
    acc = Accumulator(ISPRS, block_size=16)
    for scene in scenes:
        pred = scene.labels.copy()
        pred[(pred == CAR) & (rng.random(pred.shape) < car_miss)] = IMP
        acc.add(scene, np.eye(len(NAMES), dtype=np.float32)[pred].transpose(2, 0, 1))
    return acc.result()


@pytest.fixture
def results(scene_factory):
    """Results with per-block confusions: CSE-UNet finds more cars than the U-Net."""
    scenes = [scene_factory(f"s{i}", size=64, seed=i, split="val") for i in range(3)]
    spec = {"unet_plain": 0.6, "unet_rfb": 0.3, "cse_unet": 0.05}
    recs = [Record(m, s, evaluation(scenes, miss, np.random.default_rng(10 * i + s)),
                   train_seconds=10.0 + s)
            for i, (m, miss) in enumerate(spec.items()) for s in (0, 1, 2)]
    return build_results(recs, chapter="t", profile="smoke", dataset="synthetic", params={},
                         device="cpu", hardware="cpu", wall_seconds={})


def test_ablation_frame_known_answer(results):
    df = CA.ablation_frame(results)
    assert list(df.index) == ["unet_plain", "unet_rfb", "cse_unet"]  # Table 1 order
    assert df.attrs["reference"] == "unet_plain"
    for m in df.index:  # the mean over seeds of each run's score, in points
        assert df.loc[m, "iou"] == pytest.approx(seed_mean(results, m, "iou"))
        assert df.loc[m, "iou_low"] <= df.loc[m, "iou"] <= df.loc[m, "iou_high"]
    v = stats.judge(results, {"method": "cse_unet", "baseline": "unet_plain",
                              "metric": "iou", "cls": "overall"})
    assert df.loc["cse_unet", "d_iou"] == pytest.approx(100 * v.estimate)
    assert (df.loc["cse_unet", "d_iou_low"], df.loc["cse_unet", "d_iou_high"]) == \
        pytest.approx((100 * v.low, 100 * v.high))
    assert df.loc["cse_unet", "d_iou"] > 0 <= df.loc["cse_unet", "d_iou_low"]  # fewer missed cars
    assert df.loc["unet_plain", "d_iou"] == 0 and np.isnan(df.loc["unet_plain", "d_iou_low"])
    assert df.loc["cse_unet", "paper_d_iou"] == pytest.approx(68.72 - 63.60)
    assert df.loc["unet_rfb", "paper_f1"] == 80.76
    with pytest.raises(ValueError, match="reference"):
        CA.ablation_frame(results.sel({"method": ["cse_unet"]}))
    shown = CA.ablation_table(df, caption="c").shown()
    assert shown.iloc[0, 0] == "U-Net" and shown.iloc[0, 2] == "–"  # no change for the U-Net
    assert shown.iloc[2, 2].startswith("+") and "[" in shown.iloc[2, 2]
    assert shown.iloc[2, 4] == "+5.12"
    fig = plots_cse.ablation_deltas(df)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(fig.axes[0].patches) == 4  # two additions x (ours, paper)
    assert check_legible(fig) == []


def test_number_formats():
    assert CA.signed(4.37, 2) == "+4.37"
    assert CA.signed(-1.26) == "\u22121.3"
    assert CA.signed(-0.04) == "\u22120.0"  # a bound just below zero stays below
    assert CA.signed(0.0) == "0.0" and CA.signed(float("nan")) == "–"
    assert CA.interval_text(61.0, 59.5, 63.25) == "61.0\u00a0[59.5,\u00a063.2]"
    assert CA.interval_text(4.0, -0.04, 8.0, sign=True) == "+4.0\u00a0[\u22120.0,\u00a0+8.0]"
    assert CA.interval_text(61.0, float("nan"), 1.0) == "61.0"


def test_iou_f1_cost_and_training_tables(results):
    t = CA.iou_f1_table(results, ["cse_unet"])
    assert list(t.columns) == [*ISPRS5, "mIoU", "mean F1", "OA"]  # clutter not evaluated
    iou, f1 = (seed_mean(results, "cse_unet", m, "car") for m in ("iou", "f1"))
    assert t.loc["cse_unet", "car"] == f"{iou:.1f}\u00a0/\u00a0{f1:.1f}"
    params = CA.parameter_table(["unet_plain", "unet_rfb", "cse_unet"], profile="default",
                                in_channels=5, num_classes=6)
    cost = CA.cost_table(results, params)
    assert list(cost.index) == ["unet_plain", "unet_rfb", "cse_unet"]
    assert cost.loc["cse_unet", "Training (s)"] == pytest.approx(11.0)
    assert cost.loc["unet_plain", "Training, × U-Net"] == 1.0
    assert cost.loc["cse_unet", CA.PAPER_WIDTH] > cost.loc["unet_plain", CA.PAPER_WIDTH]

    class Run:
        def __init__(self, losses, reused=False):
            self.history = [{"epoch": i, "loss": v, "steps": 4} for i, v in enumerate(losses)]
            self.train_seconds, self.reused = 3.0, reused

    flat, falling = [1.0] * 20, list(np.linspace(2, 1, 20))
    tr = CA.training_table({("unet_plain", 0): Run(flat), ("cse_unet", 0): Run(falling, True)})
    assert tr["converged"].tolist() == [True, False]
    assert tr["steps"].tolist() == [80, 80] and tr["reused"].tolist() == [False, True]


def test_settings_table_and_steps():
    shapes = [(512, 512), (300, 700)]
    configs = {m: resolved(m, "default") for m in (*cse.ABLATION, cse.BASELINE)}
    df = CA.settings_table(configs, shapes)
    t = configs["cse_unet"].train
    assert df.loc["cse_unet", "steps"] == t.epochs * math.ceil(t.samples_per_epoch
                                                               / t.batch_size)
    assert df.loc["cse_unet", "network"] == "width 8"
    assert df.loc[cse.BASELINE, "network"] == "ResNet-34 encoder"
    assert df.loc["unet_plain", "loss"] == "balanced CE"
    assert df.loc["unet_plain", "SGD lr / momentum"] == "0.03 / 0.9"
    full = resolved("cse_unet")  # the paper's epoch: every non-overlapping crop once
    assert CA.training_steps(full, shapes) == 400 * math.ceil(6 / 4)
    row = CA.settings_table({"cse_unet": full}, shapes).loc["cse_unet"]
    assert row["crops"] == "4 × 256 px, random, scaled 0.5–2×" and row["loss"] == "CE"


def verdict(word, method="cse_unet", reason="", est=0.05):
    return stats.Verdict(word, est, est - 0.02, est + 0.02, 3, reason, method=method,
                         baseline="unet_plain", metric="iou")


def test_summary_sentences():
    names = {"cse_unet": "CSE-UNet", "unet_plain": "U-Net", "unet_rfb": "U-Net + RFB skips"}
    reason = ("cse_unet: not converged (seed 0); below the per-pixel baseline pixel_baseline "
              "(6.5 vs 59.8); unet_plain: not converged (seed 0); 1 paired seed (the rule "
              "needs 3); 134 of 2000 resamples undefined")
    assert CA.short_reason(reason, names) == (
        "CSE-UNet has not converged and is below the per-pixel baseline; U-Net has not "
        "converged; 1 paired seed (the rule needs 3)")
    bad = verdict("untestable", reason=reason)
    assert "cse_unet" not in CA.sentence(bad, names)
    shown = CA.readable([bad, verdict("supported")], names)
    assert shown[0].reason == CA.short_reason(reason, names) and shown[1].reason == ""
    assert (shown[0].estimate, shown[0].verdict) == (bad.estimate, "untestable")
    text = CA.claim_sentence(bad, names, 5.12)
    assert text == ("CSE-UNet changes mIoU against U-Net by +5.0 points (95 % interval +3.0 "
                    "to +7.0, 3 seeds): untestable. The paper reports +5.12 points on "
                    "Vaihingen.")
    good = CA.claim_sentence(verdict("supported"), names, 5.12)
    assert good.startswith("CSE-UNet raises mIoU over U-Net by 5.0 points") \
        and "supported" in good
    assert CA.meaning([bad], names) == (
        "This run cannot judge the ablation: the statistics rule needs at least 3 seeds and "
        "models that converge and beat the per-pixel baseline. The `default` profile is built "
        "to meet these conditions.")
    assert "as the paper's Table 1 says" in CA.meaning([verdict("supported")] * 3)
    assert "opposite" in CA.meaning([verdict("contradicted")] * 3)
    mixed = CA.meaning([verdict("supported"), verdict("inconclusive")])
    assert "1 supported, 1 inconclusive" in mixed
    assert CA.flagged_text({"cse_unet": None}).startswith("Every model converged")
    assert CA.flagged_text({"cse_unet": "not converged (seed 1)", "unet_plain": None}) == (
        "These models take part in no verdict: CSE-UNet (has not converged).")


def test_paper_results_and_claims_for_the_comparison():
    results = {r.method: r for r in reported_cse.PAPER_RESULTS}
    assert set(results) == set(cse.ABLATION)
    assert results["cse_unet"].values[("car", "iou")] == 58.51
    assert results["unet_plain"].values[("overall", "oa")] == 81.08
    assert results["unet_rfb"].values == {("overall", "iou"): 68.38, ("overall", "f1"): 80.76}
    methods = all_methods()
    for c in reported_cse.CLAIMS:
        assert c.method in methods and c.baseline == "unet_plain" and c.paper_delta > 0
    deltas = {(c.method, c.cls): c.paper_delta for c in reported_cse.CLAIMS}
    assert deltas[("cse_unet", "overall")] == pytest.approx(5.12)
    assert deltas[("cse_unet", "car")] == pytest.approx(15.15)
    # the registry finds them
    from aerialseg.registry import paper_results

    assert any(r.source.startswith("Wang & Xie") for r in paper_results())
