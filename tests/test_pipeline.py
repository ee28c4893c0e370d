"""End to end: `dvc repro` of the tiny profile in a temporary copy of the project."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline import studies
from pipeline.datasets import GENERATORS
from tests.conftest import ROOT, TINY, dvc, project_copy

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def _ran(stdout: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", stdout))


def test_repro_runs_every_stage_and_writes_outputs(tiny_repo):
    root, first, _ = tiny_repo
    data_stages = {f"data@{n}" for n in GENERATORS}
    assert _ran(first.stdout) == ({"check"} | data_stages | set(studies.names())
                                  | {"aggregate", "report"})
    for name in GENERATORS:
        assert (root / "data" / f"{name}.npz").exists()
    for study in studies.names():
        cells = pd.read_csv(root / "data" / "results" / study / "cells.csv")
        assert len(cells) and (root / "data" / "results" / study / "analysis.json").exists()
        assert json.loads((root / "reports" / "metrics" / f"{study}.json").read_text())
        assert list((root / "reports" / "tables" / study).glob("*.csv"))
        assert list((root / "reports" / "plots" / study).glob("*.csv")), study
        # only the tiny profile's deliberately huge learning rate diverges, and rates that
        # bracketing added next to it
        diverged = cells[cells["diverged"]]
        assert study == "optimizers" or diverged.empty
        if len(diverged):
            assert ((diverged["lr"] >= 100) | (diverged["bracket_round"] > 0)).all()
    for report in ("report.html", "report.pdf", "findings.json", "scorecard.csv"):
        assert (root / "reports" / report).exists()
    for written in ("report.html", "findings.json", "scorecard.csv"):  # every marker written out
        assert "⟦" not in (root / "reports" / written).read_text(), written
    assert list((root / "reports" / "figures").glob("*.svg"))
    assert "/spiral.npz" in (root / "data" / ".gitignore").read_text()  # git-ignored by DVC


def test_each_run_records_the_arithmetic_that_decided_its_bits(tiny_repo):
    """The processor, torch's kernel set and the BLAS mode: another kind of processor
    gives other last bits, so the run says which it was, and so does the report."""
    import torch

    from pipeline.engine import blas

    root, _, _ = tiny_repo
    expected = (f"{blas.processor()}, torch kernels {torch.backends.cpu.get_cpu_capability()}"
                f", {blas.mode_words()}")
    for study in studies.names():
        run = json.loads((root / "data" / "runs" / f"{study}.json").read_text())
        assert run["arithmetic"] == expected, (study, run)
    html = (root / "reports" / "report.html").read_text()
    assert f"Arithmetic: {expected}." in html


def test_every_stage_depends_on_every_project_file_it_imports(tiny_repo):
    """The modules each stage imported (PYTHONPROFILEIMPORTTIME) are its dvc.yaml deps."""
    root, first, _ = tiny_repo
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    chunks = re.split(r"Running stage '([^']+)':", first.stdout)
    checked = 0
    for stage, output in zip(chunks[1::2], chunks[2::2]):
        modules = set(re.findall(r"import time:.*\|\s+(pipeline(?:\.\w+)*)\s*$", output, re.M))
        files = {_module_file(m) for m in modules} | {"pipeline/__main__.py"}
        deps = [d["path"] for d in lock[stage]["deps"]]
        missing = [f for f in sorted(files)
                   if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)]
        assert not missing, f"{stage} imports {missing} but dvc.yaml does not list them"
        checked += 1
    assert checked == len(lock)


def test_every_dvc_plot_reads_committed_columns():
    """Each plot dvc.yaml declares reads columns the committed plot files (the default
    params' run) have, and every study's plots folder feeds at least one of them."""
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    fed = set()
    for name, spec in (item for entry in plots for item in entry.items()):
        for path, columns in spec["y"].items():
            header = pd.read_csv(ROOT / path, nrows=0).columns
            wanted = [spec["x"], *([columns] if isinstance(columns, str) else columns)]
            missing = set(wanted) - set(header)
            assert not missing, f"{name}: {path} lacks the columns {missing}"
            fed.add(Path(path).parent.name)
    assert fed == set(studies.names())


def _module_file(module: str) -> str:
    path = Path(*module.split("."))
    return f"{path}/__init__.py" if (ROOT / path).is_dir() else f"{path}.py"


def test_second_repro_does_nothing(tiny_repo):
    root, _, _ = tiny_repo
    again = dvc("repro", cwd=root)
    assert again.returncode == 0 and _ran(again.stdout) == set()


def _edit_params(root: Path, edit) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    edit(params)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _no_pdf(params: dict) -> None:
    params["report"]["pdf"] = False  # the PDF was checked once; re-runs skip it


def test_changing_a_dataset_reruns_only_its_readers(tiny_repo):
    root, _, _ = tiny_repo
    _edit_params(root, _no_pdf)
    _edit_params(root, lambda p: p["data"]["wilson"].update(p_positive=0.7))
    rerun = dvc("repro", cwd=root)
    assert rerun.returncode == 0, rerun.stderr
    readers = {n for n in studies.names() if "wilson" in studies.load(n).datasets}
    assert readers == {"optimizers"}
    assert _ran(rerun.stdout) == {"check", "data@wilson", "aggregate", "report"} | readers


def test_a_bad_value_in_the_last_section_stops_repro_before_anything_trains(tmp_path):
    """A fresh copy with a bad value in the last study section of params.yaml: `dvc repro`
    fails at the check, its first stage, naming the key; no dataset or study ran."""
    params = yaml.safe_load(TINY.read_text())
    last = [k for k in params if k in studies.names()][-1]
    key = next(iter(params[last]))
    params[last][key] = "sixty-four"
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(params, sort_keys=False))
    root = project_copy(tmp_path / "project", bad)
    run = dvc("repro", cwd=root)
    assert run.returncode != 0
    assert f"{last}.{key}" in run.stdout + run.stderr
    assert _ran(run.stdout) == {"check"}
    assert not (root / "data" / "results").exists()
    assert not list((root / "data").glob("*.npz")) and not (root / "data" / "params.ok").exists()


def test_changing_one_study_reruns_only_it_and_the_report(tiny_repo, tmp_path):
    """The check re-runs on any params edit, but its stamp is unchanged: only the study
    whose section changed and the report stages run after it (the report reads the whole
    params file, to print it and its changes)."""
    _, _, pristine = tiny_repo
    root = tmp_path / "project"
    shutil.copytree(pristine, root, symlinks=True)
    _edit_params(root, lambda p: p["linear_regression"].update(epochs=2))
    status = dvc("status", "--json", cwd=root)
    assert set(json.loads(status.stdout)) == {"check", "linear_regression", "report"}
    rerun = dvc("repro", cwd=root)
    assert rerun.returncode == 0, rerun.stderr
    assert _ran(rerun.stdout) == {"check", "linear_regression", "aggregate", "report"}


def test_bad_params_fail_the_stage_then_a_fix_restores_from_cache(tiny_repo):
    root, _, _ = tiny_repo
    cells = root / "data" / "results" / "polynomial" / "cells.csv"
    before = cells.read_bytes()
    good = (root / "params.yaml").read_text()
    params = yaml.safe_load(good)
    params["polynomial"]["lr"] = -1
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    failed = dvc("repro", "polynomial", cwd=root)
    assert failed.returncode != 0
    assert "polynomial.lr" in failed.stderr + failed.stdout
    assert not cells.exists() or cells.read_bytes() == before  # never half-written
    (root / "params.yaml").write_text(good)
    fixed = dvc("repro", "polynomial", cwd=root)
    assert fixed.returncode == 0 and cells.read_bytes() == before


def test_forced_rerun_leaves_the_lock_and_the_results_unchanged(tiny_repo, tmp_path):
    """Wall time and memory live outside the hashed outputs: a forced re-run of the same
    stages changes neither dvc.lock nor a result file."""
    _, _, pristine = tiny_repo
    root = tmp_path / "project"
    shutil.copytree(pristine, root, symlinks=True)
    for entry in (root / ".cell_cache").iterdir():  # the studies train again; the
        if entry.name != "figures":  # figures of unchanged results come from the cache
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    subprocess.run(GIT + ["add", "-A"], cwd=root, check=True)
    subprocess.run(GIT + ["commit", "-q", "-m", "results"], cwd=root, check=True)
    stages = ("linear_regression", "width_depth", "aggregate", "report")
    assert dvc("repro", "-f", "-s", *stages, cwd=root).returncode == 0
    status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True,
                            text=True).stdout
    assert status == "", status
    run = json.loads((root / "data" / "runs" / "linear_regression.json").read_text())
    assert run["seconds"] > 0 and run["cached"] == 0  # trained again


def test_compare_with_the_last_commit(tiny_repo):
    """Commit, change one param, re-run: DVC's diffs and the report name the change."""
    root, _, _ = tiny_repo
    _edit_params(root, _no_pdf)
    assert dvc("repro", cwd=root).returncode == 0
    subprocess.run(GIT + ["add", "-A"], cwd=root, check=True)
    subprocess.run(GIT + ["commit", "-q", "-m", "baseline"], cwd=root, check=True)
    _edit_params(root, lambda p: p["linear_regression"].update(epochs=1))
    assert dvc("repro", cwd=root).returncode == 0

    params_diff = dvc("params", "diff", cwd=root)
    assert "linear_regression.epochs" in params_diff.stdout
    assert "linear_regression.lrs" not in params_diff.stdout
    metrics_diff = dvc("metrics", "diff", cwd=root)
    assert "reports/metrics/linear_regression.json" in metrics_diff.stdout
    assert "train_loss.lr_0.03_batch_10" in metrics_diff.stdout

    html = (root / "reports" / "report.html").read_text()
    section = re.search(r'<section id="changes">(.*?)</section>', html, re.S).group(1)
    assert "<td>linear_regression.epochs</td><td>3</td><td>1</td>" in section
    row = re.search(r"<td>linear_regression\.train_loss\.lr_0\.03_batch_10</td><td>([^<]*)</td>"
                    r"<td>([^<]*)</td><td>([^<]*)</td>", section)
    old, new, delta = (float(v) for v in row.groups())
    assert delta == pytest.approx(new - old, rel=1e-3) and new > old  # fewer epochs, worse


TOY = '''"""Toy: the depth of a tiny ReLU MLP on the spiral, a study in one module."""

from pipeline import choices, stats
from pipeline import findings as F
from pipeline.config import PositiveInt, Section, grid
from pipeline.findings import Analysis, Figure
from pipeline.studies.base import Study


class Params(Section):
    depths: grid(PositiveInt) = [1, 2]
    epochs: PositiveInt = 30


class Toy(Study):
    name = "toy"
    title = "Toy: depth on the spiral"
    question = "Does a second hidden layer help a tiny MLP?"
    Params = Params
    datasets = ("spiral",)

    def cells(self):
        return [{"dataset": "spiral", "depth": d, "seed": s}
                for d in self.p.depths for s in self.seeds]

    def job(self, cell, data):
        from pipeline.engine import Arch, Job, TrainSpec

        arch = Arch((2, *[8] * cell["depth"], 3))
        return Job(TrainSpec(arch, "adam", epochs=self.p.epochs, log_every=10),
                   seed=cell["seed"], lr=0.01)

    def analyze(self, out):
        a = Analysis()
        t = a.table("accuracy", "Accuracy by depth", stats.summarize(
            out.cells, ["depth"], ["val_acc", "test_acc"]))
        a.findings.append(F.selection("depth", choices.select(out.cells, "depth", {}, "val_acc",
                                                              maximize=True), "Depth"))
        for r in t.itertuples():
            a.metric(f"test_acc/{r.depth}", r.test_acc_mean, r.test_acc_std)
        a.plots["accuracy"] = t[["depth", "test_acc_mean"]]
        a.figures.append(Figure("Test accuracy by depth", "bars", "table/accuracy",
                                x="depth", y=["test_acc"]))
        return a

    def setting(self):
        return f"Depths {self.p.depths}, {self.p.epochs} epochs, {len(self.seeds)} seeds."


STUDY = Toy
'''

TOY_STAGE = {"cmd": "python -m pipeline study toy",
             "deps": ["data/spiral.npz", "pipeline"],
             "params": ["seeds", "data.spiral", "toy"],
             "outs": ["data/results/toy", {"reports/tables/toy": {"cache": False}},
                      {"reports/plots/toy": {"cache": False}}],
             "metrics": [{"reports/metrics/toy.json": {"cache": False}}]}


def test_adding_a_study_is_one_module_one_params_section_one_stage(tiny_repo, tmp_path):
    _, _, pristine = tiny_repo
    root = tmp_path / "project"
    shutil.copytree(pristine, root, symlinks=True)
    subprocess.run(GIT + ["add", "-A"], cwd=root, check=True)
    subprocess.run(GIT + ["commit", "-q", "-m", "results"], cwd=root, check=True)
    (root / "pipeline" / "studies" / "toy.py").write_text(TOY)
    params = yaml.safe_load((root / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump(params | {"toy": {"depths": [1, 2],
                                                                       "epochs": 30}}))
    _edit_params(root, _no_pdf)
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text())
    pipeline["stages"]["toy"] = TOY_STAGE
    (root / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    run = dvc("repro", cwd=root)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert {"toy", "aggregate", "report"} <= _ran(run.stdout)
    edited = subprocess.run(["git", "status", "--porcelain", "--", "pipeline", "tests"],
                            cwd=root, capture_output=True, text=True).stdout.split("\n")
    assert [e for e in edited if e] == ["?? pipeline/studies/toy.py"]  # no other file edited
    html = (root / "reports" / "report.html").read_text()
    section = re.search(r'<section class="study" id="toy">(.*?)</section>', html, re.S)
    assert section and "Toy: depth on the spiral" in section.group(1)
    assert "<svg" in section.group(1) and "Depth chosen on validation" in section.group(1)
    assert json.loads((root / "reports" / "metrics" / "toy.json").read_text())["test_acc"]
    assert (root / "reports" / "tables" / "toy" / "accuracy.csv").exists()
    assert (root / "reports" / "plots" / "toy" / "accuracy.csv").exists()
    findings = json.loads((root / "reports" / "findings.json").read_text())
    assert any(f["study"] == "toy" for f in findings)


@pytest.mark.parametrize("module, old, new, shown", [
    ("words.py", "are indistinguishable on", "cannot be told apart on", "told apart"),
    ("numbers.py", " CI {fmt_at(low", " CI: {fmt_at(low", "95% CI: "),  # a number's format
    ("answers.py", "are indistinguishable on", "cannot be told apart on", ""),  # a statement
])
def test_rewording_the_report_reruns_only_the_report_stages(tiny_repo, tmp_path, module, old,
                                                            new, shown):
    """Every sentence and every number's format is written at report time
    (pipeline/report/words.py, numbers.py, answers.py): a rewording there leaves every
    study stage, and the check, up to date, and the re-run report stages print it."""
    _, _, pristine = tiny_repo
    root = tmp_path / "project"
    shutil.copytree(pristine, root, symlinks=True)
    words = root / "pipeline" / "report" / module
    text = words.read_text()
    assert old in text
    words.write_text(text.replace(old, new))
    status = dvc("status", "--json", cwd=root)
    assert set(json.loads(status.stdout)) == {"aggregate", "report"}
    if not shown:
        return
    before = (root / "reports" / "findings.json").read_text()
    assert dvc("repro", "aggregate", cwd=root).returncode == 0
    after = (root / "reports" / "findings.json").read_text()
    assert shown not in before and shown in after


def test_no_study_stage_depends_on_the_reports_words():
    """No stage before the aggregate lists anything under pipeline/report/ (and each stage
    lists every project file it imports: the test above), so no study stage writes a
    sentence or formats a number of the report."""
    root = Path(__file__).resolve().parents[1]
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        if name in ("aggregate", "report"):
            continue
        deps = [d for d in (stage.get("deps") or stage.get("do", {}).get("deps", []))
                if isinstance(d, str)]
        assert deps and not [d for d in deps if d.startswith("pipeline/report")], name


def test_every_module_is_under_400_lines():
    """A module that outgrows 400 lines is split where its parts separate (a study's
    helpers go in a module of studies/ named with a leading underscore)."""
    long = {str(p.relative_to(ROOT)): n for p in sorted(ROOT.glob("pipeline/**/*.py"))
            if (n := len(p.read_text().splitlines())) >= 400}
    assert not long, long
