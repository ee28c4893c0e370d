"""The training loop: one batched step trains every model of a group.

`train(jobs, data)` splits jobs into groups that can share a step (same TrainSpec and
number of training rows), trains each group with stacked parameters, and returns one
Result per job in the order given.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from pipeline.engine.models import Arch, forward, init_params
from pipeline.engine.optim import BatchedOptimizer
from pipeline.engine.rng import ModelRng

LOSSES = ("mse", "half_mse", "cross_entropy")


@dataclass(frozen=True)
class TrainSpec:
    """What every model of a group shares."""

    arch: Arch
    optimizer: str = "sgd"  # sgd | momentum | nesterov | adam | adamw
    loss: str = "cross_entropy"  # mse | half_mse (d2l's squared_loss) | cross_entropy
    epochs: int = 1
    batch_size: int | None = None  # None: full batch
    log_every: int = 1
    init_std: float | None = None  # None: torch.nn.Linear's default init
    # diverged: a loss that is NaN/inf or, when set, above diverge_factor x the model's
    # first loss (cross-entropy blows up to large finite values rather than to inf)
    diverge_factor: float | None = None

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; expected one of {LOSSES}")

    @property
    def classification(self) -> bool:
        return self.loss == "cross_entropy"


@dataclass(frozen=True)
class Job:
    """One model: its spec and its own knobs."""

    spec: TrainSpec
    seed: int
    lr: float
    weight_decay: float = 0.0  # optimizer decay on weights (L2 for SGD/Adam, decoupled for AdamW)
    l2_penalty: float = 0.0  # lambda * ||w||^2 / 2 added to the loss
    momentum: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    dropout: tuple[float, ...] = ()  # one rate per hidden layer; () means none
    active_inputs: int | None = None  # train on the first k input features only
    rows: tuple[int, ...] | None = None  # training rows (a fold); None: all


@dataclass
class TrainData:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], device="cpu") -> TrainData:
        return cls(*(torch.as_tensor(arrays[k], device=device)
                     for k in ("x_train", "y_train", "x_test", "y_test")))


@dataclass
class Result:
    job: Job
    metrics: dict[str, float]  # final train/test loss (and accuracy)
    curve: list[dict[str, float]]  # one row per logged epoch
    params: list[torch.Tensor]  # [W0 (in, out), b0 (out,), ...] on the CPU
    diverged: bool
    diverged_epoch: int | None
    seconds: float  # the group's wall time divided by its size
    extra: dict = field(default_factory=dict)


def per_model_loss(kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """out (G, N, o); y shared (N, ...) or per model (G, N, ...). Returns (G,)."""
    if kind == "cross_entropy":
        logp = F.log_softmax(out, dim=-1)  # (G, N, C)
        y = y.expand(out.shape[:2])  # (G, N)
        return -logp.gather(2, y.unsqueeze(-1)).squeeze(-1).mean(dim=1)
    sq = (out - y) ** 2  # (G, N, 1)
    if kind == "half_mse":
        sq = sq / 2
    return sq.mean(dim=(1, 2))


def per_model_accuracy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (out.argmax(dim=-1) == y).float().mean(dim=1)  # (G,)


def plan_chunks(jobs: list[Job], group_size: int | None) -> list[list[int]]:
    """Job indices per batched chunk: equal spec and row count, at most group_size each."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, job in enumerate(jobs):
        groups[(job.spec, None if job.rows is None else len(job.rows))].append(i)
    chunks = []
    for members in groups.values():
        size = group_size or len(members)
        chunks += [members[k:k + size] for k in range(0, len(members), size)]
    return chunks


