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
from collections.abc import Mapping, Sequence
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


def _datasets(dataset: str | Sequence[str] | None, profile: str, base: Path) -> list[str]:
    """The datasets a generated section covers (None: every dataset with results files)."""
    if dataset is None:
        found = {n.dataset for p in base.glob(f"*__*__{profile}.nc")
                 if (n := parse_results_name(p)) is not None and n.profile == profile
                 and n.variant is None}
        first = [d for d in compare.DATASET_ORDER if d in found]
        return first + sorted(found - set(first))
    return [dataset] if isinstance(dataset, str) else list(dataset)


def _edition_sentence(dataset: str, profile: str, files: list[Path]) -> str:
    attrs = [_attrs(p) for p in files]
    hardware = sorted({a.get("hardware", "") for a in attrs
                       if a.get("device") != "none (reads results files)"} - {""})
    torch = sorted({str(a["torch_version"]).split("+")[0] for a in attrs
                    if a.get("torch_version")})
    commits = sorted({str(a["git_commit"])[:7] for a in attrs if a.get("git_commit")})
    dates = sorted(datetime.fromisoformat(a["created"]).date() for a in attrs
                   if a.get("created"))
    facts = [f"hardware: {'; '.join(hardware) if hardware else 'not recorded'}"]
    if torch:
        facts.append(f"PyTorch {_list(torch)}")
    if dates:
        first, last = dates[0].strftime("%-d %B %Y"), dates[-1].strftime("%-d %B %Y")
        facts.append(first if first == last else f"{first} to {last}")
    if commits:
        facts.append(f"commit{'s' if len(commits) > 1 else ''} {_list(commits)}")
    facts.append(f"{len(files)} results files")
    return f"{_data_words(dataset)} ({'; '.join(facts)})"


def _data_words(dataset: str) -> str:
    return {"synthetic": "the embedded synthetic data",
            "dubai": "the Dubai aerial set (real RGB imagery)"}.get(
        dataset, f"the {dataset} dataset")


def edition_markdown(dataset: str | Sequence[str] | None = "synthetic",
                     profile: str = "default", folder: str | Path | None = None) -> str:
    """One paragraph: the profile, data, hardware, versions and commit of the results.

    ``dataset`` may name several datasets (or None: every dataset with results files); each
    gets its own facts.
    """
    base = Path(folder) if folder else results_dir()
    parts = [(d, _files(d, profile, base)) for d in _datasets(dataset, profile, base)]
    parts = [(d, f) for d, f in parts if f]
    if not parts:
        return NO_RESULTS + "\n"
    text = (f"The results in this edition were computed in the **`{profile}` profile** on "
            + _list([_edition_sentence(d, profile, f) for d, f in parts]) + ".")
    if profile != "full":
        text += (" This profile is sized for a laptop CPU: its numbers show the direction of "
                 "each effect, not paper-scale accuracy.")
    return text + "\n"


def _claim_rows(dataset: str, profile: str, base: Path) -> list[dict[str, Any]]:
    """Claims with their verdict sentences: chapter 10's, else judged here.

    Chapter 10's stored verdicts are used when its file is newer than every results file it
    read; otherwise (a chapter re-ran since) the claims are judged here by the same rule,
    with the same sanity flags.
    """
    comparison = base / f"{compare.COMPARISON_CHAPTER}__{dataset}__{profile}.nc"
    inputs = [p for p in _files(dataset, profile, base) if p != comparison]
    if comparison.exists() and all(p.stat().st_mtime <= comparison.stat().st_mtime
                                   for p in inputs):
        rows = json.loads(_attrs(comparison).get("claims", "[]") or "[]")
        if rows and all("sentence" in r and "verdict" in r for r in rows):
            return rows
    from aerialseg.registry import claims

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = compare.load_all(dataset, profile, base)
    names = display.method_names(ds["method"].values)
    return compare.check_claims(ds, claims(), names=names, include_missing=True,
                                flags=compare.sanity_flags(ds)).to_dict("records")


def _counts(rows: Sequence[dict[str, Any]]) -> str:
    counts = Counter(r["verdict"] for r in rows)
    return ", ".join(f"{counts[v]} {v}" for v in stats.VERDICTS if counts[v])


