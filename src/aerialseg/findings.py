"""The introduction's generated sections: key findings and the edition line, from results.

``book/intro.md`` includes two Markdown files that nobody types:

* ``book/_generated/findings.md`` (:func:`findings_markdown`): the claims of the papers and
  the verdict the study's one rule (:mod:`aerialseg.stats`) gives each, as sentences. They
  come from the comparison chapter's results file when it holds them (the verdicts chapter
  10 showed), else from judging every claim on the chapters' results files;
* ``book/_generated/edition.md`` (:func:`edition_markdown`): which profile, dataset,
  hardware, library versions and commit produced the results files of this edition.

Without results files both say so (:data:`NO_RESULTS`). The chapter runner writes them after
the chapters ran (:func:`write_generated`; ``aerialseg book findings`` writes them alone).
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import xarray as xr

from aerialseg import compare, display, stats
from aerialseg.paths import repo_root, results_dir
from aerialseg.results import parse_results_name

GENERATED = Path("book") / "_generated"
"""Folder (under the checkout) of the generated Markdown files."""
NO_RESULTS = ("*No results yet for this edition: run the chapters (`make book`) and this "
              "section is written from their results files.*")
"""What the generated sections say when there are no results files."""


def _files(dataset: str, profile: str, folder: Path) -> list[Path]:
    out = []
    for path in sorted(folder.glob(f"*__{dataset}__{profile}*.nc")):
        name = parse_results_name(path)
        if name is not None and (name.dataset, name.profile) == (dataset, profile) \
                and name.variant is None:
            out.append(path)
    return out


def _attrs(path: Path) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with xr.open_dataset(path) as ds:
            return dict(ds.attrs)


def _list(words: Sequence[str]) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def edition_markdown(dataset: str = "synthetic", profile: str = "default",
                     folder: str | Path | None = None) -> str:
    """One paragraph: the profile, data, hardware, versions and commit of the results."""
    base = Path(folder) if folder else results_dir()
    files = _files(dataset, profile, base)
    if not files:
        return NO_RESULTS + "\n"
    attrs = [_attrs(p) for p in files]
    hardware = sorted({a.get("hardware", "") for a in attrs
                       if a.get("device") != "none (reads results files)"} - {""})
    torch = sorted({str(a["torch_version"]).split("+")[0] for a in attrs
                    if a.get("torch_version")})
    commits = sorted({str(a["git_commit"])[:7] for a in attrs if a.get("git_commit")})
    dates = sorted(datetime.fromisoformat(a["created"]).date() for a in attrs
                   if a.get("created"))
    data = ("the embedded synthetic data" if dataset == "synthetic"
            else f"the {dataset} dataset")
    facts = [f"hardware: {'; '.join(hardware) if hardware else 'not recorded'}"]
    if torch:
        facts.append(f"PyTorch {_list(torch)}")
    if dates:
        first, last = dates[0].strftime("%-d %B %Y"), dates[-1].strftime("%-d %B %Y")
        facts.append(first if first == last else f"{first} to {last}")
    if commits:
        facts.append(f"commit{'s' if len(commits) > 1 else ''} {_list(commits)}")
    facts.append(f"{len(files)} results files")
    text = (f"The results in this edition were computed in the **`{profile}` profile** on "
            f"{data} ({'; '.join(facts)}).")
    if profile != "full":
        text += (" This profile is sized for a laptop CPU: its numbers show the direction of "
                 "each effect, not paper-scale accuracy.")
    return text + "\n"


def _claim_rows(dataset: str, profile: str, base: Path) -> list[dict[str, Any]]:
    """Claims with their verdict sentences: chapter 10's, else judged here."""
    comparison = base / f"{compare.COMPARISON_CHAPTER}__{dataset}__{profile}.nc"
    if comparison.exists():
        rows = json.loads(_attrs(comparison).get("claims", "[]") or "[]")
        if rows and all("sentence" in r and "verdict" in r for r in rows):
            return rows
    from aerialseg.registry import claims

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = compare.load_all(dataset, profile, base)
    names = display.method_names(ds["method"].values)
    return compare.check_claims(ds, claims(), names=names).to_dict("records")


