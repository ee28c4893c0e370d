"""The report: a section, figure and table per study; escaping; findings from numbers;
every comparative sentence backed by its interval."""

from __future__ import annotations

import hashlib
import html as html_lib
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from pipeline import studies
from pipeline.report import answers, figures
from pipeline.report.aggregate import aggregate, load_analyses
from pipeline.report.render import build_sections, render_html
from tests.conftest import ROOT
from tests.findings_check import check_findings


@pytest.fixture(scope="module")
def built(tiny_repo):
    _, _, root = tiny_repo
    return root, (root / "reports" / "report.html").read_text()


@pytest.fixture(scope="module")
def drawn(built, tmp_path_factory):
    """Every figure of the tiny run drawn once, afresh, into a figure cache: (the cache,
    {file name: svg})."""
    root, _ = built
    cache = tmp_path_factory.mktemp("figures")
    scorecard = pd.read_csv(root / "reports" / "scorecard.csv")
    _, svgs = build_sections(root / "data" / "results", root / "reports", scorecard, workers=2,
                             png=True, cache=cache)
    return cache, svgs


def test_every_study_has_section_figure_table_and_findings(built):
    root, html = built
    for study in studies.names():
        match = re.search(rf'<section class="study" id="{study}">(.*?)</section>', html, re.S)
        assert match, f"no section for {study}"
        body = match.group(1)
        assert "<svg" in body and re.search(r'<table[^>]*class="[^"]*results', body)
        assert "<li>" in body and "Setting." in body
    # a single file that opens offline: nothing fetched; one inline script (table sorting)
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert html.count("<script") == 1 and "<script>" in html


def test_the_scorecard_lists_every_published_reference(built):
    root, html = built
    refs = [r for a in load_analyses(root / "data" / "results") for r in a["references"]]
    card = pd.read_csv(root / "reports" / "scorecard.csv")
    assert len(refs) >= 10 and sorted(card["id"]) == sorted(r["id"] for r in refs)
    section = re.search(r'<section id="scorecard">(.*?)</section>', html, re.S).group(1)
    assert section.count("<tr>") == len(refs) + 1
    assert f"{int(card['reproduced'].sum())} of {len(card)} published results reproduced" in section
    metric = json.loads((root / "reports" / "metrics" / "scorecard.json").read_text())
    assert metric["references"] == len(refs)


def test_the_scorecard_counts_recipe_results_apart_from_setup_checks(built):
    """A reference whose number the setup fixes whatever the training does (the noise
    floor, the init's norm, the test set's minority share, untrained random matrices) is a
    setup check, named with what fixes it; the headline counts the recipe results apart."""
    root, html = built
    card = pd.read_csv(root / "reports" / "scorecard.csv").fillna({"fixed_by": ""})
    assert set(card["kind"]) == {"recipe", "setup"}
    assert ((card["kind"] == "setup") == (card["fixed_by"] != "")).all()
    assert set(card.loc[card["kind"] == "setup", "id"]) == {
        "d2l_loss_epoch_3", "d2l_weight_norm_0", "wilson_adam", "d2l_exploding_products"}
    metric = json.loads((root / "reports" / "metrics" / "scorecard.json").read_text())
    section = re.search(r'<section id="scorecard">(.*?)</section>', html, re.S).group(1)
    for kind, words in (("recipe", "recipe results reproduced"), ("setup", "setup checks")):
        part = card[card["kind"] == kind]
        assert metric[kind] == {"references": len(part),
                                "reproduced": int(part["reproduced"].sum())}
        count = f"{int(part['reproduced'].sum())} of {len(part)}"
        assert re.search(rf"{count}\s+{words}", section), (kind, count)
    assert metric["recipe"]["references"] + metric["setup"]["references"] == len(card)


def test_every_comparative_sentence_is_backed_by_its_interval(built):
    """Each finding in the report is a finding of reports/findings.json, and each verdict
    there is recomputed from data/results/*/cells.csv."""
    root, html = built
    check_findings(root, html)


