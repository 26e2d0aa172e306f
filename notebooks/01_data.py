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
# # The data and the evaluation protocol
#
# **Overview.** Every method in this book is trained and evaluated on the same scenes with
# the same metric code. This chapter shows the data (the embedded synthetic default, or a
# real dataset such as the Dubai aerial set), how it is split, its class imbalance, how much
# of the class information a single pixel carries (the *per-pixel baseline* every model must
# beat, here compared with real imagery), and the evaluation protocol: one confusion matrix
# accumulated over every evaluated pixel of the validation scenes, class boundaries eroded
# as in the ISPRS benchmark. The metrics themselves are defined once, on the
# {doc}`../protocol` page.
#
# **Prerequisites.** None. The synthetic data are generated on first use (a few seconds);
# real datasets are read from `data/` (see {doc}`../rerun`).

# %% tags=["parameters"]
profile = "default"  # smoke | default | gpu | full
device = "auto"  # auto: CUDA when present, else CPU
dataset = "synthetic"  # synthetic | dubai | vaihingen | potsdam | loveda
data_root = None  # None: data/<dataset> (or ../shared/data for real sets)
data_options = None  # dataset options, e.g. {"synthetic_size": 1024} or {"val_tiles": [5, 6]}
seeds = None  # unused here (nothing is trained); kept so every chapter takes the same parameters
retrain = False  # unused here (nothing is trained)

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from aerialseg import chapter, diagnostics, display as names, plots
from aerialseg.compare import dataset_name
from aerialseg.metrics import ConfusionMatrix, scores
from aerialseg.papers.kampffmeyer import reported
from aerialseg.tables import show_table

plots.book_style()
ch = chapter.start("01_data", profile=profile, device=device, dataset=dataset, seeds=seeds,
                   data_root=data_root, data_options=data_options, retrain=retrain)
classes = ch.data.classes
data_label = dataset_name(dataset)
display(Markdown(ch.edition()))

# %% [markdown]
# ## The scenes
#
# The ISPRS Vaihingen benchmark {cite:p}`isprs_vaihingen` provides 9 cm false-colour
# orthophotos (near infrared, red, green), a digital surface model (DSM) and its normalised
# version (nDSM, height above ground), with six classes: impervious surfaces, building, low
# vegetation, tree, car and clutter. The **embedded default** imitates it: a seeded
# generator draws streets, buildings, gardens, trees, parked cars and clutter, renders the
# five bands with texture, shadows and sensor noise, and writes them in the Vaihingen file
# layout, so one reader serves both. Roofs are drawn in the same colours as roads and trees
# in the same infrared as lawns on purpose: height separates them, with exceptions (raised
# lawns, low flat roofs). Labels are jittered by 1-2 px at boundaries, as real hand labels
# are.
#
# The **Dubai aerial set** {cite:p}`dubai_dataset` is real imagery: RGB orthophotos of Dubai
# in 6 tiles of 9 parts each, labelled with five classes (building, land, road, vegetation,
# water) plus *unlabeled*, which is ignored. It has no near infrared, no heights and no car
# class, so the claims of the papers about cars cannot be tested on it.

# %% tags=["remove-input"]
fig = plots.show_scenes(ch.data.train, max_scenes=2)
bands = "-".join(b.upper() for b in ch.data.bands[:3])
plots.show(fig, name="data-scenes",
           caption=f"The first two training scenes of the {data_label} data: the image "
                   f"({bands} as red-green-blue)"
                   + (", the height above ground (nDSM)" if "ndsm" in ch.data.bands else "")
                   + " and the labels in the class colours of the legend.",
           alt=f"Two rows of panels, one per training scene: the {bands} image"
               + (", a height map with its colour bar in metres" if "ndsm" in ch.data.bands
                  else "")
               + " and the label map, with a legend of the class colours below.")

# %% [markdown]
# ## The split and the class shares
#
# Training and validation scenes never overlap: a synthetic scene, an ISPRS tile or a Dubai
# tile is either trained on or evaluated on, never both, and no model is selected on the
# validation scenes (every model trains for a fixed budget).

