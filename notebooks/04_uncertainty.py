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
# # MC-dropout uncertainty maps
#
# **Overview.** Kampffmeyer et al. {cite:p}`kampffmeyer2016` keep dropout switched on at
# test time {cite:p}`gal2016` and read the spread of $T$ stochastic predictions as an
# uncertainty map. They show that the uncertain pixels are mostly the wrong ones: once the
# most uncertain third of the pixels is rejected, the FCN's overall accuracy (OA) on the rest
# is far above its OA on all pixels.
# This chapter draws the MC-dropout samples of the patch CNN (PB), the FCN and the FCN-MFB
# of chapters 2 and 3, shows the uncertainty maps, measures how the OA of the kept pixels
# grows as the most uncertain ones are rejected, reads the share of pixels kept at 97.5,
# 95 and 90 % OA beside the paper's figures, compares the MC-mean prediction with the
# ordinary one, and checks the calibration of both.
#
# **Prerequisites.** {doc}`01_data` (data and protocol), {doc}`02_patch_cnn` and
# {doc}`03_fcn_mfb` (the three networks: their trained models and their predictions are
# reused from the run store, or trained here with the same settings when absent). The
# metrics are defined on the {doc}`protocol page <../protocol>`.

# %% tags=["parameters"]
profile = "default"  # smoke | default | gpu | full
device = "auto"  # auto: CUDA when present, else CPU
dataset = "synthetic"  # synthetic | dubai | vaihingen | potsdam
data_root = None  # None: data/<dataset> (or ../shared/data for real sets)
data_options = None  # dataset options, e.g. {"potsdam_bands": "r+g+b"} (see chapter 01)
seeds = None  # None: the profile's seeds
retrain = False  # True: train again even if the run store holds the model
# The chapter's own settings; None takes the profile's value.
members = None  # networks analysed (pb, fcn, fcn_mfb; a missing method is skipped)
mc_samples = None  # T stochastic passes (10 as in the paper)
pb_border_mode = None  # patch CNN: "reflect" (every pixel, default) or "omit" (the paper's)
uncertainty = None  # the map that ranks the pixels ("mean_class_std": the paper's)
pb_mc_scenes = None  # validation scenes (the first N) of the patch CNN's MC pass; None: all

# %% tags=["hide-input"]
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from aerialseg import chapter, plots, registry, stats
from aerialseg.display import method_name
from aerialseg.papers.kampffmeyer import analysis, reported
from aerialseg.papers.kampffmeyer import plots as k_plots
from aerialseg.papers.kampffmeyer.method import BORDER_LABELS
from aerialseg.tables import show_table, summary_table

plots.book_style()
ch = chapter.start(
    "04_uncertainty", profile=profile, device=device, dataset=dataset, seeds=seeds,
    data_root=data_root, data_options=data_options, retrain=retrain,
    settings=dict(members=members, mc_samples=mc_samples, pb_border_mode=pb_border_mode,
                  uncertainty=uncertainty, pb_mc_scenes=pb_mc_scenes))
names = registry.available_methods(ch.settings["members"])
T, kind = ch.settings["mc_samples"], ch.settings["uncertainty"]
border = ch.settings["pb_border_mode"]
classes = ch.data.classes
n_val = len(ch.data.val)
n_pb = ch.settings["pb_mc_scenes"]
pb_subset = "pb" in names and n_pb is not None and n_pb < n_val
tag = f"{n_pb} scenes" if pb_subset else ""
# each network's id in the results (the patch CNN's names its border mode)
labels = {n: BORDER_LABELS[border] if n == "pb" else n for n in names}
mc_ids = {n: f"{labels[n]} (MC mean)" + (f" [{tag}]" if n == "pb" and pb_subset else "")
          for n in names}