def test_pdf_has_a_page_or_more_per_study(built):
    from pypdf import PdfReader

    root, html = built
    pdf = PdfReader(root / "reports" / "report.pdf")
    pages = [p.extract_text() for p in pdf.pages]
    # the appendix, laid out apart, is labelled and numbered A-1, ... (its footers too)
    appendix = next(i for i, text in enumerate(pages) if "Appendix: findings in full" in text)
    assert pdf.page_labels[appendix - 1:appendix + 1] == [str(appendix), "A-1"]
    assert pages[appendix].split()[-4:] == ["page", "A-1", "of", f"A-{len(pages) - appendix}"]
    assert pdf.metadata.title == "Deep-learning fundamentals: study report"
    for study in studies.names():
        title = re.search(rf'id="{study}">\s*<h2>([^<]+)</h2>', html).group(1)
        starts = [i for i, text in enumerate(pages) if title.split(".", 1)[1].strip() in text]
        assert starts, f"{study} is on no PDF page"
    assert len(pages) >= len(studies.names()) + 1


def test_the_pdf_shows_every_figure(built):
    from pypdf import PdfReader

    root, _ = built
    # every page names its images among its resources: count distinct ones, by their
    # stored, encoded bytes (decoding each one took 20 s)
    images = {}
    for page in PdfReader(root / "reports" / "report.pdf").pages:
        for ref in (page["/Resources"].get("/XObject") or {}).values():
            image = ref.get_object()
            if image.get("/Subtype") == "/Image":
                images[hashlib.sha256(image._data).hexdigest()] = int(image["/Width"])
    assert len(images) == len(list((root / "reports" / "figures").glob("*.svg")))
    assert min(images.values()) > 400  # drawn at print resolution, as shown:
    assert figures.PNG_DPI / figures.PDF_SCALE >= 200


def test_figures_are_files_with_stable_bytes(built):
    """Drawn afresh in this process, without the PNG, every figure is the SVG the stage
    wrote in another process with its PNG (so the figure cache keeps one key for both)."""
    root, _ = built
    svgs = sorted((root / "reports" / "figures").glob("*.svg"))
    scorecard = pd.read_csv(root / "reports" / "scorecard.csv")
    _, again = build_sections(root / "data" / "results", root / "reports", scorecard,
                              workers=2, png=False)
    assert sorted(again) == [p.name for p in svgs]
    assert all(again[p.name] == p.read_text() for p in svgs)


def test_params_strings_are_escaped(built, drawn):
    root, _ = built
    scorecard = pd.read_csv(root / "reports" / "scorecard.csv")
    sections, _ = build_sections(root / "data" / "results", root / "reports", scorecard,
                                 png=True, cache=drawn[0])
    sections[0].params["note"] = "<script>alert(1)</script>"
    sections[0].findings.append({"statement": "<b>bold</b>", "tags": ["<i>"],
                                 "text": "<b>bold</b> in full"})
    html = render_html(sections, scorecard, {"runs": {}, "versions": {}, "seeds": [0]})
    assert "<script>alert(1)</script>" not in html and "<b>bold</b>" not in html
    assert "<i>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_findings_change_when_numbers_change(built, tmp_path):
    """The sentences are computed from this run's numbers, not typed in."""
    root, _ = built
    from pipeline.config import load_config
    from pipeline.studies.base import StudyOutput

    study = studies.load("spiral")(load_config(root / "params.yaml"))
    folder = root / "data" / "results" / "spiral"
    out = StudyOutput(pd.read_csv(folder / "cells.csv"), pd.read_csv(folder / "curves.csv"),
                      {"choices": pd.read_csv(folder / "choices.csv")})
    before = " ".join(f.text for f in study.analyze(out).findings)
    out.cells.loc[out.cells["activation"] == "relu", "train_acc"] = 0.123
    after = " ".join(f.text for f in study.analyze(out).findings)
    assert before != after and "0.123" in after and "0.123" not in before


def test_a_study_result_folder_is_collected_without_naming_it(built, drawn, tmp_path):
    root, _ = built
    results = tmp_path / "results"
    shutil.copytree(root / "data" / "results", results)
    analysis = json.loads((results / "spiral" / "analysis.json").read_text())
    analysis["study"], analysis["title"] = "mystery", "A mystery study"
    shutil.copytree(results / "spiral", results / "mystery")
    (results / "mystery" / "analysis.json").write_text(json.dumps(analysis))
    reports = tmp_path / "reports"
    shutil.copytree(root / "reports", reports)
    shutil.copytree(reports / "tables" / "spiral", reports / "tables" / "mystery")
    n_studies, _, _ = aggregate(results, reports)
    assert n_studies == len(studies.names()) + 1
    cache = tmp_path / "figures"
    shutil.copytree(drawn[0], cache)  # the other studies' figures come from it
    sections, _ = build_sections(results, reports, pd.read_csv(reports / "scorecard.csv"),
                                 png=True, cache=cache)
    assert "A mystery study" in [s.title for s in sections]


