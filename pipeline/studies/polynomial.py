"""Polynomial regression: degree vs fit, under-, good and over-fitting.

Setting: Dive into Deep Learning (Zhang et al.), section 4.4 "Model Selection,
Underfitting, and Overfitting" (5.5 in recent editions): cubic truth
y = 5 + 1.2x - 3.4x^2/2! + 5.6x^3/3! + N(0, 0.1^2), features x^i/i!, 100 training and
100 test points, squared loss, SGD lr 0.01, batch 10. The book fits degree 3 and degree 1
for 400 epochs and degree 19 for 1500; here every degree trains as long as degree 19,
the degree is chosen on a validation draw, and d2l's cubic fit is repeated at 400 epochs.

Closed form: minimum-norm least squares in float64, on the x^i/i! features (the fits too
ill-conditioned to mean anything are left out, visibly), and, where double descent can
appear, on the first p features of the d2l weight-decay regression (n = 20 rows, 200
Gaussian features): the test error peaks when the parameters reach the rows, then falls.
"""

from __future__ import annotations

import itertools
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import Field

from pipeline import findings as F
from pipeline import stats
from pipeline.config import PositiveFloat, PositiveInt, Section, grid
from pipeline.datasets.polynomial import features
from pipeline.findings import Analysis, Figure
from pipeline.specs import polynomial_fit
from pipeline.studies.base import Study, StudyOutput

Degree = Annotated[int, Field(ge=0)]


class D2L(Section):
    degree: Degree = 3  # d2l's "normal" fit, compared with the book's printed weights
    epochs: PositiveInt = 400


class Params(Section):
    degrees: grid(Degree) = list(range(20))  # features = degree + 1
    lr: PositiveFloat = 0.01
    batch_size: PositiveInt = 10
    epochs: PositiveInt = 1500
    log_every: PositiveInt = 50
    init_std: PositiveFloat | None = None  # None: torch.nn.Linear's default, as in d2l
    d2l: D2L = D2L()
    min_norm_train_sizes: grid(PositiveInt) = [10, 100]
    max_condition: Annotated[float, Field(gt=1)] = 1e12  # beyond: a fit means nothing
    double_descent_features: grid(PositiveInt) = [
        1, 2, 5, 10, 15, 17, 18, 19, 20, 21, 22, 25, 30, 40, 60, 100, 150, 200]


