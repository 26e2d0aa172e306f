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
# # U-CE: uncertainty-aware cross-entropy
#
# **Overview.** Landgraf et al. {cite:p}`landgraf2024` weight every pixel's cross-entropy by
# the network's own Monte-Carlo-dropout {cite:p}`gal2016` uncertainty, computed on the fly
# during training: pixels the model is unsure about get more gradient. On Cityscapes (street
# scenes) they report that this *U-CE* loss with exponent $\alpha=10$ raises the mIoU of a
# DeepLabV3+ by a few points over plain cross-entropy (CE) and lowers its calibration
# error; $\alpha=1$ changes little. No remote-sensing numbers exist. This chapter trains
# the CE baseline and U-CE with $\alpha=1$ and $\alpha=10$ on aerial tiles, several seeds
# each, with one network and one training recipe, so that the three differ only in their
# loss. It judges the paper's mIoU claims by the study's statistics rule, describes what
# U-CE does to calibration and to the uncertainty itself, and measures what the extra
# passes cost.
#
# **Prerequisites.** {doc}`01_data` (the data and the eroded-boundary protocol),
# {doc}`03_fcn_mfb` (the FCN this chapter trains), {doc}`04_uncertainty` (MC-dropout
# uncertainty) and the {doc}`../protocol` page (metrics, ECE, the statistics rule).

# %% tags=["parameters"]
profile = "default"  # smoke | default | gpu | full
device = "auto"  # auto: CUDA when present, else CPU
dataset = "synthetic"  # synthetic | dubai | vaihingen | potsdam
data_root = None  # None: data/<dataset> (or ../shared/data for real sets)
data_options = None  # dataset options, e.g. {"potsdam_bands": "rgb"} (see chapter 01)
seeds = None  # None: the profile's seeds
retrain = False  # True: train again even if the run store holds the model
# Method parameters; None takes the profile's value (names as in aerialseg.config.TrainConfig
# and the methods' specs in aerialseg.papers.uce.method).
epochs = None
batch_size = None
samples_per_epoch = None
crop_size = None
lr = None
decoder_lr_mult = None
encoder = None  # full profile: "resnet18" (or "resnet101")
encoder_weights = None  # full profile: None for random initialisation, or "imagenet" (cached)
encoder_dropout = None
encoder_depth = None
decoder_channels = None
uce_mc_samples = None  # T extra no-grad passes per training step
uce_uncertainty = None  # "predicted_class_std" (the code's) or "mean_class_std"
uce_start_epoch = None  # epoch at which the weighting switches on (0: from the start)
uce_mc_bn = None  # "train" (the code's), "train_frozen_stats" or "eval"
test_mc_samples = None  # MC passes at evaluation (a chapter setting)

# %% tags=["hide-input"]
from IPython.display import Markdown, display

from aerialseg import chapter, plots, stats, tables
from aerialseg.display import method_names
from aerialseg.models.registry import build_model
from aerialseg.papers.uce import analysis as uce
from aerialseg.papers.uce import plots as uce_plots
from aerialseg.papers.uce.method import METHOD_NAMES
from aerialseg.papers.uce.reported import (
    CALIBRATION_CLAIMS,
    landgraf_effects,
    landgraf_table,
)
from aerialseg.registry import claims, get_method

plots.book_style()
ch = chapter.start(
    "06_uce", profile=profile, device=device, dataset=dataset, seeds=seeds,
    data_root=data_root, data_options=data_options, retrain=retrain,
    overrides=dict(epochs=epochs, batch_size=batch_size, samples_per_epoch=samples_per_epoch,
                   crop_size=crop_size, lr=lr, decoder_lr_mult=decoder_lr_mult,
                   encoder=encoder, encoder_weights=encoder_weights,
                   encoder_dropout=encoder_dropout, encoder_depth=encoder_depth,
                   decoder_channels=decoder_channels, uce_mc_samples=uce_mc_samples,
                   uce_uncertainty=uce_uncertainty, uce_start_epoch=uce_start_epoch,
                   uce_mc_bn=uce_mc_bn),
    settings=dict(test_mc_samples=test_mc_samples))