def test_the_baseline_comparison_is_what_dvc_diff_prints(tmp_path, monkeypatch):
    """Read with `dvc params diff` and `dvc metrics diff`: a baseline without the metrics
    says so, a changed param and a moved metric are listed, a bad revision says so."""
    from pipeline.report.compare import compare
    from tests.conftest import dvc

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    assert dvc("init", "-q", cwd=tmp_path).returncode == 0
    (tmp_path / "params.yaml").write_text("seeds: [0]\nlr: 0.1\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  s:\n    cmd: 'true'\n    params:\n      - params.yaml:\n"
        "    metrics:\n      - metrics/a.json:\n          cache: false\n")
    subprocess.run(git + ["add", "-A"], cwd=tmp_path, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "no results"], cwd=tmp_path, check=True)
    (tmp_path / "params.yaml").write_text("seeds: [0, 1]\nlr: 0.1\n")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "a.json").write_text('{"acc": {"x": 0.5}, "loss": 2.0}')
    monkeypatch.chdir(tmp_path)
    c = compare("HEAD", Path("params.yaml"), Path("metrics"), {})
    assert "has no results" in c.status
    assert c.params == [{"key": "seeds", "baseline": "[0]", "current": "[0, 1]"}]  # as DVC prints
    subprocess.run(git + ["add", "-A"], cwd=tmp_path, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "results"], cwd=tmp_path, check=True)
    (tmp_path / "metrics" / "a.json").write_text('{"acc": {"x": 0.75}, "loss": 2.0}')
    moved = compare("HEAD", Path("params.yaml"), Path("metrics"), {"a.acc.x": 0.1})
    assert moved.params == []
    assert moved.metrics == [{"metric": "a.acc.x", "baseline": 0.5, "current": 0.75,
                              "delta": 0.25, "spread": 0.1, "exceeds": True}]
    assert "1 of 2 headline metrics changed" in moved.status
    assert "could not be read" in compare("no-such-rev", Path("params.yaml"),
                                          Path("metrics"), {}).status


def test_report_names_diverged_runs(built):
    _, html = built
    section = re.search(r'id="optimizers">(.*?)</section>', html, re.S).group(1)
    assert re.search(r"Diverged[^<:]*: [^<]*at lr 100 on \w+ \(\d of \d seeds\)", section)
    assert not re.search(r">\s*nan", section, re.I)  # no NaN printed in a table or finding


def test_log_axes_label_their_ticks_as_plain_text():
    """Log and symlog axes keep matplotlib's ticks and labels, as Unicode text: 10⁻², not
    a mathtext string for the slow mathtext parser."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from pipeline.report import figures

    frame = pd.DataFrame({"lam": [0.0, 0.01, 0.1, 1.0, 10.0], "loss": [1, 0.5, 0.2, 0.01, 0.003]})
    fig = figures.lines({"x": "lam", "y": ["loss"], "logx": True, "logy": True}, frame, None)
    ax = fig.axes[0]
    fig.canvas.draw()
    x_labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    y_labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    plt.close(fig)
    assert "0" in x_labels and "10⁻²" in x_labels and "10¹" in x_labels  # symlog: 0 kept
    assert "10⁻²" in y_labels and "10⁰" in y_labels
    assert not any("$" in t for t in x_labels + y_labels)
    assert figures._unicode_tick(r"$\mathdefault{2\times10^{-1}}$") == "2×10⁻¹"
    assert figures._unicode_tick(r"$\mathdefault{-10^{0}}$") == "\N{MINUS SIGN}10⁰"


def test_a_log_axis_draws_an_interval_reaching_zero_to_its_bottom_edge():
    """On a log axis the table's interval is drawn as it is: an upper end where the table
    has it, and a lower end below zero cut at the axis' bottom edge, said in the figure."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from pipeline.report import figures

    frame = pd.DataFrame({"d": [1, 2, 3], "loss_mean": [1.0, 0.1, 0.5],
                          "loss_ci95": [0.2, 0.3, 0.1]})
    fig = figures.lines({"x": "d", "y": ["loss"], "logy": True}, frame, None)
    ax = fig.axes[0]
    band = ax.collections[0].get_paths()[0].vertices
    bottom, top = ax.get_ylim()
    notes = [t.get_text() for t in fig.texts]
    plt.close(fig)
    assert band[:, 1].min() == pytest.approx(bottom)  # 0.1 - 0.3 < 0: to the edge
    assert band[:, 1].max() == pytest.approx(1.2) and top >= 1.2
    assert any("bottom edge of the log axis" in n for n in notes)


