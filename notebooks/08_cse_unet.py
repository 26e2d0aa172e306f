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
# # CSE-UNet: context and semantic enhancement for the U-Net
#
# **Overview.** Wang & Xie {cite:p}`wang2020cseunet` add two things to a plain U-Net for
# aerial images: *RFB-style skip pathways*, a stack of small convolutions followed by a
# dilated one on every skip connection, for multi-scale context against the variety inside a
# class; and a *dual-path encoder*, an auxiliary chain of strided multi-kernel convolutions
# added to the main encoder at every level, for more semantics against look-alike classes.
# Their ablation (Table 1) credits each addition with about 4-5 points of mIoU on ISPRS
# Vaihingen and well under one point on Potsdam. This chapter trains the four rows of that
# ablation and an off-the-shelf U-Net with a ResNet-34 encoder on the same data and with the
# same training, puts our ablation and per-class IoU/F1 beside the paper's Tables 1 and 3,
# reports what each network costs (parameters, training and inference time), and discusses
# Mazur's replication {cite:p}`mazur2026`.
#
# **Prerequisites.** {doc}`01_data` (the data, the eroded-boundary protocol and the metrics)
# and {doc}`03_fcn_mfb` (how a chapter trains, reuses and evaluates models).

# %% tags=["parameters"]
profile = "default"  # smoke | default | gpu | full
device = "auto"  # auto: CUDA when present, else CPU
dataset = "synthetic"  # synthetic | dubai | vaihingen | potsdam
data_root = None  # None: data/<dataset> (or ../shared/data for real sets)
data_options = None  # dataset options, e.g. {"potsdam_bands": "rgb"} (see chapter 01)
seeds = None  # None: the profile's seeds
retrain = False  # True: train again even if the run store holds the model
# Method parameters; None takes the profile's value (names as in aerialseg.config.TrainConfig
# and the methods' specs in aerialseg.papers.cse_unet.method).
epochs = None
batch_size = None
samples_per_epoch = None  # None in `full`: every non-overlapping crop of the tiles once
crop_size = None
lr = None
momentum = None
scale_range = None  # random rescaling of the crops, e.g. (0.5, 2.0)
base_width = None  # C1 of the U-Nets (64 in the paper); widths double per level
dropout2d = None  # channel dropout in every double conv of the U-Nets (Mazur: 0.2)
encoder = None  # encoder of the smp U-Net baseline (resnet34)
train_mazur = None  # also train Mazur's layout of CSE-UNet (cse_unet_mazur; None: full only)
train_smp = None  # also train the smp U-Net baseline (None: not in the default profile)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from aerialseg import chapter, plots
from aerialseg.papers.cse_unet import analysis as cse
from aerialseg.papers.cse_unet import plots as cse_plots
from aerialseg.papers.cse_unet import reported as reported_cse
from aerialseg.papers.cse_unet.method import ABLATION, BASELINE, METHODS
from aerialseg.tables import seed_mean, summary_table

ch = chapter.start(
    "08_cse_unet", profile=profile, device=device, dataset=dataset, seeds=seeds,
    data_root=data_root, data_options=data_options, retrain=retrain,
    overrides=dict(epochs=epochs, batch_size=batch_size, samples_per_epoch=samples_per_epoch,
                   crop_size=crop_size, lr=lr, momentum=momentum, scale_range=scale_range,
                   base_width=base_width, dropout2d=dropout2d, encoder=encoder),
    settings=dict(train_mazur=train_mazur, train_smp=train_smp))
methods = ([*ABLATION] + ([BASELINE] if ch.settings["train_smp"] else [])
           + (["cse_unet_mazur"] if ch.settings["train_mazur"] else []))
overrides = {k: v for k, v in ch.overrides.items() if v is not None}
classes = ch.data.classes
n_bands, n_classes = len(ch.data.bands), classes.num_classes

