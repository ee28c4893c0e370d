"""The engine's CNNs equal torch.nn.Sequential + torch.optim model by model, are drawn as
torch.nn draws them, and a model's numbers do not depend on its group or its position."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.engine import ConvNet, EngineOptions, Job, ModelRng, TrainData, TrainSpec, train
from pipeline.engine.convnet import init_params, nn_weights, shift_images

# a LeNet in miniature: every layer kind, two dropout layers, an 8 x 8 input
SMALL = ConvNet((1, 8, 8), (("conv", 3, 3, 1), ("act", "sigmoid"), ("avgpool", 2),
                            ("conv", 4, 3), ("act", "relu"), ("maxpool", 2), ("dropout",),
                            ("flatten",), ("linear", 7), ("act", "tanh"), ("dropout",),
                            ("linear", 3)))


def _image_data(n=40, seed=0) -> TrainData:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g)
    y = (x[:, 0, :4].sum((1, 2)) > x[:, 0, 4:].sum((1, 2))).long() + \
        (x[:, 0, :, :2].mean((1, 2)) > 0.55).long()
    return TrainData(x, y, x[:12], y[:12], x[12:20], y[12:20])


def reference_train(job: Job, data: TrainData) -> list[torch.Tensor]:
    """One CNN, the textbook way: net.to_torch() initialised by its own constructors from
    the model's init stream, explicitly scaled dropout masks from its dropout stream,
    torch.optim, a Python loop. Returns its parameters in the engine's layout."""
    spec, net = job.spec, job.spec.arch
    streams = ModelRng(job.seed)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.set_state(streams.init.get_state())
        model = net.to_torch()
    kind = spec.optimizer
    weights = [m.weight for m in model if hasattr(m, "weight")]
    biases = [m.bias for m in model if hasattr(m, "bias")]
    groups = [{"params": weights, "weight_decay": job.weight_decay},
              {"params": biases, "weight_decay": 0.0}]
    if kind in ("sgd", "momentum"):
        opt = torch.optim.SGD(groups, lr=job.lr, foreach=False,
                              momentum=0.0 if kind == "sgd" else job.momentum)
    else:
        cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        opt = cls(groups, lr=job.lr, betas=job.betas, foreach=False)
    n = len(data.x_train)
    batch = min(spec.batch_size or n, n)
    rates = iter(job.dropout)
    drop_rates = [next(rates) if isinstance(m, nn.Dropout) else None for m in model]
    for _ in range(spec.epochs):
        order = torch.randperm(n, generator=streams.order) if batch < n else torch.arange(n)
        for s in range(0, n, batch):
            idx = order[s:s + batch]
            h = data.x_train[idx]
            if spec.shift:
                h = shift_images(h, streams.shifts(len(h), spec.shift), spec.shift)
            for m, p in zip(model, drop_rates):
                if p is None:
                    h = m(h)
                elif p > 0:
                    keep = torch.rand(h.shape, generator=streams.dropout) >= p
                    h = h * keep / (1 - p)
            loss = F.cross_entropy(h, data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    out = []
    for w, b in zip(weights, biases):
        out += [w.detach().reshape(w.shape[0], -1).T, b.detach()]
    return out


@pytest.mark.parametrize("optimizer,batch_size,shift", [
    ("sgd", None, 0), ("momentum", 16, 0), ("adam", 16, 0), ("adamw", None, 0),
    ("adam", 16, 2), ("sgd", None, 1)])
def test_cnn_equals_torch_nn_sequential_and_optim(optimizer, batch_size, shift):
    """Each model of a group, with its own seed, learning rate, decay, momentum and
    dropout rates (and, with shift, its own shifted images), ends where
    torch.nn.Sequential + torch.optim trained alone ends."""
    spec = TrainSpec(SMALL, optimizer, epochs=4, batch_size=batch_size, shift=shift)
    lr = 0.01 if optimizer.startswith("adam") else 0.3
    jobs = [Job(spec, seed=s, lr=lr * f, weight_decay=wd, momentum=0.9, dropout=d)
            for s, f, wd, d in [(0, 1.0, 0.0, (0.0, 0.0)), (1, 0.5, 1e-2, (0.3, 0.5)),
                                (2, 2.0, 1e-3, (0.5, 0.0))]]
    data = _image_data()
    for job, res in zip(jobs, train(jobs, data)):
        want = reference_train(job, data)
        assert len(res.params) == len(want)
        for got, exp in zip(res.params, want):
            torch.testing.assert_close(got, exp, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("init", ["torch", "xavier_uniform", "he_normal"])
def test_cnn_init_is_torch_nn_conv2d_and_linear(init):
    """The engine's draw is torch.nn's, layer by layer: the default is the modules' own
    constructors; a named init is torch.nn.init on each kernel in its (out, in, k, k)
    shape (so its fans count the receptive field), with zero biases."""
    gen = torch.Generator().manual_seed(5)
    ours = nn_weights(SMALL, init_params(SMALL, gen, init))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.default_generator.set_state(torch.Generator().manual_seed(5).get_state())
        model = SMALL.to_torch()
        if init != "torch":
            gen2 = torch.Generator().manual_seed(5)
            fn = {"xavier_uniform": nn.init.xavier_uniform_,
                  "he_normal": lambda w, generator: nn.init.kaiming_normal_(
                      w, nonlinearity="relu", generator=generator)}[init]
            for m in model:
                if hasattr(m, "weight"):
                    fn(m.weight.data, generator=gen2)
                    m.bias.data.zero_()
    want = [t.detach() for m in model if hasattr(m, "weight") for t in (m.weight, m.bias)]
    assert [tuple(t.shape) for t in ours] == [tuple(t.shape) for t in want]
    for a, b in zip(ours, want):
        assert torch.equal(a, b)


@pytest.mark.parametrize("optimizer,batch_size,dropout,shift", [
    ("sgd", 7, (0.3, 0.2), 0), ("adam", None, (0.0, 0.0), 0), ("adam", 7, (0.3, 0.0), 2)])
def test_cnn_jobs_agree_at_every_position_and_worker_count(optimizer, batch_size, dropout,
                                                           shift):
    """The same CNN job alone, at every position of groups of 2, 3 and 5, and over two
    worker processes: one set of numbers, bit for bit."""
    spec = TrainSpec(SMALL, optimizer, epochs=6, batch_size=batch_size, log_every=2,
                     shift=shift)
    job = Job(spec, seed=3, lr=0.2 if optimizer == "sgd" else 0.01, dropout=dropout)
    data = _image_data(43)  # a partial last batch
    alone = train([job], data)[0]
    others = [Job(spec, seed=s, lr=job.lr * 1.5, dropout=dropout) for s in range(4)]
    for size in (2, 3, 5):
        for pos in range(size):
            jobs = others[:pos] + [job] + others[pos:size - 1]
            res = train(jobs, data)[pos]
            assert res.curve == alone.curve, (size, pos)
            assert all(torch.equal(a, b) for a, b in zip(res.params, alone.params))
    pooled = train(others + [job], data, options=EngineOptions(workers=2, group_size=2))[-1]
    assert pooled.curve == alone.curve
    assert all(torch.equal(a, b) for a, b in zip(pooled.params, alone.params))


def test_cnn_logs_validation_and_test_accuracy_and_stops_when_converged():
    spec = TrainSpec(SMALL, "adam", epochs=40, batch_size=None, log_every=1, stop_tol=0.05)
    res = train([Job(spec, seed=0, lr=0.01), Job(spec, seed=1, lr=0.01)], _image_data())
    for r in res:
        assert {"train_loss", "train_acc", "val_acc", "test_acc"} <= set(r.metrics)
        assert r.stopped_epoch is not None and r.stopped_epoch < 40
        assert len(r.curve) == r.stopped_epoch


@pytest.mark.parametrize("layers,message", [
    ((("conv", 4, 9), ("flatten",), ("linear", 2)), "no output"),
    ((("linear", 3),), "flat input"),
    ((("conv", 2, 3), ("act", "swish"), ("flatten",), ("linear", 2)), "unknown activation"),
    ((("conv", 2, 3),), "ends in a flat output"),
    ((("flatten",), ("maxpool", 2), ("linear", 2)), "needs an image"),
])
def test_a_layer_that_cannot_follow_is_refused_by_position(layers, message):
    with pytest.raises(ValueError, match=message):
        ConvNet((1, 8, 8), layers)


@pytest.mark.parametrize("arch", ["cnn", "mlp"])
def test_splits_evaluated_where_each_model_ends_give_the_same_numbers(arch):
    """With splits_at_end, validation and test are evaluated once, where each model's
    training ends (it converged, or reached the bound): the final metrics and parameters
    are those of evaluating at every log; only the intermediate rows lack the splits."""
    from pipeline.engine import Arch

    data = _image_data()
    if arch == "mlp":
        flat = lambda t: t.reshape(len(t), -1)  # noqa: E731
        data = TrainData(flat(data.x_train), data.y_train, flat(data.x_test), data.y_test,
                         flat(data.x_val), data.y_val)
    net = Arch((64, 12, 3), "relu") if arch == "mlp" else ConvNet(
        (1, 8, 8), (("conv", 4, 3, 1), ("act", "relu"), ("maxpool", 2), ("flatten",),
                    ("linear", 3)))
    every = TrainSpec(net, "adam", epochs=40, batch_size=16, log_every=2, stop_below=0.3,
                      diverge_factor=3.0)
    once = TrainSpec(net, "adam", epochs=40, batch_size=16, log_every=2, stop_below=0.3,
                     diverge_factor=3.0, splits_at_end=True)
    # one fits its rows and stops, one barely moves (trains to the bound), one diverges
    jobs = lambda spec: [Job(spec, seed=s, lr=lr) for s, lr in  # noqa: E731
                         [(0, 0.03), (1, 1e-6), (2, 50.0)]]
    full, ends = train(jobs(every), data), train(jobs(once), data)
    assert [(r.stopped_epoch is not None, r.diverged) for r in ends] == \
        [(True, False), (False, False), (False, True)]
    for a, b in zip(full, ends):
        assert b.stopped_epoch == a.stopped_epoch and b.diverged == a.diverged
        assert set(b.metrics) == set(a.metrics)
        for k in a.metrics:
            assert a.metrics[k] == b.metrics[k] or (np.isnan(a.metrics[k]) and
                                                    np.isnan(b.metrics[k])), k
        assert all(torch.equal(p, q) for p, q in zip(a.params, b.params))
        assert all("val_acc" not in row for row in b.curve[:-1])
        np.testing.assert_array_equal([r["train_loss"] for r in b.curve],
                                      [r["train_loss"] for r in a.curve])


def test_a_model_stops_where_it_fits_its_training_rows_and_counts_as_converged():
    """stop_below: each model stops at the first log whose training loss is at or below
    the floor, and only there (a loss still falling fast does not stop it, as a settled
    accuracy would under stop_tol); the outcomes flag it converged by the same floor."""
    from pipeline import outcomes

    net = ConvNet((1, 8, 8), (("conv", 4, 3, 1), ("act", "relu"), ("maxpool", 2),
                              ("flatten",), ("linear", 3)))
    spec = TrainSpec(net, "adam", epochs=80, batch_size=16, log_every=2, stop_below=0.05)
    for res in train([Job(spec, seed=s, lr=0.03) for s in range(3)], _image_data()):
        losses = [r["train_loss"] for r in res.curve]
        assert res.stopped_epoch == res.curve[-1]["epoch"] < 80
        assert losses[-1] <= 0.05 and all(v > 0.05 for v in losses[:-1])
        assert outcomes.converged(res.curve, 80, 1e-9, below=0.05) == 1.0
        # above the floor it has not converged, whatever the relative rule would say
        assert outcomes.converged(res.curve[:-1], 80, 1.0, below=0.05) == 0.0


def test_frozen_models_are_skipped_and_change_no_other_models_numbers():
    """Once a model stops (or diverges) its group no longer computes it; the models still
    training end exactly where they end alone, and so does the stopped one."""
    net = ConvNet((1, 8, 8), (("conv", 4, 3, 1), ("act", "relu"), ("maxpool", 2),
                              ("flatten",), ("linear", 3)))
    spec = TrainSpec(net, "adam", epochs=60, batch_size=16, log_every=2, stop_below=0.1,
                     diverge_factor=3.0)
    jobs = [Job(spec, seed=0, lr=0.03), Job(spec, seed=1, lr=1e-4), Job(spec, seed=2, lr=50.0)]
    data = _image_data()
    together = train(jobs, data)
    assert together[0].stopped_epoch and not together[1].stopped_epoch and together[2].diverged
    for job, res in zip(jobs, together):
        alone = train([job], data)[0]
        np.testing.assert_array_equal([r["train_loss"] for r in res.curve],
                                      [r["train_loss"] for r in alone.curve])
        assert all(torch.equal(a, b) for a, b in zip(res.params, alone.params))


@pytest.mark.parametrize("shape,k", [((3, 2, 8, 8), 2), ((3, 2, 9, 7), 2), ((2, 3, 10, 11), 3)])
def test_pools_give_torchs_values_and_gradients(shape, k):
    """The engine's strided-view pools equal F.avg_pool2d / F.max_pool2d, forward and
    backward, including rows and columns no window covers."""
    from pipeline.engine.pooling import avg_pool, max_pool

    x = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1),
                    requires_grad=True)
    for ours, theirs in ((avg_pool, F.avg_pool2d), (max_pool, F.max_pool2d)):
        out, ref = ours(x, k), theirs(x, k)
        up = torch.randn_like(ref)
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(torch.autograd.grad(out, x, up)[0],
                                   torch.autograd.grad(ref, x, up)[0], rtol=1e-12, atol=1e-12)


