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
# # The data and the evaluation protocol
#
# **Overview.** Every method in this book is trained and evaluated on the same scenes with
# the same metric code. This chapter shows the data (the embedded synthetic default, or a
# real dataset), its class imbalance, why height matters, and the evaluation protocol: one
# confusion matrix accumulated over every evaluated pixel of the validation scenes, with
# class boundaries eroded as in the ISPRS benchmark.
#
# **Prerequisites.** None. The synthetic data are generated on first use (a few seconds);
# real datasets are read from `data/` (see {doc}`../rerun`).

# %% tags=["parameters"]
profile = "default"  # smoke | default | gpu | full
device = "auto"  # auto: CUDA when present, else CPU
dataset = "synthetic"  # synthetic | dubai | vaihingen | potsdam | loveda
data_root = None  # None: data/<dataset> (or ../shared/data for real sets)
data_options = None  # dataset options, e.g. {"synthetic_size": 1024} or {"potsdam_bands": "rgb"}
seeds = None  # unused here (no training); kept so every chapter takes the same parameters
retrain = False  # unused here (no training)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from aerialseg import chapter, plots
from aerialseg.diagnostics import dataset_summary, object_extents
from aerialseg.metrics import ConfusionMatrix, scores
from aerialseg.papers.kampffmeyer import reported

ch = chapter.start("01_data", profile=profile, device=device, dataset=dataset, seeds=seeds,
                   data_root=data_root, data_options=data_options, retrain=retrain)
classes = ch.data.classes

# %% [markdown]
# ## The scenes
#
# The ISPRS Vaihingen benchmark {cite:p}`isprs_vaihingen` provides 9 cm false-colour
# orthophotos (near infrared, red, green), a digital surface model (DSM) and its normalised
# version (nDSM, height above ground), with six classes: impervious surfaces, building, low
# vegetation, tree, car and clutter. The **embedded default** imitates it: a seeded
# generator draws streets, buildings, gardens, trees, parked cars and clutter, renders the
# five bands with texture, shadows and sensor noise, and writes them in the Vaihingen file
# layout, so one reader serves both. Roofs are drawn in the same colours as roads and trees
# in the same infrared as lawns on purpose: height separates them, with exceptions (raised
# lawns, low flat roofs). Labels are jittered by 1-2 px at boundaries, as real hand labels are.

# %%
fig = plots.show_scenes(ch.data.train, max_scenes=2)
plt.show()

# %% [markdown]
# ## Class imbalance
#
# Cars cover one or two percent of the pixels, which is why the FCN of {doc}`03_fcn_mfb`
# misses them without class balancing.

# %%
with ch.phase("diagnostics"):
    summary = dataset_summary(ch.data.train, ch.data.val)
shares = pd.DataFrame(100 * summary["class_share"].values.T, index=list(classes.names),
                      columns=["train (%)", "validation (%)"])
display(shares.round(2))
fig = plots.class_shares({"train": summary["class_share"].sel(split="train").values,
                          "validation": summary["class_share"].sel(split="val").values},
                         classes)
plt.show()

# %% [markdown]
# ## Why height matters
#
# A per-pixel linear classifier (multinomial logistic regression on a sample of pixels)
# trained on the spectral bands alone, and again with the height bands added, shows how
# much of the class information is in the spectra. The confusions that matter are roof
# vs. road and tree vs. low vegetation.

# %%
acc = summary["linear_accuracy"].to_series().mul(100).round(1).rename("pixel accuracy (%)")
display(acc.to_frame())
rows = []
pairs = [("building", "impervious"), ("impervious", "building"), ("tree", "low_vegetation"),
         ("low_vegetation", "tree")]
for variant in summary["bands"].values:
    conf = summary["linear_confusion"].sel(bands=variant)
    for a, b in pairs:
        if a in classes.names and b in classes.names:
            rows.append({"bands": variant, "truth": a, "predicted as": b,
                         "rate (%)": round(100 * float(conf.sel(truth=a, pred=b)), 1)})
if rows:
    display(pd.DataFrame(rows).pivot(index=["truth", "predicted as"], columns="bands",
                                     values="rate (%)"))

# %% [markdown]
# ## Cars
#
# Cars are small, elongated objects (about 2 x 4.5 m, i.e. 20 x 45 px at 9 cm), often parked
# close together; the patch-based CNN and the balancing methods are about them.

