import os
import stat
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

import aerialseg.runs as R
from aerialseg import paths
from aerialseg.data.registry import DataConfig, SplitData
from aerialseg.models.registry import build_model
from aerialseg.registry import get_method, resolve_run
from aerialseg.runs import (
    CorruptRunError,
    RunNotFoundError,
    data_fingerprint,
    get_or_train,
    run_key,
    run_path,
)
from aerialseg.training import Callback, NonFiniteLossError, stored_difficulty
from aerialseg.utils import (
    RunStoreWarning,
    UnsafeFileError,
    atomic_write,
    current_umask,
    set_seed,
)


def split(scene_factory):
    return SplitData(DataConfig(), [scene_factory(seed=i, size=64) for i in range(2)],
                     [scene_factory(seed=9, size=64, split="val")])


def cfg(**kw):
    base = dict(profile="smoke", in_bands=("ir", "r", "g", "dsm", "ndsm"), data={},
                crop_size=32, samples_per_epoch=4, batch_size=2)
    base.update(kw)
    return resolve_run("fcn_mfb", **base)


def weights_equal(a, b):
    return all(torch.equal(x.cpu(), y.cpu()) for x, y in zip(
        a.state_dict().values(), b.state_dict().values(), strict=True))


def test_run_key_depends_on_config_only():
    assert run_key(cfg()) == run_key(cfg())
    assert run_key(cfg()) != run_key(cfg(seed=1))
    assert run_key(cfg()) != run_key(cfg(lr=0.02))
    assert run_key(cfg(epochs=1, lr=0.01)) == run_key(cfg(epochs="1", lr="1e-2"))  # coerced
    # the key does not depend on which default data fields DataConfig.to_dict leaves out
    assert run_key(cfg(data={"split_name": None, "snap_labels": False})) == run_key(cfg())
    assert run_key(cfg(data={"eroded_radius": 5})) != run_key(cfg())


def test_data_fingerprint_is_in_the_key_and_follows_the_labels(scene_factory):
    data = split(scene_factory)
    fp = data_fingerprint(data)
    assert fp == data_fingerprint(split(scene_factory)) and len(fp) == 32
    key = run_key(cfg(), data)
    data.val[0].labels[0, 0] = 3 - data.val[0].labels[0, 0]  # validation: weights unchanged
    assert run_key(cfg(), data) == key
    data.train[1].labels[5, 7] = 4 if data.train[1].labels[5, 7] != 4 else 1  # fixed in place
    assert data_fingerprint(data) != fp
    assert run_key(cfg(), data) != key
    # a fingerprint already in cfg.data (e.g. from the data package) is used as is
    given = cfg(data={"fingerprint": "abc"})
    assert run_key(given, data) == run_key(given)


def test_store_reuses_trained_model(scene_factory):
    data = split(scene_factory)
    first = get_or_train(cfg(), data, log=None)
    assert first.path == run_path(cfg(), data) and first.cfg.data["fingerprint"]
    assert not first.reused and (first.path / "model.pt").exists()
    assert not (first.path / "checkpoint.pt").exists()
    assert {p.name for p in first.path.iterdir()} == {"model.pt", "config.json", ".lock"}
    w = first.loss_kwargs["class_weights"]
    assert len(w) == 6 and w[5] == 0.0  # clutter is not balanced (not evaluated)
    second = get_or_train(cfg(), data, log=None)
    assert second.reused
    assert weights_equal(first.model, second.model)
    assert second.loss_kwargs == first.loss_kwargs
    assert second.history == first.history and second.stats == first.stats
    assert second.train_seconds == first.train_seconds


def test_run_files_are_data_and_a_tampered_model_is_refused(scene_factory, tmp_path):
    data = split(scene_factory)
    run = get_or_train(cfg(), data, log=None)
    saved = torch.load(run.path / "model.pt", weights_only=True)  # data only
    assert set(saved) == {"format", "model", "meta"}
    assert saved["meta"]["store_version"] == R.STORE_VERSION
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"model": {}, "meta": Evil()}, run.path / "model.pt")
    with pytest.raises(UnsafeFileError, match=rf"run folder {run.path}.*refusing to load.*"
                       r"arbitrary code.*Fix: delete .*retrain=True"):
        get_or_train(cfg(), data, log=None)
    assert not marker.exists()
    assert (run.path / "model.pt").exists()  # left for inspection, not silently replaced
    again = get_or_train(cfg(), data, log=None, retrain=True)  # the documented fix
    assert not again.reused and not marker.exists()


