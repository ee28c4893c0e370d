"""Stacked MLPs: layer l of all G models is one weight tensor (G, fan_in, fan_out)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

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

# torch: torch.nn.Linear's default; normal: N(0, scale^2) weights and zero biases (d2l);
# xavier / he: torch.nn.init's, zero biases; constant: every weight = scale, zero biases
INITS = ("torch", "normal", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal",
         "constant")


@dataclass(frozen=True)
class Arch:
    sizes: tuple[int, ...]  # (inputs, hidden..., outputs)
    activation: str = "relu"
    bias: bool = True
    tied: bool = False  # an autoencoder (n, k, n) whose decoder is the encoder's W^T

    def __post_init__(self):
        if len(self.sizes) < 2 or min(self.sizes) < 1:
            raise ValueError(f"sizes must be >= 2 positive ints, got {self.sizes}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}")
        if self.tied and (len(self.sizes) != 3 or self.sizes[0] != self.sizes[2]):
            raise ValueError(f"tied weights need sizes (n, k, n), got {self.sizes}")

    @property
    def n_hidden(self) -> int:
        return len(self.sizes) - 2

    def n_params(self, active_inputs: int | None = None) -> int:
        sizes = list(self.sizes)
        if active_inputs is not None:
            sizes[0] = active_inputs
        total = sum(a * b + (b if self.bias else 0) for a, b in zip(sizes, sizes[1:]))
        return total - (sizes[1] * sizes[2] if self.tied else 0)

    def dropout_widths(self) -> list[int]:
        """Units per row at each place dropout applies: every hidden layer."""
        return list(self.sizes[1:-1])

    def macs(self) -> int:
        """Multiply-adds per row."""
        return sum(a * b for a, b in zip(self.sizes, self.sizes[1:]))

    def activations(self) -> int:
        """Activation elements per row, over every layer."""
        return sum(self.sizes[1:])

    def is_weight(self) -> list[bool]:
        """Per parameter tensor: a weight (True) or a bias. The layout is
        [W0, b0, W1, b1, ...] ([W0, W1, ...] without biases; [W0, b0, b1] tied)."""
        per_layer = [True, False] if self.bias else [True]
        flags = per_layer * (len(self.sizes) - 1)
        if self.tied:
            del flags[len(per_layer)]  # the decoder's weight is the encoder's
        return flags

    def layers(self, params: list) -> list[tuple[object, object]]:
        """[(W as (fan_in, fan_out), b or None)] per layer, from the parameter list; a tied
        decoder's W is the encoder's transposed (a view: gradients go to one tensor)."""
        if self.tied:
            w, *biases = params
            b0, b1 = (biases if self.bias else (None, None))
            return [(w, b0), (w.transpose(-1, -2), b1)]
        if self.bias:
            return list(zip(params[0::2], params[1::2]))
        return [(w, None) for w in params]


def _init_layer(weight: torch.Tensor, bias: torch.Tensor | None, init: str, scale: float,
                gen: torch.Generator) -> None:
    """Fill one layer in place, weight as torch.nn.Linear holds it, (fan_out, fan_in), or
    as Conv2d does, (out, in, k, k)."""
    if init == "torch":  # torch.nn.Linear's (and Conv2d's) reset_parameters, from gen
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=gen)
        if bias is not None:
            bound = 1.0 / math.sqrt(weight[0].numel())  # fan_in
            nn.init.uniform_(bias, -bound, bound, generator=gen)
        return
    if init == "normal":
        nn.init.normal_(weight, 0.0, scale, generator=gen)
    elif init == "xavier_uniform":
        nn.init.xavier_uniform_(weight, generator=gen)
    elif init == "xavier_normal":
        nn.init.xavier_normal_(weight, generator=gen)
    elif init == "he_uniform":
        nn.init.kaiming_uniform_(weight, nonlinearity="relu", generator=gen)
    elif init == "he_normal":
        nn.init.kaiming_normal_(weight, nonlinearity="relu", generator=gen)
    elif init == "constant":
        nn.init.constant_(weight, scale)
    else:
        raise ValueError(f"unknown init {init!r}; expected one of {INITS}")
    if bias is not None:
        nn.init.zeros_(bias)


def init_params(arch: Arch, gen: torch.Generator, init: str = "torch", scale: float = 1.0,
                active_inputs: int | None = None) -> list[torch.Tensor]:
    """One model's parameters in Arch's layout, W as (fan_in, fan_out).

    Each layer is drawn exactly as torch.nn.Linear(fan_in, fan_out) and torch.nn.init
    draw it from `gen`, layer by layer, weight before bias (a tied decoder's weight is
    drawn too, then dropped, as a torch model tying nn.Linear layers would). With
    `active_inputs` = k the first layer is drawn as a k-input layer; the rows of the other
    inputs are zero and stay zero (their features are masked to zero), so the model is
    exactly the smaller one.
    """
    params = []
    for layer, (fan_in, fan_out) in enumerate(zip(arch.sizes, arch.sizes[1:])):
        real_in = active_inputs if (layer == 0 and active_inputs) else fan_in
        weight = torch.empty(fan_out, real_in)
        bias = torch.empty(fan_out) if arch.bias else None
        _init_layer(weight, bias, init, scale, gen)
        w = torch.zeros(fan_in, fan_out)
        w[:real_in] = weight.T
        if not (arch.tied and layer == 1):
            params.append(w)
        if bias is not None:
            params.append(bias)
    return params


def forward(arch: Arch, params: list[torch.Tensor], x: torch.Tensor,
            masks: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Stacked forward pass, rows first (for predictions; training uses backprop.py).

    params: stacked, W (G, in, out), b (G, 1, out); x: (N, in) shared by all models or
    (G, N, in) per model; masks: one (G, N, h) dropout mask per hidden layer.
    Returns (G, N, out).
    """
    act = ACTIVATIONS[arch.activation]
    pairs = arch.layers(params)
    G = params[0].shape[0]
    h = x if x.dim() == 3 else x.expand(G, *x.shape)  # a per-model product per model
    for layer, (w, b) in enumerate(pairs):
        h = torch.bmm(h, w) if b is None else torch.baddbmm(b, h, w)  # (G, N, fan_out)
        if layer < len(pairs) - 1:
            h = act(h)
            if masks is not None:
                h = h * masks[layer]
    return h


def predict(arch: Arch, params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """One model's outputs (N, out) from its own (unstacked) parameters (an Arch's, or a
    ConvNet's for images (N, C, H, W))."""
    if not isinstance(arch, Arch):
        from pipeline.engine import convnet

        with torch.no_grad():
            return torch.cat([convnet.model_forward(arch, params, x[rows])
                              for rows in convnet._chunks(len(x))])
    stacked = [p.unsqueeze(0) if p.dim() == 2 else p.reshape(1, 1, -1) for p in params]
    with torch.no_grad():
        return forward(arch, stacked, x)[0]
