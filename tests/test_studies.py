"""The studies reproduce the science on the tiny profile, with tidy outputs."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import load_config
from pipeline.datasets import GENERATORS
from pipeline.studies import STUDIES
from tests.conftest import TINY


@pytest.fixture(scope="module")
def outputs():
    config = load_config(TINY)
    data = {name: gen(getattr(config.data, name)) for name, gen in GENERATORS.items()}
    result = {}
    for name, module in STUDIES.items():
        grid = module.cells(config)
        out = module.run(config, grid, data, "cpu")
        result[name] = (grid, out, module.summarize(out))
    return result


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_tidy_tables_carry_config_columns(outputs, name):
    grid, out, metrics = outputs[name]
    assert len(out.cells) == len(grid)
    assert list(out.cells["cell"]) == list(range(len(grid)))
    for column in grid[0]:
        assert column in out.cells.columns and column in out.curves.columns
    assert {"train_loss", "test_loss", "diverged"} <= set(out.cells.columns)
    assert list(out.timing["cell"]) == list(out.cells["cell"]) and (out.timing["seconds"] > 0).all()
    assert set(out.curves["cell"]) == set(out.cells["cell"])
    assert metrics["diverged_cells"] == int(out.cells["diverged"].sum())
    if name != "optimizers":  # the tiny optimizers grid has a diverging lr on purpose
        assert metrics["diverged_cells"] == 0


def test_spiral_relu_beats_linear(outputs):
    _, out, metrics = outputs["spiral"]
    acc = metrics["adam_test_acc"]
    assert acc["relu"] > 0.85 and acc["none"] < 0.65
    assert set(out.tables["boundaries"]["activation"]) == {"none", "relu"}
    # the boundary grid is a mesh of class predictions
    b = out.tables["boundaries"]
    assert set(b["predicted"]) <= {0, 1, 2} and len(b) == 2 * 20 * 20


def test_polynomial_cubic_recovers_truth_better_than_linear(outputs):
    _, out, metrics = outputs["polynomial"]
    err = metrics["weight_error_by_degree"]
    assert err["3"] < err["1"] / 2
    test = metrics["test_loss_by_degree"]
    assert test["3"] < test["1"] and metrics["best_degree"] == 3
    w = out.tables["weights"]
    cubic = w[w["degree"] == 3].groupby("index")["weight"].mean()
    np.testing.assert_allclose(cubic.values, [5.0, 1.2, -3.4, 5.6], atol=0.6)
    mn = out.tables["min_norm"]
    # minimum-norm fits interpolate once features reach the training-set size
    assert mn[mn["n_features"] >= 8]["train_loss"].max() < 1e-6


def test_weight_decay_shrinks_weights_and_forms_agree(outputs):
    _, _, metrics = outputs["regularization"]
    for form in ("penalty", "decoupled"):
        norm = metrics[f"weight_norm_{form}"]
        assert norm["3.0"] < norm["0.0"] / 10
        loss = metrics[f"test_loss_{form}"]
        assert loss["3.0"] < loss["0.0"]
    np.testing.assert_allclose(list(metrics["weight_norm_penalty"].values()),
                               list(metrics["weight_norm_decoupled"].values()), rtol=1e-3)


def test_dropout_narrows_the_generalisation_gap(outputs):
    _, _, metrics = outputs["regularization"]
    gap = metrics["dropout_gap"]
    assert gap["0.5/0.5"] < gap["0.0/0.0"]


def test_kfold_indices_equal_sklearn_and_cover_every_row_once():
    from sklearn.model_selection import KFold, StratifiedKFold

    from pipeline.studies.kfold import fold_indices

    folds = fold_indices(23, 5, seed=7)
    ref = list(KFold(5, shuffle=True, random_state=7).split(np.zeros(23)))
    for (tr, va), (rtr, rva) in zip(folds, ref):
        assert tr.tolist() == sorted(rtr) and va.tolist() == sorted(rva)
    validation = np.concatenate([va for _, va in folds])
    assert sorted(validation.tolist()) == list(range(23))  # each row validates exactly once
    for tr, va in folds:
        assert not set(tr) & set(va) and len(tr) + len(va) == 23
    y = np.array([0, 1] * 10)
    strat = fold_indices(20, 4, seed=1, y=y)
    ref = list(StratifiedKFold(4, shuffle=True, random_state=1).split(np.zeros(20), y))
    assert [va.tolist() for _, va in strat] == [sorted(v) for _, v in ref]


def test_kfold_picks_a_degree_near_the_truth_and_keeps_fold_rows(outputs):
    grid, out, metrics = outputs["kfold"]
    assert abs(metrics["degree"]["chosen"] - 3) <= 1
    folds = out.cells[out.cells["fold"].notna()]
    k = int(folds["fold"].max()) + 1
    per_config = folds.groupby(["selection", "value", "seed"])["fold"].nunique()
    assert (per_config == k).all() and folds["val_loss"].notna().all()
    sel = out.tables["selection"]
    assert sel.groupby("selection")["chosen"].sum().tolist() == [1, 1]
    assert metrics["lambda"]["chosen"] == 3.0  # d2l's over-fitting regression needs decay


def test_adam_falls_faster_than_sgd_at_a_small_learning_rate(outputs):
    _, out, _ = outputs["optimizers"]
    c = out.curves
    small = c[(c["dataset"] == "spiral") & (c["lr"] == c["lr"].min())]
    loss = small.groupby(["optimizer", "epoch"])["train_loss"].mean().unstack(0)
    assert (loss["adam"] < loss["sgd"]).all()
    assert loss["adam"].iloc[-1] < loss["sgd"].iloc[-1] * 0.9


def test_wilson_gradient_descent_generalises_adam_does_not(outputs):
    _, _, metrics = outputs["optimizers"]
    err = metrics["wilson_test_error"]
    assert err["sgd"] < 0.05 and err["adam"] > 0.3


def test_parameter_counts_match_the_formula_and_torch(outputs):
    from torch import nn

    from pipeline.studies.width_depth import n_params

    _, out, _ = outputs["width_depth"]
    for row in out.cells.drop_duplicates(["dataset", "depth", "width"]).itertuples():
        n_in, n_out = (2, 3) if row.dataset == "spiral" else (64, 10)
        formula = (n_in + 1) * row.width + (row.depth - 1) * (row.width + 1) * row.width \
            + (row.width + 1) * n_out
        sizes = [n_in, *[row.width] * row.depth, n_out]
        torch_count = sum(p.numel() for a, b in zip(sizes, sizes[1:])
                          for p in nn.Linear(a, b).parameters())
        assert row.n_params == formula == torch_count == n_params(tuple(sizes))
    budgets = out.tables["budgets"]
    assert (budgets["n_params"] <= budgets["budget"]).all()


def test_a_diverging_learning_rate_is_flagged_not_averaged(outputs):
    from pipeline.report.aggregate import study_tables

    _, out, metrics = outputs["optimizers"]
    sweep = out.cells[out.cells["experiment"] == "lr_sweep"]
    diverged = sweep[sweep["diverged"]]
    assert len(diverged) and set(diverged["lr"]) == {100.0}
    assert diverged["test_acc"].isna().all() and diverged["diverged_epoch"].notna().all()
    assert not sweep[sweep["lr"] < 1]["diverged"].any()
    table = study_tables("optimizers", out.cells)["optimizers_lr_sweep"]
    at_100 = table[table["lr"] == 100.0]
    assert (at_100["n_diverged"] > 0).all()
    finite = table[table["n"] > 0]
    assert finite["test_acc_mean"].notna().all()  # no NaN leaks into a mean
