"""Dataset generators: one module per data family, each `generate(cfg) -> arrays`.

Every generator is a pure function of its params section (including its seed), so a
dataset stage depends on exactly that section.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.config import Config
from pipeline.io import read_npz, write_npz

from . import highdim, images, linear, polynomial, spiral

GENERATORS: dict[str, Callable[..., dict[str, np.ndarray]]] = {
    "spiral": spiral.generate,
    "linear": linear.generate,
    "polynomial": polynomial.generate,
    "highdim": highdim.generate,
    "images": images.generate,
}


def dataset_path(name: str, root: str | Path = "data") -> Path:
    return Path(root) / f"{name}.npz"


def build(name: str, config: Config, root: str | Path = "data") -> Path:
    """Generate dataset `name` from its params section and write it atomically."""
    section = getattr(config.data, name)
    arrays = GENERATORS[name](section)
    path = dataset_path(name, root)
    write_npz(path, {"dataset": name, "params": section.model_dump()}, **arrays)
    return path


def load(name: str, root: str | Path = "data") -> dict[str, np.ndarray]:
    path = dataset_path(name, root)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `dvc repro data@{name}` first")
    return read_npz(path)[0]
