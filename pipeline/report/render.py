"""The report: jinja2 (autoescape on) -> report.html -> WeasyPrint -> report.pdf."""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from pipeline.report.sections import BUILDERS, Section

LIBRARIES = ("torch", "numpy", "pandas", "seaborn", "scikit-learn", "dvc", "jinja2", "weasyprint")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def provenance(params_path: Path, results: Path, seeds: list[int]) -> dict:
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = version(lib)
        except PackageNotFoundError:
            versions[lib] = "absent"
    runs = {}
    for run in sorted(results.glob("*/run.json")):
        runs[run.parent.name] = json.loads(run.read_text())
    status = _git("status", "--porcelain")
    return {
        "commit": _git("rev-parse", "--short", "HEAD") or "not a git checkout",
        "dirty": bool(status) if status is not None else None,
        "params_sha256": hashlib.sha256(params_path.read_bytes()).hexdigest()[:16],
        "seeds": seeds,
        "versions": versions,
        "runs": runs,
        "rendered": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _fmt(v) -> str:
    return "" if pd.isna(v) else f"{v:.4g}"


def _table_html(frame: pd.DataFrame) -> str:
    """A compact HTML table, each value as "mean ± 95% half-width"; pandas escapes text."""
    shown = pd.DataFrame(index=frame.index)
    for col in frame.columns:
        if col.endswith(("_std", "_ci95")):
            continue
        if col.endswith("_mean"):
            base = col.removesuffix("_mean")
            half = frame.get(f"{base}_ci95")
            shown[base] = [_fmt(m) + ("" if half is None or pd.isna(h) else f" ± {_fmt(h)}")
                           for m, h in zip(frame[col], frame[col] if half is None else half)]
        elif frame[col].dtype.kind == "f":
            shown[col] = frame[col].map(_fmt)
        else:
            shown[col] = frame[col]
    return shown.to_html(index=False, border=0, classes="results", escape=True, na_rep="")


def build_sections(results: Path, tables: dict[str, pd.DataFrame], params: dict) -> list[Section]:
    """A section for every study that has results; a study without a builder is an error."""
    sections = []
    for study in sorted({p.parent.name for p in results.glob("*/cells.csv")},
                        key=lambda s: list(BUILDERS).index(s) if s in BUILDERS else 99):
        if study not in BUILDERS:
            raise KeyError(f"study {study!r} has results but no report section")
        sections.append(BUILDERS[study](results, tables, params.get(study, {})))
    return sections


def render_html(sections: list[Section], prov: dict, comparison=None) -> str:
    env = Environment(loader=PackageLoader("pipeline.report", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["table"] = _table_html
    env.filters["num"] = lambda v: "" if v is None else f"{v:.4g}"
    return env.get_template("report.html.j2").render(sections=sections, prov=prov,
                                                     comparison=comparison)


def write_pdf(html: str, path: Path) -> None:
    from weasyprint import HTML

    from pipeline.io import atomic_path

    with atomic_path(path, ".pdf") as tmp:
        HTML(string=html).write_pdf(tmp)
