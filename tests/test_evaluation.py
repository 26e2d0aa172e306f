import numpy as np
import pytest
import torch
from torch import nn

from aerialseg.data.patches import BandStats
from aerialseg.evaluation import evaluate_model
from aerialseg.results import Record, build_results, read_results, write_results
from aerialseg.tables import summary_table


class Oracle(nn.Module):
    """Predicts the label encoded in the first five bands (see conftest.make_scene)."""

    def __init__(self, noise: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(0.5)
        self.noise = noise

    def forward(self, x):
        logits = torch.cat([x[:, :5] * 10, torch.full_like(x[:, :1], -10)], 1)
        return self.drop(logits) + self.noise


def stats():
    return BandStats(("ir", "r", "g", "dsm", "ndsm"), (0.0,) * 5, (1.0,) * 5)


def test_perfect_model_scores_one(scene_factory):
    scenes = [scene_factory(seed=i, split="val") for i in range(2)]
    ev = evaluate_model(Oracle(), stats(), scenes, mc_samples=3)
    s = ev.scores["eroded"]
    assert s["oa"] == 1.0 and s["mean_f1"] == 1.0 and s["miou"] == 1.0
    assert ev.confusion["full"].sum() == sum(sc.labels.size for sc in scenes)
    assert ev.boundary_f1["mean"] == pytest.approx(1.0)
    assert set(ev.curves) >= {"mean_class_std", "entropy"}
    assert ev.pixels_per_second > 0


def test_eroded_only_labels_leave_the_full_protocol_empty(scene_factory):
    from dataclasses import replace

    scenes = [replace(scene_factory(seed=i, split="val"), full_truth=False) for i in range(2)]
    ev = evaluate_model(Oracle(), stats(), scenes, mc_samples=3)
    assert ev.confusion["full"].sum() == 0  # not a copy of the eroded counts
    assert ev.confusion["eroded"].sum() == sum(sc.eval_mask.sum() for sc in scenes)
    assert ev.scores["eroded"]["mean_f1"] == 1.0
    assert np.isnan(ev.scores["full"]["oa"])


def test_results_roundtrip(tmp_path, scene_factory):
    scenes = [scene_factory(seed=i, split="val") for i in range(2)]
    recs = [Record(m, seed, evaluate_model(Oracle(), stats(), scenes, mc_samples=2),
                   train_seconds=1.0, num_parameters=10)
            for m in ("a", "b") for seed in (0, 1)]
    ds = build_results(recs, chapter="t", profile="smoke", dataset="synthetic",
                       params={"x": 1}, device="cpu", hardware="cpu", wall_seconds={"t": 1})
    path = write_results(ds, tmp_path / "r.nc")
    back = read_results(path)
    assert back["scores"].dims == ("method", "seed", "protocol", "class", "metric")
    assert back.attrs["dataset"] == "synthetic" and "git_commit" in back.attrs
    assert float(back["scores"].sel({"method": "a", "seed": 0, "protocol": "eroded",
                                     "metric": "oa", "class": "overall"})) == 1.0
    table = summary_table(back)
    assert list(table.index) == ["a", "b"]
    assert table.loc["a", "OA"].startswith("100.0")
    assert np.asarray(back["confusion"]).sum() > 0


def test_prediction_cache_serves_repeats_deterministic_requests_and_the_omit_border(
        scene_factory, tmp_path):
    import numpy as np
    import torch

    from aerialseg.data.patches import BandStats
    from aerialseg.evaluation import PredictionCache, evaluate_model
    from aerialseg.inference import scene_predictor
    from aerialseg.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("patch_cnn", in_channels=5, num_classes=6, conv_widths=(4, 4, 4, 4),
                        fc_width=8, patch_size=33).eval()
    scenes = [scene_factory("v", 48, 3, "val")]
    stats = BandStats.from_scenes(scenes, scenes[0].band_names)
    cache = PredictionCache(tmp_path / "pred")
    calls = []

    def counting(mode):
        inner = scene_predictor(model, mode)

        def predict(*a, **k):
            calls.append((mode, k["mc_samples"]))
            return inner(*a, **k)
        predict.keywords = {"border_mode": mode}
        return predict

    fresh = evaluate_model(model, stats, scenes, mc_samples=3, predictor=counting("reflect"))
    torch.manual_seed(0)
    mc = evaluate_model(model, stats, scenes, mc_samples=3, predictor=counting("reflect"),
                        cache=cache)
    det = evaluate_model(model, stats, scenes, predictor=counting("reflect"), cache=cache)
    omit = evaluate_model(model, stats, scenes, predictor=counting("omit"), cache=cache)
    again = evaluate_model(model, stats, scenes, mc_samples=3, predictor=counting("reflect"),
                           cache=cache)
    assert calls == [("reflect", 3), ("reflect", 3)]  # one inference with the cache
    assert np.array_equal(det.confusion["eroded"], fresh.confusion["eroded"])
    assert np.array_equal(again.confusion["eroded"], mc.confusion["eroded"])
    direct = evaluate_model(model, stats, scenes, predictor=scene_predictor(model, "omit"))
    assert np.array_equal(omit.confusion["full"], direct.confusion["full"])
    assert omit.confusion["full"].sum() == (48 - 32) ** 2
    assert mc.inference_seconds == again.inference_seconds > 0
