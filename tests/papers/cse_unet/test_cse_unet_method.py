import math

import numpy as np
import pytest
import torch
import xarray as xr
from matplotlib.figure import Figure

from aerialseg.config import TRAIN_FIELDS
from aerialseg.data.registry import DataConfig, SplitData
from aerialseg.papers.cse_unet import analysis as CA
from aerialseg.papers.cse_unet import method as cse
from aerialseg.papers.cse_unet import plots as plots_cse
from aerialseg.papers.cse_unet import reported as reported_cse
from aerialseg.papers.cse_unet.reported import ISPRS5
from aerialseg.registry import all_methods, get_method, resolve_run
from aerialseg.runs import get_or_train
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
    assert list(df.columns) == ["smoke (M)", "paper width (M)",
                                "paper width, 3 bands, 5 classes (M)"]
    assert df.loc["unet_plain", "paper width, 3 bands, 5 classes (M)"] == pytest.approx(
        28.948933)
    assert df.loc[cse.BASELINE, "smoke (M)"] == pytest.approx(expected / 1e6)


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
    assert df.loc["CSE-UNet", "car"] == "58.51/73.82" and df.loc["CSE-UNet", "mIoU"] == "68.72"
    assert reported_cse.table1().loc["CSE-UNet", "Vaihingen mF1"] == 81.04
    assert reported_cse.mazur_table().loc["CSE-UNet (phase 4.1)", "Jaccard (multi)"] == 0.681
    with pytest.raises(ValueError, match="potsdam"):
        reported_cse.per_class_table("dubai")


# ---- chapter tables -----------------------------------------------------------------


def fake_results(miou: dict[str, list[float]]) -> xr.Dataset:
    """A results Dataset with the given per-seed mIoU (fractions); class IoU = mIoU."""
    methods = list(miou)
    seeds = [0, 1]
    classes = [*ISPRS5, "clutter", "overall"]
    metrics = ["f1", "iou", "oa"]
    arr = np.zeros((len(methods), 2, 1, len(classes), len(metrics)))
    for i, m in enumerate(methods):
        for s in seeds:
            v = miou[m][s]
            arr[i, s, 0, :, 1] = v
            arr[i, s, 0, :, 0] = 2 * v / (1 + v)
            arr[i, s, 0, -1, 2] = 0.8
    return xr.Dataset(
        {"scores": (("method", "seed", "protocol", "class", "metric"), arr),
         "train_seconds": (("method", "seed"), np.array([[10.0, 12.0]] * len(methods))),
         "pixels_per_second": (("method", "seed"), np.full((len(methods), 2), 2e6))},
        coords={"method": methods, "seed": seeds, "protocol": ["eroded"], "class": classes,
                "metric": metrics,
                "evaluated": ("class", [True] * 5 + [False, True])})


def test_ablation_table_known_answer():
    ds = fake_results({"cse_unet": [0.60, 0.62], "unet_plain": [0.50, 0.52],
                       "unet_rfb": [0.55, 0.55], "smp_unet_r34": [0.7, 0.7]})
    df = CA.ablation_table(ds)
    assert list(df.index) == ["UNet", "UNet + RFB skips", "CSE-UNet"]  # Table 1 order
    assert df.loc["CSE-UNet", "mIoU"] == pytest.approx(61.0)
    assert df.loc["CSE-UNet", "mIoU sd"] == pytest.approx(np.std([60, 62], ddof=1))
    assert df.loc["CSE-UNet", "Δ mIoU"] == pytest.approx(10.0)
    assert df.loc["UNet + RFB skips", "Δ mIoU"] == pytest.approx(4.0)
    assert df.loc["CSE-UNet", "paper Δ mIoU"] == pytest.approx(68.72 - 63.60)
    assert df.loc["UNet", "OA"] == pytest.approx(80.0)
    with pytest.raises(ValueError, match="reference"):
        CA.ablation_table(ds.sel({"method": ["cse_unet"]}))
    fig = plots_cse.ablation_deltas(df)
    assert isinstance(fig, Figure) and len(fig.axes[0].containers) >= 2


def test_iou_f1_and_cost_tables():
    ds = fake_results({"unet_plain": [0.5, 0.5], "cse_unet": [0.6, 0.6]})
    t = CA.iou_f1_table(ds, ["cse_unet"], titles={"cse_unet": "CSE-UNet"})
    assert list(t.columns) == [*ISPRS5, "mIoU", "mF1", "OA"]  # clutter not evaluated
    assert t.loc["CSE-UNet", "car"] == "60.00/75.00" and t.loc["CSE-UNet", "OA"] == "80.00"
    cost = CA.cost_table(ds, profile="default", in_channels=5, num_classes=6)
    assert list(cost.index) == ["unet_plain", "cse_unet"]
    assert cost.loc["cse_unet", "train (s)"] == pytest.approx(11.0)
    assert cost.loc["cse_unet", "inference (Mpx/s)"] == pytest.approx(2.0)
    assert cost.loc["cse_unet", "paper width (M)"] > cost.loc["unet_plain", "paper width (M)"]


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
