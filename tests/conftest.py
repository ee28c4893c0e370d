from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline import studies

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "params_tiny.yaml"
BIN = Path(sys.executable).parent  # the venv's python, dvc


@pytest.fixture
def tiny_params() -> dict:
    return yaml.safe_load(TINY.read_text())


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd,
                          capture_output=True, text=True)


def project_copy(dest: Path, params: Path = TINY) -> Path:
    """A fresh git + DVC repo holding the project's tracked files and the given params,
    with a cell cache of its own as a user's project has (.cell_cache, git-ignored): a
    re-run trains only new cells and draws only changed figures. (The tiny profile keeps
    none, for the tests that run studies in this process.)"""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        src = ROOT / rel
        if src.is_file() and not rel.startswith(("data/", "reports/")) and rel != "dvc.lock":
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    text = params.read_text()
    (dest / "params.yaml").write_text(text.replace("\ncell_cache: null\n",
                                                   "\ncell_cache: .cell_cache\n"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q"], cwd=dest, check=True)
    subprocess.run(git + ["add", "-A"], cwd=dest, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "copy"], cwd=dest, check=True)
    return dest


def dvc(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env_path = f"{BIN}:{subprocess.os.environ.get('PATH', '')}"
    return subprocess.run([str(BIN / "dvc"), *args], cwd=cwd, capture_output=True, text=True,
                          env={**subprocess.os.environ, "PATH": env_path})


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory):
    """The project with the tiny profile after one full `dvc repro`. The run records
    every module each stage imports (PYTHONPROFILEIMPORTTIME, on the merged output)."""
    root = project_copy(tmp_path_factory.mktemp("project"))
    env_path = f"{BIN}:{subprocess.os.environ.get('PATH', '')}"
    first = subprocess.run([str(BIN / "dvc"), "repro"], cwd=root, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True,
                           env={**subprocess.os.environ, "PATH": env_path,
                                "PYTHONPROFILEIMPORTTIME": "1"})
    assert first.returncode == 0, first.stdout[-5000:]
    pristine = tmp_path_factory.mktemp("pristine") / "project"
    shutil.copytree(root, pristine, symlinks=True)  # for tests that need it untouched
    return root, first, pristine


def tiny_data(root: Path) -> Path:
    """Every dataset of the tiny profile, written by its data stage's code under root/data."""
    from pipeline.config import load_config
    from pipeline.datasets import build

    config = load_config(TINY)
    for name in type(config.data).model_fields:
        build(name, config, root / "data" / f"{name}.npz")
    return root / "data"


def study_args(study: str, data: Path, out: Path) -> list[str]:
    return ["study", study, "--data", str(data), "--results", str(out / "results"),
            "--reports", str(out / "reports"), "--runs", str(out / "runs")]


@pytest.fixture(scope="session")
def tiny_studies(tmp_path_factory) -> tuple[dict, Path]:
    """Every study of the tiny profile trained once in this process, as its stage runs it
    (`python -m pipeline study NAME`): ({name: (study, output, analysis)}, the folder its
    files went to: results/, reports/)."""
    from pipeline.__main__ import _parser, run_study

    root = tmp_path_factory.mktemp("in_process")
    data = tiny_data(root)
    runs = {name: run_study(_parser().parse_args(["--params", str(TINY),
                                                  *study_args(name, data, root)]))
            for name in studies.names()}
    return runs, root
