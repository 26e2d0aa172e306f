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
# one-vs-all linear SVMs. Their ensemble of all three networks reaches a higher overall
# accuracy (OA) than each network alone on Vaihingen (their Tables 1 and 2), and keeps most
# of FCN-MFB's gain on cars. This chapter builds every combination of two or more of the
# networks with four combiners: the paper's SVM, the same SVM fitted on a single training
# scene (a control), plain probability averaging and averaging of the networks' MC-dropout
# means. It compares every ensemble with the single network that scores best on the
# training scenes, judges the paper's claim that the SVM ensemble of all three beats each
# of them, and puts our numbers beside the paper's Table 2.
#
# **Prerequisites.** {doc}`02_patch_cnn` and {doc}`03_fcn_mfb` (the members, reused from the
# run store with their predictions, or trained here with the same settings),
# {doc}`04_uncertainty` (MC dropout). The metrics and the statistics rule are defined on the
# {doc}`protocol page <../protocol>`.

# %% tags=["parameters"]
profile = "default"  # smoke | default | gpu | full
device = "auto"  # auto: CUDA when present, else CPU
dataset = "synthetic"  # synthetic | dubai | vaihingen | potsdam
data_root = None  # None: data/<dataset> (or ../shared/data for real sets)
data_options = None  # dataset options, e.g. {"potsdam_bands": "r+g+b"} (see chapter 01)
seeds = None  # None: the profile's seeds
retrain = False  # True: train again even if the run store holds the model
# The chapter's own settings; None takes the profile's value.
members = None  # networks combined (pb, fcn, fcn_mfb; a missing method is skipped)
svm_C = None  # LIBLINEAR's C (1.0)
svm_samples = None  # pixels sampled (equal per class) to fit the SVM
svm_features = None  # "prob" (the paper's) or "logprob"
svm_scenes = None  # the first N training scenes the SVM is fitted on (None: all)
heldout_scene = None  # the training scene of the one-scene SVM (-1: the last)
heldout_retrain = None  # retrain the members without that scene (a held-out control)
mc_samples = None  # T for the MC means (10 as in the paper)
mc_members = None  # members whose MC-dropout means are averaged
pb_border_mode = None  # patch CNN: "reflect" (every pixel) or "omit" (the paper's)

# %% tags=["hide-input"]
import pandas as pd
from IPython.display import Markdown, display

from aerialseg import chapter, plots, registry, stats
from aerialseg.display import method_name, method_names
from aerialseg.papers.kampffmeyer import analysis, ensemble, reported
from aerialseg.papers.kampffmeyer import plots as k_plots
from aerialseg.papers.kampffmeyer.method import BORDER_LABELS
from aerialseg.tables import show_table, summary_table, verdict_table

plots.book_style()
ch = chapter.start(
    "05_ensembles", profile=profile, device=device, dataset=dataset, seeds=seeds,
    data_root=data_root, data_options=data_options, retrain=retrain,
    settings=dict(members=members, svm_C=svm_C, svm_samples=svm_samples,
                  svm_features=svm_features, svm_scenes=svm_scenes,
                  heldout_scene=heldout_scene, heldout_retrain=heldout_retrain,
                  mc_samples=mc_samples, mc_members=mc_members,
                  pb_border_mode=pb_border_mode))
st = ch.settings
names = registry.available_methods(st["members"])
if len(names) < 2:
    raise ValueError(f"an ensemble needs two members; only {names} are registered")
border = st["pb_border_mode"]
member_ids = {n: BORDER_LABELS[border] if n == "pb" else n for n in names}
n_train = len(ch.data.train)
fit_idx = list(range(min(st["svm_scenes"] or n_train, n_train)))
hold = st["heldout_scene"] % n_train
held_name = ch.data.train[hold].name
control = ensemble.control_combiner(st["heldout_retrain"])
combiners = ("svm", control, "mean", "mc_mean")
mc_members = [n for n in names if n in st["mc_members"]]
T = st["mc_samples"]