# %% [markdown]
# ## The network
#
# Write $\mathrm{CBR}_{k,d}$ for a $k\times k$ convolution with dilation $d$ (same padding),
# batch normalisation and ReLU, and $\mathrm{DC}_c$ for two $\mathrm{CBR}_{3,1}$ with $c$
# output channels. With widths $C_k = C_1 2^{k-1}$, the **main encoder** is
#
# $$ e_1 = \mathrm{DC}_{C_1}(x), \qquad
# f_k = \mathrm{ReLU}\big(\mathrm{MaxPool}_{2}(e_k) + a_k\big), \qquad
# e_{k+1} = \mathrm{DC}_{C_{k+1}}(f_k), \qquad k = 1,\dots,4, $$
#
# and $e_5$ is the bridge at 1/16 resolution. The **auxiliary path** is a chain of strided
# convolutions (kernels $\kappa = 7, 5, 3, 2$ from the lowest level up), each followed by
# batch normalisation, with a ReLU between links:
#
# $$ a_1 = \mathrm{BN}\big(\mathrm{Conv}^{\,s=2}_{7}(e_1)\big), \qquad
# a_k = \mathrm{BN}\big(\mathrm{Conv}^{\,s=2}_{\kappa_k}(\mathrm{ReLU}(a_{k-1}))\big). $$
#
# The **RFB skip** of level $k$ stacks $n_k$ small convolutions and then a dilated
# $3\times3$ one whose dilation matches the receptive field of the stack,
# $(n_k, d_k) = (3, 7), (2, 5), (1, 3), (1, 1)$ (level 4 stacks a $1\times1$):
#
# $$ s_k = \mathrm{CBR}_{3,d_k}\big(\mathrm{CBR}^{\,n_k}(e_k)\big). $$
#
# The **decoder** projects with a $1\times1$ convolution, upsamples bilinearly and fuses:
# $d_5 = e_5$, $d_k = \mathrm{DC}_{C_k}\big([\mathrm{Up}_2(\mathrm{Conv}_1(d_{k+1})),\ s_k]\big)$,
# and a $1\times1$ convolution maps $d_1$ to the class scores. Switching off the auxiliary
# path ($a_k = 0$, no ReLU after the pooling) and/or the RFB ($s_k = e_k$) gives the other
# three rows of the paper's Table 1; the plain U-Net has no other change.
#
# *From the paper* (text and its Figure 2): the dual-path encoder with kernels 7, 5, 3, 2 and
# stride 2, where the auxiliary path branches off and how it is fused (addition, ReLU), the
# sequential RFB stacks and their dilations 7, 5, 3, 1, the bilinear decoder, and the
# training below. *Reconstructed* (not stated): the widths $C_1..C_5 = 64..1024$ (standard
# U-Net), the $1\times1$ head, the order $1\times1$-then-upsample (the two commute), and the
# poly learning-rate schedule.
#
# The resolved settings of every model in this run:

# %%
for name in methods:
    cfg = ch.resolve(name)
    print(f"{name:15s} {METHODS[name].title}\n    model {cfg.model} {cfg.model_kwargs}\n"
          f"    train {cfg.train}")

# %% [markdown]
# ## Parameter counts
#
# Counted without building weights (the models are created on PyTorch's meta device), at the
# width this profile trains and at the paper's full width, for this dataset's bands and
# classes and for the 3-band, 5-class setting of our specification's reference figures
# (CSE-UNet ≈ 34.57 M, U-Net ≈ 28.95 M). Mazur's layout is included for comparison.

# %%
count_methods = [*ABLATION, "cse_unet_mazur", BASELINE]
params_df = cse.parameter_table(count_methods, profile=profile, in_channels=n_bands,
                                num_classes=n_classes, paper_io=(3, 5),
                                **overrides)
display(params_df.round(3))
full = params_df["paper width (M)"]

# %% [markdown]
# ## Training
#
# *From the paper* (§3.2): SGD with momentum 0.99, weight decay $5\cdot10^{-4}$, initial
# learning rate $10^{-3}$, batch 4, $256\times256$ crops for Vaihingen, random flips and
# random scaling by 0.5-2, 400 epochs on Vaihingen, trained from scratch, five classes
# (clutter dropped: here its pixels are ignored in training and evaluation). *Reconstructed*:
# the poly schedule (power 0.9, per iteration); random crops of the scaled tiles stand in for
# the paper's fixed non-overlapping crops (in `full`, one epoch draws as many crops as the
# tiles hold non-overlapping ones), and all eight flips/rotations stand in for its
# horizontal flip. The smp U-Net gets the same training, from random initialisation
# (`encoder_weights=None`), so the comparison is about the architecture only.
#
# **Profiles.** On a CPU the `smoke` and `default` profiles use narrow U-Nets
# (`base_width` 8 and 16 instead of 64, i.e. 60x and 16x fewer parameters), crops of 64 and
# 96 px and at most about a hundred iterations instead of 400 epochs (the resolved values
# are printed above). They show whether the code runs and how the variants behave early in
# training, not the paper's numbers. `full` uses the paper's settings. Every model is
# trained with every seed; a model already in the run store is reused.

