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


COMPARISON = "10_comparison"
"""The chapter that compares every dataset; it runs in the synthetic edition only."""

MAIN_EDITION = "synthetic"
"""The dataset of the book's main edition (pages ``NN_topic``); another dataset's chapters
are written beside them as ``NN_topic__<dataset>`` (the Dubai edition: ``__dubai``)."""


def edition_suffix(dataset: str) -> str:
    """``""`` for the main edition, ``"__<dataset>"`` for another dataset's pages."""
    return "" if dataset == MAIN_EDITION else f"__{dataset}"


def edition_chapters(names: Sequence[str], dataset: str) -> list[str]:
    """The chapters an edition runs: all of them, except chapter 10 outside the main one.

    Chapter 10 reads every dataset's results files and compares them side by side; it runs
    last in the synthetic edition (``make book``), never in another dataset's edition.
    """
    if dataset == MAIN_EDITION:
        return list(names)
    return [n for n in names if n != COMPARISON]


# --------------------------------------------------------------------------- the TOC

def toc_pages(toc: str | Path | None = None) -> list[str]:
    """Every ``file:`` entry of the table of contents (``book/chapters/03_fcn_mfb``, ...)."""
    import yaml

    data = yaml.safe_load(Path(toc or repo_root() / "_toc.yml").read_text())
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "file" in node:
                out.append(str(node["file"]))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(data)
    return out


def filtered_toc(keep: Any, dst: str | Path, *, toc: str | Path | None = None) -> Path:
    """Write a copy of the TOC that lists only the chapter pages ``keep`` accepts.

    Args:
        keep: a function ``page -> bool`` or a collection of pages
            (``"book/chapters/03_fcn_mfb"``); pages outside ``book/chapters/`` (intro,
            protocol, bibliography) are always kept, and a part left without chapters is
            dropped.
        dst: where to write the filtered ``_toc.yml``.
        toc: the TOC to filter (default the checkout's ``_toc.yml``).

    Returns:
        ``dst``.
    """
    import yaml

    accept = keep if callable(keep) else (lambda page, pages=set(keep): page in pages)
    data = yaml.safe_load(Path(toc or repo_root() / "_toc.yml").read_text())

    def wanted(entry: dict[str, Any]) -> bool:
        page = str(entry.get("file", ""))
        return not page.startswith("book/chapters/") or bool(accept(page))

    parts = []
    for part in data.get("parts", []):
        chapters = [c for c in part.get("chapters", []) if wanted(c)]
        if chapters:
            parts.append({**part, "chapters": chapters})
    data["parts"] = parts
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(yaml.safe_dump(data, sort_keys=False))
    return dst


def missing_pages(root: str | Path | None = None) -> list[str]:
    """Chapter pages the TOC lists that have no executed notebook under ``root``."""
    root = Path(root) if root else repo_root()
    return [p for p in toc_pages(root / "_toc.yml")
            if p.startswith("book/chapters/") and not (root / f"{p}.ipynb").exists()]


def build_book(root: str | Path | None = None, *, strict: bool = True,
               toc: str | Path | None = None) -> None:
    """``jupyter-book build`` (Jupyter Book 1.x, offline; warnings are errors if strict).

    Chapter pages that the TOC lists but that were never executed (e.g. the Dubai edition
    before ``make book DATASET=dubai`` ran) are left out of this build through a filtered
    TOC, with a line saying which (a missing page would otherwise fail the strict build).
    """
    root = Path(root) if root else repo_root()
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(root), "--builder", "html"]
    if toc is None:
        missing = missing_pages(root)
        if missing:
            print(f"[book] {len(missing)} page(s) of the TOC not executed, left out of this "
                  f"build: {', '.join(Path(p).name for p in missing)}", flush=True)
            toc = filtered_toc(lambda page: page not in set(missing),
                               root / "_build" / "_toc.yml", toc=root / "_toc.yml")
    if toc is not None:
        cmd += ["--toc", str(toc)]
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
    chosen = select_chapters(only)
    names = edition_chapters(chosen, dataset)
    if len(names) < len(chosen):
        print(f"[book] {COMPARISON} compares every dataset's results: it runs in the "
              f"{MAIN_EDITION} edition (`make book`), not in the {dataset} edition", flush=True)
    suffix = edition_suffix(dataset)
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
    # the introduction's key findings and edition line, from the results files of every
    # dataset of this profile (the synthetic edition and, beside it, the Dubai edition)
    from aerialseg.findings import write_generated

    try:
        write_generated(None, profile)
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
