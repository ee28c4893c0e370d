"""Image classification data, flattened to vectors in [0, 1].

- digits (default): scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10
  classes), read straight from the file scikit-learn ships (importing scikit-learn
  would triple this stage's time), split train/test with a fixed, stratified, seeded
  split. Needs no network.
- fashion_mnist: Fashion-MNIST's IDX files read from `root`/FashionMNIST/raw/
  (torchvision downloads them there only when `download: true`).

Then a stratified, seeded validation split of the training images, for every choice.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from pipeline.config import ConfigError, ImageData
from pipeline.datasets import fashion_mnist, stratified_split


def digits_file() -> Path:
    """scikit-learn's digits.csv.gz (the file load_digits reads), found without
    importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise ConfigError("data.images.source: 'digits' needs scikit-learn installed")
    return Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"


def _digits(cfg: ImageData):
    with gzip.open(digits_file(), "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    x = (table[:, :-1] / 16.0).astype(np.float32)
    y = table[:, -1].astype(np.int64)
    train, test = stratified_split(y, cfg.test_fraction, cfg.seed)
    return x[train], x[test], y[train], y[test]


def _fashion_mnist(cfg: ImageData):
    x_train, y_train, x_test, y_test = fashion_mnist("data.images", cfg.root, cfg.download)
    flat = [x.reshape(len(x), -1).astype(np.float32) / 255.0 for x in (x_train, x_test)]
    return flat[0], flat[1], y_train, y_test


def generate(cfg: ImageData) -> dict[str, np.ndarray]:
    loader = _digits if cfg.source == "digits" else _fashion_mnist
    x_train, x_test, y_train, y_test = loader(cfg)
    x_train, y_train = x_train[: cfg.limit_train], y_train[: cfg.limit_train]
    x_test, y_test = x_test[: cfg.limit_test], y_test[: cfg.limit_test]
    train, val = stratified_split(y_train, cfg.val_fraction, cfg.seed + 1)
    c = np.ascontiguousarray
    return {"x_train": c(x_train[train]), "y_train": y_train[train],
            "x_val": c(x_train[val]), "y_val": y_train[val],
            "x_test": c(x_test), "y_test": y_test}
