"""Bracketing: a choice at the end of its grid, or next to a diverged value, gets more grid
values until it is interior, at a bound, or out of rounds (pipeline/bracketing.py)."""

from __future__ import annotations

import math

import pandas as pd

from pipeline import bracketing
from pipeline.bracketing import Bracket

SEEDS = [0, 1, 2]


class Toy:
    """A study whose validation accuracy is a known function of the learning rate."""

    def __init__(self, bracket: Bracket, score, diverges=lambda lr: False):
        self.bracket, self.score, self.diverges = bracket, score, diverges

    def brackets(self):
        return [self.bracket]

    def extend(self, cell, column, value):
        return cell | {column: value}

    def frame(self, grid: list[dict]) -> pd.DataFrame:
        rows = []
        for cell in grid:
            value = cell[self.bracket.column]
            bad = self.diverges(value)
            rows.append(cell | {"val_acc": math.nan if bad else
                                self.score(value) + 1e-4 * cell["seed"],
                                "diverged": bad})
        return pd.DataFrame(rows)


def run(toy: Toy, lrs: list[float], rounds: int = 3):
    """What run_study does: the grid, then round by round the cells extend adds."""
    grid = bracketing.mark([{"opt": "sgd", "lr": lr, "seed": s} for lr in lrs for s in SEEDS])
    for r in range(1, rounds + 1):
        added = bracketing.extend(toy, toy.frame(grid), grid, r)
        if not added:
            break
        grid += added
    cells = toy.frame(grid)
    return cells, toy.bracket.select(cells, {"opt": "sgd"})


def peak(at: float):
    return lambda lr: -abs(math.log10(lr) - math.log10(at))  # best at `at`


LR = Bracket("lr", "val_acc", maximize=True, by=("opt",))


def test_a_choice_at_the_largest_end_steps_out_by_the_grids_factor_until_interior():
    cells, sel = run(Toy(LR, peak(50)), [0.1, 1, 10])
    # 100 beats 10, an end again: 1000 is added, and 100 beats it
    assert sel.added == [100.0, 1000.0] and sel.chosen == 100 and not sel.edge
    assert sel.interior and sel.grid == [0.1, 1, 10, 100, 1000]
    rounds = cells.drop_duplicates("lr").set_index("lr")["bracket_round"].to_dict()
    assert rounds == {0.1: 0, 1: 0, 10: 0, 100: 1, 1000: 2}
    assert len(cells) == 5 * len(SEEDS)  # one added cell per seed


def test_a_choice_at_the_smallest_end_steps_down():
    _, sel = run(Toy(LR, peak(0.0004)), [0.01, 0.1, 1])
    assert sel.added == [0.0001, 0.001] and sel.chosen == 0.001 and sel.interior


def test_next_to_a_diverged_value_it_bisects_until_the_stability_limit():
    toy = Toy(LR, peak(1000), diverges=lambda lr: lr > 4)
    cells, sel = run(toy, [0.1, 1, 10], rounds=4)
    # 1 is next to 10 (diverged): sqrt(10) = 3.2 trains; next to 10 again: sqrt(32) = 5.7
    # diverges; 3.2 and 5.7 are within a factor of 2: the stability limit, no edge
    assert sel.added == [3.2, 5.7] and sel.chosen == 3.2
    assert not sel.edge and sel.stop == "at the stability limit: runs diverged at 5.7"
    # and there it stops: no round trains 5.7 again
    assert len(cells) == 5 * len(SEEDS) and not cells.duplicated(["lr", "seed"]).any()


def test_a_stability_limit_at_an_end_of_the_grid_still_steps_past_that_end():
    toy = Toy(LR, peak(0.05), diverges=lambda lr: lr > 0.12)
    _, sel = run(toy, [0.1, 0.15, 10])
    # 0.1 is the smallest value and next to 0.15 (diverged, within a factor of 2): the
    # optimum may still lie below it, so the grid steps down by its factor of 1.5
    assert sel.added == [0.03, 0.045, 0.067] and sel.chosen == 0.045 and sel.interior


