"""Width vs depth: at a matched parameter budget, is deeper-and-narrower or
shallower-and-wider better?

For each budget and depth, the width whose parameter count is closest to the budget
(within a tolerance) gives one ReLU MLP, so every depth competes at the same size; a depth
whose width would be narrower than the outputs is left out (a bottleneck, not depth).
Every model trains with the same optimizer and budget of steps, on the spiral (full batch)
and on the default images (minibatch), each depth at its own learning rate, chosen on
validation accuracy and bracketed. The depth per budget is chosen on validation accuracy
(each at its learning rate), and the depths are compared on test accuracy over seeds
(d2l 5.1; Eldan and Shamir 2016 on the power of depth).
"""

from __future__ import annotations

import itertools
from typing import Annotated

import pandas as pd
from pydantic import Field

from pipeline import choices, stats
from pipeline import findings as F
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
    lrs: grid(PositiveFloat) = [0.003, 0.01, 0.03]  # each depth chooses its own
    spiral: Part = Part(epochs=600, log_every=30, budgets=[100, 300, 1000])
    images: Part = Part(batch_size=64, epochs=40, log_every=5, budgets=[1000, 5000, 20000])


class WidthDepth(Study):
    name = "width_depth"
    order = 5
    # the findings the summary gives: depth at every budget, then the smallest images one
    answer = ("depth_overall", "images_1000")
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
        return [{k: v for k, v in r.items() if k not in ("matched", "narrow")}
                | {"lr": lr, "seed": s}
                for r in self.plan() if r["matched"] and not r["narrow"]
                for lr in self.p.lrs for s in self.seeds]

    def brackets(self) -> list:
        """Each depth's learning rate per dataset and budget; and the depth per dataset and
        budget, among the depths at their own learning rates: one hidden layer is the
        least (a bound), and a deeper net needs a width that matches the budget and is no
        narrower than the outputs."""
        from pipeline.bracketing import Bracket

        return [self._lr_bracket(),
                Bracket("depth", "val_acc", maximize=True, by=("dataset", "budget"),
                        scale="int", bound=1, low=0, feasible=self._feasible,
                        among=self.at_own_lr)]

    @staticmethod
    def _lr_bracket():
        from pipeline.bracketing import Bracket

        return Bracket("lr", "val_acc", maximize=True, by=("dataset", "budget", "depth"))

    def at_own_lr(self, cells: pd.DataFrame) -> pd.DataFrame:
        """The rows of each (dataset, budget, depth) at the learning rate chosen for it on
        validation accuracy (none where every run diverged)."""
        return choices.at_chosen(cells, ["dataset", "budget", "depth"], "lr", "val_acc",
                                 maximize=True)

    def _feasible(self, fixed: dict, depth: int) -> str:
        row = self._matched(fixed["dataset"], fixed["budget"], depth)
        if not row["matched"]:
            return (f"the budget: no width gives {depth} layers {fixed['budget']} parameters "
                    f"within {self.p.tolerance:.0%}")
        if row["narrow"]:
            outputs = self._shape(row["dataset"])[1]
            return (f"the outputs: {depth} layers at {fixed['budget']} parameters would be "
                    f"{row['width']} units wide, narrower than the {outputs} outputs")
        return ""

    def _matched(self, dataset: str, budget: int, depth: int) -> dict:
        n_in, n_out = self._shape(dataset)
        width = matched_width(n_in, n_out, depth, budget)
        count = n_params((n_in, *[width] * depth, n_out))
        return {"dataset": dataset, "budget": budget, "depth": depth, "width": width,
                "n_params": count, "matched": abs(count - budget) <= self.p.tolerance * budget,
                "narrow": width < n_out}

    def extend(self, cell: dict, column: str, value) -> dict:
        if column != "depth":
            return cell | {column: value}
        row = self._matched(cell["dataset"], cell["budget"], value)
        return cell | {k: v for k, v in row.items() if k not in ("matched", "narrow")}

    def job(self, cell: dict, data: dict):
        from pipeline.engine import Arch, Job, TrainSpec

        p = self.p
        part = getattr(p, cell["dataset"])
        n_in, n_out = self._shape(cell["dataset"])
        arch = Arch((n_in, *[cell["width"]] * cell["depth"], n_out), p.activation)
        spec = TrainSpec(arch, p.optimizer, "cross_entropy", epochs=part.epochs,
                         batch_size=part.batch_size, log_every=part.log_every)
        return Job(spec, seed=cell["seed"], lr=cell["lr"])

    def analyze(self, out: StudyOutput) -> Analysis:
        a = Analysis()
        cells = out.cells
        by = ["dataset", "budget", "depth", "width", "n_params"]
        a.table("grid", "Accuracy by budget, depth and learning rate over seeds "
                "(bracket_round: 0 for the grid, k for a value added in round k)",
                stats.summarize(cells, [*by, "lr", "bracket_round"],
                                ["train_acc", "val_acc", "test_acc"]), show=False)
        own_lr = self.at_own_lr(cells)
        t = a.table("accuracy", "Accuracy by budget and depth, each depth at its learning "
                    "rate chosen on validation accuracy, over seeds",
                    stats.summarize(own_lr, [*by, "lr"],
                                    ["train_acc", "val_acc", "test_acc"]))
        depth_bracket, lr_bracket = self.brackets()[1], self._lr_bracket()
        bests = []  # (dataset, budget, Best, label -> depth)
        for dataset, part in cells.groupby("dataset", sort=False):
            chosen, lrs = {}, {}
            for budget, b_cells in part.groupby("budget"):
                depths = sorted(b_cells["depth"].unique())
                label = f"{budget} parameters"
                own = {}
                for d in depths:
                    own[d] = lr_bracket.select(b_cells, {"dataset": dataset, "budget": budget,
                                                         "depth": d})
                    lrs[f"{budget} parameters, depth {d}"] = own[d]
                if len(depths) < 2:
                    continue
                chosen[label] = depth_bracket.select(
                    b_cells, {"dataset": dataset, "budget": budget})
                cand = {f"depth {d}": {"dataset": dataset, "budget": budget, "depth": d,
                                       "lr": own[d].chosen} for d in depths}
                b = choices.best_of(b_cells, cand, "test_acc", choose_on="val_acc")
                bests.append((dataset, budget, b, {k: int(v["depth"]) for k, v in cand.items()}))
                f = F.best(f"{dataset}_{budget}", b,
                           f"test accuracy on {dataset} at {budget} parameters", "depths")
                top = int(cand[b.top]["depth"]) if b.top else None
                limit = ("" if top is None else chosen[label].limit
                         if chosen[label].chosen == top
                         else choices.edge_limit(top, depths, bound=1))
                if limit:
                    F.add_edge(f, [f"{b.top} ({limit})"], "depth")
                a.findings.append(f)
                for d in depths:
                    v = stats.where(b_cells, cand[f"depth {d}"])["test_acc"]
                    a.metric(f"{dataset}/{budget}/depth_{d}", v.mean(), v.std())
            if lrs:
                a.findings.append(F.selections(f"{dataset}_lrs", lrs,
                                               f"Learning rates on {dataset}"))
            if chosen:
                a.findings.append(F.selections(f"{dataset}_depths", chosen,
                                               f"Depths on {dataset} (each at its learning "
                                               "rate)"))
        if bests:
            a.findings.append(self._overall(bests, own_lr))
        skipped = self._unmatched()
        if skipped:
            a.findings.append(F.estimate(
                "unmatched", "No width matches these budgets within "
                f"{self.p.tolerance:.0%}, so they are left out: " + ", ".join(skipped) + ".",
                unmatched=skipped))
        narrow = self._narrow()
        if narrow:
            a.findings.append(F.estimate(
                "narrow", "Left out as narrower than their outputs (a bottleneck, not "
                "depth): " + ", ".join(narrow) + ".", narrow=narrow))
        a.plots["spiral_accuracy"] = (t[t["dataset"] == "spiral"]
                                      .pivot_table(index="depth", columns="budget",
                                                   values="test_acc_mean")
                                      .rename(columns=lambda b: f"budget_{b}").reset_index())
        a.figures.append(Figure("Test accuracy against depth at matched parameter budgets "
                                "(95% interval over seeds)", "lines", "table/accuracy",
                                x="depth", y=["test_acc"], hue="budget", col="dataset",
                                ylabel="test accuracy"))
        return a

    @staticmethod
    def _overall(bests: list, mine: pd.DataFrame) -> F.Finding:
        """Across every budget: does a deeper network ever beat a shallower one? From each
        budget's comparisons of its validation choice with every other depth (at the
        family's level where the choice is not clearly best)."""
        deeper, shallower, ones, backing = [], [], 0, []
        for dataset, budget, b, depth in bests:
            ones += bool(b.top) and depth[b.top] == 1
            for c in b.comparisons:
                if c.winner is None:
                    continue
                won, lost = ((c.label_a, c.label_b) if c.verdict == "a"
                             else (c.label_b, c.label_a))
                setting = f"{dataset} at {budget} parameters"
                (deeper if depth[won] > depth[lost] else shallower).append(
                    f"{setting}, {won} over {lost}")
                backing.append(c.to_dict() | {"setting": setting})
        n = len(bests)
        chose = f"validation chose depth 1 at {ones} of the {n} budgets"
        if deeper:
            text = (f"A deeper network beats a shallower one in {len(deeper)} comparison"
                    f"{'s' * (len(deeper) > 1)}: {'; '.join(deeper)}; {chose}.")
        else:
            text = (f"No budget showed depth helping: no deeper network beats a shallower "
                    f"one at any of the {n}, and {chose}.")
        if shallower:
            text += (" Where a difference shows, the shallower network wins: "
                     + "; ".join(shallower) + ".")
        late = mine[mine["converged"] == 0]
        if len(late):
            by_depth = late.groupby("depth").size()
            text += (f" Not converged: {len(late)} of {len(mine)} runs at the chosen learning "
                     "rates (" + ", ".join(f"depth {d}: {k}" for d, k in by_depth.items())
                     + ").")
        # the comparisons behind each "over" (the budgets' own, drawn in their forest rows)
        return F.estimate("depth_overall", text, deeper=deeper, shallower=shallower,
                          depth_1_chosen=ones, budgets=n, unconverged=int(len(late)),
                          backing=backing)

    def _unmatched(self) -> list[str]:
        return [f"{r['dataset']} depth {r['depth']} at {r['budget']}" for r in self.plan()
                if not r["matched"]]

    def _narrow(self) -> list[str]:
        return [f"{r['dataset']} depth {r['depth']} at {r['budget']} (width {r['width']})"
                for r in self.plan() if r["matched"] and r["narrow"]]

    def setting(self) -> str:
        p = self.p
        parts = "; ".join(
            f"{d}: budgets {', '.join(map(str, part.budgets))} parameters, {part.epochs} "
            f"epochs, {'full batch' if part.batch_size is None else f'batch {part.batch_size}'}"
            for d, part in (("spiral", p.spiral), ("images", p.images)))
        return (f"Depths {', '.join(map(str, p.depths))}, each at the width whose parameter "
                f"count is closest to the budget (within {p.tolerance:.0%}); {p.activation} "
                f"units, no hidden layer narrower than the outputs; {p.optimizer}, each depth "
                f"at its own learning rate, chosen on validation accuracy from "
                f"{', '.join(f'{lr:g}' for lr in p.lrs)} and bracketed. {parts}. The depth per "
                f"budget is chosen on validation accuracy, each depth at its learning rate. "
                f"Means over {len(self.seeds)} seeds.")


STUDY = WidthDepth
