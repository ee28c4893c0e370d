"""Polynomial regression: degree vs fit, under-, good and over-fitting.

Setting: Dive into Deep Learning (Zhang et al.), section 4.4 "Model Selection,
Underfitting, and Overfitting" (5.5 in recent editions): cubic truth
y = 5 + 1.2x - 3.4x^2/2! + 5.6x^3/3! + N(0, 0.1^2), features x^i/i!, 100 training and
100 test points, squared loss, SGD lr 0.01, batch 10. The book fits degree 3 and degree 1
for 400 epochs and degree 19 for 1500; here every degree trains as long as degree 19,
the degree is chosen on a validation draw, and d2l's cubic fit is repeated at 400 epochs.

Closed form: minimum-norm least squares in float64, on the x^i/i! features (the fits too
ill-conditioned to mean anything are left out, visibly), and double descent as Belkin et
al. (2019, "Reconciling modern machine-learning practice and the classical bias-variance
trade-off") show it: minimum-norm least squares on p random ReLU features of real images
(the digits), one-hot targets, p swept through the number of training rows, over draws of
the rows and of the features. The test error peaks where p reaches the rows and falls
again past them; the finding says whether the over-parameterised end beats the peak, the
best fit below the threshold (chosen on validation) and the null model.
"""

from __future__ import annotations

import itertools
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import Field

from pipeline import choices, stats
from pipeline import findings as F
from pipeline.config import PositiveFloat, PositiveInt, Section, grid
from pipeline.datasets.polynomial import features
from pipeline.findings import Analysis, Figure
from pipeline.specs import polynomial_fit
from pipeline.studies.base import Study, StudyOutput

Degree = Annotated[int, Field(ge=0)]


class D2L(Section):
    degree: Degree = 3  # d2l's "normal" fit, compared with the book's printed weights
    epochs: PositiveInt = 400


class DoubleDescent(Section):
    train_rows: PositiveInt = 100  # training images drawn per seed (the threshold)
    features: grid(PositiveInt) = [10, 20, 40, 60, 80, 90, 95, 100, 105, 110, 120, 150,
                                   200, 300, 500, 1000, 2000, 4000]


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
    double_descent: DoubleDescent = DoubleDescent()


