"""Every study satisfies the study interface and reproduces its science on the tiny
profile; its choices never look at test numbers."""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd
import pytest

from pipeline import choices, stats, studies
from pipeline.config import load_config
from pipeline.datasets import draw, with_draws
from pipeline.findings import to_json
from pipeline.report import numbers
from pipeline.studies.base import Study, run_study
from tests.conftest import TINY

FIGURE_KINDS = {"lines", "bars", "heatmap", "classmap", "images"}


@functools.cache
def _data() -> dict:
    config = load_config(TINY)
    return {name: with_draws(name, config) for name in type(config.data).model_fields}


@pytest.fixture(scope="module")
def outputs(tiny_studies):
    return tiny_studies[0]


def _finding(analysis, id_: str):
    return next(f for f in analysis.findings if f.id == id_)


def _ref(analysis, id_: str):
    return next(r for r in analysis.references if r.id == id_)


@pytest.mark.parametrize("name", studies.names())
def test_every_study_satisfies_the_interface(outputs, name):
    study, out, analysis = outputs[name]
    cls = type(study)
    assert issubclass(cls, Study) and cls.name == name
    assert cls.title and cls.question and cls.datasets
    grid = study.cells()
    n = len(grid)  # the grid, then the cells bracketing added, round by round
    assert list(out.cells["cell"]) == list(range(len(out.cells)))
    if study.brackets():
        rounds = out.cells["bracket_round"]
        assert (rounds.iloc[:n] == 0).all() and (rounds.iloc[n:] > 0).all()
        assert rounds.is_monotonic_increasing
    else:
        assert len(out.cells) == n
    for column in grid[0]:
        assert column in out.cells.columns and column in out.curves.columns
    assert {"train_loss", "test_loss", "diverged", "dataset", "seed"} <= set(out.cells.columns)
    assert set(out.curves["cell"]) == set(out.cells["cell"])
    assert {c["dataset"] for c in grid} <= set(study.arrays(_data()))
    # the analysis is data: JSON through and through, every figure a known kind on a table
    # the study writes, every finding and reference unique
    json.dumps([to_json(f) for f in analysis.findings] + [r.to_dict() for r in
                                                          analysis.references])
    ids = [f.id for f in analysis.findings]
    assert len(ids) == len(set(ids)) and analysis.findings
    for fig in analysis.figures:
        kind, table = fig.data.split("/", 1)
        assert fig.kind in FIGURE_KINDS
        frame = (analysis.tables[table][1] if kind == "table"
                 else out.tables[table] if table in out.tables else getattr(out, table))
        for y in fig.y:
            assert y in frame or f"{y}_mean" in frame, (fig.caption, y)
    setting = study.setting()
    assert str(len(study.seeds)) in setting and "\n" not in setting


def test_the_registry_finds_every_study_without_a_list():
    assert set(studies.names()) >= {"spiral", "polynomial", "regularization", "optimizers",
                                    "width_depth", "kfold"}
    assert "base" not in studies.names()
    with pytest.raises(KeyError, match="no study named"):
        studies.load("nonsense")


def test_a_summary_naming_a_missing_column_fails_clearly():
    from pipeline.stats import summarize

    cells = pd.DataFrame({"width": [8, 8, 16], "seed": [0, 1, 0], "acc": [0.5, 0.6, 0.7],
                          "diverged": False})
    with pytest.raises(KeyError, match=r"\['depth'\].*lacks"):
        summarize(cells, ["width", "depth"], ["acc"])


@pytest.mark.parametrize("name", studies.names())
def test_choices_never_look_at_test_numbers(outputs, name):
    """Scramble every test number: every choice a study makes stays the same."""
    study, out, analysis = outputs[name]
    rng = np.random.default_rng(0)
    scrambled = out.cells.copy()
    for col in [c for c in scrambled.columns if c.startswith("test_")]:
        scrambled[col] = rng.permutation(scrambled[col].to_numpy())
    again = study.analyze(type(out)(scrambled, out.curves, out.tables, out.cached))
    before = {f.id: _choice(f) for f in analysis.findings if _choice(f)}
    after = {f.id: _choice(f) for f in again.findings if _choice(f)}
    assert before == after


def _choice(f) -> dict | None:
    """What a finding chose: a selection's data, or the top of a best-of chosen on
    validation data."""
    if f.kind == "selection":  # how the choice stands against the null is a test number,
        # and the words after it give its test number
        return {k: v for k, v in f.data.items()
                if k not in ("null", "null_model", "null_metric", "beats_null", "after")}
    if f.kind == "best" and f.data["chosen_on"]:
        return {"top": f.data["top"], "chosen_on": f.data["chosen_on"]}
    return None


def test_the_settings_text_follows_the_params(outputs):
    study, _, _ = outputs["spiral"]
    config = load_config(TINY)
    longer = config.model_copy(update={"spiral": config.spiral.model_copy(
        update={"epochs": 2000})})
    assert f"{config.spiral.epochs} full-batch steps" in study.setting()
    assert "2000 full-batch steps" in type(study)(longer).setting()
    assert "2000" not in study.setting()


# ---------------------------------------------------------------- the science


def test_spiral_relu_beats_linear(outputs):
    _, out, a = outputs["spiral"]
    course = _finding(a, "course")
    assert course.data["verdict"] == "a" and course.data["mean_a"] > 0.9
    assert course.data["mean_b"] < 0.6  # a linear model stays near chance on 3 spirals
    assert _finding(a, "fair_linear_adam").data["verdict"] == "a"
    b = out.tables["boundaries"]
    assert set(b["predicted"]) <= {0, 1, 2} and len(b) % (20 * 20) == 0


def test_polynomial_picks_the_cubic_on_validation_and_recovers_it(outputs):
    _, out, a = outputs["polynomial"]
    assert _finding(a, "degree").data["chosen"] == 3
    assert a.metrics["chosen_degree"] == 3
    for k in range(4):
        assert _ref(a, f"d2l_cubic_w{k}").reproduced
    mn = out.tables["min_norm"]
    assert mn[mn["n_features"] >= 8]["train_loss"].max() < 1e-6  # interpolation


