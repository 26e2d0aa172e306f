"""Milliseconds per call (forward + backward) of each loss on a (B, C, H, W) batch on CPU.

Usage: ``.venv/bin/python bench/bench_losses.py [--batch 8 --classes 6 --size 256 --reps 5]
[--threads 1] [--against REV]``.

Distance-based losses are timed with maps computed on the fly and with precomputed ``aux``.
``--threads`` defaults to 1, the book's setting on its 2-core machine (see
``aerialseg.threads``; ``OMP_WAIT_POLICY`` is passive unless set). Each figure is the median
of ``--reps`` calls after one warm-up call.

``--against REV`` (e.g. ``c91a979``, the code before issue 15's speed-ups) also loads
``src/aerialseg/losses/`` as it was at git revision REV and times the changed losses of both
versions in alternation (A, B, B, A, ...), printing both medians and the speed-up old/new: a
ratio that holds up on a machine shared with other jobs, where absolute times do not.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aerialseg.threads import configure_threads, describe

_early = argparse.ArgumentParser(add_help=False)
_early.add_argument("--threads", default="1")
THREADS = configure_threads(_early.parse_known_args()[0].threads)  # before torch loads OpenMP

import torch  # noqa: E402

from aerialseg.losses.distance import (  # noqa: E402
    BoundaryObjective,
    KervadecBoundaryLoss,
    LossdLoss,
    LossdObjective,
    signed_distance_maps,
)
from aerialseg.losses.efm import boundary_weight, efm_map  # noqa: E402
from aerialseg.losses.registry import build_loss  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def blob_labels(b: int, c: int, size: int, seed: int = 0) -> torch.Tensor:
    """Aerial-like labels: argmax of smoothed noise (regions tens of px wide), 2% ignore."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(b, c, size // 16, size // 16, generator=g)
    up = torch.nn.functional.interpolate(noise, size=(size, size), mode="bicubic",
                                         align_corners=False)
    target = up.argmax(1)
    target[torch.rand(b, size, size, generator=g) < 0.02] = 255
    return target


def median_ms(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def alternating_ms(fa, fb, reps: int) -> tuple[float, float]:
    """Medians of ``fa`` and ``fb`` timed in alternation (ABBA...), after a warm-up each."""
    fa()
    fb()
    ta, tb = [], []
    for i in range(reps):
        order = ((fa, ta), (fb, tb)) if i % 2 == 0 else ((fb, tb), (fa, ta))
        for fn, acc in order:
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    return statistics.median(ta) * 1e3, statistics.median(tb) * 1e3


def load_losses_at(rev: str):
    """``aerialseg.losses`` as of git revision ``rev``, importable as ``aerialseg_losses_<rev>``.

    The modules' imports of each other are redirected to the old copies (old EFM uses old
    Dice); everything else (``aerialseg.data.classes``) comes from the working tree.
    """
    pkg = f"aerialseg_losses_{rev.replace('-', '_').replace('.', '_')}"
    folder = Path(tempfile.mkdtemp(prefix="bench_losses_")) / pkg
    folder.mkdir()
    names = subprocess.run(["git", "ls-tree", "--name-only", f"{rev}:src/aerialseg/losses"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in names:
        if name.endswith(".py"):
            src = subprocess.run(["git", "show", f"{rev}:src/aerialseg/losses/{name}"],
                                 cwd=ROOT, capture_output=True, text=True, check=True).stdout
            (folder / name).write_text(src.replace("aerialseg.losses.", f"{pkg}."))
    sys.path.insert(0, str(folder.parent))
    return {m: importlib.import_module(f"{pkg}.{m}") for m in ("dice", "efm", "distance")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--classes", type=int, default=6)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--max-iter", type=int, default=50)
    p.add_argument("--threads", default="1", help="CPU threads (default 1: the book's setting)")
    p.add_argument("--against", default=None, metavar="REV",
                   help="also time the losses of git revision REV, alternating with these")
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
    print(f"torch {torch.__version__}, {describe(THREADS)}; batch ({b}, {c}, {s}, {s}), "
          f"forward+backward, median of {a.reps}")
    for name, (loss, aux) in cases.items():
        print(f"{name:42s} {median_ms(run(loss, aux), a.reps):9.1f} ms")
    t = median_ms(lambda: signed_distance_maps(target, c, a.max_iter), a.reps)
    print(f"{'signed_distance_maps alone':42s} {t:9.1f} ms")
    t = median_ms(lambda: kerv.precompute(target), a.reps)
    print(f"{'kervadec_distance_maps alone':42s} {t:9.1f} ms")
    t = median_ms(lambda: boundary_weight(target, num_classes=c), a.reps)
    print(f"{'efm boundary_weight alone (no grad)':42s} {t:9.1f} ms")
    if a.against:
        compare(a, logits, target, efm, lossd_aux, kerv_aux, run)


def compare(a, logits, target, efm, lossd_aux, kerv_aux, run) -> None:
    old = load_losses_at(a.against)
    c = a.classes
    od, oe, ox = old["dice"], old["efm"], old["distance"]
    from aerialseg.losses import dice as nd
    from aerialseg.losses import distance as nx
    from aerialseg.losses import efm as ne

    def objective(cls):
        obj = cls(c, max_iter=a.max_iter) if cls.__name__ == "LossdObjective" else cls(c)
        if hasattr(obj, "alpha"):
            obj.set_epoch(50)
        return obj

    pairs = {
        "dice (SoftDiceLoss)": (nd.SoftDiceLoss(), od.SoftDiceLoss(), None),
        "ce_dice": (nd.CEDiceLoss(), od.CEDiceLoss(), None),
        "efm cached, topk 0.5": (ne.EFMLoss(c), oe.EFMLoss(c), {"efm": efm}),
        "lossd, precomputed aux": (nx.LossdLoss(c, max_iter=a.max_iter),
                                   ox.LossdLoss(c, max_iter=a.max_iter), lossd_aux),
        "lossd objective (CE+Dice+Lossd), aux": (objective(nx.LossdObjective),
                                                 objective(ox.LossdObjective), lossd_aux),
        "kervadec boundary, precomputed aux": (nx.KervadecBoundaryLoss(c),
                                               ox.KervadecBoundaryLoss(c), kerv_aux),
        "boundary objective (alpha<1), aux": (objective(nx.BoundaryObjective),
                                              objective(ox.BoundaryObjective), kerv_aux),
    }
    print(f"\nthis tree vs {a.against} (alternating, median of {a.reps} each, forward+backward)")
    print(f"{'':42s} {'new ms':>9s} {'old ms':>9s} {'speed-up':>9s}")
    for name, (new, ref, aux) in pairs.items():
        tn, to = alternating_ms(run(new, aux), run(ref, aux), a.reps)
        print(f"{name:42s} {tn:9.1f} {to:9.1f} {to / tn:8.2f}x")
    tn, to = alternating_ms(lambda: ne.boundary_weight(target, num_classes=c),
                            lambda: oe.boundary_weight(target, num_classes=c), a.reps)
    print(f"{'efm boundary_weight alone (no grad)':42s} {tn:9.1f} {to:9.1f} {to / tn:8.2f}x")


if __name__ == "__main__":
    main()
