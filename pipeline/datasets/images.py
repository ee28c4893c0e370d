"""Image classification data, flattened to vectors in [0, 1].

- digits (default): scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10
  classes), split train/test with a fixed, stratified, seeded split. Needs no network.
- fashion_mnist: torchvision.datasets.FashionMNIST read from `root`; it downloads
  only when `download: true`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.config import ConfigError, ImageData

FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _digits(cfg: ImageData):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    return train_test_split(x, y, test_size=cfg.test_fraction, random_state=cfg.seed,
                            stratify=y)


def _fashion_mnist(cfg: ImageData):
    from torchvision.datasets import FashionMNIST

    raw = Path(cfg.root) / "FashionMNIST" / "raw"
    missing = [f for f in FASHION_FILES if not (raw / f).exists()]
    if missing and not cfg.download:
        raise ConfigError(
            f"data.images.source: 'fashion_mnist' selected but {raw}/ lacks "
            f"{', '.join(missing)}; put the uncompressed IDX files there or set "
            "data.images.download: true"
        )
    parts = []
    for train in (True, False):
        ds = FashionMNIST(cfg.root, train=train, download=cfg.download)
        x = ds.data.reshape(len(ds.data), -1).numpy().astype(np.float32) / 255.0
        parts.append((x, ds.targets.numpy().astype(np.int64)))
    (x_train, y_train), (x_test, y_test) = parts
    return x_train, x_test, y_train, y_test


def generate(cfg: ImageData) -> dict[str, np.ndarray]:
    from sklearn.model_selection import train_test_split

    loader = _digits if cfg.source == "digits" else _fashion_mnist
    x_train, x_test, y_train, y_test = loader(cfg)
    x_train, y_train = x_train[: cfg.limit_train], y_train[: cfg.limit_train]
    x_test, y_test = x_test[: cfg.limit_test], y_test[: cfg.limit_test]
    # a stratified, seeded validation split of the training images, for every choice
    x_train, x_val, y_train, y_val = train_test_split(
        x_train, y_train, test_size=cfg.val_fraction, random_state=cfg.seed, stratify=y_train)
    c = np.ascontiguousarray
    return {"x_train": c(x_train), "y_train": y_train, "x_val": c(x_val), "y_val": y_val,
            "x_test": c(x_test), "y_test": y_test}
