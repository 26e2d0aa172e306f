import math

import numpy as np
import pytest
import torch

from aerialseg.data.patches import SegmentationPatches, d4
from aerialseg.data.registry import DataConfig, SplitData
from aerialseg.losses.distance import (
    BoundaryObjective,
    KervadecBoundaryLoss,
    LossdLoss,
    LossdObjective,
)
from aerialseg.losses.registry import build_loss
from aerialseg.models.registry import build_model
from aerialseg.papers.lossd import analysis as LA
from aerialseg.papers.lossd import method as m
from aerialseg.registry import resolve_run
from aerialseg.runs import RunContext, get_or_train

BANDS = ("ir", "r", "g", "dsm", "ndsm")


def _labels(size: int = 24, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lab = np.zeros((size, size), np.int64)
    lab[3:11, 4:15] = 1
    lab[14:, 2:9] = 3
    lab[16:19, 15:22] = 4
    lab[rng.random((size, size)) < 0.02] = 255
    return lab


def _cfg(method: str, **kw):
    base = dict(profile="smoke", in_bands=BANDS, data={}, crop_size=32, samples_per_epoch=4,
                batch_size=2, epochs=2)
    base.update(kw)
    return resolve_run(method, **base)


def test_methods_share_model_optimiser_and_base_loss():
    cfgs = {n: _cfg(n, profile="default") for n in ("base", "base_lossd", "base_boundary")}
    assert {c.model for c in cfgs.values()} == {"fcn"}  # the shared CPU backbone
    assert {resolve_run(n, profile="full", in_bands=BANDS, data={}).model
            for n in cfgs} == {"unet_plain"}
    assert len({(str(c.model_kwargs), c.train) for c in cfgs.values()}) == 1
    assert {c.loss for c in cfgs.values()} == {"ce_dice", "lossd", "boundary"}
    assert all(c.loss_kwargs["label_smoothing"] == 0.05 for c in cfgs.values())
    assert cfgs["base_lossd"].loss_kwargs["lossd_weight"] == 1.0
    assert cfgs["base_lossd"].loss_kwargs["lossd_max_iter"] == 50
    assert _cfg("base_lossd").loss_kwargs["lossd_max_iter"] == 10  # smoke cap
    # every profile's alpha schedule reaches its floor at half of training (step = 2/epochs)
    for prof in ("smoke", "default", "full"):
        c = resolve_run("base_boundary", profile=prof, in_bands=BANDS, data={})
        assert c.loss_kwargs["boundary_alpha_step"] == pytest.approx(2 / c.train.epochs)


def test_scene_maps_match_the_losses_own_maps():
    lab = _labels()
    target = torch.from_numpy(lab)
    lossd = build_loss("lossd", num_classes=6, ignore_index=255, lossd_max_iter=7)
    got = m.scene_distance_maps(lossd, lab)
    assert set(got) == {"lossd_full"} and got["lossd_full"].dtype == np.int8
    ref = lossd.lossd.precompute(target)
    np.testing.assert_array_equal(got["lossd_full"], ref["lossd_full"].numpy())
    # the positive map is the positive part of the signed one
    np.testing.assert_array_equal(np.maximum(got["lossd_full"], 0), ref["lossd_pos"].numpy())
    big = build_loss("lossd", num_classes=6, ignore_index=255, lossd_max_iter=200)
    assert m.scene_distance_maps(big, lab)["lossd_full"].dtype == np.int16
    bnd = build_loss("boundary", num_classes=6, ignore_index=255)
    phi = m.scene_distance_maps(bnd, lab)["boundary_dist"]
    ref_phi = KervadecBoundaryLoss(6).precompute(target)["boundary_dist"].numpy()
    np.testing.assert_allclose(phi.astype(np.float32), ref_phi, rtol=1e-3, atol=1e-3)
    assert m.scene_distance_maps(build_loss("ce_dice"), lab) == {}


def _context(method: str, labels: list[np.ndarray], size: int, **kw) -> RunContext:
    cfg = _cfg(method, crop_size=size, **kw)
    images = [np.zeros((5, *lab.shape), np.float32) for lab in labels]
    ds = SegmentationPatches(images, labels, size=size, overlap=0.5)
    loss = build_loss(cfg.loss, num_classes=6, ignore_index=255, **cfg.loss_kwargs)
    model = build_model(cfg.model, in_channels=5, num_classes=6, **cfg.model_kwargs)
    return RunContext(cfg, SplitData(DataConfig()), None, ds, model, loss, torch.device("cpu"))


def test_setup_caches_maps_that_follow_every_d4_variant():
    """One window = the whole scene: each of the 8 variants must carry exactly the maps of
    the transformed labels (distance transforms commute with flips and rotations)."""
    lab = _labels()
    ctx = _context("base_lossd", [lab], size=24)
    callbacks = m.setup(ctx)
    assert len(ctx.dataset.extras["lossd_full"]) == 1
    pos_cb = next(cb for cb in callbacks if isinstance(cb, m.LossdPositiveMap))
    lossd = ctx.loss_fn.lossd
    assert len(ctx.dataset) == 8
    for k in range(8):
        item = ctx.dataset[k]
        ref = lossd.precompute(torch.from_numpy(np.ascontiguousarray(d4(lab, k))))
        torch.testing.assert_close(item["lossd_full"], ref["lossd_full"])
        torch.testing.assert_close(item["label"], torch.from_numpy(d4(lab, k).copy()))
        batch = {k2: v[None] for k2, v in item.items()}
        torch.testing.assert_close(pos_cb.batch_aux(None, batch)["lossd_pos"][0],
                                   ref["lossd_pos"])
    ctx_b = _context("base_boundary", [lab], size=24)
    m.setup(ctx_b)
    for k in (1, 6):
        item = ctx_b.dataset[k]
        ref = KervadecBoundaryLoss(6).precompute(torch.from_numpy(d4(lab, k).copy()))
        torch.testing.assert_close(item["boundary_dist"], ref["boundary_dist"], rtol=1e-3,
                                   atol=1e-3)


def test_cached_maps_give_the_same_loss_and_gradient_as_maps_on_the_crop():
    """Inside a crop whose objects lie wholly inside it, scene maps = crop maps."""
    lab = np.zeros((32, 32), np.int64)
    lab[10:20, 8:18] = 1  # one object, far from every crop edge of the 24 px windows
    ctx = _context("base_lossd", [lab], size=32)
    callbacks = m.setup(ctx)
    item = ctx.dataset[3]
    batch = {k: v[None] for k, v in item.items()}
    aux = {"lossd_full": batch["lossd_full"]}
    for cb in callbacks:
        aux.update(cb.batch_aux(None, batch))
    logits = torch.randn(1, 6, 32, 32, generator=torch.Generator().manual_seed(0),
                         requires_grad=True)
    a = ctx.loss_fn(logits, batch["label"], aux=aux)
    (ga,) = torch.autograd.grad(a, logits)
    b = ctx.loss_fn(logits, batch["label"])
    (gb,) = torch.autograd.grad(b, logits)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ga, gb)


