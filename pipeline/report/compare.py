"""The report's "changes since the baseline": params and headline metrics against a git
revision (default HEAD, the last commit), read with `dvc params diff --json` and `dvc
metrics diff --json`, so that the report agrees with what those commands print."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Comparison:
    baseline: str
    status: str  # a sentence: what was compared, or why nothing was
    params: list[dict] = field(default_factory=list)  # key, baseline, current
    metrics: list[dict] = field(default_factory=list)  # metric, baseline, current, delta, ...


def _dvc_json(command: str, rev: str) -> subprocess.Popen:
    """`dvc COMMAND diff --json REV`, started: the venv's dvc beside this Python, else the
    PATH's."""
    exe = Path(sys.executable).parent / "dvc"
    return subprocess.Popen([str(exe) if exe.exists() else "dvc", command, "diff", "--json",
                             "--", rev],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen) -> dict | None:
    """The JSON it printed, or None where it failed (no such revision, no git, no DVC)."""
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        return None
    if proc.returncode != 0:
        return None
    try:
        return json.loads(out or "{}")
    except json.JSONDecodeError:
        return None


def flatten(tree: object, prefix: str = "") -> dict[str, object]:
    if isinstance(tree, dict):
        out: dict[str, object] = {}
        for key, value in tree.items():
            out |= flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    return {prefix: tree}


def _absent(v):
    return "(absent)" if v is None else v


def _number(v) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def start(baseline: str) -> list[subprocess.Popen] | None:
    """Both DVC diffs, started at once (each is a DVC start-up of a second or two), so that
    they run while the report draws its figures."""
    try:
        return [_dvc_json("params", baseline), _dvc_json("metrics", baseline)]
    except OSError:
        return None


def compare(baseline: str, params_path: Path, metrics_dir: Path,
            spread: dict[str, float], runs: list | None = None) -> Comparison:
    """Params and every headline metric (reports/metrics/*.json, keyed FILE.a.b) against
    the baseline revision; spread: the seed-to-seed std of each metric, where it has one;
    runs: start(baseline), if already started."""
    runs = start(baseline) if runs is None else runs
    params_diff, metrics_diff = (None, None) if runs is None else map(_result, runs)
    if params_diff is None or metrics_diff is None:
        return Comparison(baseline, f"The baseline {baseline} could not be read with DVC "
                                    "(no such revision, or not a git and DVC checkout).")
    params = [{"key": key, "baseline": _absent(d.get("old")), "current": _absent(d.get("new"))}
              for path, keys in sorted(params_diff.items())
              if Path(path).resolve() == params_path.resolve()
              for key, d in sorted(keys.items())]
    new_m = {}
    for path in sorted(metrics_dir.glob("*.json")):
        new_m |= flatten(json.loads(path.read_text()), path.stem)
    old_m = {}
    for path, keys in metrics_diff.items():
        if Path(path).resolve().parent == metrics_dir.resolve():
            for key, d in keys.items():
                old_m[f"{Path(path).stem}.{key}"] = d.get("old")
    if old_m and all(v is None for v in old_m.values()):
        return Comparison(baseline, f"The baseline {baseline} has no results "
                                    f"({metrics_dir} is not in that commit).", params)
    metrics = []
    for key in sorted(old_m):  # what `dvc metrics diff` lists: the metrics that changed
        old, new = _number(old_m[key]), _number(new_m.get(key))
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
