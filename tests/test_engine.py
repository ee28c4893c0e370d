"""The batched engine equals torch.nn + torch.optim model by model, and a model's numbers
do not depend on its group, its position there, the workers or the cache."""

from __future__ import annotations

import itertools
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from pipeline.engine import (
    Arch,
    ConvNet,
    EngineOptions,
    Job,
    ModelRng,
    TrainData,
    TrainSpec,
    Weights,
    train,
)
from pipeline.engine.loop import Group
from pipeline.engine.models import NN_ACTIVATIONS, init_params


def _linear(fan_in: int, fan_out: int, bias: bool, spec: TrainSpec,
            gen: torch.Generator) -> nn.Linear:
    """A torch.nn.Linear initialised from `gen` as torch does it: the default init is
    nn.Linear's own constructor run on the global generator set to gen's state."""
    if spec.init == "torch":
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.set_state(gen.get_state())
            lin = nn.Linear(fan_in, fan_out, bias=bias)
            gen.set_state(torch.default_generator.get_state())
        return lin
    lin = nn.Linear(fan_in, fan_out, bias=bias)
    with torch.no_grad():
        if spec.init == "normal":  # d2l: net[0].weight.data.normal_(0, std), bias 0
            lin.weight.normal_(0.0, spec.init_scale, generator=gen)
        elif spec.init == "constant":
            lin.weight.fill_(spec.init_scale)
        else:
            raise NotImplementedError(spec.init)
        if bias:
            lin.bias.zero_()
    return lin


def reference_train(job: Job, data: TrainData) -> list[torch.Tensor]:
    """One model, the textbook way: torch.nn.Linear layers with their own init,
    explicitly scaled dropout masks, torch.optim, a Python loop.

    It shares with the engine only the seeds of the model's three random streams, and
    draws from them the way torch draws: nn.Linear's init, randperm, rand.
    """
    spec, arch = job.spec, job.spec.arch
    streams = ModelRng(job.seed)  # three seeded torch.Generators, nothing else
    g_init, g_order, g_drop = streams.init, streams.order, streams.dropout
    sizes = list(arch.sizes)
    if job.active_inputs is not None:
        sizes[0] = job.active_inputs  # a degree-d polynomial is the smaller model itself
    linears = [_linear(a, b, arch.bias, spec, g_init) for a, b in zip(sizes, sizes[1:])]
    if job.start is not None:  # a pre-trained model: its given weights, W as (in, out)
        given = iter(job.start.tensors())
        with torch.no_grad():
            for lin in linears:
                lin.weight.copy_(next(given).T)
                if arch.bias:
                    lin.bias.copy_(next(given))
    act = NN_ACTIVATIONS[arch.activation]()
    if arch.tied:  # the decoder uses the encoder's weight, transposed; its own is unused
        linears[1].weight = None
    weights = [lin.weight for lin in linears if lin.weight is not None]
    biases = [lin.bias for lin in linears if arch.bias]
    groups = [{"params": weights, "weight_decay": job.weight_decay},
              {"params": biases, "weight_decay": job.weight_decay if spec.decay_bias else 0.0}]
    kind = spec.optimizer
    if kind in ("sgd", "momentum", "nesterov"):
        opt = torch.optim.SGD(groups, lr=job.lr, momentum=0.0 if kind == "sgd" else job.momentum,
                              nesterov=kind == "nesterov", foreach=False)
    else:
        cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        opt = cls(groups, lr=job.lr, betas=job.betas, foreach=False)

    x_all, y_all = data.x_train, data.y_train
    if job.rows is not None:
        rows = torch.tensor(job.rows)
        x_all, y_all = x_all[rows], y_all[rows]
    x_all = x_all[:, :sizes[0]]
    n = len(x_all)
    batch = min(spec.batch_size or n, n)
    rates = job.dropout or (0.0,) * arch.n_hidden
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=spec.epochs)
             if spec.schedule == "cosine" else None)
    for _ in range(spec.epochs):
        order = torch.randperm(n, generator=g_order) if batch < n else torch.arange(n)
        for s in range(0, n, batch):
            idx = order[s:s + batch]
            h = x_all[idx]
            for layer, lin in enumerate(linears):
                if lin.weight is None:
                    h = F.linear(h, linears[0].weight.T, lin.bias)
                else:
                    h = lin(h)
                if layer < len(linears) - 1:
                    h = act(h)
                    p = rates[layer]
                    if p > 0:  # inverted dropout: keep with probability 1 - p, scale up
                        keep = torch.rand(h.shape, generator=g_drop) >= p
                        h = h * keep / (1 - p)
            y = y_all[idx]
            if spec.loss == "cross_entropy":
                loss = F.cross_entropy(h, y)
            else:
                loss = F.mse_loss(h, y) / (2 if spec.loss == "half_mse" else 1)
            if job.l2_penalty:
                loss = loss + job.l2_penalty * sum((w ** 2).sum() for w in weights) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
        if sched is not None:
            sched.step()
    out = []
    for layer, lin in enumerate(linears):
        if lin.weight is None:  # tied: only its bias is a parameter
            out.append(lin.bias.detach())
            continue
        w = lin.weight.detach().T
        if layer == 0 and job.active_inputs is not None:  # the engine's zero rows
            w = torch.cat([w, torch.zeros(arch.sizes[0] - sizes[0], w.shape[1])])
        out.append(w)
        if arch.bias:
            out.append(lin.bias.detach())
    return out


