"""Regularization: weight decay and dropout ablations.

Weight decay. Dive into Deep Learning, section 4.5 "Weight Decay" (3.7 in recent
editions): linear regression with d = 200 inputs and only 20 training rows, N(0, 1)
weights, squared loss / 2, SGD lr 0.003, batch 5, 100 epochs, the penalty
lambda/2 ||w||^2 in the loss; lambda 0 over-fits, lambda 3 does not. For SGD, the penalty
and the optimizer's decay are the same update, so one SGD series is run; the forms that
differ are Adam with the L2 penalty in its gradient and AdamW's decoupled decay. Their
question (Loshchilov and Hutter 2019) is about a trained network: with L2 in Adam's
gradient the best lambda moves with the learning rate, with decoupled decay the two
separate, and AdamW generalises better at its best setting. So the two forms run on the
image MLP, learning rate x lambda each, over seeds (their Figure 2's heat maps); AdamW's
lambda is theirs, a decay of the weights per step not scaled by the learning rate
(torch's AdamW multiplies its weight_decay by lr, so the engine gets lambda / lr).

Dropout. Dive into Deep Learning, section 4.6 "Dropout" (5.6): an MLP with two hidden
layers of 256, dropout p1 after the first and p2 after the second (the book uses 0.2 and
0.5), N(0, 0.01) init, SGD lr 0.5, moved from Fashion-MNIST to the default image data.
A weight decay x dropout grid measures their interaction. Every lambda and dropout rate
is chosen on validation data.
"""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from pipeline import choices, stats
from pipeline import findings as F
from pipeline.bracketing import Bracket
from pipeline.config import (
    NonNegFloat,
    PositiveFloat,
    PositiveInt,
    Probability,
    Section,
    grid,
)
from pipeline.findings import Analysis, Figure
from pipeline.specs import WeightDecayRun, weight_decay_regression
from pipeline.studies._regularization import (
    FORMS,
    at_best,
    baseline,
    best_pair,
    lambda_by_lr,
    pair_edges,
)
from pipeline.studies.base import Study, StudyOutput


class WeightDecay(WeightDecayRun):
    lambdas: grid(NonNegFloat) = [0.0, 0.01, 0.1, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0]
    log_every: PositiveInt = 5


class AdamDecay(Section):
    hidden: list[PositiveInt] = Field(default=[128], min_length=1)
    lrs: grid(PositiveFloat) = [0.0003, 0.001, 0.003, 0.01]
    l2: grid(NonNegFloat) = [0.0, 1e-5, 1e-4, 1e-3, 1e-2]  # Adam + L2: lambda/2 ||w||^2
    decay: grid(NonNegFloat) = [0.0, 1e-6, 1e-5, 1e-4, 1e-3]  # AdamW: w -= lambda w a step
    # training images per seed (a stratified subset, its own per seed; null: all): few
    # enough that the MLP over-fits them and a decay has something to do
    train_rows: PositiveInt | None = 300
    batch_size: PositiveInt = 64
    epochs: PositiveInt = 100
    log_every: PositiveInt = 10


class Dropout(Section):
    p1: grid(Probability) = [0.0, 0.2, 0.5, 0.8]
    p2: grid(Probability) = [0.0, 0.2, 0.5, 0.8]
    weight_decays: grid(NonNegFloat) = [0.0, 1e-4, 1e-3]
    interaction_dropouts: grid(Probability) = [0.0, 0.5]
    hidden: list[PositiveInt] = Field(default=[256, 256], min_length=2, max_length=2)
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: PositiveFloat = 0.5
    batch_size: PositiveInt = 64
    epochs: PositiveInt = 50  # about 900 steps: at 20 every run was still learning
    log_every: PositiveInt = 5
    init_std: PositiveFloat = 0.01


class Params(Section):
    weight_decay: WeightDecay = WeightDecay()
    adam_decay: AdamDecay = AdamDecay()
    dropout: Dropout = Dropout()


