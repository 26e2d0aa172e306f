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
# # Error Fingerprint Maps: loss weighting by where the model fails
#
# **Overview.** Vlasenko and Dashkevych {cite:p}`vlasenko_efm` weight the per-pixel loss of a
# segmentation network by an *error fingerprint map* (EFM): a smoothed mix of where the
# current model is wrong and where it is unsure, recomputed every few epochs, times a
# boundary weight from the ground truth. They train FPN and PSPNet in three stages
# (baseline, +EFM, +EFM fine-tuning with an exponential moving average of the weights) and
# report gains of several points. The fine-tuning stage, however, also gets extra epochs,
# EMA and test-time augmentation (TTA) that the baseline never gets. This chapter runs the
# three stages for both models **and a fairness control** (the baseline given the same
# extra epochs, EMA and TTA, without EFM), so that the part of the gain due to the maps
# themselves can be read off.
#
# **Prerequisites.** {doc}`01_data` (data, eroded-boundary protocol, metrics) and
# {doc}`03_fcn_mfb` (how a chapter trains and evaluates).

# %% tags=["parameters"]
profile = "default"  # smoke | default | gpu | full
device = "auto"  # auto: CUDA when present, else CPU
dataset = "synthetic"  # synthetic | dubai | vaihingen | potsdam
data_root = None  # None: data/<dataset> (or ../shared/data for real sets)
data_options = None  # dataset options, e.g. {"potsdam_bands": "rgb"} (see chapter 01)
seeds = None  # None: the profile's seeds
retrain = False  # True: train again even if the run store holds the model
archs = None  # models to run (None: fpn and pspnet)
# Method parameters; None takes the profile's value (names as in aerialseg.config.TrainConfig
# and aerialseg.papers.efm.method; finetune_epochs / finetune_lr are the epochs / lr of
# stage 3 and the control).
encoder = None
epochs = None
finetune_epochs = None
batch_size = None
samples_per_epoch = None
crop_size = None
lr = None
finetune_lr = None
ema_decay = None
efm_start_epoch = None
efm_every = None
efm_source = None  # "cached_train" (maps per training scene) or "online_batch"
efm_mix_alpha = None
efm_focus_alpha = None
efm_focus_beta = None
efm_boundary_gamma = None
efm_sigma = None
topk_fraction = None
label_smoothing = None
tta = None  # flip TTA for stage 3 and the control (None: on, the paper's test-time setting)
paper_baseline = None  # also train the paper's CE + Dice baseline (None: yes)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from aerialseg import chapter, plots
from aerialseg.losses.efm import EFMLoss
from aerialseg.papers.efm import analysis as efm_analysis
from aerialseg.papers.efm import method as efm_methods
from aerialseg.papers.efm import plots as efm_plots
from aerialseg.papers.efm import reported as reported_efm
from aerialseg.papers.efm.method import method_name
from aerialseg.tables import summary_table

ch = chapter.start(
    "07_efm", profile=profile, device=device, dataset=dataset, seeds=seeds,
    data_root=data_root, data_options=data_options, retrain=retrain,
    overrides=dict(encoder=encoder, epochs=epochs, finetune_epochs=finetune_epochs,
                   batch_size=batch_size, samples_per_epoch=samples_per_epoch,
                   crop_size=crop_size, lr=lr, finetune_lr=finetune_lr, ema_decay=ema_decay,
                   efm_start_epoch=efm_start_epoch, efm_every=efm_every,
                   efm_source=efm_source, efm_mix_alpha=efm_mix_alpha,
                   efm_focus_alpha=efm_focus_alpha, efm_focus_beta=efm_focus_beta,
                   efm_boundary_gamma=efm_boundary_gamma, efm_sigma=efm_sigma,
                   topk_fraction=topk_fraction, label_smoothing=label_smoothing),
    settings=dict(archs=archs, tta=tta, paper_baseline=paper_baseline))