def test_double_descent_is_in_the_numbers(outputs):
    """On random ReLU features of real digits, the test loss peaks where the features
    reach the training rows and falls past them below the peak, below the best fit under
    the threshold (chosen on validation) and below the null model."""
    _, out, a = outputs["polynomial"]
    dd = out.tables["double_descent"]
    n = int(dd["n_train"].iloc[0])
    loss = dd.groupby("n_features")["test_loss"].mean()
    assert loss.idxmax() == n and loss.iloc[-1] < loss[loss.index < n].min()
    assert (dd[dd["n_features"] > n].groupby("n_features")["train_loss"].max() < 1e-12).all()
    peak, best = _finding(a, "double_descent"), _finding(a, "double_descent_best")
    assert peak.data["verdict"] == "a" and best.data["verdict"] == "a"
    assert best.data["appeared"] and all(best.data["beats"].values())
    assert best.data["test_points"] == len(out.tables["double_descent"].attrs["points"]
                                           .values["test_loss"][0])
    assert "beat the peak, the best fit below the threshold and the null model" in best.text


def test_weight_decay_reproduces_d2l_and_shrinks_weights(outputs):
    _, out, a = outputs["regularization"]
    assert _ref(a, "d2l_weight_norm_0").reproduced and _ref(a, "d2l_weight_norm_3").reproduced
    wd = out.cells[out.cells["experiment"] == "weight_decay"]
    norms = wd.groupby("lambda")["weight_norm"].mean()
    assert norms[3.0] < norms[0.0] / 10
    assert _finding(a, "lambda").data["chosen"] == 3.0


def test_adamws_lambda_is_a_decay_per_step_and_each_form_gets_its_best_pair(outputs):
    """AdamW's lambda is Loshchilov and Hutter's (w -= lambda w a step, whatever the
    learning rate): the engine's weight_decay is lambda / lr; Adam + L2's is lambda. Each
    form's pair is the best on validation accuracy over its whole grid, and the lambda
    choice per learning rate is reported for every rate of the grid."""
    study, out, a = outputs["regularization"]
    p = study.p.adam_decay
    for form in ("adam", "adamw"):
        cell = {"experiment": "adam_decay", "dataset": "images", "optimizer": form,
                "lr": p.lrs[-1], "lambda": 0.001, "seed": 0}
        job = study.job(cell, _data())
        assert job.lr == p.lrs[-1] and job.spec.optimizer == form
        expected = 0.001 / p.lrs[-1] if form == "adamw" else 0.001
        assert job.weight_decay == pytest.approx(expected)
    ad = out.cells[out.cells["experiment"] == "adam_decay"]
    c = _finding(a, "adamw_vs_adam").data
    for side, form in (("a", "adamw"), ("b", "adam")):
        means = ad[ad["optimizer"] == form].groupby(["lr", "lambda"])["val_acc"].mean()
        assert means[(c[side]["lr"], c[side]["lambda"])] == means.max()
    f = _finding(a, "lambda_by_lr")
    assert set(f.data["best"]) == {"adam", "adamw"}
    assert all(len(b) == len(p.lrs) for b in f.data["best"].values())
    # where validation separates no lambda from none, the finding says what that leaves
    assert ("cannot be shown" in f.text) == (not any(f.data["separated"].values()))
    # a learning rate bracketing adds is run with every lambda of its form's grid
    added = ad[ad["bracket_round"] > 0]
    for (form, lr), part in added.groupby(["optimizer", "lr"]):
        grid = p.l2 if form == "adam" else p.decay
        assert set(grid) <= set(part["lambda"]) or lr in p.lrs


def test_kfold_picks_the_cubic_and_flags_an_edge_lambda(outputs):
    _, out, a = outputs["kfold"]
    assert abs(_finding(a, "degree").data["chosen"] - 3) <= 1
    folds = out.cells[out.cells["fold"].notna()]
    per_config = folds.groupby(["selection", "value", "seed"])["fold"].nunique()
    assert (per_config == 5).all() and folds["cv_loss"].notna().all()
    lam = _finding(a, "lambda")
    assert lam.data["chosen"] == max(lam.data["grid"]) and lam.data["edge"]
    assert "chosen at an edge" in lam.text and "the grid's largest" in lam.text


def test_kfold_indices_equal_sklearn_and_cover_every_row_once():
    from sklearn.model_selection import KFold, StratifiedKFold

    from pipeline.studies.kfold import fold_indices

    folds = fold_indices(23, 5, seed=7)
    ref = list(KFold(5, shuffle=True, random_state=7).split(np.zeros(23)))
    for (tr, va), (rtr, rva) in zip(folds, ref):
        assert tr.tolist() == sorted(rtr) and va.tolist() == sorted(rva)
    validation = np.concatenate([va for _, va in folds])
    assert sorted(validation.tolist()) == list(range(23))  # each row validates exactly once
    y = np.array([0, 1] * 10)
    strat = fold_indices(20, 4, seed=1, y=y)
    ref = list(StratifiedKFold(4, shuffle=True, random_state=1).split(np.zeros(20), y))
    assert [va.tolist() for _, va in strat] == [sorted(v) for _, v in ref]


def test_wilson_gradient_descent_generalises_adam_does_not(outputs):
    _, _, a = outputs["optimizers"]
    assert _ref(a, "wilson_gd").reproduced and _ref(a, "wilson_adam").reproduced
    assert _finding(a, "wilson").data["verdict"] == "a"


def test_a_diverging_learning_rate_is_flagged_not_averaged(outputs):
    from pipeline.stats import summarize

    _, out, a = outputs["optimizers"]
    sweep = out.cells[out.cells["experiment"] == "lr_sweep"]
    diverged = sweep[sweep["diverged"]]
    assert len(diverged) and 100.0 in set(diverged["lr"])
    assert (diverged.loc[diverged["lr"] != 100.0, "bracket_round"] > 0).all()  # added
    assert diverged["test_acc"].isna().all() and diverged["diverged_epoch"].notna().all()
    table = summarize(sweep, ["dataset", "optimizer", "lr"], ["test_acc"])
    assert (table[table["lr"] == 100.0]["n_diverged"] > 0).all()
    assert table[table["n"] > 0]["test_acc_mean"].notna().all()  # no NaN leaks into a mean
    text = _finding(a, "diverged").text
    for (dataset, opt), part in sweep[sweep["lr"] == 100.0].groupby(["dataset", "optimizer"]):
        k = int(part["diverged"].sum())
        assert f"{opt} at lr 100 on {dataset} ({k} of {len(part)} seeds)" in text


