"""Statistics over seeds (and folds), one definition for every table, figure and finding.

- `summarize`: per group, n, the diverged count, and each value's mean, std and 95%
  t-interval half-width. Diverged cells are counted, never averaged; a NaN in a cell that
  did not diverge makes its group's mean NaN rather than silently shrinking n.
- `compare`: two configurations over the same seeds: the paired difference, its 95%
  t-interval and a verdict (a, b, or tie: the interval contains zero).
- `censored`: a quantity that some seeds never reach: reached in k of n, and its mean
  over those that did.

Choices among configurations (`best_of`, `select`) are in pipeline.choices; every number
and sentence the report prints is written by pipeline.report (numbers, words); `mark`
leaves a number for it inside a study's own words.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace

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

    @classmethod
    def from_dict(cls, d: dict) -> Comparison:
        """Back from to_dict (JSON's null is NaN again); other keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: (math.nan if v is None and k in NUMBERS else v)
                      for k, v in d.items() if k in names})


NUMBERS = ("mean_a", "mean_b", "diff", "low", "high", "seed_sd")  # never None in a Comparison


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
    the null model's score there, its name and whether the choice beats it, and the share
    of its finished runs that converged (where the cells say; without the null's keys
    where the cells carry no null score for the metric or the mean is missing)."""
    ok = _ok(rows)
    converged = _share(ok, "converged")
    out = {} if converged is None else {"converged": converged}
    null, model = _null(cells, [ok], metric)
    if null is None or not np.isfinite(mean):
        return out
    beats = mean > null if higher_is_better else mean < null
    return {"null": null, "null_model": model, "null_metric": metric,
            "beats_null": bool(beats)} | out


def _share(side: pd.DataFrame, column: str) -> float | None:
    """The share of the rows where a 0/1 column is 1 (None where it is empty)."""
    if column not in side:
        return None
    values = side[column].dropna()
    return float(values.mean()) if len(values) else None


def beats_null(mean: float, c: Comparison) -> bool | None:
    """Whether a side's mean is better than the null model's (None: no null)."""
    if c.null is None or not np.isfinite(mean):
        return None
    return mean > c.null if c.higher_is_better else mean < c.null


def flipped(c: Comparison) -> Comparison:
    """The same comparison the other way round: b - a."""
    verdict = {"a": "b", "b": "a"}.get(c.verdict, c.verdict)
    return replace(c, a=c.b, b=c.a, label_a=c.label_b, label_b=c.label_a, mean_a=c.mean_b,
                   mean_b=c.mean_a, diff=-c.diff, low=-c.high, high=-c.low, verdict=verdict,
                   converged_a=c.converged_b, converged_b=c.converged_a,
                   collapsed_a=c.collapsed_b, collapsed_b=c.collapsed_a)


@dataclass
class Censored:
    """A quantity that not every seed reaches (epochs to a target loss)."""

    reached: int
    n: int
    mean: float  # over the seeds that reached it
    ci95: float


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


def _value(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def mark(kind: str, *args) -> str:
    """A marker for a number (or a metric's name) inside words written before the report:
    the report formats it (pipeline.report.numbers), so that a number's format is the
    report's alone. kind: one of pipeline.report.numbers.FORMATS."""
    return f"⟦{kind}:{json.dumps(_clean(list(args)))}⟧"


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
