"""What every study shares: tidy result tables and writing them out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import Config
from pipeline.engine import EngineOptions, Job, Result, TrainData, train
from pipeline.engine.cache import CellCache
from pipeline.io import write_csv, write_json


@dataclass
class StudyOutput:
    cells: pd.DataFrame  # one row per cell: config columns, seed, final metrics, diverged
    curves: pd.DataFrame  # one row per cell and logged epoch
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # study-specific extras
    timing: pd.DataFrame | None = None  # cell, seconds: kept apart so that the result
    #                                     tables are byte-identical from run to run


def engine_options(config: Config, desc: str) -> EngineOptions:
    """How the engine runs (never what it computes): workers, cell cache, executor."""
    return EngineOptions(workers=config.workers,
                         cache=CellCache(config.cell_cache) if config.cell_cache else None,
                         executor=config.executor, ray_address=config.ray_address,
                         ray_gpus_per_task=config.ray_gpus_per_task, desc=desc)


def init_kwargs(init_std: float | None) -> dict:
    """params' init_std -> the engine's init: None is torch.nn.Linear's default."""
    return {"init": "torch"} if init_std is None else {"init": "normal", "init_scale": init_std}


def train_by_dataset(config: Config, grid: list[dict], jobs: list[Job], data: dict, device,
                     study: str) -> list[Result]:
    """Train jobs[i] on data[grid[i]["dataset"]]: one engine call per dataset (each has
    its own tensors), results back in grid order."""
    results: list[Result | None] = [None] * len(grid)
    for name in dict.fromkeys(c["dataset"] for c in grid):
        idx = [i for i, c in enumerate(grid) if c["dataset"] == name]
        trained = train([jobs[i] for i in idx], TrainData.from_arrays(data[name], device),
                        device, engine_options(config, f"{study}/{name}"))
        for i, res in zip(idx, trained):
            results[i] = res
    return results  # type: ignore[return-value]


def tidy(cells: list[dict], results: list[Result]) -> StudyOutput:
    """Final-metric and curve tables; every row carries its cell's config columns."""
    rows, curve_rows = [], []
    for i, (cell, res) in enumerate(zip(cells, results)):
        rows.append({"cell": i, **cell, **res.metrics, "diverged": res.diverged,
                     "diverged_epoch": res.diverged_epoch})
        curve_rows += [{"cell": i, **cell, **point} for point in res.curve]
    frame = pd.DataFrame(rows)
    frame["diverged_epoch"] = frame["diverged_epoch"].astype("Int64")
    timing = pd.DataFrame({"cell": range(len(results)), "seconds": [r.seconds for r in results],
                           "cached": [bool(r.extra.get("cached")) for r in results]})
    return StudyOutput(frame, pd.DataFrame(curve_rows), timing=timing)


def mean_over_seeds(frame: pd.DataFrame, by: list[str], value: str) -> dict:
    """{group key: mean of value over seeds}, diverged cells left out, NaN as None."""
    ok = frame[~frame["diverged"]]
    means = ok.groupby(by, sort=False)[value].mean()
    return {(k if isinstance(k, str) else "/".join(map(str, np.atleast_1d(k)))):
            (None if not np.isfinite(v) else round(float(v), 6)) for k, v in means.items()}


def write_study(output: StudyOutput, metrics: dict, out_dir: str | Path,
                metrics_path: str | Path) -> None:
    out_dir = Path(out_dir)
    write_csv(out_dir / "cells.csv", output.cells)
    write_csv(out_dir / "curves.csv", output.curves)
    for name, table in output.tables.items():
        write_csv(out_dir / f"{name}.csv", table)
    if output.timing is not None:
        write_csv(out_dir / "timing.csv", output.timing)
    write_json(metrics_path, metrics)
