"""Synthetic linear regression, d2l section 3.2: y = Xw + b + noise, X ~ N(0, 1).

d2l draws n = 1000 training rows; a test set of n_test rows is drawn after them from
the same distribution, so the training rows are d2l's draw for a seed.
"""

from __future__ import annotations

import numpy as np

from pipeline.config import LinearData


def generate(cfg: LinearData) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(cfg.seed)
    w = np.asarray(cfg.w, dtype=np.float64)
    out = {}
    for split, n in (("train", cfg.n), ("test", cfg.n_test)):
        x = rng.standard_normal((n, len(w)))
        y = x @ w + cfg.b + rng.normal(0.0, cfg.noise, n)
        out[f"x_{split}"], out[f"y_{split}"] = x.astype(np.float32), y[:, None].astype(np.float32)
    return out | {"true_w": w.astype(np.float32), "true_b": np.float32(cfg.b)}
