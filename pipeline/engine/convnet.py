"""Small convolutional networks from a layer spec, trained G at once.

A `ConvNet` is a sequence of layers, each a tuple:

    ("conv", channels, kernel, padding)   torch.nn.Conv2d(in, channels, kernel, padding=...)
    ("avgpool", k) / ("maxpool", k)       torch.nn.AvgPool2d(k) / MaxPool2d(k)
    ("act", name)                         one of models.ACTIVATIONS
    ("dropout",)                          inverted dropout, the rate per job (Job.dropout)
    ("flatten",)
    ("linear", features)                  torch.nn.Linear(in, features)

Parameters keep the engine's stacked layout, so the optimizer, the penalties, the cache and
the results treat a CNN as they treat an MLP: a layer's weight is (G, fan_in, fan_out)
(a convolution's (out, in, k, k) kernel as its (in * k * k, out) matrix) and its bias
(G, 1, out). Each model's convolutions run as that model alone would run them (one
torch.nn.functional call per model and layer, on its own rows, in blocks of a fixed size),
so a model's numbers depend on nothing else in its group (its pooling runs on strided
views of each window, faster here than torch's pooling kernels): batched convolutions
(grouped by model, or im2col with a batched product) were measured to round a model
differently with its group, or to run slower than one call per model. What a group
shares is everything around the arithmetic: one optimizer step over stacked tensors,
the batches, the stopping and divergence checks, the evaluation and the log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.engine.models import ACTIVATIONS, NN_ACTIVATIONS, _init_layer
from pipeline.engine.pooling import avg_pool, max_pool

BLOCK_ROWS = 512  # rows per block of a full batch or an evaluation (fixed, never per group)
LAYERS = ("conv", "avgpool", "maxpool", "act", "dropout", "flatten", "linear")


@dataclass(frozen=True)
class ConvNet:
    input: tuple[int, int, int]  # (channels, height, width) of one image
    layers: tuple[tuple, ...]

    def __post_init__(self):
        self.shapes()  # every layer checked once, here

    # ------------------------------------------------------------ shapes

    def shapes(self) -> tuple[tuple[int, ...], ...]:
        """The shape of one row after each layer (worked out once: every forward pass
        reads it)."""
        return self._shapes

    @cached_property
    def _shapes(self) -> tuple[tuple[int, ...], ...]:
        """The shapes, with a clear error for a layer that cannot follow the one before."""
        shape, out = tuple(self.input), []
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"a ConvNet's input is (channels, height, width), got {shape}")
        for i, layer in enumerate(self.layers):
            kind, *args = layer
            where = f"layer {i} {layer}"
            if kind not in LAYERS:
                raise ValueError(f"{where}: unknown kind; expected one of {LAYERS}")
            if kind in ("conv", "avgpool", "maxpool") and len(shape) != 3:
                raise ValueError(f"{where} needs an image, but its input is flat {shape}")
            if kind == "conv":
                channels, k, pad = (*args, 0)[:3]
                h, w = shape[1] + 2 * pad - k + 1, shape[2] + 2 * pad - k + 1
                if min(channels, k, h, w) < 1 or pad < 0:
                    raise ValueError(f"{where}: no output from a {shape} input")
                shape = (channels, h, w)
            elif kind in ("avgpool", "maxpool"):
                k = args[0]
                if k < 1 or shape[1] < k or shape[2] < k:
                    raise ValueError(f"{where}: a {k} x {k} window does not fit {shape}")
                shape = (shape[0], shape[1] // k, shape[2] // k)
            elif kind == "act":
                if args[0] not in ACTIVATIONS:
                    raise ValueError(f"{where}: unknown activation {args[0]!r}")
            elif kind == "flatten":
                shape = (math.prod(shape),)
            elif kind == "linear":
                if len(shape) != 1:
                    raise ValueError(f"{where} needs a flat input; flatten first")
                if args[0] < 1:
                    raise ValueError(f"{where}: features must be positive")
                shape = (args[0],)
            out.append(shape)
        if not out or len(out[-1]) != 1:
            raise ValueError("a ConvNet ends in a flat output (flatten, then linear)")
        return tuple(out)

    def param_layers(self) -> tuple[tuple[int, tuple, int], ...]:
        """(layer index, spec, fan_in) of every layer with parameters."""
        return self._param_layers

    @cached_property
    def _param_layers(self) -> tuple[tuple[int, tuple, int], ...]:
        shape, out = tuple(self.input), []
        for i, (layer, after) in enumerate(zip(self.layers, self.shapes())):
            if layer[0] == "conv":
                out.append((i, layer, shape[0] * layer[2] ** 2))
            elif layer[0] == "linear":
                out.append((i, layer, shape[0]))
            shape = after
        return tuple(out)

    @cached_property
    def weight_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Each layer's weight as torch.nn holds it: (out, in, k, k) or (out, in)."""
        shapes = [tuple(self.input), *self.shapes()]
        return tuple((spec[1], shapes[i][0], spec[2], spec[2]) if spec[0] == "conv"
                     else (spec[1], fan_in) for i, spec, fan_in in self.param_layers())

    @property
    def sizes(self) -> tuple[int, ...]:
        """Elements per row: the input, then every conv or linear layer's output."""
        shapes = self.shapes()
        return (math.prod(self.input), *(math.prod(shapes[i]) for i, _, _ in
                                          self.param_layers()))

    bias = True
    tied = False

    def is_weight(self) -> list[bool]:
        return [True, False] * len(self.param_layers())

    def n_params(self, active_inputs: int | None = None) -> int:
        return sum(fan_in * spec[1] + spec[1] for _, spec, fan_in in self.param_layers())

    def dropout_widths(self) -> list[int]:
        """Elements per row at each dropout layer (one rate per layer, in Job.dropout)."""
        shapes = [tuple(self.input), *self.shapes()]
        return [math.prod(shapes[i]) for i, layer in enumerate(self.layers)
                if layer[0] == "dropout"]

    def macs(self) -> int:
        """Multiply-adds per row."""
        shapes = self.shapes()
        return sum(fan_in * spec[1] * (math.prod(shapes[i][1:]) if spec[0] == "conv" else 1)
                   for i, spec, fan_in in self.param_layers())

    def activations(self) -> int:
        """Activation elements per row, over every layer."""
        return sum(math.prod(s) for s in self.shapes())

    # ------------------------------------------------------------ torch.nn

    def to_torch(self) -> nn.Sequential:
        """The same network as torch.nn modules (dropout as nn.Dropout)."""
        modules, shape = [], tuple(self.input)
        for layer, after in zip(self.layers, self.shapes()):
            kind, *args = layer
            if kind == "conv":
                modules.append(nn.Conv2d(shape[0], args[0], args[1],
                                         padding=(*args, 0)[2]))
            elif kind == "avgpool":
                modules.append(nn.AvgPool2d(args[0]))
            elif kind == "maxpool":
                modules.append(nn.MaxPool2d(args[0]))
            elif kind == "act":
                modules.append(NN_ACTIVATIONS[args[0]]())
            elif kind == "dropout":
                modules.append(nn.Dropout(0.5))
            elif kind == "flatten":
                modules.append(nn.Flatten())
            else:
                modules.append(nn.Linear(shape[0], args[0]))
            shape = after
        return nn.Sequential(*modules)


