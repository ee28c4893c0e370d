"""Which models train together: groups of one spec and row count, sized by memory.

A group's size changes no number (every model's arithmetic is its own), only speed and
memory. Each group is held under the memory budget (max_memory over the workers that
train at once) and under a cache-sized footprint per block of rows, where small groups
stream their activations through cache; then the costliest groups are split until no
group holds more than a worker's share of the work, and the groups are handed out the
costliest first (so that no long group starts last and leaves the other workers idle).
No group holds one model where its spec has more: a lone model trains beside a copy of
itself (loop.py), which doubles its work. A single model that cannot fit the budget is
refused before anything trains.
"""

from __future__ import annotations

import math
from collections import defaultdict

from pipeline.engine.backprop import BLOCK_ROWS
from pipeline.engine.types import EngineOptions, Job

FLOAT = 4  # bytes: every tensor is float32
CACHE_BYTES = 8 * 2 ** 20  # one block's activations of a whole group, about
# a step's cost in ns on one core, roughly (measured on the default grids): a fixed part
# per step and per layer, and per model a fixed part, its multiply-adds and the elements
# its elementwise ops touch (activations and parameters)
STEP_NS, LAYER_NS, MODEL_NS, MAC_NS, ELEMENT_NS = 200_000, 100_000, 3_000, 0.2, 3.0
OPTIMIZER_STATES = {"sgd": 0, "momentum": 1, "nesterov": 1, "adam": 2, "adamw": 2}


class MemoryBudgetError(ValueError):
    """One model needs more memory than the budget allows."""

    def __init__(self, job: Job, need: int, budget: int):
        self.job, self.need, self.budget = job, need, budget
        super().__init__(f"one model of {job.spec.arch.sizes} needs {gib(need)} to train but "
                         f"the memory budget per group is {gib(budget)}")


def gib(n: float) -> str:
    return f"{n / 2 ** 30:.2f} GiB" if n >= 2 ** 28 else f"{n / 2 ** 20:.1f} MiB"


def block_bytes(job: Job, n_rows: int) -> int:
    """One model's activations for one block of rows: inputs, and for every layer its
    pre-activation, activation, dropout mask and gradient."""
    arch = job.spec.arch
    rows = min(job.spec.batch_size or n_rows, n_rows, BLOCK_ROWS)
    return rows * (arch.sizes[0] + 4 * arch.activations()) * FLOAT


def model_bytes(job: Job, n_rows: int) -> int:
    """One model's training memory: parameters, gradients (two copies while blocks add
    up), optimizer state, and a block of activations."""
    arch = job.spec.arch
    states = OPTIMIZER_STATES.get(job.spec.optimizer, 2)
    return arch.n_params() * FLOAT * (3 + states) + block_bytes(job, n_rows)


def budget(options: EngineOptions) -> int:
    """Bytes one group may use: max_memory shared by the workers that run at once."""
    return int(options.max_memory / max(1, options.workers))


def plan_groups(jobs: list[Job], n_rows: int, options: EngineOptions) -> list[list[int]]:
    """Job indices per group. n_rows: the training rows of the data (a job's `rows`,
    when set, count instead)."""
    by_shape: dict[tuple, list[int]] = defaultdict(list)
    for i, job in enumerate(jobs):
        by_shape[(job.spec, None if job.rows is None else len(job.rows))].append(i)
    per_group = budget(options)
    groups = []
    for (_, rows), members in by_shape.items():
        job, n = jobs[members[0]], rows or n_rows
        need = model_bytes(job, n)
        if need > per_group:
            raise MemoryBudgetError(job, need, per_group)
        fits = per_group // need
        size = min(fits, max(2, CACHE_BYTES // block_bytes(job, n)))
        if options.group_size:
            size = min(size, options.group_size)
        k = math.ceil(len(members) / size)  # near-equal parts of at most `size`
        if 1 < len(members) < 2 * k and fits >= 3 and not options.group_size:
            k = len(members) // 2  # parts of 2 and 3: no lone model trained as a pair
        groups += [members[i * len(members) // k:(i + 1) * len(members) // k]
                   for i in range(k)]
    groups = balance(groups, jobs, n_rows, options.workers)
    return sorted(groups, key=lambda g: -cost(jobs, g, n_rows))  # stable: ties keep order


def cost(jobs: list[Job], group: list[int], n_rows: int) -> float:
    """A group's training time, estimated in ns (a lone model trains as a pair): small
    models are bound by each step's fixed costs, wide ones by elementwise work, large
    ones by their matrix products."""
    job = jobs[group[0]]
    arch = job.spec.arch
    sizes = arch.sizes
    rows = len(job.rows) if job.rows is not None else n_rows
    batch = min(job.spec.batch_size or rows, rows)
    steps = job.spec.epochs * math.ceil(rows / batch)
    macs = batch * arch.macs()
    elements = batch * arch.activations() + arch.n_params()
    per_model = MODEL_NS + MAC_NS * macs + ELEMENT_NS * elements
    return steps * (STEP_NS + LAYER_NS * (len(sizes) - 1) + max(2, len(group)) * per_model)


def balance(groups: list[list[int]], jobs: list[Job], n_rows: int,
            workers: int) -> list[list[int]]:
    """Split the costliest group in two while it holds more than a worker's fair share of
    the work (and at least four models, so that no half trains alone). The total is
    counted again after each split: both halves pay the steps' fixed cost."""
    if workers < 2:
        return groups
    while True:
        total = sum(cost(jobs, g, n_rows) for g in groups)
        largest = max(groups, key=lambda g: cost(jobs, g, n_rows))
        if len(largest) < 4 or cost(jobs, largest, n_rows) <= total / workers:
            return groups
        groups.remove(largest)
        half = len(largest) // 2
        groups += [largest[:half], largest[half:]]