def findings_markdown(dataset: str = "synthetic", profile: str = "default",
                      folder: str | Path | None = None) -> str:
    """The key findings: each paper claim's verdict as a sentence, grouped by paper."""
    base = Path(folder) if folder else results_dir()
    if not _files(dataset, profile, base):
        return NO_RESULTS + "\n"
    try:
        rows = _claim_rows(dataset, profile, base)
    except FileNotFoundError:
        return NO_RESULTS + "\n"
    if not rows:
        return ("*The results of this edition hold no method that a paper's claim is "
                "about.*\n")
    counts = Counter(r["verdict"] for r in rows)
    summary = ", ".join(f"{counts[v]} {v}" for v in stats.VERDICTS if counts[v])
    lines = [f"Of the {len(rows)} claims of the papers that this edition tests, {summary} "
             "under the study's rule (paired bootstrap over seeds and spatial blocks, "
             f"{100 * stats.LEVEL:.0f} % intervals; see {{doc}}`protocol`).", ""]
    by_source: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_source.setdefault(str(r["source"]), []).append(r)
    for source, items in by_source.items():
        lines.append(f"**{source}**")
        lines.append("")
        lines += [f"- *{r['claim'][:1].upper()}{r['claim'][1:]}.* {r['sentence']}"
                  for r in items]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_generated(dataset: str = "synthetic", profile: str = "default", *,
                    folder: str | Path | None = None,
                    out_dir: str | Path | None = None) -> list[Path]:
    """Write ``findings.md`` and ``edition.md`` (default ``book/_generated/``)."""
    out = Path(out_dir) if out_dir else repo_root() / GENERATED
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, text in (("findings.md", findings_markdown(dataset, profile, folder)),
                        ("edition.md", edition_markdown(dataset, profile, folder))):
        path = out / fname
        path.write_text(text)
        written.append(path)
    return written


NEEDS: tuple[tuple[str, str, str, int], ...] = (
    ("Overall accuracy", "f1", "overall", 1),
    ("Small objects", "f1", "car", 1),
    ("Boundaries", "boundary_f1", "overall", 1),
    ("Calibration", "ece", "overall", -1),
)
"""The needs of :func:`which_method_table`: (need, metric, class, +1 higher is better)."""


def which_method_table(ds: xr.Dataset, *, protocol: str = "eroded",
                       methods: Sequence[str] | None = None,
                       needs: Sequence[tuple[str, str, str, int]] = NEEDS,
                       caption: str | None = None) -> Any:
    """Scaffold of chapter 10's "which method for which need": the best two per need.

    For each need (a metric of a class, or of the overall row), the two methods with the
    best mean over seeds, and, when the results hold it, the fastest at inference. Means
    only: the chapter adds intervals and verdicts (:func:`aerialseg.stats.method_interval`,
    :func:`aerialseg.stats.judge`) before drawing conclusions.

    Returns:
        An :class:`aerialseg.tables.Table` (need, metric, best, its score, runner-up, its
        score; scores in %).
    """
    import numpy as np
    import pandas as pd

    from aerialseg.tables import seed_mean, show_table

    chosen = [str(m) for m in (methods or ds["method"].values)]
    rows = []
    for need, metric, cls, sign in needs:
        if cls not in [str(c) for c in ds["class"].values] or \
                metric not in [str(m) for m in ds["metric"].values]:
            continue
        scored = [(m, seed_mean(ds, m, metric, cls, protocol=protocol)) for m in chosen]
        scored = sorted([s for s in scored if np.isfinite(s[1])], key=lambda s: -sign * s[1])
        if not scored:
            continue
        what = display.score_label(metric, cls)
        best, second = scored[0], scored[1] if len(scored) > 1 else ("", float("nan"))
        rows.append({"need": need, "measured by": what + (" (lower is better)" if sign < 0
                                                          else ""),
                     "best": best[0], "score": best[1], "runner-up": second[0],
                     "runner-up score": second[1]})
    if "pixels_per_second" in ds:
        speed = ds["pixels_per_second"].sel({"method": chosen}).mean("seed", skipna=True)
        ok = [(str(m), float(v)) for m, v in zip(chosen, speed.values, strict=True)
              if np.isfinite(v) and v > 0]
        ok.sort(key=lambda s: -s[1])
        if ok:
            second = ok[1] if len(ok) > 1 else ("", float("nan"))
            rows.append({"need": "Cost", "measured by": "inference (Mpx/s)", "best": ok[0][0],
                         "score": ok[0][1] / 1e6, "runner-up": second[0],
                         "runner-up score": second[1] / 1e6})
    df = pd.DataFrame(rows, columns=["need", "measured by", "best", "score", "runner-up",
                                     "runner-up score"])
    return show_table(df, caption=caption or (
        "Which method for which need: the two best methods on each criterion (mean over "
        "seeds; scores in %, throughput in Mpx/s). Means only: see the intervals and "
        "verdicts before choosing."),
        labels={"best": "method", "runner-up": "method"}, points=["score", "runner-up score"],
        na="no second method", split=None)
