"""The thread policy (aerialseg.threads) and its way into child processes and chapter kernels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aerialseg import book, threads
from aerialseg.threads import (
    ENV_SOURCE,
    ENV_THREADS,
    child_thread_env,
    configure_threads,
    describe,
    resolve_threads,
    thread_env,
)

KEYS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", ENV_THREADS, ENV_SOURCE)
SRC = str(Path(threads.__file__).resolve().parents[1])


@pytest.fixture
def clean_env(monkeypatch):
    """No thread variables in os.environ (restored afterwards), torch threads restored."""
    for k in KEYS:
        monkeypatch.delenv(k, raising=False)
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_default_is_all_cores_and_passive(clean_env):
    d = resolve_threads()
    assert d == {"threads": threads.available_cores(), "omp_wait_policy": "PASSIVE",
                 "source": "default (all cores)", "cores": threads.available_cores()}


def test_argument_beats_environment_beats_omp_num_threads():
    env = {ENV_THREADS: "3", "OMP_NUM_THREADS": "5", "OMP_WAIT_POLICY": "active"}
    assert resolve_threads(1, environ=env)["threads"] == 1
    assert resolve_threads(1, environ=env)["source"] == "argument"
    d = resolve_threads(environ=env)
    assert (d["threads"], d["source"], d["omp_wait_policy"]) == (3, ENV_THREADS, "ACTIVE")
    d = resolve_threads(environ={"OMP_NUM_THREADS": "5"})
    assert (d["threads"], d["source"]) == (5, "OMP_NUM_THREADS")
    assert resolve_threads(environ={}, wait_policy="active")["omp_wait_policy"] == "ACTIVE"
    for everything in ("all", "auto", 0, "0"):
        assert resolve_threads(everything, environ={})["threads"] == threads.available_cores()
    assert resolve_threads(environ={ENV_THREADS: "all"})["source"] == f"{ENV_THREADS} (all cores)"


@pytest.mark.parametrize("bad", ["two", -1, "1.5"])
def test_bad_values_are_named(bad):
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        resolve_threads(bad, environ={})
    with pytest.raises(ValueError, match=ENV_THREADS):
        resolve_threads(environ={ENV_THREADS: str(bad)})
    with pytest.raises(ValueError, match="OMP_WAIT_POLICY"):
        resolve_threads(environ={"OMP_WAIT_POLICY": "sometimes"})


def test_configure_sets_environment_and_torch(clean_env):
    env: dict[str, str] = {}
    d = configure_threads(1, environ=env)
    assert torch.get_num_threads() == 1
    assert env == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
                   ENV_THREADS: "1", ENV_SOURCE: "argument"}
    assert (d["threads"], d["omp_wait_policy"], d["source"]) == (1, "PASSIVE", "argument")
    # torch (and its OpenMP) is loaded in this test process and the variable was not set
    # before: the policy reaches child processes only, and the description says so
    assert d["omp_wait_policy_in_effect"] is False
    assert "child processes only" in describe(d)
    # a second call finds the variable already there
    assert configure_threads(environ=env)["omp_wait_policy_in_effect"] is True
    json.dumps(d)  # goes into the results' provenance as is


def test_child_env_keeps_the_origin_and_is_restored(clean_env, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    with child_thread_env(1, origin="aerialseg book run --threads 1") as d:
        assert d["threads"] == 1
        assert os.environ[ENV_THREADS] == "1" and os.environ["OMP_NUM_THREADS"] == "1"
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
        with child_thread_env():  # nested (run_chapter inside run_book): same count, origin
            assert os.environ[ENV_SOURCE] == "aerialseg book run --threads 1"
            inner = resolve_threads()
            assert inner["source"] == f"{ENV_THREADS} (aerialseg book run --threads 1)"
        assert os.environ[ENV_THREADS] == "1"
    assert os.environ["OMP_NUM_THREADS"] == "7"
    assert all(k not in os.environ for k in KEYS if k != "OMP_NUM_THREADS")
    assert thread_env(2, environ={})[ENV_SOURCE] == "argument"


def test_fresh_process_gets_the_policy_before_openmp_starts(clean_env):
    """configure_threads before ``import torch`` in a new process: in effect there."""
    code = ("import json, os; from aerialseg.threads import configure_threads; "
            "d = configure_threads(1); import torch; "
            "print(json.dumps([d, torch.get_num_threads(), os.environ['OMP_WAIT_POLICY']]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": SRC})
    d, n, policy = json.loads(out.stdout.strip().splitlines()[-1])
    assert d["omp_wait_policy_in_effect"] is True and n == 1 and policy == "PASSIVE"


def test_run_book_passes_the_policy_to_every_chapter(clean_env, monkeypatch, capsys):
    seen = []

    def fake_run(name, *, parameters, suffix=""):
        seen.append({k: os.environ.get(k) for k in KEYS})
        return book.ChapterRun(name, Path(f"/tmp/{name}.ipynb"), 0.1)

    monkeypatch.setattr(book, "run_chapter", fake_run)
    assert book.run_book(profile="smoke", only=["1", "2"], build=False, threads=1) == 0
    assert seen == [{"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
                     ENV_THREADS: "1", ENV_SOURCE: "aerialseg book run --threads 1"}] * 2
    assert "threads: 1 of" in capsys.readouterr().out
    assert ENV_THREADS not in os.environ  # restored after the run


KERNEL_NB = '''# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %%
import json
import os

import torch

from aerialseg.threads import configure_threads

d = configure_threads()
print("RESULT", json.dumps({"policy": os.environ.get("OMP_WAIT_POLICY"),
                            "torch_threads": torch.get_num_threads(), "desc": d}))
'''


@pytest.mark.chapter  # starts a Jupyter kernel (about 5 s): runs with `make test`
def test_chapter_kernel_inherits_the_thread_environment(clean_env, monkeypatch, tmp_path):
    """A one-cell notebook run by run_chapter (papermill) sees the variables in its kernel."""
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    (nb_dir / "99_threads.py").write_text(KERNEL_NB)
    monkeypatch.setattr(book, "notebooks_dir", lambda: nb_dir)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    run = book.run_chapter("99_threads", parameters={}, output_dir=tmp_path / "out", threads=1,
                           timeout=300)
    assert run.error is None, run.error
    nb = json.loads(run.output.read_text())
    text = "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code"
                   for o in c.get("outputs", []))
    res = json.loads(text.split("RESULT", 1)[1].strip().splitlines()[0])
    assert res["policy"] == "PASSIVE" and res["torch_threads"] == 1
    assert res["desc"]["threads"] == 1 and res["desc"]["omp_wait_policy_in_effect"] is True
    assert res["desc"]["source"].startswith(ENV_THREADS)


def test_cli_threads_options(clean_env, monkeypatch, capsys):
    from aerialseg.cli import main

    got = {}
    monkeypatch.setattr(book, "run_book", lambda **kw: got.update(kw) or 0)
    assert main(["book", "run", "--profile", "smoke", "--no-build", "--threads", "1"]) == 0
    assert got["threads"] == "1"
    assert main(["train", "fcn", "--threads", "many"]) == 2
    assert "threads must be a positive integer or 'all'" in capsys.readouterr().err
