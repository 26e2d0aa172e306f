"""Training-step time at 1 and 2 threads, idle vs one busy core, OpenMP waiting active vs passive.

Usage: .venv/bin/python bench/bench_threads.py [--models fcn smp_fpn] [--threads 1 2]
       [--policies passive active unset] [--loads idle busy] [--steps 3] [--rounds 2]
       [--batch N] [--crop N]

Each configuration runs in a fresh subprocess whose environment sets ``OMP_NUM_THREADS``,
``MKL_NUM_THREADS`` and ``OMP_WAIT_POLICY`` before torch (and its OpenMP runtime) starts:
``passive``/``active`` set the variable, ``unset`` leaves it out (libgomp's default: spin for
a while, then sleep). "busy" starts one extra process spinning in a Python loop for the
duration of that configuration (one core taken by another job). A subprocess builds the
model (bench/_steps.py: the default profile's batch and crop), runs one warm-up step, then
``--steps`` timed steps; configurations are interleaved over ``--rounds`` rounds (the order
reversed every other round) and the table shows the median step time over all timed steps,
the CPU seconds per step of the child (spinning shows as CPU time > wall time), and the
ratio to the 1-thread passive run under the same load.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(spec: dict) -> None:
    import torch

    sys.path.insert(0, str(HERE))
    from _steps import make_step

    torch.set_num_threads(spec["threads"])
    step = make_step(spec["model"], batch=spec.get("batch"), crop=spec.get("crop"))
    step()  # warm-up (allocator, OpenMP thread pool)
    wall, cpu = [], []
    for _ in range(spec["steps"]):
        t, c = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    print(json.dumps({"wall": wall, "cpu": cpu, "torch_threads": torch.get_num_threads(),
                      "policy": os.environ.get("OMP_WAIT_POLICY", "unset")}))


def child_env(threads: int, policy: str) -> dict[str, str]:
    from aerialseg.threads import thread_env

    env = {**os.environ, **thread_env(threads, wait_policy=policy if policy != "unset" else
                                      "passive", origin="bench_threads")}
    if policy == "unset":
        env.pop("OMP_WAIT_POLICY")
    return env


def run_config(spec: dict, load: str) -> dict:
    busy = None
    if load == "busy":
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.3)
    try:
        res = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                             capture_output=True, text=True,
                             env=child_env(spec["threads"], spec["policy"]))
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    if res.returncode != 0:
        raise RuntimeError(f"child {spec} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=["fcn", "smp_fpn"])
    ap.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--policies", nargs="*", default=["passive", "active", "unset"],
                    choices=["passive", "active", "unset"])
    ap.add_argument("--loads", nargs="*", default=["idle", "busy"], choices=["idle", "busy"])
    ap.add_argument("--steps", type=int, default=3, help="timed steps per subprocess")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    ap.add_argument("--batch", type=int, default=None, help="override the profile's batch")
    ap.add_argument("--crop", type=int, default=None, help="override the profile's crop")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    configs = list(itertools.product(args.models, args.loads, args.threads, args.policies))
    results: dict[tuple, dict[str, list[float]]] = {c: {"wall": [], "cpu": []} for c in configs}
    print(f"{os.cpu_count()} logical CPUs; {len(configs)} configurations x {args.rounds} rounds "
          f"x {args.steps} steps", flush=True)
    for r in range(args.rounds):
        for cfg in configs if r % 2 == 0 else configs[::-1]:
            model, load, threads, policy = cfg
            spec = {"model": model, "threads": threads, "policy": policy, "steps": args.steps,
                    "batch": args.batch, "crop": args.crop}
            out = run_config(spec, load)
            assert out["torch_threads"] == threads, out
            results[cfg]["wall"] += out["wall"]
            results[cfg]["cpu"] += out["cpu"]
        print(f"  round {r + 1}/{args.rounds} done", flush=True)
    print(f"\n{'model':18s} {'load':5s} {'thr':>3s} {'OMP_WAIT_POLICY':15s} {'s/step':>7s} "
          f"{'CPU s/step':>10s} {'vs 1 thr passive':>16s}")
    for cfg in configs:
        model, load, threads, policy = cfg
        wall = statistics.median(results[cfg]["wall"])
        cpu = statistics.median(results[cfg]["cpu"])
        base = results.get((model, load, 1, "passive"))
        rel = f"{wall / statistics.median(base['wall']):15.2f}x" if base else f"{'':>16s}"
        print(f"{model:18s} {load:5s} {threads:3d} {policy:15s} {wall:7.2f} {cpu:10.2f} {rel}")


if __name__ == "__main__":
    main()