# %% [markdown]
# ## MC dropout and four uncertainty maps
#
# With dropout active and batch normalisation on its running statistics, $T$ passes give
# softmax outputs $p_t(x)$. The paper's map is the *mean-class uncertainty*, the mean over
# the $C$ classes of the per-class standard deviation,
#
# $$ \sigma_c(x) = \sqrt{\tfrac{1}{T}\textstyle\sum_t \big(p_{t,c}(x) - \bar p_c(x)\big)^2},
# \qquad u(x) = \frac{1}{C}\sum_c \sigma_c(x), \qquad
# \bar p(x) = \frac{1}{T}\sum_t p_t(x). $$
#
# Three standard alternatives are computed from the same samples: the standard deviation of
# the predicted class alone, the predictive entropy $H[\bar p] = -\sum_c \bar p_c \log \bar
# p_c$, and the mutual information $H[\bar p] - \frac1T \sum_t H[p_t]$, the part of the
# entropy due to disagreement between the dropout samples (model uncertainty). The *MC mean*
# prediction is the argmax of $\bar p$; the ordinary, *deterministic* prediction uses
# eval-mode dropout (weight scaling). The {ref}`protocol page <protocol-uncertainty>` gives
# the curves' definitions.
#
# *From the paper:* dropout kept on at test time, $T = 10$ passes, the mean-class standard
# deviation as the uncertainty, the accuracy of the pixels kept below an uncertainty
# threshold and the share kept at a target accuracy (its Figs. 6-7, for the FCN).
# *Reconstructed* (not stated in the paper): the population standard deviation (divide by
# $T$), batch normalisation on its running statistics during the passes, thresholds on the
# uncertainty scaled to $[0, 1]$ over the whole validation set, and the MC mean as the
# prediction whose errors are counted. The entropy, the mutual information and the
# calibration check are ours.

# %% [markdown]
# ## One MC pass per model and scene
#
# Each network is evaluated with $T$ dropout passes over the validation scenes. The same
# pass yields the deterministic prediction (the trunk runs once for both), so the ordinary
# scores come from it too, or from the predictions chapters 2 and 3 kept in the run store.
# The patch CNN classifies the $65\times65$ patch around every pixel: its MC pass is far
# slower than the FCNs' (see the costs in the results), so the `pb_mc_scenes` setting may
# limit its *uncertainty analysis* to the first validation scenes (the default profile
# does). Its scores in the results table always use every scene; its MC-mean rows and
# curves are marked with the number of scenes they cover.

# %%
coverage = analysis.SceneCoverage(kinds=(kind,))
pb_ch = analysis.scene_subset(ch, n_pb) if pb_subset else ch
ch.add_pixel_baseline()
for seed in ch.seeds:
    for name in names:
        run = ch.train(name, seed)
        on = pb_ch if name == "pb" else ch
        # the MC pass: T samples and the deterministic output of the same pass
        on.evaluate(run, label=f"{labels[name]} (MC mean)", border_mode=border,
                    mc_samples=T, prediction="mc_mean",
                    extra=coverage.recorder(mc_ids[name], seed))
        ch.evaluate(run, label=labels[name], border_mode=border, keep_maps=0)
        if on is not ch:  # the deterministic prediction on the same scenes, for pairing
            on.evaluate(run, label=labels[name], border_mode=border, keep_maps=0)

# %% tags=["hide-input"]
ds = ch.write_results()
sub = analysis.results_view(pb_ch) if pb_subset else None
view = analysis.figure_view(ds, sub, tag=tag)
scene_cov = coverage.frame()
mc_list = list(mc_ids.values())

# %% [markdown]
# ## Results

# %% tags=["remove-input"]
bands = ", ".join(b.upper() for b in ch.data.bands)
note = ("" if "car" in classes.names else
        f" This dataset has no car class and no heights: the networks see the bands {bands}, "
        "and nothing in this chapter depends on cars.")
subset_note = (f" The patch CNN's MC pass covers the first {n_pb} of the {n_val} validation "
               f"scenes ({analysis.and_join([s.name for s in ch.data.val[:n_pb]])}), for "
               "time; its scores use every scene." if pb_subset else "")
display(Markdown(ch.edition() + f" Each MC pass draws T = {T} samples." + subset_note + note))

