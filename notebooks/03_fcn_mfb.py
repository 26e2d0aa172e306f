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
# # FCN and median-frequency balancing
#
# **Overview.** {cite:t}`kampffmeyer2016` label every pixel of an aerial tile with a fully
# convolutional network (FCN) and observe that cars, about 1-2 % of the pixels of ISPRS
# Vaihingen, are mostly missed. Weighting the cross-entropy by *median-frequency balancing*
# (MFB) {cite:p}`eigen2015` trades a little accuracy on the large classes for a much better
# car score. Two claims of the paper are judged here by the study's rule: **MFB raises car
# F1** and **MFB raises car recall** (FCN-MFB against FCN, Table 1 of the paper). This
# chapter trains both networks on the same data with the same seeds, shows the MFB weights
# and a trap in their normalisation, judges the claims with their intervals, and puts our
# scores beside the paper's Table 1 and the per-pixel baseline.
#
# The FCN of this chapter is also the study's **shared backbone**: in the CPU and GPU
# profiles the loss-comparison chapters ({doc}`06_uce`, {doc}`07_efm`,
# {doc}`09_distance_loss`) train this same network with their own losses, and their
# cross-entropy baselines are the very runs trained here.
#
# **Prerequisites.** {doc}`01_data` (the data and the per-pixel baseline) and the
# {doc}`../protocol` (the eroded-boundary protocol, the metrics and the statistics rule).

# %% tags=["parameters"]
profile = "default"  # smoke | default | gpu | full
device = "auto"  # auto: CUDA when present, else CPU
dataset = "synthetic"  # synthetic | dubai | vaihingen | potsdam
data_root = None  # None: data/<dataset> (or ../shared/data for real sets)
data_options = None  # dataset options, e.g. {"potsdam_bands": "rgb"} (see chapter 01)
seeds = None  # None: the profile's seeds
retrain = False  # True: train again even if the run store holds the model
# Method parameters; None takes the profile's value (names as in aerialseg.config.TrainConfig
# and the methods' specs in aerialseg.papers.kampffmeyer.method).
epochs = None
batch_size = None
samples_per_epoch = None
crop_size = None
lr = None
widths = None
dropout_p = None
mfb_frequency = None  # "global" or "eigen_fergus"

# %% tags=["hide-input"]
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from aerialseg import chapter, plots, stats, tables
from aerialseg import display as names
from aerialseg.config import Claim
from aerialseg.losses.ce import WeightedCrossEntropy, median_frequency_weights
from aerialseg.papers.kampffmeyer import analysis as ka
from aerialseg.papers.kampffmeyer import plots as k_plots
from aerialseg.papers.kampffmeyer import reported
from aerialseg.profiles import SHARED_BACKBONE, uses_shared_backbone
from aerialseg.registry import claims as all_claims
from aerialseg.registry import get_method
from aerialseg.tables import show_table, summary_table

plots.book_style()
ch = chapter.start(
    "03_fcn_mfb", profile=profile, device=device, dataset=dataset, seeds=seeds,
    data_root=data_root, data_options=data_options, retrain=retrain,
    overrides=dict(epochs=epochs, batch_size=batch_size, samples_per_epoch=samples_per_epoch,
                   crop_size=crop_size, lr=lr, widths=widths, dropout_p=dropout_p,
                   mfb_frequency=mfb_frequency))
classes = ch.data.classes
evaluated = [classes.names[i] for i in classes.evaluated]
has_car = "car" in evaluated
isprs_classes = set(reported.ISPRS5) <= set(classes.names)
train_labels = [s.training_labels(True) for s in ch.data.train]
rare = ka.rarest_class(train_labels, classes.names, classes.evaluated)
method_labels = names.method_names(["fcn", "fcn_mfb", chapter.PIXEL_BASELINE])
bands = ", ".join(b.upper() for b in ch.data.bands)
if has_car:
    data_note = (f"The data have the paper's classes, cars included ({len(ch.data.bands)} "
                 f"bands: {bands}).")