def test_corrupt_model_is_retrained_with_a_warning(scene_factory):
    data = split(scene_factory)
    first = get_or_train(cfg(), data, log=None)
    # what the lost model left beside it: a chapter's cached predictions, a method file
    cached = first.path / "predictions" / "scene-settings-mc0" / "probs.npy"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"predictions of the lost model")
    (first.path / "extra.npz").write_bytes(b"method file of the lost model")
    f = first.path / "model.pt"
    f.write_bytes(f.read_bytes()[:100])  # a killed copy / full disk
    with pytest.warns(RunStoreWarning, match=rf"run folder {first.path}: the stored model is "
                      r"unusable.*truncated.*Training it again"):
        second = get_or_train(cfg(), data, log=None)
    assert not second.reused and weights_equal(first.model, second.model)
    # nothing derived from the lost model is served beside the new one
    assert not (first.path / "predictions").exists()
    assert not (first.path / "extra.npz").exists()
    assert get_or_train(cfg(), data, log=None).reused


def test_cli_reports_unusable_run_files_and_divergence_without_a_traceback(
        scene_factory, monkeypatch, capsys, tmp_path):
    import json

    import aerialseg.data.registry as data_registry
    from aerialseg.cli import main

    data = split(scene_factory)
    monkeypatch.setattr(data_registry, "load_split", lambda cfg: data)
    argv = ["train", "fcn", "--profile", "smoke", "--device", "cpu", "--no-progress",
            "--threads", "1", "--set", "crop_size=32"]
    assert main(argv) == 0
    folder = Path(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run"])
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"model": {}, "meta": Evil()}, folder / "model.pt")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"aerialseg: error: run folder {folder}: refusing to load")
    assert "Traceback" not in err and "--retrain" in err and not marker.exists()
    assert main([*argv, "--retrain"]) == 0  # the fix the message names

    def diverged(*args, **kwargs):
        raise NonFiniteLossError("the loss became nan in epoch 1 of 1 (...)")

    monkeypatch.setattr(R, "get_or_train", diverged)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("aerialseg: error: the loss became nan") and "Traceback" not in err

    def bug(*args, **kwargs):
        raise RuntimeError("a bug, not a run failure")

    monkeypatch.setattr(R, "get_or_train", bug)
    with pytest.raises(RuntimeError, match="a bug"):  # anything else keeps its traceback
        main(argv)


def test_corrupt_model_without_training_raises_with_the_fix(scene_factory):
    data = split(scene_factory)
    first = get_or_train(cfg(), data, log=None)
    (first.path / "model.pt").write_bytes(b"")
    with pytest.raises(CorruptRunError, match=rf"{first.path}.*unusable.*Fix: delete "
                       r".*retrain=True.*aerialseg train fcn_mfb --seed 0 --profile smoke "
                       r"--retrain"):
        get_or_train(cfg(), data, log=None, allow_training=False)


def test_missing_model_without_training_creates_nothing(scene_factory):
    data = split(scene_factory)
    with pytest.raises(RunNotFoundError, match="no trained model of fcn_mfb seed 0"):
        get_or_train(cfg(), data, log=None, allow_training=False)
    assert not run_path(cfg(), data).exists()


def test_corrupt_checkpoint_is_discarded_and_training_starts_over(scene_factory):
    data = split(scene_factory)
    folder = run_path(cfg(epochs=2), data)
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"PK\x03\x04 half a zip")
    with pytest.warns(RunStoreWarning, match="discarding the checkpoint"):
        run = get_or_train(cfg(epochs=2), data, log=None)
    assert run.resumed_from is None and len(run.history) == 2
    clean = get_or_train(cfg(epochs=2), data, log=None, retrain=True)
    assert weights_equal(run.model, clean.model)


def test_tampered_checkpoint_is_refused_with_the_run_folder_and_the_fix(scene_factory,
                                                                       tmp_path):
    data = split(scene_factory)
    folder = run_path(cfg(epochs=2), data)
    folder.mkdir(parents=True)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"format": 2, "epoch": Evil()}, folder / "checkpoint.pt")
    with pytest.raises(UnsafeFileError, match=rf"run folder {folder}: refusing to load "
                       r".*checkpoint\.pt.*Fix: delete .*--retrain"):
        get_or_train(cfg(epochs=2), data, log=None)
    assert not marker.exists() and (folder / "checkpoint.pt").exists()
    run = get_or_train(cfg(epochs=2), data, log=None, retrain=True)  # the fix it names
    assert not run.reused and run.resumed_from is None and not marker.exists()


