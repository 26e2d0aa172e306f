"""Every chapter executes in the smoke profile (papermill), then the book builds from them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import check_chapter_results

from aerialseg import bookcheck
from aerialseg.book import chapter_names, edition_chapters, filtered_toc, run_chapter, toc_pages
from aerialseg.paths import repo_root

CHAPTERS = chapter_names()



@pytest.fixture(scope="session")
def executed(tmp_path_factory):
    """Folder collecting the smoke-executed chapters (shared with the book build test)."""
    return tmp_path_factory.mktemp("chapters")


@pytest.fixture(scope="session")
def chapter_env(tmp_path_factory):
    """One run store and results folder for the whole chapter session (chapters reuse runs)."""
    base = tmp_path_factory.mktemp("chapter_store")
    return {"AERIALSEG_RUNS": str(base / "runs"), "AERIALSEG_RESULTS": str(base / "results")}


@pytest.mark.chapter
@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_smoke(name, executed, chapter_env, monkeypatch):
    for k, v in chapter_env.items():
        monkeypatch.setenv(k, v)
    run = run_chapter(name, parameters={"profile": "smoke", "device": "cpu"},
                      output_dir=executed, timeout=600)
    assert run.error is None, f"chapter {name} failed:\n{run.error}"
    results = Path(chapter_env["AERIALSEG_RESULTS"]) / f"{name}__synthetic__smoke.nc"
    assert results.exists(), f"chapter {name} wrote no results file"
    check_chapter_results(name, results, "synthetic")


@pytest.mark.book
def test_book_builds(executed, tmp_path):
    missing = [n for n in CHAPTERS if not (executed / f"{n}.ipynb").exists()]
    if missing:
        pytest.skip(f"chapters not executed in this session: {missing}")
    root = tmp_path / "book_root"
    root.mkdir()
    src = repo_root()
    shutil.copy(src / "_config.yml", root / "_config.yml")
    # the TOC of the chapters executed here (the synthetic smoke edition): CI needs no
    # Dubai pages
    filtered_toc({f"book/chapters/{n}" for n in CHAPTERS}, root / "_toc.yml",
                 toc=src / "_toc.yml")
    shutil.copytree(src / "book", root / "book", ignore=shutil.ignore_patterns("chapters"))
    (root / "book" / "chapters").mkdir()
    for n in CHAPTERS:
        shutil.copy(executed / f"{n}.ipynb", root / "book" / "chapters" / f"{n}.ipynb")
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", str(root), "--builder", "html", "-W", "-n",
                           "--keep-going"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    html = root / "_build" / "html"
    assert (html / "index.html").exists()
    for n in CHAPTERS:
        page = (html / "book" / "chapters" / f"{n}.html").read_text()
        assert "<img" in page, f"{n} shows no figure"
    check_links_and_images(html)
    check_in_browser(html, tmp_path)
    check_reader_view(html, tmp_path)


def check_reader_view(html: Path, tmp: Path) -> None:
    """:func:`aerialseg.bookcheck.check_book` on every page; screenshots kept.

    Screenshots of the intro and chapters 03 and 10 at 1400 px go to
    ``$AERIALSEG_SCREENSHOTS`` (``.ci/run`` sets ``_build/screenshots``, which CI keeps).
    """
    import os

    if bookcheck.find_chromium() is None:
        pytest.skip("chromium not installed (apt-get install chromium): browser check skipped")
    shots = Path(os.environ.get("AERIALSEG_SCREENSHOTS", tmp / "screenshots"))
    problems = bookcheck.check_book(html, screenshots=shots)
    for rel in bookcheck.SCREENSHOT_PAGES:
        shot = shots / rel.replace("/", "_").replace(".html", ".png")
        assert shot.exists() and shot.stat().st_size > 20_000, f"no screenshot of {rel}"

    assert not problems, bookcheck.report(problems)


def check_links_and_images(html: Path) -> None:
    """Every local image and link of the built book points to a file that exists."""
    import re
    from urllib.parse import unquote, urlparse

    broken = []
    for page in html.rglob("*.html"):
        if "_static" in page.parts:  # theme templates, not pages
            continue
        text = page.read_text(errors="replace")
        for attr, url in re.findall(r'(src|href)="([^"]+)"', text):
            u = urlparse(url)
            if u.scheme in ("http", "https", "mailto", "data", "javascript") or not u.path:
                continue
            target = (page.parent / unquote(u.path)).resolve()
            if not target.exists():
                broken.append(f"{page.relative_to(html)}: {attr}={url}")
    assert not broken, "broken links/images:\n" + "\n".join(broken[:20])


def check_in_browser(html: Path, tmp: Path) -> None:
    """Open pages in headless Chromium: math is typeset offline, no raw TeX, screenshots."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed (apt-get install chromium): browser check skipped")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp / 'chrome'}", "--virtual-time-budget=8000"]
    for rel in ("book/intro.html", "book/chapters/03_fcn_mfb.html"):
        url = (html / rel).as_uri()
        dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True,
                             text=True, timeout=120).stdout
        assert "<img" in dom or rel.endswith("intro.html")
        if rel.endswith("03_fcn_mfb.html"):
            assert "mjx-container" in dom, "MathJax did not typeset the math (offline copy?)"
            assert "\\frac" not in dom.split("<mjx-container")[0], "raw TeX left in the page"
        shot = tmp / (Path(rel).stem + ".png")
        subprocess.run([chromium, *flags, "--window-size=1400,1600", f"--screenshot={shot}",
                        url], capture_output=True, timeout=120)
        assert shot.exists() and shot.stat().st_size > 20_000, f"no screenshot of {rel}"


def test_toc_lists_every_chapter_and_the_dubai_edition():
    listed = [p.split("book/chapters/")[1] for p in toc_pages() if "book/chapters/" in p]
    main = [p for p in listed if "__" not in p]
    dubai = [p for p in listed if p.endswith("__dubai")]
    assert main == CHAPTERS, "_toc.yml and notebooks/ disagree"
    assert dubai == [f"{n}__dubai" for n in edition_chapters(CHAPTERS, "dubai")], (
        "the Dubai edition's part of _toc.yml lists chapters 01-09")
    assert len(main) + len(dubai) == len(listed)


def test_filtered_toc_keeps_the_executed_chapters(tmp_path):
    import yaml

    keep = {f"book/chapters/{n}" for n in CHAPTERS[:2]}
    path = filtered_toc(keep, tmp_path / "_toc.yml")
    pages = toc_pages(path)
    assert [p for p in pages if p.startswith("book/chapters/")] == sorted(keep)
    assert "book/protocol" in pages and "book/bibliography" in pages
    captions = [p["caption"] for p in yaml.safe_load(path.read_text())["parts"]]
    assert "The Dubai edition (real imagery)" not in captions  # no page left: part dropped


def test_paired_notebooks_have_no_outputs_and_match_sources():
    import json

    import jupytext

    for name in CHAPTERS:
        ipynb = repo_root() / "notebooks" / f"{name}.ipynb"
        assert ipynb.exists(), f"{ipynb} missing: run jupytext --sync notebooks/{name}.py"
        nb = json.loads(ipynb.read_text())
        assert not any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
        src = jupytext.read(repo_root() / "notebooks" / f"{name}.py")
        assert [c.source for c in src.cells] == ["".join(c["source"]) for c in nb["cells"]], (
            f"{ipynb.name} is out of date with {name}.py: run jupytext --sync")
        tags = [c.get("metadata", {}).get("tags", []) for c in nb["cells"]]
        assert sum("parameters" in t for t in tags) == 1
