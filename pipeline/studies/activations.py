"""Activations and gradient flow: vanishing gradients, initialisation, symmetry.

Setting: Dive into Deep Learning, sections 5.1 "Multilayer Perceptrons" (the
activation functions and their derivatives) and 5.4 "Numerical Stability and
Initialization" (vanishing and exploding gradients, Xavier initialisation, breaking the
symmetry between hidden units). Every activation the engine offers is drawn with its
derivative, both computed by autograd. Deep MLPs of every depth, activation and
initialisation train on the CS231n spiral, logging the full-batch gradient norm of every
layer's weights at initialisation and after training; a constant initialisation is
checked for symmetry (every hidden unit of a layer keeps the same incoming weights). And
d2l's illustration of exploding products: the entries of a product of 100 random 4 x 4
N(0, 1) matrices.
"""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from pipeline import choices, stats
from pipeline import findings as F
from pipeline.config import PositiveFloat, PositiveInt, Section, grid
from pipeline.findings import Analysis, Figure
from pipeline.studies.base import Study, StudyOutput

Init = Literal["torch", "normal", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal",
               "constant"]
ACT_LABELS = {"relu": "ReLU", "sigmoid": "sigmoid", "tanh": "tanh"}
INIT_LABELS = {"torch": "torch.nn default", "normal": "N(0, 0.01^2)", "constant": "constant",
               "xavier_uniform": "Xavier (uniform)", "xavier_normal": "Xavier (normal)",
               "he_uniform": "He (uniform)", "he_normal": "He (normal)"}


class Params(Section):
    depths: grid(PositiveInt) = [2, 5, 10, 20]  # hidden layers
    activations: grid(Literal["sigmoid", "tanh", "relu"]) = ["sigmoid", "tanh", "relu"]
    inits: grid(Init) = ["torch", "normal", "xavier_normal", "he_normal", "constant"]
    normal_std: PositiveFloat = 0.01
    constant: float = 0.1
    width: PositiveInt = 32
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: PositiveFloat = 0.1
    epochs: PositiveInt = 60
    products: PositiveInt = 100  # d2l's 100 matrices
    product_size: PositiveInt = Field(default=4, le=64)