else:
    data_note = (f"**On this dataset** (`{dataset}`: {len(ch.data.bands)} bands, {bands}; "
                 f"classes {', '.join(names.class_name(c).lower() for c in evaluated)}) "
                 "there is no car class, so the paper's two claims about cars cannot be "
                 "tested; the verdict table says so. What MFB does to the rarest class in "
                 f"training, {names.class_name(rare).lower()}, is measured by the same rule "
                 "instead.")
display(Markdown(data_note))

# %% [markdown]
# ## The network
#
# The FCN has four sets of two $3\times3$ convolutions; a $2\times2$ max-pooling separates the
# sets and the very first convolution has stride 2, so the output stride is 16. Each
# convolution is followed by ReLU and then batch normalisation (the paper's order). A
# $1\times1$ convolution gives one score map per class and a single learnable transposed
# convolution (kernel 32, stride 16, initialised as bilinear interpolation) brings it back to
# the input size. Training uses patches cut with 50 % overlap, each in its eight flips and
# rotations.
#
# *From the paper:* the layer structure, the stride-2 first layer, the ReLU-then-BN order,
# the $256\times256$ patches, their overlap and the eight-fold augmentation, MFB.
# *Reconstructed* (not stated in the paper): the channel widths (64, 128, 256, 512), where
# the dropout sits (after sets 3 and 4, $p=0.5$), the optimiser (SGD, momentum 0.9, weight
# decay $5\cdot10^{-4}$, lr 0.01, poly decay) and the number of epochs.
#
# ## What the profile changes: the study's shared backbone
#
# The CPU and GPU profiles train a narrower FCN for fewer, smaller steps: the study's
# shared backbone (`aerialseg.profiles.SHARED_BACKBONE`). FCN and FCN-MFB differ only in
# their loss. The loss-comparison chapters 06, 07 and 09 train this same network with their
# losses, so that each of their methods differs from its baseline only in the loss and
# their cross-entropy baselines are the FCN runs of this chapter (the run store trains them
# once). The `full` profile trains the paper's widths and recipe.

# %% tags=["remove-input"]
bb = SHARED_BACKBONE["default"]
display(Markdown(
    f"In the `default` profile the backbone has widths "
    f"{', '.join(map(str, bb['model_kwargs']['widths']))} and trains for "
    f"{bb['epochs'] * bb['samples_per_epoch'] // bb['batch_size']} SGD steps of "
    f"{bb['batch_size']} crops of {bb['crop_size']} px at lr {bb['lr']:g}: on one CPU core "
    "it converges within the book's time budget and beats the per-pixel baseline (the "
    "gates below check both on every run). The resolved settings of this run:"))

# %% tags=["remove-input"]
cfgs = {"Paper (full profile)": get_method("fcn").resolve(
            profile="full", in_bands=ch.data.bands, data=ch.data.cfg.to_dict()),
        f"FCN, this run ({profile} profile)": ch.resolve("fcn", ch.seeds[0]),
        f"FCN-MFB, this run ({profile} profile)": ch.resolve("fcn_mfb", ch.seeds[0])}
show_table(ka.settings_table(cfgs),
           caption="Training settings of the FCN: the paper's (reconstructed where it is "
           "silent) and this run's FCN and FCN-MFB. A step is one SGD update on one batch "
           "of crops.", rows=None, row_header="Setting", columns=None,
           notes=["MFB class frequency: over all training pixels (global) or over the "
                  "images where the class occurs (Eigen & Fergus); see below."])

