"""What makes AlexNet better than LeNet: LeNet-5 as d2l writes it (sigmoid, average
pooling, 6 and 16 channels of 5 x 5, dense 120-84), then AlexNet's ingredients added one
at a time (ReLU, max pooling, dropout in the dense layers, wider convolutions; then,
where `variants` asks for it, training images moved by random whole-pixel translations with
a zero border, in the spirit of AlexNet's random crops), with d2l's
one-hidden-layer MLP on the same images as the non-convolutional reference.

Every variant trains at its own learning rate, chosen on validation accuracy and
bracketed; each step is compared with the step before it over seeds, the intervals at the
family's level. Krizhevsky et al. (2012) report ReLU reaching 25% training error six times
faster than tanh: the study counts the epochs each variant takes to a training-error
target and compares the ratio, not the number (their data and network differ).
"""

from __future__ import annotations

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
from pipeline.studies.base import Study, StudyOutput

LADDER = ("mlp", "lenet", "relu", "maxpool", "dropout", "wider", "shift")
ADDED = {"lenet": "convolutions (sigmoid LeNet-5)", "relu": "ReLU", "maxpool": "max pooling",
         "dropout": "dropout", "wider": "wider convolutions",
         "shift": "random shifts of the training images"}
Variant = Literal["mlp", "lenet", "relu", "maxpool", "dropout", "wider", "shift"]


class Params(Section):
    seeds: grid(int) | None = [0, 1, 2]  # this study's training seeds; None: the shared seeds
    # in ladder order, each compared with the last; "shift" (data augmentation) is a params
    # edit away: it added 45 s at a 50-epoch bound, within which its models did not fit
    variants: grid(Variant) = [v for v in LADDER if v != "shift"]
    train_images: PositiveInt = 600  # each seed's stratified subset of the training images
    lrs: grid(PositiveFloat) = [0.001, 0.003, 0.01]  # bracketed on validation accuracy
    optimizer: Literal["sgd", "momentum", "adam"] = "adam"
    batch_size: PositiveInt = 64
    epochs: PositiveInt = 100  # the bound; each model stops once it fits (fit_loss)
    log_every: PositiveInt = 2  # epochs between evaluations (and stopping checks)
    # trained until it fits its training images: a model stops once its training loss
    # (cross-entropy, without dropout) is at or below this, or at the epoch bound
    fit_loss: PositiveFloat = 0.03
    channels: grid(PositiveInt) = [6, 16]  # LeNet-5's two convolutions
    wide_channels: grid(PositiveInt) = [16, 32]  # the "wider" step's
    # the "shift" step's augmentation: each training image, each step, moved by up to this
    # many pixels in each direction, the border zero (in the spirit of AlexNet's crops)
    shift: PositiveInt = 2
    dense: grid(PositiveInt) = [120, 84]  # LeNet-5's dense layers
    dropout: Annotated[float, Field(gt=0, lt=1)] = 0.5  # AlexNet's rate
    mlp_hidden: PositiveInt = 256  # d2l's MLP
    target_error: Annotated[float, Field(gt=0, lt=1)] = 0.25  # Krizhevsky et al.'s 25%


def network(variant: str, p: Params, classes: int = 10):
    """The variant's network: every ingredient up to its place on the ladder."""
    from pipeline.engine import ConvNet

    if variant == "mlp":  # on the same images, through the same engine path as the CNNs
        return ConvNet((1, SIDE, SIDE), (("flatten",), ("linear", p.mlp_hidden),
                                         ("act", "relu"), ("linear", classes)))
    step = LADDER.index(variant)
    act = "relu" if step >= LADDER.index("relu") else "sigmoid"
    pool = "maxpool" if step >= LADDER.index("maxpool") else "avgpool"
    drop = step >= LADDER.index("dropout")
    c1, c2 = p.wide_channels if step >= LADDER.index("wider") else p.channels
    layers = [("conv", c1, 5, 2), ("act", act), (pool, 2), ("conv", c2, 5), ("act", act),
              (pool, 2), ("flatten",)]
    for width in p.dense:
        layers += [("linear", width), ("act", act)] + ([("dropout",)] if drop else [])
    return ConvNet((1, SIDE, SIDE), (*layers, ("linear", classes)))


