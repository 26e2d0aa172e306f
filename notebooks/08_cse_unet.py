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
# Their ablation (Table 1) credits each addition with several points of mIoU on ISPRS
# Vaihingen and a fraction of a point on Potsdam, and their Table 3 shows the largest gain
# of CSE-UNet over the U-Net on cars.
#
# This chapter trains the four rows of that ablation (U-Net, + dual-path encoder, + RFB
# skips, both = CSE-UNet) with one shared training and three seeds, and:
# puts our ablation beside the paper's Table 1, with every change as a paired interval;
# judges the paper's four claims (three on mIoU, one on car IoU) by the study's statistics
# rule; shows per-class IoU/F1 beside the paper's Table 3; counts the parameters at the width
# trained here and at the paper's width; reports training and inference time; and discusses
# Mazur's replication {cite:p}`mazur2026`, whose numbers cannot be compared with either.
#
# **Prerequisites.** {doc}`01_data` (the data and the per-pixel baseline), {doc}`03_fcn_mfb`
# (how a chapter trains, reuses and evaluates models, and median-frequency balancing), and
# the {doc}`../protocol` (metrics and the statistics rule).

# %% tags=["parameters"]
profile = "default"  # smoke | default | gpu | full
device = "auto"  # auto: CUDA when present, else CPU
dataset = "synthetic"  # synthetic | dubai | vaihingen | potsdam
data_root = None  # None: data/<dataset> (or ../shared/data for real sets)
data_options = None  # dataset options, e.g. {"potsdam_bands": "r+g+b"} (see chapter 01)
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
train_mazur = None  # also train Mazur's layout of CSE-UNet (None: only in `full`)
train_smp = None  # also train the smp ResNet-34 U-Net (None: not in `default`)

# %% tags=["hide-input"]
import pandas as pd
from IPython.display import Markdown, display

from aerialseg import chapter, plots, registry, stats, tables
from aerialseg.display import method_names
from aerialseg.papers.cse_unet import analysis as cse
from aerialseg.papers.cse_unet import plots as cse_plots
from aerialseg.papers.cse_unet import reported as reported_cse
from aerialseg.profiles import uses_shared_backbone
from aerialseg.papers.cse_unet.method import ABLATION, BASELINE, MEASURED

plots.book_style()
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
has_car = "car" in classes.evaluated_names
names = method_names([*methods, chapter.PIXEL_BASELINE])

# %% [markdown]
# ## The network
#
# Write $\mathrm{CBR}_{k,d}$ for a $k\times k$ convolution with dilation $d$ (same padding),
# batch normalisation and ReLU, and $\mathrm{DC}_c$ for two $\mathrm{CBR}_{3,1}$ with $c$
# output channels. With widths $C_k = C_1 2^{k-1}$, the **main encoder** is
#
# $$ e_1 = \mathrm{DC}_{C_1}(x), \qquad e_{k+1} = \mathrm{DC}_{C_{k+1}}(f_k), $$
#
# $$ f_k = \mathrm{ReLU}\big(\mathrm{MaxPool}_{2}(e_k) + a_k\big), \qquad k = 1,\dots,4, $$
#
# and $e_5$ is the bridge at 1/16 resolution. The **auxiliary path** is a chain of strided
# convolutions (kernels $\kappa = 7, 5, 3, 2$ from the highest resolution down), each
# followed by batch normalisation, with a ReLU between links:
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
# and a $1\times1$ convolution maps $d_1$ to the class scores.
#
# *From the paper* (text and its Figure 2): the dual-path encoder with kernels 7, 5, 3, 2 and
# stride 2, where the auxiliary path branches off and how it is fused (addition, ReLU), the
# sequential RFB stacks and their dilations 7, 5, 3, 1, the bilinear decoder, and the
# training below. *Reconstructed* (not stated): the widths $C_1..C_5 = 64..1024$ (the
# standard U-Net's), the $1\times1$ head, the order $1\times1$-then-upsample (the two
# commute), and the poly learning-rate schedule.
#
# The four rows of Table 1 are one network with two switches: switching off the auxiliary
# path sets $a_k = 0$ (and drops the ReLU after the pooling), switching off the RFB sets
# $s_k = e_k$; nothing else changes between the rows.

# %%
switches = {m: {k: bool(ch.resolve(m).model_kwargs.get(k, False))
                for k in ("use_aux_path", "use_rfb")} for m in ABLATION}
tables.show_table(
    pd.DataFrame.from_dict(switches, orient="index").rename(
        columns={"use_aux_path": "Dual-path encoder", "use_rfb": "RFB skips"}),
    caption="The two switches of the paper's ablation, as the four models are built here.",
    formats={"Dual-path encoder": "check", "RFB skips": "check"})

