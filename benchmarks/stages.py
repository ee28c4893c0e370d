"""Wall time and peak memory of every stage of the default pipeline, on one device.

    python -m benchmarks.stages                   # params.yaml as it is, on the CPU
    python -m benchmarks.stages --device cuda     # the same params on the GPU

Each stage runs as its own `python -m pipeline` process (as under `dvc repro`), cold (no
cell cache), into a temporary folder; prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from pipeline import studies
from pipeline.datasets import GENERATORS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    args = parser.parse_args()
    params = yaml.safe_load(Path(args.params).read_text())
    params["cell_cache"] = None  # cold: every cell trains
    if args.device:
        params["device"] = args.device
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "params.yaml").write_text(yaml.safe_dump(params))
        folders = ["--results", str(tmp / "results"), "--reports", str(tmp / "reports")]
        runs = ["--runs", str(tmp / "runs")]
        stages = [(f"data@{n}", ["data", n, "--out", str(tmp / "data" / f"{n}.npz")])
                  for n in GENERATORS]
        stages += [(n, ["study", n, "--data", str(tmp / "data"), *folders, *runs])
                   for n in studies.names()]
        stages += [("aggregate", ["aggregate", *folders]),
                   ("report", ["report", *folders, *runs, "--html", str(tmp / "r.html"),
                               "--pdf", str(tmp / "r.pdf"), "--figures", str(tmp / "f")])]
        print("| stage | wall s | peak MiB |")
        print("| --- | --- | --- |")
        total = 0.0
        for name, stage_args in stages:
            wall, peak = _timed_stage(tmp / "params.yaml", stage_args)
            total += wall
            print(f"| {name} | {wall:.1f} | {peak} |", flush=True)
        print(f"| all stages | {total:.1f} | |")


def _timed_stage(params: Path, args: list[str]) -> tuple[float, int]:
    """Wall seconds and peak resident MiB (the stage or its largest worker)."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "pipeline",
                           "--params", str(params), *args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(proc.stderr)
    return time.perf_counter() - start, round(int(proc.stderr.strip().splitlines()[-1]) / 1024)


if __name__ == "__main__":
    main()
