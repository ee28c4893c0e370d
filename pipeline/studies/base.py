"""The study interface, and the one path every study takes from params to files.

A study is one module with one `Study` subclass holding everything about it:

    Params            its params model (a pydantic section of params.yaml)
    datasets          the datasets it reads
    cells()           its grid: one dict of config columns per trained model, each
                      naming its "dataset" and "seed"
    job(cell, data)   the engine job that trains one cell
    prepare(data)     work outside the engine the jobs need, done once first (optional)
    arrays(data)      the training arrays per cell "dataset" (by default the datasets)
    extras(...)       columns and tidy tables computed from the trained models
    analyze(out)      summary tables, headline metrics, plot tables, findings,
                      published references and figure specs (findings.Analysis)
    setting()         the "Setting" paragraph, rendered from the params that ran

`run_study` trains every cell (one engine run, each dataset a part of it), and
`write_study` writes the tidy results, analysis.json, the tables, the metrics and the
plots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from pipeline import bracketing, outcomes
from pipeline.findings import Analysis, to_json
from pipeline.io import atomic_dir, write_csv, write_json


@dataclass
class StudyOutput:
    # one row per cell: config columns, seed, final metrics, diverged, and what
    # pipeline.outcomes adds (null scores, collapsed, converged; test points as attrs)
    cells: pd.DataFrame
    curves: pd.DataFrame  # one row per cell and logged epoch
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # other tidy results
    cached: int = 0  # cells that came from the cell cache


class Study:
    order: ClassVar[int] = 100  # its place in the report
    # the ids of the findings that answer its question (the report's summary; none: the
    # first comparison)
    answer: ClassVar[tuple[str, ...]] = ()
    name: ClassVar[str]
    title: ClassVar[str]
    question: ClassVar[str]
    Params: ClassVar[type]
    datasets: ClassVar[tuple[str, ...]]

    def __init__(self, config):
        self.config = config
        self.p = getattr(config, self.name)
        self.seeds = list(config.seeds)

    @classmethod
    def check(cls, config) -> None:
        """Checks across params sections; raise ValueError("key: what is wrong")."""

    def cells(self) -> list[dict]:
        raise NotImplementedError

    def job(self, cell: dict, data: dict[str, dict[str, np.ndarray]]):
        raise NotImplementedError

    def arrays(self, data: dict) -> dict[str, dict[str, np.ndarray]]:
        """The training arrays each cell's "dataset" names, from the loaded datasets
        (by default the datasets themselves; a study may derive variants)."""
        return data

    def brackets(self) -> list:
        """The choices over ordered grids that grow until interior (bracketing.Bracket)."""
        return []

    def prepare(self, data: dict) -> None:
        """Work outside the engine that the study needs, done once before training
        (optional; see `in_parallel`)."""

    def extend(self, cell: dict, column: str, value) -> dict:
        """A cell of the grid with `column` set to a value bracketing added."""
        return cell | {column: value}

    def extras(self, out: StudyOutput, results: list, data: dict) -> None:
        """Add columns or tidy tables computed from the trained models (optional)."""

    def analyze(self, out: StudyOutput) -> Analysis:
        raise NotImplementedError

    def setting(self) -> str:
        raise NotImplementedError


def in_parallel(calls: list[tuple[Callable, tuple]], workers: int) -> list:
    """Each call's result, in order: independent work outside the engine (scikit-learn
    fits), in `workers` forked processes (give the costliest first). Each runs on one BLAS
    thread, in this process too, so that its numbers do not depend on `workers`."""
    from threadpoolctl import threadpool_limits

    if workers <= 1 or len(calls) <= 1:
        with threadpool_limits(limits=1):
            return [f(*args) for f, args in calls]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(workers, len(calls)), mp_context=mp.get_context("fork"),
                             initializer=threadpool_limits, initargs=(1,)) as pool:
        futures = [pool.submit(f, *args) for f, args in calls]
        return [f.result() for f in futures]


def engine_options(config, desc: str, device="cpu"):
    """How the engine runs (never what it computes): workers, cell cache, executor,
    memory budget."""
    from pipeline.config import memory_budget
    from pipeline.engine import EngineOptions
    from pipeline.engine.cache import CellCache

    return EngineOptions(workers=config.workers,
                         cache=CellCache(config.cell_cache) if config.cell_cache else None,
                         executor=config.executor, ray_address=config.ray_address,
                         ray_gpus_per_task=config.ray_gpus_per_task,
                         max_memory=memory_budget(config, device), desc=desc)


def check_memory(study: Study, grid: list[dict], jobs: list, data: dict, device) -> None:
    """Refuse, before anything trains, a cell too large for the memory budget."""
    from pipeline.config import ConfigError
    from pipeline.engine import MemoryBudgetError, plan_groups

    options = engine_options(study.config, study.name, device)
    for name in dict.fromkeys(c["dataset"] for c in grid):
        idx = [i for i, c in enumerate(grid) if c["dataset"] == name]
        try:
            plan_groups([jobs[i] for i in idx], len(data[name]["x_train"]), options)
        except MemoryBudgetError as exc:
            cell = grid[idx[[jobs[i] for i in idx].index(exc.job)]]
            shown = {k: v for k, v in cell.items() if k != "seed"}
            raise ConfigError(f"{study.name}: the cell {shown} is too large: {exc}; lower its "
                              f"params or raise max_memory ({study.config.max_memory})") from None


def run_study(study: Study, data: dict, device) -> StudyOutput:
    """Train every cell, one engine run for all datasets; then, round by round, the cells
    bracketing adds (see pipeline.bracketing); tidy the results."""
    grid = study.cells()
    for cell in grid:
        if "dataset" not in cell or "seed" not in cell:
            raise KeyError(f"{study.name}: a cell must name its dataset and seed: {cell}")
    arrays = study.arrays(data)
    tol = study.config.converge_tol
    if study.brackets():
        grid = bracketing.mark(grid)
    study.prepare(data)
    results = train_cells(study, grid, data, arrays, device)
    known: dict = {}  # each trained model's outcomes, scored once over the rounds
    for round_ in range(1, study.config.bracket_rounds + 1):
        cells = outcomes.add(tidy(grid, results).cells, results, arrays, tol, known)
        added = bracketing.extend(study, cells, grid, round_)
        if not added:
            break
        grid += added
        results += train_cells(study, added, data, arrays, device, f" (bracketing {round_})")
    out = tidy(grid, results)
    out.cells = outcomes.add(out.cells, results, arrays, tol, known)
    study.extras(out, results, data)
    return out


def train_cells(study: Study, grid: list[dict], data: dict, arrays: dict, device,
                note: str = "") -> list:
    """The trained results of these cells: one engine run, each dataset a part of it.
    Where each training seed has its own draw, the part's training rows are every draw,
    one after the other, and each model trains on its own draw's rows (as a fold trains
    on its rows), so that models of every draw share groups."""
    from pipeline.engine import train_parts

    jobs = [study.job(c, data) for c in grid]
    check_memory(study, grid, jobs, arrays, device)
    idx = {name: [i for i, c in enumerate(grid) if c["dataset"] == name]
           for name in dict.fromkeys(c["dataset"] for c in grid)}
    parts, own = [], list(jobs)  # own: each job with its rows in its part's data
    for name, members in idx.items():
        train_data, offsets = part_data(arrays[name], device)
        for i in members:
            if offsets is not None:
                start, n = offsets[grid[i]["seed"]]
                rows = jobs[i].rows if jobs[i].rows is not None else range(n)
                own[i] = replace(jobs[i], rows=tuple(start + r for r in rows))
        parts.append(([own[i] for i in members], train_data))
    trained = train_parts(parts, device, engine_options(study.config, study.name + note, device))
    results: list = [None] * len(grid)
    for members, res in zip(idx.values(), trained):
        for i, r in zip(members, res):
            results[i] = replace(r, job=jobs[i])  # as the study made it
    return results


def part_data(arrays: dict, device) -> tuple:
    """A dataset as the engine's data, and where each seed's draw starts and how many rows
    it has, (start, n) by seed (None without draws)."""
    from pipeline.datasets import TRAINING, draw, has_draws
    from pipeline.engine import TrainData

    if not has_draws(arrays):
        return TrainData.from_arrays(arrays, device), None
    seeds = sorted(int(k.split("@")[1]) for k in arrays if k.startswith("x_train@"))
    draws = [draw(arrays, s) for s in seeds]
    counts = [len(d["x_train"]) for d in draws]
    starts = np.cumsum([0, *counts[:-1]]).tolist()
    joined = arrays | {k: np.concatenate([d[k] for d in draws]) for k in TRAINING}
    return (TrainData.from_arrays(joined, device),
            {s: (start, n) for s, start, n in zip(seeds, starts, counts)})


def tidy(grid: list[dict], results: list) -> StudyOutput:
    """Final-metric and curve tables; every row carries its cell's config columns."""
    rows, curve_rows = [], []
    for i, (cell, res) in enumerate(zip(grid, results)):
        rows.append({"cell": i, **cell, **res.metrics, "diverged": res.diverged,
                     "diverged_epoch": res.diverged_epoch})
        if res.job.spec.stop_tol is not None or res.job.spec.stop_below is not None:
            # trained until converged (or until it fits): where it stopped
            rows[-1]["stopped_epoch"] = res.stopped_epoch
        curve_rows += [{"cell": i, **cell, **point} for point in res.curve]
    frame = pd.DataFrame(rows)
    for column in ("diverged_epoch", "stopped_epoch"):
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    cached = sum(bool(r.extra.get("cached")) for r in results)
    return StudyOutput(frame, pd.DataFrame(curve_rows), cached=cached)


