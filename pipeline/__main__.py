"""`python -m pipeline STAGE ...`: the one entry point dvc.yaml calls.

    python -m pipeline check [--out data/params.ok]  # the whole params file, every section
    python -m pipeline data NAME --out data/NAME.npz
    python -m pipeline study NAME          # data/results/NAME, reports/{metrics,tables,plots}
    python -m pipeline aggregate           # reports/findings.json, the scorecard
    python -m pipeline report              # reports/report.html, report.pdf, figures/

A params problem prints one line naming the key and value and exits 2, before any
output is written. The `check` stage, which every other stage depends on in dvc.yaml,
validates every section at once, so `dvc repro` stops on a bad value in any section
before anything trains; its output is the same bytes for every valid file, so it re-runs
nothing downstream. Each stage imports only what it needs: a data stage never loads torch.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pipeline.config import ConfigError, load_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline")
    parser.add_argument("--params", default="params.yaml", help="params file (params.yaml)")
    stages = parser.add_subparsers(dest="stage", required=True)

    check = stages.add_parser("check", help="validate the whole params file, every section")
    check.add_argument("--out", default=None,
                       help="a file to write when the params are valid (dvc.yaml's stamp)")

    data = stages.add_parser("data", help="generate one dataset")
    data.add_argument("name", help="a section of data: in params.yaml")
    data.add_argument("--out", required=True, help="the .npz file to write")

    study = stages.add_parser("study", help="train one study's grid and analyse it")
    study.add_argument("name", help="a module of pipeline/studies")
    study.add_argument("--data", default="data", help="folder of dataset .npz files")
    study.add_argument("--results", default="data/results", help="folder of study results")
    study.add_argument("--reports", default="reports", help="folder of metrics, tables, plots")
    study.add_argument("--runs", default="data/runs", help="wall time and memory (untracked)")

    agg = stages.add_parser("aggregate", help="every study's findings and the scorecard")
    agg.add_argument("--results", default="data/results")
    agg.add_argument("--reports", default="reports")

    rep = stages.add_parser("report", help="render report.html and report.pdf")
    rep.add_argument("--results", default="data/results")
    rep.add_argument("--reports", default="reports")
    rep.add_argument("--runs", default="data/runs")
    rep.add_argument("--html", default="reports/report.html")
    rep.add_argument("--pdf", default="reports/report.pdf",
                     help="'' for none (report.pdf: false in params.yaml does the same)")
    rep.add_argument("--figures", default="reports/figures", help="the figures as SVG files")
    return parser


CHECKED = "ok\n"  # the stamp's bytes: the same for every valid params file


def run_check(args) -> None:
    config = load_config(Path(args.params))  # every section and the cross-section checks
    if config.device == "cuda":  # an explicit device must exist (auto and cpu need no torch)
        from pipeline.config import resolve_device

        resolve_device(config.device)
    if args.out:
        from pipeline.io import write_text

        write_text(Path(args.out), CHECKED)
    print(f"{args.params}: ok")


def run_data(args) -> None:
    from pipeline.datasets import GENERATORS, build

    if args.name not in GENERATORS:
        raise ConfigError(f"data: no dataset named {args.name!r}; the datasets are "
                          f"{', '.join(sorted(GENERATORS))}")
    config = load_config(Path(args.params), studies=())
    arrays = build(args.name, config, args.out)
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in arrays.items())
    print(f"data {args.name}: {shapes} -> {args.out}")


def run_study(args) -> tuple:
    """Train, analyse and write one study; returns (study, its output, its analysis)."""
    from pipeline import studies

    try:
        cls = studies.load(args.name)
    except KeyError as exc:
        raise ConfigError(f"study: {exc.args[0]}") from None
    config = load_config(Path(args.params), studies=(args.name,))
    from pipeline.config import resolve_device
    from pipeline.datasets import load
    from pipeline.engine.blas import arithmetic
    from pipeline.io import write_json
    from pipeline.studies.base import Paths, run_study, write_study

    device = resolve_device(config.device)
    study = cls(config)
    data = {name: load(name, args.data, getattr(config.data, name), config.seeds)
            for name in cls.datasets}
    start = time.perf_counter()
    out = run_study(study, data, device)
    analysis = study.analyze(out)
    seconds = time.perf_counter() - start
    paths = Paths(Path(args.results) / args.name,
                  Path(args.reports) / "metrics" / f"{args.name}.json",
                  Path(args.reports) / "tables" / args.name,
                  Path(args.reports) / "plots" / args.name)
    write_study(study, out, analysis, paths)
    peak = peak_rss_mib()
    write_json(Path(args.runs) / f"{args.name}.json",
               {"device": str(device), "arithmetic": arithmetic(device),
                "cells": len(out.cells), "cached": out.cached,
                "seconds": round(seconds, 3), "peak_mib": peak})
    diverged = int(out.cells["diverged"].sum())
    print(f"study {args.name}: {len(out.cells)} cells ({out.cached} from the cell cache) on "
          f"{device} in {seconds:.1f} s, peak {peak} MiB, {diverged} diverged, "
          f"{len(analysis.findings)} findings -> {paths.results}")
    return study, out, analysis


def peak_rss_mib() -> int:
    """Peak resident memory of this process or its largest worker, in MiB."""
    import resource

    kib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return round(kib / 1024)


def run_aggregate(args) -> None:
    from pipeline.report.aggregate import aggregate

    load_config(Path(args.params), studies=())
    n_studies, n_findings, n_refs = aggregate(Path(args.results), Path(args.reports))
    print(f"aggregate: {n_studies} studies, {n_findings} findings, {n_refs} published "
          f"references -> {args.reports}")


def run_report(args) -> None:
    from pipeline.report import compare

    config = load_config(Path(args.params), studies=())
    diffs = compare.start(config.report.baseline)  # DVC's diffs run while the rest loads
    from pipeline.report.render import build_report

    html = Path(args.html)
    pdf = Path(args.pdf) if args.pdf and config.report.pdf else None
    n = build_report(Path(args.results), Path(args.reports), Path(args.runs), html, pdf,
                     Path(args.figures), Path(args.params), config, diffs)
    print(f"report: {n} studies -> {html}" + (f", {pdf}" if pdf else ""))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stages = {"check": run_check, "data": run_data, "study": run_study, "aggregate": run_aggregate,
              "report": run_report}
    try:
        stages[args.stage](args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