def test_parameter_counts_match_the_formula_and_torch(outputs):
    from torch import nn

    from pipeline.specs import n_params

    _, out, _ = outputs["width_depth"]
    for row in out.cells.drop_duplicates(["dataset", "depth", "width"]).itertuples():
        n_in, n_out = (2, 3) if row.dataset == "spiral" else (64, 10)
        sizes = [n_in, *[row.width] * row.depth, n_out]
        torch_count = sum(p.numel() for a, b in zip(sizes, sizes[1:])
                          for p in nn.Linear(a, b).parameters())
        assert row.n_params == torch_count == n_params(tuple(sizes))
        assert abs(row.n_params - row.budget) <= 0.1 * row.budget  # a matched budget


def test_width_depth_trains_no_bottleneck_and_each_depth_at_its_own_rate(outputs):
    study, out, a = outputs["width_depth"]
    config = load_config(TINY)
    wide = type(study)(config.model_copy(update={"width_depth": config.width_depth.model_copy(
        update={"images": config.width_depth.images.model_copy(update={"budgets": [1000]}),
                "depths": [1, 4]})}))
    row = wide._matched("images", 1000, 4)
    assert row["matched"] and row["narrow"] and row["width"] < 10
    assert all(c["depth"] == 1 for c in wide.cells() if c["dataset"] == "images")
    assert "narrower than the 10 outputs" in wide._feasible({"dataset": "images",
                                                            "budget": 1000}, 4)
    assert (out.cells["width"] >= out.cells["dataset"].map({"spiral": 3, "images": 10})).all()
    # every depth compared at the learning rate chosen for it on validation accuracy
    cells = out.cells
    for f in a.findings:
        if f.kind != "best":
            continue
        for c in f.data["comparisons"]:
            for side in (c["a"], c["b"]):
                group = stats.where(cells, {k: v for k, v in side.items() if k != "lr"})
                means = group.groupby("lr")["val_acc"].mean()
                assert side["lr"] == means.idxmax(), (f.id, side)


def test_linear_regression_recovers_w_and_b_down_to_the_noise(outputs):
    _, out, a = outputs["linear_regression"]
    d2l = out.cells[(out.cells["lr"] == 0.03) & (out.cells["batch_size"] == 10)]
    true_w = np.array([2.0, -3.4])
    assert (np.abs(d2l[["w0", "w1"]].to_numpy() - true_w) < 0.01).all()
    assert (np.abs(d2l["b"] - 4.2) < 0.01).all()
    floor = 0.01 ** 2 / 2
    assert (d2l["train_loss"] < 3 * floor).all() and (d2l["train_loss"] > floor / 3).all()
    assert _ref(a, "d2l_loss_epoch_3").reproduced


def test_a_linear_regression_at_its_closed_form_optimum_has_converged(outputs):
    """Within converge_tol of the closed-form training loss a run has converged, however
    its minibatch loss moved over the last tenth; further from it, the plateau rule
    decides."""
    study, out, _ = outputs["linear_regression"]
    optimum = out.tables["closed_form"]["train_loss"].iloc[0]
    at = out.cells["train_loss"] <= optimum * (1 + study.config.converge_tol)
    assert at.any() and (out.cells.loc[at, "converged"] == 1.0).all()


def test_a_rate_too_large_for_sgd_diverges_though_its_loss_ends_finite():
    """At batch 100 a learning rate of 3 grows the loss about a millionfold an epoch and
    still ends finite after 3 epochs: past diverge_factor times its first loss it counts
    as diverged, not as a run that does not beat the null; a rate that trains does not."""
    config = load_config(TINY)
    config = config.model_copy(update={"bracket_rounds": 0, "linear_regression":
                                       config.linear_regression.model_copy(
                                           update={"lrs": [0.3, 3.0], "batch_sizes": [100]})})
    study = studies.load("linear_regression")(config)
    out = run_study(study, {"linear": with_draws("linear", config)}, "cpu")
    diverged = out.cells.groupby("lr")["diverged"].all()
    assert diverged[3.0] and not out.cells.loc[out.cells["lr"] == 0.3, "diverged"].any()


def test_deep_sigmoid_gradients_vanish_and_relu_he_keeps_them(outputs):
    _, out, a = outputs["activations"]
    deepest = out.cells["depth"].max()
    deep = out.cells[out.cells["depth"] == deepest]
    sigmoid = deep[(deep["activation"] == "sigmoid") & (deep["init"] == "torch")]
    relu = deep[(deep["activation"] == "relu") & (deep["init"] == "he_normal")]
    assert relu["first_grad_init"].min() > 1e3 * sigmoid["first_grad_init"].max()
    assert _finding(a, "vanishing").data["orders_of_magnitude"] > 3
    # activations and derivatives come from autograd: the derivative of sigmoid is s(1-s)
    shapes = out.tables["shapes"]
    sig = shapes[shapes["activation"] == "sigmoid"]
    np.testing.assert_allclose(sig["derivative"], sig["value"] * (1 - sig["value"]), atol=1e-12)


def test_the_factorial_parts_the_gradient_between_activation_and_init(outputs):
    """At the deepest depth, the log10 first-layer gradient at init: ReLU over sigmoid
    averaged over the random inits, He over the default averaged over the activations, and
    their interaction (He's gain with ReLU against its mean gain over the other
    activations), each recomputed from the cells."""
    _, out, a = outputs["activations"]
    deep = out.cells[(out.cells["depth"] == out.cells["depth"].max())
                     & (out.cells["init"] != "constant")]
    kept = [i for i, g in deep.groupby("init") if (g["first_grad_init"] > 0).all()]
    log = deep[deep["init"].isin(kept)].assign(
        v=lambda d: np.log10(d["first_grad_init"])).set_index(["activation", "init", "seed"])["v"]
    by_act = log.groupby(["activation", "seed"]).mean()
    act = (by_act["relu"] - by_act["sigmoid"]).mean()
    by_init = log.groupby(["init", "seed"]).mean()
    init = (by_init["he_normal"] - by_init["torch"]).mean()
    gain = (log.xs("he_normal", level="init") - log.xs("torch", level="init"))
    others = gain.drop("relu", level="activation").groupby("seed").mean()
    inter = (gain.xs("relu", level="activation") - others).mean()
    got = {k: _finding(a, f"factor_{k}").data for k in ("activation", "init", "interaction")}
    assert got["activation"]["diff"] == pytest.approx(act) and act > 1
    assert got["init"]["diff"] == pytest.approx(init) and init > 1
    assert got["interaction"]["diff"] == pytest.approx(inter)
    assert {d["level"] for d in got.values()} == {choices.family_level(3)}