@dataclass
class Paths:
    results: Path  # data/results/STUDY: tidy results and analysis.json (a DVC output)
    metrics: Path  # reports/metrics/STUDY.json (a DVC metric, in git)
    tables: Path  # reports/tables/STUDY/ (in git)
    plots: Path  # reports/plots/STUDY/ (DVC plots, in git)

    @classmethod
    def default(cls, name: str, root: Path = Path(".")) -> Paths:
        return cls(root / "data" / "results" / name, root / "reports" / "metrics" / f"{name}.json",
                   root / "reports" / "tables" / name, root / "reports" / "plots" / name)


def with_effects(finding: dict, config) -> dict:
    """A finding whose comparisons carry the effect of interest of their metric."""
    data = finding.get("data", {})
    for c in ([data] if "diff" in data else []) + data.get("comparisons", []):
        if c.get("metric", "").endswith("_acc"):
            c["effect"] = config.effect_acc
    return finding


def draws_text(study: Study) -> str:
    """A sentence for the Setting where a dataset gives each training seed its own draw."""
    drawn = [name for name in study.datasets
             if getattr(getattr(study.config.data, name, None), "data_seeds", False)]
    if not drawn:
        return ""
    return (f" Each seed trains on its own draw of the {' and '.join(drawn)} training data "
            f"(data_seeds); the validation and test points are one draw, shared by all.")