# %% [markdown]
# The models come from chapters 2 and 3 (reused from the run store). A model that has not
# converged (its training loss still fell by 2 % or more between the last two tenths of
# training, beyond its noise, at equal difficulty of the batches drawn)
# or that scores below the per-pixel baseline is flagged in every comparison.

# %% tags=["remove-input"]
runs = ch.training_table()
runs["converged"] = [stats.converged(r.history) for r in ch.runs.values()]
show_table(runs.set_index("method"), caption="The networks analysed: training length, final "
           "training loss, whether the loss converged, and whether the model was reused "
           "from the run store.", labels={}, na="no per-step count recorded")

# %% tags=["remove-input"]
results_of = {n: sub if n == "pb" and pb_subset else ds for n in names}
mc_scenes = {n: ch.data.val[:n_pb] if n == "pb" and pb_subset else ch.data.val for n in names}
cost = pd.DataFrame.from_dict({labels[n]: {
    "deterministic": analysis.seconds_per_scene(ds, labels[n], ch.data.val),
    "MC pass": analysis.seconds_per_scene(results_of[n], f"{labels[n]} (MC mean)",
                                          mc_scenes[n])} for n in names}, orient="index")
show_table(cost, caption=(
    f"Inference seconds per validation scene on {ch.hardware} (mean over seeds): the "
    f"deterministic prediction and the MC pass of T = {T} samples (which also gives the "
    "deterministic output). A prediction reused from the run store counts the time of its "
    "first inference."), rows="method", row_header="Network",
    formats={"deterministic": "float2", "MC pass": "float2"},
    columns={"deterministic": "Deterministic (s)", "MC pass": "MC pass (s)"})

# %% tags=["remove-input"]
pb_note = (f" The patch CNN's MC mean is not in this table: its MC pass covered only the "
           f"first {n_pb} of the {n_val} validation scenes (see below)." if pb_subset else "")
order = [chapter.PIXEL_BASELINE] + [m for n in names
                                    for m in (labels[n], f"{labels[n]} (MC mean)")
                                    if m in ds["method"].values]
summary_table(ds.sel({"method": order}), caption=(
    "Scores on the validation scenes (eroded-boundary ground truth), in %: mean ± standard "
    f"deviation over seeds. *MC mean* rows predict with the mean of T = {T} dropout "
    "passes, the others with eval-mode dropout; the per-pixel baseline is the sanity "
    "reference." + pb_note))

# %% [markdown]
# ## Uncertainty maps
#
# {numref}`uncertainty-maps` shows a crop of the first validation scene (first seed): each
# network's MC-mean prediction, its errors, and two uncertainty maps on one colour scale per
# map, shared by the networks.

# %% tags=["remove-input"]
by_id = {r.method: r.evaluation.maps for r in
         ch.records + (pb_ch.records if pb_subset else []) if r.seed == ch.seeds[0]}
scene = ch.data.val[0].name
maps = {labels[n]: by_id[f"{labels[n]} (MC mean)"][scene] for n in names}
second = "mutual_info" if kind != "mutual_info" else "mean_class_std"
fig = k_plots.uncertainty_panels(maps, classes, image=plots.false_colour(ch.data.val[0]),
                                 kinds=(kind, second))
plots.show(fig, name="uncertainty-maps", caption=(
    f"Scene {scene}, top-left crop, first seed. Top: the image (first three bands) and the "
    "ground truth. One row per network: the MC-mean prediction, its errors (black: wrong, "
    f"white: right, grey: not evaluated), the {k_plots.MAP_LABELS[kind][0].lower()} "
    f"and the {k_plots.MAP_LABELS[second][0].lower()} of T = {T} passes (yellow: "
    "uncertain)."), alt=(
    "Grid of image panels: the scene and its ground truth, then for each network its "
    "predicted labels, an error mask and two uncertainty heat maps with colour bars; the "
    "uncertain pixels lie along class boundaries and on the error regions."))

