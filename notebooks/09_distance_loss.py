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
# # The distance loss (Lossd) and boundary losses
#
# **Overview.** Ma et al. {cite:p}`ma2026lossd` add a loss term, *Lossd*, to the usual
# cross-entropy + Dice objective of aerial-image segmentation networks. Lossd charges
# every wrongly labelled pixel by how far it lies from the true boundary of its class, on
# a log scale, and it does so on the *hard* prediction (a straight-through one-hot). So a
# pixel of boundary jitter costs little, while a hole deep inside a building or a blob far
# from any object costs nearly the maximum. The abstract claims that this reduces over-
# and under-segmentation with no change to the network, and reports gains in mIoU on
# LoveDA and UAVid and in mean F1 on Potsdam (the section *Beside the paper* lists them).
# The paper's full text is not public; the authors' code skeleton is. This chapter
# rebuilds the loss from that skeleton (and marks what we had to reconstruct), sets it
# beside the closest prior art, the boundary loss of Kervadec et al.
# {cite:p}`kervadec2021`, and trains one network with the three objectives over several
# seeds. Besides the pixel scores (mIoU, mean F1, overall accuracy, boundary F1
# {cite:p}`csurka2013`; all defined on the {doc}`protocol page <../protocol>`), it counts
# what the paper claims to fix: predicted segments that match no true object, and true
# objects that are missed. The paper's two claims are judged by the study's one rule
# ({ref}`protocol-statistics`); on our data they test the *direction* of the effect, not
# its size.
#
# **Prerequisites.** {doc}`01_data` (the data and the eroded-boundary protocol) and
# {doc}`03_fcn_mfb` (the FCN that the CPU and GPU profiles train here).

# %% tags=["parameters"]
profile = "default"  # smoke | default | gpu | full
device = "auto"  # auto: CUDA when present, else CPU
dataset = "synthetic"  # synthetic | dubai | vaihingen | potsdam | loveda
data_root = None  # None: data/<dataset> (or ../shared/data for real sets)
data_options = None  # dataset options, e.g. {"potsdam_bands": "rgb"} (see chapter 01)
seeds = None  # None: the profile's seeds
retrain = False  # True: train again even if the run store holds the model
# Method parameters; None takes the profile's value (names as in aerialseg.config.TrainConfig
# and the methods' specs in aerialseg.papers.lossd.method).
epochs = None
batch_size = None
samples_per_epoch = None
crop_size = None
lr = None
base_width = None  # width of the U-Net's first level (full profile only: the U-Net)
lossd_weight = None  # lambda_d, weight of Lossd against CE + Dice [reconstructed: 1.0]
lossd_max_iter = None  # distance cap and normaliser (authors' code: 50)
lossd_norm = None  # "log" (authors' code), "linear" or "none"
lossd_warmup_epochs = None  # linear ramp of lambda_d (0: off)
boundary_alpha_step = None  # decrease of Kervadec's alpha per training pass
# Chapter settings (evaluation, not training).
object_min_overlap = None  # matched if at least this fraction overlaps (0.5; see below)
object_connectivity = None  # 4 or 8 (8)
object_min_size = None  # components smaller than this (px) are not counted (10)
timing_repeats = None  # repetitions of the per-step timings

# %% tags=["hide-input"]
import numpy as np
import torch
from IPython.display import Markdown, display

from aerialseg import chapter, objects, plots, registry, stats, tables
from aerialseg.display import method_names
from aerialseg.losses.distance import kervadec_distance_maps, signed_distance_maps
from aerialseg.papers.lossd import analysis
from aerialseg.papers.lossd import plots as lossd_plots
from aerialseg.papers.lossd import reported

