"""Choices among configurations, made on validation (or training) numbers, never test
numbers:

- `best_of`: the candidate with the best mean, and whether the intervals show it better
  than every other one;
- `select`: a config value chosen on validation numbers, flagged when it lands on the edge
  of its grid (or next to a value where runs diverged).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from pipeline.stats import (
    LEVEL,
    RESIDUE,
    Comparison,
    _clean,
    _flag,
    _ok,
    _py,
    _value,
    compare,
    mark,
    null_check,
    where,
)


@dataclass
class Best:
    """The candidate with the best mean (on the metric it was chosen on, where chosen_on
    names one), compared with every other candidate on the metric.

    "Better than every other one" is one claim (an intersection-union test): it stands
    when each comparison's 95% interval excludes zero. Short of that, the sentence picks
    single claims out of the comparisons ("against X, the difference favours Y"), so they
    are a family: each interval is then at Bonferroni's level, and all of them hold
    together at 95%."""

    top: str
    comparisons: list[Comparison]
    top_mean: float = math.nan  # the top's mean on the metric, over its finished cells
    chosen_on: str | None = None  # the validation (or training) metric it was chosen on
    chosen_value: float = math.nan  # the top's mean on it
    ties: list[str] = field(default_factory=list)  # as good on chosen_on within float32
    runs: int = 0  # the top's runs, and those of them that collapsed or diverged
    collapsed: int = 0
    diverged: int = 0
    null: dict = field(default_factory=dict)  # stats.null_check of the top on the metric

    @property
    def clear(self) -> bool:
        """Better than every other candidate, each interval excluding zero."""
        return bool(self.comparisons) and all(c.verdict == "a" for c in self.comparisons)

    @property
    def level(self) -> float:
        """The level of each comparison's interval."""
        return self.comparisons[0].level if self.comparisons else LEVEL


def family_level(m: int) -> float:
    """Bonferroni: the level of each of m intervals that hold together at LEVEL."""
    return 1 - (1 - LEVEL) / max(m, 1)


def best_of(cells: pd.DataFrame, candidates: dict[str, dict], metric: str, *,
            higher_is_better: bool = True, choose_on: str | None = None) -> Best:
    """Among candidates (label -> the columns that pick its cells), the one with the best
    mean `choose_on` (a validation or training metric, better in the same direction as
    `metric`) or, without one, the best mean `metric`, which then may not be a test
    metric; compared over paired seeds with each other candidate on `metric`: at 95% when
    it beats every one, else at the family's level (see Best). Candidates tied on it within
    float32 resolution: the first listed is taken, and the others are named. A candidate
    where some seed diverged is no choice while another one trained in every seed."""
    if choose_on is not None and not (is_validation(choose_on)
                                      or choose_on.startswith("train_")):
        raise ValueError(f"best_of: {choose_on!r} is not a validation or training metric; "
                         "choices are made on validation data (val_*, cv_*) or training "
                         "data, never on test data")
    if choose_on is None and metric.startswith("test_"):
        raise ValueError(f"best_of: a best on {metric!r} needs choose_on (a validation or "
                         "training metric): a choice is never made on test data")
    means, on, unstable = {}, {}, set()  # per candidate: mean metric, mean chosen on
    for label, match in candidates.items():
        mine = where(cells, match)
        ok = _ok(mine)
        values = ok[metric].dropna()
        if len(values):
            means[label] = float(values.mean())
            on[label] = float(ok[choose_on].mean()) if choose_on else means[label]
        if len(ok) < len(mine):
            unstable.add(label)
    usable = {k: v for k, v in on.items() if np.isfinite(v)}
    # a candidate where some seed diverged: its mean is over the survivors alone
    usable = {k: v for k, v in usable.items() if k not in unstable} or usable
    if not usable and any(len(where(cells, m)) for m in candidates.values()) and \
            not any(len(_ok(where(cells, m))) for m in candidates.values()):
        return Best("", [])  # every run of every candidate diverged or collapsed
    if not usable:
        raise ValueError(f"best_of: no finished cell of {list(candidates)} has a "
                         f"{choose_on or metric}")
    best = (max if higher_is_better else min)(usable.values())
    tied = [k for k, v in usable.items() if abs(v - best) <= RESIDUE * abs(best)]
    top = tied[0]
    others = [other for other in means if other != top]

    def comparisons(level: float) -> list[Comparison]:
        return [compare(cells, candidates[top], candidates[other], metric, label_a=top,
                        label_b=other, higher_is_better=higher_is_better, level=level)
                for other in others]

    comps = comparisons(LEVEL)
    if not (comps and all(c.verdict == "a" for c in comps)):
        comps = comparisons(family_level(len(others)))
    mine = where(cells, candidates[top])
    diverged = _flag(mine, "diverged")
    return Best(top, comps, means[top], choose_on, on[top] if choose_on else math.nan,
                tied[1:], len(mine), int((_flag(mine, "collapsed") & ~diverged).sum()),
                int(diverged.sum()),
                null_check(cells, mine, metric, means[top], higher_is_better))


