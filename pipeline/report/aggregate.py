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


def headline_rows(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The few numbers per study that `dvc metrics diff` shows first, each with its
    seed-to-seed standard deviation (NaN for a choice such as a selected degree)."""
    rows: list[tuple[str, str, float, float]] = []

    def add(study, metric, table, row, value):
        std = table.loc[row, value.replace("_mean", "_std")] if table is not None else np.nan
        rows.append((study, metric, table.loc[row, value] if table is not None else row, std))

    if "spiral" in tables:
        t = tables["spiral"]
        course = t[t["course_setting"]]
        for i, r in course.iterrows():
            add("spiral", f"test_acc_{r['activation']}", t, i, "test_acc_mean")
    if "polynomial" in tables:
        t = tables["polynomial"]
        full = t[t["train_size"] == t["train_size"].max()]
        best = full["test_loss_mean"].idxmin()
        add("polynomial", "best_degree", None, float(t.loc[best, "degree"]), "")
        add("polynomial", "best_test_loss", t, best, "test_loss_mean")
    if "regularization_weight_decay" in tables:
        t = tables["regularization_weight_decay"]
        pen = t[t["form"] == t["form"].iloc[0]]
        best = pen["test_loss_mean"].idxmin()
        add("regularization", "best_lambda", None, float(t.loc[best, "lambda"]), "")
        add("regularization", "best_test_loss", t, best, "test_loss_mean")
        zero = pen.index[pen["lambda"] == 0.0]
        if len(zero):
            add("regularization", "weight_norm_at_0", t, zero[0], "weight_norm_mean")
    if "regularization_dropout" in tables:
        t = tables["regularization_dropout"]
        best = t["test_acc_mean"].idxmax()
        add("regularization", "dropout_best_test_acc", t, best, "test_acc_mean")
        add("regularization", "dropout_best_p1", None, float(t.loc[best, "p1"]), "")
        add("regularization", "dropout_best_p2", None, float(t.loc[best, "p2"]), "")
    if "optimizers_wilson" in tables:
        t = tables["optimizers_wilson"]
        for i, r in t.iterrows():
            add("optimizers", f"wilson_test_error_{r['optimizer']}", t, i, "test_error_mean")
    if "kfold" in tables:
        t = tables["kfold"]
        cv = t[t["fold"].notna()].groupby(["selection", "value"])["val_loss_mean"].mean()
        for sel in cv.index.get_level_values(0).unique():
            add("kfold", f"chosen_{sel}", None, float(cv.loc[sel].idxmin()), "")
    return pd.DataFrame(rows, columns=["study", "metric", "value", "std"])


def headline(rows: pd.DataFrame) -> dict:
    """{study: {metric: value}} for the metrics JSON."""
    out: dict = {}
    for r in rows.itertuples():
        out.setdefault(r.study, {})[r.metric] = _num(r.value)
    return out


def _num(v) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), 6)


def plot_tables(results: str | Path, tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Small wide tables with fixed columns for `dvc plots diff` (one line per column)."""
    results = Path(results)
    out = {}
    if (results / "spiral" / "curves.csv").exists():
        c = pd.read_csv(results / "spiral" / "curves.csv")
        c = c[c["course_setting"].astype(bool)]
        acc = c.groupby(["epoch", "activation"])["test_acc"].mean().unstack("activation")
        nonlinear = acc.drop(columns="none", errors="ignore")
        if "none" in acc and len(nonlinear.columns):
            best = nonlinear.iloc[-1].idxmax()
            out["spiral"] = pd.DataFrame({"epoch": acc.index, "linear": acc["none"].values,
                                          "best_nonlinear": nonlinear[best].values})
    if "polynomial" in tables:
        t = tables["polynomial"]
        t = t[t["train_size"] == t["train_size"].max()]
        out["polynomial"] = pd.DataFrame({"degree": t["degree"], "train_loss": t["train_loss_mean"],
                                          "test_loss": t["test_loss_mean"]})
    if "regularization_weight_decay" in tables:
        t = tables["regularization_weight_decay"]
        t = t[t["form"] == t["form"].iloc[0]]
        out["weight_decay"] = pd.DataFrame({"lambda": t["lambda"],
                                            "weight_norm": t["weight_norm_mean"],
                                            "train_loss": t["train_loss_mean"],
                                            "test_loss": t["test_loss_mean"]})
    if "optimizers_lr_sweep" in tables and (results / "optimizers" / "curves.csv").exists():
        t = tables["optimizers_lr_sweep"]
        t = t[t["dataset"] == "spiral"]
        best = t.loc[t.groupby("optimizer")["test_acc_mean"].idxmax(), ["optimizer", "lr"]]
        c = pd.read_csv(results / "optimizers" / "curves.csv")
        c = c[c["dataset"] == "spiral"].merge(best, on=["optimizer", "lr"])
        wide = c.groupby(["epoch", "optimizer"])["train_loss"].mean().unstack("optimizer")
        out["optimizers"] = wide.reindex(columns=["sgd", "momentum", "nesterov", "adam"]) \
            .reset_index()
    if "width_depth" in tables:
        t = tables["width_depth"]
        t = t[t["dataset"] == "spiral"].sort_values("n_params")
        out["width_depth"] = pd.DataFrame({"n_params": t["n_params"],
                                           "test_acc": t["test_acc_mean"]})
    if (results / "kfold" / "selection.csv").exists():
        sel = pd.read_csv(results / "kfold" / "selection.csv")
        sel = sel[sel["selection"] == "degree"]
        out["kfold"] = pd.DataFrame({"degree": sel["value"], "cv_loss": sel["cv_mean"],
                                     "test_loss": sel["test_loss"]})
    return out
