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
    "wilson": "wilson",
    "functions": "functions",
}


def generate(name: str, section) -> dict[str, np.ndarray]:
    """The arrays of dataset `name` generated from its params section."""
    module = importlib.import_module(f"{__name__}.{GENERATORS[name]}")
    return module.generate(section)


def dataset_path(name: str, root: str | Path = "data") -> Path:
    return Path(root) / f"{name}.npz"


def build(name: str, config: Config, out: str | Path) -> dict[str, np.ndarray]:
    """Generate dataset `name` from its params section and write it atomically to out."""
    section = getattr(config.data, name)
    arrays = generate(name, section)
    write_npz(out, {"dataset": name, "params": section.model_dump(mode="json")}, **arrays)
    return arrays


def load(name: str, root: str | Path = "data", expected=None) -> dict[str, np.ndarray]:
    """A dataset's arrays; with `expected` (its params section), refuse a file that was
    generated from other params, so a stale file never feeds a study."""
    path = dataset_path(name, root)
    if not path.exists():
        raise ConfigError(f"{path} is missing: run `dvc repro data@{name}` first")
    arrays, meta = read_npz(path)
    if expected is not None and meta.get("params") != expected.model_dump(mode="json"):
        raise ConfigError(f"{path} was generated from other data.{name} params than "
                          f"params.yaml holds: run `dvc repro data@{name}`")
    return arrays
