"""Short statements, composed at report time from the findings' data: each study's answer
(a sentence or two with how sure it is), one short statement and its caveat tags per
finding, and every paired comparison as a row of the study's forest plot.

A study names the findings that answer its question (`Study.answer`, in analysis.json);
the words here say no more than their verdicts, and the finding's full sentence stays
beside them (folded in the HTML, in the PDF's appendix). Nothing here names a study.
"""

from __future__ import annotations

import math
import re

from pipeline import stats
from pipeline.report import numbers, words
from pipeline.stats import Comparison

SHORT = 200  # characters: a statement longer than this is cut at a clause
LONGER = 280  # an estimate, a count or a choice: up to two sentences within this
TOTAL = 300  # a statement with its caveats and its power note

# the caveat tags, explained once in the report's legend
TAGS = {
    "edge": "a choice it rests on lies at the end of its grid or next to a value where "
            "runs diverged: the optimum may lie past it",
    "family": "one of several claims made together: each interval is at the family's "
              "(Bonferroni) level, so that all hold together at 95%",
    "unreplicated": "every seed gave the same value: one result per side, no interval",
    "diverged": "some runs diverged; they are counted, never averaged",
    "underpowered": "the seeds were too few to settle it: the verdict at 95% and the one "
                    "at the family's level differ, or a tie's interval reaches past plus or "
                    "minus the effect of interest (the statement gives "
                    "how many seeds the observed spread would need)",
    "null": "a model compared does not beat the null model (the majority class, the "
            "training class frequencies or the training mean) on this metric",
    "unconverged": "some runs compared had not settled at the end of training (their "
                   "training loss still fell or rose by more than the tolerance over its "
                   "last tenth)",
    "collapsed": "some runs collapsed (one class for every point, or one output whatever "
                 "the input); they are counted, never averaged",
}
MAX_SEEDS = 1000  # a search bound: "more than this" past it
PAIR = 60  # longest pair of names an underpowered tag spells out




def comparison(d: dict) -> Comparison:
    return Comparison.from_dict(d)


def comparisons(finding: dict) -> list[tuple[str, Comparison]]:
    """Every paired comparison a finding holds, each with the setting it was made in."""
    kind, data = finding["kind"], finding.get("data", {})
    if kind == "comparison" and "diff" in data:  # its setting, where the study names one
        return [(data.get("setting", ""), comparison(data))]
    if kind in ("best", "family"):
        return [(d.get("setting", ""), comparison(d)) for d in data.get("comparisons", [])]
    return []


def seeds_needed(c: Comparison) -> int | None:
    """For a comparison at a family's level (above 95%): where its verdict there differs
    from the verdict its own spread gives at 95%, the number of paired seeds at which that
    spread would settle it at the family's level (the interval excluding zero, were the
    mean difference and the spread the same); None where the two verdicts agree."""
    if c.identical or c.n < 2 or c.level <= stats.LEVEL + 1e-9:
        return None
    sd, points, test_var = c.seed_sd, c.test_points or 0, c.test_var
    if not math.isfinite(sd) and not points:  # the spread behind a seeds-only interval
        sd = (c.high - c.low) / 2 / stats.half_width(1.0, c.n, c.level)
    if not (math.isfinite(sd) and sd > 0):
        return None
    settled_at_95 = abs(c.diff) > stats.combined_half(sd, c.n, test_var, points)
    if settled_at_95 == (c.verdict != "tie"):
        return None
    if test_var and stats.combined_half(0.0, c.n, test_var, points, c.level) >= abs(c.diff):
        return None  # the test set, not the seeds, is too small to settle it
    m = c.n
    while m <= MAX_SEEDS and stats.combined_half(sd, m, test_var, points,
                                                 c.level) >= abs(c.diff):
        m += 1
    return m


