"""K-fold cross-validation for model selection, checked against a held-out test set.

d2l 4.4.2 (model selection, K-fold cross-validation); Hastie, Tibshirani and Friedman,
"The Elements of Statistical Learning", 7.10. The training set is split into K folds
with scikit-learn's KFold (seeded shuffling); each candidate config trains K times, each
time on K-1 folds, and is scored by its mean validation loss on the held-out fold. The
chosen config is refitted on the whole training set and scored on the test set, which
no step of the selection saw. Two selections: the polynomial degree (d2l 4.4 data) and
the weight-decay lambda (d2l 4.5 data). Folds are just more cells: all (config, fold)
pairs train batched together on the engine.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import KFold, StratifiedKFold

from pipeline.config import Config
from pipeline.engine import Job, TrainData, TrainSpec, predict, train
from pipeline.studies import polynomial, regularization
from pipeline.studies.common import StudyOutput, engine_options, tidy

DATASETS = ("polynomial", "highdim")
REFERENCE = {"source": "d2l 4.4 (K-fold cross-validation)",
             "truth": {"degree": 3}}


def fold_indices(n: int, k: int, seed: int, y: np.ndarray | None = None
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, validation rows) per fold; StratifiedKFold when class labels given."""
    if y is not None:
        split = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n), y)
    else:
        split = KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n))
    return [(np.sort(tr), np.sort(va)) for tr, va in split]


def cells(config: Config) -> list[dict]:
    k = config.kfold
    grid = []
    for fold in [*range(k.k), None]:  # None: the refit on the whole training set
        grid += [{"selection": "degree", "value": float(d), "fold": fold, "seed": s}
                 for d, s in itertools.product(k.polynomial.degrees, config.seeds)]
        grid += [{"selection": "lambda", "value": lam, "fold": fold, "seed": s}
                 for lam, s in itertools.product(k.weight_decay.lambdas, config.seeds)]
    return grid


def _spec(config: Config, selection: str, n_in: int) -> TrainSpec:
    """The same model and training as the polynomial and weight-decay studies."""
    if selection == "degree":
        return polynomial.train_spec(config.kfold.polynomial, n_in)
    return regularization.weight_decay_spec(config.kfold.weight_decay, n_in)


def run(config: Config, grid: list[dict], data: dict, device="cpu") -> StudyOutput:
    k = config.kfold
    results, val_loss = [None] * len(grid), [np.nan] * len(grid)
    for selection, name in (("degree", "polynomial"), ("lambda", "highdim")):
        arrays = data[name]
        folds = fold_indices(len(arrays["x_train"]), k.k, k.shuffle_seed)
        spec = _spec(config, selection, arrays["x_train"].shape[1])
        lr = k.polynomial.lr if selection == "degree" else k.weight_decay.lr
        idx = [i for i, c in enumerate(grid) if c["selection"] == selection]
        jobs = []
        for i in idx:
            c = grid[i]
            rows = None if c["fold"] is None else tuple(int(r) for r in folds[c["fold"]][0])
            jobs.append(Job(spec, seed=c["seed"], lr=lr, rows=rows,
                            active_inputs=int(c["value"]) + 1 if selection == "degree" else None,
                            l2_penalty=c["value"] if selection == "lambda" else 0.0))
        trained = train(jobs, TrainData.from_arrays(arrays, device), device,
                        engine_options(config, f"kfold/{selection}"))
        for i, job, res in zip(idx, jobs, trained):
            results[i] = res
            fold = grid[i]["fold"]
            if fold is not None and not res.diverged:
                va = folds[fold][1]
                x = torch.as_tensor(arrays["x_train"][va])
                if job.active_inputs is not None:
                    x[:, job.active_inputs:] = 0.0
                err = predict(spec.arch, res.params, x).numpy() - arrays["y_train"][va]
                val_loss[i] = float(np.mean(err ** 2) / (2 if spec.loss == "half_mse" else 1))
    out = tidy(grid, results)
    out.cells["val_loss"] = val_loss
    out.cells["fold"] = out.cells["fold"].astype("Int64")
    out.tables["selection"] = select(out.cells)
    return out


def select(cells: pd.DataFrame) -> pd.DataFrame:
    """Per selection: every candidate's CV mean and std of validation loss (over folds
    and seeds), the chosen one, and the refitted candidates' test loss."""
    rows = []
    for selection, part in cells.groupby("selection", sort=False):
        cv = part[part["fold"].notna()].groupby("value")["val_loss"].agg(["mean", "std"])
        refit = part[part["fold"].isna()].groupby("value")["test_loss"].mean()
        chosen = cv["mean"].idxmin()
        for value, r in cv.iterrows():
            rows.append({"selection": selection, "value": value, "cv_mean": r["mean"],
                         "cv_std": r["std"], "test_loss": refit.get(value, np.nan),
                         "chosen": value == chosen,
                         "best_on_test": value == refit.idxmin()})
    return pd.DataFrame(rows)


def summarize(output: StudyOutput) -> dict:
    sel = output.tables["selection"]
    metrics = {}
    for selection, part in sel.groupby("selection", sort=False):
        chosen = part[part["chosen"]].iloc[0]
        metrics[selection] = {
            "chosen": float(chosen["value"]),
            "cv_mean": round(float(chosen["cv_mean"]), 6),
            "cv_std": round(float(chosen["cv_std"]), 6),
            "test_loss": round(float(chosen["test_loss"]), 6),
            "best_on_test": float(part.loc[part["test_loss"].idxmin(), "value"])}
    metrics["diverged_cells"] = int(output.cells["diverged"].sum())
    return metrics