# %% [markdown]
# ## Four ways to combine
#
# Let $p_m(x)\in\Delta^C$ be member $m$'s softmax output at pixel $x$.
#
# - **SVM** (the paper): the features are the concatenation $[p_1(x), \dots, p_M(x)]$
#   ($M \cdot C$ values); one linear SVM per class (one-vs-all, squared hinge, L2 penalty,
#   $C = 1$; LIBLINEAR through scikit-learn's `LinearSVC`) and the prediction is the class
#   with the largest decision value. We fit it on a class-balanced random sample of pixels
#   of the training scenes, from the members' predictions there.
# - **SVM fitted on one training scene** (a control). Members that have seen a pixel in
#   training are over-confident on it, so an SVM fitted on training pixels may learn to
#   trust the wrong member. The control fits the same SVM on the pixels of one training
#   scene only. It is a *held-out* control only when the members are retrained without that
#   scene (setting `heldout_retrain`), so that their outputs there look like test outputs;
#   otherwise it is named "SVM fitted on one training scene": the members saw it.
# - **Probability mean**: $p(x) = \frac1M \sum_m p_m(x)$, then the argmax; nothing is
#   fitted.
# - **MC-mean average**: the same average of each member's MC-dropout mean over $T$ passes
#   (chapter 4).
#
# *From the paper:* the SVM combination of the concatenated softmax outputs, LIBLINEAR,
# one-vs-all, and the four combinations of Table 2. *Reconstructed* (not stated in the
# paper): which pixels the SVM is fitted on, how many, $C$, the squared hinge loss. The
# control, the two averages and the comparison with the best member on the training
# scenes are ours.

# %% [markdown]
# ## Members and combinations
#
# For each seed: the members' predictions on the training scenes the SVM is fitted on and
# on the validation scenes (from the run store when chapters 2 to 4 made them), then every
# combination with every combiner. Each member is scored from the same predictions, so
# the ensembles and their members are compared on the same pixels.

# %%
ch.add_pixel_baseline()
training_scores = []
for seed in ch.seeds:
    runs, maps, held = {}, {}, {}
    for name in names:
        runs[name] = ch.train(name, seed)
        kw = dict(device=ch.device, border_mode=border, seed=seed,
                  cache=ch.prediction_cache(runs[name]))
        with ch.phase("member inference"):
            maps[name] = ensemble.member_maps(
                name, runs[name].model, runs[name].stats, ch.data.train, ch.data.val,
                train_indices=fit_idx + [hold], mc_samples=T if name in mc_members else 0,
                **kw)
        if st["heldout_retrain"]:  # the member without the control's scene
            h = ch.train(name, seed, without_scene=held_name)
            kw["cache"] = ch.prediction_cache(h)
            with ch.phase("member inference"):
                held[name] = ensemble.member_maps(name, h.model, h.stats, ch.data.train,
                                                  ch.data.val, train_indices=[hold], **kw)
    training_scores += [{"member": m, "seed": seed, **v} for m, v in
                        ensemble.member_training_scores(maps, ch.data.train).items()]
    with ch.phase("combine"):
        results = ensemble.evaluate_ensembles(
            maps, ch.data.train, ch.data.val, combiners=combiners, fit_scenes=fit_idx,
            heldout=hold, svm_samples=st["svm_samples"], svm_C=st["svm_C"],
            svm_features=st["svm_features"], seed=seed, heldout_members=held or None,
            member_ids=member_ids)
    for method, res in results.items():
        ch.record(method, seed, res.evaluation, **ensemble.record_fields(res, runs))
    order = [chapter.PIXEL_BASELINE] + list(results)  # members first, then the ensembles
    del maps, held, results

# %% tags=["hide-input"]
ds = ch.write_results()
training_scores = pd.DataFrame(training_scores)
train_mean = training_scores.groupby("member")[["oa", "f1"]].mean()
ref_member = str(train_mean["oa"].idxmax())
reference = member_ids[ref_member]
ensembles = [m for m in order if m.startswith("ens_")]
all_svm = ensemble.ensemble_id(names, "svm")
names_of = method_names(order)
claims = [c for c in registry.claims() if c.chapter == ch.name]
verdicts = analysis.readable_verdicts(ch.verdicts(ds), names_of)

# %% [markdown]
# ## Results

# %% tags=["remove-input"]
fit_text = (f"the SVM is fitted on the first {len(fit_idx)} of the {n_train} training scenes"
            if len(fit_idx) < n_train else f"the SVM is fitted on all {n_train} training scenes")
mc_text = (f"MC means (T = {T}) of "
           f"{analysis.and_join([method_name(member_ids[n]) for n in mc_members])}"
           if mc_members else "no MC means")
skipped = [n for n in names if n not in mc_members]
skip_names = analysis.and_join([method_name(member_ids[n]) for n in skipped])
skip_text = (f"; the MC pass of {skip_names} over every validation scene is too slow for "
             "this profile, so the combinations holding it have no MC-mean average"
             if skipped and mc_members else "")
