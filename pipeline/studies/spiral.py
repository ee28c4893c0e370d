"""Spiral: can a linear model separate spiral classes? Which non-linearity helps?

Three experiments on generated spirals:
- course: the NYU DLSP20 notebook 04-spiral_classification as it is: a linear model (two
  stacked linear layers) trained with SGD and a ReLU MLP trained with Adam, both at the
  notebook's learning rate and weight decay (on every parameter, biases included);
  the notebook prints training accuracy, so that is what is compared with it.
- fair: every activation with every optimizer, each at its own learning rate chosen on
  a validation draw of the spiral, compared on a test draw.
- cs231n: Stanford CS231n's case study, a linear softmax classifier and a 2-layer ReLU
  net trained with SGD and an L2 penalty on the CS231n spiral.
"""

from __future__ import annotations

import itertools
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import Field

from pipeline import choices, stats
from pipeline import findings as F
from pipeline.bracketing import Bracket
from pipeline.config import Activation, NonNegFloat, PositiveFloat, PositiveInt, Section, grid
from pipeline.findings import Analysis, Figure
from pipeline.studies.base import Study, StudyOutput

LABELS = {"none": "the linear model (no activation)"}  # in finding sentences

class Course(Section):
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegFloat = 1e-5  # torch.optim's, on every parameter as the notebook


class Fair(Section):
    sgd_lrs: grid(PositiveFloat) = [0.1, 1.0, 10.0]
    adam_lrs: grid(PositiveFloat) = [0.003, 0.03, 0.3]
    epochs: PositiveInt = 200  # full-batch steps, the same for every model


class Cs231n(Section):
    width: PositiveInt = 100
    lr: PositiveFloat = 1.0
    reg: NonNegFloat = 1e-3  # 0.5 * reg * ||W||^2 on the weights
    init_std: PositiveFloat = 0.01
    linear_steps: PositiveInt = 200
    mlp_steps: PositiveInt = 10000


class Params(Section):
    activations: grid(Activation) = ["none", "relu", "leaky_relu", "sigmoid", "tanh", "gelu"]
    width: PositiveInt = 100
    epochs: PositiveInt = 1000  # full-batch steps
    log_every: PositiveInt = 50
    course: Course = Course()
    fair: Fair = Fair()
    cs231n: Cs231n = Cs231n()
    boundary_resolution: Annotated[int, Field(ge=8, le=400)] = 80


COURSE = {"none": "sgd", "relu": "adam"}  # the notebook's pairs


