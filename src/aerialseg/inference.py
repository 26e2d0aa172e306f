"""Whole-scene prediction in bounded memory: tiles with overlap and smooth blending.

Memory grows with the tile size, not the scene: each tile's output is blended into the
scene-sized output arrays, which are the only scene-sized allocations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aerialseg.models.mc import deterministic_and_mc, enable_mc_dropout, mc_forward
from aerialseg.models.patch_cnn import predict_dense
from aerialseg.uncertainty import mc_statistics

FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))
"""Flip TTA: identity, horizontal, vertical, both (the EFM paper's four variants)."""


def tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of ``tile``-long windows covering ``n`` with at least ``overlap``."""
    if n <= tile:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, n - tile + 1, stride))
    if starts[-1] != n - tile:
        starts.append(n - tile)
    return starts


def blend_weights(h: int, w: int, overlap: int) -> np.ndarray:
    """Separable ramp that fades a tile's edges over ``overlap`` px (never exactly zero)."""
    def ramp(n: int) -> np.ndarray:
        if overlap <= 0:
            return np.ones(n, np.float32)
        i = np.arange(n, dtype=np.float32)
        r = np.minimum(i + 1, n - i) / (overlap + 1)
        return np.clip(r, 1e-3, 1.0)
    return np.outer(ramp(h), ramp(w)).astype(np.float32)


def iter_tiles(h: int, w: int, tile: int, overlap: int) -> Iterator[tuple[int, int, int, int]]:
    """(y, x, th, tw) of every tile."""
    for y in tile_starts(h, tile, overlap):
        for x in tile_starts(w, tile, overlap):
            yield y, x, min(tile, h), min(tile, w)


def iter_halo_tiles(h: int, w: int, tile: int, halo: int
                    ) -> Iterator[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]:
    """Windows (y0, y1, x0, x1) of at most ``tile`` px and the core each one owns.

    Cores partition the scene; each window is its core grown by ``halo`` on every side
    (clipped to the scene). For a translation-equivariant model whose receptive field
    radius is <= ``halo``, stitching the cores reproduces the whole-scene pass exactly.
    """
    core = tile - 2 * halo
    if core < 1:
        raise ValueError(f"tile ({tile}) must be larger than twice the halo ({halo})")
    for cy in range(0, h, core):
        for cx in range(0, w, core):
            c = (cy, min(cy + core, h), cx, min(cx + core, w))
            win = (max(c[0] - halo, 0), min(c[1] + halo, h), max(c[2] - halo, 0),
                   min(c[3] + halo, w))
            yield win, c


@torch.no_grad()
def _forward_probs(model: nn.Module, x: torch.Tensor, tta: bool) -> torch.Tensor:
    if not tta:
        return torch.softmax(model(x).float(), 1)
    acc = None
    for dims in FLIPS:
        xi = x.flip(dims) if dims else x
        p = torch.softmax(model(xi).float(), 1)
        p = p.flip(dims) if dims else p
        acc = p if acc is None else acc + p
    return acc / len(FLIPS)


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def predict_scene(model: nn.Module, image: np.ndarray, *, tile: int = 512, overlap: int = 64,
                  min_tile: int = 64, **kwargs: object) -> dict[str, np.ndarray]:
    """Tiled whole-scene prediction that retries with smaller tiles when memory runs out.

    See :func:`predict_scene_tiles` for the arguments; on an out-of-memory error the tile side
    is halved (down to ``min_tile`` + 2 x overlap) and the scene predicted again, with a
    message saying so.
    """
    while True:
        try:
            return predict_scene_tiles(model, image, tile=tile, overlap=overlap, **kwargs)
        except (torch.cuda.OutOfMemoryError, RuntimeError, MemoryError) as exc:
            smaller = max(tile // 2, min_tile + 2 * overlap)
            if not _is_oom(exc) and not isinstance(exc, MemoryError) or smaller >= tile:
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            print(f"out of memory with {tile} px tiles; retrying with {smaller} px tiles")
            tile = smaller


@torch.no_grad()
def predict_scene_tiles(model: nn.Module, image: np.ndarray, *,
                        device: torch.device | str = "cpu",
                  tile: int = 512, overlap: int = 64, tta: bool = False, mc_samples: int = 0,
                  mc_ddof: int = 0, mode: str = "halo") -> dict[str, np.ndarray]:
    """Class probabilities (and MC-dropout statistics) for a whole normalised scene.

    Args:
        model: returns logits (B, C, h, w) for input (B, bands, h, w) of any size.
        image: float32 (bands, H, W), already normalised.
        device: where the model runs.
        tile: tile side; memory is bounded by it.
        overlap: context around each tile (``"halo"``: a margin on every side whose output
            is discarded; ``"blend"``: the overlap of neighbouring tiles, blended linearly).
            Use at least the model's receptive-field radius.
        tta: average the four flip variants.
        mc_samples: if >= 2, also draw T MC-dropout samples and return their mean and
            uncertainty maps (``mc_mean``, ``mean_class_std``, ``predicted_class_std``,
            ``entropy``, ``mutual_info``).
        mc_ddof: std denominator T - ddof for the MC statistics.
        mode: ``"halo"`` (exact for translation-equivariant models) or ``"blend"``.

    Returns:
        ``probs`` float32 (C, H, W) from the deterministic (eval-mode) model, plus MC outputs.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    if mc_samples == 1 or mc_samples < 0:
        raise ValueError(f"mc_samples must be 0 (off) or >= 2, got {mc_samples}")
    if mode not in ("halo", "blend"):
        raise ValueError(f"mode must be 'halo' or 'blend', got {mode!r}")
    _, h, w = image.shape
    out: dict[str, np.ndarray] = {}
    weight = np.zeros((h, w), np.float32)
    if mode == "halo" and max(h, w) > tile:
        jobs = list(iter_halo_tiles(h, w, tile, overlap))
    else:
        jobs = [((y, y + th, x, x + tw), None) for y, x, th, tw in iter_tiles(h, w, tile, overlap)]
    for (y0, y1, x0, x1), core in jobs:
        xt = torch.from_numpy(np.ascontiguousarray(image[:, y0:y1, x0:x1]))[None].to(device)
        if mc_samples and not tta:  # one trunk pass for both (see deterministic_and_mc)
            det, samples = deterministic_and_mc(model, xt, mc_samples)
            parts: dict[str, np.ndarray] = {"probs": det[0].cpu().numpy()}
        else:
            parts = {"probs": _forward_probs(model, xt, tta)[0].cpu().numpy()}
            if mc_samples:
                enable_mc_dropout(model)
                samples = mc_forward(model, xt, mc_samples)
                model.eval()
        if mc_samples:
            st = mc_statistics(samples, ddof=mc_ddof)
            parts["mc_mean"] = st["mean"][0].cpu().numpy()
            for key in ("mean_class_std", "predicted_class_std", "entropy", "mutual_info"):
                parts[key] = st[key][0].cpu().numpy()
        if core is None:
            bw = blend_weights(y1 - y0, x1 - x0, overlap if (h > tile or w > tile) else 0)
            sl: tuple[slice, slice] = (slice(y0, y1), slice(x0, x1))
            src: tuple[slice, slice] = (slice(None), slice(None))
        else:
            bw = np.ones((core[1] - core[0], core[3] - core[2]), np.float32)
            sl = (slice(core[0], core[1]), slice(core[2], core[3]))
            src = (slice(core[0] - y0, core[1] - y0), slice(core[2] - x0, core[3] - x0))
        for key, arr in parts.items():
            if key not in out:
                out[key] = np.zeros(arr.shape[:-2] + (h, w), np.float32)
            out[key][(..., *sl)] += arr[(..., *src)] * bw
        weight[sl] += bw
    for key in out:
        out[key] /= weight
    return out


def patch_cnn_predict(model: nn.Module, image: np.ndarray, *, device: torch.device | str = "cpu",
                      tile: int = 256, overlap: int = 0, tta: bool = False,
                      mc_samples: int = 0, mc_ddof: int = 0,
                      border_mode: str = "reflect") -> dict[str, np.ndarray]:
    """The patch CNN's dense prediction with :func:`predict_scene`'s signature and outputs.

    The patch CNN classifies the 65 x 65 patch around each pixel; its output is smaller
    than its input, so it has its own predictor: tile by tile with an exact halo, the
    stride-1 network with fc1 as an FFT convolution (see
    :func:`aerialseg.models.patch_cnn.predict_dense`). With MC samples the trunk (convs and
    fc1, nearly all of the cost) runs once per tile for both the deterministic prediction
    and the T samples (:func:`aerialseg.models.mc.deterministic_and_mc`). ``overlap`` is
    unused (the halo is exact). Pixels outside the classified area (``border_mode="omit"``)
    are NaN.
    """
    if tta:
        raise ValueError("tta is not implemented for the patch CNN; pass tta=False")
    if border_mode not in ("reflect", "omit"):
        raise ValueError(f"border_mode must be 'reflect' or 'omit', got {border_mode!r}")
    device = torch.device(device)
    model = model.to(device).eval()
    x = torch.from_numpy(np.ascontiguousarray(image, np.float32)).to(device)
    if not mc_samples:
        return {"probs": predict_dense(model, x, border_mode=border_mode,
                                       tile=tile)[0].cpu().numpy()}
    halo = model.patch_size // 2
    _, h, w = image.shape
    xp = F.pad(x[None], (halo,) * 4, mode="reflect") if border_mode == "reflect" else x[None]
    off = 0 if border_mode == "reflect" else halo
    ho, wo = xp.shape[-2] - 2 * halo, xp.shape[-1] - 2 * halo
    keys = ("mc_mean", "mean_class_std", "predicted_class_std", "entropy", "mutual_info")
    c = model.num_classes
    out = {k: np.full(((c,) if k in ("probs", "mc_mean") else ()) + (h, w), np.nan, np.float32)
           for k in ("probs", *keys)}
    for i in range(0, max(ho, 0), tile):
        for j in range(0, max(wo, 0), tile):
            th, tw = min(tile, ho - i), min(tile, wo - j)
            win = xp[:, :, i:i + th + 2 * halo, j:j + tw + 2 * halo]
            det, samples = deterministic_and_mc(model, win, mc_samples)
            st = mc_statistics(samples, ddof=mc_ddof)
            sl = (slice(off + i, off + i + th), slice(off + j, off + j + tw))
            out["probs"][(slice(None), *sl)] = det[0].cpu().numpy()
            out["mc_mean"][(slice(None), *sl)] = st["mean"][0].cpu().numpy()
            for k in keys[1:]:
                out[k][sl] = st[k][0].cpu().numpy()
    return out


def scene_predictor(model: nn.Module, border_mode: str = "reflect"
                    ) -> Callable[..., dict[str, np.ndarray]]:
    """The whole-scene predictor for ``model``.

    :func:`predict_scene` for fully convolutional models; the dense patch-CNN predictor with
    ``border_mode`` (``"reflect"``: every pixel; ``"omit"``: the paper's unclassified border)
    for a model with a ``patch_size`` (its output is smaller than its input).
    """
    if border_mode not in ("reflect", "omit"):
        raise ValueError(f"border_mode must be 'reflect' or 'omit', got {border_mode!r}")
    if hasattr(model, "patch_size"):
        return partial(patch_cnn_predict, border_mode=border_mode)
    return predict_scene