class Polynomial(Study):
    name = "polynomial"
    order = 2
    answer = ("degree", "degree_19", "double_descent_best")  # the findings the summary gives
    title = "Polynomial degree vs fit"
    question = ("How does the polynomial degree move a model between under- and "
                "over-fitting, and what happens past the interpolation threshold?")
    Params = Params
    datasets = ("polynomial", "images")

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
        dd = p.double_descent
        below = [f for f in dd.features if f < dd.train_rows]
        if dd.train_rows not in dd.features or not below or max(dd.features) <= dd.train_rows:
            raise ValueError(f"polynomial.double_descent.features: {dd.features} must hold "
                             f"train_rows ({dd.train_rows}) and values below and above it")

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
        reach = float(np.abs(arrays["raw_x_train"]).max())
        out.tables["extrapolation"] = pd.DataFrame(
            [{"split": s, "points": len(arrays[f"raw_x_{s}"]), "train_reach": reach,
              "outside": int((np.abs(arrays[f"raw_x_{s}"]) > reach).sum()),
              "max_abs_x": float(np.abs(arrays[f"raw_x_{s}"]).max())}
             for s in ("val", "test")])
        out.tables["weights"] = pd.DataFrame(weights)
        out.tables["min_norm"] = min_norm_fits(arrays, self.config.data.polynomial.n_features,
                                               self.p.min_norm_train_sizes,
                                               self.p.max_condition)
        dd = self.p.double_descent
        out.tables["double_descent"] = random_features(data["images"], dd.train_rows,
                                                       dd.features, self.seeds)

    def analyze(self, out: StudyOutput) -> Analysis:
        a = Analysis()
        cells = out.cells
        deg = cells[cells["experiment"] == "degree"]
        t = a.table("degrees", "Loss (mean squared error) by degree over seeds",
                    stats.summarize(deg, ["degree"], ["train_loss", "val_loss", "test_loss",
                                                      "gap", "weight_error"]))
        sel = choices.select(deg, "degree", {}, "val_loss", maximize=False)
        chosen = t[t["degree"] == sel.chosen].iloc[0]
        test = F.fmt_interval(chosen.test_loss_mean, chosen.test_loss_ci95)
        null = stats.null_check(deg, stats.where(deg, {"degree": sel.chosen}), "test_loss",
                                chosen.test_loss_mean, False)
        a.findings.append(F.selection("degree", sel, "Degree", f"Its test loss is {test}.",
                                      null))
        a.metric("chosen_degree", sel.chosen)
        a.metric("chosen_test_loss", chosen.test_loss_mean, chosen.test_loss_std)
        low, high = min(self.p.degrees), max(self.p.degrees)
        gaps = "; ".join(
            f"degree {int(r.degree)}: {F.fmt_interval(r.gap_mean, r.gap_ci95)} (train "
            f"{F.fmt_like(r.train_loss_mean, r.gap_ci95)}, test "
            f"{F.fmt_like(r.test_loss_mean, r.gap_ci95)})"
            for r in t[t["degree"].isin([low, sel.chosen, high])].itertuples())
        a.findings.append(F.estimate(
            "gap", f"Train-test gap (test minus train loss) after {self.p.epochs} epochs: "
                   f"{gaps}.{self._extrapolation(out, t, high)}",
            degrees=[low, sel.chosen, high]))
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
        learned = ", ".join(F.fmt_interval(r.weight_mean, r.weight_ci95)
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
                    f"({F.fmt(bad['condition'].min())} and more) exceeds "
                    f"{self.p.max_condition:g}, so those fits are left out.",
                    train_size=n, first_left_out=int(bad["n_features"].min())))
        self._double_descent(a, out.tables["double_descent"])
        return a

    @staticmethod
    def _extrapolation(out: StudyOutput, t: pd.DataFrame, high: int) -> str:
        """Where the validation and test draws reach past the training points' range, and
        what the highest degree's validation loss is there against its test loss."""
        ext = out.tables["extrapolation"].set_index("split")
        r = t[t["degree"] == high].iloc[0]
        reach = F.fmt(float(ext["train_reach"].iloc[0]))
        return (f" The training points reach |x| = {reach}; past it lie "
                f"{int(ext.loc['val', 'outside'])} of the {int(ext.loc['val', 'points'])} "
                f"validation points and {int(ext.loc['test', 'outside'])} of the "
                f"{int(ext.loc['test', 'points'])} test points, and degree {high}'s "
                f"validation loss is {F.fmt(r.val_loss_mean)}, "
                f"{F.fmt(r.val_loss_mean / r.train_loss_mean)} times its training loss, "
                f"against {F.fmt(r.test_loss_mean)} on test.")

    def _double_descent(self, a: Analysis, dd: pd.DataFrame) -> None:
        n, last = self.p.double_descent.train_rows, int(dd["n_features"].max())
        t = a.table("double_descent", "Minimum-norm least squares on p random ReLU features "
                    f"of {n} training digits per draw, over draws (loss: squared error summed "
                    "over the 10 one-hot outputs)",
                    stats.summarize(dd, ["n_features"], ["train_loss", "val_loss",
                                                         "test_loss", "log10_test_loss",
                                                         "test_acc"]))
        sel = choices.select(dd[dd["n_features"] < n], "n_features", {}, "val_loss",
                           maximize=False)
        pairs = "draws of the rows and the features, paired"
        end = f"{last} features"
        peak = stats.compare(dd, {"n_features": last}, {"n_features": n}, "log10_test_loss",
                             label_a=end, label_b=f"{n} features (the threshold)",
                             higher_is_better=False)
        best = stats.compare(dd, {"n_features": last}, {"n_features": sel.chosen}, "test_loss",
                             label_a=end, label_b=f"{sel.chosen} features (the best below "
                             "the threshold on validation)", higher_is_better=False)
        a.findings.append(F.comparison("double_descent", peak, "log10 test loss",
                                       table="double_descent", pairs=pairs))
        f = F.comparison("double_descent_best", best, "test loss", table="double_descent",
                         pairs=pairs)
        beats = {"the peak": peak.verdict == "a", "the best fit below the threshold":
                 best.verdict == "a", "the null model": stats.beats_null(best.mean_a, best)}
        won = [k for k, v in beats.items() if v]
        lost = [k for k, v in beats.items() if not v]
        f.template += (f" Past the threshold, {end} beat " + F._listed(won) + "." if won else
                   f" {end.capitalize()} beat none of the peak, the best fit below the "
                   "threshold and the null model.")
        if won and lost:
            f.template += " It does not beat " + F._listed(lost) + "."
        f.data["beats"] = {k: bool(v) for k, v in beats.items()}
        f.data["appeared"] = all(beats.values())
        if sel.edge:
            F.add_edge(f, [F.edge_item("", sel)], "the number of features")
        a.findings.append(f)
        for key, p in (("peak", n), ("best_below", sel.chosen), ("last", last)):
            rows = t[t["n_features"] == p].iloc[0]
            a.metric(f"double_descent/{key}_test_loss", rows.test_loss_mean, rows.test_loss_std)
        a.figures.append(Figure("Double descent: minimum-norm test loss against the number of "
                                f"random features; {n} training rows (dotted line; 95% "
                                "interval over draws); the training loss is zero past it",
                                "lines", "table/double_descent", x="n_features",
                                y=["test_loss"], logx=True, logy=True,
                                ylabel="test loss", extra={"vline": n}))

    def setting(self) -> str:
        p, d = self.p, self.config.data.polynomial
        dd = p.double_descent
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
            f"number above {p.max_condition:g} left out. Double descent (Belkin et al. 2019): "
            f"minimum-norm least squares on p random ReLU features of the digits "
            f"(p = {min(dd.features)} to {max(dd.features)}), one-hot targets, "
            f"{dd.train_rows} training images drawn per seed, each seed with its own draw of "
            f"the images and of the features. Means over {len(self.seeds)} seeds.")


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


