"""Dataset generators: one module per data family, each `generate(cfg) -> arrays`.

Every generator is a pure function of its params section (including its seed), so a
dataset stage depends on exactly that section, and imports only its own module.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from pipeline.config import Config, ConfigError
from pipeline.io import read_npz, write_npz

# dataset (a section of data: in params.yaml) -> the module that generates it
GENERATORS: dict[str, str] = {
    "spiral": "spiral",
    "spiral_cs231n": "spiral",
    "linear": "linear",
    "polynomial": "polynomial",
    "highdim": "highdim",
    "images": "images",
    "mnist": "mnist",
    "wilson": "wilson",
    "functions": "functions",
}


def generate(name: str, section) -> dict[str, np.ndarray]:
    """The arrays of dataset `name` generated from its params section."""
    module = importlib.import_module(f"{__name__}.{GENERATORS[name]}")
    return module.generate(section)


def dataset_path(name: str, root: str | Path = "data") -> Path:
    return Path(root) / f"{name}.npz"


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """(kept rows, held-out rows): round(fraction x n) rows held out, spread over the
    classes in proportion (largest remainders first), each class shuffled by the seed."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    share = counts * fraction
    n_out = round(fraction * len(y))
    take = np.floor(share).astype(int)
    extra = n_out - take.sum()
    take[np.argsort(-(share - take), kind="stable")[:extra]] += 1
    held = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:k]
                           for c, k in zip(classes, take)])
    held = np.sort(held)
    kept = np.setdiff1d(np.arange(len(y)), held)
    return kept, held


def subset(y: np.ndarray, n: int | None, seed: int) -> tuple[int, ...] | None:
    """A seed's own stratified subset of n of the rows (training rows for a job); None
    where n is None or covers them all."""
    if n is None or n >= len(y):
        return None
    return tuple(int(i) for i in stratified_split(y, n / len(y), seed)[1])


FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (MNIST's format): a zero short, the type code 0x08,
    the number of dimensions, each dimension as a big-endian int32, then the data."""
    raw = path.read_bytes()
    zero, code, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0 or code != 0x08:
        raise ConfigError(f"{path} is not an IDX file of unsigned bytes")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ConfigError(f"{path} holds {data.size} bytes, not the {shape} its header says")
    return data.reshape(shape)


def fashion_mnist(key: str, root: str, download: bool) -> tuple[np.ndarray, ...]:
    """Fashion-MNIST's (x_train, y_train, x_test, y_test): 28 x 28 images as bytes 0-255,
    read from the uncompressed IDX files in ROOT/FashionMNIST/raw/; key: the params
    section, for the message when they are missing (torchvision downloads them there only
    when `download` is true)."""
    raw = Path(root) / "FashionMNIST" / "raw"
    missing = [f for f in FASHION_FILES if not (raw / f).exists()]
    if missing and download:
        from torchvision.datasets import FashionMNIST

        for train in (True, False):
            FashionMNIST(root, train=train, download=True)
    elif missing:
        raise ConfigError(
            f"{key}.source: 'fashion_mnist' selected but {raw}/ lacks {', '.join(missing)}; "
            f"put the uncompressed IDX files there or set {key}.download: true")
    return tuple(read_idx(raw / f).astype(np.int64) if "labels" in f else read_idx(raw / f)
                 for f in FASHION_FILES)


TRAINING = ("x_train", "y_train")  # the arrays a draw replaces (validation, test stay)


def build(name: str, config: Config, out: str | Path) -> dict[str, np.ndarray]:
    """Generate dataset `name` from its params section and write it atomically to out.
    With data_seeds, also one draw of the training arrays per training seed s (the
    generator at the section's seed + s), as KEY@s."""
    section = getattr(config.data, name)
    arrays = with_draws(name, config)
    meta = {"dataset": name, "params": section.model_dump(mode="json")}
    if getattr(section, "data_seeds", False):
        meta["seeds"] = list(config.seeds)
    write_npz(out, meta, **arrays)
    return arrays


def with_draws(name: str, config: Config) -> dict[str, np.ndarray]:
    """Dataset `name`'s arrays and, with data_seeds, its training arrays drawn anew for
    each training seed s (KEY@s)."""
    section = getattr(config.data, name)
    arrays = generate(name, section)
    if getattr(section, "data_seeds", False):
        for s in config.seeds:
            own = generate(name, section.model_copy(update={"seed": section.seed + s}))
            arrays |= {f"{key}@{s}": own[key] for key in TRAINING}
    return arrays


def draw(arrays: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """The arrays a model of this training seed trains on: its own draw of the training
    arrays where the dataset has one per seed, else the arrays as they are."""
    if f"x_train@{seed}" not in arrays:
        return arrays
    return arrays | {key: arrays[f"{key}@{seed}"] for key in TRAINING}


def has_draws(arrays: dict[str, np.ndarray]) -> bool:
    return any("@" in key for key in arrays)


def load(name: str, root: str | Path = "data", expected=None,
         seeds: list[int] | None = None) -> dict[str, np.ndarray]:
    """A dataset's arrays; with `expected` (its params section) and `seeds` (the training
    seeds), refuse a file that was generated from other params or, with data_seeds, for
    other seeds, so a stale file never feeds a study."""
    path = dataset_path(name, root)
    if not path.exists():
        raise ConfigError(f"{path} is missing: run `dvc repro data@{name}` first")
    arrays, meta = read_npz(path)
    if expected is not None and meta.get("params") != expected.model_dump(mode="json"):
        raise ConfigError(f"{path} was generated from other data.{name} params than "
                          f"params.yaml holds: run `dvc repro data@{name}`")
    if seeds is not None and getattr(expected, "data_seeds", False) and \
            meta.get("seeds") != list(seeds):
        raise ConfigError(f"{path} holds draws for other seeds than params.yaml's: run "
                          f"`dvc repro data@{name}`")
    return arrays