T_TEST = ch.settings["test_mc_samples"]
evaluation = {k: ch.settings[k] for k in ("tile", "overlap")}
classes = ch.data.classes
METHODS = METHOD_NAMES  # ce_dropout, uce_a1, uce_a10
BASELINE = "ce_dropout"
names = method_names([*METHODS, chapter.PIXEL_BASELINE])

# %% [markdown]
# ## The loss
#
# Let $\mathrm{CE}(x)$ be the per-pixel cross-entropy (zero on ignored pixels) and $u(x)$ the
# model's predictive uncertainty at pixel $x$. For a batch with $N$ non-ignored pixels,
#
# $$ L_{\text{U-CE}} = \frac{1}{N}\sum_{x} \bigl(1 + u(x)\bigr)^{\alpha}\,\mathrm{CE}(x). $$
#
# The uncertainty comes from $T$ extra stochastic forward passes *without gradients*, with
# the network in training mode (dropout active): with $p_t(x)$ the softmax of pass $t$,
# $\bar p = \frac1T\sum_t p_t$ and $s_c$ the (unbiased) standard deviation of $p_{t,c}$ over
# the passes, $u(x) = s_{\hat c}(x)$ is the spread of the class the MC mean predicts,
# $\hat c = \arg\max_c \bar p_c$. The cross-entropy itself comes from an ordinary training
# pass, which alone carries the gradient: $u$ only reweights it. With $\alpha = 0$ or
# $u = 0$ the loss is plain cross-entropy. Since $u \le 0.5$ (a spread of probabilities),
# the weight of a pixel lies between 1 and $1.5^{\alpha}$: up to 1.5 for $\alpha=1$ and
# about 58 for $\alpha=10$. At one learning rate, a U-CE step with $\alpha=10$ is therefore
# larger than a CE step by the mean weight of its pixels, and much larger on the most
# uncertain ones.
#
# *From the paper and its code:* the loss, $u$ (std of the predicted class, `torch.std`,
# so divided by $T-1$), $T=10$, no warm-up, and the passes running with BatchNorm in
# training mode, which updates BatchNorm's running statistics $T+1$ times per step
# (`uce_mc_bn="train"`; `"train_frozen_stats"` restores them after the passes). Two bugs
# of the public code are not copied (the U-CE criterion is compared rather than
# assigned, and a missing import).

# %% [markdown]
# ## What this edition trains
#
# **The shared backbone.** In the `smoke`, `default` and `gpu` profiles the three methods
# train the study's shared backbone (`aerialseg.profiles.SHARED_BACKBONE`) instead of the
# paper's DeepLabV3+: the FCN of {doc}`03_fcn_mfb`, at a small width, whose element-wise
# dropout after its third and fourth convolution sets is the MC-dropout network U-CE samples
# from. All three use the same training (SGD, poly decay, crops of the training scenes in
# their eight flips and rotations), so U-CE differs from its baseline only in its loss. The
# CE baseline is then exactly chapter 03's FCN: the run store keys a run by everything that
# defines its weights, finds the same key for both and trains the model once (shown below).
# Chapter 03 scores that model by its ordinary (dropout-off) prediction, this chapter by the
# mean of its MC-dropout passes, as U-CE's paper does; the scores therefore differ a little.
#
# **Why.** Cost. The book's `default` profile must train every method of every chapter
# with three seeds in one hour on a 2-core CPU; the paper's network costs several times the
# backbone's per step (measured below on this edition's hardware), and U-CE adds $T$
# forward passes to every step. `full` keeps the paper's DeepLabV3+ (ResNet-18, or
# ResNet-101 with `encoder="resnet101"`) with its recipe (below) for a GPU.
#
# **What it means for the comparison with the paper.** Our numbers are not Cityscapes
# numbers: other data (aerial tiles, a handful of classes), another network (a small FCN
# from random weights instead of an ImageNet-pretrained DeepLabV3+) and far fewer
# optimiser steps. The dropout differs too (0.5 at two sites instead of 0.2 after every
# encoder stage), so $u$, and with it the weights $(1+u)^\alpha$, has another scale. What
# can be compared is the *direction and rough size of the change* U-CE brings over CE with
# everything else fixed, never the values themselves. On the Dubai edition the inputs are
# the three RGB bands and the classes Dubai's five; nothing else changes, and both of the
# paper's mIoU claims concern all classes, so they stay testable there.

