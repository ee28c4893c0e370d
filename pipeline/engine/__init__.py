"""Batched training engine: G small models of one shape trained as one.

Parameters are stacked along a leading model axis ([G, fan_in, fan_out]); every
per-model knob (seed, learning rate, weight decay, momentum, betas, dropout rate,
active inputs, training rows) is a tensor along that axis. Each model draws its
random numbers from its own generators, and every product is computed model by model
in reproducible BLAS, so a model's numbers do not depend on which other models share
its group, nor on its position there.

    types.py      TrainSpec, Job (and its given starting Weights), TrainData, Result,
                  EngineOptions
    models.py     Arch, the torch.nn-compatible init, the stacked forward pass
    convnet.py    ConvNet: small CNNs from a layer spec, each model's arithmetic its own
    optim.py      batched SGD / momentum / Nesterov / Adam / AdamW
    rng.py        per-model random streams
    loop.py       one group's training loop
    backprop.py   the loss and its gradients, written out by hand
    plan.py       groups sized by memory: which models train together
    executors.py  groups in this process, forked workers or Ray tasks
    cache.py      the cell cache, a wrapper around execution
    blas.py       MKL's reproducible mode
    malloc.py     freed memory kept for reuse (no page faults per step)
"""

from __future__ import annotations

import torch

from pipeline.engine.convnet import ConvNet
from pipeline.engine.malloc import keep_freed_memory
from pipeline.engine.models import ACTIVATIONS, INITS, Arch, forward, init_params, predict
from pipeline.engine.plan import MemoryBudgetError, plan_groups
from pipeline.engine.rng import ModelRng
from pipeline.engine.types import EngineOptions, Job, Result, TrainData, TrainSpec, Weights

keep_freed_memory()

__all__ = ["ACTIVATIONS", "INITS", "Arch", "ConvNet", "EngineOptions", "Job", "MemoryBudgetError",
           "ModelRng", "Result", "TrainData", "TrainSpec", "forward", "init_params",
           "Weights", "plan_groups", "predict", "train", "train_parts"]


def train(jobs: list[Job], data: TrainData, device: str | torch.device = "cpu",
          options: EngineOptions | None = None) -> list[Result]:
    """Train every job; jobs sharing a spec and row count train batched together.
    Returns one Result per job, in the order given."""
    return train_parts([(jobs, data)], device, options)[0]


def train_parts(parts: list[tuple[list[Job], TrainData]], device: str | torch.device = "cpu",
                options: EngineOptions | None = None) -> list[list[Result]]:
    """Train several parts, each its jobs on its own data (a study stage's datasets), as
    one run: the groups of every part share one pool of workers, the costliest first,
    so that no worker waits for the others between parts. The numbers are those of each
    part trained alone. Returns each part's Results, in the order given."""
    from pipeline.engine.executors import execute

    options = options or EngineOptions()
    device = torch.device(device)
    results: list[list[Result | None]] = [[None] * len(jobs) for jobs, _ in parts]
    todo: list[tuple[list[Job], TrainData]] = []
    where: list[tuple[int, list[int], list[str] | None]] = []  # per todo: part, indices, keys
    for p, (jobs, data) in enumerate(parts):
        keys, missing = None, list(range(len(jobs)))
        if options.cache is not None:
            keys, hits = options.cache.lookup(jobs, data, device)
            for i, hit in hits.items():
                results[p][i] = hit
            missing = [i for i in missing if i not in hits]
        if missing:
            todo.append(([jobs[i] for i in missing], data))
            where.append((p, missing, keys))

    def done(t: int, idx: list[int], group: list[Result]) -> None:
        p, missing, keys = where[t]
        for i, res in zip(idx, group):
            results[p][missing[i]] = res
            if keys is not None:
                options.cache.put(keys[missing[i]], res)  # stored as each group finishes

    if todo:
        execute(todo, device, options, done)
    return results  # type: ignore[return-value]
