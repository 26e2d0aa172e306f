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
# # The patch-based CNN
#
# **Overview.** The first network of Kampffmeyer et al. {cite:p}`kampffmeyer2016` is a
# classifier of $65\times65$ patches: it labels a patch by its centre pixel. Trained on
# class-balanced patches, with every car centred and rotated, it is then run *densely*: its
# fully connected layers are convolutions, so one pass over a tile labels every pixel whose
# $65\times65$ neighbourhood lies inside the tile. This chapter builds the network, shows the
# receptive-field arithmetic, the balanced car-centred sampling, checks that the dense pass
# gives the same probabilities as classifying each patch on its own (and how much faster it
# is), and evaluates both border treatments: the paper's, which leaves a 32 px border
# unclassified, and reflect padding, which classifies every pixel.
#
# **Prerequisites.** {doc}`01_data` (the data, the eroded-boundary protocol and the
# metrics). The uncertainty maps of this network are in {doc}`04_uncertainty`, its
# combinations with the FCNs in {doc}`05_ensembles`.

# %% tags=["parameters"]
profile = "default"  # smoke | default | gpu | full
device = "auto"  # auto: CUDA when present, else CPU
dataset = "synthetic"  # synthetic | dubai | vaihingen | potsdam
data_root = None  # None: data/<dataset> (or ../shared/data for real sets)
data_options = None  # dataset options, e.g. {"potsdam_bands": "rgb"} (see chapter 01)
seeds = None  # None: the profile's seeds
retrain = False  # True: train again even if the run store holds the model
# Method parameters; None takes the profile's value (names as in aerialseg.config.TrainConfig
# and the method's spec in aerialseg.papers.kampffmeyer.method).
epochs = None
batch_size = None
samples_per_epoch = None  # patches drawn per epoch (None: all sampled patches)
lr = None
conv_widths = None  # kernels of the four conv layers (paper: 32, 64, 96, 128)
fc_width = None  # width of fc1/fc2 (paper: 128)
dropout_p = None
car_rotations = None  # random rotations per car patch
samples_per_class = None  # "match_car" or an int
eval_tile = None  # output tile side of dense inference (memory)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from aerialseg import chapter, plots
from aerialseg.data.patches import BandStats
from aerialseg.models.registry import build_model
from aerialseg.papers.kampffmeyer import analysis as pb
from aerialseg.papers.kampffmeyer import method, reported
from aerialseg.papers.kampffmeyer import plots as pb_plots
from aerialseg.tables import seed_mean, summary_table

ch = chapter.start(
    "02_patch_cnn", profile=profile, device=device, dataset=dataset, seeds=seeds,
    data_root=data_root, data_options=data_options, retrain=retrain,
    overrides=dict(epochs=epochs, batch_size=batch_size, samples_per_epoch=samples_per_epoch,
                   lr=lr, conv_widths=conv_widths, fc_width=fc_width, dropout_p=dropout_p,
                   car_rotations=car_rotations, samples_per_class=samples_per_class),
    settings=dict(eval_tile=eval_tile))
classes = ch.data.classes
eval_tile = ch.settings["eval_tile"]
cfg = ch.resolve("pb", ch.seeds[0])
print(f"model {cfg.model_kwargs}\nsampler {cfg.loss_kwargs}\ntrain {cfg.train}")

# %% [markdown]
# ## The network
#
# A $65\times65$ patch $x$ with the five bands IR, R, G, DSM and nDSM (on RGB data, three
# bands) passes four convolutional blocks $\ell = 1..4$, each
#
# $$ h_\ell = \operatorname{maxpool}_{3\times3,\,\text{stride }1}\Big(
# \operatorname{BN}\big(\operatorname{ReLU}(W_\ell * h_{\ell-1} + b_\ell)\big)\Big), $$
#
# with $5\times5$ kernels ($32, 64, 96, 128$ of them), ReLU *before* batch normalisation as in
# the paper, then two fully connected layers of 128 units with dropout ($p=0.5$) and a softmax
# over the classes:
#
# $$ z_1 = \operatorname{drop}\big(\operatorname{ReLU}(W_{f1} h_4 + b_{f1})\big), \quad
# z_2 = \operatorname{drop}\big(\operatorname{ReLU}(W_{f2} z_1 + b_{f2})\big), \quad
# \hat p = \operatorname{softmax}(W_o z_2 + b_o). $$
#
# **Receptive field.** Nothing has stride larger than one. With *valid* (unpadded)
# convolutions and pooling, a $k\times k$ layer shrinks the map by $k-1$ and widens the
# receptive field by $k-1$: four blocks remove $4\,(4 + 2) = 24$ px, so $65 \to 41$, and fc1
# is exactly a $41\times41$ convolution over that map. The receptive field is
# $1 + 4(4+2) + 40 = 65$ px, the patch. fc2 and the classifier are $1\times1$ convolutions.
# Run on an $H\times W$ tile, the same weights give $(H-64)\times(W-64)$ outputs, the one at
# $(i, j)$ being the class probabilities of the patch whose top-left corner is $(i, j)$.
#
# *From the paper:* the patch size, layer widths, kernel sizes, stride-1 pooling, the
# ReLU-BN order, fc widths, dropout, He initialisation, balanced sampling with centred,
# rotated cars, and the 32 px unclassified border. *Reconstructed:* valid padding (it is
# what makes the border 32 px), the number of rotations (8), patches per class, and the
# optimiser (SGD, momentum 0.9, weight decay $5\cdot10^{-4}$, batch 128, lr 0.01 divided by
# 10 at 50 % and 75 % of 30 epochs). The CPU profiles (`smoke`, `default`) keep the 65 px
# patch and the fc width but shrink the conv widths (training cost is the full-resolution
# conv maps over each patch), the number of patches and epochs (printed above), and clip the
# gradient norm at 1: with He initialisation the first logits are large, and in our trials
# the few dozen SGD steps a CPU affords otherwise diverged to a constant prediction. The
# `full` profile has the paper's settings without clipping.
#
# Layer by layer, for this run's widths and for the paper's:

