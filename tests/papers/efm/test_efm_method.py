"""EFM chapter methods: specs, refresh schedule and callback, cached-map augmentation, stages."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aerialseg import paths
from aerialseg.config import TrainConfig
from aerialseg.data.patches import BandStats, SegmentationPatches, d4
from aerialseg.data.registry import DataConfig, SplitData
from aerialseg.losses.dice import SoftDiceLoss
from aerialseg.losses.efm import EFMLoss, efm_map
from aerialseg.losses.registry import build_loss
from aerialseg.papers.efm import method as M
from aerialseg.registry import resolve_run
from aerialseg.runs import RunContext
from aerialseg.training import Callback, fit

BANDS = ("ir", "r", "g", "dsm", "ndsm")


def _tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(5, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 6, 1))


def _patches(scene, **kw) -> SegmentationPatches:
    return SegmentationPatches([scene.bands], [scene.labels], **kw)


# --------------------------------------------------------------------------- specs


def test_methods_registered_and_stages_differ_only_in_the_map():
    names = set(M.METHODS)
    assert {"efm_fpn_base", "efm_fpn", "efm_fpn_ft", "efm_fpn_ctrl", "efm_fpn_cedice",
            "efm_pspnet_base", "efm_pspnet", "efm_pspnet_ft", "efm_pspnet_ctrl"} <= names
    for profile in ("smoke", "default", "full"):
        for arch in M.ARCHS:
            cfg = {s: resolve_run(M.method_name(arch, s), profile=profile, in_bands=BANDS,
                                  data={}).to_dict() for s in M.STAGES}
            for a, b in (("base", "efm"), ("ctrl", "ft")):
                diff = {k for k in cfg[a]["loss_kwargs"]
                        if cfg[a]["loss_kwargs"][k] != cfg[b]["loss_kwargs"][k]}
                assert diff == {"efm_start_epoch"}, (profile, arch, a, b, diff)
                assert cfg[a]["train"] == cfg[b]["train"]
                assert cfg[a]["model_kwargs"] == cfg[b]["model_kwargs"]
            assert cfg["base"]["loss_kwargs"]["efm_start_epoch"] is None
            assert cfg["ft"]["loss_kwargs"]["efm_start_epoch"] == 0
            assert cfg["ft"]["train"]["ema_decay"] and not cfg["base"]["train"]["ema_decay"]
            t = cfg["base"]["train"]
            if profile == "full":  # the paper's recipe and architectures
                assert (t["optimizer"], t["lr"], t["weight_decay"], t["schedule"],
                        t["grad_clip"]) == ("adamw", 5e-4, 1e-4, "cosine", 1.0)
                assert cfg["base"]["model"] == M.ARCHS[arch]
            else:  # the shared backbone and its training (aerialseg.profiles)
                assert cfg["base"]["model"] == "fcn"
                fcn = resolve_run("fcn", profile=profile, in_bands=BANDS,
                                  data={}).to_dict()["train"]
                assert {k: v for k, v in cfg["base"]["train"].items() if k != "epochs"} == {
                    k: v for k, v in fcn.items() if k != "epochs"}
    full = resolve_run("efm_fpn_ft", profile="full", in_bands=BANDS, data={})
    assert full.model_kwargs["encoder"] == "resnet34" and full.train.ema_decay == 0.999
    assert full.model_kwargs["encoder_weights"] is None and full.train.epochs == 15
    with pytest.raises(ValueError, match="stage"):
        M.method_name("fpn", "nope")


def test_cedice_baseline_is_ce_with_label_smoothing_plus_dice():
    cfg = resolve_run("efm_pspnet_cedice", profile="default", in_bands=BANDS, data={})
    loss = build_loss(cfg.loss, num_classes=6, **cfg.loss_kwargs)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 16, 16, generator=g)
    target = torch.randint(0, 6, (2, 16, 16), generator=g)
    target[0, :3] = 255
    ce = F.cross_entropy(logits, target, ignore_index=255, label_smoothing=0.05)
    expected = ce + SoftDiceLoss()(logits, target)
    assert loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)


def test_stage_overrides_route_parameters():
    ov = M.stage_overrides({"epochs": 7, "finetune_epochs": 2, "lr": 1e-3,
                            "finetune_lr": 1e-5, "efm_start_epoch": 3, "efm_every": 4,
                            "efm_focus_alpha": 1.0, "topk_fraction": 0.3})
    assert ov["base"]["epochs"] == 7 and ov["ft"]["epochs"] == 2 and ov["ctrl"]["lr"] == 1e-5
    assert "efm_focus_alpha" not in ov["base"] and "efm_every" not in ov["ctrl"]
    assert ov["efm"]["efm_start_epoch"] == 3 and "efm_start_epoch" not in ov["ft"]
    assert ov["ft"]["efm_every"] == 4 and ov["ctrl"]["topk_fraction"] == 0.3
    for stage, kw in ov.items():  # every routed name is a parameter of that stage
        resolve_run(M.method_name("fpn", stage), profile="smoke", in_bands=BANDS, data={},
                    **kw)


# --------------------------------------------------------------------------- schedule


def test_refresh_schedule():
    assert M.refresh_epochs(12, 5, 2) == [5, 7, 9, 11]
    assert M.refresh_epochs(3, 0, 2) == [0, 2]
    assert M.refresh_epochs(10, None, 2) == []
    assert M.refresh_epochs(4, 5, 1) == []
    with pytest.raises(ValueError, match="efm_every"):
        M.refresh_due(3, 0, 0)


class _Recorder(Callback):
    """Records, per epoch, whether the loss saw an EFM in ``aux``."""

    def __init__(self) -> None:
        self.seen: dict[int, bool] = {}

    def batch_aux(self, state, batch):
        self.seen[state.epoch] = self.seen.get(state.epoch, False) or "efm" in batch
        return {}


def test_refresh_callback_in_fit(scene_factory):
    scene = scene_factory(size=48)
    ds = _patches(scene, size=32, sampler="random_crop", length=4, seed=0)
    cb = M.EFMRefresh(start_epoch=1, every=2, sigma=1.0)
    rec = _Recorder()
    cfg = TrainConfig(epochs=4, batch_size=4, lr=0.01, samples_per_epoch=4,
                      sampler="random_crop", crop_size=32)
    res = fit(_tiny_model(), EFMLoss(6, topk_fraction=1.0), ds, cfg, callbacks=[cb, rec],
              log=None)
    assert cb.refreshed == [1, 3]
    assert rec.seen == {0: False, 1: True, 2: True, 3: True}
    assert [h["efm_refreshed"] for h in res.history] == [0.0, 1.0, 0.0, 1.0]
    assert res.history[0]["efm_mean"] == 0.0 and res.history[1]["efm_mean"] > 0
    # the cached map is the EFM of the whole scene predicted by the model of that epoch
    m = ds.extras["efm"][0]
    assert m.shape == scene.labels.shape and m.dtype == np.float32
    assert m.min() >= 0 and m.max() <= 1
    probs = torch.softmax(res.model(torch.from_numpy(scene.bands)[None]), 1)
    assert np.isfinite(efm_map(probs, torch.from_numpy(scene.labels)[None])).all()


def test_refresh_is_the_efm_of_the_scene_prediction(scene_factory):
    scene = scene_factory(size=40)
    ds = _patches(scene, size=32, sampler="random_crop", length=2)
    model = _tiny_model().eval()

    class S:  # the TrainState fields the refresh uses
        pass

    st = S()
    st.model, st.device, st.dataset, st.epoch = model, torch.device("cpu"), ds, 0
    M.EFMRefresh(start_epoch=0, every=1, sigma=2.0).refresh(st)
    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(scene.bands)[None]), 1)
    expected = efm_map(probs, torch.from_numpy(scene.labels)[None], sigma=2.0)[0].numpy()
    np.testing.assert_allclose(ds.extras["efm"][0], expected, atol=1e-5)


@pytest.mark.parametrize("sampler", ["grid", "random_crop"])
def test_cached_maps_follow_the_augmentation(scene_factory, sampler):
    """A map that is a function of the image stays that function of every augmented patch."""
    scene = scene_factory(size=40)
    fmap = 1.0 / (1.0 + np.exp(-scene.bands[1]))  # any per-pixel function of band 1
    ds = _patches(scene, size=16, sampler=sampler, overlap=0.5, dihedral_aug=True, length=32,
                  seed=3, extras={"efm": [fmap.astype(np.float32)]})
    for i in range(len(ds)):
        s = ds[i]
        expected = 1.0 / (1.0 + np.exp(-s["image"][1].numpy()))
        np.testing.assert_allclose(s["efm"].numpy(), expected, rtol=1e-6)
    # and the labels: a map equal to the labels stays equal to the label patch
    lab = _patches(scene, size=16, sampler=sampler, length=16, seed=1,
                   extras={"efm": [scene.labels.astype(np.float32)]})
    for i in range(len(lab)):
        s = lab[i]
        assert torch.equal(s["efm"].long(), s["label"])
    # the refresh replaces the arrays in place: the next access reads the new map
    ds.extras["efm"] = [np.zeros_like(fmap, np.float32)]
    assert float(ds[0]["efm"].abs().max()) == 0.0


def test_grid_variant_is_the_d4_transform_of_the_cached_map(scene_factory):
    scene = scene_factory(size=32)
    fmap = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    ds = _patches(scene, size=32, sampler="grid", dihedral_aug=True, extras={"efm": [fmap]})
    for k in range(8):
        np.testing.assert_array_equal(ds[k]["efm"].numpy(), d4(fmap, k))


def test_online_schedule_switches_the_loss_source():
    loss = EFMLoss(6)
    cb = M.OnlineEFMSchedule(start_epoch=2)

    class S:
        pass

    st = S()
    st.loss_fn, st.history = loss, [{}]
    for epoch, source in ((0, "cached_train"), (1, "cached_train"), (2, "online_batch"),
                          (5, "online_batch")):
        st.epoch = epoch
        cb.on_epoch_start(st)
        assert loss.efm_source == source
        cb.on_epoch_end(st)
        assert st.history[-1]["efm_refreshed"] == float(epoch >= 2)


# --------------------------------------------------------------------------- stages


def _ctx(method: str, scene_factory, profile: str = "smoke", **overrides) -> RunContext:
    scenes = [scene_factory("a", size=64, seed=0), scene_factory("b", size=64, seed=1)]
    val = [scene_factory("v", size=64, seed=2, split="val")]
    data = SplitData(DataConfig(dataset="synthetic"), scenes, val)
    cfg = resolve_run(method, profile=profile, in_bands=BANDS, data=data.cfg.to_dict(),
                      seed=0, **overrides)
    from aerialseg.models.registry import build_model

    model = build_model(cfg.model, in_channels=5, num_classes=6, **cfg.model_kwargs)
    stats = BandStats.from_scenes(scenes, BANDS)
    ds = SegmentationPatches([stats.apply(s) for s in scenes], [s.labels for s in scenes],
                             size=32, sampler="random_crop", length=4)
    loss = build_loss(cfg.loss, num_classes=6, **cfg.loss_kwargs)
    return RunContext(cfg, data, stats, ds, model, loss, torch.device("cpu"))


def _store_run(ctx: RunContext, name: str) -> dict[str, torch.Tensor]:
    """A finished run in the (test-isolated) run store with random weights."""
    torch.manual_seed(123)
    state = {k: torch.randn_like(v) if v.dtype.is_floating_point else v
             for k, v in ctx.model.state_dict().items()}
    folder = paths.runs_dir() / name
    folder.mkdir(parents=True)
    meta = {"config": ctx.cfg.to_dict(), "stats": {}, "loss_kwargs": {}, "history": [],
            "train_seconds": 0.0, "hardware": "test"}
    torch.save({"format": 2, "model": state, "meta": meta}, folder / "model.pt")
    return state


def test_setup_returns_the_stage_callbacks(scene_factory):
    assert M.setup_efm(_ctx("efm_pspnet_base", scene_factory)) == []
    cbs = M.setup_efm(_ctx("efm_pspnet", scene_factory))
    assert [type(c) for c in cbs] == [M.EFMRefresh, M.EFMMonitor]
    assert (cbs[0].start_epoch, cbs[0].every) == (1, 1)
    online = M.setup_efm(_ctx("efm_pspnet", scene_factory, efm_source="online_batch"))
    assert isinstance(online[0], M.OnlineEFMSchedule)


def test_finetune_stage_starts_from_the_init_run(scene_factory):
    parent = _ctx("efm_pspnet", scene_factory)
    weights = _store_run(parent, "efm_pspnet-abc")
    with pytest.raises(ValueError, match="init_run"):
        M.setup_efm(_ctx("efm_pspnet_ft", scene_factory))
    with pytest.raises(FileNotFoundError, match="no trained model"):
        M.setup_efm(_ctx("efm_pspnet_ft", scene_factory, init_run="missing-000"))
    ft = _ctx("efm_pspnet_ft", scene_factory, init_run="efm_pspnet-abc")
    cbs = M.setup_efm(ft)
    for k, v in ft.model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    assert cbs[0].start_epoch == 0
    # a run of another model cannot seed the fine-tuning
    other = _ctx("efm_pspnet", scene_factory, profile="full", encoder="resnet18")
    _store_run(other, "efm_pspnet-r34")
    with pytest.raises(ValueError, match="has model"):
        M.setup_efm(_ctx("efm_pspnet_ctrl", scene_factory, init_run="efm_pspnet-r34"))


def test_monitor_snapshots_and_reload(scene_factory, tmp_path):
    scene = scene_factory(size=32)
    out = tmp_path / "run" / M.MONITOR_FILE
    out.parent.mkdir()
    mon = M.EFMMonitor(scene.bands, scene.labels, out, start_epoch=1, every=2, epochs=4,
                       scene="v")

    class S:
        pass

    st = S()
    st.model, st.device = _tiny_model(), torch.device("cpu")
    for epoch in range(4):
        st.epoch = epoch
        mon.on_epoch_start(st)
        mon.on_epoch_end(st)
    snaps = M.load_monitor(out.parent)
    assert snaps is not None and list(snaps["epoch"]) == [1.0, 3.0, 4.0]
    assert snaps["efm"].shape == (3, 32, 32) and snaps["error"].dtype == bool
    assert str(snaps["scene"]) == "v" and np.array_equal(snaps["labels"], scene.labels)
    assert M.load_monitor(tmp_path) is None