# %%
if "car" in classes.names:
    ext = np.concatenate([object_extents(s.labels, classes.names.index("car"))
                          for s in ch.data.train + ch.data.val])
    if len(ext):
        fig, ax = plt.subplots(figsize=(4.5, 3.5))
        ax.scatter(ext[:, 0], ext[:, 1], s=8, alpha=0.6)
        ax.set_xlabel("car width (px)")
        ax.set_ylabel("car length (px)")
        ax.set_title(f"{len(ext)} cars")
        fig.tight_layout()
        plt.show()
        print(f"median car: {np.median(ext[:, 0]):.0f} x {np.median(ext[:, 1]):.0f} px")

# %% [markdown]
# ## The evaluation protocol
#
# For every validation scene, the prediction is compared with the ground truth and the
# counts are added to **one** confusion matrix $M$ ($M_{ij}$: pixels of true class $i$
# predicted as $j$). From it, for each evaluated class $c$,
#
# $$ P_c = \frac{M_{cc}}{\sum_i M_{ic}}, \quad R_c = \frac{M_{cc}}{\sum_j M_{cj}}, \quad
# F1_c = \frac{2 P_c R_c}{P_c + R_c}, \quad
# \mathrm{IoU}_c = \frac{M_{cc}}{\sum_j M_{cj} + \sum_i M_{ic} - M_{cc}}, $$
#
# overall accuracy $\mathrm{OA} = \sum_c M_{cc} / \sum_{ij} M_{ij}$ over pixels of the
# evaluated classes, and mean F1 and mIoU as unweighted means over the evaluated classes
# (ISPRS: clutter excluded, as in the papers). Pooling all pixels first is not the same as
# averaging per-scene scores: a small scene with few cars does not get the weight of a big
# one.
#
# **Eroded boundaries** (primary protocol). Reference labels are uncertain at class
# boundaries, so ISPRS evaluates only pixels that survive an erosion of their class mask by
# a disk of radius 3 px; the full ground truth is reported as the secondary protocol. The
# image border is not a boundary.

# %%
fig = plots.eroded_mask_figure(ch.data.val[0])
plt.show()
kept = np.mean([s.eval_mask.mean() for s in ch.data.val])
print(f"share of validation pixels evaluated under the eroded protocol: {100 * kept:.1f} %")

# %% [markdown]
# **A known-answer check.** The metric code recomputes the means of Kampffmeyer et al.'s
# Table 1 from its per-class F1 values: PB and FCN-MFB agree with the printed means; the FCN
# mean printed as 86.36 is in fact 81.28, a typo in the paper that the comparison tables of
# this book correct.

# %%
rows = {}
for m, row in reported.KAMPFFMEYER_TABLE1.items():
    f1 = [row[c] for c in reported.ISPRS5]
    rows[m] = {"printed mean F1": row["mean_f1"], "mean of printed F1s": round(np.mean(f1), 2)}
display(pd.DataFrame(rows).T)

# one matrix pooled over two scenes vs. the mean of per-scene scores (toy example)
big, small = ConfusionMatrix(2), ConfusionMatrix(2)
big.update(np.array([0] * 90 + [1] * 10), np.array([0] * 90 + [1] * 10))
small.update(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 0]))
pooled = scores((big + small).matrix, (0, 1))["mean_f1"]
per_scene = np.mean([scores(c.matrix, (0, 1))["mean_f1"] for c in (big, small)])
print(f"toy example: pooled mean F1 {pooled:.3f} vs. mean of per-scene mean F1 {per_scene:.3f}")

# %% [markdown]
# ## Summary

# %%
ds = ch.write_summary(summary)
car = classes.names.index("car") if "car" in classes.names else None
lines = [f"- {len(ch.data.train)} training and {len(ch.data.val)} validation scenes of "
         f"`{dataset}` (profile `{profile}`)."]
if car is not None:
    lines.append(f"- Cars are {100 * float(summary['class_share'].sel(split='train')[car]):.1f}"
                 " % of the training pixels.")
if len(summary["bands"]) == 2:
    a = summary["linear_accuracy"].values
    lines.append(f"- A linear pixel classifier reaches {100 * a[0]:.1f} % on the spectral "
                 f"bands alone and {100 * a[1]:.1f} % with height added.")
lines.append(f"- The eroded protocol evaluates {100 * kept:.1f} % of the validation pixels.")
display(Markdown("\n".join(lines)))
