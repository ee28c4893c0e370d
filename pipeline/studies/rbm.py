"""Restricted Boltzmann machines: scikit-learn's RBM example, and a deep belief net's
greedy pre-training against random initialisation across labelled-set sizes.

An RBM has visible units v and hidden units h, one weight matrix W shared by both
directions, sigmoid units, and is trained by contrastive divergence (scikit-learn's
BernoulliRBM: persistent CD). (1) scikit-learn's example "Restricted Boltzmann Machine
features for digit classification": the 8 x 8 digits nudged by one pixel in four
directions, 100 RBM features into logistic regression (C 6000) against logistic
regression on the raw pixels (C 100). (2) A deep belief net (Hinton et al. 2006): two
RBMs trained greedily, layer on layer, on every training image (no labels), initialise a
two-hidden-layer sigmoid MLP that is then fine-tuned on a labelled subset; the same MLP
from random initialisation beside it, each at its own learning rate chosen on
validation. Erhan et al. (2010) ask whether and where pre-training helps.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from pipeline import choices, stats
from pipeline import findings as F
from pipeline.config import PositiveFloat, PositiveInt, Section, grid
from pipeline.datasets.mnist import SIDE, describe
from pipeline.findings import Analysis, Figure
from pipeline.studies.base import Study, StudyOutput, image_rows

INITS = {"dbn": "pre-trained (DBN)", "random": "random init"}
EXAMPLE = "scikit-learn, example 'Restricted Boltzmann Machine features for digit classification'"


class Example(Section):
    """scikit-learn's example, as published."""

    components: PositiveInt = 100
    learning_rate: PositiveFloat = 0.06
    n_iter: PositiveInt = 10
    c_rbm: PositiveFloat = 6000.0  # logistic regression's C on the RBM features
    c_raw: PositiveFloat = 100.0  # and on the raw pixels
    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.2
    split_seed: int = 0  # train_test_split's random_state
    published_tol: PositiveFloat = 1.0  # the example's newton-cg tolerance (see setting)


class Dbn(Section):
    hidden: grid(PositiveInt) = [128, 64]  # the two RBMs, then the MLP's hidden layers
    rbm_learning_rate: PositiveFloat = 0.06
    rbm_iter: PositiveInt = 10
    rbm_batch: PositiveInt = 32
    labelled: grid(PositiveInt) = [100, 300, 1000, 3200]  # labelled training images
    lrs: grid(PositiveFloat) = [0.003, 0.01, 0.03]  # fine-tuning, bracketed on validation
    optimizer: Literal["sgd", "momentum", "adam"] = "adam"
    batch_size: PositiveInt = 64
    steps: PositiveInt = 1000  # the bound on gradient steps; each model stops once converged
    shown: PositiveInt = 20  # filters and reconstructions in the figures


class Params(Section):
    example: Example = Example()
    dbn: Dbn = Dbn()