# %% tags=["remove-input"]
tiles = diagnostics.split_tiles(ch.data)
if dataset == "dubai":
    from aerialseg.data.dubai import dubai_split_tiles, dubai_tiles
    from aerialseg.data.registry import dataset_root

    split = dubai_split_tiles(list(dubai_tiles(dataset_root(ch.data.cfg))), ch.data.cfg.val_tiles)
    listed = {k: ", ".join(map(str, v[:-1])) + (" and " if len(v) > 1 else "") + str(v[-1])
              for k, v in split.items()}
    text = (f"The Dubai split goes by whole tiles: Tile{'s' if len(split['val']) > 1 else ''} "
            f"{listed['val']} {'are' if len(split['val']) > 1 else 'is'} the validation "
            f"tile{'s' if len(split['val']) > 1 else ''} and Tiles {listed['train']} are "
            "trained on. A tile's parts are neighbouring pieces of one image, so no part of a "
            "validation tile is ever trained on. ")
    if ch.data.cfg.max_scenes is not None:
        used = {k: ", ".join(t.replace("tile", "") for t in v) for k, v in tiles.items()}
        text += (f"The `{profile}` profile keeps the first {ch.data.cfg.max_scenes} parts of "
                 f"each split (interleaved across its tiles): {len(ch.data.train)} training "
                 f"parts of Tiles {used['train']} and {len(ch.data.val)} validation parts of "
                 f"Tiles {used['val']}")
    else:
        text += (f"The `{profile}` profile uses every part: {len(ch.data.train)} training "
                 f"and {len(ch.data.val)} validation parts")
    size = ch.data.cfg.max_size
    text += (f", each cropped to at most {size} × {size} px." if size else ".")
else:
    text = (f"The `{profile}` profile has {len(ch.data.train)} training and "
            f"{len(ch.data.val)} validation scenes of the {data_label} data "
            f"({sum(s.labels.size for s in ch.data.train) / 1e6:.2f} and "
            f"{sum(s.labels.size for s in ch.data.val) / 1e6:.2f} Mpx).")
display(Markdown(text))

# %% tags=["remove-input"]
shares = ch.data.class_shares()
table = shares.rename(index={"(ignored)": "ignored (no label)"})
show_table(table[["train_share", "val_share", "train_pixels", "val_pixels"]],
           caption=f"Class shares per split of the {data_label} data (`{profile}` profile): "
                   "share of the pixels of the split (%) and pixel counts.",
           rows="class", row_header="Class", percent=["train_share", "val_share"],
           formats={"train_pixels": "int", "val_pixels": "int"},
           labels={}, columns={"train_share": "Training (%)", "val_share": "Validation (%)",
                               "train_pixels": "Training (pixels)",
                               "val_pixels": "Validation (pixels)"}, split=None)

# %% tags=["remove-input"]
fig = plots.class_shares({"Training": shares.loc[list(classes.names), "train_share"].values,
                          "Validation": shares.loc[list(classes.names), "val_share"].values},
                         classes)
plots.show(fig, name="data-class-shares",
           caption="Share of the pixels of each class in the training and the validation "
                   "split.",
           alt="Grouped bars: for each class, its share of the training and of the "
               "validation pixels in percent.")

# %% tags=["remove-input"]
car = classes.names.index("car") if "car" in classes.names else None
lines = []
if car is not None:
    n_cars = diagnostics.count_objects(ch.data.val, car)
    lines.append(f"Cars are {100 * shares.loc['car', 'val_share']:.1f} % of the validation "
                 f"pixels: **{n_cars} cars** (connected regions of at least 30 px) in the "
                 "validation scenes. Every car score of the book rests on them.")
else:
    n_cars = 0
    lines.append(f"The {data_label} data have no car class: the claims of the papers about "
                 "cars are untestable on them.")
