# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The comparison
#
# **Overview.** Every method of the book on the same split, with the same metric code and
# several seeds, on the synthetic data and on the real Dubai imagery side by side. This
# chapter trains nothing: it reads the results files that the method chapters wrote (each
# dataset's protocol card below names them), so every number can be traced to a chapter
# run, its git commit, its parameters and its hardware. It judges every claim of the papers
# on each dataset by the study's one rule, says where the datasets disagree, and ends with
# which method to use for which need.
#
# **Prerequisites.** The method chapters, executed with the same `profile` on each dataset:
# `make book DATASET=dubai` (the Dubai edition, chapters 1-9), then `make book` (the
# synthetic edition, this chapter last). The metrics and the statistics rule are defined in
# {doc}`../protocol`.

# %% tags=["parameters"]
profile = "default"  # smoke | default | gpu | full: which chapter runs to compare
device = "auto"  # unused (nothing is trained); kept so every chapter takes the same parameters
dataset = "synthetic"  # the edition this chapter belongs to (its results file's name)
data_root = None  # unused here
data_options = None  # unused here
seeds = None  # unused here: every seed found in the results is shown
retrain = False  # unused here (nothing is trained)
datasets = None  # None: every dataset with results of this profile (synthetic, then Dubai)
protocol = "eroded"  # eroded (primary) | full

# %% tags=["hide-input"]
import warnings

import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from aerialseg import compare, findings, plots, registry, stats
from aerialseg import display as names
from aerialseg.data.registry import get_spec
from aerialseg.profiles import check_profile
from aerialseg.tables import show_table, summary_table

plots.book_style()
check_profile(profile)
registry.papers()  # every paper's methods, claims and display names
chosen = (compare.available_datasets(profile) if datasets is None else
          [d.strip() for d in (datasets.split(",") if isinstance(datasets, str) else datasets)])
for d in chosen:
    get_spec(d)  # an unknown dataset name fails here, naming the valid ones
files = {d: compare.find_results(d, profile) for d in chosen}
with warnings.catch_warnings():  # older results files say what they lack: nothing to show
    warnings.simplefilter("ignore")
    results = {d: compare.load_all(d, profile) for d in chosen}
flags = {d: compare.sanity_flags(ds, protocol=protocol) for d, ds in results.items()}
dup = {d: compare.duplicates(ds) for d, ds in results.items()}
label = {d: compare.dataset_name(d) for d in chosen}
edition = []
for d, ds in results.items():
    seeds_found = sorted({int(s) for s in ds["seed"].values})
    hardware = sorted({str(h) for h in ds["hardware"].values})
    edition.append(f"on the {label[d]} data from {len(files[d])} results files (seeds "
                   f"{', '.join(map(str, seeds_found))}; {' and '.join(hardware)})")
display(Markdown(f"These results come from the `{profile}` profile: " + "; ".join(edition)
                 + ". This chapter reads them and trains nothing."))

# %% [markdown]
# ## Protocol cards
#
# What every table of a dataset shares, and the files it was read from. Per-class scores are
# computed from one confusion matrix accumulated over every evaluated pixel of every
# validation scene ({ref}`protocol-pooling`); the synthetic data and the Dubai set differ in
# classes (Dubai has no car class), bands (Dubai: RGB, no heights) and scenes.

# %% tags=["remove-input"]
for d, ds in results.items():
    display(compare.protocol_card(ds, files[d]))

# %% [markdown]
# ## Which models are fit to be compared
#
# A model takes part in no verdict and is never recommended when it has not converged (its
# training loss still fell by 2 % or more between the last two tenths of training, beyond its
# noise, at equal difficulty of the batches drawn)
# or when its mean
# F1 is below the per-pixel baseline on the same split (the logistic regression on single
# pixels of {doc}`01_data`; {ref}`protocol-statistics`). In the tables below such a model is
# marked with ⚠.

# %% tags=["remove-input"]
lines = []
for d, ds in results.items():
    methods = [str(m) for m in ds["method"].values if str(m) not in dup[d]
               and str(m) != "pixel_baseline"]
    reason = {m: str(flags[d].get(m) or "") for m in methods}
    not_conv = [m for m in methods if "converged" in reason[m]]
    below = [m for m in methods if "per-pixel baseline" in reason[m]]
    built = [m for m in methods if reason[m] and m not in not_conv and m not in below]
    passed = [m for m in methods if not reason[m]]
    has_base = "pixel_baseline" in ds["method"].values
    text = (f"On the {label[d]} data, {len(passed)} of the {len(methods)} evaluated models "
            "pass the gates: " + f"{len(not_conv)} have not converged")
    text += (f", {len(below)} score below the per-pixel baseline" if has_base else "")
    text += (f" and {len(built)} are ensembles of a flagged model." if built else ".")
    if not has_base:
        text += (" These results hold no per-pixel baseline row, so that gate cannot be "
                 "applied to them.")
    lines.append(text)