class Activations(Study):
    name = "activations"
    order = 7
    answer = ("factor_activation", "factor_init", "init_relu")  # the findings the summary gives
    title = "Activations, initialisation and gradient flow"
    question = ("How do the activation and the initialisation move the gradient through "
                "depth: where does it vanish, what restores it, and what never breaks "
                "symmetry?")
    Params = Params
    datasets = ("spiral_cs231n",)

    def cells(self) -> list[dict]:
        p = self.p
        return [{"dataset": "spiral_cs231n", "depth": d, "activation": a, "init": i,
                 "seed": s}
                for d, a, i, s in itertools.product(p.depths, p.activations, p.inits,
                                                    self.seeds)]

    def job(self, cell: dict, data: dict):
        from pipeline.engine import Arch, Job, TrainSpec

        p = self.p
        arrays = data["spiral_cs231n"]
        n_in, n_out = arrays["x_train"].shape[1], int(arrays["y_train"].max()) + 1
        scale = {"normal": p.normal_std, "constant": p.constant}.get(cell["init"], 1.0)
        arch = Arch((n_in, *[p.width] * cell["depth"], n_out), cell["activation"])
        spec = TrainSpec(arch, p.optimizer, "cross_entropy", epochs=p.epochs,
                         log_every=p.epochs, init=cell["init"], init_scale=scale,
                         grad_norms=True)
        return Job(spec, seed=cell["seed"], lr=p.lr)

    def extras(self, out: StudyOutput, results: list, data: dict) -> None:
        """Per cell: the gradient norms of the first and last layer at init and after
        training, and the spread between the hidden units of the first layer."""
        rows, spread = [], []
        for cell, res in zip(out.cells.to_dict("records"), results):
            last = cell["depth"]  # weights 0 .. depth: the output layer is `depth`
            start = res.curve[0]
            for when, row in (("init", start), ("trained", res.curve[-1])):
                rows += [{"cell": cell["cell"], "depth": cell["depth"],
                          "activation": cell["activation"], "init": cell["init"],
                          "seed": cell["seed"], "when": when, "layer": k,
                          "grad_norm": row[f"grad_norm_{k}"]} for k in range(last + 1)]
            out.cells.loc[cell["cell"], "first_grad_init"] = start["grad_norm_0"]
            out.cells.loc[cell["cell"], "last_grad_init"] = start[f"grad_norm_{last}"]
            w = res.params[0].numpy()  # (in, width): column u is unit u's incoming weights
            spread.append(float(np.abs(w - w[:, :1]).max()))
        out.cells["unit_spread"] = spread
        ratio = out.cells["first_grad_init"] / out.cells["last_grad_init"]
        out.cells["log10_first_to_last"] = np.log10(ratio.where(ratio > 0))
        out.tables["grad_norms"] = pd.DataFrame(rows)
        out.tables["factorial"] = factorial(out.cells, max(self.p.depths))
        out.tables["shapes"] = activation_shapes()
        out.tables["products"] = exploding_products(self.p.products, self.p.product_size,
                                                    self.seeds)

    def analyze(self, out: StudyOutput) -> Analysis:
        a = Analysis()
        cells, p = out.cells, self.p
        # quantities at initialisation hold whatever training did after: a run that
        # collapsed in training still counts there
        at_init = cells.drop(columns=["collapsed", "converged"])
        deepest = max(p.depths)
        by = ["depth", "activation", "init"]
        init = stats.summarize(at_init, by, ["first_grad_init", "last_grad_init",
                                             "log10_first_to_last"])
        trained = stats.summarize(cells, by, ["train_acc", "test_acc"])
        t = a.table("gradients", "Gradient norms at initialisation (first and last layer; "
                    "every run) and accuracy after training (collapsed runs counted apart), "
                    "over seeds", trained.merge(init.drop(columns=["n", "n_diverged"]),
                                                on=by))
        norms = a.table("grad_norms", "Gradient norm per layer", stats.summarize(
            out.tables["grad_norms"], ["depth", "activation", "init", "when", "layer"],
            ["grad_norm"]), show=False)
        a.plots["grad_flow"] = grad_flow(norms, deepest, p.activations, p.inits)
        self._vanishing(a, cells, at_init, deepest)
        self._factorial(a, out.tables["factorial"], deepest)
        self._symmetry(a, cells)
        for r in t[t["depth"] == deepest].itertuples():
            a.metric(f"log10_first_to_last/{r.activation}/{r.init}", r.log10_first_to_last_mean,
                     r.log10_first_to_last_std)
        self._products(a, out.tables["products"])
        a.figures.append(Figure("Each activation and its derivative (autograd)", "lines",
                                "result/shapes", x="x", y=["value", "derivative"],
                                hue="activation"))
        a.figures.append(Figure(f"Gradient norm of each layer at initialisation, depth "
                                f"{deepest} (95% interval over seeds); layer 0 is the first",
                                "lines", "table/grad_norms", x="layer", y=["grad_norm"],
                                hue="init", col="activation", logy=True,
                                where={"depth": deepest, "when": "init"},
                                ylabel="gradient norm"))
        a.figures.append(Figure("Test accuracy after training against depth (95% interval "
                                "over seeds)", "lines", "table/gradients", x="depth",
                                y=["test_acc"], hue="init", col="activation",
                                ylabel="test accuracy"))
        return a

    def _vanishing(self, a: Analysis, cells: pd.DataFrame, at_init: pd.DataFrame,
                   deepest: int) -> None:
        p = self.p
        deep = at_init[at_init["depth"] == deepest]
        if "sigmoid" in p.activations and "relu" in p.activations and \
                {"torch", "he_normal"} <= set(p.inits):
            c = stats.compare(cells,
                              {"depth": deepest, "activation": "relu", "init": "he_normal"},
                              {"depth": deepest, "activation": "sigmoid", "init": "torch"},
                              "first_grad_init", at_init=True,
                              label_a="ReLU with He initialisation",
                              label_b="sigmoid with torch.nn's default initialisation")
            f = F.comparison("vanishing", c, f"first-layer gradient norm at initialisation "
                                             f"(depth {deepest})")
            sig = stats.where(deep, {"activation": "sigmoid", "init": "torch"})
            relu = stats.where(deep, {"activation": "relu", "init": "he_normal"})
            orders = np.log10(relu["first_grad_init"].mean() / sig["first_grad_init"].mean())
            f.template += (f" That is {F.fmt(orders, 2)} orders of magnitude, with both the "
                       "activation and the initialisation changed: the factorial findings "
                       "part them.")
            f.data["orders_of_magnitude"] = float(orders)
            a.findings.append(f)
            a.metric("vanishing/orders_of_magnitude", float(orders))
        for act in p.activations:
            cand = {INIT_LABELS[i]: {"depth": deepest, "activation": act, "init": i}
                    for i in p.inits if i != "constant"}
            if len(cand) > 1:
                b = choices.best_of(cells, cand, "test_acc", choose_on="val_acc")
                a.findings.append(F.best(f"init_{act}", b, f"test accuracy with {act} at "
                                                           f"depth {deepest}",
                                         "random initialisations (the constant one apart)"))

    def _factorial(self, a: Analysis, table: pd.DataFrame, deepest: int) -> None:
        """The log10 first-layer gradient at init parted between the activation and the
        initialisation: each one's effect averaged over the other's levels, and their
        interaction, paired over seeds; three claims, each at the family's level."""
        acts = [x for x in ("relu", "sigmoid") if x in self.p.activations] or \
            [self.p.activations[-1], self.p.activations[0]]
        inits = [i for i in ("he_normal", "torch") if i in table["init"].unique()]
        if len(set(acts)) < 2 or len(inits) < 2:
            return
        a.table("factorial", f"log10 first-layer gradient norm at initialisation, depth "
                    f"{deepest}: activation x initialisation (random inits), over seeds",
                    stats.summarize(table[table["factor"] == "cell"], ["activation", "init"],
                                    ["log10_first_grad"]))
        level = choices.family_level(3)
        hi, lo = (ACT_LABELS.get(x, x) for x in acts)
        him, lom = INIT_LABELS[inits[0]], INIT_LABELS[inits[1]]
        kept = table.loc[table["factor"] == "cell", "init"].unique()
        n_act = table.loc[table["factor"] == "cell", "activation"].nunique()
        others = [ACT_LABELS.get(x, x) for x in
                  table.loc[(table["factor"] == "gain") & (table["level"] != "relu"), "level"]
                  .unique()]
        what = "log10 first-layer gradient at initialisation"
        over = f"averaged over {len(kept)} random inits"
        pairs = [
            ("factor_activation", {"factor": "activation", "level": acts[0]},
             {"factor": "activation", "level": acts[1]}, f"{hi} ({over})", f"{lo}", what),
            ("factor_init", {"factor": "init", "level": inits[0]},
             {"factor": "init", "level": inits[1]},
             f"{him} (averaged over the {n_act} activations)", lom, what),
            ("factor_interaction", {"factor": "interaction", "level": "effect"},
             {"factor": "interaction", "level": "none"},
             f"{ACT_LABELS.get('relu', 'relu')}",
             f"{' and '.join(others)} (averaged)",
             f"gain of {him} over {lom} in log10 first-layer gradient at initialisation"),
        ]
        gone = [INIT_LABELS[i] for i in self.p.inits if i != "constant" and i not in kept]
        if "interaction" not in set(table["factor"]):
            pairs = pairs[:2]
        else:
            a.table("init_gain", f"{him}'s gain over {lom} in log10 first-layer gradient at "
                                 f"initialisation, depth {deepest}, per activation, over seeds",
                    stats.summarize(table[table["factor"] == "gain"], ["level"],
                                    ["log10_first_grad"]))
        for id_, ka, kb, la, lb, what in pairs:
            c = stats.compare(table, ka, kb, "log10_first_grad", label_a=la, label_b=lb,
                              level=level, at_init=True)
            f = F.comparison(id_, c, what, table="factorial")  # the per-seed rows
            if gone and id_ == "factor_activation":
                f.template += (f" Left out: {', '.join(gone)}, whose first-layer gradient "
                           f"underflows to 0 in float32 at depth {deepest}.")
                f.data["left_out"] = gone
            a.findings.append(f)
            a.metric(f"factorial/{id_.removeprefix('factor_')}", c.diff)

    def _symmetry(self, a: Analysis, cells: pd.DataFrame) -> None:
        if "constant" not in self.p.inits:
            return
        const = cells[cells["init"] == "constant"]
        others = cells[cells["init"] != "constant"]
        worst = float(const["unit_spread"].max())
        least = float(others["unit_spread"].min()) if len(others) else float("nan")
        verdict = ("every first-layer unit stayed an exact copy of the others" if worst == 0
                   else "the first-layer units did not all stay copies of each other")
        a.findings.append(F.estimate(
            "symmetry", f"Constant initialisation: after training, the largest difference "
                        f"between two first-layer units' incoming weights is {worst:g} over "
                        f"all {len(const)} runs, so {verdict}; with random initialisations "
                        f"the smallest is {F.fmt(least)}.", largest_constant=worst,
            smallest_random=least))
        a.metric("symmetry/largest_unit_spread_constant", worst)

    def _products(self, a: Analysis, products: pd.DataFrame) -> None:
        p = self.p
        t = a.table("products", f"A random {p.product_size} x {p.product_size} N(0, 1) "
                    f"matrix times {p.products} more, over seeds",
                    stats.summarize(products, ["matrices"], ["log10_max_entry",
                                                             "log10_min_entry"]))
        row = t.iloc[0]
        a.findings.append(F.estimate(
            "products", f"A random {p.product_size} x {p.product_size} N(0, 1) matrix "
                        f"times {p.products} more (as d2l writes it): the largest |entry| of "
                        f"the product is 10^{F.fmt(row.log10_max_entry_mean)} (the mean "
                        f"of its log10 over seeds, 95% CI ± "
                        f"{F.fmt(row.log10_max_entry_ci95, 2)}); a gradient through "
                        f"{p.products} such layers explodes.",
            log10_max_entry=row.log10_max_entry_mean))
        a.metric("products/log10_max_entry", row.log10_max_entry_mean, row.log10_max_entry_std)
        if p.products == 100 and p.product_size == 4:
            a.references.append(F.reference(
                "d2l_exploding_products", "d2l 5.4 (Numerical Stability and Initialization)",
                "after multiplying 100 random 4 x 4 N(0, 1) matrices the entries are of order "
                "1e23 to 1e25", "log10 of the largest |entry| of the product",
                products["log10_max_entry"], low=23.0, high=25.0, tolerance=0.5,
                fixed_by="random matrices, nothing trained"))

    def setting(self) -> str:
        p, d = self.p, self.config.data.spiral_cs231n
        return (f"MLPs with {', '.join(map(str, p.depths))} hidden layers of {p.width} units, "
                f"activations {', '.join(p.activations)}, initialisations "
                f"{', '.join(INIT_LABELS[i] for i in p.inits)} (normal: N(0, "
                f"{p.normal_std:g}^2); constant: every weight {p.constant:g}); "
                f"{p.optimizer} at lr {p.lr:g} for {p.epochs} full-batch steps on the CS231n "
                f"spiral ({d.classes} classes x {d.points_per_class} points). Gradient norms "
                f"are full-batch, of each layer's weights. Products: a random {p.product_size} x "
                f"{p.product_size} N(0, 1) matrix times {p.products} more. Means over "
                f"{len(self.seeds)} seeds.")