rare = shares.loc[[classes.names[i] for i in classes.evaluated], "val_share"].idxmin()
lines.append(f"The rarest evaluated class of the validation split is "
             f"{names.class_name(rare).lower()} "
             f"({100 * shares.loc[rare, 'val_share']:.1f} % of its pixels). How precisely "
             "the validation set pins down each class's F1 (the width of its 95 % interval "
             "for the trained models) is shown in the comparison chapter (chapter 10).")
display(Markdown(" ".join(lines)))

# %% [markdown]
# ## The per-pixel baseline
#
# How much of the class information does a single pixel carry? A multinomial logistic
# regression on the band values of single pixels (a sample of training pixels; heights
# centred per scene) classifies every validation pixel on its own, without looking at its
# neighbours, and is scored by the same protocol as the networks. Every chapter records it
# as the row *Per-pixel baseline* of its tables: a network that does not beat it has not
# learned anything a pixel could not tell, and takes part in no verdict (see
# {ref}`protocol-statistics`).
#
# To see whether the synthetic scenes are easier than real imagery, the same baseline runs
# on the real samples: a 512-px clip of ISPRS Vaihingen area 1 (IR-R-G only, the
# mmsegmentation layout) and the Dubai set (RGB), next to the synthetic data on the same
# bands (IR-R-G) and on all five. Besides OA and mean F1 the table gives the **balanced
# accuracy**, the unweighted mean of the per-class recalls ({ref}`protocol-per-class`) over
# the evaluated classes: it does not depend on how common each class is, so datasets with
# different class shares can be compared.

# %% tags=["remove-input"]
with ch.phase("baseline"):
    context = diagnostics.pixel_baseline_context(ch.data, dataset=dataset, profile=profile)
labels = {"synthetic": "Synthetic", "vaihingen crop": "Vaihingen (real clip)",
          "dubai": "Dubai (real)"}
shown = context.assign(data=[labels.get(d, d) for d in context["data"]])
show_table(shown, caption="The per-pixel baseline on the synthetic data and on the real "
                          "samples (eroded protocol, evaluated classes; %).",
           rows=None, index=False, percent=["oa", "mean_f1", "balanced_accuracy"],
           columns={"data": "Data", "bands": "Bands", "evaluated on": "Evaluated on",
                    "oa": "OA", "mean_f1": "Mean F1",
                    "balanced_accuracy": "Balanced accuracy"}, split=None)

# %% tags=["remove-input"]
lines = diagnostics.pixel_baseline_sentences(context)
missing = [d for d, _ in context.attrs["skipped"]]
if missing:
    lines.append("The real samples ("
                 + " and ".join(labels.get(d, d) for d in missing)
                 + ") are not on this machine (they lie in the shared data folder beside the "
                 "checkout on the project's machines), so their rows are left out and the "
                 "comparison with real imagery cannot be made here.")
display(Markdown(" ".join(lines)))

# %% [markdown]
# The baseline's most frequent confusions show which classes a single pixel cannot tell
# apart; on the synthetic data they are the ones the generator makes hard on purpose (roofs
# and roads, trees and lawns), and the ones height separates.

# %% tags=["remove-input"]
base = diagnostics.per_pixel_baseline(ch.data)
cm = base.confusion["eroded"].astype(float)
rate = cm / np.maximum(cm.sum(1, keepdims=True), 1)
pairs = sorted(((rate[t, p], t, p) for t in classes.evaluated for p in range(len(classes.names))
                if p != t and cm[t].sum() > 0), reverse=True)[:5]
show_table(pd.DataFrame([{"Truth": names.class_name(classes.names[t]),
                          "Predicted as": names.class_name(classes.names[p]),
                          "Share of the true class": r} for r, t, p in pairs]),
           caption=f"The five most frequent confusions of the per-pixel baseline on "
                   f"the {data_label} data ({diagnostics.band_names(base.bands)}; share of the "
                   "validation pixels of the true class, %).",
           rows=None, percent=["Share of the true class"], split=None)