def findings_markdown(dataset: str | Sequence[str] | None = "synthetic",
                      profile: str = "default", folder: str | Path | None = None) -> str:
    """The key findings: each paper claim's verdict as a sentence, grouped by paper.

    With several datasets (``dataset`` a list, or None: every dataset with results files),
    each claim gets one sentence per dataset.
    """
    base = Path(folder) if folder else results_dir()
    per: dict[str, list[dict[str, Any]]] = {}
    for d in _datasets(dataset, profile, base):
        if not _files(d, profile, base):
            continue
        try:
            rows = _claim_rows(d, profile, base)
        except FileNotFoundError:
            continue
        if rows:
            per[d] = rows
    if not per:
        if any(_files(d, profile, base) for d in _datasets(dataset, profile, base)):
            return ("*The results of this edition hold no method that a paper's claim is "
                    "about.*\n")
        return NO_RESULTS + "\n"
    rule = ("under the study's rule (paired bootstrap over seeds and spatial blocks, "
            f"{100 * stats.LEVEL:.0f} % intervals; see {{doc}}`protocol`)")
    if len(per) == 1:
        (d, rows), = per.items()
        lines = [f"Of the {len(rows)} claims of the papers that this edition tests, "
                 f"{_counts(rows)} {rule}.", ""]
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
    lines = ["Of the papers' claims, "
             + _list([f"on {_data_words(d)} {_counts(rows)}" for d, rows in per.items()])
             + f" {rule}.", ""]
    order: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for d, rows in per.items():
        for r in rows:
            order.setdefault((str(r["source"]), str(r["claim"])), {})[d] = r
    source = None
    for (src, claim), by_data in order.items():
        if src != source:
            if source is not None:
                lines.append("")
            lines += [f"**{src}**", ""]
            source = src
        lines.append(f"- *{claim[:1].upper()}{claim[1:]}.*")
        for d in per:
            r = by_data.get(d)
            if r is not None:
                lines.append(f"  - {compare.dataset_name(d)}: {r['sentence']}")
    return "\n".join(lines).rstrip() + "\n"


def write_generated(dataset: str | Sequence[str] | None = None, profile: str = "default",
                    *, folder: str | Path | None = None,
                    out_dir: str | Path | None = None) -> list[Path]:
    """Write ``findings.md`` and ``edition.md`` (default ``book/_generated/``).

    ``dataset`` None covers every dataset with results files of ``profile`` (the synthetic
    and the Dubai editions).
    """
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
                       caption: str | None = None,
                       flags: Mapping[str, str | None] | None = None) -> Any:
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

    chosen = [str(m) for m in (methods or ds["method"].values)
              if not (flags or {}).get(str(m))]  # flagged methods are never recommended
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


# --------------------------------------------------------------------------- which method

SYNTHESIS_NEEDS: tuple[tuple[str, str, str, int], ...] = (
    ("Accuracy", "f1", "overall", 1),
    ("Small objects", "f1", "car", 1),
    ("Boundaries", "boundary_f1", "overall", 1),
    ("Calibration", "ece", "overall", -1),
    ("Inference speed", "inference", "cost", 1),
    ("Training cost", "training", "cost", -1),
)
"""Chapter 10's needs: (need, metric, class, +1 higher is better); class ``cost`` reads
:func:`aerialseg.compare.cost_frame` (``inference``: Mpx/s, ``training``: seconds)."""

WHICH_COLUMNS = ("need", "metric", "class", "sign", "available", "recommended", "score",
                 "low", "high", "runner_up", "runner_score", "lead", "lead_low", "lead_high",
                 "lead_verdict", "lead_seeds", "excluded", "excluded_score",
                 "excluded_reason", "candidates")
"""Columns of :func:`which_method`."""


def synthesis_candidates(ds: xr.Dataset, *, exclude: Sequence[str] = ("pixel_baseline",)
                         ) -> list[str]:
    """The methods a recommendation may name: each run once, no sanity baseline."""
    dup = compare.duplicates(ds)
    return [str(m) for m in ds["method"].values if str(m) not in dup and
            str(m) not in set(exclude)]


