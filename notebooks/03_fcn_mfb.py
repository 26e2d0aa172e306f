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
# **Overview.** Kampffmeyer et al. {cite:p}`kampffmeyer2016` label every pixel of an aerial
# tile with a fully convolutional network (FCN) and observe that cars, about 1-2 % of the
# pixels, are mostly missed. Weighting the cross-entropy by *median-frequency balancing*
# (MFB) {cite:p}`eigen2015` trades a little accuracy on the large classes for a much better
# car F1. This chapter trains both on the same data, several seeds each, and puts our
# per-class F1 and overall accuracy beside the paper's Table 1.
#
# **Prerequisites.** {doc}`01_data` (the data, the eroded-boundary protocol and the
# metrics).

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

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from aerialseg import chapter, plots
from aerialseg.losses.ce import WeightedCrossEntropy, median_frequency_weights
from aerialseg.papers.kampffmeyer import reported
from aerialseg.tables import seed_mean, summary_table

ch = chapter.start(
    "03_fcn_mfb", profile=profile, device=device, dataset=dataset, seeds=seeds,
    data_root=data_root, data_options=data_options, retrain=retrain,
    overrides=dict(epochs=epochs, batch_size=batch_size, samples_per_epoch=samples_per_epoch,
                   crop_size=crop_size, lr=lr, widths=widths, dropout_p=dropout_p,
                   mfb_frequency=mfb_frequency))
classes = ch.data.classes

# %% [markdown]
# ## The network
#
# The FCN has four sets of two $3\times3$ convolutions; a $2\times2$ max-pooling separates the
# sets and the very first convolution has stride 2, so the output stride is 16. Each
# convolution is followed by ReLU and then batch normalisation (the paper's order). A
# $1\times1$ convolution gives one score map per class and a single learnable transposed
# convolution (kernel 32, stride 16, initialised as bilinear interpolation) brings it back to
# the input size. Training uses $256\times256$ patches cut with 50 % overlap, each in its
# eight flips and rotations.
#
# *From the paper:* the layer structure, the stride-2 first layer, the ReLU-then-BN order,
# the patch size, overlap and the eight-fold augmentation, MFB. *Reconstructed* (not stated
# in the paper): the channel widths (64, 128, 256, 512), where the dropout sits (after sets 3
# and 4, $p=0.5$), the optimiser (SGD, momentum 0.9, weight decay $5\cdot10^{-4}$, lr 0.01,
# poly decay) and the number of epochs. The profile scales the widths and the training
# length down on a CPU; the resolved values are printed below.

# %%
for name in ("fcn", "fcn_mfb"):
    cfg = ch.resolve(name)
    print(f"{name:8s} model {cfg.model_kwargs}\n         loss {cfg.loss} {cfg.loss_kwargs}\n"
          f"         train {cfg.train}")

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
# above 1, frequent ones below 1. Clutter is not one of the evaluated classes: like the paper,
# we do not learn it (its pixels are ignored in training and evaluation).

# %%
train_labels = [s.training_labels(True) for s in ch.data.train]
w = median_frequency_weights(train_labels, classes.num_classes, classes=classes.evaluated,
                             mode=ch.resolve("fcn_mfb").loss_kwargs["mfb_frequency"])
counts = np.bincount(np.concatenate([lab[lab != 255].ravel() for lab in train_labels]),
                     minlength=classes.num_classes)[: classes.num_classes]
display(pd.DataFrame({"training share (%)": 100 * counts / counts.sum(), "MFB weight": w},
                     index=list(classes.names)).round(3))

# %% [markdown]
# ### A trap in the normalisation
#
# PyTorch's `cross_entropy(weight=w)` with the default mean reduction divides by
# $\sum_n w_{y_n}$, not by $N$. That makes the loss a weighted *average* whose scale no longer
# depends on how many rare pixels a batch holds, which is not the paper's equation. Our loss
# divides by $N$; on one training batch the two differ as follows.

# %%
batch_labels = torch.from_numpy(train_labels[0][:128, :128].astype(np.int64))[None]
logits = torch.randn(1, classes.num_classes, 128, 128, generator=torch.Generator().manual_seed(0))
ours = WeightedCrossEntropy(w)(logits, batch_labels)
torch_mean = torch.nn.functional.cross_entropy(
    logits, batch_labels, weight=torch.as_tensor(w, dtype=torch.float32), ignore_index=255)