# %% [markdown]
# ## Accuracy against the uncertainty threshold
#
# For a threshold $\tau$ on the uncertainty (scaled to $[0, 1]$ over the validation set),
# only the pixels with $u \le \tau$ are kept. If the uncertain pixels are the wrong ones,
# the OA of the kept pixels falls as $\tau$ grows and more uncertain pixels join
# ({numref}`uncertainty-curves`).

# %% tags=["remove-input"]
paper_cov = reported.KAMPFFMEYER_FCN_COVERAGE
fig = plots.coverage_curves(view, uncertainty=kind, threshold_panel=True, methods=mc_list,
                            paper={t: v["all_pixels"] for t, v in paper_cov.items()})
plots.show(fig, name="uncertainty-curves", caption=(
    "Left: OA of the kept pixels (solid) and the share of pixels kept (dashed) against the "
    "threshold on the scaled uncertainty. Right: OA of the kept pixels against the share "
    "kept, the least uncertain first; crosses: the paper's FCN on Vaihingen (all pixels). "
    "Mean over seeds." + (f" The patch CNN's curve covers the first {n_pb} validation "
                          "scenes." if pb_subset else "")), alt=(
    "Two line plots. Left: accuracy of kept pixels and fraction kept against the "
    "uncertainty threshold, one colour per network. Right: accuracy against the fraction of "
    "pixels kept, falling from near 100 percent towards the overall accuracy, with three "
    "crosses for the paper's FCN."))

# %% [markdown]
# ### Coverage at a target accuracy, beside the paper
#
# The largest share of the evaluated pixels whose OA reaches 97.5, 95 and 90 %, using every
# distinct uncertainty value as a threshold. The paper's figures are for its FCN on
# Vaihingen; its text suggests they may be for a single tile (area 30) rather than the whole
# validation set, so ours are read both ways: on the whole validation set, and on each scene
# alone (median and range over the scenes and seeds). A model whose OA is already above a
# target keeps 100 %; one that never reaches it keeps 0 %.

# %% tags=["remove-input"]
show_table(analysis.coverage_table(view, scene_cov, mc_list, kind=kind, paper=paper_cov),
           caption=(f"Pixels kept (%) when the most uncertain are rejected until the OA of "
                    f"the rest reaches the target ({k_plots.MAP_LABELS[kind][0].lower()}, MC "
                    "mean, eroded-boundary ground truth). Whole set: mean ± standard "
                    "deviation over seeds; per scene: median [lowest, highest]."),
           rows=None, row_header="Network and reading")

# %% [markdown]
# Which map ranks the errors last? The same reading on the whole set for each of the four
# maps (mean over seeds):

# %% tags=["remove-input"]
kinds = [str(k) for k in view["uncertainty"].values]
show_table(analysis.uncertainty_kind_table(view, mc_list, kinds),
           caption="Pixels kept (%) at each target OA, whole validation set, for each "
                   "uncertainty map (MC mean prediction; mean over seeds).",
           rows=None, row_header="Network and target",
           columns={k: k_plots.MAP_LABELS[k][0] for k in kinds}, percent=True)

# %% [markdown]
# ## MC mean against the deterministic prediction
#
# The paper cites that averaging MC samples predicts better than weight scaling
# {cite:p}`gal2016` but reports no numbers of its own. The change (MC mean − deterministic)
# is paired: the same model, seed and pixels; its 95 % interval comes from the study's
# bootstrap over seeds and spatial blocks ({ref}`protocol-statistics`). ECE is not a
# function of the confusion matrix, so it is shown as mean ± standard deviation over seeds.

# %% tags=["remove-input"]
pairs = [(sub if n == "pb" and pb_subset else ds, labels[n], f"{labels[n]} (MC mean)",
          f"first {n_pb}" if n == "pb" and pb_subset else f"all {n_val}") for n in names]