# %% [markdown]
# ## Median-frequency balancing
#
# With $f_c$ the frequency of class $c$ in the training pixels, every pixel of class $c$ is
# weighted by
#
# $$ w_c = \frac{\operatorname{median}(\{f_{c'}\})}{f_c}, \qquad
# L = -\frac{1}{N}\sum_{n=1}^{N} \sum_{c} w_c\, l_c^{(n)} \log \hat p_c^{(n)}, $$
#
# where $N$ is the number of (non-ignored) pixels in the mini-batch. Rare classes get weights
# above 1, frequent ones below 1. {cite:t}`eigen2015` count $f_c$ over the images where
# class $c$ occurs; the library also offers the frequency over all training pixels
# (`mfb_frequency`). Clutter is not one of the evaluated classes: like the paper, we do not
# learn it (its pixels are ignored in training and evaluation).

# %%
mode = ch.resolve("fcn_mfb").loss_kwargs["mfb_frequency"]
w = median_frequency_weights(train_labels, classes.num_classes, classes=classes.evaluated,
                             mode=mode)
w_other = median_frequency_weights(
    train_labels, classes.num_classes, classes=classes.evaluated,
    mode="eigen_fergus" if mode == "global" else "global")

# %% tags=["remove-input"]
counts = np.bincount(np.concatenate([lab[lab != 255].ravel() for lab in train_labels]),
                     minlength=classes.num_classes)[: classes.num_classes]
other = "eigen_fergus" if mode == "global" else "global"
mode_name = {"global": "global frequencies", "eigen_fergus": "Eigen & Fergus frequencies"}
weights = pd.DataFrame({"Share of training pixels (%)": counts / counts.sum(),
                        f"MFB weight, {mode_name[mode]} (used)": w,
                        f"MFB weight, {mode_name[other]}": w_other},
                       index=list(classes.names)).loc[evaluated]
show_table(weights, caption="Each evaluated class's share of the (non-ignored) training "
           "pixels and its MFB weight, with the frequency this run uses and with the other "
           "definition.", rows="class", columns=None,
           percent=["Share of training pixels (%)"],
           formats={c: "float2" for c in weights.columns[1:]},
           notes=["A class absent from the training pixels gets weight 0: it contributes "
                  "no loss term."])

# %% [markdown]
# ### A trap in the normalisation
#
# PyTorch's `cross_entropy(weight=w)` with its default mean reduction divides by
# $\sum_n w_{y_n}$, not by $N$. The loss becomes a weighted *average* whose scale no longer
# depends on how many rare pixels a batch holds: a batch rich in the rare class has a larger
# divisor, so each of its pixels counts for less, which undoes part of the balancing across
# batches. That is not the paper's equation; our loss divides by $N$. Two training crops of
# 128 px, the one with the most pixels of the rarest class and a typical one, with the same
# random logits:

# %%
rare_id = classes.names.index(rare)
scene_i, r0, c0 = ka.richest_crop(train_labels, rare_id, size=128)
crops = {"crop richest in the rarest class": train_labels[scene_i][r0:r0 + 128, c0:c0 + 128],
         "first crop of the first scene": train_labels[0][:128, :128]}
weight = torch.as_tensor(w, dtype=torch.float32)
logits = torch.randn(1, classes.num_classes, 128, 128,
                     generator=torch.Generator().manual_seed(0))
trap = {}
for name, lab in crops.items():
    y = torch.from_numpy(lab.astype(np.int64))[None]
    valid = y != 255
    trap[name] = {
        "N": int(valid.sum()),
        "Mean weight Σw/N": float(weight[y[valid]].sum() / valid.sum()),
        "Loss / N (paper, ours)": float(WeightedCrossEntropy(w)(logits, y)),
        "Loss / Σw (PyTorch default)": float(torch.nn.functional.cross_entropy(
            logits, y, weight=weight, ignore_index=255)),
    }

# %% tags=["remove-input"]
trap_df = pd.DataFrame(trap)
show_table(trap_df, caption=f"Loss of the same random logits on two training crops of "
           f"128 px, normalised by the number of pixels N and by the sum of their MFB "
           f"weights Σw ({names.class_name(rare).lower()} is the rarest class).",
           rows=None, row_header="Quantity", columns=lambda c: c[:1].upper() + c[1:],
           formats={c: "auto" for c in trap_df.columns})

