"""What each model did beyond its metrics: null scores, collapse, convergence, and test
points, and how comparisons use them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipeline import choices, outcomes, stats
from pipeline.report import answers, words

N = 359  # the digits' test set


def _accuracy_cells(net: list[int], disagree: int = 20, seed: int = 0):
    """Two models per seed on one test set of N points: in every seed they disagree on
    the same `disagree` points (the hard ones), a right on (disagree + net[s]) / 2 of
    them: a wins by net[s] points."""
    rng = np.random.default_rng(seed)
    rows, points = [], outcomes.Points()
    where = rng.choice(N, disagree, replace=False)
    for s, k in enumerate(net):
        a = (rng.random(N) < 0.9).astype(float)
        b = a.copy()
        a_right = k + (disagree - k) // 2  # and b right on the rest: a ahead by k
        a[where[:a_right]], b[where[:a_right]] = 1.0, 0.0
        a[where[a_right:a_right + a_right - k]] = 0.0
        b[where[a_right:a_right + a_right - k]] = 1.0
        for model, values in (("a", a), ("b", b)):
            cell = len(rows)
            rows.append({"cell": cell, "dataset": "digits", "model": model, "seed": s,
                         "test_acc": values.mean(), "diverged": False})
            points.add(cell, "test_acc", values)
    return pd.DataFrame(rows), points


def test_a_few_test_points_with_a_tight_seed_interval_is_indistinguishable():
    cells, points = _accuracy_cells([3, 3, 4, 3, 2])
    seeds_only = stats.compare(cells, {"model": "a"}, {"model": "b"}, "test_acc",
                               label_a="adam", label_b="sgd")
    assert seeds_only.verdict == "a" and seeds_only.sources == ["seeds"]
    outcomes.attach(cells, points)
    both = stats.compare(cells, {"model": "a"}, {"model": "b"}, "test_acc",
                         label_a="adam", label_b="sgd")
    assert both.verdict == "tie" and both.low < 0 < both.high
    assert both.sources == ["seeds", "test_points"] and both.test_points == N
    assert both.diff == seeds_only.diff  # the same difference, a wider interval
    text = words.comparison_text(both, "test accuracy")
    # the mean over seeds of 3, 3, 4, 3, 2 more points right: a whole count
    assert "indistinguishable" in text and f"or 3 of the {N} test points" in text
    assert f"5 paired runs and {N} test points" in text
    # a large difference still stands when the test points are counted
    cells, points = _accuracy_cells([14, 15, 16, 15, 14], disagree=30)
    outcomes.attach(cells, points)
    assert stats.compare(cells, {"model": "a"}, {"model": "b"}, "test_acc",
                         label_a="adam", label_b="sgd").verdict == "a"


def test_the_seed_by_point_interaction_is_counted_once():
    """Differences that vary from seed to seed at every point (no point effect) add
    nothing beyond the seeds' own spread; a point effect adds var(point)/N."""
    rng = np.random.default_rng(3)
    n, points = 5, 400
    noise = rng.normal(size=(n, points))
    assert stats.point_variance(noise) < 0.2 * noise.mean(axis=0).var(ddof=1) / points
    effect = noise + rng.normal(size=points)
    assert 0.8 / points < stats.point_variance(effect) < 1.2 / points
    one = effect[:1]  # one seed: the points' spread alone
    assert stats.point_variance(one) == one.var(ddof=1) / points


def test_one_pair_gives_no_interval_even_with_test_points():
    cells, points = _accuracy_cells([15])
    outcomes.attach(cells, points)
    c = stats.compare(cells, {"model": "a"}, {"model": "b"}, "test_acc", label_a="a",
                      label_b="b")
    assert c.n == 1 and c.verdict == "tie" and math.isnan(c.low) and math.isnan(c.high)


