"""``python -m tools.demo``: the command line of :mod:`experiments.demo`."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from experiments import demo as library, results, sweep
from experiments.demo import DEFAULT_DATASET, DemoError, QUICK_OPTS, run_demo
from experiments.protocols import ProtocolError, SEEDS
from tools.cli import int_at_least


def build_parser() -> argparse.ArgumentParser:
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
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run_demo(args.dataset, args.trainers, args.seeds, args.quick, args.jobs, args.root, args.output,
                        args.runner)
    except (DemoError, ProtocolError, sweep.SweepError, results.ResultsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        return sweep.report_stop(e)


if __name__ == "__main__":
    sys.exit(main())