# %% tags=["remove-input"]
rich, typical = trap.values()
display(Markdown(
    f"The PyTorch default is our loss divided by the mean weight of the batch's pixels: "
    f"{rich['Mean weight Σw/N']:.2f} on the crop rich in "
    f"{names.class_name(rare).lower()}, {typical['Mean weight Σw/N']:.2f} on the typical "
    "one. Its gradient is scaled the same way, batch by batch."))

# %% [markdown]
# ## Training
#
# Both methods are trained with every seed (same seed: same initialisation and data order)
# and evaluated on the validation scenes; a model already in the run store (same
# configuration) is reused. The per-pixel baseline is scored on the same scenes.

# %%
for seed in ch.seeds:
    for name in ("fcn", "fcn_mfb"):
        run = ch.train(name, seed)
        ch.evaluate(run)
ch.add_pixel_baseline()
ds = ch.write_results()

# %% tags=["remove-input"]
fig = plots.training_curves({(m, s): r.history for (m, s), r in ch.runs.items()})
plots.show(fig, name="fcn-mfb-training-curves",
           caption="Training loss of every run of FCN and FCN-MFB, one point per pass over "
           "the sampled crops (one line per seed). The two losses have different scales: "
           "MFB weighs the rare classes' pixels up.",
           alt="Line plot of training loss against passes over the data, one colour per "
           "method and one line per seed, each falling and flattening.")
train_df = ka.training_summary(ch.runs)
show_table(train_df, caption="The training runs. Converged: " + stats.CONVERGENCE_RULE
           + "; the seconds are those recorded when the run was trained.",
           rows=None, labels={"method": "method"},
           columns={"method": "Method", "seed": "Seed", "epochs": "Epochs",
                    "steps": "Steps", "final loss": "Final loss",
                    "loss fall, last tenth": "Loss fall, last tenth (%)",
                    "converged": "Converged", "training (s)": "Training (s)",
                    "reused": "Reused"},
           formats={"final loss": "float3", "loss fall, last tenth": "percent",
                    "training (s)": "float1", "steps": "int", "epochs": "int",
                    "seed": "int"},
           na="no per-step record")

# %% [markdown]
# ## Results

# %% tags=["remove-input"]
display(Markdown(ch.edition()))

# %% [markdown]
# The scores on the validation scenes, eroded-boundary ground truth (the primary protocol,
# {ref}`protocol-eroded`): F1 per class, mean F1 and mIoU over the evaluated classes,
# overall accuracy (OA), boundary F1 and expected calibration error (ECE), defined on the
# {doc}`../protocol`. Each score of the first table is the mean over seeds with its 95 %
# interval over seeds and spatial blocks ({ref}`protocol-statistics`).

# %% tags=["remove-input"]
summary_table(ds, protocol="eroded", spread="interval")

# %% tags=["remove-input"]
summary_table(ds, protocol="full")

# %% tags=["remove-input"]
gates = ka.sanity_table(ds, pixel_baseline=chapter.PIXEL_BASELINE)
ka.gates_table(gates)

# %% [markdown]
# ### Verdicts on the paper's claims
#
# Each claim "FCN-MFB beats FCN on a score" is judged by the study's rule
# ({ref}`protocol-statistics`): the paired difference over seeds with its 95 % bootstrap
# interval over seeds and spatial blocks; *supported* when the interval lies above 0,
# *contradicted* when below, *inconclusive* when it holds 0, *untestable* when a
# precondition fails (fewer than 3 seeds, a model that fails the gates, a class the data
# lack or neither model predicts).

# %%
claims = [c for c in all_claims() if c.chapter == ch.name]
verdicts = ka.named_verdicts(ch.verdicts(ds), method_labels)
tables.verdict_table(verdicts, claims, caption="The paper's claims on MFB, judged on our "
                     "runs (eroded-boundary ground truth).")

# %% tags=["remove-input"]
display(Markdown("\n".join(f"- {stats.sentence(v, names=method_labels)}" for v in verdicts)))