def grad_flow(norms: pd.DataFrame, depth: int, activations: list[str],
              inits: list[str]) -> pd.DataFrame:
    """log10 of the mean gradient norm of each layer at initialisation, at one depth:
    one row per layer, one column per ACTIVATION_INIT (blank where the gradient is
    exactly zero, as in the first layers of a constant initialisation)."""
    at = norms[(norms["depth"] == depth) & (norms["when"] == "init")]
    mean = at["grad_norm_mean"]
    wide = (at.assign(line=at["activation"] + "_" + at["init"],
                      log10_grad_norm=np.log10(mean.where(mean > 0)))
            .pivot(index="layer", columns="line", values="log10_grad_norm"))
    columns = [f"{act}_{init}" for act in activations for init in inits]
    return wide.reindex(columns=columns).rename_axis(columns=None).reset_index()


def factorial(cells: pd.DataFrame, depth: int) -> pd.DataFrame:
    """The log10 first-layer gradient norm at init at `depth`, for the random inits: per
    seed, each cell ("cell"), each activation averaged over the inits ("activation"), each
    init averaged over the activations ("init"), He's gain over torch's default with each
    activation ("gain"), and their interaction: He's gain with ReLU, the activation He is
    derived for ("effect"), against its gain averaged over the other activations ("none").
    An init whose gradient underflows to 0 in any run is left out.
    """
    deep = cells[(cells["depth"] == depth) & (cells["init"] != "constant")]
    under = deep.loc[~(deep["first_grad_init"] > 0), "init"].unique()
    deep = deep[~deep["init"].isin(under)]  # a gradient that underflows float32 has no log
    deep = deep.assign(log10_first_grad=np.log10(deep["first_grad_init"]))
    rows = [{"factor": "cell", "level": f"{r.activation} x {r.init}", "activation": r.activation,
             "init": r.init, "seed": r.seed, "log10_first_grad": r.log10_first_grad}
            for r in deep.itertuples()]
    for factor in ("activation", "init"):
        means = deep.groupby([factor, "seed"], sort=False)["log10_first_grad"].mean()
        rows += [{"factor": factor, "level": level, "seed": seed, "log10_first_grad": v}
                 for (level, seed), v in means.items()]
    cell = deep.set_index(["activation", "init", "seed"])["log10_first_grad"]
    acts = list(dict.fromkeys(deep["activation"]))
    if "relu" in acts and len(acts) > 1 and {"he_normal", "torch"} <= set(deep["init"]):
        others = [x for x in acts if x != "relu"]
        for seed in sorted(deep["seed"].unique()):
            gain = {x: cell[(x, "he_normal", seed)] - cell[(x, "torch", seed)] for x in acts}
            rows += [{"factor": "gain", "level": x, "seed": seed, "log10_first_grad": g}
                     for x, g in gain.items()]
            rows += [{"factor": "interaction", "level": "effect", "seed": seed,
                      "log10_first_grad": gain["relu"]},
                     {"factor": "interaction", "level": "none", "seed": seed,
                      "log10_first_grad": float(np.mean([gain[x] for x in others]))}]
    return pd.DataFrame(rows)


