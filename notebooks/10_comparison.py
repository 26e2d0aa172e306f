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
# several seeds, side by side with the numbers the papers report. This chapter trains
# nothing: it reads the results files (`results/<chapter>__<dataset>__<profile>.nc`) that
# the method chapters wrote, so every number here can be traced to a chapter run, its git
# commit, its parameters and its hardware.
#
# **Prerequisites.** The method chapters, executed with the same `dataset` and `profile`
# (`make book` does this in order).

# %% tags=["parameters"]
profile = "default"  # smoke | default | gpu | full: which chapter runs to compare
device = "auto"  # unused (nothing is trained); kept so every chapter takes the same parameters
dataset = "synthetic"  # synthetic | dubai | vaihingen
data_root = None  # unused here
seeds = None  # unused here: every seed found in the results is shown
protocol = "eroded"  # eroded (primary) | full
baseline = "fcn"  # method the paired differences are taken against

# %%
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from aerialseg import compare, plots, registry
from aerialseg.data.registry import get_spec
from aerialseg.tables import summary_table

files = compare.find_results(dataset, profile)
ds = compare.load_all(dataset, profile)
classes = get_spec(dataset).classes
print(f"{len(files)} results files, {ds.sizes['method']} methods, seeds "
      f"{sorted(int(s) for s in ds['seed'].values)}")
for f in files:
    print(" ", f.name)

# %% [markdown]
# ## Protocol card
#
# What every table below shares. Per-class scores are computed from one confusion matrix
# accumulated over every evaluated pixel of every validation scene (not averaged per scene).

# %%
display(compare.protocol_card(ds, files))

# %% [markdown]
# ## Scores
#
# Per-class F1 and the overall metrics, mean ± standard deviation over seeds (a single value
# where only one seed was run). ECE is the expected calibration error (15 bins, top-label
# confidence), lower is better.

# %%
display(summary_table(ds, protocol=protocol, per_class="f1"))

# %% [markdown]
# Per-class IoU:

# %%
display(summary_table(ds, protocol=protocol, per_class="iou", metrics=("iou",)))

# %%
fig = plots.metric_dots(ds, protocol=protocol)
plt.show()

# %% [markdown]
# ## Cost
#
# Parameters, training time and inference throughput (whole validation scenes, tiled), with
# the hardware each was measured on: compare times only within one device.

# %%
display(compare.cost_table(ds))

# %% [markdown]
# ## The papers' numbers beside ours
#
# Each source's printed numbers next to ours for the same method. The papers' data and
# protocols differ from ours (named in the last column), so the comparison is about the
# direction and size of effects, not about matching values.

# %%
pv = compare.paper_vs_ours(ds, registry.paper_results(), protocol=protocol)
display(pv if len(pv) else Markdown("*No method with reported numbers in these results.*"))

# %% [markdown]
# ## Do the papers' claims hold here?
#
# Each claim is checked on our per-seed differences; "holds here" requires the mean
# difference and every seed to point the paper's way.

# %%
claims = compare.check_claims(ds, registry.claims(), protocol=protocol)
display(claims if len(claims) else Markdown("*No claim can be checked with these results.*"))

# %% [markdown]
# ## Paired differences against the baseline
#
# Seeds pair the runs (same initialisation seed, same data order), so per-seed differences
# are a fairer view of an effect than overlapping error bars.

# %%
methods = [str(m) for m in ds["method"].values]
if baseline in methods and len(methods) > 1:
    diffs = compare.paired_differences(ds, baseline, metric="f1", protocol=protocol)
    fig = plots.paired_differences(diffs, baseline=baseline, label="mean F1")
    plt.show()
else:
    print(f"baseline {baseline!r} not among {methods}")

# %% [markdown]
# ## Uncertainty and calibration
#
# Accuracy on the pixels kept when the most uncertain ones (MC-dropout mean-class standard
# deviation) are rejected first, for every model evaluated with MC dropout; and reliability
# diagrams of every model.

# %%
fig = plots.coverage_curves(ds)
if fig is None:
    print("no model was evaluated with MC dropout in these results")
plt.show()
fig = plots.reliability_diagrams(ds)
plt.show()

# %% [markdown]
# ## Gallery
#
# The same crop of the first validation scene, for every method (first seed).

# %%
fig = plots.gallery(ds, classes)
plt.show()

# %% [markdown]
# ## Summary

# %%
compare.write_comparison(ds, files, claims, dataset=dataset, profile=profile,
                         params=dict(profile=profile, dataset=dataset, protocol=protocol,
                                     baseline=baseline))
sc = ds["scores"].sel({"protocol": protocol, "class": "overall"}) * 100
best = sc.sel({"metric": "f1"}).mean("seed").to_series().sort_values(ascending=False)
lines = [f"- Best mean F1 on `{dataset}` (profile `{profile}`): **{best.index[0]}** "
         f"({best.iloc[0]:.1f} %)" + (f", then {best.index[1]} ({best.iloc[1]:.1f} %)."
                                      if len(best) > 1 else ".")]
for _, row in claims.iterrows():
    if row["holds here"]:
        verdict = "holds here"
    elif row["ours (points)"] > 0:
        verdict = "points the paper's way on average, but not on every seed"
    else:
        verdict = "does not hold here"
    paper = row["paper (points)"]
    paper = "not reported" if paper is None or paper != paper else f"{paper:+.1f}"
    lines.append(f"- {row['source']}: *{row['claim']}* {verdict} "
                 f"(ours {row['ours (points)']:+.1f} points over {row['seeds']} seed(s), "
                 f"paper {paper}).")
lines.append(f"- Results from {len(files)} chapter run(s); hardware: "
             + ", ".join(sorted({str(h) for h in ds['hardware'].values})) + ".")
display(Markdown("\n".join(lines)))