def random_features(arrays: dict, rows: int, n_features: list[int], seeds: list[int]
                    ) -> pd.DataFrame:
    """Minimum-norm least squares (float64) of one-hot targets on the first p of random
    ReLU features relu((x - mean) W), W ~ N(0, 1 / (d var(x))), per p and seed: each seed
    draws its `rows` training images and its W. Losses: the squared error summed over the
    outputs, averaged over the points; the null model predicts the drawn rows' class
    frequencies. Each test point's loss and correctness are attached (outcomes.Points)."""
    from pipeline import outcomes

    x, y = arrays["x_train"].astype(np.float64), arrays["y_train"].astype(int)
    if rows > len(x):
        raise ValueError(f"polynomial.double_descent.train_rows: {rows} exceeds the "
                         f"{len(x)} training images of data.images")
    k = int(y.max()) + 1  # the classes are the training labels'
    for s in ("val", "test"):
        if int(arrays[f"y_{s}"].max()) >= k:
            raise ValueError(f"data.images: the {s} labels hold a class that no training "
                             "image has")
    eye = np.eye(k)
    splits = {s: (arrays[f"x_{s}"].astype(np.float64), arrays[f"y_{s}"].astype(int))
              for s in ("val", "test")}
    out, points = [], outcomes.Points()
    for seed in seeds:
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(x), rows, replace=False))
        xs, target = x[pick], eye[y[pick]]
        center = xs.mean(axis=0)
        w = rng.normal(size=(x.shape[1], max(n_features))) / np.sqrt(x.shape[1] * xs.var())
        feats = {"train": (np.maximum((xs - center) @ w, 0), target)} | {
            s: (np.maximum((xv - center) @ w, 0), eye[yv]) for s, (xv, yv) in splits.items()}
        freq = target.mean(axis=0)
        null = {s: ((freq - t) ** 2).sum(axis=1).mean() for s, (_, t) in feats.items()}
        for p in n_features:
            coef = np.linalg.lstsq(feats["train"][0][:, :p], target, rcond=None)[0]
            row = {"cell": len(out), "seed": seed, "n_features": p, "n_train": rows}
            for s, (f, t) in feats.items():
                pred = f[:, :p] @ coef
                err = ((pred - t) ** 2).sum(axis=1)
                row[f"{s}_loss"] = float(err.mean())
                if s == "test":
                    right = (pred.argmax(axis=1) == t.argmax(axis=1)).astype(float)
                    row["test_acc"] = float(right.mean())
                    points.add(row["cell"], "test_loss", err)
                    points.add(row["cell"], "test_acc", right)
            row["log10_test_loss"] = float(np.log10(row["test_loss"]))
            row |= {f"null_{s}_loss": float(v) for s, v in null.items()}
            row["null_log10_test_loss"] = float(np.log10(null["test"]))
            row["null_test_acc"] = float((feats["test"][1].argmax(axis=1) == freq.argmax()).mean())
            out.append(row)
    return outcomes.attach(pd.DataFrame(out), points)


STUDY = Polynomial
