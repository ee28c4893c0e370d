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
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import Field

from pipeline import choices, stats
from pipeline import findings as F
from pipeline.config import NonNegFloat, PositiveFloat, PositiveInt, Section, grid
from pipeline.findings import Analysis, Figure
from pipeline.specs import WeightDecayRun
from pipeline.studies.base import Study, StudyOutput


class PolynomialPart(Section):
    degrees: grid(Annotated[int, Field(ge=0)]) = list(range(11))
    lr: PositiveFloat = 0.01
    batch_size: PositiveInt = 10
    epochs: PositiveInt = 400
    log_every: PositiveInt = 100
    init_std: PositiveFloat | None = None


class WeightDecayPart(WeightDecayRun):
    lambdas: grid(NonNegFloat) = [0.0, 0.01, 0.1, 1.0, 3.0, 10.0, 30.0, 100.0]
    log_every: PositiveInt = 25


class Params(Section):
    k: Annotated[int, Field(ge=2)] = 5
    shuffle_seed: int = 0
    polynomial: PolynomialPart = PolynomialPart()
    weight_decay: WeightDecayPart = WeightDecayPart()


SELECTIONS = {"degree": "polynomial", "lambda": "highdim"}  # what is chosen -> dataset


def fold_indices(n: int, k: int, seed: int, y: np.ndarray | None = None
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, validation rows) per fold; StratifiedKFold when class labels given."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if y is not None:
        split = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n), y)
    else:
        split = KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n))
    return [(np.sort(tr), np.sort(va)) for tr, va in split]


