"""The run store: a trained model is keyed by a hash of its full configuration and data.

A later chapter that asks for the same configuration loads the stored weights instead of
training again; an interrupted run resumes from its last checkpoint.

**A run folder** ``runs/<method>-<key>/`` holds (:data:`STORE_VERSION` 2):

* ``model.pt``: ``{"format": 2, "model": state dict, "meta": {...}}``, a ``torch.save``
  archive of tensors and plain data (numbers, strings, lists, dicts), read with
  ``weights_only=True``: loading a run never executes code, and a file holding other
  pickled objects is refused (:class:`~aerialseg.utils.UnsafeFileError`). ``meta`` is JSON
  data: ``store_version``, ``key``, ``config`` (the resolved :class:`RunConfig`, with the
  data fingerprint), ``stats``, ``loss_kwargs``, ``history``, ``train_seconds``,
  ``hardware``, ``resumed_from_epoch``, ``checkpoint_epochs``, ``torch``, ``finished``.
  The epochs of the history's last two tenths also hold ``step_difficulty``: the final
  model's loss on each of their batches (:func:`add_difficulty`; added on first reuse to a
  run stored without it), so that the convergence rule compares those tenths at equal
  batch difficulty.
* ``config.json``: the same ``meta``, for people and other tools.
* ``checkpoint.pt`` while training (see :mod:`aerialseg.training` for its layout); removed
  when ``model.pt`` is written.
* ``.lock``: the lock file (``fcntl.flock``) that keeps two processes from training the same
  run; the second waits, then reuses the first's model.
* method files (e.g. EFM's ``efm_monitor.npz``).

**The key** hashes the resolved configuration and the training files' contents
(:func:`data_fingerprint`), so copying the data keeps the stored models; a model stored
under the earlier key (files' modification times) is found while the files keep them
(:func:`stored_location`).

A folder whose run failed before its first checkpoint is removed, so an empty folder never
stays behind. Files are written atomically with the process umask's permissions; temp files
of killed writers are removed when the lock is taken.

**Seeding.** The run store seeds once, with ``cfg.train.seed``, right before it builds the
model (after importing the model's module, so no import can draw from the seeded RNG), so
the initial weights depend on the seed only. ``fit()`` seeds again at its start for the
training RNG stream (dropout, ...). A method's ``setup`` hook therefore sees the seeded
initial weights in ``ctx.model`` and may use the RNGs freely: it needs no re-seeding or
re-initialisation of its own.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset

from aerialseg import paths
from aerialseg.config import MethodSpec, RunConfig, TrainConfig
from aerialseg.data.patches import BandStats, SegmentationPatches
from aerialseg.data.registry import DataConfig, SplitData
from aerialseg.losses.ce import median_frequency_weights
from aerialseg.losses.registry import build_loss
from aerialseg.models.registry import build_model, model_names
from aerialseg.perf import prefers_channels_last
from aerialseg.training import (
    DIFFICULTY_KEY,
    Callback,
    batch_difficulty,
    difficulty_epochs,
    fit,
    is_distributed,
    is_main_process,
    stored_difficulty,
)
from aerialseg.utils import (
    CorruptFileError,
    RunFileError,
    RunStoreWarning,
    UnsafeFileError,
    atomic_write,
    file_digest,
    hardware_description,
    load_tensors,
    remove_stale_tmp_files,
    save_tensors,
    set_seed,
    to_plain,
)

STORE_VERSION = 3
"""The one versioning mechanism of the run store: it is part of every run key, so bumping
it makes every stored run stale. Bump it when a change to training, to the key material or
to the file format makes stored runs wrong or unreadable.

