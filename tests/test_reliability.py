"""Determinism, interrupted runs, the cell cache, and what is never loaded from data/."""

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

from pipeline import studies
from pipeline.__main__ import main
from pipeline.config import load_config
from tests.conftest import ROOT, TINY, dvc, study_args, tiny_data


def _files(out: Path, study: str) -> dict[str, bytes]:
    """Every file a study stage writes, but the wall-clock record (runs/)."""
    found = {}
    for folder in ("results", "reports"):
        for p in sorted((out / folder).rglob("*")):
            if p.is_file() and study in p.parts + (p.stem,):
                found[str(p.relative_to(out))] = p.read_bytes()
    return found


def _study(params: dict, tmp: Path, data: Path, tag: str, study: str = "spiral") -> dict:
    path = tmp / f"{tag}.yaml"
    path.write_text(yaml.safe_dump(params))
    assert main(["--params", str(path), *study_args(study, data, tmp / tag)]) == 0
    return json.loads((tmp / tag / "runs" / f"{study}.json").read_text())


def test_two_runs_give_byte_identical_files(tiny_repo, tiny_studies):
    """Every study run again, in this process, writes the bytes its stage wrote under the
    tiny project's `dvc repro` (another process, on the data its data stages wrote)."""
    pristine = tiny_repo[2]
    for study in studies.names():
        again = _files(tiny_studies[1], study)
        first = _files(pristine / "data", study) | _files(pristine, study)
        assert sorted(first) == sorted(again), study
        assert all(first[k] == again[k] for k in again), \
            (study, [k for k in again if first[k] != again[k]])
        assert any(k.endswith("cells.csv") for k in again)
        assert any(k.endswith(f"{study}.json") for k in again)  # the metrics


def test_killed_study_leaves_no_output_and_a_rerun_matches(tmp_path):
    data = tiny_data(tmp_path)
    params = yaml.safe_load(TINY.read_text())
    params["spiral"]["epochs"] = 20000  # long enough to be killed mid-training
    slow = tmp_path / "slow.yaml"
    slow.write_text(yaml.safe_dump(params))
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "--params", str(slow),
                             *study_args("spiral", data, out)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(4.0)
    assert proc.poll() is None, "the study ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    # a complete run afterwards equals an uninterrupted one
    assert main(["--params", str(TINY), *study_args("spiral", data, out)]) == 0
    assert main(["--params", str(TINY), *study_args("spiral", data, tmp_path / "ref")]) == 0
    assert _files(out, "spiral") == _files(tmp_path / "ref", "spiral")


def test_killed_dvc_repro_then_repro_completes(tiny_repo):
    root, _, _ = tiny_repo
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


def test_adding_a_grid_value_trains_only_its_cells(tmp_path):
    data = tiny_data(tmp_path)
    params = yaml.safe_load(TINY.read_text())
    params["cell_cache"] = str(tmp_path / "cache")
    params["spiral"]["fair"]["adam_lrs"] = [0.01]
    cold = _study(params, tmp_path, data, "cold")
    assert cold["cached"] == 0
    params["spiral"]["fair"]["adam_lrs"] = [0.01, 0.03]
    grown = _study(params, tmp_path, data, "grown")
    n_new = len(params["spiral"]["activations"]) * len(params["seeds"])
    assert grown["cells"] == cold["cells"] + n_new and grown["cached"] == cold["cells"]
    params["cell_cache"] = None
    _study(params, tmp_path, data, "uncached")
    assert _files(tmp_path / "grown", "spiral") == \
        _files(tmp_path / "uncached", "spiral")


def test_the_cache_equals_a_cold_run_where_one_job_sits_at_two_positions(tmp_path):
    """The regularization grid trains the same (0.5, 0.5, no decay) job in its dropout and
    its interaction grids, at different positions of their groups: one cache key. Cold,
    warm, and with a grid value added then removed, the tables are the same bytes."""
    data = tiny_data(tmp_path)
    params = yaml.safe_load(TINY.read_text())
    params["regularization"]["dropout"]["interaction_dropouts"] = [0.0, 0.5]
    params["cell_cache"] = None
    _study(params, tmp_path, data, "off", "regularization")
    params["cell_cache"] = str(tmp_path / "cache")
    runs = {"cold": _study(params, tmp_path, data, "cold", "regularization"),
            "warm": _study(params, tmp_path, data, "warm", "regularization")}
    params["regularization"]["dropout"]["p1"] = [0.0, 0.5, 0.2]
    _study(params, tmp_path, data, "grown", "regularization")
    params["regularization"]["dropout"]["p1"] = [0.0, 0.5]
    runs["shrunk"] = _study(params, tmp_path, data, "shrunk", "regularization")
    assert runs["cold"]["cached"] < runs["warm"]["cached"] == runs["warm"]["cells"]
    reference = _files(tmp_path / "off", "regularization")
    for tag in runs:
        assert _files(tmp_path / tag, "regularization") == reference, tag


