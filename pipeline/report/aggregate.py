"""The aggregate stage: every study's findings and published references, collected from
the studies' analysis.json files into reports/findings.json (with each finding's short
statement and tags, pipeline/report/answers.py) and the reproduction
scorecard (reports/scorecard.csv and the DVC metric reports/metrics/scorecard.json).
It names no study: a new study's results are collected as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.io import write_csv, write_json
from pipeline.report import answers, words


def load_analyses(results: Path) -> list[dict]:
    """Every study's analysis.json under the results folder, in report order, with each
    finding's sentence and each reference's published value written out (words)."""
    found = [json.loads(p.read_text()) for p in sorted(results.glob("*/analysis.json"))]
    for a in found:
        a["findings"] = [{"id": f["id"], "kind": f["kind"], "text": words.render(f),
                          "data": f["data"]} for f in a["findings"]]
        a["references"] = [words.reference(r) for r in a["references"]]
    return sorted(found, key=lambda a: (a.get("order", 100), a["study"]))


def scorecard_rows(analyses: list[dict]) -> list[dict]:
    return [{"study": a["study"], **ref} for a in analyses for ref in a["references"]]


def aggregate(results: Path, reports: Path) -> tuple[int, int, int]:
    import pandas as pd

    analyses = load_analyses(results)
    # each finding's full sentence, and beside it the report's short statement and tags
    findings = [{"study": a["study"], **f, "statement": answers.statement(f),
                 "tags": answers.tags(f)} for a in analyses for f in a["findings"]]
    write_json(reports / "findings.json", findings)
    rows = scorecard_rows(analyses)
    columns = ["study", "id", "source", "claim", "measure", "kind", "fixed_by", "published",
               "low", "high", "tolerance", "ours", "ci95", "n", "draws", "draw_low",
               "draw_high", "draw_percentile", "reproduced"]
    write_csv(reports / "scorecard.csv", pd.DataFrame(rows, columns=columns))
    metrics = {"reproduced": sum(bool(r["reproduced"]) for r in rows), "references": len(rows)}
    for kind in ("recipe", "setup"):  # what the training gives, apart from what the setup fixes
        of_kind = [r for r in rows if r.get("kind", "recipe") == kind]
        metrics[kind] = {"reproduced": sum(bool(r["reproduced"]) for r in of_kind),
                         "references": len(of_kind)}
    for r in rows:  # 1: reproduced; the numbers themselves are in each study's metrics
        metrics.setdefault(r["study"], {})[r["id"]] = int(bool(r["reproduced"]))
    write_json(reports / "metrics" / "scorecard.json", metrics)
    return len(analyses), len(findings), len(rows)