display(Markdown(" ".join(lines)))

# %% [markdown]
# The convergence of every trained run, per seed: how much the training loss changed
# between the last two tenths of training (in percent of the earlier tenth; negative: it
# fell), first as recorded, then at equal difficulty of the batches drawn, the measure the
# rule uses ({ref}`protocol-statistics`). A seed draws the same batches for every method, so
# a column in which the raw change of every method is large and the adjusted one is not is
# the batches, not the models.

# %% tags=["remove-input"]
for d, ds in results.items():
    shared = compare.shared_training(ds)  # e.g. the MC mean of a model: its runs, once
    conv = compare.convergence_frame(ds, methods=[
        str(m) for m in ds["method"].values if str(m) not in dup[d] and str(m) not in shared])
    if not conv.empty:
        display(show_table(conv, caption=f"{label[d][:1].upper() + label[d][1:]} data: change of the "
                           "training loss between the last two tenths of training, raw → at "
                           "equal batch difficulty (%); ✗: not converged. Runs that several "
                           "methods share are listed once, under the first.",
                           rows="method", columns=None))

# %% [markdown]
# ## Scores
#
# The overall scores of every method ({ref}`protocol-overall`, {ref}`protocol-boundary-f1`,
# {ref}`protocol-ece`): the mean over seeds with its 95 % interval over seeds and spatial
# blocks for every score a confusion matrix gives, mean ± standard deviation over seeds for
# boundary F1 and ECE. Then the F1 of each class ({ref}`protocol-per-class`) for the single
# models (the ensembles' are in {doc}`05_ensembles`), mean (± standard deviation) over seeds. A
# method that is another method's runs under a second name is listed once (the note under
# the table names it).

# %% tags=["remove-input"]
for d, ds in results.items():
    shown = ds.sel({"method": [str(m) for m in ds["method"].values if str(m) not in dup[d]]})
    marked = {str(m): names.method_name(m) + (" ⚠" if flags[d].get(str(m)) else "")
              for m in shown["method"].values}
    warn = ["⚠: not converged or below the per-pixel baseline (takes part in no verdict, "
            "never recommended)."] if any(flags[d].get(m) for m in marked) else []
    same = [f"{names.method_name(m)}: the same runs as {names.method_name(first)}."
            for m, first in dup[d].items()]
    table = summary_table(shown, protocol=protocol, spread="interval", per_class=None,
                          caption=f"Overall scores on the {label[d]} validation scenes "
                                  f"({protocol} ground truth, %): mean [95 % interval over "
                                  "seeds and spatial blocks], or mean ± standard deviation "
                                  "over seeds.")
    display(table.with_options(rows=marked, row_header="Method",
                               notes=list(table.options["notes"]) + warn + same))
    single = shown.sel({"method": [m for m in marked if not compare.ensemble_members(m)]})
    table = summary_table(single, protocol=protocol, metrics=(), per_class="f1",
                          caption=f"F1 per class on the {label[d]} validation scenes "
                                  f"({protocol} ground truth, %) of the single models: mean "
                                  "(± standard deviation) over seeds.")
    display(table.with_options(rows=marked, row_header="Method",
                               notes=list(table.options["notes"]) + warn))

# %% [markdown]
# ## The papers' claims on both datasets
#
# Every claim of the five papers, judged on each dataset by the study's rule
# ({ref}`protocol-statistics`): the paired difference method − baseline over the seeds both
# ran, with its 95 % bootstrap interval over seeds and spatial blocks. **Supported** and
# **contradicted**: the interval excludes 0 on the side the paper claims, or on the other
# side; **inconclusive**: it holds 0; **untestable**: a precondition fails (fewer than 3
# seeds, a method missing, not converged or below the per-pixel baseline, a class the data
# do not have), and the reason is given.

# %% tags=["remove-input"]
claims = registry.claims()
long = compare.claims_across(results, claims, protocol=protocol, flags=flags)
display(compare.verdict_comparison_table(long, datasets=chosen))

# %% tags=["remove-input"]
text = compare.disagreements(long, datasets=chosen)
counts = []
for d in chosen:
    v = long.loc[long["dataset"] == d, "verdict"].value_counts()
    counts.append(f"on the {label[d]} data " + ", ".join(
        f"{int(v.get(k, 0))} {k}" for k in stats.VERDICTS if v.get(k, 0)))