class Polynomial(Study):
    name = "polynomial"
    order = 2
    answer = ("degree", "degree_19")  # the findings the summary gives
    title = "Polynomial degree vs fit"
    question = ("How does the polynomial degree move a model between under- and "
                "over-fitting, and what happens past the interpolation threshold?")
    Params = Params
    datasets = ("polynomial", "highdim")

    @classmethod
    def check(cls, config) -> None:
        n = config.data.polynomial.n_features
        p = config.polynomial
        for key, degrees in (("degrees", p.degrees), ("d2l.degree", [p.d2l.degree])):
            for d in degrees:
                if d >= n:
                    raise ValueError(f"polynomial.{key}: degree {d} needs {d + 1} features "
                                     f"but data.polynomial.n_features is {n}")
        for size in p.min_norm_train_sizes:
            if size > config.data.polynomial.n_train:
                raise ValueError(f"polynomial.min_norm_train_sizes: {size} exceeds "
                                 f"data.polynomial.n_train ({config.data.polynomial.n_train})")
        if max(p.double_descent_features) > config.data.highdim.d:
            raise ValueError(f"polynomial.double_descent_features: {max(p.double_descent_features)}"
                             f" exceeds data.highdim.d ({config.data.highdim.d})")

    def cells(self) -> list[dict]:
        p = self.p
        cells = [{"experiment": "degree", "dataset": "polynomial", "degree": d, "seed": s}
                 for d, s in itertools.product(p.degrees, self.seeds)]
        return cells + [{"experiment": "d2l", "dataset": "polynomial", "degree": p.d2l.degree,
                         "seed": s} for s in self.seeds]

    def job(self, cell: dict, data: dict):
        from pipeline.engine import Job

        p = self.p
        epochs = p.d2l.epochs if cell["experiment"] == "d2l" else p.epochs
        spec = polynomial_fit(p.model_copy(update={"epochs": epochs}),
                          data["polynomial"]["x_train"].shape[1])
        return Job(spec, seed=cell["seed"], lr=p.lr, active_inputs=cell["degree"] + 1)

    def extras(self, out: StudyOutput, results: list, data: dict) -> None:
        arrays = data["polynomial"]
        true_w = arrays["true_w"]
        weights = []
        for i, (c, res) in enumerate(zip(out.cells.to_dict("records"), results)):
            w = res.params[0][:, 0].numpy()
            out.cells.loc[i, "weight_error"] = float(np.linalg.norm(w - true_w))
            weights += [{"cell": i, "experiment": c["experiment"], "degree": c["degree"],
                         "seed": c["seed"], "index": k, "weight": float(w[k]),
                         "true_weight": float(true_w[k])} for k in range(c["degree"] + 1)]
        out.cells["gap"] = out.cells["test_loss"] - out.cells["train_loss"]
        out.tables["weights"] = pd.DataFrame(weights)
        out.tables["min_norm"] = min_norm_fits(arrays, self.config.data.polynomial.n_features,
                                               self.p.min_norm_train_sizes,
                                               self.p.max_condition)
        out.tables["double_descent"] = double_descent(data["highdim"],
                                                      self.p.double_descent_features,
                                                      self.seeds)

    def analyze(self, out: StudyOutput) -> Analysis:
        a = Analysis()
        cells = out.cells
        deg = cells[cells["experiment"] == "degree"]
        t = a.table("degrees", "Loss (mean squared error) by degree over seeds",
                    stats.summarize(deg, ["degree"], ["train_loss", "val_loss", "test_loss",
                                                      "gap", "weight_error"]))
        sel = stats.select(deg, "degree", {}, "val_loss", maximize=False)
        chosen = t[t["degree"] == sel.chosen].iloc[0]
        test = stats.fmt_interval(chosen.test_loss_mean, chosen.test_loss_ci95)
        a.findings.append(F.selection("degree", sel, "Degree", f"Its test loss is {test}."))
        a.metric("chosen_degree", sel.chosen)
        a.metric("chosen_test_loss", chosen.test_loss_mean, chosen.test_loss_std)
        low, high = min(self.p.degrees), max(self.p.degrees)
        gaps = "; ".join(
            f"degree {int(r.degree)}: {stats.fmt_interval(r.gap_mean, r.gap_ci95)} (train "
            f"{stats.fmt_like(r.train_loss_mean, r.gap_ci95)}, test "
            f"{stats.fmt_like(r.test_loss_mean, r.gap_ci95)})"
            for r in t[t["degree"].isin([low, sel.chosen, high])].itertuples())
        a.findings.append(F.estimate(
            "gap", f"Train-test gap (test minus train loss) after {self.p.epochs} epochs: "
                   f"{gaps}.", degrees=[low, sel.chosen, high]))
        for d in sorted({low, high} - {sel.chosen}):
            c = stats.compare(cells, {"experiment": "degree", "degree": d},
                              {"experiment": "degree", "degree": sel.chosen}, "test_loss",
                              label_a=f"degree {d}", label_b=f"degree {sel.chosen}",
                              higher_is_better=False)
            a.findings.append(F.comparison(f"degree_{d}", c, "test loss"))
        for r in t.itertuples():
            a.metric(f"test_loss/{int(r.degree)}", r.test_loss_mean, r.test_loss_std)
        a.plots["loss_by_degree"] = pd.DataFrame({"degree": t["degree"],
                                                  "train_loss": t["train_loss_mean"],
                                                  "test_loss": t["test_loss_mean"]})
        a.figures.append(Figure("Train, validation and test loss by degree (95% interval over "
                                "seeds)", "lines", "table/degrees", x="degree",
                                y=["train_loss", "val_loss", "test_loss"], logy=True,
                                ylabel="MSE"))
        self._d2l(a, out)
        self._min_norm(a, out)
        return a

    def _d2l(self, a: Analysis, out: StudyOutput) -> None:
        p = self.p
        w = out.tables["weights"]
        fit = w[w["experiment"] == "d2l"]
        table = a.table("d2l_weights", f"Degree-{p.d2l.degree} weights after "
                        f"{p.d2l.epochs} epochs (d2l's fit)",
                        stats.summarize(fit, ["index", "true_weight"],
                                        ["weight"]))
        learned = ", ".join(stats.fmt_interval(r.weight_mean, r.weight_ci95)
                            for r in table.itertuples())
        a.findings.append(F.estimate(
            "d2l_weights", f"d2l's degree-{p.d2l.degree} fit ({p.d2l.epochs} epochs) learns "
                           f"weights [{learned}] for the truth "
                           f"[{', '.join(f'{v:g}' for v in table['true_weight'])}]."))
        published = [5.00, 1.21, -3.40, 5.57]  # d2l 4.4's printed weights, across builds
        if p.d2l.degree == 3:
            for k, value in enumerate(published):
                a.references.append(F.reference(
                    f"d2l_cubic_w{k}", "d2l 4.4 (Model Selection, Underfitting, and "
                    "Overfitting), third-order fit", f"weight {k} close to {value} across builds",
                    f"weight {k} of the degree-3 fit after {p.d2l.epochs} epochs",
                    fit[fit["index"] == k]["weight"], value=value, tolerance=0.05))
        a.figures.append(Figure(f"Degree-{p.d2l.degree} weights vs the truth (95% interval "
                                "over seeds)", "bars", "table/d2l_weights", x="index",
                                y=["weight", "true_weight"], xlabel="coefficient of x^i / i!"))

    def _min_norm(self, a: Analysis, out: StudyOutput) -> None:
        mn = a.table("min_norm", "Minimum-norm least squares on the x^i/i! features "
                     "(mean squared error)",
                     out.tables["min_norm"])
        for n, part in mn.groupby("train_size"):
            bad = part[~part["kept"]]
            if len(bad):
                a.findings.append(F.estimate(
                    f"min_norm_{n}", f"Minimum-norm fits on {n} points: from "
                    f"{int(bad['n_features'].min())} features on, the condition number "
                    f"({stats.fmt(bad['condition'].min())} and more) exceeds "
                    f"{self.p.max_condition:g}, so those fits are left out.",
                    train_size=n, first_left_out=int(bad["n_features"].min())))
        dd = out.tables["double_descent"]
        n = int(dd["n_train"].iloc[0])
        t = a.table("double_descent", "Minimum-norm least squares on the first p features of "
                    "the d2l weight-decay data, over random feature orders (mean squared "
                    "error, where the regularization study prints half of it)",
                    stats.summarize(dd, ["n_params"],
                                    ["train_loss", "test_loss", "log10_test_loss"]))
        last = int(dd["n_params"].max())
        if n in set(dd["n_params"]) and last > n:
            c = stats.compare(dd, {"n_params": last}, {"n_params": n},
                              "log10_test_loss", label_a=f"{last} parameters",
                              label_b=f"{n} parameters (as many as training rows)",
                              higher_is_better=False)
            appeared = c.verdict == "a"
            f = F.comparison("double_descent", c, "log10 test MSE", table="double_descent",
                             pairs="random feature orders, paired")
            f.text += (" The second descent appeared: past the interpolation threshold the "
                       "test error falls again." if appeared else
                       " No second descent: the test error does not fall significantly past "
                       "the interpolation threshold.")
            row = t.set_index("n_params").loc[last]
            if row["log10_test_loss_std"] == 0:
                f.text += (f" At {last} parameters every feature is in, so the order changes "
                           "nothing: one value, not a spread.")
            below = t[t["n_params"] < n]
            if len(below):
                low = below.loc[below["log10_test_loss_mean"].idxmin()]
                ci = low["log10_test_loss_ci95"]
                f.text += (f" Below the threshold the lowest mean is "
                           f"{stats.fmt_interval(low['log10_test_loss_mean'], ci)}, at "
                           f"{int(low['n_params'])} parameters; at {last} parameters it is "
                           f"{stats.fmt_like(row['log10_test_loss_mean'], ci)}.")
            f.data["appeared"] = appeared
            a.findings.append(f)
            a.metric("double_descent/peak_test_loss", float(t[t["n_params"] == n]
                                                            ["test_loss_mean"].iloc[0]))
            a.metric("double_descent/last_test_loss", float(t[t["n_params"] == last]
                                                            ["test_loss_mean"].iloc[0]))
        a.figures.append(Figure("Double descent: minimum-norm test error against the number of "
                                f"parameters; {n} training rows (95% interval over feature "
                                "orders); the training error is zero past the threshold",
                                "lines", "table/double_descent", x="n_params",
                                y=["test_loss"], logx=True, logy=True,
                                ylabel="MSE", extra={"vline": n}))

    def setting(self) -> str:
        p, d = self.p, self.config.data.polynomial
        truth = "".join(f"{' - ' if w < 0 else ' + ' if i else ''}{abs(w) if i else w:g}"
                        f"x^{i}/{i}!" for i, w in enumerate(d.true_w))
        return (
            f"d2l 4.4: x ~ N(0, 1), y = {truth} + N(0, {d.noise:g}^2), features x^i/i! for "
            f"i < {d.n_features}; {d.n_train} training, {d.n_val} validation and {d.n_test} "
            f"test points. Degrees {min(p.degrees)} to {max(p.degrees)} train with SGD (lr "
            f"{p.lr:g}, batch {p.batch_size}) for {p.epochs} epochs, from "
            f"{'torch.nn.Linear' if p.init_std is None else f'N(0, {p.init_std:g}^2)'} init; "
            f"d2l's degree-{p.d2l.degree} fit is repeated at {p.d2l.epochs} epochs. "
            f"Minimum-norm least squares (float64) on the first "
            f"{', '.join(map(str, p.min_norm_train_sizes))} points, fits with a condition "
            f"number above {p.max_condition:g} left out; double descent on the first p of "
            f"the {self.config.data.highdim.d} Gaussian features of the weight-decay data "
            f"({self.config.data.highdim.n_train} rows). Means over {len(self.seeds)} seeds.")


