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
# **Overview.** The first network of {cite:t}`kampffmeyer2016` is a classifier of
# $65\times65$ patches (PB): it labels a patch by its centre pixel. Trained on class-balanced
# patches, with every car centred and rotated, it is then run *densely*: its fully connected
# layers are convolutions, so one pass over a tile labels every pixel whose $65\times65$
# neighbourhood lies inside the tile. The paper reports PB's per-class F1 and overall
# accuracy on ISPRS Vaihingen (its Table 1) and uses PB as a member of its ensembles; it
# makes no claim about PB alone, so **this chapter judges no claim**: it measures PB, whose
# scores go to the comparison of {doc}`10_comparison` and whose predictions go to the
# ensembles of {doc}`05_ensembles` (where "the ensemble beats every member", PB included,
# is judged).
#
# This chapter builds the network and shows its receptive-field arithmetic, samples the
# balanced car-centred training patches, explains why the CPU profiles train on patches
# rather than densely on crops, trains PB, checks that the dense pass gives the same
# probabilities as classifying each patch on its own (and how much faster it is), and
# evaluates both border treatments: the paper's, which leaves a 32 px border unclassified,
# and reflect padding, which classifies every pixel. The scores stand beside the paper's
# Table 1 and the per-pixel baseline.
#
# **Prerequisites.** {doc}`01_data` (the data and the per-pixel baseline) and the
# {doc}`../protocol` (the eroded-boundary protocol, the metrics and the statistics rule).
# The uncertainty maps of this network are in {doc}`04_uncertainty`.

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

# %% tags=["hide-input"]
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from aerialseg import chapter, plots, stats
from aerialseg import display as names
from aerialseg.data.patches import BandStats
from aerialseg.models.registry import build_model
from aerialseg.papers.kampffmeyer import analysis as pb
from aerialseg.papers.kampffmeyer import method, reported
from aerialseg.papers.kampffmeyer import plots as pb_plots
from aerialseg.registry import get_method
from aerialseg.tables import show_table, summary_table

plots.book_style()
ch = chapter.start(
    "02_patch_cnn", profile=profile, device=device, dataset=dataset, seeds=seeds,
    data_root=data_root, data_options=data_options, retrain=retrain,
    overrides=dict(epochs=epochs, batch_size=batch_size, samples_per_epoch=samples_per_epoch,
                   lr=lr, conv_widths=conv_widths, fc_width=fc_width, dropout_p=dropout_p,
                   car_rotations=car_rotations, samples_per_class=samples_per_class),
    settings=dict(eval_tile=eval_tile))
classes = ch.data.classes
evaluated = [classes.names[i] for i in classes.evaluated]
eval_tile = ch.settings["eval_tile"]
cfg = ch.resolve("pb", ch.seeds[0])
paper_cfg = get_method("pb").resolve(profile="full", in_bands=ch.data.bands,
                                     data=ch.data.cfg.to_dict())
stats_bands = BandStats.from_scenes(ch.data.train, ch.data.bands)
train_set = method.build_centre_patches(cfg, ch.data, stats_bands)  # the first seed's
has_car = method.car_class_of(classes) is not None
isprs_classes = set(reported.ISPRS5) <= set(classes.names)
bands = ", ".join(b.upper() for b in ch.data.bands)
if has_car and len(ch.data.bands) == 5:
    data_note = (f"The data have the paper's five bands ({bands}) and its classes, cars "
                 "included.")
else:
    data_note = (f"**On this dataset** (`{dataset}`) PB sees {len(ch.data.bands)} bands "
                 f"({bands}) instead of the paper's five (IR, R, G, DSM, nDSM): the "
                 "network is the same but for its first layer, and it has no height to "
                 "tell roofs from roads.")
    if not has_car:
        data_note += (" There is no car class: nothing is car-centred or rotated, and "
                      "every class gets the same number of random patches (the table of "
                      "training patches shows how many).")
display(Markdown(data_note))

