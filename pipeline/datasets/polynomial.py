"""Polynomial regression for model selection, d2l section 4.4 (5.5 in recent editions).

x ~ N(0, 1); features x^i / i! for i < n_features (the factorial keeps high powers from
exploding); y = sum_i true_w[i] x^i / i! + N(0, noise^2). A fit of degree d uses the
first d + 1 features.
"""

from __future__ import annotations

from math import factorial

import numpy as np

from pipeline.config import PolynomialData


def features(x: np.ndarray, n_features: int) -> np.ndarray:
    powers = np.power(x[:, None], np.arange(n_features))  # (N, n_features)
    return powers / np.array([factorial(i) for i in range(n_features)], dtype=np.float64)


def generate(cfg: PolynomialData) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(cfg.seed)
    n = cfg.n_train + cfg.n_test
    x = rng.standard_normal(n)
    feats = features(x, cfg.n_features)  # (N, n_features)
    true_w = np.zeros(cfg.n_features)
    true_w[: len(cfg.true_w)] = cfg.true_w
    y = feats @ true_w + rng.normal(0.0, cfg.noise, n)
    # validation rows: drawn after train and test, so those stay d2l's draws for a seed
    x_val = rng.standard_normal(cfg.n_val)
    f_val = features(x_val, cfg.n_features)
    y_val = f_val @ true_w + rng.normal(0.0, cfg.noise, cfg.n_val)
    split = cfg.n_train
    return {
        "x_train": feats[:split].astype(np.float32), "y_train": y[:split, None].astype(np.float32),
        "x_test": feats[split:].astype(np.float32), "y_test": y[split:, None].astype(np.float32),
        "x_val": f_val.astype(np.float32), "y_val": y_val[:, None].astype(np.float32),
        "raw_x_train": x[:split].astype(np.float32), "raw_x_test": x[split:].astype(np.float32),
        "raw_x_val": x_val.astype(np.float32), "true_w": true_w.astype(np.float32),
    }