History: 1: pickled files; 2: data-only files, data fingerprint in the key, data settings
completed with their defaults (so the key no longer depends on which fields
``DataConfig.to_dict`` leaves out)."""

MODEL_FILE = "model.pt"
CHECKPOINT_FILE = "checkpoint.pt"
CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"
MODEL_FORMAT = 2
"""Layout version of ``model.pt``."""


class CorruptRunError(RunFileError):
    """A stored run is unreadable and this call may not train it again."""


class RunNotFoundError(FileNotFoundError):
    """No trained model of this configuration is stored and this call may not train it."""


# ------------------------------------------------------------------------------ the run key

def data_fingerprint(data: SplitData, *, legacy: bool = False) -> str:
    """Fingerprint of the training data: what the trained weights depend on.

    A BLAKE2b hash over every training scene's name and band names and, for a scene read
    from files (``Scene.sources``), each file's name, size and the digest of its bytes
    (about 1 s per GB, once per process); a scene built in memory hashes its bands and
    labels instead. The validation scenes do not change the weights, so fixing them does
    not retrain. Copying the data (a new disk, a fresh checkout of a shared folder) keeps
    the fingerprint, so the stored models stay usable; changing a file's bytes changes it.

    ``legacy=True``: the store's earlier fingerprint, with each file's modification time in
    place of its digest (runs stored under it are still found; see :func:`get_or_train`).
    """
    h = hashlib.blake2b(digest_size=16)
    for scene in data.train:
        h.update(json.dumps([scene.name, list(scene.band_names)]).encode())
        sources = [Path(p) for p in getattr(scene, "sources", ())]
        if sources and all(p.exists() for p in sources):
            # the crop a profile reads (max_size) is in the data settings, also keyed
            for p in sources:
                st = p.stat()
                what = st.st_mtime_ns if legacy else file_digest(p)
                h.update(json.dumps([p.name, st.st_size, what]).encode())
            continue
        for arr in (scene.bands, scene.labels):
            a = np.ascontiguousarray(arr)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def _legacy_folder(cfg: RunConfig, data: SplitData, given: bool) -> tuple[RunConfig, Path] | None:
    """A stored model of ``cfg`` keyed by the earlier (modification-time) fingerprint.

    Only where this call computed the fingerprint and the data's files have not changed
    since (their modification times match the key), so the stored weights were trained on
    exactly these files.
    """
    if given or not any(getattr(s, "sources", ()) for s in data.train):
        return None
    old = replace(cfg, data={**cfg.data, "fingerprint": data_fingerprint(data, legacy=True)})
    folder = run_path(old)
    return (old, folder) if (folder / MODEL_FILE).exists() else None


def with_data_fingerprint(cfg: RunConfig, data: SplitData) -> RunConfig:
    """``cfg`` with ``cfg.data["fingerprint"]`` set to :func:`data_fingerprint` of ``data``.

    A fingerprint already present (e.g. one the data package computed from the files) is
    kept.
    """
    if cfg.data.get("fingerprint"):
        return cfg
    return replace(cfg, data={**cfg.data, "fingerprint": data_fingerprint(data)})


def _hook_name(hook: Any) -> str | None:
    if hook is None or isinstance(hook, str):
        return hook
    return f"{getattr(hook, '__module__', '?')}.{getattr(hook, '__qualname__', repr(hook))}"


def _key_material(cfg: RunConfig) -> dict[str, Any]:
    material = {"store_version": STORE_VERSION, **cfg.to_dict()}
    # the resolved values matter, not the names: two methods that train the same thing
    # (e.g. a chapter's CE baseline on the shared CPU backbone and the FCN of chapter 03)
    # are the same runs; the hooks are part of what is trained
    material.pop("profile", None)
    material.pop("method", None)
    spec = cfg.spec
    material["hooks"] = ([_hook_name(spec.samples), _hook_name(spec.setup)]
                         if spec is not None else None)
    # every data setting with its value, whether or not DataConfig.to_dict left defaults out
    defaults = {f.name: f.default for f in fields(DataConfig)}
    material["data"] = {**to_plain(defaults), **material["data"]}
    return material


def run_key(cfg: RunConfig, data: SplitData | None = None) -> str:
    """Short stable hash of everything that defines the trained weights.

    The material is :data:`STORE_VERSION`, the resolved configuration (not the profile's
    name) and ``cfg.data`` with every data setting and the data fingerprint
    (``cfg.data["fingerprint"]``). Pass ``data`` to add the fingerprint of its content
    first, as :func:`get_or_train` does (a ``cfg`` without a fingerprint gives a key that
    :func:`get_or_train` never uses).
    """
    if data is not None:
        cfg = with_data_fingerprint(cfg, data)
    blob = json.dumps(_key_material(cfg), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def stored_location(cfg: RunConfig, data: SplitData, *, retrain: bool = False
                    ) -> tuple[RunConfig, Path]:
    """``cfg`` with its data fingerprint, and its folder in the run store.

    The folder of :func:`run_key`; where no model is stored there but one is under the
    store's earlier fingerprint of the same, unchanged files, that one (and ``cfg`` with
    that fingerprint). ``retrain``: always the current key.
    """
    given = bool(cfg.data.get("fingerprint"))
    cfg = with_data_fingerprint(cfg, data)
    folder = run_path(cfg)
    if not retrain and not (folder / MODEL_FILE).exists():
        found = _legacy_folder(cfg, data, given)
        if found is not None:  # stored before fingerprints hashed file contents
            return found
    return cfg, folder


def run_path(cfg: RunConfig, data: SplitData | None = None) -> Path:
    """Folder of this configuration in the run store (see :func:`run_key` for ``data``)."""
    return paths.runs_dir() / f"{cfg.model}-{cfg.loss}-{run_key(cfg, data)}"


# ------------------------------------------------------------------------- method hooks

def _prepare_ce_mfb(kwargs: dict[str, Any], data: SplitData, cfg: RunConfig) -> dict[str, Any]:
    classes = data.classes
    labels = [s.training_labels(cfg.train.ignore_unevaluated) for s in data.train]
    mode = kwargs.pop("mfb_frequency", "global")
    w = median_frequency_weights(labels, classes.num_classes, classes=classes.evaluated,
                                 mode=mode)
    return {**kwargs, "class_weights": [float(v) for v in w]}


def _write_run(folder: Path, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write the model file, then the readable config (both atomically)."""
    save_tensors(folder / MODEL_FILE, {"format": MODEL_FORMAT, "model": state, "meta": meta})
    atomic_write(folder / CONFIG_FILE, lambda tmp: tmp.write_text(json.dumps(meta, indent=1)))


