"""Models that several studies train alike: d2l's polynomial fit and weight-decay
regression (the polynomial, regularization and K-fold studies), and MLP shapes at a
parameter budget (the width-vs-depth and approximation studies)."""

from __future__ import annotations

from pipeline.config import PositiveFloat, PositiveInt, Section


class WeightDecayRun(Section):
    """d2l 4.5's training settings, shared by the studies that train its regression."""
    lr: PositiveFloat = 0.003
    batch_size: PositiveInt = 5
    epochs: PositiveInt = 100
    init_std: PositiveFloat = 1.0


def init(init_std: float | None) -> dict:
    """A params section's init_std -> the engine's init: None is torch.nn.Linear's."""
    return {"init": "torch"} if init_std is None else {"init": "normal", "init_scale": init_std}


def polynomial_fit(p, n_features: int):
    """d2l 4.4's polynomial fit: no bias (x^0 is a feature), squared loss, minibatch SGD.
    p: a params section with epochs, batch_size, log_every and init_std."""
    from pipeline.engine import Arch, TrainSpec

    return TrainSpec(Arch((n_features, 1), "none", bias=False), "sgd", "mse",
                     epochs=p.epochs, batch_size=p.batch_size, log_every=p.log_every,
                     **init(p.init_std))


def weight_decay_regression(s, n_in: int, optimizer: str = "sgd"):
    """d2l 4.5's weight-decay regression: linear with bias, squared loss / 2, minibatch.
    s: a params section with epochs, batch_size, log_every and init_std."""
    from pipeline.engine import Arch, TrainSpec

    return TrainSpec(Arch((n_in, 1), "none"), optimizer, "half_mse", epochs=s.epochs,
                     batch_size=s.batch_size, log_every=s.log_every, init="normal",
                     init_scale=s.init_std)


def n_params(sizes: tuple[int, ...]) -> int:
    """Weights and biases of a dense MLP with these layer sizes."""
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def matched_width(n_in: int, n_out: int, depth: int, budget: int) -> int:
    """The width whose depth-layer MLP has the parameter count closest to the budget."""
    best, width = None, 1
    while True:
        count = n_params((n_in, *[width] * depth, n_out))
        if best is None or abs(count - budget) < abs(best[1] - budget):
            best = (width, count)
        if count > budget:
            return best[0]
        width += 1