archs = ch.settings["archs"]
archs = (archs,) if isinstance(archs, str) else tuple(archs)
tta = ch.settings["tta"]
stage_overrides = efm_methods.stage_overrides(ch.overrides)
stages = ("base", "efm", "ft", "ctrl") + (("cedice",) if ch.settings["paper_baseline"] else ())
classes = ch.data.classes

# %% [markdown]
# ## The fingerprint map and the pixel weights
#
# With $P = \operatorname{softmax}(f_\theta(I))$ and labels $Y$, the error map and the
# entropy map of a training image are (paper eqs. 2-3)
#
# $$ E(x) = [\arg\max_c P_c(x) \ne Y(x)], \qquad
#    H(x) = -\frac{1}{\log C}\sum_c P_c(x)\log\big(P_c(x)+\varepsilon\big). $$
#
# Each is blurred by a Gaussian of standard deviation $\delta$ and min-max normalised per
# image ($\bar E$, $\bar H$); the fingerprint is their mix, normalised again (eqs. 4-5):
#
# $$ \mathrm{EFM}(x) = \operatorname{minmax}\big(\alpha_{mix}\,\bar E(x) +
#    (1-\alpha_{mix})\,\bar H(x)\big), \qquad \alpha_{mix} = 0.6 . $$
#
# A boundary weight from the one-hot ground truth, $W_b(x) = 1 + \gamma\, b(x)$ with
# $b = \min\big(1, \lVert \operatorname{maxpool}_3(Y) - \operatorname{avgpool}_3(Y)\rVert_2\big)$
# (eq. 8), is 1 inside regions and up to $1+\gamma$ on class boundaries. The final pixel
# weight and loss are (eqs. 9-11)
#
# $$ W(x) = W_b(x)\,\big(1 + \alpha\,\mathrm{EFM}(x)^{\beta}\big), \qquad
#    L = \lambda_1\,\operatorname{mean}_{\text{top-}k}\big(W\cdot L_{CE}\big) +
#        \lambda_2\,L_{Dice}, $$
#
# with $\alpha = 2$, $\beta = 1.5$, $\gamma = 1.2$, label smoothing 0.05 in the CE, and the
# top-$k$ mean over the hardest half of the pixels. So $1 \le W \le (1+\gamma)(1+\alpha)
# = 6.6$ on labelled pixels.
#
# *From the paper:* eqs. 2-11, the hyper-parameters $\alpha_{mix}, \alpha, \beta, \gamma$,
# label smoothing, the refresh schedule (every 2 epochs from epoch 5), AdamW (lr
# $5\cdot10^{-4}$, weight decay $10^{-4}$, cosine), gradient clipping 1.0, EMA 0.999, 4-flip
# TTA, FPN and PSPNet with ResNet-34. *Reconstructed* (methods.md §6): the normalisation
# order, $\delta = 2$ px, the pooling window (3) and the norm in $b$, the top-$k$ fraction
# (0.5), $\lambda_1 = \lambda_2 = 1$, where the maps come from (below), the lr of the
# fine-tuning stage ($10^{-4}$), and what "epoch 5" means (the first refresh happens after
# five epochs of training). The paper picks the best checkpoint by validation IoU; we take
# the last (EMA) weights, since our validation scenes are the test scenes.
#
# **Where the maps come from.** The paper computes EFMs "on the validation data", which
# cannot weight training pixels. We follow the recommended reading: at every refresh the
# current model (evaluation mode, no augmentation) predicts every *training* scene; the
# EFM of each scene is cached in the scene's frame, and the training sampler cuts, flips
# and rotates it exactly like the image and labels, so each patch is weighted by the map of
# its own pixels. Before the first refresh EFM $= 0$, so $W = W_b$. The refresh is a
# callback of the shared training loop (`aerialseg.methods.efm.EFMRefresh`). With
# `efm_source="online_batch"` the map is instead computed from each batch's own (detached)
# prediction. Validation-scene maps are kept only for the figures below.