def test_max_pool_gives_a_tied_windows_gradient_to_its_first_maximum_as_torch_does():
    """After a ReLU whole windows tie at zero: the gradient goes to the first maximum in
    row-major order, once per window, as torch's kernel sends it."""
    from pipeline.engine.pooling import max_pool

    x = torch.zeros(2, 3, 6, 6)
    x[:, :, ::2, 1::2] = 1.0                      # ties between positions 1 and 2 of a window
    x[:, :, 1::2, ::2] = 1.0
    x[0, 0, :2, :2] = 0.0                         # a window tied at zero everywhere
    x.requires_grad_()
    up = torch.arange(2 * 3 * 9, dtype=torch.float32).view(2, 3, 3, 3)
    ours = torch.autograd.grad(max_pool(x, 2), x, up)[0]
    theirs = torch.autograd.grad(F.max_pool2d(x, 2), x, up)[0]
    assert torch.equal(ours, theirs)


def test_shift_images_moves_each_image_by_its_own_shift_with_a_zero_border():
    """Each image moves by its own (down, right) shift, pixel for pixel as a loop over
    its pixels moves it, and what no pixel moved into is zero."""
    x = torch.arange(3 * 2 * 5 * 6, dtype=torch.float32).view(3, 2, 5, 6) + 1
    shifts = torch.tensor([[0, 0], [2, -1], [-1, 2]])
    out = shift_images(x, shifts, 2)
    want = torch.zeros_like(x)
    for b, (down, right) in enumerate(shifts.tolist()):
        for i in range(5):
            for j in range(6):
                if 0 <= i - down < 5 and 0 <= j - right < 6:
                    want[b, :, i, j] = x[b, :, i - down, j - right]
    assert torch.equal(out, want)
    assert torch.equal(out[0], x[0])


