import numpy as np
import pytest
import torch
from torch import nn

from aerialseg.data.patches import BandStats
from aerialseg.evaluation import PredictionCache, evaluate_model
from aerialseg.inference import predict_scene
from aerialseg.papers.kampffmeyer import ensemble, reported
from aerialseg.papers.kampffmeyer.ensemble import (
    MemberMaps,
    SVMCombiner,
    evaluate_ensembles,
    evaluate_scores,
    fit_svm,
    mean_combine,
    stratified_pixels,
)


def _onehot(labels: np.ndarray, c: int = 6) -> np.ndarray:
    return (np.arange(c)[:, None, None] == labels[None]).astype(np.float32)


def _partial_expert(labels: np.ndarray, knows: tuple[int, ...], seed: int) -> np.ndarray:
    """Probabilities that are right on ``knows`` and random elsewhere."""
    rng = np.random.default_rng(seed)
    noise = rng.dirichlet(np.ones(6), labels.shape).transpose(2, 0, 1).astype(np.float32)
    return np.where(np.isin(labels, knows)[None], _onehot(labels), noise)


def _members(scenes, seed=0):
    a = [_partial_expert(s.labels, (0, 1), seed + i) for i, s in enumerate(scenes)]
    b = [_partial_expert(s.labels, (2, 3, 4), seed + 10 + i) for i, s in enumerate(scenes)]
    return a, b


def test_svm_recovers_separable_combination(scene_factory):
    train = [scene_factory(f"t{i}", 48, i) for i in range(2)]
    val = [scene_factory("v", 48, 7, "val")]
    a, b = _members(train)
    va, vb = _members(val, seed=50)
    svm = fit_svm([[x, y] for x, y in zip(a, b, strict=True)], train, samples=2000, seed=0)
    ev = evaluate_scores([svm.scores([va[0], vb[0]])], val, probabilities=False)
    alone = [evaluate_scores([m[0]], val).scores["eroded"]["oa"] for m in (va, vb)]
    assert ev.scores["eroded"]["oa"] > 0.99
    assert max(alone) < 0.8
    assert np.isnan(ev.ece)  # decision values are not probabilities


def test_svm_scores_mark_unclassified_and_unseen():
    y = np.array([0, 0, 1, 1])
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]], np.float32)
    svm = SVMCombiner(num_classes=3).fit(x, y)
    maps = np.array([[[1.0, np.nan]], [[0.0, 0.5]]], np.float32)  # (2, 1, 2)
    s = svm.scores([maps])
    assert s.shape == (3, 1, 2)
    assert np.isnan(s[:, 0, 1]).all()
    assert s[2, 0, 0] == -np.inf and s[:2, 0, 0].argmax() == 0


def test_mean_of_identical_members_is_the_member(scene_factory):
    val = [scene_factory("v", 32, 3, "val")]
    p = _partial_expert(val[0].labels, (0, 1, 2), 0)
    np.testing.assert_allclose(mean_combine([p, p, p]), p, rtol=1e-6)
    e1 = evaluate_scores([p], val)
    e2 = evaluate_scores([mean_combine([p, p])], val)
    np.testing.assert_array_equal(e1.confusion["eroded"], e2.confusion["eroded"])
    assert e1.ece == pytest.approx(e2.ece)


def test_mean_combine_weights_and_nan():
    p = np.zeros((2, 1, 2), np.float32)
    p[0] = 1
    q = np.zeros_like(p)
    q[1] = 1
    q[:, 0, 1] = np.nan
    m = mean_combine([p, q], weights=[3, 1])
    np.testing.assert_allclose(m[:, 0, 0], [0.75, 0.25])
    assert np.isnan(m[:, 0, 1]).all()
    with pytest.raises(ValueError):
        mean_combine([p, q], weights=[1])


def test_stratified_sampling_is_balanced_and_capped():
    lab = np.zeros((100, 100), np.int64)
    lab[:30] = 1
    lab[:2, :5] = 2  # 10 pixels only
    lab[50:] = 255
    idx = stratified_pixels([lab, lab.copy()], 300, (0, 1, 2), seed=1)
    picked = np.concatenate([lab.reshape(-1)[i] for i in idx])
    counts = np.bincount(picked, minlength=3)
    assert counts[0] == counts[1] == 100
    assert counts[2] == 20  # capped by availability (10 per scene)
    assert 255 not in picked
    assert all(np.unique(i).size == i.size for i in idx)  # without replacement
    again = stratified_pixels([lab, lab.copy()], 300, (0, 1, 2), seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(idx, again, strict=True))


def test_stratified_sampling_respects_valid_mask():
    lab = np.ones((10, 10), np.int64)
    valid = np.zeros((10, 10), bool)
    valid[:, :3] = True
    (idx,) = stratified_pixels([lab], 50, (1,), valid=[valid])
    assert valid.reshape(-1)[idx].all() and idx.size == 30