# %% [markdown]
# ## Stages and the fairness control
#
# | stage | starts from | epochs | EFM | EMA | TTA |
# |---|---|---|---|---|---|
# | 1 baseline | scratch | $E$ | $\equiv 0$ ($W = W_b$) | – | – |
# | 2 +EFM | scratch | $E$ | refreshed from `efm_start_epoch` every `efm_every` | – | – |
# | 3 +EFM fine-tune | stage 2 | $F$ more | refreshed from its first epoch | yes | yes |
# | control | stage 1 | $F$ more | $\equiv 0$ | yes | yes |
#
# Our baseline uses the same loss as stage 2 with the map switched off (boundary weight,
# top-$k$, label smoothing and Dice included), so that stages 1 and 2, and the control and
# stage 3, differ **only** in the fingerprint map: "stage 3 minus control" is the gain
# attributable to EFM, and "control minus baseline" is what the extra epochs, EMA and TTA
# give on their own. (The paper's baseline is plain CE with label smoothing plus Dice; it is
# run as `efm_<model>_cedice` when `paper_baseline` is on.) Stage 2 trains from scratch for
# as many epochs as the baseline, so those two compare at equal cost.
#
# The profile scales the study down on a CPU: ResNet-18 instead of ResNet-34, small random
# crops (flips and rotations; the paper's brightness, contrast and noise augmentation is not
# used), a narrower FPN decoder, few epochs, and an EMA decay matched to the few optimiser
# steps of the fine-tuning (0.999 averages over about a thousand steps, more than the whole
# fine-tuning takes here). The `full` profile uses the paper's settings (ResNet-34, 512 px,
# 50 + 15 epochs, EMA 0.999) with 256 random crops per epoch [reconstructed]. The resolved
# configuration of each stage:

# %%
rows = {}
for arch in archs:
    for stage in stages:
        name = method_name(arch, stage)
        cfg = ch.resolve(name, overrides=stage_overrides[stage])
        t, lk = cfg.train, cfg.loss_kwargs
        rows[name] = {"model": f"{cfg.model} {cfg.model_kwargs.get('encoder', '')}",
                      "epochs": t.epochs, "lr": t.lr, "EMA": t.ema_decay or "–",
                      "crop": t.crop_size, "batch": t.batch_size,
                      "samples/epoch": t.samples_per_epoch,
                      "EFM refresh epochs": str(efm_methods.refresh_epochs(
                          t.epochs, lk["efm_start_epoch"], lk["efm_every"])) if
                      lk["efm_start_epoch"] is not None else "– (EFM = 0)",
                      "γ": lk["efm_boundary_gamma"], "top-k": lk["topk_fraction"]}
display(pd.DataFrame.from_dict(rows, orient="index"))

# %% [markdown]
# ## Training
#
# Every stage is trained with every seed; a later stage starts from the weights of its
# parent run (passed by its run-store folder, `init_run`). Runs already in the run store
# (same configuration) are reused. Stages 1-2 are evaluated as trained, stage 3 and the
# control with 4-flip TTA, as in the paper.

# %%
stage_runs = {}
for arch in archs:
    for seed in ch.seeds:
        r = {}
        r["base"] = ch.train(method_name(arch, "base"), seed,
                             overrides=stage_overrides["base"])
        r["efm"] = ch.train(method_name(arch, "efm"), seed, overrides=stage_overrides["efm"])
        r["ft"] = ch.train(method_name(arch, "ft"), seed, init_run=r["efm"].path.name,
                           overrides=stage_overrides["ft"])
        r["ctrl"] = ch.train(method_name(arch, "ctrl"), seed, init_run=r["base"].path.name,
                             overrides=stage_overrides["ctrl"])
        if "cedice" in stages:
            r["cedice"] = ch.train(method_name(arch, "cedice"), seed,
                                   overrides=stage_overrides["cedice"])
        for stage, run in r.items():
            ch.evaluate(run, tta=tta and stage in ("ft", "ctrl"))
        stage_runs[(arch, seed)] = r

# %% [markdown]
# Training curves of the first seed. A fine-tuning stage continues the axis of its parent;
# rings mark epochs that started with an EFM refresh. The EFM weights scale the CE term up,
# so stages with EFM sit higher: compare shapes, not levels.

