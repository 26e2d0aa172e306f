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
# uncertainty map. They show that the uncertain pixels are mostly the wrong ones: rejecting
# the most uncertain third of the pixels lifts the FCN's overall accuracy (OA) to 97.5 %.
# This chapter draws the MC-dropout samples for the patch CNN (PB), the FCN and the FCN-MFB,
# draws the uncertainty maps, measures the accuracy-vs-uncertainty-threshold curves and the
# coverage at 97.5 / 95 / 90 % OA beside the paper's, compares the MC-mean prediction with
# ordinary (eval-mode) dropout, and checks the calibration.
#
# **Prerequisites.** {doc}`01_data` (data, protocol, metrics), {doc}`02_patch_cnn` and
# {doc}`03_fcn_mfb` (the three networks; their trained models are reused from the run
# store, or trained here with the same settings when absent).

# %% tags=["parameters"]
profile = "default"  # smoke | default | gpu | full
device = "auto"  # auto: CUDA when present, else CPU
dataset = "synthetic"  # synthetic | dubai | vaihingen | potsdam
data_root = None  # None: data/<dataset> (or ../shared/data for real sets)
data_options = None  # dataset options, e.g. {"potsdam_bands": "rgb"} (see chapter 01)
seeds = None  # None: the profile's seeds
retrain = False  # True: train again even if the run store holds the model
members = None  # networks analysed (None: pb, fcn, fcn_mfb; a missing method is skipped)
mc_samples = None  # T stochastic passes (None: profile value; 10 as in the paper)
pb_border_mode = None  # patch CNN: "reflect" (every pixel, default) or "omit" (the paper's)
uncertainty = None  # map that ranks pixels (None: "mean_class_std", the paper's)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from aerialseg import chapter, plots, registry
from aerialseg.papers.kampffmeyer import analysis, reported
from aerialseg.papers.kampffmeyer import plots as k_plots
from aerialseg.tables import summary_table

ch = chapter.start(
    "04_uncertainty", profile=profile, device=device, dataset=dataset, seeds=seeds,
    data_root=data_root, data_options=data_options, retrain=retrain,
    settings=dict(members=members, mc_samples=mc_samples, pb_border_mode=pb_border_mode,
                  uncertainty=uncertainty))
names = registry.available_methods(ch.settings["members"])
T, uncertainty = ch.settings["mc_samples"], ch.settings["uncertainty"]
classes = ch.data.classes

# %% [markdown]
# ## MC dropout and three uncertainty maps
#
# With dropout active and BatchNorm on its running statistics, $T$ passes give softmax
# outputs $p_t(x)$. The paper's map is the *mean-class uncertainty*, the mean over the $C$
# classes of the per-class standard deviation,
#
# $$ \sigma_c(x) = \sqrt{\tfrac{1}{T}\textstyle\sum_t \big(p_{t,c}(x) - \bar p_c(x)\big)^2},
# \qquad u(x) = \frac{1}{C}\sum_c \sigma_c(x), \qquad
# \bar p(x) = \frac{1}{T}\sum_t p_t(x). $$
#
# We use the population standard deviation (divide by $T$; the paper does not say). Two
# standard alternatives are also computed: the predictive entropy
# $H[\bar p] = -\sum_c \bar p_c \log \bar p_c$, and the mutual information
# $H[\bar p] - \frac1T \sum_t H[p_t]$, the part of the entropy due to disagreement between
# the dropout samples (model uncertainty). The prediction is the argmax of $\bar p$ (*MC
# mean*); the ordinary prediction uses eval-mode dropout, i.e. weight scaling.

# %%
for seed in ch.seeds:
    for name in names:
        run = ch.train(name, seed)
        border = ch.settings["pb_border_mode"]
        ch.evaluate(run, label=name, border_mode=border, keep_maps=0)
        ch.evaluate(run, label=f"{name} (MC mean)", border_mode=border, mc_samples=T,
                    prediction="mc_mean", keep_maps=1)

# %% [markdown]
# ## Results
#
# Eroded-boundary ground truth; the `(MC mean)` rows predict with the MC mean of $T$ samples.

# %%
ds = ch.write_results()
display(summary_table(ds, protocol="eroded"))

# %% [markdown]
# ## Uncertainty maps
#
# The first validation scene (a crop), first seed: truth, MC-mean prediction, its errors
# (black) and the three uncertainty maps, each scaled to [0, 1] (dark blue: certain).

# %%
first = [r for r in ch.records if r.seed == ch.seeds[0] and r.evaluation.maps]
scene_name = next(iter(first[0].evaluation.maps))
maps = {r.method.replace(" (MC mean)", ""): r.evaluation.maps[scene_name] for r in first}
fig = k_plots.uncertainty_maps(maps, classes, image=plots.false_colour(ch.data.val[0]))
plt.show()

# %% [markdown]
# ## Accuracy against the uncertainty threshold
#
# The uncertainty is min-max normalised over the whole validation set; for a threshold
# $\tau$ only the pixels with $u \le \tau$ are kept. Left: OA on the kept pixels (solid) and
# the fraction kept (dashed) against $\tau$; right: OA against the fraction kept, with the
# paper's three FCN points (crosses). OA should fall as $\tau$ rises, i.e. the uncertain
# pixels should be the wrong ones.

