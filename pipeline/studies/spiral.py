"""Spiral: can a linear model separate spiral classes? Can an MLP with a non-linearity?

Setting: NYU Deep Learning (DLSP20, Canziani and LeCun), notebook
04-spiral_classification: 3 classes x 1000 points, noise 0.2, hidden width 100,
1000 full-batch steps, learning rate 1e-3, weight decay 1e-5. The notebook trains the
linear model (two stacked linear layers) with SGD and the ReLU model with Adam; the
grid here crosses every activation with both optimizers, so the course pairs
(linear+SGD, ReLU+Adam) and the fair comparison (same optimizer) are both in it.
Published: linear 0.50 accuracy, ReLU 0.95 (the notebook's printed training accuracy).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import torch

from pipeline.config import Config, SpiralStudy
from pipeline.engine import Arch, Job, TrainData, TrainSpec, predict, train
from pipeline.studies.common import StudyOutput, engine_options, mean_over_seeds, tidy

DATASETS = ("spiral",)
REFERENCE = {"source": "NYU DLSP20 notebook 04-spiral_classification",
             "train_acc": {"none": 0.504, "relu": 0.949}}


def course_optimizer(activation: str) -> str:
    """The notebook's choice: SGD for the linear model, Adam for the non-linear one."""
    return "sgd" if activation == "none" else "adam"


def cells(config: Config) -> list[dict]:
    s = config.spiral
    return [{"activation": a, "width": w, "optimizer": o, "seed": seed,
             "course_setting": o == course_optimizer(a)}
            for a, w, o, seed in itertools.product(s.activations, s.widths, s.optimizers,
                                                   config.seeds)]


def _job(s: SpiralStudy, cell: dict, n_in: int, n_classes: int) -> Job:
    arch = Arch((n_in, cell["width"], n_classes), cell["activation"])
    spec = TrainSpec(arch, cell["optimizer"], "cross_entropy", epochs=s.epochs,
                     log_every=s.log_every)
    return Job(spec, seed=cell["seed"], lr=s.lr, weight_decay=s.weight_decay)


def boundary_mesh(x: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = x.min(axis=0) - 0.1, x.max(axis=0) + 0.1
    g0, g1 = np.meshgrid(np.linspace(lo[0], hi[0], resolution),
                         np.linspace(lo[1], hi[1], resolution))
    return g0.ravel(), g1.ravel()


def run(config: Config, grid: list[dict], data: dict, device="cpu") -> StudyOutput:
    s = config.spiral
    arrays = data["spiral"]
    n_classes = int(arrays["y_train"].max()) + 1
    jobs = [_job(s, c, arrays["x_train"].shape[1], n_classes) for c in grid]
    results = train(jobs, TrainData.from_arrays(arrays, device), device,
                    engine_options(config, "spiral"))
    out = tidy(grid, results)

    # decision boundaries: the first seed and width of each activation, course optimizer
    g0, g1 = boundary_mesh(arrays["x_train"], s.boundary_resolution)
    mesh = torch.tensor(np.stack([g0, g1], axis=1), dtype=torch.float32)  # (M, 2), CPU
    frames, seen = [], set()
    order = sorted(range(len(grid)), key=lambda i: not grid[i]["course_setting"])
    for i in order:
        c = grid[i]
        if c["activation"] in seen or c["seed"] != config.seeds[0] or c["width"] != s.widths[0]:
            continue
        seen.add(c["activation"])
        pred = predict(jobs[i].spec.arch, results[i].params, mesh).argmax(dim=1).numpy()
        frames.append(pd.DataFrame({"cell": i, "activation": c["activation"],
                                    "optimizer": c["optimizer"], "x0": g0, "x1": g1,
                                    "predicted": pred}))
    out.tables["boundaries"] = pd.concat(frames, ignore_index=True)
    return out


def summarize(output: StudyOutput) -> dict:
    cells = output.cells
    course = cells[cells["course_setting"]]
    metrics = {"course_test_acc": mean_over_seeds(course, ["activation"], "test_acc"),
               "course_train_acc": mean_over_seeds(course, ["activation"], "train_acc")}
    for opt in sorted(cells["optimizer"].unique()):
        same = cells[cells["optimizer"] == opt]
        metrics[f"{opt}_test_acc"] = mean_over_seeds(same, ["activation"], "test_acc")
    metrics["diverged_cells"] = int(cells["diverged"].sum())
    return metrics