# %% tags=["remove-input"]
cfgs = {m: ch.resolve(m) for m in METHODS}
full = {m: get_method(m).resolve(profile="full", in_bands=ch.data.bands,
                                 data=ch.data.cfg.to_dict()) for m in (BASELINE, "uce_a10")}
tables.show_table(
    uce.recipe_table({f"This edition ({profile} profile)": (cfgs[BASELINE], cfgs["uce_a10"]),
                      "Full profile (the paper's network and recipe)": (full[BASELINE],
                                                                        full["uce_a10"])}),
    caption="The training recipe of this edition beside the `full` profile's. The three "
            "methods share everything in a column but their loss.",
    rows=None, row_header="Setting", columns=None, split=None)

# %% tags=["remove-input"]
tables.show_table(uce.methods_table(cfgs), rows="method",
                  caption="The three methods: loss, exponent α, MC passes per training "
                          "step and the range of a pixel's weight (u ≤ 0.5).",
                  columns=None)

# %% [markdown]
# The cost of the two networks, measured here: one SGD step (forward, backward, update)
# of an untrained backbone and of the paper's DeepLabV3+ ResNet-18, on the same batch of
# this edition's crops.

# %% tags=["hide-input"]
t_cfg = cfgs[BASELINE].train
arch = uce.architecture_cost(
    {"shared backbone (FCN)": build_model(
        cfgs[BASELINE].model, in_channels=len(ch.data.bands), num_classes=classes.num_classes,
        **cfgs[BASELINE].model_kwargs),
     "DeepLabV3+ ResNet-18 (the paper's, full profile)": build_model(
        full[BASELINE].model, in_channels=len(ch.data.bands), num_classes=classes.num_classes,
        **full[BASELINE].model_kwargs)},
    len(ch.data.bands), classes.num_classes, batch=t_cfg.batch_size, crop=t_cfg.crop_size,
    device=ch.device)
dlv3_ratio = float(arch["× backbone step"].iloc[-1])
tables.show_table(arch, rows=None, row_header="Network", columns=None,
                  formats={"parameters (M)": "float2", "s / step": "float3",
                           "× backbone step": "float1"},
                  caption=f"Seconds per training step of the two networks on {ch.hardware}, "
                          f"batch of {t_cfg.batch_size} crops of {t_cfg.crop_size} px (best "
                          "of two steps after a warm-up; random weights and inputs).")

# %% [markdown]
# ## Training
#
# Every method is trained with every seed (a model already in the run store with the same
# configuration is reused) and evaluated on the validation scenes with `test_mc_samples`
# MC-dropout passes; its prediction is the argmax of their mean. Before each U-CE step, a
# training callback (`UCEUncertainty`) draws the $T$ no-grad passes and hands $u$ to the
# loss; it also records the time they take, the mean $u$, the mean weight
# $(1+u)^\alpha$ and the plain cross-entropy of the passes. The per-pixel baseline (a
# logistic regression on single pixels' bands, see {ref}`protocol-statistics`) is the
# row every model must beat.

# %%
for seed in ch.seeds:
    for name in METHODS:
        run = ch.train(name, seed)
        ch.evaluate(run, mc_samples=T_TEST, prediction="mc_mean", **evaluation,
                    extra=lambda ev, run=run: uce.run_extras(ev, run, T_TEST))
ch.add_pixel_baseline()
ds = ch.write_results(extra_attrs={"test_mc_samples": T_TEST})
flags = stats.sanity_flags(ds, pixel_baseline=chapter.PIXEL_BASELINE)

# %% tags=["remove-input"]
sharing = uce.sharing_table({s: ch.runs[(BASELINE, s)] for s in ch.seeds},
                            {s: ch.resolve("fcn", s) for s in ch.seeds}, ch.data)
