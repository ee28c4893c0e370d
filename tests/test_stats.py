"""The statistics every finding goes through, on constructed tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import choices, stats
from pipeline import findings as F
from pipeline.report import numbers, words


def _cells(values: dict[str, list[float]], **extra) -> pd.DataFrame:
    rows = [{"config": k, "seed": s, "acc": v, "diverged": False, **extra}
            for k, vs in values.items() for s, v in enumerate(vs)]
    return pd.DataFrame(rows)


def test_summary_skips_diverged_cells_and_gives_t_intervals():
    cells = pd.DataFrame({"g": ["a", "a", "a", "b"], "v": [1.0, 3.0, float("nan"), 5.0],
                          "diverged": [False, False, True, False]})
    t = stats.summarize(cells, ["g"], ["v"]).set_index("g")
    assert t.loc["a", "v_mean"] == 2.0 and t.loc["a", "n"] == 2 and t.loc["a", "n_diverged"] == 1
    assert t.loc["a", "v_ci95"] == pytest.approx(12.706 * 2 ** 0.5 / 2 ** 0.5, rel=1e-3)
    assert pd.isna(t.loc["b", "v_std"]) and pd.isna(t.loc["b", "v_ci95"])


def test_a_nan_in_a_finished_cell_is_not_averaged_away():
    """n counts the finished cells, so a mean over fewer values would lie about n."""
    cells = pd.DataFrame({"g": ["a"] * 3, "v": [3.0, np.nan, np.nan], "diverged": False})
    t = stats.summarize(cells, ["g"], ["v"])
    assert t["n"].iloc[0] == 3 and pd.isna(t["v_mean"].iloc[0])


def test_a_tie_is_indistinguishable():
    cells = _cells({"A": [0.90, 0.95, 0.91, 0.96], "B": [0.93, 0.92, 0.94, 0.93]})
    c = stats.compare(cells, {"config": "A"}, {"config": "B"}, "acc", label_a="A",
                      label_b="B")
    assert c.verdict == "tie" and c.low < 0 < c.high
    text = words.comparison_text(c, "accuracy")
    assert "indistinguishable" in text and "better" not in text and "higher" not in text


def test_a_clear_difference_names_the_winner_either_way_round():
    cells = _cells({"A": [0.90, 0.91, 0.92, 0.90], "B": [0.80, 0.82, 0.81, 0.80]})
    ab = stats.compare(cells, {"config": "A"}, {"config": "B"}, "acc", label_a="A", label_b="B")
    ba = stats.compare(cells, {"config": "B"}, {"config": "A"}, "acc", label_a="B", label_b="A")
    assert ab.verdict == "a" and ba.verdict == "b" and ab.low > 0
    for c in (ab, ba):
        assert words.comparison_text(c, "accuracy").startswith("A gives higher accuracy than B")
    lower = stats.compare(cells, {"config": "B"}, {"config": "A"}, "acc", label_a="B",
                          label_b="A", higher_is_better=False)
    assert lower.verdict == "a"  # lower is better: B wins


def test_pairs_follow_the_seed_not_the_row_order():
    cells = _cells({"A": [1.0, 2.0, 3.0], "B": [1.1, 2.1, 3.1]})
    shuffled = cells.sample(frac=1, random_state=0)
    c = stats.compare(shuffled, {"config": "A"}, {"config": "B"}, "acc", label_a="A",
                      label_b="B")
    assert c.diff == pytest.approx(-0.1) and c.high - c.low == pytest.approx(0, abs=1e-9)


def test_best_is_claimed_only_when_every_interval_excludes_zero():
    clear = _cells({"A": [0.9, 0.91, 0.92], "B": [0.8, 0.82, 0.81], "C": [0.7, 0.7, 0.72]})
    b = choices.best_of(clear, {k: {"config": k} for k in "ABC"}, "acc")
    assert b.top == "A" and b.clear
    assert "gives the best" in F.best("x", b, "accuracy", "configs").text
    close = _cells({"A": [0.9, 0.95, 0.91], "B": [0.93, 0.91, 0.92], "C": [0.5, 0.5, 0.52]})
    b = choices.best_of(close, {k: {"config": k} for k in "ABC"}, "acc")
    f = F.best("x", b, "accuracy", "configs")
    assert not b.clear and "No single best" in f.text and "indistinguishable from B" in f.text
    assert "C (0.5" not in f.text  # only the ties are listed
    assert "Against C, the difference favours A" in f.text
    assert "difference 0," in f.text  # equal means: no rounding residue printed


def test_an_edge_optimum_is_flagged_and_said():
    cells = pd.DataFrame({"lambda": [0.0, 1.0, 10.0] * 2, "seed": [0] * 3 + [1] * 3,
                          "val_loss": [3.0, 2.0, 1.0, 3.1, 2.1, 1.1], "diverged": False})
    s = choices.select(cells, "lambda", {}, "val_loss", maximize=False)
    assert s.chosen == 10.0 and s.edge
    assert F.selection("lam", s, "Lambda").text.endswith(
        "Lambda chosen at an edge, where the optimum may lie past it: 10 (the grid's "
        "largest).")
    inner = cells.assign(val_loss=[3.0, 1.0, 2.0, 3.0, 1.0, 2.0])
    s = choices.select(inner, "lambda", {}, "val_loss", maximize=False)
    assert s.chosen == 1.0 and not s.edge
    assert "edge" not in F.selection("lam", s, "Lambda").text


def test_a_choice_next_to_a_diverged_value_is_an_edge_and_survivors_are_no_choice():
    """lr 10 diverged in every seed: lr 1, the largest that trained, may be short of the
    best. lr 3 diverged in one of three seeds: its two survivors' mean is no candidate."""
    rows = [{"lr": lr, "seed": s, "val_acc": acc, "diverged": False}
            for s in range(3) for lr, acc in ((0.01, 0.5), (0.1, 0.7), (1.0, 0.8))]
    rows += [{"lr": 10.0, "seed": s, "val_acc": float("nan"), "diverged": True}
             for s in range(3)]
    cells = pd.DataFrame(rows)
    s = choices.select(cells, "lr", {}, "val_acc", maximize=True)
    assert s.chosen == 1.0 and s.edge and s.limit == "next to 10, where 3 of 3 runs diverged"
    assert "1 (next to 10, where 3 of 3 runs diverged)" in F.selection("lr", s, "Lr").text
    assert F.edge_item("sgd", s) == "sgd (1, next to 10, where 3 of 3 runs diverged)"
    unstable = pd.concat([cells, pd.DataFrame(
        [{"lr": 3.0, "seed": 0, "val_acc": 0.9, "diverged": False},
         {"lr": 3.0, "seed": 1, "val_acc": 0.95, "diverged": False},
         {"lr": 3.0, "seed": 2, "val_acc": float("nan"), "diverged": True}])])
    s = choices.select(unstable, "lr", {}, "val_acc", maximize=True)
    assert s.chosen == 1.0 and s.limit == "next to 3, where 1 of 3 runs diverged"
    calm = cells[cells["lr"] < 10]
    s = choices.select(calm, "lr", {}, "val_acc", maximize=True)
    assert s.limit == "the grid's largest"
    # the grid's end beside a neighbour where a seed diverged: both said, and the
    # neighbour's survivors are not compared with it
    low_end = pd.DataFrame(
        [{"lr": 0.01, "seed": s, "val_acc": v, "diverged": False}
         for s, v in enumerate((0.90, 0.91, 0.92))]
        + [{"lr": 0.1, "seed": s, "val_acc": v, "diverged": d}
           for s, (v, d) in enumerate(((0.5, False), (0.6, False), (float("nan"), True)))]
        + [{"lr": 1.0, "seed": s, "val_acc": float("nan"), "diverged": True} for s in range(3)])
    s = choices.select(low_end, "lr", {}, "val_acc", maximize=True)
    assert s.limit == "the grid's smallest; next to 0.1, where 1 of 3 runs diverged"


