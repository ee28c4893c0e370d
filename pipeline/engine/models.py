"""Stacked MLPs: layer l of all G models is one weight tensor (G, fan_in, fan_out)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.engine.rng import ModelRng

ACTIVATIONS = {
    "none": lambda h: h,  # a "linear" MLP: the composition is still linear
    "relu": F.relu,
    "leaky_relu": F.leaky_relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "gelu": F.gelu,
}
# the torch.nn module of each activation, for the one-model-at-a-time baselines
NN_ACTIVATIONS = {"none": nn.Identity, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU,
                  "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU}


@dataclass(frozen=True)
class Arch:
    sizes: tuple[int, ...]  # (inputs, hidden..., outputs)
    activation: str = "relu"
    bias: bool = True

    def __post_init__(self):
        if len(self.sizes) < 2 or min(self.sizes) < 1:
            raise ValueError(f"sizes must be >= 2 positive ints, got {self.sizes}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}")

    @property
    def n_hidden(self) -> int:
        return len(self.sizes) - 2

    def n_params(self, active_inputs: int | None = None) -> int:
        sizes = list(self.sizes)
        if active_inputs is not None:
            sizes[0] = active_inputs
        return sum(a * b + (b if self.bias else 0) for a, b in zip(sizes, sizes[1:]))


def init_params(arch: Arch, rng: ModelRng, init_std: float | None = None,
                active_inputs: int | None = None) -> list[torch.Tensor]:
    """One model's parameters [W0, b0, W1, b1, ...], W as (fan_in, fan_out).

    init_std None: torch.nn.Linear's default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
    weights and biases. Otherwise weights ~ N(0, init_std^2), biases 0 (d2l's choice).
    Inputs past `active_inputs` get zero weights; they never receive a gradient since
    their features are masked to zero, so the model is exactly the smaller one.
    """
    params = []
    for layer, (fan_in, fan_out) in enumerate(zip(arch.sizes, arch.sizes[1:])):
        real_fan_in = active_inputs if (layer == 0 and active_inputs) else fan_in
        if init_std is None:
            bound = 1.0 / math.sqrt(real_fan_in)
            w = (torch.rand(fan_in, fan_out, generator=rng.init) * 2 - 1) * bound
            b = (torch.rand(fan_out, generator=rng.init) * 2 - 1) * bound
        else:
            w = torch.randn(fan_in, fan_out, generator=rng.init) * init_std
            b = torch.zeros(fan_out)
        if layer == 0 and active_inputs is not None:
            w[active_inputs:] = 0.0
        params.append(w)
        if arch.bias:
            params.append(b)
    return params


def forward(arch: Arch, params: list[torch.Tensor], x: torch.Tensor,
            masks: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Stacked forward pass.

    params: stacked [W0 (G, in, h1), b0 (G, 1, h1), ...]; x: (N, in) shared by all
    models or (G, N, in) per model; masks: one (G, N, h) dropout mask per hidden layer.
    Returns (G, N, out).
    """
    act = ACTIVATIONS[arch.activation]
    step = 2 if arch.bias else 1
    n_layers = len(arch.sizes) - 1
    h = x
    for layer in range(n_layers):
        w = params[step * layer]
        if arch.bias and h.dim() == 3:
            h = torch.baddbmm(params[step * layer + 1], h, w)  # (G, N, fan_out)
        else:
            h = torch.matmul(h, w)  # (G, N, fan_out); a shared (N, in) x broadcasts
            if arch.bias:
                h = h + params[step * layer + 1]
        if layer < n_layers - 1:
            h = act(h)
            if masks is not None:
                h = h * masks[layer]
    return h


def predict(arch: Arch, params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """One model's outputs (N, out) from its own (unstacked) parameters."""
    stacked = [p.unsqueeze(0) if p.dim() == 2 else p.reshape(1, 1, -1) for p in params]
    with torch.no_grad():
        return forward(arch, stacked, x)[0]