# %% [markdown]
# ## Cars
#
# On the synthetic data (as in Vaihingen) cars are small, elongated objects, about 2 × 4.5 m,
# i.e. 20 × 45 px at 9 cm, often parked close together; the patch-based CNN and the class
# balancing methods are about them.

# %% tags=["remove-input"]
if car is not None:
    ext = np.concatenate([diagnostics.object_extents(s.labels, car)
                          for s in ch.data.train + ch.data.val])
    if len(ext):
        fig, ax = plt.subplots(figsize=(4.5, 3.5))
        ax.scatter(ext[:, 0], ext[:, 1], s=8, alpha=0.6)
        ax.set_xlabel("Car width (px)")
        ax.set_ylabel("Car length (px)")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        plots.show(fig, name="data-car-sizes",
                   caption=f"Width and length of the {len(ext)} cars of both splits, "
                           f"measured along each car's axes; the median car is "
                           f"{np.median(ext[:, 0]):.0f} × {np.median(ext[:, 1]):.0f} px.",
                   alt="Scatter plot of car length against car width in pixels, one dot "
                       "per car.")
else:
    display(Markdown(f"*The {data_label} data have no car class: nothing to show here.*"))

# %% [markdown]
# ## The evaluation protocol
#
# Every number of the book is computed by one code path from one confusion matrix per
# evaluated run; the {doc}`../protocol` page defines each of them:
#
# - **pooling**: one confusion matrix over every evaluated pixel of every validation scene,
#   never a mean of per-scene scores ({ref}`protocol-pooling`);
# - **per-class scores**: precision, recall, F1 and IoU of each evaluated class
#   ({ref}`protocol-per-class`);
# - **overall scores**: overall accuracy (OA), mean F1 and mIoU (unweighted means over the
#   evaluated classes), and the support-weighted F1 and IoU ({ref}`protocol-overall`);
# - **eroded boundaries**, the primary protocol, and the full ground truth, the secondary
#   one ({ref}`protocol-eroded`);
# - **boundary F1**, how well predicted class borders match the true ones
#   ({ref}`protocol-boundary-f1`);
# - **calibration**: the expected calibration error (ECE) and reliability diagrams
#   ({ref}`protocol-ece`);
# - **uncertainty maps** from MC dropout and accuracy against rejected pixels
#   ({ref}`protocol-uncertainty`);
# - **is a difference real?** The paired bootstrap over seeds and spatial blocks, its 95 %
#   interval and the four verdicts (supported, contradicted, inconclusive, untestable)
#   ({ref}`protocol-statistics`).
#
# Clutter (ISPRS) is not evaluated, as in the papers. Reference labels are uncertain at class
# boundaries, so the eroded protocol scores only the pixels that survive an erosion of their
# class mask by a disk of radius 3 px (the image border is not a boundary):

# %% tags=["remove-input"]
share = diagnostics.eroded_share(ch.data.val)
fig = plots.eroded_mask_figure(ch.data.val[0])
fig.axes[1].set_title("Evaluated pixels (eroded)")
plots.show(fig, name="data-eroded-protocol",
           caption=f"A crop of the validation scene {ch.data.val[0].name}: its labels (left) "
                   "and the pixels the eroded protocol scores (right; black: left out). Over "
                   f"all validation scenes the eroded protocol scores {100 * share:.1f} % of "
                   "the labelled pixels of evaluated classes.",
           alt="Two label maps side by side: the full labels, and the same labels with a "
               "black band along every class boundary where pixels are not scored.")

# %% tags=["remove-input"]
display(Markdown(f"The eroded protocol thus scores **{100 * share:.1f} %** of the labelled "
                 "validation pixels of evaluated classes; the full ground truth scores all of "
                 "them."))

# %% [markdown]
# **A known-answer check.** The metric code recomputes the mean F1 of Kampffmeyer et al.'s
# Table 1 {cite:p}`kampffmeyer2016` from its per-class F1 values (the printed numbers are in
# `aerialseg.papers.kampffmeyer.reported`).

