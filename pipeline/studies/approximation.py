"""Universal approximation: one hidden layer, growing width, fitting 1-D functions.

The universal approximation theorem (Cybenko 1989; Hornik 1991) says one hidden layer
of enough units approximates any continuous function on a bounded interval; d2l 5.1
states it and warns that "enough" can be many. Here one hidden ReLU layer of width 1 to
about 1000 fits a smooth target (sin 3x), one with a kink (|x|) and a step, on an even
grid of the interval, and the mean and largest error are measured on a denser grid.
Depth against width: Telgarsky (2016) shows functions with many oscillations, such as a
sawtooth, that a deep narrow ReLU net writes with few parameters and a shallow one only
with a unit per tooth (one hidden layer of width w writes at most w + 1 linear pieces; T
teeth are 2T pieces). At a budget where one hidden layer has fewer units than the
sawtooth has pieces, MLPs of several depths, each at its own learning rate (bracketed on
training loss), fit sawtooths of a few and of many teeth; the finding per sawtooth says
which depth fits best, if any, beside the null model (the training mean) and the runs
that collapsed to a constant, and Telgarsky's construction (depth log2(T) + 1, width 2,
written out, not trained) shows what the deep networks could write.
"""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from pipeline import choices, stats
from pipeline import findings as F
from pipeline.config import PositiveFloat, PositiveInt, Section, grid
from pipeline.findings import Analysis, Figure
from pipeline.specs import matched_width, n_params
from pipeline.studies._approximation import folding, is_power_of_two, telgarsky, width_trend
from pipeline.studies.base import Study, StudyOutput

Target = Literal["sin", "abs", "step"]


class Depth(Section):
    depths: grid(PositiveInt) = [1, 2, 3, 4]
    budget: PositiveInt = 50  # parameters: one hidden layer of 16 units, 17 linear pieces
    tolerance: float = Field(default=0.1, gt=0, lt=1)
    lrs: grid(PositiveFloat) = [0.003, 0.01, 0.03]  # Adam's, per sawtooth and depth
    # full-batch Adam steps for every depth: none stops at a plateau, so that a deeper
    # network, which may sit on one for a while, trains as long as a shallow one
    epochs: PositiveInt = 6000


class Params(Section):
    widths: grid(PositiveInt) = [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024]
    targets: grid(Target) = ["sin", "abs", "step"]
    activation: Literal["relu", "tanh", "sigmoid"] = "relu"
    lr: PositiveFloat = 0.01
    epochs: PositiveInt = 2400  # full-batch Adam steps; with until_converged, the bound
    # train each model until it converges (converge_tol), at most its epochs: the question
    # is about the best fit a width or depth can reach
    until_converged: bool = True
    depth: Depth = Depth()


