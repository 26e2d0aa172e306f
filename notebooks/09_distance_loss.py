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
# cross-entropy + Dice objective of aerial-image segmentation networks. Lossd charges every
# wrongly labelled pixel by how far it lies from the true boundary of its class, on a log
# scale, and it does so on the *hard* prediction (a straight-through one-hot). So a pixel of
# boundary jitter costs little, while a hole deep inside a building or a blob far from any
# car costs nearly the maximum. The abstract claims that this reduces over- and
# under-segmentation, with no change to the network, and reports +1.6 mIoU on LoveDA,
# +0.8 mIoU on UAVid and +0.7 mF1 on Potsdam. The paper's full text is not public; the
# authors' code skeleton is. This chapter rebuilds the loss from that skeleton (and marks
# what we had to reconstruct), sets it beside the closest prior art, the boundary loss of
# Kervadec et al. {cite:p}`kervadec2021`, and trains the same U-Net with the three
# objectives over several seeds. Besides mIoU, mean F1, overall accuracy (OA) and boundary
# F1 {cite:p}`csurka2013`, it counts what the paper claims to fix: predicted segments that
# match no true object, and true objects that are missed.
#
# **Prerequisites.** {doc}`01_data` (the data, the eroded-boundary protocol and the
# metrics).

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
base_width = None  # width of the U-Net's first level
lossd_weight = None  # lambda_d, weight of Lossd against CE + Dice [reconstructed: 1.0]
lossd_max_iter = None  # distance cap and normaliser (authors' code: 50)
lossd_norm = None  # "log" (authors' code), "linear" or "none"
lossd_warmup_epochs = None  # linear ramp of lambda_d (0: off)
boundary_alpha_step = None  # decrease of Kervadec's alpha per epoch
# Object counting (this chapter's evaluation, not a training parameter).
object_min_overlap = None  # matched if at least this fraction overlaps (0.5; see below)
object_connectivity = None  # 4 or 8 (8)
object_min_size = None  # components smaller than this (px) are not counted (10)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from aerialseg import chapter, objects, plots
from aerialseg.losses.distance import kervadec_distance_maps, signed_distance_maps
from aerialseg.papers.lossd import analysis as method
from aerialseg.papers.lossd import plots as plots_lossd
from aerialseg.papers.lossd import reported as reported_lossd
from aerialseg.tables import summary_table

ch = chapter.start(
    "09_distance_loss", profile=profile, device=device, dataset=dataset, seeds=seeds,
    data_root=data_root, data_options=data_options, retrain=retrain,
    overrides=dict(epochs=epochs, batch_size=batch_size, samples_per_epoch=samples_per_epoch,
                   crop_size=crop_size, lr=lr, base_width=base_width,
                   lossd_weight=lossd_weight, lossd_max_iter=lossd_max_iter,
                   lossd_norm=lossd_norm, lossd_warmup_epochs=lossd_warmup_epochs,
                   boundary_alpha_step=boundary_alpha_step),
    settings=dict(object_min_overlap=object_min_overlap,
                  object_connectivity=object_connectivity, object_min_size=object_min_size))
METHODS = ("base", "base_lossd", "base_boundary")
object_min_overlap = ch.settings["object_min_overlap"]
object_connectivity = ch.settings["object_connectivity"]
object_min_size = ch.settings["object_min_size"]
classes = ch.data.classes
cfgs = {m: ch.resolve(m) for m in METHODS}

# %% [markdown]
# ## What is public and what we reconstructed
#
# The paper's text is not available to us: only its abstract and reference list. The
# authors published the loss class with its signatures and docstrings but removed most
# function bodies, plus their training framework (GeoSeg-style configs). The
# specification we follow (`methods.md` §8) reads the mechanism off that skeleton and marks
# the rest:
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
# - the distance computed by iterated cross-shaped erosions (4-neighbourhood; same values as
#   the docstring's "Manhattan distance"), with the image border not a boundary;
# - ignore pixels: "not c" in the maps, left out of the mean;
# - the optimiser: AdamW with one cosine decay (the authors: Lookahead(AdamW), warm
#   restarts);
# - the network: the paper's three benchmark models (probably SFA-Net among them) are not
#   ours; we use one plain U-Net for all objectives;
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
# pixel outside $u$, capped at $K$ = `max_iter` (0 outside $u$). The specification computes
# it as $D(u) = \sum_{i=0}^{K-1} \operatorname{erode}^i(u)$ with a cross-shaped $3\times3$
# erosion: each pixel collects 1 per erosion it survives. (On a CPU we compute the same
# values with an exact two-pass scan; both are tested against scipy's taxicab distance
# transform.) For class $c$ with true mask $t_c$, $d_{in} = D(t_c)$, $d_{out} = D(1 - t_c)$,
#
# $$ s_c = d_{in}\, t_c - d_{out}\,(1 - t_c), \qquad g_c = d_{in}\, t_c, \qquad
#    L_c = \frac{1}{N} \sum_{x} \frac{\log\bigl(1 + \lvert m_c(x)\, s_c(x) - g_c(x)\rvert
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
# linearly:
#
# $$ L_B = \frac{1}{N}\sum_x \sum_c \phi_c(x)\, p_c(x), \qquad
#    L = \alpha_e\,(\mathrm{CE} + \mathrm{Dice}) + (1 - \alpha_e)\, L_B, \quad
#    \alpha_e = \max(0.01,\ 1 - \delta e). $$
#
# Kervadec et al. lower $\alpha$ by $\delta = 0.01$ per epoch over about 200 epochs, so it
# reaches its floor half-way through training. Our short runs keep that shape:
# $\delta = 2/\text{epochs}$ (reconstructed). The schedules of this run:

# %%
for name in METHODS:
    c = cfgs[name]
    print(f"{name:14s} model {c.model} {c.model_kwargs}\n{'':14s} loss {c.loss} "
          f"{c.loss_kwargs}")
print(f"{'':14s} train {cfgs['base'].train}")
e = cfgs["base"].train.epochs
display(pd.concat([method.objective_weights("base_lossd", e, **cfgs["base_lossd"].loss_kwargs),
                   method.objective_weights("base_boundary", e,
                                            **cfgs["base_boundary"].loss_kwargs)],
                  axis=1).T.round(2))

# %% [markdown]
# ### What one wrong pixel costs
#
# A square object on background; one pixel at distance $d$ from the object's boundary is
# labelled wrongly, either inside (a miss) or outside (a spurious pixel). The table gives
# each loss's charge for that one pixel, computed with the loss modules themselves (the
# increase over the perfect prediction, times the number of pixels). Lossd grows like
# $\log(1+d)$ and saturates at the cap; the boundary loss grows linearly without bound;
# cross-entropy charges every wrong pixel the same (here 20, set by the logit scale of the
# example). Misses and spurious pixels cost the same, so only misses are plotted.

# %%
cap = cfgs["base_lossd"].loss_kwargs["lossd_max_iter"]
depths = tuple(d for d in (1, 2, 4, 8, 16, 32) if d <= cap) + ((cap,) if cap < 32 else ())
costs = method.error_cost_table(depths, max_iter=cap)
display(costs.round(3))
fig = plots_lossd.error_charges(costs)
plt.show()

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
# $[-K, K]$); the boundary loss's $\phi$ as 16-bit floats. Below: one training scene and the
# two maps of one class.

# %%
scene = ch.data.train[0]
train_labels = scene.training_labels(True)
shown = classes.names.index("building") if "building" in classes.names else classes.evaluated[0]
target = torch.from_numpy(train_labels.astype(np.int64))
full, _ = signed_distance_maps(target, classes.num_classes, cap)
phi = kervadec_distance_maps(target, classes.num_classes)
fig = plots_lossd.distance_maps(train_labels, full[shown].numpy(), phi[shown].numpy(), shown,
                                classes)
plt.show()

# %% [markdown]
# What the losses cost per training step: forward and backward of the loss term alone on
# a batch of training labels of this profile's size (the fastest of a few repeats), with
# the maps taken from the cache and with the maps computed inside the step (as a naive
# implementation would), and the base loss for scale. On a CPU the Manhattan maps use an
# exact two-pass scan; on a GPU, the erosions of the specification.

# %%
cfg_l = cfgs["base_lossd"].train
batch = method.label_batch([s.training_labels(True) for s in ch.data.train],
                           cfg_l.batch_size, cfg_l.crop_size)
step_cost = method.loss_step_cost(batch, classes.num_classes, max_iter=cap, device=ch.device,
                                  repeats=ch.settings["timing_repeats"])
print(f"batch of logits {step_cost.attrs['batch']} (B, C, H, W) on {ch.hardware}")
display(step_cost.round(1))

# %% [markdown]
# ## Training
#
# The same U-Net (the library's plain U-Net, four levels, width doubling per level,
# narrowed in the CPU profiles), the same optimiser, data and schedule for the
# three objectives; only the loss differs. For a given seed the three runs also start from
# the same weights and see the same batches, so their differences are paired. On a CPU the
# `smoke` and `default` profiles shrink the U-Net (first-level width 8 instead of 64) and
# the training (128 px patches, a few hundred patches in all; the values are printed
# above); `full` uses the standard width, 256 px patches and the authors' 45 epochs. A
# model already in the run store (same configuration) is reused.

# %%
counts = {}
for seed in ch.seeds:
    for name in METHODS:
        run = ch.train(name, seed)
        ev = ch.evaluate(run, keep_maps=len(ch.data.val))
        counts[(name, seed)] = objects.count_maps(
            ev.maps, classes.evaluated, min_overlap=object_min_overlap,
            connectivity=object_connectivity, min_size=object_min_size)