def add_difficulty(history: list[dict[str, Any]], model: nn.Module, dataset: Dataset,
                   train: TrainConfig, device: torch.device | str) -> None:
    """Record in ``history`` each batch's loss under ``model`` for the last two tenths.

    The convergence rule compares those tenths at equal batch difficulty
    (:func:`aerialseg.stats.adjusted_convergence`). Values rounded to 6 digits, like the
    step losses.
    """
    diff = batch_difficulty(model, dataset, train, difficulty_epochs(len(history)), device)
    for e, values in diff.items():
        history[e][DIFFICULTY_KEY] = [round(v, 6) for v in values]


LOSS_PREPARERS: dict[str, Callable[[dict[str, Any], SplitData, RunConfig], dict[str, Any]]] = {
    "ce_mfb": _prepare_ce_mfb,
}
"""Losses whose arguments depend on the training data (e.g. class frequencies)."""


def build_patches(cfg: RunConfig, data: SplitData, stats: BandStats) -> Dataset:
    """Segmentation patches (grid + D4, or random crops) of the normalised training scenes."""
    t = cfg.train
    images = [stats.apply(s) for s in data.train]
    labels = [s.training_labels(t.ignore_unevaluated) for s in data.train]
    return SegmentationPatches(images, labels, size=t.crop_size, sampler=t.sampler,
                               overlap=t.tile_overlap, dihedral_aug=t.dihedral_aug,
                               scale_range=t.scale_range, length=t.samples_per_epoch,
                               seed=t.seed)


DATASET_BUILDERS: dict[str, Callable[[RunConfig, SplitData, BandStats], Dataset]] = {
    "patches": build_patches,
}


@dataclass
class RunContext:
    """What a method's ``setup`` hook sees before training (it may modify the dataset).

    ``model`` holds the initial weights the builder made right after
    ``set_seed(cfg.train.seed)``; the hook needs no seeding of its own, and its use of the
    RNGs does not change training (``fit()`` seeds again).
    """

    cfg: RunConfig
    data: SplitData
    stats: BandStats
    dataset: Dataset
    model: nn.Module
    loss_fn: nn.Module
    device: torch.device


def samples_builder(samples: Any) -> Callable[[RunConfig, SplitData, BandStats], Dataset]:
    """The training-sample builder named by a method's ``samples``.

    ``samples`` is a callable ``f(cfg, data, stats) -> Dataset`` or a key of
    :data:`DATASET_BUILDERS`.

    Raises:
        ValueError: anything else (the valid keys are listed).
    """
    if callable(samples):
        return samples
    if isinstance(samples, str) and samples in DATASET_BUILDERS:
        return DATASET_BUILDERS[samples]
    raise ValueError(f"unknown sample kind {samples!r}; pass a function "
                     f"f(cfg, data, stats) -> Dataset or one of {sorted(DATASET_BUILDERS)}")


