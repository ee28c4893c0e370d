"""Where groups train: in this process, in a pool of forked workers, or as Ray tasks.

Every executor gives the same numbers: a group's arithmetic does not depend on the
process, the thread count or the order in which groups finish.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager

import torch
from tqdm.auto import tqdm

from pipeline.engine.loop import train_group
from pipeline.engine.plan import plan_groups
from pipeline.engine.types import EngineOptions, Job, Result, TrainData

Done = Callable[[list[int], list[Result]], None]  # (job indices, their results)


def execute(jobs: list[Job], data: TrainData, device: torch.device,
            options: EngineOptions, done: Done) -> None:
    """Train every job, calling done(indices, results) as each group finishes."""
    groups = plan_groups(jobs, len(data.x_train), options)
    total = sum(jobs[g[0]].spec.epochs for g in groups)
    disable = (not options.progress) if options.progress is not None else None
    with tqdm(total=total, desc=options.desc, unit="epoch", disable=disable,
              mininterval=1.0) as bar:
        if options.executor == "ray" and groups:
            _on_ray(groups, jobs, data, device, options, done, bar)
        elif options.workers == 1 or len(groups) <= 1 or device.type != "cpu":
            with one_thread():
                for g in groups:
                    done(g, train_group([jobs[i] for i in g], data, device, bar))
        else:
            _on_pool(groups, jobs, data, device, options.workers, done, bar)


@contextmanager
def one_thread():
    """Train on one thread, as the workers do: a reduction split over threads sums in
    another order, so the thread count would change the numbers."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


_WORKER: dict = {}


def _init_worker(data: TrainData, device: torch.device) -> None:
    _WORKER.update(data=data, device=device)
    torch.set_num_threads(1)


def _run_group(group: list[Job]) -> list[Result]:
    return train_group(group, _WORKER["data"], _WORKER["device"])


def _on_pool(groups, jobs, data, device, workers, done: Done, bar) -> None:
    """Forked single-thread workers (2 processes x 1 thread beat 1 x 2 threads here)."""
    ctx = mp.get_context("fork")  # workers run one thread: no OpenMP after the fork
    with ProcessPoolExecutor(min(workers, len(groups)), mp_context=ctx,
                             initializer=_init_worker, initargs=(data, device)) as pool:
        futures = {pool.submit(_run_group, [jobs[i] for i in g]): g for g in groups}
        for fut in as_completed(futures):
            g = futures[fut]
            done(g, fut.result())
            bar.update(jobs[g[0]].spec.epochs)


def _ray_group(data: TrainData, device: torch.device, group: list[Job]) -> list[Result]:
    torch.set_num_threads(1)
    return train_group(group, data, device)


def _on_ray(groups, jobs, data, device, options: EngineOptions, done: Done, bar) -> None:
    """One Ray task per group. ray_address None starts a local Ray with `workers` CPUs
    on the loopback interface; otherwise joins the cluster at that address."""
    import ray

    if not ray.is_initialized():
        if options.ray_address is None:
            ray.init(num_cpus=options.workers, include_dashboard=False, log_to_driver=False,
                     _node_ip_address="127.0.0.1")
        else:
            ray.init(address=options.ray_address, log_to_driver=False)
    gpus = options.ray_gpus_per_task if device.type == "cuda" else 0
    task = ray.remote(num_cpus=1, num_gpus=gpus)(_ray_group)
    data_ref = ray.put(data)
    pending = {task.remote(data_ref, device, [jobs[i] for i in g]): g for g in groups}
    while pending:
        (ready,), _ = ray.wait(list(pending), num_returns=1)
        g = pending.pop(ready)
        done(g, ray.get(ready))
        bar.update(jobs[g[0]].spec.epochs)