# %% [markdown]
# ## Parameter counts
#
# Counted without building weights (the models are created on PyTorch's meta device): at the
# width this run trains, at the paper's full width for this dataset's bands and classes, and
# at full width for 3 input bands and 5 classes (the paper's input and classes). Mazur's
# layout and the smp U-Net with a ResNet-34 encoder are counted for comparison even where
# they are not trained.

# %%
count_methods = [*ABLATION, "cse_unet_mazur", BASELINE]
params_df = cse.parameter_table(count_methods, profile=profile, in_channels=n_bands,
                                num_classes=n_classes, paper_io=(3, 5), **overrides)
full_width = params_df[cse.PAPER_WIDTH]

# %% tags=["remove-input"]
tables.show_table(
    params_df, caption=f"Trainable parameters in millions: this run (`{profile}`, "
    f"{n_bands} bands, {n_classes} classes) and the paper's width.",
    formats=dict.fromkeys(params_df.columns, "float2"))

# %% [markdown]
# ## Training
#
# *From the paper* (§3.2): SGD with momentum 0.99, weight decay $5\cdot10^{-4}$, initial
# learning rate $10^{-3}$, batch 4, $256\times256$ crops for Vaihingen, random flips and
# random scaling by 0.5-2, 400 epochs on Vaihingen, trained from scratch with
# cross-entropy, five classes (clutter dropped: here its pixels are ignored in training and
# evaluation). *Reconstructed*: the poly schedule (power 0.9, per iteration); random crops
# of the scaled tiles stand in for the paper's fixed non-overlapping crops (in `full`, one
# pass draws as many crops as the tiles hold non-overlapping ones), and all eight
# flips/rotations stand in for its horizontal flip. The `full` profile keeps this recipe.
#
# **What the CPU and GPU profiles change, and why.** The `smoke`, `default` and `gpu`
# profiles train the four rows as narrow U-Nets (base width 8 on a CPU, 16 on the GPU,
# instead of 64) on grid crops of 128 px (256 px on the GPU) in their eight flips and
# rotations, with **median-frequency-balanced cross-entropy** (the weighting of
# {doc}`03_fcn_mfb`) and **SGD at learning rate 0.03, momentum 0.9**, instead of plain
# cross-entropy at $10^{-3}$ / 0.99. The reason is what we measured on the synthetic data
# (next paragraph): with the paper's recipe the narrow networks learn no car within any
# budget this book can afford, and a model that never predicts a car can neither beat the
# per-pixel baseline nor take part in the car claim. Every row gets the same training, so
# the ablation still compares architectures only; but it compares them at a small width,
# after a short training and with a balanced loss, which trades precision on frequent
# classes for recall on rare ones. Our numbers therefore test the *direction* of the paper's
# gains under one converged training, not their size; they are not comparable with the
# paper's values, which come from real 9 cm orthophotos, full-width networks and 400 epochs.
#
# The smp U-Net with a ResNet-34 encoder (randomly initialised, so the comparison is about
# the architecture only) is a baseline outside the paper's ablation; on a CPU it alone costs
# about as much as the four ablation rows together, so it is trained only where the
# `train_smp` setting is on (not in `default`). Mazur's layout is trained only in `full`
# (setting `train_mazur`). Every model is trained with every seed; a model already in the
# run store is reused.

# %% tags=["remove-input"]
configs = {m: ch.resolve(m) for m in methods}
shapes = [s.labels.shape for s in ch.data.train]
steps = cse.training_steps(configs["cse_unet"], shapes)
t = configs["cse_unet"].train
lo, hi = MEASURED["seconds_per_variant"]
display(Markdown(
    f"**Measured by us** (synthetic data, base width 8, 128 px crops, one CPU thread): with "
    f"the paper's cross-entropy at learning rate 0.001 and momentum 0.99, no variant "
    f"predicted a single car pixel in {MEASURED['paper_recipe_steps']} steps; with plain "
    f"cross-entropy at learning rate 0.03, the U-Net predicted no car before about "
    f"{MEASURED['plain_ce_first_car_steps']} steps. With the `default` profile's training, "
    f"each variant took about {lo}-{hi} s when we chose it, scored a mean F1 above the "
    f"per-pixel baseline and learned cars; whether every run of this edition converged is "
    f"in the training table below. In this run (`{profile}`), each ablation row trains for "
    f"{steps} step{'s' if steps != 1 else ''} of {t.batch_size} crops of {t.crop_size} px:"))
