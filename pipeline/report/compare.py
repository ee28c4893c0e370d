"""The report's "changes since the baseline": params and headline metrics against a git
revision (default HEAD, the last commit), read with `git show`."""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class Comparison:
    baseline: str
    status: str  # a sentence: what was compared, or why nothing was
    params: list[dict] = field(default_factory=list)  # key, baseline, current
    metrics: list[dict] = field(default_factory=list)  # metric, baseline, current, delta, ...


def _show(rev: str, path: Path) -> str | None:
    """A file's text at a revision, or None where git or the file is missing."""
    try:
        out = subprocess.run(["git", "show", "--end-of-options", f"{rev}:./{path.as_posix()}"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def flatten(tree: object, prefix: str = "") -> dict[str, object]:
    if isinstance(tree, dict):
        out: dict[str, object] = {}
        for key, value in tree.items():
            out |= flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    return {prefix: tree}


def _number(v) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def compare(baseline: str, params_path: Path, metrics_dir: Path,
            spread: dict[str, float]) -> Comparison:
    """Params and every headline metric (reports/metrics/*.json, keyed FILE.a.b) against
    the baseline revision; spread: the seed-to-seed std of each metric, where it has one."""
    old_params_text = _show(baseline, params_path)
    if old_params_text is None:
        return Comparison(baseline, f"The baseline {baseline} could not be read from git "
                                    "(no such revision, or not a git checkout).")
    old_p = flatten(yaml.safe_load(old_params_text) or {})
    new_p = flatten(yaml.safe_load(params_path.read_text()) or {})
    params = [{"key": k, "baseline": old_p.get(k, "(absent)"), "current": new_p.get(k, "(absent)")}
              for k in sorted(old_p.keys() | new_p.keys()) if old_p.get(k) != new_p.get(k)]
    old_m, new_m, found = {}, {}, False
    for path in sorted(metrics_dir.glob("*.json")):
        text = _show(baseline, path)
        if text is not None:
            found = True
            old_m |= flatten(json.loads(text), path.stem)
        new_m |= flatten(json.loads(path.read_text()), path.stem)
    if not found:
        return Comparison(baseline, f"The baseline {baseline} has no results "
                                    f"({metrics_dir} is not in that commit).", params)
    metrics = []
    for key in sorted(old_m.keys() | new_m.keys()):
        old, new = _number(old_m.get(key)), _number(new_m.get(key))
        delta = new - old if old is not None and new is not None else None
        s = spread.get(key)
        s = math.nan if s is None else s
        if delta is None:
            exceeds = old != new
        elif math.isnan(s):
            exceeds = delta != 0  # a choice (degree, lambda): any change counts
        else:
            exceeds = abs(delta) > s
        if old == new and not exceeds:
            continue  # unchanged numbers are not listed
        metrics.append({"metric": key, "baseline": old, "current": new, "delta": delta,
                        "spread": None if math.isnan(s) else s, "exceeds": exceeds})
    changed = sum(m["exceeds"] for m in metrics)
    status = (f"Against {baseline}: {len(params)} params changed; {len(metrics)} of "
              f"{len(new_m)} headline metrics changed, {changed} of them by more than their "
              "seed-to-seed standard deviation (marked).")
    return Comparison(baseline, status, params, metrics)