# %%
fig = plots.training_curves({f"{m} seed {s}": r.history for (m, s), r in ch.runs.items()})
plt.show()

# %% [markdown]
# The training losses are not comparable in value across the three objectives (they add
# different terms); each curve shows only that its own objective goes down.
#
# ## Results
#
# Validation scenes, eroded-boundary ground truth (the primary protocol): F1 per class, mean
# F1 and mIoU over the evaluated classes, OA, boundary F1 (full ground truth, 2 px
# tolerance) and calibration error (ECE); mean ± standard deviation over seeds.

# %%
ds = ch.write_results()
display(summary_table(ds, protocol="eroded"))

# %% [markdown]
# The same on the full (non-eroded) ground truth, where boundary pixels count too:

# %%
display(summary_table(ds, protocol="full"))
fig = plots.metric_dots(ds)
plt.show()

# %% [markdown]
# Change against the base loss, in percentage points; with several seeds, mean ± std of the
# same-seed differences:

# %%
gains = {p: method.gains_vs_base(ds, protocol=p) for p in ("eroded", "full")}
display(pd.concat(gains, names=["protocol"]))

# %% [markdown]
# ### Over- and under-segmentation
#
# Pixel scores cannot tell a thin boundary error from a blob in the wrong place, or a car
# that is not found at all. We count connected components (8-neighbourhood unless set
# otherwise above) per evaluated class on every validation scene, against the full ground
# truth (erosion would cut objects apart). With $f$ = `object_min_overlap`:
#
# - a predicted **segment** is **spurious** (over-segmentation: a false object) if less than
#   a fraction $f$ of its pixels truly belong to its class;
# - a true **object** is **missed** (under-segmentation: a lost object) if less than a
#   fraction $f$ of its pixels are predicted as its class;
# - a segment and an object are *linked* if their overlap is at least $f$ times the smaller
#   of the two; an object linked to several segments is **split**, a segment linked to
#   several objects is **merged**.
#
# Counts are summed over the evaluated classes and the validation scenes.

# %%
object_counts = objects.counts_dataarray(counts, classes.evaluated_names)
display(objects.counts_table(object_counts))
fig = plots_lossd.object_counts(object_counts)
plt.show()

# %% [markdown]
# How much these counts depend on the matching rule: the totals with small components
# ignored (`min_size`) and with "any overlap" ($f \to 0$) instead of half.

# %%
run_maps = {(r.method, r.seed): r.evaluation.maps for r in ch.records}
display(objects.sensitivity_table(run_maps, classes.evaluated,
                                  connectivity=object_connectivity).round(1))

# %% [markdown]
# Per class (mean over seeds):

# %%
display(objects.counts_per_class(object_counts).round(1))

# %% [markdown]
# ### Beside the paper
#
# The abstract's numbers (different data, models and protocol: LoveDA and UAVid test sets,
# Potsdam with the GeoSeg split; the per-class tables and the network are not public). The
# baseline is implied by the stated gain. Compare the *sign and size of the gain*, not the
# values.

# %%
display(reported_lossd.lossd_abstract_table())

# %% [markdown]
# ### Cost in training
#
# Measured inside each training run (stored with the run): the loss's forward time per step,
# the wall time per epoch, and the one-off computation of the distance maps for all
# training scenes. On a busy shared machine the timings are noisy.

# %%
display(method.cost_summary(ch.runs).round(2))

# %% [markdown]
# ### Predictions
#
# The first validation scene (first seed): ground truth and each method's prediction, with
# spurious segments outlined in magenta and missed objects in black.

# %%
first_seed = [r for r in ch.records if r.seed == ch.seeds[0]]
scene_name = next(iter(first_seed[0].evaluation.maps))
truth = first_seed[0].evaluation.maps[scene_name]["truth"].astype(np.int64)
preds = {r.method: r.evaluation.maps[scene_name]["pred"].astype(np.int64) for r in first_seed}
overlays = {m: objects.error_overlay(p, truth, classes.evaluated,
                                     min_overlap=object_min_overlap,
                                     connectivity=object_connectivity,
                                     min_size=object_min_size) for m, p in preds.items()}
fig = plots_lossd.object_errors_gallery(preds, overlays, truth, classes,
                                        image=plots.false_colour(ch.data.val[0]))
plt.show()

# %% [markdown]
# Where Lossd charges: for the same scene, each prediction's per-pixel Lossd charge summed
# over the classes, $\sum_c \log(1 + \lvert m_c s_c - g_c\rvert)/\log(1+K)$. Errors along
# a boundary are pale; blobs far from any object of their class and holes deep inside
# objects are dark.

