"""Autoencoders: reconstruction through a narrow hidden layer, and the linear one's PCA.

Setting: the autoencoder notes of the NYU Deep Learning course (DLSP20, week 7): an
input x is encoded to h = f(W x + b) of fewer units and decoded to x' = W' h + b', with
the option of tied weights, W' = W^T. Trained on the default images to minimise the
reconstruction error, for several bottleneck widths, linear and ReLU encoders, tied and
untied. Baldi and Hornik (1989): the linear autoencoder's optimum spans the same
subspace as the leading principal components, so its reconstruction error at width k
can at best match PCA's with k components, which scikit-learn computes beside it.
"""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np
import pandas as pd

from pipeline import choices, stats
from pipeline import findings as F
from pipeline.config import PositiveFloat, PositiveInt, Section, grid
from pipeline.findings import Analysis, Figure
from pipeline.studies.base import Study, StudyOutput, image_rows

LABELS = {("none", False): "linear", ("none", True): "linear, tied",
          ("relu", False): "ReLU", ("relu", True): "ReLU, tied"}


class Params(Section):
    bottlenecks: grid(PositiveInt) = [2, 4, 8, 16, 32]
    activations: grid(Literal["none", "relu"]) = ["none", "relu"]
    tied: grid(bool) = [False, True]
    # Adam's learning rate, bracketed on validation loss for each model at each width
    lrs: grid(PositiveFloat) = [0.001, 0.003, 0.01, 0.03, 0.1]
    batch_size: PositiveInt = 64
    epochs: PositiveInt = 150
    # cosine: each rate annealed towards zero over the epochs, so that minibatch noise
    # does not hold a model above its optimum (the question is about the optimum: does
    # the linear autoencoder reach PCA?); constant: the rate throughout
    schedule: Literal["constant", "cosine"] = "cosine"
    # train each model until it converges (converge_tol), at most `epochs`; with a
    # constant rate only (the rule would end a schedule part-way)
    until_converged: bool = False
    compare_at: PositiveInt = 8  # the bottleneck where models are compared
    shown_images: PositiveInt = 8