def train(jobs: list[Job], data: TrainData, device: str | torch.device = "cpu",
          group_size: int | None = None, desc: str = "train",
          progress: bool | None = None, workers: int = 1, cache=None,
          executor: str = "local", ray_address: str | None = None,
          ray_gpus_per_task: float = 0.0) -> list[Result]:
    """Train every job; jobs sharing a spec and row count train batched together.

    Several chunks on the CPU train in a pool of `workers` forked processes of one
    thread each (2 processes x 1 thread beat 1 process x 2 threads here); a single chunk
    trains in this process on all threads. tests/test_engine.py checks that both give
    identical numbers. With a CellCache, cells found there are not trained again, and
    each chunk's results are stored as soon as it finishes. executor "ray" fans the
    chunks out as Ray tasks instead (see _train_on_ray), with the same numbers.
    """
    device = torch.device(device)
    workers = 1 if device.type != "cpu" else max(1, workers)
    results: list[Result | None] = [None] * len(jobs)
    keys: list[str] = []
    if cache is not None:
        from pipeline.engine.cache import data_digest

        digest = data_digest(data)
        keys = [cache.key(job, digest, device) for job in jobs]
        for i, (job, key) in enumerate(zip(jobs, keys)):
            results[i] = cache.get(key, job)
    todo = [i for i, r in enumerate(results) if r is None]
    chunks = [[todo[k] for k in c] for c in plan_chunks([jobs[i] for i in todo], group_size)]

    def finish(chunk: list[int], chunk_results: list[Result]) -> None:
        for i, res in zip(chunk, chunk_results):
            results[i] = res
            if cache is not None:
                cache.put(keys[i], res)

    total = sum(jobs[c[0]].spec.epochs for c in chunks)
    disable = (not progress) if progress is not None else None
    with tqdm(total=total, desc=desc, unit="epoch", disable=disable, mininterval=1.0) as bar:
        if executor == "ray" and chunks:
            _train_on_ray(chunks, jobs, data, device, finish, bar, workers, ray_address,
                          ray_gpus_per_task)
        elif workers == 1 or len(chunks) <= 1:
            _WORKER.update(data=data, device=device)
            try:
                for c in chunks:
                    finish(c, _run_chunk([jobs[i] for i in c], bar))
            finally:
                _WORKER.clear()
        else:
            ctx = mp.get_context("fork")  # workers run one thread: no OpenMP after the fork
            with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=ctx,
                                     initializer=_init_worker,
                                     initargs=(data, device, 1)) as pool:
                futures = {pool.submit(_run_chunk, [jobs[i] for i in c]): c for c in chunks}
                for fut in as_completed(futures):
                    chunk = futures[fut]
                    finish(chunk, fut.result())
                    bar.update(jobs[chunk[0]].spec.epochs)
    return results  # type: ignore[return-value]


def _train_on_ray(chunks, jobs, data, device, finish, bar, workers, address, gpus) -> None:
    """One Ray task per chunk. address None starts a local Ray with `workers` CPUs on the
    loopback interface; otherwise joins the cluster at that address."""
    import ray

    if not ray.is_initialized():
        if address is None:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     _node_ip_address="127.0.0.1")
        else:
            ray.init(address=address, log_to_driver=False)
    task = ray.remote(num_cpus=1, num_gpus=gpus if device.type == "cuda" else 0)(_ray_chunk)
    data_ref = ray.put(data)
    pending = {task.remote(data_ref, device, [jobs[i] for i in c]): c for c in chunks}
    while pending:
        (done,), _ = ray.wait(list(pending), num_returns=1)
        chunk = pending.pop(done)
        finish(chunk, ray.get(done))
        bar.update(jobs[chunk[0]].spec.epochs)


def _ray_chunk(data: TrainData, device: torch.device, group: list[Job]) -> list[Result]:
    torch.set_num_threads(1)
    return _train_group(group, data, device, None)


_WORKER: dict = {}


def _init_worker(data: TrainData, device: torch.device, threads: int) -> None:
    _WORKER.update(data=data, device=device)
    torch.set_num_threads(threads)


def _run_chunk(group: list[Job], bar=None) -> list[Result]:
    return _train_group(group, _WORKER["data"], _WORKER["device"], bar)


