import os
from pathlib import Path

import pytest

from aerialseg import book
from aerialseg.cli import main


def test_failed_chapter_is_named_and_others_still_run(monkeypatch, capsys):
    ran = []

    def fake_run(name, *, parameters, suffix=""):
        ran.append(name)
        err = "ValueError: boom" if name == "01_data" else None
        return book.ChapterRun(name, Path(f"/tmp/{name}.ipynb"), 0.1, err)

    monkeypatch.setattr(book, "run_chapter", fake_run)
    code = book.run_book(profile="smoke", build=False)
    assert code == 1
    assert sorted(ran) == book.chapter_names()  # the failure did not stop the others
    err = capsys.readouterr().err
    assert "chapter 01_data failed" in err and "boom" in err


def test_select_chapters_by_number():
    assert book.select_chapters(["3"]) == ["03_fcn_mfb"]
    with pytest.raises(ValueError, match="no chapter '77'"):
        book.select_chapters(["77"])


def test_cli_reports_bad_names(capsys, monkeypatch):
    # `train` applies the thread policy to this process: keep the suite's one thread and
    # restore the variables it sets
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY",
                "AERIALSEG_THREADS_SOURCE"):
        monkeypatch.setenv(key, os.environ.get(key, ""))
    monkeypatch.setenv("AERIALSEG_THREADS", "1")
    assert main(["book", "run", "--profile", "turbo", "--no-build"]) == 2
    assert "profile must be one of" in capsys.readouterr().err
    assert main(["data", "atlantis"]) == 2
    assert "unknown dataset 'atlantis'" in capsys.readouterr().err
    assert main(["train", "fcnn", "--profile", "smoke"]) == 2
    assert "unknown method 'fcnn'" in capsys.readouterr().err


def test_schedule_runs_the_data_first_the_comparison_last_and_keeps_chains():
    from aerialseg.book import chapter_names, schedule

    first, groups, last = schedule(chapter_names())
    assert first == ["01_data"] and last == ["10_comparison"]
    assert ["02_patch_cnn", "03_fcn_mfb", "04_uncertainty", "05_ensembles"] in groups
    flat = [n for g in groups for n in g]
    assert sorted(flat + first + last) == chapter_names()
    assert schedule(["03_fcn_mfb", "06_uce"]) == ([], [["06_uce"], ["03_fcn_mfb"]], [])


def test_the_dubai_edition_runs_chapters_1_to_9_beside_the_main_pages(monkeypatch, capsys):
    ran = []

    def fake_run(name, *, parameters, suffix=""):
        ran.append((name, suffix, parameters["dataset"]))
        return book.ChapterRun(name, Path(f"/tmp/{name}{suffix}.ipynb"), 0.1, None)

    written = []
    monkeypatch.setattr(book, "run_chapter", fake_run)
    import aerialseg.findings

    monkeypatch.setattr(aerialseg.findings, "write_generated",
                        lambda dataset=None, profile="default", **kw: written.append(
                            (dataset, profile)))
    assert book.run_book(profile="smoke", dataset="dubai", build=False) == 0
    names = [n for n, _, _ in ran]
    assert "10_comparison" not in names and len(names) == len(book.chapter_names()) - 1
    assert {s for _, s, _ in ran} == {"__dubai"} and {d for _, _, d in ran} == {"dubai"}
    assert "10_comparison compares every dataset" in capsys.readouterr().out
    assert written == [(None, "smoke")]  # the intro covers every dataset
    assert book.edition_suffix("synthetic") == "" and book.edition_suffix("dubai") == "__dubai"
    assert book.edition_chapters(["01_data", "10_comparison"], "synthetic") == [
        "01_data", "10_comparison"]


def test_build_leaves_out_pages_never_executed(tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "book"
    (root / "book" / "chapters").mkdir(parents=True)
    shutil.copy(book.repo_root() / "_toc.yml", root / "_toc.yml")
    for n in book.chapter_names():
        (root / "book" / "chapters" / f"{n}.ipynb").write_text("{}")
    missing = book.missing_pages(root)
    assert missing and all(p.endswith("__dubai") for p in missing)
    calls = []
    monkeypatch.setattr(book.subprocess, "run", lambda cmd, check: calls.append(cmd))
    book.build_book(root)
    cmd = calls[0]
    toc = Path(cmd[cmd.index("--toc") + 1])
    pages = book.toc_pages(toc)
    assert not any(p.endswith("__dubai") for p in pages)
    assert "book/chapters/10_comparison" in pages