def min_norm_fits(arrays: dict, n_features: int, sizes: list[int],
                  max_condition: float) -> pd.DataFrame:
    """Minimum-norm least squares per feature count and training-set size, in float64
    from the raw x; a fit whose condition number exceeds max_condition is marked."""
    x, y = arrays["raw_x_train"].astype(np.float64), arrays["y_train"][:, 0].astype(np.float64)
    xt, yt = arrays["raw_x_test"].astype(np.float64), arrays["y_test"][:, 0].astype(np.float64)
    rows = []
    for n, k in itertools.product(sizes, range(1, n_features + 1)):
        a, at = features(x[:n], k), features(xt, k)
        cond = float(np.linalg.cond(a))
        w = np.linalg.lstsq(a, y[:n], rcond=None)[0]  # SVD; the minimum-norm solution
        rows.append({"train_size": n, "n_features": k, "condition": cond,
                     "kept": cond <= max_condition,
                     "train_loss": float(np.mean((a @ w - y[:n]) ** 2)),
                     "test_loss": float(np.mean((at @ w - yt) ** 2))})
    return pd.DataFrame(rows)


def double_descent(arrays: dict, n_features: list[int], seeds: list[int]) -> pd.DataFrame:
    """Minimum-norm least squares (intercept + the first p features of a seeded random
    order of the columns), per p and seed, in float64."""
    x, y = arrays["x_train"].astype(np.float64), arrays["y_train"][:, 0].astype(np.float64)
    xt, yt = arrays["x_test"].astype(np.float64), arrays["y_test"][:, 0].astype(np.float64)
    null = float(np.mean((yt - y.mean()) ** 2))  # the training mean, the 0-feature fit
    rows = []
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(x.shape[1])
        for p in n_features:
            a = np.c_[np.ones(len(x)), x[:, order[:p]]]
            at = np.c_[np.ones(len(xt)), xt[:, order[:p]]]
            w = np.linalg.lstsq(a, y, rcond=None)[0]
            test = float(np.mean((at @ w - yt) ** 2))
            rows.append({"seed": seed, "n_features": p, "n_params": p + 1, "n_train": len(x),
                         "train_loss": float(np.mean((a @ w - y) ** 2)), "test_loss": test,
                         "log10_test_loss": float(np.log10(test)),
                         "null_test_loss": null, "null_log10_test_loss": float(np.log10(null))})
    return pd.DataFrame(rows)


STUDY = Polynomial