def test_the_interaction_sets_hes_gain_with_relu_against_every_other_activation():
    """He's gain over torch's default with ReLU against its gain averaged over all the
    other activations (tanh included, not only sigmoid); each activation's gain kept."""
    from pipeline.studies.activations import factorial

    gains = {"relu": 6.0, "sigmoid": 2.0, "tanh": 5.0}
    cells = pd.DataFrame([
        {"depth": 20, "activation": act, "init": init, "seed": seed,
         "first_grad_init": 10.0 ** (-10 + (g if init == "he_normal" else 0) + 0.1 * seed)}
        for act, g in gains.items() for init in ("torch", "he_normal") for seed in range(3)])
    t = factorial(cells, 20)
    inter = t[t["factor"] == "interaction"].groupby("level")["log10_first_grad"].mean()
    assert inter["effect"] == pytest.approx(6.0) and inter["none"] == pytest.approx(3.5)
    gain = t[t["factor"] == "gain"].groupby("level")["log10_first_grad"].mean()
    assert gain.to_dict() == pytest.approx(gains)


def test_constant_initialisation_never_breaks_symmetry(outputs):
    _, out, a = outputs["activations"]
    const = out.cells[out.cells["init"] == "constant"]
    assert len(const) and (const["unit_spread"] == 0).all()
    assert (out.cells[out.cells["init"] != "constant"]["unit_spread"] > 0).all()
    assert "exact copy" in _finding(a, "symmetry").text


def test_exploding_products_reach_d2ls_orders(outputs):
    _, out, a = outputs["activations"]
    assert (out.tables["products"]["log10_max_entry"] > 15).all()
    assert _ref(a, "d2l_exploding_products").n == len(out.tables["products"])


def test_approximation_error_falls_with_width(outputs):
    _, out, a = outputs["approximation"]
    width = out.cells[out.cells["experiment"] == "width"]
    by = width.groupby("width")["mean_error"].mean()
    assert by.iloc[-1] < by.iloc[0] / 2
    assert _finding(a, "width_sin").data["verdict"] == "a"


def test_every_depth_trains_the_same_steps_while_widths_stop_when_converged(outputs):
    """The depth comparison gives each depth the same full-batch steps: none stops at a
    plateau (a deep network may sit on one, then fall); the width grid stops converged
    models."""
    study, out, _ = outputs["approximation"]
    depth = out.cells[out.cells["experiment"] == "depth"]
    cell = depth.iloc[0].to_dict()
    assert study.job(cell, _data()).spec.stop_tol is None
    assert depth["stopped_epoch"].isna().all() if "stopped_epoch" in depth else True
    width = out.cells[out.cells["experiment"] == "width"].iloc[0].to_dict()
    assert study.job(width, _data()).spec.stop_tol == study.config.converge_tol
    last = out.curves[out.curves["experiment"] == "depth"].groupby("cell")["epoch"].max()
    assert (last == study.p.depth.epochs).all()


def test_telgarskys_construction_writes_the_sawtooth_with_few_parameters():
    """Depth log2(T) + 1 of width 2 writes the T-tooth sawtooth exactly (float32 rounding
    aside); one layer fewer writes half the teeth."""
    from pipeline.config import FunctionsData
    from pipeline.datasets import functions
    from pipeline.studies._approximation import telgarsky

    cfg = FunctionsData(n_train=64, n_test=2001, interval=3.14159, teeth=[4, 16])
    d = functions.generate(cfg)
    x = d["x_test"][:, 0]
    for teeth, depth, params in ((4, 3, 19), (16, 5, 31)):
        y = d[f"y_test_sawtooth_{teeth}"][:, 0]
        built = telgarsky(teeth, x, y, cfg.interval)
        assert (built["depth"], built["n_params"]) == (depth, params)
        assert built["test_loss"] < 1e-10
    half = telgarsky(4, x, d["y_test_sawtooth_16"][:, 0], cfg.interval)
    assert half["test_loss"] > 0.01


def test_which_shapes_write_a_sawtooth_by_composing_zigzags():
    """One hidden layer writes at most width + 1 pieces; deeper nets multiply the pieces of
    their layers' zigzags (at most width each)."""
    from pipeline.studies._approximation import folding

    assert folding(32, 1, 16) is None and folding(32, 1, 31) == [32]
    assert folding(32, 3, 4) == [4, 4, 2] and folding(32, 2, 5) is None
    assert folding(32, 4, 3) is None and folding(32, 5, 2) == [2, 2, 2, 2, 2]
    assert folding(8, 4, 3) == [2, 2, 2] and folding(8, 3, 4) == [4, 2]


def test_each_sawtooth_compares_depths_at_their_own_rates_beside_the_null(outputs):
    """Every depth of every sawtooth trains at each rate of the grid; the comparison is
    made at each depth's rate chosen on training loss; the null model, the collapsed runs
    and the construction are reported beside it."""
    study, out, a = outputs["approximation"]
    depth = out.cells[out.cells["experiment"] == "depth"]
    assert set(depth["lr"]) >= set(study.p.depth.lrs)
    own = study.at_own_lr(out.cells)
    for (teeth, d), group in own.groupby(["teeth", "depth"]):
        rows = depth[(depth["teeth"] == teeth) & (depth["depth"] == d)]
        means = rows[~rows["collapsed"].astype(bool)].groupby("lr")["train_loss"].mean()
        if len(means):
            assert group["lr"].iloc[0] == means.idxmin()
    for teeth in study.teeth:
        best = _finding(a, f"depth_{teeth}")
        assert {c["label_a"] for c in best.data["comparisons"]} <= {best.data["top"]}
        fit = _finding(a, f"fit_{teeth}")
        by_depth = fit.data["collapsed_by_depth"]
        assert fit.data["null"] > 0 and set(by_depth) == set(study.p.depth.depths)
        assert fit.data["collapsed"] == sum(by_depth.values())
        assert f"{2 * teeth} linear pieces" in fit.text and fit.data["best"] > 0
        assert [r["teeth"] for r in fit.data["construction"]] == [teeth]
        if all(v is not None for v in fit.data["reach"].values()):
            # a sawtooth every trained shape can write is fitted: well under the null
            assert fit.data["best"] < 0.3 * fit.data["null"], fit.data
    most = max(study.teeth)
    assert study.answer[1:] == (f"fit_{most}", f"depth_{most}")  # beside the null first


