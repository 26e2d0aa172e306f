"""Run-store costs: data fingerprint, checkpoint write and the adaptive checkpoint policy.

Usage: .venv/bin/python bench/bench_run_store.py [--profile default] [--model smp_unet]
       [--encoder resnet34] [--epoch-seconds 20]

1. ``runs.data_fingerprint`` of the synthetic split of ``--profile`` (the cost every
   ``get_or_train`` call pays when ``cfg.data`` has no fingerprint yet).
2. The duration of one checkpoint write (weights + SGD momentum, as ``fit()`` writes it) of
   ``--model`` into a temporary folder on the run store's disk, and the file size.
3. With an epoch of ``--epoch-seconds`` (measure yours with ``bench_training.py``), the
   share of training time the old per-epoch checkpoint cost, and the epochs after which the
   adaptive ``training.CheckpointPolicy`` writes in the run store (which writes ``model.pt``,
   not a checkpoint, after the final epoch) in an 8- and a 50-epoch run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--model", default="smp_unet")
    ap.add_argument("--encoder", default="resnet34")
    ap.add_argument("--epoch-seconds", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    from aerialseg import paths
    from aerialseg.config import TrainConfig
    from aerialseg.data.registry import data_config, load_split
    from aerialseg.models.registry import build_model
    from aerialseg.runs import data_fingerprint
    from aerialseg.training import CheckpointPolicy, TrainState, _save_checkpoint, build_optimizer

    data = load_split(data_config("synthetic", args.profile))
    nbytes = sum(s.bands.nbytes + s.labels.nbytes for s in data.train)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        data_fingerprint(data)
        times.append(time.perf_counter() - t0)
    print(f"data_fingerprint: {len(data.train)} training scenes "
          f"{sorted({s.shape for s in data.train})}, {nbytes / 2**20:.0f} MiB: "
          f"median {1000 * statistics.median(times):.0f} ms over {args.repeats}")

    kwargs = {"encoder": args.encoder, "encoder_weights": None} if "smp" in args.model else {}
    model = build_model(args.model, in_channels=5, num_classes=6, **kwargs)
    cfg = TrainConfig(optimizer="sgd", momentum=0.9)
    opt = build_optimizer(model, cfg)
    x = torch.randn(2, 5, 64, 64)
    model(x).sum().backward()
    opt.step()  # creates the momentum buffers
    state = TrainState(model=model, loss_fn=torch.nn.Identity(), optimizer=opt, cfg=cfg,
                       device=torch.device("cpu"), dataset=None, epoch=0)
    root = paths.runs_dir()
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".bench-") as tmp:
        ck = Path(tmp) / "checkpoint.pt"
        writes = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            _save_checkpoint(ck, state, None, 0.0)
            os.sync()
            writes.append(time.perf_counter() - t0)
        size = ck.stat().st_size
    w = statistics.median(writes)
    print(f"checkpoint write ({args.model}/{args.encoder}, SGD momentum): {size / 2**20:.0f} "
          f"MiB, median {w:.2f} s (min {min(writes):.2f}, max {max(writes):.2f}) incl. sync, "
          f"to {root}")
    e = args.epoch_seconds
    print(f"with {e:g} s epochs: a write after every epoch costs {100 * w / e:.1f} % of "
          "training")
    for epochs in (8, 50):
        p = CheckpointPolicy(state_bytes=size)
        due = []
        for ep in range(epochs - 1):  # the run store writes model.pt after the final epoch
            if p.due(ep, e, last=False):
                due.append(ep)
                p.wrote(w)
        print(f"  run store (adaptive policy), {epochs} epochs: checkpoints after epochs "
              f"{due} -> {100 * len(due) * w / (epochs * e):.2f} % of training (one per "
              f"epoch: {100 * (epochs - 1) * w / (epochs * e):.1f} %)")


if __name__ == "__main__":
    main()