def write_study(study: Study, out: StudyOutput, analysis: Analysis, paths: Paths) -> None:
    """Every file of the study, each folder replaced whole, so that a table the study no
    longer makes does not linger."""
    meta = {
        "study": study.name, "order": study.order, "title": study.title, "question": study.question,
        "answer": list(study.answer),
        "setting": study.setting() + draws_text(study),
        "params": study.p.model_dump(mode="json"),
        "seeds": study.seeds,
        "tables": [{"name": k, "caption": c, "show": k not in analysis.hidden}
                   for k, (c, _) in analysis.tables.items()],
        "findings": [with_effects(to_json(f), study.config) for f in analysis.findings],
        "references": [r.to_dict() for r in analysis.references],
        "figures": [to_json(f) for f in analysis.figures],
        "spread": {k: (None if not np.isfinite(v) else float(v))
                   for k, v in analysis.spread.items()},
    }
    with atomic_dir(paths.results) as tmp:
        write_csv(tmp / "cells.csv", out.cells)
        if "points" in out.cells.attrs:  # each cell's value on every test point
            out.cells.attrs["points"].save(tmp / "points.npz")
        write_csv(tmp / "curves.csv", out.curves)
        for name, frame in out.tables.items():
            write_csv(tmp / f"{name}.csv", frame)
            if "points" in frame.attrs:  # a table whose rows were scored point by point
                frame.attrs["points"].save(tmp / f"{name}.points.npz")
        write_json(tmp / "analysis.json", meta)
    with atomic_dir(paths.tables) as tmp:
        for name, (_, frame) in analysis.tables.items():
            write_csv(tmp / f"{name}.csv", frame)
    with atomic_dir(paths.plots) as tmp:
        for name, frame in analysis.plots.items():
            write_csv(tmp / f"{name}.csv", frame)
    write_json(paths.metrics, analysis.metrics)


def image_rows(panel: str, pixels: np.ndarray) -> pd.DataFrame:
    """Rows of a figure of small images: panel (its row label), index, pixels p0..pK."""
    frame = pd.DataFrame(pixels, columns=[f"p{i}" for i in range(pixels.shape[1])])
    frame.insert(0, "index", range(len(pixels)))
    frame.insert(0, "panel", panel)
    return frame