def test_retrain_trains_again_from_scratch(scene_factory):
    data = split(scene_factory)
    first = get_or_train(cfg(), data, log=None)
    mtime = (first.path / "model.pt").stat().st_mtime_ns
    (first.path / "extra.npz").write_bytes(b"method file of the old run")
    second = get_or_train(cfg(), data, log=None, retrain=True)
    assert not second.reused and (first.path / "model.pt").stat().st_mtime_ns > mtime
    assert not (first.path / "extra.npz").exists()
    assert weights_equal(first.model, second.model)


def test_resume_in_the_store_counts_the_whole_training_time(scene_factory):
    from aerialseg.data.patches import BandStats
    from aerialseg.losses.registry import build_loss
    from aerialseg.training import fit

    class Slow(Callback):
        def on_epoch_end(self, state):
            time.sleep(0.2)

    data = split(scene_factory)
    c = R.with_data_fingerprint(cfg(epochs=3), data)
    folder = run_path(c)
    # an interrupted first attempt: 2 of 3 epochs, checkpoint in the run folder
    stats = BandStats.from_scenes(data.train, c.in_bands)
    kw = R.LOSS_PREPARERS["ce_mfb"](dict(c.loss_kwargs), data, c)
    part = fit(R.build_seeded_model(c, 6), build_loss(c.loss, num_classes=6, **kw),
               R.build_patches(c, data, stats), c.train, checkpoint=folder / "checkpoint.pt",
               log=None, max_epochs_this_call=2, callbacks=[Slow()],
               channels_last=R.prefers_channels_last(c.model, "cpu"))  # as the store trains
    run = get_or_train(c, data, log=None, callbacks=[Slow()])
    assert run.resumed_from == 2 and len(run.history) == 3
    assert run.train_seconds >= 0.6 > part.train_seconds
    uninterrupted = get_or_train(c, data, log=None, retrain=True)
    assert weights_equal(run.model, uninterrupted.model)


def _with_spec(c, spec):
    """The run ``c`` of a custom method (a run carries its method's spec)."""
    return replace(c, method=spec.name, spec=spec)


def test_function_hooks_run_after_seeding_and_need_no_reseeding(scene_factory, monkeypatch):
    """Callable hooks; the setup hook sees the seeded initial weights, whatever it does."""
    data = split(scene_factory)
    base = get_method("fcn_mfb")
    seen = {}

    def samples(c, d, stats):
        seen["samples"] = True
        return R.build_patches(c, d, stats)

    def fresh(c):
        set_seed(c.train.seed)
        return build_model(c.model, in_channels=5, num_classes=6, **c.model_kwargs)

    def plain_setup(ctx):
        seen["initial_is_seeded"] = weights_equal(ctx.model, fresh(ctx.cfg))
        torch.rand(1000)  # a hook may use the RNGs: training is seeded again
        return []

    def reseeding_setup(ctx):  # what the EFM/Lossd seeded_init hooks do
        ctx.model.load_state_dict(fresh(ctx.cfg).state_dict())
        return []

    specs = {
        "hook_plain": replace(base, name="hook_plain", samples=samples, setup=plain_setup),
        "hook_reseed": replace(base, name="hook_reseed", setup=reseeding_setup),
        "hook_named": replace(base, name="hook_named", samples="patches", setup=None)}
    torch.rand(7)  # whatever ran before in the process
    a = get_or_train(_with_spec(cfg(), specs["hook_plain"]), data, log=None)
    b = get_or_train(_with_spec(cfg(), specs["hook_reseed"]), data, log=None)
    c = get_or_train(_with_spec(cfg(), specs["hook_named"]), data, log=None)
    assert seen == {"samples": True, "initial_is_seeded": True}
    assert weights_equal(a.model, b.model) and weights_equal(a.model, c.model)


@pytest.mark.parametrize("samples, setup, match", [
    ("nonsense", None, "unknown sample kind 'nonsense'"),
    ("aerialseg.runs:build_patches", None, "unknown sample kind"),
    ("patches", "aerialseg.nowhere:setup", "setup hook must be None or a function"),
    ("patches", 42, "setup hook must be None or a function"),
])
def test_bad_hooks_fail_before_the_store_is_touched(scene_factory, monkeypatch, samples,
                                                    setup, match):
    spec = replace(get_method("fcn_mfb"), name="bad", samples=samples, setup=setup)
    with pytest.raises(ValueError, match=match):
        get_or_train(_with_spec(cfg(), spec), split(scene_factory), log=None)
    assert not paths.runs_dir().exists()


