"""The browser check, the runner's post-processing and the book's conventions, end to end.

The fast tests run the content checks on HTML snippets. The ``book`` tests execute the demo
chapters of ``tests/fixtures/book`` with papermill, post-process them as the runner does,
build a small book with the real ``_config.yml`` (CSS, bibliography style, stderr removal)
and read it in headless Chromium.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aerialseg import bookcheck
from aerialseg.paths import repo_root

FIXTURES = Path(__file__).parent / "fixtures" / "book"


# --------------------------------------------------------------------------- content checks

def _page(body: str) -> str:
    return f'<html><body><article class="bd-article">{body}</article></body></html>'


def test_content_checks_flag_each_problem():
    html = _page(
        '<div class="cell_output"><pre>epoch 3/12 loss 0.41</pre></div>'
        '<div class="cell_output"><pre>saved to /work/main/runs/x.pt</pre></div>'
        '<div class="cell_output"><pre>UserWarning: nothing</pre></div>'
        '<div class="cell_output"><pre>site-packages in .venv/lib</pre></div>'
        '<div class="cell_output"><img src="../_images/ab.png" alt="../_images/ab.png"></div>'
        '<table><tr><td>...</td><td>the fine-tuning gain is due…</td></tr></table>')
    kinds = [(p.kind, p.detail.split(":")[0]) for p in bookcheck.content_problems(html, "p")]
    assert ("output", "an output shows a training log ('epoch')") in kinds
    assert ("output", "an output shows a machine path") in kinds
    assert ("output", "an output shows a warning") in kinds
    assert ("output", "an output shows '.venv'") in kinds
    assert sum(k == "image" for k, _ in kinds) == 2  # no caption, path as alt
    assert sum(k == "table" for k, _ in kinds) == 2


def test_content_checks_pass_a_clean_page():
    html = _page(
        '<div class="cell_output"><pre>3 runs reused; results written to results/x.nc</pre>'
        '</div><figure><img src="a.png" alt="Bars of F1 per class for two methods.">'
        '<figcaption><p>Figure 3.1: F1 per class.</p></figcaption></figure>'
        '<p>Epochs are described in the text, not in outputs.</p>'
        '<table><tr><td>91.8 ± 0.3</td></tr></table>')
    assert bookcheck.content_problems(html, "p") == []


def test_report_groups_by_page():
    probs = [bookcheck.Problem("a.html", "image", "x"), bookcheck.Problem("a.html", "output", "y"),
             bookcheck.Problem("b.html", "image", "z")]
    text = bookcheck.report(probs)
    assert "3 problem(s) on 2 page(s)" in text and "a.html (image 1, output 1)" in text
    assert bookcheck.report([]) == "book check: no problem found"


# --------------------------------------------------------------------------- the demo book

def _execute(src: Path, out: Path, parameters: dict) -> None:
    import jupytext
    import papermill

    from aerialseg.pages import postprocess_file

    nb = out.with_suffix(".src.ipynb")
    jupytext.write(jupytext.read(src), nb, fmt="ipynb")
    papermill.execute_notebook(str(nb), str(out), parameters=parameters, kernel_name="python3",
                               cwd=str(out.parent), progress_bar=False, execution_timeout=300)
    nb.unlink()
    postprocess_file(out)


@pytest.fixture(scope="session")
def demo_book(tmp_path_factory):
    """The demo chapters executed, post-processed and built with the book's configuration."""
    root = tmp_path_factory.mktemp("demo_book")
    src = repo_root()
    shutil.copy(src / "_config.yml", root / "_config.yml")
    shutil.copy(FIXTURES / "_toc.yml", root / "_toc.yml")
    book = root / "book"
    (book / "chapters").mkdir(parents=True)
    for name in ("_ext", "_static"):
        shutil.copytree(src / "book" / name, book / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("references.bib", "bibliography.md"):
        shutil.copy(src / "book" / name, book / name)
    shutil.copy(FIXTURES / "intro.md", book / "intro.md")
    _execute(FIXTURES / "03_demo.py", book / "chapters" / "03_demo.ipynb", {"profile": "smoke"})
    _execute(FIXTURES / "04_bad.py", book / "chapters" / "04_bad.ipynb", {})
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", str(root), "--builder", "html", "-W", "-n",
                           "--keep-going"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root / "_build" / "html"


@pytest.mark.book
def test_demo_chapter_reads_like_a_publication(demo_book):
    from bs4 import BeautifulSoup

    page = (demo_book / "book" / "chapters" / "03_demo.html").read_text()
    soup = BeautifulSoup(page, "html.parser")
    article = soup.select_one("article.bd-article")
    text = article.get_text(" ")
    outputs = " ".join(" ".join(o.get_text(" ").split()) for o in article.select(".cell_output"))
    # parameters: input behind a toggle; papermill's injected cell and stderr gone
    assert soup.select("div.cell.tag_parameters.tag_hide-input")
    assert "injected" not in page and "# Parameters" not in text
    assert "stderr" not in outputs and "Warning" not in outputs
    assert "results written to results/demo.nc" in outputs
    # summary: its output without its code
    assert "The demo ran in the smoke profile" in " ".join(text.split())
    assert "display(Markdown" not in text
    # three numbered figures with captions and the alt text given
    figures = article.select("figure")
    assert len(figures) == 3
    captions = [" ".join(f.figcaption.get_text(" ").split()) for f in figures]
    assert captions[0].startswith("Figure 1.1") and "numbered caption" in captions[0]
    assert captions[2].startswith("Figure 1.3") and "Panel grid 2" in captions[2]
    assert figures[0].img["alt"].startswith("Two rising curves")
    assert "text between the two figures" in text
    assert article.select_one('a[href="#demo-line"]') is not None  # {numref} resolved
    # tables: numbered, split to fit, every row, "–" explained
    flat = " ".join(text.split())
    assert "Table 3.1 A wide" in flat and "Table 3.2 All" in flat
    assert "(continued)" in text and "– not computed in this demo." in text
    assert len(article.select("div.aerialseg-table")[1].select("tbody tr")) == 72


@pytest.mark.book
def test_browser_check_passes_the_demo_chapter_and_flags_the_bad_one(demo_book, tmp_path):
    if bookcheck.find_chromium() is None:
        pytest.skip("chromium not installed (apt-get install chromium): browser check skipped")
    good = bookcheck.check_book(demo_book, pages=["03_demo", "intro", "bibliography"],
                                screenshots=tmp_path,
                                screenshot_pages=("book/chapters/03_demo.html",))
    assert good == [], bookcheck.report(good)
    shot = tmp_path / "book_chapters_03_demo.png"
    assert shot.exists() and shot.stat().st_size > 20_000
    bad = bookcheck.check_book(demo_book, pages=["04_bad"])
    found = {(p.kind, p.detail.split(":")[0]) for p in bad}
    assert ("output", "an output shows a training log ('epoch')") in found
    assert ("output", "an output shows a machine path") in found
    assert ("image", "image " + next(d for k, d in found if k == "image")[6:]) in found
    assert any(k == "table" for k, _ in found)  # pandas elided the 80 rows
    assert any(k == "clipped" for k, _ in found)  # the 30-column frame is cut


@pytest.mark.book
def test_bibliography_is_author_year(demo_book):
    page = (demo_book / "book" / "bibliography.html").read_text()
    assert "Kampffmeyer <em>et al.</em>, 2016" in page or "Kampffmeyer et al., 2016" in page
    assert "[KSJ16]" not in page and "HumansitLoop" not in page
    assert "10.1109/CVPRW.2016.90" in page
    intro = (demo_book / "book" / "intro.html").read_text()
    assert "Kampffmeyer" in intro and "2016" in intro


def test_bibliography_labels_are_author_year():
    from pybtex.database import parse_file

    sys.path.insert(0, str(repo_root() / "book" / "_ext"))
    try:
        import aerialseg_bib
    finally:
        sys.path.pop(0)
    bib = parse_file(str(repo_root() / "book" / "references.bib"))
    entries = list(aerialseg_bib.AuthorYearSortingStyle().sort(bib.entries.values()))
    labels = list(aerialseg_bib.AuthorYearLabelStyle().format_labels(entries))
    assert "Kampffmeyer et al., 2016" in labels
    assert "Vlasenko and Dashkevych, 2025" in labels and "Mazur, 2026" in labels
    assert "Humans in the Loop and MBRSC, 2020" in labels
    assert labels == sorted(labels, key=str.casefold)  # the list is in author order
    assert len(set(labels)) == len(labels)
    for entry in bib.entries.values():  # no internal notes, complete entries
        assert "study notes" not in entry.fields.get("note", "")
        assert entry.fields.get("title") and entry.fields.get("year")


@pytest.mark.book
def test_cli_check(demo_book, capsys):
    if bookcheck.find_chromium() is None:
        pytest.skip("chromium not installed (apt-get install chromium): browser check skipped")
    from aerialseg.cli import main

    assert main(["book", "check", "--html", str(demo_book), "--only", "03_demo"]) == 0
    assert "no problem found" in capsys.readouterr().out
    assert main(["book", "check", "--html", str(demo_book), "--only", "04_bad"]) == 1
    assert "04_bad.html (" in capsys.readouterr().out
