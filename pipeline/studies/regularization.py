"""Regularization: weight-decay and dropout ablations.

Weight decay. Dive into Deep Learning, section 4.5 "Weight Decay" (3.7 in recent
editions): linear regression with d = 200 inputs and only 20 training rows, w ~ N(0, 1)
init, squared loss, SGD lr 0.003, batch 5, 100 epochs, lambda 0 (over-fits) vs 3. Two
forms: the penalty lambda/2 ||w||^2 added to the loss (the book's from-scratch version)
and decay applied by the optimizer (its concise version); for SGD the two are the same
update, so their numbers agree up to rounding. Published: ||w|| about 13 at lambda 0,
about 0.36 at lambda 3.

Dropout. Dive into Deep Learning, section 4.6 "Dropout" (5.6): an MLP with two hidden
layers of 256, dropout p1 after the first and p2 after the second (the book uses 0.2 and
0.5), N(0, 0.01) init, SGD lr 0.5, scaled here from Fashion-MNIST to the default image
data (minibatch 64, more epochs). The p1 x p2 grid measures train/test accuracy and the
generalisation gap; a weight decay x dropout grid measures their interaction.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from pipeline.config import Config
from pipeline.engine import Arch, Job, TrainData, TrainSpec, train
from pipeline.studies.common import StudyOutput, engine_options, init_kwargs, mean_over_seeds, tidy

DATASETS = ("highdim", "images")
REFERENCE = {"source": "d2l 4.5 (weight decay), 4.6 (dropout)",
             "weight_norm": {"0": 13.0, "3": 0.36}}


def cells(config: Config) -> list[dict]:
    wd, dr = config.regularization.weight_decay, config.regularization.dropout
    grid = [{"experiment": "weight_decay", "form": form, "lambda": lam, "seed": seed}
            for form, lam, seed in itertools.product(wd.forms, wd.lambdas, config.seeds)]
    grid += [{"experiment": "dropout", "p1": p1, "p2": p2, "weight_decay": 0.0, "seed": seed}
             for p1, p2, seed in itertools.product(dr.p1, dr.p2, config.seeds)]
    grid += [{"experiment": "interaction", "p1": p, "p2": p, "weight_decay": w, "seed": seed}
             for w, p, seed in itertools.product(dr.weight_decays, dr.interaction_dropouts,
                                                 config.seeds)]
    return grid


def weight_decay_spec(s, n_in: int) -> TrainSpec:
    """d2l's weight-decay regression: linear with bias, squared loss / 2, minibatch SGD.
    s: a params section with epochs, batch_size, log_every and init_std."""
    return TrainSpec(Arch((n_in, 1), "none"), "sgd", "half_mse", epochs=s.epochs,
                     batch_size=s.batch_size, log_every=s.log_every, **init_kwargs(s.init_std))


def _weight_decay_jobs(config: Config, grid: list[dict], n_in: int) -> list[Job]:
    s = config.regularization.weight_decay
    spec = weight_decay_spec(s, n_in)
    return [Job(spec, seed=c["seed"], lr=s.lr,
                l2_penalty=c["lambda"] if c["form"] == "penalty" else 0.0,
                weight_decay=c["lambda"] if c["form"] == "decoupled" else 0.0) for c in grid]


def _dropout_jobs(config: Config, grid: list[dict], n_in: int, n_classes: int) -> list[Job]:
    s = config.regularization.dropout
    spec = TrainSpec(Arch((n_in, *s.hidden, n_classes), "relu"), s.optimizer,
                     "cross_entropy", epochs=s.epochs, batch_size=s.batch_size,
                     log_every=s.log_every, **init_kwargs(s.init_std))
    return [Job(spec, seed=c["seed"], lr=s.lr, weight_decay=c["weight_decay"],
                dropout=(c["p1"], c["p2"])) for c in grid]


def run(config: Config, grid: list[dict], data: dict, device="cpu") -> StudyOutput:
    wd_cells = [c for c in grid if c["experiment"] == "weight_decay"]
    dr_cells = [c for c in grid if c["experiment"] != "weight_decay"]
    hd, img = data["highdim"], data["images"]
    wd_res = train(_weight_decay_jobs(config, wd_cells, hd["x_train"].shape[1]),
                   TrainData.from_arrays(hd, device), device,
                   engine_options(config, "weight decay"))
    dr_res = train(_dropout_jobs(config, dr_cells, img["x_train"].shape[1],
                                 int(img["y_train"].max()) + 1),
                   TrainData.from_arrays(img, device), device, engine_options(config, "dropout"))
    wd_out, dr_out = tidy(wd_cells, wd_res), tidy(dr_cells, dr_res)
    wd_out.cells["weight_norm"] = [float(np.linalg.norm(r.params[0].numpy())) for r in wd_res]
    dr_out.cells["gap"] = dr_out.cells["train_acc"] - dr_out.cells["test_acc"]
    # cell ids index the whole grid, in grid order
    dr_out.cells["cell"] += len(wd_cells)
    dr_out.curves["cell"] += len(wd_cells)
    dr_out.timing["cell"] += len(wd_cells)
    cells = pd.concat([wd_out.cells, dr_out.cells], ignore_index=True)
    curves = pd.concat([wd_out.curves, dr_out.curves], ignore_index=True)
    timing = pd.concat([wd_out.timing, dr_out.timing], ignore_index=True)
    return StudyOutput(cells, curves, timing=timing)


def summarize(output: StudyOutput) -> dict:
    cells = output.cells
    wd = cells[cells["experiment"] == "weight_decay"]
    dr = cells[cells["experiment"] == "dropout"]
    metrics = {}
    for form in sorted(wd["form"].unique()):
        one = wd[wd["form"] == form]
        metrics[f"weight_norm_{form}"] = mean_over_seeds(one, ["lambda"], "weight_norm")
        metrics[f"test_loss_{form}"] = mean_over_seeds(one, ["lambda"], "test_loss")
    metrics["dropout_test_acc"] = mean_over_seeds(dr, ["p1", "p2"], "test_acc")
    metrics["dropout_gap"] = mean_over_seeds(dr, ["p1", "p2"], "gap")
    metrics["diverged_cells"] = int(cells["diverged"].sum())
    return metrics
