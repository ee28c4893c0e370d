"""Batched SGD (plain, momentum, Nesterov), Adam and AdamW with per-model knobs.

The update rules follow torch.optim's single-tensor implementations (dampening 0);
tests/test_engine.py proves each equal to torch.optim on every model of a group.
Weight decay applies to weights only, never to biases (d2l's concise setting).
"""

from __future__ import annotations

import torch

KINDS = ("sgd", "momentum", "nesterov", "adam", "adamw")


def _per_model(values, dtype=torch.float32, device=None) -> torch.Tensor:
    return torch.as_tensor(values, dtype=dtype, device=device).reshape(-1, 1, 1)  # (G, 1, 1)


class BatchedOptimizer:
    def __init__(self, params: list[torch.Tensor], decays: list[bool], kind: str, *,
                 lr, weight_decay, momentum, betas):
        if kind not in KINDS:
            raise ValueError(f"unknown optimizer {kind!r}; expected one of {KINDS}")
        dev = params[0].device
        self.params, self.decays, self.kind = params, decays, kind
        self.lr = _per_model(lr, device=dev)
        self.wd = _per_model(weight_decay, device=dev)
        self.momentum = _per_model(momentum, device=dev)
        # bias corrections are computed in float64, as torch.optim does with Python floats
        self.lr64 = torch.as_tensor(lr, dtype=torch.float64)
        self.wd64 = torch.as_tensor(weight_decay, dtype=torch.float64)
        # AdamW's p *= 1 - lr * wd
        self.decoupled = _per_model(1 - self.lr64 * self.wd64, device=dev)
        self.base_lr64 = self.lr64
        b = torch.as_tensor(betas, dtype=torch.float64).reshape(-1, 2)
        self.beta1_64, self.beta2_64 = b[:, 0], b[:, 1]
        self.one_minus_beta1 = _per_model(1 - b[:, 0], device=dev)
        self.beta2 = _per_model(b[:, 1], device=dev)
        self.one_minus_beta2 = _per_model(1 - b[:, 1], device=dev)
        self.eps = 1e-8
        self.t = 0
        self.any_decay = bool((self.wd != 0).any())
        # momentum buffers, or Adam's first moments; Adam's second moments
        self.state = [torch.zeros_like(p) for p in params] if kind != "sgd" else []
        self.state2 = [torch.zeros_like(p) for p in params] if kind.startswith("adam") else []

    def scale_lr(self, factor: float) -> None:
        """Every model's learning rate becomes its own times factor (a schedule's), from
        the next step on; computed in float64 from the base rate, as torch.optim's
        schedulers set a group's Python float."""
        dev = self.params[0].device
        self.lr64 = self.base_lr64 * factor
        self.lr = _per_model(self.lr64, device=dev)
        self.decoupled = _per_model(1 - self.lr64 * self.wd64, device=dev)

    def step(self, grads: list[torch.Tensor], active: torch.Tensor | None = None) -> None:
        """One update. active (G,) bool: models with False keep their parameters;
        None: every model updates (the fast path, no masking)."""
        self.t += 1
        adam = self.kind.startswith("adam")
        if adam:
            dev = self.params[0].device
            bc1 = 1 - self.beta1_64 ** self.t
            step_size = _per_model(self.lr64 / bc1, device=dev)
            bc2_sqrt = _per_model(torch.sqrt(1 - self.beta2_64 ** self.t), device=dev)
        for i, (p, g, decay) in enumerate(zip(self.params, grads, self.decays)):
            decay = decay and self.any_decay
            if decay and self.kind != "adamw":
                g = g + self.wd * p  # L2: decay through the gradient
            # p -= rate * direction, as one fused pass over p (a third of the memory
            # traffic of forming rate * direction first)
            if not adam:
                if self.kind != "sgd":
                    buf = self.state[i].mul_(self.momentum).add_(g)
                    g = g + self.momentum * buf if self.kind == "nesterov" else buf
                rate, direction = self.lr, g
            else:
                m = self.state[i].lerp_(g, self.one_minus_beta1)
                v = self.state2[i].mul_(self.beta2).addcmul_(g, g * self.one_minus_beta2)
                # m / (sqrt(v) / bc2 + eps), each step in place on one buffer: the same
                # values as forming each intermediate anew, in a fifth less time
                denom = v.sqrt().div_(bc2_sqrt).add_(self.eps)
                rate, direction = step_size, torch.div(m, denom, out=denom)
            decoupled = decay and self.kind == "adamw"  # AdamW: p *= 1 - lr * wd first
            if active is None:
                if decoupled:
                    p.mul_(self.decoupled)
                p.addcmul_(rate.neg(), direction)
            else:
                new = (p * self.decoupled if decoupled else p).addcmul(rate.neg(), direction)
                p.copy_(torch.where(active.reshape(-1, 1, 1), new, p))
