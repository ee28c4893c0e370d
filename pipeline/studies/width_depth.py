"""Width vs depth: at an equal parameter budget, is deeper-and-narrower or
shallower-and-wider better?

A grid of ReLU MLPs, 1..6 hidden layers by 4..512 units, on the spiral (full batch) and
on the default images (minibatch), every model trained with the same optimizer and
budget. The parameter count of each cell is computed from its shape; for a few budgets
the best depth-1 model within the budget is set beside the best deeper one (d2l 5.1;
Eldan and Shamir 2016 on the power of depth).
"""

from __future__ import annotations

import itertools

import pandas as pd

from pipeline.config import Config
from pipeline.engine import Arch, Job, TrainSpec
from pipeline.studies.common import StudyOutput, tidy, train_by_dataset

DATASETS = ("spiral", "images")
REFERENCE = {"source": "Eldan and Shamir 2016; d2l 5.1",
             "claim": "depth can buy with few units what width buys with many"}


def n_params(sizes: tuple[int, ...]) -> int:
    """Weights and biases of a dense MLP with these layer sizes."""
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def _arch(config: Config, c: dict, arrays: dict) -> Arch:
    n_in, n_out = arrays["x_train"].shape[1], int(arrays["y_train"].max()) + 1
    return Arch((n_in, *[c["width"]] * c["depth"], n_out), config.width_depth.activation)


def cells(config: Config) -> list[dict]:
    w = config.width_depth
    return [{"dataset": d, "depth": depth, "width": width, "seed": s}
            for d, depth, width, s in itertools.product(DATASETS, w.depths, w.widths,
                                                        config.seeds)]


def run(config: Config, grid: list[dict], data: dict, device="cpu") -> StudyOutput:
    w = config.width_depth
    jobs = []
    for c in grid:
        part = getattr(w, c["dataset"])  # epochs and batch size per dataset
        spec = TrainSpec(_arch(config, c, data[c["dataset"]]), w.optimizer, "cross_entropy",
                         epochs=part.epochs, batch_size=part.batch_size,
                         log_every=part.log_every)
        jobs.append(Job(spec, seed=c["seed"], lr=w.lr))
    results = train_by_dataset(config, grid, jobs, data, device, "width_depth")
    out = tidy(grid, results)
    out.cells["n_params"] = [n_params(r.job.spec.arch.sizes) for r in results]
    out.tables["budgets"] = equal_budget(out.cells, w.budgets)
    return out


def equal_budget(cells: pd.DataFrame, budgets: list[int]) -> pd.DataFrame:
    """Per dataset and budget: the best shallow (depth 1) and best deep (depth > 1)
    configuration with at most that many parameters, by mean test accuracy."""
    ok = cells[~cells["diverged"]]
    means = ok.groupby(["dataset", "depth", "width", "n_params"], as_index=False)["test_acc"].mean()
    rows = []
    for (dataset, part), budget in itertools.product(means.groupby("dataset"), budgets):
        within = part[part["n_params"] <= budget]
        for kind, subset in (("shallow", within[within["depth"] == 1]),
                             ("deep", within[within["depth"] > 1])):
            if len(subset):
                best = subset.loc[subset["test_acc"].idxmax()]
                rows.append({"dataset": dataset, "budget": budget, "kind": kind,
                             "depth": int(best["depth"]), "width": int(best["width"]),
                             "n_params": int(best["n_params"]), "test_acc": best["test_acc"]})
    return pd.DataFrame(rows, columns=["dataset", "budget", "kind", "depth", "width",
                                       "n_params", "test_acc"])


def summarize(output: StudyOutput) -> dict:
    b = output.tables["budgets"]
    metrics = {f"{r.dataset}/{r.budget}/{r.kind}": round(float(r.test_acc), 6)
               for r in b.itertuples()}
    return {"best_test_acc_within_budget": metrics,
            "diverged_cells": int(output.cells["diverged"].sum())}
