"""Check a run's findings: each sentence of the report is a finding of
reports/findings.json, and each verdict there is recomputed from the study's tidy result
tables (data/results/STUDY/*.csv) with the interval that backs it."""

from __future__ import annotations

import html as html_lib
import json
import re
from pathlib import Path

import pandas as pd

from pipeline import outcomes, stats
from pipeline.report import answers

RANKING = re.compile(r"\b(better|worse|wins?|best|higher|lower)\b", re.I)


def _recompute(root: Path, study: str, data: dict) -> stats.Comparison:
    folder = root / "data" / "results" / study
    name = data.get("table", "cells")
    table = pd.read_csv(folder / f"{name}.csv")
    points = folder / ("points.npz" if name == "cells" else f"{name}.points.npz")
    if points.exists():
        outcomes.attach(table, outcomes.Points.load(points))
    return stats.compare(table, data["a"], data["b"], data["metric"], label_a=data["label_a"],
                         label_b=data["label_b"], higher_is_better=data["higher_is_better"],
                         pair_on=data["pair_on"], level=data["level"],
                         at_init=data.get("at_init", False))


def _check_comparison(root: Path, study: str, data: dict) -> None:
    assert {"null", "null_model", "converged_a", "converged_b", "sources", "test_points",
            "collapsed"} <= data.keys()
    c = _recompute(root, study, data)
    assert c.verdict == data["verdict"], (study, data["label_a"], data["label_b"])
    assert c.n == data["n"]
    assert c.test_points == data.get("test_points")
    for key in ("low", "high"):
        if data[key] is not None:
            assert abs(getattr(c, key) - data[key]) <= 1e-6 * max(1.0, abs(data[key])), key
    if c.verdict != "tie":  # a winner only where the interval excludes zero
        assert c.low > 0 or c.high < 0


def check_findings(root: Path, report_html: str) -> int:
    """Returns the number of verdicts checked."""
    findings = json.loads((root / "reports" / "findings.json").read_text())
    by_text = {f["text"]: f for f in findings}
    in_report = re.findall(r'<ul class="findings">(.*?)</ul>', report_html, re.S)
    items = [s for block in in_report for s in re.findall(r"<li>(.*?)</li>", block, re.S)]
    assert len(items) == len(findings)
    for item in items:  # the short statement, its tags, the finding in full folded
        full = re.search(r"<summary>in full</summary>(.*?)</details>", item, re.S)
        head = re.split(r"\s*<(?:span class=\"tag\"|details)", item)[0]
        statement = html_lib.unescape(head.strip())
        text = html_lib.unescape(full.group(1).strip()) if full else statement
        assert text in by_text, text
        assert statement == answers.statement(by_text[text])
    checked = 0
    for f in findings:
        if f["kind"] == "comparison":
            _check_comparison(root, f["study"], f["data"])
            tie = f["data"]["verdict"] == "tie" and f["data"]["n"] >= 2  # two pairs: tested
            assert ("indistinguishable" in f["text"]) == tie, f["text"]
            checked += 1
        elif f["kind"] == "family":  # one pair in several settings, a verdict each
            for c in f["data"]["comparisons"]:
                _check_comparison(root, f["study"], c)
                checked += 1
            ties = sum(c["verdict"] == "tie" and c["n"] >= 2 for c in f["data"]["comparisons"])
            assert f["text"].count("indistinguishable") == ties, f["text"]
            untested = sum(c["n"] < 2 for c in f["data"]["comparisons"])
            assert f["text"].count("not compared") == untested, f["text"]
        elif f["kind"] == "best":
            for c in f["data"]["comparisons"]:
                _check_comparison(root, f["study"], c)
                checked += 1
            clear = bool(f["data"]["comparisons"]) and all(
                c["verdict"] == "a" for c in f["data"]["comparisons"])
            assert f["data"]["clear"] == clear
            assert ("no single best" in f["text"].lower()) == (not clear and bool(
                f["data"]["comparisons"])), f["text"]
        elif f["data"].get("backing"):  # an estimate over comparisons: each recomputed
            for c in f["data"]["backing"]:
                _check_comparison(root, f["study"], c)
                checked += 1
        else:  # a selection, an estimate or a censored count ranks nothing
            assert not RANKING.search(f["text"]), f["text"]
    return checked
