"""Spiral classes, the standard toy problem for linear vs non-linear classifiers.

- dlsp20: NYU Deep Learning (Canziani and LeCun, DLSP20), notebook
  04-spiral_classification: class c's angle runs from 2*pi*c/C to 2*pi*(2+c)/C,
  radius from 0 to 1, Gaussian noise (std `noise`) added to the angle.
- cs231n: Stanford CS231n, "Putting it together: minimal neural network case study":
  angle from 4c to 4(c+1), radius 0 to 1, noise added to the angle.
"""

from __future__ import annotations

import numpy as np

from pipeline.config import SpiralData


def spiral_points(generator: str, n: int, classes: int, noise: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for c in range(classes):
        radius = np.linspace(0.0, 1.0, n)
        if generator == "dlsp20":
            start, stop = 2 * np.pi * c / classes, 2 * np.pi * (2 + c) / classes
        else:  # cs231n
            start, stop = 4.0 * c, 4.0 * (c + 1)
        theta = np.linspace(start, stop, n) + rng.standard_normal(n) * noise
        # both sources put sin on the first coordinate and cos on the second
        xs.append(np.stack([radius * np.sin(theta), radius * np.cos(theta)], axis=1))
        ys.append(np.full(n, c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)


def generate(cfg: SpiralData) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(cfg.seed)
    out = {}
    # validation and test sets are independent draws of the same spiral
    for split, n in (("train", cfg.points_per_class), ("test", cfg.test_points_per_class),
                     ("val", cfg.val_points_per_class)):
        out[f"x_{split}"], out[f"y_{split}"] = spiral_points(cfg.generator, n, cfg.classes,
                                                             cfg.noise, rng)
    return out
