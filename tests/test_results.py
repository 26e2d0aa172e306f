"""Results files: per-block storage, schema check, naming of non-default runs."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from aerialseg.data.classes import ISPRS
from aerialseg.evaluation import Accumulator
from aerialseg.metrics import ConfusionMatrix
from aerialseg.results import (
    SCHEMA,
    SCHEMA_VERSION,
    Record,
    ResultsSchemaError,
    ResultsSchemaWarning,
    build_results,
    chapter_defaults,
    non_default_params,
    parse_results_name,
    read_results,
    results_path,
    schema_version,
    validate_results,
    variant_id,
    write_results,
)

COMMITTED = Path(__file__).resolve().parents[1] / "results"
KNOWN_CORRUPT = {"10_comparison__synthetic__default.nc"}
"""Committed legacy files with broken content (int64-min counts from an outer join)."""


def one_hot(pred, c=6):
    return np.eye(c, dtype=np.float32)[pred].transpose(2, 0, 1)


def noisy_prediction(scene, rng, p=0.2):
    pred = np.where(scene.labels == 255, 0, scene.labels)
    flip = rng.random(pred.shape) < p
    pred[flip] = rng.integers(0, 6, flip.sum())
    return pred


def evaluation(scenes, seed=0, block_size=16):
    rng = np.random.default_rng(seed)
    acc = Accumulator(ISPRS, block_size=block_size)
    for i, scene in enumerate(scenes):
        acc.add(scene, one_hot(noisy_prediction(scene, rng)), keep=i == 0)
    return acc.result()


def dataset(scenes, runs=(("a", 0), ("a", 1), ("b", 0)), **kw):
    recs = [Record(m, s, evaluation(scenes, seed=10 * s + len(m)), train_seconds=1.0,
                   num_parameters=3) for m, s in runs]
    return build_results(recs, chapter="03_x", profile="smoke", dataset="synthetic",
                         params=kw.pop("params", {}), device="cpu", hardware="cpu",
                         wall_seconds={"evaluate": 1.0}, **kw)


@pytest.fixture
def scenes(scene_factory):
    return [scene_factory("s0", size=40, seed=0, split="val"),
            scene_factory("s1", size=64, seed=1, split="val")]


# --------------------------------------------------------------------------- per-block storage

def test_block_confusions_known_answer(scenes):
    rng = np.random.default_rng(0)
    scene = scenes[0]
    scene.eval_mask[:5] = False  # the eroded protocol leaves some pixels out
    scene.labels[0, 0] = 255  # an ignored pixel
    pred = noisy_prediction(scene, rng)
    acc = Accumulator(ISPRS, block_size=16)
    acc.add(scene, one_hot(pred))
    ev = acc.result()
    # 40 px with 16-px blocks: 3 x 3 blocks, the last row and column 8 px
    np.testing.assert_array_equal(ev.block_y, [0, 0, 0, 16, 16, 16, 32, 32, 32])
    np.testing.assert_array_equal(ev.block_x, [0, 16, 32] * 3)
    assert list(ev.block_scene) == ["s0"] * 9 and ev.block_size == 16
    for protocol, mask in (("eroded", scene.eval_mask), ("full", np.ones((40, 40), bool))):
        blocks = ev.block_confusion[protocol]
        assert blocks.shape == (9, 6, 6)
        np.testing.assert_array_equal(blocks.sum(0), ev.confusion[protocol])
        cm = ConfusionMatrix(6)
        sl = (slice(16, 32), slice(32, 40))  # block 5
        cm.update(pred[sl], scene.labels[sl], mask[sl])
        np.testing.assert_array_equal(blocks[5], cm.matrix)
    assert ev.confusion["full"].sum() == 40 * 40 - 1


def test_build_results_with_missing_runs_keeps_integer_counts(scenes, tmp_path):
    ds = dataset(scenes)
    assert ds["confusion"].dtype == np.int64 and ds["block_confusion"].dtype == np.uint32
    assert ds["present"].dtype == bool
    assert ds["present"].sel({"method": "b", "seed": 1}).item() is False
    missing = ds.sel({"method": "b", "seed": 1})
    assert int(missing["confusion"].sum()) == 0 and int(missing["block_confusion"].sum()) == 0
    assert np.isnan(missing["scores"]).all()
    assert (missing["pred_crop"] == 255).all()
    assert ds["truth_crop"].dims == ("y", "x") and ds["truth_crop"].max() < 6
    assert ds.sizes["block"] == 9 + 16 and ds.attrs["block_size"] == 16
    assert ds.attrs["schema"] == SCHEMA
    threads = json.loads(ds.attrs["threads"])
    assert threads["torch"] >= 1 and "OMP_NUM_THREADS" in threads
    path = write_results(ds, tmp_path / "03_x__synthetic__smoke.nc")
    back = read_results(path)  # strict check on read
    assert back["block_confusion"].dtype == np.uint32 and back["present"].dtype == bool
    assert list(back["block_scene"].values[:1]) == ["s0"]
    np.testing.assert_array_equal(back["confusion"].values, ds["confusion"].values)
    assert back.attrs["variant"] == "" and back.attrs["overrides"] == "{}"


def test_build_results_rejects_duplicate_runs(scenes):
    with pytest.raises(ValueError, match="duplicate"):
        dataset(scenes, runs=(("a", 0), ("a", 0)))


def test_block_storage_size_estimate():
    """20 methods x 3 seeds x 2 protocols x 6 x 6 uint32 per block (documented figure)."""
    per_block = 20 * 3 * 2 * 6 * 6 * 4
    assert per_block == 17_280
    assert 48 * per_block < 1e6  # synthetic default: 3 scenes of 512 px, 128-px blocks


# --------------------------------------------------------------------------- schema check

def broken(ds, var, where, value):
    ds = ds.copy(deep=True)
    ds[var].loc[where] = value
    return ds


def test_validate_names_file_variable_and_values(scenes):
    ds = dataset(scenes)
    ds["confusion"] = ds["confusion"].copy()
    ds["confusion"].loc[{"method": "b", "seed": 1}] = np.iinfo(np.int64).min
    with pytest.raises(ResultsSchemaError) as exc:
        validate_results(ds, name="x.nc")
    msg = str(exc.value)
    assert msg.startswith("x.nc fails the results schema check")
    assert "'confusion': negative or fill-value counts" in msg
    assert "method='b', seed=1, protocol='eroded', truth='impervious'" in msg
    assert str(np.iinfo(np.int64).min) in msg and "(and 67 more)" in msg


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.assign_coords(method=["a", "a"]), "coordinate 'method': duplicated"),
    (lambda d: broken(d, "scores", {"method": "a", "seed": 0, "class": "car",
                                    "metric": "f1"}, 1.5), "values outside [0, 1]"),
    (lambda d: broken(d, "scores", {"method": "a", "seed": 0, "class": "car",
                                    "metric": "f1", "protocol": "full"}, np.nan),
     "NaN where the confusion matrix defines the score"),
    (lambda d: broken(d, "scores", {"method": "b", "seed": 1, "class": "car",
                                    "metric": "f1"}, 0.5), "values for absent runs"),
    (lambda d: broken(d, "block_confusion", {"method": "a", "seed": 1, "block": 3}, 1),
     "its sum over blocks differs"),
    (lambda d: broken(d, "confusion", {"method": "b", "seed": 1}, 2),
     "non-zero counts for absent runs"),
    (lambda d: d.assign(confusion=d["confusion"].astype(float)), "counts must be integers"),
    (lambda d: d.drop_vars("present"), "variable 'present' missing"),
    (lambda d: d.drop_dims("block"), "variable 'block_confusion' missing"),
    (lambda d: d.assign_attrs(parameters="{oops"), "attribute 'parameters' is not JSON"),
])
def test_validate_catches(scenes, change, message):
    ds = change(dataset(scenes))
    with pytest.raises(ResultsSchemaError, match=message.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        validate_results(ds, name="x.nc")


def test_validate_required_attrs_and_expected_runs(scenes):
    ds = dataset(scenes)
    validate_results(ds, methods=["a"], seeds=[0, 1])
    with pytest.raises(ResultsSchemaError, match=r"expected runs missing: \[\('b', 1\)\]"):
        validate_results(ds, methods=["a", "b"], seeds=[0, 1])
    del ds.attrs["threads"]
    with pytest.raises(ResultsSchemaError, match="attribute 'threads' missing"):
        validate_results(ds)


def test_older_schema_is_read_with_a_warning_but_corruption_is_an_error(scenes, tmp_path):
    ds = dataset(scenes).drop_vars("present").drop_dims("block")
    ds.attrs["schema"] = "aerialseg-results-1"
    del ds.attrs["threads"]
    path = tmp_path / "old.nc"
    ds.to_netcdf(path)
    with pytest.warns(ResultsSchemaWarning, match="attribute 'threads' missing"):
        read_results(path)
    with pytest.raises(ResultsSchemaError):
        validate_results(read_results(path, validate=False), strict=True)
    ds = ds.copy(deep=True)
    ds["confusion"].loc[{"method": "a", "seed": 0, "truth": "car"}] = -1
    ds.to_netcdf(path)
    with pytest.raises(ResultsSchemaError, match="(?s)old.nc .*negative"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", ResultsSchemaWarning)
        read_results(path)


def test_write_refuses_invalid_data(scenes, tmp_path):
    ds = broken(dataset(scenes), "scores", {"method": "a", "seed": 0, "class": "car",
                                            "metric": "iou"}, -0.1)
    with pytest.raises(ResultsSchemaError, match="r.nc"):
        write_results(ds, tmp_path / "r.nc")
    assert not (tmp_path / "r.nc").exists()


def test_summary_files_without_scores_need_only_the_attributes(scenes):
    ds = dataset(scenes)
    summary = xr.Dataset({"class_share": (("class",), np.ones(3) / 3)}, attrs=ds.attrs)
    validate_results(summary)


# --------------------------------------------------------------------------- naming

def test_results_path_canonical_variant_and_tag(tmp_path):
    canonical = tmp_path / "03_fcn_mfb__synthetic__default.nc"
    assert results_path("03_fcn_mfb", "synthetic", "default", tmp_path) == canonical
    none_only = {"epochs": None, "lr": None, "device": "cuda", "profile": "default"}
    assert results_path("03_fcn_mfb", "synthetic", "default", tmp_path,
                        overrides=none_only) == canonical
    p = results_path("03_fcn_mfb", "synthetic", "default", tmp_path,
                     overrides={"epochs": 20, "lr": None})
    vid = variant_id({"epochs": 20})
    assert p.name == f"03_fcn_mfb__synthetic__default__{vid}.nc" and len(vid) == 8
    int(vid, 16)
    assert variant_id({"epochs": 20}) == vid != variant_id({"epochs": 21})
    assert parse_results_name(p) == ("03_fcn_mfb", "synthetic", "default", vid)
    assert parse_results_name(canonical).variant is None
    tagged = results_path("03_fcn_mfb", "synthetic", "default", tmp_path, tag="long-run",
                          overrides={"epochs": 20})
    assert tagged.name == "03_fcn_mfb__synthetic__default__long-run.nc"
    with pytest.raises(ValueError, match="tag"):
        results_path("03_fcn_mfb", "synthetic", "default", tmp_path, tag="a__b")


def test_non_default_params_against_defaults():
    defaults = {"members": ("pb", "fcn"), "svm_C": 1.0, "epochs": None, "device": "auto"}
    assert non_default_params({"members": ["pb", "fcn"], "svm_C": 1.0, "epochs": None,
                               "device": "cuda"}, defaults) == {}
    assert non_default_params({"members": ["pb"], "svm_C": 1.0, "seeds": [0, 1, 2]},
                              defaults) == {"members": ["pb"], "seeds": [0, 1, 2]}


def test_every_chapter_notebook_has_readable_defaults():
    notebooks = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9]*.py"))
    assert notebooks
    for nb in notebooks:
        d = chapter_defaults(nb.stem)
        assert d is not None and d.get("profile") == "default", nb.name
        assert non_default_params(d, d) == {}
    assert chapter_defaults("03_fcn_mfb")["epochs"] is None
    assert chapter_defaults("99_nothing") is None


def test_a_non_default_run_never_replaces_the_canonical_file(scenes, tmp_path, capsys):
    params = {"profile": "smoke", "device": "cpu", "dataset": "synthetic", "epochs": 20,
              "lr": None}
    ds = dataset(scenes, params=params)
    ds.attrs["chapter"] = "03_fcn_mfb"
    canonical = results_path("03_fcn_mfb", "synthetic", "smoke", tmp_path)
    written = write_results(ds, canonical)
    assert not canonical.exists()
    assert written.name == f"03_fcn_mfb__synthetic__smoke__{variant_id({'epochs': 20})}.nc"
    assert "the canonical 03_fcn_mfb__synthetic__smoke.nc is left as it is" in \
        capsys.readouterr().out
    back = read_results(written)
    assert json.loads(back.attrs["overrides"]) == {"epochs": 20}
    assert back.attrs["variant"] == variant_id({"epochs": 20})
    # the chapter's defaults (as in its notebook) write the canonical file
    ds.attrs["parameters"] = json.dumps({**params, "epochs": None})
    assert write_results(ds, canonical) == canonical


# --------------------------------------------------------------------------- committed files

def _committed() -> list:
    out = []
    for path in sorted(COMMITTED.glob("*.nc")):
        with xr.open_dataset(path) as ds:
            version = schema_version(ds)
        marks = []
        if version < SCHEMA_VERSION:
            marks = [pytest.mark.xfail(
                strict=True, raises=ResultsSchemaError,
                reason=f"schema {version} predates {SCHEMA}: regenerate the file")]
        out.append(pytest.param(path, marks=marks, id=path.name))
    return out


@pytest.mark.parametrize("path", _committed())
def test_committed_results_pass_the_schema_check(path):
    validate_results(read_results(path, validate=False), name=path.name, strict=True)


@pytest.mark.parametrize("path", sorted(COMMITTED.glob("*.nc")), ids=lambda p: p.name)
def test_committed_legacy_results_are_readable_unless_corrupt(path):
    with xr.open_dataset(path) as ds:
        if schema_version(ds) >= SCHEMA_VERSION:
            pytest.skip("current schema: checked strictly above")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResultsSchemaWarning)
        if path.name in KNOWN_CORRUPT:
            with pytest.raises(ResultsSchemaError, match="negative or fill-value counts"):
                read_results(path)
        else:
            read_results(path)


def test_summary_table_with_intervals(scenes):
    from aerialseg.tables import summary_table

    ds = dataset(scenes)
    std = summary_table(ds)
    table = summary_table(ds, spread="interval")
    assert list(table.columns) == list(std.columns)
    assert table.loc["a", "car"].count("[") == 1 and "±" in table.loc["a", "ECE"]
    assert table.loc["b", "mean F1"].count("[") == 1  # one seed: blocks still resampled


def test_accumulator_rejects_out_of_range_labels(scenes):
    acc = Accumulator(ISPRS, block_size=16)
    scene = scenes[0]
    scene.labels[3, 4] = 7
    with pytest.raises(ValueError, match=r"pixel \(3, 4\): truth 7"):
        acc.add(scene, one_hot(np.zeros((40, 40), int)))