shared_all = bool(sharing["same stored model"].all())
tables.show_table(sharing, index=False, formats={"training (s)": "float1"},
                  caption="The CE baseline's runs and chapter 03's FCN runs, per seed: one "
                          "stored model each (the run store's key of both is the same), and "
                          "whether the store already held it when this chapter asked.")

# %% tags=["remove-input"]
display(Markdown(uce.sharing_note(sharing)))

# %% tags=["remove-input"]
fig = plots.training_curves({k: r.history for k, r in ch.runs.items()})
plots.show(fig, name="uce-training-loss",
           caption="Training loss of every run over its training (one line per seed). U-CE's "
                   "loss is a weighted sum, $(1+u)^\\alpha$ times the cross-entropy, so its "
                   "curves lie above the CE baseline's by about the mean weight and are not "
                   "comparable "
                   "with it; the next figure compares the plain cross-entropy.",
           alt="Line chart of the training loss over training for the CE baseline and "
               "U-CE with alpha 1 and 10, one line per seed.")

# %% tags=["remove-input"]
fig = uce_plots.weighting_curves({k: r.history for k, r in ch.runs.items()}, baseline=BASELINE)
plots.show(fig, name="uce-weighting-curves",
           caption="What the weighting did during training. Left: the plain "
                   "cross-entropy on the training batches (the CE baseline's loss; for U-CE, "
                   "the cross-entropy of its MC passes), comparable across methods. Middle: "
                   "the mean uncertainty u of the training pixels. Right: the mean pixel "
                   "weight $(1+u)^\\alpha$ (log scale), i.e. how much larger than a CE step a "
                   "U-CE step is on average at the same learning rate.",
           alt="Three line charts over training: unweighted training cross-entropy of "
               "all methods, mean training uncertainty of the U-CE runs, and their mean "
               "pixel weight on a logarithmic axis.")

# %% tags=["remove-input"]
train = ch.training_table()
train["converged"] = [stats.converged(ch.runs[(m, s)].history)
                      for m, s in zip(train["method"], train["seed"], strict=True)]
tables.show_table(
    train[["method", "seed", "epochs", "steps", "final loss", "converged", "training (s)",
           "reused"]],
    labels={"method": "method"}, index=False,
    formats={"final loss": "float3", "training (s)": "float1"},
    caption="Every training run: passes over the training samples, optimiser steps, the "
            "mean loss of the last pass (U-CE's is weighted), whether it converged ("
            + stats.CONVERGENCE_RULE + ") and its training time "
            "(of the original run when reused from the run store).")

# %% tags=["remove-input"]
display(Markdown(uce.training_note(ds, {k: r.history for k, r in ch.runs.items()}, flags,
                                   names=names, baseline=BASELINE)))

# %% [markdown]
# ## What the extra passes cost
#
# The $T$ passes are batched rather than looped: the part of the network before the first
# dropout (for the backbone, its first two convolution sets) is deterministic and runs once;
# the rest runs once over the $T$ stacked copies of the batch. Stacking alone would change
# BatchNorm, which would pool its batch statistics over all copies; here every BatchNorm
# normalises each copy with that copy's own statistics and updates its running statistics
# exactly as $T$ separate passes would. Below, on a training batch with the trained
# $\alpha=10$ model: the time of $T$ passes one by one (as U-CE's code runs them) and
# batched, and the largest difference between the two with dropout switched off (both are
# deterministic then, so they must agree to rounding).

# %%
first_seed = ch.seeds[0]
run10 = ch.runs[("uce_a10", first_seed)]
T_TRAIN = int(run10.loss_kwargs["uce_mc_samples"])
batch = uce.training_batch(run10.cfg, ch.data, n=run10.cfg.train.batch_size, stats=run10.stats)
check = uce.compare_mc_passes(run10.model, batch["image"].to(ch.device), T_TRAIN)

# %% tags=["remove-input"]
tables.show_table(uce.mc_pass_table(check, T_TRAIN, len(batch["image"])), index=False,
                  formats={"one by one (s)": "float3", "batched (s)": "float3",
                           "speed-up": "float2"},
                  caption=f"The U-CE passes of one training step on {ch.hardware}: one by one "
                          "against batched (best of two), and their agreement with dropout "
                          "switched off (probabilities and BatchNorm running statistics).")

