"""The batched engine equals torch.nn + torch.optim model by model."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.engine import Arch, Job, ModelRng, TrainData, TrainSpec, init_params, train
from pipeline.engine.models import NN_ACTIVATIONS


def reference_train(job: Job, data: TrainData) -> list[torch.Tensor]:
    """One model, the textbook way: nn.Linear layers, torch.optim, a Python loop.

    It shares only the random streams with the engine (init values, batch order,
    dropout masks), so both see the same numbers.
    """
    spec, arch = job.spec, job.spec.arch
    rng = ModelRng(job.seed)
    init = init_params(arch, rng, spec.init_std, job.active_inputs)
    step = 2 if arch.bias else 1
    linears = []
    for layer, (fan_in, fan_out) in enumerate(zip(arch.sizes, arch.sizes[1:])):
        lin = nn.Linear(fan_in, fan_out, bias=arch.bias)
        with torch.no_grad():
            lin.weight.copy_(init[step * layer].T)
            if arch.bias:
                lin.bias.copy_(init[step * layer + 1])
        linears.append(lin)
    act = NN_ACTIVATIONS[arch.activation]()
    weights = [lin.weight for lin in linears]
    biases = [lin.bias for lin in linears if arch.bias]
    groups = [{"params": weights, "weight_decay": job.weight_decay},
              {"params": biases, "weight_decay": 0.0}]
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
    if job.active_inputs is not None:
        x_all = x_all.clone()
        x_all[:, job.active_inputs:] = 0.0
    n = len(x_all)
    batch = min(spec.batch_size or n, n)
    rates = job.dropout or (0.0,) * arch.n_hidden
    for _ in range(spec.epochs):
        order = rng.permutation(n) if batch < n else torch.arange(n)
        for s in range(0, n, batch):
            idx = order[s:s + batch]
            h = x_all[idx]
            for layer, lin in enumerate(linears):
                h = lin(h)
                if layer < len(linears) - 1:
                    h = act(h) * rng.keep_mask((len(idx), h.shape[1]), rates[layer])
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
    out = []
    for lin in linears:
        out.append(lin.weight.detach().T)
        if arch.bias:
            out.append(lin.bias.detach())
    return out


def _classification_data(n=48, d=5, c=3, seed=0) -> TrainData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, 0] * 2 + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    y = y.clamp(max=c - 1)
    return TrainData(x, y, x[:16] + 0.1, y[:16])


def _regression_data(n=40, d=5, seed=0) -> TrainData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x @ torch.linspace(-1, 1, d) + 0.3)[:, None] + 0.01 * torch.randn(n, 1, generator=g)
    return TrainData(x, y, x[:10] * 1.1, y[:10])


MODEL_KINDS = {
    # name: (arch, loss, dropout per model)
    "linear_regression": (Arch((5, 1), "none"), "half_mse", None),
    "linear_no_bias": (Arch((5, 1), "none", bias=False), "mse", None),
    "mlp_relu": (Arch((5, 16, 3), "relu"), "cross_entropy", None),
    "mlp_linear_act": (Arch((5, 8, 3), "none"), "cross_entropy", None),
    "mlp_tanh_dropout": (Arch((5, 12, 10, 3), "tanh"), "cross_entropy",
                         [(0.0, 0.0), (0.3, 0.5), (0.8, 0.1)]),
    "mlp_gelu": (Arch((5, 8, 3), "gelu"), "cross_entropy", None),
    "mlp_sigmoid": (Arch((5, 8, 3), "sigmoid"), "cross_entropy", None),
    "mlp_leaky_relu": (Arch((5, 8, 3), "leaky_relu"), "cross_entropy", None),
}
OPTIMIZERS = ["sgd", "momentum", "nesterov", "adam", "adamw"]


def _jobs(arch, loss, dropout, optimizer, batch_size, epochs=3, **extra) -> list[Job]:
    spec = TrainSpec(arch, optimizer, loss, epochs=epochs, batch_size=batch_size, log_every=1)
    lrs = [0.05, 0.01, 0.1] if optimizer in ("sgd", "momentum", "nesterov") \
        else [0.01, 0.003, 0.03]
    return [Job(spec, seed=s, lr=lr, weight_decay=wd, momentum=mom,
                betas=betas, dropout=(dropout[i] if dropout else ()), **extra)
            for i, (s, lr, wd, mom, betas) in enumerate(zip(
                [0, 1, 2], lrs, [0.0, 1e-3, 0.1], [0.9, 0.5, 0.3],
                [(0.9, 0.999), (0.8, 0.99), (0.5, 0.9)]))]


@pytest.mark.parametrize("kind,optimizer", list(itertools.product(MODEL_KINDS, OPTIMIZERS)))
@pytest.mark.parametrize("batch_size", [None, 7])
def test_batched_equals_torch_nn_and_optim(kind, optimizer, batch_size):
    arch, loss, dropout = MODEL_KINDS[kind]
    data = _classification_data() if loss == "cross_entropy" else _regression_data()
    jobs = _jobs(arch, loss, dropout, optimizer, batch_size)
    results = train(jobs, data, progress=False)
    for job, res in zip(jobs, results):
        expected = reference_train(job, data)
        for got, want in zip(res.params, expected):
            torch.testing.assert_close(got, want, rtol=2e-5, atol=2e-6)


def test_penalty_rows_and_active_inputs_match_reference():
    arch = Arch((5, 1), "none")
    spec = TrainSpec(arch, "sgd", "half_mse", epochs=4, batch_size=5, init_std=0.5)
    data = _regression_data(n=30)
    jobs = [Job(spec, seed=3, lr=0.03, l2_penalty=0.5, rows=tuple(range(0, 30, 2)),
                active_inputs=2),
            Job(spec, seed=4, lr=0.02, l2_penalty=0.0, rows=tuple(range(1, 30, 2)),
                active_inputs=5)]
    for job, res in zip(jobs, train(jobs, data, progress=False)):
        for got, want in zip(res.params, reference_train(job, data)):
            torch.testing.assert_close(got, want, rtol=2e-5, atol=2e-6)
    # the masked inputs' weights stay exactly zero: a degree-1 model is a degree-1 model
    assert torch.all(train(jobs[:1], data, progress=False)[0].params[0][2:] == 0)


def test_penalty_in_loss_equals_sgd_weight_decay():
    spec = TrainSpec(Arch((5, 1), "none"), "sgd", "half_mse", epochs=5, batch_size=4)
    data = _regression_data()
    a, b = train([Job(spec, 0, 0.05, l2_penalty=0.3), Job(spec, 0, 0.05, weight_decay=0.3)],
                 data, progress=False)
    for pa, pb in zip(a.params, b.params):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def test_isolation_adding_cells_changes_nothing():
    arch = Arch((5, 12, 10, 3), "relu")
    spec = TrainSpec(arch, "adam", "cross_entropy", epochs=4, batch_size=8)
    data = _classification_data()
    target = Job(spec, seed=7, lr=0.01, weight_decay=1e-3, dropout=(0.3, 0.2))
    alone = train([target], data, progress=False)[0]
    others = [Job(spec, seed=s, lr=lr, dropout=(0.5, 0.0)) for s, lr in [(1, 0.1), (2, 0.001)]]
    together = train(others[:1] + [target] + others[1:], data, progress=False)[1]
    for a, b in zip(alone.params, together.params):
        assert torch.equal(a, b)
    assert alone.curve == together.curve


def test_divergence_is_flagged_and_isolated():
    spec = TrainSpec(Arch((5, 1), "none"), "sgd", "mse", epochs=30, batch_size=5)
    data = _regression_data()
    good = [Job(spec, seed=0, lr=0.01), Job(spec, seed=1, lr=0.05)]
    bad = Job(spec, seed=2, lr=10.0)
    alone = train(good, data, progress=False)
    mixed = train([good[0], bad, good[1]], data, progress=False)
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
    results = train(jobs, data, progress=False, group_size=2)
    for job, res in zip(jobs, results):
        assert res.job is job
        assert res.params[0].shape == (5, job.spec.arch.sizes[1])
    again = train(jobs, data, progress=False)
    assert [r.metrics for r in results] == [r.metrics for r in again]


def test_curves_log_every_k_and_final_epoch():
    spec = TrainSpec(Arch((5, 8, 3), "relu"), "adam", "cross_entropy", epochs=7, log_every=3)
    res = train([Job(spec, 0, 0.01)], _classification_data(), progress=False)[0]
    assert [row["epoch"] for row in res.curve] == [3, 6, 7]
    assert set(res.metrics) == {"train_loss", "test_loss", "train_acc", "test_acc"}
    assert res.curve[-1]["train_loss"] < res.curve[0]["train_loss"] * 1.5


def test_default_init_matches_torch_nn_bounds():
    arch = Arch((50, 20, 3))
    params = init_params(arch, ModelRng(0))
    assert params[0].abs().max() <= 1 / 50 ** 0.5 and params[0].abs().max() > 0.8 / 50 ** 0.5
    assert params[2].abs().max() <= 1 / 20 ** 0.5
    std = init_params(arch, ModelRng(0), init_std=0.01)[0].std().item()
    assert 0.008 < std < 0.012


def test_worker_processes_give_identical_numbers():
    data = _classification_data()
    specs = [TrainSpec(Arch((5, w, 3), "tanh"), "adam", "cross_entropy", epochs=3, batch_size=8)
             for w in (6, 9)]
    jobs = [Job(specs[i % 2], seed=i, lr=0.01, dropout=(0.2,)) for i in range(6)]
    local = train(jobs, data, progress=False)
    pooled = train(jobs, data, progress=False, workers=2)
    for a, b in zip(local, pooled):
        assert a.job == b.job and a.curve == b.curve
        for pa, pb in zip(a.params, b.params):
            assert torch.equal(pa, pb)


def test_cell_cache_trains_only_new_cells(tmp_path):
    from pipeline.engine.cache import CellCache

    data = _classification_data()
    spec = TrainSpec(Arch((5, 8, 3), "relu"), "adam", "cross_entropy", epochs=3, batch_size=8)
    first = [Job(spec, seed=s, lr=0.01, dropout=(0.3,)) for s in range(3)]
    cold = train(first, data, progress=False, cache=CellCache(tmp_path))
    assert not any(r.extra.get("cached") for r in cold)
    grown = first + [Job(spec, seed=9, lr=0.01, dropout=(0.3,))]
    warm = train(grown, data, progress=False, cache=CellCache(tmp_path))
    assert [bool(r.extra.get("cached")) for r in warm] == [True, True, True, False]
    uncached = train(grown, data, progress=False)
    for a, b in zip(warm, uncached):
        assert a.curve == b.curve and a.metrics == b.metrics and a.diverged == b.diverged
        for pa, pb in zip(a.params, b.params):
            assert torch.equal(pa, pb)
    # another dataset or another knob is another key
    other = train(first[:1], _classification_data(seed=1), progress=False,
                  cache=CellCache(tmp_path))
    assert not other[0].extra.get("cached")
