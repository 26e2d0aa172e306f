import warnings

import numpy as np
import pytest
import torch

from aerialseg.data.classes import DUBAI, IGNORE_INDEX
from aerialseg.data.patches import BandStats
from aerialseg.data.registry import DataConfig, SplitData
from aerialseg.data.scene import Scene
from aerialseg.evaluation import evaluate_model
from aerialseg.inference import scene_predictor
from aerialseg.models.registry import build_model
from aerialseg.papers.kampffmeyer import analysis as KA
from aerialseg.papers.kampffmeyer import method as pb
from aerialseg.papers.kampffmeyer.reported import KAMPFFMEYER_TABLE1, PAPER_RESULTS
from aerialseg.registry import resolve_run
from aerialseg.runs import get_or_train, run_key

BANDS = ("ir", "r", "g", "dsm", "ndsm")
# a cheap geometry: 4 x (4 + 2) = 24 px removed, fc1 9x9, receptive field 33 px
TINY = dict(patch_size=33, conv_widths=(2, 2, 2, 2), fc_width=4)


def split(scene_factory, n_train: int = 2, size: int = 64) -> SplitData:
    train = [scene_factory(f"t{i}", size=size, seed=i) for i in range(n_train)]
    for s in train:  # one clutter blob: never a centre (not evaluated)
        s.labels[-6:, :6] = 5
    return SplitData(DataConfig(), train, [scene_factory("v", size=size, seed=9, split="val")])


def cfg_for(data: SplitData, profile: str = "smoke", **kw):
    return resolve_run("pb", profile=profile, in_bands=BANDS, data=data.cfg.to_dict(), **kw)


def test_full_profile_is_the_paper_and_sampler_params_are_in_the_run_key(scene_factory):
    cfg = resolve_run("pb", profile="full", in_bands=BANDS, data={})
    assert cfg.model == "patch_cnn" and cfg.loss == "ce"
    assert cfg.model_kwargs["conv_widths"] == (32, 64, 96, 128)
    assert cfg.model_kwargs["fc_width"] == 128 and cfg.model_kwargs["patch_size"] == 65
    t = cfg.train
    assert (t.optimizer, t.lr, t.momentum, t.weight_decay, t.batch_size, t.epochs) == (
        "sgd", 0.01, 0.9, 5e-4, 128, 30)
    assert t.schedule == "step" and t.step_milestones == (0.5, 0.75) and t.grad_clip is None
    assert cfg.loss_kwargs == {"car_rotations": 8, "samples_per_class": "match_car"}
    other = resolve_run("pb", profile="full", in_bands=BANDS, data={}, car_rotations=4)
    assert run_key(other) != run_key(cfg)
    for profile in ("smoke", "default"):
        c = resolve_run("pb", profile=profile, in_bands=BANDS, data={})
        assert c.model_kwargs["patch_size"] == 65
        assert set(c.loss_kwargs) == set(pb.SAMPLER_PARAMS)


def test_centre_patches_are_balanced_centre_labelled_and_reproducible(scene_factory):
    data = split(scene_factory)
    cfg = cfg_for(data, seed=3, samples_per_class=10, car_rotations=3, **TINY)
    stats = BandStats.from_scenes(data.train, BANDS)
    ds = pb.build_centre_patches(cfg, data, stats)
    lab = ds.centres.label
    assert len(ds) == 50
    assert np.bincount(lab, minlength=6).tolist() == [10, 10, 10, 10, 10, 0]  # no clutter
    assert (ds.centres.angle[lab != 4] == 0).all() and (ds.centres.angle[lab == 4] != 0).any()
    item = ds[0]
    assert item["image"].shape == (5, 33, 33) and item["image"].dtype == torch.float32
    assert item["label"].shape == (1, 1) and item["label"].dtype == torch.int64
    # the centre pixel of every unrotated patch is the normalised scene pixel it is labelled by
    images = [stats.apply(s) for s in data.train]
    for i in np.flatnonzero(ds.centres.angle == 0)[:10]:
        im, r, c = (int(v) for v in (ds.centres.image[i], ds.centres.row[i], ds.centres.col[i]))
        np.testing.assert_array_equal(ds[int(i)]["image"][:, 16, 16].numpy(), images[im][:, r, c])
        assert data.train[im].labels[r, c] == lab[i]
    again = pb.build_centre_patches(cfg, data, stats)
    np.testing.assert_array_equal(again.centres.row, ds.centres.row)
    np.testing.assert_array_equal(again.patches([0, 7]), ds.patches([0, 7]))


