"""Every sentence of the report's findings, written at report time from their data.

A study stage writes each finding as data (pipeline.findings): the numbers, intervals and
verdicts, and a template holding the study's own words, if any, around markers. This
module writes the rest: the sentence each kind of finding makes of its data (a marker
such as ⟦comparison⟧ or ⟦edge⟧) and every number (pipeline.report.numbers). No study stage
imports it, so rewording a sentence re-runs only the report stages.
"""

from __future__ import annotations

import math
import re
from dataclasses import fields, replace

from pipeline.choices import Best, Selection
from pipeline.findings import _listed as _and
from pipeline.findings import _values, edge_item
from pipeline.report.numbers import (
    MARK,
    ci_digits,
    diff_at,
    fmt,
    fmt_ci,
    fmt_interval,
    level_text,
    name,
    numbers,
    sentence,
)
from pipeline.stats import LEVEL, Comparison, _value, beats_null, flipped


def render(finding: dict) -> str:
    """A finding's sentence: its template with each marker written out."""
    data = finding.get("data", {})

    def one(m: re.Match) -> str:
        return KINDS[m.group(1)](data) if m.group(1) in KINDS else m.group(0)
    return numbers(MARK.sub(one, finding["template"]))


def fmt_difference(c: Comparison) -> str:
    """'difference a - b, 95% CI low to high', the difference to the interval's digits."""
    return f"difference {_diff_at(c)}{points_text(c)}, {fmt_ci(c.low, c.high, c.level)}"


def _diff_at(c: Comparison) -> str:
    """The difference at its interval's precision; a float32 residue prints as 0."""
    return diff_at(c.diff, c.low, c.high, c.mean_a, c.mean_b)


def points_text(c: Comparison, form: str = " ({} of {} test points)") -> str:
    """A test accuracy difference as a number of test points: ' (3.4 of 359 test
    points)'; '' for other metrics."""
    if not (c.test_points and c.metric == "test_acc" and math.isfinite(c.diff)):
        return ""
    # a mean over seeds of whole counts (steps of 1/seeds), read through float32
    # accuracies: whole where it is within a twentieth of a point of one
    points = abs(c.diff) * c.test_points
    whole = abs(points - round(points)) < 0.05
    return form.format(f"{round(points)}" if whole else f"{points:.1f}", c.test_points)


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
                   + ", their training loss still falling or rising by more than the "
                     "tolerance over the last tenth of training.")
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
    nums = (f"{fmt(m1, max(3, digits), zeros=True)} vs {fmt(m2, max(3, digits), zeros=True)}"
               f", difference {_diff_at(c)}{points_text(c, ', or {} of the {} test points')} "
               f"({fmt_ci(c.low, c.high, c.level)}, {units})")
    if c.verdict == "tie":
        return sentence(f"{first} and {second} are indistinguishable on {what}: {nums}.")
    better = "higher" if c.higher_is_better else "lower"
    return sentence(f"{first} gives {better} {what} than {second}: {nums}.")


def untested_text(c: Comparison) -> str:
    """Why a comparison has no interval: how few pairs finished on both sides."""
    if not c.n:
        return "no paired run finished on both sides"
    return (f"only one paired run finished on both sides ({fmt(c.mean_a)} vs "
            f"{fmt(c.mean_b)}), too few for an interval")


# ------------------------------------------------------------ one sentence per kind


def _comparisons(data: dict) -> list[Comparison]:
    return [Comparison.from_dict(d) for d in data.get("comparisons", [])]


def comparison(data: dict) -> str:
    return comparison_text(Comparison.from_dict(data), data["what"],
                           data.get("pairs", "paired runs"))


def named_sides(data: dict, comparisons: list[Comparison]) -> list[Comparison]:
    """A family's comparisons with each side named as the study names it in that setting
    (data["sides"]), where its labels are generic, for the caveats that name runs."""
    if not data.get("sides"):
        return comparisons
    return [replace(c, label_a=a, label_b=b) for c, (a, b) in zip(comparisons, data["sides"])]


