"""The report: every study's analysis.json, tables and figure specs -> jinja2 (autoescape
on) -> report.html -> WeasyPrint -> report.pdf. It names no study. The HTML shows the
figures as inline SVG; the PDF as PNG (drawn.PNG_DPI), shown at drawn.PDF_SCALE of its size.

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
from pipeline.report import answers, numbers
from pipeline.report.aggregate import load_analyses
from pipeline.report.drawn import PDF_SCALE, Drawn

LIBRARIES = ("torch", "numpy", "pandas", "scipy", "seaborn", "scikit-learn", "dvc", "jinja2",
             "weasyprint")


@dataclass
class Section:
    key: str
    title: str
    question: str
    setting: str
    findings: list[dict] = field(default_factory=list)  # statement, tags, text
    answer: dict = field(default_factory=dict)  # answers.answer
    forest: Drawn | None = None
    references: list[dict] = field(default_factory=list)
    figures: list[tuple[str, Drawn]] = field(default_factory=list)  # (caption, drawn)
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
        # what decided the results' last bits (older run records have none)
        "arithmetic": sorted({r["arithmetic"] for r in timing.values() if r.get("arithmetic")}),
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


def _draw(job: tuple[dict, Tables | None, bool]) -> Drawn:
    from pipeline.report import figures  # matplotlib and seaborn: only to draw

    spec, load, png = job
    if spec["kind"] == "forest":
        return figures.render(figures.forest(spec["rows"]), png)
    return figures.draw(spec, load(spec["data"]), load, png)


# the code a figure's bytes depend on: the drawing, the numbers' format, the levels
FIGURE_CODE = ("report/figures.py", "report/drawn.py", "report/answers.py", "report/numbers.py",
               "stats.py")


def _study_digest(results: Path, reports: Path, study: str) -> str:
    """Every file a study's figures may read: its results and summary tables."""
    h = hashlib.sha256()
    for folder in (results / study, reports / "tables" / study):
        for path in sorted(folder.glob("*")):
            if path.is_file():
                h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _code_digest() -> str:
    package = Path(__file__).parents[1]
    h = hashlib.sha256()
    for name in FIGURE_CODE:
        h.update((package / name).read_bytes())
    for lib in ("matplotlib", "seaborn", "pandas", "numpy"):
        h.update(version(lib).encode())
    return h.hexdigest()


