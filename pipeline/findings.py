"""What a study concludes, as data: findings, published references, figure specs.

A finding is data (what is compared, the numbers, the interval, the verdict) and a
template: the study's own words, if any, around markers that the report writes out at
report time (pipeline.report.words): ⟦comparison⟧ and its kin for the sentence each kind
of finding makes of its data, ⟦edge⟧ for choices at an edge, and number markers (`fmt`,
`fmt_interval`, ... below) for every number, so that no word or number format of the
report lives in a study stage. A reference is a published number or range beside this
run's like-for-like number. A figure is a spec (which table, which columns) that the
generic report draws. All of it is written to the study's analysis.json; the aggregate
and report stages read that file and never the study's code.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import pandas as pd
from scipy.special import stdtr  # Student's t distribution function

from pipeline import stats
from pipeline.choices import Best, Selection
from pipeline.stats import LEVEL, Censored, Comparison, mark


@dataclass
class Finding:
    id: str  # unique within its study
    kind: str  # comparison | family | best | selection | estimate | censored
    template: str  # the study's words around markers (see the module's docstring)
    data: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The sentence the report writes of it (pipeline.report.words). No study stage
        reads it: the words are the report's."""
        from pipeline.report import words
        return words.render(to_json(self))


# numbers inside a study's words: formatted at report time (pipeline.report.numbers)
def fmt(v: float | None, digits: int = 3, zeros: bool = False) -> str:
    """A number at `digits` significant digits (zeros: trailing zeros kept)."""
    return mark("fmt", v, digits, zeros)


def fmt_interval(mean: float, ci95: float) -> str:
    """'mean ± half-width', the mean to the half-width's precision."""
    return mark("fmt_interval", mean, ci95)


def fmt_like(v: float, ci95: float) -> str:
    """v at the precision of a mean whose half-width is ci95."""
    return mark("fmt_like", v, ci95)


def fmt_ci(low: float, high: float, level: float = LEVEL) -> str:
    """'95% CI low to high'."""
    return mark("fmt_ci", low, high, level)


def level_text(level: float) -> str:
    """A coverage in per cent."""
    return mark("level_text", level)


def comparison(id: str, c: Comparison, what: str, table: str = "cells",
               pairs: str = "paired runs") -> Finding:
    """table: the study's tidy result table the comparison was computed on; pairs: what
    its paired units are (training seeds unless it says otherwise)."""
    return Finding(id, "comparison", "⟦comparison⟧",
                   c.to_dict() | {"table": table, "what": what, "pairs": pairs})


def family(id: str, comparisons: list[Comparison], what: str, settings: list[str],
           metric: str, table: str = "cells",
           sides: list[tuple[str, str]] | None = None) -> Finding:
    """One pair (a - b, the same way round in every setting) compared in several settings
    (widths, say), each a verdict of its own: the intervals are at the family's level, so
    that all of them hold together at 95%. sides: per setting, the names of its a and b
    where the pair's labels are generic ("with", "without"), for the caveats that name
    runs (a model that collapsed or did not converge is named, not its role)."""
    data = {"what": metric, "subject": what, "comparisons": [
        c.to_dict() | {"table": table, "setting": s} for s, c in zip(settings, comparisons)]}
    if sides:
        data["sides"] = [list(pair) for pair in sides]
    return Finding(id, "family", "⟦family⟧", data)


def best(id: str, b: Best, what: str, among: str) -> Finding:
    """The best of several: named best only if it beats every other one (the sentence says
    where b.top was chosen on validation data, and names any candidate better on `what`)."""
    return Finding(id, "best", "⟦best⟧",
                   stats._clean({"top": b.top, "clear": b.clear, "chosen_on": b.chosen_on,
                                 "what": what, "among": among, "top_mean": b.top_mean,
                                 "chosen_value": b.chosen_value, "ties": b.ties,
                                 "runs": b.runs, "collapsed": b.collapsed,
                                 "diverged": b.diverged, **b.null,
                                 "comparisons": [c.to_dict() for c in b.comparisons]}))