def test_an_edge_choice_level_with_its_neighbour_says_so():
    """The grid's largest value wins by less than the seeds' noise: the edge is said with
    the flat validation beside it."""
    cells = pd.DataFrame({"lambda": [0.0, 1.0, 10.0] * 3, "seed": [0] * 3 + [1] * 3 + [2] * 3,
                          "val_loss": [3.0, 1.02, 1.0, 3.1, 0.98, 1.01, 3.0, 1.01, 0.99],
                          "diverged": False})
    s = choices.select(cells, "lambda", {}, "val_loss", maximize=False)
    assert s.chosen == 10.0 and s.edge
    assert numbers.numbers(s.limit) == ("the grid's largest; validation loss does not separate "
                                        "it from 1 (difference -0.003, 95% CI -0.075 to 0.068)")


def test_zero_at_the_bottom_of_a_grid_is_a_bound_not_an_edge():
    assert not choices.at_edge(0.0, [0.0, 0.5, 0.8])  # no dropout: nothing lies below it
    assert choices.at_edge(0.2, [0.2, 0.5, 0.8])  # a grid that could start lower
    assert choices.at_edge(0.8, [0.0, 0.5, 0.8]) and not choices.at_edge(0.5, [0.0, 0.5, 0.8])
    assert not choices.at_edge(1.0, [1.0, 2.0])  # two values have no inside