# %%
for seed in ch.seeds:
    for name in methods:
        run = ch.train(name, seed)
        ch.evaluate(run, label=name)

# %%
fig = plots.training_curves({f"{m} seed {s}": r.history for (m, s), r in ch.runs.items()})
plt.show()

# %% [markdown]
# ## Results
#
# Scores on the validation scenes with the eroded-boundary ground truth (the primary
# protocol): F1 per class, mean F1 and mIoU over the evaluated classes, overall accuracy
# (OA), boundary F1 and expected calibration error (ECE); mean ± standard deviation over
# seeds where there are several.

# %%
ds = ch.write_results()
ds = ds.sel({"method": [m for m in methods if m in ds["method"].values]})  # Table 1 order
display(summary_table(ds, protocol="eroded"))

# %% [markdown]
# The same on the full (non-eroded) ground truth, the secondary protocol; the paper does not
# say which of the two it used:

# %%
display(summary_table(ds, protocol="full"))

# %% [markdown]
# ### The ablation beside Table 1
#
# Our four ablation rows (eroded protocol; `sd` is the standard deviation over seeds) and
# the change in mIoU against the plain U-Net, beside the paper's Vaihingen columns of
# Table 1. The paper's data are real 9 cm orthophotos with 400 epochs of training; compare
# the *direction and size relative to the seed spread*, not the values.

# %%
abl = cse.ablation_table(ds, protocol="eroded")
display(abl.round(2))
fig = cse_plots.ablation_deltas(abl, ours_label=f"ours ({dataset}, {profile})")
plt.show()
display(reported_cse.table1())

# %% [markdown]
# ### Per-class IoU/F1 beside Table 3
#
# Every model of this run in the paper's layout (IoU/F1 per class, %), then the paper's
# Table 3 (Vaihingen; FCN-8s and CAN are the paper's other baselines, not trained here).

# %%
titles = {m: METHODS[str(m)].title for m in ds["method"].values}
display(cse.iou_f1_table(ds, [str(m) for m in ds["method"].values], titles=titles))
display(reported_cse.per_class_table("vaihingen"))

# %%
if set(reported_cse.TABLE3["unet"]) >= set(classes.evaluated_names):
    paper_iou = {ours: {c: reported_cse.TABLE3[row][c][0] for c in classes.evaluated_names}
                 for ours, row in (("unet_plain", "unet"), ("cse_unet", "cse_unet"))}
    fig = plots.per_class_scores(ds, metric="iou", reported=paper_iou)
    plt.show()
else:
    print(f"{dataset} has other classes than the paper's tables; no per-class overlay")

# %% [markdown]
# ### Mazur's replication
#
# Mazur {cite:p}`mazur2026` re-implemented CSE-UNet and trained it on ISPRS Potsdam. His
# numbers, as he reports them:

# %%
display(reported_cse.mazur_table())
display(pd.Series(reported_cse.MAZUR_PHASE2_IOU, name="phase-2 IoU (10 % of validation)")
        .to_frame().T)
mazur_full, paper_layout_full = (
    cse.count_parameters(m, profile="full", in_channels=3, num_classes=7)
    for m in ("cse_unet_mazur", "cse_unet"))
display(Markdown(
    f"**Why these are not comparable** with the paper's tables or ours: "
    f"{reported_cse.MAZUR_NOT_COMPARABLE}. His training: {reported_cse.MAZUR_SETUP}. "
    f"His layout has {mazur_full / 1e6:.2f} M parameters at full width (3 bands, his 7 "
    f"classes; counted here), against {paper_layout_full / 1e6:.2f} M for the paper's "
    f"layout with the same input and output. His own clutter IoU is inconsistent (0.34 in the "
    f"slides, 0.009 in his repository). What his runs do show is an ordering on one "
    f"protocol: CSE-UNet (Jaccard 0.671-0.681) above a ResNet-34 U-Net from scratch "
    f"(0.633) and level with an ImageNet-pretrained one (0.678), all below the paper's "
    f"Potsdam mIoU of 76.2 %. Set `train_mazur=True` to train his layout here under the "
    f"paper's training."))

# %% [markdown]
# ## Cost
#
# Parameters (as above), training time of each run and inference throughput over the
# validation scenes (whole scenes in 512 px tiles with a 64 px halo), mean over seeds, on
# the hardware printed at the top. A model reused from the run store reports the time of
# its original training. On a shared CPU these times are noisy.

