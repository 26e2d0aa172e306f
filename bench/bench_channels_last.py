"""Training step with channels_last (model and inputs) vs the default layout, per model, CPU.

Usage: .venv/bin/python bench/bench_channels_last.py [--models ...] [--reps 7] [--threads 1]

For every model of the book (bench/_steps.py: the default profile's batch and crop, random
weights and data), both layouts are built with the same seed and timed in alternation (ABBA..)
after two warm-up steps each; the table shows the median wall and CPU seconds per step and
the speed-ups default / channels_last; the verdict ("faster" beyond 5 %) uses CPU time, which
other jobs on the machine disturb less than wall time (at 1 thread the two agree when idle).
``aerialseg.perf.prefers_channels_last`` holds the verdicts of the committed runs. Threads
default to 1, the book's setting.
"""

from __future__ import annotations

import argparse
import statistics
import time

from aerialseg.threads import configure_threads, describe

_early = argparse.ArgumentParser(add_help=False)
_early.add_argument("--threads", default="1")
THREADS = configure_threads(_early.parse_known_args()[0].threads)  # before torch loads OpenMP

import torch  # noqa: E402
from _steps import CASES, make_step  # noqa: E402

THRESHOLD = 0.05


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(CASES))
    ap.add_argument("--reps", type=int, default=7, help="timed steps per layout")
    ap.add_argument("--threads", default="1")
    ap.add_argument("--batch", type=int, default=None, help="override the profile's batch")
    ap.add_argument("--crop", type=int, default=None, help="override the profile's crop")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {describe(THREADS)}; median of {args.reps} alternating "
          "training steps per layout")
    print(f"{'':31s} {'--------- wall time ---------':29s} {'---------- CPU time ----------':30s}")
    print(f"{'model':18s} {'batch x crop':>12s} {'default s':>9s} {'ch_last s':>9s} "
          f"{'speed-up':>8s} {'default s':>9s} {'ch_last s':>9s} {'speed-up':>8s}  verdict")
    for name in args.models:
        _, _, batch, crop = CASES[name]
        batch, crop = args.batch or batch, args.crop or crop
        steps = {cl: make_step(name, channels_last=cl, batch=batch, crop=crop)
                 for cl in (False, True)}
        wall: dict[bool, list[float]] = {False: [], True: []}
        cpu: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(2):
            for cl in (False, True):
                steps[cl]()
        for i in range(args.reps):
            for cl in ((False, True) if i % 2 == 0 else (True, False)):
                t, c = time.perf_counter(), time.process_time()
                steps[cl]()
                wall[cl].append(time.perf_counter() - t)
                cpu[cl].append(time.process_time() - c)
        d, cl_ = statistics.median(wall[False]), statistics.median(wall[True])
        cd, ccl = statistics.median(cpu[False]), statistics.median(cpu[True])
        ratio = cd / ccl  # CPU time: steadier than wall time when other jobs share the cores
        verdict = ("faster" if ratio > 1 + THRESHOLD else
                   "slower" if ratio < 1 / (1 + THRESHOLD) else "same (within 5 %)")
        print(f"{name:18s} {f'{batch} x {crop}':>12s} {d:9.3f} {cl_:9.3f} {d / cl_:7.2f}x "
              f"{cd:9.3f} {ccl:9.3f} {ratio:7.2f}x  {verdict}", flush=True)

if __name__ == "__main__":
    main()