def test_match_car_without_a_car_class_falls_back_with_a_warning():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, (48, 48))
    labels[0, 0] = IGNORE_INDEX
    scene = Scene("d", rng.normal(size=(3, 48, 48)).astype(np.float32), ("r", "g", "b"),
                  labels, DUBAI, "train", eval_mask=np.ones((48, 48), bool))
    data = SplitData(DataConfig(dataset="dubai"), [scene], [])
    cfg = resolve_run("pb", profile="full", in_bands=("r", "g", "b"), data={}, **TINY)
    assert pb.car_class_of(DUBAI) is None
    with pytest.warns(UserWarning, match="no car class"):
        ds = pb.build_centre_patches(cfg, data, BandStats.from_scenes([scene], ("r", "g", "b")))
    assert np.bincount(ds.centres.label).tolist() == [pb.MATCH_CAR_FALLBACK] * 5


def test_trains_through_the_run_store_and_evaluates_in_both_border_modes(scene_factory):
    data = split(scene_factory)
    cfg = cfg_for(data, samples_per_class=8, car_rotations=1, batch_size=8, epochs=1, **TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = get_or_train(cfg, data, log=None)
    assert run.history and np.isfinite(run.history[0]["loss"])
    assert get_or_train(cfg, data, log=None).reused
    evs = {m: evaluate_model(run.model, run.stats, data.val, tile=32,
                             predictor=scene_predictor(run.model, m))
           for m in pb.BORDER_LABELS}
    full = evs["reflect"].confusion["full"].sum()
    inner = evs["omit"].confusion["full"].sum()
    size = data.val[0].labels.shape[0]
    assert full == size * size  # every pixel classified
    assert inner == (size - 32) ** 2  # the 16 px border of a 33 px patch left out
    with pytest.raises(ValueError, match="border_mode"):
        scene_predictor(run.model, "zero")


def test_dense_inference_matches_patch_by_patch_classification():
    torch.manual_seed(0)
    model = build_model("patch_cnn", in_channels=5, num_classes=6, **TINY)
    for m in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    image = np.random.default_rng(1).normal(size=(5, 40, 50)).astype(np.float32)
    res = KA.dense_vs_patch(model, image, n_pixels=20, tile=16)
    assert res["dense"].shape == res["patch"].shape == (20, 6)
    assert res["max_abs_diff"] < 1e-5 and res["same_argmax"] == 1.0
    assert res["speedup"] > 0


def test_architecture_table_gives_the_receptive_field_and_parameters():
    model = build_model("patch_cnn", in_channels=5, num_classes=5)
    df = KA.architecture_table(model)
    assert df.loc["fc1", "output side (one patch)"] == 1
    assert df.loc["fc1", "kernel"] == "41x41"
    assert df["receptive field"].iloc[-1] == 65
    assert df.loc["fc1", "parameters"] == 41 * 41 * 128 * 128 + 128
    total = sum(p.numel() for p in model.parameters())
    assert df["parameters"].sum() + df.attrs["batchnorm_parameters"] == total
    assert abs(total / 1e6 - 28.1) < 0.05  # methods.md: about 28.1 M


def test_reported_numbers_are_the_printed_table():
    (res,) = [r for r in PAPER_RESULTS if r.method == "pb"]
    assert res.values[("car", "f1")] == KAMPFFMEYER_TABLE1["pb"]["car"] == 77.72
    assert res.values[("overall", "f1")] == 86.36
    # the printed OA agrees with the per-class accuracies weighted by Vaihingen's shares
    assert res.values[("overall", "oa")] == 83.74
    recall = [res.values[(c, "recall")] for c in ("impervious", "building", "low_vegetation",
                                                   "tree", "car")]
    shares = (0.28, 0.26, 0.21, 0.23, 0.015)
    assert abs(np.dot(recall, shares) / sum(shares) - 83.74) < 0.5
