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
# # Ensembles of the patch CNN and the FCNs
#
# **Overview.** Kampffmeyer et al. {cite:p}`kampffmeyer2016` combine their patch-based CNN
# (PB), FCN and FCN-MFB by classifying the concatenated softmax outputs of each pixel with
# one-vs-all linear SVMs; their best ensemble (all three) reaches 87.0 % overall accuracy
# (OA) on Vaihingen with a car F1 of 80.6 %. This chapter builds every combination of the
# available networks with four combiners: the paper's SVM fitted on training pixels, the
# same SVM fitted on a held-out training scene (a control), plain probability averaging and
# averaging of the members' MC-dropout means, and puts our table beside the paper's
# Table 2.
#
# **Prerequisites.** {doc}`02_patch_cnn` and {doc}`03_fcn_mfb` (the members, reused from the
# run store or trained here with the same settings), {doc}`04_uncertainty` (MC dropout).

# %% tags=["parameters"]
profile = "default"  # smoke | default | gpu | full
device = "auto"  # auto: CUDA when present, else CPU
dataset = "synthetic"  # synthetic | dubai | vaihingen | potsdam
data_root = None  # None: data/<dataset> (or ../shared/data for real sets)
data_options = None  # dataset options, e.g. {"potsdam_bands": "rgb"} (see chapter 01)
seeds = None  # None: the profile's seeds
retrain = False  # True: train again even if the run store holds the model
# The chapter's own settings; None takes the profile's value.
members = None  # networks combined (None: pb, fcn, fcn_mfb; a missing method is skipped)
svm_C = None  # LIBLINEAR C (1.0)
svm_samples = None  # pixels sampled (equal per class) to fit the SVM
svm_features = None  # "prob" (the paper's) or "logprob"
heldout_scene = None  # index of the training scene held out for the control SVM (-1: last)
heldout_retrain = None  # retrain the members without that scene
mc_samples = None  # T for MC averaging (10 as in the paper)
pb_border_mode = None  # patch CNN: "reflect" (every pixel) or "omit" (the paper's)

# %%
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from aerialseg import chapter, plots, registry
from aerialseg.papers.kampffmeyer import ensemble, reported
from aerialseg.tables import seed_mean, summary_table

ch = chapter.start(
    "05_ensembles", profile=profile, device=device, dataset=dataset, seeds=seeds,
    data_root=data_root, data_options=data_options, retrain=retrain,
    settings=dict(members=members, svm_C=svm_C, svm_samples=svm_samples,
                  svm_features=svm_features, heldout_scene=heldout_scene,
                  heldout_retrain=heldout_retrain, mc_samples=mc_samples,
                  pb_border_mode=pb_border_mode))
st = ch.settings
names = registry.available_methods(st["members"])
if len(names) < 2:
    raise ValueError(f"an ensemble needs two members; only {names} are registered")
hold = st["heldout_scene"] % len(ch.data.train)
held_name = ch.data.train[hold].name

# %% [markdown]
# ## Four ways to combine
#
# Let $p_m(x)\in\Delta^C$ be member $m$'s softmax output at pixel $x$.
#
# - **SVM** (the paper): the features are the concatenation $[p_1(x), \dots, p_M(x)]$ (15
#   values for three members and five classes); one linear SVM per class (one-vs-all,
#   squared hinge, L2, $C=1$; LIBLINEAR through scikit-learn's `LinearSVC`) and the
#   prediction is the class with the largest decision value. The paper does not say which
#   pixels the SVM is fitted on; we draw a class-balanced random sample of training pixels
#   from the members' predictions on the training scenes.
# - **SVM, held-out scene** (control): members that have seen a pixel in training are
#   over-confident on it, so an SVM fitted on training pixels may learn to trust the wrong
#   member. The control fits the SVM on one training scene only; with `heldout_retrain` the
#   members are retrained without that scene, so its outputs look like test outputs.
# - **Mean**: $p(x) = \frac1M \sum_m p_m(x)$, then argmax; nothing is fitted.
# - **MC mean**: the same average of each member's MC-dropout mean over $T$ samples.

