"""What a study concludes, as data: findings, published references, figure specs.

A finding is data first (what is compared, the numbers, the interval, the verdict) and
a sentence second, built from that data by `pipeline.stats` so that it says no more
than the verdict. A reference is a published number or range beside this run's
like-for-like number. A figure is a spec (which table, which columns) that the generic
report draws. All of it is written to the study's analysis.json; the aggregate and
report stages read that file and never the study's code.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import pandas as pd
from scipy.special import stdtr  # Student's t distribution function

from pipeline import stats
from pipeline.stats import Best, Censored, Comparison, Selection, fmt


@dataclass
class Finding:
    id: str  # unique within its study
    kind: str  # comparison | family | best | selection | estimate | censored
    text: str
    data: dict = field(default_factory=dict)


def comparison(id: str, c: Comparison, what: str, table: str = "cells",
               pairs: str = "paired runs") -> Finding:
    """table: the study's tidy result table the comparison was computed on; pairs: what
    its paired units are (training seeds unless it says otherwise)."""
    return Finding(id, "comparison", stats.comparison_text(c, what, pairs),
                   c.to_dict() | {"table": table, "what": what})


def family(id: str, comparisons: list[Comparison], what: str, settings: list[str],
           metric: str, table: str = "cells") -> Finding:
    """One pair (a - b, the same way round in every setting) compared in several settings
    (widths, say), each a verdict of its own: the intervals are at the family's level, so
    that all of them hold together at 95%."""
    parts = []
    for setting, c in zip(settings, comparisons):
        word = "higher" if c.higher_is_better else "lower"
        if not c.tested:
            parts.append(f"{setting}: not compared, {stats.untested_text(c)}")
            continue
        verdict = f"{c.winner} {word}" if c.winner else "indistinguishable"
        parts.append(f"{setting}: {verdict} ({stats.fmt_difference(c)})")
    first = comparisons[0]
    pre = stats.caveats(comparisons)
    text = (f"{pre + ' ' if pre else ''}{stats.sentence(what)} ({metric}, {first.label_a} "
            f"minus {first.label_b}; each "
            f"interval at {stats.level_text(first.level)}, so that the {len(comparisons)} "
            f"hold together at {stats.level_text(stats.LEVEL)}, Bonferroni): "
            + "; ".join(parts) + ".")
    return Finding(id, "family", text, {"what": metric, "comparisons": [
        c.to_dict() | {"table": table, "setting": s} for s, c in zip(settings, comparisons)]})


def best(id: str, b: Best, what: str, among: str) -> Finding:
    """The best of several: named best only if it beats every other one. Where b.top was
    chosen on validation data, the sentence says so, and names any candidate that does
    better than it on `what`."""
    higher = not b.comparisons or b.comparisons[0].higher_is_better
    word = "higher" if higher else "lower"
    tied = (f"; tied on it with {', '.join(b.ties)} within float32 resolution, the first "
            f"listed is taken" if b.ties else "")
    chosen = (f", the choice on {stats.name(b.chosen_on)} ({fmt(b.chosen_value)}{tied}),"
              if b.chosen_on else "")
    ties = [c for c in b.comparisons if c.verdict == "tie" and c.tested]
    untested = [c for c in b.comparisons if not c.tested]
    beaten = [c.label_b for c in b.comparisons if c.verdict == "a"]
    ahead = [c for c in b.comparisons if c.verdict == "b"]
    if not b.top:
        text = f"No run of the {among} finished: every one diverged or collapsed."
    elif not b.comparisons:
        text = f"{b.top}{chosen} is the only one of the {among} with results."
    elif b.clear:
        closest = min(b.comparisons, key=lambda c: abs(c.diff))
        text = (f"{b.top}{chosen} gives the best {what} among the {among} "
                f"({fmt(b.top_mean, zeros=True)}); every difference's "
                f"{stats.level_text(b.level)} interval excludes zero, the closest being "
                f"{closest.label_b} ({fmt(closest.mean_b, zeros=True)}; "
                f"{stats.fmt_difference(closest)}).")
    else:
        # the candidates other than the top are not compared with each other: "shown"
        text = f"No single best shown among the {among} on {what}: "
        if b.chosen_on:
            text += f"{b.top}{chosen} has {fmt(b.top_mean, zeros=True)}"
        else:
            text += (f"{b.top} has the {'highest' if higher else 'lowest'} mean "
                     f"({fmt(b.top_mean, zeros=True)})")
        if ties:
            text += " and is indistinguishable from " + "; ".join(
                f"{c.label_b} ({fmt(c.mean_b, zeros=True)}; {stats.fmt_difference(c)})"
                for c in ties)
        if untested:
            text += "; it is not compared with " if ties else " and is not compared with "
            text += "; ".join(f"{c.label_b} ({stats.untested_text(c)})" for c in untested)
        text += "."
        if beaten:
            many = len(beaten) > 1
            text += (f" Against {_listed(beaten)}, {'each' if many else 'the'} difference "
                     f"favours {b.top} ({'every' if many else 'its'} "
                     f"{stats.level_text(b.level)} interval excludes zero).")
        for c in ahead:
            text += (f" Against {b.top}, {c.label_b} ({fmt(c.mean_b, zeros=True)}) gives {word} "
                     f"{what}: {stats.fmt_difference(stats.flipped(c))}.")
    if not b.clear and len(b.comparisons) > 1:
        text += (f" Each interval is at {stats.level_text(b.level)}, so that the "
                 f"{len(b.comparisons)} comparisons hold together at "
                 f"{stats.level_text(stats.LEVEL)} (Bonferroni).")
    pre = stats.caveats(b.comparisons)
    return Finding(id, "best", f"{pre} {stats.sentence(text)}" if pre else stats.sentence(text),
                   {"top": b.top, "clear": b.clear, "chosen_on": b.chosen_on, "what": what,
                    "comparisons": [c.to_dict() for c in b.comparisons]})


def _listed(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def edge_note(items: list[str], what: str) -> str:
    """The one sentence for choices at an edge (the end of their grid, or next to a value
    where runs diverged): `items` name each choice and its edge (edge_item)."""
    if not items:
        return ""
    return (f" {stats.sentence(what)} chosen at an edge, where the optimum may lie past "
            f"it: {', '.join(items)}.")


def add_edge(f: Finding, items: list[str], what: str, then: str = "") -> Finding:
    """Appends the edge note (with `then` after it) to f's text and records the choices at
    an edge in its data ("edge"), where the report's tags read them."""
    if items:
        f.text += edge_note(items, what) + then
        f.data["edge"] = items
    return f