def test_an_interval_is_printed_with_the_digits_that_tell_its_ends_apart():
    assert numbers.fmt_ci(0.49812, 0.49981) == "95% CI 0.4981 to 0.4998"  # one precision
    assert numbers.fmt_ci(-0.0088, 0.0088) == "95% CI -0.0088 to 0.0088"
    # a narrow interval far from zero: its ends, not a neighbouring rounding
    assert numbers.fmt_ci(-2.6601, -2.6443) == "95% CI -2.660 to -2.644"
    assert numbers.fmt_ci(0.33, 0.47) == "95% CI 0.33 to 0.47"


def test_a_mean_prints_to_the_digits_of_its_interval():
    """12.7195 ± 0.0055 printed as 12.7 ± 0.0055 names an interval that misses the mean."""
    assert numbers.fmt_interval(12.7195, 0.0055) == "12.7195 ± 0.0055"
    assert numbers.fmt_interval(-3.41407, 0.00074) == "-3.41407 ± 0.00074"
    assert numbers.fmt_interval(0.943, 0.011) == "0.943 ± 0.011"
    assert numbers.fmt_interval(82.04, 5.3) == "82.0 ± 5.3"  # never below 3 digits
    assert numbers.fmt_interval(0.5, float("nan")) == "0.5"


def test_a_float32_residue_is_no_difference():
    """The same five accuracies in another seed order, one of them a float32 rounding
    apart (as the tables print them): no difference to report."""
    a = [0.93666667, 0.94, 0.93333333, 0.94111111, 0.92888889]
    b = [a[3], a[0], a[4], a[1], 0.9333333]
    cells = _cells({"A": a, "B": b})
    c = stats.compare(cells, {"config": "A"}, {"config": "B"}, "acc", label_a="A",
                      label_b="B")
    assert c.verdict == "tie" and "difference 0 " in words.comparison_text(c, "accuracy")
    assert numbers.fmt_diff(1e-4, 0.93) == "0.00010"


def test_one_value_per_side_in_every_seed_is_a_deterministic_result():
    """Seeds that change nothing (a zero init on fixed data) are not five replicates: the
    sentence gives the two values and no interval."""
    cells = _cells({"A": [0.0] * 5, "B": [0.408] * 5})
    c = stats.compare(cells, {"config": "A"}, {"config": "B"}, "acc", label_a="A",
                      label_b="B", higher_is_better=False)
    text = words.comparison_text(c, "error")
    assert c.identical and c.verdict == "a"
    assert "seed changes nothing" in text and "without an interval" in text
    assert "CI" not in text
    same = stats.compare(_cells({"A": [0.5] * 3, "B": [0.5] * 3}), {"config": "A"},
                         {"config": "B"}, "acc", label_a="A", label_b="B")
    assert same.verdict == "tie" and "give the same" in words.comparison_text(same, "acc")
    varied = _cells({"A": [0.5, 0.6, 0.5], "B": [0.4] * 3})
    assert not stats.compare(varied, {"config": "A"}, {"config": "B"}, "acc", label_a="A",
                             label_b="B").identical


def test_identical_values_have_no_spread_in_a_summary():
    """The same fit over five feature orders, one float64 ulp apart: no spread."""
    v = [0.02205, np.nextafter(0.02205, 1), 0.02205, np.nextafter(0.02205, 0), 0.02205]
    cells = pd.DataFrame({"g": ["a"] * 5, "v": v, "diverged": False})
    t = stats.summarize(cells, ["g"], ["v"])
    assert t["v_std"].iloc[0] == 0 and t["v_ci95"].iloc[0] == 0
    ref = F.reference("r", "s", "c", "m", pd.Series([0.40833333] * 5), value=0.408)
    assert ref.ci95 == 0


