"""Milliseconds per call (forward + backward) of each loss on a (B, C, H, W) batch on CPU.

Usage: ``.venv/bin/python bench/bench_losses.py [--batch 8 --classes 6 --size 256 --reps 3]``.
Distance-based losses are timed with maps computed on the fly and with precomputed ``aux``.
"""

from __future__ import annotations

import argparse
import time

import torch

from aerialseg.losses.distance import (
    BoundaryObjective,
    KervadecBoundaryLoss,
    LossdLoss,
    LossdObjective,
    signed_distance_maps,
)
from aerialseg.losses.efm import efm_map
from aerialseg.losses.registry import build_loss


def blob_labels(b: int, c: int, size: int, seed: int = 0) -> torch.Tensor:
    """Aerial-like labels: argmax of smoothed noise (regions tens of px wide), 2% ignore."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(b, c, size // 16, size // 16, generator=g)
    up = torch.nn.functional.interpolate(noise, size=(size, size), mode="bicubic",
                                         align_corners=False)
    target = up.argmax(1)
    target[torch.rand(b, size, size, generator=g) < 0.02] = 255
    return target


def timeit(fn, reps: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps * 1e3


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--classes", type=int, default=6)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--max-iter", type=int, default=50)
    a = p.parse_args()
    b, c, s = a.batch, a.classes, a.size
    torch.manual_seed(0)
    logits = torch.randn(b, c, s, s, requires_grad=True)
    target = blob_labels(b, c, s)
    unc = torch.rand(b, s, s)
    efm = efm_map(logits.detach().softmax(1), target)

    def run(loss, aux=None):
        def step():
            logits.grad = None
            loss(logits, target, aux).backward()
        return step

    lossd = LossdLoss(c, max_iter=a.max_iter)
    kerv = KervadecBoundaryLoss(c)
    lossd_aux = lossd.precompute(target)
    kerv_aux = kerv.precompute(target)
    lossd_obj = LossdObjective(c, max_iter=a.max_iter)
    bound_obj = BoundaryObjective(c)
    bound_obj.set_epoch(50)
    cases = {
        "ce": (build_loss("ce"), None),
        "ce_dice": (build_loss("ce_dice"), None),
        "uce (alpha=10)": (build_loss("uce"), {"uncertainty": unc}),
        "efm cached, topk 0.5": (build_loss("efm", num_classes=c), {"efm": efm}),
        "efm cached, topk 1.0": (build_loss("efm", num_classes=c, topk_fraction=1.0),
                                 {"efm": efm}),
        "efm online_batch": (build_loss("efm", num_classes=c, efm_source="online_batch"), None),
        f"lossd (max_iter={a.max_iter}) on the fly": (lossd, None),
        "lossd, precomputed aux": (lossd, lossd_aux),
        "lossd objective (CE+Dice+Lossd), aux": (lossd_obj, lossd_aux),
        "kervadec boundary, on the fly": (kerv, None),
        "kervadec boundary, precomputed aux": (kerv, kerv_aux),
        "boundary objective (alpha<1), aux": (bound_obj, kerv_aux),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch "
          f"({b}, {c}, {s}, {s}), forward+backward, mean of {a.reps}")
    for name, (loss, aux) in cases.items():
        print(f"{name:42s} {timeit(run(loss, aux), a.reps):9.1f} ms")
    t = timeit(lambda: signed_distance_maps(target, c, a.max_iter), a.reps)
    print(f"{'signed_distance_maps alone':42s} {t:9.1f} ms")
    t = timeit(lambda: kerv.precompute(target), a.reps)
    print(f"{'kervadec_distance_maps alone':42s} {t:9.1f} ms")


if __name__ == "__main__":
    main()