def to_resolve(c: Comparison) -> tuple[int | None, float, str] | None:
    """For a tie whose interval is not inside +-effect (c.effect, the smallest difference
    worth resolving), so that it neither shows a difference nor rules out one that
    matters: the number of paired seeds at which the observed spread would do one or the
    other (the interval excluding zero, or lying inside +-effect, were the mean difference
    and the spread the same; None where the test points alone keep it from both: more
    seeds cannot resolve it), with that effect and which of the two it would do ("differs":
    the interval would exclude zero; "within": it would lie inside +-effect; "" where no
    count up to MAX_SEEDS does either); None where the tie resolves it."""
    if c.effect is None or c.verdict != "tie" or c.n < 2 or not math.isfinite(c.high - c.low):
        return None
    if -c.effect <= c.low and c.high <= c.effect:
        return None
    sd, points, test_var = c.seed_sd, c.test_points or 0, c.test_var
    if not math.isfinite(sd):
        sd = (c.high - c.low) / 2 / stats.half_width(1.0, c.n, c.level)
    diff = abs(c.diff)

    def resolved(half: float) -> bool:
        return half < diff or diff + half <= c.effect

    if test_var and not resolved(stats.combined_half(0.0, c.n, test_var, points, c.level)):
        return None, c.effect, ""
    m = c.n
    while m <= MAX_SEEDS and not resolved(half := stats.combined_half(sd, m, test_var, points,
                                                                      c.level)):
        m += 1
    how = "" if m > MAX_SEEDS else "differs" if half < diff else "within"
    return m, c.effect, how


def tags(finding: dict) -> list[str]:
    """The caveats that qualify a finding, as short tags (TAGS)."""
    out = []
    text, data = finding["text"], finding.get("data", {})
    # a choice at an edge: a selection's own flag, one of several selections', or add_edge's
    if data.get("edge") or any(c["edge"] for c in data.get("choices", {}).values()):
        out.append("edge")
    levels = {c.level for _, c in comparisons(finding)}
    if any(level > stats.LEVEL + 1e-9 for level in levels):
        out.append("family")
    if any(c.identical and not c.test_points for _, c in comparisons(finding)):
        out.append("unreplicated")
    if any(seeds_needed(c) or to_resolve(c) for _, c in comparisons(finding)):
        out.append("underpowered")
    if re.search(r"\bdiverged\b", text) and finding["kind"] != "estimate":
        out.append("diverged")
    pairs = [c for _, c in comparisons(finding)]
    if any(stats.beats_null(m, c) is False for c in pairs for m in (c.mean_a, c.mean_b)) \
            or finding.get("data", {}).get("beats_null") is False:
        out.append("null")
    if any(v is not None and v < 1 for c in pairs for v in (c.converged_a, c.converged_b)) \
            or data.get("converged", 1) < 1:  # a choice's own runs (stats.null_check)
        out.append("unconverged")
    if any(c.collapsed for c in pairs) or finding["kind"] in ("estimate", "best") and \
            data.get("collapsed", 0) > 0:
        out.append("collapsed")
    return out


def _cut(text: str, limit: int = SHORT) -> str:
    """The text's first sentence (and its second, where both fit the limit); past the
    limit, without its asides (the parentheses that hold no number), else up to a clause
    within the shorter limit."""
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z])", text.strip())
    first = sentences[0]
    if len(first) <= limit:  # and the next sentence too, where it fits (its conclusion)
        if len(sentences) > 1 and len(first) + 1 + len(sentences[1]) <= limit:
            return f"{first} {sentences[1]}"
        return first
    first = re.sub(r" \([^()\d]*\)", "", first)
    if len(first) <= limit:
        return first
    limit = min(limit, SHORT)
    room = first[:limit - 2]
    depth = _depths(room)
    for sep in ("; ", ": ", ", "):  # the last clause break outside any parenthesis
        at = [i for i in range(len(room)) if room.startswith(sep, i) and depth[i] == 0]
        if at and at[-1] > limit // 3:
            return room[:at[-1]] + " …"
    cut = room.rsplit(" ", 1)[0]
    if depth[len(cut) - 1]:  # inside a parenthesis: before it
        cut = cut[:max(i for i in range(len(cut)) if cut[i] == "(" and depth[i] == 1)]
    return cut.rstrip(" ,;:") + " …"


def _depths(text: str) -> list[int]:
    """How many parentheses are open at each character (an opening one counts itself)."""
    out, depth = [], 0
    for ch in text:
        depth += ch == "("
        out.append(depth)
        depth -= ch == ")" and depth > 0
    return out


def _what(data: dict, c: Comparison) -> str:
    """What was compared, in the study's words where it gave them."""
    return data.get("what") or numbers.name(c.metric)


