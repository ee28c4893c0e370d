"""Optimizers: SGD, SGD with momentum, Nesterov and Adam across learning rates.

Every optimizer trains the same model for the same budget on the same data: a ReLU MLP
on the spiral (full batch) and on the default images (minibatch), with one learning-rate
grid. Each optimizer's learning rate is chosen on validation accuracy, and the optimizers
are compared at their chosen rates on the test data. Runs whose loss blew up (NaN, inf,
or above `diverge_factor` times the first loss: cross-entropy grows large but stays
finite) are kept and flagged diverged. Reported per run: the first logged epoch whose
training loss reaches a target, and the test accuracy at the epoch of best validation
accuracy (early stopping on validation data) (Goodfellow, Bengio and Courville, "Deep
Learning", ch. 8; Kingma and Ba 2015 for Adam).

A third, small experiment follows Wilson et al. 2017, "The Marginal Value of Adaptive
Gradient Methods in Machine Learning", section 3.3: least squares on a separable problem
with more features than rows, from a zero init. Gradient descent converges to the
minimum-norm solution, which classifies new points by their first feature; the paper
proves adaptive methods put the weight on the always-on features instead and label
every new point with the majority class.
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
from pipeline.config import PositiveFloat, PositiveInt, Section, grid
from pipeline.findings import Analysis, Figure
from pipeline.studies.base import Study, StudyOutput

Kind = Literal["sgd", "momentum", "nesterov", "adam"]


class SpiralPart(Section):
    width: PositiveInt = 100
    epochs: PositiveInt = 100
    log_every: PositiveInt = 5


class ImagesPart(Section):
    hidden: PositiveInt = 128
    batch_size: PositiveInt = 64
    epochs: PositiveInt = 10
    log_every: PositiveInt = 1


class WilsonPart(Section):
    optimizers: grid(Kind) = ["sgd", "adam"]
    lr: PositiveFloat = 0.01
    epochs: PositiveInt = 400
    log_every: PositiveInt = 20


class Params(Section):
    optimizers: grid(Kind) = ["sgd", "momentum", "nesterov", "adam"]
    lrs: grid(PositiveFloat) = [0.0001, 0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]
    momentum: float = Field(default=0.9, gt=0, lt=1)
    target_loss: PositiveFloat = 0.5  # epochs_to_target: first logged epoch at or below
    diverge_factor: float = Field(default=10.0, gt=1)
    spiral: SpiralPart = SpiralPart()
    images: ImagesPart = ImagesPart()
    wilson: WilsonPart = WilsonPart()


class Optimizers(Study):
    name = "optimizers"
    order = 4
    answer = ("spiral_best", "images_best")  # the findings the summary gives
    title = "Optimizers: SGD, momentum, Nesterov, Adam"
    question = ("Which optimizer trains the same model best at its own chosen learning rate, "
                "how fast, and does the fastest one generalise?")
    Params = Params
    datasets = ("spiral", "images", "wilson")

    def cells(self) -> list[dict]:
        p = self.p
        cells = [{"experiment": "lr_sweep", "dataset": d, "optimizer": o, "lr": lr, "seed": s}
                 for d, o, lr, s in itertools.product(("spiral", "images"), p.optimizers,
                                                      p.lrs, self.seeds)]
        return cells + [{"experiment": "wilson", "dataset": "wilson", "optimizer": o,
                         "lr": p.wilson.lr, "seed": s}
                        for o, s in itertools.product(p.wilson.optimizers, self.seeds)]

    def brackets(self) -> list[Bracket]:
        """Each optimizer's learning rate on each dataset."""
        return [Bracket("lr", "val_acc", maximize=True, where={"experiment": "lr_sweep"},
                        by=("dataset", "optimizer"))]

    def job(self, cell: dict, data: dict):
        from pipeline.engine import Arch, Job, TrainSpec

        p = self.p
        arrays = data[cell["dataset"]]
        n_in = arrays["x_train"].shape[1]
        if cell["dataset"] == "wilson":
            spec = TrainSpec(Arch((n_in, 1), "none", bias=False), cell["optimizer"], "half_mse",
                             epochs=p.wilson.epochs, log_every=p.wilson.log_every,
                             init="constant", init_scale=0.0)  # zero: GD finds min-norm
        else:
            part = getattr(p, cell["dataset"])
            width = part.width if cell["dataset"] == "spiral" else part.hidden
            n_out = int(arrays["y_train"].max()) + 1
            spec = TrainSpec(Arch((n_in, width, n_out)), cell["optimizer"], "cross_entropy",
                             epochs=part.epochs, log_every=part.log_every,
                             batch_size=getattr(part, "batch_size", None),
                             diverge_factor=p.diverge_factor)
        momentum = p.momentum if cell["optimizer"] in ("momentum", "nesterov") else 0.0
        return Job(spec, seed=cell["seed"], lr=cell["lr"], momentum=momentum)

    def extras(self, out: StudyOutput, results: list, data: dict) -> None:
        from pipeline.engine import predict

        target = self.p.target_loss
        early, reached = [], []
        for res in results:
            curve = [r for r in res.curve if "val_acc" in r and np.isfinite(r["val_acc"])]
            best = max(curve, key=lambda r: r["val_acc"], default=None)  # first best epoch
            early.append(best["test_acc"] if best else np.nan)
            hit = [r["epoch"] for r in res.curve if r["train_loss"] <= target]
            reached.append(hit[0] if hit else np.nan)
        out.cells["test_acc_at_best_val"] = early
        out.cells["epochs_to_target"] = reached
        x_test, y_test = data["wilson"]["x_test"], data["wilson"]["y_test"][:, 0]
        import torch

        for i, res in enumerate(results):
            if out.cells.loc[i, "dataset"] != "wilson" or res.diverged:
                continue
            w = res.params[0][:, 0].numpy()
            pred = predict(res.job.spec.arch, res.params, torch.as_tensor(x_test))[:, 0].numpy()
            out.cells.loc[i, "test_error"] = float(np.mean(np.sign(pred) != y_test))
            out.cells.loc[i, "w_label"] = float(w[0])
            out.cells.loc[i, "w_constant"] = float(w[1:3].mean())
        out.tables["wilson_majority"] = pd.DataFrame(
            {"minority_fraction": [float(min(np.mean(y_test < 0), np.mean(y_test > 0)))]})

    def analyze(self, out: StudyOutput) -> Analysis:
        a = Analysis()
        sweep = out.cells[out.cells["experiment"] == "lr_sweep"]
        a.table("lr_sweep", "Learning-rate sweep over seeds (bracket_round: 0 for the grid, k "
                "for a rate added in round k)",
                stats.summarize(sweep, ["dataset", "optimizer", "lr", "bracket_round"],
                                ["val_acc", "test_acc", "test_acc_at_best_val", "train_loss"]))
        chosen_rows = []
        for dataset in ("spiral", "images"):
            chosen_rows += self._dataset(a, sweep[sweep["dataset"] == dataset], dataset)
        chosen = pd.DataFrame(chosen_rows)
        curves = out.curves.merge(chosen, on=["dataset", "optimizer", "lr"])
        curves = curves[curves["experiment"] == "lr_sweep"]
        a.table("curves_at_chosen_lr", "Training loss by epoch at each optimizer's chosen "
                "learning rate", stats.summarize(curves, ["dataset", "optimizer", "epoch"],
                                                 ["train_loss", "val_acc"]), show=False)
        wide = (curves[curves["dataset"] == "spiral"].groupby(["epoch", "optimizer"])
                ["train_loss"].mean().unstack("optimizer"))
        a.plots["spiral_loss"] = wide.reindex(columns=self.p.optimizers).reset_index()
        a.findings.append(F.diverged(
            "diverged", sweep, ["dataset", "optimizer", "lr"],
            lambda r: f"{r['optimizer']} at lr {r['lr']:g} on {r['dataset']}",
            " in the learning-rate grid"))
        a.figures.append(Figure("Validation accuracy against the learning rate (diverged runs "
                                "left out; 95% interval over seeds)", "lines", "table/lr_sweep",
                                x="lr", y=["val_acc"], hue="optimizer", col="dataset",
                                logx=True, ylabel="validation accuracy"))
        a.figures.append(Figure("Training loss at each optimizer's chosen learning rate",
                                "lines", "table/curves_at_chosen_lr", x="epoch",
                                y=["train_loss"], hue="optimizer", col="dataset", logy=True,
                                ylabel="training loss"))
        self._wilson(a, out)
        return a

    def _dataset(self, a: Analysis, sweep: pd.DataFrame, dataset: str) -> list[dict]:
        chosen = {o: self.brackets()[0].select(sweep, {"dataset": dataset, "optimizer": o})
                  for o in self.p.optimizers}
        a.findings.append(F.selections(f"{dataset}_lrs", chosen,
                                       f"Learning rates on {dataset}"))
        cand = {o: {"experiment": "lr_sweep", "dataset": dataset, "optimizer": o,
                    "lr": s.chosen} for o, s in chosen.items()}
        b = choices.best_of(sweep, cand, "test_acc", choose_on="val_acc")
        f = F.best(f"{dataset}_best", b, f"test accuracy on {dataset}",
                   "optimizers at their chosen learning rates")
        F.add_edge(f, [F.edge_item(o, s) for o, s in chosen.items() if s.edge],
                   "learning rates")
        a.findings.append(f)
        every = getattr(self.p, dataset).log_every
        resolution = (f" (the loss is logged every {every} epochs: each count is the first "
                      f"logged epoch, up to {every - 1} epochs late)" if every > 1 else
                      " (counted in whole epochs: the first epoch whose loss is at or below "
                      "the target)")
        for o, match in cand.items():
            cells = stats.where(sweep, match)
            a.findings.append(F.censored(
                f"{dataset}_{o}_target", stats.censored(cells["epochs_to_target"]),
                f"On {dataset}, {o} (lr {match['lr']:g}) reaching training loss "
                f"{self.p.target_loss:g}{resolution}"))
            acc = cells[~cells["diverged"]]["test_acc"]
            a.metric(f"{dataset}/{o}/chosen_lr", match["lr"])
            a.metric(f"{dataset}/{o}/test_acc", acc.mean(), acc.std())
        return [{k: m[k] for k in ("dataset", "optimizer", "lr")} for m in cand.values()]

    def _wilson(self, a: Analysis, out: StudyOutput) -> None:
        wilson = out.cells[out.cells["experiment"] == "wilson"]
        t = a.table("wilson", "Wilson et al. construction over seeds",
                    stats.summarize(wilson, ["optimizer"],
                                    ["test_error", "w_label", "w_constant", "train_loss"]))
        minority = float(out.tables["wilson_majority"]["minority_fraction"].iloc[0])
        opts = self.p.wilson.optimizers
        if "sgd" in opts and "adam" in opts:
            c = stats.compare(wilson, {"experiment": "wilson", "optimizer": "sgd"},
                              {"experiment": "wilson", "optimizer": "adam"}, "test_error",
                              label_a="gradient descent", label_b="Adam",
                              higher_is_better=False)
            a.findings.append(F.comparison("wilson", c, "test error on the Wilson et al. "
                                           "construction"))
        for r in t.itertuples():
            a.metric(f"wilson/test_error/{r.optimizer}", r.test_error_mean, r.test_error_std)
        src = "Wilson et al. 2017, section 3.3"
        if "sgd" in opts:
            a.references.append(F.reference(
                "wilson_gd", src, "gradient descent reaches zero test error",
                "test error of SGD (full batch) from a zero init",
                wilson[wilson["optimizer"] == "sgd"]["test_error"], value=0.0, tolerance=0.01))
        for o in (o for o in opts if o == "adam"):
            a.references.append(F.reference(
                f"wilson_{o}", src, "adaptive methods label every test point with the majority "
                "class: the test error is the minority fraction, arbitrarily close to half as "
                f"p nears 1/2 (here {F.fmt(minority)})", f"test error of {o}",
                wilson[wilson["optimizer"] == o]["test_error"], value=minority,
                tolerance=0.01, fixed_by="the test set's minority share"))

    def setting(self) -> str:
        p, w = self.p, self.config.data.wilson
        return (
            f"Optimizers {', '.join(p.optimizers)} (momentum {p.momentum:g} where used), "
            f"learning rates {', '.join(f'{v:g}' for v in p.lrs)}. Spiral: one hidden layer "
            f"of {p.spiral.width} ReLU units, {p.spiral.epochs} full-batch steps. Images: one "
            f"hidden layer of {p.images.hidden}, batch {p.images.batch_size}, "
            f"{p.images.epochs} epochs. Each optimizer's learning rate is chosen on the final "
            f"validation accuracy; a run diverges when its loss is NaN or above "
            f"{p.diverge_factor:g} x its first loss. Wilson et al. 3.3: {w.n_train} training "
            f"rows, P(y = 1) = {w.p_positive:g}, {w.n_test} test rows, least squares from "
            f"zero with {', '.join(p.wilson.optimizers)} at lr {p.wilson.lr:g} for "
            f"{p.wilson.epochs} full-batch steps. Means over {len(self.seeds)} seeds.")


STUDY = Optimizers
