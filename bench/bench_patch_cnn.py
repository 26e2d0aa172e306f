"""Patch CNN: per-patch vs dense (FFT fc1 / direct fc1) throughput, and MC-dropout cost.

Usage: .venv/bin/python bench/bench_patch_cnn.py [--tile 512] [--direct-tile 128]
       [--patches 256] [--batch 64] [--mc-tile 256] [--T 10] [--threads 2]

Default model widths (≈ 28.1 M parameters), random weights, random 5-band image, CPU.
Targets (DESIGN.md "Performance notes"): dense FFT >= 500x per-patch pixels/s;
T=10 MC samples via mc_split <= 1.5x one deterministic pass.
"""

from __future__ import annotations

import argparse
import time

import torch

from aerialseg.models.mc import mc_forward
from aerialseg.models.patch_cnn import build_patch_cnn, predict_dense


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tile", type=int, default=512, help="dense FFT tile side (output px)")
    ap.add_argument("--direct-tile", type=int, default=128,
                    help="tile side for the direct dense fc1 (27.5 M MAC/px: keep it small)")
    ap.add_argument("--patches", type=int, default=256, help="patches classified one by one")
    ap.add_argument("--batch", type=int, default=64, help="batch size of per-patch mode")
    ap.add_argument("--mc-tile", type=int, default=256, help="tile side for the MC timing")
    ap.add_argument("--T", type=int, default=10, help="MC samples")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_patch_cnn(in_channels=5, num_classes=6).eval()
    halo = model.halo
    n = args.tile
    image = torch.randn(5, n, n)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; "
          f"params {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M; "
          f"fc1 FFT size {model.fc1.fft_size} (blocks of {model.fc1.block} px)")

    # (a) dense FFT: first call includes the kernel spectrum (cached afterwards).
    _, t_cold = timed(lambda: predict_dense(model, image, tile=n))
    probs, t_fft = timed(lambda: predict_dense(model, image, tile=n))
    fft_pps = n * n / t_fft
    print(f"dense FFT   {n}x{n}: {t_fft:7.2f} s  {fft_pps:10.0f} px/s  "
          f"(first call incl. kernel spectrum {t_cold:.2f} s)")

    # Per-patch: random pixels, each 65x65 patch classified on its own (fc1 = 41x41 matmul).
    padded = torch.nn.functional.pad(image[None], (halo,) * 4, mode="reflect")[0]
    g = torch.Generator().manual_seed(1)
    ij = torch.randint(0, n, (args.patches, 2), generator=g)
    patches = torch.stack([padded[:, i:i + 2 * halo + 1, j:j + 2 * halo + 1] for i, j in ij])
    with torch.no_grad():
        model(patches[: args.batch])  # warm-up

        def per_patch() -> torch.Tensor:
            out = [torch.softmax(model(patches[s:s + args.batch]), 1)[:, :, 0, 0]
                   for s in range(0, len(patches), args.batch)]
            return torch.cat(out)

        pp, t_pp = timed(per_patch)
    pp_pps = len(patches) / t_pp
    dense_at = probs[0][:, ij[:, 0], ij[:, 1]].T
    print(f"per-patch   {len(patches)} patches (batch {args.batch}): {t_pp:7.2f} s  "
          f"{pp_pps:10.1f} px/s")

    # Dense direct fc1 on a smaller tile (same image, top-left corner).
    d = min(args.direct_tile, n)
    model.fc1_mode = "direct"
    probs_d, t_dir = timed(lambda: predict_dense(model, image[:, :d, :d], tile=d))
    model.fc1_mode = "auto"
    dir_pps = d * d / t_dir
    # The FFT result on the same crop (same reflect-padded input).
    probs_f = predict_dense(model, image[:, :d, :d], tile=d)
    print(f"dense direct {d}x{d}: {t_dir:7.2f} s  {dir_pps:10.0f} px/s")
    print(f"speed-up dense FFT / per-patch:    {fft_pps / pp_pps:8.0f}x  (target >= 500x)")
    print(f"speed-up dense direct / per-patch: {dir_pps / pp_pps:8.0f}x")
    print(f"speed-up dense FFT / dense direct: {fft_pps / dir_pps:8.1f}x")
    print(f"max |p_dense_fft - p_per_patch| on {len(patches)} pixels: "
          f"{(dense_at - pp).abs().max().item():.2e}")
    print(f"max |p_dense_fft - p_dense_direct| on {d}x{d}: "
          f"{(probs_f - probs_d).abs().max().item():.2e}")

    # (b) MC dropout on an mc-tile image (input already reflect-padded: one dense pass).
    m = args.mc_tile
    x = torch.nn.functional.pad(image[None, :, :m, :m], (halo,) * 4, mode="reflect")
    with torch.no_grad():
        model(x)  # warm-up (spectrum cached)
        _, t_det = timed(lambda: model(x))
    _, t_mc = timed(lambda: mc_forward(model, x, args.T, split=True))

    def naive() -> None:
        for _ in range(args.T):
            mc_forward(model, x, 1, split=False)

    _, t_naive = timed(naive)
    print(f"MC {m}x{m}: deterministic pass {t_det:.2f} s; T={args.T} via mc_split {t_mc:.2f} s "
          f"({t_mc / t_det:.2f}x, target <= 1.5x); naive {args.T} passes {t_naive:.2f} s "
          f"({t_naive / t_det:.1f}x)")


if __name__ == "__main__":
    main()
