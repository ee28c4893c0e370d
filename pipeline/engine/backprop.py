"""The stacked MLP's loss and gradients, written out by hand.

Activations are kept feature-major, (G, features, rows): softmax runs over dimension 1,
the thin sides of these models (2 inputs, 1 to 10 outputs) are the small dimension of
each batched product, and every product is one matrix product per model. The backward
uses the aten kernels autograd itself calls for each activation.

Rows are padded to a multiple of ROW_ALIGN with zero-weight rows, so that every model's
slab of every activation is a whole number of vector widths: each element then goes
through the same vectorised kernel wherever its model sits in the group (the scalar
tail of a kernel rounds sigmoid and GELU differently), and every slab starts aligned.
Padded rows carry zero weight in the loss, so they add exact zeros to every gradient.
Full batches longer than BLOCK_ROWS are processed block by block, the gradients added
up; both constants are fixed, never a function of the group.
"""

from __future__ import annotations

import torch

from pipeline.engine.models import ACTIVATIONS, Arch

BLOCK_ROWS = 4096  # rows per block of a full batch
ROW_ALIGN = 64  # rows per block are padded to a multiple of this
THIN = 16  # a layer with fewer outputs than this (and than inputs) is "thin"

_aten = torch.ops.aten
# each backward writes into dh, the gradient it consumes (elementwise: safe in place)
ACT_BACKWARD = {
    "none": lambda dh, z, a: dh,
    "relu": lambda dh, z, a: _aten.threshold_backward.grad_input(dh, a, 0, grad_input=dh),
    "leaky_relu": lambda dh, z, a: _aten.leaky_relu_backward.grad_input(
        dh, a, 0.01, True, grad_input=dh),  # a > 0 exactly where z > 0
    "sigmoid": lambda dh, z, a: _aten.sigmoid_backward.grad_input(dh, a, grad_input=dh),
    "tanh": lambda dh, z, a: _aten.tanh_backward.grad_input(dh, a, grad_input=dh),
    "gelu": lambda dh, z, a: _aten.gelu_backward.grad_input(dh, z, grad_input=dh),
}
# activations computed in place over z (their backward reads act(z) only)
IN_PLACE = {"none": lambda z: z, "relu": torch.relu_, "sigmoid": torch.sigmoid_,
            "tanh": torch.tanh_, "leaky_relu": torch.nn.functional.leaky_relu_}


def linear(w: torch.Tensor, b: torch.Tensor | None, h: torch.Tensor) -> torch.Tensor:
    """Feature-major affine map: h (G, in, R) -> contiguous (G, out, R)."""
    wt = w.transpose(1, 2)  # (G, out, in)
    if b is None:
        return torch.bmm(wt, h)
    return torch.baddbmm(b.transpose(1, 2), wt, h)


class Block:
    """One block of rows in the padded feature-major layout: inputs (G or 1, in + 1, R)
    whose last row is ones (the first layer's bias gradient comes out of its weight
    gradient's product), targets, and the row weights (1, 1, R): 1 for a real row,
    0 for padding."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, rows: slice, G: int):
        shared = x.dim() == 2
        xb, yb = (x[rows], y[rows]) if shared else (x[:, rows], y[:, rows])
        r = xb.shape[-2]
        self.rows = r
        self.width = -(-r // ROW_ALIGN) * ROW_ALIGN
        lead = 1 if shared else G
        n_in = xb.shape[-1]
        self.x = xb.new_zeros(lead, n_in + 1, self.width)
        self.x[:, :n_in, :r] = xb.transpose(-1, -2)
        self.x[:, n_in] = 1.0
        if not yb.is_floating_point():  # class indices (.., r)
            self.y = yb.new_zeros(lead, self.width)
            self.y[:, :r] = yb
        else:  # values (.., r, o)
            self.y = yb.new_zeros(lead, yb.shape[-1], self.width)
            self.y[:, :, :r] = yb.transpose(-1, -2)
        self.weight = xb.new_zeros(1, 1, self.width)
        self.weight[:, :, :r] = 1.0
        self.G = G

    def inputs(self) -> torch.Tensor:
        """(G, in + 1, R): the inputs and a row of ones."""
        return self.x.expand(self.G, -1, -1)

    def masks(self, masks: list[torch.Tensor] | None, rows: slice):
        """Dropout multipliers (G, n, width) -> padded feature-major (G, width, R)."""
        if masks is None:
            return None
        out = []
        for m in masks:
            padded = m.new_zeros(m.shape[0], m.shape[2], self.width)
            padded[:, :, :self.rows] = m[:, rows].transpose(1, 2)
            out.append(padded)
        return out


def forward(arch: Arch, params, x: torch.Tensor, masks=None, keep: bool = False):
    """Feature-major forward of x (G, in + 1, R), its last row ones. masks: per hidden
    layer (G, width, R) dropout multipliers. Returns the outputs (G, out, R) and, with
    keep, what the backward reads: every layer's input, and (z, act(z), mask) of every
    hidden layer (z only where the backward needs it)."""
    inputs, hidden = [x], []
    h = x[:, :-1]
    pairs = arch.layers(params)
    for layer, (w, b) in enumerate(pairs):
        if keep and layer:
            inputs.append(h)
        z = linear(w, b, h)
        if layer == len(pairs) - 1:
            return z, (inputs, hidden)
        if arch.activation in IN_PLACE:
            a, z = IN_PLACE[arch.activation](z), None
        else:
            a = ACTIVATIONS[arch.activation](z)
        m = None if masks is None else masks[layer]
        if keep:
            hidden.append((z, a, m))
        h = a if m is None else a * m
    raise AssertionError("unreachable")


def loss_and_delta(kind: str, out: torch.Tensor, block: Block, n: int,
                   need_delta: bool = True):
    """Per-model summed loss / n over this block's real rows, and d(loss)/d(out)."""
    w = block.weight
    if kind == "cross_entropy":
        logp = torch.log_softmax(out, dim=1)  # (G, C, R)
        idx = block.y.unsqueeze(1).expand(out.shape[0], 1, out.shape[2])
        loss = -(logp.gather(1, idx) * w).sum(dim=(1, 2)) / n
        if not need_delta:
            return loss, None
        delta = logp.exp_()
        delta.scatter_add_(1, idx, delta.new_full(idx.shape, -1.0))  # on delta's device
        return loss, delta.mul_(w).div_(n)
    diff = (out - block.y).mul_(w)  # (G, o, R)
    scale = n * out.shape[1]  # the mean over rows and outputs
    half = kind == "half_mse"
    loss = (diff * diff).sum(dim=(1, 2)) / (2 * scale if half else scale)
    if not need_delta:
        return loss, None
    return loss, diff.mul_(1.0 / scale if half else 2.0 / scale)


