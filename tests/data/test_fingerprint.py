"""``data_fingerprint``: changes when a file read changes, stable otherwise, cheap."""

import os
import shutil
import time

import numpy as np
import pytest
import tifffile

from aerialseg.data.isprs import vaihingen_files
from aerialseg.data.registry import (
    SplitData,
    data_config,
    data_fingerprint,
    dataset_files,
    load_split,
)
from aerialseg.data.synthetic import write_synthetic
from aerialseg.paths import shared_data


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = write_synthetic(tmp_path_factory.mktemp("v") / "vaihingen", n_train=2, n_val=1,
                           size=64, seed=0)
    (root / "manifest.json").unlink()
    return root


@pytest.fixture
def vaihingen(pristine, tmp_path):
    dst = tmp_path / "vaihingen"
    shutil.copytree(pristine, dst)
    return dst


def test_same_files_same_fingerprint_config_or_scenes(vaihingen):
    cfg = data_config("vaihingen", "smoke", data_root=str(vaihingen))
    data = load_split(cfg)
    fp = data_fingerprint(cfg)
    assert len(fp) == 20 and fp == data.fingerprint == data_fingerprint(cfg)
    assert data_fingerprint(cfg, content=True) == data_fingerprint(data, content=True)
    files = dataset_files(cfg, "train") + dataset_files(cfg, "val")
    assert sorted(map(str, files)) == sorted(p for s in data.train + data.val
                                             for p in s.sources)


def test_a_label_fixed_in_place_changes_it(vaihingen):
    cfg = data_config("vaihingen", "smoke", data_root=str(vaihingen))
    path = vaihingen_files(vaihingen, 11)["gts"]
    gts = tifffile.imread(path)
    tifffile.imwrite(path, gts, photometric="rgb")  # uncompressed: a fix keeps the size
    before, before_content = data_fingerprint(cfg), data_fingerprint(cfg, content=True)
    gts[:2, :2] = (0, 0, 255)  # same size: only the contents and the time change
    st = path.stat()
    tifffile.imwrite(path, gts, photometric="rgb")
    assert path.stat().st_size == st.st_size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert data_fingerprint(cfg) != before
    assert data_fingerprint(cfg, content=True) != before_content
    # the content hash ignores times: a copy keeps it, the default (times) does not
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000))
    assert data_fingerprint(cfg, content=True) == data_fingerprint(
        data_config("vaihingen", "smoke", data_root=str(vaihingen)), content=True)


def test_files_not_read_do_not_count(vaihingen):
    cfg = data_config("vaihingen", "smoke", {"vaihingen_bands": "irrg"},
                      data_root=str(vaihingen))
    before = data_fingerprint(cfg)
    vaihingen_files(vaihingen, 1)["dsm"].write_bytes(b"changed")  # not read for irrg
    assert data_fingerprint(cfg) == before
    assert data_fingerprint(cfg) != data_fingerprint(data_config(
        "vaihingen", "smoke", {"vaihingen_bands": "irrg", "val_tiles": [3]},
        data_root=str(vaihingen)))  # a tile moved to the other split


def test_in_memory_scenes_are_hashed_by_their_arrays(scene_factory):
    a = SplitData(data_config("synthetic", "smoke"), [scene_factory("a")],
                  [scene_factory("b", seed=1)])
    b = SplitData(a.cfg, [scene_factory("a")], [scene_factory("b", seed=1)])
    assert a.fingerprint == b.fingerprint
    b.val[0].labels[0, 0] = 3
    assert a.fingerprint != b.fingerprint


def test_cost_on_the_real_dubai_set():
    if not (shared_data() / "dubai").is_dir():
        pytest.skip(f"Dubai set not found at {shared_data() / 'dubai'} (see "
                    "shared/data/README.md)")
    cfg = data_config("dubai", "default")
    t0 = time.perf_counter()
    fp = data_fingerprint(cfg)
    seconds = time.perf_counter() - t0
    assert fp == data_fingerprint(cfg)
    assert len(dataset_files(cfg, "train")) == 72 and len(dataset_files(cfg, "val")) == 36
    assert seconds < 0.5  # measured about 8 ms (stat of 108 files)
    assert not np.isnan(seconds)