class FigureCache:
    """Drawn figures by content key (the spec, every file of its study, the drawing code
    and the libraries' versions), so that a re-run draws only the figures of the studies
    that changed. The bytes are the ones a fresh drawing gives."""

    def __init__(self, root: Path):
        self.root, self.code = root, _code_digest()

    def key(self, spec: dict, digest: str) -> str:
        """One key for the SVG and the PNG (the SVG is the same bytes with or without
        the PNG drawn beside it)."""
        text = json.dumps([spec, digest, self.code], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def get(self, key: str, png: bool) -> Drawn | None:
        svg, raster = self.root / f"{key}.svg", self.root / f"{key}.png"
        if not svg.exists() or (png and not raster.exists()):
            return None
        return Drawn(svg.read_text(), raster.read_bytes() if png else None)

    def put(self, key: str, drawn: Drawn) -> None:
        from pipeline.io import atomic_path

        write_text(self.root / f"{key}.svg", drawn.svg)
        if drawn.png is not None:
            with atomic_path(self.root / f"{key}.png", ".png") as tmp:
                tmp.write_bytes(drawn.png)


def build_sections(results: Path, reports: Path, scorecard: pd.DataFrame, workers: int = 1,
                   png: bool = False, cache: Path | None = None
                   ) -> tuple[list[Section], dict[str, str]]:
    """One section per study with results; the figures as {file name: svg}, drawn in
    `workers` processes (each figure stands alone, so the bytes are the same); png: each
    figure as PNG too, for the PDF; cache: a folder of drawn figures by content key."""
    analyses = load_analyses(results)
    store = FigureCache(cache) if cache is not None else None
    jobs, names, keys = [], [], []
    for a in analyses:
        load = Tables(results, reports, a["study"])
        digest = _study_digest(results, reports, a["study"]) if store else ""
        rows = answers.forest_rows(a)
        specs = ([(f"{a['study']}_comparisons.svg", {"kind": "forest", "rows": rows})]
                 if rows else [])
        specs += [(f"{a['study']}_{k}.svg", spec) for k, spec in enumerate(a["figures"], 1)]
        for name, spec in specs:
            jobs.append((spec, None if spec["kind"] == "forest" else load, png))
            names.append(name)
            keys.append(store.key(spec, digest) if store else None)
    found = [store.get(k, png) if store else None for k in keys]
    todo = [job for job, hit in zip(jobs, found) if hit is None]
    if todo:
        from pipeline.report import figures  # noqa: F401 (once, before the workers fork)
    if workers > 1 and len(todo) > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers) as pool:
            fresh = iter(pool.map(_draw, todo, chunksize=1))
    else:
        fresh = iter([_draw(job) for job in todo])
    drawn = []
    for key, hit in zip(keys, found):
        if hit is None:
            hit = next(fresh)
            if store:
                store.put(key, hit)
        drawn.append(hit)
    by_name = dict(zip(names, drawn))
    sections = []
    for a in analyses:
        study, load = a["study"], Tables(results, reports, a["study"])
        s = Section(study, a["title"], a["question"], a["setting"],
                    findings=[{"statement": answers.statement(f), "tags": answers.tags(f),
                               "text": f["text"]} for f in a["findings"]],
                    answer=answers.answer(a),
                    forest=by_name.get(f"{study}_comparisons.svg"),
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


def _mean_ci(mean, half) -> str:
    """A table's "mean ± 95% half-width" in the findings' format (numbers.fmt_interval):
    the mean to the half-width's second significant digit."""
    if pd.isna(mean):
        return ""
    return _fmt(mean) if half is None or pd.isna(half) else numbers.fmt_interval(mean, half)


def _table_html(frame: pd.DataFrame) -> str:
    """A compact HTML table, each value as "mean ± 95% half-width"; pandas escapes text."""
    shown = pd.DataFrame(index=frame.index)
    for col in frame.columns:
        if col.endswith(("_std", "_ci95")):
            continue
        if col.endswith("_mean"):
            base = col.removesuffix("_mean")
            half = frame.get(f"{base}_ci95")
            shown[base] = [_mean_ci(m, h) for m, h in
                           zip(frame[col], [None] * len(frame) if half is None else half)]
        elif frame[col].dtype.kind == "f":
            shown[col] = frame[col].map(_fmt)
        else:
            shown[col] = frame[col]
    return shown.to_html(index=False, border=0, classes="results", escape=True, na_rep="")


def percentile(p: float) -> str:
    """Where a value lies among single draws, in words: 'the 2nd percentile'."""
    if p is None or pd.isna(p):
        return ""
    if p < 1 or p > 99:
        return "below the 1st percentile" if p < 1 else "above the 99th percentile"
    k = round(p)
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"the {k}{suffix} percentile"


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
    env.filters["percentile"] = percentile
    return env.get_template("report.html.j2").render(
        sections=sections, scorecard=scorecard.to_dict("records"), prov=prov,
        comparison=comparison, raster=raster, tags=answers.TAGS, scale=PDF_SCALE)


def build_report(results: Path, reports: Path, runs: Path, html: Path, pdf: Path | None,
                 figures_dir: Path, params_path: Path, config, diffs=None) -> int:
    """Write the report; diffs: compare.start's DVC diffs, when already started (else
    compare.compare starts them). The PDF is laid out in a PdfWriter's two processes, started
    first, while this one writes the HTML page."""
    writer = None
    if pdf is not None:
        from pipeline.report.pdf import PdfWriter

        writer = PdfWriter(pdf)
    try:
        return _build_report(results, reports, runs, html, figures_dir, params_path,
                             config, diffs, writer)
    finally:
        if writer is not None:
            writer.close()


def _build_report(results: Path, reports: Path, runs: Path, html: Path, figures_dir: Path,
                  params_path: Path, config, diffs, writer) -> int:
    from pipeline.report import compare

    scorecard = pd.read_csv(reports / "scorecard.csv")
    cache = Path(config.cell_cache) / "figures" if config.cell_cache else None
    sections, svgs = build_sections(results, reports, scorecard, workers=config.workers,
                                    png=writer is not None, cache=cache)
    spread = {f"{a['study']}.{k}": v for a in load_analyses(results)
              for k, v in a["spread"].items() if v is not None}
    comparison = compare.compare(config.report.baseline, params_path, reports / "metrics",
                                 spread, diffs)
    prov = provenance(params_path, runs, config.seeds)
    if writer is not None:
        writer.send(render_html(sections, scorecard, prov, comparison, raster=True))
    text = render_html(sections, scorecard, prov, comparison)
    with atomic_dir(figures_dir) as tmp:
        for name, svg in svgs.items():
            write_text(tmp / name, svg)
    write_text(html, text)
    if writer is not None:
        writer.wait()
    return len(sections)
