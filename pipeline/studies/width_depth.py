"""Width vs depth: at a matched parameter budget, is deeper-and-narrower or
shallower-and-wider better?

For each budget and depth, the width whose parameter count is closest to the budget
(within a tolerance) gives one ReLU MLP, so every depth competes at the same size. Every
model trains with the same optimizer and budget of steps, on the spiral (full batch) and
on the default images (minibatch). The depth per budget is chosen on validation
accuracy, and the depths are compared on test accuracy over seeds (d2l 5.1; Eldan and
Shamir 2016 on the power of depth).
"""

from __future__ import annotations

import itertools
from typing import Annotated

from pydantic import Field

from pipeline import findings as F
from pipeline import stats
from pipeline.config import Activation, Optimizer, PositiveFloat, PositiveInt, Section, grid
from pipeline.findings import Analysis, Figure
from pipeline.specs import matched_width, n_params
from pipeline.studies.base import Study, StudyOutput


class Part(Section):
    batch_size: PositiveInt | None = None  # None: full batch
    epochs: PositiveInt = 300
    log_every: PositiveInt = 50
    budgets: grid(PositiveInt) = [1000, 5000]


class Params(Section):
    depths: grid(Annotated[int, Field(ge=1, le=12)]) = [1, 2, 3, 4]
    tolerance: Annotated[float, Field(gt=0, lt=1)] = 0.1  # |params - budget| / budget
    activation: Activation = "relu"
    optimizer: Optimizer = "adam"
    lr: PositiveFloat = 0.01
    spiral: Part = Part(epochs=150, budgets=[100, 300, 1000])
    images: Part = Part(batch_size=64, epochs=20, log_every=5, budgets=[1000, 5000, 20000])