plots.book_style()
ch = chapter.start(
    "09_distance_loss", profile=profile, device=device, dataset=dataset, seeds=seeds,
    data_root=data_root, data_options=data_options, retrain=retrain,
    overrides=dict(epochs=epochs, batch_size=batch_size, samples_per_epoch=samples_per_epoch,
                   crop_size=crop_size, lr=lr, base_width=base_width,
                   lossd_weight=lossd_weight, lossd_max_iter=lossd_max_iter,
                   lossd_norm=lossd_norm, lossd_warmup_epochs=lossd_warmup_epochs,
                   boundary_alpha_step=boundary_alpha_step),
    settings=dict(object_min_overlap=object_min_overlap,
                  object_connectivity=object_connectivity, object_min_size=object_min_size,
                  timing_repeats=timing_repeats))
METHODS = analysis.METHODS  # CE + Dice (the baseline), + Lossd, + boundary loss
BASE = analysis.BASELINE
NAMES = method_names([*METHODS, chapter.PIXEL_BASELINE])
classes = ch.data.classes
cfgs = {m: ch.resolve(m) for m in METHODS}
cap = cfgs["base_lossd"].loss_kwargs["lossd_max_iter"]

# %% tags=["remove-input"]
display(Markdown(analysis.dataset_note(ch.dataset, ch.data)))