car_text = ("" if "car" in ch.data.classes.names else
            " This dataset has no car class: the paper's car results cannot be compared.")
display(Markdown(f"{ch.edition()} In this edition {fit_text}; the control SVM is fitted on "
                 f"scene {held_name}, and the members were "
                 + ("retrained without it (a held-out control)" if st["heldout_retrain"]
                    else "not retrained without it (the members saw it)")
                 + f"; {mc_text}{skip_text}.{car_text}"))

# %% [markdown]
# The members come from chapters 2 and 3. A member that has not converged or scores below
# the per-pixel baseline takes part in no verdict, and neither does an ensemble holding it.

# %% tags=["remove-input"]
runs_table = ch.training_table()
runs_table["converged"] = [stats.converged(r.history) for r in ch.runs.values()]
show_table(runs_table.set_index("method"), caption="The members: training length, final "
           "training loss, whether the loss converged, and whether the model was reused "
           "from the run store.", na="no per-step count recorded")

# %% [markdown]
# Every member, MC mean and ensemble on the validation scenes. The SVM's decision values
# are not probabilities, so the SVM rows have no ECE.

# %% tags=["remove-input"]
summary_table(ds.sel({"method": order}), caption=(
    "Scores on the validation scenes (eroded-boundary ground truth), in %: mean ± standard "
    "deviation over seeds. Single networks predict deterministically unless marked *MC "
    "mean*; ensembles are named by their members and combiner."),
    na="not computed for this row (an SVM's scores are not probabilities)")

# %% [markdown]
# ### Against the best single network
#
# Which ensemble is best cannot be read off the validation scenes without choosing on
# them. Instead every ensemble is compared with one reference chosen beforehand: the member
# with the highest OA on the training scenes it predicted for the SVM. The members saw
# those scenes in training, so their scores there are optimistic, but the choice does not
# look at the validation scenes.

# %% tags=["remove-input"]
show_table(train_mean.rename(index=member_ids), caption=(
    "OA and mean F1 (%) of each member on the training scenes the SVM is fitted on (mean "
    "over seeds): the reference is the member with the highest OA."),
    rows="method", row_header="Member", percent=True,
    columns={"oa": "OA (%)", "f1": "Mean F1 (%)"})

# %% tags=["remove-input"]
show_table(analysis.difference_table(ds, ensembles, reference), caption=(
    f"Every ensemble against the reference, {method_name(reference)}, on the validation "
    "scenes: its score (%, mean ± standard deviation over seeds) and the paired change in "
    "points with its 95 % interval (bootstrap over seeds and spatial blocks)."),
    rows="method", row_header="Ensemble")

# %% tags=["remove-input"]
diff = analysis.paired_differences(ds, [(m, reference) for m in ensembles])
fig = k_plots.difference_intervals(diff, reference=reference)
plots.show(fig, name="ensembles-differences", caption=(
    f"Change in OA and mean F1 of every ensemble against {method_name(reference)}: the "
    "estimate (dot) and its 95 % interval (bar); blue where the interval excludes 0."),
    alt=("Two panels of horizontal interval bars, one row per ensemble: the change in "
         "overall accuracy and in mean F1 against the reference network, with a vertical "
         "line at zero."))

# %% [markdown]
# ### The paper's claim
#
# The paper's SVM ensemble of all three networks has a higher OA than each of them. The
# verdicts follow the {ref}`study's rule <protocol-statistics>`: supported when the 95 %
# interval of the paired change excludes 0 in the paper's direction, untestable with fewer
# than three seeds or with a member that has not converged or is below the per-pixel
# baseline.

# %% tags=["remove-input"]
verdict_table(verdicts, claims, caption="Kampffmeyer et al.'s ensemble claims on our runs "
              "(validation scenes, eroded-boundary ground truth).")

# %% [markdown]
# ### Beside the paper
#
# Kampffmeyer et al.'s Table 2 (SVM combination; Vaihingen validation areas, eroded ground
# truth; F1 and OA in %), whole:

# %% tags=["remove-input"]
table2 = reported.kampffmeyer_table2().rename(columns={"mean_f1": "mean F1", "oa": "OA"})
show_table(table2, caption="Kampffmeyer et al. 2016, Table 2: F1 per class, mean F1 and OA "
           "(%) of the SVM ensembles on ISPRS Vaihingen.", points=True,
           rows={"ALL": "PB + FCN + FCN-MFB", "PB+FCN": "PB + FCN",
                 "PB+FCN-MFB": "PB + FCN-MFB", "FCN+FCN-MFB": "FCN + FCN-MFB"},
           row_header="Ensemble (SVM)")