def test_a_validation_tie_within_float32_takes_the_smallest_and_says_so():
    """Depths 2 and 4 with the same correct count, their means a float32 rounding apart."""
    cells = pd.DataFrame({"depth": [1, 2, 3, 4] * 2, "seed": [0] * 4 + [1] * 4,
                          "val_acc": [0.9, 0.96875, 0.95, 0.968750012] * 2, "diverged": False})
    s = choices.select(cells, "depth", {}, "val_acc", maximize=True)
    assert s.chosen == 2 and s.ties == [4] and not s.edge
    assert "tied with 4" in F.selection("d", s, "Depth").text


def test_collapsing_seeds_makes_the_folds_the_units():
    """Five seeds that barely move a fold's loss must not count as five draws."""
    rows = [{"fold": f, "seed": s, "loss": f + 0.001 * s, "diverged": False}
            for f in range(4) for s in range(5)]
    cells = pd.DataFrame(rows)
    folds = stats.collapse(cells, ["fold"], ["loss"])
    assert len(folds) == 4 and folds["loss"].tolist() == pytest.approx([0.002, 1.002, 2.002,
                                                                         3.002])
    t = stats.summarize(folds.assign(g=1), ["g"], ["loss"])
    assert t["n"].iloc[0] == 4
    naive = stats.summarize(cells.assign(g=1), ["g"], ["loss"])
    assert t["loss_ci95"].iloc[0] > 1.5 * naive["loss_ci95"].iloc[0]
    half = cells.assign(diverged=[s > 0 for s in cells["seed"]])  # seeds 1-4 diverged
    assert stats.collapse(half, ["fold"], ["loss"])["loss"].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_a_best_chosen_on_validation_names_what_beats_it_on_test():
    cells = _cells({"A": [0.9, 0.91, 0.92], "B": [0.8, 0.82, 0.81], "C": [0.7, 0.7, 0.72]})
    cells["test_acc"] = cells["acc"]
    cells["val_acc"] = cells["config"].map({"A": 0.5, "B": 0.9, "C": 0.6})
    b = choices.best_of(cells, {k: {"config": k} for k in "ABC"}, "test_acc",
                      choose_on="val_acc")
    assert b.top == "B" and not b.clear and b.chosen_value == pytest.approx(0.9)
    f = F.best("x", b, "test accuracy", "configs")
    assert f.text.startswith("No single best shown among the configs on test accuracy: B, "
                             "the choice on validation accuracy (0.9), has 0.810.")
    assert "Against C, the difference favours B" in f.text
    assert "Against B, A (0.910) gives higher test accuracy: difference 0.10" in f.text
    with pytest.raises(ValueError, match="never on test data"):
        choices.best_of(cells, {k: {"config": k} for k in "ABC"}, "acc", choose_on="test_acc")


def test_the_comparisons_of_a_best_hold_together():
    """Three others whose paired differences' 95% intervals just exclude zero, and one
    level with the top: no best, so the sentence picks single claims out of four
    comparisons, and at Bonferroni's 98.75% none of the three is named any more."""
    base = [0.80, 0.85, 0.78, 0.83, 0.81]
    diffs = [0.02, 0.04, 0.035, 0.005, 0.03]  # t = 3.7 on 4 df: 95% excludes zero
    values = {"A": base} | {k: [b - d for b, d in zip(base, diffs)] for k in "BCD"}
    values["E"] = [b + e for b, e in zip(base, (0.01, -0.01, 0.005, -0.005, 0.0))]
    cells = _cells(values)
    cells["val_acc"] = cells["config"].map({"A": 0.9, "B": 0.8, "C": 0.7, "D": 0.6, "E": 0.5})
    alone = stats.compare(cells, {"config": "A"}, {"config": "B"}, "acc", label_a="A",
                          label_b="B")
    assert alone.verdict == "a"
    b = choices.best_of(cells, {k: {"config": k} for k in "ABCDE"}, "acc", choose_on="val_acc")
    assert b.level == pytest.approx(0.9875) and not b.clear
    assert all(c.verdict == "tie" and c.low < 0 for c in b.comparisons)
    text = F.best("x", b, "accuracy", "configs").text
    assert "98.75% CI" in text and "hold together at 95% (Bonferroni)" in text
    assert "favours" not in text
    # beating every other one is one claim: each 95% interval excluding zero is enough
    clear = choices.best_of(cells[cells["config"] != "E"], {k: {"config": k} for k in "ABCD"},
                          "acc", choose_on="val_acc")
    assert clear.clear and clear.level == 0.95
    text = F.best("x", clear, "accuracy", "configs").text
    assert "every difference's 95% interval excludes zero" in text and "Bonferroni" not in text


