"""Linear regression from scratch: recover w and b by minibatch SGD, down to the noise.

Setting: Dive into Deep Learning, section 3.2 (3.4 in recent editions) "Linear Regression
Implementation from Scratch": y = Xw + b + N(0, 0.01^2) with w = [2, -3.4], b = 4.2 and
1000 rows; weights from N(0, 0.01^2), bias 0, squared loss / 2, minibatch SGD with
learning rate 0.03 and batch 10 for 3 epochs. The book prints the training loss after
each epoch (about 0.043, 1.6e-4, 5.1e-5) and the errors of the learned w and b. The
training loss comes down to about the noise level sigma^2 / 2, the expected loss at the
true w and b (not a bound: a fit to one draw can go below it); the closed-form
least-squares solution shows where it bottoms out on this draw.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from pydantic import Field

from pipeline import choices, stats
from pipeline import findings as F
from pipeline.config import PositiveFloat, PositiveInt, Section, grid
from pipeline.findings import Analysis, Figure
from pipeline.studies.base import Study, StudyOutput


class Params(Section):
    lrs: grid(PositiveFloat) = [0.003, 0.03, 0.3]
    batch_sizes: grid(PositiveInt) = [1, 10, 100]
    epochs: PositiveInt = 3
    init_std: PositiveFloat = 0.01
    d2l_lr: PositiveFloat = 0.03  # the book's cell
    d2l_batch_size: PositiveInt = 10
    # a loss above this times its first loss counts as diverged: in 3 epochs a rate too
    # large for SGD grows the loss a millionfold an epoch and still ends finite; the margin
    # is wide because the first loss is one batch's (at batch 1, one row's, small by chance)
    diverge_factor: float = Field(default=1e6, gt=1)


class LinearRegression(Study):
    name = "linear_regression"
    order = 0
    answer = ("d2l",)  # the findings the summary gives
    title = "Linear regression from scratch"
    question = ("Does minibatch SGD recover the true weights and bias, and how close does "
                "its training loss come down to the noise level?")
    Params = Params
    datasets = ("linear",)

    @classmethod
    def check(cls, config) -> None:
        p = config.linear_regression
        if p.d2l_lr not in p.lrs or p.d2l_batch_size not in p.batch_sizes:
            raise ValueError("linear_regression.lrs / batch_sizes: the grid must hold d2l's "
                             f"cell (lr {p.d2l_lr:g}, batch {p.d2l_batch_size})")

    def cells(self) -> list[dict]:
        return [{"dataset": "linear", "lr": lr, "batch_size": b, "seed": s}
                for lr, b, s in itertools.product(self.p.lrs, self.p.batch_sizes, self.seeds)]

    def brackets(self) -> list:
        """The learning rate that trains fastest, per batch size: the question is how fast
        each rate optimises, so the choice is made on the training loss itself."""
        from pipeline.bracketing import Bracket

        return [Bracket("lr", "train_loss", maximize=False, by=("batch_size",))]

    def job(self, cell: dict, data: dict):
        from pipeline.engine import Arch, Job, TrainSpec

        n_in = data["linear"]["x_train"].shape[1]
        spec = TrainSpec(Arch((n_in, 1), "none"), "sgd", "half_mse", epochs=self.p.epochs,
                         batch_size=cell["batch_size"], log_every=1, init="normal",
                         init_scale=self.p.init_std, diverge_factor=self.p.diverge_factor)
        return Job(spec, seed=cell["seed"], lr=cell["lr"])

    def extras(self, out: StudyOutput, results: list, data: dict) -> None:
        arrays = data["linear"]
        true_w, true_b = arrays["true_w"].astype(np.float64), float(arrays["true_b"])
        w = np.stack([r.params[0][:, 0].numpy() for r in results]).astype(np.float64)
        b = np.array([float(r.params[1][0]) for r in results])
        out.cells["w_error"] = np.linalg.norm(w - true_w, axis=1)
        out.cells["b_error"] = np.abs(b - true_b)
        for k in range(w.shape[1]):
            out.cells[f"w{k}"] = w[:, k]
        out.cells["b"] = b
        x, y = arrays["x_train"].astype(np.float64), arrays["y_train"][:, 0].astype(np.float64)
        design = np.c_[x, np.ones(len(x))]
        sol = np.linalg.lstsq(design, y, rcond=None)[0]
        out.tables["closed_form"] = pd.DataFrame([{
            "w_error": float(np.linalg.norm(sol[:-1] - true_w)),
            "b_error": float(abs(sol[-1] - true_b)),
            "train_loss": float(np.mean((design @ sol - y) ** 2) / 2),
            "noise_level": self.config.data.linear.noise ** 2 / 2}])
        # at its known optimum a run has converged, however much minibatch noise moves its
        # loss over the last tenth of training
        optimum = out.tables["closed_form"]["train_loss"].iloc[0]
        at = (out.cells["train_loss"] <= optimum * (1 + self.config.converge_tol)).to_numpy()
        out.cells["converged"] = np.where(at, 1.0, out.cells["converged"])

    def analyze(self, out: StudyOutput) -> Analysis:
        a = Analysis()
        cells, p = out.cells, self.p
        noise = self.config.data.linear.noise ** 2 / 2  # the expected loss at the truth
        closed = out.tables["closed_form"].iloc[0]
        t = a.table("grid", f"Errors and loss after {p.epochs} epochs over seeds",
                    stats.summarize(cells, ["lr", "batch_size", "bracket_round"],
                                    ["w_error", "b_error", "train_loss", "test_loss"]))
        a.table("closed_form", "The closed-form least-squares solution on the same rows",
                out.tables["closed_form"])
        d2l = {"lr": p.d2l_lr, "batch_size": p.d2l_batch_size}
        row = stats.where(t, d2l).iloc[0]
        w_err = F.fmt_interval(row.w_error_mean, row.w_error_ci95)
        b_err = F.fmt_interval(row.b_error_mean, row.b_error_ci95)
        a.findings.append(F.estimate(
            "d2l", f"d2l's cell (lr {p.d2l_lr:g}, batch {p.d2l_batch_size}, {p.epochs} "
                   f"epochs) recovers w within {w_err} and b within {b_err} (norms of the "
                   f"errors); its training loss "
                   f"{F.fmt_interval(row.train_loss_mean, row.train_loss_ci95)} is "
                   f"{F.fmt(row.train_loss_mean / noise)} times the noise level "
                   f"sigma^2 / 2 = {F.fmt(noise)} (the expected loss at the true w and "
                   f"b), and {F.fmt(row.train_loss_mean / closed.train_loss)} times the "
                   f"closed-form solution's {F.fmt(closed.train_loss)}.",
            ratio_to_noise=row.train_loss_mean / noise))
        for batch in p.batch_sizes:
            lrs = sorted(cells.loc[cells["batch_size"] == batch, "lr"].unique())
            cand = {f"lr {lr:g}": {"lr": lr, "batch_size": batch} for lr in lrs}
            b = choices.best_of(cells, cand, "train_loss", higher_is_better=False)
            f = F.best(f"lr_batch_{batch}", b,
                       f"training loss after {p.epochs} epochs at batch {batch}",
                       "learning rates")
            sel = self.brackets()[0].select(cells, {"batch_size": batch})
            if sel.added:
                f.template += f" Bracketing added lr {F._values(sel.added)} to the grid."
            if b.top and sel.edge and cand[b.top]["lr"] == sel.chosen:
                f.template += (f" The lowest mean is at an edge, where the optimum may lie past "
                           f"it: {b.top} ({sel.limit}).")
                f.data["edge"] = [f"{b.top} ({sel.limit})"]
            a.findings.append(f)
        for r in t.itertuples():
            key = f"lr_{r.lr:g}_batch_{r.batch_size}"
            a.metric(f"train_loss/{key}", r.train_loss_mean, r.train_loss_std)
            a.metric(f"w_error/{key}", r.w_error_mean, r.w_error_std)
        d2l_cells = stats.where(cells, d2l)
        curve = stats.where(out.curves, d2l)
        by_epoch = curve.groupby("epoch")["train_loss"]
        for epoch, low, high in ((1, 0.02, 0.06), (3, 4.5e-5, 5.7e-5)):
            if epoch not in by_epoch.groups:
                continue  # a run shorter than the book's
            a.references.append(F.reference(
                f"d2l_loss_epoch_{epoch}", "d2l 3.2 (Linear Regression Implementation from "
                "Scratch)", f"training loss after epoch {epoch}: about "
                f"{'0.043' if epoch == 1 else '5.1e-5'} across the book's builds",
                f"training loss after epoch {epoch}, d2l's cell", by_epoch.get_group(epoch),
                low=low, high=high,
                # converged, the loss is the noise floor whatever the recipe: the range holds it
                fixed_by="" if epoch == 1 else "the noise floor sigma^2 / 2 of the data"))
        a.references.append(F.reference(
            "d2l_w_error", "d2l 3.2 (Linear Regression Implementation from Scratch)",
            "errors in w of order 1e-4 to 1e-3", "norm of the error in w, d2l's cell",
            d2l_cells["w_error"], low=1e-4, high=2e-3))
        a.table("curves", "Training loss by epoch", stats.summarize(
            out.curves, ["lr", "batch_size", "epoch"], ["train_loss"]), show=False)
        a.plots["d2l_loss"] = by_epoch.mean().reset_index()
        a.figures.append(Figure("Training loss by epoch for each learning rate and batch size "
                                "(95% interval over seeds); dashed: the noise level sigma^2 / 2",
                                "lines", "table/curves", x="epoch", y=["train_loss"],
                                hue="lr", col="batch_size", logy=True,
                                ylabel="training loss", extra={"hline": noise}))
        return a

    def setting(self) -> str:
        p, d = self.p, self.config.data.linear
        return (f"d2l 3.2: y = Xw + b + N(0, {d.noise:g}^2) with w = {d.w}, b = {d.b:g}, "
                f"{d.n} training rows (X ~ N(0, 1)) and {d.n_test} test rows. Linear "
                f"regression from N(0, {p.init_std:g}^2) weights and a zero bias, squared "
                f"loss / 2, minibatch SGD for {p.epochs} epochs at learning rates "
                f"{', '.join(f'{v:g}' for v in p.lrs)} and batch sizes "
                f"{', '.join(map(str, p.batch_sizes))}; a run whose loss climbs past "
                f"{p.diverge_factor:g} times its first loss counts as diverged. Means over "
                f"{len(self.seeds)} seeds.")


STUDY = LinearRegression
