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

from functools import partial

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
           "Weights", "plan_groups", "predict", "train"]


def train(jobs: list[Job], data: TrainData, device: str | torch.device = "cpu",
          options: EngineOptions | None = None) -> list[Result]:
    """Train every job; jobs sharing a spec and row count train batched together.
    Returns one Result per job, in the order given."""
    from pipeline.engine.executors import execute

    options = options or EngineOptions()
    device = torch.device(device)
    results: list[Result | None] = [None] * len(jobs)

    def done(idx: list[int], group: list[Result]) -> None:
        for i, res in zip(idx, group):
            results[i] = res

    run = partial(execute, data=data, device=device, options=options)
    if options.cache is not None:
        run = options.cache.wrap(run, data, device)
    run(jobs, done=done)
    return results  # type: ignore[return-value]
