"""One group's training loop: G models of one spec trained as one, read top to bottom.

    for each epoch:
        for each minibatch (each model its own order):
            inputs -> shifted images (a CNN's augmentation) -> dropout masks
            -> loss and gradients (+ l2_penalty) -> divergence check -> optimizer step
        every log_every epochs: evaluate on the training rows, validation and test data
            (or, with splits_at_end, validation and test once, where a model ends)

The loss and its gradients are written out by hand for MLPs (backprop.py) and taken
model by model from autograd for CNNs (convnet.py); the tests prove both equal to
torch.nn + autograd + torch.optim model by model.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from pipeline.engine import backprop, blas, convnet, stopping
from pipeline.engine.convnet import ConvNet
from pipeline.engine.models import Arch, init_params
from pipeline.engine.optim import BatchedOptimizer
from pipeline.engine.rng import ModelRng
from pipeline.engine.types import Job, Result, TrainData


def l2_penalty(weights: list[torch.Tensor], lam: torch.Tensor) -> torch.Tensor:
    """lambda * ||w||^2 / 2 per model (d2l's l2_penalty), over the weights, not biases."""
    return lam * sum((w * w).sum(dim=(1, 2)) for w in weights) / 2


def l2_penalty_grads(weights: list[torch.Tensor], lam: torch.Tensor) -> list[torch.Tensor]:
    """Its gradient: lambda * w."""
    return [lam.view(-1, 1, 1) * w for w in weights]


def stack_params(jobs: list[Job], rngs: list[ModelRng], device) -> list[torch.Tensor]:
    """Every model's own init, stacked: W (G, in, out), b (G, 1, out)."""
    spec = jobs[0].spec
    draw = convnet.init_params if isinstance(spec.arch, ConvNet) else init_params
    singles = [draw(spec.arch, r.init, spec.init, spec.init_scale, j.active_inputs)
               if j.start is None else given(spec.arch, j.start) for r, j in zip(rngs, jobs)]
    params = []
    for k in range(len(singles[0])):
        p = torch.stack([s[k] for s in singles]).to(device)
        params.append(p if p.dim() == 3 else p.unsqueeze(1))
    return params


def given(arch: Arch, start) -> list[torch.Tensor]:
    """A job's given starting parameters, checked against its architecture's layout."""
    params = start.tensors()
    draw = convnet.init_params if isinstance(arch, ConvNet) else init_params
    shapes = [tuple(p.shape) for p in draw(arch, torch.Generator().manual_seed(0))]
    if [tuple(p.shape) for p in params] != shapes:
        raise ValueError(f"the given weights have shapes {[tuple(p.shape) for p in params]}; "
                         f"the architecture {arch.sizes} needs {shapes}")
    return params


class Group:
    """The state of one group: stacked parameters, optimizer, streams, inputs, log."""

    def __init__(self, jobs: list[Job], data: TrainData, device: torch.device):
        self.jobs, self.data, self.device = jobs, data, device
        self.spec = spec = jobs[0].spec
        self.arch: Arch | ConvNet = spec.arch
        # the loss and gradients: written out by hand for MLPs, model by model for CNNs
        self.net = convnet if isinstance(self.arch, ConvNet) else backprop
        self.G = len(jobs)
        self.rngs = [ModelRng(j.seed) for j in jobs]
        self.params = stack_params(jobs, self.rngs, device)
        self.is_weight = self.arch.is_weight()
        self.opt = BatchedOptimizer(
            self.params, [w or spec.decay_bias for w in self.is_weight], spec.optimizer,
            lr=[j.lr for j in jobs], weight_decay=[j.weight_decay for j in jobs],
            momentum=[j.momentum for j in jobs], betas=[j.betas for j in jobs])
        self.lam = torch.tensor([j.l2_penalty for j in jobs], device=device)
        self.use_l2 = bool((self.lam > 0).any())
        self.input_mask = self._input_mask()
        self.rows = (torch.tensor([j.rows for j in jobs], device=device)
                     if jobs[0].rows is not None else None)  # (G, n)
        self.n = self.rows.shape[1] if self.rows is not None else len(data.x_train)
        self.batch = min(spec.batch_size or self.n, self.n)
        self.rates = self._dropout_rates()
        self.any_dropout = any(p > 0 for r in self.rates for p in r)
        # per hidden layer, (G, 1, 1): the rate, and 1 - rate in float32 (as the scalar
        # 1 - p is when a float32 tensor is divided by it)
        self.drop_rate = [torch.tensor([r[k] for r in self.rates]).view(-1, 1, 1)
                          for k in range(len(self.arch.dropout_widths()))]
        self.keep_rate = [torch.tensor([1.0 - r[k] for r in self.rates]).view(-1, 1, 1)
                          for k in range(len(self.arch.dropout_widths()))]
        self.active = torch.ones(self.G, dtype=torch.bool, device=device)
        self.frozen: set[int] = set()  # the models `active` excludes, kept on the host
        self.all_active = True
        self.first_loss: torch.Tensor | None = None
        self.diverged_epoch: list[int | None] = [None] * self.G
        self.stopped_epoch: list[int | None] = [None] * self.G
        self.curves: list[list[dict]] = [[] for _ in range(self.G)]
        self._fixed: dict[str, tuple] = {}

    def _input_mask(self) -> torch.Tensor | None:
        n_in = self.arch.sizes[0]
        if all(j.active_inputs is None for j in self.jobs):
            return None
        k = torch.tensor([j.active_inputs or n_in for j in self.jobs], device=self.device)
        return (torch.arange(n_in, device=self.device) < k[:, None]).float().unsqueeze(1)

    def _dropout_rates(self) -> list[tuple[float, ...]]:
        hidden = self.arch.dropout_widths()
        rates = [tuple(j.dropout) or (0.0,) * len(hidden) for j in self.jobs]
        for j, r in zip(self.jobs, rates):
            if len(r) != len(hidden):
                raise ValueError(f"dropout {j.dropout} needs one rate per hidden layer "
                                 f"(or dropout layer) {hidden}")
        return rates

    # ---------------------------------------------------------------- the steps

    def batches(self) -> list[torch.Tensor | None]:
        """This epoch's minibatches: (G, B) row indices, each model its own order."""
        if self.batch >= self.n:
            return [None]
        perm = torch.stack([r.permutation(self.n) for r in self.rngs]).to(self.device)
        return [perm[:, s:s + self.batch] for s in range(0, self.n, self.batch)]

    def inputs(self, idx: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training inputs and targets of batch idx (G, B), or of all training rows."""
        if idx is None and self.rows is None:
            x, y = self.data.x_train, self.data.y_train  # (N, in), shared by all models
        else:
            r = self.rows if idx is None else (idx if self.rows is None
                                               else self.rows.gather(1, idx))
            x, y = self.data.x_train[r], self.data.y_train[r]  # (G, B, in), (G, B, ...)
        return self.masked(x), y

    def rows_of(self, idx: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, list | None]:
        """Inputs, targets and (for the full batch, built once) blocks of batch idx."""
        if idx is None:
            return self.fixed("train")
        return (*self.inputs(idx), None)

    def fixed(self, name: str) -> tuple[torch.Tensor, torch.Tensor, list]:
        """Rows that never change, with their blocks, built on first use: "train" (every
        training row) or an evaluation split."""
        if name not in self._fixed:
            if name == "train":
                x, y = self.inputs(None)
            else:
                x, y = self.data.splits()[name]
                x = self.masked(x)
            self._fixed[name] = (x, y, self.net.blocks(x, y, self.G))
        return self._fixed[name]

    def augmented(self, x: torch.Tensor, y: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """With spec.shift: each model's training images (shared (N, C, H, W) or its own
        (G, B, C, H, W)) moved by shifts drawn from its own stream, as (G, B, C, H, W),
        with their targets per model too."""
        most = self.spec.shift
        if not most:
            return x, y
        if x.dim() == 4:  # the full batch, shared: each model now gets its own copy
            x, y = x.expand(self.G, *x.shape), y.expand(self.G, *y.shape)
        # every model draws (its stream moves on as it would in any group); a frozen
        # model's images are not moved, as it no longer trains on them
        draws = [r.shifts(x.shape[1], most) for r in self.rngs]
        return torch.stack([x[g] if g in self.frozen else
                            convnet.shift_images(x[g], d, most)
                            for g, d in enumerate(draws)]), y

    def masked(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.input_mask is None else x * self.input_mask

    def row_count(self, x: torch.Tensor) -> int:
        """The rows of inputs x: vectors (.., N, in) for an MLP, images (.., N, C, H, W)
        for a CNN."""
        return x.shape[-4] if self.net is convnet else x.shape[-2]

    def dropout_masks(self, rows: int) -> list[torch.Tensor] | None:
        """Inverted dropout: one (G, rows, width) mask per hidden layer, kept units
        scaled by 1 / (1 - p); each model draws from its own stream."""
        if not self.any_dropout:
            return None
        masks = []
        for layer, width in enumerate(self.arch.dropout_widths()):
            draws = torch.empty(self.G, rows, width)
            for g, (rng, r) in enumerate(zip(self.rngs, self.rates)):
                rng.uniform(draws[g], r[layer])
            keep = draws.ge_(self.drop_rate[layer]).div_(self.keep_rate[layer])
            masks.append(keep.to(self.device))
        return masks

    def loss_and_grads(self, x, y, masks, parts=None
                       ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Per-model loss (G,) and the gradients of every stacked parameter."""
        training = None if self.all_active else \
            [g for g in range(self.G) if g not in self.frozen]  # no device read per step
        loss, grads = self.net.loss_and_grads(self.arch, self.params, self.spec.loss, x, y,
                                              masks, parts, models=training)
        if self.use_l2:
            k = [i for i, isw in enumerate(self.is_weight) if isw]
            weights = [self.params[i] for i in k]
            loss = loss + l2_penalty(weights, self.lam)
            for i, g in zip(k, l2_penalty_grads(weights, self.lam)):
                grads[i] = grads[i] + g
        return loss, grads

    def check_divergence(self, loss: torch.Tensor, epoch: int) -> None:
        """Freeze every model whose loss is NaN/inf (or beyond diverge_factor x its first
        loss); the rest of the group trains on unchanged."""
        value = loss
        finite = torch.isfinite(value)
        if self.first_loss is None:
            self.first_loss = torch.where(finite, value, torch.inf)
        if self.spec.diverge_factor is not None:
            finite &= value <= self.spec.diverge_factor * self.first_loss
        if not bool(finite[self.active].all()):
            for g in torch.nonzero(self.active & ~finite).flatten().tolist():
                self.diverged_epoch[g] = epoch
                self.frozen.add(g)
            self.active &= finite
            self.all_active = False

    def check_stopping(self, epoch: int) -> None:
        """Freeze every model that has converged (spec.stop_tol, stopping.settled on its
        own curve) or fits its training rows (spec.stop_below); it logs no more, so its
        curve ends where it stopped, whatever group it trains in."""
        tol, below = self.spec.stop_tol, self.spec.stop_below
        if tol is None and below is None:
            return
        span = stopping.window(self.spec.epochs)
        for g in range(self.G):
            if self.stopped_epoch[g] is not None or self.diverged_epoch[g] is not None:
                continue
            if (below is not None and self.curves[g][-1]["train_loss"] <= below) or \
                    (tol is not None and stopping.settled(self.curves[g], span, tol) == 1.0):
                self.stopped_epoch[g] = epoch
                self.active[g] = False
                self.frozen.add(g)
                self.all_active = False

    @property
    def all_stopped(self) -> bool:
        return all(e is not None for e in self.stopped_epoch)

    def update(self, grads) -> None:
        self.opt.step(grads, None if self.all_active else self.active)

    def evaluate(self, names: list[str] | None = None,
                 models: list[int] | None = None) -> dict[str, list[float]]:
        """Loss (and accuracy) on the training rows and on every evaluation split (or on
        `names`), of every model (or of `models`)."""
        m = {}
        for name in names or ["train", *self.data.splits()]:
            x, y, parts = self.fixed(name)
            for key, value in self.net.evaluate(self.arch, self.params, self.spec.loss, x,
                                                y, parts, models=models).items():
                m[f"{name}_{key}"] = value
        return {k: v.cpu().tolist() for k, v in m.items()}

    def grad_norms(self) -> dict[str, list[float]]:
        """The full-batch gradient norm of every weight tensor (no dropout), per model:
        grad_norm_0 for the first layer's weights, and so on."""
        x, y, parts = self.fixed("train")
        _, grads = self.net.loss_and_grads(self.arch, self.params, self.spec.loss, x, y,
                                           parts=parts)
        weights = [g for g, isw in zip(grads, self.is_weight) if isw]
        return {f"grad_norm_{k}": torch.linalg.vector_norm(g, dim=(1, 2)).cpu().tolist()
                for k, g in enumerate(weights)}

    def log(self, epoch: int) -> None:
        live = [g for g in range(self.G) if self.stopped_epoch[g] is None and
                self.diverged_epoch[g] is None]
        m = self.evaluate(["train"] if self.spec.splits_at_end else None,
                          None if len(live) == self.G else live)
        if self.spec.grad_norms:
            m |= self.grad_norms()
        for g in range(self.G):
            if self.stopped_epoch[g] is not None:
                continue  # converged and frozen: its curve ended there
            row = {"epoch": epoch, **{k: v[g] for k, v in m.items()}}
            if self.diverged_epoch[g] is not None or not np.isfinite(row["train_loss"]):
                row = {k: (v if k == "epoch" else float("nan")) for k, v in row.items()}
                if self.diverged_epoch[g] is None:
                    self.diverged_epoch[g] = epoch
            self.curves[g].append(row)

    def finish(self, epoch: int) -> None:
        """With spec.splits_at_end: the evaluation splits of every model whose training
        ended at this log (it stopped here, or this is the last epoch), added to its last
        curve row (NaN where it diverged)."""
        if not self.spec.splits_at_end:
            return
        ended = [g for g in range(self.G) if self.stopped_epoch[g] == epoch or
                 (epoch == self.spec.epochs and self.stopped_epoch[g] is None)]
        if not ended:
            return
        m = self.evaluate(list(self.data.splits()), ended)
        for g in ended:
            failed = self.diverged_epoch[g] is not None
            self.curves[g][-1] |= {k: float("nan") if failed else v[g] for k, v in m.items()}

    def results(self, seconds: float) -> list[Result]:
        out = []
        for g, job in enumerate(self.jobs):
            final = {k: v for k, v in self.curves[g][-1].items() if k != "epoch"}
            own = [(p[g] if isw else p[g, 0]).cpu()
                   for p, isw in zip(self.params, self.is_weight)]
            out.append(Result(job, final, self.curves[g], own,
                              self.diverged_epoch[g] is not None, self.diverged_epoch[g],
                              seconds, stopped_epoch=self.stopped_epoch[g]))
        return out


def train_group(jobs: list[Job], data: TrainData, device: torch.device,
                bar=None) -> list[Result]:
    """Train one group (jobs of one spec and row count); one Result per job."""
    start = time.perf_counter()
    blas.ensure_reproducible()  # before this process's first matrix product
    torch.set_flush_denormal(True)  # denormals late in training slow CPU kernels tenfold
    if len(jobs) == 1:
        # torch multiplies a batch of one matrix with another BLAS routine than a batch of
        # several, which rounds differently: a lone model trains beside a copy of itself
        return train_group(jobs * 2, data, device, bar)[:1]
    group = Group(jobs, data, device)
    spec = group.spec
    if spec.grad_norms:
        group.log(0)  # the state at initialisation
    for epoch in range(1, spec.epochs + 1):
        if spec.schedule == "cosine":
            group.opt.scale_lr((1 + math.cos(math.pi * (epoch - 1) / spec.epochs)) / 2)
        for idx in group.batches():
            x, y, parts = group.rows_of(idx)
            x, y = group.augmented(x, y)
            masks = group.dropout_masks(group.row_count(x))
            loss, grads = group.loss_and_grads(x, y, masks, parts)
            group.check_divergence(loss, epoch)
            group.update(grads)
        if epoch % spec.log_every == 0 or epoch == spec.epochs:
            group.log(epoch)
            group.check_stopping(epoch)
            group.finish(epoch)
        if bar is not None:
            bar.update(1)
        if group.all_stopped:  # every model converged: nothing left to train
            if bar is not None:
                bar.update(spec.epochs - epoch)
            break
    return group.results((time.perf_counter() - start) / group.G)