def family(data: dict) -> str:
    """One pair (a - b, the same way round in every setting) compared in several settings,
    each a verdict of its own, the intervals at the family's level."""
    comparisons, parts = _comparisons(data), []
    for d, c in zip(data["comparisons"], comparisons):
        word = "higher" if c.higher_is_better else "lower"
        if not c.tested:
            parts.append(f"{d['setting']}: not compared, {untested_text(c)}")
            continue
        verdict = f"{c.winner} {word}" if c.winner else "indistinguishable"
        parts.append(f"{d['setting']}: {verdict} ({fmt_difference(c)})")
    first = comparisons[0]
    pre = caveats(named_sides(data, comparisons))
    return (f"{pre + ' ' if pre else ''}{sentence(data['subject'])} ({data['what']}, "
            f"{first.label_a} minus {first.label_b}; each interval at "
            f"{level_text(first.level)}, so that the {len(comparisons)} hold together at "
            f"{level_text(LEVEL)}, Bonferroni): " + "; ".join(parts) + ".")


def best(data: dict) -> str:
    """The best of several: named best only if it beats every other one. Where the top was
    chosen on validation data, the sentence says so, and names any candidate that does
    better than it on the metric."""
    b = Best(data["top"], _comparisons(data), _nan(data.get("top_mean")), data["chosen_on"],
             _nan(data.get("chosen_value")), data.get("ties", []))
    what, among = data["what"], data["among"]
    higher = not b.comparisons or b.comparisons[0].higher_is_better
    word = "higher" if higher else "lower"
    tied = (f"; tied on it with {', '.join(b.ties)} within float32 resolution, the first "
            f"listed is taken" if b.ties else "")
    chosen = (f", the choice on {name(b.chosen_on)} ({fmt(b.chosen_value)}{tied}),"
              if b.chosen_on else "")
    ties = [c for c in b.comparisons if c.verdict == "tie" and c.tested]
    untested = [c for c in b.comparisons if not c.tested]
    beaten = [c.label_b for c in b.comparisons if c.verdict == "a"]
    ahead = [c for c in b.comparisons if c.verdict == "b"]
    if not b.top:
        text = f"No run of the {among} finished: every one diverged or collapsed."
    elif not b.comparisons:
        text = f"{b.top}{chosen} is the only one of the {among} with results."
        lost = [f"{k} of its {data.get('runs')} runs {how}" for k, how in
                ((data.get("collapsed", 0), "collapsed"), (data.get("diverged", 0), "diverged"))
                if k]
        if lost:
            text = text[:-1] + f" ({_and(lost)})."
        if data.get("beats_null") is False:
            text += (f" Its {what}, {fmt(b.top_mean)}, does not beat the null model "
                     f"({data['null_model']}, {fmt(data['null'])}).")
    elif b.clear:
        closest = min(b.comparisons, key=lambda c: abs(c.diff))
        text = (f"{b.top}{chosen} gives the best {what} among the {among} "
                f"({fmt(b.top_mean, zeros=True)}); every difference's "
                f"{level_text(b.level)} interval excludes zero, the closest being "
                f"{closest.label_b} ({fmt(closest.mean_b, zeros=True)}; "
                f"{fmt_difference(closest)}).")
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
                f"{c.label_b} ({fmt(c.mean_b, zeros=True)}; {fmt_difference(c)})"
                for c in ties)
        if untested:
            text += "; it is not compared with " if ties else " and is not compared with "
            text += "; ".join(f"{c.label_b} ({untested_text(c)})" for c in untested)
        text += "."
        if beaten:
            many = len(beaten) > 1
            text += (f" Against {_and(beaten)}, {'each' if many else 'the'} difference "
                     f"favours {b.top} ({'every' if many else 'its'} "
                     f"{level_text(b.level)} interval excludes zero).")
        for c in ahead:
            text += (f" Against {b.top}, {c.label_b} ({fmt(c.mean_b, zeros=True)}) gives {word} "
                     f"{what}: {fmt_difference(flipped(c))}.")
    if not b.clear and len(b.comparisons) > 1:
        text += (f" Each interval is at {level_text(b.level)}, so that the "
                 f"{len(b.comparisons)} comparisons hold together at "
                 f"{level_text(LEVEL)} (Bonferroni).")
    pre = caveats(b.comparisons)
    return f"{pre} {sentence(text)}" if pre else sentence(text)


def _nan(v) -> float:
    return float("nan") if v is None else v