@pytest.mark.parametrize("failure", ["setup", "nan"])
def test_a_run_failing_before_its_first_checkpoint_leaves_no_folder(scene_factory,
                                                                    monkeypatch, failure):
    def setup(ctx):
        if failure == "setup":
            raise ValueError("the method rejects this configuration")
        with torch.no_grad():
            for p in ctx.model.parameters():
                p.fill_(float("nan"))
        return []

    failing = replace(get_method("fcn_mfb"), name="failing", setup=setup)
    data = split(scene_factory)
    c = _with_spec(cfg(), failing)
    with pytest.raises(ValueError if failure == "setup" else NonFiniteLossError) as info:
        get_or_train(c, data, log=None)
    if failure == "nan":
        assert "No checkpoint has been written yet" in str(info.value)
    assert not run_path(c, data).exists()
    assert list(paths.runs_dir().iterdir()) == []


def test_two_threads_train_once_and_the_second_reuses(scene_factory):
    data = split(scene_factory)
    waiting = threading.Event()
    trained = []

    class Count(Callback):
        def on_fit_start(self, state):
            trained.append(threading.current_thread().name)
            assert waiting.wait(30)  # the other thread is blocked on the lock by now

    def log_b(msg):
        if "being trained by another process; waiting" in msg:
            waiting.set()

    results = {}

    def worker(name, log):
        results[name] = get_or_train(cfg(), data, log=log, callbacks=[Count()])

    a = threading.Thread(target=worker, args=("a", None), name="a")
    a.start()
    while not trained:
        time.sleep(0.01)
    b = threading.Thread(target=worker, args=("b", log_b), name="b")
    b.start()
    a.join(60)
    b.join(60)
    assert trained == ["a"]
    assert not results["a"].reused and results["b"].reused
    assert weights_equal(results["a"].model, results["b"].model)


def test_another_process_holding_the_lock_makes_us_wait(scene_factory):
    data = split(scene_factory)
    folder = run_path(cfg(), data)
    folder.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time\n"
         f"fd = os.open({str(folder / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(1.0)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        lines = []
        t0 = time.perf_counter()
        run = get_or_train(cfg(), data, log=lines.append)
        waited = time.perf_counter() - t0
    finally:
        holder.wait(10)
    assert any("waiting for it" in ln for ln in lines)
    assert waited > 0.5 and not run.reused


def test_files_get_the_umask_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        f = atomic_write(tmp_path / "a.txt", lambda t: t.write_text("x"))
        assert stat.S_IMODE(f.stat().st_mode) == 0o640
    finally:
        os.umask(old)
    f = atomic_write(tmp_path / "b.txt", lambda t: t.write_text("x"))
    assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~old


def test_stale_temp_files_are_removed(tmp_path, scene_factory):
    old_tmp = tmp_path / ".results.nc.abc123.tmp"
    new_tmp = tmp_path / ".other.nc.def456.tmp"
    for f in (old_tmp, new_tmp):
        f.write_bytes(b"half a file")
    two_hours_ago = time.time() - 7200
    os.utime(old_tmp, (two_hours_ago, two_hours_ago))
    atomic_write(tmp_path / "results.nc", lambda t: t.write_text("x"))
    assert not old_tmp.exists() and new_tmp.exists()  # a fresh one may be a live write
    # in a run folder, the lock holder removes every temp file (no other writer can exist)
    data = split(scene_factory)
    folder = run_path(cfg(), data)
    folder.mkdir(parents=True)
    (folder / ".checkpoint.pt.xyz.tmp").write_bytes(b"killed write")
    run = get_or_train(cfg(), data, log=None)
    assert not (folder / ".checkpoint.pt.xyz.tmp").exists() and run.path == folder


def test_seeded_model_does_not_depend_on_earlier_rng_use():
    c = cfg()
    torch.rand(3)
    a = R.build_seeded_model(c, 6)
    torch.rand(5)
    b = R.build_seeded_model(c, 6)
    assert weights_equal(a, b)
    assert isinstance(a, nn.Module)


def test_weights_that_do_not_fit_the_model_name_the_store_version(scene_factory):
    data = split(scene_factory)
    run = get_or_train(cfg(), data, log=None)
    saved = torch.load(run.path / "model.pt", weights_only=True)
    name = next(iter(saved["model"]))
    saved["model"][name] = torch.zeros(3)  # as if the model's code had changed
    torch.save(saved, run.path / "model.pt")
    with pytest.raises(CorruptRunError, match="do not fit the model.*STORE_VERSION"):
        get_or_train(cfg(), data, log=None)