class KFoldStudy(Study):
    name = "kfold"
    order = 6
    answer = ("degree", "lambda_vs_test")  # the findings the summary gives
    title = "K-fold cross-validation for model selection"
    question = ("Does the config chosen by K-fold cross-validation also do well on the "
                "held-out test set, and how close is the CV estimate to the test loss?")
    Params = Params
    datasets = ("polynomial", "highdim")

    @classmethod
    def check(cls, config) -> None:
        p, n_features = config.kfold, config.data.polynomial.n_features
        for d in p.polynomial.degrees:
            if d >= n_features:
                raise ValueError(f"kfold.polynomial.degrees: degree {d} needs {d + 1} features "
                                 f"but data.polynomial.n_features is {n_features}")
        for name in SELECTIONS.values():
            n = getattr(config.data, name).n_train
            if p.k > n:
                raise ValueError(f"kfold.k: {p.k} folds exceed the {n} training rows of "
                                 f"data.{name}")

    def cells(self) -> list[dict]:
        p, cells = self.p, []
        for fold in [*range(p.k), None]:  # None: the refit on the whole training set
            cells += [{"selection": "degree", "dataset": "polynomial", "value": float(d),
                       "fold": fold, "seed": s}
                      for d, s in itertools.product(p.polynomial.degrees, self.seeds)]
            cells += [{"selection": "lambda", "dataset": "highdim", "value": lam, "fold": fold,
                       "seed": s} for lam, s in itertools.product(p.weight_decay.lambdas,
                                                                  self.seeds)]
        return cells

    def _folds(self, data: dict, dataset: str):
        return fold_indices(len(data[dataset]["x_train"]), self.p.k, self.p.shuffle_seed)

    def job(self, cell: dict, data: dict):
        """The same model and training as the polynomial and weight-decay studies."""
        from pipeline.engine import Job
        from pipeline.specs import polynomial_fit, weight_decay_regression

        n_in = data[cell["dataset"]]["x_train"].shape[1]
        rows = None
        if cell["fold"] is not None:
            rows = tuple(int(r) for r in self._folds(data, cell["dataset"])[cell["fold"]][0])
        if cell["selection"] == "degree":
            part = self.p.polynomial
            return Job(polynomial_fit(part, n_in), seed=cell["seed"], lr=part.lr, rows=rows,
                       active_inputs=int(cell["value"]) + 1)
        part = self.p.weight_decay
        return Job(weight_decay_regression(part, n_in), seed=cell["seed"], lr=part.lr,
                   rows=rows,
                   l2_penalty=cell["value"])

    def extras(self, out: StudyOutput, results: list, data: dict) -> None:
        """Each fold cell's loss on its held-out fold: the CV validation loss."""
        import torch

        from pipeline.engine import predict

        cv = [np.nan] * len(results)
        for i, (cell, res) in enumerate(zip(out.cells.to_dict("records"), results)):
            if pd.isna(cell["fold"]) or res.diverged:
                continue
            arrays = data[cell["dataset"]]
            va = self._folds(data, cell["dataset"])[int(cell["fold"])][1]
            x = torch.as_tensor(arrays["x_train"][va])
            if res.job.active_inputs is not None:
                x[:, res.job.active_inputs:] = 0.0
            err = predict(res.job.spec.arch, res.params, x).numpy() - arrays["y_train"][va]
            cv[i] = float(np.mean(err ** 2) / (2 if res.job.spec.loss == "half_mse" else 1))
        out.cells["cv_loss"] = cv
        out.cells["fold"] = out.cells["fold"].astype("Int64")

    def analyze(self, out: StudyOutput) -> Analysis:
        a = Analysis()
        cells = out.cells
        # the folds are the units of the CV estimate: each fold's loss is first averaged
        # over seeds (seeds barely move a fold's loss; counting them would shrink the
        # interval as if the k folds were k x seeds independent draws)
        folds = stats.collapse(cells[cells["fold"].notna()], ["selection", "value", "fold"],
                               ["cv_loss"])
        refit = cells[cells["fold"].isna()]
        cv = stats.summarize(folds, ["selection", "value"], ["cv_loss"])
        test = stats.summarize(refit, ["selection", "value"], ["test_loss"])
        t = a.table("selection", f"CV estimate (over the {self.p.k} folds, each averaged over "
                    "seeds) vs the refitted test loss (over seeds), per candidate",
                    cv.merge(test.drop(columns=["n", "n_diverged"]), on=["selection", "value"]))
        for selection in SELECTIONS:
            self._selection(a, t, folds, refit, selection)
        a.plots["degree"] = (t[t["selection"] == "degree"][["value", "cv_loss_mean",
                                                              "test_loss_mean"]]
                             .rename(columns={"value": "degree", "cv_loss_mean": "cv_loss",
                                              "test_loss_mean": "test_loss"}))
        a.figures.append(Figure(f"CV loss (over the {self.p.k} folds) and refitted test loss "
                                "(over seeds), 95% intervals", "lines", "table/selection",
                                x="value", y=["cv_loss", "test_loss"], col="selection", logy=True,
                                ylabel="loss", extra={"symlog_x": ["lambda"]}))
        return a

    def _selection(self, a: Analysis, t: pd.DataFrame, folds: pd.DataFrame,
                   refit: pd.DataFrame, selection: str) -> None:
        sel = choices.select(folds, "value", {"selection": selection}, "cv_loss", maximize=False)
        row = t[(t["selection"] == selection) & (t["value"] == sel.chosen)].iloc[0]
        name = "Degree" if selection == "degree" else "Lambda"
        covers = abs(row.cv_loss_mean - row.test_loss_mean) <= row.cv_loss_ci95
        a.findings.append(F.selection(
            selection, sel, f"{name} ({self.p.k}-fold)",
            f"Refitted on all training rows, its test loss is "
            f"{F.fmt_interval(row.test_loss_mean, row.test_loss_ci95)}. The CV "
            f"estimate is {F.fmt_interval(row.cv_loss_mean, row.cv_loss_ci95)} over the "
            f"{self.p.k} folds (which share training rows, so that interval understates its "
            f"uncertainty). The estimate is {F.fmt(row.cv_loss_mean / row.test_loss_mean)} "
            f"times the test loss, " + ("but its interval covers the test loss, so the gap is "
                                        "within the folds' spread." if covers else
                                        "and its interval does not reach the test loss."),
            stats.null_check(refit, stats.where(refit, {"selection": selection,
                                                        "value": sel.chosen}),
                             "test_loss", row.test_loss_mean, False)))
        part = refit[refit["selection"] == selection]
        means = part[~part["diverged"]].groupby("value")["test_loss"].mean()
        on_test = float(means.idxmin())
        if on_test != sel.chosen:  # a check of CV, not a choice: the choice stays CV's
            c = stats.compare(part, {"selection": selection, "value": sel.chosen, "fold": None},
                              {"selection": selection, "value": on_test, "fold": None},
                              "test_loss",
                              label_a=f"the CV choice ({selection} {sel.chosen:g})",
                              label_b=f"{selection} {on_test:g} (the lowest mean test loss)",
                              higher_is_better=False)
            a.findings.append(F.comparison(f"{selection}_vs_test", c, "test loss"))
        a.metric(f"{selection}/chosen", sel.chosen)
        a.metric(f"{selection}/cv_loss", sel.value, float(row.cv_loss_std))
        a.metric(f"{selection}/test_loss", row.test_loss_mean, row.test_loss_std)

    def setting(self) -> str:
        p = self.p
        return (f"{p.k}-fold cross-validation (scikit-learn's KFold, shuffled with seed "
                f"{p.shuffle_seed}) on the training rows. Degrees "
                f"{', '.join(map(str, p.polynomial.degrees))} of the d2l 4.4 polynomial "
                f"({p.polynomial.epochs} epochs of SGD at {p.polynomial.lr:g}); lambdas "
                f"{', '.join(f'{v:g}' for v in p.weight_decay.lambdas)} of the d2l 4.5 "
                f"regression ({p.weight_decay.epochs} epochs at {p.weight_decay.lr:g}). The "
                f"choice minimises the mean validation loss over folds and seeds, and is "
                f"refitted on all training rows. Means over {len(self.seeds)} seeds.")


STUDY = KFoldStudy