# %%
maps, heldout_maps = {}, {}
for seed in ch.seeds:
    maps[seed], heldout_maps[seed] = {}, {}
    for name in names:
        run = ch.train(name, seed)
        with ch.phase("member inference"):
            kw = dict(device=ch.device, border_mode=st["pb_border_mode"], seed=seed,
                      cache=ch.prediction_cache(run))
            maps[seed][name] = ensemble.MemberMaps(
                name, ensemble.predict_member(run.model, run.stats, ch.data.train, **kw),
                ensemble.predict_member(run.model, run.stats, ch.data.val,
                                        mc_samples=st["mc_samples"], **kw))
        if st["heldout_retrain"]:
            h = ch.train(name, seed, without_scene=held_name)
            with ch.phase("member inference"):
                kw["cache"] = ch.prediction_cache(h)
                fit = ensemble.predict_member(h.model, h.stats, [ch.data.train[hold]], **kw)
                train_maps = [fit[0] if i == hold else {} for i in range(len(ch.data.train))]
                heldout_maps[seed][name] = ensemble.MemberMaps(
                    name, train_maps, ensemble.predict_member(h.model, h.stats, ch.data.val,
                                                              **kw))

# %%
for seed in ch.seeds:
    with ch.phase("combine"):
        evs = ensemble.evaluate_ensembles(
            maps[seed], ch.data.train, ch.data.val, heldout=hold,
            svm_samples=st["svm_samples"], svm_C=st["svm_C"],
            svm_features=st["svm_features"], seed=seed,
            heldout_members=heldout_maps[seed] or None)
    for (label, combiner), ev in evs.items():
        ch.record(f"{label} | {combiner}", seed, ev)
ds = ch.write_results()

# %% [markdown]
# ## Results
#
# Eroded-boundary ground truth, validation scenes. `member` rows are the single networks
# (deterministic), `member_mc` their MC means. The SVM's decision values are not
# probabilities, so its ECE is left empty.

# %%
display(summary_table(ds, protocol="eroded"))

# %%
fig = plots.metric_dots(ds, metrics=(("f1", "mean F1"), ("oa", "OA"),
                                     ("boundary_f1", "boundary F1")))
plt.show()

# %% [markdown]
# ### Beside the paper
#
# Kampffmeyer et al., Table 2 (SVM combination; Vaihingen validation areas, eroded ground
# truth; F1 and OA in %). Compare the ranking of the combinations and the effect on the
# rare class, not the values: our data are stated at the top of this chapter.

# %%
paper = reported.kampffmeyer_table2()
ours = summary_table(ds, protocol="eroded").loc[
    [f"{label} | svm" for label in paper.index if f"{label} | svm" in ds["method"].values]]
ours.index = [i.replace(" | svm", " (ours, SVM)") for i in ours.index]
display(paper)
display(ours)

# %% [markdown]
# ## Summary

# %%
members_oa = {n: seed_mean(ds, f"{ensemble.combo_label((n,))} | member", "oa") for n in names}
best_member = max(members_oa, key=members_oa.get)
combo_rows = [str(m) for m in ds["method"].values if "member" not in str(m)]
best = max(combo_rows, key=lambda m: seed_mean(ds, m, "oa"))
lines = [f"- Best single network: **{best_member}**, OA {members_oa[best_member]:.2f} %, "
         f"mean F1 {seed_mean(ds, ensemble.combo_label((best_member,)) + ' | member', 'f1'):.2f} %.",
         f"- Best combination: **{best}**, OA {seed_mean(ds, best, 'oa'):.2f} %, mean F1 "
         f"{seed_mean(ds, best, 'f1'):.2f} % (paper's best: ALL with the SVM, OA 87.03 %, mean F1 "
         "88.79 %)."]
for label in [ensemble.combo_label(c, names) for c in ensemble.combos(names)]:
    cells = ", ".join(f"{comb} {seed_mean(ds, f'{label} | {comb}', 'oa'):.2f}"
                      for comb in ensemble.COMBINERS if f"{label} | {comb}" in combo_rows)
    lines.append(f"- {label}, OA (%) by combiner: {cells}.")
lines.append(f"- Held-out control: members retrained without scene "
             f"{held_name}: {st['heldout_retrain']}.")
lines.append(f"- Profile `{profile}` on {ch.hardware}, {len(ch.seeds)} seed(s); member "
             f"inference {ch.wall.get('member inference', 0):.0f} s, combining "
             f"{ch.wall.get('combine', 0):.0f} s, training {ch.wall.get('train', 0):.0f} s.")
display(Markdown("\n".join(lines)))
