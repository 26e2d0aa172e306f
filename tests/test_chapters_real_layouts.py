"""Chapters execute on the real datasets' file layouts (smoke profile, papermill).

The synthetic edition (tests/test_chapters.py) exercises every chapter on one layout; here
chapters run on tiny fixtures in the layouts users download: Potsdam with the RGB product
only (no IRRG, no heights), an mmsegmentation-converted copy (``img_dir/``, ``ann_dir/``,
eroded index labels with 0 = boundary) and LoveDA. The fixtures come from the data tests'
builders; each chapter then writes its results file, which is checked as the synthetic
edition's are.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from chapter_checks import check_results
from isprs_fixtures import build_mmseg_vaihingen, build_potsdam_fixture
from loveda_fixtures import build_loveda

from aerialseg.book import run_chapter
from aerialseg.data.registry import data_config

TIMEOUT = 600  # per cell; each chapter takes well under a minute on these fixtures
# Scenes are at least the smoke profile's 128 px training crop (the chapters' illustrations
# show 128 px crops; real tiles and clips are 512 px or more).


@pytest.fixture
def store(tmp_path, monkeypatch):
    """This test's own run store and results folder (the chapter's kernel inherits them)."""
    results = tmp_path / "results"
    monkeypatch.setenv("AERIALSEG_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("AERIALSEG_RESULTS", str(results))
    return results


def run_on(name: str, dataset: str, root: Path, out: Path,
           data_options: dict[str, Any] | None = None) -> Path:
    """Execute chapter ``name`` in the smoke profile on ``root``; its results file."""
    params: dict[str, Any] = {"profile": "smoke", "device": "cpu", "dataset": dataset,
                              "data_root": str(root)}
    if data_options is not None:
        params["data_options"] = data_options
    run = run_chapter(name, parameters=params, output_dir=out, timeout=TIMEOUT)
    assert run.error is None, f"chapter {name} failed on {dataset} ({root}):\n{run.error}"
    print(f"{name} on {dataset}: {run.seconds:.1f} s")
    # a fixture folder is not the dataset's default location: the results are a variant
    # (never the canonical file), and the only file written
    written = sorted(Path(os.environ["AERIALSEG_RESULTS"]).glob("*.nc"))
    assert len(written) == 1, f"{name}: wrote {[p.name for p in written]}"
    path = written[0]
    assert re.fullmatch(rf"{name}__{dataset}__smoke__[0-9a-f]{{8}}\.nc", path.name), path.name
    return path


@pytest.mark.chapter
def test_fcn_mfb_on_rgb_only_potsdam(tmp_path, store):
    root = build_potsdam_fixture(tmp_path / "potsdam", ("2_10", "2_12"), size=(128, 144),
                                 products=("rgb",), heights=False)
    options = {"potsdam_bands": "r+g+b"}
    assert data_config("potsdam", "smoke", options, data_root=str(root)).layout is None
    path = run_on("03_fcn_mfb", "potsdam", root, tmp_path / "executed", options)
    check_results("03_fcn_mfb", path, dataset="potsdam")


@pytest.mark.chapter
def test_fcn_mfb_on_mmseg_converted_vaihingen(tmp_path, store):
    # Vaihingen and Potsdam read the converted layout under their own names: the layout
    # option ("mmseg") is detected from img_dir/ and ann_dir/
    root = build_mmseg_vaihingen(tmp_path / "vaihingen")
    assert data_config("vaihingen", "smoke", data_root=str(root)).layout == "mmseg"
    path = run_on("03_fcn_mfb", "vaihingen", root, tmp_path / "executed")
    check_results("03_fcn_mfb", path, dataset="vaihingen")


@pytest.mark.chapter
def test_distance_loss_on_loveda(tmp_path, store):
    root = build_loveda(tmp_path / "loveda", size=128, block=16)
    path = run_on("09_distance_loss", "loveda", root, tmp_path / "executed")
    check_results("09_distance_loss", path, dataset="loveda")