def test_a_hard_bound_stops_it_and_is_named():
    rate = Bracket("p", "val_acc", maximize=True, by=("opt",), scale="linear", high=1.0)
    toy = Toy(rate, lambda p: p)  # a higher rate is always better
    grid = bracketing.mark([{"opt": "a", "p": p, "lr": 1.0, "seed": s}
                            for p in (0.3, 0.6, 0.9) for s in SEEDS])
    assert bracketing.extend(toy, toy.frame(grid), grid, 1) == []
    sel = rate.select(toy.frame(grid), {"opt": "a"})
    assert sel.edge and sel.stop == "bracketing stopped at the bound of p (1)"
    assert sel.limit.endswith("; bracketing stopped at the bound of p (1)")


def test_a_value_that_cannot_be_built_stops_it():
    depth = Bracket("lr", "val_acc", maximize=True, by=("opt",),
                    feasible=lambda fixed, v: "the budget" if v > 20 else "")
    _, sel = run(Toy(depth, peak(1e6)), [0.1, 1, 10])
    assert sel.added == [] and sel.edge and sel.stop == "bracketing stopped at the budget"


def test_an_integer_knob_whose_next_value_cannot_be_built_is_at_a_bound_not_an_edge():
    depth = Bracket("depth", "val_acc", maximize=True, by=("opt",), scale="int", bound=1,
                    feasible=lambda fixed, v: "the budget" if v > 4 else "")
    toy = Toy(depth, lambda d: d)  # deeper is always better
    grid = bracketing.mark([{"opt": "sgd", "depth": d, "seed": s} for d in (1, 2, 3)
                            for s in SEEDS])
    grid += bracketing.extend(toy, toy.frame(grid), grid, 1)
    assert bracketing.extend(toy, toy.frame(grid), grid, 2) == []
    sel = depth.select(toy.frame(grid), {"opt": "sgd"})
    assert sel.chosen == 4 and sel.added == [4] and not sel.edge and sel.limit == ""
    assert sel.stop == "the last value that can be built; past it, the budget"


def test_out_of_rounds_it_stays_an_edge_and_says_how_many():
    cells, sel = run(Toy(LR, peak(1e9)), [0.1, 1, 10], rounds=2)
    assert sel.added == [100.0, 1000.0] and sel.chosen == 1000 and sel.edge
    assert sel.stop == "bracketing stopped after 2 rounds"
    again, same = run(Toy(LR, peak(1e9)), [0.1, 1, 10], rounds=2)
    assert again.equals(cells) and same == sel  # the same params add the same values


def test_bracketing_adds_nothing_to_an_interior_choice():
    toy = Toy(LR, peak(1))
    grid = bracketing.mark([{"opt": "sgd", "lr": lr, "seed": s}
                            for lr in (0.1, 1, 10) for s in SEEDS])
    assert bracketing.extend(toy, toy.frame(grid), grid, 1) == []
    assert LR.select(toy.frame(grid), {"opt": "sgd"}).stop == ""


def test_a_choice_among_each_values_own_best_rows():
    """Depth 2 is best at its own learning rate though worse on average over the rates;
    a learning rate another bracket added does not make its depth 'added'."""
    score = {(1, 0.1): 0.80, (1, 1.0): 0.80, (2, 0.1): 0.50, (2, 1.0): 0.90}
    rows = [{"opt": "sgd", "depth": d, "lr": lr, "seed": s, "val_acc": v + 1e-3 * s,
             "diverged": False, "bracket_round": int(lr == 1.0 and d == 2)}
            for (d, lr), v in score.items() for s in SEEDS]
    cells = pd.DataFrame(rows)

    def own(frame):
        best = frame.groupby(["depth", "lr"])["val_acc"].mean().groupby("depth").idxmax()
        return frame[[(d, lr) in set(best) for d, lr in zip(frame["depth"], frame["lr"])]]

    plain = Bracket("depth", "val_acc", maximize=True, by=("opt",), scale="int", bound=1)
    assert plain.select(cells, {"opt": "sgd"}).chosen == 1  # 0.80 against 0.70 on average
    depth = Bracket("depth", "val_acc", maximize=True, by=("opt",), scale="int", bound=1,
                    among=own)
    sel = depth.select(cells, {"opt": "sgd"})
    assert sel.chosen == 2 and sel.added == []