# %%
charges = {m: method.lossd_cost_map(p, truth, classes.num_classes, max_iter=cap,
                                    evaluated=classes.evaluated) for m, p in preds.items()}
fig = plots_lossd.charge_maps(charges)
plt.show()

# %% [markdown]
# ## Results file
#
# The standard results (scores, confusion matrices) plus the object counts
# `objects[method, seed, class, kind]` and the measured loss time per step.

# %%
ds["objects"] = object_counts
ds["loss_forward_ms"] = method.loss_time_dataarray(ch.runs)
ds = ch.write_summary(ds)

# %% [markdown]
# ## Summary

# %%
sc = 100 * ds["scores"].sel({"protocol": "eroded", "class": "overall"}).mean("seed")
tot = object_counts.sum("class").mean("seed")
d = {m: {k: float(sc.sel({"method": m, "metric": k})) for k in ("iou", "f1", "oa", "boundary_f1")}
     for m in METHODS}
o = {m: {k: float(tot.sel({"method": m, "kind": k})) for k in objects.KINDS} for m in METHODS}
cost = method.cost_summary(ch.runs)
lines = [
    f"- mIoU (eroded GT): base {d['base']['iou']:.1f} %, +Lossd {d['base_lossd']['iou']:.1f} % "
    f"({method.gain_text(ds, 'base_lossd', 'iou')}), +boundary loss {d['base_boundary']['iou']:.1f} % "
    f"({method.gain_text(ds, 'base_boundary', 'iou')}). The paper reports +1.6 (LoveDA) and +0.8 (UAVid) "
    "mIoU on other data and models.",
    f"- Mean F1: base {d['base']['f1']:.1f} %, +Lossd {d['base_lossd']['f1']:.1f} % "
    f"({method.gain_text(ds, 'base_lossd', 'f1')}), +boundary {d['base_boundary']['f1']:.1f} % "
    f"({method.gain_text(ds, 'base_boundary', 'f1')}); paper on Potsdam: +0.7 mF1.",
    f"- OA: {d['base']['oa']:.1f} / {d['base_lossd']['oa']:.1f} / "
    f"{d['base_boundary']['oa']:.1f} %; boundary F1: {d['base']['boundary_f1']:.1f} / "
    f"{d['base_lossd']['boundary_f1']:.1f} / {d['base_boundary']['boundary_f1']:.1f} % "
    "(base / +Lossd / +boundary).",
    f"- Spurious segments (over-segmentation): base {o['base']['spurious']:.0f}, +Lossd "
    f"{o['base_lossd']['spurious']:.0f} ({method.relative_change(o, 'base_lossd', 'spurious')}), +boundary "
    f"{o['base_boundary']['spurious']:.0f} ({method.relative_change(o, 'base_boundary', 'spurious')}). Missed "
    f"objects (under-segmentation): {o['base']['missed']:.0f} / "
    f"{o['base_lossd']['missed']:.0f} ({method.relative_change(o, 'base_lossd', 'missed')}) / "
    f"{o['base_boundary']['missed']:.0f} ({method.relative_change(o, 'base_boundary', 'missed')}), out of "
    f"{o['base']['objects']:.0f} true objects (mean over seeds, all evaluated classes).",
    f"- Cost: Lossd's forward pass took {cost.loc['base_lossd', 'loss ms/step (forward)']:.0f} "
    f"ms per training step (median), the base loss "
    f"{cost.loc['base', 'loss ms/step (forward)']:.0f} ms. Forward + backward of the Lossd "
    f"term alone: {step_cost.iloc[1, 0]:.0f} ms with cached maps, "
    f"{step_cost.iloc[2, 0]:.0f} ms with maps computed in the step; the one-off maps took "
    f"{cost.loc['base_lossd', 'distance maps, once (s)']:.2f} s for all training scenes.",
    f"- Profile `{profile}` on {ch.hardware}; {len(ch.seeds)} seed(s), dataset `{dataset}`; "
    f"the {len(ch.runs)} models took {sum(r.train_seconds for r in ch.runs.values()):.0f} s "
    f"to train ({sum(r.reused for r in ch.runs.values())} reused from the run store). λ_d, "
    "the optimiser, the network and the compressed α schedule are reconstructed; the loss's "
    "mechanism is from the authors' code skeleton.",
]
f1 = ds["scores"].sel({"protocol": "eroded", "metric": "f1"}).mean("seed")
never = [c for c in classes.evaluated_names
         if float(f1.sel({"class": c}).max("method")) == 0.0]
if never:
    its = "its" if len(never) == 1 else "their"
    lines.append(f"- No objective learned {', '.join(never)} in this profile (F1 = 0 for every "
                 f"method): {its} objects count as missed for all three, and {its} pixels pull "
                 "mIoU and mean F1 down equally.")
display(Markdown("\n".join(lines)))