class Rbm(Study):
    name = "rbm"
    order = 11
    answer = ("rbm_vs_raw", "dbn_vs_random")
    title = "Restricted Boltzmann machines and deep belief nets"
    question = ("Do RBM features beat raw pixels as scikit-learn's example reports, and does "
                "a deep belief net's greedy pre-training help a network fine-tuned on few "
                "labels?")
    Params = Params
    datasets = ("mnist",)

    def __init__(self, config):
        super().__init__(config)
        self._stacks: dict[int, list] = {}  # prepare's: each seed's RBMs
        self._example: dict[tuple, tuple] = {}  # and the example's fits

    @classmethod
    def check(cls, config) -> None:
        from pipeline.datasets.mnist import train_rows

        p = config.rbm.dbn
        if len(p.hidden) != 2:
            raise ValueError(f"rbm.dbn.hidden: a deep belief net of two RBMs needs two "
                             f"sizes, got {p.hidden}")
        n = train_rows(config.data.mnist)
        if max(p.labelled) > n:
            raise ValueError(f"rbm.dbn.labelled: {max(p.labelled)} exceeds the {n} training "
                             "images of data.mnist")

    def arrays(self, data: dict) -> dict:
        """The MNIST images flattened, for the MLP."""
        d = data["mnist"]
        return {"mnist/flat": {k: (v.reshape(len(v), -1) if k.startswith("x_") else v)
                               for k, v in d.items()}}

    def cells(self) -> list[dict]:
        return [{"dataset": "mnist/flat", "init": init, "labelled": n, "lr": lr, "seed": s}
                for init, n, lr, s in itertools.product(INITS, self.p.dbn.labelled,
                                                        self.p.dbn.lrs, self.seeds)]

    def brackets(self) -> list:
        from pipeline.bracketing import Bracket

        return [Bracket("lr", "val_acc", maximize=True, by=("init", "labelled"))]

    def _arch(self, n_in: int, n_classes: int):
        from pipeline.engine import Arch

        return Arch((n_in, *self.p.dbn.hidden, n_classes), "sigmoid")

    def prepare(self, data: dict) -> None:
        """Every seed's two RBMs, and scikit-learn's example, fitted side by side."""
        from pipeline.studies.base import in_parallel

        x = data["mnist"]["x_train"].reshape(len(data["mnist"]["x_train"]), -1)
        example = example_fits(self.p.example, self.seeds)
        _split(self.p.example.test_size, self.p.example.split_seed)  # once, before the fork
        done = in_parallel([(rbm_stack, (self.p.dbn, seed, x)) for seed in self.seeds] +
                           [(example_fit, (self.p.example, *fit)) for fit in example],
                           self.config.workers)
        self._stacks = dict(zip(self.seeds, done))
        self._example = dict(zip(example, done[len(self.seeds):]))

    def pretrained(self, seed: int) -> list:
        """The seed's two RBMs, trained greedily on every training image (no labels)."""
        return self._stacks[seed]

    def job(self, cell: dict, data: dict):
        import torch

        from pipeline.datasets import subset
        from pipeline.engine import Job, ModelRng, TrainSpec, Weights, init_params

        p, d = self.p.dbn, data["mnist"]
        x = d["x_train"].reshape(len(d["x_train"]), -1)
        rows = subset(d["y_train"], cell["labelled"], cell["seed"])  # the seed's labels
        batches = math.ceil(cell["labelled"] / p.batch_size)
        epochs = max(1, math.ceil(p.steps / batches))
        arch = self._arch(x.shape[1], int(d["y_train"].max()) + 1)
        spec = TrainSpec(arch, p.optimizer, "cross_entropy", epochs=epochs,
                         batch_size=p.batch_size, log_every=max(1, epochs // 20),
                         stop_tol=self.config.converge_tol)
        start = None
        if cell["init"] == "dbn":
            # the random model's own draw for the top layer, the RBMs' below it
            params = init_params(arch, ModelRng(cell["seed"]).init)
            for layer, rbm in enumerate(self.pretrained(cell["seed"])):
                params[2 * layer] = torch.tensor(rbm.components_.T.copy())
                params[2 * layer + 1] = torch.tensor(rbm.intercept_hidden_.copy())
            start = Weights(tuple(t.numpy().astype(np.float32) for t in params))
        return Job(spec, seed=cell["seed"], lr=cell["lr"], rows=rows, start=start)

    def extras(self, out: StudyOutput, results: list, data: dict) -> None:
        first = self.pretrained(self.seeds[0])[0]
        shown = self.p.dbn.shown
        w = first.components_[:shown]
        lo, hi = w.min(axis=1, keepdims=True), w.max(axis=1, keepdims=True)
        scaled = (w - lo) / (hi - lo)
        half = math.ceil(len(scaled) / 2)
        out.tables["filters"] = pd.concat(
            [image_rows(f"filters {i + 1}-{i + len(part)}", part)
             for i, part in ((0, scaled[:half]), (half, scaled[half:])) if len(part)],
            ignore_index=True)
        d = data["mnist"]
        first_of = [int(np.flatnonzero(d["y_test"] == c)[0]) for c in np.unique(d["y_test"])]
        test = d["x_test"][first_of].reshape(len(first_of), -1)
        h = first.transform(test)  # P(h = 1 | v), then the mean-field visible units
        rec = 1 / (1 + np.exp(-(h @ first.components_ + first.intercept_visible_)))
        out.tables["reconstructions"] = pd.concat(
            [image_rows("test image", test), image_rows("RBM reconstruction", rec)],
            ignore_index=True)
        out.tables["example"], out.tables["published_tol"] = sklearn_example(
            self.p.example, self.seeds, self._example)

    def analyze(self, out: StudyOutput) -> Analysis:
        a = Analysis()
        cells, p = out.cells, self.p
        ex = out.tables["example"]
        a.table("example", "scikit-learn's example over RBM seeds (one split, as published)",
                stats.summarize(ex, ["model"], ["test_acc", "test_macro_f1"]))
        c = stats.compare(ex, {"model": "rbm"}, {"model": "raw"}, "test_acc",
                          label_a="logistic regression on RBM features",
                          label_b="logistic regression on raw pixels")
        # the raw pixels' logistic regression is deterministic: fitted once, it is the
        # other side of every RBM seed's pair
        f = F.comparison("rbm_vs_raw", c, "test accuracy on the nudged digits",
                         table="example",
                         pairs="RBM seeds, each against the one deterministic raw-pixel fit,")
        f.template += (" The interval counts the test images as independent, though many are "
                   "one-pixel shifts of digits whose other copies are in training.")
        a.findings.append(f)
        for model, low, high, what in (("rbm", 0.94, 0.95, "RBM features"),
                                       ("raw", 0.77, 0.78, "raw pixels")):
            a.references.append(F.reference(
                f"sklearn_{model}", EXAMPLE,
                f"logistic regression on {what}: macro-average F1 {low:.2f} to {high:.2f} "
                "across versions", f"macro-average F1, {what} (newton-cg at its default "
                "tolerance)", ex[ex["model"] == model]["test_macro_f1"], low=low, high=high,
                tolerance=0.005))
            a.metric(f"example/{model}_macro_f1", ex[ex["model"] == model]["test_macro_f1"].mean(),
                     ex[ex["model"] == model]["test_macro_f1"].std())
        tol = out.tables["published_tol"]
        a.table("published_tol", "The example's logistic regression at its published "
                "tolerance (first seed)", tol)
        import sklearn

        accs = [F.fmt(v) for v in sorted({float(f"{v:.3g}") for v in tol["test_acc"]})]
        a.findings.append(F.estimate(
            "published_tol", f"Run exactly as published (newton-cg, tol = "
            f"{stats._value(p.example.published_tol)}), the logistic regression of the "
            f"scikit-learn installed here ({sklearn.__version__}; the published numbers came "
            f"from earlier versions) stops before it learns: test accuracy "
            f"{' and '.join(accs)} (the majority class: "
            f"{F.fmt(tol['null_test_acc'].iloc[0])}); the comparison above runs newton-cg "
            "at its default tolerance.",
            test_acc=tol["test_acc"].tolist()))

        lr_bracket = self.brackets()[0]
        lrs, own = {}, {}
        for init, n in itertools.product(INITS, sorted(cells["labelled"].unique())):
            s = lr_bracket.select(cells, {"init": init, "labelled": n})
            lrs[f"{INITS[init]}, {n} labels"] = s
            own[(init, n)] = s.chosen
        mine = pd.concat([stats.where(cells, {"init": i, "labelled": n, "lr": lr})
                          for (i, n), lr in own.items()])
        t = a.table("accuracy", "Test accuracy by labelled images and initialisation, each at "
                    "its learning rate chosen on validation accuracy, over seeds",
                    stats.summarize(mine, ["labelled", "init", "lr"],
                                    ["train_acc", "val_acc", "test_acc"]))
        a.table("grid", "Accuracy by labelled images, initialisation and learning rate over "
                "seeds (bracket_round: 0 for the grid, k for a value added in round k)",
                stats.summarize(cells, ["labelled", "init", "lr", "bracket_round"],
                                ["train_acc", "val_acc", "test_acc"]), show=False)
        sizes = sorted(cells["labelled"].unique())
        level = choices.family_level(len(sizes))
        comps = [stats.compare(cells, {"init": "dbn", "labelled": n, "lr": own[("dbn", n)]},
                               {"init": "random", "labelled": n, "lr": own[("random", n)]},
                               "test_acc", label_a=INITS["dbn"], label_b=INITS["random"],
                               level=level) for n in sizes]
        a.findings.append(F.family("dbn_vs_random", comps, "Pre-training against random "
                                   "initialisation, by labelled images", [
                                       f"{n} labels" for n in sizes], "test accuracy"))
        a.findings.append(F.selections("lrs", lrs, "Fine-tuning learning rates"))
        for r in t.itertuples():
            a.metric(f"dbn/{r.init}/{int(r.labelled)}", r.test_acc_mean, r.test_acc_std)
        a.plots["accuracy"] = (t.pivot_table(index="labelled", columns="init",
                                             values="test_acc_mean").reset_index())
        a.figures.append(Figure("Test accuracy against the number of labelled images, each "
                                "initialisation at its own learning rate (95% interval over "
                                "seeds)", "lines", "table/accuracy", x="labelled",
                                y=["test_acc"], hue="init", logx=True,
                                ylabel="test accuracy"))
        a.figures.append(Figure("The first RBM's filters (first seed; each scaled to its own "
                                "range)", "images", "result/filters"))
        a.figures.append(Figure("A test image of each class and the first RBM's mean-field "
                                "reconstruction of it",
                                "images", "result/reconstructions"))
        return a

    def setting(self) -> str:
        e, p = self.p.example, self.p.dbn
        return (f"(1) scikit-learn's example: the 8 x 8 digits and their copies nudged one "
                f"pixel up, down, left and right, scaled to [0, 1], split {1 - e.test_size:.0%} "
                f"/ {e.test_size:.0%} (random_state {e.split_seed}); a BernoulliRBM of "
                f"{e.components} components (learning rate {e.learning_rate:g}, {e.n_iter} "
                f"iterations, random_state = the seed) into logistic regression (C "
                f"{e.c_rbm:g}) against logistic regression on the raw pixels (C {e.c_raw:g}), "
                f"both newton-cg at its default tolerance (the published tolerance, "
                f"{e.published_tol:g}, is run once beside them). "
                f"(2) A deep belief net on the {self.config.data.mnist.val_fraction:.0%}-"
                f"validation split of {describe(self.config.data.mnist)}: two BernoulliRBMs "
                f"({' and '.join(map(str, p.hidden))} units, learning rate "
                f"{p.rbm_learning_rate:g}, {p.rbm_iter} iterations, batch {p.rbm_batch}) "
                f"trained greedily on every training image, no labels, initialise the hidden "
                f"layers of a {'-'.join(map(str, (SIDE * SIDE, *p.hidden, 10)))} sigmoid MLP whose "
                f"top layer is drawn as torch.nn.Linear draws it; the same MLP from torch's "
                f"own init beside it. Both fine-tuned with {p.optimizer} (batch "
                f"{p.batch_size}, at most {p.steps} steps, stopping once converged) on "
                f"{', '.join(map(str, p.labelled))} labelled images (each seed its own "
                f"stratified subset, where fewer than all), at learning rates "
                f"{', '.join(f'{v:g}' for v in p.lrs)} bracketed on validation accuracy. "
                f"Means over {len(self.seeds)} seeds.")


def nudged_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's example data: the 8 x 8 digits and four copies shifted by one
    pixel (up, left, right, down; zeros shifted in), scaled to [0, 1] per pixel."""
    from scipy.ndimage import convolve
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import minmax_scale

    x, y = load_digits(return_X_y=True)
    x = np.asarray(x, "float32")
    kernels = [[[0, 1, 0], [0, 0, 0], [0, 0, 0]], [[0, 0, 0], [1, 0, 0], [0, 0, 0]],
               [[0, 0, 0], [0, 0, 1], [0, 0, 0]], [[0, 0, 0], [0, 0, 0], [0, 1, 0]]]
    shifted = [np.stack([convolve(img.reshape(8, 8), np.array(k), mode="constant").ravel()
                         for img in x]) for k in kernels]
    return minmax_scale(np.concatenate([x, *shifted]), feature_range=(0, 1)), np.tile(y, 5)


def rbm_stack(p: Dbn, seed: int, x: np.ndarray) -> list:
    """A seed's two RBMs, trained greedily: the second on the first's hidden units."""
    from sklearn.neural_network import BernoulliRBM

    stack, h = [], x
    for size in p.hidden:
        rbm = BernoulliRBM(n_components=size, learning_rate=p.rbm_learning_rate,
                           n_iter=p.rbm_iter, batch_size=p.rbm_batch,
                           random_state=seed).fit(h)
        stack.append(rbm)
        h = rbm.transform(h)
    return stack


def example_fits(p: Example, seeds: list[int]) -> list[tuple[str, int, float | None]]:
    """The example's fits, (model, seed, tolerance), the costliest first: the RBM
    pipeline per seed, logistic regression on raw pixels once (it is deterministic), and
    both at the published tolerance (first seed)."""
    return ([("rbm", seed, None) for seed in seeds] + [("raw", seeds[0], None)] +
            [(name, seeds[0], p.published_tol) for name in ("rbm", "raw")])


@functools.cache
def _split(test_size: float, split_seed: int) -> tuple:
    from sklearn.model_selection import train_test_split

    x, y = nudged_digits()
    return tuple(train_test_split(x, y, test_size=test_size, random_state=split_seed))


def example_fit(p: Example, name: str, seed: int, tol: float | None
                ) -> tuple[dict, np.ndarray]:
    """One of the example's models fitted on its split: its test scores, and which test
    points it got right."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.neural_network import BernoulliRBM
    from sklearn.pipeline import Pipeline

    x_train, x_test, y_train, y_test = _split(p.test_size, p.split_seed)
    kw = {} if tol is None else {"tol": tol}
    if name == "rbm":
        rbm = BernoulliRBM(n_components=p.components, learning_rate=p.learning_rate,
                           n_iter=p.n_iter, random_state=seed)
        model = Pipeline([("rbm", rbm), ("logistic", LogisticRegression(
            solver="newton-cg", C=p.c_rbm, **kw))])
    else:
        model = LogisticRegression(solver="newton-cg", C=p.c_raw, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pred = model.fit(x_train, y_train).predict(x_test)
    right = (pred == y_test).astype(float)
    majority = float((y_test == np.bincount(y_train).argmax()).mean())
    return {"test_acc": float(right.mean()),
            "test_macro_f1": float(f1_score(y_test, pred, average="macro")),
            "null_test_acc": majority}, right


def sklearn_example(p: Example, seeds: list[int], fitted: dict
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The example's two models over RBM seeds on its one split (its test points attached),
    and its logistic regressions at the published tolerance (first seed), from `fitted`:
    every one of example_fits, fitted by example_fit, by (model, seed, tolerance)."""
    from pipeline import outcomes

    rows, points = [], outcomes.Points()
    for seed in seeds:
        for name in ("rbm", "raw"):
            row, right = fitted[(name, seed if name == "rbm" else seeds[0], None)]
            rows.append({"cell": len(rows), "model": name, "seed": seed, **row})
            points.add(rows[-1]["cell"], "test_acc", right)
    published = [{"model": name, **fitted[(name, seeds[0], p.published_tol)][0]}
                 for name in ("rbm", "raw")]
    return outcomes.attach(pd.DataFrame(rows), points), pd.DataFrame(published)


STUDY = Rbm
