"""The report: every study's analysis.json, tables and figure specs -> jinja2 (autoescape
on) -> report.html -> WeasyPrint -> report.pdf. It names no study. The HTML shows the
figures as inline SVG; the PDF as 200-dpi PNG at the same size.

The figures are also written as SVG files (reports/figures/, the stage's DVC output,
byte-identical for identical results); the HTML and PDF add the run's provenance (wall
time and memory per stage, the date), so they are not DVC outputs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from pipeline.io import atomic_dir, write_text
from pipeline.report import figures
from pipeline.report.aggregate import load_analyses

LIBRARIES = ("torch", "numpy", "pandas", "scipy", "seaborn", "scikit-learn", "dvc", "jinja2",
             "weasyprint")


@dataclass
class Section:
    key: str
    title: str
    question: str
    setting: str
    findings: list[str] = field(default_factory=list)
    references: list[dict] = field(default_factory=list)
    figures: list[tuple[str, figures.Drawn]] = field(default_factory=list)  # (caption, drawn)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    params: dict = field(default_factory=dict)


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def provenance(params_path: Path, runs: Path, seeds: list[int]) -> dict:
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = version(lib)
        except PackageNotFoundError:
            versions[lib] = "absent"
    timing = {p.stem: json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))}
    status = _git("status", "--porcelain")
    return {
        "commit": _git("rev-parse", "--short", "HEAD") or "not a git checkout",
        "dirty": bool(status) if status is not None else None,
        "params_sha256": hashlib.sha256(params_path.read_bytes()).hexdigest()[:16],
        "seeds": seeds,
        "versions": versions,
        "runs": timing,
        "rendered": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _flat(params: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in params.items():
        key = f"{prefix}.{k}" if prefix else k
        out |= _flat(v, key) if isinstance(v, dict) else {key: v}
    return out


class Tables:
    """A study's tables by reference: "table/NAME" (its summary tables) or "result/NAME"
    (its tidy results)."""

    def __init__(self, results: Path, reports: Path, study: str):
        self.results, self.reports, self.study = results, reports, study

    def __call__(self, ref: str) -> pd.DataFrame:
        kind, name = ref.split("/", 1)
        folder = (self.reports / "tables" if kind == "table" else self.results) / self.study
        return pd.read_csv(folder / f"{name}.csv")


def _draw(job: tuple[dict, Tables, bool]) -> figures.Drawn:
    spec, load, png = job
    return figures.draw(spec, load(spec["data"]), load, png)


def build_sections(results: Path, reports: Path, scorecard: pd.DataFrame, workers: int = 1,
                   png: bool = False) -> tuple[list[Section], dict[str, str]]:
    """One section per study with results; the figures as {file name: svg}, drawn in
    `workers` processes (each figure stands alone, so the bytes are the same); png: each
    figure as PNG too, for the PDF."""
    analyses = load_analyses(results)
    jobs, names = [], []
    for a in analyses:
        load = Tables(results, reports, a["study"])
        for k, spec in enumerate(a["figures"], 1):
            jobs.append((spec, load, png))
            names.append(f"{a['study']}_{k}.svg")
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers) as pool:
            drawn = pool.map(_draw, jobs, chunksize=1)
    else:
        drawn = [_draw(job) for job in jobs]
    by_name = dict(zip(names, drawn))
    sections = []
    for a in analyses:
        study, load = a["study"], Tables(results, reports, a["study"])
        s = Section(study, a["title"], a["question"], a["setting"],
                    findings=[f["text"] for f in a["findings"]],
                    references=scorecard[scorecard["study"] == study].to_dict("records"),
                    params=_flat(a["params"]))
        s.figures = [(spec["caption"], by_name[f"{study}_{k}.svg"])
                     for k, spec in enumerate(a["figures"], 1)]
        s.tables = [(t["caption"], load(f"table/{t['name']}")) for t in a["tables"]
                    if t["show"]]
        sections.append(s)
    return sections, {name: d.svg for name, d in by_name.items()}


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


def render_html(sections: list[Section], scorecard: pd.DataFrame, prov: dict,
                comparison=None, raster: bool = False) -> str:
    """The report as one HTML file; raster: figures as embedded PNG (the PDF's input)
    instead of inline SVG."""
    env = Environment(loader=PackageLoader("pipeline.report", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["table"] = _table_html
    env.filters["num"] = lambda v: "" if v is None or pd.isna(v) else f"{v:.4g}"
    env.filters["b64"] = lambda data: base64.b64encode(data).decode("ascii")
    return env.get_template("report.html.j2").render(
        sections=sections, scorecard=scorecard.to_dict("records"), prov=prov,
        comparison=comparison, raster=raster)


def write_pdf(html: str, path: Path) -> None:
    from weasyprint import HTML

    from pipeline.io import atomic_path

    with atomic_path(path, ".pdf") as tmp:
        HTML(string=html).write_pdf(tmp)


def build_report(results: Path, reports: Path, runs: Path, html: Path, pdf: Path | None,
                 figures_dir: Path, params_path: Path, config) -> int:
    from pipeline.report.compare import compare

    scorecard = pd.read_csv(reports / "scorecard.csv")
    sections, svgs = build_sections(results, reports, scorecard, workers=config.workers,
                                    png=pdf is not None)
    spread = {f"{a['study']}.{k}": v for a in load_analyses(results)
              for k, v in a["spread"].items() if v is not None}
    comparison = compare(config.report.baseline, params_path, reports / "metrics", spread)
    prov = provenance(params_path, runs, config.seeds)
    text = render_html(sections, scorecard, prov, comparison)
    with atomic_dir(figures_dir) as tmp:
        for name, svg in svgs.items():
            write_text(tmp / name, svg)
    write_text(html, text)
    if pdf is not None:
        write_pdf(render_html(sections, scorecard, prov, comparison, raster=True), pdf)
    return len(sections)