def _versus(c: Comparison, what: str) -> str:
    """'A gives higher metric than B (difference d, 95% CI ...)' or 'A and B are
    indistinguishable on metric (...)'."""
    if not c.tested:
        return f"{c.label_a} and {c.label_b} are not compared on {what} (too few pairs)"
    if c.verdict == "b":
        c = stats.flipped(c)
    if c.identical and not c.test_points:
        return (f"{c.label_a} {numbers.fmt(c.mean_a)} vs {c.label_b} {numbers.fmt(c.mean_b)} "
                f"on {what}, in every seed")
    if c.verdict == "tie":
        return (f"{c.label_a} and {c.label_b} are indistinguishable on {what} "
                f"({words.fmt_difference(c)})")
    word = "higher" if c.higher_is_better else "lower"
    return f"{c.label_a} gives {word} {what} than {c.label_b} ({words.fmt_difference(c)})"


def statement(finding: dict, unconverged_too: bool = True) -> str:
    """One short sentence that says no more than the finding's verdict, after what must be
    known first (runs that collapsed, a model that does not beat the null; with
    unconverged_too, runs not settled), and, where the seeds were too few to settle a
    comparison, how many would. Within TOTAL characters: past it, the runs not settled
    are left to the finding's tag."""
    power = _power(finding)
    text = _statement(finding) + power
    held = words.named_sides(finding.get("data", {}), [c for _, c in comparisons(finding)])
    pre = words.caveats(held, short=True, unconverged_too=unconverged_too)
    if unconverged_too and len(pre) + 1 + len(text) > TOTAL:
        pre = words.caveats(held, short=True, unconverged_too=False)
    if len(pre) + 1 + len(text) > TOTAL:  # the verdict itself, cut shorter
        text = _statement(finding, TOTAL - len(pre) - 1 - len(power)) + power
    return f"{pre} {text}" if pre else text


def _power(finding: dict) -> str:
    """' Underpowered: ...' where the seeds were too few to settle a comparison; ''."""
    text = ""
    held = comparisons(finding)
    need = [(m, c, where) for where, c in held if (m := seeds_needed(c))]
    if need:  # the most any of them needs, and which one that is where there are several
        m, c, where = max(need, key=lambda t: t[0])
        many = f"about {m}" if m <= MAX_SEEDS else f"more than {MAX_SEEDS}"
        pair = f"{c.label_a} vs {c.label_b}" + (f" ({where})" if where else "")
        which = "it" if len(held) == 1 else pair if len(pair) <= PAIR \
            else "the least settled of them"
        return f" Underpowered: at this spread, {many} seeds would settle {which}."
    wide = [r for _, c in comparisons(finding) if (r := to_resolve(c))]
    if wide:
        effect = wide[0][1]
        seeds = [m for m, _, _ in wide]
        if None in seeds:
            text += (f" Underpowered for ±{numbers.fmt(effect)}: the test set alone keeps the "
                     "interval wider, whatever the seeds.")
        else:
            m, _, how = max(wide, key=lambda r: r[0])
            if len({h for *_, h in wide}) > 1:
                how = ""  # the ties go different ways: one count for either
            does = {"differs": "would show a difference",
                    "within": f"would rule out a difference of {numbers.fmt(effect)}"}
            text += f" Underpowered for ±{numbers.fmt(effect)}: " + (
                f"more than {MAX_SEEDS} seeds would be needed to resolve it." if m > MAX_SEEDS
                else f"at this spread, about {m} seeds "
                     f"{does.get(how, 'would resolve it, one way or the other')}.")
    return text


