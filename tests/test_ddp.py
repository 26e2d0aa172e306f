"""Multi-process training with torchrun (gloo on CPU): rank 0 writes, the store is reused."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aerialseg.data.registry import data_config, load_split
from aerialseg.registry import resolve_run
from aerialseg.runs import get_or_train, run_path


@pytest.mark.chapter
def test_torchrun_two_processes_then_reuse(tmp_path, monkeypatch):
    env = dict(os.environ, AERIALSEG_RUNS=str(tmp_path / "runs"), OMP_NUM_THREADS="1")
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "aerialseg.cli", "train",
           "fcn", "--profile", "smoke", "--device", "cpu", "--set", "epochs=2"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the two ranks print concurrently: their lines may interleave, so match the objects
    reports = [json.loads(m) for m in re.findall(r'\{"run".*?"world_size": \d+\}', proc.stdout)]
    assert sorted(r["rank"] for r in reports) == [0, 1]
    assert all(r["world_size"] == 2 for r in reports)

    monkeypatch.setenv("AERIALSEG_RUNS", str(tmp_path / "runs"))
    data = load_split(data_config("synthetic", "smoke"))
    cfg = resolve_run("fcn", profile="smoke", in_bands=data.bands, data=data.cfg.to_dict(),
                      seed=0, epochs=2)
    assert (run_path(cfg, data) / "model.pt").exists()
    run = get_or_train(cfg, data, log=None)
    assert run.reused
    assert all(torch.isfinite(p).all() for p in run.model.parameters())