def activation_shapes(lo: float = -4.0, hi: float = 4.0, n: int = 161) -> pd.DataFrame:
    """Every engine activation and its derivative on a grid, by autograd."""
    import torch

    from pipeline.engine import ACTIVATIONS

    frames = []
    for name, fn in ACTIVATIONS.items():
        x = torch.linspace(lo, hi, n, dtype=torch.float64, requires_grad=True)
        y = fn(x)
        (grad,) = torch.autograd.grad(y.sum(), x)
        frames.append(pd.DataFrame({"activation": name, "x": x.detach().numpy(),
                                    "value": y.detach().numpy(), "derivative": grad.numpy()}))
    return pd.concat(frames, ignore_index=True)


def exploding_products(count: int, size: int, seeds: list[int]) -> pd.DataFrame:
    """d2l 5.4: M = N(0, 1) (size x size), then M @ N(0, 1) `count` times, per seed."""
    import torch

    rows = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        m = torch.normal(0.0, 1.0, size=(size, size), generator=gen, dtype=torch.float64)
        for _ in range(count):
            m = m @ torch.normal(0.0, 1.0, size=(size, size), generator=gen,
                                 dtype=torch.float64)
        entries = m.abs()
        rows.append({"seed": seed, "matrices": count,
                     "log10_max_entry": float(torch.log10(entries.max())),
                     "log10_min_entry": float(torch.log10(entries.min()))})
    return pd.DataFrame(rows)


STUDY = Activations
