"""Command line: ``aerialseg data|train|book ...`` (``aerialseg --help``)."""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Sequence
from typing import Any

THREADS_HELP = ("CPU threads per process, or 'all' (default: $AERIALSEG_THREADS, else "
                "$OMP_NUM_THREADS, else all cores); OMP_WAIT_POLICY is PASSIVE unless set")


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _parse_sets(items: Sequence[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = _parse_value(v)
    return out


def _data_args(args: argparse.Namespace) -> dict[str, Any]:
    """The data options given on the ``data`` command line (None: not given)."""
    return {"split_name": args.split_name, "potsdam_bands": args.potsdam_bands,
            "vaihingen_bands": args.vaihingen_bands, "val_tiles": args.val_tiles,
            "layout": args.layout, "snap_labels": args.snap_labels or None}


def _split_sets(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``--set`` values split into data options and method parameters."""
    from aerialseg.data.registry import DATA_OPTIONS

    data = {k: v for k, v in overrides.items() if k in DATA_OPTIONS or k == "data_options"}
    return data, {k: v for k, v in overrides.items() if k not in data}


def _no_root_without_dataset(args: argparse.Namespace, dataset: str | None) -> None:
    if args.root is not None and dataset is None:
        raise ValueError(f"--root {args.root} names a dataset folder but no dataset was "
                         "chosen: name it (dubai, vaihingen, potsdam, loveda, or synthetic to "
                         "generate the synthetic set there)")


def cmd_data(args: argparse.Namespace) -> int:
    """Load a dataset and print its class shares, or (``data check``) verify a download.

    ``data [DATASET]`` generates the synthetic set if needed; ``data check DATASET`` prints
    a report and returns 0 if the reader can use the files, else 1.
    """
    words = list(args.words)
    if words and words[0] == "check":
        if len(words) != 2:
            raise SystemExit("usage: aerialseg data check DATASET [--root DIR] "
                             "[--split-name NAME] [--snap-labels] [--strict]")
        from aerialseg.data.check import check_dataset

        opts = _data_args(args)
        report = check_dataset(words[1], args.root, split_name=opts.pop("split_name"),
                               potsdam_bands=opts.pop("potsdam_bands"),
                               snap_labels=bool(opts.pop("snap_labels")),
                               data_options=args.data_options, **opts)
        print(report.text())
        return report.exit_code(strict=args.strict)
    if len(words) > 1:
        raise SystemExit(f"aerialseg data: expected one dataset name, got {words}")
    _no_root_without_dataset(args, words[0] if words else None)
    dataset = words[0] if words else "synthetic"

    from aerialseg.data.patches import label_shares
    from aerialseg.data.registry import data_config, load_split

    cfg = data_config(dataset, args.profile, args.data_options, data_root=args.root,
                      **_data_args(args))
    data = load_split(cfg)
    shares = label_shares([s.labels for s in data.train + data.val], data.classes.num_classes)
    split = f" (split {cfg.split_name})" if cfg.split_name else ""
    print(f"{dataset}: {len(data.train)} train / {len(data.val)} val scenes{split}, "
          f"bands {data.bands}")
    for name, share in zip(data.classes.names, shares, strict=True):
        print(f"  {name:16s} {100 * share:6.2f} %")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train one method into the run store (also under torchrun for multi-GPU)."""
    import os

    from aerialseg.threads import configure_threads, describe

    print(describe(configure_threads(args.threads)))  # before torch loads OpenMP
    import torch
    import torch.distributed as dist

    from aerialseg.data.registry import data_config, get_spec, load_split
    from aerialseg.registry import get_method, resolve_run
    from aerialseg.runs import get_or_train
    from aerialseg.utils import resolve_device
    from aerialseg.validation import TRAIN_SPECS, validate_chapter_params, validate_train_values

    # fail on bad names and values before any data is loaded or any run folder is created
    get_method(args.method)
    _no_root_without_dataset(args, args.dataset)
    validate_chapter_params(profile=args.profile, device=args.device, seeds=args.seed)
    # --set holds data options and method parameters: both are validated before any data
    # is loaded (the method parameters against the bands the data will have)
    data_sets, overrides = _split_sets(_parse_sets(args.set))
    if "seed" in overrides:
        raise ValueError(f"--set seed={overrides['seed']!r}: the seed is given with "
                         f"--seed N (got --seed {args.seed}); e.g. `aerialseg train "
                         f"{args.method} --seed {overrides['seed']}`")
    validate_train_values({k: v for k, v in overrides.items() if k in TRAIN_SPECS})
    dataset = args.dataset or "synthetic"
    cfg_data = data_config(dataset, args.profile, data_sets.pop("data_options", None),
                           data_root=args.root, **data_sets)
    bands = get_spec(dataset).bands_of(cfg_data)
    resolve_run(args.method, profile=args.profile, in_bands=bands, data=cfg_data.to_dict(),
                seed=args.seed, **overrides)
    device = resolve_device(args.device)
    distributed = "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed and not dist.is_initialized():
        # NCCL between GPUs; gloo lets the same command run (and be tested) on CPUs
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
    if distributed and dist.get_rank() != 0:
        dist.barrier()  # rank 0 generates/loads the data first; the others then read it
    data = load_split(cfg_data)
    if distributed and dist.get_rank() == 0:
        dist.barrier()
    cfg = resolve_run(args.method, profile=args.profile, in_bands=data.bands,
                      data=data.cfg.to_dict(), seed=args.seed, **overrides)
    run = get_or_train(cfg, data, device=device, retrain=args.retrain,
                       progress=not args.no_progress)
    if dist.is_initialized():
        dist.barrier()  # rank 0 has written the model when everyone leaves
        rank, world = dist.get_rank(), dist.get_world_size()
        dist.destroy_process_group()
    else:
        rank, world = 0, 1
    print(json.dumps({"run": str(run.path), "train_seconds": run.train_seconds,
                      "reused": run.reused, "rank": rank, "world_size": world}))
    return 0


def cmd_book(args: argparse.Namespace) -> int:
    """Run chapters with papermill and build the book, or only build it."""
    from aerialseg.book import build_book, run_book

    if args.action == "build":
        build_book()
        return 0
    if args.action == "check":
        from aerialseg.bookcheck import main as check_main

        return check_main(html=args.html, screenshots=args.screenshots, pages=args.only)
    if args.action == "findings":
        from aerialseg.findings import write_generated

        # the introduction covers every dataset with results (synthetic and Dubai editions)
        for path in write_generated(None, args.profile):
            print(f"wrote {path}")
        return 0
    extra = _parse_sets(args.set)
    return run_book(profile=args.profile, dataset=args.dataset, device=args.device,
                    only=args.only, build=not args.no_build, extra=extra, threads=args.threads,
                    jobs=args.jobs)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aerialseg`` command."""
    p = argparse.ArgumentParser(prog="aerialseg", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser(
        "data", help="load a dataset and print its class shares, or check a download",
        description="`aerialseg data [DATASET]` loads a dataset (generating the synthetic one) "
        "and prints its class shares; `aerialseg data check DATASET [--root DIR]` verifies a "
        "download (files, sizes, label colours) and exits 0 if the reader can use it, else 1.")
    d.add_argument("words", nargs="*", metavar="[check] DATASET",
                   help="synthetic (default), dubai, vaihingen or potsdam; prefix with "
                   "'check' to verify a download")
    d.add_argument("--profile", default="default")
    d.add_argument("--root", default=None, help="dataset folder (default: data/<dataset>)")
    d.add_argument("--split-name", default=None,
                   help="named split (vaihingen: kampffmeyer; potsdam: cse_unet, geoseg)")
    d.add_argument("--potsdam-bands", default=None, help="irrg (default), rgb, rgbir or r+g+b")
    d.add_argument("--vaihingen-bands", default=None,
                   help="all (default) or irrg (IR-R-G only: no DSM/nDSM files needed)")
    d.add_argument("--val-tiles", default=None,
                   help="validation tiles, e.g. 11,15 (vaihingen), 2_12 (potsdam), 4 (dubai)")
    d.add_argument("--layout", default=None, choices=["auto", "official", "mmseg"],
                   help="vaihingen/potsdam file layout (default: detected)")
    d.add_argument("--data-options", default=None, metavar="JSON",
                   help="any data options as JSON, e.g. '{\"potsdam_bands\": \"r+g+b\"}'")
    d.add_argument("--snap-labels", action="store_true",
                   help="snap label colours near the palette (resampled labels)")
    d.add_argument("--strict", action="store_true",
                   help="check: exit 1 unless every tile of the split is present")
    d.set_defaults(func=cmd_data)

    t = sub.add_parser("train", help="train a method into the run store")
    t.add_argument("method")
    t.add_argument("--profile", default="default")
    t.add_argument("--dataset", default=None, help="default: synthetic")
    t.add_argument("--root", default=None, help="dataset folder (needs --dataset)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto")
    t.add_argument("--threads", default=None, help=THREADS_HELP)
    t.add_argument("--retrain", action="store_true",
                   help="discard a stored model (and checkpoint) of this run and train again")
    t.add_argument("--no-progress", action="store_true",
                   help="no progress bar (one log line per epoch only)")
    t.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override method parameters, e.g. epochs=5 lr=0.005 (the seed is "
                   "--seed), and data options, e.g. potsdam_bands=r+g+b or "
                   "data_options='{...}'")
    t.set_defaults(func=cmd_train)

    b = sub.add_parser("book", help="run chapters (papermill), build or check the book",
                       description="`run` executes chapters and builds the book; `build` "
                       "only builds it; `check` opens every built page in headless Chromium "
                       "and lists what a reader would see wrong (exit 1 if anything); "
                       "`findings` rewrites the introduction's generated sections.")
    b.add_argument("action", choices=["run", "build", "check", "findings"])
    b.add_argument("--html", default=None,
                   help="check: the built book (default _build/html)")
    b.add_argument("--screenshots", default=None, metavar="DIR",
                   help="check: save 1400 px screenshots of the intro, chapters 03 and 10")
    b.add_argument("--profile", default="default")
    b.add_argument("--dataset", default="synthetic")
    b.add_argument("--device", default="auto")
    b.add_argument("--threads", default=None, help=THREADS_HELP)
    b.add_argument("--jobs", type=int, default=1,
                   help="chapters run side by side (default 1; `make book` uses 2), each "
                        "kernel with the cores divided by JOBS unless --threads is given")
    b.add_argument("--only", nargs="*", default=None,
                   help="chapter numbers or names (check: page names)")
    b.add_argument("--no-build", action="store_true", help="execute chapters only")
    b.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="extra chapter parameters")
    b.set_defaults(func=cmd_book)

    args = p.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"aerialseg: error: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, FloatingPointError) as exc:
        if not _is_run_failure(exc):
            raise
        print(f"aerialseg: error: {exc}", file=sys.stderr)
        return 1


def _is_run_failure(exc: BaseException) -> bool:
    """A failure the library explains in full (the message names what and the fix).

    Unusable run-store files (corrupt, or holding pickled objects) and a diverged training:
    the command prints the message, not a traceback. Looked up in ``sys.modules`` so the
    command line does not import torch to check; a class never imported was never raised.
    """
    kinds = [getattr(sys.modules.get(module), name, None) for module, name in (
        ("aerialseg.utils", "RunFileError"), ("aerialseg.training", "NonFiniteLossError"))]
    return isinstance(exc, tuple(k for k in kinds if isinstance(k, type)))


if __name__ == "__main__":
    sys.exit(main())
