"""Polynomial regression: degree vs fit, under-, good and over-fitting.

Setting: Dive into Deep Learning (Zhang et al.), section 4.4 "Model Selection,
Underfitting, and Overfitting" (5.5 in recent editions): cubic truth
y = 5 + 1.2x - 3.4x^2/2! + 5.6x^3/3! + N(0, 0.1^2), features x^i/i! up to 20, 100
training and 100 test points, squared loss, SGD lr 0.01, batch 10, 400 epochs. The
book fits degree 3 (normal), 1 (underfitting) and 19 (overfitting); the grid here runs
every degree. A second series solves each degree in closed form (minimum-norm least
squares): on a training set smaller than the feature count it shows the test-error
peak at the interpolation threshold (double descent).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from pipeline.config import Config
from pipeline.engine import Arch, Job, TrainData, TrainSpec, train
from pipeline.studies.common import StudyOutput, engine_options, init_kwargs, mean_over_seeds, tidy

DATASETS = ("polynomial",)
REFERENCE = {"source": "d2l 4.4, third-order fit",
             "weights_degree3": [4.9959, 1.1979, -3.3856, 5.6047]}


def cells(config: Config) -> list[dict]:
    p = config.polynomial
    return [{"degree": d, "train_size": n, "seed": seed}
            for d, n, seed in itertools.product(p.degrees, p.train_sizes, config.seeds)]


def min_norm_fits(x_train, y_train, x_test, y_test, degrees, sizes) -> pd.DataFrame:
    """Closed-form minimum-norm least squares per degree and training-set size."""
    rows = []
    for n, d in itertools.product(sizes, degrees):
        a, b = x_train[:n, : d + 1].astype(np.float64), y_train[:n, 0].astype(np.float64)
        w = np.linalg.pinv(a) @ b  # minimum-norm solution when d + 1 > n
        train_mse = float(np.mean((a @ w - b) ** 2))
        test_mse = float(np.mean((x_test[:, : d + 1] @ w - y_test[:, 0]) ** 2))
        rows.append({"train_size": n, "degree": d, "n_features": d + 1,
                     "train_loss": train_mse, "test_loss": test_mse,
                     "weight_norm": float(np.linalg.norm(w))})
    return pd.DataFrame(rows)


def train_spec(p, n_features: int) -> TrainSpec:
    """d2l's polynomial fit: no bias (x^0 is a feature), squared loss, minibatch SGD.
    p: a params section with epochs, batch_size, log_every and init_std."""
    return TrainSpec(Arch((n_features, 1), "none", bias=False), "sgd", "mse", epochs=p.epochs,
                     batch_size=p.batch_size, log_every=p.log_every, **init_kwargs(p.init_std))


def run(config: Config, grid: list[dict], data: dict, device="cpu") -> StudyOutput:
    p = config.polynomial
    arrays = data["polynomial"]
    n_train = len(arrays["x_train"])
    spec = train_spec(p, arrays["x_train"].shape[1])
    # one stacked model per cell: degree d trains on the first d + 1 features only
    jobs = [Job(spec, seed=c["seed"], lr=p.lr, active_inputs=c["degree"] + 1,
                rows=None if c["train_size"] == n_train else tuple(range(c["train_size"])))
            for c in grid]
    results = train(jobs, TrainData.from_arrays(arrays, device), device,
                    engine_options(config, "polynomial"))
    out = tidy(grid, results)

    true_w = arrays["true_w"]
    weights = []
    for i, (c, res) in enumerate(zip(grid, results)):
        w = res.params[0][:, 0].numpy()
        out.cells.loc[i, "weight_error"] = float(np.linalg.norm(w - true_w))
        weights += [{"cell": i, **c, "index": k, "weight": float(w[k]),
                     "true_weight": float(true_w[k])} for k in range(c["degree"] + 1)]
    out.tables["weights"] = pd.DataFrame(weights)
    out.tables["min_norm"] = min_norm_fits(arrays["x_train"], arrays["y_train"],
                                           arrays["x_test"], arrays["y_test"],
                                           p.degrees, p.min_norm_train_sizes)
    return out


def summarize(output: StudyOutput) -> dict:
    cells = output.cells
    full = cells[cells["train_size"] == cells["train_size"].max()]
    test = mean_over_seeds(full, ["degree"], "test_loss")
    finite = {k: v for k, v in test.items() if v is not None}
    return {"test_loss_by_degree": test,
            "train_loss_by_degree": mean_over_seeds(full, ["degree"], "train_loss"),
            "weight_error_by_degree": mean_over_seeds(full, ["degree"], "weight_error"),
            "best_degree": int(min(finite, key=finite.get)) if finite else None,
            "diverged_cells": int(cells["diverged"].sum())}