# %% [markdown]
# ## What is public and what we reconstructed
#
# The paper's text is not available to us: only its abstract and reference list. The
# authors published the loss class with its signatures and docstrings but removed most
# function bodies, plus their training framework (GeoSeg-style configs). We read the
# mechanism off that skeleton and mark the rest:
#
# *From the authors' code skeleton:*
# - the hard one-hot prediction with a straight-through estimator (backward through the
#   softmax);
# - the city-block (Manhattan) distance of each pixel to the class boundary, capped at
#   `max_iter` = 50;
# - the signed map (+ inside the true class, − outside) and the per-pixel difference
#   $\lvert m_c s_c - g_c\rvert$;
# - the log normalisation $\log(1+\text{diff})/\log(1+\text{max\_iter})$, the mean over
#   pixels and over the classes present;
# - from the authors' framework: the base loss CE (label smoothing 0.05) + Dice.
#
# ***Reconstructed*** (not in anything public):
# - **the weight $\lambda_d$ of Lossd** (we use 1.0), and that Lossd is *added* to CE + Dice
#   rather than replacing Dice;
# - the distance computed by iterated cross-shaped erosions (4-neighbourhood; the same
#   values as the docstring's "Manhattan distance"), with the image border not a boundary;
# - ignore pixels: "not c" in the maps, left out of the mean;
# - the optimiser of the `full` profile: AdamW with one cosine decay (the authors:
#   Lookahead(AdamW), warm restarts);
# - the network: the paper's three benchmark models (probably SFA-Net among them) are not
#   ours (see the next section);
# - the boundary-loss variant follows Kervadec et al.'s public code; its α schedule is
#   compressed for our short runs (below).
#
# ## The loss
#
# Let $p = \operatorname{softmax}(z)$ be the predicted probabilities at a pixel and
# $\operatorname{sg}$ stop the gradient. The hard prediction with a straight-through
# estimator is
#
# $$ m = \operatorname{onehot}(\arg\max_c p_c) + p - \operatorname{sg}(p), $$
#
# exactly 0/1 in the forward pass, with the softmax's Jacobian in the backward pass. For a
# binary mask $u$, let $D(u)$ be the city-block distance of each pixel of $u$ to the nearest
# pixel outside $u$, capped at $K$ = `max_iter` (0 outside $u$). The skeleton computes it as
# $D(u) = \sum_{i=0}^{K-1} \operatorname{erode}^i(u)$ with a cross-shaped $3\times3$
# erosion: each pixel collects 1 per erosion it survives. (On a CPU we compute the same
# values with an exact two-pass scan; both are tested against scipy's taxicab distance
# transform.) For class $c$ with true mask $t_c$, $d_{in} = D(t_c)$, $d_{out} = D(1 - t_c)$,
#
# $$ s_c = d_{in}\, t_c - d_{out}\,(1 - t_c), \qquad g_c = d_{in}\, t_c, $$
#
# $$ L_c = \frac{1}{N} \sum_{x} \frac{\log\bigl(1 + \lvert m_c(x)\, s_c(x) - g_c(x)\rvert
#    \bigr)}{\log(1 + K)}, $$
#
# summed over the $N$ valid pixels. A correctly labelled pixel costs 0; a missed object
# pixel costs $\log(1+d_{in})/\log(1+K)$ and a spurious one $\log(1+d_{out})/\log(1+K)$.
# Lossd averages $L_c$ over the classes $A$ present in the prediction or the target, and
# the objective is
#
# $$ L = \mathrm{CE}_{ls=0.05} + \mathrm{Dice} + \lambda_d\,\frac{1}{|A|}\sum_{c \in A} L_c. $$
#
# A wrong pixel is charged twice: in the class it misses and in the class it wrongly takes.
# The gradient flows only through the wrongly labelled pixels, with a weight that grows
# with their distance $d$ to the boundary, as $d/(1+d)$, divided by $\log(1+K)$.
#
# **The prior art.** Kervadec's boundary loss uses the soft probabilities and a signed
# Euclidean distance $\phi_c$ (positive outside the class, $-(d-1)$ inside, not capped),
# linearly, averaged over the $N$ pixels and the $C$ classes (their public code takes the
# mean over the class axis too; methods.md writes a sum over classes, $C$ times larger):
#
# $$ L_B = \frac{1}{N\,C}\sum_x \sum_c \phi_c(x)\, p_c(x), $$
#
# $$ L = \alpha_e\,(\mathrm{CE} + \mathrm{Dice}) + (1 - \alpha_e)\, L_B, \qquad
#    \alpha_e = \max(0.01,\ 1 - \delta e), $$
#
# with $e$ the index of the training pass over the sampled crops. Kervadec et al. lower
# $\alpha$ by $\delta = 0.01$ per pass over about 200 passes, so it reaches its floor half-way
# through training. Our short runs keep that shape: $\delta$ = 2 / (number of passes)
# (reconstructed).
#
# ## What this edition trains
#
# The three objectives train the same network with the same data, optimiser, schedule and
# seeds: only the loss differs, and for a given seed the three runs start from the same
# weights and see the same batches, so their differences are paired. Which network depends
# on the profile:
#
# - **`full`** trains the paper's kind of network, a plain U-Net (four levels, first-level
#   width 64), with the authors' recipe: AdamW, one cosine decay, 45 passes of 1024 crops
#   of 256 px.
# - **`smoke`, `default` and `gpu`** (the CPU and short-GPU editions) train the study's
#   **shared backbone** instead: the FCN of {doc}`03_fcn_mfb` (width 16 in `default`), with
#   its SGD training (900 steps of 8 crops of 128 px in `default`, learning rate 0.03, poly
#   decay), like the other loss-comparison chapters ({doc}`06_uce`, {doc}`07_efm`). This
#   chapter's baseline is CE + Dice, the authors' base loss, so its runs are its own, not
#   chapter 03's CE runs.
#
# Why: the U-Net at the paper's width does not fit a CPU book. The table below measures
# one training crop through each network on this machine; a narrowed U-Net (width
# 8), which an earlier edition of this chapter trained instead, stayed far from converged
# within the budget and on the Dubai data never predicted road or vegetation. A loss that
# re-weights errors can only show an effect on a model that has learned the data, so the
# CPU editions compare the losses on a network that converges in the budget and beats the
# per-pixel baseline. What that means for the comparison with the paper: our gains are
# those of the loss on a small FCN trained from scratch, not on the paper's networks
# (pretrained encoders, 1024-px scenes), so they test whether Lossd moves the scores in the
# paper's direction, not by how much it does so on the paper's benchmarks.

# %% tags=["hide-input"]
unet = registry.resolve_run("base", profile="full", in_bands=ch.data.bands,
                            data=ch.data.cfg.to_dict())
networks = {"backbone": cfgs[BASE], "unet": unet} if cfgs[BASE].model != unet.model \
    else {"unet": unet}
