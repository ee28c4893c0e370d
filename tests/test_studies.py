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
    assert {"train_loss", "test_loss", "diverged", "seconds"} <= set(out.cells.columns)
    assert set(out.curves["cell"]) == set(out.cells["cell"])
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