def which_method(ds: xr.Dataset, *, flags: Mapping[str, str | None] | None = None,
                 protocol: str = "eroded", exclude: Sequence[str] = ("pixel_baseline",),
                 needs: Sequence[tuple[str, str, str, int]] = SYNTHESIS_NEEDS) -> Any:
    """For each need, the method to recommend, its runner-up and the interval of its lead.

    Candidates are :func:`synthesis_candidates`; a method with a sanity flag (``flags``,
    e.g. :func:`aerialseg.compare.sanity_flags`: not converged, below the per-pixel
    baseline) is never recommended, but when it scores higher than the recommendation it is
    named in ``excluded`` with its reason. Scores are means over seeds on the validation
    scenes (the ranking and the lead are measured on the same scenes, so the lead is if
    anything optimistic); for scores a confusion matrix gives, the mean's 95 % interval
    (:func:`aerialseg.stats.method_interval`) and the lead over the runner-up judged by the
    study's rule (:func:`aerialseg.stats.judge`: ``lead_verdict`` "supported" means the
    lead's interval excludes 0).

    Returns:
        A DataFrame with :data:`WHICH_COLUMNS` (scores in % or Mpx/s or s; ``available``
        False with ``excluded_reason`` when the data cannot answer the need, e.g. no car
        class).
    """
    import numpy as np
    import pandas as pd

    from aerialseg.tables import seed_mean

    flags = dict(flags or {})
    cands = synthesis_candidates(ds, exclude=exclude)
    classes = {str(c) for c in ds["class"].values}
    metrics = {str(m) for m in ds["metric"].values}
    cost = compare.cost_frame(ds, methods=cands)
    rows = []
    for need, metric, cls, sign in needs:
        row: dict[str, Any] = dict.fromkeys(WHICH_COLUMNS)
        row.update(need=need, metric=metric, cls=cls, sign=sign, available=True,
                   candidates=len(cands))
        row["class"] = row.pop("cls")
        if cls == "cost":
            col = "inference (Mpx/s)" if metric == "inference" else "training (s)"
            scored = [(m, float(cost.loc[m, col])) for m in cands if m in cost.index]
            # an evaluation of another method's runs did not train: no training cost of its own
            if metric == "training":
                scored = [(m, v) for m, v in scored if not cost.loc[m, "same_runs_as"]]
        elif cls not in classes or metric not in metrics:
            row.update(available=False, excluded_reason=(
                f"these data have no {display.class_name(cls).lower()} class"
                if cls not in classes else f"{metric} is not recorded"))
            rows.append(row)
            continue
        else:
            scored = [(m, seed_mean(ds, m, metric, cls, protocol=protocol)) for m in cands]
        scored = sorted([x for x in scored if np.isfinite(x[1])], key=lambda x: -sign * x[1])
        ok = [x for x in scored if not flags.get(x[0])]
        if not scored:
            row.update(available=False, excluded_reason="no method has this score")
            rows.append(row)
            continue
        if ok:
            best = ok[0]
            row.update(recommended=best[0], score=best[1])
            if len(ok) > 1:
                row.update(runner_up=ok[1][0], runner_score=ok[1][1])
        top = scored[0]
        if flags.get(top[0]) and (not ok or sign * top[1] > sign * ok[0][1]):
            row.update(excluded=top[0], excluded_score=top[1],
                       excluded_reason=compare.flag_label(flags[top[0]]))
        recomputable = cls != "cost" and "confusion" in ds and (
            (cls == stats.OVERALL and metric in stats.OVERALL_METRICS)
            or (cls != stats.OVERALL and metric in stats.CLASS_METRICS))
        if ok and recomputable:
            est = stats.method_interval(ds, ok[0][0], metric=metric, cls=cls,
                                        protocol=protocol)
            row.update(low=100 * est.low, high=100 * est.high)
            if len(ok) > 1:
                v = stats.judge(ds, {"method": ok[0][0], "baseline": ok[1][0],
                                     "metric": metric, "cls": cls, "direction": sign},
                                protocol=protocol)
                row.update(lead=100 * v.estimate * sign, lead_low=100 * v.low,
                           lead_high=100 * v.high, lead_verdict=v.verdict,
                           lead_seeds=v.n_seeds)
        elif ok and len(ok) > 1:
            row.update(lead=sign * (ok[0][1] - ok[1][1]))
        rows.append(row)
    return pd.DataFrame(rows, columns=list(WHICH_COLUMNS))


