"""High-dimensional linear regression for weight decay, d2l section 4.5 (3.7 in recent
editions): y = b + sum_i w x_i + noise with d = 200 inputs and only 20 training rows,
so an unregularised fit over-fits."""

from __future__ import annotations

import numpy as np

from pipeline.config import HighDimData


def generate(cfg: HighDimData) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(cfg.seed)
    n = cfg.n_train + cfg.n_test
    x = rng.standard_normal((n, cfg.d))
    y = cfg.b + x.sum(axis=1) * cfg.w + rng.normal(0.0, cfg.noise, n)
    split = cfg.n_train
    return {
        "x_train": x[:split].astype(np.float32), "y_train": y[:split, None].astype(np.float32),
        "x_test": x[split:].astype(np.float32), "y_test": y[split:, None].astype(np.float32),
    }
