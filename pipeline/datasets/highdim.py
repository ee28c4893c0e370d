"""High-dimensional linear regression for weight decay, d2l section 4.5 (3.7 in recent
editions): y = b + sum_i w x_i + noise with d = 200 inputs and only 20 training rows,
so an unregularised fit over-fits."""

from __future__ import annotations

import numpy as np

from pipeline.config import HighDimData


def generate(cfg: HighDimData) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(cfg.seed)
    n = cfg.n_train + cfg.n_test + cfg.n_val
    x = rng.standard_normal((n, cfg.d))
    y = cfg.b + x.sum(axis=1) * cfg.w + rng.normal(0.0, cfg.noise, n)
    a, b = cfg.n_train, cfg.n_train + cfg.n_test
    f32 = lambda v: v.astype(np.float32)  # noqa: E731
    return {"x_train": f32(x[:a]), "y_train": f32(y[:a, None]),
            "x_test": f32(x[a:b]), "y_test": f32(y[a:b, None]),
            "x_val": f32(x[b:]), "y_val": f32(y[b:, None])}