display(Markdown(f"Of the {len(claims)} claims, " + "; ".join(counts) + ". " + " ".join(text)))

# %% [markdown]
# ## Which method for which need
#
# For each need, the method with the best mean score among those that converged and beat
# the per-pixel baseline; a higher-scoring method that fails a gate is named, never
# recommended. Accuracy is mean F1, small objects are cars (car F1), boundaries are boundary
# F1, calibration is ECE (lower is better), and cost is the inference throughput and the
# training time (an ensemble costs its members together). The ranking and the lead over the
# runner-up are measured on the same validation scenes, so a lead is if anything
# optimistic; the sentences under the table give its 95 % interval where the rule can
# compute one.

# %% tags=["remove-input"]
frames = {d: findings.which_method(ds, flags=flags[d], protocol=protocol)
          for d, ds in results.items()}
for d, frame in frames.items():
    display(findings.which_method_display(frame, d))

# %% tags=["remove-input"]
display(Markdown("\n\n".join(findings.which_method_sentences(frames))))

# %% [markdown]
# ## Cost
#
# Parameters, training time and inference throughput on whole validation scenes (tiled),
# measured on the hardware named under each table: compare times only within one device.
# A method evaluated from another method's trained runs (an MC-dropout evaluation, or a
# chapter's baseline that is chapter 3's FCN) says so instead of repeating its training
# time.

# %% tags=["remove-input"]
for d, ds in results.items():
    display(compare.cost_table(ds, caption=f"Cost of every method on the {label[d]} data: "
                                           "parameters (millions), training time (s, mean "
                                           "over seeds) and inference throughput (Mpx/s)."))

# %% [markdown]
# ## The papers' numbers beside ours
#
# Each source's printed numbers next to ours for the same method. The papers' data and
# protocols differ from ours (named under the table), so the comparison is about the
# direction and size of effects, not about matching values.

# %% tags=["remove-input"]
display(compare.paper_vs_ours_table(results, registry.paper_results(), protocol=protocol))

# %% [markdown]
# ## How precise is the validation set?
#
# The width of a per-class F1's 95 % interval (over seeds and spatial blocks) says how
# precisely the validation scenes pin that score down. The table gives the half-width
# (± points) for every evaluated class of every converged single model; a difference
# between two methods smaller than about this much cannot be told from the resampling noise
# of the validation set. A class a model never gets right (F1 0 on every resample) has an
# interval of width 0 that says nothing, and is left blank.

# %% tags=["remove-input"]
for d, ds in results.items():
    models = [str(m) for m in ds["method"].values if str(m) not in dup[d]
              and str(m) != "pixel_baseline" and not compare.ensemble_members(str(m))]
    converged = [m for m in models if "converged" not in str(flags[d].get(m) or "")]
    which = converged or models
    half = compare.f1_half_widths(ds, methods=which, protocol=protocol)
    values = half.to_numpy(float)
    measured = np.isfinite(values)
    if measured.any():
        display(show_table(half, caption=f"Half-width of the 95 % interval of each class's "
                                         f"F1 on the {label[d]} validation scenes (± points), "
                                         + ("converged single models." if converged else
                                            "every single model (none has converged)."),
                           rows="method", points=True, split="auto",
                           na="no interval: the model never predicts the class right, or "
                              "its results file holds no per-block counts"))
    rows_ok = [bool((values[i][measured[i]] < 5).all()) and measured[i].any()
               for i in range(len(half))]
    text = (f"On the {label[d]} data, " + (f"{len(converged)} single models have converged; "
                                            if converged else "no model has converged in "
                                            "these results (the widths of every model are "
                                            "shown for reference); "))
    if measured.any():
        i, j = np.unravel_index(np.nanargmax(np.where(measured, values, -1)), values.shape)
        text += (f"every class they predict is pinned down to better than ±5 points for "
                 f"{sum(rows_ok)} of {len(half)} of them, and the widest interval is "
                 f"±{values[i, j]:.1f} points ({names.class_name(half.columns[j]).lower()} "
                 f"F1 of {names.method_name(half.index[i])}).")
    else:
        text += "no interval can be computed from these results files."
    if half.attrs["unblocked"] and len(half.attrs["unblocked"]) == len(half):
        text += (" None of these results files holds per-block counts (they were written "
                 "by an older version of the library): re-run the chapters to measure it.")
    elif half.attrs["unblocked"]:
        text += (" The results files of " + ", ".join(names.method_name(m) for m in
                                                      half.attrs["unblocked"])
                 + " hold no per-block counts, so the validation set's precision cannot be "
                 "measured for them.")
    display(Markdown(text))

