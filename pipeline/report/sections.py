"""One report section per study: question, setting, figures, table, findings, reference.

Every finding is a sentence built from this run's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.report import figures
from pipeline.studies import STUDIES


@dataclass
class Section:
    key: str
    title: str
    question: str
    setting: str
    figures: list[tuple[str, str]] = field(default_factory=list)  # (caption, svg)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    reference: str = ""
    params: dict = field(default_factory=dict)


def _f(v: float) -> str:
    return "diverged" if v is None or not np.isfinite(v) else f"{v:.3g}"


def _setting(study: str) -> str:
    doc = STUDIES[study].__doc__ or ""
    return " ".join(doc.split("\n\n", 1)[-1].split()).removeprefix("Setting: ")


def spiral(results: Path, tables: dict, params: dict) -> Section:
    cells = pd.read_csv(results / "spiral" / "cells.csv")
    bounds = pd.read_csv(results / "spiral" / "boundaries.csv")
    s = Section("spiral", "Spiral: linear vs non-linear",
                "Can a linear model separate spiral classes, and which non-linearity helps?",
                _setting("spiral"), params=params)
    points = None
    data = results.parent / "spiral.npz"
    if data.exists():
        with np.load(data) as d:
            points = pd.DataFrame({"x0": d["x_train"][:, 0], "x1": d["x_train"][:, 1],
                                   "y": d["y_train"]})
    s.figures.append(("Decision boundaries, first seed, course optimizer",
                      figures.decision_boundaries(bounds, points)))
    ok = cells[~cells["diverged"]]
    s.figures.append(("Test accuracy by activation and optimizer (95% interval over seeds)",
                      figures.bars(ok, "activation", "test_acc", "optimizer", "test accuracy")))
    t = tables["spiral"]
    s.tables.append(("Test accuracy over seeds", t))
    course = t[t["course_setting"]].set_index("activation")["test_acc_mean"]
    if {"none", "relu"} <= set(course.index):
        s.findings.append(
            f"In the course setting (linear model with SGD, ReLU with Adam) the ReLU MLP "
            f"reached {_f(course['relu'])} test accuracy and the linear model "
            f"{_f(course['none'])}, mean of {int(t['n'].max())} seeds.")
    for opt in sorted(ok["optimizer"].unique()):
        same = t[t["optimizer"] == opt].set_index("activation")["test_acc_mean"]
        best, worst = same.idxmax(), same.idxmin()
        s.findings.append(f"With {opt} for every model, {best} was best "
                          f"({_f(same[best])}) and {worst} worst ({_f(same[worst])}).")
    s.reference = ("NYU DLSP20 notebook 04-spiral_classification: linear model 0.504, "
                   "ReLU 0.949 training accuracy after 1000 steps.")
    return s


def polynomial(results: Path, tables: dict, params: dict) -> Section:
    cells = pd.read_csv(results / "polynomial" / "cells.csv")
    weights = pd.read_csv(results / "polynomial" / "weights.csv")
    min_norm = pd.read_csv(results / "polynomial" / "min_norm.csv")
    s = Section("polynomial", "Polynomial degree vs fit",
                "How does the polynomial degree move a model between under- and over-fitting?",
                _setting("polynomial"), params=params)
    long = cells.melt(id_vars=["degree", "train_size", "seed"],
                      value_vars=["train_loss", "test_loss"], var_name="split", value_name="loss")
    s.figures.append(("Train and test loss vs degree (SGD)",
                      figures.lines(long, "degree", "loss", "split", logy=True, ylabel="MSE")))
    cubic = weights[weights["degree"] == 3]
    if len(cubic):
        s.figures.append(("Degree-3 weights vs the truth",
                          figures.weights_vs_truth(cubic[["index", "weight", "true_weight"]])))
    mn = min_norm.melt(id_vars=["n_features", "train_size"], value_vars=["train_loss", "test_loss"],
                       var_name="split", value_name="loss")
    mn["split"] = mn["split"] + ", n=" + mn["train_size"].astype(str)
    mn["loss"] = mn["loss"].clip(lower=1e-12)
    s.figures.append(("Minimum-norm least squares: loss vs number of features",
                      figures.lines(mn, "n_features", "loss", "split", logy=True, ylabel="MSE")))
    t = tables["polynomial"]
    s.tables.append(("Loss over seeds", t))
    full = t[t["train_size"] == t["train_size"].max()].set_index("degree")
    best = full["test_loss_mean"].idxmin()
    s.findings.append(
        f"Degree {best} had the lowest test loss ({_f(full.loc[best, 'test_loss_mean'])}).")
    low, high = full.index.min(), full.index.max()
    s.findings.append(
        f"Degree {low} under-fits: train {_f(full.loc[low, 'train_loss_mean'])}, test "
        f"{_f(full.loc[low, 'test_loss_mean'])}; degree {high}: train "
        f"{_f(full.loc[high, 'train_loss_mean'])}, test {_f(full.loc[high, 'test_loss_mean'])}.")
    if len(cubic):
        w = cubic.groupby("index")["weight"].mean()
        truth = cubic.groupby("index")["true_weight"].first()
        s.findings.append("The degree-3 fit learned weights ["
                          + ", ".join(f"{v:.3f}" for v in w) + "] for the truth ["
                          + ", ".join(f"{v:g}" for v in truth) + "].")
    for n, part in min_norm.groupby("train_size"):
        peak = part.loc[part["test_loss"].idxmax()]
        s.findings.append(f"Minimum-norm fits on {n} points: the test loss peaks at "
                          f"{int(peak['n_features'])} features ({_f(peak['test_loss'])}).")
    s.reference = ("d2l 4.4: the third-order fit learns weights [4.996, 1.198, -3.386, 5.605] "
                   "for the truth [5, 1.2, -3.4, 5.6].")
    return s


def regularization(results: Path, tables: dict, params: dict) -> Section:
    cells = pd.read_csv(results / "regularization" / "cells.csv")
    s = Section("regularization", "Regularization: weight decay and dropout",
                "How much do weight decay and dropout shrink the model and close the "
                "train-test gap?", _setting("regularization"), params=params)
    wd = cells[cells["experiment"] == "weight_decay"]
    s.figures.append(("||w|| vs lambda", figures.lines(
        wd, "lambda", "weight_norm", "form", logx=True, logy=True, ylabel="||w||")))
    long = wd.melt(id_vars=["lambda", "form", "seed"], value_vars=["train_loss", "test_loss"],
                   var_name="split", value_name="loss")
    s.figures.append(("Train and test loss vs lambda", figures.lines(
        long, "lambda", "loss", "split", style=None, logx=True, logy=True, ylabel="squared loss")))
    dr = cells[cells["experiment"] == "dropout"]
    s.figures.append(("Dropout p1 (rows) x p2 (columns)", figures.heatmaps(
        dr, {"test_acc": "test accuracy", "gap": "train - test accuracy"}, "p1", "p2")))
    t = tables["regularization_weight_decay"]
    s.tables += [("Weight decay over seeds", t),
                 ("Dropout over seeds", tables["regularization_dropout"]),
                 ("Weight decay x dropout", tables["regularization_interaction"])]
    for form, part in t.groupby("form", sort=False):
        part = part.set_index("lambda")
        best = part["test_loss_mean"].idxmin()
        zero = (f"lambda 0 gives ||w|| {_f(part['weight_norm_mean'].get(0.0))} and test "
                f"loss {_f(part['test_loss_mean'].get(0.0))}; " if 0.0 in part.index else "")
        s.findings.append(f"{form.capitalize()} form: {zero}lambda {best:g} gives the lowest "
                          f"test loss ({_f(part.loc[best, 'test_loss_mean'])}) with ||w|| "
                          f"{_f(part.loc[best, 'weight_norm_mean'])}.")
    forms = t.pivot_table(index="lambda", columns="form", values="test_loss_mean")
    if forms.shape[1] == 2:
        rel = (forms.iloc[:, 0] - forms.iloc[:, 1]).abs() / forms.abs().max(axis=1)
        s.findings.append(
            "The penalty and decoupled forms gave identical test losses: for SGD they are "
            "the same update." if rel.max() == 0 else
            f"The penalty and decoupled forms differ by at most {rel.max():.1e} (relative): "
            "for SGD they are the same update, up to rounding.")
    d = tables["regularization_dropout"]
    base = d[(d["p1"] == 0) & (d["p2"] == 0)]
    best = d.loc[d["test_acc_mean"].idxmax()]
    narrow = d.loc[d["gap_mean"].idxmin()]
    if len(base):
        s.findings.append(
            f"Without dropout the MLP reached {_f(base['test_acc_mean'].iloc[0])} test accuracy "
            f"with a train-test gap of {_f(base['gap_mean'].iloc[0])}; dropout "
            f"{best['p1']:g}/{best['p2']:g} gave the best test accuracy "
            f"({_f(best['test_acc_mean'])}) and {narrow['p1']:g}/{narrow['p2']:g} the narrowest "
            f"gap ({_f(narrow['gap_mean'])}).")
    s.reference = ("d2l 4.5: ||w|| about 13 without weight decay and about 0.36 at lambda 3; "
                   "d2l 4.6 uses dropout 0.2 and 0.5 on Fashion-MNIST.")
    return s


BUILDERS = {"spiral": spiral, "polynomial": polynomial, "regularization": regularization}


def optimizers(results: Path, tables: dict, params: dict) -> Section:
    cells = pd.read_csv(results / "optimizers" / "cells.csv")
    curves = pd.read_csv(results / "optimizers" / "curves.csv")
    s = Section("optimizers", "Optimizers: SGD, momentum, Nesterov, Adam",
                "Which optimizer trains the same model fastest, across learning rates, and "
                "does the fastest one generalise?", _setting("optimizers"), params=params)
    sweep = cells[cells["experiment"] == "lr_sweep"]
    ok = sweep[~sweep["diverged"]]
    s.figures.append(("Final test accuracy vs learning rate (diverged runs left out)",
                      figures.lines(ok, "lr", "test_acc", "optimizer", style="dataset",
                                    logx=True, ylabel="test accuracy")))
    best_rows = []
    means = ok.groupby(["dataset", "optimizer", "lr"])["test_acc"].mean()
    for (dataset, opt), part in means.groupby(level=[0, 1]):
        best_rows.append((dataset, opt, part.idxmax()[2], part.max()))
    best = pd.DataFrame(best_rows, columns=["dataset", "optimizer", "lr", "test_acc"])
    at_best = curves.merge(best[["dataset", "optimizer", "lr"]], on=["dataset", "optimizer", "lr"])
    s.figures.append(("Training loss per optimizer at its best learning rate",
                      figures.lines(at_best, "epoch", "train_loss", "optimizer", style="dataset",
                                    logy=True, ylabel="train loss")))
    s.tables += [("Learning-rate sweep over seeds", tables["optimizers_lr_sweep"]),
                 ("Wilson et al. construction", tables["optimizers_wilson"])]
    for dataset, part in best.groupby("dataset"):
        top = part.loc[part["test_acc"].idxmax()]
        s.findings.append(
            f"On {dataset}, the best optimizer was {top['optimizer']} at lr {top['lr']:g} "
            f"({_f(top['test_acc'])} test accuracy); "
            + "; ".join(f"{r.optimizer} peaked at {_f(r.test_acc)} (lr {r.lr:g})"
                        for r in part.itertuples() if r.optimizer != top["optimizer"]) + ".")
    diverged = sweep[sweep["diverged"]]
    if len(diverged):
        s.findings.append("Diverged: " + ", ".join(
            f"{r.optimizer} at lr {r.lr:g} on {r.dataset}"
            for r in diverged.drop_duplicates(["dataset", "optimizer", "lr"]).itertuples()) + ".")
    else:
        s.findings.append("No learning rate in the grid diverged.")
    wilson = tables["optimizers_wilson"].set_index("optimizer")
    neg = pd.read_csv(results / "optimizers" / "wilson_majority.csv")["negative_fraction"][0]
    s.findings.append(
        "Wilson et al. construction: test error "
        + ", ".join(f"{opt} {_f(r['test_error_mean'])}" for opt, r in wilson.iterrows())
        + f"; always predicting the majority class errs on {_f(neg)} of the test points.")
    s.reference = ("Wilson et al. 2017, section 3.3: gradient descent reaches zero test error "
                   "on this construction, while adaptive methods predict the majority class "
                   "and err on the minority fraction.")
    return s


def width_depth(results: Path, tables: dict, params: dict) -> Section:
    cells = pd.read_csv(results / "width_depth" / "cells.csv")
    budgets = pd.read_csv(results / "width_depth" / "budgets.csv")
    s = Section("width_depth", "Width vs depth",
                "At an equal parameter budget, is a deeper, narrower MLP better than a "
                "shallower, wider one?", _setting("width_depth"), params=params)
    ok = cells[~cells["diverged"]].copy()
    ok["depth"] = ok["depth"].astype(str)
    s.figures.append(("Test accuracy vs parameter count, coloured by depth", figures.lines(
        ok, "n_params", "test_acc", "depth", style="dataset", logx=True,
        ylabel="test accuracy")))
    s.tables += [("Accuracy over seeds", tables["width_depth"]),
                 ("Best model within each parameter budget", budgets)]
    for (dataset, budget), part in budgets.groupby(["dataset", "budget"]):
        by = part.set_index("kind")
        if {"shallow", "deep"} <= set(by.index):
            sh, dp = by.loc["shallow"], by.loc["deep"]
            winner = "deep" if dp["test_acc"] > sh["test_acc"] else "shallow"
            s.findings.append(
                f"{dataset}, at most {budget} parameters: deep ({int(dp['depth'])}x"
                f"{int(dp['width'])}, {int(dp['n_params'])} params) {_f(dp['test_acc'])} vs "
                f"shallow (1x{int(sh['width'])}, {int(sh['n_params'])} params) "
                f"{_f(sh['test_acc'])}: {winner} wins.")
    s.reference = ("Eldan and Shamir 2016: some functions a 3-layer network expresses with "
                   "few units need exponentially many units in 2 layers.")
    return s


def kfold(results: Path, tables: dict, params: dict) -> Section:
    cells = pd.read_csv(results / "kfold" / "cells.csv")
    sel = pd.read_csv(results / "kfold" / "selection.csv")
    s = Section("kfold", "K-fold cross-validation for model selection",
                "Does the config chosen by K-fold cross-validation also win on the held-out "
                "test set, and how close is the CV estimate to the test loss?",
                _setting("kfold"), params=params)
    folds = cells[cells["fold"].notna() & ~cells["diverged"]]
    s.figures.append(("Validation loss per fold (dots) and refitted test loss (line); the "
                      "CV choice is marked", figures.kfold_selection(folds, sel)))
    s.tables.append(("CV estimate vs test loss per candidate", sel))
    for selection, part in sel.groupby("selection", sort=False):
        chosen = part[part["chosen"]].iloc[0]
        best = part.loc[part["test_loss"].idxmin()]
        s.findings.append(
            f"{selection}: CV chose {chosen['value']:g} (validation loss "
            f"{_f(chosen['cv_mean'])} ± {_f(chosen['cv_std'])} over folds and seeds); "
            f"refitted, its test loss is {_f(chosen['test_loss'])}. The best on the test set "
            f"was {best['value']:g} ({_f(best['test_loss'])}).")
    s.reference = "The polynomial data's truth is cubic (degree 3; d2l 4.4)."
    return s


BUILDERS |= {"optimizers": optimizers, "width_depth": width_depth, "kfold": kfold}
