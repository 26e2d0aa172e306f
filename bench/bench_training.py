"""Training step: share of time spent loading data (default profile), per method.

Usage: .venv/bin/python bench/bench_training.py [--methods fcn fcn_mfb] [--epochs 2]

Trains each method for a couple of epochs on the synthetic default data (profile default,
its batch size and crop) in a temporary run store and reports, from the training history,
the seconds per epoch and the fraction spent waiting for batches. Target: data < 10 %.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="*", default=["fcn", "fcn_mfb"])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--profile", default="default")
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.environ["AERIALSEG_RUNS"] = tempfile.mkdtemp(prefix="bench_runs_")
    from aerialseg.data.registry import data_config, load_split
    from aerialseg.registry import resolve_run
    from aerialseg.runs import get_or_train

    data = load_split(data_config("synthetic", args.profile))
    print(f"profile {args.profile}, {len(data.train)} training scenes, CPU "
          f"{torch.get_num_threads()} threads")
    for m in args.methods:
        cfg = resolve_run(m, profile=args.profile, in_bands=data.bands,
                          data=data.cfg.to_dict(), epochs=args.epochs)
        run = get_or_train(cfg, data, log=None)
        secs = sum(h["seconds"] for h in run.history)
        data_s = sum(h["data_seconds"] for h in run.history)
        steps = args.epochs * -(-(cfg.train.samples_per_epoch or 1) // cfg.train.batch_size)
        print(f"  {m:20s} {secs / args.epochs:6.1f} s/epoch, {secs / steps:5.2f} s/step, "
              f"data loading {100 * data_s / secs:4.1f} % of training time")


if __name__ == "__main__":
    main()
