"""Synthetic linear regression, d2l section 3.3: y = Xw + b + noise, X ~ N(0, 1)."""

from __future__ import annotations

import numpy as np

from pipeline.config import LinearData


def generate(cfg: LinearData) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(cfg.seed)
    w = np.asarray(cfg.w, dtype=np.float64)
    x = rng.standard_normal((cfg.n, len(w)))
    y = x @ w + cfg.b + rng.normal(0.0, cfg.noise, cfg.n)
    return {"x": x.astype(np.float32), "y": y[:, None].astype(np.float32),
            "true_w": w.astype(np.float32), "true_b": np.float32(cfg.b)}