class Regularization(Study):
    name = "regularization"
    order = 3
    answer = ("baseline", "adamw_vs_adam", "lambda_by_lr")  # the findings the summary gives
    title = "Regularization: weight decay and dropout"
    question = ("How much do weight decay and dropout shrink the model and close the "
                "train-test gap, and where do the decay forms differ?")
    Params = Params
    datasets = ("highdim", "images")

    def cells(self) -> list[dict]:
        wd, ad, dr, seeds = self.p.weight_decay, self.p.adam_decay, self.p.dropout, self.seeds
        cells = [{"experiment": "weight_decay", "dataset": "highdim", "optimizer": "sgd",
                  "lambda": lam, "seed": s} for lam, s in itertools.product(wd.lambdas, seeds)]
        cells += [{"experiment": "adam_decay", "dataset": "images", "optimizer": form,
                   "lr": lr, "lambda": lam, "seed": s}
                  for form in FORMS for lr in ad.lrs
                  for lam, s in itertools.product(ad.l2 if form == "adam" else ad.decay, seeds)]
        cells += [{"experiment": "dropout", "dataset": "images", "p1": p1, "p2": p2,
                   "weight_decay": 0.0, "seed": s}
                  for p1, p2, s in itertools.product(dr.p1, dr.p2, seeds)]
        cells += [{"experiment": "interaction", "dataset": "images", "p1": p, "p2": p,
                   "weight_decay": w, "seed": s}
                  for w, p, s in itertools.product(dr.weight_decays, dr.interaction_dropouts,
                                                   seeds)]
        return cells

    def brackets(self) -> list[Bracket]:
        """Lambda for SGD; per form of Adam's decay, the lambda at the chosen learning rate
        and the learning rate at the chosen lambda (the pair chosen on the whole grid). A
        learning rate bracketing adds runs with every lambda of the form's grid, so that
        the pair is chosen again over a full row."""
        where = {"experiment": "adam_decay"}
        return [Bracket("lambda", "val_loss", maximize=False,
                        where={"experiment": "weight_decay"}),
                Bracket("lambda", "val_acc", maximize=True, where=where,
                        by=("optimizer", "lr"), among=lambda c: at_best(c, "lr")),
                Bracket("lr", "val_acc", maximize=True, where=where,
                        by=("optimizer",), among=lambda c: at_best(c, "lambda"))]

    def job(self, cell: dict, data: dict):
        from pipeline.datasets import subset
        from pipeline.engine import Arch, Job, TrainSpec

        x = data[cell["dataset"]]["x_train"]
        if cell["experiment"] == "weight_decay":
            return Job(weight_decay_regression(self.p.weight_decay, x.shape[1]),
                       seed=cell["seed"],
                       lr=self.p.weight_decay.lr, l2_penalty=cell["lambda"])
        n_classes = int(data["images"]["y_train"].max()) + 1
        if cell["experiment"] == "adam_decay":
            ad = self.p.adam_decay
            spec = TrainSpec(Arch((x.shape[1], *ad.hidden, n_classes), "relu"),
                             cell["optimizer"], "cross_entropy", epochs=ad.epochs,
                             batch_size=ad.batch_size, log_every=ad.log_every)
            # AdamW's lambda is a decay per step; torch's AdamW decays by lr x weight_decay
            decay = cell["lambda"] / cell["lr"] if cell["optimizer"] == "adamw" \
                else cell["lambda"]
            return Job(spec, seed=cell["seed"], lr=cell["lr"], weight_decay=decay,
                       rows=subset(data["images"]["y_train"], ad.train_rows, cell["seed"]))
        dr = self.p.dropout
        spec = TrainSpec(Arch((x.shape[1], *dr.hidden, n_classes), "relu"), dr.optimizer,
                         "cross_entropy", epochs=dr.epochs, batch_size=dr.batch_size,
                         log_every=dr.log_every, init="normal", init_scale=dr.init_std)
        return Job(spec, seed=cell["seed"], lr=dr.lr, weight_decay=cell["weight_decay"],
                   dropout=(cell["p1"], cell["p2"]))

    def extras(self, out: StudyOutput, results: list, data: dict) -> None:
        out.cells["weight_norm"] = [float(np.linalg.norm(r.params[0].numpy())) for r in results]
        if "highdim" in data:  # the no-feature baseline: predict the training targets' mean
            d = data["highdim"]
            mean = float(np.mean(d["y_train"], dtype=np.float64))
            out.tables["baseline"] = pd.DataFrame([{
                f"{split}_loss": float(np.mean((np.asarray(d[f"y_{split}"], np.float64)
                                                - mean) ** 2) / 2)
                for split in ("train", "val", "test")}])
        if "train_acc" in out.cells:
            out.cells["gap"] = out.cells["train_acc"] - out.cells["test_acc"]

    def analyze(self, out: StudyOutput) -> Analysis:
        a = Analysis()
        self._weight_decay(a, out.cells, out.tables)
        self._adam_decay(a, out.cells)
        self._dropout(a, out.cells)
        return a

    def _weight_decay(self, a: Analysis, cells: pd.DataFrame, out_tables: dict) -> None:
        wd = cells[cells["experiment"] == "weight_decay"]
        t = a.table("weight_decay", "Weight decay (SGD, d2l) over seeds; losses are "
                    "squared error / 2, as d2l's",
                    stats.summarize(wd, ["lambda", "bracket_round"],
                                    ["weight_norm", "train_loss", "val_loss", "test_loss"]))
        sel = self.brackets()[0].select(cells, {})
        row = t[t["lambda"] == sel.chosen].iloc[0]
        test = F.fmt_interval(row.test_loss_mean, row.test_loss_ci95)
        a.findings.append(F.selection("lambda", sel, "Lambda (SGD)", f"Its test loss is {test} "
                                      f"and ||w|| {F.fmt(row.weight_norm_mean)}.",
                                      stats.null_check(wd, stats.where(wd, {"lambda": sel.chosen}),
                                                       "test_loss", row.test_loss_mean,
                                                       False)))
        a.metric("weight_decay/chosen_lambda", sel.chosen)
        a.metric("weight_decay/chosen_test_loss", row.test_loss_mean, row.test_loss_std)
        if sel.chosen != 0.0 and 0.0 in set(wd["lambda"]):
            c = stats.compare(cells, {"experiment": "weight_decay", "lambda": sel.chosen},
                              {"experiment": "weight_decay", "lambda": 0.0}, "test_loss",
                              label_a=f"lambda {sel.chosen:g}", label_b="no weight decay",
                              higher_is_better=False)
            f = F.comparison("lambda_vs_none", c, "test loss")
            F.add_edge(f, [F.edge_item("", sel)] if sel.edge else [], "Lambda")
            a.findings.append(f)
        if "baseline" in out_tables:
            f = baseline(out_tables["baseline"].iloc[0], t, sel.chosen)
            F.add_edge(f, [F.edge_item("", sel)] if sel.edge else [], "Lambda")
            a.findings.append(f)
        for lam, low, high in ((0.0, 11.5, 15.3), (3.0, 0.33, 0.42)):
            values = wd[wd["lambda"] == lam]["weight_norm"]
            if len(values):
                a.metric(f"weight_decay/weight_norm/{lam:g}", values.mean(), values.std())
                a.references.append(F.reference(
                    f"d2l_weight_norm_{lam:g}", "d2l 4.5 (Weight Decay), from scratch",
                    f"||w|| at lambda {lam:g} between {low} and {high} across the book's builds",
                    f"||w|| at lambda {lam:g}", values, low=low, high=high,
                    # 20 rows move w only within a 20-dimensional subspace: unpenalised, ||w||
                    # stays near the N(0, 1) init's sqrt(d)
                    fixed_by="" if lam else "the init's norm, about sqrt(d)"))
        a.plots["weight_decay"] = pd.DataFrame({"lambda": t["lambda"],
                                                "weight_norm": t["weight_norm_mean"],
                                                "test_loss": t["test_loss_mean"]})
        a.figures.append(Figure("||w|| against lambda (SGD; 95% interval over seeds)", "lines",
                                "table/weight_decay", x="lambda", y=["weight_norm"],
                                logx=True, logy=True, ylabel="||w||"))
        a.figures.append(Figure("Train, validation and test loss against lambda (SGD)", "lines",
                                "table/weight_decay", x="lambda",
                                y=["train_loss", "val_loss", "test_loss"], logx=True,
                                logy=True, ylabel="squared loss / 2"))

    def _adam_decay(self, a: Analysis, cells: pd.DataFrame) -> None:
        ad = cells[cells["experiment"] == "adam_decay"]
        ad = ad.assign(test_err=1 - ad["test_acc"])
        a.table("adam_decay", "Adam + L2 vs AdamW on the image MLP, by learning rate and "
                "lambda, over seeds (bracket_round: 0 for the grid, k for a value added in "
                "round k)", stats.summarize(ad, ["optimizer", "lr", "lambda", "bracket_round"],
                                            ["weight_norm", "val_acc", "test_acc", "test_err"]),
                show=False)
        lam_b, lr_b = self.brackets()[1:]
        best = {form: best_pair(ad, form) for form in FORMS}
        chosen = {}
        for form, (lr, lam) in best.items():
            chosen[f"{FORMS[form]}, lambda at lr {lr:g}"] = lam_b.select(
                cells, {"optimizer": form, "lr": lr})
            chosen[f"{FORMS[form]}, lr at lambda {lam:g}"] = lr_b.select(
                cells, {"optimizer": form})
        a.findings.append(F.selections("adam_choices", chosen, "Learning rates and lambdas"))
        (lr_w, lam_w), (lr_a, lam_a) = best["adamw"], best["adam"]
        c = stats.compare(cells, {"experiment": "adam_decay", "optimizer": "adamw", "lr": lr_w,
                                  "lambda": lam_w},
                          {"experiment": "adam_decay", "optimizer": "adam", "lr": lr_a,
                           "lambda": lam_a}, "test_acc",
                          label_a=f"AdamW (lr {lr_w:g}, lambda {lam_w:g})",
                          label_b=f"Adam + L2 (lr {lr_a:g}, lambda {lam_a:g})")
        finding = F.comparison("adamw_vs_adam", c, "test accuracy, each at its chosen setting")
        F.add_edge(finding, [F.edge_item(label, s) for label, s in chosen.items() if s.edge],
                   "choices", " So this may not compare the two forms at their optima.")
        a.findings.append(finding)
        for form, (lr, lam) in best.items():  # does the decay do anything at all?
            if lam != 0.0 and len(stats.where(ad, {"optimizer": form, "lr": lr,
                                                   "lambda": 0.0})):
                c = stats.compare(cells, {"experiment": "adam_decay", "optimizer": form,
                                          "lr": lr, "lambda": lam},
                                  {"experiment": "adam_decay", "optimizer": form, "lr": lr,
                                   "lambda": 0.0}, "test_acc",
                                  label_a=f"{FORMS[form]} at lambda {lam:g}",
                                  label_b=f"{FORMS[form]} without decay")
                a.findings.append(F.comparison(f"{form}_decay_vs_none", c,
                                               f"test accuracy at lr {lr:g}"))
        a.findings.append(lambda_by_lr(ad, list(self.p.adam_decay.lrs)))
        for form, (lr, lam) in best.items():
            v = stats.where(ad, {"optimizer": form, "lr": lr, "lambda": lam})["test_acc"]
            a.metric(f"adam_decay/{form}/chosen_lr", lr)
            a.metric(f"adam_decay/{form}/chosen_lambda", lam)
            a.metric(f"adam_decay/{form}/chosen_test_acc", v.mean(), v.std())
        a.figures.append(Figure("Test error over learning rate (rows) x lambda (columns), "
                                "Adam + L2 (adam) and AdamW (adamw), mean over seeds, as "
                                "Loshchilov and Hutter draw it", "heatmap", "table/adam_decay",
                                x="lambda", y=["test_err"], col="optimizer",
                                extra={"row": "lr", "titles": ["test error"]}))

    def _dropout(self, a: Analysis, cells: pd.DataFrame) -> None:
        dr = cells[cells["experiment"] == "dropout"]
        t = a.table("dropout", "Dropout p1 x p2 over seeds",
                    stats.summarize(dr, ["p1", "p2"], ["train_acc", "val_acc", "test_acc", "gap"]))
        pairs = dr.assign(rates=dr["p1"].map("{:g}".format) + "/" + dr["p2"].map("{:g}".format))
        sel = choices.select(pairs, "rates", {}, "val_acc", maximize=True)
        p1, p2 = (float(v) for v in sel.chosen.split("/"))
        sel.limit = "; ".join(pair_edges(dr, p1, p2, self.p.dropout.p1, self.p.dropout.p2))
        sel.edge = bool(sel.limit)
        row = t[(t["p1"] == p1) & (t["p2"] == p2)].iloc[0]
        a.findings.append(F.selection(
            "dropout", sel, "Dropout rates p1/p2",
            f"Test accuracy {F.fmt_interval(row.test_acc_mean, row.test_acc_ci95)}, "
            f"train-test gap {F.fmt_interval(row.gap_mean, row.gap_ci95)}.",
            stats.null_check(dr, stats.where(dr, {"p1": p1, "p2": p2}), "test_acc",
                             row.test_acc_mean, True)))
        a.metric("dropout/chosen_p1", p1)
        a.metric("dropout/chosen_p2", p2)
        a.metric("dropout/chosen_test_acc", row.test_acc_mean, row.test_acc_std)
        if (p1, p2) != (0.0, 0.0) and len(stats.where(dr, {"p1": 0.0, "p2": 0.0})):
            for metric, what, hib in (("test_acc", "test accuracy", True),
                                      ("gap", "train-test gap", False)):
                c = stats.compare(cells, {"experiment": "dropout", "p1": p1, "p2": p2},
                                  {"experiment": "dropout", "p1": 0.0, "p2": 0.0}, metric,
                                  label_a=f"dropout {p1:g}/{p2:g}", label_b="no dropout",
                                  higher_is_better=hib)
                f = F.comparison(f"dropout_{metric}", c, what)
                F.add_edge(f, [F.edge_item("", sel)] if sel.edge else [],
                           "Dropout rates p1/p2")
                a.findings.append(f)
        a.figures.append(Figure("Dropout p1 (rows) x p2 (columns): mean over seeds", "heatmap",
                                "table/dropout", x="p2", y=["test_acc", "gap"],
                                extra={"row": "p1", "titles": ["test accuracy",
                                                               "train - test accuracy"]}))
        self._interaction(a, cells)

    def _interaction(self, a: Analysis, cells: pd.DataFrame) -> None:
        it = cells[cells["experiment"] == "interaction"]
        a.table("interaction", "Weight decay x dropout over seeds",
                stats.summarize(it, ["weight_decay", "p1"], ["train_acc", "test_acc", "gap"]))
        top = max(self.p.dropout.weight_decays)
        if top > 0 and 0.0 in self.p.dropout.weight_decays:
            for p in self.p.dropout.interaction_dropouts:
                c = stats.compare(cells, {"experiment": "interaction", "weight_decay": top,
                                          "p1": p},
                                  {"experiment": "interaction", "weight_decay": 0.0, "p1": p},
                                  "test_acc",
                                  label_a=f"weight decay {top:g}", label_b="no weight decay",
                                  higher_is_better=True)
                a.findings.append(F.comparison(f"interaction_{p:g}", c,
                                               f"test accuracy with dropout {p:g}"))
        a.figures.append(Figure("Weight decay x dropout: test accuracy (95% interval over "
                                "seeds)", "bars", "table/interaction", x="weight_decay",
                                y=["test_acc"], hue="p1", ylabel="test accuracy"))

    def setting(self) -> str:
        wd, ad, dr, h = (self.p.weight_decay, self.p.adam_decay, self.p.dropout,
                         self.config.data.highdim)
        return (
            f"Weight decay (d2l 4.5): y = {h.b:g} + sum of {h.d} inputs x {h.w:g} + "
            f"N(0, {h.noise:g}^2), {h.n_train} training, {h.n_val} validation and "
            f"{h.n_test} test rows; linear regression from N(0, {wd.init_std:g}^2) weights, "
            f"squared loss / 2, minibatch {wd.batch_size}, {wd.epochs} epochs. SGD at lr "
            f"{wd.lr:g} with the penalty lambda/2 ||w||^2, lambda in "
            f"{', '.join(f'{v:g}' for v in wd.lambdas)}. "
            f"Adam + L2 vs AdamW (Loshchilov and Hutter 2019): an MLP on the "
            f"{self.config.data.images.source} images with hidden layers of "
            f"{', '.join(map(str, ad.hidden))} ReLU units, torch's init, "
            + (f"each seed's own stratified {ad.train_rows} training images, "
               if ad.train_rows else "")
            + f"batch "
            f"{ad.batch_size}, {ad.epochs} epochs, at learning rates "
            f"{', '.join(f'{v:g}' for v in ad.lrs)}; Adam + L2 with lambda/2 ||w||^2 in its "
            f"gradient, lambda in {', '.join(f'{v:g}' for v in ad.l2)}; AdamW decaying the "
            f"weights by lambda each step (not scaled by the learning rate), lambda in "
            f"{', '.join(f'{v:g}' for v in ad.decay)}; biases are not decayed; the pair "
            f"chosen on validation accuracy per form, then bracketed along each axis. "
            f"Dropout (d2l 4.6): an MLP on the {self.config.data.images.source} images with "
            f"hidden layers of {dr.hidden[0]} and {dr.hidden[1]} ReLU units, N(0, "
            f"{dr.init_std:g}^2) "
            f"init, {dr.optimizer} at lr {dr.lr:g}, batch {dr.batch_size}, {dr.epochs} "
            f"epochs, p1 in {', '.join(f'{v:g}' for v in dr.p1)} and p2 in "
            f"{', '.join(f'{v:g}' for v in dr.p2)}; weight decay "
            f"{', '.join(f'{v:g}' for v in dr.weight_decays)} x dropout "
            f"{', '.join(f'{v:g}' for v in dr.interaction_dropouts)}. The lambda of each "
            f"weight-decay series and the dropout rates of the p1 x p2 grid are chosen on "
            f"validation data; the weight decay x dropout grid is compared cell by cell. "
            f"Means over {len(self.seeds)} seeds.")


STUDY = Regularization