@dataclass
class Selection:
    """A config value chosen on validation numbers, and where it sits in its grid."""

    column: str
    on: str
    chosen: object
    value: float  # the mean validation number of the chosen value
    grid: list
    edge: bool  # a better value may lie past the chosen one (see `limit`)
    ties: list = field(default_factory=list)  # values equal to it within float32 resolution
    limit: str = ""  # why: "the grid's largest", "next to 10, where runs diverged", ...
    added: list = field(default_factory=list)  # values bracketing added to the grid
    stop: str = ""  # why bracketing stopped short of an interior choice, or where it ended

    @property
    def interior(self) -> bool:
        return not self.edge

    def to_dict(self) -> dict:
        return _clean(asdict(self) | {"interior": self.interior})


def is_validation(metric: str) -> bool:
    return metric.startswith(("val_", "cv_"))


def at_edge(value, grid: list, bound: float = 0) -> bool:
    """The value is the smallest or largest of a grid of 3 or more, and a wider grid could
    go past it: the least value the knob can take (`bound`: 0 for rates, lambdas or
    degrees, 1 for a depth) at the bottom of the grid is a bound, no edge."""
    return bool(edge_limit(value, grid, bound))


def edge_limit(value, grid: list, bound: float = 0) -> str:
    """Which edge of its grid the value is at (see at_edge), in words; "" for none."""
    if len(grid) < 3 or isinstance(value, str):
        return ""
    low, high = min(grid), max(grid)
    if value == high:
        return "the grid's largest"
    if value == low and not (low == bound and high > bound):
        return "the grid's smallest"
    return ""