# %%
in_ch, k = len(ch.data.bands), classes.num_classes
ours = build_model("patch_cnn", in_channels=in_ch, num_classes=k, **cfg.model_kwargs)
paper = build_model("patch_cnn", in_channels=5, num_classes=5)
display(pb.architecture_table(ours))
arch_paper = pb.architecture_table(paper)
n_paper = sum(p.numel() for p in paper.parameters())
n_ours = sum(p.numel() for p in ours.parameters())
share_fc1 = arch_paper.loc["fc1", "parameters"] / n_paper
macs_paper = arch_paper["dense MACs / pixel"].sum()
print(f"paper widths: {n_paper / 1e6:.2f} M parameters, fc1 {100 * share_fc1:.1f} % of them; "
      f"dense pass {macs_paper / 1e6:.1f} M multiply-adds per pixel (direct), of which fc1 "
      f"{100 * arch_paper.loc['fc1', 'dense MACs / pixel'] / macs_paper:.1f} %")
print(f"this run: {n_ours / 1e6:.3f} M parameters")
del paper

# %% [markdown]
# fc1 is nearly all of the parameters and of the dense cost. Computed directly it would cost
# about 27.5 M multiply-adds per pixel at the paper's widths; the library computes it by
# block FFT (overlap-save) in evaluation mode, which gives the same result to float
# precision (see the model's tests and `bench/bench_patch_cnn.py`).

# %% [markdown]
# ## Balanced, car-centred training patches
#
# Each training patch is labelled by its centre pixel. Cars (about 1-2 % of the pixels) get
# one patch per car, centred on the car (the centroid of each connected component of car
# pixels), kept once unrotated and rotated `car_rotations` times by random angles in
# $[0°, 360°)$ (bilinear resampling from a larger crop, so no blank corners). Every other
# class gets random patches whose centre pixel is of that class, the same number per class.
# Clutter is not a centre (it is not evaluated). Patches reaching over the scene edge are
# filled by reflection. The patches are cut on demand, so memory stays at the scenes' size.

# %%
stats = BandStats.from_scenes(ch.data.train, ch.data.bands)
train_set = method.build_centre_patches(cfg, ch.data, stats)
cen = train_set.centres
counts = pd.DataFrame({
    "patches": np.bincount(cen.label, minlength=k),
    "rotated": np.bincount(cen.label[cen.angle != 0], minlength=k),
    "training pixels (%)": 100 * np.bincount(
        np.concatenate([s.training_labels(True).ravel() for s in ch.data.train]),
        minlength=256)[:k] / sum(s.labels.size for s in ch.data.train),
}, index=list(classes.names))
display(counts.round(2))
show = np.concatenate([np.flatnonzero(cen.label == c)[:6] for c in range(k)])
fig = pb_plots.sample_patches(train_set.patches(show), cen.label[show], cen.angle[show],
                                     classes, band_names=ch.data.bands)
plt.show()

# %% [markdown]
# ## Training
#
# Cross-entropy on the centre label; a patch gives $1\times1$ logits, so the study's
# segmentation loss and training loop apply unchanged. A model already in the run store
# (same configuration, sampler settings included) is reused.

# %%
for seed in ch.seeds:
    ch.train("pb", seed)
fig = plots.training_curves({f"pb seed {s}": r.history for (m, s), r in ch.runs.items()})
plt.show()

# %% [markdown]
# ## Dense inference equals patch-by-patch classification
#
# On the first validation scene (reflect-padded by 32 px), the dense pass is compared with
# classifying the patches around a few random pixels one by one, and both are timed.

# %%
run0 = ch.runs[("pb", ch.seeds[0])]
image0 = stats.apply(ch.data.val[0])
check = pb.dense_vs_patch(run0.model, image0, n_pixels=64, tile=eval_tile)
print(f"{len(check['pixels'])} pixels: max |dense - per patch| = {check['max_abs_diff']:.2e}, "
      f"same predicted class at {100 * check['same_argmax']:.0f} % of them")
print(f"throughput on {image0.shape[1]}x{image0.shape[2]} px ({ch.device}): dense "
      f"{check['dense_px_per_s']:.0f} px/s, per patch {check['patch_px_per_s']:.0f} px/s, "
      f"ratio {check['speedup']:.0f}x")