def test_the_width_trend_is_judged_on_the_whole_curve(outputs):
    """Per seed, Spearman's rank correlation of width and error over the widths that
    trained; each neighbouring step named where the error does not fall."""
    import re

    from scipy.stats import spearmanr

    _, out, a = outputs["approximation"]
    w = out.cells[(out.cells["experiment"] == "width") & ~out.cells["collapsed"].astype(bool)]
    table = w.pivot_table(index="seed", columns="width", values="mean_error")
    rho = [spearmanr(row.dropna().index, row.dropna().to_numpy()).statistic
           for _, row in table.iterrows() if row.notna().sum() >= 3]
    f = _finding(a, "width_trend_sin")
    assert len(table.columns) >= 3 and f.data["n"] == len(rho)
    assert f.data["rho"] == pytest.approx(np.mean(rho))
    assert f.data["rho"] < 0 and f.data["trend"] != "rises"
    for step in f.data["steps"]:
        lo = w[w["width"] == step["from"]].set_index("seed")["mean_error"]
        hi = w[w["width"] == step["to"]].set_index("seed")["mean_error"]
        assert step["diff"] == pytest.approx((hi - lo).dropna().mean())
        named = re.search(rf"\b{step['from']} to {step['to']}\b", f.text) is not None
        assert named == (step["verdict"] != "tie" or step["diff"] >= 0)
    falls = sum(s["verdict"] == "falls" for s in f.data["steps"])
    assert f"at {falls} of {len(f.data['steps'])} steps" in f.text


def test_a_width_step_without_pairs_is_named_and_left_out_of_the_count():
    """Collapsed runs leave a step with fewer than two pairs: it is not compared, said so,
    and not counted among the steps judged; with one seed the trend cannot be judged."""
    from pipeline.studies._approximation import width_trend

    widths, rows = [1, 2, 4, 8], []
    for seed in range(4):
        for w in widths:
            rows.append({"experiment": "width", "target": "sin", "width": w, "seed": seed,
                         "mean_error": 1.0 / w + 0.01 * seed, "diverged": False,
                         "collapsed": w == 2 and seed > 0, "converged": True})
    f = width_trend(pd.DataFrame(rows), "sin")
    verdicts = {(s["from"], s["to"]): s["verdict"] for s in f.data["steps"]}
    assert verdicts[(1, 2)] == verdicts[(2, 4)] == "not compared" != verdicts[(4, 8)]
    assert "Not compared, with fewer than two seeds trained at both widths: 1 to 2, 2 to 4" \
        in f.text and "of 1 steps" in f.text
    assert "Collapsed and left out: 3 of 16 runs (width 2)" in f.text
    assert f.data["trend"] == "falls" and f.data["collapsed"] == 3
    one = width_trend(pd.DataFrame([r for r in rows if r["seed"] == 0]), "sin")
    assert one.data["trend"] == "cannot be judged" and "1 seed has" in one.text


def test_the_linear_autoencoder_reaches_pca_on_its_training_images(outputs):
    """At its learning rate chosen on validation, annealed to zero, the linear autoencoder
    trains to within converge_tol of PCA's error on its training images at every width
    (PCA's is its optimum), tied and untied; on test it is within 10% of PCA's."""
    study, out, a = outputs["autoencoder"]
    pca = out.tables["pca"].set_index("bottleneck")
    t = a.tables["reconstruction"][1].set_index(["model", "bottleneck"])
    for model in ("linear", "linear, tied"):
        train = t.loc[model, "train_loss_mean"]
        ratio = train / pca.loc[train.index, "pca_train_loss"]
        assert (ratio <= 1 + study.config.converge_tol).all(), (model, ratio)
        test = t.loc[model, "test_loss_mean"]
        assert ((test - pca.loc[test.index, "pca_test_loss"]).abs()
                <= 0.10 * pca.loc[test.index, "pca_test_loss"]).all()
    # each model at each width is at its own chosen rate, from the grid or bracketing
    lrs = _finding(a, "lrs").data["choices"]
    assert set(lrs) == {f"{m}, {k} units" for m, k in t.index}
    for (m, k), row in t.iterrows():
        assert row["lr"] == lrs[f"{m}, {k} units"]["chosen"]


def test_the_relu_optimum_finding_counts_the_widths_short_of_pca(outputs):
    """A ReLU autoencoder can represent the linear one: its training error more than
    converge_tol above PCA's is training stopped short, width by width."""
    study, out, a = outputs["autoencoder"]
    pca = out.tables["pca"].set_index("bottleneck")["pca_train_loss"]
    t = a.tables["reconstruction"][1]
    f = _finding(a, "relu_optimum")
    for model, rows in t[t["activation"] == "relu"].groupby("model"):
        ratio = rows.set_index("bottleneck")["train_loss_mean"] / pca
        want = [int(k) for k, r in ratio.dropna().items() if r > 1 + study.config.converge_tol]
        assert f.data["above"][model] == want
    every = all(len(v) == len(f.data["widths"]) for v in f.data["above"].values())
    assert f.text.startswith("At every width the ReLU autoencoders stop short") == every


