"""The cell cache: seconds of a cold run, and of a re-run after one grid value is added.

    python -m benchmarks.cell_cache

The spiral study at its default setting over two widths, then over three: the re-run
trains only the new width's cells, and gives the same numbers as a cold run of all three.
"""

from __future__ import annotations

import tempfile
import time

from pipeline.config import Config
from pipeline.datasets import GENERATORS
from pipeline.studies import spiral


def _run(widths: list[int], cache: str | None) -> tuple[float, object]:
    config = Config().model_copy(update={"cell_cache": cache, "seeds": [0, 1]})
    config = config.model_copy(update={"spiral": config.spiral.model_copy(
        update={"widths": widths, "activations": ["relu", "tanh"], "optimizers": ["adam"]})})
    data = {"spiral": GENERATORS["spiral"](config.data.spiral)}
    start = time.perf_counter()
    grid = spiral.cells(config)
    out = spiral.run(config, grid, data)
    return time.perf_counter() - start, out


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        cold, _ = _run([32, 64], cache)
        grown, out = _run([32, 64, 128], cache)
    full, ref = _run([32, 64, 128], None)
    same = out.cells.equals(ref.cells) and out.curves.equals(ref.curves)
    print(f"cold run, widths [32, 64]:                 {cold:6.1f} s")
    print(f"re-run, widths [32, 64, 128], cache warm:  {grown:6.1f} s "
          f"({int(out.timing['cached'].sum())} of {len(out.cells)} cells from the cache)")
    print(f"cold run, widths [32, 64, 128], no cache:  {full:6.1f} s")
    print(f"re-run / cold run of the same grid: {grown / full:.2f}; identical numbers: {same}")


if __name__ == "__main__":
    main()
