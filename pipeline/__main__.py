"""`python -m pipeline STAGE ...`: the one entry point dvc.yaml calls.

    python -m pipeline data NAME --out data/NAME.npz
    python -m pipeline study NAME --data data --out data/results/NAME --metrics M.json
    python -m pipeline aggregate --results data/results --out reports/tables --metrics M.json
    python -m pipeline report --tables reports/tables --html R.html --pdf R.pdf

A params problem prints one line naming the key and value and exits 2, before any
output is written.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pipeline.config import ConfigError, load_config, resolve_device
from pipeline.io import write_json, write_text


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

    agg = stages.add_parser("aggregate", help="summary tables and headline metrics")
    agg.add_argument("--results", default="data/results", help="folder of study results")
    agg.add_argument("--out", required=True, help="folder for the summary CSV tables")
    agg.add_argument("--metrics", required=True, help="headline metrics JSON to write")
    agg.add_argument("--plots", required=True, help="folder for the DVC plot CSVs")

    rep = stages.add_parser("report", help="render report.html and report.pdf")
    rep.add_argument("--results", default="data/results", help="folder of study results")
    rep.add_argument("--tables", required=True, help="folder of summary tables")
    rep.add_argument("--html", required=True)
    rep.add_argument("--pdf", default=None, help="also write this PDF (WeasyPrint)")
    rep.add_argument("--metrics", default=None,
                     help="headline metrics JSON, compared with the baseline revision's")
    return parser


def run_data(args, config) -> None:
    from pipeline.datasets import build

    arrays = build(args.name, config, args.out)
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in arrays.items())
    print(f"data {args.name}: {shapes} -> {args.out}")


def run_study(args, config) -> None:
    from pipeline.datasets import load
    from pipeline.studies import STUDIES
    from pipeline.studies.common import write_study

    device = resolve_device(config.device)
    module = STUDIES[args.name]
    data = {name: load(name, args.data, getattr(config.data, name))
            for name in module.DATASETS}
    grid = module.cells(config)
    start = time.perf_counter()
    output = module.run(config, grid, data, device)
    metrics = module.summarize(output)
    seconds = time.perf_counter() - start
    write_study(output, metrics, args.out, args.metrics)
    peak = peak_rss_mib()
    cached = int(output.timing["cached"].sum())
    write_json(Path(args.out) / "run.json", {"device": str(device), "cells": len(grid),
                                             "cached": cached, "seconds": round(seconds, 3),
                                             "peak_mib": peak})
    diverged = int(output.cells["diverged"].sum())
    print(f"study {args.name}: {len(grid)} cells ({cached} from the cell cache) on {device} "
          f"in {seconds:.1f} s, peak {peak} MiB ({diverged} diverged) -> {args.out}")


def peak_rss_mib() -> int:
    """Peak resident memory of this process or its largest worker, in MiB."""
    import resource

    kib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return round(kib / 1024)


def run_aggregate(args, config) -> None:
    from pipeline.io import write_csv
    from pipeline.report.aggregate import (
        headline,
        headline_rows,
        load_cells,
        plot_tables,
        study_tables,
    )

    tables = {}
    for study, cells in load_cells(args.results).items():
        tables |= study_tables(study, cells)
    rows = headline_rows(tables)
    for name, table in tables.items():
        write_csv(Path(args.out) / f"{name}.csv", table)
    write_csv(Path(args.out) / "headline.csv", rows)
    plots = plot_tables(args.results, tables)
    for name, table in plots.items():
        write_csv(Path(args.plots) / f"{name}.csv", table)
    write_json(args.metrics, headline(rows))
    print(f"aggregate: {len(tables)} tables -> {args.out}, {len(plots)} plots -> {args.plots}")


def run_report(args, config) -> None:
    import pandas as pd

    from pipeline.report.compare import compare
    from pipeline.report.render import build_sections, provenance, render_html, write_pdf

    results = Path(args.results)
    tables = {p.stem: pd.read_csv(p) for p in sorted(Path(args.tables).glob("*.csv"))}
    params = config.model_dump(mode="json")
    sections = build_sections(results, tables, params)
    comparison = None
    if args.metrics:
        comparison = compare(config.report.baseline, Path(args.params), Path(args.metrics),
                             tables["headline"])
    html = render_html(sections, provenance(Path(args.params), results, config.seeds),
                       comparison)
    write_text(args.html, html)
    if args.pdf:
        write_pdf(html, Path(args.pdf))
    print(f"report: {len(sections)} studies -> {args.html}" + (f", {args.pdf}" if args.pdf else ""))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(Path(args.params))
        stages = {"data": run_data, "study": run_study, "aggregate": run_aggregate,
                  "report": run_report}
        stages[args.stage](args, config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