def test_a_candidate_where_a_seed_diverged_is_no_best():
    """A's mean is over its two survivors; B trained in every seed."""
    cells = _cells({"A": [0.9, 0.95, float("nan")], "B": [0.8, 0.82, 0.81]})
    cells.loc[(cells["config"] == "A") & (cells["seed"] == 2), "diverged"] = True
    cells["val_acc"] = cells["acc"]
    b = choices.best_of(cells, {k: {"config": k} for k in "AB"}, "acc", choose_on="val_acc")
    assert b.top == "B"


def test_an_interval_reads_at_one_precision_across_a_power_of_ten():
    assert numbers.fmt_ci(-1.673, -0.796) == "95% CI -1.67 to -0.80"
    assert numbers.fmt_ci(0.9990, 1.0001) == "95% CI 0.9990 to 1.0001"
    # an end next to zero keeps its sign: not "-0.00 to 0.11"
    assert numbers.fmt_ci(-0.00071, 0.11) == "95% CI -0.00071 to 0.11"
    rng = np.random.default_rng(0)
    for _ in range(200):  # the rounding step is at most a tenth of the width (rounding
        low = rng.normal() * 10 ** rng.uniform(-3, 3)  # to half a step: a twentieth)
        high = low + abs(low) * 10 ** rng.uniform(-3.5, 1)  # within 6 digits' reach
        text = numbers.fmt_ci(low, high).split("CI ")[1]
        a, b = (float(v) for v in text.split(" to "))
        assert abs(a - low) <= (high - low) / 20 + 1e-12
        assert abs(b - high) <= (high - low) / 20 + 1e-12


def test_a_family_of_settings_says_each_verdict_at_its_level():
    cells = _cells({"A": [1.0, 1.1, 1.2], "B": [2.0, 2.1, 2.3]})
    cells["width"] = 1
    near = _cells({"A": [1.0, 1.1, 1.2], "B": [1.05, 1.0, 1.3]}).assign(width=2)
    both = pd.concat([cells, near])
    cs = [stats.compare(both, {"config": "A", "width": w}, {"config": "B", "width": w}, "acc",
                        label_a="A", label_b="B", higher_is_better=False,
                        level=choices.family_level(2)) for w in (1, 2)]
    f = F.family("f", cs, "A against B", ["width 1", "width 2"], "error")
    assert f.text.startswith("A against B (error, A minus B; each interval at 97.5%")
    assert "width 1: A lower (difference -1.03" in f.text
    assert "width 2: indistinguishable" in f.text


def test_a_best_on_test_numbers_needs_a_choice_made_elsewhere():
    cells = _cells({"A": [0.2, 0.3], "B": [0.4, 0.5]}).rename(columns={"acc": "test_loss"})
    cand = {k: {"config": k} for k in "AB"}
    with pytest.raises(ValueError, match="never made on test data"):
        choices.best_of(cells, cand, "test_loss", higher_is_better=False)
    cells["train_loss"] = cells["test_loss"] * 0.5
    b = choices.best_of(cells, cand, "test_loss", higher_is_better=False,
                      choose_on="train_loss")
    assert b.top == "A" and "the choice on training loss" in F.best("x", b, "loss", "c").text


def test_candidates_tied_on_validation_are_named():
    cells = _cells({"A": [0.5, 0.6], "B": [0.7, 0.8]})
    cells["val_acc"] = cells["config"].map({"A": 0.96875, "B": 0.968750012})
    b = choices.best_of(cells, {k: {"config": k} for k in "AB"}, "acc", choose_on="val_acc")
    assert b.top == "A" and b.ties == ["B"]
    assert "tied on it with B within float32 resolution" in F.best("x", b, "acc", "c").text


def test_a_choice_on_test_numbers_is_refused():
    cells = _cells({"A": [0.9], "B": [0.8]}).rename(columns={"acc": "test_acc"})
    with pytest.raises(ValueError, match="never on test data"):
        choices.select(cells, "config", {}, "test_acc", maximize=True)