# %% tags=["remove-input"]
rows = {}
for m, row in reported.KAMPFFMEYER_TABLE1.items():
    rows[m] = {"Printed mean F1": row["mean_f1"],
               "Mean of the printed F1 values": float(np.mean([row[c]
                                                               for c in reported.ISPRS5]))}
check = pd.DataFrame(rows).T
check["Agree"] = (check["Printed mean F1"] - check["Mean of the printed F1 values"]).abs() < 0.01
show_table(check, caption="Kampffmeyer et al. 2016, Table 1: the printed mean F1 against the "
                          "mean of the five printed per-class F1 values (%).",
           rows="method", points=["Printed mean F1", "Mean of the printed F1 values"],
           formats={"Printed mean F1": "float2", "Mean of the printed F1 values": "float2"},
           split=None)

# %% tags=["remove-input"]
wrong = check[~check["Agree"]]
text = ("Every printed mean agrees with its per-class values." if wrong.empty else
        " ".join(f"The {names.method_name(m)} mean printed as {r['Printed mean F1']:.2f} is "
                 f"{r['Mean of the printed F1 values']:.2f} by the paper's own per-class "
                 "values, a typo that the comparison tables of this book correct."
                 for m, r in wrong.iterrows()))
ok = [names.method_name(m) for m in check.index[check["Agree"]]]
if ok and not wrong.empty:
    text = f"{' and '.join(ok)} agree with their printed means. " + text
# one matrix pooled over two scenes against the mean of per-scene scores (toy example)
big, small = ConfusionMatrix(2), ConfusionMatrix(2)
big.update(np.array([0] * 90 + [1] * 10), np.array([0] * 90 + [1] * 10))
small.update(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 0]))
pooled = scores((big + small).matrix, (0, 1))["mean_f1"]
per_scene = np.mean([scores(c.matrix, (0, 1))["mean_f1"] for c in (big, small)])
text += (f" Why pooling matters, on a toy example of a large scene predicted perfectly and a "
         f"4-pixel scene half wrong: one pooled matrix gives a mean F1 of "
         f"{100 * pooled:.1f} %, the mean of the two per-scene scores {100 * per_scene:.1f} %, "
         "as if the tiny scene weighed as much as the large one.")
display(Markdown(text))

# %% [markdown]
# ## Summary

# %% tags=["summary"]
with ch.phase("diagnostics"):
    summary = diagnostics.dataset_summary(ch.data.train, ch.data.val)
summary["eroded_share"] = share
summary["val_objects_car"] = n_cars
for col in ("oa", "mean_f1", "balanced_accuracy"):
    summary[f"baseline_{col}"] = ("context", context[col].to_numpy(float))
summary = summary.assign_coords(context=[f"{d} {b}" for d, b in zip(context["data"],
                                                                     context["bands"],
                                                                     strict=True)])
ds = ch.write_summary(summary)
lines = [f"This chapter described the {data_label} data of the `{profile}` profile: "
         f"{len(ch.data.train)} training and {len(ch.data.val)} validation scenes"
         + (f" (validation tiles {listed['val']})" if dataset == "dubai" else "")
         + f". The rarest evaluated class, {names.class_name(rare).lower()}, is "
         f"{100 * shares.loc[rare, 'val_share']:.1f} % of the validation pixels"
         + (f"; the validation scenes hold {n_cars} cars." if car is not None else
            "; there is no car class.")]
own = context[context["data"] == dataset]
if len(own):
    best = own.sort_values("balanced_accuracy").iloc[-1]
    lines.append(f"The per-pixel baseline, the floor every trained model must clear, reaches "
                 f"{100 * best['oa']:.1f} % OA and {100 * best['mean_f1']:.1f} % mean F1 on "
                 f"its {best['bands']} bands.")
lines += [t for t in diagnostics.pixel_baseline_sentences(context) if t.startswith("So ")]
lines.append(f"Scores are pooled over all validation pixels; the primary, eroded protocol "
             f"scores {100 * share:.1f} % of them.")
display(Markdown(" ".join(lines)))