def test_the_pca_finding_says_where_training_reached_pca(outputs):
    """PCA's training error is the linear autoencoder's optimum on its training images:
    the finding gives the ratio per width and names the widths more than converge_tol
    above it."""
    study, out, a = outputs["autoencoder"]
    pca = out.tables["pca"].set_index("bottleneck")
    chosen = a.tables["reconstruction"][1].set_index(["model", "bottleneck"])
    ratio = chosen.loc["linear", "train_loss_mean"] / pca["pca_train_loss"]
    # nothing fits its training images better than PCA, at any learning rate
    every = out.cells[out.cells["model"] == "linear"]
    every = every[~stats.failed(every)].merge(pca, on="bottleneck")
    assert (every["train_loss"] > (1 - 1e-3) * every["pca_train_loss"]).all()
    f = _finding(a, "pca")
    assert f.data["train_ratios"] == pytest.approx(ratio.tolist())
    tol = study.config.converge_tol
    assert f.data["reached"] == [int(k) for k, r in ratio.items() if r <= 1 + tol]
    short = [str(int(k)) for k, r in ratio.items() if r > 1 + tol]
    assert (f"above it at {', '.join(short)} units" in f.text) if short else \
        "at every width" in f.text


def test_rbm_features_beat_raw_pixels_as_scikit_learn_reports(outputs):
    """The example's comparison: RBM features ahead of raw pixels on its one test set,
    scored point by point; raw pixels' logistic regression is one fit for every seed."""
    _, out, a = outputs["rbm"]
    ex = out.tables["example"]
    raw = ex[ex["model"] == "raw"]
    assert raw["test_acc"].nunique() == 1 and len(raw) == len(out.cells["seed"].unique())
    c = _finding(a, "rbm_vs_raw").data
    assert c["verdict"] == "a" and c["test_points"] == len(out.tables["example"].attrs[
        "points"].values["test_acc"][0])
    assert c["mean_a"] > c["null"] and c["mean_b"] > c["null"]
    n = len(out.cells["seed"].unique())  # the pairs are RBM seeds, not paired runs
    assert f"{n} RBM seeds, each against the one deterministic raw-pixel fit" in \
        _finding(a, "rbm_vs_raw").text
    # the published tolerance is met before the solver moves: every class alike
    tol = out.tables["published_tol"]
    assert (tol["test_acc"] < 0.2).all()
    assert numbers.fmt(tol["test_acc"].min()) in _finding(a, "published_tol").text


def test_the_dbn_starts_from_its_rbms_and_shares_the_random_models_top_layer(outputs):
    """A pre-trained model's hidden layers are its seed's RBMs (W as (in, out)); its top
    layer is the random-init model's own draw; each seed fine-tunes on its own stratified
    labelled subset, the same for both inits."""
    import torch

    from pipeline.engine import ModelRng, init_params

    study, out, a = outputs["rbm"]
    data = study.arrays(_data())["mnist/flat"]
    cell = {"dataset": "mnist/flat", "labelled": study.p.dbn.labelled[0],
            "lr": study.p.dbn.lrs[0], "seed": study.seeds[1]}
    dbn = study.job(cell | {"init": "dbn"}, _data())
    rand = study.job(cell | {"init": "random"}, _data())
    assert rand.start is None and dbn.rows == rand.rows and len(dbn.rows) == cell["labelled"]
    counts = np.bincount(data["y_train"][list(dbn.rows)], minlength=10)
    assert counts.max() - counts.min() <= 1
    start = dbn.start.tensors()
    rbms = study.pretrained(cell["seed"])
    assert torch.equal(start[0], torch.tensor(rbms[0].components_.T.astype(np.float32)))
    assert torch.equal(start[3], torch.tensor(rbms[1].intercept_hidden_.astype(np.float32)))
    own = init_params(dbn.spec.arch, ModelRng(cell["seed"]).init)
    assert torch.equal(start[4], own[4]) and torch.equal(start[5], own[5])
    f = _finding(a, "dbn_vs_random").data["comparisons"]
    assert [c["setting"] for c in f] == [f"{n} labels" for n in study.p.dbn.labelled]
    for c in f:  # each side at its own learning rate, chosen on validation
        assert c["a"]["lr"] in out.cells["lr"].tolist() and c["null"] is not None


def test_a_study_is_named_only_in_its_own_module():
    """No module of pipeline/ imports a study module, nor names it as a module, but the
    registry, which finds the studies without a list."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "pipeline"
    for name in studies.names():
        pattern = re.compile(rf"studies(\.|/|\s+import\s+)({name})\b")
        for path in root.rglob("*.py"):
            if path.name == f"{name}.py" and path.parent.name == "studies":
                continue
            assert not pattern.search(path.read_text()), f"{path} names the study {name}"


def test_the_default_run_backs_every_verdict():
    """After `make repro`: every sentence of reports/report.html is a finding of
    reports/findings.json, and every verdict there is recomputed from data/results."""
    from pathlib import Path

    from tests.findings_check import check_findings

    root = Path(__file__).resolve().parents[1]
    if not (root / "data" / "results").exists() or not (root / "reports" / "report.html").exists():
        pytest.skip("no default run here: `make repro` first")
    assert check_findings(root, (root / "reports" / "report.html").read_text()) > 20
    from pipeline.report import answers

    for f in json.loads((root / "reports" / "findings.json").read_text()):
        assert ("at an edge" in f["text"]) == ("edge" in answers.tags(f)), f["id"]


def test_the_default_runs_pdf_body_fits_in_20_pages():
    """After `make repro`: the PDF's body, before its appendix, is at most 20 pages."""
    from pathlib import Path

    from pypdf import PdfReader

    root = Path(__file__).resolve().parents[1]
    if not (root / "reports" / "report.pdf").exists():
        pytest.skip("no default run here: `make repro` first")
    pages = [p.extract_text() for p in PdfReader(root / "reports" / "report.pdf").pages]
    appendix = next(i for i, t in enumerate(pages) if "Appendix: findings in full" in t)
    assert appendix <= 20, f"the body takes {appendix} pages"