fig = pb_plots.dense_vs_patch_scatter(check["dense"], check["patch"])
plt.show()

# %% [markdown]
# ## Evaluation with both border treatments
#
# *Reflect* (the book's default): the scene is reflect-padded by 32 px, so every pixel is
# classified. *Omit* (the paper's Table 1): the 32 px border is left unclassified and
# excluded from the scores. Both are the same trained model; only inference differs.

# %%
for seed in ch.seeds:
    run = ch.runs[("pb", seed)]
    for mode, label in method.BORDER_LABELS.items():
        ch.evaluate(run, label=label, border_mode=mode, tile=eval_tile)
ds = ch.write_results()

# %% [markdown]
# Scores on the validation scenes, eroded-boundary ground truth (the primary protocol): F1
# per class, mean F1 and mIoU over the evaluated classes, overall accuracy (OA), boundary F1
# and expected calibration error (ECE); mean ± standard deviation over seeds.

# %%
display(summary_table(ds, protocol="eroded"))

# %% [markdown]
# The same on the full (non-eroded) ground truth:

# %%
display(summary_table(ds, protocol="full"))

# %% [markdown]
# ### Beside the paper
#
# Kampffmeyer et al., Table 1, PB row (ISPRS Vaihingen validation areas, eroded ground truth,
# F1 %, 32 px border unclassified). Their data are real 9 cm orthophotos of Vaihingen and a
# network at full width; ours are stated at the top of this chapter, so compare the pattern
# across classes, not the values.

# %%
display(reported.kampffmeyer_table1(("pb",)))
print("note:", reported.KAMPFFMEYER_NOTES["pb"])
if dataset in ("synthetic", "vaihingen"):
    rep = {lab: reported.KAMPFFMEYER_TABLE1["pb"] for lab in method.BORDER_LABELS.values()}
    fig = plots.per_class_scores(ds, metric="f1", reported=rep)
    plt.show()

# %% [markdown]
# ### Label maps
#
# The first validation scene: ground truth and the predictions of both border modes (first
# seed). In the *omit* map the unclassified 32 px border is black.

# %%
first = ch.records[0].evaluation.maps
scene_name = next(iter(first))
maps = {r.method: r.evaluation.maps[scene_name] for r in ch.records if r.seed == ch.seeds[0]}
fig = plots.prediction_gallery(maps, classes, image=plots.false_colour(ch.data.val[0]),
                               crop=None)
plt.show()
fig = plots.confusion_heatmap(ch.records[0].evaluation.confusion["eroded"], classes.names,
                              title="pb: confusion (eroded GT, % of row)")
plt.show()

# %% [markdown]
# ## Summary

# %%
sc = ds["scores"].sel(protocol="eroded")
refl, omit = method.BORDER_LABELS["reflect"], method.BORDER_LABELS["omit"]
per_cls = {c: seed_mean(ds, refl, "f1", c) for c in (classes.names[i] for i in classes.evaluated)}
worst, best = min(per_cls, key=per_cls.get), max(per_cls, key=per_cls.get)
h, w = image0.shape[1:]
border_share = 1 - (h - 64) * (w - 64) / (h * w)
paper_mf1 = reported.KAMPFFMEYER_TABLE1["pb"]["mean_f1"]
lines = [
    f"- Dense inference reproduces per-patch classification: max probability difference "
    f"{check['max_abs_diff']:.1e} over {len(check['pixels'])} pixels; it is "
    f"{check['speedup']:.0f}x faster per pixel on {ch.hardware} (at this run's widths).",
    f"- Reflect padding (every pixel): mean F1 {seed_mean(ds, refl, 'f1', 'overall'):.1f} %, "
    f"OA {seed_mean(ds, refl, 'oa', 'overall'):.1f} %, mIoU {seed_mean(ds, refl, 'iou', 'overall'):.1f} %.",
    f"- Paper's border mode (the outer 32 px, {100 * border_share:.0f} % of a "
    f"{h}x{w} scene, unclassified): mean F1 {seed_mean(ds, omit, 'f1', 'overall'):.1f} %, "
    f"OA {seed_mean(ds, omit, 'oa', 'overall'):.1f} % on the pixels it classifies.",
    f"- Best class {best} (F1 {per_cls[best]:.1f} %), worst {worst} "
    f"(F1 {per_cls[worst]:.1f} %); paper on Vaihingen: mean F1 {paper_mf1:.2f} %, car F1 "
    f"{reported.KAMPFFMEYER_TABLE1['pb']['car']:.2f} %.",
    f"- Profile `{profile}` ({n_ours / 1e6:.2f} M parameters vs {n_paper / 1e6:.1f} M at the "
    f"paper's widths), {len(train_set)} balanced training patches, {len(ch.seeds)} seed(s); "
    f"training took {ch.wall.get('train', 0):.0f} s and evaluation "
    f"{ch.wall.get('evaluate', 0):.0f} s in this run.",
]
display(Markdown("\n".join(lines)))
