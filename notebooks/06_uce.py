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
# DeepLabV3+ by 1.4 to 2.8 points and lowers its calibration error. No remote-sensing
# numbers exist. This chapter trains a cross-entropy baseline with the identical dropout
# network and U-CE with $\alpha=1$ and $\alpha=10$ on aerial tiles, several seeds each, and
# compares segmentation quality, calibration and uncertainty beside the paper's table.
#
# **Prerequisites.** {doc}`01_data` (the data, the eroded-boundary protocol and the
# metrics); MC-dropout uncertainty is introduced where it is used below.

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
encoder = None  # "resnet18" (or "resnet101")
encoder_weights = None  # None: random initialisation; "imagenet" needs cached weights
encoder_dropout = None
encoder_depth = None
decoder_channels = None
uce_mc_samples = None  # T extra no-grad passes per training step
uce_uncertainty = None  # "predicted_class_std" (the code's) or "mean_class_std"
uce_start_epoch = None  # epoch at which the weighting switches on (0: from the start)
uce_mc_bn = None  # "train" (the code's), "train_frozen_stats" or "eval"
test_mc_samples = None  # MC passes at evaluation (a chapter setting)

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from aerialseg import chapter, plots
from aerialseg.papers.uce import analysis as uce
from aerialseg.papers.uce import plots as uce_plots
from aerialseg.papers.uce.method import METHOD_NAMES
from aerialseg.papers.uce.reported import landgraf_effects, landgraf_table
from aerialseg.tables import seed_mean, summary_table

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
# $u = 0$ the loss is plain cross-entropy; with $u \le 0.5$ (a spread of probabilities)
# the weight of a pixel lies between 1 and $1.5^{\alpha}$, i.e. up to about 58 for
# $\alpha=10$ and 1.5 for $\alpha=1$.
#
# *From the paper and its code:* the loss, $u$ (std of the predicted class, `torch.std`,
# so divided by $T-1$), $T=10$, no warm-up, and the passes running with BatchNorm in
# training mode, which updates BatchNorm's running statistics $T+1$ times per step
# (`uce_mc_bn="train"`; `"train_frozen_stats"` restores them after the passes). Two bugs
# of the public code are not copied (the U-CE criterion is compared rather than
# assigned, and a missing import).

# %% [markdown]
# ## Model and training
#
# All three methods share one network and one optimiser. DeepLabV3+ (from
# segmentation_models_pytorch) with a ResNet-18 encoder at output stride 16 and element-wise
# dropout ($p=0.2$) after each ResNet stage; the ASPP's own dropout (0.5) is kept, as in
# U-CE's model. SGD with momentum 0.9 and weight decay $10^{-4}$, learning rate 0.01 for the
# encoder and ten times that for the decoder, decayed per iteration by the poly rule
# $(1-i/i_{\max})^{0.9}$; random crops rescaled by a factor in $[0.5, 2]$.
#
# *From the paper and its code:* everything in the paragraph above, batch 16, crop 768 and
# 200 or 500 epochs on Cityscapes, with ImageNet-pretrained encoders. *Reconstructed for
# aerial tiles:* crop 512 (`full`), random flips *and* 90° rotations (aerial images have no
# "up"; the paper flips horizontally only), encoders initialised at random (no weights are
# downloaded; `encoder_weights="imagenet"` uses cached ones), and the evaluation
# prediction, the argmax of the mean of the test-time MC passes. *Scaled down on a CPU*
# (`smoke`, `default`): the encoder stops after its third (`default`) or second
# (`smoke`) ResNet stage, the decoder has fewer channels, the ASPP rates shrink with the
# crop ($2, 4, 6$ instead of $12, 24, 36$: the crops are 5-8 times smaller than 512 px) and U-CE
# draws fewer passes; the resolved values are printed below.

# %%
for name in METHODS:
    cfg = ch.resolve(name)
    print(f"{name:10s} model {cfg.model_kwargs}\n           loss {cfg.loss} {cfg.loss_kwargs}")
print(f"training (all three) {cfg.train}")
print(f"evaluation: {T_TEST} MC passes, tiles {evaluation}")

# %% [markdown]
# ## Training
#
# Every method is trained with every seed (a model already in the run store with the same
# configuration is reused) and evaluated on the validation scenes with
# `test_mc_samples` MC-dropout passes. Before each U-CE step, a callback draws the $T$
# no-grad passes and hands $u$ to the loss; it also logs the time they take, the mean $u$ and
# the mean weight $(1+u)^\alpha$ over the training pixels.

# %%
for seed in ch.seeds:
    for name in METHODS:
        run = ch.train(name, seed)
        ch.evaluate(run, mc_samples=T_TEST, prediction="mc_mean", **evaluation,
                    extra=lambda ev, run=run: uce.run_extras(ev, run, T_TEST))