class WidthDepth(Study):
    name = "width_depth"
    order = 5
    answer = ("images_1000", "spiral_1000")  # the findings the summary gives
    title = "Width vs depth"
    question = ("At a matched parameter budget, is a deeper, narrower MLP better than a "
                "shallower, wider one?")
    Params = Params
    datasets = ("spiral", "images")

    def _shape(self, dataset: str) -> tuple[int, int]:
        d = self.config.data
        if dataset == "spiral":
            return 2, d.spiral.classes
        return (64 if d.images.source == "digits" else 784), 10

    def plan(self) -> list[dict]:
        """Per dataset, budget and depth: the matched width and its parameter count."""
        return [self._matched(dataset, budget, depth) for dataset in ("spiral", "images")
                for budget, depth in itertools.product(getattr(self.p, dataset).budgets,
                                                       self.p.depths)]

    def cells(self) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "matched"} | {"seed": s}
                for r in self.plan() if r["matched"] for s in self.seeds]

    def brackets(self) -> list:
        """The depth per dataset and budget: one hidden layer is the least (a bound), and a
        deeper net needs a width that matches the budget."""
        from pipeline.bracketing import Bracket

        return [Bracket("depth", "val_acc", maximize=True, by=("dataset", "budget"),
                        scale="int", bound=1, low=0, feasible=self._feasible)]

    def _feasible(self, fixed: dict, depth: int) -> str:
        row = self._matched(fixed["dataset"], fixed["budget"], depth)
        return "" if row["matched"] else (
            f"the budget: no width gives {depth} layers {fixed['budget']} parameters within "
            f"{self.p.tolerance:.0%}")

    def _matched(self, dataset: str, budget: int, depth: int) -> dict:
        n_in, n_out = self._shape(dataset)
        width = matched_width(n_in, n_out, depth, budget)
        count = n_params((n_in, *[width] * depth, n_out))
        return {"dataset": dataset, "budget": budget, "depth": depth, "width": width,
                "n_params": count, "matched": abs(count - budget) <= self.p.tolerance * budget}

    def extend(self, cell: dict, column: str, value) -> dict:
        row = self._matched(cell["dataset"], cell["budget"], value)
        return cell | {k: v for k, v in row.items() if k != "matched"}

    def job(self, cell: dict, data: dict):
        from pipeline.engine import Arch, Job, TrainSpec

        p = self.p
        part = getattr(p, cell["dataset"])
        n_in, n_out = self._shape(cell["dataset"])
        arch = Arch((n_in, *[cell["width"]] * cell["depth"], n_out), p.activation)
        spec = TrainSpec(arch, p.optimizer, "cross_entropy", epochs=part.epochs,
                         batch_size=part.batch_size, log_every=part.log_every)
        return Job(spec, seed=cell["seed"], lr=p.lr)

    def analyze(self, out: StudyOutput) -> Analysis:
        a = Analysis()
        cells = out.cells
        t = a.table("accuracy", "Accuracy by budget and depth over seeds (bracket_round: 0 "
                    "for the grid, k for a depth added in round k)",
                    stats.summarize(cells, ["dataset", "budget", "depth", "width", "n_params",
                                            "bracket_round"],
                                    ["train_acc", "val_acc", "test_acc"]))
        for dataset, part in cells.groupby("dataset", sort=False):
            chosen = {}
            for budget, b_cells in part.groupby("budget"):
                depths = sorted(b_cells["depth"].unique())
                label = f"{budget} parameters"
                if len(depths) < 2:
                    continue
                chosen[label] = self.brackets()[0].select(
                    b_cells, {"dataset": dataset, "budget": budget})
                cand = {f"depth {d}": {"dataset": dataset, "budget": budget, "depth": d}
                        for d in depths}
                b = stats.best_of(b_cells, cand, "test_acc", choose_on="val_acc")
                f = F.best(f"{dataset}_{budget}", b,
                           f"test accuracy on {dataset} at {budget} parameters", "depths")
                top = int(cand[b.top]["depth"]) if b.top else None
                limit = ("" if top is None else chosen[label].limit
                         if chosen[label].chosen == top
                         else stats.edge_limit(top, depths, bound=1))
                if limit:
                    f.text += F.edge_note([f"{b.top} ({limit})"], "depth")
                a.findings.append(f)
                for d in depths:
                    v = stats.where(b_cells, cand[f"depth {d}"])["test_acc"]
                    a.metric(f"{dataset}/{budget}/depth_{d}", v.mean(), v.std())
            if chosen:
                a.findings.append(F.selections(f"{dataset}_depths", chosen,
                                               f"Depths on {dataset}"))
        skipped = self._unmatched()
        if skipped:
            a.findings.append(F.estimate(
                "unmatched", "No width matches these budgets within "
                f"{self.p.tolerance:.0%}, so they are left out: " + ", ".join(skipped) + ".",
                unmatched=skipped))
        a.plots["spiral_accuracy"] = (t[t["dataset"] == "spiral"]
                                      .pivot_table(index="depth", columns="budget",
                                                   values="test_acc_mean")
                                      .rename(columns=lambda b: f"budget_{b}").reset_index())
        a.figures.append(Figure("Test accuracy against depth at matched parameter budgets "
                                "(95% interval over seeds)", "lines", "table/accuracy",
                                x="depth", y=["test_acc"], hue="budget", col="dataset",
                                ylabel="test accuracy"))
        return a

    def _unmatched(self) -> list[str]:
        return [f"{r['dataset']} depth {r['depth']} at {r['budget']}" for r in self.plan()
                if not r["matched"]]

    def setting(self) -> str:
        p = self.p
        parts = "; ".join(
            f"{d}: budgets {', '.join(map(str, part.budgets))} parameters, {part.epochs} "
            f"epochs, {'full batch' if part.batch_size is None else f'batch {part.batch_size}'}"
            for d, part in (("spiral", p.spiral), ("images", p.images)))
        return (f"Depths {', '.join(map(str, p.depths))}, each at the width whose parameter "
                f"count is closest to the budget (within {p.tolerance:.0%}); {p.activation} "
                f"units, {p.optimizer} at lr {p.lr:g}. {parts}. The depth per budget is "
                f"chosen on validation accuracy. Means over {len(self.seeds)} seeds.")


STUDY = WidthDepth