# %% [markdown]
# ## The network
#
# A $65\times65$ patch $x$ of the image bands passes four convolutional blocks
# $\ell = 1..4$, each
#
# $$ h_\ell = \operatorname{maxpool}_{3\times3,\,\text{stride }1}\Big(
# \operatorname{BN}\big(\operatorname{ReLU}(W_\ell * h_{\ell-1} + b_\ell)\big)\Big), $$
#
# with $5\times5$ kernels ($32, 64, 96, 128$ of them), ReLU *before* batch normalisation as in
# the paper, then two fully connected layers of 128 units with dropout ($p=0.5$) and a softmax
# over the classes:
#
# $$ \begin{aligned}
# z_1 &= \operatorname{drop}\big(\operatorname{ReLU}(W_{f1} h_4 + b_{f1})\big), \\
# z_2 &= \operatorname{drop}\big(\operatorname{ReLU}(W_{f2} z_1 + b_{f2})\big), \\
# \hat p &= \operatorname{softmax}(W_o z_2 + b_o).
# \end{aligned} $$
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
# 10 at 50 % and 75 % of 30 epochs).
#
# Layer by layer, at the paper's widths and five input bands:

# %% tags=["hide-input"]
in_ch, k = len(ch.data.bands), classes.num_classes
ours = build_model("patch_cnn", in_channels=in_ch, num_classes=k, **cfg.model_kwargs)
paper_net = build_model("patch_cnn", in_channels=5, num_classes=5)
arch_paper = pb.architecture_table(paper_net)
n_paper = sum(p.numel() for p in paper_net.parameters())
n_ours = sum(p.numel() for p in ours.parameters())
del paper_net
show_table(arch_paper, caption="The patch CNN at the paper's widths (five bands, five "
           "classes): side of each layer's output for one 65 px patch, receptive field, "
           "parameters, and multiply-adds per output pixel when run densely.",
           rows=None, row_header="Layer", columns=lambda c: c[:1].upper() + c[1:],
           formats={"parameters": "int", "dense MACs / pixel": "int"},
           notes=["Pooling layers have no parameters; batch-norm parameters are counted "
                  "with no layer (they are a few hundred)."])

# %% tags=["remove-input"]
share_fc1 = arch_paper.loc["fc1", "parameters"] / n_paper
macs = arch_paper["dense MACs / pixel"]
display(Markdown(
    f"At the paper's widths the network has {n_paper / 1e6:.1f} M parameters, "
    f"{100 * share_fc1:.1f} % of them in fc1, and a dense pass costs "
    f"{macs.sum() / 1e6:.1f} M multiply-adds per pixel computed directly, "
    f"{100 * macs['fc1'] / macs.sum():.1f} % of them in fc1. The library computes fc1 by "
    "block FFT (overlap-save) in evaluation mode, which gives the same result to float "
    "precision (checked below). This run's network has "
    f"{n_ours / 1e6:.2f} M parameters (the widths of the next table)."))

# %% [markdown]
# ## What the profile changes
#
# The CPU profiles (`smoke`, `default`) keep the 65 px patch, which is the point of the
# method (its receptive field), and the fc width, which costs little in training (one
# output per patch). They shrink the conv widths, which set the training cost (the
# full-resolution maps over each patch), and the number of patches and optimiser steps,
# and they clip the gradient norm at 1: with He initialisation the first logits are large,
# and in our trials a few dozen SGD steps otherwise diverged to a constant prediction.
# The `default` profile was tuned until PB converged within the book's time budget and
# beat the per-pixel baseline. The `full` profile has the paper's settings without
# clipping. This run against the paper:

# %% tags=["remove-input"]
this_run = f"This run ({profile} profile)"
show_table(pb.settings_table({"Paper (full profile)": paper_cfg, this_run: cfg},
                             samples={this_run: len(train_set)}),
           caption="PB's training settings: the paper's (reconstructed where it is silent) "
           "and this run's. A step is one SGD update on one batch of patches.",
           rows=None, row_header="Setting", columns=None,
           notes=['"match_car": as many patches per class as there are car patches '
                  "(one per car, plus its rotations)."])

