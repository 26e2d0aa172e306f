import numpy as np
import pytest

from aerialseg.data.patches import BandStats, SegmentationPatches, d4, grid_windows, label_shares


def test_d4_has_eight_distinct_elements():
    a = np.arange(12).reshape(3, 4)
    variants = {d4(a, k).tobytes() + bytes(d4(a, k).shape) for k in range(8)}
    assert len(variants) == 8


def test_grid_windows_cover_with_overlap():
    wins = grid_windows(300, 256, 128, 0.5)
    ys = sorted({y for y, _ in wins})
    assert ys[0] == 0 and ys[-1] == 300 - 128 and ys[1] == 64
    with pytest.raises(ValueError, match="smaller than the 128 px patch"):
        grid_windows(100, 300, 128, 0.5)


def test_grid_dataset_length_and_d4_labels_follow_image(scene_factory):
    s = scene_factory(size=64)
    extra = [np.arange(64 * 64, dtype=np.float32).reshape(64, 64)]
    ds = SegmentationPatches([s.bands], [s.labels], size=32, overlap=0.5, extras={"efm": extra})
    assert len(ds) == 9 * 8
    for k in range(8):
        item = ds[k]  # first window, k-th D4 variant
        assert np.array_equal(item["label"].numpy(), d4(s.labels[:32, :32], k))
        assert np.array_equal(item["efm"].numpy(), d4(extra[0][:32, :32], k))
        assert np.allclose(item["image"].numpy(), d4(s.bands[:, :32, :32], k))


def test_random_crops_repeatable_per_epoch(scene_factory):
    s = scene_factory(size=64)
    ds = SegmentationPatches([s.bands], [s.labels], size=32, sampler="random_crop", length=4,
                             scale_range=(0.5, 2.0), seed=3)
    a = ds[1]["image"].clone()
    assert ds[1]["image"].shape == (5, 32, 32)
    assert np.array_equal(a, ds[1]["image"])
    ds.set_epoch(1)
    assert not np.array_equal(a, ds[1]["image"])


def test_band_stats_normalise(scene_factory):
    scenes = [scene_factory(seed=i) for i in range(2)]
    stats = BandStats.from_scenes(scenes, ("ir", "dsm"))
    x = np.concatenate([stats.apply(s).reshape(2, -1) for s in scenes], 1)
    assert np.allclose(x.mean(1), 0, atol=1e-4) and np.allclose(x.std(1), 1, atol=1e-3)
    with pytest.raises(KeyError, match="missing.*nir"):
        BandStats.from_scenes(scenes, ("nir",))


def test_label_shares_ignore():
    lab = np.array([[0, 0, 1, 255]])
    assert np.allclose(label_shares([lab], 3), [2 / 3, 1 / 3, 0])
