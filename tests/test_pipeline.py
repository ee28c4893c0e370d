"""End to end: `dvc repro` of the tiny profile in a temporary copy of the project."""

from __future__ import annotations

import json
import re
import subprocess

import pandas as pd
import pytest
import yaml

from pipeline.datasets import GENERATORS
from pipeline.studies import STUDIES
from tests.conftest import dvc

STUDY_STAGES = tuple(STUDIES)


def _ran(stdout: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", stdout))


@pytest.fixture
def repo(tiny_repo):
    return tiny_repo


def test_repro_runs_every_stage_and_writes_outputs(repo):
    root, first = repo
    data_stages = {f"data@{n}" for n in GENERATORS}
    assert _ran(first.stdout) == data_stages | set(STUDY_STAGES) | {"aggregate", "report"}
    for name in GENERATORS:
        assert (root / "data" / f"{name}.npz").exists()
    for study in STUDY_STAGES:
        assert (root / "data" / "results" / study / "cells.csv").exists()
        metrics = json.loads((root / "reports" / "metrics" / f"{study}.json").read_text())
        cells = pd.read_csv(root / "data" / "results" / study / "cells.csv")
        # only the tiny profile's deliberately huge learning rate diverges
        expected = int((cells["lr"] >= 100).sum()) if study == "optimizers" else 0
        assert metrics["diverged_cells"] == expected == int(cells["diverged"].sum())
    assert "data/*.npz" not in (root / ".gitignore").read_text()
    assert "/spiral.npz" in (root / "data" / ".gitignore").read_text()  # git-ignored by DVC
    for report in ("report.html", "report.pdf"):
        assert (root / "reports" / report).exists()


def test_second_repro_does_nothing(repo):
    root, _ = repo
    again = dvc("repro", cwd=root)
    assert again.returncode == 0 and _ran(again.stdout) == set()
    assert "didn't change" in again.stdout or "up to date" in again.stdout


def test_changing_spiral_params_reruns_only_spiral(repo):
    root, _ = repo
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"]["spiral"]["noise"] = 0.3
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    rerun = dvc("repro", cwd=root)
    assert rerun.returncode == 0, rerun.stderr
    readers = {name for name, module in STUDIES.items() if "spiral" in module.DATASETS}
    assert readers == {"spiral", "optimizers", "width_depth"}
    assert _ran(rerun.stdout) == {"data@spiral", "aggregate", "report"} | readers


def test_bad_params_fail_the_stage_then_a_fix_restores_from_cache(repo):
    root, _ = repo
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


def test_compare_with_the_last_commit(repo):
    """Commit, change one param, re-run: DVC's diffs and the report name the change."""
    root, _ = repo
    assert dvc("repro", cwd=root).returncode == 0
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["add", "-A"], cwd=root, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "baseline"], cwd=root, check=True)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["spiral"]["lr"] = 0.05
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert dvc("repro", cwd=root).returncode == 0

    params_diff = dvc("params", "diff", cwd=root)
    assert "spiral.lr" in params_diff.stdout and "0.05" in params_diff.stdout
    assert "spiral.epochs" not in params_diff.stdout
    metrics_diff = dvc("metrics", "diff", cwd=root)
    assert "reports/metrics/spiral.json" in metrics_diff.stdout
    assert "adam_test_acc" in metrics_diff.stdout

    html = (root / "reports" / "report.html").read_text()
    section = re.search(r'<section id="changes">(.*?)</section>', html, re.S).group(1)
    assert "<td>spiral.lr</td><td>0.01</td><td>0.05</td>" in section
    row = re.search(r"<td>spiral\.test_acc_relu</td><td>([^<]*)</td><td>([^<]*)</td>"
                    r"<td>([^<]*)</td>", section)
    old, new, delta = (float(v) for v in row.groups())
    assert delta == pytest.approx(new - old, abs=1e-3) and delta != 0
