import numpy as np
import torch
from torch import nn

from aerialseg.inference import blend_weights, predict_scene, tile_starts


def conv_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Dropout(0.3),
                         nn.Conv2d(8, 4, 3, padding=1)).eval()


def test_tile_starts_cover_everything():
    for n in (10, 64, 100, 257):
        starts = tile_starts(n, 64, 16)
        covered = np.zeros(n, bool)
        for s in starts:
            covered[s:s + 64] = True
        assert covered.all()
        assert starts[-1] + min(64, n) == n


def test_halo_tiles_equal_whole_image():
    # receptive-field radius 2 px <= halo: stitched cores reproduce the whole pass exactly
    model = conv_model()
    img = np.random.default_rng(0).normal(size=(3, 150, 130)).astype(np.float32)
    whole = predict_scene(model, img, tile=512)["probs"]
    tiled = predict_scene(model, img, tile=40, overlap=4)["probs"]
    assert np.abs(whole - tiled).max() < 1e-5
    assert np.allclose(whole.sum(0), 1, atol=1e-5)


def test_blended_tiles_close_to_whole_image():
    model = conv_model()
    img = np.random.default_rng(0).normal(size=(3, 150, 130)).astype(np.float32)
    whole = predict_scene(model, img, tile=512)["probs"]
    tiled = predict_scene(model, img, tile=48, overlap=16, mode="blend")["probs"]
    # only pixels near a tile edge (zero padding inside the ramp) may differ, a little
    assert np.median(np.abs(whole - tiled)) < 1e-6
    assert np.allclose(tiled.sum(0), 1, atol=1e-5)


def test_blend_weights_positive():
    w = blend_weights(32, 40, 8)
    assert w.min() > 0 and w.max() == 1


def test_tta_and_mc_outputs():
    model = conv_model()
    img = np.random.default_rng(1).normal(size=(3, 40, 40)).astype(np.float32)
    out = predict_scene(model, img, tta=True, mc_samples=4)
    for k in ("probs", "mc_mean", "mean_class_std", "entropy", "mutual_info"):
        assert k in out and np.isfinite(out[k]).all()
    assert out["probs"].shape == (4, 40, 40)
    assert (out["mean_class_std"] > 0).any()  # dropout active in the MC passes only
    again = predict_scene(model, img)["probs"]
    assert np.allclose(again, predict_scene(model, img)["probs"])


def test_out_of_memory_retries_with_smaller_tiles(capsys):
    class Picky(nn.Module):
        """Runs out of 'memory' on inputs larger than 40 px."""

        def forward(self, x):
            if max(x.shape[-2:]) > 40:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return torch.zeros(x.shape[0], 2, *x.shape[-2:])

    out = predict_scene(Picky(), np.zeros((1, 100, 100), np.float32), tile=128, overlap=4,
                        min_tile=16)
    assert out["probs"].shape == (2, 100, 100)
    assert "retrying with 64 px tiles" in capsys.readouterr().out