def test_test_points_survive_filters_and_concatenation_but_not_other_test_sets():
    cells, points = _accuracy_cells([3, 3, 4, 3, 2])
    outcomes.attach(cells, points)
    part = pd.concat([cells[cells["model"] == "a"], cells[cells["model"] == "b"]])
    assert part.attrs["points"] is points  # shared, not copied
    c = stats.compare(part, {"model": "a"}, {"model": "b"}, "test_acc", label_a="a",
                      label_b="b")
    assert c.test_points == N
    other = cells.assign(dataset=np.where(cells["model"] == "a", "digits", "mnist"))
    c = stats.compare(other, {"model": "a"}, {"model": "b"}, "test_acc", label_a="a",
                      label_b="b")
    assert c.test_points is None and c.sources == ["seeds"]


def test_points_are_written_and_read_back_exactly(tmp_path):
    _, points = _accuracy_cells([3, 1])
    points.add(9, "test_loss", np.array([0.25, 1e-7, 3.0]))
    points.save(tmp_path / "points.npz")
    back = outcomes.Points.load(tmp_path / "points.npz")
    assert back.values.keys() == points.values.keys()
    for metric, by_cell in points.values.items():
        assert back.values[metric].keys() == by_cell.keys()
        for cell, values in by_cell.items():
            assert np.array_equal(back.values[metric][cell], values)


def _two_sided(null: float, a: float, b: float, converged_b: float = 1.0) -> pd.DataFrame:
    rows = []
    for s in range(5):
        for model, mean in (("a", a), ("b", b)):
            rows.append({"model": model, "seed": s, "test_acc": mean + 0.01 * (s % 2),
                         "null_test_acc": null, "null_test_loss": 1.1, "diverged": False,
                         "converged": 1.0 if model == "a" or s < 5 * converged_b else 0.0})
    return pd.DataFrame(rows)


def test_a_finding_whose_two_sides_both_lose_to_the_null_says_so_first():
    cells = _two_sided(null=0.5, a=0.45, b=0.40)
    c = stats.compare(cells, {"model": "a"}, {"model": "b"}, "test_acc", label_a="relu",
                      label_b="linear")
    assert c.null == 0.5 and c.null_model == "the majority class"
    text = words.comparison_text(c, "test accuracy")
    assert text.startswith("Neither relu nor linear beats the null model on test accuracy "
                           "(the majority class, 0.5).")
    finding = {"id": "x", "kind": "comparison", "text": text, "data": c.to_dict()}
    assert answers.statement(finding).startswith("Neither relu nor linear beats the null model")
    long = stats.compare(cells, {"model": "a"}, {"model": "b"}, "test_acc",
                         label_a="a network of four hidden layers of 64 units each",
                         label_b="the linear model on raw pixels")
    assert words.comparison_text(long, "test accuracy").startswith(
        "Neither side beats the null model")  # names too long to repeat
    assert "null" in answers.tags(finding)
    # one side below it: named; both above: nothing said
    one = stats.compare(_two_sided(0.42, 0.45, 0.40), {"model": "a"}, {"model": "b"},
                        "test_acc", label_a="relu", label_b="linear")
    assert words.comparison_text(one, "test accuracy").startswith(
        "Linear does not beat the null model")
    fine = stats.compare(_two_sided(0.3, 0.45, 0.40), {"model": "a"}, {"model": "b"},
                         "test_acc", label_a="relu", label_b="linear")
    assert words.caveats([fine]) == ""
    assert "null" not in answers.tags({"id": "x", "kind": "comparison", "text": "",
                                       "data": fine.to_dict()})


def test_unconverged_runs_are_said_first():
    cells = _two_sided(null=0.3, a=0.45, b=0.40, converged_b=0.6)
    c = stats.compare(cells, {"model": "a"}, {"model": "b"}, "test_acc", label_a="relu",
                      label_b="linear")
    assert c.converged_a == 1.0 and c.converged_b == 0.6
    assert words.comparison_text(c, "test accuracy").startswith(
        "Not converged: linear (2 of 5 runs)")
    finding = {"id": "x", "kind": "comparison", "text": "", "data": c.to_dict()}
    assert "unconverged" in answers.tags(finding)
    flipped = stats.flipped(c)
    assert flipped.converged_a == 0.6 and flipped.converged_b == 1.0
    # every per-side field swaps with its side
    import dataclasses
    marked = dataclasses.replace(c, collapsed_a=1, collapsed_b=2)
    back = stats.flipped(marked)
    for f in dataclasses.fields(stats.Comparison):
        if f.name.endswith("_a"):
            other = f.name[:-2] + "_b"
            assert getattr(back, f.name) == getattr(marked, other), f.name