# %%
mc = ds.sel({"method": [m for m in ds["method"].values if "(MC mean)" in str(m)]})
fig = plots.coverage_curves(
    mc, uncertainty=uncertainty, threshold_panel=True,
    paper={t: v["all_pixels"] for t, v in reported.KAMPFFMEYER_FCN_COVERAGE.items()})
plt.show()

# %% [markdown]
# ### Coverage at a target accuracy, beside the paper
#
# The largest share of evaluated pixels whose OA reaches 97.5, 95 and 90 %, using every
# distinct uncertainty value as a threshold. The paper's figures are for its FCN on
# Vaihingen; its text suggests they may be for the single area-30 tile, so ours are shown
# both for the whole validation set and for the first validation scene alone. A model whose
# OA is already above a target keeps 100 %; one that never reaches it keeps 0 %.

# %%
rows = {}
for r in ch.records:
    ev = r.evaluation
    if not ev.coverage:
        continue
    key = f"{r.method.replace(' (MC mean)', '')} seed {r.seed}"
    rows[(key, "validation set")] = {f"{100 * t:g} %": 100 * v
                                     for t, v in ev.coverage[uncertainty].items()}
    for sname, m in ev.maps.items():
        cov = analysis.coverage_on_scene(m, uncertainty)
        rows[(key, f"scene {sname}")] = {f"{100 * t:g} %": 100 * v for t, v in cov.items()}
ours = pd.DataFrame.from_dict(rows, orient="index").round(2)
paper = reported.kampffmeyer_coverage().T
paper.index = pd.MultiIndex.from_tuples([("paper FCN (Vaihingen)", "all pixels"),
                                         ("paper FCN (Vaihingen)", "eroded GT")])
display(pd.concat([ours, paper]))

# %% [markdown]
# The same coverage for every uncertainty map (validation set, mean over seeds): which map
# ranks the errors last?

# %%
cov_at = 100 * mc["coverage_at"].mean("seed")
display(cov_at.to_dataframe(name="kept (%)")["kept (%)"].unstack("target").round(2))

# %% [markdown]
# ## MC mean against deterministic prediction
#
# The paper cites that averaging MC samples beats weight scaling but gives no numbers of
# its own. Difference (MC mean − deterministic) in OA and mean F1, in points, per model and
# seed:

# %%
scores = ds["scores"].sel(protocol="eroded", **{"class": "overall"})
diff = {}
for name in names:
    for seed in ch.seeds:
        det = scores.sel({"method": name, "seed": seed})
        mcm = scores.sel({"method": f"{name} (MC mean)", "seed": seed})
        diff[f"{name} seed {seed}"] = {
            "OA det.": 100 * float(det.sel(metric="oa")),
            "OA MC": 100 * float(mcm.sel(metric="oa")),
            "Δ OA": 100 * float(mcm.sel(metric="oa") - det.sel(metric="oa")),
            "Δ mean F1": 100 * float(mcm.sel(metric="f1") - det.sel(metric="f1")),
            "ECE det.": float(det.sel(metric="ece")), "ECE MC": float(mcm.sel(metric="ece"))}
diff = pd.DataFrame.from_dict(diff, orient="index")
display(diff.round(3))

# %% [markdown]
# ## Calibration
#
# Reliability diagrams (accuracy against top-label confidence, 15 equal-width bins) with
# the expected calibration error (ECE) of each model, deterministic and MC mean.

# %%
fig = plots.reliability_diagrams(ds)
plt.show()

# %% [markdown]
# ## Summary

# %%
lines = []
for name in names:
    d = diff.loc[[f"{name} seed {s}" for s in ch.seeds]].mean()
    sel = mc.sel({"method": f"{name} (MC mean)", "uncertainty": uncertainty})
    cov = {float(t): 100 * float(sel["coverage_at"].sel(target=t).mean("seed"))
           for t in sel["target"].values}
    acc = sel["accuracy"].mean("seed").values
    ok = acc[np.isfinite(acc)]
    falls = bool(ok.size > 1 and ok[0] >= ok[-1])
    lines.append(
        f"- **{name}**: OA {d['OA det.']:.1f} % deterministic, {d['OA MC']:.1f} % MC mean "
        f"(Δ {d['Δ OA']:+.2f} points; Δ mean F1 {d['Δ mean F1']:+.2f}); ECE "
        f"{d['ECE det.']:.3f} → {d['ECE MC']:.3f}. Pixels kept at 97.5 / 95 / 90 % OA: "
        f"{cov[0.975]:.1f} / {cov[0.95]:.1f} / {cov[0.9]:.1f} % (paper FCN: 64.85 / 75.81 / "
        f"94.06 %). OA on the least uncertain pixels "
        f"{'is at least' if falls else 'is below'} the OA on all pixels.")
lines.append(f"- Profile `{profile}` on {ch.hardware}, T = {T}, {len(ch.seeds)} seed(s); "
             f"evaluation took {ch.wall.get('evaluate', 0):.0f} s, training "
             f"{ch.wall.get('train', 0):.0f} s (0 when reused from the run store).")
display(Markdown("\n".join(lines)))