def _member_maps(train, val, seed=0):
    a, b = _members(train, seed)
    va, vb = _members(val, seed + 30)
    return {"fcn": MemberMaps("fcn", [{"probs": x} for x in a], [{"probs": va[0]}], 0.5),
            "fcn_mfb": MemberMaps("fcn_mfb", [{"probs": x} for x in b], [{"probs": vb[0]}],
                                  0.25)}


def test_one_scene_svm_fits_on_that_scene_only(scene_factory, monkeypatch):
    keep, fit = ensemble.heldout_fit_scenes(4, -1)
    assert 3 not in keep and fit == [3] and sorted(keep + fit) == [0, 1, 2, 3]
    train = [scene_factory(f"t{i}", 32, i) for i in range(3)]
    val = [scene_factory("v", 32, 9, "val")]
    members = _member_maps(train, val)
    seen: dict[int, list[str]] = {}
    real = ensemble.fit_svm

    def spy(maps, scenes, **kw):
        seen[len(seen)] = [s.name for s in scenes]
        return real(maps, scenes, **kw)

    monkeypatch.setattr(ensemble, "fit_svm", spy)
    out = evaluate_ensembles(members, train, val, heldout=1, svm_samples=500)
    assert seen[0] == ["t0", "t1", "t2"] and seen[1] == ["t1"]
    assert list(out) == ["fcn", "fcn_mfb", "ens_fcn_fcn_mfb_svm",
                         "ens_fcn_fcn_mfb_svm_onescene", "ens_fcn_fcn_mfb_mean"]
    assert "ens_fcn_fcn_mfb_mc_mean" not in out  # no MC maps given
    assert out["ens_fcn_fcn_mfb_svm"].members == ("fcn", "fcn_mfb")
    assert out["fcn"].combiner == ensemble.MEMBER
    # inference time of an ensemble: its members' plus combining (never zero)
    ens = out["ens_fcn_fcn_mfb_mean"].evaluation
    assert ens.inference_seconds >= 0.75 and np.isfinite(ens.pixels_per_second)
    assert out["fcn"].evaluation.inference_seconds == 0.5
    # the SVM fits on the training scenes asked for
    seen.clear()
    evaluate_ensembles(members, train, val, combiners=("svm",), fit_scenes=[0, 2],
                       svm_samples=500)
    assert seen[0] == ["t0", "t2"]


def test_held_out_svm_needs_and_uses_retrained_members(scene_factory):
    train = [scene_factory(f"t{i}", 32, i) for i in range(3)]
    val = [scene_factory("v", 32, 9, "val")]
    members = _member_maps(train, val)
    with pytest.raises(ValueError, match="svm_heldout"):
        evaluate_ensembles(members, train, val, combiners=("svm_heldout",))
    held = _member_maps(train, val, seed=5)
    for m in held.values():  # the retrained members predicted the held-out scene only
        m.train = [t if i == 2 else {} for i, t in enumerate(m.train)]
    out = evaluate_ensembles(members, train, val, combiners=("svm_heldout",), heldout=-1,
                             heldout_members=held, svm_samples=500)
    assert "ens_fcn_fcn_mfb_svm_heldout" in out
    with pytest.raises(ValueError, match="no prediction"):
        evaluate_ensembles(members, train, val, combiners=("svm_heldout",), heldout=0,
                           heldout_members=held, svm_samples=500)


def test_mc_average_only_for_members_with_mc_means(scene_factory):
    train = [scene_factory("t0", 32, 0)]
    val = [scene_factory("v", 32, 9, "val")]
    members = _member_maps(train, val)
    members["fcn"].val[0]["mc_mean"] = members["fcn"].val[0]["probs"]
    members["pb"] = MemberMaps("pb", [{"probs": members["fcn_mfb"].train[0]["probs"]}],
                               [{"probs": members["fcn_mfb"].val[0]["probs"],
                                 "mc_mean": members["fcn_mfb"].val[0]["probs"]}])
    out = evaluate_ensembles(members, train, val, combiners=("mc_mean",),
                             member_ids={"pb": "pb (omit border)"})
    assert "fcn (MC mean)" in out and "fcn_mfb (MC mean)" not in out
    assert "pb (omit border)" in out and "pb (omit border) (MC mean)" in out
    assert [k for k in out if k.startswith("ens_")] == ["ens_fcn_pb_mc_mean"]