mc_det = analysis.mc_vs_deterministic(pairs)
show_table(mc_det, caption=(
    "MC mean against the deterministic prediction of each network, eroded-boundary ground "
    "truth: paired change in points with its 95 % interval over "
    f"{len(ch.seeds)} seed{'s' if len(ch.seeds) > 1 else ''} and the spatial blocks, and the "
    "ECE of both (%, mean ± standard deviation over seeds)."),
    rows="method", row_header="Network")

# %% [markdown]
# ## Calibration
#
# A calibrated model is right on 80 % of the pixels it labels with confidence 0.8
# ({ref}`protocol-ece`). {numref}`uncertainty-reliability` shows the reliability diagrams of
# the deterministic predictions (top row) and of the MC means (bottom row), first seed.

# %% tags=["remove-input"]
fig = plots.reliability_diagrams(view, methods=[labels[n] for n in names] + mc_list,
                                 max_cols=len(names))
plots.show(fig, name="uncertainty-reliability", caption=(
    "Reliability diagrams, eroded-boundary ground truth, first seed: accuracy of the pixels "
    "in each of 15 confidence bins against the bin's confidence (dotted: perfect "
    "calibration; bars under it: over-confidence), with the ECE in each title. Top: "
    "deterministic; bottom: MC mean."), alt=(
    "Grid of bar charts of accuracy against confidence, one per network and prediction "
    "type, with the diagonal of perfect calibration and the expected calibration error in "
    "each panel title."))

# %% [markdown]
# ## Summary

# %% tags=["summary"]
and_join = analysis.and_join
targets = sorted((float(t) for t in view["target"].values), reverse=True)
cov_at = view["coverage_at"].sel(uncertainty=kind)
kept = {n: " / ".join(
    f"{100 * np.nanmean(cov_at.sel({'method': mc_ids[n], 'target': t}).values):.1f}"
    for t in targets) for n in names}
target_text = " / ".join(f"{100 * t:g}" for t in targets)
paper_pts = " / ".join(f"{paper_cov[t]['all_pixels']:.1f}" for t in targets)
overall = {n: 100 * float(np.nanmean(results_of[n]["scores"].sel(
    {"method": f"{labels[n]} (MC mean)", "protocol": "eroded", "class": "overall",
     "metric": "oa"}).values)) for n in names}
two_thirds = {n: 100 * analysis.accuracy_at_coverage(view, mc_ids[n], 2 / 3, kind=kind)
              for n in names}
lines = [
    f"We drew T = {T} MC-dropout passes of {and_join([method_name(labels[n]) for n in names])} "
    f"over the {n_val} validation scene{'s' if n_val > 1 else ''}"
    + (f" ({n_pb} for the patch CNN's uncertainty analysis)" if pb_subset else "") + "."]
for n in names:
    d = mc_det.loc[labels[n]]
    lines.append(
        f"**{method_name(labels[n])}.** Keeping the two thirds least uncertain pixels gives "
        f"an OA of {two_thirds[n]:.1f} % against {overall[n]:.1f} % on all pixels; "
        f"{kept[n]} % of the pixels are kept at {target_text} % OA (the paper's FCN on "
        f"Vaihingen: {paper_pts} %). The MC mean "
        f"changes OA by {d['Δ OA (points)']} points (95 % interval in brackets) and the ECE "
        f"from {d['ECE, deterministic (%)']} to {d['ECE, MC mean (%)']} %.")
better = [method_name(labels[n]) for n in names if two_thirds[n] > overall[n]]
worse = [method_name(labels[n]) for n in names if not two_thirds[n] > overall[n]]
lines.append(
    (f"For {and_join(better)}, the uncertain pixels are mostly the wrong ones: rejecting "
     "them raises the OA of the rest, as the paper observes. " if better else "")
    + (f"For {and_join(worse)}, rejecting the uncertain pixels does not raise the OA of the "
       "rest. " if worse else "")
    + "Our data and training budget differ from the paper's (stated at the top of the "
    "results), so the shares kept are not expected to match its values; the paper reports "
    "curves rather than a comparison, so this chapter judges no claim.")
display(Markdown("\n\n".join(lines)))
