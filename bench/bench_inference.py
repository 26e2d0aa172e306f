"""Whole-scene inference: bounded memory, tiled == whole, and MC-dropout cost per model.

Usage: .venv/bin/python bench/bench_inference.py [--sizes 2000 6000] [--tile 512] [--T 10]

(1) Peak memory of tiled prediction of a small FCN on scenes of the given sizes: the part
    that grows with the scene must be the output arrays only (C x H x W float32 + weights).
    Peak RSS is measured in a fresh subprocess per size.
(2) Tiled (halo) output vs. one whole-image pass for the fully convolutional models.
(3) MC dropout: T samples with the trunk/head split vs. one deterministic pass vs. T naive
    passes, for every model of the study that has dropout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
import torch

from aerialseg.inference import predict_scene
from aerialseg.models.mc import enable_mc_dropout, mc_forward
from aerialseg.models.registry import build_model


def _peak_rss_child(size: int, tile: int) -> None:
    import resource

    torch.set_num_threads(2)
    model = build_model("fcn", in_channels=5, num_classes=6, widths=(8, 16, 32, 64)).eval()
    # float32 from the start: a float64 temporary would set the peak before prediction
    img = np.random.default_rng(0).standard_normal((5, size, size), dtype=np.float32)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t = time.perf_counter()
    out = predict_scene(model, img, tile=tile, overlap=64)
    secs = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"size": size, "peak_rss": peak, "rss_before_predict": base,
                      "output_bytes": out["probs"].nbytes + size * size * 4, "seconds": secs}))


def memory(sizes: list[int], tile: int) -> None:
    print("== (1) tiled prediction memory (FCN widths 8..64, 5 bands, 6 classes)")
    rows = []
    for s in sizes:
        res = subprocess.run([sys.executable, __file__, "--child", str(s), "--tile", str(tile)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    for r in rows:
        grown = (r["peak_rss"] - r["rss_before_predict"]) / 2**20
        print(f"  {r['size']:>5} px: peak RSS {r['peak_rss'] / 2**20:7.0f} MiB, growth during "
              f"predict {grown:7.0f} MiB, output arrays {r['output_bytes'] / 2**20:6.0f} MiB, "
              f"{r['seconds']:.1f} s")
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        extra = ((b["peak_rss"] - b["rss_before_predict"]) - b["output_bytes"]) - (
            (a["peak_rss"] - a["rss_before_predict"]) - a["output_bytes"])
        print(f"  growth beyond the output arrays from {a['size']} to {b['size']} px: "
              f"{extra / 2**20:.0f} MiB (target: about 0)")


def tiled_vs_whole(tile: int) -> None:
    print("== (2) halo-tiled vs whole-image output (eval mode)")
    torch.manual_seed(0)
    img = np.random.default_rng(1).normal(size=(5, 300, 260)).astype(np.float32)
    model = build_model("fcn", in_channels=5, num_classes=6, widths=(8, 16, 32, 64)).eval()
    whole = predict_scene(model, img, tile=4096)["probs"]
    tiled = predict_scene(model, img, tile=tile // 2, overlap=96)["probs"]
    print(f"  fcn        max |tiled - whole| = {np.abs(whole - tiled).max():.2e} "
          f"(halo 96 px, tile {tile // 2} px)")
    from aerialseg.models.patch_cnn import predict_dense

    pb = build_model("patch_cnn", in_channels=5, num_classes=6, fc_width=16,
                     conv_widths=(4, 4, 4, 4)).eval()
    x = torch.from_numpy(img)
    whole = predict_dense(pb, x, border_mode="reflect", tile=4096).numpy()
    tiled = predict_dense(pb, x, border_mode="reflect", tile=64).numpy()
    print(f"  patch_cnn  max |tiled - whole| = {np.abs(whole - tiled).max():.2e} "
          "(32 px halo, 64 px tiles)")


def mc_cost(T: int) -> None:
    print(f"== (3) MC dropout, T={T}, one 256x256 5-band tile, CPU")
    x = torch.randn(1, 5, 256, 256)
    cases = [("fcn", {"widths": (32, 64, 128, 256)}),
             ("smp_deeplabv3plus", {"encoder": "resnet18", "encoder_dropout": 0.2}),
             ("smp_unet", {"encoder": "resnet18", "encoder_dropout": 0.2}),
             ("patch_cnn", {})]
    for name, kw in cases:
        try:
            model = build_model(name, in_channels=5, num_classes=6, **kw).eval()
        except (ImportError, ModuleNotFoundError) as exc:
            print(f"  {name}: skipped ({exc})")
            continue
        xin = x if name != "patch_cnn" else torch.randn(1, 5, 128 + 64, 128 + 64)
        with torch.no_grad():
            model(xin)  # warm-up (and patch CNN kernel spectra)
            t = time.perf_counter()
            model(xin)
            one = time.perf_counter() - t
            enable_mc_dropout(model)
            t = time.perf_counter()
            mc_forward(model, xin, T)
            split = time.perf_counter() - t
            t = time.perf_counter()
            for _ in range(T):
                model(xin)
            naive = time.perf_counter() - t
        print(f"  {name:18s} one pass {one:6.2f} s | T samples with split {split:6.2f} s "
              f"({split / one:4.1f}x) | naive {naive:6.2f} s ({naive / one:4.1f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[2000, 6000])
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--T", type=int, default=10)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        _peak_rss_child(args.child, args.tile)
        return
    torch.set_num_threads(2)
    memory(args.sizes, args.tile)
    tiled_vs_whole(args.tile)
    mc_cost(args.T)


if __name__ == "__main__":
    main()
