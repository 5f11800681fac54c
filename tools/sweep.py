"""``python -m tools.sweep``: the command line of :mod:`experiments.sweep`."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from experiments import sweep as library
from experiments.protocols import PROTOCOLS, ProtocolError, REPO_ROOT, settings_from_env
from experiments.sweep import (FAILURES_FILE, Grid, SlurmOptions, SweepError, execute, grids_from_yaml, load_failures,
                               report_stop)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.sweep", description=library.__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("grid (or --grid FILE)")
    g.add_argument("--protocol", choices=PROTOCOLS)
    g.add_argument("--trainers", nargs="+", metavar="TRAINER")
    g.add_argument("--datasets", nargs="+", default=["all"], metavar="DATASET",
                   help="configs/datasets stems (targets for xd/dg), or 'all' (default)")
    g.add_argument("--seeds", nargs="+", default=["all"], help="seeds, or 'all' = 1 2 3 (default)")
    g.add_argument("--shots", nargs="+", help="shots per class (default: 1 2 4 8 16 for fewshot, else 16)")
    g.add_argument("--config", help="config name for every trainer (default: each trainer's protocol default)")
    g.add_argument("--backbone", help="passed to train.py --backbone")
    g.add_argument("--grid", type=Path, help="YAML file with one or more grids (see the module docstring)")
    w = p.add_argument_group("where")
    w.add_argument("--root", help="dataset root (default: $DATA)")
    w.add_argument("--output", help="output root (default: $OUTPUT, else output/ in the repository)")
    w.add_argument("--configs-dir", help="root of the datasets/ and trainers/ configs (default: configs/ in the "
                                         "repository)")
    r = p.add_argument_group("running")
    r.add_argument("--launcher", choices=("local", "slurm"), default="local")
    r.add_argument("--jobs", type=int, help="parallel runs (default: one per GPU, or 1 on CPU)")
    r.add_argument("--runner", choices=("warm", "process"), default="warm",
                   help="local launcher: warm = one long-lived worker per slot (experiments/warm_pool.py, default); "
                        "process = a new train.py process per run")
    r.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    r.add_argument("--retry-failed", action="store_true", help=f"re-run the runs recorded in $OUTPUT/{FAILURES_FILE}")
    r.add_argument("--only", nargs="+", metavar="RUN_ID", help="run only these run ids (from the grid, or from the "
                                                               "failure record when no grid is given)")
    s = p.add_argument_group("slurm")
    s.add_argument("--partition")
    s.add_argument("--time-min", type=int, default=SlurmOptions.time_min, help="time limit per job in minutes")
    s.add_argument("--gpus-per-run", type=int, default=SlurmOptions.gpus_per_run)
    s.add_argument("--cpus-per-run", type=int, default=SlurmOptions.cpus_per_run)
    s.add_argument("--mem-gb", type=int)
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE",
                   help="trailing config options passed to every run (must come last)")
    return p


def select_runs(args: argparse.Namespace) -> tuple:
    """(runs, output_root) chosen by the arguments."""
    has_grid = bool(args.grid or args.protocol or args.trainers)
    if args.retry_failed or (args.only and not has_grid):
        output = Path(args.output or os.environ.get("OUTPUT") or REPO_ROOT / "output").expanduser().resolve()
        runs = load_failures(output)
        if not runs:
            raise SweepError(f"No failed runs are recorded in {output / FAILURES_FILE}.")
    else:
        if args.grid and (args.protocol or args.trainers):
            raise SweepError("Give the grid either as flags (--protocol, --trainers, ...) or as --grid FILE, not both.")
        settings = settings_from_env(args.root, args.output, args.configs_dir, backbone=args.backbone,
                                     opts=tuple(args.opts))
        output = settings.output_root
        if args.grid:
            grids = grids_from_yaml(args.grid)
        elif args.protocol and args.trainers:
            grids = [Grid(args.protocol, args.trainers, args.datasets, args.seeds, args.shots, args.config)]
        else:
            raise SweepError("Nothing to run: give --protocol and --trainers, --grid FILE, or --retry-failed.")
        runs = [r for grid in grids for r in grid.runs(settings)]
    if args.only:
        known = {r.run_id for r in runs}
        missing = [i for i in args.only if i not in known]
        if missing:
            raise SweepError(f"--only: no run {', '.join(missing)} in this selection.")
        runs = [r for r in runs if r.run_id in args.only]
    return runs, output


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        runs, output = select_runs(args)
        return execute(runs, output, launcher=args.launcher, jobs=args.jobs, dry_run=args.dry_run,
                       slurm=SlurmOptions(args.partition, args.time_min, args.gpus_per_run, args.cpus_per_run,
                                          args.mem_gb), runner=args.runner)
    except (ProtocolError, SweepError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        return report_stop(e)


if __name__ == "__main__":
    sys.exit(main())