network_cost = analysis.architecture_step_cost(
    networks, num_classes=classes.num_classes, crop=cfgs[BASE].train.crop_size,
    repeats=ch.settings["timing_repeats"], device=ch.device)
network_cost.index = [{"backbone": "Shared backbone: " + analysis.network_name(cfgs[BASE]),
                       "unet": "The paper's kind: " + analysis.network_name(unet)}[k]
                      for k in network_cost.index]
display(tables.show_table(
    network_cost.drop(columns="model"), rows=None, row_header="Network",
    caption=f"What one training crop of {cfgs[BASE].train.crop_size} px costs each network "
            f"(forward and backward, fastest of {ch.settings['timing_repeats']} repeats, "
            f"{ch.hardware}); relative: to the first row.",
    formats={"parameters (M)": "float2", "time per crop (ms)": "float1", "relative": "float1"}))
display(Markdown(analysis.network_sentence(
    network_cost.set_axis(list(networks)), cfgs[BASE], ch.hardware,
    runs=len(METHODS) * len(ch.seeds))))

# %% [markdown]
# The runs of this edition, and the weights of the two distance terms over training:

# %% tags=["remove-input"]
display(tables.show_table(analysis.run_table(cfgs), rows="method",
                          caption="The three runs of each seed: network, loss, optimiser, "
                                  "optimiser steps and batch (identical but for the loss)."))
display(tables.show_table(
    analysis.schedule_table(cfgs), rows=None, row_header="Weight",
    caption="Weights of the two distance terms at fractions of training: λ_d multiplies "
            "Lossd (added to CE + Dice); the boundary loss takes the share 1 − α and "
            "CE + Dice the share α.",
    formats=dict.fromkeys(["0 %", "25 %", "50 %", "75 %", "100 %"], "float2")))

# %% [markdown]
# ### What one wrong pixel costs
#
# A square object on background; one pixel at distance $d$ from the object's boundary is
# labelled wrongly, either inside (a miss) or outside (a spurious pixel). The table gives
# each loss's charge for that one pixel, computed with the loss modules themselves (the
# increase over the perfect prediction, times the number of pixels). Lossd grows like
# $\log(1+d)$ and saturates at the cap; the boundary loss grows linearly without bound;
# cross-entropy charges every wrong pixel the same (its value is set by the logit scale of
# the example). Misses and spurious pixels cost the same, so only misses are shown.

# %%
depths = tuple(d for d in (1, 2, 4, 8, 16, 32) if d <= cap) + ((cap,) if cap < 32 else ())
costs = analysis.error_cost_table(depths, max_iter=cap)

# %% tags=["remove-input"]
display(tables.show_table(
    costs[["Lossd (log): miss", "Lossd (linear): miss", "boundary loss: miss",
           "cross-entropy: miss"]],
    rows=None, row_header="Distance d (px)", columns={
        "Lossd (log): miss": "Lossd, log", "Lossd (linear): miss": "Lossd, linear",
        "boundary loss: miss": "Boundary loss", "cross-entropy: miss": "Cross-entropy"},
    caption=f"Charge of one missed pixel at distance d from the true boundary (cap K = {cap}; "
            "a spurious pixel at the same distance costs the same).",
    formats=dict.fromkeys(["Lossd (log): miss", "Lossd (linear): miss"], "float3")
    | dict.fromkeys(["boundary loss: miss", "cross-entropy: miss"], "float1")))
plots.show(lossd_plots.error_charges(costs), name="lossd-error-charges",
           caption="Charge of one wrong pixel against its distance to the true boundary. "
                   "Left: Lossd saturates at the cap with its log normalisation and grows "
                   "linearly with the linear one. Right: the boundary loss grows without "
                   "bound, cross-entropy is flat.",
           alt="Two line plots against the distance in pixels on a log axis: Lossd's log "
               "curve rises quickly and flattens near 1, its linear curve rises steadily; "
               "the boundary-loss line rises linearly, the cross-entropy line is flat.")