# %% tags=["remove-input"]
costs = uce.step_cost_table(ds, baseline=BASELINE)
tables.show_table(costs, rows="method", columns=None,
                  formats={"s / step": "float3", "MC passes s / step": "float3",
                           "MC share (%)": "float1", "× its ordinary step": "float2",
                           "× CE step": "float2"},
                  caption="Seconds per training step over whole runs (mean of seeds), the part "
                          "spent in U-CE's MC passes, the whole step over the same run's step "
                          "without the passes, and over a CE step. Measured by the training "
                          "callback; a shared CPU makes timings noisy, and reused runs keep "
                          "the times of their original training, so only the ratio within a "
                          "run is free of the machine's load at the time.")

# %% tags=["remove-input"]
display(Markdown(uce.pass_cost_note(costs, T_TRAIN)))

# %% [markdown]
# ## Results

# %% tags=["remove-input"]
display(Markdown(ch.edition()))

# %% tags=["remove-input"]
tables.summary_table(ds, protocol="eroded", per_class="f1", spread="interval",
                     caption="F1 per class and the overall scores on the validation scenes "
                             "(eroded-boundary ground truth), in %: mean [95 % interval over "
                             "seeds and spatial blocks]; boundary F1 and ECE, which a "
                             "confusion matrix does not give, as mean ± standard deviation "
                             "over seeds.")

# %% tags=["remove-input"]
tables.summary_table(ds, protocol="eroded", per_class="iou", metrics=("iou",),
                     spread="interval",
                     caption="IoU per class and mIoU, the paper's metric (eroded-boundary "
                             "ground truth), in %: mean [95 % interval over seeds and spatial "
                             "blocks].")

# %% [markdown]
# The metrics are defined on the {doc}`../protocol` page ({ref}`protocol-per-class`,
# {ref}`protocol-overall`, {ref}`protocol-boundary-f1`, {ref}`protocol-ece`). The paper's
# three quantities are mIoU, ECE and the mean uncertainty *mUnc*: the mean of $u$ (the
# standard deviation of the predicted class's probability over the test-time MC passes,
# divided by $T-1$ as in U-CE) over all labelled pixels of the validation scenes, in
# percentage points of probability (the paper prints fractions: 0.05 there is 5 here).

# %% tags=["remove-input"]
tables.show_table(uce.paper_quantities(ds, [*METHODS, chapter.PIXEL_BASELINE]),
                  rows="method", columns=None,
                  na="no MC-dropout passes (the per-pixel baseline)",
                  caption="The paper's quantities on the eroded-boundary ground truth, in %: "
                          "mIoU with its 95 % interval over seeds and spatial blocks; ECE and "
                          "mUnc, which are not functions of a confusion matrix, as mean ± "
                          "standard deviation over seeds.")

# %% tags=["remove-input"]
tables.summary_table(ds, protocol="full", per_class="f1",
                     caption="The same on the full (non-eroded) ground truth, the secondary "
                             "protocol, in %: mean ± standard deviation over seeds.")

# %% [markdown]
# ### The paper's claims
#
# Each claim "U-CE raises mIoU over CE" is judged by the study's one rule
# ({ref}`protocol-statistics`): paired over seeds, bootstrapped over seeds and spatial
# blocks, with a model that has not converged or scores below the per-pixel baseline
# taking part in no verdict.

# %% tags=["remove-input"]
verdicts = [uce.readable_verdict(v, names) for v in ch.verdicts(ds)]
chapter_claims = [c for c in claims() if c.chapter == ch.name]
tables.verdict_table(verdicts, chapter_claims, names=names,
                     caption="U-CE's claims judged on our runs (mIoU, eroded-boundary ground "
                             "truth): the paper's change on Cityscapes (DeepLabV3+ ResNet-18, "
                             "200 epochs), ours with its 95 % interval, the paired seeds and "
                             "the verdict.")

# %% tags=["remove-input"]
display(Markdown("\n".join(f"- {stats.sentence(v, names=names)}" for v in verdicts)))

