"""Whole-scene inference: bounded memory, tiled == whole, MC-dropout cost, peers' protocols.

Usage: .venv/bin/python bench/bench_inference.py [--sizes 2000 6000] [--tile 512] [--T 10]
       [--peer-size 2000] [--threads N] [--sections memory tiled mc peers]

(1) Peak memory of tiled prediction of a small FCN on scenes of the given sizes: the part
    that grows with the scene must be the output arrays only (C x H x W float32 + weights).
    Peak RSS is measured in a fresh subprocess per size.
(2) Tiled (halo) output vs. one whole-image pass for the fully convolutional models.
(3) MC dropout: T samples with the trunk/head split vs. one deterministic pass vs. T naive
    passes, for every model of the study that has dropout.
(4) Our halo-tiled ``predict_scene`` against the peers' protocols on one ``--peer-size``
    scene (random 5 bands), the default-profile FCN (widths 32..256, random weights, eval):
    (a) the classic sliding window of the Vaihingen notebooks (DeepNetsForEO): 256 px windows,
    stride 32, softmax scores summed (window positions as in their ``sliding_window``: a start
    past the edge is clamped to the last window, so the last one repeats), batches of 8;
    (b) mmseg's ``slide`` mode: 512 px windows, stride 341 (2/3), logits averaged. Prints
    pixels/s, speed-up, max |dp| and label agreement against the whole-image pass and ours,
    and where the protocols differ (window borders, the output stride).

Threads: ``--threads`` (default: ``AERIALSEG_THREADS``, else all cores), with
``OMP_WAIT_POLICY`` passive unless set (``aerialseg.threads``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from aerialseg.threads import configure_threads, describe

_early = argparse.ArgumentParser(add_help=False)
_early.add_argument("--threads", default=None)
THREADS = configure_threads(_early.parse_known_args()[0].threads)  # before torch loads OpenMP

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from aerialseg.inference import predict_scene  # noqa: E402
from aerialseg.models.mc import enable_mc_dropout, mc_forward  # noqa: E402
from aerialseg.models.registry import build_model  # noqa: E402


def _peak_rss_child(size: int, tile: int) -> None:
    import resource

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


# ---------------------------------------------------------------- (4) the peers' protocols


def classic_windows(n: int, window: int, stride: int) -> list[int]:
    """Window starts of DeepNetsForEO's ``sliding_window``: past-the-edge starts clamped."""
    return [min(x, n - window) for x in range(0, n, stride)]


@torch.no_grad()
def classic_sliding_window(model, image: np.ndarray, *, window: int = 256, stride: int = 32,
                           batch: int = 8) -> np.ndarray:
    """Summed softmax scores of every window (Vaihingen notebooks' protocol), (C, H, W)."""
    _, h, w = image.shape
    x = torch.from_numpy(image)
    coords = [(y0, x0) for y0 in classic_windows(h, window, stride)
              for x0 in classic_windows(w, window, stride)]
    scores = None
    for i in range(0, len(coords), batch):
        chunk = coords[i:i + batch]
        xb = torch.stack([x[:, y0:y0 + window, x0:x0 + window] for y0, x0 in chunk])
        probs = torch.softmax(model(xb).float(), 1)
        if scores is None:
            scores = torch.zeros(probs.shape[1], h, w)
        for (y0, x0), p in zip(chunk, probs, strict=True):
            scores[:, y0:y0 + window, x0:x0 + window] += p
    return scores.numpy()


@torch.no_grad()
def mmseg_slide(model, image: np.ndarray, *, crop: int = 512, stride: int = 341) -> np.ndarray:
    """mmseg's ``slide_inference``: logits of every crop averaged over the crops, (C, H, W)."""
    _, h, w = image.shape
    x = torch.from_numpy(image)[None]
    h_grids = max(h - crop + stride - 1, 0) // stride + 1
    w_grids = max(w - crop + stride - 1, 0) // stride + 1
    preds = count = None
    for hi in range(h_grids):
        for wi in range(w_grids):
            y1, x1 = hi * stride, wi * stride
            y2, x2 = min(y1 + crop, h), min(x1 + crop, w)
            y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
            logits = model(x[:, :, y1:y2, x1:x2]).float()
            if preds is None:
                preds = torch.zeros(1, logits.shape[1], h, w)
                count = torch.zeros(1, 1, h, w)
            preds += F.pad(logits, (x1, w - x2, y1, h - y2))
            count[:, :, y1:y2, x1:x2] += 1
    return (preds / count)[0].numpy()


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _softmax_np(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(logits), 0).numpy()


def _scene_and_model(size: int, steps: int = 30):
    """A smooth random 5-band scene and the FCN trained briefly to label its band maxima.

    Random weights label almost every pixel with one or two classes at tiny margins; 30 Adam
    steps on 128 px crops give a model with six classes in use, as a trained one has.
    """
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    img = torch.from_numpy(np.random.default_rng(4).standard_normal((5, size, size),
                                                                      dtype=np.float32))
    img = F.avg_pool2d(img[None], 9, 1, 4, count_include_pad=False)[0]
    img = img / img.std()
    target = torch.cat([img, torch.full((1, size, size), 0.8)]).argmax(0)
    model = build_model("fcn", in_channels=5, num_classes=6, widths=(32, 64, 128, 256))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    crop = min(128, size)
    for _ in range(steps):
        ys = torch.randint(0, size - crop + 1, (4,), generator=g).tolist()
        xs = torch.randint(0, size - crop + 1, (4,), generator=g).tolist()
        xb = torch.stack([img[:, y:y + crop, x:x + crop] for y, x in zip(ys, xs, strict=True)])
        yb = torch.stack([target[y:y + crop, x:x + crop] for y, x in zip(ys, xs, strict=True)])
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return img.numpy(), model.eval()