def test_killed_study_keeps_finished_cells_in_the_cache(tmp_path):
    data = tiny_data(tmp_path)
    params = yaml.safe_load(TINY.read_text())
    params["cell_cache"] = str(tmp_path / "cache")
    params["spiral"]["epochs"] = 3000  # several groups, trained in turn
    slow = tmp_path / "slow.yaml"
    slow.write_text(yaml.safe_dump(params))
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "--params", str(slow),
                             *study_args("spiral", data, out)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def stored() -> list[Path]:  # a finished entry, not the temp file of one being written
        return [p for p in (tmp_path / "cache").rglob("*.npz") if not p.name.startswith(".")]

    deadline = time.time() + 120
    while not stored() and time.time() < deadline:
        assert proc.poll() is None, "the study ended before its first group was cached"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "results").exists()
    resumed = _study(params, tmp_path, data, "resumed")
    assert 0 < resumed["cached"] < resumed["cells"]
    params["cell_cache"] = None
    _study(params, tmp_path, data, "uncached")
    assert _files(tmp_path / "resumed", "spiral") == \
        _files(tmp_path / "uncached", "spiral")


def test_ray_executor_gives_the_local_numbers(tmp_path):
    pytest.importorskip("ray")
    data = tiny_data(tmp_path)
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
    assert _files(tmp_path / "ray", "spiral") == _files(tmp_path / "local", "spiral")


def test_a_small_memory_budget_splits_groups_and_changes_no_byte(tmp_path):
    import numpy as np

    from pipeline.engine import EngineOptions, plan_groups

    data = tiny_data(tmp_path)
    params = yaml.safe_load(TINY.read_text())
    params["workers"] = 2
    _study(params, tmp_path, data, "roomy", "regularization")
    params["max_memory"] = "1MiB"  # a few image MLPs per group at most
    _study(params, tmp_path, data, "tight", "regularization")
    assert _files(tmp_path / "roomy", "regularization") == \
        _files(tmp_path / "tight", "regularization")
    # the tight budget did split: more groups, each within its share of the budget
    path = tmp_path / "tight.yaml"
    config = load_config(path)
    study = studies.load("regularization")(config)
    arrays = {n: np.load(data / f"{n}.npz") for n in study.datasets}
    cells = [c for c in study.cells() if c["dataset"] == "images"]
    jobs = [study.job(c, arrays) for c in cells]
    n = len(arrays["images"]["x_train"])
    roomy = plan_groups(jobs, n, EngineOptions(workers=2))
    tight = plan_groups(jobs, n, EngineOptions(workers=2, max_memory=2 ** 20))
    assert len(tight) > len(roomy) and sorted(sum(tight, [])) == list(range(len(jobs)))


def test_a_cell_too_large_for_the_budget_is_refused_before_training(tmp_path, capsys):
    data = tiny_data(tmp_path)
    params = yaml.safe_load(TINY.read_text())
    params["max_memory"] = "64MiB"
    params["spiral"]["width"] = 200000
    path = tmp_path / "huge.yaml"
    path.write_text(yaml.safe_dump(params))
    start = time.perf_counter()
    code = main(["--params", str(path), *study_args("spiral", data, tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert "too large" in err and "max_memory (64MiB)" in err and "200000" in err
    assert not (tmp_path / "out").exists() and time.perf_counter() - start < 30


def test_outputs_get_the_usual_permissions(tmp_path):
    """Written through a private temp file, yet readable like any file open() creates."""
    from pipeline.io import atomic_dir, write_text

    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
        with atomic_dir(tmp_path / "d") as d:
            write_text(d / "b.txt", "y")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "d" / "b.txt").stat().st_mode & 0o777 == 0o644