tables.show_table(
    cse.settings_table(configs, shapes),
    caption=f"How each model of this run is built and trained (`{profile}` profile).",
    formats={"steps": "int"},
    notes=("Network: the U-Nets' base width C₁ (the paper's: 64), or the smp U-Net's "
           "encoder; every network starts from random weights. Balanced CE: "
           "median-frequency-balanced cross-entropy. SGD with a poly schedule and weight "
           "decay 0.0005. Crops: batch × side; grid crops are used in their eight flips and "
           "rotations.",))

# %% [markdown]
# **Other data.** On the Dubai set (real RGB imagery, five classes: building, land, road,
# vegetation, water) the networks take three bands instead of the synthetic set's five and
# there are no heights and no cars: the car claim is untestable there, and the paper's
# per-class tables (ISPRS classes) are shown for reference only, not class by class against
# ours.

# %%
for seed in ch.seeds:
    for name in methods:
        ch.evaluate(ch.train(name, seed), label=name)
pixel = ch.add_pixel_baseline()

# %% tags=["remove-input"]
plots.show(plots.training_curves({k: r.history for k, r in ch.runs.items()}),
           name="cse-unet-training",
           caption="Training loss of every run (one line per seed; the loss is the "
           "balanced cross-entropy in the CPU and GPU profiles, so it is not comparable "
           "across profiles).",
           alt="Line plot of training loss against training progress for each ablation "
           "model and seed; all curves fall and flatten towards the end.")
train_df = cse.training_table(ch.runs)
tables.show_table(
    train_df, caption="Every training run: length, final loss, convergence (the study's "
    "rule, see the protocol page) and wall time; a reused run reports the time of its "
    "original training.",
    labels={"method": "method"},
    formats={"seed": "int", "epochs": "int", "steps": "int", "final loss": "float3",
             "converged": "yesno", "training (s)": "float1", "reused": "yesno"})

# %% [markdown]
# ## Results
#
# Scores on the validation scenes with the eroded-boundary ground truth, the primary
# protocol (see {ref}`protocol-eroded`; every metric is defined on the {doc}`../protocol`
# page). The per-pixel baseline (a logistic regression on single pixels' bands) is the
# floor every model must clear.

# %% tags=["remove-input"]
display(Markdown(ch.edition()))
ds = ch.write_results()
ds = ds.sel({"method": [*methods, chapter.PIXEL_BASELINE]})  # Table 1 order, baseline last
flags = stats.sanity_flags(ds, pixel_baseline=chapter.PIXEL_BASELINE)
tables.summary_table(
    ds, protocol="eroded", spread="interval",
    caption="Scores on the validation scenes (eroded-boundary ground truth), in %: mean "
    "over seeds [95 % interval over seeds and spatial blocks]; boundary F1 and ECE as mean "
    "± standard deviation over seeds.")

# %% [markdown]
# The paper does not say whether it used the eroded or the full ground truth; the same
# scores on the full ground truth (the secondary protocol):

# %% tags=["remove-input"]
tables.summary_table(
    ds, protocol="full",
    caption="Scores on the validation scenes (full ground truth), in %: mean over seeds "
    "(± standard deviation where there are several).")

# %% [markdown]
# ### The ablation beside Table 1
#
# Each row's mIoU and mean F1 with its interval, and its change against the U-Net with the
# interval of the paired bootstrap ({ref}`protocol-statistics`), beside the paper's
# Vaihingen columns of Table 1. The paper's values come from other data, width and training
# (see above): compare the direction of the changes, not the values.

# %% tags=["remove-input"]
abl = cse.ablation_frame(ds, protocol="eroded")
cse.ablation_table(abl, caption=f"The ablation on `{dataset}` (eroded protocol, %) beside "
                   "the paper's Table 1 (Vaihingen).")

# %% tags=["remove-input"]
plots.show(cse_plots.ablation_deltas(abl), name="cse-unet-ablation-deltas",
           caption="Change of mIoU (left) and mean F1 (right) of each addition against the "
           "U-Net: ours with the 95 % paired interval, and the paper's on Vaihingen.",
           alt="Grouped bars for the dual-path encoder, the RFB skips and CSE-UNet: our "
           "change against the U-Net with interval whiskers next to the paper's change, "
           "for mIoU and for mean F1.")
tables.show_table(
    reported_cse.table1(), caption="The paper's Table 1 (ablation) as printed, in %.",
    rows=None, row_header="Model", formats=dict.fromkeys(reported_cse.table1().columns,
                                                         "float2"))