def _unit(metric: str) -> str:
    return {"inference": " Mpx/s", "training": " s"}.get(metric, " %")


def _score(v: Any, metric: str) -> str:
    from aerialseg.tables import number

    if v is None or v != v:
        return "–"
    digits = 2 if metric == "inference" else 1
    return number(float(v), digits) + _unit(metric)


def which_method_display(frame: Any, dataset: str, *, caption: str | None = None) -> Any:
    """One dataset's :func:`which_method` frame as a table.

    One row per need (with what measures it): the recommended method with its score, and
    the best-scoring method that is not recommended (with why) when it scores higher.
    """
    import pandas as pd

    from aerialseg.tables import show_table

    rows = []
    for r in frame.to_dict("records"):
        if not r["available"]:
            rec = f"– ({r['excluded_reason']})"
        elif not isinstance(r["recommended"], str):
            rec = "none qualifies"
        else:
            rec = f"{display.method_name(r['recommended'])} ({_score(r['score'], r['metric'])})"
        higher = ("–" if not isinstance(r["excluded"], str) else
                  f"{display.method_name(r['excluded'])} "
                  f"({_score(r['excluded_score'], r['metric'])}; {r['excluded_reason']})")
        rows.append({"Need": f"{r['need']} ({_measure(r['metric'], r['class'], r['sign'])})",
                     "Recommended": rec, "Scores higher, not recommended": higher})
    df = pd.DataFrame(rows).set_index("Need")
    return show_table(
        df, caption=caption or (f"Which method for which need on the "
                                f"{compare.dataset_name(dataset)} data: the best method among "
                                "those that converged and beat the per-pixel baseline (mean "
                                "over seeds)."),
        rows=None, row_header="Need", columns=None, split=None, na="nothing to name",
        notes=("A method that has not converged or is below the per-pixel baseline is never "
               "recommended; the last column names it when it scores higher than the "
               "recommendation.",))


def _measure(metric: str, cls: str, sign: int) -> str:
    if cls == "cost":
        return {"inference": "inference Mpx/s", "training": "training seconds, lower is "
                "better"}.get(metric, metric)
    label = display.score_label(metric, cls)
    label = label[:1].lower() + label[1:] if not label[:2].isupper() else label
    return label + (", lower is better" if sign < 0 else "")


def which_method_sentences(frames: Mapping[str, Any]) -> list[str]:
    """The synthesis as sentences: per need and dataset, what to use and how sure it is."""
    from aerialseg.tables import number

    out = []
    first = next(iter(frames.values()))
    for i, need in enumerate(first["need"]):
        parts = []
        for d, f in frames.items():
            r = f.iloc[i]
            where = f"on the {compare.dataset_name(d)} data"
            if not r["available"]:
                parts.append(f"{where} the need cannot be assessed ({r['excluded_reason']})")
                continue
            if not isinstance(r["recommended"], str):
                parts.append(f"{where} no method qualifies (every candidate is flagged)")
                continue
            text = (f"{where} {display.method_name(r['recommended'])} "
                    f"({_score(r['score'], r['metric'])})")
            if isinstance(r["runner_up"], str):
                runner = display.method_name(r["runner_up"])
                if isinstance(r["lead_verdict"], str) and r["lead_low"] == r["lead_low"]:
                    lo, hi = sorted((r["sign"] * r["lead_low"], r["sign"] * r["lead_high"]))
                    n = int(r["lead_seeds"])
                    sure = {"supported": "a lead the rule supports",
                            "inconclusive": "not a lead the rule can tell from noise",
                            "untestable": "too few seeds for a verdict"}.get(
                        str(r["lead_verdict"]), str(r["lead_verdict"]))
                    text += (f", {number(r['lead'])} points ahead of {runner} "
                             f"(95 % interval {number(lo)} to {number(hi)}, {n} "
                             f"seed{'s' if n != 1 else ''}: {sure})")
                else:
                    text += f", then {runner} ({_score(r['runner_score'], r['metric'])})"
            if isinstance(r["excluded"], str):
                text += (f"; {display.method_name(r['excluded'])} scores higher but is "
                         f"{r['excluded_reason']}")
            parts.append(text)
        out.append(f"**{need}**: " + "; ".join(parts) + ".")
    return out