def test_collapsed_runs_are_counted_never_averaged():
    cells = _two_sided(null=0.3, a=0.8, b=0.7)
    cells["collapsed"] = False
    cells.loc[(cells["model"] == "b") & (cells["seed"] == 0), ["collapsed", "test_acc"]] = \
        [True, 1 / 3]
    t = stats.summarize(cells, ["model"], ["test_acc"])
    b = t[t["model"] == "b"].iloc[0]
    assert (b["n"], b["n_diverged"], b["n_collapsed"]) == (4, 0, 1)
    assert math.isclose(b["test_acc_mean"], 0.705)  # the collapsed run left out
    c = stats.compare(cells, {"model": "a"}, {"model": "b"}, "test_acc", label_a="a",
                      label_b="b")
    assert c.n == 4 and c.collapsed == 1
    assert "collapsed" in answers.tags({"id": "x", "kind": "comparison", "text": "",
                                        "data": c.to_dict()})
    s = choices.select(cells.assign(lr=np.where(cells["model"] == "a", 0.1, 1.0),
                                  val_acc=cells["test_acc"]), "lr", {}, "val_acc",
                     maximize=True)
    assert s.chosen == 0.1


def test_a_collapse_is_one_class_everywhere_or_one_output():
    one_class = np.tile([0.1, 2.0, -1.0], (50, 1)) + np.linspace(0, 0.5, 50)[:, None] * [1, 0, 0]
    assert outcomes.collapsed("cross_entropy", one_class)
    assert not outcomes.collapsed("cross_entropy", np.eye(3)[[0, 1, 2, 1]] * 2)
    assert outcomes.collapsed("mse", np.full((20, 1), 0.37))
    assert not outcomes.collapsed("mse", np.linspace(0, 1e-3, 20)[:, None])
    assert not outcomes.collapsed("mse", np.full((20, 1), np.nan))  # diverged, not collapsed


def test_convergence_reads_the_last_tenth_of_the_curve():
    falling = [{"epoch": e, "train_loss": 1.0 / e} for e in range(1, 101)]
    assert outcomes.converged(falling, 100, 0.01) == 0.0  # 1/90 -> 1/100: 11% in a tenth
    flat = [{"epoch": e, "train_loss": 0.5 + 1e-5 / e} for e in range(1, 101)]
    assert outcomes.converged(flat, 100, 0.01) == 1.0
    assert math.isnan(outcomes.converged([{"epoch": 100, "train_loss": 0.5}], 100, 0.01))
    rising = [{"epoch": e, "train_loss": 0.5 + 0.01 * e} for e in range(1, 101)]
    assert outcomes.converged(rising, 100, 0.01) == 0.0  # climbing 0.09 in a tenth: not settled
    creeping = [r | {"train_loss": 0.5 + 1e-6 * r["epoch"]} for r in rising]
    assert outcomes.converged(creeping, 100, 0.01) == 1.0
    # a classifier whose cross-entropy still falls but whose accuracy has settled
    settled = [r | {"train_acc": 0.97} for r in falling]
    assert outcomes.converged(settled, 100, 0.01) == 1.0
    climbing = [r | {"train_acc": 0.5 + 0.004 * r["epoch"]} for r in falling]
    assert outcomes.converged(climbing, 100, 0.01) == 0.0


def test_null_scores_fit_the_training_rows_alone():
    y_train = np.array([0, 1, 1, 2, 1])
    got = outcomes.null_scores("cross_entropy", y_train, {"test": np.array([1, 1, 0, 2])})
    assert got["null_test_acc"] == 0.5  # class 1, the training majority
    freq = np.array([1, 3, 1]) / 5
    assert math.isclose(got["null_test_loss"], -np.log(freq[[1, 1, 0, 2]]).mean())
    y = np.array([[1.0], [3.0]])
    got = outcomes.null_scores("half_mse", y, {"test": np.array([[2.0], [4.0]])})
    assert got["null_test_loss"] == 0.5 * (0 + 4) / 2  # the training mean 2
    assert outcomes.null_scores("mse", y, {"test": np.array([[2.0], [4.0]])})[
        "null_test_loss"] == 2.0