# %% [markdown]
# ### Verdicts on the paper's claims
#
# Each claim is judged by the study's one rule ({ref}`protocol-statistics`): the change is
# paired over seeds, its 95 % interval comes from a bootstrap over seeds and spatial blocks,
# and a model that has not converged or is below the per-pixel baseline takes part in no
# verdict.

# %% tags=["remove-input"]
claims = [c for c in registry.claims() if c.chapter == ch.name]
verdicts = ch.verdicts(ds)
display(tables.verdict_table(
    cse.readable(verdicts, names), claims, caption=f"The paper's claims judged on our runs (`{dataset}`, eroded "
    "protocol): the paper's change (Vaihingen), ours with its 95 % interval, and the "
    "verdict.", names=names))
display(Markdown(cse.flagged_text(flags)))

# %% [markdown]
# ### Per-class IoU/F1 beside Table 3
#
# Every model of this run in the paper's layout (IoU / F1 per class, %), then the paper's
# Table 3 (Vaihingen; FCN-8s and CAN are the paper's other baselines, not trained here).

# %% tags=["remove-input"]
display(tables.show_table(
    cse.iou_f1_table(ds, [str(m) for m in ds["method"].values]),
    caption=f"IoU / F1 per class on `{dataset}` (eroded protocol, %, mean over seeds), "
    "with mIoU, mean F1 and OA.", rows="method"))
display(tables.show_table(
    reported_cse.per_class_table("vaihingen"),
    caption="The paper's Table 3 (Vaihingen) as printed: IoU / F1 per class, %.",
    rows=None, row_header="Model"))

# %% tags=["remove-input"]
if has_car and set(reported_cse.ISPRS5) == set(cse.evaluated_classes(ds)):
    paper_iou = {ours: {c: reported_cse.TABLE3[row][c][0] for c in reported_cse.ISPRS5}
                 for ours, row in (("unet_plain", "unet"), ("cse_unet", "cse_unet"))}
    plots.show(plots.per_class_scores(ds, metric="iou", reported=paper_iou, methods=methods),
               name="cse-unet-per-class-iou",
               caption="IoU per class of every model (bars: mean over seeds; dots: seeds); "
               "red marks: the paper's U-Net and CSE-UNet on Vaihingen, other data.",
               alt="Grouped bars of IoU per class for each model with the seeds as dots, "
               "and the paper's values for U-Net and CSE-UNet as short red lines.")
else:
    display(Markdown(f"`{dataset}` has other classes than the paper's tables, so there is "
                     "no class-by-class overlay."))

# %% tags=["remove-input"]
scene = ch.data.val[0]
maps = {r.method: r.evaluation.maps[scene.name] for r in ch.records
        if r.seed == ch.seeds[0] and r.method in methods and scene.name in r.evaluation.maps}
plots.show(plots.prediction_gallery(maps, classes, image=plots.false_colour(scene)),
           name="cse-unet-predictions",
           caption=f"A 256 px crop of the first validation scene: image, ground truth and the "
           f"prediction of each model (seed {ch.seeds[0]}).",
           alt="Grid of panels: the image, the ground-truth class map and one predicted class "
           "map per model, with a class colour legend below.")

# %% [markdown]
# ## Cost
#
# Parameters (as above), training time of each run and inference throughput over the
# validation scenes (whole scenes in tiles with a halo), mean over seeds, on the hardware
# named at the top of the results. A model reused from the run store reports the time of its
# original training; on a shared CPU these times are noisy.

# %% tags=["remove-input"]
cost = cse.cost_table(ds, params_df)
tables.show_table(
    cost, caption="Parameters, training time and inference throughput per model (mean over "
    "seeds), with the ratios to the U-Net.",
    formats={c: "float1" if c == "Training (s)" else "float2" for c in cost.columns})

# %% [markdown]
# ## Mazur's replication
#
# Mazur {cite:p}`mazur2026` re-implemented CSE-UNet and trained it on ISPRS Potsdam. His
# layout and his numbers, as he reports them:

# %% tags=["remove-input"]
mazur_full, paper_layout_full = (
    cse.count_parameters(m, profile="full", in_channels=3, num_classes=7)
    for m in ("cse_unet_mazur", "cse_unet"))
display(Markdown(
    f"**His layout.** Where it differs from the paper's: {reported_cse.MAZUR_LAYOUT}. At "
    f"full width with 3 bands and his 7 labels it has {mazur_full / 1e6:.2f} M parameters "
    f"(counted here), against {paper_layout_full / 1e6:.2f} M for the paper's layout with "
    f"the same input and output. His training: {reported_cse.MAZUR_SETUP}."))