def _classification_data(n=48, d=5, c=3, seed=0) -> TrainData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, 0] * 2 + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    y = y.clamp(max=c - 1)
    return TrainData(x, y, x[:16] + 0.1, y[:16], x[16:24] - 0.1, y[16:24])


def _regression_data(n=40, d=5, seed=0) -> TrainData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x @ torch.linspace(-1, 1, d) + 0.3)[:, None] + 0.01 * torch.randn(n, 1, generator=g)
    return TrainData(x, y, x[:10] * 1.1, y[:10])


MODEL_KINDS = {
    # name: (arch, loss, dropout per model, init)
    "linear_regression": (Arch((5, 1), "none"), "half_mse", None, "normal"),
    "linear_no_bias": (Arch((5, 1), "none", bias=False), "mse", None, "torch"),
    "mlp_relu": (Arch((5, 16, 3), "relu"), "cross_entropy", None, "torch"),
    "mlp_linear_act": (Arch((5, 8, 3), "none"), "cross_entropy", None, "torch"),
    "mlp_tanh_dropout": (Arch((5, 12, 10, 3), "tanh"), "cross_entropy",
                         [(0.0, 0.0), (0.3, 0.5), (0.8, 0.1)], "torch"),
    "mlp_relu_dropout_normal": (Arch((5, 12, 10, 3), "relu"), "cross_entropy",
                                [(0.5, 0.0), (0.2, 0.2), (0.0, 0.7)], "normal"),
    "mlp_gelu": (Arch((5, 8, 3), "gelu"), "cross_entropy", None, "torch"),
    "mlp_sigmoid": (Arch((5, 8, 3), "sigmoid"), "cross_entropy", None, "torch"),
    "mlp_leaky_relu": (Arch((5, 8, 3), "leaky_relu"), "cross_entropy", None, "torch"),
}
OPTIMIZERS = ["sgd", "momentum", "nesterov", "adam", "adamw"]


def _jobs(arch, loss, dropout, optimizer, batch_size, init="torch", epochs=3,
          decay_bias=False, schedule="constant", **extra) -> list[Job]:
    spec = TrainSpec(arch, optimizer, loss, epochs=epochs, batch_size=batch_size, log_every=1,
                     init=init, init_scale=0.3, decay_bias=decay_bias, schedule=schedule)
    lrs = [0.05, 0.01, 0.1] if optimizer in ("sgd", "momentum", "nesterov") \
        else [0.01, 0.003, 0.03]
    return [Job(spec, seed=s, lr=lr, weight_decay=wd, momentum=mom,
                betas=betas, dropout=(dropout[i] if dropout else ()), **extra)
            for i, (s, lr, wd, mom, betas) in enumerate(zip(
                [0, 1, 2], lrs, [0.0, 1e-3, 0.1], [0.9, 0.5, 0.3],
                [(0.9, 0.999), (0.8, 0.99), (0.5, 0.9)]))]