def setup_hook(setup: Any) -> Callable[[RunContext], Sequence[Callback] | None] | None:
    """The setup hook named by a method's ``setup``.

    ``setup`` is None or a callable ``setup(ctx: RunContext) -> list[Callback]``.

    Raises:
        ValueError: anything else.
    """
    if setup is None or callable(setup):
        return setup
    raise ValueError(f"a method's setup hook must be None or a function "
                     f"setup(ctx: RunContext) -> list[Callback], got {setup!r}")


def build_seeded_model(cfg: RunConfig, num_classes: int) -> nn.Module:
    """The run's initial model: seeded with ``cfg.train.seed`` right before it is built.

    The builder's module is imported first, so nothing an import does with the RNGs comes
    between the seed and the initialisation.
    """
    model_names()  # imports every model module: nothing an import does comes between
    set_seed(cfg.train.seed)
    return build_model(cfg.model, in_channels=len(cfg.in_bands), num_classes=num_classes,
                       **cfg.model_kwargs)


# ------------------------------------------------------------------------------ runs

@dataclass
class TrainedRun:
    """A trained model with what is needed to use and report it."""

    cfg: RunConfig
    key: str
    path: Path
    model: nn.Module
    stats: BandStats
    loss_kwargs: dict[str, Any]
    history: list[dict[str, float]]
    train_seconds: float
    hardware: str
    reused: bool
    resumed_from: int | None = None

    @property
    def num_parameters(self) -> int:
        """Trainable parameters of the model."""
        return sum(p.numel() for p in self.model.parameters())