def test_collapsed_runs_are_said_first_and_each_setting_is_checked():
    rows = []
    for dataset, null in (("easy", 0.5), ("hard", 0.9)):
        for s in range(4):
            for model, acc in (("a", 0.8), ("b", 0.7 + 0.01 * s)):
                rows.append({"cell": len(rows), "dataset": dataset, "model": model,
                             "seed": s, "test_acc": acc, "null_test_acc": null,
                             "diverged": False, "collapsed": model == "a" and s == 3})
    cells = pd.DataFrame(rows)
    pairs = [stats.compare(cells, {"dataset": d, "model": "a"}, {"dataset": d, "model": "b"},
                           "test_acc", label_a="A", label_b="B") for d in ("easy", "hard")]
    assert [(c.n, c.collapsed_a, c.collapsed_b) for c in pairs] == [(3, 1, 0), (3, 1, 0)]
    text = words.caveats(pairs)
    assert text.startswith("Collapsed and left out of the pairs: A (2 of 8 runs)")
    # both sides beat the null on "easy"; on "hard" neither does: said, though the labels
    # were seen before
    assert "A and B do not beat the null model on test accuracy" in text
    short = words.caveats(pairs, short=True)
    assert short.startswith("Collapsed: 2 of 8 runs of A, left out.")


def test_a_choice_that_loses_to_the_null_says_so_first():
    from pipeline import findings as F

    rows = [{"cell": i, "lam": lam, "seed": s, "val_loss": 1.0 / (1 + lam) + 0.01 * s,
             "test_loss": 0.0110 + 0.0001 * s, "null_test_loss": 0.0107, "diverged": False}
            for i, (lam, s) in enumerate((lam, s) for lam in (1.0, 10.0, 100.0)
                                         for s in range(3))]
    cells = pd.DataFrame(rows)
    sel = choices.select(cells, "lam", {}, "val_loss", maximize=False)
    chosen = stats.where(cells, {"lam": sel.chosen})
    null = stats.null_check(cells, chosen, "test_loss", chosen["test_loss"].mean(), False)
    assert null["beats_null"] is False and null["null_model"] == "the training mean"
    one = F.selection("lam", sel, "Lambda", "Its test loss is 0.0111.", null)
    f = F.to_json(one) | {"text": one.text}
    assert f["text"].startswith(f"The chosen lambda, {sel.chosen:g}, does not beat the null "
                                "model on test loss (the training mean, 0.0107). Lambda chosen")
    assert "null" in answers.tags(f | {"study": "s"})
    better = stats.null_check(cells, chosen, "test_loss", 0.0100, False)
    other = F.selection("lam", sel, "Lambda", "", better)
    g = F.to_json(other) | {"text": other.text}
    assert g["text"].startswith("Lambda chosen") and "null" not in answers.tags(g)


def test_a_count_of_test_points_prints_whole_where_it_is_through_float32():
    """1499 of 3000 points read through float32 accuracies (2998 and 1499 right) is
    1499.00002: 1499, not 1499.0; a mean over seeds that is not whole keeps its decimal."""
    import dataclasses

    from pipeline.stats import Comparison

    fields = {f.name: None for f in dataclasses.fields(Comparison)}
    diff = float(np.float32(2998 / 3000)) - float(np.float32(1499 / 3000))
    assert diff * 3000 != 1499  # what float32 leaves of it
    c = Comparison(**fields | {"metric": "test_acc", "test_points": 3000, "diff": diff})
    assert words.points_text(c) == " (1499 of 3000 test points)"
    assert words.points_text(dataclasses.replace(c, diff=1499.4 / 3000)) == \
        " (1499.4 of 3000 test points)"