def test_a_censored_quantity_says_k_of_n():
    c = stats.censored(pd.Series([3.0, np.nan, np.nan]))
    assert (c.reached, c.n, c.mean) == (1, 3, 3.0)
    text = F.censored("t", c, "Reaching the target").text
    assert "reached in 1 of 3 seeds" in text and "after 3 epochs" in text
    assert "0 of 2" in F.censored("u", stats.censored(pd.Series([np.nan] * 2)), "X").text


def test_a_reference_is_reproduced_within_its_range_or_tolerance():
    within = F.reference("r", "src", "claim", "measure", pd.Series([13.0, 14.0]),
                         low=11.5, high=15.3)
    outside = F.reference("r", "src", "claim", "measure", pd.Series([0.9, 0.91]),
                          value=0.95, tolerance=0.02)
    assert within.reproduced and not outside.reproduced
    assert F.reference("r", "s", "c", "m", pd.Series([0.94]), value=0.95,
                       tolerance=0.02).reproduced


def test_a_published_single_run_is_compared_with_the_spread_of_one_draw():
    import pandas as pd
    from scipy.stats import t

    from pipeline import findings as F

    values = pd.Series([0.52, 0.53, 0.525, 0.535, 0.522])  # one data draw per seed
    mean, sd, n = values.mean(), values.std(ddof=1), len(values)
    half = t.ppf(0.975, n - 1) * sd * (1 + 1 / n) ** 0.5  # where one new draw falls
    low = F.reference("r", "src", "claim", "m", values, value=0.49, draws=True)
    assert low.draws == 5 and abs(low.draw_low - (mean - half)) < 1e-12
    assert abs(low.draw_high - (mean + half)) < 1e-12
    at = t.cdf((0.49 - mean) / (sd * (1 + 1 / n) ** 0.5), n - 1) * 100
    assert abs(low.draw_percentile - at) < 1e-9 and low.draw_percentile < 2.5
    assert not low.reproduced  # below the range of one draw, and far from the mean
    inside = F.reference("r", "src", "claim", "m", values, value=0.515, draws=True)
    assert inside.draw_low < 0.515 and inside.reproduced  # a draw could give it
    # the same values without draws: only the mean (± tolerance) counts
    assert not F.reference("r", "src", "claim", "m", values, value=0.515).reproduced


def test_a_value_where_runs_collapsed_is_no_choice_while_another_trained_in_every_seed():
    """Collapsed runs count like diverged ones: the mean of the survivors at a rate where
    most runs collapsed does not win the choice; where every value lost runs, the
    survivors' means decide."""
    rows = [{"lr": lr, "seed": s, "train_loss": loss, "diverged": False, "collapsed": gone}
            for lr, losses, lost in ((0.01, (0.05, 0.06, 0.07), ()),
                                     (0.03, (0.01, 0.08, 0.08), (1, 2)))
            for s, (loss, gone) in enumerate(zip(losses, [s in lost for s in range(3)]))]
    cells = pd.DataFrame(rows)
    assert choices.select(cells, "lr", {}, "train_loss", maximize=False).chosen == 0.01
    every = cells.assign(collapsed=cells["seed"] == 2)
    assert choices.select(every, "lr", {}, "train_loss", maximize=False).chosen == 0.03


def test_each_group_keeps_its_chosen_rows_and_a_failed_group_is_dropped_or_counted():
    """at_chosen: per group, the rows at the value select chooses; a group whose every run
    collapsed is dropped, or kept at its smallest value where its failures must count."""
    rows = [{"depth": d, "lr": lr, "seed": s, "train_loss": loss + s / 100,
             "diverged": False, "collapsed": d == 3}
            for d, losses in ((1, (0.3, 0.1, 0.2)), (2, (0.1, 0.2, 0.3)), (3, (0.5, 0.4, 0.6)))
            for lr, loss in zip((0.001, 0.01, 0.1), losses) for s in range(3)]
    cells = pd.DataFrame(rows)
    kept = choices.at_chosen(cells, ["depth"], "lr", "train_loss", maximize=False)
    assert kept.groupby("depth")["lr"].unique().map(list).to_dict() == {1: [0.01],
                                                                        2: [0.001]}
    assert len(kept) == 6
    counted = choices.at_chosen(cells, ["depth"], "lr", "train_loss", maximize=False,
                                all_failed="smallest")
    assert set(counted[counted["depth"] == 3]["lr"]) == {0.001} and len(counted) == 9