# %%
histories = {f"{m} seed {s}": r.history for (m, s), r in ch.runs.items()}
fig = uce_plots.training_curves(histories)
plt.show()

# %% [markdown]
# The U-CE loss is a *weighted* sum, so its values sit above cross-entropy's by roughly the
# mean weight and are not comparable with it; the middle and right panels show what the
# weighting did during training.
#
# ## What the extra passes cost
#
# The $T$ passes are batched rather than looped: the part of the network before the first
# dropout (the stem and first ResNet block) is deterministic and runs once; the rest runs
# once over the $T$ stacked copies of the batch. Stacking alone would change BatchNorm,
# which would pool its batch statistics over all copies; here every BatchNorm normalises
# each copy with that copy's own statistics, and updates its running statistics exactly as
# $T$ separate passes would. Below, on a training batch with the trained $\alpha=10$ model:
# the time of $T$ passes one by one (as U-CE's code runs them) and batched, and the largest
# difference between the two with dropout switched off (both deterministic then).

# %%
first_seed = ch.seeds[0]
run10 = ch.runs[("uce_a10", first_seed)]
T_TRAIN = int(run10.loss_kwargs["uce_mc_samples"])
batch = uce.training_batch(run10.cfg, ch.data, n=run10.cfg.train.batch_size, stats=run10.stats)
check = uce.compare_mc_passes(run10.model, batch["image"].to(ch.device), T_TRAIN)
display(pd.DataFrame({f"T = {T_TRAIN}, batch {len(batch['image'])}": {
    "one by one (s)": round(check["loop_s"], 3), "batched (s)": round(check["batched_s"], 3),
    "speed-up": round(check["speedup"], 2),
    "max |Δp| (dropout off)": f"{check['max_prob_diff']:.1e}",
    "max |Δ running stats|": f"{check['max_buffer_diff']:.1e}"}}))

# %%
ds = ch.write_results(extra_attrs={"test_mc_samples": T_TEST, "mc_pass_check": check})
costs = uce.step_cost_table(ds)
display(costs)

# %% [markdown]
# Seconds per training step over the whole run, and the part spent in the MC passes,
# measured by the callback on the hardware above (timings on a shared CPU are noisy).
# Each pass is a forward pass only, about a third of a training step's forward and
# backward, so $T$ passes cost roughly $T/3$ steps; batching saves the stem and, on a GPU,
# the launch overhead of $T$ small passes.
#
# ## Results
#
# Scores on the validation scenes with the eroded-boundary ground truth (the primary
# protocol): F1 and IoU per class, mean F1 and mIoU over the evaluated classes, overall
# accuracy (OA), boundary F1 and expected calibration error (ECE, 15 equal-width confidence
# bins). With several seeds: mean ± standard deviation.

# %%
display(summary_table(ds, protocol="eroded", per_class="f1"))
display(summary_table(ds, protocol="eroded", per_class="iou", metrics=("iou",)))

# %% [markdown]
# The quantities of the paper's table: mIoU, ECE and the mean uncertainty (mUnc: the mean of
# $u$, std of the predicted class with divisor $T-1$ as in U-CE, over all labelled pixels of
# the validation scenes, from the test-time MC passes), plus mean F1 and OA.

# %%
display(uce.results_table(ds, protocol="eroded"))

# %% [markdown]
# The same on the full (non-eroded) ground truth, the secondary protocol:

# %%
display(summary_table(ds, protocol="full", per_class="f1"))

# %% [markdown]
# ### Beside the paper
#
# Landgraf et al., Cityscapes validation set (19 street-scene classes, ImageNet-pretrained
# encoders, 200 and 500 epochs). A different dataset and a much longer training: compare
# the *direction and size of the change* that U-CE brings over CE, not the values.

# %%
display(landgraf_table("ResNet-18"))
paper = landgraf_effects("ResNet-18", 200)
ours = uce.effects(ds)
display(pd.concat({"ours (this run)": ours, "paper (Cityscapes, RN18, 200 ep)": paper},
                  axis=1))

# %%
fig = uce_plots.effects_vs_paper(ds, paper.to_dict(orient="index"))
plt.show()

# %% [markdown]
# ## Uncertainty maps
#
# The first validation scene, first seed: the prediction (top) and the MC-dropout
# uncertainty $u$ (bottom, one colour scale) of the CE baseline and of U-CE. U-CE is meant
# to spend its extra gradient where $u$ is high, typically along class boundaries, on
# small objects and on classes that look alike.

# %%
evs = {r.method: r.evaluation for r in ch.records if r.seed == first_seed}
scene_name = next(iter(evs["ce_dropout"].maps))
panels = {m: {"pred": ev.maps[scene_name]["pred"],
              "uncertainty": uce.uncertainty_maps(ev, T_TEST)[scene_name]}
          for m, ev in evs.items()}