# %% [markdown]
# ## Distance maps: once per scene, not once per step
#
# The maps depend only on the labels. The method's setup hook computes them **once per
# training scene** and hands them to the patch sampler, which cuts, flips and rotates them
# exactly like the labels; distance transforms commute with flips and 90° rotations, so a
# rotated crop of the scene's map is the map of the rotated crop. One difference is
# deliberate: near a crop's edge the scene map still sees the object's true boundary
# outside the crop, where a map computed on the crop would treat the crop edge as "no
# boundary". Lossd's signed map is stored as 8-bit integers (its values are integers in
# $[-K, K]$); the boundary loss's $\phi$ as 16-bit floats. {numref}`lossd-distance-maps`
# shows one training scene and the two maps of one class.

# %%
scene = ch.data.train[0]
train_labels = scene.training_labels(True)
shown = classes.names.index("building") if "building" in classes.names \
    else classes.evaluated[0]
target = torch.from_numpy(train_labels.astype(np.int64))
full, _ = signed_distance_maps(target, classes.num_classes, cap)
phi = kervadec_distance_maps(target, classes.num_classes)

# %% tags=["remove-input"]
plots.show(lossd_plots.distance_maps(train_labels, full[shown].numpy(), phi[shown].numpy(),
                                     shown, classes),
           name="lossd-distance-maps",
           caption="A crop of one training scene: its labels (black: pixels without a "
                   "trained label), Lossd's signed city-block map of one class (capped at "
                   f"{cap} px) and the boundary loss's signed Euclidean map φ of the same "
                   "class (not capped; colours clipped at its 99th percentile).",
           alt="Three panels: a label map in class colours; a red-blue map that is red "
               "inside the class's objects and blue outside, saturating at the cap; a "
               "blue-red map of the opposite sign that keeps growing away from the objects.")

# %% [markdown]
# What the losses cost per training step: forward and backward
# of the loss term alone on a batch of training labels of this profile's size (the
# fastest of a few repeats), with the maps taken from the cache and with the maps computed
# inside the step (as a naive implementation would), and the base loss for scale. On a
# CPU the city-block maps use an exact two-pass scan; on a GPU, the erosions of the
# skeleton.

# %% tags=["hide-input"]
cfg_l = cfgs["base_lossd"].train
batch = analysis.label_batch([s.training_labels(True) for s in ch.data.train],
                             cfg_l.batch_size, cfg_l.crop_size)
step_cost = analysis.loss_step_cost(batch, classes.num_classes, max_iter=cap,
                                    device=ch.device, repeats=ch.settings["timing_repeats"])
b_, c_, h_, w_ = step_cost.attrs["batch"]
display(tables.show_table(
    step_cost, rows=analysis.STEP_COST_LABELS, row_header="Loss",
    caption=f"Forward and backward time of each loss on one batch of {b_} label crops of "
            f"{h_} px with {c_} classes (ms, fastest of {ch.settings['timing_repeats']}; "
            f"{ch.hardware}).",
    formats={"time per step (ms)": "float1"}))

# %% [markdown]
# ## Training
#
# For each seed, the three objectives are trained (or reused from the run store when the
# same configuration was trained before) and evaluated on the validation scenes. Every
# evaluation also counts the objects of every validation scene (defined under
# *Over- and under-segmentation* below). The per-pixel baseline, a logistic regression on
# single pixels' band values, is fitted once: a model below it has not learned more than
# the colours and takes part in no verdict.

# %%
tally = objects.ObjectTally(classes.evaluated, classes.evaluated_names,
                            min_overlap=ch.settings["object_min_overlap"],
                            connectivity=ch.settings["object_connectivity"],
                            min_size=ch.settings["object_min_size"])
for seed in ch.seeds:
    for name in METHODS:
        run = ch.train(name, seed)
        ch.evaluate(run, extra=tally.counter(name, seed))