print(f"divided by N (paper, ours): {ours.item():.4f}   divided by sum of weights "
      f"(torch default): {torch_mean.item():.4f}")

# %% [markdown]
# ## Training
#
# Both methods are trained with every seed; a model already in the run store (same
# configuration) is reused.

# %%
for seed in ch.seeds:
    for name in ("fcn", "fcn_mfb"):
        run = ch.train(name, seed)
        ch.evaluate(run)

# %%
fig = plots.training_curves({f"{m} seed {s}": r.history for (m, s), r in ch.runs.items()})
plt.show()

# %% [markdown]
# ## Results
#
# Scores on the validation scenes, eroded-boundary ground truth (the primary protocol): the
# F1 per class, mean F1 and mIoU over the five evaluated classes, overall accuracy (OA),
# boundary F1 and expected calibration error (ECE). With several seeds the table shows
# mean ± standard deviation.

# %%
ds = ch.write_results()
display(summary_table(ds, protocol="eroded"))

# %% [markdown]
# The same on the full (non-eroded) ground truth, the secondary protocol:

# %%
display(summary_table(ds, protocol="full"))

# %% [markdown]
# ### Beside the paper
#
# Kampffmeyer et al., Table 1 (ISPRS Vaihingen validation areas, eroded ground truth,
# F1 %). Their data are real 9 cm orthophotos of Vaihingen, ours are stated at the top of
# this chapter; compare the *direction* of the effects, not the values.

# %%
display(reported.kampffmeyer_table1(("fcn", "fcn_mfb")))
if dataset in ("synthetic", "vaihingen"):
    fig = plots.per_class_scores(ds, metric="f1", reported=reported.KAMPFFMEYER_TABLE1)
    plt.show()

# %% [markdown]
# ### Predictions
#
# The first validation scene: ground truth and the prediction of each method (first seed).

# %%
first = ch.records[0].evaluation.maps
scene_name = next(iter(first))
maps = {r.method: r.evaluation.maps[scene_name] for r in ch.records if r.seed == ch.seeds[0]}
fig = plots.prediction_gallery(maps, classes, image=plots.false_colour(ch.data.val[0]))
plt.show()
for r in ch.records:
    if r.seed == ch.seeds[0]:
        fig = plots.confusion_heatmap(r.evaluation.confusion["eroded"], classes.names,
                                      title=f"{r.method}: confusion (eroded GT, % of row)")
        plt.show()

# %% [markdown]
# ## Summary

# %%
rare = classes.names[list(classes.evaluated)[int(np.argmin(counts[list(classes.evaluated)]))]]
lines = [
    f"- Rarest evaluated class in training: **{rare}** "
    f"({100 * counts[classes.names.index(rare)] / counts.sum():.1f} % of the pixels), "
    f"MFB weight {w[classes.names.index(rare)]:.1f}.",
    f"- {rare} F1: FCN {seed_mean(ds, 'fcn', 'f1', rare):.1f} %, FCN-MFB "
    f"{seed_mean(ds, 'fcn_mfb', 'f1', rare):.1f} % (paper on Vaihingen cars: 43.0 % and 92.6 %).",
    f"- {rare} recall: FCN {seed_mean(ds, 'fcn', 'recall', rare):.1f} %, FCN-MFB "
    f"{seed_mean(ds, 'fcn_mfb', 'recall', rare):.1f} % (paper: 27.4 % and 86.6 %).",
    f"- Overall accuracy: FCN {seed_mean(ds, 'fcn', 'oa', 'overall'):.1f} %, FCN-MFB "
    f"{seed_mean(ds, 'fcn_mfb', 'oa', 'overall'):.1f} % (paper: 86.65 % and 86.48 %).",
    f"- Mean F1: FCN {seed_mean(ds, 'fcn', 'f1', 'overall'):.1f} %, FCN-MFB "
    f"{seed_mean(ds, 'fcn_mfb', 'f1', 'overall'):.1f} % (paper: 81.28 % after correcting its "
    "typo, and 90.84 %).",
    f"- Profile `{profile}` on {ch.hardware}; {len(ch.seeds)} seed(s); "
    f"training took {ch.wall.get('train', 0):.0f} s in this run.",
]
display(Markdown("\n".join(lines)))