tables.show_table(
    reported_cse.mazur_table(), caption="Mazur's runs on his Potsdam tiles (fastai's "
    "accuracy and multi-class Jaccard, in %).", rows=None, row_header="Run",
    percent=["valid accuracy", "Jaccard (multi)"], na="not reported")

# %% tags=["remove-input"]
tables.show_table(
    pd.DataFrame({"IoU": reported_cse.MAZUR_PHASE2_IOU}),
    caption="Mazur's phase-2 CSE-UNet: IoU per class on a tenth of his validation tiles, "
    "in % (from his slides).", rows="class", percent=["IoU"])

# %% tags=["remove-input"]
runs_m = reported_cse.MAZUR_RUNS
cse_j = [r["jaccard"] for k, r in runs_m.items() if k.startswith("CSE-UNet")]
display(Markdown(
    f"**Why these numbers are not comparable** with the paper's tables or ours: "
    f"{reported_cse.MAZUR_NOT_COMPARABLE}. His own clutter IoU is inconsistent "
    f"({100 * reported_cse.MAZUR_PHASE2_IOU['clutter']:.1f} % in the slides, "
    f"{100 * reported_cse.MAZUR_CLUTTER_IOU_REPO:.1f} % in his repository). What his runs do "
    f"show is an ordering on one protocol: CSE-UNet (Jaccard {100 * min(cse_j):.1f}-"
    f"{100 * max(cse_j):.1f} %) above a ResNet-34 U-Net trained from scratch "
    f"({100 * runs_m['U-Net ResNet34, scratch']['jaccard']:.1f} %) and level with an "
    f"ImageNet-pretrained one ({100 * runs_m['U-Net ResNet34, ImageNet']['jaccard']:.1f} %), "
    f"all below the paper's Potsdam mIoU of "
    f"{reported_cse.TABLE1['cse_unet']['potsdam_miou']:.2f} %. Set `train_mazur=True` to "
    f"train his layout here under this profile's training."))

# %% [markdown]
# ## Summary

# %% tags=["summary"]
by_method = {v.method: v for v in verdicts if v.cls == "overall"}
car = next((v for v in verdicts if v.cls == "car"), None)
paper_d = {m: abl.loc[m, "paper_d_iou"] for m in abl.index if m != "unet_plain"}
training = ("median-frequency-balanced cross-entropy, SGD at learning rate "
            f"{t.lr:g} and networks of base width {configs['cse_unet'].model_kwargs['base_width']}"
            if uses_shared_backbone(profile) else "the paper's training")
intro = (f"We trained the four rows of the paper's ablation on `{dataset}` with "
         f"{len(ch.seeds)} seed{'s' if len(ch.seeds) > 1 else ''} each ({training}) and "
         "compared each addition with the plain U-Net.")
claims_text = " ".join(cse.claim_sentence(v, names, paper_d[m])
                       for m, v in by_method.items() if m in paper_d)
claims_text += " " + cse.meaning(list(by_method.values()), names)
if car is not None:
    claims_text += " " + (cse.claim_sentence(car, names) if has_car else
                          f"The car claim is untestable on `{dataset}`, which has no car class.")
cost_text = (
    f"At the paper's width CSE-UNet has {full_width['cse_unet']:.2f} M parameters, "
    f"{100 * (full_width['cse_unet'] / full_width['unet_plain'] - 1):.0f} % more than the "
    f"U-Net ({full_width['unet_plain']:.2f} M): the RFB skips add "
    f"{full_width['unet_rfb'] - full_width['unet_plain']:.2f} M, the auxiliary path "
    f"{full_width['unet_dual_path'] - full_width['unet_plain']:.2f} M. Here it trained in "
    f"{cost.loc['cse_unet', 'Training, × U-Net']:.1f}× the U-Net's time and predicted at "
    f"{cost.loc['cse_unet', 'Inference, × U-Net']:.2f}× its throughput.")
if BASELINE in methods:
    smp = stats.method_interval(ds, BASELINE, metric="iou")
    ours = abl.loc["cse_unet"]
    cost_text += (
        f" The smp U-Net (ResNet-34, from scratch; {full_width[BASELINE]:.1f} M parameters) "
        f"reached an mIoU of {cse.interval_text(100 * smp.mean, 100 * smp.low, 100 * smp.high)}"
        f" % against {cse.interval_text(ours['iou'], ours['iou_low'], ours['iou_high'])} % "
        "for CSE-UNet.")
display(Markdown("\n\n".join([intro, claims_text, cse.flagged_text(flags), cost_text])))
