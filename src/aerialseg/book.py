"""The chapter runner: papermill every chapter into ``book/chapters/``, then build the book."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aerialseg.paths import repo_root
from aerialseg.threads import child_thread_env, describe


def notebooks_dir() -> Path:
    """Where the chapter sources (``NN_topic.py`` + paired ``.ipynb``) live."""
    return repo_root() / "notebooks"


def chapter_names() -> list[str]:
    """All chapters, in order (``01_data``, ``03_fcn_mfb``, ...)."""
    return sorted(p.stem for p in notebooks_dir().glob("[0-9][0-9]_*.py"))


def select_chapters(only: Sequence[str] | None) -> list[str]:
    """Chapters matching ``only`` (a number like ``03`` or a full name); all if empty."""
    names = chapter_names()
    if not only:
        return names
    chosen = []
    for key in only:
        hits = [n for n in names if n == key or n.split("_", 1)[0] == key.zfill(2)]
        if not hits:
            raise ValueError(f"no chapter {key!r}; chapters are {names}")
        chosen += hits
    return chosen


def sync_notebook(name: str, dst: Path | None = None) -> Path:
    """Write the notebook of the jupytext source ``NN_topic.py`` (no outputs) to ``dst``.

    By default it goes to a temporary file, so executing a chapter never rewrites the paired
    ``.ipynb`` in ``notebooks/`` (whose cell ids would change on every run).
    """
    import tempfile

    import jupytext

    src = notebooks_dir() / f"{name}.py"
    nb = jupytext.read(src)
    if dst is None:
        dst = Path(tempfile.mkdtemp(prefix="aerialseg_nb_")) / f"{name}.ipynb"
    jupytext.write(nb, dst, fmt="ipynb")
    return dst


@dataclass
class ChapterRun:
    """Outcome of executing one chapter."""

    name: str
    output: Path
    seconds: float
    error: str | None = None


def run_chapter(name: str, *, parameters: dict[str, Any], output_dir: str | Path | None = None,
                suffix: str = "", timeout: int | None = None,
                threads: int | str | None = None) -> ChapterRun:
    """Execute chapter ``name`` with papermill into ``output_dir`` (default book/chapters).

    The paired notebook is never executed in place: the injected-parameters cell would leak
    into its jupytext source on the next sync. The kernel is started with the thread policy's
    environment (:func:`aerialseg.threads.child_thread_env`; ``threads`` None: from
    ``AERIALSEG_THREADS``/``OMP_NUM_THREADS``, else all cores; ``OMP_WAIT_POLICY=PASSIVE``
    unless set), which OpenMP only reads when the kernel starts.
    """
    import papermill

    src = sync_notebook(name)
    out_dir = Path(output_dir) if output_dir else repo_root() / "book" / "chapters"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{name}{suffix}.ipynb"
    t0 = time.perf_counter()
    try:
        # the kernel inherits os.environ (jupyter_client copies it when it starts the kernel)
        with child_thread_env(threads):
            papermill.execute_notebook(str(src), str(out), parameters=parameters,
                                       kernel_name="python3", cwd=str(notebooks_dir()),
                                       progress_bar=False, execution_timeout=timeout)
        # what the reader sees: tags, captioned figures, numbered tables, no machine paths
        from aerialseg.pages import postprocess_file

        postprocess_file(out, name=name)
        return ChapterRun(name, out, time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - report and go on with the other chapters
        msg = f"{type(exc).__name__}: {exc}"
        return ChapterRun(name, out, time.perf_counter() - t0, error=msg[-4000:])


def build_book(root: str | Path | None = None, *, strict: bool = True) -> None:
    """``jupyter-book build`` (Jupyter Book 1.x, offline; warnings are errors if strict)."""
    root = Path(root) if root else repo_root()
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(root), "--builder", "html"]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    subprocess.run(cmd, check=True)


CHAINS: tuple[tuple[str, ...], ...] = (
    ("02_patch_cnn", "03_fcn_mfb", "04_uncertainty", "05_ensembles"),
)
"""Chapters that run in this order (04 and 05 reuse the models 02 and 03 train)."""

CHAPTER_SECONDS: dict[str, float] = {
    # seconds of the default profile on one core of the book's 2-core machine (the chapters'
    # own wall times): the longest groups are started first
    "02_patch_cnn": 800, "03_fcn_mfb": 400, "04_uncertainty": 360, "05_ensembles": 200,
    "06_uce": 700, "07_efm": 800, "08_cse_unet": 1200, "09_distance_loss": 750,
}


def schedule(names: Sequence[str]) -> tuple[list[str], list[list[str]], list[str]]:
    """``(first, groups, last)``: the order chapters run in.

    Chapter 01 first (it makes the data), chapter 10 last (it reads every results file), the
    rest in groups that may run side by side, longest first.
    """
    first = [n for n in names if n.startswith("01_")]
    last = [n for n in names if n.startswith("10_")]
    middle = [n for n in names if n not in first and n not in last]
    groups: list[list[str]] = []
    for chain in CHAINS:
        group = [n for n in chain if n in middle]
        if group:
            groups.append(group)
    chained = {n for g in groups for n in g}
    groups += [[n] for n in middle if n not in chained]
    groups.sort(key=lambda g: -sum(CHAPTER_SECONDS.get(n, 300.0) for n in g))
    return first, groups, last


def run_book(*, profile: str = "default", dataset: str = "synthetic", device: str = "auto",
             only: Sequence[str] | None = None, build: bool = True,
             extra: dict[str, Any] | None = None, threads: int | str | None = None,
             jobs: int = 1) -> int:
    """Execute the chosen chapters, then build the book. Returns a process exit code.

    A failing chapter is reported by name; the others still run and keep their results.
    ``jobs`` chapters run side by side (see :func:`schedule`), each kernel with ``threads``
    threads (None: ``AERIALSEG_THREADS``, ``OMP_NUM_THREADS``, else the cores divided by
    ``jobs``) and ``OMP_WAIT_POLICY`` passive unless set (see :mod:`aerialseg.threads`).
    Small models train faster as two one-thread runs side by side than as one two-thread
    run (``bench/bench_threads.py``).
    """
    from concurrent.futures import ThreadPoolExecutor

    from aerialseg.profiles import check_profile

    check_profile(profile)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    names = select_chapters(only)
    suffix = "" if dataset == "synthetic" else f"__{dataset}"
    params = {"profile": profile, "dataset": dataset, "device": device, **(extra or {})}
    runs: list[ChapterRun] = []
    if threads is None and jobs > 1 and not (os.environ.get("AERIALSEG_THREADS")
                                             or os.environ.get("OMP_NUM_THREADS")):
        threads = max(1, (os.cpu_count() or 1) // jobs)
    origin = None if threads is None else f"aerialseg book run --threads {threads}"

    def run_group(group: Sequence[str]) -> list[ChapterRun]:
        out = []
        for name in group:
            print(f"[book] running {name} (profile={profile}, dataset={dataset}) ...",
                  flush=True)
            run = run_chapter(name, parameters=params, suffix=suffix)
            status = "ok" if run.error is None else "FAILED"
            print(f"[book] {name}: {status} in {run.seconds:.0f} s", flush=True)
            out.append(run)
        return out

    first, groups, last = schedule(names)
    t0 = time.perf_counter()
    with child_thread_env(threads, origin=origin) as desc:
        print(f"[book] {describe(desc)}; {jobs} chapter(s) at a time", flush=True)
        runs += run_group(first)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for part in pool.map(run_group, groups):
                runs += part
        runs += run_group(last)
    print(f"[book] chapters took {time.perf_counter() - t0:.0f} s in all", flush=True)
    failed = [r for r in runs if r.error]
    for r in runs:
        print(f"  {r.name:24s} {r.seconds:7.1f} s  {'FAILED' if r.error else 'ok'}")
    if failed:
        for r in failed:
            print(f"\n[book] chapter {r.name} failed (its partial output is {r.output}):\n"
                  f"{r.error}", file=sys.stderr)
        return 1
    # the introduction's key findings and edition line, from the results files of the
    # chapters the book shows (another dataset's chapters are written beside them)
    from aerialseg.findings import write_generated

    try:
        if not suffix:
            write_generated(dataset, profile)
    except Exception as exc:  # noqa: BLE001 - the chapters ran; say why the intro is stale
        print(f"[book] the introduction's findings were not rewritten: {exc}", file=sys.stderr)
    if build:
        try:
            build_book()
        except subprocess.CalledProcessError:
            traceback.print_exc()
            print("[book] jupyter-book build failed (see the warnings above)", file=sys.stderr)
            return 1
        print(f"[book] built {repo_root() / '_build' / 'html' / 'index.html'}")
    return 0
