"""Determinism, interrupted runs, and what is never loaded from data/."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.__main__ import main
from pipeline.config import load_config
from pipeline.datasets import build
from pipeline.studies import STUDIES
from tests.conftest import ROOT, TINY, dvc


def _tiny_data(root: Path) -> Path:
    config = load_config(TINY)
    for name in ("spiral", "polynomial", "highdim", "images", "wilson"):
        build(name, config, root / "data" / f"{name}.npz")
    return root / "data"


def _result_files(folder: Path) -> dict[str, bytes]:
    """Every result table, without the wall-clock files (timing.csv, run.json)."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.csv")) if p.name != "timing.csv"}


def test_two_runs_give_byte_identical_tables(tmp_path):
    data = _tiny_data(tmp_path)
    for study in STUDIES:
        runs = []
        for run in ("a", "b"):
            out = tmp_path / run / study
            assert main(["--params", str(TINY), "study", study, "--data", str(data),
                         "--out", str(out), "--metrics", str(out / "m.json")]) == 0
            runs.append(_result_files(out) | {"m.json": (out / "m.json").read_bytes()})
        assert runs[0] == runs[1], study
        assert "cells.csv" in runs[0] and "curves.csv" in runs[0]


def test_killed_study_leaves_no_output_and_a_rerun_matches(tmp_path):
    data = _tiny_data(tmp_path)
    params = yaml.safe_load(TINY.read_text())
    params["spiral"]["epochs"] = 20000  # long enough to be killed mid-training
    slow = tmp_path / "slow.yaml"
    slow.write_text(yaml.safe_dump(params))
    out = tmp_path / "results" / "spiral"
    args = ["study", "spiral", "--data", str(data), "--out", str(out),
            "--metrics", str(tmp_path / "m.json")]
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "--params", str(slow), *args],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(4.0)
    assert proc.poll() is None, "the study ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists() and not (tmp_path / "m.json").exists()
    # a complete run afterwards equals an uninterrupted one
    assert main(["--params", str(TINY), *args]) == 0
    ref = tmp_path / "ref"
    assert main(["--params", str(TINY), "study", "spiral", "--data", str(data), "--out",
                 str(ref), "--metrics", str(tmp_path / "m2.json")]) == 0
    assert _result_files(out) == _result_files(ref)


def test_killed_dvc_repro_then_repro_completes(tiny_repo):
    root, _ = tiny_repo
    original = (root / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["spiral"]["epochs"] = 20000
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dvc"), "repro", "spiral"],
                            cwd=root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(6.0)
    assert proc.poll() is None, "dvc repro ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    (root / "params.yaml").write_text(original)
    again = dvc("repro", cwd=root)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (root / "data" / "results" / "spiral" / "cells.csv").exists()
    assert dvc("status", cwd=root).stdout.strip().endswith("up to date.")


def test_nothing_unpickles_data():
    sources = "\n".join(p.read_text() for p in (ROOT / "pipeline").rglob("*.py"))
    assert "allow_pickle=True" not in sources and "pickle.load" not in sources
    assert "torch.load(" not in sources and "read_pickle" not in sources


def _study(params: dict, tmp: Path, data: Path, out: str, study: str = "spiral") -> dict:
    path = tmp / f"{out}.yaml"
    path.write_text(yaml.safe_dump(params))
    folder = tmp / out
    assert main(["--params", str(path), "study", study, "--data", str(data), "--out",
                 str(folder), "--metrics", str(tmp / f"{out}.json")]) == 0
    return json.loads((folder / "run.json").read_text())


def test_adding_a_grid_value_trains_only_its_cells(tmp_path):
    data = _tiny_data(tmp_path)
    params = yaml.safe_load(TINY.read_text())
    params["cell_cache"] = str(tmp_path / "cache")
    params["spiral"]["widths"] = [16]
    assert _study(params, tmp_path, data, "cold")["cached"] == 0
    params["spiral"]["widths"] = [16, 24]
    grown = _study(params, tmp_path, data, "grown")
    n_per_width = len(params["spiral"]["activations"]) * len(params["seeds"])
    assert grown["cells"] == 2 * n_per_width and grown["cached"] == n_per_width
    params["cell_cache"] = None
    _study(params, tmp_path, data, "uncached")
    assert _result_files(tmp_path / "grown") == _result_files(tmp_path / "uncached")


def test_killed_study_keeps_finished_cells_in_the_cache(tmp_path):
    data = _tiny_data(tmp_path)
    params = yaml.safe_load(TINY.read_text())
    params["cell_cache"] = str(tmp_path / "cache")
    params["spiral"]["epochs"] = 3000  # two groups (one per activation), trained in turn
    slow = tmp_path / "slow.yaml"
    slow.write_text(yaml.safe_dump(params))
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "--params", str(slow), "study",
                             "spiral", "--data", str(data), "--out", str(out), "--metrics",
                             str(tmp_path / "k.json")], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list((tmp_path / "cache").rglob("*.npz")) and time.time() < deadline:
        assert proc.poll() is None, "the study ended before its first group was cached"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    resumed = _study(params, tmp_path, data, "resumed")
    assert 0 < resumed["cached"] < resumed["cells"]
    params["cell_cache"] = None
    _study(params, tmp_path, data, "uncached")
    assert _result_files(tmp_path / "resumed") == _result_files(tmp_path / "uncached")


def test_ray_executor_gives_the_local_numbers(tmp_path):
    pytest.importorskip("ray")
    data = _tiny_data(tmp_path)
    params = yaml.safe_load(TINY.read_text())
    params["workers"] = 2
    _study(params, tmp_path, data, "local")
    params["executor"] = "ray"  # a local Ray on the loopback interface, 2 CPUs
    try:
        run = _study(params, tmp_path, data, "ray")
    finally:
        import ray

        ray.shutdown()
    assert run["cells"] > 0
    assert _result_files(tmp_path / "ray") == _result_files(tmp_path / "local")
