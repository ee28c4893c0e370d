"""Wilson, Roelofs, Stern, Srebro and Recht (2017), "The Marginal Value of Adaptive
Gradient Methods in Machine Learning", section 3.3: a linearly separable problem on
which gradient descent generalises and adaptive methods do not.

Labels y = +1 with probability p > 1/2, else -1. Features: x1 = y, x2 = x3 = 1, and a
block of features unique to each training example: one for a positive example, five for
a negative one (dimension 6n). Test points carry x1..x3 only: their own unique features
are unseen in training, so with a zero init those weights stay zero either way.
"""

from __future__ import annotations

import numpy as np

from pipeline.config import WilsonData


def _labels(n: int, p: float, rng: np.random.Generator) -> np.ndarray:
    return np.where(rng.random(n) < p, 1.0, -1.0)


def generate(cfg: WilsonData) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(cfg.seed)
    n, d = cfg.n_train, 6 * cfg.n_train
    y = _labels(n, cfg.p_positive, rng)
    x = np.zeros((n, d))
    x[:, 0], x[:, 1], x[:, 2] = y, 1.0, 1.0
    for i in range(n):
        start = 3 + 5 * i  # blocks of 5: a positive example uses 1 slot, a negative all 5
        x[i, start:start + (1 if y[i] > 0 else 5)] = 1.0
    y_test = _labels(cfg.n_test, cfg.p_positive, rng)
    x_test = np.zeros((cfg.n_test, d))
    x_test[:, 0], x_test[:, 1], x_test[:, 2] = y_test, 1.0, 1.0
    return {"x_train": x.astype(np.float32), "y_train": y[:, None].astype(np.float32),
            "x_test": x_test.astype(np.float32), "y_test": y_test[:, None].astype(np.float32)}