# %% tags=["remove-input"]
rare_claim = Claim("this book, by analogy", f"median-frequency balancing raises "
                   f"{names.class_name(rare).lower()} F1 (the rarest class in training)",
                   "fcn_mfb", "fcn", rare, "f1")
rare_verdict, = ka.named_verdicts([stats.judge(ds, rare_claim, flags=stats.sanity_flags(
    ds, pixel_baseline=chapter.PIXEL_BASELINE))], method_labels)
if rare != "car":
    display(tables.verdict_table(
        [rare_verdict], [rare_claim],
        caption="The paper's reason for MFB, carried over to this dataset's rarest class: "
        "not a claim of the paper, judged by the same rule."))

# %% [markdown]
# ### Beside the paper
#
# Table 1 of {cite:t}`kampffmeyer2016`: ISPRS Vaihingen validation areas, eroded ground
# truth, F1 in %. Their data are real 9 cm orthophotos of Vaihingen and their networks have
# the full widths; ours are stated above. Compare the *direction* of the effects, not the
# values.

# %% tags=["remove-input"]
notes = [f"{names.method_name(m)} in the paper: {reported.KAMPFFMEYER_NOTES[m]}."
         for m in ("fcn", "fcn_mfb")]
if isprs_classes:
    rows = {"FCN, paper (Vaihingen)": ("paper", "fcn"),
            "FCN-MFB, paper (Vaihingen)": ("paper", "fcn_mfb"),
            **{f"{method_labels[m]}, ours": ("ours", m) for m in ("fcn", "fcn_mfb")},
            f"{method_labels[chapter.PIXEL_BASELINE]}, ours": ("ours",
                                                               chapter.PIXEL_BASELINE)}
    caption = ("FCN and FCN-MFB in the paper's Table 1 and here (means over seeds): F1 per "
               "class, mean F1 and OA, eroded-boundary ground truth, in %.")
else:
    rows = {"FCN, paper (Vaihingen)": ("paper", "fcn"),
            "FCN-MFB, paper (Vaihingen)": ("paper", "fcn_mfb")}
    caption = ("FCN and FCN-MFB in the paper's Table 1 (Vaihingen): F1 per class, mean F1 "
               "and OA, eroded ground truth, in %. This dataset has other classes: our "
               "scores are in the tables above, not comparable class by class.")
show_table(ka.beside_paper(ds, rows, reported=reported.KAMPFFMEYER_TABLE1), caption=caption,
           rows=None, row_header="Source", points=True, notes=notes)

# %% tags=["remove-input"]
fig = plots.per_class_scores(ds, metric="f1",
                             methods=["fcn", "fcn_mfb", chapter.PIXEL_BASELINE],
                             reported=reported.KAMPFFMEYER_TABLE1 if isprs_classes else None)
plots.show(fig, name="fcn-mfb-per-class",
           caption="F1 per class of FCN, FCN-MFB and the per-pixel baseline (bars: mean "
           "over seeds; dots: single seeds)"
           + ("; red ticks: the paper's FCN and FCN-MFB on Vaihingen." if isprs_classes
              else "."),
           alt="Grouped bar chart of F1 per class for FCN, FCN-MFB and the per-pixel "
           "baseline, with the legend to the right of the plot.")

# %% [markdown]
# ### Predictions
#
# The first validation scene: the image, the ground truth and the prediction of each
# method (first seed), then the two networks' confusion matrices.

# %% tags=["remove-input"]
first = {r.method: r.evaluation for r in ch.records if r.seed == ch.seeds[0]}
scene_name = next(iter(first["fcn"].maps))
maps = {m: first[m].maps[scene_name] for m in ("fcn", "fcn_mfb")}
fig = plots.prediction_gallery(maps, classes, image=plots.false_colour(ch.data.val[0]))
plots.show(fig, name="fcn-mfb-predictions",
           caption=f"The top-left 256 px of validation scene {scene_name}: image, ground "
           "truth and the predictions of FCN and FCN-MFB (first seed; black: ignored "
           "pixels).",
           alt="Four panels: the aerial image, the ground-truth label map and the label "
           "maps predicted by FCN and by FCN-MFB.")
