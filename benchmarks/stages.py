"""Wall time and peak memory of every dataset and study stage, on one device.

    python -m benchmarks.stages                   # params.yaml as it is
    python -m benchmarks.stages --device cuda     # the same params on the GPU

Each stage runs as its own `python -m pipeline` process (as under `dvc repro`), into a
temporary folder; prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from pipeline.datasets import GENERATORS
from pipeline.studies import STUDIES


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    args = parser.parse_args()
    params = yaml.safe_load(Path(args.params).read_text())
    if args.device:
        params["device"] = args.device
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "params.yaml").write_text(yaml.safe_dump(params))
        stages = [(f"data@{n}", ["data", n, "--out", str(tmp / "data" / f"{n}.npz")])
                  for n in GENERATORS]
        stages += [(n, ["study", n, "--data", str(tmp / "data"), "--out", str(tmp / "r" / n),
                        "--metrics", str(tmp / f"{n}.json")]) for n in STUDIES]
        stages += [("aggregate", ["aggregate", "--results", str(tmp / "r"), "--out",
                                  str(tmp / "t"), "--plots", str(tmp / "p"), "--metrics",
                                  str(tmp / "s.json")]),
                   ("report", ["report", "--results", str(tmp / "r"), "--tables", str(tmp / "t"),
                               "--html", str(tmp / "r.html"), "--pdf", str(tmp / "r.pdf")])]
        print("| stage | device | wall s | peak MiB |")
        print("| --- | --- | --- | --- |")
        for name, stage_args in stages:
            wall, peak = _timed_stage(tmp / "params.yaml", stage_args)
            run = tmp / "r" / name / "run.json"
            device = json.loads(run.read_text())["device"] if run.exists() else "-"
            print(f"| {name} | {device} | {wall:.1f} | {peak} |", flush=True)


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