def load_run_file(path: str | Path) -> dict[str, Any]:
    """``{"model": state dict, "meta": dict}`` of a stored ``model.pt``, loaded as data only.

    Use this (not ``torch.load``) to read stored weights, e.g. to initialise a fine-tuning
    stage from an earlier run.

    Raises:
        FileNotFoundError: no such file.
        UnsafeFileError: the file holds pickled objects (it is not unpickled).
        CorruptFileError: truncated, unreadable or not a model file.
    """
    saved = load_tensors(path)
    state, meta = saved.get("model"), saved.get("meta")
    if not isinstance(state, dict) or not isinstance(meta, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise CorruptFileError(f"{path} is not a model file of the run store (expected "
                               "'model' tensors and 'meta')")
    missing = {"stats", "loss_kwargs", "history", "train_seconds", "hardware"} - set(meta)
    if missing:
        raise CorruptFileError(f"{path}: meta entries {sorted(missing)} are missing")
    return saved


def _fix(folder: Path, cfg: RunConfig) -> str:
    return (f"delete {folder} (or pass retrain=True to get_or_train / Chapter.train, run "
            f"`aerialseg train {cfg.method} --seed {cfg.train.seed} --profile {cfg.profile} "
            "--retrain`, or run the chapter with `-p retrain True`) to train it again")


@contextlib.contextmanager
def _run_lock(folder: Path, log: Callable[[str], None] | None) -> Iterator[None]:
    """Hold the run folder's lock (creating the folder); waits while another process does.

    A holder may remove the folder (a failed run) while others wait; a waiter then finds
    its lock file unlinked and starts over.
    """
    lock = folder / LOCK_FILE
    while True:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:  # the folder was removed between mkdir and open
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            if log:
                log(f"{folder.name} is being trained by another process; waiting for it "
                    f"(lock {lock})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            current = os.stat(lock).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            break
        os.close(fd)  # the folder was removed while we waited: lock the new one
    try:
        remove_stale_tmp_files(folder, older_than=None)  # we hold the lock: none is live
        yield
    finally:
        os.close(fd)


def _clear_folder(folder: Path, *, keep_lock: bool) -> None:
    for f in folder.iterdir():
        if keep_lock and f.name == LOCK_FILE:
            continue
        if f.is_dir():
            shutil.rmtree(f)
        else:
            f.unlink(missing_ok=True)


def _remove_failed_folder(folder: Path) -> None:
    """Remove the folder of a run that failed before it had a checkpoint (under the lock)."""
    if not folder.is_dir():
        return
    if (folder / MODEL_FILE).exists() or (folder / CHECKPOINT_FILE).exists():
        return
    _clear_folder(folder, keep_lock=False)
    with contextlib.suppress(OSError):
        folder.rmdir()


def _agree(value: bool) -> bool:
    """Rank 0's ``value`` on every rank (under torchrun), else ``value``."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])


def _stored(cfg: RunConfig, folder: Path, *, t_call: float, retrain: bool,
            allow_training: bool, log: Callable[[str], None] | None) -> dict[str, Any] | None:
    """The stored model file if it is usable (rank 0, under the lock).

    ``retrain`` discards what was stored before this call started; a model another
    process finished while this call waited for the lock is kept.
    """
    final = folder / MODEL_FILE
    if retrain:
        if final.exists() and final.stat().st_mtime >= t_call:
            if log:
                log(f"{folder.name}: another process trained this run while this call "
                    "waited; reusing it instead of retraining")
        else:
            _clear_folder(folder, keep_lock=True)
    if not final.exists():
        return None
    try:
        return load_run_file(final)
    except CorruptFileError as exc:
        msg = f"run folder {folder}: the stored model is unusable: {exc}"
        if not allow_training:
            raise CorruptRunError(f"{msg}. Fix: {_fix(folder, cfg)}.") from exc
        msg += (". Training it again (with everything else in the run folder, e.g. "
                "predictions cached from the lost model).")
        warnings.warn(msg, RunStoreWarning, stacklevel=4)
        if log:
            log("warning: " + msg)
        # what else the folder holds came from the lost model (cached predictions, method
        # files): a retrained model need not be bit-identical to it (other hardware or
        # threads), so none of it may be reused
        _clear_folder(folder, keep_lock=True)
        return None
    except UnsafeFileError as exc:
        raise UnsafeFileError(f"run folder {folder}: {exc} Fix: {_fix(folder, cfg)}."
                              ) from None


def _stats_from(meta: dict[str, Any]) -> BandStats:
    s = meta["stats"]
    return BandStats(tuple(s["bands"]), tuple(float(v) for v in s["mean"]),
                     tuple(float(v) for v in s["std"]))


def get_or_train(cfg: RunConfig, data: SplitData, *, device: torch.device | str = "cpu",
                 callbacks: Sequence[Callback] = (), retrain: bool = False,
                 allow_training: bool = True, log: Callable[[str], None] | None = print,
                 progress: bool = False) -> TrainedRun:
    """Load the run ``cfg`` from the store, or train it (resuming a checkpoint) and store it.

    The method's ``samples`` builder makes the training set and its ``setup`` hook (if any)
    adds the method's callbacks to ``callbacks`` (see :func:`samples_builder`,
    :func:`setup_hook`). The run's folder is keyed by ``cfg`` and the fingerprint of
    ``data`` (:func:`with_data_fingerprint`); the returned ``TrainedRun.cfg`` carries the
    fingerprint. Nothing is created on disk before the method's hooks are resolved, and a
    run that fails before its first checkpoint leaves no folder behind.

    Args:
        cfg: the resolved run (``resolve_run``; its values are already validated).
        data: the split to train on.
        device: torch device.
        callbacks: extra callbacks for :func:`~aerialseg.training.fit`.
        retrain: discard a stored model (and checkpoint) of this configuration and train
            again from scratch. A model that another process finished while this call
            waited for the run's lock is reused, not trained a third time.
        allow_training: False: only load; raise :class:`RunNotFoundError` if the model is
            not stored and :class:`CorruptRunError` if it is unreadable (otherwise a corrupt
            model is trained again and a corrupt checkpoint discarded, with a
            :class:`~aerialseg.utils.RunStoreWarning`).
        log: where progress lines go (None: silent).
        progress: show a tqdm progress bar of the epochs (on stderr).

    Raises:
        UnsafeFileError: a stored file holds pickled objects (it is never unpickled).
        CorruptRunError, RunNotFoundError: see ``allow_training``.
        NonFiniteLossError: training diverged (the message says what is on disk).
    """
    t_call = time.time()
    if not isinstance(cfg.train, TrainConfig):
        raise TypeError(f"cfg.train must be a TrainConfig, got {type(cfg.train).__name__}")
    spec = cfg.spec
    if spec is None:
        raise ValueError(f"run {cfg.method!r} carries no method spec: resolve it with "
                         "aerialseg.registry.resolve_run or MethodSpec.resolve")
    builder = samples_builder(spec.samples)  # fail on a bad hook before touching the store
    setup = setup_hook(spec.setup)
    device = torch.device(device)
    cfg, folder = stored_location(cfg, data, retrain=retrain)
    key = run_key(cfg)
    main = is_main_process()
    with _run_lock(folder, log) if main else contextlib.nullcontext():
        try:
            saved = (_stored(cfg, folder, t_call=t_call, retrain=retrain,
                             allow_training=allow_training, log=log) if main else None)
            if _agree(saved is not None):
                if saved is None:  # another rank: rank 0 found the model, so it is there
                    saved = load_run_file(folder / MODEL_FILE)
                return _reuse(cfg, key, folder, saved, data, device, log, builder)
            if not allow_training:
                raise RunNotFoundError(
                    f"no trained model of {cfg.method} seed {cfg.train.seed} in {folder}, and "
                    f"training is not allowed here; train it first, e.g. `aerialseg train "
                    f"{cfg.method} --seed {cfg.train.seed} --profile {cfg.profile}`")
            try:
                return _train(cfg, key, folder, data, builder, setup, device=device,
                              callbacks=callbacks, log=log, progress=progress)
            except UnsafeFileError as exc:  # the checkpoint: name the run and the fix
                raise UnsafeFileError(f"run folder {folder}: {exc} Fix: {_fix(folder, cfg)}."
                                      ) from None
        except BaseException:
            if main:
                with contextlib.suppress(OSError):  # never hide the original error
                    _remove_failed_folder(folder)
            raise


def _reuse(cfg: RunConfig, key: str, folder: Path, saved: dict[str, Any], data: SplitData,
           device: torch.device, log: Callable[[str], None] | None,
           builder: Callable[[RunConfig, SplitData, BandStats], Dataset] | None = None
           ) -> TrainedRun:
    meta = saved["meta"]
    model = build_seeded_model(cfg, data.classes.num_classes)
    try:
        model.load_state_dict(saved["model"])
    except RuntimeError as exc:
        raise CorruptRunError(
            f"run folder {folder}: the stored weights do not fit the model "
            f"({str(exc).splitlines()[0]}): the model's code changed without a bump of "
            f"aerialseg.runs.STORE_VERSION. Fix: bump it, or {_fix(folder, cfg)}.") from exc
    model.to(device).eval()
    if (builder is not None and is_main_process() and meta["history"]
            and stored_difficulty(meta["history"]) is None):
        # a run stored before the store recorded it: replay its last batches once, keep it
        dataset = builder(cfg, data, _stats_from(meta))
        add_difficulty(meta["history"], model, dataset, cfg.train, device)
        model.eval()
        _write_run(folder, saved["model"], meta)
    if log:
        log(f"{cfg.method} seed {cfg.train.seed}: reusing trained model {folder.name} "
            f"(trained in {meta['train_seconds']:.0f} s on {meta['hardware']})")
    return TrainedRun(cfg, key, folder, model, _stats_from(meta), meta["loss_kwargs"],
                      meta["history"], float(meta["train_seconds"]), meta["hardware"],
                      reused=True, resumed_from=meta.get("resumed_from_epoch"))


def _train(cfg: RunConfig, key: str, folder: Path, data: SplitData,
           builder: Callable[[RunConfig, SplitData, BandStats], Dataset],
           setup: Callable[[RunContext], Sequence[Callback] | None] | None, *,
           device: torch.device, callbacks: Sequence[Callback],
           log: Callable[[str], None] | None, progress: bool) -> TrainedRun:
    stats = BandStats.from_scenes(data.train, cfg.in_bands)
    loss_kwargs = dict(cfg.loss_kwargs)
    if cfg.loss in LOSS_PREPARERS:
        loss_kwargs = LOSS_PREPARERS[cfg.loss](loss_kwargs, data, cfg)
    model = build_seeded_model(cfg, data.classes.num_classes)
    dataset = builder(cfg, data, stats)
    loss_fn = build_loss(cfg.loss, ignore_index=255, num_classes=data.classes.num_classes,
                         **loss_kwargs)
    callbacks = list(callbacks)
    if setup is not None:
        ctx = RunContext(cfg, data, stats, dataset, model, loss_fn, device)
        callbacks += list(setup(ctx) or [])
    if log:
        n = sum(p.numel() for p in model.parameters())
        log(f"training {cfg.method} seed {cfg.train.seed} ({n / 1e6:.2f} M parameters, "
            f"{len(dataset)} samples, {cfg.train.epochs} epochs) -> {folder.name}")
    result = fit(model, loss_fn, dataset, cfg.train, device=device, callbacks=callbacks,
                 channels_last=prefers_channels_last(cfg.model, torch.device(device).type),
                 checkpoint=folder / CHECKPOINT_FILE, final_checkpoint=False, log=log,
                 progress=progress,
                 progress_label=f"{cfg.method} seed {cfg.train.seed}")
    if is_main_process():
        add_difficulty(result.history, result.model, dataset, cfg.train, device)
        result.model.eval()
    hardware = hardware_description(device)
    meta = to_plain({
        "store_version": STORE_VERSION, "key": key, "config": cfg.to_dict(),
        "stats": asdict(stats), "loss_kwargs": loss_kwargs, "history": result.history,
        "train_seconds": result.train_seconds, "hardware": hardware,
        "resumed_from_epoch": result.resumed_from,
        "checkpoint_epochs": result.checkpoint_epochs, "torch": torch.__version__,
        "finished": datetime.now(UTC).isoformat(timespec="seconds")})
    if is_main_process():
        state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
        _write_run(folder, state, meta)
        (folder / CHECKPOINT_FILE).unlink(missing_ok=True)
    return TrainedRun(cfg, key, folder, result.model, stats, meta["loss_kwargs"],
                      meta["history"], result.train_seconds, hardware, reused=False,
                      resumed_from=result.resumed_from)



# ------------------------------------------------------------------- stored runs, revisited

def stored_run_config(config: dict[str, Any], spec: MethodSpec) -> RunConfig:
    """The resolved run that a stored ``config`` entry (``config.json``) describes.

    ``spec`` is the method's definition (``aerialseg.registry.get_method``); lists that were
    tuples before JSON become tuples again.
    """
    t = {k: tuple(v) if isinstance(v, list) else v for k, v in config["train"].items()}
    return RunConfig(method=config["method"], model=config["model"], loss=config["loss"],
                     model_kwargs=dict(config["model_kwargs"]),
                     loss_kwargs=dict(config["loss_kwargs"]), train=TrainConfig(**t),
                     in_bands=tuple(config["in_bands"]), data=dict(config["data"]),
                     profile=config["profile"], spec=spec)


def run_difficulty(folder: str | Path, data: SplitData, spec: MethodSpec, *,
                   device: torch.device | str = "cpu") -> dict[int, list[float]]:
    """The stored run's final-model loss on each batch of its last two tenths of training.

    Rebuilds the run's training samples from ``data`` (which must be the data it trained
    on: the fingerprints are compared) and replays its batches
    (:func:`aerialseg.training.batch_difficulty`); for
    :func:`aerialseg.stats.adjusted_convergence`.

    Raises:
        ValueError: ``data`` is not the run's training data.
    """
    folder = Path(folder)
    saved = load_run_file(folder / MODEL_FILE)
    meta = saved["meta"]
    cfg = stored_run_config(meta["config"], spec)
    stored = cfg.data.get("fingerprint")
    # the store keys by data_fingerprint (or its earlier form), or by a fingerprint the data
    # package computed
    given = {data_fingerprint(data), data_fingerprint(data, legacy=True), data.fingerprint}
    if stored is not None and stored not in given:
        raise ValueError(f"{folder.name} trained on other data (fingerprint {stored}, "
                         f"given {' or '.join(sorted(given))}); load the split of its "
                         "config.json")
    model = build_seeded_model(cfg, data.classes.num_classes)
    model.load_state_dict(saved["model"])
    builder = samples_builder(spec.samples)
    dataset = builder(cfg, data, _stats_from(meta))
    epochs = difficulty_epochs(len(meta["history"]))
    return batch_difficulty(model.to(device), dataset, cfg.train, epochs, device)
