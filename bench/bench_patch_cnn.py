"""Patch CNN: per-patch vs dense (FFT fc1 / direct fc1) throughput, and MC-dropout cost.

Usage: .venv/bin/python bench/bench_patch_cnn.py [--tile 512] [--direct-tile 128]
       [--patches 256] [--batch 64] [--mc-tile 256] [--T 10] [--threads 2]

Default model widths (≈ 28.1 M parameters), random weights, random 5-band image, CPU.
Targets (DESIGN.md "Performance notes"): dense FFT >= 500x per-patch pixels/s;
T=10 MC samples via mc_split <= 1.5x one deterministic pass.

OMP_WAIT_POLICY defaults to PASSIVE here (set it in the environment to override): on cores
shared with other jobs, OpenMP's spin-waiting made the many small ops of the MC head up to
7x slower with 2 threads. Wall and CPU seconds are both printed; CPU time is steadier when
other jobs share the cores.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP

import argparse  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from aerialseg.models.mc import mc_forward  # noqa: E402
from aerialseg.models.patch_cnn import build_patch_cnn, predict_dense  # noqa: E402


def timed(fn):
    """Run fn once: (result, wall s, CPU s of this process). CPU time is the steadier figure
    when other jobs share the cores."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


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
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; "
          f"params {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M; "
          f"fc1 FFT size {model.fc1.fft_size} (blocks of {model.fc1.block} px)")

    # (a) dense FFT: first call includes the kernel spectrum (cached afterwards).
    _, t_cold, _ = timed(lambda: predict_dense(model, image, tile=n))
    probs, t_fft, c_fft = timed(lambda: predict_dense(model, image, tile=n))
    print(f"dense FFT    {n}x{n}: wall {t_fft:6.2f} s cpu {c_fft:6.2f} s  "
          f"{n * n / t_fft:9.0f} px/s  (first call incl. kernel spectrum {t_cold:.2f} s)")

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

        pp, t_pp, c_pp = timed(per_patch)
    np_ = len(patches)
    print(f"per-patch    {np_} patches, batch {args.batch}: wall {t_pp:6.2f} s cpu {c_pp:6.2f} s  "
          f"{np_ / t_pp:9.1f} px/s")

    # Dense direct fc1 on a smaller tile (same image, top-left corner).
    d = min(args.direct_tile, n)
    model.fc1_mode = "direct"
    probs_d, t_dir, c_dir = timed(lambda: predict_dense(model, image[:, :d, :d], tile=d))
    model.fc1_mode = "auto"
    probs_f = predict_dense(model, image[:, :d, :d], tile=d)  # same input, FFT fc1
    print(f"dense direct {d}x{d}: wall {t_dir:6.2f} s cpu {c_dir:6.2f} s  "
          f"{d * d / t_dir:9.0f} px/s")

    def ratio(a_px, a_s, b_px, b_s):
        return (a_px / a_s) / (b_px / b_s)

    print(f"speed-up dense FFT / per-patch:    {ratio(n * n, t_fft, np_, t_pp):7.0f}x wall, "
          f"{ratio(n * n, c_fft, np_, c_pp):7.0f}x cpu  (target >= 500x)")
    print(f"speed-up dense direct / per-patch: {ratio(d * d, t_dir, np_, t_pp):7.0f}x wall, "
          f"{ratio(d * d, c_dir, np_, c_pp):7.0f}x cpu")
    print(f"speed-up dense FFT / dense direct: {ratio(n * n, t_fft, d * d, t_dir):7.1f}x wall, "
          f"{ratio(n * n, c_fft, d * d, c_dir):7.1f}x cpu")
    dense_at = probs[0][:, ij[:, 0], ij[:, 1]].T
    print(f"max |p_dense_fft - p_per_patch| on {np_} pixels: "
          f"{(dense_at - pp).abs().max().item():.2e}")
    print(f"max |p_dense_fft - p_dense_direct| on {d}x{d}: "
          f"{(probs_f - probs_d).abs().max().item():.2e}")

    # (b) MC dropout on an mc-tile image (input already reflect-padded: one dense pass).
    m = args.mc_tile
    x = torch.nn.functional.pad(image[None, :, :m, :m], (halo,) * 4, mode="reflect")
    with torch.no_grad():
        model(x)  # warm-up (spectrum cached)
        _, t_det, c_det = timed(lambda: torch.softmax(model(x), 1))
    _, t_mc, c_mc = timed(lambda: mc_forward(model, x, args.T, split=True))

    def naive() -> None:
        for _ in range(args.T):
            mc_forward(model, x, 1, split=False)

    _, t_naive, c_naive = timed(naive)
    print(f"MC {m}x{m}: deterministic pass wall {t_det:.2f} s cpu {c_det:.2f} s")
    print(f"  T={args.T} via mc_split: wall {t_mc:.2f} s cpu {c_mc:.2f} s -> "
          f"{t_mc / t_det:.2f}x wall, {c_mc / c_det:.2f}x cpu (target <= 1.5x)")
    print(f"  naive {args.T} full passes: wall {t_naive:.2f} s cpu {c_naive:.2f} s -> "
          f"{t_naive / t_det:.1f}x wall, {c_naive / c_det:.1f}x cpu")


if __name__ == "__main__":
    main()