def test_setup_rejects_rescaling():
    ctx = _context("base_lossd", [_labels()], size=24, scale_range=(0.5, 2.0))
    with pytest.raises(ValueError, match="scale_range"):
        m.setup(ctx)


def test_training_records_loss_time_and_precompute(scene_factory):
    data = SplitData(DataConfig(), [scene_factory(seed=i, size=48) for i in range(2)],
                     [scene_factory(seed=9, size=48, split="val")])
    run = get_or_train(_cfg("base_lossd"), data, log=None)
    assert len(run.history) == 2
    assert all(h["loss_ms"] > 0 for h in run.history)
    assert run.history[0]["distance_map_seconds"] > 0
    assert np.isfinite([h["loss"] for h in run.history]).all()


def test_error_cost_table_known_answers():
    df = LA.error_cost_table((1, 3, 10), max_iter=50, size=61, half=12)
    for d in (1, 3, 10):
        want = math.log1p(d) / math.log1p(50)
        for kind in ("miss", "spurious"):
            assert df.loc[d, f"Lossd (log): {kind}"] == pytest.approx(want, rel=1e-4)
            assert df.loc[d, f"Lossd (linear): {kind}"] == pytest.approx(d / 50, rel=1e-4)
            # Kervadec: phi of the taken class minus phi of the true one = d + (d - 1)
            assert df.loc[d, f"boundary loss: {kind}"] == pytest.approx(2 * d - 1, abs=0.05)
    ce = df["cross-entropy: miss"]
    assert ce.max() - ce.min() < 1e-3  # CE charges every wrong pixel the same
    with pytest.raises(ValueError, match="half"):
        LA.error_cost_table((20,), half=10)


def test_lossd_cost_map_sums_to_the_loss():
    lab = _labels()
    pred = lab.copy()
    pred[pred == 255] = 0
    pred[5:8, 6:9] = 0  # a hole in object 1
    pred[20:22, 20:23] = 1  # a blob
    cost = LA.lossd_cost_map(pred, lab, 6, max_iter=9)
    assert (cost[lab == 255] == 0).all() and cost.min() == 0
    assert (cost > 0).sum() == ((pred != lab) & (lab != 255)).sum()
    loss = LossdLoss(6, max_iter=9)
    logits = 10.0 * torch.nn.functional.one_hot(torch.from_numpy(pred), 6).permute(2, 0, 1)[None]
    target = torch.from_numpy(lab)[None]
    _, active = loss.class_losses(logits.float(), target)
    want = float(loss(logits.float(), target)) * int(active.sum()) * int((lab != 255).sum())
    assert cost.sum() == pytest.approx(want, rel=1e-5)
    # classes outside ``evaluated`` are ignored in the truth, as in training
    pred4 = pred.copy()
    pred4[lab == 4] = 0
    assert (LA.lossd_cost_map(pred4, lab, 6, max_iter=9)[lab == 4] > 0).all()
    assert (LA.lossd_cost_map(pred4, lab, 6, max_iter=9, evaluated=(0, 1, 3))[lab == 4]
            == 0).all()


