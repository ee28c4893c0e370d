"""Optimizers: SGD, SGD with momentum, Nesterov and Adam across learning rates.

Every optimizer trains the same model for the same budget on the same data: a ReLU MLP
on the spiral (full batch) and on the default images (minibatch), with one learning-rate
grid. Rows whose loss blew up (NaN, inf, or above `diverge_factor` times the first
loss: cross-entropy grows large but stays finite) are kept and flagged diverged.
Reported per cell: final and best test accuracy, and the first logged epoch whose
training loss reaches a target (Goodfellow, Bengio and Courville, "Deep Learning",
ch. 8; Kingma and Ba 2015 for Adam).

A third, small experiment follows Wilson et al. 2017, "The Marginal Value of Adaptive
Gradient Methods in Machine Learning", section 3.3: least squares on a separable problem
with more features than rows, from a zero init. Gradient descent converges to the
minimum-norm solution, which classifies new points by their first feature; the paper
shows adaptive methods instead put the weight on the always-on features and label every
new point with the majority class.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import torch

from pipeline.config import Config
from pipeline.engine import Arch, Job, TrainSpec, predict
from pipeline.studies.common import StudyOutput, mean_over_seeds, tidy, train_by_dataset

DATASETS = ("spiral", "images", "wilson")
REFERENCE = {"source": "Wilson et al. 2017, section 3.3",
             "claim": "gradient descent: zero test error; adaptive methods: the error of "
                      "always predicting the majority class"}


def cells(config: Config) -> list[dict]:
    o = config.optimizers
    grid = [{"experiment": "lr_sweep", "dataset": d, "optimizer": opt, "lr": lr, "seed": s}
            for d, opt, lr, s in itertools.product(("spiral", "images"), o.optimizers, o.lrs,
                                                   config.seeds)]
    grid += [{"experiment": "wilson", "dataset": "wilson", "optimizer": opt,
              "lr": o.wilson.lr, "seed": s}
             for opt, s in itertools.product(o.wilson.optimizers, config.seeds)]
    return grid


def _jobs(config: Config, grid: list[dict], data: dict) -> list[Job]:
    o = config.optimizers
    jobs = []
    for c in grid:
        arrays = data[c["dataset"]]
        n_in = arrays["x_train"].shape[1]
        if c["dataset"] == "wilson":
            spec = TrainSpec(Arch((n_in, 1), "none", bias=False), c["optimizer"], "half_mse",
                             epochs=o.wilson.epochs, log_every=o.wilson.log_every,
                             init="constant", init_scale=0.0)  # zero: GD finds the min-norm fit
        else:
            n_out = int(arrays["y_train"].max()) + 1
            if c["dataset"] == "spiral":
                arch, sizes = Arch((n_in, o.spiral.width, n_out)), o.spiral
                batch = None
            else:
                arch, sizes = Arch((n_in, o.images.hidden, n_out)), o.images
                batch = o.images.batch_size
            spec = TrainSpec(arch, c["optimizer"], "cross_entropy", epochs=sizes.epochs,
                             batch_size=batch, log_every=sizes.log_every,
                             diverge_factor=o.diverge_factor)
        momentum = o.momentum if c["optimizer"] in ("momentum", "nesterov") else 0.0
        jobs.append(Job(spec, seed=c["seed"], lr=c["lr"], momentum=momentum))
    return jobs


def run(config: Config, grid: list[dict], data: dict, device="cpu") -> StudyOutput:
    results = train_by_dataset(config, grid, _jobs(config, grid, data), data, device,
                               "optimizers")
    out = tidy(grid, results)
    target = config.optimizers.target_loss
    for i, res in enumerate(results):
        accs = [p.get("test_acc", np.nan) for p in res.curve]
        out.cells.loc[i, "best_test_acc"] = np.nanmax(accs) if np.isfinite(accs).any() else np.nan
        reached = [p["epoch"] for p in res.curve if p["train_loss"] <= target]
        out.cells.loc[i, "epochs_to_target"] = reached[0] if reached else np.nan
    _wilson_columns(out, grid, results, data["wilson"])
    return out


def _wilson_columns(out: StudyOutput, grid, results, arrays) -> None:
    """Classification error of the sign of the regression output, and the weights on
    the label feature (x1) and the always-on features (x2, x3)."""
    x_test, y_test = arrays["x_test"], arrays["y_test"][:, 0]

    for i, (c, res) in enumerate(zip(grid, results)):
        if c["dataset"] != "wilson":
            continue
        w = res.params[0][:, 0].numpy()
        pred = predict(res.job.spec.arch, res.params, torch.as_tensor(x_test))[:, 0].numpy()
        out.cells.loc[i, "test_error"] = float(np.mean(np.sign(pred) != y_test))
        out.cells.loc[i, "w_label"] = float(w[0])
        out.cells.loc[i, "w_constant"] = float(w[1:3].mean())
    out.tables["wilson_majority"] = pd.DataFrame(
        {"negative_fraction": [float(np.mean(y_test < 0))]})


def summarize(output: StudyOutput) -> dict:
    cells = output.cells
    sweep = cells[cells["experiment"] == "lr_sweep"]
    metrics: dict = {}
    for name in ("spiral", "images"):
        part = sweep[sweep["dataset"] == name]
        means = part[~part["diverged"]].groupby(["optimizer", "lr"])["test_acc"].mean()
        best = {}
        for opt in part["optimizer"].unique():
            if opt in means.index.get_level_values(0):
                per_lr = means.loc[opt]
                best[opt] = {"lr": float(per_lr.idxmax()),
                             "test_acc": round(float(per_lr.max()), 6)}
        metrics[f"{name}_best"] = best
        metrics[f"{name}_diverged"] = int(part["diverged"].sum())
    wilson = cells[cells["experiment"] == "wilson"]
    metrics["wilson_test_error"] = mean_over_seeds(wilson, ["optimizer"], "test_error")
    metrics["diverged_cells"] = int(cells["diverged"].sum())
    return metrics