# %% [markdown]
# ### Why patches, not crops
#
# Training PB *densely* would run it over whole crops and put the loss on sampled centre
# pixels only (a *sampled-centre loss mask*). With batch norm in evaluation mode and no
# dropout, that loss has exactly the gradient of a batch of patches centred on the same
# pixels (the library's tests check this on a small network). In
# training mode two things differ: batch norm normalises with the statistics of the whole
# crops instead of those of the sampled patches, and dropout masks are drawn per output
# pixel, which is the same as one mask per patch. Dense training pays off only when many
# centres of a crop are used per step; the class-balanced, car-centred sampling of the paper
# spreads its centres over the whole training set instead. We measured one training step of
# both kinds before choosing how the CPU profiles train:

# %% tags=["remove-input"]
trial = pb.DENSE_TRAINING_TRIAL
now = pb.training_step_seconds(ours, in_channels=in_ch,
                               patches=trial["patches"], crops=trial["crops"],
                               crop_size=trial["crop_size"], device=ch.device)
patch_row = f"Batch of {trial['patches']} patches of 65 px"
dense_row = (f"{trial['crops']} crops of {trial['crop_size']} px, fc1 by FFT, "
             f"loss at {trial['patches']} sampled centres")
step_table = pd.DataFrame({
    "Outputs per step": [now["patch_outputs"], now["dense_outputs"]],
    "Seconds per step, measured by us (default widths, one thread)":
        [trial["patch_step_s"], trial["dense_step_s"]],
    "Seconds per step, this run": [now["patch_s"], now["dense_s"]],
}, index=[patch_row, dense_row])
show_table(step_table, caption="One training step (forward and backward pass) of the patch "
           "CNN trained on patches and trained densely on crops: the measurement that "
           "decided the CPU profiles, and the same measured again in this run (this run's "
           f"widths, {ch.hardware}).", rows=None, row_header="Training step",
           columns=None, formats={"Outputs per step": "int"},
           notes=["Outputs per step: the labelled outputs a step could use (one per patch; "
                  "every output pixel of the crops)."])

# %% tags=["remove-input"]
display(Markdown(
    f"A dense step cost {trial['dense_step_s'] / trial['patch_step_s']:.0f} times a patch "
    f"step when we measured it ({now['ratio']:.1f} times in this run, at its widths). A "
    f"default-profile run of {trial['steps']} patch steps took about {trial['run_s']} s "
    "at one thread and converged; at this budget PB therefore trains on patches, as in "
    "the paper. Dense training would pay off with many more centres per crop, i.e. with a "
    "different sampling of the training pixels than the paper's."))

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

# %% tags=["hide-input"]
cen = train_set.centres
train_px = np.bincount(np.concatenate([s.training_labels(True).ravel()
                                       for s in ch.data.train]), minlength=256)[:k]
counts = pd.DataFrame({
    "patches": np.bincount(cen.label, minlength=k),
    "of them rotated": np.bincount(cen.label[cen.angle != 0], minlength=k),
    "share of training pixels (%)": train_px / sum(s.labels.size for s in ch.data.train),
}, index=list(classes.names)).loc[evaluated]
show_table(counts, caption="Training patches of the first seed per class (balanced), and "
           "each class's share of the training pixels.", rows="class",
           formats={"patches": "int", "of them rotated": "int"},
           percent=["share of training pixels (%)"])

# %% tags=["remove-input"]
show = np.concatenate([np.flatnonzero(cen.label == c)[:6] for c in range(k)])
fig = pb_plots.sample_patches(train_set.patches(show), cen.label[show], cen.angle[show],
                              classes, band_names=ch.data.bands)
