"""Summary tables over seeds: mean, std and a 95% interval, diverged cells counted apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

# per study: the groups a summary row stands for, and the values summarised
SUMMARIES = {
    "spiral": [("", ["activation", "width", "optimizer", "course_setting"],
                ["test_acc", "train_acc", "test_loss"])],
    "polynomial": [("", ["degree", "train_size"], ["train_loss", "test_loss", "weight_error"])],
    "regularization": [
        ("weight_decay", ["form", "lambda"], ["weight_norm", "train_loss", "test_loss"]),
        ("dropout", ["p1", "p2"], ["train_acc", "test_acc", "gap"]),
        ("interaction", ["weight_decay", "p1"], ["train_acc", "test_acc", "gap"]),
    ],
    "optimizers": [
        ("lr_sweep", ["dataset", "optimizer", "lr"],
         ["test_acc", "best_test_acc", "train_loss", "epochs_to_target"]),
        ("wilson", ["optimizer"], ["test_error", "w_label", "w_constant", "train_loss"]),
    ],
    "width_depth": [("", ["dataset", "depth", "width", "n_params"], ["test_acc", "train_acc"])],
    "kfold": [("", ["selection", "value", "fold"], ["val_loss", "train_loss", "test_loss"])],
}


def summary(cells: pd.DataFrame, by: list[str], values: list[str]) -> pd.DataFrame:
    """One row per group: n, n_diverged, and VALUE_mean, VALUE_std, VALUE_ci95 per value.

    Diverged cells are counted, never averaged: a NaN never enters a mean.
    """
    rows = []
    for key, group in cells.groupby(by, sort=False, dropna=False):
        ok = group[~group["diverged"].astype(bool)]
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row["n"], row["n_diverged"] = len(ok), len(group) - len(ok)
        for v in values:
            x = ok[v].to_numpy(dtype=float)
            x = x[np.isfinite(x)]
            mean = x.mean() if len(x) else np.nan
            std = x.std(ddof=1) if len(x) > 1 else np.nan
            half = stats.t.ppf(0.975, len(x) - 1) * std / np.sqrt(len(x)) if len(x) > 1 else np.nan
            row |= {f"{v}_mean": mean, f"{v}_std": std, f"{v}_ci95": half}
        rows.append(row)
    return pd.DataFrame(rows)


def study_tables(study: str, cells: pd.DataFrame) -> dict[str, pd.DataFrame]:
    tables = {}
    for part, by, values in SUMMARIES[study]:
        subset = cells if not part else cells[cells["experiment"] == part]
        by = [b for b in by if b in subset.columns]
        tables[f"{study}_{part}" if part else study] = summary(subset, by, values)
    return tables


def load_cells(results: str | Path) -> dict[str, pd.DataFrame]:
    """Every study's cells.csv found under the results folder."""
    out = {}
    for study in SUMMARIES:
        path = Path(results) / study / "cells.csv"
        if path.exists():
            out[study] = pd.read_csv(path)
    return out


def headline(tables: dict[str, pd.DataFrame]) -> dict:
    """The few numbers per study that `dvc metrics diff` shows first."""
    out: dict = {}
    if "spiral" in tables:
        t = tables["spiral"]
        course = t[t["course_setting"]].set_index("activation")["test_acc_mean"]
        out["spiral"] = {f"test_acc_{a}": _num(v) for a, v in course.items()}
    if "polynomial" in tables:
        t = tables["polynomial"]
        t = t[t["train_size"] == t["train_size"].max()].set_index("degree")
        best = t["test_loss_mean"].idxmin()
        out["polynomial"] = {"best_degree": int(best),
                             "best_test_loss": _num(t.loc[best, "test_loss_mean"])}
    if "regularization_weight_decay" in tables:
        t = tables["regularization_weight_decay"]
        pen = t[t["form"] == t["form"].iloc[0]].set_index("lambda")
        best = pen["test_loss_mean"].idxmin()
        out["regularization"] = {"best_lambda": float(best),
                                 "best_test_loss": _num(pen.loc[best, "test_loss_mean"]),
                                 "weight_norm_at_0": _num(pen["weight_norm_mean"].get(0.0))}
    if "regularization_dropout" in tables:
        t = tables["regularization_dropout"]
        best = t.loc[t["test_acc_mean"].idxmax()]
        out.setdefault("regularization", {}).update({
            "dropout_best_test_acc": _num(best["test_acc_mean"]),
            "dropout_best": f"{best['p1']:g}/{best['p2']:g}"})
    if "optimizers_wilson" in tables:
        t = tables["optimizers_wilson"].set_index("optimizer")
        out["optimizers"] = {f"wilson_test_error_{k}": _num(v)
                             for k, v in t["test_error_mean"].items()}
    if "kfold" in tables:
        t = tables["kfold"]
        cv = t[t["fold"].notna()].groupby(["selection", "value"])["val_loss_mean"].mean()
        out["kfold"] = {f"chosen_{sel}": float(cv.loc[sel].idxmin())
                        for sel in cv.index.get_level_values(0).unique()}
    return out


def _num(v) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), 6)