def _listed(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c' (labels)."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def add_edge(f: Finding, items: list[str], what: str, then: str = "") -> Finding:
    """Adds the note on choices at an edge (with the study's words `then` after it) to f,
    and records those choices in its data ("edge"), where the report's tags read them."""
    if items:
        f.template += "⟦edge⟧" + then
        f.data["edge"], f.data["edge_what"] = items, what
    return f


def edge_item(label: str, s: Selection) -> str:
    """'label (value, which edge)' for add_edge."""
    return f"{label} ({stats._value(s.chosen)}, {s.limit})" if label else \
        f"{stats._value(s.chosen)} ({s.limit})"


def selection(id: str, s: Selection, what: str, after: str = "",
              null: dict | None = None) -> Finding:
    """A choice made on validation data; `after`: the study's words after it (its test
    number), `null`: how it stands against the null model there (stats.null_check)."""
    return Finding(id, "selection", "⟦selection⟧",
                   s.to_dict() | (null or {}) | {"what": what, "after": after})


def selections(id: str, chosen: dict[str, Selection], what: str) -> Finding:
    """Several choices of one kind (one per configuration), in one sentence."""
    return Finding(id, "selection", "⟦selections⟧",
                   {"choices": {label: s.to_dict() for label, s in chosen.items()},
                    "order": list(chosen), "what": what})  # JSON files sort a dict's keys


def _values(values: list) -> str:
    return ", ".join(stats._value(v) for v in values)


def censored(id: str, c: Censored, what: str) -> Finding:
    return Finding(id, "censored", "⟦censored⟧",
                   {"reached": c.reached, "n": c.n, "mean": stats._clean(c.mean),
                    "ci95": stats._clean(c.ci95), "what": what})


def diverged(id: str, cells: pd.DataFrame, by: list[str], describe, where: str = "") -> Finding:
    """The configurations (groups of `by`) in which some seeds diverged, with counts;
    describe(row) names one configuration."""
    counts = (cells.groupby(by, sort=False)["diverged"].agg(["sum", "size"]).reset_index())
    hit = counts[counts["sum"] > 0]
    return Finding(id, "estimate", "⟦diverged⟧", stats._clean({
        "runs": [[*(r[c] for c in by), int(r["sum"]), int(r["size"])]
                 for _, r in hit.iterrows()],
        "labels": [describe(r) for _, r in hit.iterrows()], "where": where}))


def estimate(id: str, template: str, **data) -> Finding:
    """A finding in the study's own words, its numbers marked (fmt and its kin)."""
    return Finding(id, "estimate", template, stats._clean(data))


@dataclass
class Reference:
    """A published result and this run's like-for-like number."""

    id: str
    source: str  # the publication and where in it
    claim: str  # what it reports, in words
    measure: str  # which number of this run is compared, like for like
    low: float  # the published value, or the range across its builds
    high: float
    tolerance: float  # how far from the published value still reproduces it
    ours: float  # this run's mean over seeds
    ci95: float
    n: int
    # what it tests: "recipe" (what the training gives) or "setup" (a quantity the setup
    # fixes whatever the training does: the noise floor, the init's norm, a share of the
    # test set); fixed_by names that quantity
    kind: str = "recipe"
    fixed_by: str = ""
    # where each seed trained on its own draw of the data: how many draws, the 95% range
    # of one draw's value (a prediction interval from their spread), and the percentile
    # of one draw at which the published value (the middle of its range) lies
    draws: int = 0
    draw_low: float = math.nan
    draw_high: float = math.nan
    draw_percentile: float = math.nan

    @property
    def reproduced(self) -> bool:
        """This run's mean within the published value or range (± the tolerance), or,
        where the seeds drew their own data, the published value within the range of one
        draw: a number published from one run on one draw."""
        if not math.isfinite(self.ours):
            return False
        if self.low - self.tolerance <= self.ours <= self.high + self.tolerance:
            return True
        return bool(self.draws and self.low <= self.draw_high and self.high >= self.draw_low)

    def to_dict(self) -> dict:
        return stats._clean(asdict(self) | {"reproduced": self.reproduced})


def reference(id: str, source: str, claim: str, measure: str, values: pd.Series, *,
              value: float | None = None, low: float | None = None,
              high: float | None = None, tolerance: float = 0.0,
              fixed_by: str = "", draws: bool = False) -> Reference:
    """This run's values (one per seed) against a published value or range; fixed_by: the
    quantity of the setup that fixes the number whatever the training does, which makes
    the reference a check of the setup, not of the training recipe; draws: each seed
    trained on its own draw of the data, so the values' spread is one of draws too."""
    x = values.dropna().to_numpy(dtype=float)
    low = value if low is None else low
    high = value if high is None else high
    spread = {}
    if draws and len(x) >= 3:
        sd = float(x.std(ddof=1))
        scale = sd * math.sqrt(1 + 1 / len(x))  # one new draw, beside the mean of n
        half = stats.half_width(scale * math.sqrt(len(x)), len(x))
        mean = float(x.mean())
        at = (0.5 * (low + high) - mean) / scale if scale > 0 else math.nan
        spread = {"draws": len(x), "draw_low": mean - half, "draw_high": mean + half,
                  "draw_percentile": 100 * float(stdtr(len(x) - 1, at))
                  if math.isfinite(at) else math.nan}
    return Reference(id, source, claim, measure, float(low), float(high), tolerance,
                     *stats.mean_ci(x), len(x), "setup" if fixed_by else "recipe", fixed_by,
                     **spread)


@dataclass
class Figure:
    """A figure the report draws from one of the study's tables.

    kind: lines | bars | heatmap | classmap | images. data: "table/NAME" (a summary
    table: y is drawn as y_mean with its y_ci95, the interval the tables show) or
    "result/NAME" (a tidy result table of the study, drawn as it is).
    """

    caption: str
    kind: str
    data: str
    x: str = ""
    y: list[str] = field(default_factory=list)
    hue: str | None = None
    style: str | None = None
    col: str | None = None  # one panel per value
    where: dict = field(default_factory=dict)  # rows kept: column -> value
    logx: bool = False
    logy: bool = False
    xlabel: str | None = None
    ylabel: str | None = None
    extra: dict = field(default_factory=dict)  # kind-specific options


@dataclass
class Analysis:
    """Everything the report and `dvc metrics diff` show of one study."""

    tables: dict[str, tuple[str, pd.DataFrame]] = field(default_factory=dict)  # caption
    hidden: set[str] = field(default_factory=set)  # tables that only feed a figure
    metrics: dict = field(default_factory=dict)
    spread: dict[str, float] = field(default_factory=dict)  # metric key -> seed std
    plots: dict[str, pd.DataFrame] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)

    def table(self, name: str, caption: str, frame: pd.DataFrame,
              show: bool = True) -> pd.DataFrame:
        """A summary table (reports/tables/STUDY/NAME.csv), printed in the report unless
        it only feeds a figure (show=False)."""
        self.tables[name] = (caption, frame)
        if not show:
            self.hidden.add(name)
        return frame

    def metric(self, key: str, mean: float, std: float = math.nan) -> None:
        """A headline number (DVC metric) and its seed-to-seed std, keyed a/b/c."""
        node = self.metrics
        *parents, last = key.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = None if not math.isfinite(mean) else round(float(mean), 6)
        self.spread[key.replace("/", ".")] = std


def to_json(obj) -> dict:
    return stats._clean(asdict(obj))