def _train_group(jobs: list[Job], data: TrainData, device: torch.device, bar) -> list[Result]:
    start = time.perf_counter()
    torch.set_flush_denormal(True)  # denormals late in training slow CPU kernels tenfold
    spec, arch = jobs[0].spec, jobs[0].spec.arch
    G = len(jobs)
    rngs = [ModelRng(j.seed) for j in jobs]
    singles = [init_params(arch, r, spec.init_std, j.active_inputs) for r, j in zip(rngs, jobs)]
    params = []
    for k in range(len(singles[0])):
        p = torch.stack([s[k] for s in singles]).to(device)  # W: (G, in, out); b: (G, out)
        params.append((p if p.dim() == 3 else p.unsqueeze(1)).requires_grad_())  # b: (G, 1, out)
    is_weight = [k % 2 == 0 or not arch.bias for k in range(len(params))]
    opt = BatchedOptimizer(
        params, is_weight, spec.optimizer,
        lr=[j.lr for j in jobs], weight_decay=[j.weight_decay for j in jobs],
        momentum=[j.momentum for j in jobs], betas=[j.betas for j in jobs])
    l2 = torch.tensor([j.l2_penalty for j in jobs], device=device)
    use_l2 = bool((l2 > 0).any())

    n_in = arch.sizes[0]
    input_mask = None
    if any(j.active_inputs is not None for j in jobs):
        k = torch.tensor([j.active_inputs or n_in for j in jobs], device=device)
        input_mask = (torch.arange(n_in, device=device) < k[:, None]).float()
        input_mask = input_mask.unsqueeze(1)  # (G, 1, in)
    rows = None
    if jobs[0].rows is not None:
        rows = torch.tensor([j.rows for j in jobs], device=device)  # (G, n)
    n = rows.shape[1] if rows is not None else len(data.x_train)
    batch = min(spec.batch_size or n, n)

    hidden = arch.sizes[1:-1]
    rates = [tuple(j.dropout) or (0.0,) * len(hidden) for j in jobs]
    for j, r in zip(jobs, rates):
        if len(r) != len(hidden):
            raise ValueError(f"dropout {j.dropout} needs one rate per hidden layer {hidden}")
    use_dropout = any(p > 0 for r in rates for p in r)

    def inputs(idx: torch.Tensor | None):
        """Training inputs and targets for batch idx (G, B), or for all rows."""
        if idx is None and rows is None:
            x, y = data.x_train, data.y_train  # (N, in), shared by all models
        else:
            r = rows if idx is None else (idx if rows is None else rows.gather(1, idx))
            x, y = data.x_train[r], data.y_train[r]  # (G, B, in), (G, B, ...)
        return (x if input_mask is None else x * input_mask), y

    def dropout_masks(b: int):
        return [torch.stack([rng.keep_mask((b, width), r[layer]) for rng, r in zip(rngs, rates)])
                .to(device) for layer, width in enumerate(hidden)]  # each (G, B, width)

    def evaluate() -> dict[str, torch.Tensor]:
        with torch.no_grad():
            x, y = inputs(None)
            out = forward(arch, params, x)
            xt = data.x_test if input_mask is None else data.x_test * input_mask
            out_t = forward(arch, params, xt)
            m = {"train_loss": per_model_loss(spec.loss, out, y),
                 "test_loss": per_model_loss(spec.loss, out_t, data.y_test)}
            if spec.classification:
                m["train_acc"] = per_model_accuracy(out, y)
                m["test_acc"] = per_model_accuracy(out_t, data.y_test)
            return m

    active = torch.ones(G, dtype=torch.bool, device=device)
    all_active = True
    first_loss = None
    diverged_epoch: list[int | None] = [None] * G
    curves: list[list[dict]] = [[] for _ in range(G)]
    for epoch in range(1, spec.epochs + 1):
        if batch >= n:
            batches = [None]
        else:
            perm = torch.stack([r.permutation(n) for r in rngs]).to(device)  # (G, n)
            batches = [perm[:, s:s + batch] for s in range(0, n, batch)]
        for idx in batches:
            x, y = inputs(idx)
            masks = dropout_masks(x.shape[-2]) if use_dropout else None
            loss = per_model_loss(spec.loss, forward(arch, params, x, masks), y)  # (G,)
            if use_l2:
                loss = loss + l2 * sum((w ** 2).sum(dim=(1, 2)) for w, isw
                                       in zip(params, is_weight) if isw) / 2
            finite = torch.isfinite(loss)
            if first_loss is None:
                first_loss = torch.where(finite, loss.detach(), torch.inf)
            if spec.diverge_factor is not None:
                finite &= loss.detach() <= spec.diverge_factor * first_loss
            if not bool(finite[active].all()):
                for g in torch.nonzero(active & ~finite).flatten().tolist():
                    diverged_epoch[g] = epoch
                active &= finite
                all_active = False
            grads = torch.autograd.grad(torch.where(active, loss, 0.0).sum(), params)
            with torch.no_grad():
                opt.step(grads, None if all_active else active)
        if epoch % spec.log_every == 0 or epoch == spec.epochs:
            m = {k: v.cpu().tolist() for k, v in evaluate().items()}
            for g in range(G):
                row = {"epoch": epoch, **{k: v[g] for k, v in m.items()}}
                if diverged_epoch[g] is not None or not np.isfinite(row["train_loss"]):
                    row = {k: (v if k == "epoch" else float("nan")) for k, v in row.items()}
                    if diverged_epoch[g] is None:
                        diverged_epoch[g] = epoch
                curves[g].append(row)
        if bar is not None:
            bar.update(1)
    seconds = (time.perf_counter() - start) / G
    results = []
    for g, job in enumerate(jobs):
        final = {k: v for k, v in curves[g][-1].items() if k != "epoch"}
        own = [(p[g] if isw else p[g, 0]).detach().cpu() for p, isw in zip(params, is_weight)]
        results.append(Result(job, final, curves[g], own, diverged_epoch[g] is not None,
                              diverged_epoch[g], seconds))
    return results
