"""The per-pixel sanity baseline on the synthetic data and on the real samples, and the size
of the synthetic splits per profile.

Usage: PYTHONPATH=src .venv/bin/python bench/bench_baselines.py [--profiles smoke default gpu]
       [--skip-real] [--bootstrap 1000] [--block 128]

(1) Per-pixel logistic regression (aerialseg.data.diagnostics.per_pixel_baseline, trained on
    the training split, scored on the validation split, eroded protocol, evaluated classes):
    OA, mean F1 and balanced accuracy (mean recall: independent of the class mix) for
    - synthetic (default profile), all five bands and IR-R-G only;
    - the real Vaihingen 512 px crop (IR-R-G; official eroded labels): two folds, left half
      -> right half and back, confusion matrices pooled;
    - the real Vaihingen area-1 tile downsampled 4x (IR-R-G, labels snapped to the palette,
      eroded by a disk of radius 1 ~ 3 px at 9 cm): two folds, top half -> bottom half and
      back, pooled;
    - Dubai (RGB, profile default: 12 + 12 scenes of at most 512 px).
    The real samples are read from ../shared/data (skipped when absent). Both Vaihingen
    samples come from one area (area 1): a per-pixel classifier trained on half a tile and
    tested on the other half is, if anything, favoured over one tested on another area.
(2) Per synthetic profile: scenes x px of each split, cars (connected components of at least
    30 px) and class pixel counts (eroded protocol), and the 95 % block-bootstrap half-width
    of the per-class F1 of the five-band per-pixel baseline (blocks of --block px resampled
    with replacement); the baseline is a weaker model than a converged CNN, so its
    intervals are an upper bound of the ones a converged model gets on the same data.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from aerialseg.data.classes import IGNORE_INDEX, ISPRS
from aerialseg.data.registry import DATA_PROFILES, data_config, load_split
from aerialseg.data.scene import Scene
from aerialseg.diagnostics import count_objects, per_pixel_baseline
from aerialseg.metrics import eroded_eval_mask, scores
from aerialseg.paths import shared_data

CAR = ISPRS.names.index("car")


@dataclass
class _Split:
    train: list[Scene]
    val: list[Scene]


def _scene(name: str, irrg: np.ndarray, labels: np.ndarray, mask: np.ndarray,
           split: str) -> Scene:
    bands = np.ascontiguousarray(np.moveaxis(irrg, -1, 0), np.float32) / np.float32(255)
    return Scene(name, bands, ("ir", "r", "g"), np.ascontiguousarray(labels), ISPRS, split,
                 np.ascontiguousarray(mask))


def _halves(name: str, irrg: np.ndarray, labels: np.ndarray, mask: np.ndarray, axis: int
            ) -> list[_Split]:
    """Two folds: first half -> second half, second half -> first half."""
    n = labels.shape[axis] // 2
    a = [np.take(x, np.arange(n), axis=axis) for x in (irrg, labels, mask)]
    b = [np.take(x, np.arange(n, labels.shape[axis]), axis=axis) for x in (irrg, labels, mask)]
    return [_Split([_scene(f"{name}-a", *a, "train")], [_scene(f"{name}-b", *b, "val")]),
            _Split([_scene(f"{name}-b", *b, "train")], [_scene(f"{name}-a", *a, "val")])]


def vaihingen_crop() -> list[_Split] | None:
    from PIL import Image

    crop = shared_data() / "isprs-samples" / "vaihingen-crop"
    if not crop.is_dir():
        return None
    top = np.asarray(Image.open(crop / "img_dir" / "area1_0_0_512_512.png").convert("RGB"))
    ann = np.asarray(Image.open(crop / "ann_dir" / "area1_0_0_512_512.png")).astype(np.int64)
    labels = np.where(ann == 0, IGNORE_INDEX, ann - 1)
    return _halves("crop", top, labels, ann != 0, axis=1)


def vaihingen_resized() -> list[_Split] | None:
    import tifffile

    folder = shared_data() / "isprs-samples" / "vaihingen-area1-resized"
    if not folder.is_dir():
        return None
    top = tifffile.imread(folder / "top_mosaic_09cm_area1_image_resized.tif")[..., :3]
    raw = tifffile.imread(folder / "top_mosaic_09cm_area1_label_resized.tif")[..., :3]
    labels = ISPRS.decode(raw, snap=True)
    return _halves("area1x4", top, labels, eroded_eval_mask(labels, 1), axis=0)


def _row(cm: np.ndarray, evaluated: tuple[int, ...], names: tuple[str, ...]
         ) -> dict[str, float]:
    """OA, mean F1, balanced accuracy (mean recall over evaluated classes present: does not
    depend on the class mix) and F1 per class, eroded protocol."""
    s = scores(cm, evaluated)
    present = [i for i in evaluated if cm[i].sum() > 0]
    return {"oa": s["oa"], "mean_f1": s["mean_f1"],
            "bal_acc": float(np.mean([s["recall"][i] for i in present])),
            **{f"f1_{names[i]}": s["f1"][i] for i in evaluated}}


def pooled(folds: list[_Split], bands: tuple[str, ...]) -> dict[str, float]:
    cm = sum(per_pixel_baseline(f, bands).confusion["eroded"] for f in folds)
    return _row(cm, ISPRS.evaluated, ISPRS.names)


def block_bootstrap_f1(baseline, val: list[Scene], block: int, n_boot: int, seed: int = 0
                       ) -> np.ndarray:
    """95 % half-width of the per-class F1 (eroded protocol) over resampled spatial blocks."""
    c = ISPRS.num_classes
    cms = []
    for s in val:
        pred = baseline.predict_proba(s).argmax(0)
        ok = s.eval_mask & (s.labels != IGNORE_INDEX)
        h, w = s.shape
        for y in range(0, h, block):
            for x in range(0, w, block):
                sl = (slice(y, y + block), slice(x, x + block))
                m = ok[sl]
                cm = np.bincount(s.labels[sl][m] * c + pred[sl][m], minlength=c * c)
                cms.append(cm.reshape(c, c))
    cms = np.stack(cms).astype(np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(cms), (n_boot, len(cms)))
    boot = cms[idx].sum(1)  # (n_boot, c, c)
    tp = np.diagonal(boot, axis1=1, axis2=2)
    f1 = 2 * tp / np.maximum(boot.sum(2) + boot.sum(1), 1)
    lo, hi = np.percentile(f1, [2.5, 97.5], axis=0)
    return (hi - lo) / 2


def synthetic_sizes(profiles: list[str], n_boot: int, block: int) -> None:
    print("\n== synthetic splits per profile (cars: components >= 30 px; pixels: eroded "
          "protocol)")
    names = [ISPRS.names[i] for i in range(ISPRS.num_classes)]
    for prof in profiles:
        if prof not in DATA_PROFILES["synthetic"]:
            print(f"  {prof}: no synthetic profile entry")
            continue
        p = DATA_PROFILES["synthetic"][prof]
        cfg = data_config("synthetic", "default", **p)  # the profile's values, explicitly
        t = time.perf_counter()
        data = load_split(cfg)
        gen = time.perf_counter() - t
        for split, scenes in (("train", data.train), ("val", data.val)):
            px = sum(s.labels.size for s in scenes)
            counts = sum(np.bincount(s.labels[s.eval_mask], minlength=6)[:6] for s in scenes)
            print(f"  {prof:8s} {split:5s} {len(scenes):3d} x {scenes[0].shape[0]} px "
                  f"({px / 1e6:5.2f} Mpx), cars {count_objects(scenes, CAR):4d}; "
                  + ", ".join(f"{n} {int(k)}" for n, k in zip(names, counts, strict=True)))
        if n_boot:
            t = time.perf_counter()
            b = per_pixel_baseline(data)
            hw = block_bootstrap_f1(b, data.val, block, n_boot)
            print(f"  {prof:8s} 5-band baseline F1 (%) " + ", ".join(
                f"{ISPRS.names[i]} {100 * b.scores['eroded']['f1'][i]:.1f}"
                f"+-{100 * hw[i]:.1f}" for i in ISPRS.evaluated)
                + f"  [{block} px blocks; load {gen:.1f} s, baseline+bootstrap "
                f"{time.perf_counter() - t:.1f} s]")


def baselines(skip_real: bool) -> None:
    print("== per-pixel logistic regression (train -> validation, eroded protocol, "
          "evaluated classes)")
    rows: list[tuple[str, str, dict[str, float], float]] = []
    t = time.perf_counter()
    syn = load_split(data_config("synthetic", "default"))
    for bands in (("ir", "r", "g", "dsm", "ndsm"), ("ir", "r", "g")):
        t = time.perf_counter()
        b = per_pixel_baseline(syn, bands)
        rows.append(("synthetic (default)", "+".join(bands),
                     _row(b.confusion["eroded"], ISPRS.evaluated, ISPRS.names),
                     time.perf_counter() - t))
    if not skip_real:
        for name, folds in (("vaihingen crop 512 px (2-fold)", vaihingen_crop()),
                            ("vaihingen area1 4x down (2-fold)", vaihingen_resized())):
            if folds is None:
                print(f"  {name}: samples not found under {shared_data()}")
                continue
            t = time.perf_counter()
            rows.append((name, "ir+r+g", pooled(folds, ("ir", "r", "g")),
                         time.perf_counter() - t))
        try:
            dubai = load_split(data_config("dubai", "default"))
        except Exception as e:  # noqa: BLE001 - absent data: say so and go on
            print(f"  dubai: {type(e).__name__}: {str(e).splitlines()[0]}")
        else:
            t = time.perf_counter()
            b = per_pixel_baseline(dubai)
            rows.append(("dubai (default)", "+".join(b.bands),
                         _row(b.confusion["eroded"], b.classes.evaluated, b.classes.names),
                         time.perf_counter() - t))
    print(f"  {'dataset':34s} {'bands':16s} {'OA %':>5s} {'mF1 %':>5s} {'bal %':>5s} "
          f"{'s':>4s}  per-class F1 %")
    for name, bands, s, secs in rows:
        per = ", ".join(f"{k[3:]} {100 * v:.1f}" for k, v in s.items() if k.startswith("f1_"))
        print(f"  {name:34s} {bands:16s} {100 * s['oa']:5.1f} {100 * s['mean_f1']:5.1f} "
              f"{100 * s['bal_acc']:5.1f} {secs:4.1f}  {per}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", nargs="*", default=["smoke", "default", "gpu"])
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--bootstrap", type=int, default=1000,
                    help="bootstrap resamples of the F1 interval (0: skip)")
    ap.add_argument("--block", type=int, default=128, help="bootstrap block side (px)")
    args = ap.parse_args()
    baselines(args.skip_real)
    synthetic_sizes(args.profiles, args.bootstrap, args.block)


if __name__ == "__main__":
    main()