class Cnn(Study):
    name = "cnn"
    order = 10
    answer = ("ladder", "ladder_total", "cnn_vs_mlp")
    title = "Convolutional networks: LeNet to AlexNet"
    question = ("Which of AlexNet's ingredients (ReLU, max pooling, dropout, width) improve "
                "LeNet-5 on real MNIST digits, and does a CNN beat an MLP there?")
    Params = Params
    datasets = ("mnist",)

    def __init__(self, config):
        super().__init__(config)
        if self.p.seeds is not None:  # a CNN costs a hundred MLPs: its own, fewer seeds
            self.seeds = list(self.p.seeds)

    @classmethod
    def check(cls, config) -> None:
        from pipeline.datasets.mnist import train_rows

        p = config.cnn
        if len(set(p.variants)) != len(p.variants) or \
                list(p.variants) != sorted(p.variants, key=LADDER.index):
            raise ValueError(f"cnn.variants: each at most once, in ladder order "
                             f"{list(LADDER)}; got {list(p.variants)}")
        n = train_rows(config.data.mnist)
        if p.train_images > n:
            raise ValueError(f"cnn.train_images: {p.train_images} exceeds the {n} training "
                             "images of data.mnist")
        if "shift" in p.variants and p.shift >= SIDE:
            raise ValueError(f"cnn.shift: {p.shift} pixels would move a {SIDE} x {SIDE} "
                             "digit out of its frame")
        if len(p.channels) != 2 or len(p.wide_channels) != 2:
            raise ValueError("cnn.channels and cnn.wide_channels: two convolutions each")

    def cells(self) -> list[dict]:
        return [{"dataset": "mnist", "variant": v, "lr": lr, "seed": s}
                for v, lr, s in itertools.product(self.p.variants, self.p.lrs, self.seeds)]

    def brackets(self) -> list:
        from pipeline.bracketing import Bracket

        return [Bracket("lr", "val_acc", maximize=True, by=("variant",))]

    def job(self, cell: dict, data: dict):
        from pipeline.datasets import subset
        from pipeline.engine import Job, TrainSpec

        p, y = self.p, data["mnist"]["y_train"]
        rows = subset(y, p.train_images, cell["seed"])
        net = network(cell["variant"], p, int(y.max()) + 1)
        shifted = LADDER.index(cell["variant"]) >= LADDER.index("shift")
        spec = TrainSpec(net, p.optimizer, "cross_entropy", epochs=p.epochs,
                         batch_size=p.batch_size, log_every=p.log_every,
                         stop_below=p.fit_loss, splits_at_end=True,
                         shift=p.shift if shifted else 0)
        rates = (p.dropout,) * len(net.dropout_widths())
        return Job(spec, seed=cell["seed"], lr=cell["lr"], rows=rows, dropout=rates)

    def extras(self, out: StudyOutput, results: list, data: dict) -> None:
        target = self.p.target_error
        out.cells["epochs_to_target"] = [
            next((r["epoch"] for r in res.curve if 1 - r["train_acc"] <= target), np.nan)
            for res in results]

    def analyze(self, out: StudyOutput) -> Analysis:
        a = Analysis()
        cells, p = out.cells, self.p
        bracket = self.brackets()[0]
        failed = stats.failed(cells)
        learned = [v for v in p.variants
                   if not failed[(cells["variant"] == v).to_numpy()].all()]
        chosen = {v: bracket.select(cells, {"variant": v}) for v in learned}
        a.findings.append(F.selections("lrs", chosen, "Learning rates"))
        if len(learned) < len(p.variants):
            lost = [v for v in p.variants if v not in learned]
            a.findings.append(F.estimate(
                "learned_nothing", f"{', '.join(lost)}: every run at every learning rate "
                f"failed (diverged, or one class for every image) within {p.epochs} epochs, "
                "so no learning rate is chosen and the ladder skips them.", variants=lost))
        mine = pd.concat([stats.where(cells, {"variant": v, "lr": s.chosen})
                          for v, s in chosen.items()])
        t = stats.summarize(mine, ["variant", "lr"],
                            ["train_acc", "val_acc", "test_acc", "epochs_to_target"])
        t = t.set_index("variant").loc[learned].reset_index()  # ladder order
        a.table("chosen", "Accuracy and epochs to the training-error target of each variant "
                "at its learning rate chosen on validation accuracy, over seeds", t)
        a.table("grid", "Accuracy by variant and learning rate over seeds (bracket_round: 0 "
                "for the grid, k for a value added in round k)",
                stats.summarize(cells, ["variant", "lr", "bracket_round"],
                                ["train_acc", "val_acc", "test_acc"]), show=False)
        steps = list(zip(learned, learned[1:]))
        if steps:
            level = choices.family_level(len(steps))
            comps = [stats.compare(cells, {"variant": after, "lr": chosen[after].chosen},
                                   {"variant": before, "lr": chosen[before].chosen},
                                   "test_acc", label_a="with the ingredient",
                                   label_b="without", level=level)
                     for before, after in steps]
            a.findings.append(F.family(
                "ladder", comps, "Each ingredient added to the network before it",
                [f"+ {ADDED[after]} ({before} to {after})" for before, after in steps],
                "test accuracy", sides=[(after, before) for before, after in steps]))
        rungs = [v for v in learned if v != "mlp"]  # the CNNs, in ladder order
        if len(rungs) >= 3:  # the ingredients together, beyond any one step
            base, top = rungs[0], rungs[-1]
            a.findings.append(F.comparison("ladder_total", stats.compare(
                cells, {"variant": top, "lr": chosen[top].chosen},
                {"variant": base, "lr": chosen[base].chosen}, "test_acc",
                label_a=f"the ladder's last network ({top})",
                label_b=f"its first CNN ({base})"), "test accuracy"))
        unfit = mine[mine["converged"] == 0]
        if len(unfit):
            names = sorted(set(unfit["variant"]), key=LADDER.index)
            parts = [f"{v} ({(unfit['variant'] == v).sum()} of "
                     f"{(mine['variant'] == v).sum()} runs, training loss "
                     f"{F.fmt(unfit.loc[unfit['variant'] == v, 'train_loss'].min(), 2)} to "
                     f"{F.fmt(unfit.loc[unfit['variant'] == v, 'train_loss'].max(), 2)})"
                     for v in names]
            a.findings.append(F.estimate(
                "unfit", f"Not fitted within {p.epochs} epochs at the chosen learning rate: "
                f"{'; '.join(parts)}, against the {p.fit_loss:g} the others reach; "
                f"{'its' if len(names) == 1 else 'their'} steps compare a network still "
                "learning with finished ones.",
                variants=names))
        if {"mlp", "relu"} <= set(learned):  # a CNN against the MLP, both with ReLU
            a.findings.append(F.comparison("cnn_vs_mlp", stats.compare(
                cells, {"variant": "relu", "lr": chosen["relu"].chosen},
                {"variant": "mlp", "lr": chosen["mlp"].chosen}, "test_acc",
                label_a="LeNet-5 with ReLU", label_b="the MLP"), "test accuracy"))
        self._speed(a, cells)
        for r in t.itertuples():
            a.metric(f"{r.variant}/test_acc", r.test_acc_mean, r.test_acc_std)
            a.metric(f"{r.variant}/lr", r.lr)
        a.plots["accuracy"] = t[["variant", "test_acc_mean", "train_acc_mean"]]
        curves = pd.concat([stats.where(out.curves, {"variant": v, "lr": s.chosen})
                            for v, s in chosen.items()])
        curves = curves.assign(train_error=1 - curves["train_acc"])
        a.table("curves", "Training error by epoch at each variant's chosen learning rate, "
                "over seeds", stats.summarize(curves, ["variant", "epoch"], ["train_error"]),
                show=False)
        a.figures.append(Figure("Test accuracy of each variant at its chosen learning rate, "
                                "in ladder order (95% interval over seeds)", "bars",
                                "table/chosen", x="variant", y=["test_acc"],
                                ylabel="test accuracy"))
        a.figures.append(Figure(f"Training error by epoch at each variant's chosen learning "
                                f"rate; the target is {p.target_error:g}", "lines",
                                "table/curves", x="epoch", y=["train_error"], hue="variant",
                                logy=True, ylabel="training error"))
        return a

    def _speed(self, a: Analysis, cells: pd.DataFrame) -> None:
        """Epochs to the training-error target, sigmoid LeNet against ReLU LeNet, each at
        the learning rate that reaches it soonest (Krizhevsky et al. chose each network's
        rate "to make training as fast as possible"), paired by seed."""
        fastest = {v: fastest_lr(cells, v, len(self.seeds)) for v in ("lenet", "relu")}
        target, every = f"{self.p.target_error:.0%} training error", self.p.log_every
        context = (f" (each count the first logged epoch, every {every}). Krizhevsky et al. "
                   "2012 report six times sooner, ReLU against tanh on CIFAR-10; the slower "
                   "arm here is sigmoid.")
        if any(f is None for f in fastest.values()):
            missed = [v for v, f in fastest.items() if f is None]
            a.findings.append(F.estimate(
                "relu_speed", f"{' and '.join(missed)}: at no learning rate did every seed "
                f"reach {target} within {self.p.epochs} epochs, so the speed-up is not "
                "measured.", ratio=None, missed=missed))
            return
        (lr_s, slow), (lr_r, fast) = fastest["lenet"], fastest["relu"]
        logs = np.log((slow / fast).dropna().to_numpy(dtype=float))
        mean, half = stats.mean_ci(logs)
        ratio, low, high = (math.exp(v) for v in (mean, mean - half, mean + half))
        text = (f"ReLU LeNet reaches {target} {F.fmt(ratio, 2)} times sooner than sigmoid "
                f"LeNet (95% CI {F.fmt(low, 2)} to {F.fmt(high, 2)}, geometric mean "
                f"over {len(logs)} seeds), each at its fastest learning rate (ReLU {lr_r:g}, "
                f"sigmoid {lr_s:g}): {F.fmt(fast.mean(), 2)} against "
                f"{F.fmt(slow.mean(), 3)} epochs" + context)
        a.findings.append(F.estimate("relu_speed", text, ratio=ratio, low=low, high=high,
                                     lr_relu=lr_r, lr_sigmoid=lr_s))

    def setting(self) -> str:
        p = self.p
        c, w, d = p.channels, p.wide_channels, p.dense
        shifted = (f"; then training images moved each step by up to {p.shift} pixels in "
                   "each direction, the border zero (in the spirit of AlexNet's random crops; "
                   "evaluation sees them unmoved)"
                   if "shift" in p.variants else "")
        images = describe(self.config.data.mnist)
        return (f"{images[0].upper()}{images[1:]}, each seed its own stratified subset of "
                f"{p.train_images} training images; validation and test as data.mnist splits "
                f"them. LeNet-5 as d2l writes it: 5 x 5 convolutions of {c[0]} (padding 2) and "
                f"{c[1]} channels, each followed by sigmoid and 2 x 2 average pooling, then "
                f"dense {'-'.join(map(str, d))} with sigmoid, then 10 outputs. Each step adds "
                f"one of AlexNet's ingredients to the one before: ReLU for sigmoid, max for "
                f"average pooling, dropout {p.dropout:g} after each dense hidden layer, and "
                f"convolutions of {w[0]} and {w[1]} channels{shifted}. d2l's MLP (one hidden "
                f"layer of {p.mlp_hidden}, ReLU) on the same images is the non-convolutional "
                f"reference (its step to sigmoid LeNet changes the activation too; ReLU LeNet "
                f"against it is compared on its own). torch's default init; {p.optimizer} "
                f"(batch {p.batch_size}) until the model fits its training images (training "
                f"loss at most {p.fit_loss:g}, evaluated without dropout) or {p.epochs} "
                f"epochs, at learning rates "
                f"{', '.join(f'{v:g}' for v in p.lrs)}, bracketed per variant on validation "
                f"accuracy. Means over {len(self.seeds)} seeds. Context, not scored (other "
                f"data or another setting): LeNet-5 reached 0.95% test error on the full MNIST "
                f"(LeCun et al. 1998); d2l's LeNet reaches about 0.82 train / 0.78 test "
                f"accuracy on Fashion-MNIST, trained on all 60,000 images by SGD at 0.9 "
                f"(batch 256, 10 epochs).")


def fastest_lr(cells: pd.DataFrame, variant: str, seeds: int):
    """(lr, epochs to target by seed) of the learning rate whose runs all trained and all
    reached the target, soonest on average; None where no learning rate did."""
    rows = stats.where(cells, {"variant": variant})
    rows = rows[~stats.failed(rows)]
    best = None
    for lr, part in rows.groupby("lr"):
        epochs = part.set_index("seed")["epochs_to_target"]
        if len(epochs) == seeds and epochs.notna().all() and \
                (best is None or epochs.mean() < best[1].mean()):
            best = (float(lr), epochs)
    return best


STUDY = Cnn