def test_ensemble_ids_and_display_names():
    from aerialseg import display

    assert ensemble.ensemble_id(("pb", "fcn", "fcn_mfb"), "svm") == reported.ENSEMBLE_ALL_SVM
    assert display.method_name(reported.ENSEMBLE_ALL_SVM) == "PB + FCN + FCN-MFB (SVM)"
    name = display.method_name(ensemble.ensemble_id(("fcn", "fcn_mfb"), "svm_onescene"))
    assert name == "FCN + FCN-MFB (SVM fitted on one training scene)"
    assert "held-out" in display.method_name("ens_pb_fcn_svm_heldout")
    assert ensemble.control_combiner(False) == "svm_onescene"
    assert ensemble.control_combiner(True) == "svm_heldout"
    for comb in ensemble.COMBINERS:
        assert comb in display.COMBINERS and comb in ensemble.COMBINER_TEXT
    with pytest.raises(ValueError):
        ensemble.ensemble_id(("fcn",), "svm")
    with pytest.raises(ValueError):
        ensemble.ensemble_id(("fcn", "pb"), "vote")
    # every claim of chapter 05 names methods the chapter records
    claims = [c for c in reported.CLAIMS if c.chapter == "05_ensembles"]
    assert {c.method for c in claims} == {reported.ENSEMBLE_ALL_SVM}
    assert {c.baseline for c in claims} == {"pb", "fcn", "fcn_mfb"}


def test_member_maps_predict_once_and_record_fields(scene_factory, tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(5, 6, 3, padding=1), nn.Dropout2d(0.5))
    train = [scene_factory(f"t{i}", 32, i) for i in range(3)]
    val = [scene_factory("v", 32, 9, "val")]
    stats = BandStats.from_scenes(train, train[0].band_names)
    cache = PredictionCache(tmp_path / "pred")
    mm = ensemble.member_maps("fcn", model, stats, train, val, train_indices=[0, 2],
                              mc_samples=3, tile=64, overlap=0, cache=cache)
    assert mm.predicted_train() == [0, 2] and mm.train[1] == {}
    assert mm.has_mc and mm.val_seconds > 0
    again = ensemble.member_maps("fcn", model, stats, train, val, train_indices=[0, 2],
                                 mc_samples=3, tile=64, overlap=0, cache=cache)
    np.testing.assert_array_equal(again.val[0]["mc_mean"], mm.val[0]["mc_mean"])
    assert again.val_seconds == pytest.approx(mm.val_seconds)  # the original time
    with pytest.raises(ValueError):
        ensemble.member_maps("fcn", model, stats, train, val, train_indices=[5])
    scores = ensemble.member_training_scores({"fcn": mm}, train)
    assert set(scores["fcn"]) == {"oa", "f1"} and 0 <= scores["fcn"]["oa"] <= 1

    class Run:
        def __init__(self, losses, seconds, params):
            self.history = [{"epoch": i, "loss": v} for i, v in enumerate(losses)]
            self.train_seconds, self.num_parameters = seconds, params

    runs = {"fcn": Run([1.0] * 20, 10.0, 100), "pb": Run(np.linspace(2, 1, 20), 5.0, 50)}
    res = ensemble.Combined(None, ("pb", "fcn"), "svm")
    fields = ensemble.record_fields(res, runs)
    assert fields["train_seconds"] == 15.0 and fields["num_parameters"] == 150
    assert fields["extra"]["converged"] == 0.0  # pb still improving
    single = ensemble.record_fields(ensemble.Combined(None, ("fcn",), "member"), runs)
    assert single["extra"]["converged"] == 1.0 and "loss_change_last_tenth" in single["extra"]


def test_evaluate_scores_matches_evaluate_model(scene_factory):
    torch.manual_seed(0)
    model = nn.Conv2d(5, 6, 3, padding=1)
    val = [scene_factory("v0", 40, 1, "val"), scene_factory("v1", 40, 2, "val")]
    stats = BandStats.from_scenes(val, val[0].band_names)
    ref = evaluate_model(model, stats, val, tile=64, overlap=0)
    probs = [predict_scene(model, stats.apply(s), tile=64, overlap=0)["probs"] for s in val]
    ev = evaluate_scores(probs, val)
    for p in ("eroded", "full"):
        np.testing.assert_array_equal(ev.confusion[p], ref.confusion[p])
    assert ev.ece == pytest.approx(ref.ece, abs=1e-6)
    assert ev.boundary_f1["mean"] == pytest.approx(ref.boundary_f1["mean"])


def test_combo_labels():
    names = ["pb", "fcn", "fcn_mfb"]
    labels = [ensemble.combo_label(c, names) for c in ensemble.combos(names)]
    assert labels == ["PB+FCN", "PB+FCN-MFB", "FCN+FCN-MFB", "ALL"]


def test_svm_scores_match_sklearns_decision_function():
    rng = np.random.default_rng(3)
    for n_classes in (2, 4):
        x = rng.random((400, 6)).astype(np.float32)
        y = rng.integers(0, n_classes, 400)
        svm = SVMCombiner(num_classes=5).fit(x, y)
        maps = [x[:, :3].T.reshape(3, 20, 20), x[:, 3:].T.reshape(3, 20, 20)]
        ours = svm.scores(maps).reshape(5, -1)
        ref = svm.svm.decision_function(x.astype(np.float64))
        if ref.ndim == 1:
            ref = np.stack([-ref, ref], 1)
        np.testing.assert_allclose(ours[svm.svm.classes_], ref.T, rtol=1e-5, atol=1e-5)