# %% [markdown]
# ### Calibration
#
# The paper also reports a lower ECE with $\alpha=10$. Before such a claim is put to the
# rule, the rule has to be able to judge it:

# %%
ece_verdicts = [stats.judge(ds, c, flags=flags) for c in CALIBRATION_CLAIMS]
try:
    stats.metric_key("ece")
    ece_judgeable = True
except KeyError:
    ece_judgeable = False

# %% tags=["remove-input"]
if ece_judgeable:
    display(tables.verdict_table(ece_verdicts, CALIBRATION_CLAIMS, names=names,
                                 caption="U-CE's calibration claim judged on our runs."))
else:
    display(Markdown(
        f"The rule marks the claim *{ece_verdicts[0].verdict}*: ECE is not a function of a "
        "confusion matrix (it needs every pixel's confidence), so the bootstrap over spatial "
        "blocks, which recomputes a metric from the blocks' confusion matrices, cannot "
        "resample it. The claim therefore takes no verdict here. What the runs show is "
        "described instead: ECE's change against CE for each seed (same seed, same "
        "initialisation and data order), in points."))
    display(tables.show_table(
        uce.paired_seed_differences(ds, "ece", BASELINE, ["uce_a1", "uce_a10"]),
        columns=lambda m: f"{names[m]} − {names[BASELINE]}", row_header="Seed",
        formats={m: "float1" for m in ("uce_a1", "uce_a10")}, rows=None,
        caption="ECE of each U-CE method minus the CE baseline's, per seed, in points "
                "(negative: U-CE better calibrated), with the mean and standard deviation "
                "over seeds. A description, not a verdict."))

# %% [markdown]
# ### Beside the paper
#
# Landgraf et al., Cityscapes validation set (19 street-scene classes, ImageNet-pretrained
# encoders, 200 and 500 epochs), as printed:

# %% tags=["remove-input"]
paper_table = landgraf_table("ResNet-18")
paper_table.index = [loss for loss, _ in paper_table.index]
tables.show_table(paper_table, percent=True, rows=None, row_header="Loss",
                  columns=None,
                  caption="Landgraf et al., Cityscapes validation set, DeepLabV3+ ResNet-18: "
                          "mIoU, ECE and mUnc in % after 200 and 500 epochs.")

# %% tags=["remove-input"]
paper = landgraf_effects("ResNet-18", 200)
tables.show_table(uce.effects_beside_paper(ds, verdicts, paper, baseline=BASELINE),
                  rows="method", columns=None,
                  caption="The change U-CE brings over CE, ours beside the paper's (Cityscapes, "
                          "ResNet-18, 200 epochs), in points. mIoU: our paired estimate with "
                          "its 95 % interval; ECE and mUnc: the mean over seeds of the paired "
                          "change.")

# %% tags=["remove-input"]
fig = uce_plots.effects_vs_paper(ds, paper.to_dict(orient="index"), verdicts, baseline=BASELINE)
plots.show(fig, name="uce-effects-vs-paper",
           caption="Change of mIoU (left) and ECE (right) that U-CE brings over the CE "
                   "baseline: ours (bars: mean over seeds; dots: seeds; blue line: the 95 % "
                   "interval of the paired mIoU change) and the paper's on Cityscapes (red). "
                   "Other data and another network: compare directions, not values.",
           alt="Two bar charts, change in mIoU and change in ECE against the CE baseline for "
               "U-CE alpha 1 and alpha 10, with per-seed dots, an interval line and red "
               "marks for the paper's Cityscapes changes.")

# %% [markdown]
# ## Uncertainty maps
#
# The first validation scene, first seed: each model's prediction (top) and its test-time
# MC-dropout uncertainty $u$ (bottom, one colour scale). U-CE is meant to spend its extra
# gradient where $u$ is high (along class boundaries, on small objects, on classes that
# look alike) and so to lower it there.

# %% tags=["remove-input"]
evs = {r.method: r.evaluation for r in ch.records
       if r.seed == first_seed and r.method in METHODS}