# %%
s0 = ch.seeds[0]
panels = {}
for arch in archs:
    r = stage_runs[(arch, s0)]
    e_base, e_efm = len(r["base"].history), len(r["efm"].history)
    panels[arch] = {"baseline": (r["base"].history, 0), "+EFM": (r["efm"].history, 0),
                    "+EFM fine-tune": (r["ft"].history, e_efm),
                    "control": (r["ctrl"].history, e_base)}
fig = efm_plots.stage_curves(panels)
plt.show()

# %% [markdown]
# ## Results
#
# ### The ISPRS protocol
#
# Validation scenes, eroded-boundary ground truth (the book's primary protocol): per-class
# F1, mean F1 and mIoU over the evaluated classes (macro averages), overall accuracy,
# boundary F1 and calibration error. With several seeds: mean ± standard deviation.

# %%
ds = ch.write_results()
gains = efm_analysis.stage_gains(ds)
order = [m for m in efm_analysis.stage_methods(archs, stages) if m in ds["method"].values]
display(summary_table(ds, protocol="eroded",
                      metrics=("f1", "iou", "oa", "weighted_iou", "boundary_f1", "ece"))
        .reindex(order))

# %% [markdown]
# The same on the full (non-eroded) ground truth:

# %%
display(summary_table(ds, protocol="full", metrics=("f1", "iou", "oa", "weighted_iou"))
        .reindex(order))

# %% [markdown]
# ### Beside the paper (Tables 1-2)
#
# The paper's numbers are support-weighted averages over its seven classes (recall equals
# accuracy in every row), so its "IoU" is not the ISPRS mIoU. We compute the same
# quantities from our confusion matrices (full ground truth, evaluated classes): accuracy,
# and precision, recall, IoU and F1 averaged with the class supports as weights. The
# paper's data are a private set of 512 × 512 aerial RGB images; ours are stated at the top
# of this chapter. Compare the *gains between stages*, not the levels.

# %%
display(efm_analysis.paper_style_table(ds, protocol="full").round(2))

# %% [markdown]
# ### What the stages gain
#
# Gains in points, paired by seed (mean, and standard deviation where there are several
# seeds). `weighted IoU` is the paper's metric (full ground truth); `mIoU`, `mean F1` and
# `OA` follow the ISPRS protocol (eroded ground truth). The last column is the paper's IoU
# gain over its baseline. **"fine-tune - control" is the gain attributable to EFM.**

# %%
display(efm_analysis.format_gains(gains))
bars = gains[["weighted IoU", "weighted IoU sd", "paper IoU"]].rename(
    columns={"weighted IoU": "ours", "weighted IoU sd": "ours sd", "paper IoU": "paper"})
fig = efm_plots.gain_bars(bars, ylabel="weighted IoU gain (points)")
plt.show()

# %% [markdown]
# ## The maps over training
#
# The EFM, the normalised entropy and the error map of the first validation scene (a crop),
# at every refresh of stage 2 and after its last epoch, first seed. These validation maps
# never weight the training loss; they show what the cached training maps look like.

# %%
scene0 = ch.data.val[0]
monitors = {}
for arch in archs:
    for stage in ("efm", "ft"):
        monitors[(arch, stage)] = efm_methods.load_monitor(stage_runs[(arch, s0)][stage].path)
for arch in archs:
    snaps = monitors[(arch, "efm")]
    if snaps is None:
        print(f"{arch}: the stage-2 run kept no monitoring maps")
        continue
    h, w = snaps["labels"].shape
    fig = efm_plots.efm_evolution(snaps, classes=classes,
                                  image=plots.false_colour(scene0)[:h, :w],
                                  title=f"{arch}: stage 2 (+EFM)")
    plt.show()

# %% [markdown]
# The difference between the first and the last map (start - end): red where pixels were
# hard at the first refresh and are easy at the end, blue where they became harder. Stage 2
# from its first refresh to its end, and stage 3 from the stage-2 model to its end.