def init_params(net: ConvNet, gen: torch.Generator, init: str = "torch", scale: float = 1.0,
                active_inputs: int | None = None) -> list[torch.Tensor]:
    """One model's parameters, W as (fan_in, fan_out), drawn layer by layer as
    torch.nn.Conv2d / Linear and torch.nn.init draw them (a kernel drawn in its
    (out, in, k, k) shape, so Xavier and He see its receptive field)."""
    if active_inputs is not None:
        raise ValueError("active_inputs applies to MLPs only")
    params = []
    for (_, spec, fan_in), shape in zip(net.param_layers(), net.weight_shapes):
        weight, bias = torch.empty(shape), torch.empty(spec[1])
        _init_layer(weight, bias, init, scale, gen)
        params += [weight.reshape(spec[1], fan_in).T.contiguous(), bias]
    return params


def nn_weights(net: ConvNet, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """One model's parameters (engine layout) as torch.nn holds them, in module order."""
    out = []
    for shape, w, b in zip(net.weight_shapes, params[0::2], params[1::2]):
        out += [w.T.reshape(shape), b]
    return out


class _OneChannelConv(torch.autograd.Function):
    """F.conv2d of a one-channel image (a CNN's first layer on grey digits) whose backward
    runs in the channels-last layout: there, on the CPU, mkldnn's kernel for the weight's
    gradient took 1.0 ms for LeNet's first layer on 64 images, against 5.2 ms in the
    default layout (the same bits in every case of LeNet's shapes tried). The forward
    stays in the default layout, faster for it and for the layers after it."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, padding: int):
        ctx.save_for_backward(x, w)
        ctx.padding = padding
        return F.conv2d(x, w, b, padding=padding)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, w = ctx.saved_tensors
        p, last = ctx.padding, torch.channels_last
        gx, gw, gb = torch.ops.aten.convolution_backward(
            g.contiguous(memory_format=last), x.to(memory_format=last), w, [w.shape[0]],
            [1, 1], [p, p], [1, 1], False, [0, 0], 1, [ctx.needs_input_grad[0], True, True])
        return gx, gw, gb, None


def conv2d(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, padding: int) -> torch.Tensor:
    """torch.nn.functional.conv2d (stride 1); a one-channel input on the CPU with its
    backward in the faster layout (`_OneChannelConv`)."""
    if x.shape[1] == 1 and x.device.type == "cpu" and torch.is_grad_enabled() \
            and w.requires_grad and b is not None:
        return _OneChannelConv.apply(x, w, b, padding)
    return F.conv2d(x, w, b, padding=padding)


def model_forward(net: ConvNet, q: list[torch.Tensor], x: torch.Tensor,
                  masks: list[torch.Tensor] | None = None) -> torch.Tensor:
    """One model's outputs (R, out) for rows x (R, C, H, W), its parameters q in the
    engine's layout; masks: one (R, width) multiplier per dropout layer."""
    weights = iter(nn_weights(net, q))
    drops = iter(masks or ())
    h = x
    for layer in net.layers:
        kind = layer[0]
        if kind == "conv":
            h = conv2d(h, next(weights), next(weights), (*layer[1:], 0)[2])
        elif kind == "avgpool":
            h = avg_pool(h, layer[1])
        elif kind == "maxpool":
            h = max_pool(h, layer[1])
        elif kind == "act":
            h = ACTIVATIONS[layer[1]](h)
        elif kind == "dropout":
            if masks is not None:
                h = h * next(drops).view_as(h)
        elif kind == "flatten":
            h = h.flatten(1)
        else:
            h = F.linear(h, next(weights), next(weights))
    return h


def shift_images(x: torch.Tensor, shifts: torch.Tensor, most: int) -> torch.Tensor:
    """Images x (B, C, H, W) each moved by its (down, right) shift in pixels (|shift| <=
    most), the uncovered border zero: out[b, :, i, j] = x[b, :, i - down, j - right]."""
    B, C, H, W = x.shape
    padded = F.pad(x, (most, most, most, most))
    corner = (most - shifts).to(x.device)  # where each image's window starts, padded
    top, left = corner[:, 0], corner[:, 1]
    rows = top[:, None] + torch.arange(H, device=x.device)      # (B, H)
    cols = left[:, None] + torch.arange(W, device=x.device)     # (B, W)
    b = torch.arange(B, device=x.device)[:, None, None]
    # advanced indices around a slice: the result is (B, H, W, C)
    return padded[b, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def model_loss(kind: str, out: torch.Tensor, y: torch.Tensor, n: int) -> torch.Tensor:
    """The loss summed over these rows / n (n: every row of the batch)."""
    if kind == "cross_entropy":
        return F.cross_entropy(out, y, reduction="sum") / n
    per = ((out - y) ** 2).sum() / (n * out.shape[1])
    return per / 2 if kind == "half_mse" else per


def _own(params: list[torch.Tensor], g: int, grad: bool) -> list[torch.Tensor]:
    """Model g's parameters as their own tensors (leaves sharing the stacked storage)."""
    own = [p[g] if k % 2 == 0 else p[g, 0] for k, p in enumerate(params)]  # W, b, W, b...
    return [t.detach().requires_grad_(grad) for t in own]


def _chunks(n: int) -> list[slice]:
    return [slice(s, min(s + BLOCK_ROWS, n)) for s in range(0, n, BLOCK_ROWS)]


def _rows(t: torch.Tensor, shared: bool, g: int, rows: slice) -> torch.Tensor:
    return t[rows] if shared else t[g, rows]


def blocks(x: torch.Tensor, y: torch.Tensor, G: int) -> None:
    """Nothing to build ahead: each model's rows are read as they are used."""
    return None


def loss_and_grads(net: ConvNet, params, kind: str, x: torch.Tensor, y: torch.Tensor,
                   masks=None, parts=None, models: list[int] | None = None
                   ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Per-model loss (G,) and the stacked gradients of every parameter, model by model.
    x: shared (N, C, H, W) or per model (G, N, C, H, W); masks: one (G, N, width)
    multiplier per dropout layer; models: only these (the frozen others get a loss of 0
    and zero gradients, which their masked update ignores)."""
    G = params[0].shape[0]
    shared = x.dim() == 4
    n = x.shape[0] if shared else x.shape[1]
    losses, grads = [], [[] for _ in params]
    wanted = set(range(G) if models is None else models)
    for g in range(G):
        if g not in wanted:
            losses.append(params[0].new_zeros(()))
            for k, p in enumerate(params):
                grads[k].append(p.new_zeros(p[g].shape if k % 2 == 0 else p[g, 0].shape))
            continue
        q = _own(params, g, grad=True)
        total, acc = None, None
        for rows in _chunks(n):
            m = None if masks is None else [mk[g, rows] for mk in masks]
            out = model_forward(net, q, _rows(x, shared, g, rows), m)
            loss = model_loss(kind, out, _rows(y, shared, g, rows), n)
            part = torch.autograd.grad(loss, q)
            total = loss.detach() if total is None else total + loss.detach()
            acc = list(part) if acc is None else [a + b for a, b in zip(acc, part)]
        losses.append(total)
        for k, gk in enumerate(acc):
            grads[k].append(gk)
    stacked = [torch.stack(gs) if k % 2 == 0 else torch.stack(gs).unsqueeze(1)
               for k, gs in enumerate(grads)]
    return torch.stack(losses), stacked


def evaluate(net: ConvNet, params, kind: str, x: torch.Tensor, y: torch.Tensor,
             parts=None, models: list[int] | None = None) -> dict[str, torch.Tensor]:
    """Per-model mean loss (and accuracy) over rows x, without gradients; models: only
    these (the others' entries are NaN)."""
    G = params[0].shape[0]
    shared = x.dim() == 4
    n = x.shape[0] if shared else x.shape[1]
    nan = torch.tensor(float("nan"), device=params[0].device)
    losses, accs = [nan] * G, [nan] * G
    with torch.no_grad():
        for g in (range(G) if models is None else models):
            q = _own(params, g, grad=False)
            total, hits = None, None
            for rows in _chunks(n):
                out = model_forward(net, q, _rows(x, shared, g, rows))
                yb = _rows(y, shared, g, rows)
                loss = model_loss(kind, out, yb, n)
                total = loss if total is None else total + loss
                if kind == "cross_entropy":
                    right = (out.argmax(dim=1) == yb).sum()
                    hits = right if hits is None else hits + right
            losses[g] = total
            if kind == "cross_entropy":
                accs[g] = hits.double().div(n).float()
    metrics = {"loss": torch.stack(losses)}
    if kind == "cross_entropy":
        metrics["acc"] = torch.stack(accs)
    return metrics