def edge_note(items: list[str], what: str) -> str:
    """The one sentence for choices at an edge (the end of their grid, or next to a value
    where runs diverged): `items` name each choice and its edge."""
    if not items:
        return ""
    return (f" {sentence(what)} chosen at an edge, where the optimum may lie past "
            f"it: {', '.join(items)}.")


def edge(data: dict) -> str:
    return edge_note(data.get("edge") or [], data.get("edge_what", ""))


def _selection(d: dict) -> Selection:
    names = {f.name for f in fields(Selection)}
    return Selection(**{k: v for k, v in d.items() if k in names})


def selection(data: dict) -> str:
    """A choice made on validation data; its test number after it (the study's words), and
    first, where the choice does not beat the null model there, that."""
    s, what, after = _selection(data), data["what"], data.get("after", "")
    chosen = f"{s.chosen:g}" if isinstance(s.chosen, float) else str(s.chosen)
    text = (f"{what} chosen on {name(s.on)} ({fmt(s.value)}): "
            f"{chosen}{_ties(s)}{_stable(s)}.{' ' + after if after else ''}")
    if s.added:
        text += f" Bracketing added {_values(s.added)} to the grid."
    if s.edge:
        text += edge_note([edge_item("", s)], what)
    if data.get("beats_null") is False:
        text = null_text(data, f"The chosen {what[:1].lower() + what[1:]}, {chosen},") + " " + text
    return text


def null_text(null: dict, who: str = "The choice") -> str:
    """'The chosen lambda, 30, does not beat the null model on test loss (the training
    mean, 0.0107).'"""
    model = f"{null['null_model']}, " if null["null_model"] else ""
    return (f"{who} does not beat the null model on {name(null['null_metric'])} "
            f"({model}{fmt(null['null'])}).")


def selections(data: dict) -> str:
    """Several choices of one kind (one per configuration), in one sentence."""
    chosen = {label: _selection(data["choices"][label])
              for label in data.get("order") or data["choices"]}
    parts = [f"{label} {_value(s.chosen)}{_ties(s)}{_stable(s)}"
             for label, s in chosen.items()]
    on = name(next(iter(chosen.values())).on)
    text = f"{data['what']} chosen on {on}: " + "; ".join(parts) + "."
    added = [f"{label} {_values(s.added)}" for label, s in chosen.items() if s.added]
    if added:
        text += f" Bracketing added to the grids: {'; '.join(added)}."
    return text + edge_note([edge_item(label, s) for label, s in chosen.items() if s.edge],
                            data["what"])


def _stable(s: Selection) -> str:
    """Where bracketing ended at the knob's stability limit, in words."""
    return f" ({s.stop})" if s.stop and not s.edge else ""


def _ties(s: Selection) -> str:
    if not s.ties:
        return ""
    return (f" (tied with {', '.join(_value(v) for v in s.ties)} within float32 resolution; "
            f"the smallest is taken)")


def censored(data: dict) -> str:
    """A quantity that not every seed reaches (epochs to a target)."""
    if not data["reached"]:
        return f"{data['what']}: reached in 0 of {data['n']} seeds."
    return (f"{data['what']}: reached in {data['reached']} of {data['n']} seeds, after "
            f"{fmt_interval(_nan(data['mean']), _nan(data['ci95']))} epochs on average over "
            "those.")


def diverged(data: dict) -> str:
    """The configurations in which some seeds diverged, with counts."""
    where = data.get("where", "")
    if not data["runs"]:
        return f"No run{where} diverged."
    return (f"Diverged{where}: " + ", ".join(
        f"{label} ({run[-2]} of {run[-1]} seeds)"
        for label, run in zip(data["labels"], data["runs"])) + ".")


def reference(ref: dict) -> dict:
    """A published reference with its words' numbers written out, and its published value
    or range, with its tolerance, as text ("published")."""
    low, high, tol = (_nan(ref[k]) for k in ("low", "high", "tolerance"))
    value = fmt(low) if low == high else f"{fmt(low)}–{fmt(high)}"
    return ref | {k: numbers(v) for k, v in ref.items() if isinstance(v, str)} | {
        "published": value + (f" (± {fmt(tol)})" if tol else "")}


KINDS = {"comparison": comparison, "family": family, "best": best, "selection": selection,
         "selections": selections, "censored": censored, "diverged": diverged, "edge": edge}
