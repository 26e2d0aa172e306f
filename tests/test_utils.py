"""Tests of :mod:`aerialseg.utils`."""


def test_git_commit_ignores_the_books_own_outputs(tmp_path, monkeypatch):
    import subprocess

    from aerialseg import paths, utils

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                       cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "a.nc").write_text("1")
    (tmp_path / "code.py").write_text("x = 1")
    git("add", ".")
    git("commit", "-qm", "c")
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path)
    sha = utils.git_commit()
    assert len(sha) == 40
    (tmp_path / "results" / "a.nc").write_text("2")  # a chapter rewrote its results
    assert utils.git_commit() == sha
    (tmp_path / "code.py").write_text("x = 2")  # the code changed
    assert utils.git_commit() == sha + "-dirty"
