"""Engine vs the naive per-model loop, on the same grids, in the same process; on the
LeNet grid torch.func's model ensembling (vmap over stacked parameters) as well.

    python -m benchmarks.engine            # the d2l / DLSP20 settings
    python -m benchmarks.engine --scale 0.1  # a tenth of the epochs, for a quick look
    python -m benchmarks.engine --torch-pooling  # the engine's CNNs on torch's pooling

Prints seconds for both, their ratio, and the engine's achieved GFLOP/s beside a large
fp32 matmul's in this run (the machine is noisy: compare within one run only).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from pipeline.config import Config
from pipeline.datasets import generate
from pipeline.engine import Arch, ConvNet, EngineOptions, Job, TrainData, TrainSpec, train
from pipeline.engine.models import NN_ACTIVATIONS


def naive(job: Job, data: TrainData) -> float:
    """One model at a time, the textbook way: nn.Sequential, torch.optim, a Python loop."""
    arch = job.spec.arch
    torch.manual_seed(job.seed)
    if isinstance(arch, ConvNet):
        return _loop(job, arch.to_torch(), data)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(arch.sizes, arch.sizes[1:])):
        layers.append(nn.Linear(a, b, bias=arch.bias))
        if i < len(arch.sizes) - 2:
            layers.append(NN_ACTIVATIONS[arch.activation]())
            p = job.dropout[i] if job.dropout else 0.0
            if p:
                layers.append(nn.Dropout(p))
    net = nn.Sequential(*layers)
    if job.active_inputs:
        net[0] = nn.Linear(job.active_inputs, arch.sizes[1], bias=arch.bias)
    return _loop(job, net, data, job.active_inputs)


def _loop(job: Job, net: nn.Module, data: TrainData, inputs: int | None = None) -> float:
    """Train, then evaluate on the training rows and every split: the work of the
    engine's job, whose result carries those final metrics."""
    spec = job.spec
    cols = (lambda t: t[:, :inputs]) if inputs else (lambda t: t)  # noqa: E731
    x, y = cols(data.x_train), data.y_train
    if spec.optimizer == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=job.lr, weight_decay=job.weight_decay)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=job.lr, weight_decay=job.weight_decay)
    loss_fn = nn.CrossEntropyLoss() if spec.classification else nn.MSELoss()
    n = len(x)
    batch = min(spec.batch_size or n, n)
    start = time.perf_counter()
    for _ in range(spec.epochs):
        order = torch.randperm(n) if batch < n else torch.arange(n)
        for s in range(0, n, batch):
            idx = order[s:s + batch]
            loss = loss_fn(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        for xs, ys in [(x, y), *((cols(a), b) for a, b in data.splits().values())]:
            loss_fn(net(xs), ys)
    return time.perf_counter() - start


def vmapped(jobs: list[Job], data: TrainData) -> float:
    """torch.func's model ensembling: the models' parameters stacked, one
    vmap(grad(functional_call)) per step, plain SGD (each model its own batch order),
    then the final evaluation as the others do it."""
    import copy

    import torch.nn.functional as F
    from torch.func import functional_call, grad, stack_module_state, vmap

    spec = jobs[0].spec
    models = []
    for j in jobs:
        torch.manual_seed(j.seed)
        models.append(spec.arch.to_torch())
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def loss(p, b, x, y):
        return F.cross_entropy(functional_call(base, (p, b), (x,)), y)

    step = vmap(grad(loss))
    lr = torch.tensor([j.lr for j in jobs])
    x, y = data.x_train, data.y_train
    n, G = len(x), len(jobs)
    batch = min(spec.batch_size or n, n)
    start = time.perf_counter()
    for _ in range(spec.epochs):
        order = torch.stack([torch.randperm(n) for _ in range(G)])
        for s in range(0, n, batch):
            idx = order[:, s:s + batch]
            grads = step(params, buffers, x[idx], y[idx])
            with torch.no_grad():
                for k, g in grads.items():
                    params[k] -= lr.view(-1, *[1] * (g.dim() - 1)) * g
    with torch.no_grad():
        for xs, ys in [(x, y), *data.splits().values()]:
            outs = vmap(functional_call, in_dims=(None, 0, None))(base, (params, buffers),
                                                                 (xs,))
            F.cross_entropy(outs.flatten(0, 1), ys.repeat(G))
    return time.perf_counter() - start


def flops(jobs: list[Job], n_rows: int) -> float:
    """Forward + backward FLOPs of the products: 6 x rows x multiply-adds per row, per
    epoch."""
    return sum(6 * n_rows * j.spec.arch.macs() * j.spec.epochs for j in jobs)


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def grids(scale: float) -> dict[str, tuple[list[Job], TrainData]]:
    from pipeline.studies.cnn import Params, network

    cfg = Config()
    data = {k: TrainData.from_arrays(generate(k, getattr(cfg.data, k)))
            for k in ("polynomial", "highdim", "images", "spiral", "mnist")}
    ep = lambda e: max(1, int(e * scale))  # noqa: E731
    poly = TrainSpec(Arch((20, 1), "none", bias=False), "sgd", "mse", epochs=ep(400),
                     batch_size=10, log_every=10 ** 9)
    wd = TrainSpec(Arch((200, 1), "none"), "sgd", "half_mse", epochs=ep(100), batch_size=5,
                   log_every=10 ** 9, init="normal", init_scale=1.0)
    img = TrainSpec(Arch((64, 256, 256, 10), "relu"), "sgd", "cross_entropy", epochs=ep(10),
                    batch_size=64, log_every=10 ** 9, init="normal",
                    init_scale=0.01)
    lenet = TrainSpec(network("lenet", Params()), "sgd", "cross_entropy", epochs=ep(4),
                      batch_size=64, log_every=10 ** 9)
    spiral = lambda a: TrainSpec(Arch((2, 100, 3), a), "adam", "cross_entropy",  # noqa: E731
                                 epochs=ep(1000), log_every=10 ** 9)
    return {
        "polynomial 20 degrees x 3 seeds": (
            [Job(poly, s, 0.01, active_inputs=d + 1) for d in range(20) for s in range(3)],
            data["polynomial"]),
        "weight decay 10 lambdas x 3 seeds": (
            [Job(wd, s, 0.003, weight_decay=lam) for lam in np.geomspace(1e-3, 10, 10)
             for s in range(3)], data["highdim"]),
        "spiral 5 activations x 3 seeds": (
            [Job(spiral(a), s, 1e-3, weight_decay=1e-5)
             for a in ("relu", "leaky_relu", "sigmoid", "tanh", "gelu") for s in range(3)],
            data["spiral"]),
        "image MLP 8 dropout settings": (
            [Job(img, 0, 0.5, dropout=(p, p)) for p in np.linspace(0, 0.7, 8)], data["images"]),
        "LeNet-5 (d2l) on MNIST x 6 seeds": (
            [Job(lenet, s, 0.9) for s in range(6)], data["mnist"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the epochs")
    parser.add_argument("--torch-pooling", action="store_true",
                        help="the engine's CNNs pool with F.avg_pool2d / F.max_pool2d "
                        "instead of its strided views")
    args = parser.parse_args()
    if args.torch_pooling:
        import torch.nn.functional as F

        from pipeline.engine import convnet

        convnet.avg_pool, convnet.max_pool = F.avg_pool2d, F.max_pool2d
    torch.set_flush_denormal(True)
    peak = matmul_peak()
    print(f"large fp32 matmul: {peak:.0f} GFLOP/s ({torch.get_num_threads()} threads)")
    print(f"{'grid':36} {'models':>6} {'naive s':>8} {'engine s':>8} {'ratio':>6} "
          f"{'GFLOP/s':>8} {'% peak':>6} {'vmap s':>7} {'ratio':>6}")
    for name, (jobs, data) in grids(args.scale).items():
        naive_s = sum(naive(j, data) for j in jobs)
        engine_s = _timed(lambda: train(jobs, data, options=EngineOptions(workers=2)))  # noqa: B023
        gf = flops(jobs, len(data.x_train)) / engine_s / 1e9
        line = (f"{name:36} {len(jobs):6d} {naive_s:8.2f} {engine_s:8.2f} "
                f"{naive_s / engine_s:6.1f} {gf:8.2f} {100 * gf / peak:6.2f}")
        if isinstance(jobs[0].spec.arch, ConvNet):
            vmap_s = vmapped(jobs, data)
            line += f" {vmap_s:7.2f} {naive_s / vmap_s:6.1f}"
        print(line)


if __name__ == "__main__":
    main()
