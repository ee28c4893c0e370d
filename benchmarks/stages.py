"""Wall time, CPU time and peak memory of every stage of the default pipeline, on one
device.

    python -m benchmarks.stages                   # params.yaml as it is, on the CPU
    python -m benchmarks.stages --device cuda     # the same params on the GPU
    python -m benchmarks.stages --against HEAD~1  # beside another revision's code

Each stage runs as its own `python -m pipeline` process (as under `dvc repro`), cold (no
cell cache), into a temporary folder; prints a Markdown table for the README. With
--against, every stage also runs from a checkout of that revision, into folders of its
own, right before or after this tree's (alternating): the machine's speed drifts, so two
versions are compared stage by stage within one run.
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
    parser.add_argument("--against", metavar="REV", help="also time every stage with the "
                        "code of this git revision, alternating with this tree's")
    args = parser.parse_args()
    params = yaml.safe_load(Path(args.params).read_text())
    params["cell_cache"] = None  # cold: every cell trains
    if args.device:
        params["device"] = args.device
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "params.yaml").write_text(yaml.safe_dump(params))
        trees = {"this": Path.cwd()}
        if args.against:
            trees[args.against] = tmp / "against"
            subprocess.run(["git", "worktree", "add", "--detach", "--quiet",
                            str(trees[args.against]), args.against], check=True)
        try:
            _run_all(tmp, trees)
        finally:
            if args.against:
                subprocess.run(["git", "worktree", "remove", "--force",
                                str(trees[args.against])], check=True)


def _stages(out: Path) -> list[tuple[str, list[str]]]:
    """Every stage of the default pipeline, in order, writing under out."""
    folders = ["--results", str(out / "results"), "--reports", str(out / "reports")]
    runs = ["--runs", str(out / "runs")]
    stages = [("check", ["check", "--out", str(out / "data" / "params.ok")])]
    stages += [(f"data@{n}", ["data", n, "--out", str(out / "data" / f"{n}.npz")])
               for n in GENERATORS]
    stages += [(n, ["study", n, "--data", str(out / "data"), *folders, *runs])
               for n in studies.names()]
    return stages + [("aggregate", ["aggregate", *folders]),
                     ("report", ["report", *folders, *runs, "--html", str(out / "r.html"),
                                 "--pdf", str(out / "r.pdf"), "--figures", str(out / "f")])]


def _run_all(tmp: Path, trees: dict[str, Path]) -> None:
    """Time every stage in every tree (the order of the trees alternating from stage to
    stage); print one Markdown table."""
    names = list(trees)
    plans = {t: _stages(tmp / f"out{k}") for k, t in enumerate(names)}
    heads = " | ".join(f"{t} wall s | {t} cpu s | {t} peak MiB" for t in names) \
        if len(names) > 1 else "wall s | cpu s | peak MiB"
    print(f"| stage | {heads} |")
    print("|" + " --- |" * (1 + 3 * len(names)))
    total = dict.fromkeys(names, 0.0)
    cpu = dict.fromkeys(names, 0.0)
    for i, name in enumerate(s for s, _ in plans[names[0]]):
        timed = {}
        for t in (names if i % 2 == 0 else names[::-1]):
            timed[t] = _timed_stage(tmp / "params.yaml", plans[t][i][1], trees[t])
            total[t] += timed[t][0]
            cpu[t] += timed[t][1]
        cells = " | ".join(f"{timed[t][0]:.1f} | {timed[t][1]:.1f} | {timed[t][2]}"
                           for t in names)
        print(f"| {name} | {cells} |", flush=True)
    print(f"| all stages | {' | '.join(f'{total[t]:.1f} | {cpu[t]:.1f} |' for t in names)} |")


def _timed_stage(params: Path, args: list[str], tree: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user and system, the stage's workers included: a stage
    that kept both cores busy shows twice its wall time) and peak resident MiB (the stage
    or its largest worker), running the `pipeline` package of tree."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", sys.executable, "-m",
                           "pipeline", "--params", str(params), *args],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          cwd=tree)
    if proc.returncode != 0:
        sys.exit(proc.stderr)
    peak, user, system = proc.stderr.strip().splitlines()[-1].split()
    return time.perf_counter() - start, float(user) + float(system), round(int(peak) / 1024)


if __name__ == "__main__":
    main()