# %% [markdown]
# Our members and SVM ensembles beside the paper's Tables 1 and 2. Compare the ranking and
# the direction of the effects, not the values: the data and the training budget differ
# (stated at the top of the results).

# %% tags=["remove-input"]
table1 = {r.method: {"mean_f1": r.values[("overall", "f1")], "oa": r.values[("overall", "oa")]}
          for r in reported.PAPER_RESULTS}
beside = analysis.beside_table2(ds, names, table1, reported.KAMPFFMEYER_TABLE2,
                                member_ids=member_ids, extra_rows=[chapter.PIXEL_BASELINE])
show_table(beside, caption=(
    "Mean F1 and OA (%): the paper's (ISPRS Vaihingen) beside ours (mean ± standard deviation "
    "over seeds) for the members and the SVM ensembles."),
    formats={"Paper: mean F1": "points", "Paper: OA": "points"},
    na="the paper has no such row", row_header="Network or ensemble",
    notes=("The paper's FCN mean F1 is the mean of its printed per-class F1: "
           f"{reported.KAMPFFMEYER_NOTES['fcn']}.",))

# %% tags=["remove-input"]
if "car" in ch.data.classes.names:
    svm_rows = {ensemble.ensemble_id(c, "svm"): ensemble.combo_label(c, ("pb", "fcn", "fcn_mfb"))
                for c in ensemble.combos(names)}
    fig = plots.per_class_scores(ds, methods=list(svm_rows), reported={
        m: reported.KAMPFFMEYER_TABLE2[label] for m, label in svm_rows.items()
        if label in reported.KAMPFFMEYER_TABLE2})
    plots.show(fig, name="ensembles-per-class", caption=(
        "F1 per class of our SVM ensembles (bars: mean over seeds; dots: seeds) and the "
        "paper's Table 2 on Vaihingen (red marks)."), alt=(
        "Grouped bar chart of F1 per class for each SVM ensemble, with the paper's values "
        "as horizontal marks."))

# %% [markdown]
# ## Summary

# %% tags=["summary"]
diffs = analysis.paired_differences(ds, [(m, reference) for m in ensembles], metrics=("oa",))
above = diffs[diffs["low"] > 0]["method"].tolist()
below = diffs[diffs["high"] < 0]["method"].tolist()
ref_oa = 100 * ds["scores"].sel({"method": reference, "protocol": "eroded",
                                 "class": "overall", "metric": "oa"}).mean("seed").item()
lines = [
    f"We combined {analysis.and_join([method_name(member_ids[n]) for n in names])} in every "
    f"combination of two or more with {len(combiners)} combiners ({len(ensembles)} "
    f"ensembles, {len(ch.seeds)} seed{'s' if len(ch.seeds) > 1 else ''}) and compared each "
    f"with the member chosen on the training scenes, {method_name(reference)} "
    f"(OA {ref_oa:.1f} % on the validation scenes).",
    (f"The 95 % interval of the change in OA excludes 0 upwards for {len(above)} of the "
     f"{len(ensembles)} ensembles"
     + (f" ({analysis.and_join([names_of[m] for m in above])})" if above else "")
     + f" and downwards for {len(below)}"
     + (f" ({analysis.and_join([names_of[m] for m in below])})" if below else "") + "."),
]
if all_svm in names_of:
    d = diffs.set_index("method").loc[all_svm]
    meaning = ("combining the three networks with the SVM pays off on these data, as the "
               "paper found" if d["low"] > 0 else
               "the SVM ensemble of all three is worse than the best single network here"
               if d["high"] < 0 else
               "the gain of the SVM ensemble of all three over the best single network is "
               "not distinguishable from 0 here")
    lines.append(
        f"{names_of[all_svm]} changes OA by "
        f"{analysis.signed_interval(d['estimate'], d['low'], d['high'])} points against "
        f"{method_name(reference)} (95 % interval in brackets): {meaning}. On the paper's "
        "claim that it beats each member: "
        + " ".join(stats.sentence(v, names=names_of) for v in verdicts))
lines.append(
    f"The one-scene SVM ({held_name}) "
    + ("is a held-out control: the members were retrained without that scene."
       if st["heldout_retrain"] else
       "is not held out: the members saw that scene in training, so it shows how much the "
       "SVM depends on the pixels it is fitted on, not how it would do on unseen outputs."))
display(Markdown("\n\n".join(lines)))