def test_the_report_opens_with_each_study_answer_and_each_section_with_its_own(built):
    root, html = built
    summary = re.search(r'<section id="summary">(.*?)</section>', html, re.S).group(1)
    analyses = load_analyses(root / "data" / "results")
    for a in analyses:
        got = answers.answer(a)
        assert got["text"] and got["confidence"]
        row = re.search(rf'<a href="#{a["study"]}">.*?</tr>', summary, re.S).group(0)
        assert got["text"] in html_lib.unescape(row) and got["confidence"] in row
        section = re.search(rf'<section class="study" id="{a["study"]}">(.*?)</section>',
                            html, re.S).group(1)
        paragraphs = re.findall(r"<p( class=\"\w+\")?><strong>(\w+)\.</strong>", section)
        assert [p[1] for p in paragraphs[:3]] == ["Question", "Answer", "Setting"]
    assert html.index('id="summary"') < html.index('id="scorecard"')


def test_every_comparison_is_drawn_in_its_study_forest_plot(built):
    root, _ = built
    drawn = 0
    for a in load_analyses(root / "data" / "results"):
        pairs = [c for f in a["findings"] for _, c in answers.comparisons(f)
                 if not c.identical and c.tested]  # those with an interval
        rows = answers.forest_rows(a)
        assert len(rows) == len(pairs)
        svg = root / "reports" / "figures" / f"{a['study']}_comparisons.svg"
        assert svg.exists() == bool(rows), a["study"]
        if rows:
            fig = figures.forest(rows)
            assert sum(len(ax.get_yticks()) for ax in fig.axes) == len(rows)
            figures.plt.close(fig)
            drawn += 1
    assert drawn >= 5


def test_whole_grid_tables_are_folded_in_the_html_and_in_the_pdf_appendix(built):
    from pypdf import PdfReader

    root, html = built
    opened = [m.start() for m in re.finditer(r'<table[^>]*class="[^"]*results', html)]
    folds = [(m.start(), m.end()) for m in re.finditer(r"<details>.*?</details>", html, re.S)]
    assert opened and all(any(a < t < b for a, b in folds) for t in opened)
    text = [p.extract_text() for p in PdfReader(root / "reports" / "report.pdf").pages]
    appendix = next(i for i, t in enumerate(text) if "Appendix: findings in full" in t)
    captions = [c for a in load_analyses(root / "data" / "results") for c in
                (t["caption"] for t in a["tables"] if t["show"])]
    body, after = " ".join(text[:appendix]), " ".join(text[appendix:])
    squash = lambda s: re.sub(r"\s+", "", s)  # noqa: E731 (PDF text breaks lines anywhere)
    assert all(squash(c) in squash(after) for c in captions)
    assert not any(squash(c) in squash(body) for c in captions)



def test_the_pdf_body_keeps_settings_and_the_reproduced_results_for_its_appendix(built):
    """In the PDF a study's setting and the scorecard's reproduced rows are in the
    appendix, not in the body; the body's scorecard keeps its counts and the results not
    reproduced. The HTML keeps both in place."""
    from pypdf import PdfReader

    root, html = built
    text = [p.extract_text() for p in PdfReader(root / "reports" / "report.pdf").pages]
    appendix = next(i for i, t in enumerate(text) if "Appendix: findings in full" in t)
    squash = lambda s: re.sub(r"\s+", "", s)  # noqa: E731
    body, after = squash(" ".join(text[:appendix])), squash(" ".join(text[appendix:]))
    settings = re.findall(r'<p class="setting"><strong>Setting.</strong> ([^<]+)', html)
    assert len(settings) == len(studies.names())
    for setting in settings:
        start = squash(html_lib.unescape(setting))[:40]
        assert start in after and start not in body
    card = pd.read_csv(root / "reports" / "scorecard.csv")
    assert squash("recipe results reproduced") in body
    for r in card.itertuples():
        claim = squash(str(r.claim))[:30]
        assert claim in after
        assert (claim in body) == (not r.reproduced)