class Autoencoder(Study):
    name = "autoencoder"
    order = 9
    # the findings the summary gives: PCA reached, and the ReLU encoder at every width
    answer = ("pca", "relu_False_vs_none_False_other_widths")
    title = "Autoencoders: bottleneck width, and the linear autoencoder vs PCA"
    question = ("How does reconstruction improve with the bottleneck, what does a "
                "non-linearity or tying the weights change, and does the linear "
                "autoencoder reach PCA?")
    Params = Params
    datasets = ("images",)

    @classmethod
    def check(cls, config) -> None:
        p = config.autoencoder
        if p.compare_at not in p.bottlenecks:
            raise ValueError(f"autoencoder.compare_at: {p.compare_at} is not one of the "
                             f"bottlenecks {p.bottlenecks}")
        if p.until_converged and p.schedule != "constant":
            raise ValueError(f"autoencoder.until_converged: stopping at convergence would end "
                             f"the {p.schedule} schedule part-way; set autoencoder.schedule "
                             "to constant, or until_converged to false")

    def arrays(self, data: dict) -> dict:
        """Inputs are their own targets."""
        d = data["images"]
        return {"images/reconstruct": {f"{k}_{s}": d[f"x_{s}"] for k in ("x", "y")
                                       for s in ("train", "val", "test")}}

    def cells(self) -> list[dict]:
        p = self.p
        return [{"dataset": "images/reconstruct", "bottleneck": k, "activation": a,
                 "tied": t, "model": LABELS[(a, t)], "lr": lr, "seed": s}
                for k, a, t, lr, s in itertools.product(p.bottlenecks, p.activations, p.tied,
                                                        p.lrs, self.seeds)]

    def brackets(self) -> list:
        from pipeline.bracketing import Bracket

        return [Bracket("lr", "val_loss", maximize=False, by=("bottleneck", "model"))]

    def chosen(self, cells: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
        """Each model's learning rate at each width, and the cells at those rates."""
        bracket = self.brackets()[0]
        chosen = {(k, m): bracket.select(cells, {"bottleneck": k, "model": m})
                  for k, m in cells[["bottleneck", "model"]].drop_duplicates().itertuples(
                      index=False)}
        mine = pd.concat([stats.where(cells, {"bottleneck": k, "model": m, "lr": s.chosen})
                          for (k, m), s in chosen.items()])
        return chosen, mine

    def job(self, cell: dict, data: dict):
        from pipeline.engine import Arch, Job, TrainSpec

        n = data["images"]["x_train"].shape[1]
        arch = Arch((n, cell["bottleneck"], n), cell["activation"], tied=cell["tied"])
        p = self.p
        spec = TrainSpec(arch, "adam", "mse", epochs=p.epochs, batch_size=p.batch_size,
                         log_every=max(1, p.epochs // (40 if p.until_converged else 10)),
                         stop_tol=self.config.converge_tol if p.until_converged else None,
                         schedule=p.schedule)
        return Job(spec, seed=cell["seed"], lr=cell["lr"])

    def extras(self, out: StudyOutput, results: list, data: dict) -> None:
        import torch
        from sklearn.decomposition import PCA

        from pipeline.engine import predict

        d = data["images"]
        x_train, x_test = d["x_train"].astype(np.float64), d["x_test"].astype(np.float64)
        rows = []
        for k in self.p.bottlenecks:
            pca = PCA(n_components=min(k, *x_train.shape)).fit(x_train)
            rec = pca.inverse_transform(pca.transform(x_test))
            fit = pca.inverse_transform(pca.transform(x_train))
            rows.append({"bottleneck": k, "pca_train_loss": float(np.mean((fit - x_train) ** 2)),
                         "pca_test_loss": float(np.mean((rec - x_test) ** 2)),
                         "explained": float(pca.explained_variance_ratio_.sum())})
        out.tables["pca"] = pd.DataFrame(rows)
        shown = d["x_test"][:self.p.shown_images]
        images = [image_rows("input", shown)]
        chosen, _ = self.chosen(out.cells)
        for i, cell in enumerate(out.cells.to_dict("records")):
            if cell["seed"] == self.seeds[0] and cell["activation"] == self.p.activations[0] \
                    and cell["tied"] == self.p.tied[0] \
                    and cell["lr"] == chosen[(cell["bottleneck"], cell["model"])].chosen:
                rec = predict(results[i].job.spec.arch, results[i].params,
                              torch.as_tensor(shown)).numpy()
                images.append(image_rows(f"{cell['model']}, {cell['bottleneck']} units",
                                          rec.clip(0, 1)))
        out.tables["reconstructions"] = pd.concat(images, ignore_index=True)

    def analyze(self, out: StudyOutput) -> Analysis:
        a = Analysis()
        p = self.p
        chosen, cells = self.chosen(out.cells)
        a.findings.append(F.selections("lrs", {f"{m}, {k} units": s for (k, m), s in
                                               chosen.items()}, "Learning rates"))
        pca = out.tables["pca"]
        t = a.table("reconstruction", "Reconstruction error (mean squared error per pixel) "
                    "of each model at its learning rate chosen on validation loss, over seeds",
                    stats.summarize(cells, ["bottleneck", "model", "activation", "tied", "lr"],
                                    ["train_loss", "val_loss", "test_loss"]))
        a.table("grid", "Reconstruction error by model, width and learning rate over seeds "
                "(bracket_round: 0 for the grid, k for a value added in round k)",
                stats.summarize(out.cells, ["bottleneck", "model", "lr", "bracket_round"],
                                ["train_loss", "val_loss", "test_loss"]), show=False)
        a.table("pca", "PCA with as many components as the bottleneck", pca)
        linear = t[t["model"] == "linear"].merge(pca, on="bottleneck")
        if len(linear):
            ratios = (linear["test_loss_mean"] / linear["pca_test_loss"]).to_numpy()
            trained = (linear["train_loss_mean"] / linear["pca_train_loss"]).to_numpy()
            near = trained <= 1 + self.config.converge_tol
            listed = "; ".join(f"{int(r.bottleneck)} units: {F.fmt(r.test_loss_mean)} vs "
                               f"{F.fmt(r.pca_test_loss)}" for r in linear.itertuples())
            short = [str(int(b)) for b, ok in zip(linear["bottleneck"], near) if not ok]
            span = f"{F.fmt(trained.min(), 4)} to {F.fmt(trained.max(), 4)}"
            tol = f"{self.config.converge_tol:.0%}"
            reach = (f"On its own training images the autoencoder reaches PCA's error within "
                     f"{tol} at every width ({span} times PCA's), so the test errors compare "
                     "two fits of the same optimum." if near.all() else
                     f"On its own training images the autoencoder's error is {span} times "
                     f"PCA's, more than {tol} above it at {', '.join(short)} units: there it "
                     "has not reached PCA's optimum, and the test gap is under-training, not "
                     "generalisation.")
            a.findings.append(F.estimate(
                "pca", f"{reach} The linear autoencoder against PCA (test reconstruction "
                       f"error): {listed}; the autoencoder's error is "
                       f"{F.fmt(ratios.min())} to {F.fmt(ratios.max())} times PCA's.",
                ratios=ratios.tolist(), train_ratios=trained.tolist(),
                reached=[int(b) for b, ok in zip(linear["bottleneck"], near) if ok]))
            for r, ratio in zip(linear.itertuples(), ratios):
                a.metric(f"linear_over_pca/{int(r.bottleneck)}", float(ratio))
        self._relu_optimum(a, t.merge(pca, on="bottleneck"))

        def side(w: int, act: str, tie: bool) -> dict:  # a model at its own rate
            lr = chosen[(w, LABELS[(act, tie)])].chosen
            return {"bottleneck": w, "activation": act, "tied": tie, "lr": lr}

        k = p.compare_at
        pairs = [(("relu", False), ("none", False), "the ReLU encoder", "the linear encoder"),
                 (("none", True), ("none", False), "the tied linear autoencoder",
                  "the untied linear autoencoder"),
                 (("relu", True), ("relu", False), "the tied ReLU autoencoder",
                  "the untied ReLU autoencoder")]
        for (act_a, tie_a), (act_b, tie_b), label_a, label_b in pairs:
            if {act_a, act_b} <= set(p.activations) and {tie_a, tie_b} <= set(p.tied):
                c = stats.compare(cells, side(k, act_a, tie_a), side(k, act_b, tie_b),
                                  "test_loss", label_a=label_a, label_b=label_b,
                                  higher_is_better=False)
                pair = f"{act_a}_{tie_a}_vs_{act_b}_{tie_b}"
                f = F.comparison(pair, c, f"test reconstruction error at {k} units")
                f.data["setting"] = f"{k} units"  # beside the other widths' in the figure
                a.findings.append(f)
                widths = [w for w in p.bottlenecks if w != k]
                level = choices.family_level(len(widths))
                others = [stats.compare(
                    cells, side(w, act_a, tie_a), side(w, act_b, tie_b), "test_loss",
                    label_a=label_a, label_b=label_b, higher_is_better=False, level=level)
                    for w in widths]
                # the same way round as the sentence above (its winner first)
                others = [stats.flipped(o) if c.verdict == "b" else o for o in others if o.n]
                if others:
                    a.findings.append(F.family(
                        f"{pair}_other_widths", others,
                        f"{others[0].label_a} against {others[0].label_b} at the other "
                        f"bottleneck widths", 
                        [f"{int(o.a['bottleneck'])} units" for o in others],
                        "test reconstruction error"))
        for r in t.itertuples():
            a.metric(f"test_loss/{r.model.replace(', ', '_')}/{int(r.bottleneck)}",
                     r.test_loss_mean, r.test_loss_std)
        curve = t.pivot_table(index="bottleneck", columns="model", values="test_loss_mean")
        a.plots["reconstruction"] = curve.merge(pca[["bottleneck", "pca_test_loss"]],
                                                left_index=True, right_on="bottleneck")
        a.figures.append(Figure("Test reconstruction error against the bottleneck (95% "
                                "interval over seeds); dashed: PCA", "lines",
                                "table/reconstruction", x="bottleneck", y=["test_loss"],
                                hue="model", logx=True, logy=True,
                                ylabel="mean squared error per pixel",
                                extra={"reference": ["table/pca", "bottleneck",
                                                     "pca_test_loss"]}))
        a.figures.append(Figure("Test images and their reconstructions (first seed)",
                                "images", "result/reconstructions"))
        return a

    def _relu_optimum(self, a: Analysis, t: pd.DataFrame) -> None:
        """A ReLU encoder with biases that keep every unit active is the linear one, so
        its optimum is at least as good as PCA's: its training error against PCA's says
        how far its training stopped short."""
        relu = t[t["activation"] == "relu"]
        if relu.empty:
            return
        tol = self.config.converge_tol
        parts, above = [], {}
        for model, rows in relu.groupby("model", sort=False):
            ratio = rows["train_loss_mean"] / rows["pca_train_loss"]
            above[model] = [int(k) for k, r in zip(rows["bottleneck"], ratio) if r > 1 + tol]
            span = (f"{F.fmt(ratio.min(), 3)} to {F.fmt(ratio.max(), 3)}"
                    if len(ratio) > 1 else F.fmt(ratio.iloc[0], 3))
            parts.append(f"{span} ({model})")
        lost = int(relu.get("n_collapsed", pd.Series(0)).fillna(0).sum()
                   + relu.get("n_diverged", pd.Series(0)).fillna(0).sum())
        runs = int(relu["n"].sum()) + lost
        short = sum(map(len, above.values()))
        error = f"training error {' and '.join(parts)} times PCA's" + (
            f" (over the runs that trained; {lost} of {runs} collapsed or diverged)"
            if lost else "")
        why = ("A ReLU encoder whose biases keep every unit active is the linear one, so PCA's "
               "error is within its reach")
        if short == len(relu):
            text = (f"At every width the ReLU autoencoders stop short of an optimum they can "
                    f"represent, their {error}. {why}. Their comparisons, with the linear "
                    "autoencoder and tied against untied, are of what training reaches, not "
                    "of what the models can represent.")
        else:
            text = (f"The ReLU autoencoders' {error}: "
                    + (f"more than {tol:.0%} above it in {short} of {len(relu)} model and "
                       "width pairs." if short else f"within {tol:.0%} of it everywhere.")
                    + f" {why}.")
        a.findings.append(F.estimate(
            "relu_optimum", text, above=above, left_out=lost,
            widths=sorted(int(k) for k in relu["bottleneck"].unique())))

    def setting(self) -> str:
        p, d = self.p, self.config.data.images
        return (f"The {d.source} images, flattened, each its own target. Autoencoders n -> "
                f"k -> n with k in {', '.join(map(str, p.bottlenecks))}, encoders "
                f"{', '.join('linear' if a == 'none' else a for a in p.activations)}, a linear "
                f"decoder, tied (W' = W^T) and untied; Adam, batch {p.batch_size}, each "
                f"model's learning rate at each width chosen on validation loss from "
                f"{', '.join(f'{v:g}' for v in p.lrs)} (bracketed)"
                + (", annealed towards zero over the epochs (cosine)" if p.schedule == "cosine"
                   else "")
                + ("; each model until it converged (its training loss falling by less than "
                   f"{self.config.converge_tol:.0%} over a tenth of {p.epochs} epochs), at "
                   f"most {p.epochs} epochs" if p.until_converged else f"; {p.epochs} epochs")
                + ", on the mean squared error per pixel. "
                f"PCA (scikit-learn) with k components on the same training images. Means "
                f"over {len(self.seeds)} seeds.")


STUDY = Autoencoder