fig = k_plots.confusion_pair({method_labels[m]: first[m].confusion["eroded"]
                              for m in ("fcn", "fcn_mfb")},
                             classes.names, evaluated=classes.evaluated)
plots.show(fig, name="fcn-mfb-confusion",
           caption="Confusion matrices of FCN and FCN-MFB (first seed), eroded-boundary "
           "ground truth: each row is a true class, in % of its pixels.",
           alt="Two heatmaps of true against predicted class with percentages in the "
           "cells, one for FCN and one for FCN-MFB.")

# %% [markdown]
# ## Summary

# %% tags=["summary"]
iv = ka.interval_text
est = {m: {k: stats.method_interval(ds, m, metric=k) for k in ("f1", "oa")}
       for m in ("fcn", "fcn_mfb", chapter.PIXEL_BASELINE)}
oa_change = stats.judge(ds, Claim("", "", "fcn_mfb", "fcn", "overall", "oa"),
                        min_seeds=1)
n_conv = int(train_df["converged"].sum())
reused = int(train_df["reused"].sum())
t_train = train_df["training (s)"].sum()
paras = [
    f"**What was compared.** FCN and FCN-MFB, the same network trained with plain and with "
    f"median-frequency-balanced cross-entropy ({len(ch.seeds)} seed"
    f"{'s' if len(ch.seeds) > 1 else ''} each, `{profile}` profile"
    + (", the study's shared backbone" if uses_shared_backbone(profile) else "")
    + f"), on `{dataset}`, against the per-pixel baseline. {n_conv} of {len(train_df)} runs "
    f"converged; training took {t_train:.{0 if t_train >= 10 else 1}f} s in all, as "
    "recorded when the runs were trained"
    + (f" ({reused} of {len(train_df)} reused from the run store)." if reused else "."),
    f"**Overall.** FCN reaches a mean F1 of {iv(est['fcn']['f1'])} and FCN-MFB "
    f"{iv(est['fcn_mfb']['f1'])}; the per-pixel baseline {iv(est[chapter.PIXEL_BASELINE]['f1'])}. "
    f"MFB changes OA by {100 * oa_change.estimate:+.1f} points (95 % interval "
    f"{100 * oa_change.low:+.1f} to {100 * oa_change.high:+.1f})".replace("-", "−") + ".",
]
if has_car:
    paras.append("**The paper's claims.** "
                 + " ".join(stats.sentence(v, names=method_labels) for v in verdicts))
    if isprs_classes:
        t1, rc = reported.KAMPFFMEYER_TABLE1, reported.KAMPFFMEYER_TABLE1_RECALL
        paras.append(
            f"**Beside the paper.** On Vaihingen MFB raised car F1 from "
            f"{t1['fcn']['car']:.2f} % to {t1['fcn_mfb']['car']:.2f} % and car recall from "
            f"{rc['fcn']['car']:.2f} % to {rc['fcn_mfb']['car']:.2f} %, with OA "
            f"{t1['fcn']['oa']:.2f} % and {t1['fcn_mfb']['oa']:.2f} %; the verdicts above "
            "compare the direction of these effects on our data.")
else:
    reasons = sorted({v.reason for v in verdicts if v.verdict == "untestable"})
    paras.append(
        f"**The paper's claims** (MFB raises car F1 and car recall) are untestable on "
        f"`{dataset}`, which has no car class (the verdict table gives the reasons: "
        f"{'; '.join(reasons)}).")
if rare != "car":
    paras.append(f"**The rarest class here.** {stats.sentence(rare_verdict, names=method_labels)}"
                 " This is the paper's reasoning carried over to this dataset, not a claim of "
                 "the paper.")
display(Markdown("\n\n".join(paras)))