def test_depth_overall_counts_which_side_wins_each_comparison():
    """Across budgets: a comparison a deeper network wins says depth helped; one the
    shallower network wins, that it did not; ties count for neither."""
    from pipeline.report.answers import comparison
    from pipeline.studies.width_depth import WidthDepth

    def c(verdict, a, b):
        return comparison({"metric": "test_acc", "a": {}, "b": {}, "label_a": a,
                           "label_b": b, "higher_is_better": True, "n": 5, "mean_a": 0.9,
                           "mean_b": 0.8, "diff": 0.1, "low": 0.05, "high": 0.15,
                           "verdict": verdict, "pair_on": ["seed"], "identical": False})

    depth = {"depth 1": 1, "depth 2": 2, "depth 3": 3}
    shallow = [("images", 1000, choices.Best("depth 1", [c("a", "depth 1", "depth 3"),
                                                        c("tie", "depth 1", "depth 2")]), depth),
               ("spiral", 100, choices.Best("depth 2", [c("tie", "depth 2", "depth 1")]), depth)]
    mine = pd.DataFrame({"depth": [1, 2, 3], "converged": [1.0, 0.0, 0.0]})
    f = WidthDepth._overall(shallow, mine)
    assert f.text.startswith("No budget showed depth helping")
    assert f.data["shallower"] == ["images at 1000 parameters, depth 1 over depth 3"]
    assert f.data["depth_1_chosen"] == 1 and f.data["unconverged"] == 2
    # the comparisons behind each claim travel with it, for the default-run check
    assert [c["setting"] for c in f.data["backing"]] == ["images at 1000 parameters"]
    deep = shallow + [("images", 5000, choices.Best("depth 1", [c("b", "depth 1", "depth 2")]),
                       depth)]
    f = WidthDepth._overall(deep, mine)
    assert f.data["deeper"] == ["images at 5000 parameters, depth 2 over depth 1"]
    assert f.text.startswith("A deeper network beats a shallower one in 1 comparison:")


def test_a_finding_that_says_it_is_at_an_edge_is_tagged_so(outputs):
    """The edge tag reads the finding's data: every edge note goes with it (add_edge)."""
    from pipeline.report import answers

    said = 0
    for _, _, a in outputs.values():
        for f in a.findings:
            row = {"id": f.id, "kind": f.kind, "text": f.text, "data": f.data}
            said += "at an edge" in f.text
            assert ("at an edge" in f.text) == ("edge" in answers.tags(row)), f.id
    assert said  # the tiny profile's grids leave some choices at an edge


def test_the_no_feature_baseline_is_said_by_where_the_interval_lies():
    """Weight decay's chosen fit beside predicting the training mean: the interval of its
    test loss covers the baseline, lies below it, or above it, and each is said so."""
    from pipeline.studies._regularization import baseline

    table = pd.DataFrame({"lambda": [0.0, 300.0], "test_loss_mean": [80.0, 0.0109],
                          "test_loss_ci95": [5.0, 0.0003], "val_loss_mean": [70.0, 0.01248]})
    base = pd.Series({"test_loss": 0.0107, "val_loss": 0.0124})
    text = baseline(base, table, 300.0).text
    assert "covers that value: on test loss, the fit is indistinguishable" in text
    assert "validation loss, 0.0124, lies below every lambda's mean (the least: 0.0125, " \
        "at lambda 300)" in text
    below = baseline(pd.Series({"test_loss": 0.02, "val_loss": 0.02}), table, 300.0).text
    assert "lies below it: the fit captures something" in below and "validation" not in below
    above = baseline(pd.Series({"test_loss": 0.005, "val_loss": 0.0124}), table, 300.0).text
    assert "lies above it: the fit is further off than the baseline" in above


def test_a_spiral_choice_read_back_from_its_table_keeps_its_edge():
    """A table read back from CSV holds NaN where a choice has no edge."""
    from pipeline.studies.spiral import _limit

    rows = pd.DataFrame({"limit": ["the grid's largest", float("nan")]})
    assert [_limit(r) for r in rows.itertuples()] == ["the grid's largest", ""]


def test_a_dropout_pair_at_its_grid_end_says_which_rate_and_how_flat():
    """p2 0.8 is its grid's largest; the pair one step inside (0.2/0.5) is level with it
    on validation, so the paired difference is printed; p1 0.2 is inside its grid."""
    from pipeline.studies._regularization import pair_edges

    def cells(at_08):
        return pd.DataFrame([{"p1": 0.2, "p2": p2, "seed": s, "val_acc": v, "diverged": False}
                             for p2, vs in ((0.5, (0.96, 0.97, 0.95)), (0.8, at_08))
                             for s, v in enumerate(vs)])

    grids = ([0.0, 0.2, 0.5], [0.0, 0.5, 0.8])
    flat = pair_edges(cells((0.965, 0.955, 0.964)), 0.2, 0.8, *grids)
    assert [numbers.numbers(x) for x in flat] == [
        "p2 0.8: the grid's largest; validation accuracy does not separate it from 0.2/0.5 "
        "(difference 0.001, 95% CI -0.036 to 0.038)"]
    steep = pair_edges(cells((0.99, 0.995, 0.985)), 0.2, 0.8, *grids)
    assert steep == ["p2 0.8: the grid's largest"]


def test_with_data_seeds_each_seed_trains_on_its_own_draw(outputs):
    from pipeline.engine import TrainData, train

    study, out, _ = outputs["spiral"]
    arrays = _data()["spiral"]
    assert study.config.data.spiral.data_seeds
    course = out.cells[out.cells["experiment"] == "course"]
    for seed in study.seeds[1:]:
        row = course[course["seed"] == seed].iloc[0]
        job = study.job(row.to_dict(), _data())
        own = train([job], TrainData.from_arrays(draw(arrays, seed)))[0]
        shared = train([job], TrainData.from_arrays(arrays))[0]
        assert own.metrics["train_loss"] == row["train_loss"]  # bit for bit
        assert shared.metrics["train_loss"] != row["train_loss"]


