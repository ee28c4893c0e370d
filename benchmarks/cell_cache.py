"""The cell cache: seconds of a cold run, and of a re-run after one grid value is added.

    python -m benchmarks.cell_cache

Spiral MLPs (the default data, 2-100-3, Adam, 1000 full-batch steps, 2 activations x 2
seeds) over two learning rates, then over three: the re-run trains only the new
learning rate's cells, and gives the same numbers as a cold run of all three.
"""

from __future__ import annotations

import tempfile
import time

import torch

from pipeline.config import Config
from pipeline.datasets import generate
from pipeline.engine import Arch, EngineOptions, Job, TrainData, TrainSpec, train
from pipeline.engine.cache import CellCache


def _jobs(lrs: list[float]) -> list[Job]:
    return [Job(TrainSpec(Arch((2, 100, 3), act), "adam", epochs=1000, log_every=100),
                seed=s, lr=lr) for act in ("relu", "tanh") for lr in lrs for s in (0, 1)]


def _run(lrs: list[float], data: TrainData, cache: str | None):
    options = EngineOptions(workers=2, cache=CellCache(cache) if cache else None)
    start = time.perf_counter()
    results = train(_jobs(lrs), data, options=options)
    return time.perf_counter() - start, results


def main() -> None:
    data = TrainData.from_arrays(generate("spiral", Config().data.spiral))
    with tempfile.TemporaryDirectory() as cache:
        cold, _ = _run([0.001, 0.01], data, cache)
        grown, warm = _run([0.001, 0.01, 0.1], data, cache)
    full, ref = _run([0.001, 0.01, 0.1], data, None)
    same = all(a.curve == b.curve and all(torch.equal(p, q) for p, q in zip(a.params, b.params))
               for a, b in zip(warm, ref))
    hits = sum(bool(r.extra.get("cached")) for r in warm)
    print(f"cold run, 2 learning rates:                 {cold:6.1f} s")
    print(f"re-run, 3 learning rates, cache warm:       {grown:6.1f} s "
          f"({hits} of {len(warm)} cells from the cache)")
    print(f"cold run, 3 learning rates, no cache:       {full:6.1f} s")
    print(f"re-run / cold run of the same grid: {grown / full:.2f}; identical numbers: {same}")


if __name__ == "__main__":
    main()