def test_no_statement_is_longer_than_300_characters(built):
    root, _ = built
    for path in (root / "reports" / "findings.json", ROOT / "reports" / "findings.json"):
        for f in json.loads(path.read_text()):
            assert len(answers.statement(f)) <= 300, (f["study"], f["id"])


def test_cached_figures_are_the_bytes_of_a_fresh_drawing_and_follow_their_study(built, drawn,
                                                                               tmp_path):
    root, _ = built
    scorecard = pd.read_csv(root / "reports" / "scorecard.csv")
    results, reports = tmp_path / "results", tmp_path / "reports"
    shutil.copytree(root / "data" / "results", results)
    shutil.copytree(root / "reports", reports)
    cache = tmp_path / "figures"
    shutil.copytree(drawn[0], cache)  # filled by a fresh drawing
    fresh = drawn[1]
    entries = sorted(cache.iterdir())
    assert len(entries) == 2 * len(fresh)  # an SVG and a PNG each
    for entry in entries:  # a cached figure is what is served: poison every one
        entry.write_bytes(entry.read_bytes().replace(b"</svg>", b"<!--cached--></svg>"))
    _, again = build_sections(results, reports, scorecard, png=True, cache=cache)
    assert all("<!--cached-->" in svg for svg in again.values())
    table = next((reports / "tables" / "spiral").glob("*.csv"))
    table.write_text(table.read_text() + "\n")  # one study's file changes: its figures only
    _, third = build_sections(results, reports, scorecard, png=True, cache=cache)
    redrawn = {name for name, svg in third.items() if "<!--cached-->" not in svg}
    assert redrawn and all(name.startswith("spiral_") for name in redrawn)
    assert all(third[name] == fresh[name] for name in redrawn)