class Approximation(Study):
    name = "approximation"
    order = 8

    title = "Universal approximation: width, and depth against width"
    question = ("Does the error of one hidden layer fall as it widens, and at an equal "
                "parameter count, does depth beat width on a function with many teeth?")
    Params = Params
    datasets = ("functions",)

    @property
    def answer(self) -> tuple[str, ...]:
        """The findings the summary gives: the width trend, and on the sawtooth of most
        teeth, how near the best trained network came to it beside the null model and what
        a depth could write, then the depths compared."""
        most = max(self.teeth)
        return ("width_trend_sin", f"fit_{most}", f"depth_{most}")

    @property
    def teeth(self) -> list[int]:
        return list(self.config.data.functions.teeth)

    def arrays(self, data: dict) -> dict:
        """One training set per target: functions/NAME (sawtooth_T for T teeth)."""
        d = data["functions"]
        names = set(self.p.targets) | {f"sawtooth_{t}" for t in self.teeth}
        return {f"functions/{t}": {"x_train": d["x_train"], "x_test": d["x_test"],
                                   "y_train": d[f"y_train_{t}"], "y_test": d[f"y_test_{t}"]}
                for t in sorted(names)}

    def shown_widths(self) -> set[int]:
        """The widths whose fits are drawn: the narrowest, the widest, and those nearest
        8 and 64 units."""
        w = sorted(self.p.widths)
        return {w[0], w[-1]} | {min(w, key=lambda v: abs(v - t)) for t in (8, 64)}

    def depth_plan(self) -> list[dict]:
        q = self.p.depth
        rows = []
        for depth in q.depths:
            width = matched_width(1, 1, depth, q.budget)
            count = n_params((1, *[width] * depth, 1))
            rows.append({"depth": depth, "width": width, "n_params": count,
                         "matched": abs(count - q.budget) <= q.tolerance * q.budget})
        return rows

    def cells(self) -> list[dict]:
        p = self.p
        cells = [{"experiment": "width", "dataset": f"functions/{t}", "target": t,
                  "depth": 1, "width": w, "n_params": n_params((1, w, 1)), "seed": s}
                 for t, w, s in itertools.product(p.targets, p.widths, self.seeds)]
        cells = [c | {"teeth": None, "lr": p.lr} for c in cells]
        return cells + [{"experiment": "depth", "dataset": f"functions/sawtooth_{t}",
                         "target": "sawtooth", "teeth": t, "depth": r["depth"],
                         "width": r["width"], "n_params": r["n_params"], "lr": lr, "seed": s}
                        for t in self.teeth for r in self.depth_plan() if r["matched"]
                        for lr in p.depth.lrs for s in self.seeds]

    def brackets(self) -> list:
        """Each depth's learning rate per sawtooth, on training loss: the question is how
        well a depth can fit, and the functions have no validation points."""
        from pipeline.bracketing import Bracket

        return [Bracket("lr", "train_loss", maximize=False, where={"experiment": "depth"},
                        by=("teeth", "depth"))]

    def at_own_lr(self, cells: pd.DataFrame) -> pd.DataFrame:
        """The depth runs of each sawtooth and depth at the learning rate chosen for it on
        training loss (the smallest where every run failed, so that they are counted)."""
        return choices.at_chosen(cells[cells["experiment"] == "depth"], ["teeth", "depth"],
                                 "lr", "train_loss", maximize=False, all_failed="smallest")

    def job(self, cell: dict, data: dict):
        from pipeline.engine import Arch, Job, TrainSpec

        p = self.p
        width = cell["experiment"] == "width"
        epochs = p.epochs if width else p.depth.epochs
        stop = p.until_converged and width  # depth: the same steps for every depth
        arch = Arch((1, *[cell["width"]] * cell["depth"], 1), p.activation)
        spec = TrainSpec(arch, "adam", "mse", epochs=epochs,
                         log_every=max(1, epochs // (40 if stop or not width else 10)),
                         stop_tol=self.config.converge_tol if stop else None)
        return Job(spec, seed=cell["seed"], lr=cell["lr"])

    def extras(self, out: StudyOutput, results: list, data: dict) -> None:
        """The mean and the largest absolute error on the dense test grid."""
        import torch

        from pipeline.engine import predict

        arrays = self.arrays(data)
        rows = []
        for i, (cell, res) in enumerate(zip(out.cells.to_dict("records"), results)):
            a = arrays[cell["dataset"]]
            x = torch.as_tensor(a["x_test"])
            err = np.abs(predict(res.job.spec.arch, res.params, x)[:, 0].numpy()
                         - a["y_test"][:, 0])
            out.cells.loc[i, "mean_error"] = float(err.mean())
            out.cells.loc[i, "max_error"] = float(err.max())
            if cell["seed"] == self.seeds[0] and cell["width"] in self.shown_widths() \
                    and cell["experiment"] == "width":
                pred = predict(res.job.spec.arch, res.params, x)[:, 0].numpy()
                rows.append(pd.DataFrame({"target": cell["target"], "width": cell["width"],
                                          "x": a["x_test"][:, 0], "fit": pred,
                                          "truth": a["y_test"][:, 0]}))
        out.tables["fits"] = pd.concat(rows, ignore_index=True)
        d = data["functions"]
        out.tables["construction"] = pd.DataFrame(
            [telgarsky(t, d["x_test"][:, 0], d[f"y_test_sawtooth_{t}"][:, 0],
                       self.config.data.functions.interval)
             for t in self.teeth if is_power_of_two(t)],
            columns=["teeth", "depth", "width", "n_params", "test_loss"])

    def _depth(self, a: Analysis, out: StudyOutput) -> None:
        """Per sawtooth: the best depth at its own learning rate (chosen on training loss),
        beside the null model, the runs that collapsed and Telgarsky's construction."""
        p, cells = self.p, out.cells
        own = self.at_own_lr(cells).astype({"teeth": int})
        a.table("depth", f"Sawtooths, depth against width at about {p.depth.budget} "
                "parameters, each depth at its learning rate (chosen on training loss), "
                "over seeds", stats.summarize(
                    own, ["teeth", "depth", "width", "n_params", "lr"],
                    ["mean_error", "max_error", "train_loss", "test_loss", "null_test_loss"]))
        built = out.tables.get("construction", pd.DataFrame(columns=["teeth"]))
        for t, rows in own.groupby("teeth", sort=True):
            t = int(t)
            cand = {f"depth {int(r.depth)} x width {int(r.width)}":
                    {"experiment": "depth", "teeth": t, "depth": int(r.depth), "lr": r.lr}
                    for r in rows.drop_duplicates("depth").itertuples()}
            b = choices.best_of(cells, cand, "test_loss", higher_is_better=False,
                                choose_on="train_loss")  # the functions have no validation set
            a.findings.append(F.best(f"depth_{t}", b, f"test MSE on the {t}-tooth sawtooth",
                                     f"networks of about {p.depth.budget} parameters"))
            for d, group in rows.groupby("depth"):
                ok = group[~stats.failed(group)]["test_loss"]
                a.metric(f"sawtooth_{t}/test_loss/depth_{d}", ok.mean(), ok.std())
            a.findings.append(self._fit(t, rows, built[built["teeth"] == t]))
        a.figures.append(Figure(
            f"Test MSE on each sawtooth by depth at about {p.depth.budget} parameters, each "
            "depth at its learning rate (95% interval over the runs that did not collapse); "
            "the training mean's test MSE is the null model's", "lines", "table/depth",
            x="depth", y=["test_loss", "null_test_loss"], col="teeth", logy=True,
            ylabel="test MSE"))

    def _fit(self, teeth: int, rows: pd.DataFrame, built: pd.DataFrame) -> F.Finding:
        """The trained networks' best against the null model, which trained shapes could
        write the sawtooth exactly, Telgarsky's construction, and the runs that collapsed
        to a constant per depth (each depth at its chosen learning rate)."""
        pieces = 2 * teeth
        null = float(rows["null_test_loss"].mean())
        shapes = rows.drop_duplicates("depth")[["depth", "width"]].astype(int).to_numpy()
        ok = rows[~stats.failed(rows)]
        means = ok.groupby("depth")["test_loss"].mean()
        text = f"On the {teeth}-tooth sawtooth ({pieces} linear pieces)"
        if len(means):
            d = int(means.idxmin())
            w = int(rows.loc[rows["depth"] == d, "width"].iloc[0])
            text += (f", the lowest mean test MSE of the trained networks is "
                     f"{F.fmt(means.min())} (depth {d} x width {w}), {means.min() / null:.0%} "
                     f"of the null model's {F.fmt(null)} (the training mean)")
        reach = {f"depth {d} x width {w}": folding(pieces, d, w) for d, w in shapes}
        able = [f"{k} ({'·'.join(map(str, f))})" for k, f in reach.items() if f]
        text += (". Written exactly, by one hidden layer (at most width + 1 pieces) or by "
                 "composing zigzags of at most width pieces per layer, it is within reach of "
                 + (F._listed(able) if able else "none of the trained shapes") + ".")
        if len(built):
            r = built.iloc[0]
            text += (f" Telgarsky's construction, depth {int(r.depth)} of width {int(r.width)} "
                     f"({int(r.n_params)} parameters, written out, not trained), writes it "
                     f"with test MSE {F.fmt(r.test_loss)}.")
        gone = {int(d): (int(g["collapsed"].astype(bool).sum()), len(g))
                for d, g in rows.groupby("depth")}
        text += (" Runs that collapsed to a constant: "
                 + ", ".join(f"depth {d}: {k} of {n}" for d, (k, n) in gone.items()) + ".")
        return F.estimate(f"fit_{teeth}", text, teeth=teeth, null=null,
                          best=float(means.min()) if len(means) else None,
                          reach=reach,
                          collapsed=sum(k for k, _ in gone.values()),  # a count: its tag
                          collapsed_by_depth={d: k for d, (k, _) in gone.items()},
                          construction=built.to_dict("records"))

    def analyze(self, out: StudyOutput) -> Analysis:
        a = Analysis()
        cells, p = out.cells, self.p
        width = cells[cells["experiment"] == "width"]
        t = a.table("width", "Error by width and target over seeds",
                    stats.summarize(width, ["target", "width"],
                                    ["mean_error", "max_error", "train_loss", "test_loss"]))
        wide, narrow = max(p.widths), min(p.widths)
        for target in p.targets:
            c = stats.compare(cells, {"experiment": "width", "target": target, "width": wide},
                              {"experiment": "width", "target": target, "width": narrow},
                              "mean_error", label_a=f"width {wide}",
                              label_b=f"width {narrow}", higher_is_better=False)
            a.findings.append(F.comparison(f"width_{target}", c,
                                           f"mean absolute error on {target}"))
            for r in t[t["target"] == target].itertuples():
                a.metric(f"{target}/mean_error/{r.width}", r.mean_error_mean,
                         r.mean_error_std)
            if len(p.widths) > 2:
                f = width_trend(cells, target)
                a.findings.append(f)
                if f.data["n"]:
                    a.metric(f"{target}/width_trend", f.data["rho"])
        if (cells["experiment"] == "depth").any():
            self._depth(a, out)
        unmatched = [f"depth {r['depth']}" for r in self.depth_plan() if not r["matched"]]
        if unmatched:
            a.findings.append(F.estimate("unmatched", "No width matches the budget within "
                                         f"{p.depth.tolerance:.0%} for: "
                                         + ", ".join(unmatched) + "; left out.",
                                         unmatched=unmatched))
        a.plots["mean_error"] = t.pivot_table(index="width", columns="target",
                                              values="mean_error_mean").reset_index()
        a.figures.append(Figure("Mean and largest absolute error against width (95% interval "
                                "over seeds)", "lines", "table/width", x="width",
                                y=["mean_error", "max_error"], hue="target", logx=True,
                                logy=True, ylabel="absolute error"))
        a.figures.append(Figure("The fits of a few widths (first seed) against the truth",
                                "lines", "result/fits", x="x", y=["fit"], hue="width",
                                col="target", ylabel="f(x)", extra={"truth": "truth"}))
        return a

    def setting(self) -> str:
        p, d = self.p, self.config.data.functions
        names = {"sin": "sin(3x)", "abs": "|x|", "step": "a step (sign x)"}
        targets = ", ".join(names.get(t, t) for t in p.targets)
        return (f"Targets {targets} on [-{d.interval:g}, {d.interval:g}]: "
                f"{d.n_train} training points on an even grid, errors on {d.n_test} test "
                f"points. One hidden {p.activation} layer of width "
                f"{', '.join(map(str, p.widths))}, Adam at lr {p.lr:g} for "
                + (f"at most {p.epochs} full-batch steps, each model until it converged (its "
                   f"training loss falling by less than {self.config.converge_tol:.0%} over a "
                   f"tenth of its bound)" if p.until_converged else
                   f"{p.epochs} full-batch steps")
                + " on the squared error. Depth against width: sawtooths of "
                f"{' and '.join(map(str, d.teeth))} teeth, depths "
                f"{', '.join(map(str, p.depth.depths))} at the width whose parameter count is "
                f"closest to {p.depth.budget} (within {p.depth.tolerance:.0%}), each at its "
                f"own Adam learning rate from {', '.join(f'{v:g}' for v in p.depth.lrs)}, "
                f"chosen on training loss and bracketed, each trained for {p.depth.epochs} "
                "full-batch steps (none stopped at a plateau, so that every depth has the same "
                "steps). The training and test points are grids of one function, so the "
                "training loss a rate is chosen on tracks the test MSE: the depth comparison is "
                f"of fits, not of generalisation. Means over {len(self.seeds)} seeds.")


STUDY = Approximation