def select(cells: pd.DataFrame, column: str, fixed: dict, on: str, *,
           maximize: bool, bound: float = 0) -> Selection:
    """Choose the value of `column` whose mean `on` (a validation metric) is best; bound:
    the least value `column` can take (see at_edge).

    A value where some seed diverged or collapsed is no candidate while another value
    trained in every seed (its mean would be over the survivors); one where runs diverged
    gives way first. A choice next to a value where runs diverged is an edge as much as the
    grid's end: the best may lie between the two."""
    if not (is_validation(on) or on.startswith("train_")):
        raise ValueError(f"select: {on!r} is not a validation or training metric; choices "
                         "are made on validation data (val_*, cv_*) or, where the question "
                         "is how fast a model trains, training data; never on test data")
    mine = where(cells, fixed)
    part = _ok(mine)
    means = part.groupby(column)[on].mean().dropna()
    if means.empty:
        raise ValueError(f"select: no finished cell for {fixed} has a {on}")
    failed = diverged_runs(mine, column)
    lost = {_py(v) for v in mine.loc[_flag(mine, "collapsed"), column]}
    stable = means[[v not in failed for v in means.index]]
    whole = stable[[v not in lost for v in stable.index]]
    if not whole.empty:
        means = whole
    elif not stable.empty:
        means = stable
    best = means.max() if maximize else means.min()
    # values equal to the best within float32 resolution tie: the smallest is taken
    tied = sorted(means[(means - best).abs() <= RESIDUE * abs(best)].index)
    chosen = tied[0]
    grid = sorted(mine[column].unique().tolist())
    end = edge_limit(chosen, grid, bound)
    reasons = [end] if end else []
    if not isinstance(chosen, str):  # neighbours only in an ordered grid
        at = grid.index(chosen)
        for i in (at + 1, at - 1):
            if 0 <= i < len(grid) and grid[i] in failed:
                k, n = failed[grid[i]]
                reasons.append(f"next to {_value(_py(grid[i]))}, where {k} of {n} runs "
                               "diverged")
        inner = inner_neighbour(chosen, grid)
        if (end and inner not in failed and "seed" in mine
                and not mine.duplicated([column, "seed"]).any()):
            reasons.append(not_separated(mine, {column: chosen}, {column: inner}, on,
                                         maximize, _value(_py(inner))))
    limit = "; ".join(r for r in reasons if r)
    return Selection(column, on, _py(chosen), float(means[chosen]), [_py(g) for g in grid],
                     bool(limit), [_py(v) for v in tied[1:]], limit)


def at_chosen(cells: pd.DataFrame, by: list[str], column: str, on: str, *, maximize: bool,
              all_failed: str = "drop") -> pd.DataFrame:
    """The rows of each group of `by` at the value of `column` that select chooses for it
    on `on`. Where every run of a group failed (diverged or collapsed), all_failed says
    what is kept: "drop" nothing of it, "smallest" its rows at the smallest value, so
    that its failures are counted."""
    keep = []
    for _, group in cells.groupby(by, sort=False):
        try:
            chosen = select(group, column, {}, on, maximize=maximize).chosen
        except ValueError:  # every run of the group failed
            if all_failed == "drop":
                continue
            chosen = group[column].min()
        keep.append(group[group[column] == chosen])
    return pd.concat(keep) if keep else cells.iloc[:0]


def inner_neighbour(value, grid: list):
    """The value one step inside the grid from its end (value is the smallest or largest)."""
    g = sorted(grid)
    at = g.index(value)
    return g[at - 1] if at == len(g) - 1 else g[at + 1]


def not_separated(cells: pd.DataFrame, chosen: dict, inner: dict, on: str, maximize: bool,
                  label: str) -> str:
    """For a choice at its grid's end: where the paired comparison on `on` with the value
    one step inside is a tie, that difference in words (validation does not yet show that
    the metric still moves towards the edge); "" otherwise."""
    c = compare(cells, chosen, inner, on, label_a="", label_b="", higher_is_better=maximize)
    if c.n > 1 and c.verdict == "tie":
        return (f"{mark('name', on)} does not separate it from {label} "
                f"({mark('fmt_difference', c.diff, c.low, c.high, c.level, c.mean_a, c.mean_b)})")
    return ""


def diverged_runs(cells: pd.DataFrame, column: str) -> dict:
    """The values of `column` where some run diverged: value -> (diverged runs, runs),
    counting the seeds inside collapsed rows (see collapse)."""
    if "diverged" not in cells:
        return {}
    if "seeds_diverged" in cells:
        k, n = cells["seeds_diverged"], cells["seeds"]
    else:
        k, n = cells["diverged"].astype(bool).astype(int), pd.Series(1, index=cells.index)
    counts = pd.DataFrame({"v": cells[column], "k": k, "n": n}).groupby("v")[["k", "n"]].sum()
    return {_py(v): (int(r.k), int(r.n)) for v, r in counts.iterrows() if r.k > 0}
