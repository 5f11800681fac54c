"""``python -m tools.demo``: the command line of :mod:`experiments.demo`."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from experiments import demo as library, results, sweep, tradeoff
from experiments.base2new_plot import plot_base2new
from experiments.demo import (DEFAULT_DATASET, DemoError, QUICK_OPTS, TOY_CONFIG, check_inputs, header,
                              input_fingerprints, render_toy_dataset, toy_datasets, toy_trainers, toyclip_weights)
from experiments.protocols import CONFIGS_DIR, ProtocolError, REPO_ROOT, SEEDS, Settings, expand
from tools.cli import int_at_least


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.demo", description=library.__doc__.split("\n\n")[0])
    p.add_argument("--dataset", help=f"toy dataset config stem (default: {DEFAULT_DATASET})")
    p.add_argument("--trainers", nargs="+", help="default: ZeroshotCLIP, CoOp and every trainer with a toy.yaml")
    p.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS), help="default: 1 2 3")
    p.add_argument("--quick", action="store_true", help=f"{' '.join(QUICK_OPTS)} (for CI)")
    p.add_argument("--jobs", type=int_at_least(1), default=os.cpu_count() or 1,
                   help="parallel CPU runs (default: CPU count)")
    p.add_argument("--root", help="dataset root where the toy world is rendered (default: $DATA, else data/)")
    p.add_argument("--output", type=Path, help="default: output/demo (output/demo-quick with --quick)")
    p.add_argument("--runner", choices=("warm", "process"), default="warm",
                   help="warm workers (default) or a process per run (tools.sweep --runner)")
    args = p.parse_args(argv)
    try:
        datasets = toy_datasets()
        if not datasets:
            raise DemoError(f"No toy dataset configs: expected {CONFIGS_DIR / 'datasets'}/toy_*.yaml.")
        dataset = args.dataset or DEFAULT_DATASET
        if dataset not in datasets:
            raise DemoError(f"Unknown toy dataset {dataset!r}; choose one of {', '.join(datasets)}.")
        trainers = args.trainers or toy_trainers()
        data_root = Path(args.root or os.environ.get("DATA") or REPO_ROOT / "data").expanduser().resolve()
        output = (args.output or REPO_ROOT / "output" / ("demo-quick" if args.quick else "demo")).expanduser().resolve()
        settings = Settings(data_root=data_root, output_root=output, opts=QUICK_OPTS if args.quick else ())
        runs = expand("base2new", trainers, [dataset], args.seeds, settings, config=TOY_CONFIG)
        print(f"Toy base-to-new demo: {', '.join(trainers)} on {dataset}, seeds {' '.join(map(str, args.seeds))}; "
              f"{len(runs)} runs, {args.jobs} in parallel, outputs in {output}")
        check_inputs(output, runs, input_fingerprints(runs, toyclip_weights()))
        render_toy_dataset(dataset, data_root)
        status = sweep.execute(runs, output, jobs=args.jobs, runner=args.runner)
        summary = results.Summary([rec for rec in (results.read_run(r.output_dir) for r in runs if r.finished)
                                   if rec is not None])
    except (DemoError, ProtocolError, sweep.SweepError, results.ResultsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        return sweep.report_stop(e)
    if not summary.rows:
        print("No finished runs to tabulate.", file=sys.stderr)
        return 1
    for w in summary.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print("\n" + results.report(summary, "terminal"))
    print(tradeoff.report(summary, "terminal"))
    table_file = output / "results.md"
    table = results.report(summary, "markdown") + "\n" + tradeoff.report(summary, "markdown")
    table_file.write_text(header(dataset, trainers, args.seeds, args.quick) + "\n" + table)
    print(f"Table written to {table_file}")
    try:
        print(f"Figure written to {plot_base2new(summary, output / 'results.png')}")
    except results.ResultsError as e:
        print(f"warning: no figure: {e}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
