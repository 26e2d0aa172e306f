"""Cost of U-CE's extra no-grad MC passes per training step, batched vs one by one.

Usage: ``.venv/bin/python bench/bench_uce_mc.py [--profile default --T 3 --reps 3
--device cpu]``. Builds the U-CE model of the profile (random weights) and a random batch of
the profile's batch size and crop, then times (best of ``reps``): a training step (forward,
backward, SGD); T train-mode passes one by one (as U-CE's code runs them); T passes batched
with grouped BatchNorm, with the trunk split (the library's default) and without it.
"""

from __future__ import annotations

import argparse
import time

import torch

from aerialseg.losses.uce import UncertaintyAwareCE
from aerialseg.models.mc import mc_forward, mc_train_probs
from aerialseg.models.registry import build_model
from aerialseg.registry import resolve_run


def best_of(fn, reps: int, device: torch.device) -> float:
    fn()  # warm-up (allocator, kernel selection)
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--profile", default="default")
    p.add_argument("--T", type=int, default=None, help="MC passes (default: the profile's)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    cfg = resolve_run("uce_a10", profile=args.profile, in_bands=("ir", "r", "g", "dsm", "ndsm"),
                      data={})
    T = args.T or cfg.loss_kwargs["uce_mc_samples"]
    b, c = cfg.train.batch_size, cfg.train.crop_size
    torch.manual_seed(0)
    model = build_model(cfg.model, in_channels=5, num_classes=6, **cfg.model_kwargs).to(device)
    x = torch.randn(b, 5, c, c, device=device)
    y = torch.randint(0, 6, (b, c, c), device=device)
    loss_fn = UncertaintyAwareCE(10.0)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    u = torch.zeros(b, c, c, device=device)
    amp = device.type == "cuda"

    def step() -> None:
        model.train()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        loss = loss_fn(logits.float(), y, {"uncertainty": u})
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def passes(fn):
        def run() -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                fn()
        return run

    t_step = best_of(step, args.reps, device)
    t_loop = best_of(passes(lambda: mc_forward(model, x, T, bn="train")), args.reps, device)
    t_split = best_of(passes(lambda: mc_train_probs(model, x, T)), args.reps, device)
    t_stack = best_of(passes(lambda: mc_train_probs(model, x, T, split=False)), args.reps,
                      device)
    print(f"profile {args.profile}: batch {b} x {c} px, T = {T}, device {device}, "
          f"{torch.get_num_threads()} CPU threads")
    print(f"  training step (fwd+bwd+SGD)      {t_step * 1e3:8.1f} ms")
    print(f"  T passes one by one (U-CE code)  {t_loop * 1e3:8.1f} ms  "
          f"(+{100 * t_loop / t_step:.0f} % of a step)")
    print(f"  T passes batched, trunk once     {t_split * 1e3:8.1f} ms  "
          f"(+{100 * t_split / t_step:.0f} % of a step, {t_loop / t_split:.2f}x vs loop)")
    print(f"  T passes batched, no split       {t_stack * 1e3:8.1f} ms  "
          f"({t_loop / t_stack:.2f}x vs loop)")


if __name__ == "__main__":
    main()