def edge_item(label: str, s: Selection) -> str:
    """'label (value, which edge)' for edge_note."""
    return f"{label} ({stats._value(s.chosen)}, {s.limit})" if label else \
        f"{stats._value(s.chosen)} ({s.limit})"


def selection(id: str, s: Selection, what: str, after: str = "",
              null: dict | None = None) -> Finding:
    """A choice made on validation data; `after` gives its test number, `null` how it
    stands against the null model there (stats.null_check): said first where it does not
    beat it."""
    chosen = f"{s.chosen:g}" if isinstance(s.chosen, float) else str(s.chosen)
    text = (f"{what} chosen on {stats.name(s.on)} ({fmt(s.value)}): "
            f"{chosen}{_ties(s)}{_stable(s)}.{' ' + after if after else ''}")
    if s.added:
        text += f" Bracketing added {_values(s.added)} to the grid."
    if s.edge:
        text += edge_note([edge_item("", s)], what)
    if null and not null["beats_null"]:
        text = null_text(null, f"The chosen {what[:1].lower() + what[1:]}, {chosen},") + " " + text
    return Finding(id, "selection", text, s.to_dict() | (null or {}))


def null_text(null: dict, who: str = "The choice") -> str:
    """'The chosen lambda, 30, does not beat the null model on test loss (the training
    mean, 0.0107).'"""
    model = f"{null['null_model']}, " if null["null_model"] else ""
    return (f"{who} does not beat the null model on {stats.name(null['null_metric'])} "
            f"({model}{fmt(null['null'])}).")


def selections(id: str, chosen: dict[str, Selection], what: str) -> Finding:
    """Several choices of one kind (one per configuration), in one sentence."""
    parts = [f"{label} {stats._value(s.chosen)}{_ties(s)}{_stable(s)}"
             for label, s in chosen.items()]
    on = stats.name(next(iter(chosen.values())).on)
    text = f"{what} chosen on {on}: " + "; ".join(parts) + "."
    added = [f"{label} {_values(s.added)}" for label, s in chosen.items() if s.added]
    if added:
        text += f" Bracketing added to the grids: {'; '.join(added)}."
    text += edge_note([edge_item(label, s) for label, s in chosen.items() if s.edge], what)
    return Finding(id, "selection", text,
                   {"choices": {label: s.to_dict() for label, s in chosen.items()}})


def _stable(s: Selection) -> str:
    """Where bracketing ended at the knob's stability limit, in words."""
    return f" ({s.stop})" if s.stop and not s.edge else ""


def _values(values: list) -> str:
    return ", ".join(stats._value(v) for v in values)


def _ties(s: Selection) -> str:
    if not s.ties:
        return ""
    return (f" (tied with {', '.join(stats._value(v) for v in s.ties)} within float32 resolution; "
            f"the smallest is taken)")


def censored(id: str, c: Censored, what: str) -> Finding:
    return Finding(id, "censored", f"{what}: {c.text(' epochs')}.",
                   {"reached": c.reached, "n": c.n, "mean": stats._clean(c.mean),
                    "ci95": stats._clean(c.ci95)})


def diverged(id: str, cells: pd.DataFrame, by: list[str], describe, where: str = "") -> Finding:
    """The configurations (groups of `by`) in which some seeds diverged, with counts;
    describe(row) names one configuration in the sentence."""
    counts = (cells.groupby(by, sort=False)["diverged"].agg(["sum", "size"]).reset_index())
    hit = counts[counts["sum"] > 0]
    text = (f"Diverged{where}: " + ", ".join(
        f"{describe(r)} ({r['sum']} of {r['size']} seeds)" for _, r in hit.iterrows()) + "."
        if len(hit) else f"No run{where} diverged.")
    return estimate(id, text, runs=[[*(r[c] for c in by), int(r["sum"]), int(r["size"])]
                                    for _, r in hit.iterrows()])


def estimate(id: str, text: str, **data) -> Finding:
    return Finding(id, "estimate", text, stats._clean(data))


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

    @property
    def published(self) -> str:
        value = fmt(self.low) if self.low == self.high else f"{fmt(self.low)}–{fmt(self.high)}"
        return value + (f" (± {fmt(self.tolerance)})" if self.tolerance else "")

    def to_dict(self) -> dict:
        return stats._clean(asdict(self) | {"published": self.published,
                                            "reproduced": self.reproduced})


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