pixel_baseline = ch.add_pixel_baseline()
baseline_objects = tally.add(chapter.PIXEL_BASELINE, ch.seeds[0],
                             analysis.pixel_baseline_maps(pixel_baseline, ch.data.val))

# %% tags=["remove-input"]
plots.show(plots.training_curves({k: r.history for k, r in ch.runs.items()}),
           name="lossd-training-curves",
           caption="Training loss of every run, one line per seed. The three objectives add "
                   "different terms, so their values are not comparable with each other; "
                   "each curve shows that its own objective levels off.",
           alt="Line plot of the training loss against the training pass for the three "
               "objectives, one line per seed, each falling and flattening.")
display(tables.show_table(
    analysis.training_table(ch.runs), rows=None, labels={"method": "method"},
    caption="Every trained run: optimiser steps, final training loss, converged ("
            + stats.CONVERGENCE_RULE + "), "
            "training time, and whether the run store already held it.",
    formats={"final loss": "float3", "training (s)": "float1", "seed": "text"}))

# %% [markdown]
# ## Results
#
# Validation scenes, eroded-boundary ground truth (the primary protocol,
# {ref}`protocol-eroded`): F1 per class, mean F1, mIoU and overall accuracy with their 95 %
# intervals over seeds and spatial blocks ({ref}`protocol-statistics`); boundary F1
# ({ref}`protocol-boundary-f1`, full ground truth) and ECE ({ref}`protocol-ece`) as mean ±
# standard deviation over seeds. The per-pixel baseline is the first sanity row.

# %% tags=["remove-input"]
ds = ch.write_results()
display(Markdown(ch.edition()))
display(tables.summary_table(ds, protocol="eroded", spread="interval"))

# %% [markdown]
# The same on the full ground truth, where the pixels next to boundaries count too (the
# pixels that Lossd charges least):

# %% tags=["remove-input"]
display(tables.summary_table(ds, protocol="full", spread="interval"))

# %% [markdown]
# ### Gains over CE + Dice
#
# Each objective against CE + Dice, paired by seed, by the study's rule: the change in
# points with its 95 % interval from the paired bootstrap over seeds and spatial blocks,
# and the verdict's word for "the objective raises this score" (the table, and
# {numref}`lossd-gain-intervals`). A model that has not
# converged, or scores below the per-pixel baseline, makes its comparisons untestable.

# %% tags=["remove-input"]
flags = stats.sanity_flags(ds, pixel_baseline=chapter.PIXEL_BASELINE)
gains = analysis.readable(analysis.gain_verdicts(ds, flags=flags), NAMES)
display(tables.show_table(
    analysis.gain_table(gains), rows=None, row_header="Score", columns="method",
    caption="Change of each score against CE + Dice (points, eroded protocol): estimate "
            "[95 % interval], and the verdict on \"the objective raises it\"."))
plots.show(lossd_plots.gain_intervals(gains), name="lossd-gain-intervals",
           caption="Change of each score against CE + Dice with its 95 % interval (paired "
                   "bootstrap over seeds and spatial blocks). An interval that crosses the "
                   "vertical line does not show a direction.",
           alt="Horizontal interval plot: one row per score, two coloured intervals per "
               "row for Lossd and the boundary loss, around a vertical line at zero change.")

# %% [markdown]
# ### The paper's claims
#
# The abstract's two claims on overall scores, judged on our runs. The paper's effects are
# on its data and networks; ours test whether Lossd moves the same score in the same
# direction here.

# %% tags=["remove-input"]
claims = [c for c in registry.claims() if c.chapter == ch.name]
verdicts = analysis.readable(ch.verdicts(ds), NAMES)
display(tables.verdict_table(verdicts, claims,
                             caption="The paper's claims on Lossd judged on our runs "
                                     "(eroded protocol)."))
display(Markdown("\n\n".join(stats.sentence(v, names=NAMES) for v in verdicts)))

