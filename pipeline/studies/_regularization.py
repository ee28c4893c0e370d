"""Regularization's analysis helpers: the chosen dropout pair's edges, the no-feature
baseline beside weight decay, and Adam + L2 against AdamW (each form's best pair, and
the lambda chosen at each learning rate).
"""

from __future__ import annotations

import pandas as pd

from pipeline import choices, stats
from pipeline import findings as F

FORMS = {"adam": "Adam + L2", "adamw": "AdamW"}


def pair_edges(dr: pd.DataFrame, p1: float, p2: float, grid1: list, grid2: list) -> list:
    """Each rate of the chosen dropout pair at its grid's end, with the paired validation
    comparison against the pair one step inside, where validation does not separate them
    (as choices.select says it of a single knob)."""
    said = []
    for name, v, values in (("p1", p1, grid1), ("p2", p2, grid2)):
        limit = choices.edge_limit(v, values)
        if not limit:
            continue
        other = {"p1": p1, "p2": p2} | {name: choices.inner_neighbour(v, values)}
        if len(stats.where(dr, other)):
            flat = choices.not_separated(dr, {"p1": p1, "p2": p2}, other, "val_acc", True,
                                       f"{other['p1']:g}/{other['p2']:g}")
            limit += f"; {flat}" if flat else ""
        said.append(f"{name} {v:g}: {limit}")
    return said


def baseline(base: pd.Series, t: pd.DataFrame, lam: float) -> F.Finding:
    """The chosen lambda's test loss beside the model that ignores every feature and
    predicts the training targets' mean (a win over no weight decay can be a fit that
    learns nothing), and the baseline's validation loss beside every lambda's."""
    row = t[t["lambda"] == lam].iloc[0]
    low = row.test_loss_mean - row.test_loss_ci95
    high = row.test_loss_mean + row.test_loss_ci95
    test, val = base["test_loss"], base["val_loss"]
    if low <= test <= high:
        verdict = ("covers that value: on test loss, the fit is indistinguishable from the "
                   "baseline")
    elif high < test:
        verdict = "lies below it: the fit captures something the mean misses"
    else:
        verdict = "lies above it: the fit is further off than the baseline"
    text = (f"Predicting the training targets' mean, with no features, gives test loss "
            f"{F.fmt(test)}. At lambda {lam:g} the test loss is "
            f"{F.fmt_interval(row.test_loss_mean, row.test_loss_ci95)}; its interval "
            f"{verdict}.")
    least = t.loc[t["val_loss_mean"].idxmin()]
    if val < least.val_loss_mean:
        text += (f" The baseline's validation loss, {F.fmt(val)}, lies below every "
                 f"lambda's mean (the least: {F.fmt(least.val_loss_mean)}, at lambda "
                 f"{least['lambda']:g}).")
    return F.estimate("baseline", text, test_loss=test, val_loss=val)


def best_pair(cells: pd.DataFrame, form: str) -> tuple[float, float]:
    """The (learning rate, lambda) of one form whose mean validation accuracy is best
    (choices.select over the pairs: its rules for diverged runs and ties)."""
    rows = cells[(cells["experiment"] == "adam_decay") & (cells["optimizer"] == form)]
    pairs = rows.assign(pair=[f"{float(lr)!r}/{float(lam)!r}"
                              for lr, lam in zip(rows["lr"], rows["lambda"])])
    lr, lam = choices.select(pairs, "pair", {}, "val_acc", maximize=True).chosen.split("/")
    return float(lr), float(lam)


def at_best(cells: pd.DataFrame, column: str) -> pd.DataFrame:
    """Each form's rows at its best pair's value of `column` (lr: the row of the grid the
    lambda is chosen along; lambda: the column the learning rate is chosen along)."""
    keep = []
    for form in FORMS:
        rows = cells[(cells["experiment"] == "adam_decay") & (cells["optimizer"] == form)]
        if len(rows):
            value = dict(zip(("lr", "lambda"), best_pair(cells, form)))[column]
            keep.append(rows[rows[column] == value])
    return pd.concat(keep) if keep else cells.iloc[:0]


def lambda_by_lr(cells: pd.DataFrame, lrs: list[float]) -> F.Finding:
    """Per form, the lambda chosen on validation at each learning rate of the grid, and
    whether validation separates it from no decay there (a paired interval over seeds):
    with L2 in Adam's gradient the chosen lambda moves with the learning rate, with
    decoupled decay it should not (Loshchilov and Hutter 2019); where no lambda separates
    from none, the decay does nothing measurable and the question cannot be answered."""
    best, separated, parts = {}, {}, []
    for form, label in FORMS.items():
        rows = cells[cells["optimizer"] == form]
        best[form] = {lr: choices.select(rows, "lambda", {"lr": lr}, "val_acc",
                                       maximize=True).chosen for lr in lrs}
        separated[form] = [lr for lr, lam in best[form].items() if lam != 0.0 and stats.compare(
            rows, {"lr": lr, "lambda": lam}, {"lr": lr, "lambda": 0.0}, "val_acc",
            label_a="decay", label_b="none").verdict == "a"]
        listed = ", ".join(f"lr {lr:g}: {lam:g}" for lr, lam in best[form].items())
        parts.append((label, listed, len(separated[form])))
    if not any(separated.values()):
        text = ("The decay does nothing measurable here: at no learning rate does validation "
                "separate the chosen lambda from no decay, so whether it moves with the "
                "learning rate cannot be shown (chosen: "
                + "; ".join(f"{label} {listed}" for label, listed, _ in parts) + ").")
    else:
        text = ("The lambda chosen on validation accuracy at each learning rate: "
                + "; ".join(f"{label} ({listed}): validation separates it from no decay at "
                            f"{k} of {len(lrs)} rates" for label, listed, k in parts) + ".")
    return F.estimate("lambda_by_lr", text,
                      best={form: {f"{lr:g}": lam for lr, lam in b.items()}
                            for form, b in best.items()},
                      separated={form: [f"{lr:g}" for lr in v] for form, v in separated.items()})