# %%
for arch in archs:
    for stage, what in (("efm", "stage 2"), ("ft", "stage 3 (fine-tune)")):
        snaps = monitors[(arch, stage)]
        if snaps is not None and len(snaps["epoch"]) >= 2:
            fig = efm_plots.efm_difference(snaps, title=f"{arch}: {what}")
            plt.show()

# %% [markdown]
# ### The weight the loss puts on each pixel
#
# For the same crop: the boundary weight $W_b$, the last EFM of stage 2 and the final
# weight $W$ of eq. 9 (the maps and the weights come from the library's loss).

# %%
arch = archs[0]
snaps = monitors[(arch, "efm")]
if snaps is not None:
    run = stage_runs[(arch, s0)]["efm"]
    kw = run.loss_kwargs
    loss = EFMLoss(classes.num_classes, focus_alpha=kw["efm_focus_alpha"],
                   focus_beta=kw["efm_focus_beta"], boundary_gamma=kw["efm_boundary_gamma"])
    target = torch.from_numpy(snaps["labels"].astype(np.int64))[None]
    efm_last = torch.from_numpy(snaps["efm"][-1].astype(np.float32))[None]
    wb = loss.pixel_weights(target, None)[0].numpy()
    wt = loss.pixel_weights(target, efm_last)[0].numpy()
    fig = efm_plots.weight_decomposition(
        {"ground truth": plots.label_image(snaps["labels"], classes), "W_b (boundary)": wb,
         f"EFM (epoch {snaps['epoch'][-1]:g})": efm_last[0].numpy(), "W = W_b (1 + α EFM^β)": wt},
        title=f"{arch}: pixel weights at the end of stage 2")
    plt.show()

# %% [markdown]
# ### Predictions
#
# The first validation scene: ground truth and the prediction of each stage (first seed).

# %%
for arch in archs:
    maps = {r.method.removeprefix("efm_"): r.evaluation.maps[scene0.name] for r in ch.records
            if r.seed == s0 and r.method.startswith(f"efm_{arch}")}
    fig = plots.prediction_gallery(maps, classes, image=plots.false_colour(scene0))
    plt.show()

# %% [markdown]
# ## Summary

# %%
paper_gain = reported_efm.efm_paper_gains("IoU")
n_seeds = len(ch.seeds)
lines = []
for arch in archs:
    lines.append(
        f"- **{arch.upper() if arch == 'fpn' else 'PSPNet'}**, weighted IoU (full GT): +EFM "
        f"over baseline {efm_analysis.format_gain(gains, arch, '+EFM - baseline', 'weighted IoU')} points, fine-tune "
        f"over baseline {efm_analysis.format_gain(gains, arch, 'fine-tune - baseline', 'weighted IoU')} (paper "
        f"{paper_gain[arch]['efm']:+.2f} and {paper_gain[arch]['ft']:+.2f}); the control "
        f"alone gains {efm_analysis.format_gain(gains, arch, 'control - baseline', 'weighted IoU')}, so the gain "
        f"attributable to EFM (fine-tune - control) is "
        f"**{efm_analysis.format_gain(gains, arch, 'fine-tune - control', 'weighted IoU')}** points weighted IoU, "
        f"**{efm_analysis.format_gain(gains, arch, 'fine-tune - control', 'mIoU')}** points mIoU and "
        f"{efm_analysis.format_gain(gains, arch, 'fine-tune - control', 'OA')} points OA (ISPRS protocol, eroded GT).")
lines.append(
    f"- {n_seeds} seed(s)" + (": no spread is measured, so differences of the size of the "
                             "seed-to-seed variation cannot be told from noise (run with "
                             "more `seeds`)" if n_seeds < 2 else "") +
    f"; profile `{profile}` on {ch.hardware}; training took {ch.wall.get('train', 0):.0f} s "
    f"and evaluation {ch.wall.get('evaluate', 0):.0f} s in this run.")
display(Markdown("\n".join(lines)))