# %% [markdown]
# ### Over- and under-segmentation
#
# Pixel scores cannot tell a thin boundary error from a blob in the wrong place, or a
# small object that is not found at all. We count connected components (8-neighbourhood
# unless set otherwise above) per evaluated class on every validation scene, against the
# full ground truth (erosion would cut objects apart). With $f$ = `object_min_overlap`:
#
# - a predicted **segment** is **spurious** (over-segmentation: a false object) if less than
#   a fraction $f$ of its pixels truly belong to its class;
# - a true **object** is **missed** (under-segmentation: a lost object) if less than a
#   fraction $f$ of its pixels are predicted as its class;
# - a segment and an object are *linked* if their overlap is at least $f$ times the smaller
#   of the two; an object linked to several segments is **split**, a segment linked to
#   several objects is **merged**.
#
# Components smaller than `object_min_size` pixels are not counted. Counts are summed over
# the evaluated classes and the validation scenes (the first table below and
# {numref}`lossd-object-figure`); the change against CE + Dice gets the study's paired
# bootstrap with the validation scenes as the resampled blocks (the second table).

# %% tags=["remove-input"]
obj = tally.dataarray()
display(tables.show_table(
    objects.counts_frame(obj), rows="method", columns=objects.KIND_NAMES,
    caption="Objects and segments per method, summed over classes and validation scenes "
            "(mean over seeds; the per-pixel baseline has one run).",
    formats=dict.fromkeys(objects.KINDS, "float1")))
plots.show(lossd_plots.object_counts(objects.totals(obj), methods=METHODS),
           name="lossd-object-figure",
           caption="Object errors of the three objectives, summed over classes and "
                   "validation scenes: bars are the mean over seeds, dots the seeds. The "
                   "per-pixel baseline (in the table above) is left out of the figure.",
           alt="Four horizontal bar charts (spurious segments, missed objects, split "
               "objects, merged segments), one bar per objective with a dot per seed.")
changes = analysis.count_changes(obj, BASE, methods=("base_lossd", "base_boundary"))
display(tables.show_table(
    analysis.count_change_table(changes), rows="method", columns=objects.KIND_NAMES,
    caption="Change of each error count against CE + Dice (objects, summed over classes "
            "and scenes, mean over seeds): estimate [95 % interval of the paired bootstrap "
            "over seeds and validation scenes]. Negative is fewer errors."))

# %% [markdown]
# How much these counts depend on the matching rule: the totals with smaller or larger
# components ignored and with "any overlap" ($f \to 0$) instead of half; then where the
# errors are, per class.

# %% tags=["remove-input"]
sens, sens_groups = analysis.sensitivity_frame(tally.sensitivity())
display(tables.show_table(
    sens, rows=None, row_header="Matching rule",
    columns=analysis.method_column_names(sens.columns), split=sens_groups,
    caption="Spurious segments and missed objects under other matching rules (totals over "
            "classes and scenes, mean over seeds).",
    formats=dict.fromkeys(sens.columns, "float1")))
per_class, per_class_groups = analysis.per_class_frame(obj.sel({"method": list(METHODS)}))
display(tables.show_table(
    per_class, rows="class", columns=analysis.method_column_names(per_class.columns)
    | {"objects": "True objects"}, split=per_class_groups,
    caption="True objects, missed objects and spurious segments per class (summed over "
            "validation scenes, mean over seeds).",
    formats=dict.fromkeys(per_class.columns, "float1")))

# %% [markdown]
# ### Beside the paper
#
# The abstract's numbers (different data, networks and protocol: the LoveDA and UAVid test
# sets, Potsdam with the GeoSeg split; the per-class tables and the network are not
# public). The baseline is implied by the stated gain. Compare the *sign* of the gain, not
# the values.

# %% tags=["remove-input"]
display(tables.show_table(
    reported.lossd_abstract_table(), rows=None, row_header="Data set",
    caption="Ma et al. (2026), abstract: the score with Lossd, its gain over the base loss "
            "and the implied base score (%).",
    formats={"base (implied)": "float1", "with Lossd": "float1", "gain": "float1"}))