fig = uce_plots.uncertainty_comparison(
    plots.false_colour(ch.data.val[0]), evs["ce_dropout"].maps[scene_name]["truth"], panels,
    classes, label=f"u (std of the predicted class, T = {T_TEST})")
plt.show()

# %% [markdown]
# ## The weight map on a training batch
#
# What the loss actually sees: $u$ from the trained $\alpha=10$ model's $T$ training-mode
# passes on two training crops, and the pixel weights $(1+u)^{\alpha}$ for $\alpha=1$ and
# $\alpha=10$ (each on its own colour scale from 1; ignored pixels blank). The table gives
# the share of the total weight that falls on the 10 % most-weighted pixels (10 % if all
# weights were equal).

# %%
wm = uce.weight_maps(run10, batch, alphas=(1, 10), device=ch.device)
n_show = min(2, len(batch["image"]))
fig = uce_plots.weight_maps(
    [plots.false_colour(x) for x in batch["image"][:n_show].numpy()],
    batch["label"][:n_show].numpy(), wm["uncertainty"][:n_show],
    {"(1+u)^1": wm["weight_1"][:n_show], "(1+u)^10": wm["weight_10"][:n_show]}, classes)
plt.show()
shares = {f"α = {a}": 100 * uce.weight_share(wm[f"weight_{a}"], wm["valid"]) for a in (1, 10)}
display(pd.DataFrame({"share of the weight on the top 10 % pixels (%)": shares}).round(1))

# %% [markdown]
# ## Does the uncertainty rank the errors?
#
# Overall accuracy of the pixels whose (normalised) uncertainty lies below a threshold,
# against the fraction of pixels kept, for every method (mean over seeds). A curve that
# stays high while most pixels are kept means $u$ puts the errors last.

# %%
fig = plots.coverage_curves(ds, uncertainty="predicted_class_std")
plt.show()

# %% [markdown]
# ## Summary

# %%
lines = [
    "- mIoU (eroded GT): " + ", ".join(f"{m} {seed_mean(ds, m, 'iou'):.1f} %"
                                       for m in METHODS) + ".",
]
for m, a in (("uce_a1", 1), ("uce_a10", 10)):
    d = seed_mean(ds, m, "iou") - seed_mean(ds, "ce_dropout", "iou")
    de = seed_mean(ds, m, "ece", scale=1) - seed_mean(ds, "ce_dropout", "ece", scale=1)
    munc = ds["munc"]
    dm = float((munc.sel({"method": m}) - munc.sel({"method": "ce_dropout"})).mean())
    lines.append(
        f"- α = {a}: mIoU {d:+.2f} points against CE; ECE {de:+.4f}; "
        f"mUnc {dm:+.4f}. The paper on Cityscapes (RN18, 200 epochs): "
        f"{paper.loc[m, 'Δ mIoU (points)']:+.1f} points, ECE {paper.loc[m, 'Δ ECE']:+.3f}, "
        f"mUnc {paper.loc[m, 'Δ mUnc']:+.3f}.")
train_cfg = run10.cfg.train
steps = train_cfg.epochs * -(-train_cfg.samples_per_epoch // train_cfg.batch_size)
weight10 = sum(r.history[-1]["train_weight"] for (m, _), r in ch.runs.items()
               if m == "uce_a10") / len(ch.seeds)
lines += [
    f"- On a training batch the 10 % most-weighted pixels carry {shares['α = 1']:.0f} % of "
    f"the loss weight with α = 1 and {shares['α = 10']:.0f} % with α = 10 (10 % would mean "
    f"equal weights). In the last training epoch the mean weight of α = 10 was "
    f"{weight10:.2f}: at the same learning rate its steps are that much larger on average "
    "than CE's, and much larger on the most uncertain pixels.",
    f"- Cost: a U-CE step with T = {T_TRAIN} extra passes took "
    f"{costs.loc['uce_a10', '× CE step']:.1f}× a CE step "
    f"({costs.loc['uce_a10', 'MC share (%)']:.0f} % of it in the passes); batching the "
    f"passes ran {check['speedup']:.2f}× as fast as one by one on this hardware.",
    f"- Profile `{profile}` on {ch.hardware}; {len(ch.seeds)} seed(s); dataset `{dataset}`; "
    f"{steps} training steps per run; training took {ch.wall.get('train', 0):.0f} s and "
    f"evaluation {ch.wall.get('evaluate', 0):.0f} s in this run.",
]
weights = run10.cfg.model_kwargs.get("encoder_weights") or "random"
lines.append(f"- This run trains for {steps} steps from {weights} weights; the paper trains "
             "for 200-500 epochs from ImageNet weights.")
display(Markdown("\n".join(lines)))