# %% [markdown]
# ## Uncertainty and calibration
#
# Accuracy of the pixels kept when the most uncertain ones (MC-dropout mean class standard
# deviation, {ref}`protocol-uncertainty`) are rejected first, for every model evaluated
# with MC dropout; and the reliability diagram of every model ({ref}`protocol-ece`): the
# accuracy of the pixels in each confidence bin against the bin's confidence (the dotted
# diagonal is perfect calibration).

# %% tags=["remove-input"]
for d, ds in results.items():
    fig = plots.coverage_curves(ds)
    if fig is None:
        display(Markdown(f"*No model of the {label[d]} results was evaluated with MC "
                         "dropout.*"))
        continue
    plots.show(fig, name=f"comparison-coverage-{d}",
               caption=f"{label[d]} data: OA of the pixels kept against the share of pixels "
                       "kept, least uncertain first (mean over seeds), for every model "
                       "evaluated with MC dropout.",
               alt="Line chart: accuracy of the kept pixels rising as fewer pixels are kept, "
                   "one line per model, legend below.")

# %% tags=["remove-input"]
for d, ds in results.items():
    models = [str(m) for m in ds["method"].values if str(m) not in dup[d]
              and not compare.ensemble_members(str(m))]
    fig = plots.reliability_diagrams(ds, methods=models)
    plots.show(fig, name=f"comparison-reliability-{d}",
               caption=f"{label[d]} data: reliability diagram of every model (first seed; "
                       "ensembles are in chapter 5), with its ECE in the panel title.",
               alt="Grid of small bar charts, four per row, one per model: accuracy against "
                   "confidence per bin, with the diagonal of perfect calibration.")

# %% [markdown]
# ## Gallery
#
# The same crop of the first validation scene, for every model (first seed), four panels
# per row; the ensembles' predictions are in {doc}`05_ensembles`.

# %% tags=["remove-input"]
for d, ds in results.items():
    models = [str(m) for m in ds["method"].values if str(m) not in dup[d]
              and not compare.ensemble_members(str(m))]
    fig = plots.gallery(ds, get_spec(d).classes, methods=models)
    if fig is None:
        continue
    for ax in fig.axes:  # a thin frame, so that an all-white prediction still shows its panel
        if ax.images and ax.get_title():
            ax.set_axis_on()
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(True)
                spine.set_linewidth(0.5)
                spine.set_color("0.6")
    plots.show(fig, name=f"comparison-gallery-{d}",
               caption=f"{label[d]} data: ground truth and every model's prediction on the "
                       "same crop of the first validation scene (first seed), then the "
                       "MC-dropout uncertainty maps on one colour scale.",
               alt="Grid of label maps, four per row: the ground truth and one prediction per "
                   "model in the class colours of the legend below, followed by uncertainty "
                   "maps with a colour bar.")

# %% [markdown]
# ## Summary

# %% tags=["summary"]
written = []
for d, ds in results.items():
    path = compare.write_comparison(
        ds, files[d], long, dataset=d, profile=profile,
        params=dict(profile=profile, device=device, dataset=dataset, data_root=data_root,
                    data_options=data_options, seeds=seeds, retrain=retrain,
                    datasets=datasets, protocol=protocol))
    written.append(path.name)
sizes = [f"{results[d].sizes['method'] - len(dup[d])} methods on the {label[d]} data"
         for d in chosen]
lines = [f"This chapter compared {' and '.join(sizes)} (`{profile}` profile), reading "
         f"{sum(len(f) for f in files.values())} results files and training nothing."]
for d in chosen:
    acc = frames[d].iloc[0]
    if acc["recommended"] is not None:
        lines.append(f"On the {label[d]} data the most accurate model that passes the sanity "
                     f"gates is {names.method_name(acc['recommended'])} "
                     f"(mean F1 {acc['score']:.1f} %).")
    else:
        lines.append(f"On the {label[d]} data no model passes the sanity gates, so none is "
                     "recommended.")
for d in chosen:
    v = long.loc[long["dataset"] == d, "verdict"].value_counts()
    lines.append(f"The papers' {len(claims)} claims on the {label[d]} data: "
                 f"{int(v.get('supported', 0))} supported, "
                 f"{int(v.get('contradicted', 0))} contradicted, "
                 f"{int(v.get('inconclusive', 0))} inconclusive, "
                 f"{int(v.get('untestable', 0))} untestable.")
lines += [t for t in compare.disagreements(long, datasets=chosen)[1:2]]
lines.append(f"The verdicts are stored with this chapter's results ({', '.join(written)}), "
             "from which the introduction's key findings are written.")
display(Markdown(" ".join(lines)))