# %% [markdown]
# ### Cost in training
#
# Measured inside each training run and stored with it: the loss's forward time per step
# (median), the wall time of one optimiser step, and the one-off computation of the
# distance maps for all training scenes. On a busy shared
# machine the timings are noisy.

# %% tags=["remove-input"]
display(tables.show_table(
    analysis.cost_summary(ch.runs), rows="method",
    caption=f"Cost of each objective in training (mean over seeds; {ch.hardware}).",
    formats={"loss forward (ms per step)": "float1", "training step (ms)": "float1",
             "distance maps, once (s)": "float2"},
    na="not measured (the objective has no distance maps)"))

# %% [markdown]
# ### Predictions
#
# The first validation scene (first seed): the image, the ground truth and each
# objective's prediction, with spurious segments hatched in magenta and missed objects in
# black ({numref}`lossd-object-gallery`); then where Lossd charges each prediction
# ({numref}`lossd-charge-maps`): the per-pixel Lossd charge summed over the classes,
# $\sum_c \log(1 + \lvert m_c s_c - g_c\rvert)/\log(1+K)$. Errors along a boundary are pale;
# blobs far from any object of their class and holes deep inside objects are dark.

# %% tags=["remove-input"]
first = [r for r in ch.records if r.seed == ch.seeds[0] and r.method in METHODS]
scene_name = next(iter(first[0].evaluation.maps))
truth = first[0].evaluation.maps[scene_name]["truth"].astype(np.int64)
preds = {r.method: r.evaluation.maps[scene_name]["pred"].astype(np.int64) for r in first}
overlays = {m: objects.error_overlay(p, truth, classes.evaluated,
                                     min_overlap=ch.settings["object_min_overlap"],
                                     connectivity=ch.settings["object_connectivity"],
                                     min_size=ch.settings["object_min_size"])
            for m, p in preds.items()}
plots.show(lossd_plots.object_errors_gallery(preds, overlays, truth, classes,
                                             image=plots.false_colour(ch.data.val[0])),
           name="lossd-object-gallery",
           caption="A crop of the first validation scene: image, ground truth and the "
                   "prediction of each objective (first seed). Hatched in magenta: "
                   "spurious segments; in black: missed objects (the whole area of each).",
           alt="Grid of five panels: the image, the ground-truth label map and three "
               "predicted label maps in class colours, with magenta and black hatching "
               "over spurious segments and missed objects.")
charges = {m: analysis.lossd_cost_map(p, truth, classes.num_classes, max_iter=cap,
                                      evaluated=classes.evaluated) for m, p in preds.items()}
plots.show(lossd_plots.charge_maps(charges), name="lossd-charge-maps",
           caption="Lossd's charge of every pixel of each prediction of the same crop "
                   "(summed over the classes; one colour scale). Titles: the mean charge "
                   "per pixel over the whole scene.",
           alt="Three maps of the per-pixel Lossd charge, white where the prediction is "
               "right, pale along boundaries and dark for blobs and holes far from any "
               "boundary, with a shared colour bar.")

# %% [markdown]
# ## Results file
#
# The standard results (scores, confusion matrices per spatial block, the object totals
# of each run) plus the object counts per scene `objects[method, seed, scene, class,
# kind]` and the measured loss time per step `loss_forward_ms[method, seed]`.

# %% tags=["hide-input"]
ds["objects"] = obj
ds["loss_forward_ms"] = analysis.loss_time_dataarray(ch.runs)
ds = ch.write_summary(ds)

# %% [markdown]
# ## Summary

# %% tags=["summary"]
display(Markdown(analysis.summary_text(
    edition=ch.edition(), network=analysis.network_phrase(cfgs[BASE]), verdicts=verdicts,
    claims=claims, gains=gains, changes=changes, step_cost=step_cost, flags=flags,
    names=NAMES, final_losses=analysis.final_losses(ch.runs))))
