"""How much of a run's last-tenth loss fall is the batches, not the model: the run store audited.

Usage: .venv/bin/python bench/bench_convergence.py [--profile default] [--dataset synthetic]
       [--method fcn ...] [--threads 1] [--out audit.csv]

For every finished run in the run store (``AERIALSEG_RUNS`` or ``runs/``): the rule on the
step losses as recorded (``stats.convergence(..., adjust=False)``, the study's earlier
measure) beside the study's rule, at equal batch difficulty
(:func:`aerialseg.stats.adjusted_convergence`): the final model's
cross-entropy on the very batches of the last two tenths
(:func:`aerialseg.runs.run_difficulty`; recorded by the run store, replayed here only for runs
stored without it or with ``--replay``) enters as a covariate. Prints one row per run and a
count per dataset of runs each measure calls converged (every stored run: other schedules, set
with ``aerialseg train --set epochs=...``, are rows of their own). Each run's data is loaded
from its own ``config.json`` (one load per data configuration); a run whose data is missing
is skipped with its reason. About 5-35 s per run on one thread.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

from aerialseg.threads import configure_threads


def main() -> None:  # noqa: D103
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=None, help="only runs of this profile")
    ap.add_argument("--dataset", default=None, help="only runs on this dataset")
    ap.add_argument("--method", action="append", default=None,
                    help="only runs of this method (repeatable)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="also write the rows as CSV")
    ap.add_argument("--replay", action="store_true",
                    help="replay the batches even where the run store recorded them")
    args = ap.parse_args()
    configure_threads(args.threads)

    import pandas as pd  # after the thread setting: torch starts here

    from aerialseg import paths, registry, runs, stats
    from aerialseg.data.registry import DataConfig, load_split
    from aerialseg.training import stored_difficulty

    names = {f.name for f in fields(DataConfig)}
    splits: dict[str, object] = {}
    rows = []
    for cfile in sorted(Path(paths.runs_dir()).glob("*/" + runs.CONFIG_FILE)):
        meta = json.loads(cfile.read_text())
        c = meta["config"]
        if (args.profile and c["profile"] != args.profile) or (
                args.dataset and c["data"]["dataset"] != args.dataset) or (
                args.method and c["method"] not in args.method):
            continue
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in c["data"].items()
             if k in names}
        key = json.dumps(d, sort_keys=True, default=str)
        diff = stored_difficulty(meta["history"])
        if diff is None or args.replay:
            try:
                if key not in splits:
                    splits[key] = load_split(DataConfig(**d))
                diff = runs.run_difficulty(cfile.parent, splits[key],
                                           registry.get_method(c["method"]))
            except (FileNotFoundError, ValueError, KeyError) as exc:
                print(f"skipped {cfile.parent.name}: {exc}")
                continue
        rule = stats.convergence(meta["history"], adjust=False)
        adj = stats.adjusted_convergence(meta["history"], diff)
        rows.append({"dataset": c["data"]["dataset"], "profile": c["profile"],
                     "method": c["method"], "seed": c["train"]["seed"],
                     "epochs": c["train"]["epochs"],
                     "fall, raw (%)": round(100 * rule.relative_decrease, 1),
                     "converged, raw": rule.converged,
                     "fall at equal difficulty (%)": round(100 * adj.relative_decrease, 1),
                     "converged (the rule)": adj.converged,
                     "why": adj.reason, "run": cfile.parent.name})
    if not rows:
        print("no runs matched")
        return
    df = pd.DataFrame(rows).sort_values(["dataset", "method", "seed"])
    with pd.option_context("display.width", 200, "display.max_rows", None,
                           "display.max_colwidth", 40):
        print(df.drop(columns=["why", "run"]).to_string(index=False))
    count = df.groupby("dataset")[["converged, raw", "converged (the rule)"]].sum()
    count["runs"] = df.groupby("dataset").size()
    print("\nconverged runs per dataset:\n" + count.to_string())
    if args.out:
        df.to_csv(args.out, index=False)
        print(f"rows written to {args.out}")


if __name__ == "__main__":
    main()