def _assert_matches_reference(jobs: list[Job], data: TrainData) -> None:
    for job, res in zip(jobs, train(jobs, data)):
        expected = reference_train(job, data)
        assert len(res.params) == len(expected)
        for got, want in zip(res.params, expected):
            torch.testing.assert_close(got, want, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("kind,optimizer", list(itertools.product(MODEL_KINDS, OPTIMIZERS)))
@pytest.mark.parametrize("batch_size", [None, 7])
def test_batched_equals_torch_nn_and_optim(kind, optimizer, batch_size):
    arch, loss, dropout, init = MODEL_KINDS[kind]
    data = _classification_data() if loss == "cross_entropy" else _regression_data()
    _assert_matches_reference(_jobs(arch, loss, dropout, optimizer, batch_size, init), data)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("kind", ["mlp_relu", "linear_regression"])
def test_cosine_schedule_equals_torchs_cosine_annealing(kind, optimizer):
    """Every optimizer, weight decay included (AdamW's decoupled factor follows the rate),
    against torch.optim.lr_scheduler.CosineAnnealingLR stepped once per epoch; and the
    schedule changes the result (the rate does fall)."""
    arch, loss, dropout, init = MODEL_KINDS[kind]
    data = _classification_data() if loss == "cross_entropy" else _regression_data()
    jobs = _jobs(arch, loss, dropout, optimizer, 7, init, epochs=5, schedule="cosine")
    _assert_matches_reference(jobs, data)
    flat = _jobs(arch, loss, dropout, optimizer, 7, init, epochs=5)
    assert not torch.equal(train(jobs, data)[0].params[0], train(flat, data)[0].params[0])


def test_an_unknown_schedule_or_one_with_the_convergence_stop_is_refused():
    with pytest.raises(ValueError, match="schedule"):
        TrainSpec(Arch((2, 1), "none"), schedule="step")
    with pytest.raises(ValueError, match="constant schedule only"):
        TrainSpec(Arch((2, 1), "none"), schedule="cosine", stop_tol=0.01)
    TrainSpec(Arch((2, 1), "none"), schedule="cosine", stop_below=0.01)  # a floor is fine


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_weight_decay_on_biases_only_when_asked(optimizer):
    data = _classification_data()
    for decay_bias in (False, True):
        jobs = _jobs(Arch((5, 8, 3), "relu"), "cross_entropy", None, optimizer, 8,
                     epochs=4, decay_bias=decay_bias)
        jobs = [Job(j.spec, j.seed, j.lr, weight_decay=0.5, momentum=j.momentum,
                    betas=j.betas) for j in jobs]  # a decay large enough to show
        _assert_matches_reference(jobs, data)


def test_penalty_rows_and_active_inputs_match_reference():
    arch = Arch((5, 1), "none")
    spec = TrainSpec(arch, "sgd", "half_mse", epochs=4, batch_size=5, init="normal",
                     init_scale=0.5)
    data = _regression_data(n=30)
    jobs = [Job(spec, seed=3, lr=0.03, l2_penalty=0.5, rows=tuple(range(0, 30, 2)),
                active_inputs=2),
            Job(spec, seed=4, lr=0.02, l2_penalty=0.0, rows=tuple(range(1, 30, 2)),
                active_inputs=5)]
    _assert_matches_reference(jobs, data)
    # the masked inputs' weights stay exactly zero: a degree-1 model is a degree-1 model
    assert torch.all(train(jobs[:1], data)[0].params[0][2:] == 0)


@pytest.mark.parametrize("activation", ["none", "relu", "sigmoid"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_tied_autoencoder_equals_torch_nn_with_shared_weights(activation, optimizer):
    """The decoder is the encoder's W^T: one tensor, its gradient the sum of both uses."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(40, 12, generator=g)
    data = TrainData(x, x, x[:10], x[:10])
    spec = TrainSpec(Arch((12, 4, 12), activation, tied=True), optimizer, "mse", epochs=4,
                     batch_size=8)
    jobs = [Job(spec, seed=s, lr=lr) for s, lr in [(0, 0.05), (1, 0.01)]]
    _assert_matches_reference(jobs, data)
    assert [tuple(p.shape) for p in train(jobs[:1], data)[0].params] == [(12, 4), (4,), (12,)]


def test_gradient_norms_per_layer_equal_autograds():
    """grad_norm_k: the full-batch gradient norm of layer k's weights, at init (epoch 0)
    and at every logged epoch."""
    data = _classification_data()
    spec = TrainSpec(Arch((5, 9, 7, 3), "sigmoid"), "sgd", "cross_entropy", epochs=3,
                     log_every=3, grad_norms=True)
    job = Job(spec, seed=4, lr=0.1)
    res = train([job], data)[0]
    assert [row["epoch"] for row in res.curve] == [0, 3]
    streams = ModelRng(job.seed)
    linears = [_linear(a, b, True, spec, streams.init) for a, b in zip((5, 9, 7), (9, 7, 3))]
    h = data.x_train
    for k, lin in enumerate(linears):
        h = lin(h) if k == 2 else torch.sigmoid(lin(h))
    F.cross_entropy(h, data.y_train).backward()
    for k, lin in enumerate(linears):
        assert res.curve[0][f"grad_norm_{k}"] == pytest.approx(lin.weight.grad.norm().item(),
                                                              rel=1e-5)
    assert all(np.isfinite(res.metrics[f"grad_norm_{k}"]) for k in range(3))


def test_active_inputs_use_the_smaller_layers_default_init():
    """A k-input model draws its init as torch.nn.Linear(k, ...), bound 1/sqrt(k)."""
    spec = TrainSpec(Arch((6, 4), "none"), "sgd", "mse", epochs=2, batch_size=4)
    data = _regression_data(n=24, d=6)
    data.y_train = data.y_train.expand(-1, 4).contiguous()
    data.y_test = data.y_test.expand(-1, 4).contiguous()
    _assert_matches_reference([Job(spec, seed=s, lr=0.05, active_inputs=k)
                               for s, k in [(0, 1), (1, 3), (2, 6)]], data)


@pytest.mark.parametrize("sizes", [(50, 20, 3), (7, 1), (3, 64, 64, 10)])
def test_default_init_is_torch_nn_linear(sizes):
    """Bit for bit what torch.nn.Linear's constructor draws from the same stream."""
    gen = torch.Generator().manual_seed(123)
    params = init_params(Arch(sizes), gen)
    torch.manual_seed(123)
    layers = [nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])]
    expected = [t for lin in layers for t in (lin.weight.detach().T, lin.bias.detach())]
    for got, want in zip(params, expected, strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("init,fn", [
    ("xavier_uniform", lambda w, g: nn.init.xavier_uniform_(w, generator=g)),
    ("xavier_normal", lambda w, g: nn.init.xavier_normal_(w, generator=g)),
    ("he_uniform", lambda w, g: nn.init.kaiming_uniform_(w, nonlinearity="relu", generator=g)),
    ("he_normal", lambda w, g: nn.init.kaiming_normal_(w, nonlinearity="relu", generator=g)),
    ("normal", lambda w, g: nn.init.normal_(w, 0.0, 0.05, generator=g)),
    ("constant", lambda w, g: nn.init.constant_(w, 0.05)),
])
def test_named_inits_are_torch_nn_init(init, fn):
    sizes = (30, 20, 4)
    params = init_params(Arch(sizes), torch.Generator().manual_seed(5), init, 0.05)
    gen = torch.Generator().manual_seed(5)
    for layer, (a, b) in enumerate(zip(sizes, sizes[1:])):
        w = torch.empty(b, a)
        fn(w, gen)
        assert torch.equal(params[2 * layer], w.T)
        assert torch.equal(params[2 * layer + 1], torch.zeros(b))  # biases start at zero


def test_default_init_spread_is_torch_nn_linears():
    """The distribution, not only the draw: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    w = init_params(Arch((400, 300)), torch.Generator().manual_seed(0))[0]
    bound = 1 / 400 ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound
    assert abs(w.std().item() - bound / 3 ** 0.5) < 0.01 * bound  # the uniform's std


def test_penalty_in_loss_equals_sgd_weight_decay():
    spec = TrainSpec(Arch((5, 1), "none"), "sgd", "half_mse", epochs=5, batch_size=4)
    data = _regression_data()
    a, b = train([Job(spec, 0, 0.05, l2_penalty=0.3), Job(spec, 0, 0.05, weight_decay=0.3)],
                 data)
    for pa, pb in zip(a.params, b.params):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- position independence


def _position_data(n: int, d: int, c: int) -> TrainData:
    g = torch.Generator().manual_seed(11)
    x = torch.rand(n, d, generator=g)
    if c == 1:
        y = (x.sum(1, keepdim=True) - d / 2) / d
    else:
        y = (x[:, : min(d, c)].argmax(1) + (x[:, -1] > 0.7).long()) % c
    return TrainData(x, y, x[: n // 3], y[: n // 3])


POSITION_CASES = {
    # name: (sizes, activation, loss, optimizer, batch, dropout, epochs); every batch
    # size leaves a partial last batch, and no per-model slab is a multiple of the
    # vector width
    "mlp_10_out_dropout": ((29, 67, 33, 10), "relu", "cross_entropy", "sgd", 16, (0.5, 0.5),
                           30),
    "mlp_10_out": ((29, 67, 33, 10), "relu", "cross_entropy", "sgd", 16, (), 30),
    "mlp_3_out_full_batch": ((2, 37, 3), "relu", "cross_entropy", "adam", None, (), 60),
    "mlp_3_out_dropout": ((13, 21, 3), "relu", "cross_entropy", "adam", 9, (0.3,), 40),
    "regression_1_out": ((19, 23, 1), "relu", "mse", "momentum", 7, (), 40),
    "regression_1_out_dropout": ((19, 23, 1), "relu", "mse", "sgd", 7, (0.2,), 40),
    "sigmoid_full_batch": ((2, 37, 3), "sigmoid", "cross_entropy", "adam", None, (), 40),
    "gelu_minibatch": ((13, 21, 17, 3), "gelu", "cross_entropy", "sgd", 9, (), 30),
    "tanh_regression": ((19, 23, 1), "tanh", "half_mse", "nesterov", 7, (0.1,), 30),
}


@pytest.mark.parametrize("case", sorted(POSITION_CASES))
def test_identical_jobs_agree_at_every_position(case):
    """The same job at every position of groups of several sizes, odd and even: one
    set of numbers, bit for bit, and the same as the job trained alone."""
    sizes, activation, loss, optimizer, batch, dropout, epochs = POSITION_CASES[case]
    data = _position_data(101, sizes[0], sizes[-1])
    spec = TrainSpec(Arch(sizes, activation), optimizer, loss, epochs=epochs, batch_size=batch,
                     log_every=10, init="normal", init_scale=0.1)
    job = Job(spec, seed=0, lr=0.1 if optimizer != "adam" else 0.01, momentum=0.9,
              dropout=dropout)
    alone = train([job], data)[0]
    for size in (2, 3, 8):
        for pos, res in enumerate(train([job] * size, data)):
            assert res.curve == alone.curve, (size, pos)
            for a, b in zip(res.params, alone.params):
                assert torch.equal(a, b), (size, pos)


def test_isolation_adding_cells_changes_nothing():
    arch = Arch((5, 12, 10, 3), "relu")
    spec = TrainSpec(arch, "adam", "cross_entropy", epochs=30, batch_size=7)
    data = _classification_data()
    target = Job(spec, seed=7, lr=0.01, weight_decay=1e-3, dropout=(0.3, 0.2))
    alone = train([target], data)[0]
    others = [Job(spec, seed=s, lr=lr, dropout=(0.5, 0.0)) for s, lr in
              [(1, 0.1), (2, 0.001), (3, 0.02), (4, 0.5)]]
    for k in range(len(others) + 1):  # the target at every position of a group of 5
        together = train(others[:k] + [target] + others[k:], data)[k]
        assert alone.curve == together.curve
        for a, b in zip(alone.params, together.params):
            assert torch.equal(a, b)


def test_divergence_is_flagged_and_isolated():
    spec = TrainSpec(Arch((5, 1), "none"), "sgd", "mse", epochs=30, batch_size=5)
    data = _regression_data()
    good = [Job(spec, seed=0, lr=0.01), Job(spec, seed=1, lr=0.05)]
    bad = Job(spec, seed=2, lr=10.0)
    alone = train(good, data)
    mixed = train([good[0], bad, good[1]], data)
    assert mixed[1].diverged and mixed[1].diverged_epoch is not None
    assert not mixed[0].diverged and not mixed[2].diverged
    for a, b in zip(alone, [mixed[0], mixed[2]]):
        for pa, pb in zip(a.params, b.params):
            assert torch.equal(pa, pb)
        assert a.metrics == b.metrics


def test_grouping_by_shape_keeps_grid_order():
    data = _classification_data()
    specs = [TrainSpec(Arch((5, w, 3), "relu"), "sgd", "cross_entropy", epochs=2) for w in (4, 8)]
    jobs = [Job(specs[i % 2], seed=i, lr=0.1) for i in range(6)]
    results = train(jobs, data, options=EngineOptions(group_size=2))
    for job, res in zip(jobs, results):
        assert res.job is job
        assert res.params[0].shape == (5, job.spec.arch.sizes[1])
    again = train(jobs, data)
    assert [r.metrics for r in results] == [r.metrics for r in again]


def test_plan_trains_no_model_alone_and_hands_out_the_costliest_groups_first():
    """A lone model trains beside a copy of itself (twice the work), so a spec with more
    than one model never gets a group of one; the longest groups go to the workers first,
    so none starts last while the other workers idle."""
    from pipeline.engine import plan_groups

    wide = TrainSpec(Arch((2, 100, 3), "relu"), "adam", "cross_entropy", epochs=200)
    long = TrainSpec(Arch((2, 100, 3), "relu"), "sgd", "cross_entropy", epochs=10000)
    jobs = [Job(wide, seed=s, lr=0.01) for s in range(15)]
    jobs += [Job(long, seed=s, lr=0.1) for s in range(5)]
    # 3000 rows: a block of one model is 5 MB, so the cache bound asks for pairs
    groups = plan_groups(jobs, 3000, EngineOptions(workers=2))
    assert sorted(i for g in groups for i in g) == list(range(len(jobs)))
    assert min(len(g) for g in groups) >= 2
    assert {jobs[i].spec for i in groups[0]} == {long}
    assert all(jobs[i].spec == wide for g in groups[-len(groups) // 2:] for i in g)
    # small data, many steps: bound by the steps' fixed cost, so one group per worker
    poly = TrainSpec(Arch((20, 1), "none", bias=False), "sgd", "mse", epochs=1500,
                     batch_size=10)
    small = [Job(poly, seed=s, lr=0.01, active_inputs=d + 1) for d in range(20)
             for s in range(5)]
    assert sorted(map(len, plan_groups(small, 100, EngineOptions(workers=2)))) == [50, 50]


def test_curves_log_every_k_and_final_epoch_with_validation():
    spec = TrainSpec(Arch((5, 8, 3), "relu"), "adam", "cross_entropy", epochs=7, log_every=3)
    res = train([Job(spec, 0, 0.01)], _classification_data())[0]
    assert [row["epoch"] for row in res.curve] == [3, 6, 7]
    assert set(res.metrics) == {f"{s}_{m}" for s in ("train", "val", "test")
                                for m in ("loss", "acc")}
    assert res.curve[-1]["train_loss"] < res.curve[0]["train_loss"] * 1.5


def test_worker_processes_give_identical_numbers():
    data = _classification_data()
    specs = [TrainSpec(Arch((5, w, 3), "tanh"), "adam", "cross_entropy", epochs=3, batch_size=8)
             for w in (6, 9)]
    jobs = [Job(specs[i % 2], seed=i, lr=0.01, dropout=(0.2,)) for i in range(6)]
    local = train(jobs, data)
    pooled = train(jobs, data, options=EngineOptions(workers=2))
    for a, b in zip(local, pooled):
        assert a.job == b.job and a.curve == b.curve
        for pa, pb in zip(a.params, b.params):
            assert torch.equal(pa, pb)


def _same(a, b) -> None:
    assert a.job == b.job and a.curve == b.curve and a.metrics == b.metrics
    for pa, pb in zip(a.params, b.params):
        assert torch.equal(pa, pb)


def test_parts_train_as_one_run_and_give_each_part_its_own_numbers(tmp_path):
    """Parts on different data share one pool: each part's results are those of the part
    trained alone, in its order, with the cell cache too."""
    from pipeline.engine import train_parts
    from pipeline.engine.cache import CellCache

    specs = [TrainSpec(Arch((5, w, 3), "tanh"), "adam", "cross_entropy", epochs=3,
                       batch_size=8) for w in (6, 9)]
    parts = [([Job(specs[(i + k) % 2], seed=i, lr=0.01 * (k + 1)) for i in range(5)],
              _classification_data(seed=k)) for k in range(3)]
    alone = [train(jobs, data) for jobs, data in parts]
    for options in (EngineOptions(workers=2), EngineOptions(),
                    EngineOptions(workers=2, cache=CellCache(tmp_path))):
        together = train_parts(parts, options=options)
        assert [len(r) for r in together] == [5, 5, 5]
        for a_part, t_part in zip(alone, together):
            for a, t in zip(a_part, t_part):
                _same(a, t)
    # a part with one new job among stored ones: only it trains, in its place
    jobs, data = parts[1]
    grown = jobs[:2] + [Job(specs[0], seed=7, lr=0.02)] + jobs[2:]
    warm = train_parts([parts[0], (grown, data)], options=EngineOptions(
        workers=2, cache=CellCache(tmp_path)))
    assert [bool(r.extra.get("cached")) for r in warm[1]] == [True, True, False, True, True, True]
    for a, t in zip(alone[0] + alone[1][:2] + train(grown[2:3], data) + alone[1][2:],
                    warm[0] + warm[1]):
        _same(a, t)


def test_cell_cache_trains_only_new_cells(tmp_path):
    from pipeline.engine.cache import CellCache

    data = _classification_data()
    spec = TrainSpec(Arch((5, 8, 3), "relu"), "adam", "cross_entropy", epochs=3, batch_size=8)
    first = [Job(spec, seed=s, lr=0.01, dropout=(0.3,)) for s in range(3)]
    cached = EngineOptions(cache=CellCache(tmp_path))
    cold = train(first, data, options=cached)
    assert not any(r.extra.get("cached") for r in cold)
    grown = first + [Job(spec, seed=9, lr=0.01, dropout=(0.3,))]
    warm = train(grown, data, options=cached)
    assert [bool(r.extra.get("cached")) for r in warm] == [True, True, True, False]
    uncached = train(grown, data)
    for a, b in zip(warm, uncached):
        assert a.curve == b.curve and a.metrics == b.metrics and a.diverged == b.diverged
        for pa, pb in zip(a.params, b.params):
            assert torch.equal(pa, pb)
    # another dataset or another knob is another key
    other = train(first[:1], _classification_data(seed=1), options=cached)
    assert not other[0].extra.get("cached")


def test_cache_key_covers_every_engine_file_and_the_platform(tmp_path, monkeypatch):
    from pipeline.engine import blas, cache

    base = cache.engine_digest()
    engine_dir = tmp_path / "engine"
    engine_dir.mkdir()
    for path in sorted(cache.Path(cache.__file__).parent.glob("*.py")):
        (engine_dir / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(cache, "__file__", str(engine_dir / "cache.py"))
    assert cache.engine_digest() == base
    (engine_dir / "new_module.py").write_text("X = 1\n")  # a module no list names
    assert cache.engine_digest() != base
    (engine_dir / "new_module.py").unlink()
    other = "AVX2" if torch.backends.cpu.get_cpu_capability() != "AVX2" else "AVX512"
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: other)
    assert cache.engine_digest() != base
    monkeypatch.undo()
    monkeypatch.setattr(blas, "mode", lambda: "mkl-cbwr-2")
    assert cache.engine_digest() != base
    monkeypatch.undo()
    monkeypatch.setattr(blas, "processor", lambda: "another CPU")
    assert cache.engine_digest() != base


def test_cache_key_names_the_gpu_a_cell_trained_on(tmp_path, monkeypatch):
    """A GPU's cells are keyed by its name and CUDA version, so one GPU's cells are never
    served to another; a CPU's key holds the processor through the engine digest."""
    from pipeline.engine import blas, cache

    store = cache.CellCache(tmp_path)
    job = Job(TrainSpec(Arch((2, 3), "none")), seed=0, lr=0.1)
    cpu = store.key(job, "data", torch.device("cpu"))
    monkeypatch.setattr(blas, "arithmetic", lambda device: "GPU A, CUDA 13.0")
    a = store.key(job, "data", torch.device("cuda"))
    assert store.key(job, "data", torch.device("cpu")) == cpu
    monkeypatch.setattr(blas, "arithmetic", lambda device: "GPU B, CUDA 13.0")
    b = store.key(job, "data", torch.device("cuda"))
    assert len({cpu, a, b}) == 3


def test_mkls_reproducible_mode_is_named_in_words():
    from pipeline.engine import blas

    assert blas.describe(65538) == "MKL reproducible mode (branch auto, strict)"
    assert blas.describe(10) == "MKL reproducible mode (branch AVX2)"
    assert blas.describe(65548) == "MKL reproducible mode (branch AVX-512, strict)"
    assert blas.describe(1) == "MKL reproducible mode (branch 1)"


def test_blas_runs_in_its_reproducible_mode():
    from pipeline.engine import blas

    if blas._mkl() is None:
        pytest.skip("this torch has no MKL")
    train([Job(TrainSpec(Arch((5, 3)), epochs=1), 0, 0.1)], _classification_data())
    get = blas._mkl()[0]
    assert get(blas.CBWR_ALL) & blas.CBWR_STRICT


class _Scalars(TorchDispatchMode):
    """Under FakeTensorMode: a number read out of a tensor (a bool() or .item() check)
    is a constant, so that the loop runs on to its next tensor op."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            t = args[0]
            return True if t.dtype == torch.bool else 1.0 if t.is_floating_point() else 1
        return func(*args, **(kwargs or {}))


DEVICE_KINDS = {
    # spec, extra job knobs, data: every kind of tensor a group makes
    "cross_entropy_adam_full_batch_dropout": (
        TrainSpec(Arch((5, 16, 3), "relu"), "adam", epochs=1), {"dropout": (0.5,)},
        _classification_data),
    "cross_entropy_sgd_minibatch_grad_norms": (
        TrainSpec(Arch((5, 8, 8, 3), "tanh"), "sgd", epochs=1, batch_size=16, grad_norms=True),
        {"dropout": (0.2, 0.0), "weight_decay": 1e-3}, _classification_data),
    "mse_momentum_l2_fold_masked_inputs": (
        TrainSpec(Arch((5, 1), "none"), "nesterov", loss="half_mse", epochs=1,
                  batch_size=8), {"momentum": 0.9, "l2_penalty": 0.1, "active_inputs": 3,
                                  "rows": tuple(range(0, 40, 2))}, _regression_data),
    "mse_adamw_tied_autoencoder": (
        TrainSpec(Arch((5, 2, 5), "none", tied=True), "adamw", loss="mse", epochs=1),
        {"weight_decay": 0.01}, lambda: _autoencoder_data()),
}


CNN_DEVICE_KINDS = {
    "cnn_sgd_minibatch_dropout_grad_norms": (
        TrainSpec(ConvNet((1, 6, 6), (("conv", 2, 3, 1), ("act", "relu"), ("maxpool", 2),
                                      ("flatten",), ("dropout",), ("linear", 3))),
                  "momentum", epochs=1, batch_size=16, grad_norms=True),
        {"dropout": (0.5,), "momentum": 0.9, "weight_decay": 1e-3}, lambda: _image_data()),
    "cnn_adam_full_batch": (
        TrainSpec(ConvNet((1, 6, 6), (("conv", 2, 3), ("act", "sigmoid"), ("avgpool", 2),
                                      ("flatten",), ("linear", 3))), "adam", epochs=1),
        {}, lambda: _image_data()),
}


def _image_data() -> TrainData:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, 6, 6, generator=g)
    y = torch.randint(0, 3, (40,), generator=g)
    return TrainData(x, y, x[:8], y[:8], x[8:16], y[8:16])


def _autoencoder_data() -> TrainData:
    x = torch.randn(32, 5, generator=torch.Generator().manual_seed(0))
    return TrainData(x, x, x[:8], x[:8])


@pytest.mark.parametrize("kind", DEVICE_KINDS)
def test_every_tensor_a_group_makes_follows_its_device(kind):
    """A group trained on a fake CUDA device (FakeTensorMode: no GPU needed): any tensor
    the loop makes on another device and mixes in fails the step. Each step runs: the
    init, the batches, dropout masks, loss and gradients, the optimizer (all models, then
    some frozen), the evaluation and gradient-norm log, the results."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    spec, knobs, make = DEVICE_KINDS[kind]
    real = make()
    cuda = torch.device("cuda")
    jobs = [Job(spec, seed=s, lr=0.01, **knobs) for s in range(3)]
    with FakeTensorMode(allow_non_fake_inputs=True), _Scalars():
        data = TrainData(*(None if t is None else
                           torch.empty(t.shape, dtype=t.dtype, device=cuda)
                           for t in (getattr(real, f.name) for f in fields(real))))
        group = Group(jobs, data, cuda)
        assert all(p.device.type == "cuda" for p in group.params)
        for idx in group.batches()[:2]:
            x, y, parts = group.rows_of(idx)
            loss, grads = group.loss_and_grads(x, y, group.dropout_masks(group.row_count(x)),
                                               parts)
            assert loss.device.type == "cuda" and all(g.device.type == "cuda" for g in grads)
            group.update(grads)
        group.all_active = False  # some models frozen: the masked optimizer step
        group.update(grads)
        group.log(1)
        assert len(group.results(0.0)) == len(jobs)


class _MetaReads(_Scalars):
    """On the meta device (shapes, no values): a number read out of a tensor is a
    constant, and a copy to the CPU (the log's) is a tensor of ones."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._to_copy.default and args[0].device.type == "meta" \
                and kwargs.get("device") == torch.device("cpu"):
            return torch.ones(args[0].shape, dtype=kwargs.get("dtype") or args[0].dtype)
        return super().__torch_dispatch__(func, types, args, kwargs)


@pytest.mark.parametrize("kind", CNN_DEVICE_KINDS)
def test_every_tensor_a_cnn_group_makes_follows_its_device(kind):
    """A CNN group on torch's meta device: autograd, which a CNN's gradients come from,
    needs a real GPU under FakeTensorMode, but runs on meta tensors anywhere, and any
    tensor made on the CPU and mixed with them fails the step."""
    spec, knobs, make = CNN_DEVICE_KINDS[kind]
    meta = torch.device("meta")
    jobs = [Job(spec, seed=s, lr=0.01, **knobs) for s in range(3)]
    with _MetaReads():
        data = make().to(meta)
        group = Group(jobs, data, meta)
        for idx in group.batches()[:2]:
            x, y, parts = group.rows_of(idx)
            loss, grads = group.loss_and_grads(x, y, group.dropout_masks(group.row_count(x)),
                                               parts)
            assert loss.device == meta and all(g.device == meta for g in grads)
            group.update(grads)
        group.all_active = False
        group.update(grads)
        group.log(1)
        assert len(group.results(0.0)) == len(jobs)


def test_a_converged_model_stops_and_its_numbers_do_not_depend_on_its_group():
    """Trained until converged (stop_tol): each model stops at its own epoch, its curve
    ends there, and it is the same bit for bit alone, beside faster or slower models, at
    any position; the group stops once every model has."""
    from pipeline.engine.stopping import settled, window

    g = torch.Generator().manual_seed(3)  # least squares with noise: a loss floor
    x = torch.randn(60, 5, generator=g)
    y = x @ torch.randn(5, 1, generator=g) + 0.5 * torch.randn(60, 1, generator=g)
    data = TrainData(x, y, x[:20], y[:20])
    spec = TrainSpec(Arch((5, 1), "none"), "sgd", "mse", epochs=400, log_every=10,
                     stop_tol=0.01)
    jobs = [Job(spec, seed=s, lr=lr) for s, lr in [(0, 0.3), (1, 0.002), (2, 0.01)]]
    alone = [train([j], data)[0] for j in jobs]
    stops = [r.stopped_epoch for r in alone]
    # the fast and the middle rate converge at their own epochs, the slow one never does
    assert stops[0] < stops[2] < spec.epochs and stops[1] is None, stops
    for r in alone:
        if r.stopped_epoch is not None:  # converged by the rule the outcomes read
            assert r.curve[-1]["epoch"] == r.stopped_epoch < spec.epochs
            assert settled(r.curve, window(spec.epochs), 0.01) == 1.0
            assert settled(r.curve[:-1], window(spec.epochs), 0.01) != 1.0  # not before
    for order in ([0, 1, 2], [2, 0, 1], [1, 2, 0]):
        together = train([jobs[i] for i in order], data)
        for i, res in zip(order, together):
            assert res.curve == alone[i].curve and res.stopped_epoch == stops[i]
            for a, b in zip(res.params, alone[i].params):
                assert torch.equal(a, b)
    # without stop_tol every model trains all its epochs
    full = train([Job(replace(spec, stop_tol=None), seed=0, lr=0.3)], data)[0]
    assert full.stopped_epoch is None and full.curve[-1]["epoch"] == spec.epochs


def test_a_job_started_from_given_weights_trains_as_from_its_own_draw():
    """Weights equal to the model's own init give the same bits; other weights give the
    reference model trained alone from them; the cache key names the weights."""
    from pipeline.engine.cache import CellCache

    data = _classification_data()
    arch = Arch((5, 6, 4, 3), "sigmoid")
    spec = TrainSpec(arch, "adam", "cross_entropy", epochs=3, batch_size=8)
    drawn = [Job(spec, seed=s, lr=0.01) for s in range(2)]
    own = [replace(j, start=Weights(tuple(p.numpy() for p in init_params(
        arch, ModelRng(j.seed).init)))) for j in drawn]
    for a, b in zip(train(drawn, data), train(own, data)):
        assert a.curve == b.curve
        assert all(torch.equal(pa, pb) for pa, pb in zip(a.params, b.params))
    gen = torch.Generator().manual_seed(7)
    other = replace(drawn[0], start=Weights(tuple(
        p.numpy() for p in init_params(arch, gen, "normal", 0.5))))
    (res,) = train([other], data)
    for got, want in zip(res.params, reference_train(other, data)):
        torch.testing.assert_close(got, want, rtol=2e-5, atol=2e-6)
    cache = CellCache(Path("unused"))
    assert cache.key(own[0], "d", "cpu") != cache.key(other, "d", "cpu")
    assert cache.key(other, "d", "cpu") == cache.key(replace(other), "d", "cpu")
    wrong = replace(drawn[0], start=Weights((np.zeros((5, 6)),)))
    with pytest.raises(ValueError, match="given weights have shapes"):
        train([wrong], data)