def test_loss_step_cost_table():
    target = torch.from_numpy(_labels(32))[None].repeat(2, 1, 1)
    df = LA.loss_step_cost(target, 6, max_iter=10, repeats=1)
    assert len(df) == 5 and (df["ms per step (fwd + bwd)"] > 0).all()
    assert df.attrs["batch"] == (2, 6, 32, 32)


def test_objective_weights():
    lam = LA.objective_weights("base_lossd", 4, lossd_warmup_epochs=2)
    assert lam["λ_d"].tolist() == [0.0, 0.5, 1.0, 1.0]
    alpha = LA.objective_weights("base_boundary", 5, boundary_alpha_step=0.25)
    assert alpha["α"].tolist() == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.01])
    assert isinstance(LossdObjective(6), torch.nn.Module)
    assert BoundaryObjective(6).alpha == 1.0
    with pytest.raises(ValueError, match="base_lossd"):
        LA.objective_weights("base", 3)


def _results(values: dict[tuple[str, int], float]):
    import xarray as xr

    methods = list(dict.fromkeys(k[0] for k in values))
    seeds = sorted({k[1] for k in values})
    arr = np.full((len(methods), len(seeds), 1, 1, 4), np.nan)
    for (mm, s), v in values.items():
        arr[methods.index(mm), seeds.index(s), 0, 0] = [v, v + 0.1, 0.5, 0.2]
    return xr.Dataset({"scores": (("method", "seed", "protocol", "class", "metric"), arr)},
                      coords={"method": methods, "seed": seeds, "protocol": ["eroded"],
                              "class": ["overall"],
                              "metric": ["iou", "f1", "oa", "boundary_f1"]})


def test_paired_gains():
    ds = _results({("base", 0): 0.50, ("base", 1): 0.60, ("base_lossd", 0): 0.52,
                   ("base_lossd", 1): 0.64})
    mean, std = LA.paired_gain(ds, "base_lossd", "iou")
    assert mean == pytest.approx(3.0) and std == pytest.approx(np.std([2.0, 4.0], ddof=1))
    table = LA.gains_vs_base(ds)
    assert list(table.index) == ["base_lossd − base"]
    assert table.loc["base_lossd − base", "mIoU"] == "+3.00 ± 1.41"
    assert table.loc["base_lossd − base", "OA"] == "+0.00 ± 0.00"
    one = _results({("base", 0): 0.5, ("base_lossd", 0): 0.45})
    assert LA.gains_vs_base(one).loc["base_lossd − base", "mIoU"] == "-5.00"


def test_cost_summary_and_loss_times():
    class Run:
        def __init__(self, ms):
            self.history = [{"seconds": 2.0, "loss_ms": ms, "distance_map_seconds": 0.5},
                            {"seconds": 4.0, "loss_ms": ms + 2}]

    runs = {("base", 0): Run(1.0), ("base_lossd", 0): Run(5.0), ("base_lossd", 1): Run(7.0)}
    cost = LA.cost_summary(runs)
    assert cost.loc["base_lossd", "loss ms/step (forward)"] == pytest.approx(7.0)
    assert cost.loc["base", "s/epoch"] == pytest.approx(3.0)
    da = LA.loss_time_dataarray(runs)
    assert da.sel({"method": "base_lossd", "seed": 1}) == pytest.approx(8.0)
    assert np.isnan(da.sel({"method": "base", "seed": 1}))


def test_label_batch():
    labs = [_labels(40, 0), _labels(40, 1)]
    b = LA.label_batch(labs, 5, 16)
    assert b.shape == (5, 16, 16) and b.dtype == torch.int64
    np.testing.assert_array_equal(b[0].numpy(), labs[0][:16, :16])
    np.testing.assert_array_equal(b[1].numpy(), labs[1][:16, :16])


def test_reported_numbers():
    from aerialseg.papers.lossd.reported import CLAIMS, PAPER_RESULTS, lossd_abstract_table

    t = lossd_abstract_table()
    assert t.loc["LoveDA", "base (implied)"] == 54.2
    assert t.loc["UAVid", "base (implied)"] == 70.0
    assert t.loc["Potsdam", "base (implied)"] == 93.4 and t.loc["Potsdam", "metric"] == "mF1"
    assert {r.method for r in PAPER_RESULTS} == {"base", "base_lossd"}
    assert {(c.metric, c.paper_delta) for c in CLAIMS} == {("f1", 0.7), ("iou", 1.6)}