def _statement(finding: dict, room: int = SHORT) -> str:
    kind, data = finding["kind"], finding.get("data", {})
    pairs = comparisons(finding)
    if kind == "comparison" and pairs:
        return _cut(numbers.sentence(_versus(pairs[0][1], _what(data, pairs[0][1]))) + ".", room)
    if kind == "best" and pairs:
        cs = [c for _, c in pairs]
        what = _what(data, cs[0])
        if data.get("clear"):
            closest = min(cs, key=lambda c: abs(c.diff))
            text = numbers.sentence(
                f"{data['top']} gives the best {what}, ahead of every other; the closest, "
                f"{closest.label_b}: {words.fmt_difference(closest)}.")
            return text if room >= SHORT else _cut(text, room)
        ties = [f"{c.label_b} ({numbers.fmt(c.mean_b, zeros=True)})" for c in cs
                if c.verdict == "tie" and c.tested]
        untested = [c.label_b for c in cs if not c.tested]
        beaten = [c.label_b for c in cs if c.verdict == "a"]
        ahead = [c.label_b for c in cs if c.verdict == "b"]
        top = data["top"] + (f" ({numbers.fmt(data['top_mean'], zeros=True)})"
                             if data.get("top_mean") is not None else "")
        if data.get("chosen_on"):  # the validation choice, not the best on this metric
            text = (f"No single best on {what}: {top}, the choice on "
                    f"{numbers.name(data['chosen_on'])}")
        else:
            text = f"No single best on {what}: {top} has the best mean"
        if ties:
            text += f", indistinguishable from {_listed(ties)}"
        if untested:
            text += f"; not compared with {_listed(untested)} (too few pairs)"
        if beaten:
            text += f"; it is ahead of {_listed(beaten)}"
        if ahead:
            text += f"; {_listed(ahead)} {'do' if len(ahead) > 1 else 'does'} better"
        return _cut(numbers.sentence(text) + ".", room)
    if kind == "family" and pairs:
        c0 = pairs[0][1]
        wins = {}
        for setting, c in pairs:
            who = c.winner or ("indistinguishable" if c.tested else "not compared")
            wins.setdefault(who, []).append(setting)
        word = "higher" if c0.higher_is_better else "lower"
        plain = ("indistinguishable", "not compared")
        parts = [f"{who if who in plain else f'{who} {word}'} at {_listed(where)}"
                 for who, where in wins.items()]
        return _cut(numbers.sentence(f"{c0.label_a} vs {c0.label_b} on {_what(data, c0)}: "
                                   + "; ".join(parts)) + ".", room)
    # an estimate, a count or a selection
    return _cut(finding["text"], LONGER if room >= SHORT else room)


def _listed(items: list[str]) -> str:
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def confidence(findings: list[dict]) -> str:
    """How sure the answer is, from its comparisons' verdicts: 'clear' (every interval
    excludes zero), 'no difference shown' (none does), 'partial', or 'descriptive' (an
    estimate, no comparison)."""
    verdicts = []  # of the comparisons tested (two pairs or more)
    for f in findings:
        own = [c.verdict for _, c in comparisons(f) if c.tested]
        if f["kind"] == "best" and own:
            verdicts.append("a" if f["data"].get("clear") else
                            "tie" if all(v == "tie" for v in own) else "partial")
        elif f["kind"] != "best":
            verdicts += own
    if not verdicts:
        return "descriptive"
    decided = [v in ("a", "b") for v in verdicts]
    return "clear" if all(decided) else "no difference shown" if not any(
        v != "tie" for v in verdicts) else "partial"


def answer(analysis: dict) -> dict:
    """The study's answer: the statements of the findings it names (else its first
    comparison), how sure, and the tags of those findings."""
    by_id = {f["id"]: f for f in analysis["findings"]}
    ids = [i for i in analysis.get("answer", []) if i in by_id]
    if not ids:
        ids = [f["id"] for f in analysis["findings"] if comparisons(f)][:1] or \
              [f["id"] for f in analysis["findings"]][:1]
    chosen = [by_id[i] for i in ids]
    found_tags = list(dict.fromkeys(t for f in chosen for t in tags(f)))
    # the summary's answer: unconverged runs are its tag (the study's findings say more)
    return {"text": " ".join(statement(f, unconverged_too=False) for f in chosen),
            "confidence": confidence(chosen), "tags": found_tags, "ids": ids}


def forest_rows(analysis: dict) -> list[dict]:
    """Every paired comparison of a study with an interval, one row each, the winner first
    (right of zero where higher is better, left where lower is): the label, the metric,
    the difference and its interval, the level and the verdict."""
    rows = []
    for f in analysis["findings"]:
        for setting, c in comparisons(f):
            if (c.identical and not c.test_points) or not c.tested:
                continue  # no interval to draw
            sign = 1 if c.higher_is_better else -1
            if f["kind"] != "family" and (c.verdict == "b" or (c.verdict == "tie"
                                                               and c.diff * sign < 0)):
                # the winner (or the better mean) first, so that a difference lies on
                # its better side; a family keeps its one order in every setting
                c = stats.flipped(c)
            label = _label(c.label_a) + " − " + _label(c.label_b)
            label = f"{setting}: {label}" if setting else label
            rows.append({"finding": f["id"], "label": label, "metric": numbers.name(c.metric),
                         "diff": c.diff, "low": c.low, "high": c.high, "level": c.level,
                         "verdict": "tie" if c.verdict == "tie" else "differs",
                         "better": "higher" if sign > 0 else "lower",
                         "setting": setting})
    return rows


def _label(text: str) -> str:
    """A side's label without its asides: 'relu with sgd (the network best on
    validation)' -> 'relu with sgd'."""
    return re.sub(r" \([^()]*\)", "", text) or text
