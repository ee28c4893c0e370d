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
from pipeline.engine.plan import cost, plan_groups
from pipeline.engine.types import EngineOptions, Job, Result, TrainData

Part = tuple[list[Job], TrainData]  # jobs and the data they train on
Done = Callable[[int, list[int], list[Result]], None]  # (part, job indices, their results)


def execute(parts: list[Part], device: torch.device, options: EngineOptions,
            done: Done) -> None:
    """Train every part's jobs, calling done(part, indices, results) as each group
    finishes. The groups of all parts are handed out together, the costliest first."""
    tasks = [(cost(jobs, g, len(data.x_train)), p, g) for p, (jobs, data) in enumerate(parts)
             for g in plan_groups(jobs, len(data.x_train), options)]
    tasks = [(p, g) for _, p, g in sorted(tasks, key=lambda t: -t[0])]  # stable
    total = sum(parts[p][0][g[0]].spec.epochs for p, g in tasks)
    disable = (not options.progress) if options.progress is not None else None
    with tqdm(total=total, desc=options.desc, unit="epoch", disable=disable,
              mininterval=1.0) as bar:
        if options.executor == "ray" and tasks:
            _on_ray(tasks, parts, device, options, done, bar)
        elif options.workers == 1 or len(tasks) <= 1 or device.type != "cpu":
            with one_thread():
                for p, g in tasks:
                    jobs, data = parts[p]
                    done(p, g, train_group([jobs[i] for i in g], data, device, bar))
        else:
            _on_pool(tasks, parts, device, options.workers, done, bar)


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


def _init_worker(datas: list[TrainData], device: torch.device) -> None:
    _WORKER.update(datas=datas, device=device)
    torch.set_num_threads(1)


def _run_group(part: int, group: list[Job]) -> list[Result]:
    return train_group(group, _WORKER["datas"][part], _WORKER["device"])


def _on_pool(tasks, parts: list[Part], device, workers, done: Done, bar) -> None:
    """Forked single-thread workers (2 processes x 1 thread beat 1 x 2 threads here)."""
    ctx = mp.get_context("fork")  # workers run one thread: no OpenMP after the fork
    datas = [data for _, data in parts]
    with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=ctx,
                             initializer=_init_worker, initargs=(datas, device)) as pool:
        futures = {pool.submit(_run_group, p, [parts[p][0][i] for i in g]): (p, g)
                   for p, g in tasks}
        for fut in as_completed(futures):
            p, g = futures[fut]
            done(p, g, fut.result())
            bar.update(parts[p][0][g[0]].spec.epochs)


def _ray_group(data: TrainData, device: torch.device, group: list[Job]) -> list[Result]:
    torch.set_num_threads(1)
    return train_group(group, data, device)


def _on_ray(tasks, parts: list[Part], device, options: EngineOptions, done: Done,
            bar) -> None:
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
    refs = [ray.put(data) for _, data in parts]
    pending = {task.remote(refs[p], device, [parts[p][0][i] for i in g]): (p, g)
               for p, g in tasks}
    while pending:
        (ready,), _ = ray.wait(list(pending), num_returns=1)
        p, g = pending.pop(ready)
        done(p, g, ray.get(ready))
        bar.update(parts[p][0][g[0]].spec.epochs)