def test_a_report_from_cached_figures_loads_no_plotting_library(tiny_repo, drawn, tmp_path):
    """With every figure in the cache, the report stage (PDF included) never imports
    matplotlib or seaborn (a second of its time); one figure missing, building the
    sections imports them to draw it."""
    import os
    import sys

    root = tmp_path / "project"
    shutil.copytree(tiny_repo[2], root, symlinks=True)  # its .cell_cache holds the figures
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    stage = subprocess.run([sys.executable, "-X", "importtime", "-m", "pipeline", "report"],
                           cwd=root, env=env, capture_output=True, text=True)
    assert stage.returncode == 0, stage.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in stage.stderr.splitlines()
                if line.startswith("import time:")}
    assert "pipeline.report.render" in imported and "weasyprint" in imported
    assert not imported & {"matplotlib", "seaborn", "pipeline.report.figures"}

    script = ("import sys; from pathlib import Path; import pandas as pd\n"
              "from pipeline.report.render import build_sections\n"
              f"root = Path({str(tiny_repo[2])!r})\n"
              "card = pd.read_csv(root / 'reports' / 'scorecard.csv')\n"
              "build_sections(root / 'data' / 'results', root / 'reports', card, png=True,"
              " cache=Path(sys.argv[1]))\n"
              "print(sorted(m for m in ('matplotlib', 'seaborn') if m in sys.modules))\n")
    short = tmp_path / "figures"
    shutil.copytree(drawn[0], short)
    for entry in sorted(short.glob("*.svg"))[:1]:
        entry.unlink()
    loads = subprocess.run([sys.executable, "-c", script, str(short)], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.strip()
    assert loads == "['matplotlib', 'seaborn']"


def test_tables_print_each_mean_and_interval_as_the_findings_do():
    """A table's "mean ± half-width" uses the findings' format: the mean to the half-width's
    second significant digit; a run with no interval, the mean alone; no mean, nothing."""
    from pipeline.report.render import _table_html

    frame = pd.DataFrame({"lr": [0.1, 1.0, 10.0], "val_acc_mean": [0.494321, 0.8969, None],
                          "val_acc_ci95": [0.00053961, 0.008625, None],
                          "test_acc_mean": [0.5, 0.25, None]})
    cells = re.findall(r"<td>(.*?)</td>", _table_html(frame))
    assert cells == ["0.1", "0.49432 ± 0.00054", "0.5", "1", "0.8969 ± 0.0086", "0.25",
                     "10", "", ""]


def test_the_pdf_is_written_in_its_own_process_and_its_failure_is_the_reports(tmp_path,
                                                                              monkeypatch):
    """The PdfWriter's processes write the PDF they are sent; a failure there is raised
    by the report with its message, and a report that stops first (before sending its
    HTML, or while the PDF is being written) leaves no PDF and no part-written file."""
    import weasyprint

    from pipeline.report.pdf import APPENDIX, PdfWriter

    page = f"<html><head></head><body><h1>Report</h1>{APPENDIX}<p>more</p></body></html>"
    folders = {name: tmp_path / name for name in ("good", "early", "midway", "failed")}
    for folder in folders.values():
        folder.mkdir()
    writers = []

    def writer(name: str) -> PdfWriter:
        writers.append(PdfWriter(folders[name] / "report.pdf"))
        return writers[-1]

    try:
        good = writer("good")
        good.send(page)
        good.wait()
        assert (folders["good"] / "report.pdf").read_bytes().startswith(b"%PDF")

        early = writer("early")  # the report stops before its HTML: the processes end
        with pytest.raises(RuntimeError, match=r"wait\(\) before send\(\)"):
            early.wait()  # (waiting for them there would never end)
        for conn, proc in zip(early._conns, early._procs):
            conn.close()
            proc.join(timeout=30)
            assert proc.exitcode == 0
        assert list(folders["early"].iterdir()) == []

        def slow(self, target, **kwargs):  # begins its file, then takes its time
            Path(target).write_bytes(b"%PDF part")
            time.sleep(60)

        monkeypatch.setattr(weasyprint.HTML, "write_pdf", slow)  # each process forks after
        midway = writer("midway")
        midway.send(page)
        for _ in range(400):
            if list(folders["midway"].iterdir()):
                break
            time.sleep(0.05)
        assert list(folders["midway"].iterdir())  # the part-written file
        midway.close()
        assert list(folders["midway"].iterdir()) == []

        def broken(self, target, **kwargs):  # the appendix fails, the body is written
            Path(target).write_bytes(b"%PDF part")
            if "appendix" in Path(target).name:
                raise ValueError("no fonts")

        monkeypatch.setattr(weasyprint.HTML, "write_pdf", broken)
        failed = writer("failed")
        failed.send(page)
        with pytest.raises(RuntimeError, match=r"report.pdf: ValueError: no fonts"):
            failed.wait()
        assert list(folders["failed"].iterdir()) == []
    finally:
        for w in writers:
            w.close()


def test_the_pdfs_two_parts_join_into_one_document(tmp_path):
    """The body and the appendix, laid out apart, make one PDF: the body's pages, then the
    appendix's (labelled and numbered A-1, ...); the body's link into the appendix leads
    to the appendix's page; the appendix's headings sit under the body's title in the
    outline, as they would in one document."""
    from pypdf import PdfReader
    from weasyprint import HTML

    from pipeline.report.pdf import APPENDIX, join, split

    style = ('<style>@page { @bottom-center { content: "page " counter(page) " of " '
             'counter(pages); } } @page appendix { @bottom-center { content: "page A-" '
             'counter(page); } } body.appendix-part { page: appendix; }</style>')
    page = (f'<html><head>{style}</head><body><h1>Report</h1><h2 id="study">Study</h2>'
            '<p>Its tables: <a href="#appendix-study">appendix</a>.</p>'
            '<p style="page-break-before: always">more body</p>'
            f'{APPENDIX}<section id="appendix"><h2>Appendix</h2><h3 id="appendix-study">'
            'Study, in full</h3><p style="page-break-before: always">its tables</p>'
            '</section></body></html>')
    body, appendix = split(page)
    assert "Report" in body and "its tables" not in body
    assert "Report" not in appendix and "its tables" in appendix
    parts = tmp_path / "body.pdf", tmp_path / "appendix.pdf"
    for html, part in zip((body, appendix), parts):
        HTML(string=html).write_pdf(part)
    join(*parts, tmp_path / "report.pdf")

    pdf = PdfReader(tmp_path / "report.pdf")
    assert pdf.metadata.title == PdfReader(parts[0]).metadata.title
    assert [p.extract_text().split()[-1] for p in pdf.pages] == ["2", "2", "A-1", "A-2"]
    assert pdf.page_labels == ["1", "2", "A-1", "A-2"]
    links = [a.get_object()["/Dest"] for a in pdf.pages[0]["/Annots"]]
    assert links == ["appendix-study"]
    assert pdf.get_destination_page_number(pdf.named_destinations["appendix-study"]) == 2
    assert pdf.get_destination_page_number(pdf.named_destinations["study"]) == 0

    def titles(items):
        return [titles(i) if isinstance(i, list) else i.title for i in items]

    assert titles(pdf.outline) == ["Report", ["Study", "Appendix", ["Study, in full"]]]


def test_the_bodys_anchors_into_the_appendix_add_no_page():
    """The empty anchors split() ends the body with (so that its links into the appendix
    survive) take no room: with the report's own style, a body that fills its last page
    to any depth has as many pages with them as without."""
    from weasyprint import HTML

    from pipeline.report.pdf import APPENDIX, split

    template = (ROOT / "pipeline" / "report" / "templates" / "report.html.j2").read_text()
    style = template[template.index("<style>"):template.index("</style>") + 8]
    for n in range(26, 40):  # the body's last line moves down its page, and past it
        paras = "".join(f"<p>line {i}</p>" for i in range(n))
        page = (f'<html><head>{style}</head><body><h1>Report</h1><section class="study">'
                f'<h2>Study</h2>{paras}</section>{APPENDIX}<section class="study appendix" '
                'id="appendix"><h2>Appendix</h2><h3 id="appendix-study">x</h3></section>'
                '</body></html>')
        body, _ = split(page)
        plain = page[:page.index(APPENDIX)] + "</body></html>"
        assert len(HTML(string=body).render().pages) == \
            len(HTML(string=plain).render().pages), n


def test_a_pdf_that_fails_fails_the_report_after_its_html(built, drawn, tmp_path,
                                                          monkeypatch):
    """build_report raises the PDF's failure (the stage exits with it), after writing the
    HTML page; no PDF is left."""
    import weasyprint

    from pipeline.config import load_config
    from pipeline.report import compare
    from pipeline.report.render import build_report

    root, _ = built
    reports = tmp_path / "reports"
    shutil.copytree(root / "reports", reports)
    (reports / "report.pdf").unlink(missing_ok=True)
    config = load_config(root / "params.yaml")
    config = config.model_copy(update={"cell_cache": str(tmp_path / "cache")})
    shutil.copytree(drawn[0], tmp_path / "cache" / "figures")  # every figure cached

    def broken(self, target, **kwargs):
        raise ValueError("no fonts")

    monkeypatch.setattr(weasyprint.HTML, "write_pdf", broken)
    monkeypatch.setattr(compare, "start", lambda baseline: None)  # no DVC diffs here
    with pytest.raises(RuntimeError, match=r"report.pdf: ValueError: no fonts"):
        build_report(root / "data" / "results", reports, root / "data" / "runs",
                     tmp_path / "report.html", tmp_path / "report.pdf",
                     tmp_path / "figures", root / "params.yaml", config)
    assert (tmp_path / "report.html").exists()
    assert not list(tmp_path.glob("*.pdf")) and not list(tmp_path.glob(".report.pdf*"))


def test_the_figure_cache_key_covers_the_project_code_the_figures_import():
    """A figure's cache key hashes figures.py and every project module it imports, so that
    a change to one (a number's format, a level) draws the figures again."""
    import ast

    from pipeline.report.render import FIGURE_CODE

    package = ROOT / "pipeline"
    imported = set()
    for node in ast.walk(ast.parse((package / "report" / "figures.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module.split(".")[0] == "pipeline":
            base = Path(*node.module.split(".")[1:])
            for alias in node.names:
                module = package / base / f"{alias.name}.py"
                imported.add(module if module.exists() else package / f"{base}.py")
    assert imported and {str(p.relative_to(package)) for p in imported} <= set(FIGURE_CODE)