def test_each_cnn_step_adds_one_ingredient_to_the_step_before():
    """LeNet-5 as d2l writes it (61,706 parameters), then each step of the ladder changes
    exactly what it names and nothing else; d2l's MLP beside it."""
    from pipeline.studies.cnn import LADDER, Cnn, Params, network

    p = Params(variants=list(LADDER))
    nets = {v: network(v, p) for v in p.variants}
    assert nets["mlp"].layers == (("flatten",), ("linear", 256), ("act", "relu"),
                                  ("linear", 10))
    lenet = nets["lenet"]
    assert lenet.layers == (("conv", 6, 5, 2), ("act", "sigmoid"), ("avgpool", 2),
                            ("conv", 16, 5), ("act", "sigmoid"), ("avgpool", 2), ("flatten",),
                            ("linear", 120), ("act", "sigmoid"), ("linear", 84),
                            ("act", "sigmoid"), ("linear", 10))
    assert lenet.n_params() == 61706

    def changed(a, b):
        return [(x, y) for x, y in zip(a.layers, b.layers) if x != y]

    assert changed(lenet, nets["relu"]) == [(("act", "sigmoid"), ("act", "relu"))] * 4
    assert changed(nets["relu"], nets["maxpool"]) == [(("avgpool", 2), ("maxpool", 2))] * 2
    with_dropout = [layer for layer in nets["dropout"].layers if layer != ("dropout",)]
    assert tuple(with_dropout) == nets["maxpool"].layers
    assert nets["dropout"].dropout_widths() == [120, 84]
    assert changed(nets["dropout"], nets["wider"]) == [(("conv", 6, 5, 2), ("conv", 16, 5, 2)),
                                                       (("conv", 16, 5), ("conv", 32, 5))]
    assert nets["shift"] == nets["wider"]  # the same network, its images moved
    study = Cnn.__new__(Cnn)
    study.p = p
    data = {"mnist": {"y_train": np.arange(700) % 10}}
    specs = {v: study.job({"variant": v, "lr": 0.01, "seed": 0}, data).spec for v in p.variants}
    assert [v for v, s in specs.items() if s.shift] == ["shift"]
    assert specs["shift"].shift == p.shift


def test_cnn_ladder_pairs_each_variant_at_its_own_learning_rate(outputs):
    """Each comparison is one step of the ladder, each side at its own learning rate
    chosen on validation, paired by seed; each seed trains on its own stratified subset;
    epochs to the target are read off each run's own curve; a variant where every run
    failed is named and skipped, not compared."""
    study, out, a = outputs["cnn"]
    cells, p = out.cells, study.p
    lost = [v for v in p.variants if stats.failed(cells[cells["variant"] == v]).all()]
    assert lost == ["lenet"]  # the tiny profile's sigmoid LeNet never leaves its plateau
    assert _finding(a, "learned_nothing").data["variants"] == lost
    learned = [v for v in p.variants if v not in lost]
    lrs = _finding(a, "lrs").text
    ladder = _finding(a, "ladder").data["comparisons"]
    assert len(ladder) == len(learned) - 1
    for c, before, after in zip(ladder, learned, learned[1:]):
        assert c["a"]["variant"] == after and c["b"]["variant"] == before
        for side, v in (("a", after), ("b", before)):
            assert f"{v} {c[side]['lr']:g}" in lrs
    # the ingredients together: the last network against the first CNN that learned, each
    # at its own rate (here sigmoid LeNet learned nothing, so ReLU LeNet is the first)
    total = _finding(a, "ladder_total").data
    assert (total["a"]["variant"], total["b"]["variant"]) == (learned[-1], learned[1])
    for side in ("a", "b"):
        assert f"{total[side]['variant']} {total[side]['lr']:g}" in lrs
    assert "ladder_total" in study.answer
    # a variant whose runs at its chosen rate did not fit their images is named
    bracket = study.brackets()[0]
    unfit = [v for v in learned if (stats.where(cells, {
        "variant": v, "lr": bracket.select(cells, {"variant": v}).chosen})["train_loss"]
        > p.fit_loss).any()]
    assert unfit and _finding(a, "unfit").data["variants"] == unfit
    data = _data()["mnist"]
    rows = [study.job(c, _data()).rows for c in study.cells()[:1] + study.cells()[-1:]]
    assert all(len(r) == p.train_images for r in rows)
    counts = np.bincount(data["y_train"][list(rows[0])], minlength=10)
    assert counts.max() - counts.min() <= 1
    for i in cells.index[:6]:
        curve = out.curves[out.curves["cell"] == cells.loc[i, "cell"]]
        hit = curve[1 - curve["train_acc"] <= p.target_error]["epoch"]
        want = hit.iloc[0] if len(hit) else np.nan
        got = cells.loc[i, "epochs_to_target"]
        assert (np.isnan(want) and np.isnan(got)) or got == want


def _rbm_fit(seed: int) -> np.ndarray:
    from sklearn.neural_network import BernoulliRBM

    x = np.random.default_rng(0).random((200, 30))
    return BernoulliRBM(n_components=8, n_iter=3, random_state=seed).fit(x).components_


def test_work_outside_the_engine_gives_the_same_numbers_in_parallel():
    """in_parallel returns each call's result in the order given, whatever `workers`."""
    from pipeline.studies.base import in_parallel

    calls = [(_rbm_fit, (seed,)) for seed in (3, 1, 2)]
    serial, parallel = in_parallel(calls, 1), in_parallel(calls, 2)
    assert all(np.array_equal(a, b) for a, b in zip(serial, parallel))
    assert np.array_equal(serial[0], _rbm_fit(3)) and not np.array_equal(serial[0], serial[1])


def test_every_draw_trains_in_one_part_with_each_models_own_numbers():
    """Where each seed has its own draw, the models of every draw share groups (each on
    its draw's rows of the joined training rows) and give the numbers of their draw
    trained alone; results keep the job the study made."""
    import torch

    from pipeline.engine import TrainData, train
    from pipeline.studies.base import part_data, train_cells

    config = load_config(TINY)
    study = studies.load("optimizers")(config)
    data = _data()
    grid = [c for c in study.cells() if c["dataset"] == "spiral"][:6]
    assert len({c["seed"] for c in grid}) >= 2  # more than one draw
    joined, offsets = part_data(data["spiral"], "cpu")
    n = len(draw(data["spiral"], grid[0]["seed"])["x_train"])
    assert offsets[grid[0]["seed"]][1] == n and len(joined.x_train) == n * len(offsets)
    together = train_cells(study, grid, data, study.arrays(data), "cpu")
    for cell, res in zip(grid, together):
        job = study.job(cell, data)
        alone = train([job], TrainData.from_arrays(draw(data["spiral"], cell["seed"])))[0]
        assert res.job == job and res.curve == alone.curve
        assert all(torch.equal(a, b) for a, b in zip(res.params, alone.params))