def peers(size: int, tile: int, overlap: int) -> None:
    print(f"== (4) ours vs the peers' protocols: {size}x{size} scene, FCN widths 32..256, "
          "briefly trained, eval mode")
    img, model = _scene_and_model(size)
    px = size * size
    with torch.no_grad():
        model(torch.from_numpy(img[:, :256, :256])[None])  # warm-up

    def ours_fn(halo: int):
        return lambda: predict_scene(model, img, tile=tile, overlap=halo)["probs"]

    exact_halo = 96  # >= the FCN's receptive-field radius (about 95 px)
    ours, t1 = _timed(ours_fn(overlap))
    ours96, t96 = _timed(ours_fn(exact_halo))
    with torch.no_grad():
        whole, t_whole = _timed(lambda: torch.softmax(
            model(torch.from_numpy(img)[None]).float(), 1)[0].numpy())
    mm, t_mm = _timed(lambda: _softmax_np(mmseg_slide(model, img)))
    classic, t_classic = _timed(lambda: classic_sliding_window(model, img))
    classic = classic / classic.sum(0, keepdims=True)  # summed scores -> mean probability
    _, t2 = _timed(ours_fn(overlap))  # ours again: the mean of both runs brackets the peers
    t_ours = (t1 + t2) / 2
    n_classic = len(classic_windows(size, 256, 32)) ** 2
    n_unique = len(set(classic_windows(size, 256, 32))) ** 2
    labels = {k: v.argmax(0) for k, v in
              {"whole": whole, "ours": ours, "classic": classic, "mmseg": mm}.items()}
    print(f"  {'protocol':48s} {'s':>7s} {'Mpx/s':>7s} {'ours is':>8s} {'max|dp| whole':>13s} "
          f"{'labels = whole':>14s} {'labels = ours':>13s}")
    rows = [(f"ours: predict_scene halo, tile {tile}, halo {overlap}", ours, t_ours),
            (f"ours, halo {exact_halo} (>= receptive field)", ours96, t96),
            ("whole image, one pass (reference)", whole, t_whole),
            (f"(a) classic 256/32, {n_classic} windows ({n_unique} distinct)", classic,
             t_classic),
            ("(b) mmseg slide 512/341, averaged logits", mm, t_mm)]
    for name, probs, secs in rows:
        lab = probs.argmax(0)
        print(f"  {name:48s} {secs:7.1f} {px / secs / 1e6:7.3f} {secs / t_ours:7.1f}x "
              f"{np.abs(probs - whole).max():13.2e} {100 * (lab == labels['whole']).mean():13.3f}% "
              f"{100 * (lab == labels['ours']).mean():12.3f}%")
    print(f"  speed-up of ours: {t_classic / t_ours:.1f}x the stride-32 sliding window "
          f"(target >= 20x), {t_mm / t_ours:.1f}x mmseg slide")
    # where the windowed protocols leave translation equivariance: a window's output vs the
    # whole-image pass, near the window border vs inside
    win, margin, grid = 256, exact_halo, 16
    inner = border = 0.0
    with torch.no_grad():
        for y0, x0 in [(320, 512), (544, 160), (1024, 96)]:
            y0 = min(y0, size - win) // grid * grid
            x0 = min(x0, size - win) // grid * grid
            p = torch.softmax(model(torch.from_numpy(
                img[:, y0:y0 + win, x0:x0 + win])[None]).float(), 1)[0].numpy()
            d = np.abs(p - whole[:, y0:y0 + win, x0:x0 + win]).max(0)
            inside = np.zeros_like(d, bool)
            inside[margin:-margin, margin:-margin] = True
            inner, border = max(inner, d[inside].max()), max(border, d[~inside].max())
    print(f"  a 256 px window starting on the 16 px output grid vs the whole-image pass: max "
          f"|dp| {inner:.1e} farther than {margin} px from its border, {border:.2f} within "
          f"{margin} px (zero padding at the window border)")
    if size >= 341 + 512:  # mmseg's second row of windows
        with torch.no_grad():
            p = torch.softmax(model(torch.from_numpy(
                img[:, 341:341 + 512, :512])[None]).float(), 1)[0].numpy()
        d = np.abs(p - whole[:, 341:341 + 512, :512]).max(0)[margin:-margin, margin:-margin]
        print(f"  a 512 px window at y = 341 ({341 % grid} px off the output grid): max |dp| "
              f"{d.max():.2f} farther than {margin} px from its border (the FCN is "
              "equivariant to shifts by multiples of its output stride 16 only)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[2000, 6000])
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--T", type=int, default=10)
    ap.add_argument("--peer-size", type=int, default=2000)
    ap.add_argument("--peer-overlap", type=int, default=64,
                    help="halo of our predict_scene in (4) (the book's evaluation uses 64)")
    ap.add_argument("--threads", default=None)
    ap.add_argument("--sections", nargs="*", default=["memory", "tiled", "mc", "peers"],
                    choices=["memory", "tiled", "mc", "peers"])
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        _peak_rss_child(args.child, args.tile)
        return
    print(f"torch {torch.__version__}, {describe(THREADS)}")
    if "memory" in args.sections:
        memory(args.sizes, args.tile)
    if "tiled" in args.sections:
        tiled_vs_whole(args.tile)
    if "mc" in args.sections:
        mc_cost(args.T)
    if "peers" in args.sections:
        peers(args.peer_size, args.tile, args.peer_overlap)


if __name__ == "__main__":
    main()
