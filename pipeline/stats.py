"""Statistics over seeds (and folds), one definition for every table, figure and finding.

- `summarize`: per group, n, the diverged count, and each value's mean, std and 95%
  t-interval half-width. Diverged cells are counted, never averaged; a NaN in a cell that
  did not diverge makes its group's mean NaN rather than silently shrinking n.
- `compare`: two configurations over the same seeds: the paired difference, its 95%
  t-interval and a verdict (a, b, or tie: the interval contains zero).
- `best_of`: the candidate with the best mean, and whether the intervals show it better
  than every other one.
- `select`: a choice made on validation numbers (never test numbers), flagged when it
  lands on the edge of its grid.
- `censored`: a quantity that some seeds never reach: reached in k of n, and its mean
  over those that did.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
from scipy.special import stdtrit  # Student's t quantile (scipy.stats.t.ppf's kernel)

LEVEL = 0.95
RESIDUE = 1e-6  # relative: below float32's resolution of a mean of a few values
SAME = 1e-12  # relative: the float64 residue of a std or mean over identical values


def half_width(std: float, n: int, level: float = LEVEL) -> float:
    """The half-width of the t-interval (95% unless `level` says otherwise) of a mean of n
    values with this std."""
    if n < 2 or not np.isfinite(std):
        return math.nan
    return float(stdtrit(n - 1, 0.5 + level / 2) * std / math.sqrt(n))


def combined_half(std: float, n: int, test_var: float = 0.0, points: int = 0,
                  level: float = LEVEL) -> float:
    """The half-width of an interval of a mean difference over n paired seeds (their
    differences' std) that also counts the test points' sampling: test_var, the variance
    of the mean over `points` test points of the per-point differences (averaged over the
    seeds). The two variances add; the degrees of freedom are Welch-Satterthwaite's.
    Without test points, half_width."""
    if not (points > 1 and test_var > 0):
        return half_width(std, n, level)
    seed_var = std * std / n if n > 1 and np.isfinite(std) else 0.0
    total = seed_var + test_var
    df = total ** 2 / ((seed_var ** 2 / (n - 1) if seed_var else 0.0)
                       + test_var ** 2 / (points - 1))
    return float(stdtrit(df, 0.5 + level / 2) * math.sqrt(total))


def _check_columns(cells: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in cells.columns]
    if missing:
        raise KeyError(f"{what} names {missing}, which the cells table lacks "
                       f"(it has {list(cells.columns)})")


def _flag(cells: pd.DataFrame, column: str) -> np.ndarray:
    """A boolean column as an array (False where the table lacks it or a row is empty)."""
    if column not in cells:
        return np.zeros(len(cells), dtype=bool)
    return cells[column].astype("boolean").fillna(False).to_numpy(dtype=bool)


def failed(cells: pd.DataFrame) -> np.ndarray:
    """Runs that diverged or collapsed (one class everywhere, a constant output)."""
    return _flag(cells, "diverged") | _flag(cells, "collapsed")


def _ok(cells: pd.DataFrame) -> pd.DataFrame:
    return cells[~failed(cells)]


def summarize(cells: pd.DataFrame, by: list[str], values: list[str]) -> pd.DataFrame:
    """One row per group of `by`: n, n_diverged (and n_collapsed where some run
    collapsed), VALUE_mean, VALUE_std, VALUE_ci95; failed runs are counted, not averaged."""
    _check_columns(cells, by + values, "a summary")
    groups = cells.groupby(by, sort=False, dropna=False)
    size = groups.size()
    ok = _ok(cells).groupby(by, sort=False, dropna=False)
    n = ok.size().reindex(size.index, fill_value=0)
    counts = ok[values].count().reindex(size.index, fill_value=0)
    means = ok[values].mean().reindex(size.index)
    stds = ok[values].std(ddof=1).reindex(size.index)
    complete = counts.eq(n, axis=0)  # a NaN left in a finished cell poisons its mean
    gone = pd.Series(_flag(cells, "collapsed") & ~_flag(cells, "diverged"), index=cells.index)
    lost = gone.groupby([cells[c] for c in by], sort=False, dropna=False).sum()
    lost = lost.reindex(size.index, fill_value=0).astype(int)
    out = pd.DataFrame({"n": n, "n_diverged": size - n - lost}, index=size.index)
    if lost.any():
        out["n_collapsed"] = lost
    for v in values:
        mean = means[v].where(complete[v])
        std = stds[v].where(complete[v])
        std = std.mask(std <= SAME * mean.abs(), 0.0)  # identical values: no spread
        out[f"{v}_mean"] = mean
        out[f"{v}_std"] = std
        out[f"{v}_ci95"] = [half_width(s, k) for s, k in zip(std, n)]
    return out.reset_index()


def collapse(cells: pd.DataFrame, by: list[str], values: list[str]) -> pd.DataFrame:
    """One row per group of `by` (a fold, say): each value's mean over the group's finished
    cells (its seeds), diverged when every cell of the group diverged, and how many of its
    seeds did. Summaries of the result count the groups, not the cells, as the units."""
    _check_columns(cells, by + values, "a collapse")
    groups = cells.groupby(by, sort=False, dropna=False)
    out = _ok(cells).groupby(by, sort=False, dropna=False)[values].mean()
    out = out.reindex(groups.size().index)
    out["diverged"] = groups["diverged"].all() if "diverged" in cells else False
    if "diverged" in cells:  # a seed that diverged inside a group still counts (select)
        out["seeds"] = groups.size()
        out["seeds_diverged"] = groups["diverged"].sum().astype(int)
    return out.reset_index()


def where(cells: pd.DataFrame, match: dict) -> pd.DataFrame:
    """The rows whose columns equal every value of `match`."""
    _check_columns(cells, list(match), "a filter")
    mask = np.ones(len(cells), dtype=bool)
    for col, value in match.items():  # None matches a missing value (a refit's fold)
        mask &= (cells[col].isna() if value is None else cells[col] == value).to_numpy()
    return cells[mask]


@dataclass
class Comparison:
    """a vs b on one metric over paired seeds."""

    metric: str
    a: dict
    b: dict
    label_a: str
    label_b: str
    higher_is_better: bool
    n: int
    mean_a: float
    mean_b: float
    diff: float  # mean of a - b over the pairs
    low: float  # 95% interval of the difference
    high: float
    verdict: str  # "a", "b" or "tie"
    pair_on: list[str] = field(default_factory=lambda: ["seed"])
    identical: bool = False  # each side gave one value in every seed
    level: float = LEVEL  # of the interval: above 95% where it is one of a family
    # what the interval covers: "seeds" and, where both sides were scored on one test set
    # point by point, "test_points" (their number is test_points, test_var the variance
    # their sampling adds to the mean difference)
    sources: list[str] = field(default_factory=lambda: ["seeds"])
    seed_sd: float = math.nan  # the std of the paired differences
    test_points: int | None = None
    test_var: float = 0.0
    null: float | None = None  # the null model's mean on the metric (see outcomes)
    null_model: str = ""
    converged_a: float | None = None  # the share of each side's paired runs that converged
    converged_b: float | None = None
    collapsed: int = 0  # runs of either side left out because they collapsed
    # a quantity measured at initialisation: what training did after (a collapse, whether
    # it converged) is not held against it
    at_init: bool = False
    # the smallest difference on this metric worth resolving (a study stage sets it from
    # params: effect_acc for accuracies); a tie whose interval holds larger ones is
    # underpowered
    effect: float | None = None
    collapsed_a: int = 0  # of them, each side's
    collapsed_b: int = 0

    @property
    def winner(self) -> str | None:
        return {"a": self.label_a, "b": self.label_b}.get(self.verdict)

    @property
    def tested(self) -> bool:
        """At least two pairs: with fewer there is no interval, and the tie it is scored
        as is no finding that the two are alike."""
        return self.n >= 2

    def to_dict(self) -> dict:
        return _clean(asdict(self))


def compare(cells: pd.DataFrame, a: dict, b: dict, metric: str, *, label_a: str,
            label_b: str, higher_is_better: bool = True,
            pair_on: list[str] | None = None, level: float = LEVEL,
            at_init: bool = False) -> Comparison:
    """Paired difference of `metric` between the cells matching a and those matching b,
    paired on `pair_on` (the seed; the seed and fold for cross-validation); `level`: the
    interval's coverage, which the verdict follows; at_init: the metric is measured at
    initialisation, so runs that collapsed in training still count and convergence is
    not asked."""
    pair_on = pair_on or ["seed"]
    if at_init:
        cells = cells.drop(columns=["collapsed", "converged"], errors="ignore")
    sides = [where(cells, a), where(cells, b)]
    oks = [_ok(side).set_index(pair_on) for side in sides]
    ca, cb = oks[0][metric], oks[1][metric]
    for side, values in (("a", ca), ("b", cb)):
        if values.index.has_duplicates:
            raise ValueError(f"compare: {side}={a if side == 'a' else b} matches several "
                             f"cells per {pair_on}; name every config column")
    joined = pd.concat([ca.rename("a"), cb.rename("b")], axis=1, join="inner").dropna()
    d = (joined["a"] - joined["b"]).to_numpy(dtype=float)
    n = len(d)
    diff = float(d.mean()) if n else math.nan
    sd = float(d.std(ddof=1)) if n > 1 else math.nan
    identical = bool(n > 1 and joined["a"].nunique() == 1 and joined["b"].nunique() == 1)
    if identical:  # one deterministic result per side: no spread over the seeds
        sd = 0.0
    points, test_var = _test_sampling(cells, oks, joined.index, metric)
    half = combined_half(sd, n, test_var, points, level) if n > 1 else math.nan  # one pair: none
    if identical and not points:
        half = 0.0
    low, high = diff - half, diff + half
    scale = float(joined.abs().to_numpy().max()) if n else 0.0
    if abs(diff) <= RESIDUE * scale:
        verdict = "tie"
    elif np.isfinite(half) and (low > 0 or high < 0):
        better_a = (low > 0) == higher_is_better
        verdict = "a" if better_a else "b"
    else:
        verdict = "tie"
    null, null_model = _null(cells, [o.loc[joined.index] for o in oks], metric)
    conv = [_share(o.loc[joined.index], "converged") for o in oks]
    lost = [int((_flag(side, "collapsed") & ~_flag(side, "diverged")).sum()) for side in sides]
    return Comparison(metric, a, b, label_a, label_b, higher_is_better, n,
                      float(joined["a"].mean()) if n else math.nan,
                      float(joined["b"].mean()) if n else math.nan,
                      diff, low, high, verdict, pair_on, identical, level,
                      ["seeds", "test_points"] if points else ["seeds"], sd, points or None,
                      test_var, null, null_model, *conv,
                      sum(lost), at_init, collapsed_a=lost[0], collapsed_b=lost[1])


def _test_sampling(cells: pd.DataFrame, oks: list[pd.DataFrame], pairs, metric: str
                   ) -> tuple[int, float]:
    """(test points, the variance their sampling adds to the mean difference) where both
    sides were scored point by point on one test set (outcomes.Points); (0, 0) otherwise."""
    store = cells.attrs.get("points")
    if store is None or "cell" not in cells or len(pairs) == 0:
        return 0, 0.0
    a, b = (o.loc[pairs] for o in oks)
    if "dataset" in cells and set(a["dataset"]) != set(b["dataset"]):
        return 0, 0.0
    delta = store.paired(metric, a["cell"].tolist(), b["cell"].tolist())
    if delta is None or delta.shape[1] < 2:
        return 0, 0.0
    return delta.shape[1], point_variance(delta)


def point_variance(delta: np.ndarray) -> float:
    """The variance the test points' sampling adds to the mean of a seeds x points table
    of paired differences, beyond what the seeds' spread already holds. With a seed effect
    a, a point effect b and their interaction e (a two-way table without replication), the
    mean's variance is var(a)/n + var(b)/N + var(e)/(nN); the seeds' spread of their row
    means estimates var(a)/n + var(e)/(nN), the columns' spread var(b)/N + var(e)/(nN), so
    the interaction's mean square (var(e)) is taken out once: var(column means)/N -
    MS_interaction/(nN), never below 0. With one seed: var(the points)/N."""
    n, points = delta.shape
    cols = delta.mean(axis=0)
    var = float(cols.var(ddof=1)) / points
    if n > 1:
        resid = delta - delta.mean(axis=1, keepdims=True) - cols + delta.mean()
        ms_int = float((resid ** 2).sum()) / ((n - 1) * (points - 1))
        var -= ms_int / (n * points)
    return max(var, 0.0)


NULL_MODELS = {"acc": "the majority class", "loss": "the training class frequencies"}


def _null(cells: pd.DataFrame, sides: list[pd.DataFrame], metric: str) -> tuple:
    """The null model's mean score on the metric over both sides' paired runs, and its
    name; (None, "") where the cells carry no null score for this metric."""
    column = f"null_{metric}"
    values = pd.concat([side[column] for side in sides if column in side]).dropna() \
        if column in cells else pd.Series(dtype=float)
    if values.empty:
        return None, ""
    split = metric.removeprefix("log10_").split("_", 1)[0]
    classifier = any(side[f"null_{split}_acc"].notna().any() for side in sides
                     if f"null_{split}_acc" in side)
    kind = metric.rsplit("_", 1)[-1]
    return float(values.mean()), (NULL_MODELS.get(kind, "") if classifier
                                  else "the training mean")


def null_check(cells: pd.DataFrame, rows: pd.DataFrame, metric: str, mean: float,
               higher_is_better: bool) -> dict:
    """For a chosen configuration (its finished `rows`) whose mean on `metric` is `mean`:
    the null model's score there, its name and whether the choice beats it; {} where the
    cells carry no null score for the metric."""
    null, model = _null(cells, [_ok(rows)], metric)
    if null is None or not np.isfinite(mean):
        return {}
    beats = mean > null if higher_is_better else mean < null
    return {"null": null, "null_model": model, "null_metric": metric, "beats_null": bool(beats)}


def _share(side: pd.DataFrame, column: str) -> float | None:
    """The share of the rows where a 0/1 column is 1 (None where it is empty)."""
    if column not in side:
        return None
    values = side[column].dropna()
    return float(values.mean()) if len(values) else None


def flipped(c: Comparison) -> Comparison:
    """The same comparison the other way round: b - a."""
    verdict = {"a": "b", "b": "a"}.get(c.verdict, c.verdict)
    return replace(c, a=c.b, b=c.a, label_a=c.label_b, label_b=c.label_a, mean_a=c.mean_b,
                   mean_b=c.mean_a, diff=-c.diff, low=-c.high, high=-c.low, verdict=verdict,
                   converged_a=c.converged_b, converged_b=c.converged_a,
                   collapsed_a=c.collapsed_b, collapsed_b=c.collapsed_a)


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
    return Best(top, comps, means[top], choose_on, on[top] if choose_on else math.nan,
                tied[1:])


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


NAMES = {"val_acc": "validation accuracy", "val_loss": "validation loss",
         "cv_loss": "cross-validation loss",
         "train_loss": "training loss", "train_acc": "training accuracy",
         "test_acc": "test accuracy", "test_loss": "test loss"}


def name(metric: str) -> str:
    """A metric's name in a sentence."""
    return NAMES.get(metric, metric.replace("_", " "))


def sentence(text: str) -> str:
    """Capitalise the first letter (labels may start a sentence in lower case)."""
    return text[:1].upper() + text[1:]


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

    A value where some seed diverged is no candidate while another value trained in every
    seed (its mean would be over the survivors). A choice next to a value where runs
    diverged is an edge as much as the grid's end: the best may lie between the two."""
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
    stable = means[[v not in failed for v in means.index]]
    if not stable.empty:
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
        return f"{name(on)} does not separate it from {label} ({fmt_difference(c)})"
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


@dataclass
class Censored:
    """A quantity that not every seed reaches (epochs to a target loss)."""

    reached: int
    n: int
    mean: float  # over the seeds that reached it
    ci95: float

    def text(self, unit: str = "") -> str:
        if not self.reached:
            return f"reached in 0 of {self.n} seeds"
        return (f"reached in {self.reached} of {self.n} seeds, after "
                f"{fmt_interval(self.mean, self.ci95)}{unit} on average over those")


def mean_ci(x: np.ndarray) -> tuple[float, float]:
    """The mean of finite values x and its 95% t-interval half-width (0 for identical
    values, whatever float residue their std carries; NaN below two values)."""
    if not len(x):
        return math.nan, math.nan
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if len(x) > 1 else math.nan
    if std <= SAME * abs(mean):  # identical values: no spread
        std = 0.0
    return mean, half_width(std, len(x))


def censored(values: pd.Series) -> Censored:
    x = values.to_numpy(dtype=float)
    hit = x[np.isfinite(x)]
    return Censored(len(hit), len(x), *mean_ci(hit))


# ---------------------------------------------------------------- numbers as text


def fmt(v: float | None, digits: int = 3, zeros: bool = False) -> str:
    """A number for a sentence: 3 significant digits; 'n/a' for a missing one. zeros:
    keep trailing zeros (-0.30 beside -0.31), so that numbers read at one precision."""
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{v:#.{digits}g}".rstrip(".") if zeros and v != 0 else f"{v:.{digits}g}"


def is_residue(d: float, *scale: float) -> bool:
    """A difference of two numbers of this scale within float32's rounding residue."""
    big = max((abs(v) for v in scale if np.isfinite(v)), default=0.0)
    return bool(np.isfinite(d) and abs(d) <= RESIDUE * big)


def fmt_diff(d: float, *scale: float, digits: int = 2) -> str:
    """A difference of two numbers of this scale: a float32 rounding residue prints as 0."""
    return "0" if is_residue(d, *scale) else fmt(d, digits, zeros=True)


def ci_digits(low: float, high: float) -> int:
    """Significant digits (2 to 6), at the interval's larger end, at which the rounding
    step is at most a tenth of its width: its ends, and a difference inside it, print
    where they are, not at a neighbouring rounding (-2.660 to -2.644, not -2.7 to -2.6)."""
    width = abs(high - low)
    big = max(abs(low), abs(high))
    if not (np.isfinite(width) and width > 0 and big > 0):
        return 3
    digits = math.floor(math.log10(big)) + 2 - math.log10(width)
    return int(min(6, max(2, math.ceil(digits - 1e-9))))


def ci_decimals(low: float, high: float) -> int | None:
    """Decimal places for both ends of an interval (and a difference inside it): the
    larger end's at ci_digits, so that both ends read at one precision across a power of
    ten (-1.67 to -0.80); None where fixed-point would not read (tiny or huge numbers)."""
    big = max(abs(low), abs(high))
    if not (np.isfinite(big) and 1e-4 <= big < 1e6):
        return None
    return max(0, ci_digits(low, high) - 1 - math.floor(math.log10(big)))


def fmt_at(v: float, low: float, high: float) -> str:
    """v (an end of the interval low..high, or a number inside it) at the interval's
    precision; a nonzero number that would print as 0.00 keeps 2 significant digits, so
    that its sign (which side of zero an end lies) still reads."""
    places = ci_decimals(low, high)
    if places is None or not np.isfinite(v):
        return fmt(v, ci_digits(low, high), zeros=True)
    if v != 0 and round(v, places) == 0:
        return fmt(v, 2, zeros=True)
    return f"{v:.{places}f}"


def level_text(level: float) -> str:
    """A coverage in per cent, rounded down (98.75%, never 98.8%)."""
    return f"{math.floor(10000 * level + 1e-6) / 100:g}%"


def fmt_ci(low: float, high: float, level: float = LEVEL) -> str:
    """'95% CI low to high' at ci_digits."""
    return f"{level_text(level)} CI {fmt_at(low, low, high)} to {fmt_at(high, low, high)}"


def fmt_interval(mean: float, ci95: float) -> str:
    """'mean ± half-width', the mean to the decimal place of the half-width's second
    significant digit (12.7195 ± 0.0055, not 12.7 ± 0.0055; 0.00086 ± 0.00027)."""
    if not np.isfinite(ci95):
        return fmt(mean)
    return f"{fmt_like(mean, ci95)} ± {fmt(ci95, 2, zeros=True)}"


def fmt_like(v: float, ci95: float) -> str:
    """v to the decimal place of the half-width's second significant digit (a mean beside
    its interval, or a number read beside such a mean); 3 significant digits where the
    half-width is 0 or missing."""
    if not (np.isfinite(ci95) and ci95 > 0 and np.isfinite(v)) or v == 0:
        return fmt(v)
    place = math.floor(math.log10(ci95)) - 1  # the half-width's second digit
    digits = max(1, math.floor(math.log10(abs(v))) - place + 1)
    return fmt(v, min(digits, 8), zeros=True)


def fmt_difference(c: Comparison) -> str:
    """'difference a - b, 95% CI low to high', the difference to the interval's digits."""
    return f"difference {_diff_at(c)}{points_text(c)}, {fmt_ci(c.low, c.high, c.level)}"


def _diff_at(c: Comparison) -> str:
    """The difference at its interval's precision; a float32 residue prints as 0."""
    return "0" if is_residue(c.diff, c.mean_a, c.mean_b) else fmt_at(c.diff, c.low, c.high)


def points_text(c: Comparison, form: str = " ({} of {} test points)") -> str:
    """A test accuracy difference as a number of test points: ' (3.4 of 359 test
    points)'; '' for other metrics."""
    if not (c.test_points and c.metric == "test_acc" and np.isfinite(c.diff)):
        return ""
    return form.format(f"{abs(c.diff) * c.test_points:.1f}", c.test_points)


def beats_null(mean: float, c: Comparison) -> bool | None:
    """Whether a side's mean is better than the null model's (None: no null)."""
    if c.null is None or not np.isfinite(mean):
        return None
    return mean > c.null if c.higher_is_better else mean < c.null


def caveats(comparisons: list[Comparison], short: bool = False,
            unconverged_too: bool = True) -> str:
    """What a reader must know before the verdict, said first: the sides whose runs
    collapsed (the pairs left hold only the runs that trained, so a side that collapsed is
    judged on its survivors), the sides that do not beat the null model, and
    (unconverged_too) those whose runs did not all converge. Each side is checked in every
    setting it was compared in, and named once. short: a statement's words."""
    below, unconverged, lost, seen, runs = [], [], [], set(), 0
    order: list[str] = []  # the sides' labels as met, a before b
    for c in comparisons:
        for label, mean, conv, gone, side in (
                (c.label_a, c.mean_a, c.converged_a, c.collapsed_a, c.a),
                (c.label_b, c.mean_b, c.converged_b, c.collapsed_b, c.b)):
            label = re.sub(r" \([^()]*\)$", "", label) or label  # without its aside
            key = (label, tuple(sorted((k, str(v)) for k, v in side.items())))
            if key in seen:
                continue
            seen.add(key)
            order.append(label)
            runs += c.n
            if gone:
                lost.append((label, gone, c.n + gone))
            if beats_null(mean, c) is False:
                below.append((label, c))
            if conv is not None and conv < 1 and c.n:
                unconverged.append((label, round((1 - conv) * c.n), c.n))
    names = {label for label, _ in seen}
    lost, unconverged = _by_label(lost), _by_label(unconverged)
    out = []
    if lost:
        k, total = sum(g for _, g, _ in lost), sum(t for _, _, t in lost)
        out.append(f"Collapsed: {k} of {total} runs of {_and([x[0] for x in lost])}, "
                   "left out." if short else
                   "Collapsed and left out of the pairs: "
                   + _and([f"{label} ({g} of {t} runs)" for label, g, t in lost])
                   + "; the rest compare the runs that trained.")
    if below:
        c = below[0][1]
        null = f"{c.null_model}, {fmt(c.null)}" if c.null_model else fmt(c.null)
        who_below = _once([label for label, _ in below])
        every = len(below) == len(seen) and len(names) > 1  # every side, in every setting
        if every and len(names) == 2:  # named, where the names are short
            first, second = dict.fromkeys(order)
            who = (f"neither {first} nor {second}" if len(first) + len(second) <= 60
                   else "neither side")
        else:
            who = "none of them" if every else _and(who_below)
        verb = "beats" if every else \
            ("does not beat" if len(who_below) == 1 else "do not beat")
        out.append(sentence(f"{who} {verb} the null model ({null})" if short else
                            f"{who} {verb} the null model on {name(c.metric)} ({null})."))
        if short:
            out[-1] += "."
    if not unconverged_too:
        pass
    elif unconverged and short:
        k = sum(u[1] for u in unconverged)
        out.append(f"Not converged: {k} of {runs} runs." if len(unconverged) > 1
                   else f"Not converged: {unconverged[0][0]} ({k} of {unconverged[0][2]} "
                        "runs).")
    elif unconverged:
        out.append("Not converged: " + _and([f"{label} ({k} of {n} runs)"
                                             for label, k, n in unconverged])
                   + ", still improving over the last tenth of training.")
    return " ".join(out)


def _by_label(counts: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """(label, k, of n) rows with the counts of a label's settings summed, in order."""
    out: dict[str, list[int]] = {}
    for label, k, n in counts:
        total = out.setdefault(label, [0, 0])
        total[0], total[1] = total[0] + k, total[1] + n
    return [(label, k, n) for label, (k, n) in out.items()]


def _once(labels: list[str]) -> list[str]:
    """The labels in order, each once."""
    return list(dict.fromkeys(labels))


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def comparison_text(c: Comparison, what: str, pairs: str = "paired runs") -> str:
    """A sentence that says no more than the verdict: a winner only when the interval of
    the difference excludes zero, otherwise 'indistinguishable', with the difference.
    pairs: what the paired units are, in words ("paired runs": training seeds)."""
    pre = caveats([c])
    body = _comparison_body(c, what, pairs)
    return f"{pre} {body}" if pre else body


def _comparison_body(c: Comparison, what: str, pairs: str) -> str:
    if not c.tested:
        return sentence(f"{c.label_a} and {c.label_b} are not compared on {what}: "
                        f"{untested_text(c)}.")
    if c.verdict == "b":  # the winner is named first
        c = flipped(c)
    first, second, m1, m2 = c.label_a, c.label_b, c.mean_a, c.mean_b
    if c.identical and not c.test_points:  # one value per side in every seed
        if c.verdict == "tie":
            return sentence(f"{first} and {second} give the same {what}, {fmt(m1)}, in all "
                            f"{c.n} seeds.")
        better = "higher" if c.higher_is_better else "lower"
        return sentence(f"{first} gives {better} {what} than {second}: {fmt(m1)} vs "
                        f"{fmt(m2)}. The seed changes nothing here (all {c.n} seeds gave these "
                        f"two values): one result per side, without an interval.")
    digits = ci_digits(c.low, c.high)
    units = f"{c.n} {pairs}" + (f" and {c.test_points} test points" if c.test_points else "")
    numbers = (f"{fmt(m1, max(3, digits), zeros=True)} vs {fmt(m2, max(3, digits), zeros=True)}"
               f", difference {_diff_at(c)}{points_text(c, ', or {} of the {} test points')} "
               f"({fmt_ci(c.low, c.high, c.level)}, {units})")
    if c.verdict == "tie":
        return sentence(f"{first} and {second} are indistinguishable on {what}: {numbers}.")
    better = "higher" if c.higher_is_better else "lower"
    return sentence(f"{first} gives {better} {what} than {second}: {numbers}.")


def untested_text(c: Comparison) -> str:
    """Why a comparison has no interval: how few pairs finished on both sides."""
    if not c.n:
        return "no paired run finished on both sides"
    return (f"only one paired run finished on both sides ({fmt(c.mean_a)} vs "
            f"{fmt(c.mean_b)}), too few for an interval")


def _value(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _py(v):
    return v.item() if isinstance(v, np.generic) else v


def _clean(obj):
    """JSON-ready: numpy scalars to Python, NaN to None."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    obj = _py(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