def test_shift_changes_training_and_each_model_draws_its_own():
    """With shift a model trains on moved images (its numbers differ from shift 0), drawn
    from its own stream: two seeds draw different shifts, one seed the same every run."""
    from pipeline.engine import ModelRng

    data = _image_data()
    plain, moved = (Job(TrainSpec(SMALL, "adam", epochs=2, batch_size=16, shift=s), 0, 0.01)
                    for s in (0, 1))
    assert not torch.equal(train([plain], data)[0].params[0], train([moved], data)[0].params[0])
    assert torch.equal(ModelRng(4).shifts(50, 2), ModelRng(4).shifts(50, 2))
    assert not torch.equal(ModelRng(4).shifts(50, 2), ModelRng(5).shifts(50, 2))
    assert set(ModelRng(4).shifts(500, 2).flatten().tolist()) == {-2, -1, 0, 1, 2}


def test_shift_is_refused_where_it_cannot_apply():
    from pipeline.engine import Arch

    with pytest.raises(ValueError, match="at least 0"):
        TrainSpec(SMALL, shift=-1)
    with pytest.raises(ValueError, match="whole number"):
        TrainSpec(SMALL, shift=1.5)
    with pytest.raises(ValueError, match="out of its frame"):
        TrainSpec(SMALL, shift=8)
    with pytest.raises(ValueError, match="ConvNet only"):
        TrainSpec(Arch((4, 3)), shift=1)


@pytest.mark.parametrize("padding", [0, 1, 2])
def test_a_one_channel_convolutions_own_backward_gives_torchs_gradients(padding):
    """The first layer's backward in the channels-last layout: gradients of the input,
    kernel and bias as torch's own (gradcheck in float64), and a convolution without a
    bias or without gradients goes to F.conv2d."""
    from pipeline.engine.convnet import _OneChannelConv, conv2d

    g = torch.Generator().manual_seed(padding)
    x = torch.rand(3, 1, 7, 7, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 1, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: _OneChannelConv.apply(*t, padding), (x, w, b))
    out = conv2d(x, w, b, padding)
    assert out.grad_fn is not None and "OneChannelConv" in type(out.grad_fn).__name__
    torch.testing.assert_close(out, F.conv2d(x, w, b, padding=padding))
    assert "OneChannelConv" not in type(conv2d(x, w, None, padding).grad_fn).__name__
    with torch.no_grad():
        torch.testing.assert_close(conv2d(x, w, b, padding), F.conv2d(x, w, b, padding=padding))