def backward(arch: Arch, params, saved, delta: torch.Tensor) -> list[torch.Tensor]:
    """Gradients of every parameter, in params order, from d(loss)/d(outputs)."""
    inputs, hidden = saved
    back = ACT_BACKWARD[arch.activation]
    pairs = arch.layers(params)
    # per layer: its (G, in, out) weight gradient, its bias gradient
    weight_grads, bias_grads = [None] * len(pairs), [None] * len(pairs)
    for layer in range(len(pairs) - 1, -1, -1):
        w, b = pairs[layer]
        dw = weight_grad(inputs[layer], delta)
        if layer == 0:  # the ones row of the inputs gives the bias gradient
            weight_grads[0], bias_grads[0] = dw[:, :-1], dw[:, -1:]
            break
        weight_grads[layer] = dw
        bias_grads[layer] = delta.sum(dim=2).unsqueeze(1)  # (G, 1, out)
        dh = torch.bmm(w, delta)  # d(loss)/d(layer input) (G, in, R)
        z, a, m = hidden[layer - 1]
        if m is not None:
            dh = dh.mul_(m)
        delta = back(dh, z, a)
    return param_grads(arch, weight_grads, bias_grads)


def weight_grad(h: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """dW (G, in, out) = h delta^T, as one contiguous product (the optimizer streams a
    transposed gradient several times slower); where the output side is thin (a few
    classes), as the transpose of delta h^T, which MKL computes twice as fast."""
    if delta.shape[1] < min(THIN, h.shape[1]):
        return torch.bmm(delta, h.transpose(1, 2)).transpose(1, 2)
    return torch.bmm(h, delta.transpose(1, 2))


def param_grads(arch: Arch, weight_grads: list, bias_grads: list) -> list[torch.Tensor]:
    """Per-layer gradients -> one per parameter tensor, in Arch's layout; a tied
    decoder's weight gradient adds, transposed, to the encoder's."""
    if arch.tied:
        grads = [weight_grads[0] + weight_grads[1].transpose(1, 2)]
        return grads + (bias_grads if arch.bias else [])
    if arch.bias:
        return [g for pair in zip(weight_grads, bias_grads) for g in pair]
    return list(weight_grads)


def blocks(x: torch.Tensor, y: torch.Tensor, G: int) -> list[tuple[slice, Block]]:
    """Rows x (shared (N, in) or per model (G, N, in)) and targets y, as blocks of at
    most BLOCK_ROWS rows (built once and reused where the rows do not change)."""
    n = x.shape[-2]
    return [(rows, Block(x, y, rows, G))
            for rows in (slice(s, min(s + BLOCK_ROWS, n)) for s in range(0, n, BLOCK_ROWS))]


def loss_and_grads(arch: Arch, params, kind: str, x: torch.Tensor, y: torch.Tensor,
                   masks=None, parts: list[tuple[slice, Block]] | None = None,
                   models: list[int] | None = None
                   ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Per-model mean loss and its gradients over rows x (shared (N, in) or per model
    (G, N, in)); masks: per hidden layer (G, N, width) dropout multipliers; parts:
    blocks(x, y, G), when already built; `models` (the ones still training) costs no
    less in one stacked pass, so every model is computed."""
    G, n = params[0].shape[0], x.shape[-2]
    loss, grads = None, None
    for rows, block in parts or blocks(x, y, G):
        out, saved = forward(arch, params, block.inputs(), block.masks(masks, rows), keep=True)
        part, delta = loss_and_delta(kind, out, block, n)
        g = backward(arch, params, saved, delta)
        loss = part if loss is None else loss.add_(part)
        grads = g if grads is None else [a.add_(b) for a, b in zip(grads, g)]
    return loss, grads


def evaluate(arch: Arch, params, kind: str, x: torch.Tensor, y: torch.Tensor,
             parts: list[tuple[slice, Block]] | None = None,
             models: list[int] | None = None) -> dict[str, torch.Tensor]:
    """Per-model mean loss (and accuracy) over rows x, block by block, without grads
    (of every model: `models`, the ones asked for, costs no less in one stacked pass)."""
    G, n = params[0].shape[0], x.shape[-2]
    loss = hits = None
    for _, block in parts or blocks(x, y, G):
        out, _ = forward(arch, params, block.inputs())
        part, _ = loss_and_delta(kind, out, block, n, need_delta=False)
        loss = part if loss is None else loss.add_(part)
        if kind == "cross_entropy":
            right = ((out.argmax(dim=1) == block.y) * block.weight[0]).sum(dim=1)
            hits = right if hits is None else hits.add_(right)
    metrics = {"loss": loss}
    if kind == "cross_entropy":
        metrics["acc"] = hits.double().div_(n).float()
    return metrics
