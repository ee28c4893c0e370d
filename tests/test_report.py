"""The report: a section, figure and table per study; escaping; findings from numbers."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import load_config
from pipeline.report.aggregate import load_cells, study_tables, summary
from pipeline.report.render import build_sections, provenance, render_html
from pipeline.studies import STUDIES


@pytest.fixture(scope="module")
def built(tiny_repo):
    root, _ = tiny_repo
    return root, (root / "reports" / "report.html").read_text()


def test_every_study_has_section_figure_and_table(built):
    root, html = built
    for study in STUDIES:
        match = re.search(rf'<section class="study" id="{study}">(.*?)</section>', html, re.S)
        assert match, f"no section for {study}"
        body = match.group(1)
        assert "<svg" in body and re.search(r'<table[^>]*class="[^"]*results', body)
        assert "<li>" in body
    # a single file that opens offline: nothing fetched, nothing run
    assert not re.search(r'(src|href)="(https?:)?//', html) and "<script" not in html


def test_pdf_has_a_page_or_more_per_study(built):
    from pypdf import PdfReader

    root, _ = built
    pages = [p.extract_text() for p in PdfReader(root / "reports" / "report.pdf").pages]
    for study in STUDIES:
        title = re.search(rf'id="{study}">\s*<h2>([^<]+)</h2>', built[1]).group(1)
        starts = [i for i, text in enumerate(pages) if title.split(".", 1)[1].strip() in text]
        assert starts, f"{study} is on no PDF page"
    assert len(pages) >= len(STUDIES) + 1


def test_summary_means_skip_diverged_and_give_intervals():
    cells = pd.DataFrame({"g": ["a", "a", "a", "b"], "v": [1.0, 3.0, float("nan"), 5.0],
                          "diverged": [False, False, True, False]})
    t = summary(cells, ["g"], ["v"]).set_index("g")
    assert t.loc["a", "v_mean"] == 2.0 and t.loc["a", "n_diverged"] == 1
    assert t.loc["a", "v_ci95"] == pytest.approx(12.706 * 2 ** 0.5 / 2 ** 0.5, rel=1e-3)
    assert pd.isna(t.loc["b", "v_std"])


def _sections(root, results, params=None):
    config = load_config(root / "params.yaml")
    tables = {}
    for study, cells in load_cells(results).items():
        tables |= study_tables(study, cells)
    return build_sections(results, tables, params or config.model_dump(mode="json")), config


def test_params_strings_are_escaped(built):
    root, _ = built
    sections, config = _sections(root, root / "data" / "results",
                                 {"spiral": {"note": "<script>alert(1)</script>"}})
    html = render_html(sections, provenance(root / "params.yaml", root / "data" / "results",
                                            config.seeds))
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_findings_change_when_numbers_change(built, tmp_path):
    root, _ = built
    results = tmp_path / "results"
    shutil.copytree(root / "data" / "results", results)
    shutil.copy(root / "data" / "spiral.npz", tmp_path / "spiral.npz")
    before, _ = _sections(root, results)
    cells_path = results / "spiral" / "cells.csv"
    cells = pd.read_csv(cells_path)
    cells.loc[cells["activation"] == "relu", "test_acc"] = 0.123
    cells.to_csv(cells_path, index=False)
    after, _ = _sections(root, results)
    old = " ".join(before[0].findings)
    new = " ".join(after[0].findings)
    assert old != new and "0.123" in new and "0.123" not in old


def test_a_study_without_a_section_is_an_error(built, tmp_path):
    root, _ = built
    results = tmp_path / "results"
    shutil.copytree(root / "data" / "results", results)
    (results / "mystery").mkdir()
    shutil.copy(results / "spiral" / "cells.csv", results / "mystery" / "cells.csv")
    with pytest.raises(KeyError, match="mystery"):
        _sections(root, results)


def test_comparison_without_baseline_results_says_so(tmp_path):
    from pipeline.report.compare import compare

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "params.yaml").write_text("seeds: [0]\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["add", "-A"], cwd=tmp_path, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "x"], cwd=tmp_path, check=True)
    (tmp_path / "params.yaml").write_text("seeds: [0, 1]\n")
    metrics = tmp_path / "summary.json"
    metrics.write_text("{}")
    spread = pd.DataFrame(columns=["study", "metric", "value", "std"])
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        c = compare("HEAD", Path("params.yaml"), Path("summary.json"), spread)
        missing = compare("no-such-rev", Path("params.yaml"), Path("summary.json"), spread)
    finally:
        os.chdir(cwd)
    assert "has no results" in c.status
    assert c.params == [{"key": "seeds", "baseline": [0], "current": [0, 1]}]
    assert "could not be read" in missing.status


def test_report_names_diverged_runs(built):
    _, html = built
    section = re.search(r'id="optimizers">(.*?)</section>', html, re.S).group(1)
    assert re.search(r"Diverged: [^<]*at lr 100", section)
    assert not re.search(r">\s*nan", section, re.I)  # no NaN printed in a table or finding