plots.show(fig, name="pb-training-patches",
           caption="Six training patches per class (first seed). Each patch is labelled by "
           "its centre pixel (red cross); car patches are centred on a car and rotated by a "
           "random angle (above the patch).",
           alt="A grid of small image patches, one row per class; each patch has a red "
           "cross at its centre, car patches are rotated and titled with their angle.")

# %% [markdown]
# ## Training
#
# Cross-entropy on the centre label; a patch gives $1\times1$ logits, so the study's
# segmentation loss and training loop apply unchanged. A model already in the run store
# (same configuration, sampler settings included) is reused.

# %%
for seed in ch.seeds:
    ch.train("pb", seed)

# %% tags=["remove-input"]
fig = plots.training_curves({(m, s): r.history for (m, s), r in ch.runs.items()})
plots.show(fig, name="pb-training-curves",
           caption="Training loss of every PB run, one point per pass over the sampled "
           "patches (one line per seed).",
           alt="Line plot of training loss against passes over the data for the patch "
           "CNN, one line per seed, falling and flattening towards the end.")
train_df = pb.training_summary(ch.runs)
show_table(train_df, caption="PB's training runs. Converged: " + stats.CONVERGENCE_RULE
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
# ## Dense inference equals patch-by-patch classification
#
# On the first validation scene (reflect-padded by 32 px), the dense pass (fc1 by FFT) is
# compared with classifying the 65 px patches around 64 random pixels one by one, and both
# are timed.

# %% tags=["hide-input"]
run0 = ch.runs[("pb", ch.seeds[0])]
image0 = stats_bands.apply(ch.data.val[0])
check = pb.dense_vs_patch(run0.model, image0, n_pixels=64, tile=eval_tile)

# %% tags=["remove-input"]
display(Markdown(
    f"Over {len(check['pixels'])} pixels the largest difference between the dense and the "
    f"per-patch probabilities is {check['max_abs_diff']:.1e}, and both predict the same "
    f"class at {100 * check['same_argmax']:.0f} % of them. On this "
    f"{image0.shape[1]} x {image0.shape[2]} px scene ({ch.hardware}) the dense pass "
    f"labels {check['dense_px_per_s']:,.0f} pixels per second against "
    f"{check['patch_px_per_s']:,.0f} for patches classified one by one: "
    f"{check['speedup']:,.0f} times faster, at this run's widths."))
fig = pb_plots.dense_vs_patch_scatter(check["dense"], check["patch"])
plots.show(fig, name="pb-dense-vs-patch",
           caption="Class probabilities of the dense pass against those of each patch "
           "classified on its own, at the same pixels (first seed): every point lies on "
           "the diagonal.",
           alt="Scatter plot of dense-pass probability against per-patch probability; all "
           "points on the line y = x.")

# %% [markdown]
# ## Evaluation with both border treatments
#
# *Reflect* (the book's default): the scene is reflect-padded by 32 px, so every pixel is
# classified. *Omit* (the paper's Table 1): the 32 px border is left unclassified and
# excluded from the scores. Both are the same trained model, and the inner pixels are the
# same patches in both modes, so the *omit* prediction is the *reflect* prediction with its
# border blanked: the run store keeps one prediction per scene and derives the other
# (`aerialseg.evaluation.PredictionCache`). The per-pixel baseline of {doc}`01_data` is
# scored on the same scenes.

# %%
for seed in ch.seeds:
    run = ch.runs[("pb", seed)]
    for mode, label in method.BORDER_LABELS.items():  # reflect first, then omit
        ch.evaluate(run, label=label, border_mode=mode, tile=eval_tile)
ch.add_pixel_baseline()
ds = ch.write_results()

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
gates = pb.sanity_table(ds, pixel_baseline=chapter.PIXEL_BASELINE)
pb.gates_table(gates)

# %% [markdown]
# ### Beside the paper
#
# Table 1 of {cite:t}`kampffmeyer2016`, PB row: ISPRS Vaihingen validation areas, eroded
# ground truth, F1 in %, 32 px border unclassified. Their data are real 9 cm orthophotos of
# Vaihingen and their network has the full widths; ours are stated above. Compare the
# pattern across classes, not the values.

# %% tags=["remove-input"]
refl, omit = method.BORDER_LABELS["reflect"], method.BORDER_LABELS["omit"]
notes = [f"Paper: {reported.KAMPFFMEYER_NOTES['pb']}."]
if isprs_classes:
    rows = {"Paper (Vaihingen, border omitted)": ("paper", "pb"),
            names.method_name(omit): ("ours", omit), names.method_name(refl): ("ours", refl),
            names.method_name(chapter.PIXEL_BASELINE): ("ours", chapter.PIXEL_BASELINE)}
    beside = pb.beside_paper(ds, rows, reported=reported.KAMPFFMEYER_TABLE1)
    caption = ("PB in the paper's Table 1 and here (means over seeds): F1 per class, mean F1 "
               "and OA, eroded-boundary ground truth, in %.")
else:
    beside = pb.beside_paper(ds, {"Paper (Vaihingen, border omitted)": ("paper", "pb")},
                             reported=reported.KAMPFFMEYER_TABLE1)
    caption = ("PB in the paper's Table 1 (Vaihingen): F1 per class, mean F1 and OA, eroded "
               "ground truth, in %. This dataset has other classes: our scores are in the "
               "tables above, not comparable class by class.")
show_table(beside, caption=caption, rows=None, row_header="Source", points=True,
           notes=notes)

# %% tags=["remove-input"]
fig = plots.per_class_scores(ds, metric="f1", methods=[refl, omit, chapter.PIXEL_BASELINE],
                             reported={omit: reported.KAMPFFMEYER_TABLE1["pb"]}
                             if isprs_classes else None)
plots.show(fig, name="pb-per-class",
           caption="F1 per class of PB in both border modes and of the per-pixel baseline "
           "(bars: mean over seeds; dots: single seeds)"
           + ("; red ticks: the paper's PB on Vaihingen, on the border-omitted bars."
              if isprs_classes else "."),
           alt="Grouped bar chart of F1 per class for PB with reflect border, PB with "
           "omitted border and the per-pixel baseline.")

# %% [markdown]
# ### Label maps
#
# The first validation scene: the image, the ground truth and the predictions of both
# border modes (first seed). In the *omit* map the unclassified 32 px border is black.
# Then the confusion matrices of PB and of the per-pixel baseline.

# %% tags=["remove-input"]
first = {r.method: r.evaluation for r in ch.records if r.seed == ch.seeds[0]}
scene_name = next(iter(first[refl].maps))
maps = {m: first[m].maps[scene_name] for m in (refl, omit)}
fig = plots.prediction_gallery(maps, classes, image=plots.false_colour(ch.data.val[0]))
plots.show(fig, name="pb-label-maps",
           caption=f"The top-left 256 px of validation scene {scene_name}: image, ground "
           "truth and PB's predictions with reflect padding and with the border omitted "
           "(black: unclassified or ignored pixels).",
           alt="Four panels: the aerial image, the ground-truth label map, and two "
           "prediction maps that agree inside; the second has a black border.")
fig = pb_plots.confusion_pair(
    {names.method_name(refl): first[refl].confusion["eroded"],
     names.method_name(chapter.PIXEL_BASELINE):
         first[chapter.PIXEL_BASELINE].confusion["eroded"]},
    classes.names, evaluated=classes.evaluated)
plots.show(fig, name="pb-confusion",
           caption="Confusion matrices of PB (reflect border, first seed) and of the "
           "per-pixel baseline, eroded-boundary ground truth: each row is a true class, in "
           "% of its pixels.",
           alt="Two heatmaps of true against predicted class with percentages in the "
           "cells; the diagonal is darker for PB.")

# %% [markdown]
# ## Verdicts
#
# The paper makes no claim about PB on its own, so this chapter has no verdict. PB's scores
# enter the comparison of all methods in {doc}`10_comparison`, and PB is a member of the
# ensembles of {doc}`05_ensembles`, where the paper's claim that the ensemble beats every
# single network is judged by the study's rule. A model takes part in a verdict only if it
# passes the gates above.

# %% [markdown]
# ## Summary

# %% tags=["summary"]
f1_pb = stats.method_interval(ds, refl, metric="f1")
f1_omit = stats.method_interval(ds, omit, metric="f1")
f1_base = stats.method_interval(ds, chapter.PIXEL_BASELINE, metric="f1")
oa_pb = stats.method_interval(ds, refl, metric="oa")
per_cls = {c: stats.method_interval(ds, refl, metric="f1", cls=c).mean for c in evaluated}
worst, best = min(per_cls, key=per_cls.get), max(per_cls, key=per_cls.get)
h, w = image0.shape[1:]
border_share = 1 - (h - 64) * (w - 64) / (h * w)
n_conv = int(train_df["converged"].sum())
t_train = train_df["training (s)"].sum()
reused = int(train_df["reused"].sum())

iv = pb.interval_text
gate = gates.loc[refl, "verdicts"]
paras = [
    f"**What was compared.** PB, trained on class-balanced 65 px patches "
    f"({len(ch.seeds)} seed{'s' if len(ch.seeds) > 1 else ''}, `{profile}` profile, "
    f"{n_ours / 1e6:.2f} M parameters against {n_paper / 1e6:.1f} M at the paper's widths), "
    "evaluated densely with reflect padding and with the paper's omitted border, against the "
    "per-pixel baseline.",
    f"**Dense inference** reproduces per-patch classification (largest probability "
    f"difference {check['max_abs_diff']:.0e}) and is {check['speedup']:,.0f} times faster "
    f"per pixel on {ch.hardware}.",
    f"**Scores.** With reflect padding PB reaches a mean F1 of {iv(f1_pb)} and an OA of "
    f"{iv(oa_pb)}; the per-pixel baseline's mean F1 is {iv(f1_base)}. "
    + (f"PB passes the study's gates ({n_conv} of {len(train_df)} runs converged, mean F1 "
       "above the per-pixel baseline), so its numbers can enter the comparison."
       if gate == "may take part" else
       f"PB does not pass the study's gates here: {gate}. Its numbers take part in no "
       "verdict.")
    + f" Its best class is {names.class_name(best).lower()} (F1 {100 * per_cls[best]:.1f} %), "
    f"its worst {names.class_name(worst).lower()} (F1 {100 * per_cls[worst]:.1f} %).",
    f"**Border.** Leaving the 32 px border unclassified (the paper's protocol) drops "
    f"{100 * border_share:.0f} % of a {h} x {w} px scene; on the pixels it keeps, PB's mean "
    f"F1 is {iv(f1_omit)}.",
]
if isprs_classes:
    paras.append(
        f"**Beside the paper.** On Vaihingen the paper's PB reaches a mean F1 of "
        f"{reported.KAMPFFMEYER_TABLE1['pb']['mean_f1']:.2f} % and an OA of "
        f"{reported.KAMPFFMEYER_TABLE1['pb']['oa']:.2f} %, with its weakest class, car, at "
        f"{reported.KAMPFFMEYER_TABLE1['pb']['car']:.2f} %; our data and widths differ, so "
        "only the pattern across classes compares.")
else:
    paras.append(
        f"**Beside the paper.** The paper's numbers are for Vaihingen's classes; `{dataset}` "
        "has other classes and bands, so its scores are not compared with them class by "
        "class.")
paras.append(
    "**Verdict.** This chapter tests no claim of the paper; PB's scores go to "
    "the comparison of chapter 10 and its predictions to the ensembles of chapter 05. "
    f"Training took {t_train:.{0 if t_train >= 10 else 1}f} s in all, as recorded when the "
    "runs were trained"
    + (f" ({reused} of {len(train_df)} runs reused from the run store)." if reused else "."))
display(Markdown("\n\n".join(paras)))