class Spiral(Study):
    name = "spiral"
    order = 1
    answer = ("fair_linear_adam", "fair_best_adam")  # the findings the summary gives
    title = "Spiral: linear vs non-linear"
    question = "Can a linear model separate spiral classes, and which non-linearity helps?"
    Params = Params
    datasets = ("spiral", "spiral_cs231n")

    @classmethod
    def check(cls, config) -> None:
        if "none" not in config.spiral.activations or "relu" not in config.spiral.activations:
            raise ValueError("spiral.activations: the course setting needs 'none' and 'relu'")

    def cells(self) -> list[dict]:
        p, seeds = self.p, self.seeds
        grid_ = [{"experiment": "course", "dataset": "spiral", "model": f"{a} + {o}",
                  "activation": a, "optimizer": o, "lr": p.course.lr, "seed": s}
                 for (a, o), s in itertools.product(COURSE.items(), seeds)]
        lrs = {"sgd": p.fair.sgd_lrs, "adam": p.fair.adam_lrs}
        grid_ += [{"experiment": "fair", "dataset": "spiral", "model": f"{a} + {o}",
                   "activation": a, "optimizer": o, "lr": lr, "seed": s}
                  for a, o in itertools.product(p.activations, ("sgd", "adam"))
                  for lr, s in itertools.product(lrs[o], seeds)]
        grid_ += [{"experiment": "cs231n", "dataset": "spiral_cs231n", "model": m,
                   "activation": "none" if m == "linear" else "relu", "optimizer": "sgd",
                   "lr": p.cs231n.lr, "seed": s}
                  for m, s in itertools.product(("linear", "mlp"), seeds)]
        return grid_

    def job(self, cell: dict, data: dict):
        from pipeline.engine import Arch, Job, TrainSpec

        p = self.p
        arrays = data[cell["dataset"]]
        n_in, n_out = arrays["x_train"].shape[1], int(arrays["y_train"].max()) + 1
        if cell["experiment"] == "cs231n":
            c = p.cs231n
            sizes = (n_in, n_out) if cell["model"] == "linear" else (n_in, c.width, n_out)
            steps = c.linear_steps if cell["model"] == "linear" else c.mlp_steps
            spec = TrainSpec(Arch(sizes, "relu"), "sgd", "cross_entropy", epochs=steps,
                             log_every=max(1, steps // 20), init="normal",
                             init_scale=c.init_std)
            return Job(spec, seed=cell["seed"], lr=c.lr, l2_penalty=c.reg)
        epochs = p.fair.epochs if cell["experiment"] == "fair" else p.epochs
        spec = TrainSpec(Arch((n_in, p.width, n_out), cell["activation"]), cell["optimizer"],
                         "cross_entropy", epochs=epochs, log_every=p.log_every,
                         decay_bias=True)
        return Job(spec, seed=cell["seed"], lr=cell["lr"], weight_decay=p.course.weight_decay)

    def brackets(self) -> list[Bracket]:
        """The fair comparison's learning rate, per activation and optimizer."""
        return [Bracket("lr", "val_acc", maximize=True, where={"experiment": "fair"},
                        by=("activation", "optimizer"))]

    # ---------------------------------------------------------------- after training

    def chosen_lrs(self, cells: pd.DataFrame) -> dict[tuple[str, str], choices.Selection]:
        """Per activation and optimizer, the learning rate chosen on validation accuracy."""
        fair = self.brackets()[0]
        return {(a, o): fair.select(cells, {"activation": a, "optimizer": o})
                for a, o in itertools.product(self.p.activations, ("sgd", "adam"))}

    def extras(self, out: StudyOutput, results: list, data: dict) -> None:
        from pipeline.engine import predict

        picked = self.chosen_lrs(out.cells)
        out.tables["choices"] = pd.DataFrame(
            [{"activation": a, "optimizer": o, "lr": s.chosen, "val_acc": s.value,
              "limit": s.limit} for (a, o), s in picked.items()])
        # decision boundaries: first seed; the course pair and every activation with Adam
        from pipeline.datasets import draw

        arrays = draw(data["spiral"], self.seeds[0])  # the first seed's training points
        g0, g1 = boundary_mesh(arrays["x_train"], self.p.boundary_resolution)
        import torch

        mesh = torch.tensor(np.stack([g0, g1], axis=1), dtype=torch.float32)
        frames = []
        for i, c in enumerate(out.cells.to_dict("records")):
            if c["seed"] != self.seeds[0] or c["experiment"] == "cs231n":
                continue
            if c["experiment"] == "fair" and (c["optimizer"] != "adam" or
                                              c["lr"] != picked[(c["activation"], "adam")].chosen):
                continue
            label = (f"course: {c['model']}" if c["experiment"] == "course"
                     else f"{c['activation']} + adam, lr {c['lr']:g}")
            pred = predict(results[i].job.spec.arch, results[i].params, mesh).argmax(1).numpy()
            frames.append(pd.DataFrame({"panel": label, "x0": g0, "x1": g1,
                                        "predicted": pred}))
        out.tables["boundaries"] = pd.concat(frames, ignore_index=True)
        step = max(1, len(arrays["x_train"]) // 600)  # a sample of the training points
        out.tables["points"] = pd.DataFrame({"x0": arrays["x_train"][::step, 0],
                                             "x1": arrays["x_train"][::step, 1],
                                             "y": arrays["y_train"][::step]})

    def analyze(self, out: StudyOutput) -> Analysis:
        a = Analysis()
        cells = out.cells
        self._course(a, cells, out.curves)
        self._fair(a, cells, out.tables["choices"], self.chosen_lrs(cells))
        self._cs231n(a, cells)
        a.figures.append(Figure("Decision boundaries (first seed): the course pair, and every "
                                "activation with Adam at its chosen learning rate",
                                "classmap", "result/boundaries",
                                extra={"points": "result/points"}))
        return a

    def _course(self, a: Analysis, cells: pd.DataFrame, curves: pd.DataFrame) -> None:
        course = cells[cells["experiment"] == "course"]
        t = a.table("course", "Course setting over seeds",
                    stats.summarize(course, ["model"], ["train_acc", "test_acc", "train_loss"]))
        c = stats.compare(cells, {"experiment": "course", "activation": "relu"},
                          {"experiment": "course", "activation": "none"}, "train_acc",
                          label_a="the ReLU MLP with Adam", label_b="the linear model with SGD")
        a.findings.append(F.comparison("course", c, "training accuracy in the course setting"))
        for act, published in (("none", 0.504), ("relu", 0.949)):
            row = t[t["model"] == f"{act} + {COURSE[act]}"].iloc[0]
            a.metric(f"course/train_acc/{act}", row["train_acc_mean"], row["train_acc_std"])
            a.references.append(F.reference(
                f"dlsp20_{act}", "NYU DLSP20, notebook 04-spiral_classification",
                f"{'linear model' if act == 'none' else 'ReLU MLP'}: training accuracy "
                f"{published} after 1000 steps", f"training accuracy, course setting, "
                f"{row['model']}", course[course["activation"] == act]["train_acc"],
                value=published, tolerance=0.02, draws=self.config.data.spiral.data_seeds))
        acc = (curves[curves["experiment"] == "course"]
               .groupby(["epoch", "activation"])["train_acc"].mean().unstack("activation"))
        a.plots["course_accuracy"] = pd.DataFrame(
            {"epoch": acc.index, "linear": acc["none"].to_numpy(),
             "relu": acc["relu"].to_numpy()})
        a.table("course_curves", "Course setting: training accuracy by epoch",
                stats.summarize(curves[curves["experiment"] == "course"], ["model", "epoch"],
                                ["train_acc"]), show=False)
        a.figures.append(Figure("Course setting: training accuracy by epoch (95% interval "
                                "over seeds)", "lines", "table/course_curves", x="epoch",
                                y=["train_acc"], hue="model", ylabel="training accuracy"))

    def _fair(self, a: Analysis, cells: pd.DataFrame, picked: pd.DataFrame,
              chosen_lrs: dict[tuple[str, str], choices.Selection]) -> None:
        fair = cells[cells["experiment"] == "fair"]
        a.table("fair", "Every activation, optimizer and learning rate, over seeds "
                "(bracket_round: 0 for the grid, k for a rate added in round k)",
                stats.summarize(fair, ["activation", "optimizer", "lr", "bracket_round"],
                                ["val_acc", "test_acc", "train_acc"]))
        selections = {f"{a_} + {o}": s for (a_, o), s in chosen_lrs.items()}
        a.findings.append(F.selections("fair_lrs", selections, "Learning rates"))
        a.findings.append(F.diverged(
            "fair_diverged", fair, ["activation", "optimizer", "lr"],
            lambda r: f"{r['activation']} + {r['optimizer']} at lr {r['lr']:g}",
            " in the fair comparison's grid"))
        chosen = fair.merge(picked[["activation", "optimizer", "lr"]])
        a.table("fair_chosen", "Each activation and optimizer at its chosen learning rate",
                stats.summarize(chosen, ["activation", "optimizer", "lr"],
                                ["val_acc", "test_acc"]))
        for opt in ("sgd", "adam"):
            cand = {r.activation: {"experiment": "fair", "activation": r.activation,
                                   "optimizer": opt, "lr": r.lr}
                    for r in picked[picked["optimizer"] == opt].itertuples()}
            named = {LABELS.get(k, k): v for k, v in cand.items()}
            b = choices.best_of(cells, named, "test_acc", choose_on="val_acc")
            f = F.best(f"fair_best_{opt}", b, "test accuracy", f"activations trained with {opt}")
            mine = picked[picked["optimizer"] == opt]
            edge = {r.activation: f"{LABELS.get(r.activation, r.activation)} ({r.lr:g}, "
                                  f"{_limit(r)})" for r in mine.itertuples() if _limit(r)}
            F.add_edge(f, list(edge.values()), "learning rates")
            a.findings.append(f)
            nonlinear = {k: v for k, v in cand.items() if k != "none"}
            top = choices.best_of(cells, nonlinear, "val_acc").top if nonlinear else ""
            if top and "none" in cand:  # the network picked on validation, not test
                c = stats.compare(cells, cand[top], cand["none"], "test_acc",
                                  label_a=f"{top} with {opt} (the network best on validation)",
                                  label_b=f"the linear model with {opt}")
                f = F.comparison(f"fair_linear_{opt}", c, "test accuracy")
                F.add_edge(f, [edge[k] for k in (top, "none") if k in edge], "learning rates")
                a.findings.append(f)
            for act, match in cand.items():
                v = stats.where(cells, match)["test_acc"]
                a.metric(f"fair/{opt}/test_acc/{act}", v.mean(), v.std())
        a.figures.append(Figure("Test accuracy of each activation at its chosen learning rate "
                                "(95% interval over seeds)", "bars", "table/fair_chosen",
                                x="activation", y=["test_acc"], hue="optimizer",
                                ylabel="test accuracy"))
        a.figures.append(Figure("Validation accuracy against the learning rate, the numbers "
                                "the choice is made on (diverged runs left out)", "lines",
                                "table/fair", x="lr", y=["val_acc"], hue="activation",
                                col="optimizer", logx=True, ylabel="validation accuracy"))

    def _cs231n(self, a: Analysis, cells: pd.DataFrame) -> None:
        cs = cells[cells["experiment"] == "cs231n"]
        t = a.table("cs231n", "CS231n case study over seeds",
                    stats.summarize(cs, ["model"], ["train_acc", "test_acc"]))
        c = stats.compare(cells, {"experiment": "cs231n", "model": "mlp"},
                          {"experiment": "cs231n", "model": "linear"}, "train_acc",
                          label_a="the 2-layer ReLU net", label_b="the linear softmax classifier")
        a.findings.append(F.comparison("cs231n", c, "training accuracy on the CS231n spiral"))
        for model, published in (("linear", 0.49), ("mlp", 0.98)):
            row = t[t["model"] == model].iloc[0]
            a.metric(f"cs231n/train_acc/{model}", row["train_acc_mean"], row["train_acc_std"])
            a.references.append(F.reference(
                f"cs231n_{model}", "Stanford CS231n, 'Putting it together: minimal neural "
                "network case study'", f"{'linear softmax' if model == 'linear' else '2-layer net'}"
                f": training accuracy {published:.0%}", f"training accuracy, {model}",
                cs[cs["model"] == model]["train_acc"], value=published, tolerance=0.02,
                draws=self.config.data.spiral_cs231n.data_seeds))

    def setting(self) -> str:
        p, d, d2 = self.p, self.config.data.spiral, self.config.data.spiral_cs231n
        return (
            f"Spirals from the {d.generator} generator: {d.classes} classes of "
            f"{d.points_per_class} training points (noise {d.noise:g}), with independent "
            f"validation and test draws of {d.val_points_per_class} and "
            f"{d.test_points_per_class} points per class. The course and fair models have one "
            f"hidden layer of {p.width} units (the linear model: no activation after it, as in "
            f"the notebook) and weight decay "
            f"{p.course.weight_decay:g} on every parameter. "
            f"Course setting (NYU DLSP20 notebook 04): the linear model with SGD and the ReLU "
            f"MLP with Adam, both at learning rate {p.course.lr:g}, {p.epochs} full-batch "
            f"steps. Fair comparison: each of {', '.join(p.activations)} with SGD (learning "
            f"rates {', '.join(f'{v:g}' for v in p.fair.sgd_lrs)}) and Adam "
            f"({', '.join(f'{v:g}' for v in p.fair.adam_lrs)}) for {p.fair.epochs} "
            f"full-batch steps, the learning rate chosen on validation accuracy. CS231n case "
            f"study: {d2.points_per_class} points per class, "
            f"a linear softmax classifier ({p.cs231n.linear_steps} steps) and a net with "
            f"{p.cs231n.width} ReLU units ({p.cs231n.mlp_steps} steps), SGD at "
            f"{p.cs231n.lr:g}, L2 penalty {p.cs231n.reg:g}, N(0, {p.cs231n.init_std:g}^2) "
            f"init. Means over {len(self.seeds)} seeds.")


def boundary_mesh(x: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = x.min(axis=0) - 0.1, x.max(axis=0) + 0.1
    g0, g1 = np.meshgrid(np.linspace(lo[0], hi[0], resolution),
                         np.linspace(lo[1], hi[1], resolution))
    return g0.ravel(), g1.ravel()


STUDY = Spiral


def _limit(choice) -> str:
    """A choices row's edge, in words ("" for none; a table read back holds NaN there)."""
    return choice.limit if isinstance(choice.limit, str) else ""