def test_fingerprint_of_file_scenes_follows_their_files(scene_factory, tmp_path):
    f = tmp_path / "labels.png"
    f.write_bytes(b"a" * 10)
    scene = replace(scene_factory(size=32), sources=(str(f),))
    data = SplitData(DataConfig(), [scene], [])
    before = data_fingerprint(data)
    assert data_fingerprint(data) == before
    f.write_bytes(b"b" * 11)  # the label file fixed in place
    assert data_fingerprint(data) != before


def test_run_difficulty_replays_the_last_batches_of_a_stored_run(scene_factory):
    from aerialseg.training import difficulty_epochs

    data = split(scene_factory)
    c = cfg(epochs=12)
    run = get_or_train(c, data, log=None)
    diff = R.run_difficulty(run.path, data, get_method("fcn_mfb"))
    assert sorted(diff) == difficulty_epochs(12) == [10, 11]
    for e, values in diff.items():
        steps = run.history[e]["step_losses"]
        assert len(values) == len(steps) and all(v > 0 for v in values)
        # training recorded the same values in the run's history
        assert run.history[e]["step_difficulty"] == pytest.approx(values, abs=1e-6)
    assert "step_difficulty" not in run.history[9]
    # a run stored before the store recorded it gets it on its next reuse, kept on disk
    saved = R.load_run_file(run.path / "model.pt")
    for h in saved["meta"]["history"]:
        h.pop("step_difficulty", None)
    R._write_run(run.path, saved["model"], saved["meta"])
    assert stored_difficulty(R.load_run_file(run.path / "model.pt")["meta"]["history"]) is None
    again = get_or_train(c, data, log=None)
    assert again.reused and stored_difficulty(again.history) is not None
    assert again.history[11]["step_difficulty"] == pytest.approx(diff[11], abs=1e-6)
    assert stored_difficulty(R.load_run_file(run.path / "model.pt")["meta"]["history"]) is not None
    assert "step_difficulty" in (run.path / "config.json").read_text()
    # the stored config resolves to the run that was trained
    meta = R.load_run_file(run.path / "model.pt")["meta"]
    assert R.run_key(R.stored_run_config(meta["config"], get_method("fcn_mfb"))) == run.key
    other = split(scene_factory)
    other.train[0].labels[3, 3] = 4 if other.train[0].labels[3, 3] != 4 else 1
    with pytest.raises(ValueError, match="trained on other data"):
        R.run_difficulty(run.path, other, get_method("fcn_mfb"))


def test_fingerprint_follows_file_bytes_not_their_times(scene_factory, tmp_path):
    f = tmp_path / "labels.png"
    f.write_bytes(b"a" * 10)
    scene = replace(scene_factory(size=32), sources=(str(f),))
    data = SplitData(DataConfig(), [scene], [])
    before, legacy = data_fingerprint(data), data_fingerprint(data, legacy=True)
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # a copy, a new checkout
    assert data_fingerprint(data) == before
    assert data_fingerprint(data, legacy=True) != legacy


def test_runs_stored_under_the_earlier_fingerprint_are_found(scene_factory, tmp_path):
    files = []
    for i in range(2):
        f = tmp_path / f"scene{i}.tif"
        f.write_bytes(bytes([i]) * 16)
        files.append(f)
    data = SplitData(DataConfig(), [replace(s, sources=(str(f),)) for s, f in
                                    zip(split(scene_factory).train, files, strict=True)],
                     split(scene_factory).val)
    # a run trained before fingerprints hashed contents: stored under the legacy key
    legacy_cfg = replace(cfg(), data={"fingerprint": data_fingerprint(data, legacy=True)})
    first = get_or_train(legacy_cfg, data, log=None)
    assert not first.reused
    again = get_or_train(cfg(), data, log=None)  # the fingerprint computed here: content
    assert again.reused and again.path == first.path
    assert R.stored_location(cfg(), data)[1] == first.path
    # the files were copied (new times, same bytes): the legacy key no longer proves they
    # are the same, so the run is trained once more, under the content key, and kept
    for f in files:
        st = f.stat()
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    third = get_or_train(cfg(), data, log=None)
    assert not third.reused and third.path != first.path
    for f in files:
        st = f.stat()
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert get_or_train(cfg(), data, log=None).reused
