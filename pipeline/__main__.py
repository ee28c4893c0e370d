"""`python -m pipeline STAGE ...`: the one entry point dvc.yaml calls.

    python -m pipeline data NAME --out data/NAME.npz
    python -m pipeline study NAME --data data --out data/results/NAME --metrics M.json

A params problem prints one line naming the key and value and exits 2, before any
output is written.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pipeline.config import ConfigError, load_config, resolve_device


def _parser() -> argparse.ArgumentParser:
    from pipeline.datasets import GENERATORS
    from pipeline.studies import STUDIES

    parser = argparse.ArgumentParser(prog="python -m pipeline")
    parser.add_argument("--params", default="params.yaml", help="params file (params.yaml)")
    stages = parser.add_subparsers(dest="stage", required=True)

    data = stages.add_parser("data", help="generate one dataset")
    data.add_argument("name", choices=sorted(GENERATORS))
    data.add_argument("--out", required=True, help="the .npz file to write")

    study = stages.add_parser("study", help="train one study's grid")
    study.add_argument("name", choices=sorted(STUDIES))
    study.add_argument("--data", default="data", help="folder of dataset .npz files")
    study.add_argument("--out", required=True, help="folder for the result tables")
    study.add_argument("--metrics", required=True, help="metrics JSON to write")
    return parser


def run_data(args, config) -> None:
    from pipeline.datasets import GENERATORS
    from pipeline.io import write_npz

    section = getattr(config.data, args.name)
    arrays = GENERATORS[args.name](section)
    write_npz(args.out, {"dataset": args.name, "params": section.model_dump()}, **arrays)
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in arrays.items())
    print(f"data {args.name}: {shapes} -> {args.out}")


def run_study(args, config) -> None:
    from pipeline.datasets import load
    from pipeline.studies import STUDIES
    from pipeline.studies.common import write_study

    device = resolve_device(config.device)
    module = STUDIES[args.name]
    data = {name: load(name, args.data) for name in module.DATASETS}
    grid = module.cells(config)
    start = time.perf_counter()
    output = module.run(config, grid, data, device)
    metrics = module.summarize(output)
    write_study(output, metrics, args.out, args.metrics)
    diverged = int(output.cells["diverged"].sum())
    print(f"study {args.name}: {len(grid)} cells on {device} in "
          f"{time.perf_counter() - start:.1f} s ({diverged} diverged) -> {args.out}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(Path(args.params))
        {"data": run_data, "study": run_study}[args.stage](args, config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
