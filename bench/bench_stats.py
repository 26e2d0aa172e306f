"""The statistics rule's cost: paired bootstrap, per-method intervals, per-block counting.

Usage: .venv/bin/python bench/bench_stats.py [--resamples 2000]

(1) :func:`aerialseg.stats.paired_bootstrap` (seeds x blocks, 6 classes) for typical sizes:
    synthetic default (3 scenes of 512 px, 128-px blocks: 48 blocks), Vaihingen-like (5 areas,
    ~1480 blocks of 128 px), Potsdam-like (14 tiles of 6000 px, 512-px blocks: ~2000).
(2) :func:`aerialseg.stats.interval_frame` for one method (all per-class F1 and the overall
    scores from one resampling).
(3) The per-block counting of :class:`aerialseg.evaluation.Accumulator` against the pooled
    :class:`aerialseg.metrics.ConfusionMatrix` update it replaced, on one 6000² scene.
(4) Size of ``block_confusion`` for 20 methods x 3 seeds x 2 protocols (raw and zlib).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import xarray as xr

from aerialseg import stats
from aerialseg.data.classes import ISPRS
from aerialseg.evaluation import Accumulator
from aerialseg.metrics import ConfusionMatrix

NAMES = list(ISPRS.names)
EV = list(ISPRS.evaluated)


def realistic_blocks(rng: np.random.Generator, n: int, side: int = 128) -> np.ndarray:
    """(n, 6, 6) counts: 1-3 classes per block, 90 % right."""
    out = np.zeros((n, 6, 6), np.int64)
    for b in range(n):
        k = rng.integers(1, 4)
        cls = rng.choice(6, k, replace=False)
        pix = (rng.dirichlet(np.ones(k)) * side * side * rng.uniform(0.6, 1)).astype(int)
        for c, m in zip(cls, pix, strict=True):
            wrong = rng.binomial(m, 0.1)
            out[b, c, c] += m - wrong
            out[b, c, rng.choice(cls)] += wrong
    return out


def runs(rng: np.random.Generator, seeds: int, base: np.ndarray) -> np.ndarray:
    noise = rng.integers(-50, 50, (seeds, *base.shape)) * (base > 0)
    return np.clip(base[None] + noise, 0, None)


def best_of(f, n: int = 3) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resamples", type=int, default=stats.N_RESAMPLES)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    print(f"(1) paired bootstrap, {args.resamples} resamples")
    for label, seeds, nb in (("synthetic default", 3, 48), ("Vaihingen-like", 3, 1480),
                             ("Potsdam-like", 5, 2000)):
        base = realistic_blocks(rng, nb)
        a, b = runs(rng, seeds, base), runs(rng, seeds, base)
        for cls in ("car", "overall"):
            t = best_of(lambda a=a, b=b, cls=cls: stats.paired_bootstrap(
                a, b, metric="f1", cls=cls, classes=NAMES, evaluated=EV,
                n_resamples=args.resamples))
            print(f"    {label:18s} {seeds} seeds x {nb:4d} blocks, {cls:7s} F1: {t:.3f} s")
    print("(2) interval_frame, one method, 5 per-class F1 + mean F1/mIoU/OA")
    base = realistic_blocks(rng, 1480)
    blocks = runs(rng, 3, base)
    ds = xr.Dataset(
        {"confusion": (("method", "seed", "protocol", "truth", "pred"),
                       blocks.sum(1)[None, :, None]),
         "block_confusion": (("method", "seed", "protocol", "block", "truth", "pred"),
                             blocks[None, :, None]),
         "scores": (("method", "seed", "protocol", "class", "metric"),
                    np.zeros((1, 3, 1, 7, 1)))},
        coords={"method": ["m"], "seed": [0, 1, 2], "protocol": ["eroded"],
                "truth": NAMES, "pred": NAMES, "class": [*NAMES, "overall"],
                "metric": ["f1"], "evaluated": ("class", [True] * 5 + [False, True])})
    t = best_of(lambda: stats.interval_frame(ds, n_resamples=args.resamples))
    print(f"    3 seeds x 1480 blocks: {t:.3f} s")
    print("(3) counting one 6000² scene (80 % of the pixels evaluated)")
    truth = rng.integers(0, 6, (6000, 6000))
    pred = rng.integers(0, 6, (6000, 6000))
    mask = rng.random((6000, 6000)) < 0.8
    acc = Accumulator(ISPRS)
    t_blocks = best_of(lambda: acc._count("full", pred, truth, mask), 2)
    t_pooled = best_of(lambda: ConfusionMatrix(6).update(pred, truth, mask), 2)
    print(f"    per-block ({acc.block_size}-px) counts {t_blocks:.2f} s; pooled matrix only "
          f"{t_pooled:.2f} s")
    print("(4) block_confusion of 20 methods x 3 seeds x 2 protocols (uint32)")
    with tempfile.TemporaryDirectory() as tmp:
        for label, nb in (("synthetic default", 48), ("Vaihingen-like 128 px", 1480),
                          ("Vaihingen-like 256 px", 380)):
            base = realistic_blocks(rng, nb)
            arr = np.stack([[runs(rng, 2, base) for _ in range(3)] for _ in range(20)])
            arr = arr.astype(np.uint32)
            path = os.path.join(tmp, "b.nc")
            xr.Dataset({"block_confusion": (("method", "seed", "protocol", "block", "truth",
                                             "pred"), arr)}).to_netcdf(
                path, encoding={"block_confusion": {"zlib": True, "complevel": 4}})
            print(f"    {label:22s} {nb:4d} blocks: raw {arr.nbytes / 1e6:5.1f} MB, in the "
                  f"file {os.path.getsize(path) / 1e6:5.2f} MB")


if __name__ == "__main__":
    main()
