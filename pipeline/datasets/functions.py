"""One-dimensional targets on a bounded interval, for universal approximation.

x in [-a, a]: training points on an even grid, test points on a denser grid. Targets:
sin(3x) (smooth), |x| (a kink), a step (sign), and sawtooths of each count in `teeth`
(sawtooth_T), the function Telgarsky (2016) uses to show what depth buys: a deep narrow
ReLU net writes it with few parameters, a shallow one needs a unit per tooth.
"""

from __future__ import annotations

import numpy as np

from pipeline.config import FunctionsData


def targets(x: np.ndarray, cfg: FunctionsData) -> dict[str, np.ndarray]:
    u = (x + cfg.interval) / (2 * cfg.interval)  # [-a, a] -> [0, 1]
    return {"sin": np.sin(3 * x), "abs": np.abs(x), "step": np.sign(x)} | {
        f"sawtooth_{t}": 2 * np.abs(u * t - np.floor(u * t + 0.5)) for t in cfg.teeth}


def generate(cfg: FunctionsData) -> dict[str, np.ndarray]:
    out = {}
    for split, n in (("train", cfg.n_train), ("test", cfg.n_test)):
        x = np.linspace(-cfg.interval, cfg.interval, n)
        out[f"x_{split}"] = x[:, None].astype(np.float32)
        for name, y in targets(x, cfg).items():
            out[f"y_{split}_{name}"] = y[:, None].astype(np.float32)
    return out