scene_name = next(iter(evs[BASELINE].maps))
panels = {m: {"pred": ev.maps[scene_name]["pred"],
              "uncertainty": uce.uncertainty_maps(ev, T_TEST)[scene_name]}
          for m, ev in evs.items()}
fig = uce_plots.uncertainty_comparison(
    plots.false_colour(ch.data.val[0]), evs[BASELINE].maps[scene_name]["truth"], panels,
    classes, label="u (%)")
plots.show(fig, name="uce-uncertainty-maps",
           caption=f"A 256-px crop of the first validation scene (seed {first_seed}): the image "
                   "and ground truth (left), each model's MC-mean prediction with its share "
                   "of wrong labelled pixels (top) and its uncertainty u, the standard "
                   f"deviation of the predicted class's probability over {T_TEST} MC passes "
                   "(bottom, one colour scale).",
           alt="A grid of maps: image, ground truth, and for the CE baseline and U-CE with "
               "alpha 1 and 10 the predicted classes and an uncertainty heat map with a "
               "colour bar.")

# %% [markdown]
# ## The weight map on a training batch
#
# What the loss actually sees: $u$ from the trained $\alpha=10$ model's $T$ training-mode
# passes on two training crops (first seed) and the pixel weights $(1+u)^{10}$. The table
# under the figure gives the share of the total weight that falls on the 10 % most-weighted
# pixels of the batch, for both exponents (10 % if all weights were equal).

# %% tags=["remove-input"]
wm = uce.weight_maps(run10, batch, alphas=(1, 10), device=ch.device)
n_show = min(2, len(batch["image"]))
fig = uce_plots.weight_maps(
    [plots.false_colour(x) for x in batch["image"][:n_show].numpy()],
    batch["label"][:n_show].numpy(), wm["uncertainty"][:n_show], wm["weight_10"][:n_show],
    classes, alpha=10)
plots.show(fig, name="uce-weight-maps",
           caption="Two training crops of the trained U-CE (α = 10) model: the crop, its "
                   "labels (ignored pixels black), the uncertainty u of its training-mode "
                   "passes and the resulting pixel weight $(1+u)^{10}$ on a logarithmic "
                   "scale. The weight concentrates on the pixels the model is unsure of.",
           alt="Two rows of four panels: a training crop, its label map, an uncertainty "
               "heat map with a colour bar and a weight heat map on a logarithmic colour "
               "bar.")

# %% tags=["remove-input"]
shares = {a: uce.weight_share(wm[f"weight_{a}"], wm["valid"]) for a in (1, 10)}
tables.show_table(
    uce.weight_share_table(wm, alphas=(1, 10)), rows=None, row_header="Exponent",
    columns=None, percent=["share of the weight on the top 10 % pixels"],
    formats={"largest weight": "float1", "mean weight": "float2"},
    caption="How concentrated the loss is on this batch: share of the total weight on the "
            "10 % most-weighted labelled pixels (%), the largest and the mean weight.")

# %% [markdown]
# ## Does the uncertainty rank the errors?
#
# Overall accuracy of the pixels whose (normalised) uncertainty lies below a threshold,
# against the fraction of pixels kept, for every method (mean over seeds;
# {ref}`protocol-uncertainty`). A curve that stays high while most pixels are kept means
# $u$ puts the errors last.

# %% tags=["remove-input"]
fig = plots.coverage_curves(ds, uncertainty="predicted_class_std", methods=list(METHODS))
plots.show(fig, name="uce-coverage",
           caption="OA of the kept pixels against the share of pixels kept, least uncertain "
                   "first, with u the standard deviation of the predicted class (mean over "
                   "seeds, eroded-boundary ground truth).",
           alt="Line chart of the accuracy of the kept pixels against the percentage of "
               "pixels kept, one line per method.")

# %% [markdown]
# ## Summary

# %% tags=["summary"]
display(Markdown(uce.summary_text(
    ds, verdicts, flags, paper, names=names, baseline=BASELINE, costs=costs, check=check,
    shares=shares, ece_judgeable=ece_judgeable, dlv3_ratio=dlv3_ratio,
    shared_all=shared_all, dataset=dataset)))