# %%
cost = cse.cost_table(ds, profile=profile, in_channels=n_bands, num_classes=n_classes,
                      **overrides)
display(cost.round(3))

# %% [markdown]
# ### Predictions
#
# The first validation scene: ground truth and the prediction of each model (first seed).

# %%
first = ch.records[0].evaluation.maps
scene_name = next(iter(first))
maps = {r.method: r.evaluation.maps[scene_name] for r in ch.records if r.seed == ch.seeds[0]}
fig = plots.prediction_gallery(maps, classes, image=plots.false_colour(ch.data.val[0]))
plt.show()

# %% [markdown]
# ## Summary

# %%
paper_delta = abl["paper Δ mIoU"]
ours_delta = abl["Δ mIoU"]
order_ours = " < ".join(abl["mIoU"].sort_values().index)
order_paper = " < ".join(abl["paper mIoU"].sort_values().index)
spread = float(np.nanmax(abl["mIoU sd"])) if abl["mIoU sd"].notna().any() else float("nan")
beyond = [r for r in abl.index[1:] if np.isfinite(spread) and abs(ours_delta[r]) > 2 * spread]
signs = {bool(ours_delta[r] * paper_delta[r] > 0) for r in beyond}
agree = {frozenset({True}): "same", frozenset({False}): "opposite"}.get(frozenset(signs),
                                                                        "mixed")
time_ratio = cost.loc["cse_unet", "train (s)"] / cost.loc["unet_plain", "train (s)"]
speed_ratio = (cost.loc["cse_unet", "inference (Mpx/s)"]
               / cost.loc["unet_plain", "inference (Mpx/s)"])
lines = [
    "- mIoU (eroded) of the four ablation rows: "
    + ", ".join(f"{r} {abl.loc[r, 'mIoU']:.1f} %" for r in abl.index)
    + " (paper, Vaihingen: "
    + ", ".join(f"{abl.loc[r, 'paper mIoU']:.2f} %" for r in abl.index) + ").",
    "- Change against the plain U-Net, ours vs paper: "
    + "; ".join(f"{r} {ours_delta[r]:+.1f} vs {paper_delta[r]:+.2f} points"
                for r in abl.index[1:]) + ".",
    f"- Ordering by mIoU, ours: {order_ours}; paper: {order_paper}.",
    (f"- Largest seed standard deviation of a row's mIoU: {spread:.1f} points; changes larger "
     f"than twice that: {', '.join(beyond) if beyond else 'none'}."
     if np.isfinite(spread) else "- One seed only: no seed spread to judge the changes by."),
    ("- Verdict: with one seed there is no spread to judge the changes by; run several "
     "seeds before reading anything into them." if not np.isfinite(spread) else
     "- Verdict: no change of the ablation stands out from the seed spread, so this run "
     "neither confirms nor refutes the paper's Table 1; that needs longer training (profile "
     "`full`) on the real data." if not beyond else
     f"- Verdict: {', '.join(beyond)} differ(s) from the U-Net by more than twice the seed "
     f"spread, in the {agree} direction as in the paper."),
    f"- smp U-Net (ResNet-34, from scratch): mIoU {seed_mean(ds, BASELINE, 'iou'):.1f} % against "
    f"{seed_mean(ds, 'cse_unet', 'iou'):.1f} % for CSE-UNet, with {full[BASELINE]:.1f} M against "
    f"{full['cse_unet']:.1f} M parameters at full width.",
    f"- At the paper's width CSE-UNet has {full['cse_unet']:.2f} M parameters, "
    f"{100 * (full['cse_unet'] / full['unet_plain'] - 1):.0f} % more than the U-Net "
    f"({full['unet_plain']:.2f} M); the RFB skips add {full['unet_rfb'] - full['unet_plain']:.2f}"
    f" M and the auxiliary path {full['unet_dual_path'] - full['unet_plain']:.2f} M. "
    f"Training took {time_ratio:.1f}x the U-Net's time here and inference ran at "
    f"{speed_ratio:.2f}x its throughput.",
    f"- Profile `{profile}` on {ch.hardware}, dataset `{dataset}`, {len(ch.seeds)} seed(s); "
    f"training took {ch.wall.get('train', 0):.0f} s in this run.",
]
display(Markdown("\n".join(lines)))
